//! A replicated shard on real cores: three cores (each with its own data directory, as
//! on three workers) open replicas 1, 2 and 3 of one shard through
//! `CoreService.OpenShard`, and a client talks to them over gRPC as the gateway does.
//! Writes go to the leader (followers refuse them naming it), are acknowledged once on
//! a majority, and every replica ends up with them; the leader's core stops and the
//! others elect a new one that takes writes; the stopped core comes back from its
//! directory on another port and catches up.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use vectron_auth::ClusterKey;
use vectron_core_shard::ShardAdministration;
use vectron_core_shard::{CoreHandle, CoreSettings, GroupSettings, spawn_core};
use vectron_net::ServerConfig;
use vectron_proto::cluster::PresentKey;
use vectron_proto::core::v1::core_service_client::CoreServiceClient;
use vectron_proto::core::v1::shard_admin_client::ShardAdminClient;
use vectron_proto::core::v1::{
    CloseShardRequest, DeleteRequest, GetRequest, OpenShardRequest, Point, PointIds,
    ReadConsistency, ReplicaPeer, SearchRequest, ShardAssignment, ShardRef, StatsRequest,
    UpsertRequest, delete_request,
};
use vectron_proto::replication::v1::AppendBatch;
use vectron_proto::replication::v1::replication_client::ReplicationClient;
use vectron_proto::rules::LEADER_TRAILER;
use vectron_proto::v1::{CollectionSpec, Metric, ShardStats};
use vectron_wal::Options;

const DIM: u32 = 4;

fn settings() -> GroupSettings {
    GroupSettings {
        heartbeat: Duration::from_millis(50),
        election_min: Duration::from_millis(300),
        election_max: Duration::from_millis(600),
        ..GroupSettings::default()
    }
}

fn start(dir: &Path) -> CoreHandle {
    start_as(dir, ShardAdministration::Served)
}

fn start_as(dir: &Path, administration: ShardAdministration) -> CoreHandle {
    spawn_core(CoreSettings {
        index: 0,
        cpu: None,
        worker_id: "w".into(),
        addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        wal: Options::default(),
        server: ServerConfig {
            max_recv_message_size: 64 << 20,
            ..ServerConfig::default()
        },
        max_unindexed: None,
        group: settings(),
        // Replication between the cores passes their gates with it.
        cluster_key: Some(key().clone()),
        administration,
    })
    .expect("the core starts")
}

fn shard() -> ShardRef {
    ShardRef {
        collection: "docs".into(),
        shard_id: 0,
        epoch: 1,
    }
}

fn assignment(replica_id: u64, peers: &[(u64, SocketAddr)]) -> ShardAssignment {
    ShardAssignment {
        spec: Some(CollectionSpec {
            name: "docs".into(),
            dimension: DIM,
            metric: Metric::Cosine.into(),
            replication_factor: Some(3),
            ..Default::default()
        }),
        shard_id: 0,
        hash_range_start: 0,
        hash_range_end: u64::MAX,
        epoch: 1,
        incarnation: 1,
        replica_id,
        peers: peers
            .iter()
            .map(|&(replica_id, addr)| ReplicaPeer {
                replica_id,
                address: addr.to_string(),
            })
            .collect(),
        initial: true,
        preferred_leader: 0,
    }
}

fn points(range: std::ops::Range<usize>) -> Vec<Point> {
    range
        .map(|i| Point {
            id: format!("p{i}"),
            vector: vec![1.0 + i as f32, 0.5, (i % 7) as f32, 2.0],
            payload_json: format!("{{\"i\":{i}}}").into_bytes(),
        })
        .collect()
}

/// The cluster key of the test's cores.
fn key() -> &'static ClusterKey {
    static KEY: std::sync::OnceLock<ClusterKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| ClusterKey::generate().unwrap())
}

fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect_lazy()
}

type Keyed = InterceptedService<Channel, PresentKey>;

async fn client(addr: SocketAddr) -> CoreServiceClient<Keyed> {
    CoreServiceClient::with_interceptor(channel(addr), PresentKey::new(Some(key())))
}

async fn admin(addr: SocketAddr) -> ShardAdminClient<Keyed> {
    ShardAdminClient::with_interceptor(channel(addr), PresentKey::new(Some(key())))
}

async fn open_all(peers: &[(u64, SocketAddr)]) {
    for &(id, addr) in peers {
        admin(addr)
            .await
            .open_shard(OpenShardRequest {
                assignment: Some(assignment(id, peers)),
            })
            .await
            .unwrap_or_else(|e| panic!("replica {id} opens: {e}"));
    }
}

/// Upserts through whichever core leads, following `vectron-leader` hints and trying
/// the others while there is no leader. Returns the replica id that took it.
async fn upsert(peers: &[(u64, SocketAddr)], batch: Vec<Point>) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut next = 0;
    loop {
        let (id, addr) = peers[next % peers.len()];
        let answer = client(addr)
            .await
            .upsert(UpsertRequest {
                shard: Some(shard()),
                points: batch.clone(),
                wait: Some(true),
            })
            .await;
        match answer {
            Ok(done) => {
                let done = done.into_inner();
                assert_eq!(done.count, batch.len() as u64);
                assert!(done.durable && done.lsn > 0, "{done:?}");
                return id;
            }
            Err(status) => {
                assert!(
                    matches!(
                        status.code(),
                        tonic::Code::Unavailable | tonic::Code::Unknown
                    ),
                    "a follower refuses as unavailable: {status:?}"
                );
                let hint = status
                    .metadata()
                    .get(LEADER_TRAILER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split_once('@'))
                    .and_then(|(id, _)| id.parse::<u64>().ok());
                next = match hint.and_then(|h| peers.iter().position(|p| p.0 == h)) {
                    Some(leader) => leader,
                    None => next + 1,
                };
            }
        }
        assert!(Instant::now() < deadline, "no replica took the write");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ids replica at `addr` holds among `ids` (an error while it cannot answer).
async fn held(addr: SocketAddr, ids: &[String]) -> Result<Vec<String>, tonic::Status> {
    let got = client(addr)
        .await
        .get(GetRequest {
            shard: Some(shard()),
            ids: ids.to_vec(),
            with_vector: false,
            with_payload: true,
            consistency: None,
        })
        .await?;
    Ok(got.into_inner().points.into_iter().map(|p| p.id).collect())
}

async fn converged(addrs: &[SocketAddr], ids: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for &addr in addrs {
        loop {
            let got = held(addr, ids).await;
            if got.as_ref().is_ok_and(|g| g.as_slice() == ids) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the replica at {addr} holds {got:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The statistics of the shard the core at `addr` holds.
async fn shard_stats(addr: SocketAddr) -> ShardStats {
    client(addr)
        .await
        .stats(StatsRequest {})
        .await
        .unwrap()
        .into_inner()
        .shards
        .swap_remove(0)
}

/// Waits until every replica at `addrs` has linked every point it holds into its graph:
/// followers index what they apply, as the leader does what it writes.
async fn indexed(addrs: &[SocketAddr], points: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for &addr in addrs {
        loop {
            let shard = shard_stats(addr).await;
            if shard.points == points && shard.indexed_points == points {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the replica at {addr} indexed {} of {} points",
                shard.indexed_points,
                shard.points
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("p{i}")).collect()
}

#[test]
fn a_replicated_shard_takes_writes_on_its_leader_and_survives_the_leaders_core() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut cores: Vec<Option<CoreHandle>> = dirs.iter().map(|d| Some(start(d.path()))).collect();
    let mut peers: Vec<(u64, SocketAddr)> = cores
        .iter()
        .enumerate()
        .map(|(i, c)| (i as u64 + 1, c.as_ref().unwrap().info().addr))
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        open_all(&peers).await;

        // A write reaches the leader, whichever core is asked first.
        let leader = upsert(&peers, points(0..100)).await;
        let addrs: Vec<SocketAddr> = peers.iter().map(|p| p.1).collect();
        converged(&addrs, &ids(0..100)).await;
        indexed(&addrs, 100).await;

        // A follower refuses a write and names the leader and its address.
        let (_, follower) = *peers.iter().find(|p| p.0 != leader).unwrap();
        let refused = client(follower)
            .await
            .upsert(UpsertRequest {
                shard: Some(shard()),
                points: points(100..101),
                wait: Some(true),
            })
            .await
            .expect_err("a follower takes no write");
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        let leader_addr = peers.iter().find(|p| p.0 == leader).unwrap().1;
        assert_eq!(
            refused
                .metadata()
                .get(LEADER_TRAILER)
                .unwrap()
                .to_str()
                .unwrap(),
            format!("{leader}@{leader_addr}")
        );

        // A linearizable read is the leader's, after it confirmed its leadership: a
        // follower refuses it naming the leader; the leader sees the acknowledged write.
        let read = |linearizable, min_lsn| GetRequest {
            shard: Some(shard()),
            ids: ids(99..100),
            with_vector: false,
            with_payload: false,
            consistency: Some(ReadConsistency {
                linearizable,
                min_lsn,
            }),
        };
        let refused = client(follower)
            .await
            .get(read(true, 0))
            .await
            .expect_err("a follower serves no linearizable read");
        assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
        assert!(
            refused.metadata().get(LEADER_TRAILER).is_some(),
            "{refused:?}"
        );
        let got = client(leader_addr)
            .await
            .get(read(true, 0))
            .await
            .expect("the leader reads linearizably")
            .into_inner();
        assert_eq!(got.points.len(), 1);

        // A read that must see a log position no replica has applied yet is refused as
        // lagging (UNAVAILABLE, naming no leader), by the leader too; one every replica
        // has applied is answered.
        let applied = shard_stats(follower)
            .await
            .replica
            .expect("a replica")
            .applied_lsn;
        assert!(applied > 0);
        for addr in [follower, leader_addr] {
            let ahead = client(addr)
                .await
                .get(read(false, applied + 1000))
                .await
                .expect_err("no replica has applied that far");
            assert_eq!(ahead.code(), tonic::Code::Unavailable, "{ahead:?}");
            assert!(ahead.message().contains("lagging"), "{ahead:?}");
            assert!(ahead.metadata().get(LEADER_TRAILER).is_none(), "{ahead:?}");
        }
        let got = client(follower)
            .await
            .get(read(false, applied))
            .await
            .expect("the follower has applied that far")
            .into_inner();
        assert_eq!(got.points.len(), 1);

        // Followers answer searches with what is committed, and report their role.
        let found = client(follower)
            .await
            .search(SearchRequest {
                shard: Some(shard()),
                vector: vec![1.0, 0.5, 0.0, 2.0],
                k: 5,
                ..Default::default()
            })
            .await
            .expect("a follower searches")
            .into_inner();
        assert_eq!(found.hits.len(), 5);
        let replica = shard_stats(follower).await.replica.expect("a replica");
        assert_eq!((replica.leader, replica.leader_id), (false, leader));
        assert_eq!(replica.voters, vec![1, 2, 3]);

        // Deletes go through the group too.
        let deleted = client(leader_addr)
            .await
            .delete(DeleteRequest {
                shard: Some(shard()),
                selector: Some(delete_request::Selector::Ids(PointIds {
                    ids: ids(90..100),
                })),
                wait: Some(true),
            })
            .await
            .expect("the leader deletes")
            .into_inner();
        assert_eq!(deleted.deleted, 10);
        converged(&addrs, &ids(0..90)).await;
    });

    // The leader's core stops: the other two elect a leader and go on taking writes.
    let leader = rt.block_on(upsert(&peers, points(100..101)));
    let gone = peers.iter().position(|p| p.0 == leader).unwrap();
    cores[gone].take().unwrap().stop();
    let survivors: Vec<(u64, SocketAddr)> =
        peers.iter().copied().filter(|p| p.0 != leader).collect();
    rt.block_on(async {
        let new_leader = upsert(&survivors, points(101..200)).await;
        assert_ne!(new_leader, leader);
        let addrs: Vec<SocketAddr> = survivors.iter().map(|p| p.1).collect();
        let mut expect = ids(0..90);
        expect.extend(ids(100..200));
        expect.sort();
        converged(&addrs, &expect).await;
    });

    // It comes back from its directory, on another port; every replica learns the new
    // address, and it catches up.
    let back = start(dirs[gone].path());
    assert_eq!(back.info().reopened, 1, "the replica reopens from disk");
    peers[gone].1 = back.info().addr;
    cores[gone] = Some(back);
    rt.block_on(async {
        open_all(&peers).await;
        let mut expect = ids(0..90);
        expect.extend(ids(100..200));
        expect.sort();
        converged(&[peers[gone].1], &expect).await;
        // And the group takes writes with it.
        upsert(&peers, points(200..210)).await;
        expect.extend(ids(200..210));
        expect.sort();
        let addrs: Vec<SocketAddr> = peers.iter().map(|p| p.1).collect();
        converged(&addrs, &expect).await;
    });
    for core in cores.into_iter().flatten() {
        core.stop();
    }
}

#[test]
fn a_shard_of_one_copy_is_not_opened_as_a_replica_nor_a_replica_as_another() {
    let dir = tempfile::tempdir().unwrap();
    let core = start(dir.path());
    let addr = core.info().addr;
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut one = assignment(0, &[]);
        one.initial = false;
        admin(addr)
            .await
            .open_shard(OpenShardRequest {
                assignment: Some(one),
            })
            .await
            .expect("a shard of one copy opens");
        let refused = admin(addr)
            .await
            .open_shard(OpenShardRequest {
                assignment: Some(assignment(1, &[(1, addr)])),
            })
            .await
            .expect_err("the shard is held as one copy");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().contains("shard of one copy"),
            "{refused:?}"
        );
        let bad_peers = admin(addr)
            .await
            .open_shard(OpenShardRequest {
                assignment: Some(assignment(2, &[(1, addr)])),
            })
            .await
            .expect_err("a replica must be among its peers");
        assert_eq!(bad_peers.code(), tonic::Code::InvalidArgument);
    });
    core.stop();
}

#[test]
fn a_group_hands_its_leadership_to_the_replica_its_assignment_prefers() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let cores: Vec<CoreHandle> = dirs.iter().map(|d| start(d.path())).collect();
    let peers: Vec<(u64, SocketAddr)> = cores
        .iter()
        .enumerate()
        .map(|(i, c)| (i as u64 + 1, c.info().addr))
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        open_all(&peers).await;
        let elected = upsert(&peers, points(0..10)).await;
        // Every replica is assigned again, naming a follower the preferred leader.
        let (preferred, preferred_addr) = *peers.iter().find(|p| p.0 != elected).unwrap();
        for &(id, addr) in &peers {
            admin(addr)
                .await
                .open_shard(OpenShardRequest {
                    assignment: Some(ShardAssignment {
                        preferred_leader: preferred,
                        ..assignment(id, &peers)
                    }),
                })
                .await
                .expect("the new assignment is taken");
        }
        // Once the elected leader has led a while and the preferred one has caught up,
        // the preferred one leads, and takes the writes.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let replica = shard_stats(preferred_addr)
                .await
                .replica
                .expect("a replica");
            if replica.leader {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "replica {preferred} does not lead: {replica:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(upsert(&peers, points(10..20)).await, preferred);
        let addrs: Vec<SocketAddr> = peers.iter().map(|p| p.1).collect();
        converged(&addrs, &ids(0..20)).await;
    });
    for core in cores {
        core.stop();
    }
}

/// Asserts that `answer` is a refusal with `code` whose message mentions `mention`.
fn refused<T>(answer: Result<T, tonic::Status>, code: tonic::Code, mention: &str, what: &str) {
    let status = answer.map(drop).expect_err(what);
    assert_eq!(status.code(), code, "{what}: {status:?}");
    assert!(status.message().contains(mention), "{what}: {status:?}");
}

#[test]
fn a_core_refuses_callers_without_the_cluster_key_and_a_clustered_core_every_shard_admin_call() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let standalone = start(dirs[0].path());
    let clustered = start_as(dirs[1].path(), ShardAdministration::ByControlPlane);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let addr = standalone.info().addr;
        fn unauthenticated<T>(answer: Result<T, tonic::Status>, what: &str) {
            refused(
                answer,
                tonic::Code::Unauthenticated,
                "x-vectron-cluster-key",
                what,
            );
        }
        let mut core = CoreServiceClient::new(channel(addr));
        unauthenticated(core.stats(StatsRequest {}).await, "stats without the key");
        let mut shards = ShardAdminClient::new(channel(addr));
        unauthenticated(
            shards
                .open_shard(OpenShardRequest {
                    assignment: Some(assignment(0, &[])),
                })
                .await,
            "an open without the key",
        );
        let mut replication = ReplicationClient::new(channel(addr));
        unauthenticated(
            replication.append(AppendBatch::default()).await,
            "a replication call without the key",
        );
        let wrong = ClusterKey::generate().unwrap();
        let mut wrong_key =
            CoreServiceClient::with_interceptor(channel(addr), PresentKey::new(Some(&wrong)));
        unauthenticated(
            wrong_key.stats(StatsRequest {}).await,
            "stats with another cluster's key",
        );
        // Nothing was opened by the refused call; the key opens it.
        assert!(
            client(addr)
                .await
                .stats(StatsRequest {})
                .await
                .unwrap()
                .into_inner()
                .shards
                .is_empty()
        );
        let mut one = assignment(0, &[]);
        one.initial = false;
        admin(addr)
            .await
            .open_shard(OpenShardRequest {
                assignment: Some(one.clone()),
            })
            .await
            .expect("the key opens a shard on a standalone core");

        // A core whose shards the control plane places refuses every ShardAdmin call,
        // key or not: no open under another incarnation, no close that deletes.
        let addr = clustered.info().addr;
        fn denied<T>(answer: Result<T, tonic::Status>, what: &str) {
            refused(answer, tonic::Code::PermissionDenied, "control plane", what);
        }
        denied(
            admin(addr)
                .await
                .open_shard(OpenShardRequest {
                    assignment: Some(one),
                })
                .await,
            "an open",
        );
        denied(
            admin(addr)
                .await
                .close_shard(CloseShardRequest {
                    shard: Some(shard()),
                    delete_data: true,
                })
                .await,
            "a close that deletes",
        );
        client(addr)
            .await
            .stats(StatsRequest {})
            .await
            .expect("its data path serves the key");
    });
    standalone.stop();
    clustered.stop();
}
