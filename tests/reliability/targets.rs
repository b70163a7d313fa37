//! The latency and memory targets of a core under long work, measured against a real
//! `vectron dev` with one core, so that the long work and the searches share it (the
//! core pinned to a CPU of its own where there are two, see [`start`]):
//! small searches during a checkpoint of a large shard, and during ingest at twice the
//! indexing rate. Each prints the searches' p99 against their idle p99 in the same run
//! (`--nocapture`; `cargo test --release` for figures worth quoting) and asserts what
//! can be asserted on a shared machine: every search succeeds, the backlog and memory
//! stay bounded. Short by default; `VECTRON_RELIABILITY=long` runs the targets' sizes
//! (a 1,000,000-point shard, 60 s of ingest).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use vectron_client::{Client, CollectionSpec, Metric, Point, SearchRequest};
use vectron_proto::core::v1 as core;
use vectron_proto::core::v1::core_service_client::CoreServiceClient;

use crate::harness::{memory, percentile};
use crate::support::{self, Http, Process};

const DIM: usize = 128;
const COLLECTION: &str = "targets";
/// The default bound on a shard's unindexed points at this dimension.
fn backlog() -> usize {
    vectron_core_shard::unindexed_bound(None, DIM)
}

fn vector(i: usize) -> Vec<f32> {
    // A cheap, well-spread point per i (no two alike).
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..DIM)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 10_000) as f32 / 10_000.0
        })
        .collect()
}

/// `vectron dev` with its core on a CPU of its own where the machine has two (the
/// test's client and the rest of `dev` on the others), as thread-per-core runs: what is
/// measured is the core's own scheduling of long work against searches, not the
/// operating system's time slices between it and the load generator.
fn start(dir: &std::path::Path, cpu: Option<usize>) -> Process {
    crate::harness::dev_on(dir, cpu)
}

async fn setup(dev: &Process) -> Client {
    // A million points stream at the pace of indexing: minutes.
    let client = Client::builder(support::grpc_addr(dev))
        .timeout(Some(Duration::from_secs(1_800)))
        .connect()
        .await
        .unwrap();
    let mut spec = CollectionSpec::new(COLLECTION, DIM as u32, Metric::L2);
    spec.shard_count = Some(1);
    client.create_collection(spec).await.unwrap();
    client
}

/// Streams points `from..to` in batches of 1,000, at most `rate` points a second.
async fn ingest(client: &Client, from: usize, to: usize, rate: Option<f64>) {
    let started = Instant::now();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let producer = tokio::spawn(async move {
        for start in (from..to).step_by(1_000) {
            if let Some(rate) = rate {
                let due = Duration::from_secs_f64((start - from) as f64 / rate);
                tokio::time::sleep_until((started + due).into()).await;
            }
            let batch: Vec<Point> = (start..(start + 1_000).min(to))
                .map(|i| Point::new(i.to_string(), vector(i)))
                .collect();
            if tx.send(batch).await.is_err() {
                return;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let answer = client.upsert_stream(COLLECTION, stream).await.unwrap();
    producer.await.unwrap();
    assert_eq!(answer.count as usize, to - from);
}

/// Points of the collection not yet indexed.
async fn unindexed(http: &Http) -> usize {
    let (_, stats) = http.json("GET", "/v1/stats/cores", None).await;
    stats["cores"][0]["shards"]
        .as_array()
        .map(|shards| {
            shards
                .iter()
                .filter(|s| s["collection"] == COLLECTION)
                .map(|s: &Value| {
                    let points = s["points"].as_u64().unwrap_or(0);
                    (points - s["indexed_points"].as_u64().unwrap_or(0).min(points)) as usize
                })
                .sum()
        })
        .unwrap_or(0)
}

/// What the core reports of itself since it started: its searches' p99 (the search
/// alone, without the gateway and the client) and its scheduling delay's p99 and
/// maximum (how long a call waits behind the core's work), in µs.
async fn core_latencies(http: &Http) -> [f64; 3] {
    let (_, stats) = http.json("GET", "/v1/stats/cores", None).await;
    let core = &stats["cores"][0];
    let us = |summary: &str, field: &str| core[summary][field].as_f64().unwrap_or(0.0);
    [
        us("search_latency", "p99_us"),
        us("scheduling_delay", "p99_us"),
        us("scheduling_delay", "max_us"),
    ]
}

async fn until_indexed(http: &Http) {
    while unindexed(http).await > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Searches (k 10, ef 64) one after another until `stop`; their latencies.
fn searcher(client: Client, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<Duration>> {
    tokio::spawn(async move {
        let mut took = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let request = SearchRequest::new(COLLECTION, vector(7_000_000 + i), 10).with_ef(64);
            let started = Instant::now();
            client
                .search(request)
                .await
                .expect("a search beside the long work");
            took.push(started.elapsed());
            i += 1;
        }
        took
    })
}

/// Searches alone for `how_long`: their p99.
async fn idle_p99(client: &Client, how_long: Duration) -> Duration {
    let stop = Arc::new(AtomicBool::new(false));
    let task = searcher(client.clone(), Arc::clone(&stop));
    tokio::time::sleep(how_long).await;
    stop.store(true, Ordering::Relaxed);
    percentile(&mut task.await.unwrap(), 0.99)
}

#[test]
fn small_searches_go_on_during_a_checkpoint_of_a_large_shard() {
    let cpu = crate::harness::core_cpu();
    crate::harness::off_cpu(cpu, move || checkpoint_target(cpu));
}

async fn checkpoint_target(cpu: Option<usize>) {
    let points = if crate::long() { 1_000_000 } else { 30_000 };
    let dir = support::tempdir();
    let dev = start(dir.path(), cpu);
    let client = setup(&dev).await;
    let http = Http::new(&support::http_addr(&dev));
    ingest(&client, 0, points, None).await;
    until_indexed(&http).await;
    let idle = idle_p99(&client, Duration::from_secs(2)).await;

    let (_, info) = http
        .json("GET", &format!("/v1/collections/{COLLECTION}"), None)
        .await;
    let replica = &info["shards"][0]["replicas"][0];
    let mut core =
        CoreServiceClient::connect(format!("http://{}", replica["address"].as_str().unwrap()))
            .await
            .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let task = searcher(client.clone(), Arc::clone(&stop));
    let started = Instant::now();
    core.checkpoint(core::CheckpointRequest {
        shard: Some(core::ShardRef {
            collection: COLLECTION.into(),
            shard_id: 0,
            epoch: replica["epoch"].as_u64().unwrap(),
        }),
    })
    .await
    .unwrap();
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut during = task.await.unwrap();
    let p99 = percentile(&mut during, 0.99);
    let [search_p99, delay_p99, delay_max] = core_latencies(&http).await;
    eprintln!(
        "targets (core on CPU {cpu:?}): checkpoint of {points} points took {took:?}; {} searches meanwhile, p99 {p99:?} against {idle:?} idle ({:.2}x); on the core since it started: search p99 {search_p99} µs, scheduling delay p99 {delay_p99} µs, max {delay_max} µs",
        during.len(),
        p99.as_secs_f64() / idle.as_secs_f64().max(1e-6)
    );
    assert!(!during.is_empty());
    dev.terminate();
}

#[test]
fn ingest_at_twice_the_indexing_rate_keeps_the_backlog_and_memory_bounded() {
    let cpu = crate::harness::core_cpu();
    crate::harness::off_cpu(cpu, move || ingest_target(cpu));
}

async fn ingest_target(cpu: Option<usize>) {
    let seconds = if crate::long() { 60 } else { 4 };
    let dir = support::tempdir();
    let dev = start(dir.path(), cpu);
    let pid = dev.child.id();
    let client = setup(&dev).await;
    let http = Http::new(&support::http_addr(&dev));

    // The indexing rate: a first batch, timed until it is indexed.
    let first = 20_000;
    let started = Instant::now();
    ingest(&client, 0, first, None).await;
    until_indexed(&http).await;
    let rate = first as f64 / started.elapsed().as_secs_f64();
    let idle = idle_p99(&client, Duration::from_secs(2)).await;
    let before = memory(pid, "VmRSS");

    let stop = Arc::new(AtomicBool::new(false));
    let task = searcher(client.clone(), Arc::clone(&stop));
    let target = (2.0 * rate * seconds as f64) as usize;
    let writer = {
        let client = client.clone();
        tokio::spawn(async move { ingest(&client, first, first + target, Some(2.0 * rate)).await })
    };
    let mut highest = 0;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline && !writer.is_finished() {
        highest = highest.max(unindexed(&http).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut during = task.await.unwrap();
    writer.abort();
    let p99 = percentile(&mut during, 0.99);
    let peak = memory(pid, "VmHWM");
    let [search_p99, delay_p99, delay_max] = core_latencies(&http).await;
    eprintln!(
        "targets (core on CPU {cpu:?}): indexing {rate:.0} points/s, ingest offered at {:.0}/s for {seconds} s: at most {highest} points waited (bound {}); {} searches, p99 {p99:?} against {idle:?} idle ({:.2}x); on the core since it started: search p99 {search_p99} µs, scheduling delay p99 {delay_p99} µs, max {delay_max} µs; resident {} MiB before, peak {} MiB",
        2.0 * rate,
        backlog(),
        during.len(),
        p99.as_secs_f64() / idle.as_secs_f64().max(1e-6),
        before >> 20,
        peak >> 20
    );
    // One batch of the stream may land on a backlog just under the bound.
    assert!(highest <= backlog() + 1_000, "{highest} points waited");
    assert!(!during.is_empty());
    dev.terminate();
}
