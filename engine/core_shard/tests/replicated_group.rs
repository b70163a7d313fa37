//! One shard as a Raft group of three replicas, each on its own thread and monoio
//! runtime like a core, talking `vectron.replication.v1` over loopback gRPC: the shard's
//! WAL is each replica's Raft log, its checkpoints the snapshots. Leaders die (their
//! thread stops unannounced, in the middle of the group's traffic), come back from their
//! directories and catch up, from the log or from a snapshot streamed to them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openraft::Raft;
use openraft::async_runtime::WatchReceiver as _;
use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::raft::ClientWriteResponse;
use tokio::sync::{mpsc, oneshot};
use vectron_core_shard::{ShardMachine, ShardSpec};
use vectron_net::{ClientConfig, ListenOptions, Router, Server, ServerConfig};
use vectron_proto::core::v1::ShardAssignment;
use vectron_proto::v1::{CollectionSpec, Metric};
use vectron_replica::{
    FaultPlan, GroupId, GroupNetwork, GroupSettings, LogId, LogStore, Peers, ReplicaNode, Replicas,
    ShardOp, ShardRaft, routes,
};
use vectron_wal::{Delete, Options, Record, Upsert};

const DIM: u32 = 4;

/// How long a client waits for a write to commit.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

fn spec() -> ShardSpec {
    ShardSpec::from_assignment(&ShardAssignment {
        spec: Some(CollectionSpec {
            name: "replicated".into(),
            dimension: DIM,
            metric: Metric::Cosine.into(),
            ..Default::default()
        }),
        shard_id: 0,
        hash_range_start: 0,
        hash_range_end: u64::MAX,
        epoch: 1,
        incarnation: 1,
        ..ShardAssignment::default()
    })
    .expect("a spec")
}

fn group() -> GroupId {
    GroupId {
        collection: "replicated".into(),
        incarnation: 1,
        shard_id: 0,
    }
}

/// Fast elections, so the test does not wait long for a new leader.
fn settings() -> GroupSettings {
    GroupSettings {
        heartbeat: Duration::from_millis(50),
        election_min: Duration::from_millis(300),
        election_max: Duration::from_millis(600),
        ..GroupSettings::default()
    }
}

/// What a replica reports.
#[derive(Debug, Clone)]
struct Status {
    leader: Option<u64>,
    applied: Option<LogId>,
    snapshot: Option<LogId>,
    ids: Vec<String>,
}

enum Cmd {
    Peers(Vec<(u64, SocketAddr)>),
    Initialize(
        BTreeMap<u64, ReplicaNode>,
        oneshot::Sender<Result<(), String>>,
    ),
    Write(
        Record0,
        oneshot::Sender<Result<ClientWriteResponse<ShardRaft>, Refusal>>,
    ),
    Status(oneshot::Sender<Status>),
    /// Hands leadership to a replica.
    Transfer(u64, oneshot::Sender<Result<(), String>>),
    /// Builds a snapshot of everything applied and purges the log up to it.
    Compact(oneshot::Sender<Result<LogId, String>>),
    /// Stops: Raft shuts down and the server closes. (What a crash leaves on disk is the
    /// WAL's crash tests' business; here a replica stops mid-stream, unannounced.)
    Kill,
}

/// Why a replica did not acknowledge a write.
#[derive(Debug)]
enum Refusal {
    /// Not appended, so sending it again is safe: the replica does not lead, or it leads
    /// but has not heard from a majority within its lease (a loaded machine).
    NotTaken(String),
    /// Proposed, with no answer: it may or may not take effect.
    Unknown(String),
}

/// A write, as the test hands it to a replica thread.
#[derive(Clone)]
enum Record0 {
    Upsert(Vec<String>),
    /// One point with a payload of about this many bytes.
    Heavy(String, usize),
    Delete(Vec<String>),
}

impl Record0 {
    fn op(&self) -> ShardOp {
        match self {
            Record0::Upsert(ids) => {
                let vectors: Vec<f32> = ids
                    .iter()
                    .enumerate()
                    .flat_map(|(i, _)| [1.0 + i as f32, 0.5, 0.25, 2.0])
                    .collect();
                let payloads = vec![Vec::new(); ids.len()];
                ShardOp::encode(&Record::Upsert(Upsert {
                    ids,
                    dim: DIM,
                    vectors: &vectors,
                    payloads: &payloads,
                }))
                .expect("encodes")
            }
            Record0::Heavy(id, bytes) => {
                let payload = format!(r#"{{"blob":"{}"}}"#, "x".repeat(*bytes)).into_bytes();
                ShardOp::encode(&Record::Upsert(Upsert {
                    ids: std::slice::from_ref(id),
                    dim: DIM,
                    vectors: &[1.0, 0.5, 0.25, 2.0],
                    payloads: &[payload],
                }))
                .expect("encodes")
            }
            Record0::Delete(ids) => {
                ShardOp::encode(&Record::Delete(Delete { ids })).expect("encodes")
            }
        }
    }
}

struct Replica {
    id: u64,
    addr: SocketAddr,
    tx: mpsc::UnboundedSender<Cmd>,
    thread: Option<JoinHandle<()>>,
}

impl Replica {
    /// Starts replica `id` from `dir` on a thread of its own, its traffic going through
    /// `faults` when given.
    fn start(id: u64, dir: &Path, faults: Option<FaultPlan>) -> Replica {
        let (tx, rx) = mpsc::unbounded_channel();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let dir = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name(format!("replica-{id}"))
            .spawn(move || {
                monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                    .enable_timer()
                    .build()
                    .expect("a runtime")
                    .block_on(run(id, dir, faults, rx, addr_tx));
            })
            .expect("a thread");
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the replica started");
        Replica {
            id,
            addr,
            tx,
            thread: Some(thread),
        }
    }

    fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> T {
        let (tx, rx) = oneshot::channel();
        assert!(self.tx.send(make(tx)).is_ok(), "the replica runs");
        rx.blocking_recv().expect("the replica answers")
    }

    fn status(&self) -> Status {
        self.ask(Cmd::Status)
    }

    fn kill(mut self) {
        let _ = self.tx.send(Cmd::Kill);
        self.thread
            .take()
            .expect("running")
            .join()
            .expect("the thread ends");
    }
}

async fn run(
    id: u64,
    dir: PathBuf,
    faults: Option<FaultPlan>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    addr_tx: std::sync::mpsc::Sender<SocketAddr>,
) {
    let store = LogStore::open(dir.join("wal"), Options::default())
        .await
        .expect("the log opens");
    let machine = ShardMachine::open(&dir, spec())
        .await
        .expect("the state opens");
    let peers = Rc::new(match faults {
        Some(plan) => Peers::with_faults(ClientConfig::default(), plan),
        None => Peers::new(ClientConfig::default()),
    });
    let network = GroupNetwork::new(group(), id, Rc::clone(&peers));
    let config = settings().config().expect("valid settings");
    let raft: Raft<ShardRaft, ShardMachine> =
        Raft::new(id, config, network, store, machine.clone())
            .await
            .expect("raft starts");
    let replicas = Rc::new(Replicas::default());
    replicas.insert(group(), id, raft.clone(), &dir);
    let router = routes(Router::new(), replicas).expect("routes");
    let listener = vectron_net::bind("127.0.0.1:0".parse().unwrap(), &ListenOptions::default())
        .expect("binds");
    addr_tx.send(listener.local_addr().unwrap()).unwrap();
    // A worker takes messages up to 64 MiB; 16 MiB here, so that catching up on
    // megabyte entries takes more than one message.
    let config = ServerConfig {
        max_recv_message_size: 16 << 20,
        ..ServerConfig::default()
    };
    let server = Server::new(config, router).expect("a server");
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let serving = monoio::spawn(server.serve(listener, async move {
        let _ = stop_rx.await;
    }));
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Cmd::Peers(list) => {
                for (replica, addr) in list {
                    peers.set(replica, addr);
                }
            }
            Cmd::Initialize(members, reply) => {
                let done = match raft.initialize(members).await {
                    Ok(()) => Ok(()),
                    // Another initial replica's election reached it first: it has joined.
                    Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
                    Err(e) => Err(e.to_string()),
                };
                let _ = reply.send(done);
            }
            Cmd::Write(record, reply) => {
                // A leader cut off from its group waits for a commit that does not come:
                // the client gives up, not knowing whether the write will take effect.
                let written = monoio::time::timeout(WRITE_TIMEOUT, raft.client_write(record.op()));
                let done = match written.await {
                    Ok(Ok(ack)) => Ok(ack),
                    Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                        Err(Refusal::NotTaken(f.to_string()))
                    }
                    Ok(Err(e)) => Err(Refusal::Unknown(e.to_string())),
                    Err(_) => Err(Refusal::Unknown(
                        "timed out: the write may or may not take effect".into(),
                    )),
                };
                let _ = reply.send(done);
            }
            Cmd::Status(reply) => {
                let metrics = raft.metrics().borrow_watched().clone();
                let _ = reply.send(Status {
                    leader: metrics.current_leader,
                    applied: metrics.last_applied,
                    snapshot: metrics.snapshot,
                    ids: machine.ids(),
                });
            }
            Cmd::Transfer(to, reply) => {
                let done = raft.trigger().transfer_leader(to).await;
                let _ = reply.send(done.map_err(|e| e.to_string()));
            }
            Cmd::Compact(reply) => {
                let done = compact(&raft).await;
                let _ = reply.send(done);
            }
            Cmd::Kill => break,
        }
    }
    raft.shutdown().await.expect("raft stops");
    drop(stop_tx);
    let _ = serving.await;
    drop(raft);
    // The log's flusher writes what is pending and releases the directory.
    monoio::time::sleep(Duration::from_millis(50)).await;
}

/// Snapshots everything applied and purges the log up to it.
async fn compact(raft: &Raft<ShardRaft, ShardMachine>) -> Result<LogId, String> {
    let applied = raft
        .metrics()
        .borrow_watched()
        .last_applied
        .ok_or("nothing applied")?;
    raft.trigger().snapshot().await.map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = raft.metrics().borrow_watched().clone();
        if metrics.snapshot.is_some_and(|s| s.index >= applied.index) {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("no snapshot at {applied:?}: {metrics:?}"));
        }
        monoio::time::sleep(Duration::from_millis(20)).await;
    }
    raft.trigger()
        .purge_log(applied.index)
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let metrics = raft.metrics().borrow_watched().clone();
        if metrics.purged.is_some_and(|p| p.index >= applied.index) {
            return Ok(applied);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the log was not purged to {applied:?}: {metrics:?}"
            ));
        }
        monoio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls until `check` holds, or fails with what was last seen.
fn eventually<T: std::fmt::Debug>(
    what: &str,
    mut probe: impl FnMut() -> T,
    check: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = probe();
        if check(&seen) {
            return seen;
        }
        assert!(Instant::now() < deadline, "{what}: last seen {seen:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The leader every replica in `replicas` agrees on.
fn leader_of(replicas: &[&Replica]) -> u64 {
    let leaders = eventually(
        "one leader for all",
        || {
            replicas
                .iter()
                .map(|r| r.status().leader)
                .collect::<Vec<_>>()
        },
        |leaders| {
            leaders[0].is_some_and(|l| replicas.iter().any(|r| r.id == l))
                && leaders.iter().all(|l| *l == leaders[0])
        },
    );
    leaders[0].expect("a leader")
}

/// Waits until every replica in `replicas` holds exactly `ids`.
fn converged(replicas: &[&Replica], ids: &[String]) {
    eventually(
        "replicas hold the same points",
        || replicas.iter().map(|r| r.status().ids).collect::<Vec<_>>(),
        |held| held.iter().all(|h| h == ids),
    );
}

/// Writes `record` through whichever of `replicas` leads, as a client does: a write the
/// replica did not take (it no longer leads, or its lease lapsed while a loaded machine
/// held up its heartbeats) is sent again to whoever leads then.
fn write(replicas: &[Replica], record: &Record0) -> ClientWriteResponse<ShardRaft> {
    let all: Vec<&Replica> = replicas.iter().collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leader = leader_of(&all);
        let target = all.iter().find(|r| r.id == leader).expect("held");
        match target.ask(|reply| Cmd::Write(record.clone(), reply)) {
            Ok(ack) => return ack,
            Err(Refusal::NotTaken(why)) if Instant::now() < deadline => {
                eprintln!("replica {leader} did not take a write ({why}); sending it again");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(Refusal::NotTaken(why) | Refusal::Unknown(why)) => {
                panic!("the leader takes the write: {why}")
            }
        }
    }
}

fn names(batch: usize, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("b{batch:03}-{i}")).collect()
}

fn tell_peers(replicas: &[&Replica]) {
    let list: Vec<(u64, SocketAddr)> = replicas.iter().map(|r| (r.id, r.addr)).collect();
    for r in replicas {
        assert!(
            r.tx.send(Cmd::Peers(list.clone())).is_ok(),
            "the replica runs"
        );
    }
}

/// Starts a group of replicas `ids`, each in `dir(id)`, and initializes every one with
/// the same members, as the control plane's assignments make initial replicas do.
fn start_group(
    ids: &[u64],
    dir: &dyn Fn(u64) -> PathBuf,
    faults: Option<&FaultPlan>,
) -> Vec<Replica> {
    let replicas: Vec<Replica> = ids
        .iter()
        .map(|&id| Replica::start(id, &dir(id), faults.cloned()))
        .collect();
    tell_peers(&replicas.iter().collect::<Vec<_>>());
    let members: BTreeMap<u64, ReplicaNode> = ids
        .iter()
        .map(|&id| {
            (
                id,
                ReplicaNode {
                    worker_id: id,
                    core: 0,
                },
            )
        })
        .collect();
    for r in &replicas {
        r.ask(|reply| Cmd::Initialize(members.clone(), reply))
            .expect("initializes");
    }
    replicas
}

fn find(replicas: &mut Vec<Replica>, id: u64) -> Replica {
    let at = replicas.iter().position(|r| r.id == id).expect("held");
    replicas.remove(at)
}

#[test]
fn a_group_of_three_survives_its_leaders_death_and_brings_replicas_back() {
    let root = tempfile::tempdir().unwrap();
    let dir = |id: u64| root.path().join(format!("replica-{id}"));
    let mut replicas = start_group(&[1, 2, 3], &dir, None);

    // Writes through the leader are acknowledged once applied, and reach every replica.
    // (Whoever leads takes them: on a loaded machine leadership may move at any time.)
    let mut expected: Vec<String> = Vec::new();
    for batch in 0..20 {
        let ids = names(batch, 3);
        let ack = write(&replicas, &Record0::Upsert(ids.clone()));
        assert_eq!(ack.data.count, 3);
        expected.extend(ids);
    }
    let ack = write(
        &replicas,
        &Record0::Delete(vec!["b000-0".into(), "missing".into()]),
    );
    assert_eq!(ack.data.count, 1, "one of the two ids existed");
    expected.retain(|id| id != "b000-0");
    expected.sort();
    // A follower refuses writes, naming the leader, and takes nothing.
    let first = leader_of(&replicas.iter().collect::<Vec<_>>());
    let follower = replicas.iter().find(|r| r.id != first).unwrap();
    let refused = follower
        .ask(|reply| Cmd::Write(Record0::Upsert(names(99, 1)), reply))
        .unwrap_err();
    assert!(
        matches!(&refused, Refusal::NotTaken(why) if why.contains("forward")),
        "{refused:?}"
    );
    converged(&replicas.iter().collect::<Vec<_>>(), &expected);

    // The leader dies; the other two elect a new one and go on taking writes.
    let first = leader_of(&replicas.iter().collect::<Vec<_>>());
    find(&mut replicas, first).kill();
    let second = leader_of(&replicas.iter().collect::<Vec<_>>());
    assert_ne!(second, first);
    for batch in 20..30 {
        let ids = names(batch, 2);
        write(&replicas, &Record0::Upsert(ids.clone()));
        expected.extend(ids);
    }
    expected.sort();
    converged(&replicas.iter().collect::<Vec<_>>(), &expected);

    // It comes back from its directory and catches up from the leader's log.
    replicas.push(Replica::start(first, &dir(first), None));
    tell_peers(&replicas.iter().collect::<Vec<_>>());
    converged(&replicas.iter().collect::<Vec<_>>(), &expected);

    // A follower away while the leader compacts its log comes back to a log that no
    // longer holds what it misses: the leader streams it a snapshot.
    let leader = leader_of(&replicas.iter().collect::<Vec<_>>());
    let away = replicas
        .iter()
        .map(|r| r.id)
        .find(|&id| id != leader)
        .unwrap();
    find(&mut replicas, away).kill();
    for batch in 30..40 {
        let ids = names(batch, 4);
        write(&replicas, &Record0::Upsert(ids.clone()));
        expected.extend(ids);
    }
    // Payloads large enough that the snapshot's files travel in several pieces.
    for i in 0..3 {
        let id = format!("heavy-{i}");
        write(&replicas, &Record0::Heavy(id.clone(), 1 << 20));
        expected.push(id);
    }
    expected.sort();
    // Both replicas compact, so that whichever leads when it returns has to send one.
    converged(&replicas.iter().collect::<Vec<_>>(), &expected);
    for r in &replicas {
        let compacted = r.ask(Cmd::Compact).expect("compacts");
        assert!(compacted.index > 30, "{compacted:?}");
    }
    replicas.push(Replica::start(away, &dir(away), None));
    tell_peers(&replicas.iter().collect::<Vec<_>>());
    converged(&replicas.iter().collect::<Vec<_>>(), &expected);
    // Its metrics follow the install a moment later.
    let returning = replicas.iter().find(|r| r.id == away).unwrap();
    eventually(
        "the returning replica installed a snapshot",
        || returning.status(),
        |s| s.snapshot.is_some(),
    );
    // Writes go on with all three.
    let ids = names(40, 5);
    write(&replicas, &Record0::Upsert(ids.clone()));
    expected.extend(ids);
    expected.sort();
    converged(&replicas.iter().collect::<Vec<_>>(), &expected);
    // Leadership moves to a replica that has caught up when the leader hands it over.
    // A transfer is a request: a target whose log is a step behind the leader's when it
    // arrives ignores it, and the group elects again. So whoever leads asks again until
    // the heir leads, as the cores' leader balance does.
    let leader = leader_of(&replicas.iter().collect::<Vec<_>>());
    let heir = replicas
        .iter()
        .map(|r| r.id)
        .find(|&id| id != leader)
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let leader = leader_of(&replicas.iter().collect::<Vec<_>>());
        if leader == heir {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the heir {heir} never leads (leader {leader})"
        );
        // Refused when leadership moved meanwhile: the next round asks the new leader.
        let _ = replicas
            .iter()
            .find(|r| r.id == leader)
            .unwrap()
            .ask(|reply| Cmd::Transfer(heir, reply));
        let asked = Instant::now();
        while asked.elapsed() < Duration::from_secs(3)
            && !replicas.iter().all(|r| r.status().leader == Some(heir))
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let ids = names(41, 2);
    write(&replicas, &Record0::Upsert(ids.clone()));
    expected.extend(ids);
    expected.sort();
    converged(&replicas.iter().collect::<Vec<_>>(), &expected);
    eventually(
        "every replica applied the same last entry",
        || {
            replicas
                .iter()
                .map(|r| r.status().applied)
                .collect::<Vec<_>>()
        },
        |a| a.iter().all(|x| *x == a[0]),
    );
    for r in replicas {
        r.kill();
    }
}

#[test]
fn a_follower_far_behind_catches_up_through_appends_bounded_in_bytes() {
    let root = tempfile::tempdir().unwrap();
    let dir = |id: u64| root.path().join(format!("replica-{id}"));
    let mut replicas = start_group(&[1, 2, 3], &dir, None);
    let leader = leader_of(&replicas.iter().collect::<Vec<_>>());
    let behind = replicas
        .iter()
        .map(|r| r.id)
        .find(|&id| id != leader)
        .unwrap();
    find(&mut replicas, behind).kill();
    // 24 entries of 1 MiB: more than one message may carry, whatever openraft's count
    // of entries per AppendEntries allows.
    let mut expected = Vec::new();
    for i in 0..24 {
        let id = format!("heavy-{i:02}");
        let ack = write(&replicas, &Record0::Heavy(id.clone(), 1 << 20));
        assert_eq!(ack.data.count, 1);
        expected.push(id);
    }
    replicas.push(Replica::start(behind, &dir(behind), None));
    tell_peers(&replicas.iter().collect::<Vec<_>>());
    converged(&replicas.iter().collect::<Vec<_>>(), &expected);
    for r in replicas {
        r.kill();
    }
}

/// The fault schedule's seed: `VECTRON_FAULT_SEED` to replay one, else a fixed one.
fn fault_seed() -> u64 {
    std::env::var("VECTRON_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(407_704_173_079)
}

#[test]
fn under_partitions_losses_and_restarts_no_acknowledged_write_is_lost() {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use std::collections::BTreeSet;

    let seed = fault_seed();
    eprintln!("fault schedule seed {seed} (VECTRON_FAULT_SEED={seed} replays it)");
    let mut rng = StdRng::seed_from_u64(seed);
    let plan = FaultPlan::new(seed);
    plan.set_drop_rate(0.05);
    plan.set_duplicate_rate(0.05);
    plan.set_max_delay(Duration::from_millis(15));

    let root = tempfile::tempdir().unwrap();
    let dir = |id: u64| root.path().join(format!("replica-{id}"));
    let ids = [1u64, 2, 3];
    let mut replicas = start_group(&ids, &dir, Some(&plan));

    let mut attempted = BTreeSet::new();
    let mut acked = BTreeSet::new();
    for round in 0..8 {
        // One fault per round, chosen by the seed.
        let victim = ids[rng.random_range(0..ids.len())];
        let fault = rng.random_range(0..4);
        match fault {
            0 => plan.isolate(victim, &ids),
            1 => plan.cut_one_way(victim, ids[(victim as usize) % ids.len()]),
            2 => find(&mut replicas, victim).kill(),
            _ => {}
        }
        for w in 0..8 {
            let id = format!("r{round}-w{w}");
            attempted.insert(id.clone());
            // A client retries for a while: to whoever a live replica believes leads,
            // else to any. Upserts by id are idempotent, so a retry of a write that did
            // take effect is harmless.
            // A replica that failed it is not asked again at once: a leader cut off from
            // its group still believes it leads, and the others elect a new one.
            let until = Instant::now() + Duration::from_secs(4);
            let believed = replicas.iter().find_map(|r| r.status().leader);
            let first = replicas
                .iter()
                .position(|r| Some(r.id) == believed)
                .unwrap_or(w % replicas.len());
            for attempt in 0.. {
                let target = &replicas[(first + attempt) % replicas.len()];
                let record = Record0::Upsert(vec![id.clone()]);
                if target.ask(|reply| Cmd::Write(record, reply)).is_ok() {
                    acked.insert(id.clone());
                    break;
                }
                if Instant::now() > until {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        plan.heal();
        if fault == 2 {
            replicas.push(Replica::start(victim, &dir(victim), Some(plan.clone())));
            tell_peers(&replicas.iter().collect::<Vec<_>>());
        }
    }

    // Calm: the group settles, and one more write through the leader commits everything
    // before it in every replica's log.
    plan.calm();
    let barrier = "barrier".to_string();
    attempted.insert(barrier.clone());
    write(&replicas, &Record0::Upsert(vec![barrier.clone()]));
    acked.insert(barrier);
    let held = eventually(
        "replicas converge",
        || replicas.iter().map(|r| r.status().ids).collect::<Vec<_>>(),
        |held| held.iter().all(|h| h == &held[0]) && held[0].contains(&"barrier".to_string()),
    );
    let held: BTreeSet<String> = held[0].iter().cloned().collect();
    let lost: Vec<&String> = acked.difference(&held).collect();
    assert!(
        lost.is_empty(),
        "acknowledged writes lost (seed {seed}): {lost:?}"
    );
    let phantom: Vec<&String> = held.difference(&attempted).collect();
    assert!(
        phantom.is_empty(),
        "points nobody wrote (seed {seed}): {phantom:?}"
    );
    assert!(
        acked.len() * 4 >= attempted.len() * 3,
        "the group took almost no writes (seed {seed}): {} of {}",
        acked.len(),
        attempted.len()
    );
    eprintln!(
        "{} of {} writes acknowledged, {} held",
        acked.len(),
        attempted.len(),
        held.len()
    );
    for r in replicas {
        r.kill();
    }
}

/// A core answers damaged or misaddressed replication messages with a clear refusal, and
/// none of them changes the replica.
#[test]
fn damaged_or_misaddressed_replication_messages_are_refused_with_the_reason() {
    use vectron_net::{Channel, Code};
    use vectron_proto::replication::v1 as pb;
    use vectron_replica::{APPEND_PATH, INSTALL_SNAPSHOT_PATH, VOTE_PATH};

    let root = tempfile::tempdir().unwrap();
    let dir = |id: u64| root.path().join(format!("replica-{id}"));
    let replicas = start_group(&[1, 2, 3], &dir, None);
    let leader = leader_of(&replicas.iter().collect::<Vec<_>>());
    let target = replicas.iter().find(|r| r.id != leader).unwrap();
    let before = target.status();
    let addr = target.addr;
    let id = target.id;
    let outcome = std::thread::spawn(move || {
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .expect("a runtime")
            .block_on(async move {
                let route = |to: u64| pb::Route {
                    group: Some(pb::Group {
                        collection: "replicated".into(),
                        incarnation: 1,
                        shard_id: 0,
                    }),
                    from: leader,
                    to,
                };
                let vote = || {
                    Some(pb::Vote {
                        term: 1,
                        node_id: leader,
                        committed: true,
                    })
                };
                let channel = Channel::new(addr, ClientConfig::default()).expect("a channel");
                let timeout = Duration::from_secs(5);
                // An append for a replica this core does not hold, and one whose entry is
                // not a record body: each refused on its own, in order.
                let batch = pb::AppendBatch {
                    requests: vec![
                        pb::AppendRequest {
                            route: Some(route(99)),
                            vote: vote(),
                            ..Default::default()
                        },
                        pb::AppendRequest {
                            route: Some(route(id)),
                            vote: vote(),
                            entries: vec![pb::Entry {
                                term: 1,
                                index: 1_000,
                                body: vec![1, 2, 3],
                            }],
                            ..Default::default()
                        },
                    ],
                };
                let answers: pb::AppendBatchResponse = channel
                    .unary(APPEND_PATH, &batch, timeout)
                    .await
                    .expect("answered");
                let refused = pb::AppendOutcome::Refused as i32;
                assert_eq!(answers.responses.len(), 2);
                assert_eq!(answers.responses[0].outcome, refused);
                assert!(
                    answers.responses[0].error.contains("holds no replica 99"),
                    "{:?}",
                    answers.responses[0]
                );
                assert_eq!(answers.responses[1].outcome, refused);
                assert!(
                    answers.responses[1].error.contains("entry 1000"),
                    "{:?}",
                    answers.responses[1]
                );

                // A vote for an unknown replica, and one without a vote.
                let unknown = pb::VoteRequest {
                    route: Some(route(99)),
                    vote: vote(),
                    ..Default::default()
                };
                let err = channel
                    .unary::<_, pb::VoteResponse>(VOTE_PATH, &unknown, timeout)
                    .await
                    .unwrap_err();
                assert_eq!(err.code(), Code::NotFound, "{err}");
                let voteless = pb::VoteRequest {
                    route: Some(route(id)),
                    ..Default::default()
                };
                let err = channel
                    .unary::<_, pb::VoteResponse>(VOTE_PATH, &voteless, timeout)
                    .await
                    .unwrap_err();
                assert_eq!(err.code(), Code::InvalidArgument, "{err}");

                // Snapshot streams: no start message, a path for a name, a damaged file.
                let start = pb::SnapshotChunk {
                    part: Some(pb::snapshot_chunk::Part::Start(pb::SnapshotStart {
                        route: Some(route(id)),
                        vote: vote(),
                        meta_json: serde_json::to_vec(&vectron_replica::SnapshotMeta::default())
                            .expect("encodes"),
                    })),
                };
                let piece = |name: &str, crc32c: u32| pb::SnapshotChunk {
                    part: Some(pb::snapshot_chunk::Part::File(pb::FileChunk {
                        name: name.into(),
                        offset: 0,
                        data: b"bytes".to_vec(),
                        last: true,
                        crc32c,
                    })),
                };
                let send = |chunks: Vec<pb::SnapshotChunk>| {
                    let channel = channel.clone();
                    async move {
                        let mut chunks = chunks.into_iter();
                        channel
                            .client_streaming::<_, pb::SnapshotResponse>(
                                INSTALL_SNAPSHOT_PATH,
                                async || Ok(chunks.next()),
                                timeout,
                            )
                            .await
                            .unwrap_err()
                    }
                };
                let err = send(vec![piece("index.hnsw", 0)]).await;
                assert_eq!(err.code(), Code::InvalidArgument, "{err}");
                let err = send(vec![start.clone(), piece("../escape", 0)]).await;
                assert_eq!(err.code(), Code::InvalidArgument, "{err}");
                let err = send(vec![start, piece("index.hnsw", 0xdead_beef)]).await;
                assert_eq!(err.code(), Code::DataLoss, "{err}");
                assert!(err.message().contains("CRC-32C"), "{err}");
            });
    })
    .join();
    assert!(outcome.is_ok(), "the checks ran");
    // The replica is as it was, and the group goes on.
    let after = target.status();
    assert_eq!(
        (after.applied, after.snapshot),
        (before.applied, before.snapshot)
    );
    let ack = write(&replicas, &Record0::Upsert(vec!["after".into()]));
    assert_eq!(ack.data.count, 1);
    converged(&replicas.iter().collect::<Vec<_>>(), &["after".to_string()]);
    for r in replicas {
        r.kill();
    }
}
