//! A real worker under a real control plane: it registers, opens the shards it is
//! assigned, serves them at the assigned epochs, shows as down when it dies, resumes its
//! shards with their data when it returns, and deletes a dropped collection's data.

use std::time::{Duration, Instant};

use tonic::transport::Channel;
use vectron_control::{ControlClient, RetryPolicy};
use vectron_proto::control::v1 as ctl;
use vectron_proto::core::v1::core_service_client::CoreServiceClient;
use vectron_proto::core::v1::{CountRequest, Point, ShardRef, UpsertRequest};
use vectron_proto::hashing::ShardLayout;
use vectron_proto::v1::{CollectionInfo, CollectionSpec, Metric, ReplicaState};

use crate::support::{self, ControlProcess, Process};

/// `vectron worker` with `cores` cores on free loopback ports, its data in `dir`, in
/// zone `rack-1`.
fn worker_args(dir: &std::path::Path, control: &str, cores: usize) -> Vec<String> {
    let mut args = support::cluster_worker_args(dir, control, cores);
    args.extend(["--zone".to_owned(), "rack-1".to_owned()]);
    args
}

fn worker(dir: &std::path::Path, control: &str) -> Process {
    let args = worker_args(dir, control, 2);
    Process::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Polls `check` every 100 ms until it returns `Some`, for at most 20 s.
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn active(client: &ControlClient, name: &str) -> Option<CollectionInfo> {
    let info = client.describe_collection(name).await.ok()?;
    let all_active = info
        .shards
        .iter()
        .all(|s| s.replicas.iter().any(|r| r.state() == ReplicaState::Active));
    all_active.then_some(info)
}

async fn core(address: &str) -> CoreServiceClient<Channel> {
    CoreServiceClient::connect(format!("http://{address}"))
        .await
        .unwrap()
}

/// A control plane in `dir`, a client of it, and a two-core worker (data in
/// `dir/worker`) once it has registered.
async fn registered_worker(
    dir: &std::path::Path,
) -> (ControlProcess, ControlClient, std::path::PathBuf, Process) {
    let control = ControlProcess::start(dir, 1, "127.0.0.1:0", None);
    let client = ControlClient::new([control.address.clone()])
        .unwrap()
        .with_retry_policy(RetryPolicy {
            deadline: Duration::from_secs(20),
            ..RetryPolicy::default()
        });
    let worker_dir = dir.join("worker");
    let w = worker(&worker_dir, &control.address);
    eventually("the worker to register", || async {
        let status = client.cluster_status().await.ok()?;
        (status.workers.len() == 1).then_some(())
    })
    .await;
    let status = client.cluster_status().await.unwrap();
    assert_eq!(
        status.workers[0].zone, "rack-1",
        "the zone it registered with"
    );
    (control, client, worker_dir, w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_follows_the_control_plane() {
    let dir = support::tempdir();
    let (control, client, worker_dir, w) = registered_worker(dir.path()).await;

    // A collection's shards land on the worker's two cores.
    let spec = CollectionSpec::new("docs", 4, Metric::L2);
    let created = client.create_collection(spec).await.unwrap();
    assert_eq!(
        created.spec.unwrap().shard_count,
        Some(2),
        "default: one shard per core"
    );
    let info = eventually("both shards to be active", || active(&client, "docs")).await;

    // Write through each shard's core at the epoch the control plane assigned.
    let layout = ShardLayout::with_count(2).unwrap();
    let ids: Vec<String> = (0..40).map(|i| format!("p{i}")).collect();
    for shard in &info.shards {
        let replica = &shard.replicas[0];
        let points: Vec<Point> = ids
            .iter()
            .filter(|id| layout.shard_of(id) == shard.shard_id)
            .map(|id| Point {
                id: id.clone(),
                vector: vec![1.0, 2.0, 3.0, 4.0],
                payload_json: vec![],
            })
            .collect();
        let shard_ref = Some(ShardRef {
            collection: "docs".into(),
            shard_id: shard.shard_id,
            epoch: replica.epoch,
        });
        core(&replica.address)
            .await
            .upsert(UpsertRequest {
                shard: shard_ref,
                points,
                wait: None,
            })
            .await
            .unwrap();
    }

    // SIGKILL: the control plane marks the worker down and its shards unavailable.
    w.kill();
    let status = eventually("the dead worker to show", || async {
        let s = client.cluster_status().await.ok()?;
        let down = s
            .workers
            .iter()
            .all(|w| w.health() == ctl::WorkerHealth::Down);
        (down && s.unavailable_shards.len() == 2).then_some(s)
    })
    .await;
    assert!(
        status
            .unavailable_shards
            .iter()
            .all(|u| u.collection == "docs")
    );

    // It comes back with its data: the shards resume, every point is there.
    let w = worker(&worker_dir, &control.address);
    let info = eventually("the shards to resume", || active(&client, "docs")).await;
    let mut total = 0;
    for shard in &info.shards {
        let replica = &shard.replicas[0];
        let shard_ref = Some(ShardRef {
            collection: "docs".into(),
            shard_id: shard.shard_id,
            epoch: replica.epoch,
        });
        total += core(&replica.address)
            .await
            .count(CountRequest {
                shard: shard_ref,
                filter: None,
                consistency: None,
            })
            .await
            .unwrap()
            .into_inner()
            .count;
    }
    assert_eq!(total, 40);
    let admin = w.ready["admin"].as_str().unwrap().to_owned();
    let (_, body) = support::http_get(&admin, "/v1/stats/cores");
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    let held: usize = stats["cores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["shards"].as_array().unwrap().len())
        .sum();
    assert_eq!(held, 2);

    // Dropping the collection closes its shards and deletes their data.
    client.drop_collection("docs").await.unwrap();
    eventually("the shards to close", || async {
        let (_, body) = support::http_get(&admin, "/v1/stats/cores");
        let stats: serde_json::Value = serde_json::from_str(&body).ok()?;
        let held: usize = stats["cores"]
            .as_array()?
            .iter()
            .map(|c| c["shards"].as_array().map_or(0, Vec::len))
            .sum();
        (held == 0).then_some(())
    })
    .await;
    for core in 0..2 {
        for shard in 0..2 {
            let dir = worker_dir.join(format!("core-{core}/docs/shard-{shard}"));
            assert!(!dir.exists(), "{} is left behind", dir.display());
        }
    }
    w.terminate();
}

/// A worker that comes back without a core that holds replicas cannot serve them: the
/// control plane refuses it, and it stops with the reason instead of reporting ready
/// and retrying for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_without_a_core_in_use_stops_and_says_why() {
    let dir = support::tempdir();
    let (control, client, worker_dir, w) = registered_worker(dir.path()).await;
    client
        .create_collection(CollectionSpec::new("docs", 4, Metric::L2))
        .await
        .unwrap();
    eventually("both shards to be active", || active(&client, "docs")).await;
    w.terminate();

    let mut one_core = std::process::Command::new(env!("CARGO_BIN_EXE_vectron"))
        .args(worker_args(&worker_dir, &control.address, 1))
        .env("VECTRON_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = one_core.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            one_core.kill().unwrap();
            panic!("the worker kept running without core 1");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(one_core.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains("registers without core 1, which holds 1 replicas"),
        "{stderr}"
    );
}
