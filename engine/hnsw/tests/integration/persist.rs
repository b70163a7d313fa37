//! Save / open round trips, and damaged files give errors naming the file (never a
//! panic): truncation at every section boundary and many offsets, single bit flips,
//! random byte mutations.

use vectron_hnsw::{Corruption, HnswError, HnswIndex, Metric, NodeId, Quantization, SearchScratch};

use crate::{build, random_vectors};

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("vectron-hnsw-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn round_trip_then_keep_writing() {
    for (quantization, metric) in [
        (Quantization::None, Metric::Cosine),
        (Quantization::Int8, Metric::L2),
    ] {
        let data = random_vectors(1_300, 20, 31);
        let mut index = build(&data[..1_200], metric, quantization, 8);
        index.delete(NodeId(3)).unwrap();
        index.add(&data[1_200]).unwrap(); // pending at save time
        let path = temp(&format!("rt-{quantization:?}.hnsw"));
        index.save(&path).unwrap();
        let mut opened = HnswIndex::open(&path).unwrap();
        assert!(opened.is_mapped());
        assert_eq!(
            (opened.len(), opened.pending_len(), opened.deleted_len()),
            (1_200, 1, 1)
        );
        let (mut a, mut b) = (SearchScratch::new(), SearchScratch::new());
        for q in random_vectors(25, 20, 32) {
            assert_eq!(
                index.search(&q, 10, 40, None, &mut a).unwrap(),
                opened.search(&q, 10, 40, None, &mut b).unwrap()
            );
        }
        assert_eq!(index.vector(NodeId(10)), opened.vector(NodeId(10)));
        // The opened index accepts links, deletes, reclaim and adds (which grow it
        // out of the mapping); the file is untouched.
        let before = std::fs::read(&path).unwrap();
        opened.link_pending(10);
        opened.delete(NodeId(4)).unwrap();
        opened.reclaim_deleted();
        for v in &data[1_201..] {
            opened.insert(v).unwrap();
        }
        opened.check_invariants().unwrap();
        assert_eq!(opened.len(), 1_298);
        let hit = opened.search(&data[1_250], 1, 40, None, &mut b).unwrap()[0];
        assert!(opened.vector(hit.id).is_some());
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "copy-on-write: the file never changes"
        );
        std::fs::remove_file(&path).unwrap();
    }
}

/// Files written by format version 1 (4-byte level-0 ids; int8 codes inside the blocks)
/// open, answer like the same index built now (equal seeds and inputs give equal graphs),
/// keep accepting writes, and save as the current version.
#[test]
fn version_1_files_still_open() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    for (name, metric, quantization, n) in [
        (
            "v1-int8-cosine.hnsw",
            Metric::Cosine,
            Quantization::Int8,
            1_100,
        ),
        ("v1-f32-l2.hnsw", Metric::L2, Quantization::None, 200),
    ] {
        let data = random_vectors(n + 1, 16, 51);
        let mut built = build(&data[..n], metric, quantization, 4);
        built.delete(NodeId(2)).unwrap();
        built.add(&data[n]).unwrap();
        let mut opened = HnswIndex::open(dir.join(name)).unwrap();
        opened.check_invariants().unwrap();
        assert_eq!(
            (opened.len(), opened.pending_len(), opened.deleted_len()),
            (built.len(), 1, 1),
            "{name}"
        );
        let queries = random_vectors(25, 16, 52);
        let answers = |index: &HnswIndex| -> Vec<Vec<vectron_hnsw::SearchHit>> {
            let mut s = SearchScratch::new();
            queries
                .iter()
                .map(|q| index.search(q, 10, 40, None, &mut s).unwrap().to_vec())
                .collect()
        };
        assert_eq!(answers(&opened), answers(&built), "{name}");
        assert_eq!(opened.vector(NodeId(10)), built.vector(NodeId(10)));
        for index in [&mut opened, &mut built] {
            index.link_pending(usize::MAX);
            index.reclaim_deleted();
            index.insert(&random_vectors(1, 16, 53)[0]).unwrap();
        }
        opened.check_invariants().unwrap();
        assert_eq!(answers(&opened), answers(&built), "{name} after writes");
        let path = temp(&format!("resaved-{name}"));
        opened.save(&path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]),
            vectron_hnsw::FORMAT_VERSION
        );
        assert_eq!(answers(&HnswIndex::open(&path).unwrap()), answers(&built));
        std::fs::remove_file(&path).unwrap();
    }
}

fn open_err(path: &std::path::Path) -> HnswError {
    match HnswIndex::open(path) {
        Ok(_) => panic!("damaged file {} opened", path.display()),
        Err(e) => e,
    }
}

#[test]
fn truncated_and_corrupt_files_are_errors_naming_the_file() {
    let data = random_vectors(300, 10, 41);
    let index = build(&data, Metric::Dot, Quantization::Int8, 4);
    let good = temp("good.hnsw");
    index.save(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let bad = temp("bad.hnsw");
    // Truncation anywhere.
    for len in (0..bytes.len())
        .step_by(997)
        .chain([bytes.len() - 1, 4095, 4096, 8])
    {
        std::fs::write(&bad, &bytes[..len]).unwrap();
        let e = open_err(&bad);
        match &e {
            HnswError::Corrupt { path, .. } => assert_eq!(path, &bad),
            other => panic!("truncated to {len}: unexpected {other:?}"),
        }
        assert!(e.to_string().contains("bad.hnsw"), "{e}");
    }
    // Single bit flips across the whole file are all caught by checksums.
    let mut seed = 7u64;
    for _ in 0..300 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let mut b = bytes.clone();
        let at = (seed >> 20) as usize % b.len();
        b[at] ^= 1 << ((seed >> 8) % 8);
        std::fs::write(&bad, &b).unwrap();
        if let Ok(i) = HnswIndex::open(&bad) {
            // Only zero padding between sections is unchecked; such a file is valid.
            assert_eq!(
                i.len(),
                index.len(),
                "flip at {at} opened with other contents"
            );
        }
    }
    // Wrong magic and version.
    let mut b = bytes.clone();
    b[0] = b'X';
    std::fs::write(&bad, &b).unwrap();
    assert!(matches!(
        open_err(&bad),
        HnswError::Corrupt {
            reason: Corruption::BadMagic,
            ..
        }
    ));
    let mut b = bytes;
    b[8] = 9;
    std::fs::write(&bad, &b).unwrap();
    assert!(matches!(
        open_err(&bad),
        HnswError::Corrupt {
            reason: Corruption::UnsupportedVersion { found: 9, .. },
            ..
        }
    ));
    // A missing file is an I/O error naming it.
    let missing = temp("missing.hnsw");
    assert!(
        matches!(HnswIndex::open(&missing), Err(HnswError::Io { path, .. }) if path == missing)
    );
    std::fs::remove_file(&good).unwrap();
    std::fs::remove_file(&bad).unwrap();
}
