//! Inside a cluster started with a cluster key: the gateway, the control node and the
//! worker present it to each other, so the public API works end to end; and every
//! internal door (a core port, the control port, the worker's statistics) refuses a
//! caller without it. A worker in a cluster refuses to open or delete a shard for anyone
//! but the control plane, key or not.

use std::time::Duration;

use tonic::Code;
use tonic::transport::Channel;
use vectron_auth::ClusterKey;
use vectron_client::{Client, CollectionSpec, Metric, Point, SearchRequest};
use vectron_proto::cluster::PresentKey;
use vectron_proto::control::v1::ClusterStatusRequest;
use vectron_proto::control::v1::control_client::ControlClient;
use vectron_proto::core::v1::core_service_client::CoreServiceClient;
use vectron_proto::core::v1::shard_admin_client::ShardAdminClient;
use vectron_proto::core::v1::{
    CloseShardRequest, OpenShardRequest, ShardAssignment, ShardRef, StatsRequest,
};

use crate::support::{self, Cluster, Fixture, Http};

async fn channel(address: &str) -> Channel {
    Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn unauthenticated<T>(answer: Result<T, tonic::Status>, what: &str) {
    let status = answer.map(drop).expect_err(what);
    assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
    assert!(
        status.message().contains("x-vectron-cluster-key"),
        "{what}: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inside_a_keyed_cluster_every_internal_port_refuses_a_caller_without_the_key() {
    let f = Fixture::load();
    let cluster = Cluster::start(1);
    let key = ClusterKey::new(&cluster.key).unwrap();
    let worker = cluster.workers[0].as_ref().unwrap();
    let core = worker.ready["cores"][0]["addr"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = worker.ready["admin"].as_str().unwrap().to_owned();

    // The public API works: the gateway reaches the control plane and the core with
    // the key, and the worker registered with it.
    let client = Client::builder(support::grpc_addr(&cluster.gateway))
        .timeout(Some(Duration::from_secs(30)))
        .connect()
        .await
        .unwrap();
    let mut spec = CollectionSpec::new("docs", f.dim as u32, Metric::Cosine);
    spec.shard_count = Some(1);
    let mut created = None;
    for _ in 0..100 {
        match client.create_collection(spec.clone()).await {
            Ok(info) => {
                created = Some(info);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let created = created.expect("the collection is created");
    let points: Vec<Point> = (0..200)
        .map(|i| Point::new(i.to_string(), f.base[i].clone()))
        .collect();
    assert_eq!(client.upsert("docs", points).await.unwrap().count, 200);
    let found = client
        .search(SearchRequest::new("docs", f.base[7].clone(), 5))
        .await
        .unwrap();
    assert_eq!(found.hits[0].id, "7");

    // A core port: nothing without the key, another cluster's key neither.
    unauthenticated(
        CoreServiceClient::new(channel(&core).await)
            .stats(StatsRequest {})
            .await,
        "a core's stats without the key",
    );
    let other = ClusterKey::generate().unwrap();
    unauthenticated(
        CoreServiceClient::with_interceptor(channel(&core).await, PresentKey::new(Some(&other)))
            .stats(StatsRequest {})
            .await,
        "a core's stats with another key",
    );
    let keyed = PresentKey::new(Some(&key));
    CoreServiceClient::with_interceptor(channel(&core).await, keyed.clone())
        .stats(StatsRequest {})
        .await
        .expect("the key opens the core's data path");

    // Opening the shard under another incarnation (which wipes its files) or closing it
    // with its data: refused without the key, and refused with it, since the control
    // plane alone places shards on a worker in a cluster.
    let replica = &created.shards[0].replicas[0];
    let shard = ShardRef {
        collection: "docs".into(),
        shard_id: 0,
        epoch: replica.epoch,
    };
    let wipe = OpenShardRequest {
        assignment: Some(ShardAssignment {
            spec: created.spec.clone(),
            shard_id: 0,
            hash_range_start: 0,
            hash_range_end: u64::MAX,
            epoch: replica.epoch + 1,
            incarnation: 99,
            ..Default::default()
        }),
    };
    unauthenticated(
        ShardAdminClient::new(channel(&core).await)
            .open_shard(wipe.clone())
            .await,
        "an open without the key",
    );
    let mut shard_admin = ShardAdminClient::with_interceptor(channel(&core).await, keyed.clone());
    for (what, answer) in [
        ("an open", shard_admin.open_shard(wipe).await.map(drop)),
        (
            "a close that deletes",
            shard_admin
                .close_shard(CloseShardRequest {
                    shard: Some(shard),
                    delete_data: true,
                })
                .await
                .map(drop),
        ),
    ] {
        let status = answer.expect_err(what);
        assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
        assert!(status.message().contains("control plane"), "{status:?}");
    }
    assert_eq!(
        client.count("docs", None).await.unwrap(),
        200,
        "nothing lost"
    );

    // The control port, for every caller: a worker registering, a CLI asking.
    unauthenticated(
        ControlClient::new(channel(&cluster.control.address).await)
            .cluster_status(ClusterStatusRequest {})
            .await,
        "the cluster status without the key",
    );
    let refused = support::run_cli(&["cluster", "status", "--control", &cluster.control.address]);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("x-vectron-cluster-key"), "{said}");
    let status = support::run_cli(&[
        "cluster",
        "status",
        "--control",
        &cluster.control.address,
        "--cluster-key-file",
        cluster.key_file.to_str().unwrap(),
    ]);
    assert!(status.status.success(), "{status:?}");
    assert!(
        String::from_utf8_lossy(&status.stdout).contains(&cluster.worker_ids[0]),
        "{status:?}"
    );

    // The worker's statistics: 401 without the key; the key as Prometheus sends it, or
    // in the header the cluster uses; the health check for anyone.
    let http = Http::new(&admin);
    for path in ["/metrics", "/v1/stats/cores"] {
        let (code, body) = http.send("GET", path, None, Vec::new()).await;
        assert_eq!(code, 401, "{path}: {body}");
        assert!(body.contains("x-vectron-cluster-key"), "{body}");
        let (code, _) = http
            .with_header("authorization", &format!("Bearer {}", other.expose()))
            .send("GET", path, None, Vec::new())
            .await;
        assert_eq!(code, 401, "{path} with another key");
    }
    let (code, body) = http
        .with_header("authorization", &format!("Bearer {}", cluster.key))
        .send("GET", "/metrics", None, Vec::new())
        .await;
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("vectron_core_upserted_points_total"),
        "{body}"
    );
    let (code, _) = http
        .with_header("x-vectron-cluster-key", &cluster.key)
        .send("GET", "/v1/stats/cores", None, Vec::new())
        .await;
    assert_eq!(code, 200);
    assert_eq!(http.send("GET", "/healthz", None, Vec::new()).await.0, 200);
    // A worker without the key (or with another cluster's) is refused for good, and
    // says why, rather than retrying for ever.
    let data = support::tempdir();
    let args = support::cluster_worker_args(data.path(), &cluster.control.address, 1);
    let other_file = data.path().join("other.key");
    std::fs::write(&other_file, other.expose()).unwrap();
    for extra in [
        vec![],
        vec![
            "--cluster-key-file".to_owned(),
            other_file.to_str().unwrap().to_owned(),
        ],
    ] {
        let mut run = args.clone();
        run.extend(extra);
        let said = support::refused(&run.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(said.contains("x-vectron-cluster-key"), "{said}");
    }

    // A gateway started without the key: its callers are told the gateway is
    // misconfigured, not that their own credentials are wrong.
    let keyless = support::Process::start(&[
        "gateway",
        "--control",
        &cluster.control.address,
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ]);
    let through = Client::builder(support::grpc_addr(&keyless))
        .timeout(Some(Duration::from_secs(30)))
        .connect()
        .await
        .unwrap();
    match through.list_collections().await {
        Err(vectron_client::Error::Internal(m)) => {
            assert!(m.contains("--cluster-key-file"), "{m}");
        }
        other => panic!("a keyless gateway answered {other:?}"),
    }
    keyless.terminate();
    cluster.terminate();
}

#[test]
fn a_cluster_key_that_cannot_serve_is_refused_at_start_naming_the_rule() {
    let dir = support::tempdir();
    let short = dir.path().join("short.key");
    std::fs::write(&short, "too-short-a-key\n").unwrap();
    let data = dir.path().join("control");
    let said = support::refused(&[
        "control",
        "--node-id",
        "1",
        "--addr",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--cluster-key-file",
        short.to_str().unwrap(),
    ]);
    assert!(said.contains("needs at least 32"), "{said}");
    assert!(said.contains("vectron cluster key"), "{said}");
    assert!(
        !said.contains("too-short-a-key"),
        "the key itself is not echoed: {said}"
    );
    let missing = dir.path().join("no-such.key");
    let said = support::refused(&[
        "gateway",
        "--control",
        "127.0.0.1:1",
        "--cluster-key-file",
        missing.to_str().unwrap(),
    ]);
    assert!(said.contains("reading the cluster key from"), "{said}");
}
