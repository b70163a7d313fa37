//! Distance kernels: the index's kernels called one at a time through the public
//! [`DistanceKernel`] (dispatched per call), simsimd (FFI, its own dispatch) and the
//! scalar reference, on cache-resident vectors.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use simsimd::SpatialSimilarity;
use vectron_hnsw::{DistanceKernel, Metric};

fn vectors(dim: usize, n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            (0..dim)
                .map(|_| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
                })
                .collect()
        })
        .collect()
}

fn kernels(c: &mut Criterion) {
    for dim in [128usize, 384, 1536] {
        let vs = vectors(dim, 256, 42);
        let q = vectors(dim, 1, 7).remove(0);
        let mut g = c.benchmark_group(format!("dot_f32_{dim}"));
        let k = DistanceKernel::new(Metric::Dot, dim);
        g.bench_function("vectron", |b| {
            b.iter(|| {
                vs.iter()
                    .map(|v| k.similarity(black_box(&q), v).unwrap_or(0.0))
                    .sum::<f32>()
            });
        });
        g.bench_function("simsimd", |b| {
            b.iter(|| {
                vs.iter()
                    .map(|v| f32::dot(black_box(&q), v).unwrap_or(0.0) as f32)
                    .sum::<f32>()
            });
        });
        g.bench_function("scalar_iter_sum", |b| {
            b.iter(|| {
                vs.iter()
                    .map(|v| black_box(&q).iter().zip(v).map(|(a, b)| a * b).sum::<f32>())
                    .sum::<f32>()
            });
        });
        g.finish();
        let mut g = c.benchmark_group(format!("l2_f32_{dim}"));
        let k = DistanceKernel::new(Metric::L2, dim);
        g.bench_function("vectron", |b| {
            b.iter(|| {
                vs.iter()
                    .map(|v| k.similarity(black_box(&q), v).unwrap_or(0.0))
                    .sum::<f32>()
            });
        });
        g.bench_function("simsimd", |b| {
            b.iter(|| {
                vs.iter()
                    .map(|v| f32::l2sq(black_box(&q), v).unwrap_or(0.0) as f32)
                    .sum::<f32>()
            });
        });
        g.finish();
    }
}

criterion_group!(benches, kernels);
criterion_main!(benches);
