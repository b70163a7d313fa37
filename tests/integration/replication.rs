//! A replicated collection on real processes: a control node, three workers and a
//! gateway on loopback. A collection with three replicas per shard takes writes and
//! searches through the SDK; the worker leading the shard is killed with SIGKILL while
//! writes go on, the others elect a new leader and nothing acknowledged is lost; the
//! killed worker comes back on other ports and catches up from its group.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use vectron_client::api::{CollectionState, ReplicaRole, ReplicaState};
use vectron_client::{
    Client, CollectionInfo, CollectionSpec, Metric, Point, ReadConsistency, SearchRequest, payload,
};

use crate::support::{self, Cluster, Fixture};

/// The `ef` at which recall@10 over the fixture in one shard is at least 0.95.
const EF: u32 = 64;

fn point(f: &Fixture, row: usize) -> Point {
    Point::new(row.to_string(), f.base[row].clone())
        .with_payload(payload::to_struct(f.payloads[row].clone()).unwrap())
}

/// The worker whose core leads the collection's only shard, as the cores report it.
async fn leader_worker(client: &Client) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(stats) = client.core_stats("").await {
            let leading = stats.cores.iter().find(|c| {
                c.shards.iter().any(|s| {
                    s.collection == "replicated" && s.replica.as_ref().is_some_and(|r| r.leader)
                })
            });
            if let Some(core) = leading {
                return core.worker_id.clone();
            }
        }
        assert!(Instant::now() < deadline, "no replica leads");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Points of the collection held by `worker`'s core, once it reports holding `want`.
async fn wait_for_points(client: &Client, worker: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let held = client.core_stats(worker).await.ok().and_then(|s| {
            s.cores
                .iter()
                .flat_map(|c| &c.shards)
                .find(|s| s.collection == "replicated")
                .map(|s| s.points)
        });
        if held == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "worker {worker} holds {held:?} points, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client of the cluster's gateway, and the collection `replicated` (one shard of
/// three replicas) made through it: creating waits until the control plane has three
/// workers to place replicas on.
async fn replicated(cluster: &Cluster, f: &Fixture) -> (Client, CollectionInfo) {
    let client = Client::builder(support::grpc_addr(&cluster.gateway))
        .timeout(Some(Duration::from_secs(30)))
        .connect()
        .await
        .unwrap();
    let mut spec = CollectionSpec::new("replicated", f.dim as u32, Metric::Cosine);
    spec.shard_count = Some(1);
    spec.replication_factor = Some(3);
    for _ in 0..100 {
        match client.create_collection(spec.clone()).await {
            Ok(info) => return (client, info),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("the collection was not created");
}

/// The collection as described, once `settled` holds of it (each replica's status is
/// what its core says at the call, so it moves as elections and applies do).
async fn describe_until(
    client: &Client,
    what: &str,
    settled: impl Fn(&CollectionInfo) -> bool,
) -> CollectionInfo {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = client.describe_collection("replicated").await.unwrap();
        if settled(&info) {
            return info;
        }
        assert!(Instant::now() < deadline, "never {what}: {info:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One replica leads (the one of `leader_id` when given), every other answering one
/// follows it with no lag, and the shard counts `points`.
fn one_leader_followed(info: &CollectionInfo, points: u64) -> bool {
    let shard = &info.shards[0];
    let statuses: Vec<_> = shard
        .replicas
        .iter()
        .filter_map(|r| r.status.as_ref())
        .collect();
    let leaders: Vec<u64> = shard
        .replicas
        .iter()
        .filter(|r| {
            r.status
                .as_ref()
                .is_some_and(|s| s.role() == ReplicaRole::Leader)
        })
        .map(|r| r.replica_id)
        .collect();
    leaders.len() == 1
        && statuses
            .iter()
            .all(|s| s.leader_id == leaders[0] && s.lag == Some(0) && s.points == points)
        && statuses
            .iter()
            .filter(|s| s.role() == ReplicaRole::Follower)
            .count()
            == statuses.len() - 1
        && shard.point_count == points
        && info.point_count == points
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_of_three_replicas_loses_nothing_acknowledged_when_its_leaders_worker_is_killed()
 {
    let f = Fixture::load();
    let mut cluster = Cluster::start(3);
    let (client, created) = replicated(&cluster, &f).await;
    assert_eq!(created.spec.unwrap().replication_factor, Some(3));
    let placed: HashSet<&str> = created.shards[0]
        .replicas
        .iter()
        .map(|r| r.worker_id.as_str())
        .collect();
    assert_eq!(placed.len(), 3, "one replica on each worker");

    // Writes and searches go through the group's leader, wherever it is.
    for chunk in (0..1000).collect::<Vec<_>>().chunks(250) {
        let points = chunk.iter().map(|&r| point(&f, r)).collect();
        let done = client.upsert("replicated", points).await.unwrap();
        assert_eq!(done.count, 250);
        assert!(done.durable);
    }
    let found = client
        .search(SearchRequest::new("replicated", f.base[7].clone(), 10).with_ef(EF))
        .await
        .unwrap();
    assert_eq!(found.hits[0].id, "7");
    // Every replica holds what was acknowledged.
    for worker in &cluster.worker_ids {
        wait_for_points(&client, worker, 1000).await;
    }
    // Describe says, as the cores report it at the call, which replica leads and that
    // the others follow it with nothing left to apply.
    let described = describe_until(&client, "one leader, two followers", |info| {
        info.shards[0].replicas.iter().all(|r| r.status.is_some())
            && one_leader_followed(info, 1000)
    })
    .await;
    assert_eq!(described.state(), CollectionState::Ready);
    let ids: HashSet<u64> = described.shards[0]
        .replicas
        .iter()
        .map(|r| r.replica_id)
        .collect();
    assert_eq!(ids.len(), 3, "three distinct replica ids, none 0: {ids:?}");
    assert!(!ids.contains(&0));
    // The same through HTTP, with the roles as words.
    let http = support::Http::new(&support::http_addr(&cluster.gateway));
    let (code, body) = http.json("GET", "/v1/collections/replicated", None).await;
    assert_eq!(code, 200, "{body}");
    let mut roles: Vec<&str> = body["shards"][0]["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"]["role"].as_str().unwrap())
        .collect();
    roles.sort_unstable();
    assert_eq!(roles, ["follower", "follower", "leader"], "{body}");

    // The leader's worker dies mid-ingest; writes carry on once the others elect.
    let leader = leader_worker(&client).await;
    let gone = cluster.worker_index(&leader);
    let writer = {
        let client = client.clone();
        let f = Fixture::load();
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for row in 1000..f.base.len() {
                // The gateway passes a write the dead leader cannot take (or that its
                // death cut off) to the other replicas until one leads: the client sees
                // no error.
                client
                    .upsert("replicated", vec![point(&f, row)])
                    .await
                    .unwrap_or_else(|e| panic!("point {row} was not acknowledged: {e}"));
                acknowledged.push(row);
            }
            acknowledged
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.kill_worker(gone);
    let started = Instant::now();
    let acknowledged = writer.await.unwrap();
    assert_eq!(acknowledged.len(), f.base.len() - 1000);
    eprintln!(
        "ingest of the rest finished {:?} after the leader's worker was killed",
        started.elapsed()
    );
    let total = f.base.len() as u64;
    assert_eq!(client.count("replicated", None).await.unwrap(), total);
    let found = client
        .search(SearchRequest::new("replicated", f.base[1500].clone(), 10).with_ef(EF))
        .await
        .unwrap();
    assert_eq!(found.hits[0].id, "1500");
    // A linearizable search right after an acknowledged write finds it: the new leader
    // confirms its leadership and reads a state that holds every acknowledged write.
    let last = f.base.len() - 1;
    let mut moved = f.base[last].clone();
    moved[0] += 0.5;
    client
        .upsert("replicated", vec![Point::new("moved", moved.clone())])
        .await
        .unwrap();
    let found = client
        .search(
            SearchRequest::new("replicated", moved, 1)
                .with_ef(EF)
                .with_consistency(ReadConsistency::Linearizable),
        )
        .await
        .unwrap();
    assert_eq!(found.hits[0].id, "moved");
    client
        .delete_ids("replicated", vec!["moved".into()])
        .await
        .unwrap();
    for (i, worker) in cluster.worker_ids.iter().enumerate() {
        if i != gone {
            wait_for_points(&client, worker, total).await;
        }
    }
    assert_ne!(leader_worker(&client).await, leader, "another worker leads");
    // Described, the dead worker's replica is unavailable and has no status; the two
    // others name the new leader, and the collection is degraded.
    let described = describe_until(
        &client,
        "a new leader followed, the dead one marked",
        |info| {
            let dead = info.shards[0]
                .replicas
                .iter()
                .find(|r| r.worker_id == leader);
            one_leader_followed(info, total)
                && info.state() == CollectionState::Degraded
                && dead.is_some_and(|r| r.state() == ReplicaState::Unavailable)
        },
    )
    .await;
    let dead = described.shards[0]
        .replicas
        .iter()
        .find(|r| r.worker_id == leader)
        .unwrap();
    assert!(dead.status.is_none(), "{dead:?}");

    // The killed worker returns (on other ports) and catches up from its group.
    cluster.restart_worker(gone);
    wait_for_points(&client, &leader, total).await;
    cluster.terminate();
}

/// A leader frozen (SIGSTOP) long enough for its group to elect another, then let go,
/// still believes it leads for a moment: a write sent straight to its core meanwhile is
/// never acknowledged unless the group committed it, and the entry it may have appended
/// in its old term is dropped when it learns of the new one. Through the gateway, writes
/// went on during the pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_old_leader_acknowledges_nothing_once_its_group_moved_on() {
    use vectron_proto::core::v1::core_service_client::CoreServiceClient;
    use vectron_proto::core::v1::{Point as CorePoint, ShardRef, UpsertRequest};

    let f = Fixture::load();
    let cluster = Cluster::start(3);
    let (client, _) = replicated(&cluster, &f).await;
    let before: Vec<Point> = (0..100).map(|r| point(&f, r)).collect();
    client.upsert("replicated", before).await.unwrap();
    let described = describe_until(&client, "one leader, two followers", |info| {
        info.shards[0].replicas.iter().all(|r| r.status.is_some()) && one_leader_followed(info, 100)
    })
    .await;
    let old = described.shards[0]
        .replicas
        .iter()
        .find(|r| r.status.is_some_and(|s| s.role() == ReplicaRole::Leader))
        .unwrap()
        .clone();
    let paused = cluster.worker_index(&old.worker_id);
    // Connected before the pause, so the write below is a request on an open HTTP/2
    // connection, read by the old leader's core the moment it runs again.
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", old.address))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let key = vectron_auth::ClusterKey::new(&cluster.key).unwrap();
    let mut stale_core = CoreServiceClient::with_interceptor(
        channel,
        vectron_proto::cluster::PresentKey::new(Some(&key)),
    );

    cluster.pause_worker(paused);
    let stale = tokio::spawn(async move {
        stale_core
            .upsert(UpsertRequest {
                shard: Some(ShardRef {
                    collection: "replicated".into(),
                    shard_id: 0,
                    epoch: old.epoch,
                }),
                points: vec![CorePoint {
                    id: "stale".into(),
                    vector: f.base[0].clone(),
                    payload_json: Vec::new(),
                }],
                wait: Some(true),
            })
            .await
    });
    // The others elect a leader; the gateway's writes reach it.
    let f = Fixture::load();
    let during: Vec<Point> = (100..150).map(|r| point(&f, r)).collect();
    let written = client.upsert("replicated", during).await.unwrap();
    assert_eq!(written.count, 50);
    let moved_on = describe_until(
        &client,
        "a new leader while the old one is frozen",
        |info| {
            info.shards[0].replicas.iter().any(|r| {
                r.worker_id != old.worker_id
                    && r.status.is_some_and(|s| s.role() == ReplicaRole::Leader)
            })
        },
    )
    .await;
    let new_term = moved_on.shards[0]
        .replicas
        .iter()
        .filter_map(|r| r.status)
        .map(|s| s.term)
        .max()
        .unwrap();
    assert!(new_term > old.status.unwrap().term, "a later term");

    cluster.resume_worker(paused);
    let resumed = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(20), stale)
        .await
        .expect("the old leader answers once it runs again")
        .unwrap();
    // Either way, nothing is acknowledged that the group did not commit: a refusal
    // leaves no trace, and an acknowledgement (the old leader is the group's preferred
    // one and takes the leadership back once it caught up; a write it takes then is
    // committed in its new term) is in every linearizable read after it.
    let kept = match answer {
        Err(refused) => {
            assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
            eprintln!(
                "the old leader refused the stale write after {:?}: {}",
                resumed.elapsed(),
                refused.message()
            );
            0
        }
        Ok(ack) => {
            let ack = ack.into_inner();
            assert!(ack.durable, "{ack:?}");
            eprintln!(
                "the old leader took the stale write at LSN {} after {:?}, leading again",
                ack.lsn,
                resumed.elapsed()
            );
            1
        }
    };
    let linearizable = client.with_read_consistency(ReadConsistency::Linearizable);
    let found = linearizable
        .get("replicated", vec!["stale".into()], false, false)
        .await
        .unwrap();
    assert_eq!(
        found.len(),
        kept,
        "acknowledged exactly when it is there: {found:?}"
    );
    let total = 150 + kept as u64;
    assert_eq!(linearizable.count("replicated", None).await.unwrap(), total);
    wait_for_points(&client, &old.worker_id, total).await;
    describe_until(&client, "every replica equal again", |info| {
        info.shards[0].replicas.iter().all(|r| r.status.is_some())
            && one_leader_followed(info, total)
    })
    .await;
    cluster.terminate();
}
