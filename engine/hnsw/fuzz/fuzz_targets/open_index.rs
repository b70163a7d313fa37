//! `open_index`: arbitrary bytes as an index file.
//!
//! The input is written to one scratch file and opened with [`HnswIndex::open`]. An
//! error is a correct answer to a damaged file; a panic, an abort, a sanitizer report
//! or a hang is a bug. When the file is accepted, the index is used the way a shard
//! uses one it has just opened, through the public API only: invariants check,
//! approximate and exact search, vector reads, linking, an insert, a delete, a reclaim,
//! then save and open again. The file layout is deliberately not known here.
#![no_main]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vectron_hnsw::{HnswError, HnswIndex, NodeId, SearchScratch};

const K: usize = 10;
const EF: usize = 32;
/// Pending points linked per input: a shard links in small batches between searches,
/// and it bounds the work one input can ask for.
const LINK_BATCH: usize = 64;

/// The two files every input reuses, in a directory of this process.
struct Scratch {
    input: PathBuf,
    saved: PathBuf,
}

fn scratch() -> &'static Scratch {
    static SCRATCH: OnceLock<Scratch> = OnceLock::new();
    SCRATCH.get_or_init(|| {
        // tmpfs keeps `save`'s fsyncs from dominating an execution.
        let base = std::env::var_os("VECTRON_FUZZ_DIR")
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
            .unwrap_or_else(std::env::temp_dir);
        let dir = base.join(format!("vectron-fuzz-open-index-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        Scratch {
            input: dir.join("input.hnsw"),
            saved: dir.join("saved.hnsw"),
        }
    })
}

/// A finite vector with a non-zero norm: valid for every metric.
fn vector(dim: usize, salt: usize) -> Vec<f32> {
    (0..dim)
        .map(|i| 0.5 + ((i * 7 + salt * 3) % 13) as f32 / 13.0)
        .collect()
}

/// Searches that a valid query makes must succeed and return live points only.
fn searches(index: &HnswIndex, query: &[f32], scratch: &mut SearchScratch) -> Option<NodeId> {
    let hits = index
        .search(query, K, EF, None, scratch)
        .expect("a valid query on an opened index");
    assert!(
        hits.len() <= K.min(index.len()),
        "more hits than asked or live"
    );
    assert!(
        hits.iter().all(|h| index.contains(h.id)),
        "a hit that is not live"
    );
    let first = hits.first().map(|h| h.id);
    let exact = index
        .exact_search(query, K, None, scratch)
        .expect("a valid exact query on an opened index");
    assert_eq!(
        exact.len(),
        K.min(index.len()),
        "exact search misses live points"
    );
    assert!(
        exact.iter().all(|h| index.contains(h.id)),
        "an exact hit that is not live"
    );
    first
}

fn exercise(mut index: HnswIndex, saved: &Path) {
    // Open promises memory safety, not every graph-quality property (reachability of
    // every live point, say): a violation here is not a crash.
    let _ = black_box(index.check_invariants());
    let dim = index.dim();
    let mut scratch = SearchScratch::new();
    let query = vector(dim, 1);
    let hit = searches(&index, &query, &mut scratch);

    let bound = index.id_bound();
    let probes = [
        0,
        1,
        bound / 2,
        bound.saturating_sub(1),
        bound,
        u32::MAX as usize,
    ];
    for id in probes {
        let id = NodeId(u32::try_from(id).unwrap_or(u32::MAX));
        if let Some(v) = index.vector(id) {
            assert_eq!(v.len(), dim, "vector of {id} has the wrong length");
            black_box(v.iter().sum::<f32>());
        }
    }

    index.link_pending(LINK_BATCH);
    let before = index.len();
    match index.insert(&vector(dim, 2)) {
        Ok(id) => {
            assert!(index.contains(id), "an inserted point is not live");
            assert_eq!(index.len(), before + 1, "insert did not count the point");
        }
        // Resource limits are answers; anything else about a valid vector is a bug.
        Err(HnswError::CapacityExceeded { .. } | HnswError::Io { .. }) => {}
        Err(e) => panic!("insert of a valid vector failed: {e}"),
    }
    if let Some(id) = hit {
        index.delete(id).expect("delete a point search returned");
    }
    index.reclaim_deleted();
    searches(&index, &query, &mut scratch);

    index.save(saved).expect("save an opened index");
    let reopened = HnswIndex::open(saved).expect("open what save wrote");
    assert_eq!(reopened.dim(), dim);
    assert_eq!(
        reopened.len(),
        index.len(),
        "live count changed across save"
    );
    assert_eq!(reopened.pending_len(), index.pending_len());
    assert_eq!(reopened.deleted_len(), index.deleted_len());
    searches(&reopened, &query, &mut scratch);
}

fuzz_target!(|data: &[u8]| {
    let s = scratch();
    std::fs::write(&s.input, data).expect("write the input file");
    if let Ok(index) = HnswIndex::open(&s.input) {
        exercise(index, &s.saved);
    }
});
