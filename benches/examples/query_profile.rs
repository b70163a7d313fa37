//! Profiling driver: opens (or builds and saves) an index for a dataset, then runs every
//! query once at one ef, so `perf` and `valgrind --tool=callgrind` see only searches.
//!
//! usage: query_profile DATA_DIR INDEX_FILE cosine|l2|dot EF[,EF...] [none|int8] [REPEATS]
//!
//! Prints, per ef, recall@10 and queries per second of wall time and of this thread's
//! CPU time (the latter stays meaningful while other processes share the cores).

use std::path::Path;
use std::time::Instant;

use vectron_hnsw::{HnswIndex, IndexConfig, Metric, Quantization, SearchScratch};

fn fvecs(path: &Path) -> Vec<Vec<f32>> {
    let bytes = std::fs::read(path).expect("readable fvecs");
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

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        anyhow::bail!("usage: query_profile DATA_DIR INDEX_FILE METRIC EF [none|int8] [REPEATS]");
    }
    let data = Path::new(&args[1]);
    let file = Path::new(&args[2]);
    let metric: Metric = args[3].parse()?;
    let efs: Vec<usize> = args[4]
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let quantization = if args.get(5).map(String::as_str) == Some("int8") {
        Quantization::Int8
    } else {
        Quantization::None
    };
    let repeats: usize = args.get(6).map_or(Ok(1), |r| r.parse())?;
    let queries = fvecs(&data.join("query.fvecs"));
    let truth: Vec<Vec<u32>> = fvecs(&data.join("groundtruth.ivecs"))
        .into_iter()
        .map(|r| r.into_iter().take(10).map(f32::to_bits).collect())
        .collect();
    let index = if file.exists() {
        let t = Instant::now();
        let index = HnswIndex::open(file)?;
        println!(
            "opened {} in {:.3} s",
            file.display(),
            t.elapsed().as_secs_f64()
        );
        index
    } else {
        let base = fvecs(&data.join("base.fvecs"));
        let mut index = HnswIndex::new(IndexConfig {
            quantization,
            ..IndexConfig::new(base[0].len(), metric)
        })?;
        for v in &base {
            index.insert(v)?;
        }
        index.save(file)?;
        index
    };
    let mut scratch = SearchScratch::new();
    for ef in efs {
        let mut hits = 0usize;
        let t = Instant::now();
        let c = cpu_seconds();
        for _ in 0..repeats {
            hits = 0;
            for (q, t) in queries.iter().zip(&truth) {
                hits += index
                    .search(q, 10, ef, None, &mut scratch)?
                    .iter()
                    .filter(|h| t.contains(&h.id.0))
                    .count();
            }
        }
        let cpu = cpu_seconds() - c;
        let secs = t.elapsed().as_secs_f64();
        let n = (queries.len() * repeats) as f64;
        println!(
            "ef {ef}: recall {:.4}, {:.0} qps wall, {:.0} qps cpu",
            hits as f64 / (queries.len() * 10) as f64,
            n / secs,
            n / cpu
        );
    }
    Ok(())
}

/// CPU time of this thread, in seconds.
fn cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}
