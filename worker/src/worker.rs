//! Starting and stopping a worker: its identity, its cores, its admin listener.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::oneshot;
use vectron_control::ControlClient;
use vectron_core_shard::{
    CoreHandle, CoreInfo, CoreSettings, ShardAdministration, StartError, spawn_core,
};
use vectron_net::ServerConfig;
use vectron_proto::v1::CoreStats;
use vectron_wal::Options;

use crate::admin;
use crate::agent::Agent;
use crate::config::WorkerConfig;
use crate::identity;

/// How long the admin side waits for a core to answer.
pub(crate) const CORE_REPLY: Duration = Duration::from_secs(5);

/// Why a worker did not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The data directory or the worker id file is unusable.
    #[error("data directory {}", path.display())]
    DataDir {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `WORKER_ID` or `CLUSTER_ID` exists but cannot be read, is not UTF-8 or is empty.
    /// The worker refuses to start rather than take another identity.
    #[error(
        "{} exists but cannot be used; restore it (a worker id can also be given with --worker-id)",
        path.display()
    )]
    IdentityFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A core did not start.
    #[error(transparent)]
    Core(#[from] StartError),
    /// The admin listener could not be bound.
    #[error("cannot listen for admin HTTP on {addr}")]
    Admin {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The settings cannot work.
    #[error("invalid worker settings: {0}")]
    Config(String),
    /// The control plane refused the worker for good (it belongs to another cluster, or
    /// it came back without a core that holds replicas).
    #[error("the control plane refused the worker: {0}")]
    Refused(String),
}

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    id: String,
    cores: Vec<CoreHandle>,
    admin_addr: SocketAddr,
    admin_stop: Option<oneshot::Sender<()>>,
    admin_task: Option<tokio::task::JoinHandle<()>>,
    agent_stop: Option<oneshot::Sender<()>>,
    agent_task: Option<tokio::task::JoinHandle<()>>,
    /// Says why, should the control plane refuse the worker for good.
    refusal: Option<oneshot::Receiver<String>>,
}

/// Below this many open files, a worker warns at start: each shard holds about three
/// (its log segment, its mapped index, its directory), and each connection one.
const OPEN_FILES_WANTED: u64 = 8_192;

/// Raises the soft limit on open files to the hard limit (shells often start processes
/// at 1,024, which a worker with a few hundred shards exhausts: its logs then fail with
/// `Too many open files`), and says what it is.
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < OPEN_FILES_WANTED => tracing::warn!(
            limit,
            "the open-files limit is low for a worker (each shard holds about 3 open \
             files): raise the hard limit (ulimit -Hn, LimitNOFILE) to hold many shards"
        ),
        Ok(limit) => tracing::info!(limit, "open-files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-files limit"),
    }
}

impl Worker {
    /// Starts the cores (each reopens the shards it finds on disk) and the admin
    /// listener. Call from within a tokio runtime.
    pub async fn start(config: WorkerConfig) -> Result<Self, WorkerError> {
        if config.cores == 0 {
            return Err(WorkerError::Config(
                "a worker needs at least one core".into(),
            ));
        }
        if config.core_base_port != 0
            && usize::from(config.core_base_port) + config.cores > usize::from(u16::MAX) + 1
        {
            return Err(WorkerError::Config(format!(
                "core ports {}..{} run past 65535",
                config.core_base_port,
                usize::from(config.core_base_port) + config.cores
            )));
        }
        for (what, ip) in [
            ("core ports", config.host),
            ("the admin listener", config.admin_addr.ip()),
        ] {
            if !ip.is_loopback() && config.cluster_key.is_none() && !config.insecure {
                return Err(WorkerError::Config(format!(
                    "refusing to serve {what} on {ip} without a cluster key: anyone who reaches them could read and write its shards; give every member --cluster-key-file, bind loopback, or on a private network add --insecure"
                )));
            }
        }
        if !config.cpus.is_empty() && config.cpus.len() != config.cores {
            return Err(WorkerError::Config(format!(
                "{} CPUs given for {} cores: give one CPU per core",
                config.cpus.len(),
                config.cores
            )));
        }
        std::fs::create_dir_all(&config.data_dir).map_err(|source| WorkerError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        raise_open_files_limit();
        let id = identity::worker_id(&config.data_dir, config.worker_id.as_deref())?;
        let cluster = identity::recorded_cluster(&config.data_dir)?;
        let core_cpus = config.core_cpus();
        let server = ServerConfig {
            // The gateway sends batches of up to 10,000 points per shard.
            max_recv_message_size: 64 << 20,
            max_send_message_size: 64 << 20,
            ..ServerConfig::default()
        };
        let mut cores = Vec::with_capacity(config.cores);
        for i in 0..config.cores {
            let port = if config.core_base_port == 0 {
                0
            } else {
                config.core_base_port + u16::try_from(i).expect("checked above")
            };
            let settings = CoreSettings {
                index: u32::try_from(i).expect("few cores"),
                cpu: core_cpus.as_ref().map(|cpus| cpus[i]),
                worker_id: id.clone(),
                addr: SocketAddr::new(config.host, port),
                data_dir: config.data_dir.join(format!("core-{i}")),
                wal: Options::default().sync(config.wal_sync),
                server: server.clone(),
                max_unindexed: config.max_unindexed,
                group: vectron_core_shard::GroupSettings::default(),
                cluster_key: config.cluster_key.clone(),
                administration: if config.control.is_empty() {
                    ShardAdministration::Served
                } else {
                    ShardAdministration::ByControlPlane
                },
            };
            let started = tokio::task::spawn_blocking(move || spawn_core(settings))
                .await
                .expect("spawning a core does not panic");
            match started {
                Ok(core) => cores.push(core),
                Err(e) => {
                    stop_cores(cores).await;
                    return Err(e.into());
                }
            }
        }
        let inboxes = cores.iter().map(CoreHandle::inbox).collect();
        let listener = match tokio::net::TcpListener::bind(config.admin_addr).await {
            Ok(l) => l,
            Err(source) => {
                stop_cores(cores).await;
                return Err(WorkerError::Admin {
                    addr: config.admin_addr,
                    source,
                });
            }
        };
        let admin_addr = listener.local_addr().unwrap_or(config.admin_addr);
        let (admin_stop, stopped) = oneshot::channel();
        let state = admin::AdminState::new(id.clone(), inboxes, config.cluster_key.clone());
        let admin_task = tokio::spawn(admin::serve(listener, state, async {
            let _ = stopped.await;
        }));
        let (agent_stop, agent_task, refusal) = if config.control.is_empty() {
            (None, None, None)
        } else {
            let client = match ControlClient::new(config.control.clone()) {
                Ok(c) => c.with_cluster_key(config.cluster_key.as_ref()),
                Err(e) => {
                    stop_cores(cores).await;
                    return Err(WorkerError::Config(e.to_string()));
                }
            };
            let agent = Agent {
                client,
                worker_id: id.clone(),
                data_host: config
                    .advertise_host
                    .clone()
                    .unwrap_or_else(|| config.host.to_string()),
                admin_address: admin_addr.to_string(),
                zone: config.zone.clone(),
                data_dir: config.data_dir.clone(),
                cluster: std::sync::Mutex::new(cluster),
                cores: cores.iter().map(|c| c.info().clone()).collect(),
                inboxes: cores.iter().map(CoreHandle::inbox).collect(),
            };
            let (stop, stopped) = oneshot::channel();
            let (refused, refusal) = oneshot::channel();
            (
                Some(stop),
                Some(tokio::spawn(agent.run(stopped, refused))),
                Some(refusal),
            )
        };
        Ok(Self {
            id,
            cores,
            admin_addr,
            admin_stop: Some(admin_stop),
            admin_task: Some(admin_task),
            agent_stop,
            agent_task,
            refusal,
        })
    }

    /// Resolves if the control plane refuses the worker for good: it cannot serve, and
    /// should stop and say why ([`WorkerError::Refused`]). Never resolves otherwise.
    pub async fn refused(&mut self) -> WorkerError {
        if let Some(refusal) = self.refusal.as_mut() {
            let answer = refusal.await;
            self.refusal = None;
            if let Ok(reason) = answer {
                return WorkerError::Refused(reason);
            }
        }
        std::future::pending().await
    }

    /// The worker's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What each core reported at start.
    pub fn cores(&self) -> impl Iterator<Item = &CoreInfo> {
        self.cores.iter().map(CoreHandle::info)
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// Statistics of every core.
    pub async fn stats(&self) -> Vec<CoreStats> {
        let inboxes: Vec<_> = self.cores.iter().map(CoreHandle::inbox).collect();
        admin::gather(&inboxes).await
    }

    /// Stops the control agent and the admin listener, then every core: in-flight calls finish within the
    /// grace period and every shard checkpoints.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.agent_stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.agent_task.take() {
            let _ = task.await;
        }
        if let Some(stop) = self.admin_stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.admin_task.take() {
            let _ = task.await;
        }
        stop_cores(std::mem::take(&mut self.cores)).await;
    }
}

async fn stop_cores(cores: Vec<CoreHandle>) {
    let _ = tokio::task::spawn_blocking(move || {
        for core in cores {
            core.stop();
        }
    })
    .await;
}

/// Runs a worker until SIGINT or SIGTERM, then shuts it down cleanly. Prints one JSON
/// line on stdout once it serves, naming every core's address and the admin address.
pub async fn run(config: WorkerConfig) -> Result<(), WorkerError> {
    let stop = shutdown_signal();
    let worker = Worker::start(config).await?;
    let cores: Vec<serde_json::Value> = worker
        .cores()
        .map(|c| serde_json::json!({"core": c.index, "addr": c.addr.to_string(), "driver": c.driver, "reopened_shards": c.reopened}))
        .collect();
    println!(
        "{}",
        serde_json::json!({"event": "ready", "worker_id": worker.id(), "cores": cores, "admin": worker.admin_addr().to_string()})
    );
    let mut worker = worker;
    let refused = tokio::select! {
        () = stop => None,
        e = worker.refused() => Some(e),
    };
    tracing::info!("shutting down: checkpointing every shard");
    worker.shutdown().await;
    refused.map_or(Ok(()), Err)
}

/// Takes SIGINT (Ctrl-C) and SIGTERM from the moment it is called; the future it
/// returns resolves on the first of them. Call it before the process says it is ready:
/// a signal that arrives earlier would otherwise end the process at once, uncleanly.
/// Must be called inside a tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut interrupt = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = term.recv() => {}
        }
    }
}
