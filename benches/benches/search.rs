//! Search on the 2,000-point wiki-minilm fixture (384-d cosine, fixed seed): graph
//! search with f32 and int8 traversal at ef 64, and exact search.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use vectron_hnsw::{HnswIndex, IndexConfig, Metric, Quantization, SearchScratch};

fn fvecs(path: &Path) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).expect("fixture is in the repository");
    let dim = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    bytes
        .chunks_exact(4 + 4 * dim)
        .map(|r| {
            r[4..]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
        .collect()
}

fn search(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/wiki-minilm-2k");
    let base = fvecs(&dir.join("base.fvecs"));
    let queries = fvecs(&dir.join("query.fvecs"));
    for quantization in [Quantization::None, Quantization::Int8] {
        let cfg = IndexConfig {
            quantization,
            ..IndexConfig::new(base[0].len(), Metric::Cosine)
        };
        let mut index = HnswIndex::new(cfg).expect("valid config");
        for v in &base {
            index.insert(v).expect("valid vector");
        }
        let mut scratch = SearchScratch::new();
        let mut i = 0;
        c.bench_function(
            &format!("search_{quantization:?}_ef64_k10").to_lowercase(),
            |b| {
                b.iter(|| {
                    i = (i + 1) % queries.len();
                    black_box(
                        index
                            .search(&queries[i], 10, 64, None, &mut scratch)
                            .expect("valid query")
                            .len(),
                    )
                });
            },
        );
        if quantization == Quantization::None {
            c.bench_function("exact_k10", |b| {
                b.iter(|| {
                    i = (i + 1) % queries.len();
                    black_box(
                        index
                            .exact_search(&queries[i], 10, None, &mut scratch)
                            .expect("valid query")
                            .len(),
                    )
                });
            });
        }
    }
}

criterion_group!(benches, search);
criterion_main!(benches);
