//! Added points are searchable at once and linked cooperatively.

use vectron_hnsw::{HnswIndex, IndexConfig, Metric, SearchScratch};

use crate::random_vectors;

#[test]
fn added_points_are_found_before_and_after_linking() {
    let data = random_vectors(800, 12, 21);
    let mut index = HnswIndex::new(IndexConfig::new(12, Metric::L2)).unwrap();
    let ids: Vec<_> = data.iter().map(|v| index.add(v).unwrap()).collect();
    assert_eq!((index.len(), index.pending_len()), (800, 800));
    let mut s = SearchScratch::new();
    // Nothing linked: every point is found by the exact scan.
    let hit = index.search(&data[123], 1, 16, None, &mut s).unwrap()[0];
    assert_eq!((hit.id, hit.score), (ids[123], 0.0));
    let mut linked = 0;
    while index.pending_len() > 0 {
        linked += index.link_pending(100);
        // Half linked, half pending: still exact for a stored point.
        let hit = index.search(&data[700], 1, 32, None, &mut s).unwrap()[0];
        assert_eq!(hit.id, ids[700]);
    }
    assert_eq!(linked, 800);
    index.check_invariants().unwrap();
    assert_eq!(index.link_pending(10), 0);
}

#[test]
fn update_replaces_the_vector_and_returns_the_new_id() {
    let data = random_vectors(200, 6, 22);
    let mut index = HnswIndex::new(IndexConfig::new(6, Metric::Cosine)).unwrap();
    for v in &data {
        index.insert(v).unwrap();
    }
    let old = vectron_hnsw::NodeId(5);
    let new = index.update(old, &data[9]).unwrap();
    assert!(!index.contains(old) && index.contains(new));
    let norm: f32 = index.vector(new).unwrap().iter().map(|x| x * x).sum();
    assert!(
        (norm - 1.0).abs() < 1e-5,
        "cosine vectors come back unit length"
    );
    let mut s = SearchScratch::new();
    let hits = index.search(&data[5], 200, 200, None, &mut s).unwrap();
    assert!(hits.iter().all(|h| h.id != old));
    assert_eq!(index.len(), 200);
}
