//! A replicated shard's Raft side on its core: the group's Raft (its log the shard's v2
//! write-ahead log, its state machine a [`ShardMachine`] sharing the shard's state with
//! the core's reads and indexer), the proposer writes go through, and the core-wide
//! registry ([`ReplicaHost`]) the `vectron.replication.v1` service and the peers'
//! channels hang off.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use openraft::Raft;
use openraft::async_runtime::WatchReceiver as _;
use openraft::error::{InitializeError, LinearizableReadError, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::raft::ReadPolicy;
use vectron_net::ClientConfig;
use vectron_proto::v1::ReplicaStats;
use vectron_replica::{
    GroupId, GroupNetwork, GroupSettings, LogStore, Peers, ProposeError, Proposer, ReplicaNode,
    Replicas, ShardOp, ShardRaft, lsn_of,
};
use vectron_wal::{Options, Wal};

use crate::error::ShardError;
use crate::machine::ShardMachine;
use crate::shard::ShardState;
use crate::spec::{ReplicaSpec, ShardSpec};

/// How long a replica leads before it hands the leadership to its group's preferred
/// leader: long enough that a leader elected after a failover first serves the writes
/// that waited for it, and that a preferred leader that just came back has caught up.
const LEADER_SETTLE: Duration = Duration::from_secs(2);

/// How long a new group's replicas other than its preferred leader wait before they
/// start the group themselves.
const DEFERRED_START: Duration = Duration::from_secs(1);

/// How long a snapshot the core asks for may take to be built.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(600);

/// What the replicas of one core share: their registry (which the core's
/// `vectron.replication.v1` service serves), where their peers are, and how their
/// groups run.
pub struct ReplicaHost {
    replicas: Rc<Replicas<ShardMachine>>,
    peers: Rc<Peers>,
    settings: GroupSettings,
    /// Called when a replica applied points: wakes the core's indexer.
    on_apply: Rc<dyn Fn()>,
}

impl std::fmt::Debug for ReplicaHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaHost")
            .field("replicas", &self.replicas)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ReplicaHost {
    /// A host whose groups run with `settings` and reach their peers with `client`,
    /// calling `on_apply` whenever one of its replicas applied entries or installed a
    /// snapshot (its points wait to be indexed).
    pub fn new(settings: GroupSettings, client: ClientConfig, on_apply: Rc<dyn Fn()>) -> Self {
        // Append batches reach 8 MiB (`MAX_APPEND_BATCH_BYTES`); peers' servers take
        // messages up to the worker's 64 MiB (the default client takes 64 MiB too).
        Self {
            replicas: Rc::new(Replicas::default()),
            peers: Rc::new(Peers::new(client)),
            settings,
            on_apply,
        }
    }

    /// The replicas held, for the replication service.
    pub fn replicas(&self) -> &Rc<Replicas<ShardMachine>> {
        &self.replicas
    }
}

/// One replica of a replicated shard, on the core that holds it.
pub(crate) struct ShardReplica {
    id: u64,
    group: GroupId,
    raft: Raft<ShardRaft, ShardMachine>,
    machine: ShardMachine,
    proposer: Proposer<ShardMachine>,
    host: Rc<ReplicaHost>,
    /// Where the group's voters are, as last assigned.
    peers: RefCell<BTreeMap<u64, SocketAddr>>,
    /// The replica that should lead, as last assigned.
    preferred_leader: Cell<Option<u64>>,
    /// Since when this replica has led, and in which term.
    leading_since: Cell<Option<(u64, Instant)>>,
}

impl std::fmt::Debug for ShardReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardReplica")
            .field("id", &self.id)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// Why a linearizable read was refused.
#[derive(Debug)]
pub(crate) enum ReadRefused {
    /// This replica does not lead (the leader it knows of, if any).
    NotLeader(Option<u64>),
    /// Its leadership could not be confirmed (no majority answered).
    Unconfirmed(String),
}

/// What opening a replica gives its shard handle.
pub(crate) struct Opened {
    pub(crate) replica: ShardReplica,
    pub(crate) state: Rc<RefCell<ShardState>>,
    pub(crate) wal: Rc<Wal>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> ShardError {
    ShardError::Replay {
        reason: format!("{what}: {e}"),
    }
}

impl ShardReplica {
    /// Opens replica `replica` of the shard stored in `dir`: its log, its state (its
    /// newest snapshot; openraft applies the committed entries after it), its Raft. An
    /// initial replica starts the group with its peers as voters, which every initial
    /// replica does alike (and which does nothing once the group has begun).
    pub(crate) async fn open(
        dir: &Path,
        spec: &ShardSpec,
        replica: &ReplicaSpec,
        wal: Options,
        host: &Rc<ReplicaHost>,
    ) -> Result<Opened, ShardError> {
        let group = GroupId {
            collection: spec.name().to_owned(),
            incarnation: spec.incarnation,
            shard_id: spec.shard_id,
        };
        let store = LogStore::open(dir.join("wal"), wal)
            .await
            .map_err(|e| failed("the replica's log cannot be opened", e))?;
        let log = store.shared_wal();
        let machine = ShardMachine::open(dir, spec.clone()).await?;
        machine.on_apply(Rc::clone(&host.on_apply));
        for (&id, &addr) in &replica.peers {
            if id != replica.id {
                host.peers.set(id, addr);
            }
        }
        let network = GroupNetwork::new(group.clone(), replica.id, Rc::clone(&host.peers));
        let config = host
            .settings
            .config()
            .map_err(|e| failed("the group's settings", e))?;
        let raft = Raft::new(replica.id, config, network, store, machine.clone())
            .await
            .map_err(|e| failed("the replica's Raft did not start", e))?;
        if replica.initial {
            let voters: BTreeMap<u64, ReplicaNode> = replica
                .peers
                .keys()
                .map(|&id| (id, ReplicaNode::default()))
                .collect();
            if replica.preferred_leader.is_some_and(|p| p != replica.id) {
                // The preferred leader starts the group at once and so wins its first
                // election; another replica starts it only if the preferred one has not
                // reached it by then (it may be down), so a new collection does not
                // begin with its leaderships moving under the first writes.
                let raft = raft.clone();
                monoio::spawn(async move {
                    monoio::time::sleep(DEFERRED_START).await;
                    if let Err(e) = raft.initialize(voters).await
                        && !matches!(e, RaftError::APIError(InitializeError::NotAllowed(_)))
                    {
                        tracing::warn!(error = %e, "a replica could not start its group");
                    }
                });
            } else {
                match raft.initialize(voters).await {
                    // Not allowed: the group began already (this replica restarted, or a
                    // peer's election reached it first).
                    Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                    Err(e) => {
                        let _ = raft.shutdown().await;
                        return Err(failed("the group could not be started", e));
                    }
                }
            }
        }
        host.replicas
            .insert(group.clone(), replica.id, raft.clone(), dir);
        let state = machine.state();
        Ok(Opened {
            replica: Self {
                id: replica.id,
                group,
                proposer: Proposer::start(raft.clone(), replica.id),
                raft,
                machine,
                host: Rc::clone(host),
                peers: RefCell::new(replica.peers.clone()),
                preferred_leader: Cell::new(replica.preferred_leader),
                leading_since: Cell::new(None),
            },
            state,
            wal: log,
        })
    }

    /// Takes a new assignment's peer addresses (a worker that restarted on other ports).
    pub(crate) fn set_peers(&self, replica: &ReplicaSpec) {
        for (&id, &addr) in &replica.peers {
            if id != self.id {
                self.host.peers.set(id, addr);
            }
        }
        *self.peers.borrow_mut() = replica.peers.clone();
        self.preferred_leader.set(replica.preferred_leader);
    }

    /// Hands the leadership to the preferred leader when this replica leads and is not
    /// it, has led for [`LEADER_SETTLE`] in this term, and the preferred one has every
    /// entry this replica has: leaders go back where placement spread them after a
    /// failover, without a write waiting on an election. Returns whether it handed over.
    pub(crate) async fn hand_over(&self) -> bool {
        let Some(preferred) = self.preferred_leader.get().filter(|&p| p != self.id) else {
            return false;
        };
        let caught_up = {
            let metrics = self.raft.metrics();
            let m = metrics.borrow_watched();
            if m.current_leader != Some(self.id) {
                self.leading_since.set(None);
                return false;
            }
            match self.leading_since.get() {
                Some((term, since)) if term == m.current_term => {
                    if since.elapsed() < LEADER_SETTLE {
                        return false;
                    }
                }
                _ => {
                    self.leading_since
                        .set(Some((m.current_term, Instant::now())));
                    return false;
                }
            }
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&preferred))
                .and_then(|l| l.as_ref().map(|l| l.index));
            matched.is_some() && matched >= m.last_log_index
        };
        if !caught_up {
            return false;
        }
        self.leading_since.set(None);
        self.raft.trigger().transfer_leader(preferred).await.is_ok()
    }

    /// Why the replica's Raft stopped, if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        match &self.raft.metrics().borrow_watched().running_state {
            Ok(()) => None,
            Err(fatal) => Some(format!("the replica's Raft stopped: {fatal}")),
        }
    }

    /// Proposes `op`; resolves once it is committed and applied here.
    pub(crate) fn propose(
        &self,
        op: ShardOp,
    ) -> Result<
        impl Future<Output = Result<ClientWriteResponse<ShardRaft>, ProposeError>> + 'static,
        ProposeError,
    > {
        self.proposer.propose(op)
    }

    /// Whether the replica may answer a read: it leads, or follows a leader it has heard
    /// from (a replica cut off from its group, or waiting for an election, has no leader
    /// and may be behind without knowing).
    pub(crate) fn check_readable(&self) -> Result<(), String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        if metrics.current_leader.is_none() {
            return Err("it knows no leader of its group (an election is under way)".into());
        }
        let index = |l: &Option<vectron_replica::LogId>| l.as_ref().map(|l| l.index);
        if index(&metrics.last_applied) < index(&metrics.local_committed) {
            // Still applying what it knows is committed (a replica that restarted).
            return Err("it is still applying its log".into());
        }
        Ok(())
    }

    /// Confirms this replica leads its group (a ReadIndex round with a majority) and
    /// waits until it has applied every entry committed when the round began: a read
    /// after it sees every write acknowledged before it.
    pub(crate) async fn linearize(&self) -> Result<(), ReadRefused> {
        if !self.proposer.is_leader() {
            return Err(ReadRefused::NotLeader(self.proposer.leader()));
        }
        match self.raft.ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(f))) => {
                Err(ReadRefused::NotLeader(f.leader_id))
            }
            Err(e) => Err(ReadRefused::Unconfirmed(e.to_string())),
        }
    }

    /// Whether applies are held while a snapshot writes its files.
    pub(crate) fn applies_held(&self) -> bool {
        self.machine.applies_held()
    }

    /// LSN of the newest snapshot (0 when none).
    pub(crate) fn snapshot_lsn(&self) -> u64 {
        self.raft
            .metrics()
            .borrow_watched()
            .snapshot
            .map_or(0, |s| lsn_of(s.index).get())
    }

    /// LSN of the last entry applied (0 when none).
    pub(crate) fn applied_lsn(&self) -> u64 {
        self.machine.applied().map_or(0, |l| lsn_of(l.index).get())
    }

    /// Builds a snapshot (a checkpoint) of everything applied, after which openraft
    /// purges the log it covers, bar the entries a lagging follower may still need.
    /// Returns the LSN it covers.
    pub(crate) async fn snapshot(&self) -> Result<u64, ShardError> {
        let applied = self.applied_lsn();
        if applied <= self.snapshot_lsn() {
            return Ok(self.snapshot_lsn());
        }
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| failed("the snapshot could not be asked for", e))?;
        let deadline = Instant::now() + SNAPSHOT_WAIT;
        loop {
            let covered = self.snapshot_lsn();
            if covered >= applied {
                return Ok(covered);
            }
            if let Some(reason) = self.failure() {
                return Err(failed("snapshot", reason));
            }
            if Instant::now() > deadline {
                return Err(failed(
                    "snapshot",
                    format!("none covering LSN {applied} after {SNAPSHOT_WAIT:?}"),
                ));
            }
            monoio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The replica as its stats report it.
    pub(crate) fn stats(&self) -> ReplicaStats {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        ReplicaStats {
            replica_id: self.id,
            leader: metrics.current_leader == Some(self.id),
            leader_id: metrics.current_leader.unwrap_or(0),
            term: metrics.current_term,
            applied_lsn: self.applied_lsn(),
            voters: metrics.membership_config.membership().voter_ids().collect(),
        }
    }

    /// Stops the replica: no more proposals, its Raft shut down, its registration gone.
    /// (The caller closes the log.)
    pub(crate) async fn shutdown(&self) {
        self.proposer.close();
        self.host.replicas.remove(&self.group, self.id);
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(group = %self.group, replica = self.id, error = %e, "the replica's Raft did not stop cleanly");
        }
    }
}
