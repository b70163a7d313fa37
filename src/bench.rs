//! `vectron bench`: the end-to-end benchmark through the public API, as a user's
//! application sees it. It ingests a texmex dataset (`base.fvecs`, with `base.jsonl`
//! payloads when present) over the streaming upsert, waits until every point is
//! indexed, measures recall@k of every query against `groundtruth.ivecs`, then runs a
//! closed loop of concurrent searches for a fixed time and prints one JSON line.
//!
//! Searches are sent with read consistency `linearizable` unless `--cached`: such
//! searches neither use the gateway's cache nor join identical searches in flight, so
//! the figure is the engine's and not the cache's (the query set repeats every
//! thousand searches).

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Args;
use hdrhistogram::Histogram;
use vectron_client::{
    Client, CollectionSpec, HnswConfig, Metric, Point, ReadConsistency, SearchRequest,
};

/// Points per streamed message: large enough to amortise a message, small enough that
/// the gateway keeps every core busy.
const DEFAULT_BATCH: usize = 500;

#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Gateway gRPC address.
    #[arg(long, env = "VECTRON_ADDR", default_value = "http://127.0.0.1:6334")]
    addr: String,
    /// Directory with base.fvecs, query.fvecs, groundtruth.ivecs (and base.jsonl).
    #[arg(long)]
    dataset: PathBuf,
    /// Collection to ingest into and search.
    #[arg(long, default_value = "bench")]
    collection: String,
    /// Create the collection first (it must not exist).
    #[arg(long)]
    create: bool,
    /// Metric of a created collection: cosine, l2 or dot.
    #[arg(long, default_value = "cosine")]
    metric: String,
    /// Shards of a created collection (default: the server's, one per core).
    #[arg(long)]
    shards: Option<u32>,
    /// Replicas of every shard of a created collection (default: the server's, 1).
    #[arg(long)]
    replication_factor: Option<u32>,
    /// HNSW m of a created collection.
    #[arg(long, default_value_t = 16)]
    m: u32,
    /// HNSW ef_construction of a created collection.
    #[arg(long, default_value_t = 200)]
    ef_construction: u32,
    /// Do not ingest: search a collection already holding the dataset (ids = rows).
    #[arg(long)]
    skip_ingest: bool,
    /// Points per streamed upsert message.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    batch: usize,
    /// Concurrent searching clients.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Seconds of the search loop.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Search ef.
    #[arg(long, default_value_t = 64)]
    ef: u32,
    /// Neighbours per search (recall is recall@k).
    #[arg(long, default_value_t = 10)]
    k: u32,
    /// Send eventual-consistency searches, which the gateway may answer from its cache
    /// (unless it runs with `--no-search-cache`).
    #[arg(long)]
    cached: bool,
    /// Alternate unary and streamed searches (`SearchStream`) in the timed loop, and
    /// report the streamed ones' latency of the last event (the answer) and of the
    /// first, beside the unary ones', with the ratio of the p50s; `qps` and
    /// `stream_qps` then count each kind alone.
    #[arg(long)]
    stream: bool,
    /// API key for a gateway with authentication on (an admin's, with --create).
    #[arg(long, env = "VECTRON_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

struct Dataset {
    dim: usize,
    base: Vec<Vec<f32>>,
    payloads: Option<Vec<serde_json::Value>>,
    queries: Vec<Vec<f32>>,
    truth: Vec<Vec<usize>>,
}

/// Reads a texmex file: per row a little-endian i32 length, then that many 4-byte values.
fn read_vecs<T>(path: &Path, conv: impl Fn([u8; 4]) -> T) -> anyhow::Result<Vec<Vec<T>>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + 4) else {
            bail!("{}: truncated row {} header", path.display(), rows.len());
        };
        let dim = i32::from_le_bytes(head.try_into().expect("4 bytes"));
        let dim = usize::try_from(dim)
            .ok()
            .filter(|&d| d > 0)
            .with_context(|| {
                format!("{}: row {} has dimension {dim}", path.display(), rows.len())
            })?;
        let Some(body) = bytes.get(at + 4..at + 4 + 4 * dim) else {
            bail!("{}: row {} is truncated", path.display(), rows.len());
        };
        rows.push(
            body.chunks_exact(4)
                .map(|c| conv(c.try_into().expect("4 bytes")))
                .collect(),
        );
        at += 4 + 4 * dim;
    }
    Ok(rows)
}

impl Dataset {
    fn load(dir: &Path, with_payloads: bool) -> anyhow::Result<Self> {
        let base = read_vecs(&dir.join("base.fvecs"), f32::from_le_bytes)?;
        let queries = read_vecs(&dir.join("query.fvecs"), f32::from_le_bytes)?;
        let truth = read_vecs(&dir.join("groundtruth.ivecs"), i32::from_le_bytes)?
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|i| i.max(0).unsigned_abs() as usize)
                    .collect()
            })
            .collect::<Vec<Vec<usize>>>();
        let dim = base.first().context("base.fvecs is empty")?.len();
        if base.iter().chain(&queries).any(|r| r.len() != dim) {
            bail!("base and query rows must all have dimension {dim}");
        }
        if truth.len() != queries.len() {
            bail!(
                "{} ground-truth rows for {} queries",
                truth.len(),
                queries.len()
            );
        }
        let jsonl = dir.join("base.jsonl");
        let payloads = if with_payloads && jsonl.exists() {
            let file = std::fs::File::open(&jsonl)
                .with_context(|| format!("reading {}", jsonl.display()))?;
            let mut rows = Vec::with_capacity(base.len());
            for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
                let line = line.with_context(|| format!("reading {}", jsonl.display()))?;
                let value: serde_json::Value = serde_json::from_str(&line)
                    .with_context(|| format!("{} line {}", jsonl.display(), i + 1))?;
                rows.push(value);
            }
            if rows.len() != base.len() {
                bail!("{} payloads for {} base vectors", rows.len(), base.len());
            }
            Some(rows)
        } else {
            None
        };
        Ok(Self {
            dim,
            base,
            payloads,
            queries,
            truth,
        })
    }
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.batch == 0 || args.k == 0 {
        bail!("--concurrency, --batch and --k must be at least 1");
    }
    let data = Arc::new(Dataset::load(&args.dataset, !args.skip_ingest)?);
    let mut builder = Client::builder(args.addr.clone()).timeout(Some(Duration::from_secs(300)));
    if let Some(key) = &args.api_key {
        builder = builder.api_key(key)?;
    }
    let client = builder
        .connect()
        .await
        .with_context(|| format!("cannot reach the gateway at {}", args.addr))?;

    if args.create {
        let metric = match args.metric.as_str() {
            "cosine" => Metric::Cosine,
            "l2" => Metric::L2,
            "dot" => Metric::Dot,
            other => bail!("unknown metric {other:?}: use cosine, l2 or dot"),
        };
        let mut spec =
            CollectionSpec::new(args.collection.clone(), u32::try_from(data.dim)?, metric);
        spec.shard_count = args.shards;
        spec.replication_factor = args.replication_factor;
        spec.hnsw = Some(HnswConfig {
            m: Some(args.m),
            ef_construction: Some(args.ef_construction),
            ef: Some(args.ef),
        });
        client
            .create_collection(spec)
            .await
            .with_context(|| format!("creating collection {:?}", args.collection))?;
    }

    let mut out = serde_json::Map::new();
    out.insert("collection".into(), args.collection.clone().into());
    out.insert("points".into(), data.base.len().into());
    if !args.skip_ingest {
        let (acked_s, indexed_s) = ingest(&client, &args, &data).await?;
        out.insert(
            "ingest_vectors_per_s".into(),
            round(data.base.len() as f64 / acked_s).into(),
        );
        out.insert("ingest_s".into(), round3(acked_s).into());
        out.insert("indexed_after_s".into(), round3(indexed_s).into());
    }

    let consistency = if args.cached {
        ReadConsistency::Eventual
    } else {
        ReadConsistency::Linearizable
    };
    let request = |q: usize| {
        let mut r = SearchRequest::new(args.collection.clone(), data.queries[q].clone(), args.k)
            .with_ef(args.ef);
        r.set_consistency(consistency);
        r
    };

    // Recall: every query once, before the timed loop.
    let mut recall_sum = 0.0;
    for q in 0..data.queries.len() {
        let hits = client.search(request(q)).await?.hits;
        let k = usize::try_from(args.k)?;
        let truth = &data.truth[q][..k.min(data.truth[q].len())];
        let found = hits
            .iter()
            .filter(|h| h.id.parse::<usize>().is_ok_and(|id| truth.contains(&id)))
            .count();
        recall_sum += found as f64 / truth.len() as f64;
    }
    let recall = recall_sum / data.queries.len() as f64;

    let requests: Arc<[SearchRequest]> = (0..data.queries.len()).map(request).collect();
    let measured = search_loop(&client, &requests, &args).await?;
    let latency = &measured.unary;
    let errors = measured.errors;

    out.insert("concurrency".into(), args.concurrency.into());
    out.insert("ef".into(), args.ef.into());
    out.insert("k".into(), args.k.into());
    out.insert(
        "consistency".into(),
        if args.cached {
            "eventual"
        } else {
            "linearizable"
        }
        .into(),
    );
    out.insert("searches".into(), latency.len().into());
    out.insert("errors".into(), errors.into());
    out.insert(
        "qps".into(),
        round(latency.len() as f64 / measured.elapsed_s).into(),
    );
    out.insert("mean_us".into(), round(latency.mean()).into());
    out.insert("p50_us".into(), latency.value_at_quantile(0.5).into());
    out.insert("p99_us".into(), latency.value_at_quantile(0.99).into());
    out.insert("p999_us".into(), latency.value_at_quantile(0.999).into());
    out.insert(
        "recall".into(),
        (round(recall * 10_000.0) / 10_000.0).into(),
    );
    if args.stream {
        let p50 = |h: &Histogram<u64>| h.value_at_quantile(0.5);
        let streamed = &measured.streamed;
        out.insert("stream_searches".into(), streamed.len().into());
        out.insert(
            "stream_qps".into(),
            round(streamed.len() as f64 / measured.elapsed_s).into(),
        );
        out.insert("stream_p50_us".into(), p50(streamed).into());
        out.insert(
            "stream_p99_us".into(),
            streamed.value_at_quantile(0.99).into(),
        );
        out.insert("stream_first_p50_us".into(), p50(&measured.first).into());
        out.insert(
            "stream_p50_ratio".into(),
            round3(p50(streamed) as f64 / p50(latency).max(1) as f64).into(),
        );
    }
    println!("{}", serde_json::Value::Object(out));
    if errors > 0 {
        bail!("{errors} searches failed");
    }
    Ok(())
}

/// What the timed search loop measured, in microseconds.
struct Loop {
    /// Latency of unary searches.
    unary: Histogram<u64>,
    /// Latency of streamed searches' last events (the answer); empty without
    /// `--stream`.
    streamed: Histogram<u64>,
    /// Latency of streamed searches' first events.
    first: Histogram<u64>,
    /// Searches of either kind that failed.
    errors: u64,
    elapsed_s: f64,
}

/// `--concurrency` clients searching in a closed loop for `--seconds`. With `--stream`
/// each client alternates a unary and a streamed search, so that both kinds are
/// measured under the same load (on a shared machine, two loops one after the other
/// differ by more than the cost measured).
async fn search_loop(
    client: &Client,
    requests: &Arc<[SearchRequest]>,
    args: &BenchArgs,
) -> anyhow::Result<Loop> {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let stream = args.stream;
    let workers: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let (client, stop, of) = (client.clone(), Arc::clone(&stop), args.concurrency);
            let requests = Arc::clone(requests);
            tokio::spawn(async move {
                let mut done = Loop {
                    unary: histogram(),
                    streamed: histogram(),
                    first: histogram(),
                    errors: 0,
                    elapsed_s: 0.0,
                };
                let micros = |t: Instant| {
                    u64::try_from(t.elapsed().as_micros())
                        .unwrap_or(u64::MAX)
                        .clamp(1, MAX_LATENCY_US)
                };
                // Start each client at its own place in the query set.
                let mut q = w * requests.len() / of;
                while !stop.load(Ordering::Relaxed) {
                    let r = requests[q % requests.len()].clone();
                    q += 1;
                    let t = Instant::now();
                    if !(stream && q.is_multiple_of(2)) {
                        match client.search(r).await {
                            Ok(_) => done.unary.saturating_record(micros(t)),
                            Err(_) => done.errors += 1,
                        }
                        continue;
                    }
                    let Ok(mut events) = client.search_stream(r).await else {
                        done.errors += 1;
                        continue;
                    };
                    let mut seen = false;
                    loop {
                        match events.next().await {
                            Some(Ok(event)) => {
                                if !seen {
                                    done.first.saturating_record(micros(t));
                                    seen = true;
                                }
                                if event.done {
                                    done.streamed.saturating_record(micros(t));
                                    break;
                                }
                            }
                            Some(Err(_)) | None => {
                                done.errors += 1;
                                break;
                            }
                        }
                    }
                }
                done
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Loop {
        unary: histogram(),
        streamed: histogram(),
        first: histogram(),
        errors: 0,
        elapsed_s: 0.0,
    };
    for w in workers {
        let done = w.await?;
        all.unary.add(&done.unary)?;
        all.streamed.add(&done.streamed)?;
        all.first.add(&done.first)?;
        all.errors += done.errors;
    }
    all.elapsed_s = started.elapsed().as_secs_f64();
    Ok(all)
}

/// Streams the base vectors (ids are row numbers) and waits until every point is
/// indexed. Returns the seconds until the stream was acknowledged (every point
/// durable) and until the last point was indexed, both from the start.
async fn ingest(
    client: &Client,
    args: &BenchArgs,
    data: &Arc<Dataset>,
) -> anyhow::Result<(f64, f64)> {
    let before = indexed_points(client, &args.collection).await?.1;
    let batches: Vec<Vec<Point>> = (0..data.base.len())
        .step_by(args.batch)
        .map(|start| {
            (start..(start + args.batch).min(data.base.len()))
                .map(|i| {
                    let point = Point::new(i.to_string(), data.base[i].clone());
                    match data.payloads.as_ref().map(|p| p[i].clone()) {
                        Some(payload) => vectron_client::payload::to_struct(payload)
                            .map(|s| point.with_payload(s)),
                        None => Ok(point),
                    }
                })
                .collect::<Result<Vec<Point>, _>>()
        })
        .collect::<Result<_, _>>()
        .context("a payload of base.jsonl is not a JSON object")?;
    let started = Instant::now();
    let acked = client
        .upsert_stream(&args.collection, tokio_stream::iter(batches))
        .await
        .context("streaming upsert")?;
    let acked_s = started.elapsed().as_secs_f64();
    if usize::try_from(acked.count)? != data.base.len() {
        bail!("{} points acknowledged of {}", acked.count, data.base.len());
    }
    let want = before.max(data.base.len() as u64);
    loop {
        let (points, indexed) = indexed_points(client, &args.collection).await?;
        if indexed >= want && indexed >= points {
            break;
        }
        if started.elapsed() > Duration::from_secs(3600) {
            bail!("not indexed after an hour: {indexed} of {points} points");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((acked_s, started.elapsed().as_secs_f64()))
}

/// Points and indexed points of `collection`, summed over every core of the cluster.
async fn indexed_points(client: &Client, collection: &str) -> anyhow::Result<(u64, u64)> {
    let stats = client.core_stats("").await.context("reading core stats")?;
    Ok(stats
        .cores
        .iter()
        .flat_map(|c| &c.shards)
        .filter(|s| s.collection == collection)
        .fold((0, 0), |(p, i), s| (p + s.points, i + s.indexed_points)))
}

/// Latencies up to a minute are told apart; longer ones count as a minute.
const MAX_LATENCY_US: u64 = 60_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds")
}

fn round(x: f64) -> f64 {
    x.round()
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
