//! Integration tests of the index, on the repository's wiki-minilm-2k fixture and on
//! random data.

mod bad_input;
mod deletes;
mod filters;
mod fuzz_regressions;
mod graph;
mod pending;
mod persist;
mod recall;

use std::path::Path;

use vectron_hnsw::{HnswIndex, IndexConfig, Metric, NodeId, Quantization, SearchScratch};

/// Rows of an fvecs or ivecs file as raw 4-byte values.
fn read_vecs(path: &Path) -> Vec<Vec<[u8; 4]>> {
    let bytes = std::fs::read(path).expect("fixture is in the repository");
    let dim = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    bytes
        .chunks_exact(4 + 4 * dim)
        .map(|r| {
            r[4..]
                .chunks_exact(4)
                .map(|c| [c[0], c[1], c[2], c[3]])
                .collect()
        })
        .collect()
}

/// The fixture: 2,000 base vectors, 200 queries (384-d, cosine), exact top-100.
pub(crate) struct Fixture {
    pub(crate) base: Vec<Vec<f32>>,
    pub(crate) queries: Vec<Vec<f32>>,
    pub(crate) truth: Vec<Vec<u32>>,
}

pub(crate) fn fixture() -> Fixture {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/wiki-minilm-2k");
    let f = |name: &str| -> Vec<Vec<f32>> {
        read_vecs(&dir.join(name))
            .into_iter()
            .map(|r| r.into_iter().map(f32::from_le_bytes).collect())
            .collect()
    };
    let truth = read_vecs(&dir.join("groundtruth.ivecs"))
        .into_iter()
        .map(|r| r.into_iter().map(u32::from_le_bytes).collect())
        .collect();
    Fixture {
        base: f("base.fvecs"),
        queries: f("query.fvecs"),
        truth,
    }
}

/// Seeded uniform vectors in [-1, 1).
pub(crate) fn random_vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            (0..dim)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                })
                .collect()
        })
        .collect()
}

pub(crate) fn build(
    base: &[Vec<f32>],
    metric: Metric,
    quantization: Quantization,
    m: usize,
) -> HnswIndex {
    let cfg = IndexConfig {
        m,
        ef_construction: 100,
        quantization,
        ..IndexConfig::new(base[0].len(), metric)
    };
    let mut index = HnswIndex::new(cfg).unwrap();
    for v in base {
        index.insert(v).unwrap();
    }
    index
}

/// Mean recall@k of `index` against its own exact search.
pub(crate) fn self_recall(index: &HnswIndex, queries: &[Vec<f32>], k: usize, ef: usize) -> f64 {
    let mut s = SearchScratch::new();
    let mut hits = 0;
    let mut want = 0;
    for q in queries {
        let truth: Vec<NodeId> = index
            .exact_search(q, k, None, &mut s)
            .unwrap()
            .iter()
            .map(|h| h.id)
            .collect();
        let got = index.search(q, k, ef, None, &mut s).unwrap();
        hits += got.iter().filter(|h| truth.contains(&h.id)).count();
        want += truth.len();
    }
    hits as f64 / want as f64
}
