//! Filtered search: results satisfy the filter, and recall against exact filtered
//! ground truth holds at 10% and 1% selectivity, planned (with an id list) or not.

use vectron_hnsw::{Filter, IdFilter, Metric, NodeId, Quantization, SearchScratch};

use crate::{build, fixture};

#[test]
fn filtered_recall_at_ten_and_one_percent() {
    let f = fixture();
    let index = build(&f.base, Metric::Cosine, Quantization::None, 16);
    let mut s = SearchScratch::new();
    for (modulus, ef) in [(10u32, 64), (100, 64)] {
        let ids: Vec<NodeId> = (0..2_000u32)
            .filter(|i| i.wrapping_mul(40_503) % modulus == 3 % modulus)
            .map(NodeId)
            .collect();
        let hinted = IdFilter::new(ids);
        let plain = |id: NodeId| hinted.matches(id);
        for filter in [&hinted as &dyn Filter, &plain as &dyn Filter] {
            let (mut hits, mut want) = (0, 0);
            for q in &f.queries {
                let truth: Vec<NodeId> = index
                    .exact_search(q, 10, Some(filter), &mut s)
                    .unwrap()
                    .iter()
                    .map(|h| h.id)
                    .collect();
                let got = index.search(q, 10, ef, Some(filter), &mut s).unwrap();
                assert!(
                    got.iter().all(|h| hinted.matches(h.id)),
                    "results satisfy the filter"
                );
                hits += got.iter().filter(|h| truth.contains(&h.id)).count();
                want += truth.len();
            }
            let recall = hits as f64 / want as f64;
            assert!(recall >= 0.95, "1/{modulus} of points: recall {recall}");
        }
    }
}

#[test]
fn duplicate_and_foreign_ids_in_a_filter_list_are_ignored() {
    struct Dups(Vec<NodeId>);
    impl Filter for Dups {
        fn matches(&self, id: NodeId) -> bool {
            self.0.contains(&id)
        }
        fn matching_ids(&self) -> Option<&[NodeId]> {
            Some(&self.0)
        }
    }
    let f = fixture();
    let index = build(&f.base[..300], Metric::Cosine, Quantization::None, 8);
    let filter = Dups(vec![
        NodeId(4),
        NodeId(4),
        NodeId(9),
        NodeId(1_000_000),
        NodeId(9),
    ]);
    let mut s = SearchScratch::new();
    let got = index
        .search(&f.queries[0], 10, 32, Some(&filter), &mut s)
        .unwrap();
    let mut ids: Vec<u32> = got.iter().map(|h| h.id.0).collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![4, 9]);
}
