//! Three control nodes: election, replication, failover, restart, redirects.

use std::time::{Duration, Instant};

use tonic::Code;
use vectron_control::{LEADER_ADDR_HEADER, NOT_LEADER_HEADER};
use vectron_proto::cluster::PresentKey;
use vectron_proto::control::v1 as ctl;
use vectron_proto::control::v1::control_client::ControlClient as RawClient;

use crate::support::{self, Cluster, TestWorker, eventually, layout, spec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_a_leader_and_every_node_sees_the_collections() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let client = cluster.client();
    let status = client.cluster_status().await.unwrap();
    assert_eq!(status.nodes.len(), 3);
    assert!(status.nodes.iter().all(|n| n.voter));
    assert_eq!(status.leader_id, cluster.node(leader).node_id());
    assert_eq!(status.leader_address, cluster.node(leader).address());

    TestWorker::register(client.clone(), "w1", 2, 17000).await;
    TestWorker::register(client.clone(), "w2", 2, 17100).await;
    let created = client.create_collection(spec("docs", None)).await.unwrap();
    assert_eq!(created.shards.len(), 4, "one shard per live worker core");
    client
        .create_collection(spec("images", Some(3)))
        .await
        .unwrap();

    for i in 0..3 {
        let reader = cluster.client_of(i);
        let names = eventually(
            &format!("node {} sees both collections", i + 1),
            Duration::from_secs(10),
            || async {
                let listed = reader.list_collections().await.ok()?;
                let names: Vec<String> = listed
                    .iter()
                    .map(|c| c.spec.as_ref().unwrap().name.clone())
                    .collect();
                (names.len() == 2).then_some(names)
            },
        )
        .await;
        assert_eq!(names, ["docs", "images"]);
        let docs = reader.describe_collection("docs").await.unwrap();
        assert_eq!(
            layout(&[docs]),
            layout(std::slice::from_ref(&created)),
            "node {} agrees on placement",
            i + 1
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_names_the_leader_and_the_client_follows_it() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let follower = (leader + 1) % 3;
    TestWorker::register(cluster.client(), "w1", 1, 17200).await;

    let channel = tonic::transport::Channel::from_shared(format!(
        "http://{}",
        cluster.node(follower).address()
    ))
    .unwrap()
    .connect()
    .await
    .unwrap();
    let mut raw = RawClient::with_interceptor(channel, PresentKey::new(Some(support::key())));
    let refused = raw
        .create_collection(ctl::CreateCollectionRequest {
            spec: Some(spec("docs", Some(1))),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert!(refused.metadata().contains_key(NOT_LEADER_HEADER));
    assert_eq!(
        refused
            .metadata()
            .get(LEADER_ADDR_HEADER)
            .unwrap()
            .to_str()
            .unwrap(),
        cluster.node(leader).address()
    );
    assert!(
        refused.message().contains(cluster.node(leader).address()),
        "{}",
        refused.message()
    );

    // A client that knows only the follower gets there through the redirect.
    let client = cluster.client_of(follower);
    client
        .create_collection(spec("docs", Some(1)))
        .await
        .unwrap();
    assert_eq!(
        client.leader().as_deref(),
        Some(cluster.node(leader).address())
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_elects_another_and_loses_nothing_committed() {
    let mut cluster = Cluster::start(3).await;
    let old = cluster.leader().await;
    let client = cluster.client();
    let mut worker = TestWorker::register(client.clone(), "w1", 2, 17300).await;
    for n in 0..5 {
        client
            .create_collection(spec(&format!("c{n}"), Some(2)))
            .await
            .unwrap();
    }
    worker.heartbeat(10).await;
    let before = layout(&client.list_collections().await.unwrap());

    let killed = Instant::now();
    cluster.stop(old).await;
    let new = cluster.leader().await;
    let elected_after = killed.elapsed();
    assert_ne!(new, old);
    println!("a new leader was elected {elected_after:?} after the old one stopped");

    let after = layout(&cluster.client_of(new).list_collections().await.unwrap());
    assert_eq!(after, before, "every committed collection survives");
    // The cluster still takes writes, and the worker keeps heartbeating through the new
    // leader without being marked down.
    client.create_collection(spec("c5", Some(2))).await.unwrap();
    for _ in 0..5 {
        worker.heartbeat(10).await;
    }
    let status = client.cluster_status().await.unwrap();
    assert_eq!(
        support::health(&status, "w1"),
        vectron_proto::control::v1::WorkerHealth::Up
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    let behind = (leader + 1) % 3;
    let client = cluster.client();
    TestWorker::register(client.clone(), "w1", 1, 17400).await;
    client
        .create_collection(spec("before", Some(1)))
        .await
        .unwrap();
    eventually(
        "the follower has the first collection",
        Duration::from_secs(10),
        || async {
            cluster
                .client_of(behind)
                .describe_collection("before")
                .await
                .ok()
        },
    )
    .await;

    let stopped_at = cluster.node(behind).applied_index();
    cluster.stop(behind).await;
    // Enough writes to take a snapshot and purge the log the stopped node missed.
    for n in 0..15 {
        let name = format!("while-down-{n}");
        client
            .create_collection(spec(&name, Some(1)))
            .await
            .unwrap();
        if n % 2 == 0 {
            client.drop_collection(&name).await.unwrap();
        }
    }
    let expected = layout(&client.list_collections().await.unwrap());
    let status = cluster.client_of(leader).cluster_status().await.unwrap();
    assert!(
        status.snapshot_index > stopped_at,
        "the leader snapshotted past the stopped node"
    );

    cluster.restart(behind).await;
    let reader = cluster.client_of(behind);
    eventually(
        "the restarted node caught up",
        Duration::from_secs(20),
        || async {
            let listed = layout(&reader.list_collections().await.ok()?);
            (listed == expected).then_some(())
        },
    )
    .await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_catches_up_from_a_snapshot() {
    let mut cluster = Cluster::start(1).await;
    cluster.leader().await;
    let client = cluster.client();
    TestWorker::register(client.clone(), "w1", 1, 17700).await;
    for n in 0..30 {
        client
            .create_collection(spec(&format!("c{n:02}"), Some(1)))
            .await
            .unwrap();
    }
    let expected = layout(&client.list_collections().await.unwrap());
    let status = client.cluster_status().await.unwrap();
    assert!(
        status.purged_index > 1,
        "the log is purged behind a snapshot, so a new node cannot replay it from the start"
    );

    let joined = cluster.join_new().await;
    let reader = cluster.client_of(joined);
    eventually(
        "the new node installed the snapshot",
        Duration::from_secs(20),
        || async {
            let listed = layout(&reader.list_collections().await.ok()?);
            (listed == expected).then_some(())
        },
    )
    .await;
    let own = reader.cluster_status().await.unwrap();
    assert!(own.snapshot_index >= status.purged_index);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_node_cluster_restarts_from_its_disk() {
    let mut cluster = Cluster::start(1).await;
    cluster.leader().await;
    let client = cluster.client();
    let worker = TestWorker::register(client.clone(), "w1", 2, 17500).await;
    for n in 0..30 {
        client
            .create_collection(spec(&format!("c{n:02}"), None))
            .await
            .unwrap();
    }
    let before = layout(&client.list_collections().await.unwrap());
    let status = client.cluster_status().await.unwrap();
    assert!(status.last_applied_index > 30, "past a snapshot");

    cluster.stop(0).await;
    cluster.restart(0).await;
    cluster.leader().await;
    let after = layout(&cluster.client().list_collections().await.unwrap());
    assert_eq!(after, before);
    let again = cluster.client().cluster_status().await.unwrap();
    assert_eq!(
        again.cluster_id, worker.cluster_id,
        "the cluster keeps its identity"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_nodes_join_and_membership_changes_shrink_the_cluster() {
    let mut cluster = Cluster::start(5).await;
    let leader = cluster.leader().await;
    let client = cluster.client();
    let status = client.cluster_status().await.unwrap();
    assert_eq!(status.nodes.len(), 5);
    assert!(status.nodes.iter().all(|n| n.voter));

    // Keep the leader and two others as voters; the other two leave.
    let leader_id = cluster.node(leader).node_id();
    let mut voters: Vec<u64> = vec![leader_id];
    voters.extend((1..=5).filter(|&id| id != leader_id).take(2));
    let changed = client.change_membership(&voters, false).await.unwrap();
    let mut kept: Vec<u64> = changed.nodes.iter().map(|n| n.node_id).collect();
    kept.sort_unstable();
    voters.sort_unstable();
    assert_eq!(kept, voters);

    // The remaining three still commit with the two others gone.
    for i in 0..5 {
        if !voters.contains(&(i as u64 + 1)) {
            cluster.stop(i).await;
        }
    }
    TestWorker::register(client.clone(), "w1", 1, 17600).await;
    client
        .create_collection(spec("after", Some(1)))
        .await
        .unwrap();

    // A learner added by hand, then promoted, makes four voters.
    let gone = (1..=5u64).find(|id| !voters.contains(id)).unwrap();
    let learner = cluster.addresses()[gone as usize - 1].clone();
    cluster.restart(gone as usize - 1).await;
    let added = client.add_learner(gone, &learner).await.unwrap();
    assert!(added.nodes.iter().any(|n| n.node_id == gone && !n.voter));
    voters.push(gone);
    let promoted = client.change_membership(&voters, false).await.unwrap();
    assert_eq!(promoted.nodes.iter().filter(|n| n.voter).count(), 4);
    cluster.shutdown().await;
}
