//! `kill -9` of the worker that leads a replicated shard, again and again, under a
//! continuous stream of writes and searches: a control node, three workers and a
//! gateway on loopback, one collection with three replicas of one shard. Each cycle
//! kills the leader's worker, lets the others elect, and brings it back after a random
//! pause (seeded: `VECTRON_FAILOVER_SEED` replays a run). At the end every write the
//! client was told was acknowledged is read back linearizably: none may be missing.
//! Prints how long writes and searches went unanswered after each kill (the gap between
//! the last answer before the kill and the first after). Three cycles by default, fifty
//! with `VECTRON_RELIABILITY=long`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use vectron_client::{Client, CollectionSpec, Metric, Point, SearchRequest};

use crate::harness::{percentile, vector};
use crate::support::{self, Cluster, Http};

const COLLECTION: &str = "failover";
const DIM: usize = 4;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// When each answer came, for one kind of call.
#[derive(Default)]
struct Answers(Mutex<Vec<Instant>>);

impl Answers {
    fn record(&self) {
        self.0.lock().unwrap().push(Instant::now());
    }

    /// The gap around `at`: from the last answer before it to the first after it.
    fn gap_around(&self, at: Instant) -> Option<Duration> {
        let times = self.0.lock().unwrap();
        let before = times.iter().rev().find(|&&t| t <= at)?;
        let after = times.iter().find(|&&t| t > at)?;
        Some(after.duration_since(*before))
    }
}

/// The worker whose core leads the shard, once one does.
async fn leader(client: &Client) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(stats) = client.core_stats("").await
            && let Some(core) = stats.cores.iter().find(|c| {
                c.shards.iter().any(|s| {
                    s.collection == COLLECTION && s.replica.as_ref().is_some_and(|r| r.leader)
                })
            })
        {
            return core.worker_id.clone();
        }
        assert!(Instant::now() < deadline, "no replica leads");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until every worker's replica is back in the group (its core reports the shard
/// with a leader it follows), so the next kill leaves a majority.
async fn all_back(client: &Client, workers: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let following = client.core_stats("").await.map_or(0, |stats| {
            stats
                .cores
                .iter()
                .filter(|c| {
                    c.shards.iter().any(|s| {
                        s.collection == COLLECTION
                            && s.replica.as_ref().is_some_and(|r| r.leader_id != 0)
                    })
                })
                .count()
        });
        if following == workers {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {following} of {workers} replicas rejoined"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leaders_worker_again_and_again_loses_no_acknowledged_write() {
    let cycles = if crate::long() { 50 } else { 3 };
    let seed = std::env::var("VECTRON_FAILOVER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_f00d_u64);
    eprintln!("failover campaign: {cycles} cycles, VECTRON_FAILOVER_SEED={seed}");
    let mut rng = Rng(seed | 1);

    let mut cluster = Cluster::start(3);
    let client = Client::builder(support::grpc_addr(&cluster.gateway))
        .timeout(Some(Duration::from_secs(30)))
        .connect()
        .await
        .unwrap();
    let mut spec = CollectionSpec::new(COLLECTION, DIM as u32, Metric::Cosine);
    spec.shard_count = Some(1);
    spec.replication_factor = Some(3);
    let mut created = false;
    for _ in 0..100 {
        if client.create_collection(spec.clone()).await.is_ok() {
            created = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(created, "the collection was created");
    all_back(&client, 3).await;

    // One writer (one write at a time, each a new id) and one searcher, for the whole
    // campaign; every write the writer is told of is recorded.
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(Answers::default());
    let searches = Arc::new(Answers::default());
    let writer = {
        let (client, stop, writes) = (client.clone(), Arc::clone(&stop), Arc::clone(&writes));
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut failures = 0u64;
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("p{i}");
                match client
                    .upsert(COLLECTION, vec![Point::new(id.clone(), vector(i))])
                    .await
                {
                    Ok(_) => {
                        writes.record();
                        acknowledged.push(id);
                        i += 1;
                    }
                    // Not acknowledged: it may or may not have taken effect. The next
                    // attempt writes another id, so the check below asks only for
                    // acknowledged ones.
                    Err(_) => {
                        failures += 1;
                        i += 1;
                    }
                }
            }
            (acknowledged, failures)
        })
    };
    let searcher = {
        let (client, stop, searches) = (client.clone(), Arc::clone(&stop), Arc::clone(&searches));
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let request = SearchRequest::new(COLLECTION, vector(7), 5);
                if client.search(request).await.is_ok() {
                    searches.record();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let mut write_gaps = Vec::new();
    let mut search_gaps = Vec::new();
    for cycle in 0..cycles {
        tokio::time::sleep(Duration::from_millis(500 + rng.below(1500))).await;
        let leading = leader(&client).await;
        let victim = cluster.worker_index(&leading);
        cluster.kill_worker(victim);
        let killed = Instant::now();
        // Back after 0 to 3 s; the writes meanwhile go to the new leader.
        tokio::time::sleep(Duration::from_millis(rng.below(3000))).await;
        cluster.restart_worker(victim);
        all_back(&client, 3).await;
        // Both kinds of call answer again, well within the client's timeout.
        let deadline = Instant::now() + Duration::from_secs(30);
        let (write_gap, search_gap) = loop {
            if let (Some(w), Some(s)) = (writes.gap_around(killed), searches.gap_around(killed)) {
                break (w, s);
            }
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: writes or searches did not resume within 30 s of the kill"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        eprintln!(
            "cycle {cycle}: killed the leader on worker {victim}; writes unanswered {write_gap:?}, searches {search_gap:?}"
        );
        write_gaps.push(write_gap);
        search_gaps.push(search_gap);
    }
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failures) = writer.await.unwrap();
    searcher.await.unwrap();

    // Every acknowledged write is there, read linearizably (from the leader, after a
    // round with a majority).
    let http = Http::new(&support::http_addr(&cluster.gateway));
    let mut missing = Vec::new();
    for chunk in acknowledged.chunks(1000) {
        let (status, body) = http
            .json(
                "POST",
                &format!("/v1/collections/{COLLECTION}/points/get"),
                Some(
                    json!({"ids": chunk, "with_vector": false, "with_payload": false,
                            "consistency": "linearizable"}),
                ),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let found: std::collections::HashSet<&str> = body["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap())
            .collect();
        missing.extend(
            chunk
                .iter()
                .filter(|id| !found.contains(id.as_str()))
                .cloned(),
        );
    }
    eprintln!(
        "{} writes acknowledged, {failures} failed (outcome unknown), over {cycles} kills; \
         writes unanswered after a kill: p50 {:?}, p99 {:?}, max {:?}; searches: p50 {:?}, p99 {:?}, max {:?}",
        acknowledged.len(),
        percentile(&mut write_gaps, 0.5),
        percentile(&mut write_gaps, 0.99),
        write_gaps.iter().max().unwrap(),
        percentile(&mut search_gaps, 0.5),
        percentile(&mut search_gaps, 0.99),
        search_gaps.iter().max().unwrap(),
    );
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    assert!(acknowledged.len() > 100, "the writer made progress");
    cluster.terminate();
}
