//! Pure functions that split requests by shard and merge the shards' answers: points to
//! the shards that own them, in batches a core accepts; per-shard top-k lists into one
//! (folded in one answer at a time, in any order); per-shard scroll pages into one page in id order.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use vectron_control::ShardLayout;
use vectron_proto::core::v1::{Point, ScoredPoint};
use vectron_proto::rules::point_bytes;

/// The points of each shard, in request order within a shard.
pub(crate) fn group_by_shard(points: Vec<Point>, layout: ShardLayout) -> BTreeMap<u32, Vec<Point>> {
    let mut groups: BTreeMap<u32, Vec<Point>> = BTreeMap::new();
    for p in points {
        groups.entry(layout.shard_of(&p.id)).or_default().push(p);
    }
    groups
}

/// Ids grouped the same way, keeping the first occurrence of each.
pub(crate) fn group_ids_by_shard(
    ids: &[String],
    layout: ShardLayout,
) -> BTreeMap<u32, Vec<String>> {
    let mut seen = std::collections::HashSet::with_capacity(ids.len());
    let mut groups: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for id in ids {
        if seen.insert(id.as_str()) {
            groups
                .entry(layout.shard_of(id))
                .or_default()
                .push(id.clone());
        }
    }
    groups
}

/// Splits one shard's points into batches of at most `max_points` points and
/// `max_bytes` bytes (a single larger point still travels alone).
pub(crate) fn chunk(points: Vec<Point>, max_points: usize, max_bytes: usize) -> Vec<Vec<Point>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for p in points {
        let size = point_bytes(&p);
        if !current.is_empty() && (current.len() >= max_points || bytes + size > max_bytes) {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(p);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Higher score first; equal scores by smaller id, so the merge is deterministic.
fn better(a: &ScoredPoint, b: &ScoredPoint) -> Ordering {
    a.score
        .total_cmp(&b.score)
        .then_with(|| b.id.as_bytes().cmp(a.id.as_bytes()))
}

/// Merges `list` (sorted best first) into `best` (sorted best first, at most `k` hits),
/// keeping the best `k`, and says whether `list` gave any of them. Folding a search's
/// shard answers in gives the same hits whatever order they arrive in (each step takes
/// the better of the two heads, and [`better`] is a total order), so a streamed search
/// ends with the unary search's answer. `O(k)` per list.
pub(crate) fn merge_into(best: &mut Vec<ScoredPoint>, list: Vec<ScoredPoint>, k: usize) -> bool {
    if list.is_empty() || k == 0 {
        return false;
    }
    let old = std::mem::take(best);
    best.reserve_exact(k.min(old.len() + list.len()));
    let mut old = old.into_iter().peekable();
    let mut new = list.into_iter().peekable();
    let mut changed = false;
    while best.len() < k {
        let from_new = match (old.peek(), new.peek()) {
            (Some(a), Some(b)) => better(b, a) == Ordering::Greater,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (None, None) => break,
        };
        let next = if from_new { new.next() } else { old.next() };
        changed |= from_new;
        best.extend(next);
    }
    changed
}

/// One scroll page out of the shards' pages (each in ascending id order, each with the
/// id that starts its next page): the points over all shards in id order, up to `limit`
/// points and `max_bytes` (at least one point), and the id that starts the next page
/// (empty when there is none).
///
/// A shard's page may end before `limit` points (a core ends a page at the answer
/// limit), so the merged page stops before the smallest start of a shard's next page:
/// past it, that shard may hold points it did not send yet. The first point left out
/// starts the next merged page.
pub(crate) fn merge_scroll(
    pages: Vec<(Vec<Point>, String)>,
    limit: usize,
    max_bytes: usize,
) -> (Vec<Point>, String) {
    let mut cut: Option<String> = None;
    let mut points = Vec::new();
    for (page, next_offset) in pages {
        if !next_offset.is_empty()
            && cut
                .as_deref()
                .is_none_or(|c| next_offset.as_bytes() < c.as_bytes())
        {
            cut = Some(next_offset);
        }
        points.extend(page);
    }
    points.sort_unstable_by(|a, b| a.id.as_bytes().cmp(b.id.as_bytes()));
    if let Some(c) = &cut {
        let before = points.partition_point(|p| p.id.as_bytes() < c.as_bytes());
        points.truncate(before);
    }
    let mut end = points.len().min(limit);
    let mut bytes = 0;
    for (i, p) in points.iter().enumerate().take(end) {
        bytes += point_bytes(p);
        if i > 0 && bytes > max_bytes {
            end = i;
            break;
        }
    }
    if end < points.len() {
        cut = Some(points[end].id.clone());
    }
    points.truncate(end);
    (points, cut.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn hit(id: &str, score: f32) -> ScoredPoint {
        ScoredPoint {
            id: id.into(),
            score,
            vector: Vec::new(),
            payload_json: Vec::new(),
            payload_bytes: 0,
        }
    }

    fn point(id: &str) -> Point {
        Point {
            id: id.into(),
            vector: vec![0.0; 2],
            payload_json: Vec::new(),
        }
    }

    fn ids(points: &[Point]) -> Vec<&str> {
        points.iter().map(|p| p.id.as_str()).collect()
    }

    /// Folds the lists in, in order.
    fn merge_top_k(lists: Vec<Vec<ScoredPoint>>, k: usize) -> Vec<ScoredPoint> {
        let mut best = Vec::new();
        for list in lists {
            merge_into(&mut best, list, k);
        }
        best
    }

    #[test]
    fn top_k_interleaves_the_shards_best_first() {
        let merged = merge_top_k(
            vec![
                vec![hit("a", 0.9), hit("c", 0.5), hit("e", 0.1)],
                vec![hit("b", 0.8), hit("d", 0.3)],
                vec![],
            ],
            4,
        );
        let got: Vec<_> = merged.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(got, ["a", "b", "c", "d"]);
    }

    #[test]
    fn top_k_breaks_ties_by_id_and_stops_when_lists_run_out() {
        let merged = merge_top_k(vec![vec![hit("z", 0.5)], vec![hit("m", 0.5)]], 10);
        let got: Vec<_> = merged.iter().map(|h| h.id.as_str()).collect();
        assert_eq!(got, ["m", "z"]);
        assert!(merge_top_k(vec![vec![], vec![]], 3).is_empty());
        assert!(merge_top_k(vec![vec![hit("a", 1.0)]], 0).is_empty());
        // A list that gives nothing to the best changes nothing.
        let mut best = vec![hit("a", 0.9), hit("b", 0.8)];
        assert!(!merge_into(&mut best, vec![hit("c", 0.1)], 2));
        assert!(merge_into(&mut best, vec![hit("c", 0.85)], 2));
        assert_eq!(best, [hit("a", 0.9), hit("c", 0.85)]);
    }

    #[test]
    fn scroll_takes_the_first_ids_over_all_shards() {
        // Shard 0 holds a, c, e, g; shard 1 holds b, d, f; each returned a page of 2.
        let pages = vec![
            (vec![point("a"), point("c")], "e".to_owned()),
            (vec![point("b"), point("d")], "f".to_owned()),
        ];
        let (page, next) = merge_scroll(pages, 3, usize::MAX);
        assert_eq!(ids(&page), ["a", "b", "c"]);
        assert_eq!(next, "d");
        // A page that takes everything returned continues at the smallest next start.
        let pages = vec![
            (vec![point("a")], "e".to_owned()),
            (vec![point("b")], "c".to_owned()),
        ];
        let (page, next) = merge_scroll(pages, 2, usize::MAX);
        assert_eq!(ids(&page), ["a", "b"]);
        assert_eq!(next, "c");
        // The last page says so.
        let (page, next) = merge_scroll(vec![(vec![point("x")], String::new())], 5, usize::MAX);
        assert_eq!(ids(&page), ["x"]);
        assert!(next.is_empty());
    }

    #[test]
    fn scroll_orders_by_bytes_so_10_comes_before_9() {
        let (page, _) = merge_scroll(
            vec![
                (vec![point("9")], String::new()),
                (vec![point("10")], String::new()),
            ],
            10,
            usize::MAX,
        );
        assert_eq!(ids(&page), ["10", "9"]);
    }

    #[test]
    fn chunks_respect_points_and_bytes() {
        let points: Vec<Point> = (0..10).map(|i| point(&i.to_string())).collect();
        let size = point_bytes(&points[0]);
        let by_count = chunk(points.clone(), 4, usize::MAX);
        assert_eq!(by_count.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
        let by_bytes = chunk(points, 100, size * 3);
        assert_eq!(
            by_bytes.iter().map(Vec::len).collect::<Vec<_>>(),
            [3, 3, 3, 1]
        );
        let huge = chunk(vec![point("a")], 10, 1);
        assert_eq!(huge.len(), 1);
    }

    #[test]
    fn ids_group_by_owner_once_each() {
        let layout = ShardLayout::with_count(4).unwrap();
        let ids: Vec<String> = ["a", "b", "a", "c"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let groups = group_ids_by_shard(&ids, layout);
        let total: usize = groups.values().map(Vec::len).sum();
        assert_eq!(total, 3);
        for (shard, ids) in groups {
            assert!(ids.iter().all(|id| layout.shard_of(id) == shard));
        }
    }

    /// Shard answers from lists of scores (sevenths): each hit a distinct id, each list
    /// best first.
    fn shard_answers(lists: Vec<Vec<i32>>) -> Vec<Vec<ScoredPoint>> {
        let mut n = 0;
        lists
            .into_iter()
            .map(|scores| {
                let mut hits: Vec<ScoredPoint> = scores
                    .into_iter()
                    .map(|s| {
                        n += 1;
                        hit(&format!("{n:04}"), s as f32 / 7.0)
                    })
                    .collect();
                hits.sort_by(|a, b| better(b, a));
                hits
            })
            .collect()
    }

    proptest! {
        #[test]
        fn top_k_equals_sorting_everything(
            lists in proptest::collection::vec(
                proptest::collection::vec(-1000i32..1000, 0..20), 0..6),
            k in 0usize..40,
        ) {
            let lists = shard_answers(lists);
            let mut all: Vec<ScoredPoint> = lists.iter().flatten().cloned().collect();
            all.sort_by(|a, b| better(b, a));
            all.truncate(k);
            let merged = merge_top_k(lists, k);
            prop_assert_eq!(merged, all);
        }

        #[test]
        fn folding_answers_in_any_order_gives_the_same_hits(
            lists in proptest::collection::vec(
                proptest::collection::vec(-50i32..50, 0..20), 0..6),
            k in 0usize..40,
            rotate in 0usize..6,
        ) {
            // Ties in score are common (scores from a small range), so the id order
            // is exercised too.
            let mut lists = shard_answers(lists);
            let in_order = merge_top_k(lists.clone(), k);
            // The shards answer in another order.
            if !lists.is_empty() {
                let by = rotate % lists.len();
                lists.rotate_left(by);
                lists.reverse();
            }
            let mut best = Vec::new();
            for list in lists {
                let before = best.clone();
                let changed = merge_into(&mut best, list, k);
                prop_assert_eq!(changed, best != before);
                prop_assert!(best.len() <= k);
            }
            prop_assert_eq!(best, in_order);
        }

        #[test]
        fn scroll_pages_cover_every_id_once(
            ids in proptest::collection::btree_set("[a-z0-9]{1,4}", 0..60),
            shards in 1u32..5,
            limit in 1usize..12,
            short in proptest::collection::vec(1usize..12, 5),
            max_points in 1usize..12,
        ) {
            // Page through the shards the way the gateway does, and compare with the
            // sorted set of every id. Shard `s` ends its pages after `short[s]` points
            // (as a core does at its answer limit), and the merged page holds at most
            // about `max_points` points' bytes.
            let layout = ShardLayout::with_count(shards).unwrap();
            let mut held: Vec<Vec<String>> = vec![Vec::new(); shards as usize];
            for id in &ids {
                held[layout.shard_of(id) as usize].push(id.clone());
            }
            for h in &mut held {
                h.sort();
            }
            let shard_page = |h: &Vec<String>, size: usize, offset: &str| {
                let rest: Vec<&String> =
                    h.iter().filter(|id| id.as_bytes() >= offset.as_bytes()).collect();
                let page: Vec<Point> = rest.iter().take(size).map(|id| point(id)).collect();
                let next = rest.get(size).map(|s| (*s).clone()).unwrap_or_default();
                (page, next)
            };
            let max_bytes = max_points * point_bytes(&point("ab"));
            let mut seen = Vec::new();
            let mut offset = String::new();
            loop {
                let pages = held
                    .iter()
                    .zip(&short)
                    .map(|(h, &s)| shard_page(h, s.min(limit), &offset))
                    .collect();
                let (page, next) = merge_scroll(pages, limit, max_bytes);
                prop_assert!(!page.is_empty() || next.is_empty(), "every page moves on");
                prop_assert!(page.len() <= limit);
                seen.extend(page.into_iter().map(|p| p.id));
                if next.is_empty() {
                    break;
                }
                offset = next;
            }
            let expected: Vec<String> = ids.into_iter().collect();
            prop_assert_eq!(seen, expected);
        }
    }
}
