//! The thread of one core: pinned to its CPU, running its own monoio runtime (io_uring,
//! or the legacy epoll driver where io_uring is unavailable), serving gRPC on its own
//! port, and taking commands from the rest of the worker on a bounded channel.
//!
//! ```text
//!  worker thread ── CoreCommand (bounded mpsc) ──► core thread
//!                                                   ├─ gRPC server (vectron-net) on port P+i
//!                                                   ├─ indexer (links pending points)
//!                                                   ├─ checkpointer
//!                                                   └─ command loop (stats, open/close, stop)
//! ```
//!
//! Nothing is shared between threads but the channel: stats and shard assignments
//! travel as messages, never through shared memory.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};
use vectron_auth::ClusterKey;
use vectron_net::{ListenOptions, Server, ServerConfig};
use vectron_proto::core::v1::{ShardAssignment, ShardRef};
use vectron_proto::v1::CoreStats;
use vectron_replica::GroupSettings;
use vectron_wal::Options;

use crate::cluster;
use crate::core::{Core, CoreConfig, Notify};
use crate::error::{ShardError, chain};
use crate::service::{InFlight, ShardAdministration, router};

/// Commands queued for a core at most; senders wait beyond that.
const INBOX: usize = 64;

/// A message to a core thread.
#[derive(Debug)]
pub enum CoreCommand {
    /// Reply with the core's statistics.
    Stats(oneshot::Sender<CoreStats>),
    /// Open (or adopt a new epoch for) a shard. With `must_exist`, a shard whose data
    /// is not on disk is refused instead of created empty.
    Open(
        Box<ShardAssignment>,
        bool,
        oneshot::Sender<Result<(), String>>,
    ),
    /// Close a shard, optionally deleting its files.
    Close(ShardRef, bool, oneshot::Sender<Result<(), String>>),
    /// Stop serving, checkpoint every shard, and end the thread.
    Stop,
}

/// How to start one core.
#[derive(Debug, Clone)]
pub struct CoreSettings {
    /// Index of the core within the worker.
    pub index: u32,
    /// CPU to pin the thread to, if any.
    pub cpu: Option<usize>,
    /// The worker's id.
    pub worker_id: String,
    /// Address of the core's gRPC port.
    pub addr: SocketAddr,
    /// Directory holding this core's shards.
    pub data_dir: PathBuf,
    /// Options of every shard's log.
    pub wal: Options,
    /// Settings of the gRPC server.
    pub server: ServerConfig,
    /// See [`crate::CoreConfig::max_unindexed`].
    pub max_unindexed: Option<usize>,
    /// See [`crate::CoreConfig::group`].
    pub group: GroupSettings,
    /// The key every call to the core's port must carry (`UNAUTHENTICATED` without
    /// it), which the core's calls to its peers carry too. `None`: calls are not
    /// checked, for a worker on loopback or an operator who said `--insecure`.
    pub cluster_key: Option<ClusterKey>,
    /// Whether the core serves ShardAdmin or leaves its shards to the control plane.
    pub administration: ShardAdministration,
}

/// Why a core did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The thread could not be spawned.
    #[error("cannot spawn the thread of core {core}")]
    Spawn {
        /// The core.
        core: u32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The runtime could not be built.
    #[error("cannot build the runtime of core {core}")]
    Runtime {
        /// The core.
        core: u32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC port could not be bound.
    #[error("core {core}")]
    Bind {
        /// The core.
        core: u32,
        /// Why.
        #[source]
        source: vectron_net::BindError,
    },
    /// The server settings are unusable.
    #[error("core {core}: bad server settings")]
    Config {
        /// The core.
        core: u32,
        /// Why.
        #[source]
        source: vectron_net::ConfigError,
    },
    /// A shard found on disk could not be reopened.
    #[error("core {core}: cannot reopen the shard in {}", dir.display())]
    Reopen {
        /// The core.
        core: u32,
        /// The shard's directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: ShardError,
    },
}

/// What the starter learns once a core runs.
#[derive(Debug, Clone)]
pub struct CoreInfo {
    /// Index of the core.
    pub index: u32,
    /// The address its gRPC port listens on.
    pub addr: SocketAddr,
    /// `io_uring` or `legacy`.
    pub driver: &'static str,
    /// Shards reopened from disk at start.
    pub reopened: usize,
}

/// A running core, seen from the rest of the worker.
#[derive(Debug)]
pub struct CoreHandle {
    info: CoreInfo,
    inbox: mpsc::Sender<CoreCommand>,
    thread: Option<JoinHandle<()>>,
}

impl CoreHandle {
    /// What the core reported at start.
    pub fn info(&self) -> &CoreInfo {
        &self.info
    }

    /// A sender for commands to the core.
    pub fn inbox(&self) -> mpsc::Sender<CoreCommand> {
        self.inbox.clone()
    }

    /// Asks the core to stop and waits for its thread: in-flight calls finish within the
    /// server's grace period and every shard checkpoints.
    pub fn stop(mut self) {
        let _ = self.inbox.blocking_send(CoreCommand::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Which IO driver monoio picks here: io_uring when the kernel offers every operation
/// it needs (and `MONOIO_FORCE_LEGACY_DRIVER` is not set), else the legacy epoll one.
pub fn driver_name() -> &'static str {
    if monoio::utils::detect_uring() {
        "io_uring"
    } else {
        "legacy"
    }
}

/// Starts a core on its own thread and returns once it serves (or failed to start).
pub fn spawn_core(settings: CoreSettings) -> Result<CoreHandle, StartError> {
    let core = settings.index;
    let (inbox, commands) = mpsc::channel(INBOX);
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name(format!("vectron-core-{core}"))
        .spawn(move || run_core(settings, commands, started_tx))
        .map_err(|source| StartError::Spawn { core, source })?;
    match started_rx.recv() {
        Ok(Ok(info)) => Ok(CoreHandle {
            info,
            inbox,
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(StartError::Runtime {
                core,
                source: std::io::Error::other("the core thread ended during start"),
            })
        }
    }
}

/// The CPUs the calling thread may run on (its affinity mask).
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    let mut set = std::mem::MaybeUninit::<libc::cpu_set_t>::zeroed();
    // SAFETY: `set` is a zeroed `cpu_set_t` (a valid, empty set) of the size passed;
    // the kernel writes at most that many bytes.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), set.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: zeroed is a valid `cpu_set_t`, and the call above filled it.
    let set = unsafe { set.assume_init() };
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE, the set's capacity.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// Keeps the calling thread, and the threads it starts from now on, off `cores`'
/// CPUs, when it may run on any other: a pinned core then has its CPU to itself and is
/// not preempted by the gateway, the control plane or the worker's admin thread.
/// Returns the CPUs left to the thread, or `None` when it stays where it was (no CPU
/// would be left, or the mask cannot be read or set).
pub fn keep_off_cpus(cores: &[usize]) -> Option<Vec<usize>> {
    let allowed = allowed_cpus().ok()?;
    let rest: Vec<usize> = allowed
        .iter()
        .copied()
        .filter(|cpu| !cores.contains(cpu))
        .collect();
    if rest.is_empty() || rest.len() == allowed.len() {
        return None;
    }
    monoio::utils::bind_to_cpu_set(rest.iter().copied()).ok()?;
    Some(rest)
}

type Started = std::sync::mpsc::Sender<Result<CoreInfo, StartError>>;

fn run_core(settings: CoreSettings, commands: mpsc::Receiver<CoreCommand>, started: Started) {
    let core = settings.index;
    if let Some(cpu) = settings.cpu {
        // Best effort: a container may forbid it; the core still runs, unpinned.
        let _ = monoio::utils::bind_to_cpu_set(Some(cpu));
    }
    let driver = driver_name();
    let built = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build();
    let mut runtime = match built {
        Ok(r) => r,
        Err(source) => {
            let _ = started.send(Err(StartError::Runtime { core, source }));
            return;
        }
    };
    runtime.block_on(serve_core(settings, driver, commands, started));
}

/// Runs one open or close.
async fn place(core: &Core, command: CoreCommand) {
    match command {
        CoreCommand::Open(assignment, must_exist, reply) => {
            let opened = core
                .open_shard(&assignment, must_exist)
                .await
                .map(|_| ())
                .map_err(|e| chain(&e));
            let _ = reply.send(opened);
        }
        CoreCommand::Close(shard, delete, reply) => {
            let closed = core
                .close_shard(&shard, delete)
                .await
                .map_err(|e| chain(&e));
            let _ = reply.send(closed);
        }
        // Never queued: the command loop answers these itself.
        CoreCommand::Stats(_) | CoreCommand::Stop => {}
    }
}

async fn serve_core(
    settings: CoreSettings,
    driver: &'static str,
    mut commands: mpsc::Receiver<CoreCommand>,
    started: Started,
) {
    let index = settings.index;
    let fail = |e| {
        let _ = started.send(Err(e));
    };
    let listener = match vectron_net::bind(settings.addr, &ListenOptions::default()) {
        Ok(l) => l,
        Err(source) => {
            return fail(StartError::Bind {
                core: index,
                source,
            });
        }
    };
    let addr = listener.local_addr().unwrap_or(settings.addr);
    let core = Core::new(
        CoreConfig {
            index,
            cpu: settings.cpu,
            worker_id: settings.worker_id.clone(),
            address: addr.to_string(),
            data_dir: settings.data_dir.clone(),
            wal: settings.wal,
            max_unindexed: settings.max_unindexed,
            group: settings.group,
            cluster_key: settings.cluster_key.clone(),
        },
        driver,
    );
    let failures = core.reopen_all().await;
    if let Some((dir, source)) = failures.into_iter().next() {
        let _ = core.shutdown().await;
        return fail(StartError::Reopen {
            core: index,
            dir,
            source,
        });
    }
    let in_flight: InFlight = Rc::new(RefCell::new(None));
    let routes = match router(&core, Rc::clone(&in_flight), settings.administration)
        .and_then(|r| vectron_replica::routes(r, Rc::clone(core.host().replicas())))
    {
        Ok(r) => r,
        Err(e) => panic!("the core's routes are fixed and valid: {e}"),
    };
    let server = match Server::new(settings.server.clone(), routes) {
        Ok(s) => match &settings.cluster_key {
            Some(key) => s.with_gate(cluster::gate(key.clone())),
            None => s,
        },
        Err(source) => {
            return fail(StartError::Config {
                core: index,
                source,
            });
        }
    };
    *in_flight.borrow_mut() = Some(server.stats());
    monoio::spawn(Rc::clone(&core).run_indexer());
    monoio::spawn(Rc::clone(&core).run_checkpointer());
    monoio::spawn(Rc::clone(&core).run_leader_balance());
    monoio::spawn(Rc::clone(&core).watch_delays());

    let stop = Rc::new(Notify::default());
    let serving = {
        let stop = Rc::clone(&stop);
        monoio::spawn(async move {
            let stopped = async move { stop.notified().await };
            if let Err(e) = server.serve(listener, stopped).await {
                tracing::error!(core = index, error = %e, "the core's gRPC server failed");
            }
        })
    };
    let reopened = core.shards().len();
    let _ = started.send(Ok(CoreInfo {
        index,
        addr,
        driver,
        reopened,
    }));
    tracing::info!(core = index, %addr, driver, cpu = ?settings.cpu, reopened, "core serving");

    // Opens and closes run one at a time, in the order they came, on a task of their
    // own: a core replaying a shard's log still answers `Stats` between the awaits of
    // that work, so the worker's heartbeats carry every core while shards are placed.
    let (placements, mut queued) = mpsc::unbounded_channel::<CoreCommand>();
    let placing = {
        let core = Rc::clone(&core);
        monoio::spawn(async move {
            while let Some(command) = queued.recv().await {
                place(&core, command).await;
            }
        })
    };
    while let Some(command) = commands.recv().await {
        match command {
            CoreCommand::Stats(reply) => {
                let _ = reply.send(core.stats(in_flight.borrow().as_ref()));
            }
            CoreCommand::Stop => break,
            // The task ends only once `placements` is dropped; were it gone, the
            // command's reply would be dropped with it and the asker told so.
            placement @ (CoreCommand::Open(..) | CoreCommand::Close(..)) => {
                let _ = placements.send(placement);
            }
        }
    }
    // Placements already asked for finish before the shards are closed for good.
    drop(placements);
    placing.await;
    stop.notify();
    serving.await;
    for e in core.shutdown().await {
        tracing::error!(core = index, error = %chain(&e), "a shard did not close cleanly");
    }
    tracing::info!(core = index, "core stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::tests::assignment;

    #[test]
    fn other_threads_keep_off_the_cores_cpus_when_others_are_left() {
        std::thread::spawn(|| {
            let allowed = allowed_cpus().unwrap();
            assert!(!allowed.is_empty());
            // Every CPU taken by cores: nothing would be left, nothing changes.
            assert_eq!(keep_off_cpus(&allowed), None);
            assert_eq!(allowed_cpus().unwrap(), allowed);
            if allowed.len() < 2 {
                eprintln!("one CPU only: keeping threads off a core's CPU is not exercised");
                return;
            }
            let core = allowed[allowed.len() - 1];
            let rest = keep_off_cpus(&[core]).unwrap();
            assert_eq!(rest, allowed[..allowed.len() - 1]);
            assert_eq!(allowed_cpus().unwrap(), rest);
            // Threads started from now on inherit the mask.
            let child = std::thread::spawn(|| allowed_cpus().unwrap())
                .join()
                .unwrap();
            assert_eq!(child, rest);
        })
        .join()
        .unwrap();
    }

    /// While a core opens a run of shards, it still answers `Stats` at once: the worker's
    /// heartbeat is never held up behind a placement.
    #[test]
    fn a_core_answers_stats_while_it_opens_shards() {
        let dir = tempfile::tempdir().unwrap();
        let core = spawn_core(CoreSettings {
            index: 0,
            cpu: None,
            worker_id: "w".into(),
            addr: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_owned(),
            wal: Options::default(),
            server: ServerConfig::default(),
            max_unindexed: None,
            group: GroupSettings::default(),
            cluster_key: None,
            administration: ShardAdministration::Served,
        })
        .unwrap();
        let inbox = core.inbox();
        const SHARDS: usize = 64;
        let opened: Vec<_> = (0..SHARDS)
            .map(|i| {
                let (tx, rx) = oneshot::channel();
                let open = CoreCommand::Open(Box::new(assignment(&format!("c{i}"))), false, tx);
                inbox.blocking_send(open).unwrap();
                rx
            })
            .collect();
        let stats = |inbox: &mpsc::Sender<CoreCommand>| {
            let (tx, rx) = oneshot::channel();
            inbox.blocking_send(CoreCommand::Stats(tx)).unwrap();
            rx.blocking_recv().unwrap()
        };
        let during = stats(&inbox).shards.len();
        assert!(
            during < SHARDS,
            "Stats waited for every open ({during} shards)"
        );
        for rx in opened {
            rx.blocking_recv().unwrap().unwrap();
        }
        assert_eq!(stats(&inbox).shards.len(), SHARDS);
        core.stop();
    }
}
