//! Graph invariants: list lengths within limits, links only to linked nodes, and every
//! live node reachable from the entry point; equal seeds give equal graphs.

use vectron_hnsw::{Metric, NodeId, Quantization, SearchScratch};

use crate::{build, random_vectors};

#[test]
fn invariants_hold_after_build_deletes_and_reclaim() {
    let data = random_vectors(1_500, 16, 9);
    let mut index = build(&data, Metric::L2, Quantization::None, 6);
    index.check_invariants().unwrap();
    for i in (0..1_500).step_by(3) {
        index.delete(NodeId(i)).unwrap();
    }
    index.check_invariants().unwrap();
    assert_eq!(index.reclaim_deleted(), 500);
    index.check_invariants().unwrap();
    assert_eq!((index.len(), index.deleted_len()), (1_000, 0));
    // Freed ids are handed out again and linked like any other.
    for v in random_vectors(600, 16, 10) {
        let id = index.insert(&v).unwrap();
        assert!(index.contains(id));
    }
    assert_eq!(index.id_bound(), 1_600);
    index.check_invariants().unwrap();
}

#[test]
fn same_seed_same_graph() {
    let data = random_vectors(400, 8, 3);
    let a = build(&data, Metric::Cosine, Quantization::None, 8);
    let b = build(&data, Metric::Cosine, Quantization::None, 8);
    let (mut sa, mut sb) = (SearchScratch::new(), SearchScratch::new());
    for q in random_vectors(20, 8, 4) {
        assert_eq!(
            a.search(&q, 5, 10, None, &mut sa).unwrap(),
            b.search(&q, 5, 10, None, &mut sb).unwrap()
        );
    }
}

#[test]
fn stepwise_reclaim_interleaves_with_writes_and_searches() {
    let data = random_vectors(1_200, 12, 17);
    let mut index = build(&data[..1_000], Metric::Cosine, Quantization::None, 6);
    for i in 0..200 {
        index.delete(NodeId(i * 5)).unwrap();
    }
    let mut s = SearchScratch::new();
    let mut freed = 0;
    let mut extra = data[1_000..].iter();
    let mut late = 1;
    while freed == 0 {
        freed += index.reclaim_step(64);
        assert!(index.reclaim_in_progress() || freed > 0);
        // Writes and searches between steps: an insert (maybe into no freed slot yet),
        // a delete that belongs to the next pass, a search that never sees tombstones.
        if let Some(v) = extra.next() {
            index.insert(v).unwrap();
        }
        index.delete(NodeId(late * 5 + 1)).unwrap();
        late += 1;
        let hits = index.search(&data[3], 10, 40, None, &mut s).unwrap();
        assert!(hits.iter().all(|h| index.contains(h.id)));
        index.check_invariants().unwrap();
    }
    assert_eq!(
        freed, 200,
        "only tombstones present at the start of the pass"
    );
    assert_eq!(index.deleted_len(), late as usize - 1);
    assert_eq!(index.reclaim_deleted(), late as usize - 1);
    assert_eq!(index.deleted_len(), 0);
    index.check_invariants().unwrap();
}

#[test]
fn connectivity_repair_reaches_every_live_point() {
    // A small m and many deletes orphan some points; the repair links them back.
    let data = random_vectors(3_000, 8, 23);
    let mut index = build(&data, Metric::L2, Quantization::None, 2);
    let fixed_after_build = index.repair_connectivity();
    index.check_invariants().unwrap();
    for i in (0..3_000).filter(|i| i % 10 < 4) {
        index.delete(NodeId(i)).unwrap();
    }
    index.reclaim_deleted(); // repairs connectivity at the end of the pass
    index.check_invariants().unwrap();
    assert_eq!(index.repair_connectivity(), 0, "nothing left to repair");
    assert!(
        fixed_after_build > 0,
        "with m = 2 the build leaves orphans to repair"
    );
}
