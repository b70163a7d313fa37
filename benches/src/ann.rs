//! `vectron-bench ann`: the ANN benchmark, run exactly like `hnswlib_baseline.py`.
//!
//! Build single-threaded (timed), then for every ef: 100 warm-up queries, then
//! `passes` timed passes over all queries, one query at a time on one thread. Recall is
//! recall@k of the last pass against the first k ground-truth ids; qps is 1 / mean
//! latency; p50/p99 use linear interpolation like numpy.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use vectron_hnsw::{HnswIndex, IndexConfig, Metric, Quantization, SearchScratch};

use crate::dataset::Dataset;

/// Quantization as a command-line value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum QuantArg {
    /// f32 traversal.
    None,
    /// int8 traversal with f32 rescoring.
    Int8,
}

impl From<QuantArg> for Quantization {
    fn from(q: QuantArg) -> Self {
        match q {
            QuantArg::None => Quantization::None,
            QuantArg::Int8 => Quantization::Int8,
        }
    }
}

/// Arguments of `ann` (the same as `hnswlib_baseline.py`, plus `--quantization`).
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Directory holding base.fvecs, query.fvecs and groundtruth.ivecs.
    pub(crate) data: PathBuf,
    /// cosine, l2 or dot.
    #[arg(long)]
    pub(crate) metric: Metric,
    /// HNSW m (level 0 keeps 2m).
    #[arg(long, default_value_t = 16)]
    pub(crate) m: usize,
    /// Candidate list size while building.
    #[arg(long, default_value_t = 200)]
    pub(crate) ef_construction: usize,
    /// Search ef values, comma-separated (each raised to k).
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128,256")]
    pub(crate) ef: Vec<usize>,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    pub(crate) k: usize,
    /// Traversal on f32 vectors or int8 codes.
    #[arg(long, value_enum, default_value_t = QuantArg::None)]
    pub(crate) quantization: QuantArg,
    /// Build threads: an index belongs to one core, so only 1 is supported.
    #[arg(long, default_value_t = 1)]
    pub(crate) build_threads: usize,
    /// Timed passes over the queries per ef.
    #[arg(long, default_value_t = 3)]
    pub(crate) passes: usize,
    /// Seed of the level generator.
    #[arg(long, default_value_t = 100)]
    pub(crate) seed: u64,
}

/// Builds the index over every base vector, returning it and the build time in seconds.
pub(crate) fn build(data: &Dataset, cfg: IndexConfig) -> anyhow::Result<(HnswIndex, f64)> {
    let mut index = HnswIndex::new(cfg)?;
    let t0 = Instant::now();
    for i in 0..data.base.len() {
        index
            .insert(data.base.row(i))
            .with_context(|| format!("inserting base row {i}"))?;
    }
    Ok((index, t0.elapsed().as_secs_f64()))
}

/// numpy's default (linear) percentile of sorted values.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// Recall@k, qps and latency percentiles of one ef.
#[derive(Debug)]
pub(crate) struct Sweep {
    pub(crate) recall: f64,
    pub(crate) qps: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
}

/// Runs the timed query passes of one ef.
pub(crate) fn sweep(
    index: &HnswIndex,
    data: &Dataset,
    ef: usize,
    k: usize,
    passes: usize,
) -> anyhow::Result<Sweep> {
    let mut scratch = SearchScratch::new();
    let ef = ef.max(k);
    for i in 0..data.query.len().min(100) {
        index.search(data.query.row(i), k, ef, None, &mut scratch)?;
    }
    let nq = data.query.len();
    let mut lat = Vec::with_capacity(nq * passes);
    let mut hits = 0usize;
    for _ in 0..passes {
        hits = 0;
        for i in 0..nq {
            let t = Instant::now();
            let res = index.search(data.query.row(i), k, ef, None, &mut scratch)?;
            lat.push(t.elapsed().as_nanos() as f64 / 1e3);
            let truth = &data.truth.row(i)[..k.min(data.truth.dim)];
            hits += res
                .iter()
                .filter(|h| truth.contains(&(h.id.0 as i32)))
                .count();
        }
    }
    let mean = lat.iter().sum::<f64>() / lat.len() as f64;
    lat.sort_by(f64::total_cmp);
    Ok(Sweep {
        recall: hits as f64 / (nq * k) as f64,
        qps: 1e6 / mean,
        p50_us: percentile(&lat, 50.0),
        p99_us: percentile(&lat, 99.0),
    })
}

pub(crate) fn run(a: &Args) -> anyhow::Result<()> {
    if a.build_threads != 1 {
        bail!(
            "--build-threads {}: an index is owned by one core; only 1 is supported",
            a.build_threads
        );
    }
    if a.k == 0 || a.passes == 0 {
        bail!("--k and --passes must be at least 1");
    }
    let data = Dataset::load(&a.data)?;
    let cfg = IndexConfig {
        dim: data.base.dim,
        metric: a.metric,
        m: a.m,
        ef_construction: a.ef_construction,
        quantization: a.quantization.into(),
        seed: a.seed,
    };
    let (index, build_s) = build(&data, cfg)?;
    for &ef in &a.ef {
        let s = sweep(&index, &data, ef, a.k, a.passes)?;
        println!(
            "{{\"engine\": \"vectron\", \"dataset\": {}, \"metric\": \"{}\", \"n\": {}, \"dim\": {}, \"m\": {}, \
             \"ef_construction\": {}, \"build_s\": {}, \"build_threads\": 1, \"ef\": {}, \"k\": {}, \
             \"recall\": {}, \"qps\": {}, \"p50_us\": {}, \"p99_us\": {}, \"query_threads\": 1}}",
            serde_json::Value::from(data.name.as_str()),
            a.metric,
            data.base.len(),
            data.base.dim,
            a.m,
            a.ef_construction,
            serde_json::Value::from((build_s * 1000.0).round() / 1000.0),
            ef,
            a.k,
            serde_json::Value::from(s.recall),
            serde_json::Value::from(s.qps),
            serde_json::Value::from(s.p50_us),
            serde_json::Value::from(s.p99_us),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 4.0);
        assert!((percentile(&v, 99.0) - 3.97).abs() < 1e-12);
    }
}
