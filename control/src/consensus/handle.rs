//! The control node's Raft on a thread of its own, reached through a `Send` handle.
//!
//! openraft is built with its `single-threaded` feature for the whole binary: the data
//! plane's Raft groups run on the cores' monoio runtimes, and Cargo unifies a crate's
//! features across everything `vectron` links. In that build `Raft` is not `Send` and
//! spawns its tasks with `spawn_local`, so the control plane's Raft cannot live on the
//! node's multi-threaded runtime beside tonic's handlers. It runs on one thread instead —
//! a current-thread tokio runtime driving a `LocalSet` — and everything else (the gRPC
//! services, the Raft transport, the reconciler) reaches it through a [`RaftHandle`]:
//!
//! ```text
//!   tonic handlers, reconciler ──job (mpsc)──► control-raft thread: LocalSet
//!            ▲                                   └─ spawn_local(job(raft)) ──► openraft
//!            └──────────── answer (oneshot) ─────────────┘
//!   metrics: openraft's watch channel, read from any thread
//! ```
//!
//! Each job runs as its own local task, so calls proceed concurrently as they did on a
//! shared runtime. A call made after the Raft thread stopped answers as openraft does
//! for a node that was shut down ([`Fatal::Stopped`]).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use openraft::async_runtime::WatchReceiver as _;
use openraft::errors::{ClientWriteError, Fatal, ForwardToLeader, InitializeError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, ClientWriteResponse, SnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{ChangeMembers, RaftMetrics, ServerState};
use tokio::sync::{mpsc, oneshot};

use super::network::NetworkFactory;
use super::store::{LogStore, StateMachine};
use super::{ControlRaft, PeerNode, Snapshot, TypeConfig, Vote};
use crate::state::Command;

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;
type Job = Box<dyn FnOnce(ControlRaft) -> LocalFuture + Send>;
type Metrics = openraft::alias::WatchReceiverOf<TypeConfig, RaftMetrics<TypeConfig>>;
type WriteResult =
    Result<ClientWriteResponse<TypeConfig>, RaftError<TypeConfig, ClientWriteError<TypeConfig>>>;

/// The error a call answers with once the Raft thread has stopped.
trait Stopped {
    fn stopped() -> Self;
}

impl Stopped for Fatal<TypeConfig> {
    fn stopped() -> Self {
        Fatal::Stopped
    }
}

impl<E> Stopped for RaftError<TypeConfig, E> {
    fn stopped() -> Self {
        RaftError::Fatal(Fatal::Stopped)
    }
}

/// How the Raft thread failed to start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartError {
    /// The thread or its runtime could not be created.
    #[error("starting the control Raft thread: {0}")]
    Thread(#[source] std::io::Error),
    /// openraft refused to start.
    #[error(transparent)]
    Raft(Fatal<TypeConfig>),
}

/// The control node's Raft, callable from any thread. Cheap to clone.
#[derive(Clone)]
pub(crate) struct RaftHandle {
    jobs: mpsc::UnboundedSender<Job>,
    metrics: Metrics,
    /// Ends the Raft thread once its Raft has shut down.
    stop: Arc<std::sync::Mutex<Option<oneshot::Sender<()>>>>,
}

impl std::fmt::Debug for RaftHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftHandle")
            .field("running", &!self.jobs.is_closed())
            .finish_non_exhaustive()
    }
}

impl RaftHandle {
    /// Starts openraft for `node_id` on a new thread and returns once it runs.
    pub(crate) async fn start(
        node_id: u64,
        config: Arc<openraft::Config>,
        network: NetworkFactory,
        log: LogStore,
        machine: StateMachine,
    ) -> Result<Self, StartError> {
        let (started_tx, started_rx) = oneshot::channel();
        let (jobs, mut job_rx) = mpsc::unbounded_channel::<Job>();
        let (stop, mut stop_rx) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StartError::Thread)?;
        std::thread::Builder::new()
            .name(format!("control-raft-{node_id}"))
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    let raft = match ControlRaft::new(node_id, config, network, log, machine).await
                    {
                        Ok(raft) => raft,
                        Err(e) => {
                            let _ = started_tx.send(Err(e));
                            return;
                        }
                    };
                    if started_tx.send(Ok(raft.metrics())).is_err() {
                        // Nobody waits for this node any more.
                        let _ = raft.shutdown().await;
                        return;
                    }
                    loop {
                        tokio::select! {
                            job = job_rx.recv() => match job {
                                Some(job) => {
                                    tokio::task::spawn_local(job(raft.clone()));
                                }
                                None => break,
                            },
                            _ = &mut stop_rx => break,
                        }
                    }
                    // Jobs still queued are dropped: their callers see a stopped node.
                });
                // Dropping the LocalSet ends openraft's remaining tasks, which release
                // the store.
            })
            .map_err(StartError::Thread)?;
        let metrics = started_rx
            .await
            .map_err(|_| StartError::Raft(Fatal::Stopped))?
            .map_err(StartError::Raft)?;
        Ok(Self {
            jobs,
            metrics,
            stop: Arc::new(std::sync::Mutex::new(Some(stop))),
        })
    }

    /// Runs `f` with the Raft on its thread and returns its answer; `None` when the Raft
    /// thread has stopped.
    async fn run_job<F, Fut, R>(&self, f: F) -> Option<R>
    where
        F: FnOnce(ControlRaft) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |raft| {
            Box::pin(async move {
                let _ = tx.send(f(raft).await);
            })
        });
        self.jobs.send(job).ok()?;
        rx.await.ok()
    }

    /// [`run_job`](Self::run_job) for a call that answers a result: a stopped Raft thread
    /// answers as openraft does for a node that was shut down.
    async fn call<F, Fut, T, E>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(ControlRaft) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + 'static,
        T: Send + 'static,
        E: Stopped + Send + 'static,
    {
        self.run_job(f).await.unwrap_or_else(|| Err(E::stopped()))
    }

    /// openraft's metrics, readable from any thread.
    pub(crate) fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// [`openraft::Raft::client_write`].
    pub(crate) async fn client_write(&self, command: Command) -> WriteResult {
        self.call(move |raft| async move { raft.client_write(command).await })
            .await
    }

    /// [`openraft::Raft::add_learner`].
    pub(crate) async fn add_learner(
        &self,
        node_id: u64,
        node: PeerNode,
        blocking: bool,
    ) -> WriteResult {
        self.call(move |raft| async move { raft.add_learner(node_id, node, blocking).await })
            .await
    }

    /// [`openraft::Raft::change_membership`].
    pub(crate) async fn change_membership(
        &self,
        members: ChangeMembers<u64, PeerNode>,
        retain: bool,
    ) -> WriteResult {
        self.call(move |raft| async move { raft.change_membership(members, retain).await })
            .await
    }

    /// Whether this node leads now, or where to go instead ([`openraft::Raft::as_leader`]
    /// without the leader handle), read from the metrics on the calling thread: no trip to
    /// the Raft thread. A stopped node reports itself shut down, so it never leads.
    pub(crate) fn as_leader(&self) -> Result<(), ForwardToLeader<TypeConfig>> {
        let metrics = self.metrics.borrow_watched();
        if metrics.state == ServerState::Leader {
            return Ok(());
        }
        Err(match metrics.current_leader {
            Some(id) => match metrics.membership_config.get_node(&id) {
                Some(node) => ForwardToLeader::new(id, node.clone()),
                None => ForwardToLeader {
                    leader_id: Some(id),
                    ..ForwardToLeader::empty()
                },
            },
            None => ForwardToLeader::empty(),
        })
    }

    /// [`openraft::Raft::is_initialized`].
    pub(crate) async fn is_initialized(&self) -> Result<bool, Fatal<TypeConfig>> {
        self.call(|raft| async move { raft.is_initialized().await })
            .await
    }

    /// [`openraft::Raft::initialize`].
    pub(crate) async fn initialize(
        &self,
        members: BTreeMap<u64, PeerNode>,
    ) -> Result<(), RaftError<TypeConfig, InitializeError<TypeConfig>>> {
        self.call(move |raft| async move { raft.initialize(members).await })
            .await
    }

    /// [`openraft::Raft::vote`].
    pub(crate) async fn vote(
        &self,
        request: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>> {
        self.call(move |raft| async move { raft.vote(request).await })
            .await
    }

    /// [`openraft::Raft::pre_vote`].
    pub(crate) async fn pre_vote(
        &self,
        request: VoteRequest<TypeConfig>,
    ) -> Result<VoteResponse<TypeConfig>, RaftError<TypeConfig>> {
        self.call(move |raft| async move { raft.pre_vote(request).await })
            .await
    }

    /// [`openraft::Raft::append_entries`].
    pub(crate) async fn append_entries(
        &self,
        request: AppendEntriesRequest<TypeConfig>,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RaftError<TypeConfig>> {
        self.call(move |raft| async move { raft.append_entries(request).await })
            .await
    }

    /// [`openraft::Raft::install_full_snapshot`].
    pub(crate) async fn install_full_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
    ) -> Result<SnapshotResponse<TypeConfig>, Fatal<TypeConfig>> {
        self.call(move |raft| async move { raft.install_full_snapshot(vote, snapshot).await })
            .await
    }

    /// Shuts openraft down, then ends the Raft thread. Later calls answer as a stopped
    /// node.
    pub(crate) async fn shutdown(&self) -> Result<(), String> {
        let result = self
            .run_job(|raft| async move { raft.shutdown().await.map_err(|e| e.to_string()) })
            .await
            .unwrap_or(Ok(()));
        let stop = self
            .stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::store;
    use crate::state::Applied;

    /// A one-node cluster on its Raft thread, driven from a multi-threaded runtime's
    /// tasks as the services drive it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn calls_from_other_threads_reach_the_raft_and_a_stopped_one_answers_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let opened = store::open(dir.path(), 1).unwrap();
        let config = Arc::new(
            openraft::Config {
                heartbeat_interval: 50,
                election_timeout_min: 150,
                election_timeout_max: 300,
                ..openraft::Config::default()
            }
            .validate()
            .unwrap(),
        );
        let raft = RaftHandle::start(
            1,
            config,
            NetworkFactory::new(1, vectron_proto::cluster::PresentKey::default()),
            opened.log,
            opened.machine,
        )
        .await
        .unwrap();
        assert!(!raft.is_initialized().await.unwrap());
        raft.initialize(BTreeMap::from([(
            1,
            PeerNode {
                address: "127.0.0.1:1".into(),
            },
        )]))
        .await
        .unwrap();
        let leading = raft.clone();
        tokio::spawn(async move {
            while leading.as_leader().is_err() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
        let written = tokio::spawn({
            let raft = raft.clone();
            async move {
                raft.client_write(Command::InitCluster {
                    cluster_id: "c1".into(),
                })
                .await
            }
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(written.data, Ok(Applied::ClusterInitialized));
        assert_eq!(opened.shared.read().state.cluster_id, "c1");
        assert_eq!(
            raft.metrics().borrow_watched().current_leader,
            Some(1),
            "metrics are read from this thread"
        );

        raft.shutdown().await.unwrap();
        let after = raft
            .client_write(Command::InitCluster {
                cluster_id: "c2".into(),
            })
            .await;
        assert!(
            matches!(after, Err(RaftError::Fatal(Fatal::Stopped))),
            "{after:?}"
        );
        assert!(raft.as_leader().is_err());
        // The thread ended and openraft released the store.
        tokio::time::timeout(std::time::Duration::from_secs(5), opened.closed)
            .await
            .expect("the store is closed once the Raft thread ends")
            .unwrap();
    }
}
