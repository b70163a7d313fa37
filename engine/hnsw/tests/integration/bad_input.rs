//! Bad input gives a typed error, never a panic.

use vectron_hnsw::{HnswError, HnswIndex, IndexConfig, Metric, NodeId, SearchScratch};

#[test]
fn bad_vectors_queries_and_ids_are_typed_errors() {
    let mut index = HnswIndex::new(IndexConfig::new(4, Metric::Cosine)).unwrap();
    let mut s = SearchScratch::new();
    assert!(matches!(
        index.add(&[1.0, 2.0]),
        Err(HnswError::WrongDimension {
            expected: 4,
            got: 2
        })
    ));
    assert!(matches!(
        index.add(&[1.0, f32::NAN, 0.0, 0.0]),
        Err(HnswError::NonFinite { position: 1 })
    ));
    assert!(matches!(
        index.add(&[1.0, 0.0, f32::INFINITY, 0.0]),
        Err(HnswError::NonFinite { position: 2 })
    ));
    assert!(matches!(index.add(&[0.0; 4]), Err(HnswError::ZeroVector)));
    assert!(index.is_empty(), "failed adds store nothing");
    let id = index.insert(&[1.0, 0.0, 0.0, 0.0]).unwrap();
    assert!(matches!(
        index.search(&[1.0, 0.0, 0.0, 0.0], 0, 10, None, &mut s),
        Err(HnswError::ZeroK)
    ));
    assert!(matches!(
        index.search(&[1.0; 3], 1, 10, None, &mut s),
        Err(HnswError::WrongDimension { .. })
    ));
    assert!(matches!(
        index.search(&[f32::NEG_INFINITY; 4], 1, 10, None, &mut s),
        Err(HnswError::NonFinite { .. })
    ));
    assert!(matches!(
        index.exact_search(&[1.0; 4], 0, None, &mut s),
        Err(HnswError::ZeroK)
    ));
    // Deleting twice (a duplicate id) and unknown ids.
    index.delete(id).unwrap();
    assert!(matches!(
        index.delete(id),
        Err(HnswError::UnknownId { id: NodeId(0) })
    ));
    assert!(matches!(
        index.delete(NodeId(77)),
        Err(HnswError::UnknownId { .. })
    ));
    assert!(matches!(
        index.update(NodeId(77), &[1.0; 4]),
        Err(HnswError::UnknownId { .. })
    ));
    assert!(index.vector(id).is_none());
    // An update with a bad vector leaves the old point in place.
    let live = index.insert(&[0.0, 1.0, 0.0, 0.0]).unwrap();
    assert!(matches!(
        index.update(live, &[f32::NAN; 4]),
        Err(HnswError::NonFinite { .. })
    ));
    assert!(index.contains(live));
    assert_eq!(
        index
            .search(&[0.0, 1.0, 0.0, 0.0], 5, 10, None, &mut s)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn invalid_configs_are_rejected() {
    for cfg in [
        IndexConfig::new(0, Metric::L2),
        IndexConfig {
            m: 1,
            ..IndexConfig::new(4, Metric::L2)
        },
        IndexConfig {
            ef_construction: 0,
            ..IndexConfig::new(4, Metric::L2)
        },
    ] {
        assert!(matches!(
            HnswIndex::new(cfg),
            Err(HnswError::InvalidConfig { .. })
        ));
    }
}

#[test]
fn an_empty_index_returns_no_hits() {
    let index = HnswIndex::new(IndexConfig::new(4, Metric::Dot)).unwrap();
    let mut s = SearchScratch::new();
    assert!(
        index
            .search(&[1.0; 4], 3, 10, None, &mut s)
            .unwrap()
            .is_empty()
    );
    assert!(
        index
            .exact_search(&[1.0; 4], 3, None, &mut s)
            .unwrap()
            .is_empty()
    );
}
