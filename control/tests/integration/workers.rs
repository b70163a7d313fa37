//! A worker built from the client library: registration, assignments, death and return,
//! and the routing a gateway watches.

use std::time::Duration;

use vectron_proto::control::v1::{self as ctl, WorkerHealth};
use vectron_proto::v1::{CollectionState, ReplicaState};

use crate::support::{Cluster, TestWorker, eventually, health, spec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_gets_its_shards_shows_down_when_silent_and_resumes_when_back() {
    let cluster = Cluster::start(3).await;
    cluster.leader().await;
    let client = cluster.client();
    let mut worker = TestWorker::register(client.clone(), "w1", 2, 18000).await;
    assert!(!worker.cluster_id.is_empty());
    assert!(worker.assignments.is_empty());

    let created = client.create_collection(spec("docs", None)).await.unwrap();
    assert_eq!(
        created.shards.len(),
        2,
        "one shard per core of the only worker"
    );
    assert_eq!(created.state(), CollectionState::Creating);

    // The first heartbeat brings the assignments; the next reports them held.
    let first = worker.heartbeat(0).await;
    assert_eq!(first.assignments.len(), 2);
    let mut cores: Vec<u32> = first.assignments.iter().map(|a| a.core).collect();
    cores.sort_unstable();
    assert_eq!(cores, [0, 1]);
    for (assignment, shard) in first.assignments.iter().zip(&created.shards) {
        assert_eq!(assignment.shard_id, shard.shard_id);
        assert_eq!(assignment.hash_range_start, shard.hash_range_start);
        assert_eq!(assignment.hash_range_end, shard.hash_range_end);
        assert_eq!(assignment.epoch, shard.replicas[0].epoch);
        assert!(!assignment.must_exist, "a new replica may be created empty");
        assert_eq!(assignment.spec.as_ref().unwrap().dimension, 8);
    }
    worker.heartbeat(42).await;
    let ready = client.describe_collection("docs").await.unwrap();
    assert_eq!(ready.state(), CollectionState::Ready);
    assert!(
        ready
            .shards
            .iter()
            .flat_map(|s| &s.replicas)
            .all(|r| r.state() == ReplicaState::Active)
    );
    let routing = client.routing(Some("docs")).await.unwrap();
    assert_eq!(
        routing.collections[0].shards[0].replicas[0].address,
        "127.0.0.1:18000"
    );

    // Silence: the leader marks the worker down and its shards unavailable.
    let status = eventually(
        "the silent worker is down",
        Duration::from_secs(10),
        || async {
            let status = client.cluster_status().await.ok()?;
            (health(&status, "w1") == WorkerHealth::Down).then_some(status)
        },
    )
    .await;
    let mut unavailable: Vec<u32> = status
        .unavailable_shards
        .iter()
        .map(|s| s.shard_id)
        .collect();
    unavailable.sort_unstable();
    assert_eq!(unavailable, [0, 1]);
    assert!(status.unavailable_shards[0].reason.contains("worker down"));
    let degraded = client.describe_collection("docs").await.unwrap();
    assert_eq!(degraded.state(), CollectionState::Degraded);
    assert!(
        degraded
            .shards
            .iter()
            .flat_map(|s| &s.replicas)
            .all(|r| r.state() == ReplicaState::Unavailable && r.worker_id == "w1"),
        "nothing was recreated elsewhere"
    );

    // It comes back with its data: the next heartbeat resumes it at once.
    let back = worker.heartbeat(42).await;
    assert!(back.assignments.iter().all(|a| a.must_exist));
    let status = client.cluster_status().await.unwrap();
    assert_eq!(health(&status, "w1"), WorkerHealth::Up);
    assert!(status.unavailable_shards.is_empty());
    let info = client.describe_collection("docs").await.unwrap();
    assert_eq!(info.state(), CollectionState::Ready);
    assert_eq!(info.point_count, 84);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_registers_again_and_resumes_its_shards() {
    let cluster = Cluster::start(1).await;
    cluster.leader().await;
    let client = cluster.client();
    let mut worker = TestWorker::register(client.clone(), "w1", 1, 18100).await;
    client.create_collection(spec("docs", None)).await.unwrap();
    worker.heartbeat(0).await;
    worker.heartbeat(5).await;

    let again = client
        .register_worker(ctl::RegisterWorkerRequest {
            worker_id: "w1".into(),
            data_host: "127.0.0.1".into(),
            cores: vec![ctl::CoreEndpoint {
                core: 0,
                port: 18150,
            }],
            admin_address: String::new(),
            cluster_id: worker.cluster_id.clone(),
            zone: String::new(),
        })
        .await
        .unwrap();
    assert!(again.resumed);
    assert_eq!(again.assignments.len(), 1);
    assert!(again.assignments[0].must_exist);
    let info = client.describe_collection("docs").await.unwrap();
    assert_eq!(info.shards[0].replicas[0].address, "127.0.0.1:18150");
    assert_eq!(info.shards[0].replicas[0].state(), ReplicaState::Opening);

    let foreign = client
        .register_worker(ctl::RegisterWorkerRequest {
            worker_id: "w2".into(),
            data_host: "127.0.0.1".into(),
            cores: vec![ctl::CoreEndpoint {
                core: 0,
                port: 18200,
            }],
            admin_address: String::new(),
            cluster_id: "another-cluster".into(),
            zone: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Some(tonic::Code::FailedPrecondition));
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_spread_over_zones_and_leaders_over_every_collections_cores() {
    let cluster = Cluster::start(1).await;
    cluster.leader().await;
    let client = cluster.client();
    let zones = [("w1", "a"), ("w2", "a"), ("w3", "b"), ("w4", "c")];
    for (i, (id, zone)) in (0u32..).zip(zones) {
        TestWorker::register_in_zone(client.clone(), id, 1, 18300 + i * 10, zone).await;
    }
    let status = client.cluster_status().await.unwrap();
    let shown: Vec<(&str, &str)> = status
        .workers
        .iter()
        .map(|w| (w.worker_id.as_str(), w.zone.as_str()))
        .collect();
    assert_eq!(shown, zones);
    let zone_of = |worker: &str| zones.iter().find(|(w, _)| *w == worker).unwrap().1;

    // Every shard of three replicas has one in each zone, though two workers share one.
    let mut three = spec("three", Some(4));
    three.replication_factor = Some(3);
    let created = client.create_collection(three).await.unwrap();
    for shard in &created.shards {
        let mut in_zones: Vec<&str> = shard
            .replicas
            .iter()
            .map(|r| zone_of(&r.worker_id))
            .collect();
        in_zones.sort_unstable();
        assert_eq!(in_zones, ["a", "b", "c"], "shard {}", shard.shard_id);
    }

    // Preferred leaders (first replicas) go to the cores leading the fewest shards of
    // every collection: four shards led one per worker, then two more collections'
    // shards on workers that lead one each, never twice on one.
    let leaders = |info: &vectron_proto::v1::CollectionInfo| -> Vec<String> {
        info.shards
            .iter()
            .map(|s| s.replicas[0].worker_id.clone())
            .collect()
    };
    let mut first = leaders(&created);
    first.sort();
    assert_eq!(first, ["w1", "w2", "w3", "w4"]);
    let mut more = Vec::new();
    for name in ["more-1", "more-2"] {
        let mut one = spec(name, Some(1));
        one.replication_factor = Some(3);
        more.extend(leaders(&client.create_collection(one).await.unwrap()));
    }
    assert_ne!(
        more[0], more[1],
        "two one-shard collections led from one worker"
    );

    // A zone label a worker id could not be is refused.
    let refused = client
        .register_worker(ctl::RegisterWorkerRequest {
            worker_id: "w5".into(),
            data_host: "127.0.0.1".into(),
            cores: vec![ctl::CoreEndpoint {
                core: 0,
                port: 18400,
            }],
            admin_address: String::new(),
            cluster_id: String::new(),
            zone: "rack 7".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(tonic::Code::InvalidArgument));
    assert!(refused.to_string().contains("zone"), "{refused}");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routing_watch_sees_every_change() {
    let cluster = Cluster::start(1).await;
    cluster.leader().await;
    let client = cluster.client();
    let mut worker = TestWorker::register(client.clone(), "w1", 1, 18300).await;
    let mut watch = client.watch_routing(0);
    let first = watch.next().await.unwrap();
    assert!(first.collections.is_empty());

    client.create_collection(spec("docs", None)).await.unwrap();
    let created = watch.next().await.unwrap();
    assert!(created.version > first.version);
    assert_eq!(created.collections.len(), 1);
    assert_eq!(
        created.collections[0].shards[0].replicas[0].state(),
        ReplicaState::Opening
    );

    // The first heartbeat brings the assignment, the second reports it open.
    worker.heartbeat(0).await;
    worker.heartbeat(0).await;
    let active = watch.next().await.unwrap();
    assert_eq!(
        active.collections[0].shards[0].replicas[0].state(),
        ReplicaState::Active
    );

    client.drop_collection("docs").await.unwrap();
    let dropped = watch.next().await.unwrap();
    assert!(dropped.collections.is_empty());
    assert!(worker.heartbeat(0).await.assignments.is_empty());
    cluster.shutdown().await;
}
