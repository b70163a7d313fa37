//! Deletes: excluded from results at once; after reclaiming, recall stays close to an
//! index built from the remaining points.

use vectron_hnsw::{HnswIndex, IndexConfig, Metric, NodeId, SearchScratch};

use crate::{fixture, self_recall};

#[test]
fn recall_after_deleting_a_fifth_matches_a_rebuild() {
    let f = fixture();
    let cfg = IndexConfig {
        ef_construction: 100,
        ..IndexConfig::new(384, Metric::Cosine)
    };
    let mut index = HnswIndex::new(cfg.clone()).unwrap();
    for v in &f.base {
        index.insert(v).unwrap();
    }
    let gone: Vec<u32> = (0..2_000u32)
        .filter(|i| i.wrapping_mul(2_654_435_761) % 5 == 0)
        .collect();
    for &i in &gone {
        index.delete(NodeId(i)).unwrap();
    }
    let mut s = SearchScratch::new();
    for q in &f.queries[..20] {
        let hits = index.search(q, 10, 32, None, &mut s).unwrap();
        assert_eq!(hits.len(), 10);
        assert!(
            hits.iter().all(|h| !gone.contains(&h.id.0)),
            "tombstones never returned"
        );
    }
    let tombstoned = self_recall(&index, &f.queries, 10, 32);
    assert_eq!(index.reclaim_deleted(), gone.len());
    index.check_invariants().unwrap();
    let reclaimed = self_recall(&index, &f.queries, 10, 32);
    let mut fresh = HnswIndex::new(cfg).unwrap();
    for (i, v) in f.base.iter().enumerate() {
        if !gone.contains(&(i as u32)) {
            fresh.insert(v).unwrap();
        }
    }
    let rebuilt = self_recall(&fresh, &f.queries, 10, 32);
    assert!(
        reclaimed >= rebuilt - 0.01,
        "reclaimed {reclaimed}, rebuilt {rebuilt}, tombstoned {tombstoned}"
    );
}
