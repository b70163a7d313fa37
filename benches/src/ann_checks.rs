//! `vectron-bench ann-checks`: the index's non-speed targets on a dataset, as JSON lines
//! (`"check"` names each): memory per vector, save/open time against build time, recall
//! after deleting a fraction of points against a rebuild, and recall under filters
//! against exact filtered ground truth.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use serde_json::json;
use vectron_hnsw::{Filter, HnswIndex, IdFilter, IndexConfig, Metric, NodeId, SearchScratch};

use crate::ann::{QuantArg, build};
use crate::dataset::Dataset;

/// A check to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Check {
    /// Bytes per vector against 4·dim + 8·m + 32.
    Memory,
    /// Save and open time against build time; results identical after open.
    Persist,
    /// Recall after deleting points against an index built from the rest.
    Deletes,
    /// Recall under random filters against exact filtered ground truth.
    Filters,
}

/// Arguments of `ann-checks`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Directory holding base.fvecs, query.fvecs and groundtruth.ivecs.
    data: PathBuf,
    /// cosine, l2 or dot.
    #[arg(long)]
    metric: Metric,
    #[arg(long, default_value_t = 16)]
    m: usize,
    #[arg(long, default_value_t = 200)]
    ef_construction: usize,
    /// Search ef values, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128,256")]
    ef: Vec<usize>,
    #[arg(long, default_value_t = 10)]
    k: usize,
    #[arg(long, value_enum, default_value_t = QuantArg::None)]
    quantization: QuantArg,
    /// Checks to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "memory,persist,deletes,filters"
    )]
    checks: Vec<Check>,
    /// Fraction of points deleted by the deletes check.
    #[arg(long, default_value_t = 0.2)]
    delete_fraction: f64,
    /// Fractions of points a filter keeps, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.01")]
    filter_fractions: Vec<f64>,
    /// Where the persist check writes the index (default: the temporary directory).
    #[arg(long)]
    save_to: Option<PathBuf>,
    /// Open this saved index instead of building one (its configuration wins; the
    /// persist check then reports no build time).
    #[arg(long)]
    index: Option<PathBuf>,
    /// Seed of the level generator and of the random deletes and filters.
    #[arg(long, default_value_t = 100)]
    seed: u64,
}

fn line_open(path: &std::path::Path, open_s: f64) {
    println!(
        "{}",
        json!({"check": "open", "file": path.display().to_string(), "open_s": open_s})
    );
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Deterministic pseudo-random choice of `fraction` of ids.
fn chosen(seed: u64, salt: u64, id: usize, fraction: f64) -> bool {
    let u = (mix(seed ^ salt.wrapping_mul(0x1000_0000_01B3) ^ id as u64) >> 11) as f64;
    u / ((1u64 << 53) as f64) < fraction
}

/// Recall@k and qps of one ef over every query; `truth[q]` are row numbers and `row`
/// maps a returned id to its row.
fn recall(
    index: &HnswIndex,
    data: &Dataset,
    truth: &[Vec<u32>],
    ef: usize,
    k: usize,
    filter: Option<&dyn Filter>,
    row: &dyn Fn(NodeId) -> u32,
) -> anyhow::Result<(f64, f64)> {
    let mut scratch = SearchScratch::new();
    let (mut hits, mut want) = (0usize, 0usize);
    let t = Instant::now();
    for (i, t) in truth.iter().enumerate() {
        let res = index.search(data.query.row(i), k, ef, filter, &mut scratch)?;
        hits += res.iter().filter(|h| t.contains(&row(h.id))).count();
        want += t.len();
    }
    let qps = truth.len() as f64 / t.elapsed().as_secs_f64();
    Ok((
        if want == 0 {
            1.0
        } else {
            hits as f64 / want as f64
        },
        qps,
    ))
}

/// Exact top-k rows of every query (by brute force over the index's live points).
fn exact_truth(
    index: &HnswIndex,
    data: &Dataset,
    k: usize,
    filter: Option<&dyn Filter>,
    row: &dyn Fn(NodeId) -> u32,
) -> anyhow::Result<Vec<Vec<u32>>> {
    let mut scratch = SearchScratch::new();
    (0..data.query.len())
        .map(|i| {
            Ok(index
                .exact_search(data.query.row(i), k, filter, &mut scratch)?
                .iter()
                .map(|h| row(h.id))
                .collect())
        })
        .collect()
}

pub(crate) fn run(a: &Args) -> anyhow::Result<()> {
    if a.k == 0 {
        bail!("--k must be at least 1");
    }
    let data = Dataset::load(&a.data)?;
    let n = data.base.len();
    let cfg = IndexConfig {
        dim: data.base.dim,
        metric: a.metric,
        m: a.m,
        ef_construction: a.ef_construction,
        quantization: a.quantization.into(),
        seed: a.seed,
    };
    let (mut index, build_s) = match &a.index {
        Some(path) => {
            let t = Instant::now();
            let index = HnswIndex::open(path)?;
            line_open(path, t.elapsed().as_secs_f64());
            if index.dim() != cfg.dim || index.len() != n {
                bail!(
                    "{} holds {} points of dimension {}, the dataset {n} of {}",
                    path.display(),
                    index.len(),
                    index.dim(),
                    cfg.dim
                );
            }
            (index, f64::NAN)
        }
        None => build(&data, cfg)?,
    };
    let cfg = index.config().clone();
    let base = json!({"dataset": data.name, "n": n, "dim": cfg.dim, "metric": cfg.metric.to_string(),
        "m": cfg.m, "ef_construction": cfg.ef_construction, "quantization": format!("{:?}", cfg.quantization).to_lowercase()});
    let line = |mut v: serde_json::Value| {
        if let (Some(o), Some(b)) = (v.as_object_mut(), base.as_object()) {
            for (k, x) in b {
                o.entry(k.clone()).or_insert(x.clone());
            }
        }
        println!("{v}");
    };
    if a.index.is_none() {
        line(json!({"check": "build", "build_s": build_s}));
    }
    let identity = |id: NodeId| id.0;

    if a.checks.contains(&Check::Memory) {
        let u = index.memory_usage();
        let per = |b: usize| b as f64 / n as f64;
        let budget = (4 * cfg.dim + 8 * cfg.m + 32) as f64;
        line(
            json!({"check": "memory", "bytes_per_vector": per(u.total()),
            "links_per_vector": per(u.links), "vectors_per_vector": per(u.vectors),
            "codes_per_vector": per(u.codes), "metadata_per_vector": per(u.metadata),
            "held_without_f32_per_vector": per(u.total() - if u.codes > 0 { u.vectors } else { 0 }),
            "budget_4dim_8m_32": budget, "ratio_to_budget": per(u.total()) / budget}),
        );
    }

    if a.checks.contains(&Check::Persist) {
        let path = a.save_to.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!(
                "vectron-bench-{}-{}.hnsw",
                data.name,
                std::process::id()
            ))
        });
        let t = Instant::now();
        index.save(&path)?;
        let save_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let opened = HnswIndex::open(&path)?;
        let open_s = t.elapsed().as_secs_f64();
        let (mut s1, mut s2) = (SearchScratch::new(), SearchScratch::new());
        let mut same = true;
        for i in 0..data.query.len().min(100) {
            let q = data.query.row(i);
            same &= index.search(q, a.k, 64, None, &mut s1)?
                == opened.search(q, a.k, 64, None, &mut s2)?;
        }
        let file_bytes = std::fs::metadata(&path)?.len();
        drop(opened);
        if a.save_to.is_none() {
            std::fs::remove_file(&path)?;
        }
        line(
            json!({"check": "persist", "build_s": build_s, "save_s": save_s, "open_s": open_s,
            "build_over_open": if build_s.is_nan() { serde_json::Value::Null } else { json!(build_s / open_s) }, "file_bytes": file_bytes, "same_results": same}),
        );
    }

    if a.checks.contains(&Check::Filters) {
        for (salt, &frac) in a.filter_fractions.iter().enumerate() {
            let ids: Vec<NodeId> = (0..n)
                .filter(|&i| chosen(a.seed, 1 + salt as u64, i, frac))
                .map(|i| NodeId(i as u32))
                .collect();
            let hinted = IdFilter::new(ids);
            let truth = exact_truth(&index, &data, a.k, Some(&hinted), &identity)?;
            // The same predicate without hints: the planner cannot switch to a scan.
            let plain = |id: NodeId| hinted.matches(id);
            for &ef in &a.ef {
                let (r_hint, q_hint) =
                    recall(&index, &data, &truth, ef, a.k, Some(&hinted), &identity)?;
                let (r_graph, q_graph) =
                    recall(&index, &data, &truth, ef, a.k, Some(&plain), &identity)?;
                line(
                    json!({"check": "filter", "fraction": frac, "matching": hinted.len(), "ef": ef,
                    "k": a.k, "recall_planned": r_hint, "qps_planned": q_hint,
                    "recall_graph_only": r_graph, "qps_graph_only": q_graph}),
                );
            }
        }
    }

    if a.checks.contains(&Check::Deletes) {
        let gone: Vec<usize> = (0..n)
            .filter(|&i| chosen(a.seed, 1000, i, a.delete_fraction))
            .collect();
        for &i in &gone {
            index.delete(NodeId(i as u32))?;
        }
        let truth = exact_truth(&index, &data, a.k, None, &identity)?;
        let tomb: Vec<(f64, f64)> =
            a.ef.iter()
                .map(|&ef| recall(&index, &data, &truth, ef, a.k, None, &identity))
                .collect::<Result<_, _>>()?;
        let t = Instant::now();
        let freed = index.reclaim_deleted();
        let reclaim_s = t.elapsed().as_secs_f64();
        if let Err(e) = index.check_invariants() {
            bail!("graph invariant broken after reclaim: {e}");
        }
        let keep: Vec<usize> = {
            let mut g = gone.iter().peekable();
            (0..n)
                .filter(|i| {
                    if g.peek() == Some(&i) {
                        g.next();
                        false
                    } else {
                        true
                    }
                })
                .collect()
        };
        let mut fresh = HnswIndex::new(cfg)?;
        for &i in &keep {
            fresh.insert(data.base.row(i))?;
        }
        let fresh_row = |id: NodeId| keep[id.0 as usize] as u32;
        for (j, &ef) in a.ef.iter().enumerate() {
            let (r_del, q_del) = recall(&index, &data, &truth, ef, a.k, None, &identity)?;
            let (r_fresh, q_fresh) = recall(&fresh, &data, &truth, ef, a.k, None, &fresh_row)?;
            line(
                json!({"check": "deletes", "fraction": a.delete_fraction, "deleted": freed, "reclaim_s": reclaim_s,
                "ef": ef, "k": a.k, "recall_tombstoned": tomb[j].0, "recall_reclaimed": r_del,
                "recall_rebuilt": r_fresh, "rebuilt_minus_reclaimed": r_fresh - r_del,
                "qps_tombstoned": tomb[j].1, "qps_reclaimed": q_del, "qps_rebuilt": q_fresh}),
            );
        }
    }
    Ok(())
}
