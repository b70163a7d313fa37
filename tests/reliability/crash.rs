//! `kill -9` of a real `vectron dev` at random moments while it ingests, deletes by
//! filter and checkpoints, then a restart on the same data: every restart is clean and
//! every acknowledged write is there (every acknowledged delete gone). A few rounds by
//! default, a hundred with `VECTRON_RELIABILITY=long`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tonic::transport::Channel;
use vectron_proto::core::v1 as core;
use vectron_proto::core::v1::core_service_client::CoreServiceClient;

use crate::harness::{try_json, vector};
use crate::support::{self, Http, Process};

const COLLECTION: &str = "crash";

/// A small deterministic generator (xorshift64*), so a failing round can be replayed
/// from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// What the clients were told: ids whose upsert was acknowledged, by round, and rounds
/// whose delete was acknowledged.
#[derive(Debug, Default)]
struct Acknowledged {
    written: BTreeMap<u32, BTreeSet<String>>,
    deleted: BTreeSet<u32>,
}

fn start(dir: &std::path::Path) -> Process {
    crate::harness::dev(dir, 2, &[])
}

/// Starts `vectron dev` and kills it after `after`, ready or not: while it opens its
/// shards, restores checkpoints and replays logs.
fn kill_while_starting(dir: &std::path::Path, after: Duration) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vectron"))
        .args([
            "dev",
            "--data-dir",
            dir.to_str().unwrap(),
            "--cores",
            "2",
            "--no-pin",
        ])
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .env("VECTRON_LOG", "error")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start vectron");
    std::thread::sleep(after);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Upserts batches of round `round` until stopped (or the process dies), recording each
/// acknowledged batch.
async fn write(addr: String, round: u32, acked: Arc<Mutex<Acknowledged>>) {
    for batch in 0.. {
        let points: Vec<Value> = (0..50)
            .map(|i| {
                let n = batch * 50 + i;
                json!({"id": format!("r{round}-{n}"), "vector": vector(n),
                       "payload": {"round": round.to_string(), "n": n}})
            })
            .collect();
        let ids: Vec<String> = points
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect();
        let Some((status, _)) = try_json(
            &addr,
            "PUT",
            &format!("/v1/collections/{COLLECTION}/points"),
            &json!({ "points": points }),
        )
        .await
        else {
            return;
        };
        if status != 200 {
            return;
        }
        acked
            .lock()
            .unwrap()
            .written
            .entry(round)
            .or_default()
            .extend(ids);
    }
}

/// Deletes by filter every point of an earlier round, recording the acknowledgement.
async fn delete_round(addr: String, round: u32, acked: Arc<Mutex<Acknowledged>>) {
    let filter =
        json!({"filter": {"must": [{"field": {"key": "round", "keyword": round.to_string()}}]}});
    let path = format!("/v1/collections/{COLLECTION}/points/delete");
    if let Some((200, _)) = try_json(&addr, "POST", &path, &filter).await {
        acked.lock().unwrap().deleted.insert(round);
    }
}

/// Asks every shard to checkpoint, over and over, until the process dies.
async fn checkpoint(shards: Vec<(String, core::ShardRef)>) {
    loop {
        for (address, shard) in &shards {
            let Ok(channel) = Channel::from_shared(format!("http://{address}"))
                .unwrap()
                .connect()
                .await
            else {
                return;
            };
            let request = core::CheckpointRequest {
                shard: Some(shard.clone()),
            };
            if CoreServiceClient::new(channel)
                .checkpoint(request)
                .await
                .is_err()
            {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every shard of the collection: its core's address and reference.
async fn shards(http: &Http) -> Vec<(String, core::ShardRef)> {
    let (status, info) = http
        .json("GET", &format!("/v1/collections/{COLLECTION}"), None)
        .await;
    assert_eq!(status, 200, "{info}");
    info["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let replica = &s["replicas"][0];
            (
                replica["address"].as_str().unwrap().to_owned(),
                core::ShardRef {
                    collection: COLLECTION.into(),
                    shard_id: s["shard_id"].as_u64().unwrap_or(0) as u32,
                    epoch: replica["epoch"].as_u64().unwrap(),
                },
            )
        })
        .collect()
}

/// The ids among `ids` that the collection holds.
async fn present(http: &Http, ids: &[String]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for chunk in ids.chunks(5_000) {
        let (status, body) = http
            .json(
                "POST",
                &format!("/v1/collections/{COLLECTION}/points/get"),
                Some(json!({"ids": chunk, "with_vector": false, "with_payload": false})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        found.extend(
            body["points"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["id"].as_str().unwrap().to_owned()),
        );
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_write_survives_kill_9_at_random_moments() {
    let rounds = if crate::long() { 100 } else { 4 };
    let seed = std::env::var("VECTRON_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_CAFE_u64);
    eprintln!("crash: {rounds} rounds, seed {seed} (VECTRON_CRASH_SEED replays them)");
    let mut rng = Rng(seed | 1);
    let dir = support::tempdir();
    let acked = Arc::new(Mutex::new(Acknowledged::default()));

    let dev = start(dir.path());
    let http = Http::new(&support::http_addr(&dev));
    let (status, body) = http
        .json(
            "POST",
            "/v1/collections",
            Some(
                json!({"name": COLLECTION, "dimension": 4, "metric": "cosine", "shard_count": 2,
                        "payload_indexes": [{"field": "round", "kind": "keyword"}]}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut dev = Some(dev);

    let mut startup_kills = 0;
    for round in 0..rounds {
        if dev.is_none() && rng.below(3) == 0 {
            kill_while_starting(dir.path(), Duration::from_millis(20 + rng.below(300)));
            startup_kills += 1;
        }
        let running = dev.take().unwrap_or_else(|| start(dir.path()));
        let http_addr = support::http_addr(&running);
        let http = Http::new(&http_addr);
        // The restart is clean: every acknowledged write of the rounds before is there.
        verify(&http, &acked, round).await;

        let shard_refs = shards(&http).await;
        let mut work = vec![tokio::spawn(write(
            http_addr.clone(),
            round,
            Arc::clone(&acked),
        ))];
        if round >= 2 && rng.below(2) == 0 {
            let victim = round - 2;
            work.push(tokio::spawn(delete_round(
                http_addr.clone(),
                victim,
                Arc::clone(&acked),
            )));
        }
        if rng.below(2) == 0 {
            work.push(tokio::spawn(checkpoint(shard_refs)));
        }
        let after = Duration::from_millis(100 + rng.below(1_400));
        tokio::time::sleep(after).await;
        running.kill();
        for task in work {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
    }
    let last = start(dir.path());
    verify(&Http::new(&support::http_addr(&last)), &acked, rounds).await;
    let (total, deletes) = {
        let a = acked.lock().unwrap();
        (
            a.written.values().map(BTreeSet::len).sum::<usize>(),
            a.deleted.len(),
        )
    };
    eprintln!(
        "crash: {rounds} kills while serving and {startup_kills} while starting; {total} acknowledged points and {deletes} acknowledged deletes by filter checked"
    );
    last.terminate();
}

/// Every point of the rounds before `round` that was acknowledged is present, unless its
/// round's delete was acknowledged: then none of them is.
async fn verify(http: &Http, acked: &Arc<Mutex<Acknowledged>>, round: u32) {
    let (written, deleted) = {
        let a = acked.lock().unwrap();
        (a.written.clone(), a.deleted.clone())
    };
    for (r, ids) in written.range(..round) {
        let ids: Vec<String> = ids.iter().cloned().collect();
        let found = present(http, &ids).await;
        if deleted.contains(r) {
            assert!(
                found.is_empty(),
                "round {r}: its acknowledged delete left {} points",
                found.len()
            );
        } else {
            let lost: Vec<&String> = ids.iter().filter(|id| !found.contains(*id)).collect();
            assert!(
                lost.is_empty(),
                "round {r}: {} of {} acknowledged points lost, such as {:?}",
                lost.len(),
                ids.len(),
                &lost[..lost.len().min(5)]
            );
        }
    }
}
