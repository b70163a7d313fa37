//! `vectron control` as real processes: a three-node control plane survives SIGKILL of
//! its leader, and the killed node restarts from its data directory and catches up.

use std::process::Command;
use std::time::{Duration, Instant};

use vectron_control::{ControlClient, RetryPolicy};
use vectron_proto::control::v1 as ctl;
use vectron_proto::v1 as api;

use crate::support::ControlProcess;

fn client(addresses: &[&str]) -> ControlClient {
    ControlClient::new(addresses.iter().copied())
        .unwrap()
        .with_retry_policy(RetryPolicy {
            deadline: Duration::from_secs(20),
            ..RetryPolicy::default()
        })
}

/// Registers a worker that places no real cores, so collections can be created.
async fn register(client: &ControlClient) {
    client
        .register_worker(ctl::RegisterWorkerRequest {
            worker_id: "w1".into(),
            data_host: "127.0.0.1".into(),
            cores: vec![ctl::CoreEndpoint {
                core: 0,
                port: 20000,
            }],
            admin_address: String::new(),
            cluster_id: String::new(),
            zone: String::new(),
        })
        .await
        .unwrap();
}

async fn names(client: &ControlClient) -> Vec<String> {
    client
        .list_collections()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.spec.unwrap().name)
        .collect()
}

#[test]
fn a_control_cluster_survives_sigkill_of_its_leader() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let first = ControlProcess::start(dir.path(), 1, "127.0.0.1:0", None);
    let seed = first.address.clone();
    let mut nodes = [
        first,
        ControlProcess::start(dir.path(), 2, "127.0.0.1:0", Some(&seed)),
        ControlProcess::start(dir.path(), 3, "127.0.0.1:0", Some(&seed)),
    ];
    let addresses: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    let all: Vec<&str> = addresses.iter().map(String::as_str).collect();

    runtime.block_on(async {
        let client = client(&all);
        register(&client).await;
        for name in ["a", "b", "c"] {
            client
                .create_collection(api::CollectionSpec {
                    name: name.into(),
                    dimension: 4,
                    metric: api::Metric::Dot.into(),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
    });

    let status = runtime.block_on(client(&all).cluster_status()).unwrap();
    let leader = addresses
        .iter()
        .position(|a| *a == status.leader_address)
        .expect("the leader is one of the three");
    nodes[leader].kill();
    let killed = Instant::now();

    let survivors: Vec<&str> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader)
        .map(|(_, a)| *a)
        .collect();
    runtime.block_on(async {
        let client = client(&survivors);
        // A surviving follower may answer before it has applied every committed entry:
        // the three collections appear within the election's time.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = names(&client).await;
        while seen != ["a", "b", "c"] && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            seen = names(&client).await;
        }
        assert_eq!(seen, ["a", "b", "c"]);
        // A write needs a new leader. The worker registers again first: this test sends
        // no heartbeats, and on a slow machine it may have been declared down already.
        register(&client).await;
        client
            .create_collection(api::CollectionSpec {
                name: "d".into(),
                dimension: 4,
                metric: api::Metric::Dot.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        println!(
            "a write committed {:?} after SIGKILL of the leader",
            killed.elapsed()
        );
    });

    // The killed node comes back on its address with its data and catches up.
    nodes[leader] = ControlProcess::start(
        dir.path(),
        leader as u64 + 1,
        &addresses[leader],
        (leader > 0).then_some(seed.as_str()),
    );
    runtime.block_on(async {
        let own = client(&[&addresses[leader]]);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if names(&own).await == ["a", "b", "c", "d"] {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the restarted node did not catch up"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

#[test]
fn a_bad_configuration_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vectron"))
        .args(["control", "--node-id", "0", "--addr", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("node id 0 is reserved"), "stderr: {err}");

    let out = Command::new(env!("CARGO_BIN_EXE_vectron"))
        .args(["control", "--node-id", "1", "--addr", "0.0.0.0:0"])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("advertise"), "stderr: {err}");

    // Nothing inside the cluster is authenticated yet: a control node or a worker on a
    // network address starts only when told it is on a private network.
    let data = dir.path().to_str().unwrap();
    let err = crate::support::refused(&[
        "control",
        "--node-id",
        "1",
        "--addr",
        "0.0.0.0:0",
        "--advertise",
        "10.0.0.1:7100",
        "--data-dir",
        data,
    ]);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0"),
        "stderr: {err}"
    );
    assert!(err.contains("--insecure"), "stderr: {err}");
    assert!(err.contains("--cluster-key-file"), "stderr: {err}");
    let worker_dir = dir.path().join("worker");
    let err = crate::support::refused(&[
        "worker",
        "--host",
        "0.0.0.0",
        "--core-base-port",
        "0",
        "--cores",
        "1",
        "--admin-addr",
        "127.0.0.1:0",
        "--no-pin",
        "--data-dir",
        worker_dir.to_str().unwrap(),
    ]);
    assert!(
        err.contains("refusing to serve core ports on 0.0.0.0"),
        "stderr: {err}"
    );
}
