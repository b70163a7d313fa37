//! `vectron-bench core`: drives a running worker's cores directly over gRPC.
//!
//! It opens a shard on every given core, ingests `base.fvecs` with one client stream
//! per shard (points spread by id hash, as the gateway spreads them), waits until every
//! point is indexed, then runs a closed-loop search load for `--seconds`. One JSON line
//! on stdout.
//!
//! - `--layout spread` (default): one collection split into one shard per core; a
//!   query fans out to every core and the top-k lists are merged, as the gateway does.
//! - `--layout replicate`: every core holds the whole dataset in a collection of its
//!   own; each query goes to one core, round robin. This measures how search throughput
//!   scales with cores when nothing is shared between them.
//!
//! While ingesting, one search at a time runs against the cores; its p99 is reported
//! beside the idle p99, to show what bulk loads do to search latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use tonic::transport::Channel;
use vectron_proto::core::v1::core_service_client::CoreServiceClient;
use vectron_proto::core::v1::shard_admin_client::ShardAdminClient;
use vectron_proto::core::v1::{
    OpenShardRequest, Point, SearchRequest, ShardAssignment, ShardRef, StatsRequest, UpsertRequest,
};
use vectron_proto::hashing::ShardLayout;
use vectron_proto::v1::{CollectionSpec, HnswConfig, Metric};

use crate::dataset::Dataset;

/// Points per streamed message.
const BATCH: usize = 500;

/// Arguments of `vectron-bench core`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Core gRPC addresses, comma-separated (HOST:PORT).
    #[arg(long, value_delimiter = ',', required = true)]
    cores_addr: Vec<String>,
    /// Directory with base.fvecs, query.fvecs, groundtruth.ivecs.
    #[arg(long)]
    dataset: std::path::PathBuf,
    /// cosine, l2 or dot.
    #[arg(long, default_value = "cosine")]
    metric: String,
    /// Search candidate list size.
    #[arg(long, default_value_t = 64)]
    ef: u32,
    /// HNSW links per node.
    #[arg(long, default_value_t = 16)]
    m: u32,
    /// HNSW build candidate list size.
    #[arg(long, default_value_t = 200)]
    ef_construction: u32,
    /// Searches in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds of search load.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Hits per search.
    #[arg(long, default_value_t = 10)]
    k: u32,
    /// spread (one shard per core, queries fan out) or replicate (every core holds all
    /// points, queries go to one core).
    #[arg(long, default_value = "spread")]
    layout: String,
    /// Collection name (a run number is appended so reruns never collide).
    #[arg(long, default_value = "bench")]
    collection: String,
    /// Threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Searches in flight while ingesting (to measure search latency under a bulk
    /// load; each one also scans the points not yet indexed). 0: none, so indexing runs
    /// alone.
    #[arg(long, default_value_t = 1)]
    probe_during_ingest: usize,
}

struct Target {
    client: CoreServiceClient<Channel>,
    shard: ShardRef,
}

fn metric(name: &str) -> anyhow::Result<Metric> {
    Ok(match name {
        "cosine" => Metric::Cosine,
        "l2" => Metric::L2,
        "dot" => Metric::Dot,
        other => bail!("unknown metric {other:?}: use cosine, l2 or dot"),
    })
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(run_async(args))
}

async fn channel(addr: &str) -> anyhow::Result<Channel> {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .with_context(|| format!("connecting to core {addr}"))
}

async fn connect(addr: &str) -> anyhow::Result<CoreServiceClient<Channel>> {
    Ok(CoreServiceClient::new(channel(addr).await?)
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20))
}

async fn run_async(args: &Args) -> anyhow::Result<()> {
    let data = Dataset::load(&args.dataset)?;
    let replicate = match args.layout.as_str() {
        "spread" => false,
        "replicate" => true,
        other => bail!("unknown layout {other:?}: use spread or replicate"),
    };
    let n = args.cores_addr.len();
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let layout = ShardLayout::with_count(u32::try_from(n)?).context("at least one core")?;

    // One shard per core: shard i of one collection (spread), or shard 0 of a collection
    // per core (replicate).
    let mut targets = Vec::with_capacity(n);
    for (i, addr) in args.cores_addr.iter().enumerate() {
        let client = connect(addr).await?;
        let (name, shard_id, range) = if replicate {
            (
                format!("{}-{run_id}-c{i}", args.collection),
                0,
                (0, u64::MAX),
            )
        } else {
            let r = layout.range(u32::try_from(i)?).expect("shard below count");
            (
                format!("{}-{run_id}", args.collection),
                u32::try_from(i)?,
                (r.start, r.end),
            )
        };
        let mut spec = CollectionSpec::new(
            name.clone(),
            u32::try_from(data.base.dim)?,
            metric(&args.metric)?,
        );
        spec.hnsw = Some(HnswConfig {
            m: Some(args.m),
            ef_construction: Some(args.ef_construction),
            ef: Some(args.ef),
        });
        let assignment = ShardAssignment {
            spec: Some(spec),
            shard_id,
            hash_range_start: range.0,
            hash_range_end: range.1,
            epoch: 1,
            ..Default::default()
        };
        ShardAdminClient::new(channel(addr).await?)
            .open_shard(OpenShardRequest {
                assignment: Some(assignment),
            })
            .await?;
        targets.push(Target {
            client,
            shard: ShardRef {
                collection: name,
                shard_id,
                epoch: 1,
            },
        });
    }
    let targets = Arc::new(targets);
    let data = Arc::new(data);

    // Ingest, with one search at a time running meanwhile.
    let ingesting = Arc::new(AtomicBool::new(true));
    let probes: Vec<_> = (0..args.probe_during_ingest)
        .map(|w| {
            let of = args.probe_during_ingest;
            tokio::spawn(search_loop(
                Arc::clone(&targets),
                Arc::clone(&data),
                args.clone_search(),
                replicate,
                Arc::clone(&ingesting),
                of,
                Some(w),
            ))
        })
        .collect();
    let started = Instant::now();
    let mut streams = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let rows: Vec<usize> = (0..data.base.len())
            .filter(|&r| replicate || layout.shard_of(&r.to_string()) as usize == i)
            .collect();
        let data = Arc::clone(&data);
        let shard = t.shard.clone();
        let mut client = t.client.clone();
        streams.push(tokio::spawn(async move {
            let batches: Vec<UpsertRequest> = rows
                .chunks(BATCH)
                .map(|chunk| UpsertRequest {
                    shard: Some(shard.clone()),
                    points: chunk
                        .iter()
                        .map(|&r| Point {
                            id: r.to_string(),
                            vector: data.base.row(r).to_vec(),
                            payload_json: Vec::new(),
                        })
                        .collect(),
                    wait: None,
                })
                .collect();
            client
                .upsert_stream(tokio_stream::iter(batches))
                .await
                .map(|r| r.into_inner().count)
        }));
    }
    let mut acknowledged = 0u64;
    for s in streams {
        acknowledged += s.await??;
    }
    let ingest_s = started.elapsed().as_secs_f64();
    // Until every point is linked into its graph.
    loop {
        let mut pending = 0;
        for t in targets.iter() {
            let stats = t.client.clone().stats(StatsRequest {}).await?.into_inner();
            pending += stats
                .shards
                .iter()
                .filter(|s| s.collection == t.shard.collection)
                .map(|s| s.points - s.indexed_points)
                .sum::<u64>();
        }
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let indexed_s = started.elapsed().as_secs_f64();
    ingesting.store(false, Ordering::SeqCst);
    let mut during_hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    for p in probes {
        during_hist.add(&p.await??.0)?;
    }

    // Idle search load, with the cores' and this process's CPU time around it to tell
    // which side limits.
    let cores_before = core_cpu(&targets).await?;
    let client_before = process_cpu_seconds();
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let keep = Arc::new(AtomicBool::new(true));
    let workers: Vec<_> = (0..args.concurrency)
        .map(|w| {
            tokio::spawn(search_loop(
                Arc::clone(&targets),
                Arc::clone(&data),
                args.clone_search(),
                replicate,
                Arc::clone(&keep),
                args.concurrency,
                Some(w),
            ))
        })
        .collect();
    let load_started = Instant::now();
    tokio::time::sleep_until(deadline.into()).await;
    keep.store(false, Ordering::SeqCst);
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut hits, mut asked) = (0usize, 0usize);
    for w in workers {
        let (h, found, total) = w.await??;
        hist.add(&h)?;
        hits += found;
        asked += total;
    }
    let elapsed = load_started.elapsed().as_secs_f64();
    let client_cpus = (process_cpu_seconds() - client_before) / elapsed;
    let cores_after = core_cpu(&targets).await?;
    let utilisation: Vec<f64> = cores_before
        .iter()
        .zip(&cores_after)
        .map(|((cpu0, up0), (cpu1, up1))| (cpu1 - cpu0) / (up1 - up0).max(1e-9))
        .collect();
    let mean_utilisation = utilisation.iter().sum::<f64>() / utilisation.len().max(1) as f64;
    let per_core = acknowledged as f64 / n as f64;
    let line = serde_json::json!({
        "bench": "core",
        "dataset": data.name,
        "layout": args.layout,
        "cores": n,
        "n": data.base.len(),
        "dim": data.base.dim,
        "ef": args.ef,
        "k": args.k,
        "concurrency": args.concurrency,
        "ingest_vectors_per_s": acknowledged as f64 / ingest_s,
        "indexed_vectors_per_s": acknowledged as f64 / indexed_s,
        "indexed_vectors_per_s_per_core": per_core / indexed_s,
        "qps": hist.len() as f64 / elapsed,
        "p50_us": hist.value_at_quantile(0.5),
        "p99_us": hist.value_at_quantile(0.99),
        "p999_us": hist.value_at_quantile(0.999),
        "search_p99_during_ingest_us": during_hist.value_at_quantile(0.99),
        "searches_during_ingest": during_hist.len(),
        "recall": if asked == 0 { 0.0 } else { hits as f64 / asked as f64 },
        "core_utilisation": mean_utilisation,
        "client_cpus_used": client_cpus,
        "client_threads": args.client_threads,
    });
    println!("{line}");
    Ok(())
}

/// Each distinct core's (CPU seconds, uptime seconds), from its Stats call.
async fn core_cpu(targets: &[Target]) -> anyhow::Result<Vec<(f64, f64)>> {
    let mut out = Vec::with_capacity(targets.len());
    for t in targets {
        let stats = t.client.clone().stats(StatsRequest {}).await?.into_inner();
        out.push((stats.cpu_s, stats.uptime_s));
    }
    Ok(out)
}

/// CPU seconds (user + system) this process has used.
fn process_cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the zeroed `rusage` we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return 0.0;
    }
    // SAFETY: filled by a successful getrusage (and zeroed before).
    let usage = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// What a search loop needs from the arguments.
#[derive(Debug, Clone, Copy)]
struct SearchArgs {
    ef: u32,
    k: u32,
}

impl Args {
    fn clone_search(&self) -> SearchArgs {
        SearchArgs {
            ef: self.ef,
            k: self.k,
        }
    }
}

static NEXT_CORE: AtomicUsize = AtomicUsize::new(0);

/// Searches one query at a time while `keep` holds; returns the latency histogram and
/// recall counts (hits against the ground truth, and the ground-truth entries asked for).
/// Worker `w` of `of` takes queries `w, w + of, …` in a loop.
async fn search_loop(
    targets: Arc<Vec<Target>>,
    data: Arc<Dataset>,
    s: SearchArgs,
    replicate: bool,
    keep: Arc<AtomicBool>,
    of: usize,
    w: Option<usize>,
) -> anyhow::Result<(Histogram<u64>, usize, usize)> {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut hits, mut asked) = (0usize, 0usize);
    let mut q = w.unwrap_or(0);
    let mut clients: Vec<CoreServiceClient<Channel>> =
        targets.iter().map(|t| t.client.clone()).collect();
    while keep.load(Ordering::Relaxed) {
        let query = data.query.row(q % data.query.len()).to_vec();
        let started = Instant::now();
        let mut found: Vec<(f32, String)> = Vec::new();
        if replicate {
            let i = NEXT_CORE.fetch_add(1, Ordering::Relaxed) % targets.len();
            let request = SearchRequest {
                shard: Some(targets[i].shard.clone()),
                vector: query,
                k: s.k,
                ef: Some(s.ef),
                ..Default::default()
            };
            let hits = clients[i].search(request).await?.into_inner().hits;
            found.extend(hits.into_iter().map(|h| (h.score, h.id)));
        } else {
            let calls = targets.iter().zip(clients.iter_mut()).map(|(t, c)| {
                let request = SearchRequest {
                    shard: Some(t.shard.clone()),
                    vector: query.clone(),
                    k: s.k,
                    ef: Some(s.ef),
                    ..Default::default()
                };
                c.search(request)
            });
            for answer in futures_util::future::join_all(calls).await {
                found.extend(
                    answer?
                        .into_inner()
                        .hits
                        .into_iter()
                        .map(|h| (h.score, h.id)),
                );
            }
            found.sort_by(|a, b| b.0.total_cmp(&a.0));
            found.truncate(s.k as usize);
        }
        hist.saturating_record(
            u64::try_from(started.elapsed().as_micros())
                .unwrap_or(u64::MAX)
                .max(1),
        );
        let truth = data.truth.row(q % data.query.len());
        let k = (s.k as usize).min(truth.len());
        let truth: std::collections::HashSet<i32> = truth[..k].iter().copied().collect();
        hits += found
            .iter()
            .filter(|(_, id)| id.parse::<i32>().is_ok_and(|i| truth.contains(&i)))
            .count();
        asked += k;
        q += of;
    }
    Ok((hist, hits, asked))
}
