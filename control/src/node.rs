//! A control node: its configuration, start-up (bootstrap or join), the gRPC server, the
//! reconciler, and shutdown.
//!
//! ```text
//!   start ─► open store (redb) ─► bind ─► Raft::new ─► serve Control + RaftTransport
//!                                              │
//!                   pristine, no --join ─► initialize a one-node cluster
//!                   pristine, --join    ─► JoinCluster on a seed (learner, then voter)
//!                   restarted           ─► resume from disk (and re-join in the background)
//!   reconciler (every tick, leader only): name the cluster, mark silent workers down,
//!                                         commit what heartbeats reported
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver as _;
use openraft::{ServerState, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use vectron_auth::ClusterKey;
use vectron_proto::cluster::{PresentKey, RequireKey};
use vectron_proto::control::v1::control_server::ControlServer;
use vectron_proto::control::v1::raft_transport_server::RaftTransportServer;

use crate::client::{ClientError, ControlClient, RetryPolicy};
use crate::consensus::PeerNode;
use crate::consensus::handle::RaftHandle;
use crate::consensus::network::{MAX_MESSAGE_BYTES, NetworkFactory};
use crate::consensus::store::{self, StoreError};
use crate::consensus::transport::RaftService;
use crate::error::ServiceError;
use crate::liveness::LivenessConfig;
use crate::service::{ControlService, NodeCore, convert::is_host_port};
use crate::state::Command;

/// How a control node runs. [`ControlConfig::new`] gives production defaults; adjust the
/// public fields, and [`ControlNode::start`] validates the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    /// Raft node id, 1 or more, never reused for another node.
    pub node_id: u64,
    /// Address the gRPC listener binds (port 0 picks a free port).
    pub listen: SocketAddr,
    /// `host:port` other nodes and clients use to reach this node; `None` uses the bound
    /// address.
    pub advertise: Option<String>,
    /// Directory of the node's store (`control.redb`).
    pub data_dir: PathBuf,
    /// Control nodes to join through (`host:port`); empty bootstraps a new cluster when
    /// the store is empty.
    pub join: Vec<String>,
    /// Interval of Raft heartbeats from the leader.
    pub raft_heartbeat: Duration,
    /// Lower bound of the randomised election timeout.
    pub election_timeout_min: Duration,
    /// Upper bound of the randomised election timeout.
    pub election_timeout_max: Duration,
    /// How often workers are asked to heartbeat.
    pub worker_heartbeat: Duration,
    /// A worker silent for longer is marked down.
    pub worker_timeout: Duration,
    /// Load figures from heartbeats are committed at most this often per worker.
    pub stats_flush_interval: Duration,
    /// How often the leader's reconciler runs.
    pub reconcile_interval: Duration,
    /// A snapshot is taken after this many log entries; older entries are then purged.
    pub snapshot_every: u64,
    /// Log entries kept behind the last snapshot, so that a briefly absent follower
    /// catches up from the log rather than from a snapshot.
    pub keep_after_snapshot: u64,
    /// How long a pristine node keeps trying to join before it gives up.
    pub join_timeout: Duration,
    /// The key every caller of the control port must present (`UNAUTHENTICATED`
    /// without it), and that this node presents to its peers. Give every member of the
    /// cluster the same one. Default none: calls are not checked.
    pub cluster_key: Option<ClusterKey>,
    /// Listen on an address other than loopback without a cluster key: anyone who
    /// reaches the port may then register workers and send Raft messages. Without it
    /// (or a key) such a node refuses to start. Default off.
    pub insecure: bool,
}

/// A configuration that cannot run.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Node id 0.
    #[error("node id 0 is reserved: control node ids start at 1")]
    NodeIdZero,
    /// The election timeout range is empty or not above the heartbeat.
    #[error(
        "election timeout must satisfy heartbeat ({heartbeat:?}) < min ({min:?}) < max ({max:?})"
    )]
    ElectionTimeout {
        /// Raft heartbeat.
        heartbeat: Duration,
        /// Lower bound.
        min: Duration,
        /// Upper bound.
        max: Duration,
    },
    /// The worker timeout does not leave room for a missed heartbeat.
    #[error(
        "worker timeout ({timeout:?}) must be at least twice the worker heartbeat ({heartbeat:?})"
    )]
    WorkerTimeout {
        /// Worker timeout.
        timeout: Duration,
        /// Worker heartbeat interval.
        heartbeat: Duration,
    },
    /// A duration that must be positive is zero.
    #[error("{field} must be more than zero")]
    Zero {
        /// The setting.
        field: &'static str,
    },
    /// An address is not `host:port`.
    #[error("{field} address {address:?} is not host:port")]
    Address {
        /// The setting.
        field: &'static str,
        /// The address as given.
        address: String,
    },
    /// The node listens on every interface and says nothing of how to reach it.
    #[error(
        "listening on {listen} (every interface): give the address peers and clients should use (advertise)"
    )]
    AdvertiseRequired {
        /// The listen address.
        listen: SocketAddr,
    },
    /// A network address with neither a cluster key nor `insecure`.
    #[error(
        "refusing to listen on {listen} without a cluster key: anyone who reaches the control port could register workers and send Raft messages; give every member --cluster-key-file, listen on loopback, or on a private network add --insecure"
    )]
    OpenOnNetwork {
        /// The listen address.
        listen: SocketAddr,
    },
    /// openraft refused the derived configuration.
    #[error("the Raft configuration is invalid")]
    Raft(#[source] openraft::ConfigError),
}

impl ControlConfig {
    /// Production defaults for node `node_id` listening on `listen` with its store in
    /// `data_dir`: Raft heartbeat 100 ms, election timeout 1 to 2 s, workers heartbeat
    /// every second and are marked down after 5 s of silence.
    #[must_use]
    pub fn new(node_id: u64, listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            node_id,
            listen,
            advertise: None,
            data_dir: data_dir.into(),
            join: Vec::new(),
            raft_heartbeat: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(1000),
            election_timeout_max: Duration::from_millis(2000),
            worker_heartbeat: Duration::from_secs(1),
            worker_timeout: Duration::from_secs(5),
            stats_flush_interval: Duration::from_secs(2),
            reconcile_interval: Duration::from_millis(250),
            snapshot_every: 1000,
            keep_after_snapshot: 1000,
            join_timeout: Duration::from_secs(60),
            cluster_key: None,
            insecure: false,
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// The first setting that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.node_id == 0 {
            return Err(ConfigError::NodeIdZero);
        }
        for (field, value) in [
            ("raft_heartbeat", self.raft_heartbeat),
            ("worker_heartbeat", self.worker_heartbeat),
            ("stats_flush_interval", self.stats_flush_interval),
            ("reconcile_interval", self.reconcile_interval),
            ("join_timeout", self.join_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Zero { field });
            }
        }
        if self.snapshot_every == 0 {
            return Err(ConfigError::Zero {
                field: "snapshot_every",
            });
        }
        if !(self.raft_heartbeat < self.election_timeout_min
            && self.election_timeout_min < self.election_timeout_max)
        {
            return Err(ConfigError::ElectionTimeout {
                heartbeat: self.raft_heartbeat,
                min: self.election_timeout_min,
                max: self.election_timeout_max,
            });
        }
        if self.worker_timeout < self.worker_heartbeat * 2 {
            return Err(ConfigError::WorkerTimeout {
                timeout: self.worker_timeout,
                heartbeat: self.worker_heartbeat,
            });
        }
        if self.advertise.is_none() && self.listen.ip().is_unspecified() {
            return Err(ConfigError::AdvertiseRequired {
                listen: self.listen,
            });
        }
        if !self.listen.ip().is_loopback() && self.cluster_key.is_none() && !self.insecure {
            return Err(ConfigError::OpenOnNetwork {
                listen: self.listen,
            });
        }
        if let Some(address) = &self.advertise
            && !is_host_port(address)
        {
            return Err(ConfigError::Address {
                field: "advertise",
                address: address.clone(),
            });
        }
        for address in &self.join {
            if !is_host_port(address) {
                return Err(ConfigError::Address {
                    field: "join",
                    address: address.clone(),
                });
            }
        }
        self.raft_config().map(drop)
    }

    fn raft_config(&self) -> Result<openraft::Config, ConfigError> {
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        openraft::Config {
            cluster_name: "vectron-control".into(),
            heartbeat_interval: millis(self.raft_heartbeat),
            election_timeout_min: millis(self.election_timeout_min),
            election_timeout_max: millis(self.election_timeout_max),
            install_snapshot_timeout: 10_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.keep_after_snapshot,
            enable_pre_vote: Some(true),
            ..openraft::Config::default()
        }
        .validate()
        .map_err(ConfigError::Raft)
    }
}

/// A control node failed to start or to stop.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration cannot run.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory cannot be created.
    #[error("cannot create the data directory {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The store cannot be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listener cannot bind.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// openraft failed.
    #[error("the Raft node failed: {what}")]
    Raft {
        /// What was being done.
        what: &'static str,
        /// openraft's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A pristine node could not join through its seeds.
    #[error("cannot join the control cluster through {seeds:?}")]
    Join {
        /// The seeds.
        seeds: Vec<String>,
        /// The last failure.
        #[source]
        source: ClientError,
    },
    /// The gRPC server failed.
    #[error("the gRPC server of the control node failed")]
    Serve(#[source] tonic::transport::Error),
    /// Raft's tasks still held the store after the node stopped.
    #[error("the control store in {path} was still open {waited:?} after the node stopped")]
    StoreStillOpen {
        /// The data directory.
        path: PathBuf,
        /// How long shutdown waited.
        waited: Duration,
    },
}

/// How long shutdown waits for openraft's workers to release the store.
const STORE_CLOSE_WAIT: Duration = Duration::from_secs(10);

fn raft_error(what: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> NodeError {
    NodeError::Raft {
        what,
        source: Box::new(e),
    }
}

/// A running control node.
#[derive(Debug)]
pub struct ControlNode {
    core: Arc<NodeCore>,
    local_addr: SocketAddr,
    advertise: String,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    reconciler: JoinHandle<()>,
    rejoin: Option<JoinHandle<()>>,
    data_dir: PathBuf,
    store_closed: store::Closed,
}

impl ControlNode {
    /// Starts a node: opens its store, serves gRPC, and bootstraps, joins or resumes.
    ///
    /// Returns once the node serves and, for a pristine node, once it is a member.
    ///
    /// # Errors
    /// [`NodeError`] when the configuration is invalid, the store cannot be opened, the
    /// address cannot be bound, or a pristine node cannot join.
    pub async fn start(config: ControlConfig) -> Result<Self, NodeError> {
        config.validate()?;
        let raft_config = Arc::new(config.raft_config()?);
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|source| NodeError::DataDir {
            path: data_dir.clone(),
            source,
        })?;
        let node_id = config.node_id;
        let store::Opened {
            log: log_store,
            machine: state_machine,
            shared,
            closed: store_closed,
        } = tokio::task::spawn_blocking(move || store::open(&data_dir, node_id))
            .await
            .map_err(|e| raft_error("opening the store", e))??;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| NodeError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| NodeError::Bind {
            addr: config.listen,
            source,
        })?;
        let advertise = config
            .advertise
            .clone()
            .unwrap_or_else(|| local_addr.to_string());

        let raft = RaftHandle::start(
            node_id,
            raft_config,
            NetworkFactory::new(node_id, PresentKey::new(config.cluster_key.as_ref())),
            log_store,
            state_machine,
        )
        .await
        .map_err(|e| raft_error("starting", e))?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let core = Arc::new(NodeCore {
            node_id,
            raft: raft.clone(),
            shared,
            liveness: Mutex::new(None),
            liveness_config: LivenessConfig {
                worker_timeout: config.worker_timeout,
                stats_flush_interval: config.stats_flush_interval,
            },
            heartbeat_interval: config.worker_heartbeat,
            shutdown: shutdown_rx.clone(),
        });
        let server = tokio::spawn(serve(
            listener,
            core.clone(),
            RequireKey::new(config.cluster_key.clone()),
            shutdown_rx.clone(),
        ));
        let reconciler = tokio::spawn(reconcile_loop(
            core.clone(),
            config.reconcile_interval,
            shutdown_rx,
        ));
        let mut node = Self {
            core,
            local_addr,
            advertise: advertise.clone(),
            shutdown,
            server,
            reconciler,
            rejoin: None,
            data_dir: config.data_dir.clone(),
            store_closed,
        };

        match node.bootstrap(&config, advertise).await {
            Ok(()) => {
                tracing::info!(node_id, address = %node.advertise, "control node serving");
                Ok(node)
            }
            Err(e) => {
                if let Err(stop) = node.shutdown().await {
                    tracing::warn!(error = %stop, "stopping a node that failed to start");
                }
                Err(e)
            }
        }
    }

    async fn bootstrap(
        &mut self,
        config: &ControlConfig,
        advertise: String,
    ) -> Result<(), NodeError> {
        let raft = &self.core.raft;
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| raft_error("reading its state", e))?;
        let join = || {
            let seeds = config.join.clone();
            let policy = RetryPolicy {
                deadline: config.join_timeout,
                request_timeout: config.join_timeout,
                ..RetryPolicy::default()
            };
            let node_id = config.node_id;
            let advertise = advertise.clone();
            let key = config.cluster_key.clone();
            async move {
                let client = ControlClient::new(seeds.clone())
                    .map_err(|source| NodeError::Join {
                        seeds: seeds.clone(),
                        source,
                    })?
                    .with_retry_policy(policy)
                    .with_cluster_key(key.as_ref());
                client
                    .join_cluster(node_id, &advertise)
                    .await
                    .map(drop)
                    .map_err(|source| NodeError::Join { seeds, source })
            }
        };
        match (initialized, config.join.is_empty()) {
            (true, true) => Ok(()),
            (true, false) => {
                // Already a member: make sure it is a voter, without making a restart
                // depend on the seeds being up.
                let rejoin = join();
                self.rejoin = Some(tokio::spawn(async move {
                    if let Err(e) = rejoin.await {
                        tracing::warn!(error = %e, "could not confirm membership through the seeds");
                    }
                }));
                Ok(())
            }
            (false, true) => raft
                .initialize(BTreeMap::from([(
                    config.node_id,
                    PeerNode {
                        address: advertise.clone(),
                    },
                )]))
                .await
                .map_err(|e| raft_error("initializing a new cluster", e)),
            (false, false) => join().await,
        }
    }

    /// The node's Raft id.
    #[must_use]
    pub fn node_id(&self) -> u64 {
        self.core.node_id
    }

    /// The address the listener is bound to.
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The `host:port` this node advertises to peers and clients.
    #[must_use]
    pub fn address(&self) -> &str {
        &self.advertise
    }

    /// Whether this node leads now.
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.core.raft.metrics().borrow_watched().state == ServerState::Leader
    }

    /// The leader this node knows of.
    #[must_use]
    pub fn leader(&self) -> Option<u64> {
        self.core.raft.metrics().borrow_watched().current_leader
    }

    /// Index of the last log entry applied to this node's state.
    #[must_use]
    pub fn applied_index(&self) -> u64 {
        self.core
            .raft
            .metrics()
            .borrow_watched()
            .last_applied
            .as_ref()
            .map_or(0, |id| id.index)
    }

    /// Runs until `signal` resolves, then shuts down.
    ///
    /// # Errors
    /// [`NodeError::Serve`] when the gRPC server fails.
    pub async fn serve_until(self, signal: impl Future<Output = ()>) -> Result<(), NodeError> {
        tokio::pin!(signal);
        let server_failed = tokio::select! {
            () = &mut signal => false,
            () = wait_finished(&self.server) => true,
        };
        if server_failed {
            tracing::error!("the gRPC server stopped: shutting the node down");
        }
        self.shutdown().await
    }

    /// Stops serving, stops Raft and closes the store; returns once the store can be
    /// opened again.
    ///
    /// # Errors
    /// [`NodeError::Serve`] when the gRPC server had failed,
    /// [`NodeError::StoreStillOpen`] when Raft's workers did not release the store.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        let Self {
            core,
            shutdown,
            server,
            reconciler,
            rejoin,
            data_dir,
            store_closed,
            ..
        } = self;
        shutdown.send_replace(true);
        if let Some(rejoin) = rejoin {
            rejoin.abort();
        }
        if let Err(e) = core.raft.shutdown().await {
            tracing::warn!(error = %e, "raft stopped with an error");
        }
        let _ = reconciler.await;
        let served = server.await;
        drop(core);
        // openraft joins only its core task; its log and state-machine workers drop their
        // store handles a moment later.
        if tokio::time::timeout(STORE_CLOSE_WAIT, store_closed)
            .await
            .is_err()
        {
            return Err(NodeError::StoreStillOpen {
                path: data_dir,
                waited: STORE_CLOSE_WAIT,
            });
        }
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(NodeError::Serve(e)),
            Err(e) => Err(raft_error("stopping the server", e)),
        }
    }
}

async fn wait_finished<T>(handle: &JoinHandle<T>) {
    while !handle.is_finished() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Serves the Control and RaftTransport services on `listener`, each call past `gate`.
async fn serve(
    listener: TcpListener,
    core: Arc<NodeCore>,
    gate: RequireKey,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error> {
    let raft = RaftTransportServer::new(RaftService::new(core.node_id, core.raft.clone()))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .add_service(InterceptedService::new(
            ControlServer::new(ControlService::new(core)),
            gate.clone(),
        ))
        .add_service(InterceptedService::new(raft, gate))
        .serve_with_incoming_shutdown(
            // Not `TcpListenerStream`: accepted sockets need TCP_NODELAY set here, the
            // builder's setting does not reach them.
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            },
        )
        .await
}

async fn reconcile_loop(core: Arc<NodeCore>, every: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if let Err(e) = reconcile_once(&core).await {
            tracing::debug!(error = %e, "reconcile round did not finish");
        }
    }
}

/// One round of the leader's reconciler.
async fn reconcile_once(core: &NodeCore) -> Result<(), ServiceError> {
    let now = Instant::now();
    let Some(commands) = core.with_liveness(|liveness| {
        let machine = core.shared.read();
        liveness.settle(&machine.state);
        liveness.reconcile(&machine.state, now, core.liveness_config)
    }) else {
        return Ok(());
    };
    if core.shared.read().state.cluster_id.is_empty() {
        let cluster_id = new_cluster_id(core.node_id);
        core.propose(Command::InitCluster {
            cluster_id: cluster_id.clone(),
        })
        .await?;
        tracing::info!(%cluster_id, "control cluster named");
    }
    for command in commands {
        let reports = match &command {
            Command::ObserveWorkers { reports, .. } => reports.clone(),
            Command::MarkWorkersDown { worker_ids, .. } => {
                tracing::warn!(workers = ?worker_ids, "workers silent too long: marking them down");
                Vec::new()
            }
            _ => Vec::new(),
        };
        core.propose(command).await?;
        core.with_liveness(|liveness| {
            for report in &reports {
                liveness.flushed(&report.worker_id, report, now);
            }
        });
    }
    Ok(())
}

/// A cluster id: 128 bits from the clock, the process, the node and a counter.
fn new_cluster_id(node_id: u64) -> String {
    static DRAWN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let drawn = DRAWN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = format!("{nanos}/{}/{node_id}/{drawn}", std::process::id());
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(seed.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ControlConfig {
        ControlConfig::new(1, "127.0.0.1:0".parse().unwrap(), "/tmp/x")
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(config().validate(), Ok(()));
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut c = config();
        c.node_id = 0;
        assert_eq!(c.validate(), Err(ConfigError::NodeIdZero));
        let mut c = config();
        c.election_timeout_min = c.election_timeout_max;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::ElectionTimeout { .. })
        ));
        let mut c = config();
        c.worker_timeout = c.worker_heartbeat;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::WorkerTimeout { .. })
        ));
        let mut c = config();
        c.join = vec!["nohost".into()];
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Address { field: "join", .. })
        ));
        let mut c = config();
        c.listen = "0.0.0.0:7101".parse().unwrap();
        assert!(matches!(
            c.validate(),
            Err(ConfigError::AdvertiseRequired { .. })
        ));
        c.advertise = Some("10.0.0.1:7101".into());
        assert!(matches!(
            c.validate(),
            Err(ConfigError::OpenOnNetwork { .. })
        ));
        c.cluster_key = Some(ClusterKey::generate().unwrap());
        assert_eq!(c.validate(), Ok(()));
        c.cluster_key = None;
        c.insecure = true;
        assert_eq!(c.validate(), Ok(()));
        let mut c = config();
        c.snapshot_every = 0;
        assert!(matches!(c.validate(), Err(ConfigError::Zero { .. })));
    }

    #[test]
    fn cluster_ids_differ() {
        assert_ne!(new_cluster_id(1), new_cluster_id(1));
        assert_eq!(new_cluster_id(1).len(), 32);
    }
}
