//! Files the fuzzer found that `open` accepted and the index then crashed on (shared
//! upper lists, links in a pending slot's upper lists, a free slot listed twice): each
//! in `fuzz/regressions/` must now be refused, naming the file and the field at fault.
//!
//! This runs in a normal build, which verifies checksums. The files found with
//! checksums skipped (fuzzing builds skip them) had them rewritten with
//! `fuzz/examples/reseal.rs`, so the structural check that refuses each file here is
//! the one that refuses it under the fuzzer.

use std::path::{Path, PathBuf};

use vectron_hnsw::{Corruption, HnswError, HnswIndex};

/// The refusal pinned for each file of the folder; a file missing here fails the test.
const CASES: &[(&str, Corruption)] = &[
    (
        "overlapping-upper-lists.hnsw",
        Corruption::InvalidValue {
            field: "upper offsets",
        },
    ),
    (
        "pending-upper-lists.hnsw",
        Corruption::InvalidValue {
            field: "upper links",
        },
    ),
    (
        "repeated-free-slot.hnsw",
        Corruption::InvalidValue { field: "free list" },
    ),
];

#[test]
fn every_fuzz_regression_is_refused_for_its_fault() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for path in &files {
        let name = path.file_name().unwrap().to_str().unwrap();
        let (_, want) = CASES
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} has no pinned answer in fuzz_regressions.rs"));
        match HnswIndex::open(path) {
            Err(HnswError::Corrupt { path: p, reason }) => {
                assert_eq!(&p, path, "{name}: the error names the file");
                assert_eq!(&reason, want, "{name}");
            }
            other => panic!("{name}: expected {want:?}, got {other:?}"),
        }
    }
    assert_eq!(
        files.len(),
        CASES.len(),
        "a pinned file is missing from the folder"
    );
}
