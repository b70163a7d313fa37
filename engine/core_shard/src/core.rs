//! One core: the shards it holds, its search scratch, its counters and its background
//! work (indexing behind the log, graph repair, periodic checkpoints). Lives on the
//! core's thread behind an `Rc`; nothing here is shared with another thread.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashSet};
use std::future::poll_fn;
use std::path::PathBuf;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use vectron_auth::ClusterKey;
use vectron_hnsw::SearchScratch;
use vectron_net::{ClientConfig, StatsHandle};
use vectron_proto::core::v1::{ShardAssignment, ShardRef};
use vectron_proto::v1::CoreStats;
use vectron_replica::GroupSettings;
use vectron_wal::Options;

use crate::checkpoint::{DELETING, finish_removal, remove_shard_dir};
use crate::cluster;
use crate::error::ShardError;
use crate::handle::ShardHandle;
use crate::replica::ReplicaHost;
use crate::spec::ShardSpec;
use crate::stats::CoreCounters;

/// How long indexing runs before it lets searches and writes on the core go first. A
/// slice is at least one point, and linking one point into a graph of a million takes
/// 0.1–0.7 ms, so in a large shard a slice is one point: what a search waits behind is
/// one link, not several.
const INDEX_SLICE: Duration = Duration::from_micros(50);
/// Log bytes since the last checkpoint that trigger a new one.
const CHECKPOINT_WAL_BYTES: u64 = 256 << 20;
/// How often the checkpoint policy looks at each shard.
const CHECKPOINT_CHECK: Duration = Duration::from_secs(10);
/// How often the core looks for replicas leading in place of their group's preferred
/// leader ([`Core::run_leader_balance`]).
const LEADER_BALANCE_CHECK: Duration = Duration::from_millis(500);
/// How often the core measures its scheduling delay ([`Core::watch_delays`]).
const DELAY_PROBE: Duration = Duration::from_millis(10);

/// A shard's key on a core.
pub(crate) type ShardKey = (String, u32);

/// Settings of one core.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// Index of the core within its worker.
    pub index: u32,
    /// CPU the core's thread is pinned to, if pinned.
    pub cpu: Option<usize>,
    /// The worker's id, reported in stats.
    pub worker_id: String,
    /// gRPC address of the core (`host:port`), reported in stats.
    pub address: String,
    /// Directory holding this core's shards.
    pub data_dir: PathBuf,
    /// Options of every shard's write-ahead log.
    pub wal: Options,
    /// Points a shard may hold acknowledged but not yet indexed (searched by an exact
    /// scan) before writes to it wait for the indexer: writes faster than indexing get
    /// backpressure instead of a backlog that slows every search. `None`: as many as
    /// [`DEFAULT_UNINDEXED_BYTES`] of the shard's vectors (see [`unindexed_bound`]).
    pub max_unindexed: Option<usize>,
    /// How the Raft groups of the core's replicated shards run.
    pub group: GroupSettings,
    /// The key the core's calls to peer cores carry (their gates ask for it).
    pub cluster_key: Option<ClusterKey>,
}

/// Bytes of vectors a shard may hold unindexed by default: every search scans them
/// exactly, and at a few GB/s of one core's memory bandwidth this many cost a search
/// about 0.15 ms, whatever the dimension (2,048 points at 128 dimensions, 256 at 1,536
/// by the floor of [`unindexed_bound`]). Ingest is as fast with a smaller bound as with
/// a larger one (writes wait for the indexer either way); 4 MiB made a search during
/// ingest at twice the indexing rate 0.7 ms on the core instead of 0.3 ms.
pub const DEFAULT_UNINDEXED_BYTES: usize = 1 << 20;

/// The unindexed points a shard of `dimension` values may hold: `configured`, or
/// [`DEFAULT_UNINDEXED_BYTES`] of its vectors (at least 256 points).
pub fn unindexed_bound(configured: Option<usize>, dimension: usize) -> usize {
    configured.unwrap_or_else(|| (DEFAULT_UNINDEXED_BYTES / (4 * dimension.max(1))).max(256))
}

/// Bytes a shard's log may hold appended but not yet written before writes to it wait:
/// writes acknowledged before they are durable (`wait = false`) cannot outrun the disk
/// without bound.
const MAX_UNWRITTEN_LOG_BYTES: u64 = 64 << 20;

/// How long a write waits for a shard's backlog to drop before it is refused with
/// `RESOURCE_EXHAUSTED` (and a `retry-after`).
const BACKLOG_PATIENCE: Duration = Duration::from_secs(5);

/// A one-shot wake-up for a task that sleeps until there is work.
#[derive(Debug, Default)]
pub(crate) struct Notify {
    waker: RefCell<Option<Waker>>,
    pending: Cell<bool>,
}

impl Notify {
    pub(crate) fn notify(&self) {
        self.pending.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    pub(crate) async fn notified(&self) {
        poll_fn(|cx| {
            if self.pending.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }
}

/// Lets the core's other tasks and its network run before continuing.
///
/// Two quirks of monoio 0.2.4 shape this. A task that wakes itself while being polled
/// goes back to the *front* of the run queue, so it would run again before anything
/// else. And on the io_uring driver, socket readiness (`poll-io`, which h2 uses) is only
/// collected when the runtime parks, which it does only when no task is ready: a
/// task that always yields ready starves every connection. So a long-running loop
/// waits here for an io_uring operation that completes at once (a zero-length read of
/// `/dev/null`): the run queue empties, the runtime parks, collects socket readiness and
/// completions in one `io_uring_enter`, and resumes the loop behind the woken tasks.
pub struct Yielder {
    null: Option<monoio::fs::File>,
}

impl Yielder {
    /// A yielder for the runtime of this thread.
    pub fn new() -> Self {
        // Only io_uring completes the read asynchronously; the legacy driver performs
        // file operations in place, which would not park the runtime.
        let null = if monoio::utils::detect_uring() {
            std::fs::File::open("/dev/null")
                .and_then(monoio::fs::File::from_std)
                .ok()
        } else {
            None
        };
        Self { null }
    }

    /// Waits until the core's other ready tasks and its sockets had a turn.
    pub async fn yield_now(&self) {
        match &self.null {
            Some(null) => {
                let _ = null.read_at(Vec::<u8>::new(), 0).await;
            }
            None => {
                // The legacy driver (or no /dev/null): wait on a timer, which also leaves
                // the run queue empty so the runtime parks and polls its sockets. The
                // timer's resolution makes this slower than the io_uring path.
                monoio::time::sleep(Duration::from_micros(1)).await;
            }
        }
    }
}

impl Default for Yielder {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Yielder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Yielder")
            .field("io_uring_read", &self.null.is_some())
            .finish()
    }
}

/// The state of one core.
#[derive(Debug)]
pub struct Core {
    config: CoreConfig,
    driver: &'static str,
    started: Instant,
    /// The replicas of replicated shards held here, for the replication service.
    host: Rc<ReplicaHost>,
    shards: RefCell<BTreeMap<ShardKey, Rc<ShardHandle>>>,
    opening: RefCell<HashSet<ShardKey>>,
    scratch: RefCell<SearchScratch>,
    counters: Rc<RefCell<CoreCounters>>,
    yielder: Yielder,
    work: Rc<Notify>,
    /// The shard the indexer stepped last; the next slice starts after it.
    index_cursor: RefCell<Option<ShardKey>>,
    stopping: Cell<bool>,
}

impl Core {
    /// A core with no shards. `driver` names the runtime's IO driver for stats.
    pub fn new(config: CoreConfig, driver: &'static str) -> Rc<Self> {
        let work = Rc::new(Notify::default());
        let wake = Rc::clone(&work);
        Rc::new(Self {
            host: Rc::new(ReplicaHost::new(
                config.group,
                ClientConfig {
                    metadata: cluster::metadata(config.cluster_key.as_ref()),
                    ..ClientConfig::default()
                },
                Rc::new(move || wake.notify()),
            )),
            config,
            driver,
            started: Instant::now(),
            shards: RefCell::new(BTreeMap::new()),
            opening: RefCell::new(HashSet::new()),
            scratch: RefCell::new(SearchScratch::new()),
            counters: Rc::new(RefCell::new(CoreCounters::default())),
            yielder: Yielder::new(),
            work,
            index_cursor: RefCell::new(None),
            stopping: Cell::new(false),
        })
    }

    /// The core's settings.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// Time since the core started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The replicas of replicated shards held here.
    pub fn host(&self) -> &Rc<ReplicaHost> {
        &self.host
    }

    /// The core's counters.
    pub fn counters(&self) -> &Rc<RefCell<CoreCounters>> {
        &self.counters
    }

    /// What long work on this core waits on between slices, so that the core's other
    /// calls, its log acknowledgements and its keepalives go on meanwhile.
    pub(crate) fn yielder(&self) -> &Yielder {
        &self.yielder
    }

    /// Waits until `shard` may take a write: while a checkpoint holds its writes, or (for
    /// an upsert, `adds`) while its unindexed points or its log's unwritten bytes are
    /// over their bounds, the checkpoint, the indexer and the log work and the write
    /// waits. It waits as long as the backlog shrinks (a stream is slowed to the pace of
    /// indexing, not refused), and is refused once it made no progress for
    /// [`BACKLOG_PATIENCE`]; the caller's deadline bounds the wait too.
    ///
    /// # Errors
    /// [`ShardError::WritesHeld`] or [`ShardError::Backlog`] when it waited in vain.
    pub(crate) async fn admit_write(
        &self,
        shard: &ShardHandle,
        adds: bool,
    ) -> Result<(), ShardError> {
        self.admit_write_within(shard, adds, BACKLOG_PATIENCE).await
    }

    async fn admit_write_within(
        &self,
        shard: &ShardHandle,
        adds: bool,
        patience: Duration,
    ) -> Result<(), ShardError> {
        let mut started = Instant::now();
        // Progress is the indexer linking points, the log writing bytes and a
        // checkpoint writing its files (other writers may add to the backlog meanwhile:
        // a backlog that does not shrink is not a stalled one).
        let progress_of = |log: &vectron_wal::WalStats| {
            (shard.linked(), log.written_lsn, shard.checkpoint_slices())
        };
        let mut progress = progress_of(&shard.wal().stats());
        loop {
            let unindexed = shard.pending();
            let log = shard.wal().stats();
            let unwritten = log.unwritten_bytes;
            let now = progress_of(&log);
            if now != progress {
                progress = now;
                started = Instant::now();
            }
            let held = shard.writes_held();
            let bound = unindexed_bound(
                self.config.max_unindexed,
                shard.spec().collection.dimension as usize,
            );
            let behind = adds && (unindexed > bound || unwritten > MAX_UNWRITTEN_LOG_BYTES);
            if !held && !behind {
                return Ok(());
            }
            if started.elapsed() >= patience {
                self.counters.borrow_mut().backlog_refusals += 1;
                let spec = shard.spec();
                if held {
                    return Err(ShardError::WritesHeld {
                        collection: spec.name().to_owned(),
                        shard_id: spec.shard_id,
                    });
                }
                return Err(ShardError::Backlog {
                    collection: spec.name().to_owned(),
                    shard_id: spec.shard_id,
                    unindexed,
                    max: bound,
                });
            }
            self.wake_indexer();
            monoio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Runs `f` with the core's search scratch.
    pub(crate) fn with_scratch<T>(&self, f: impl FnOnce(&mut SearchScratch) -> T) -> T {
        f(&mut self.scratch.borrow_mut())
    }

    /// The core's search scratch, for work that borrows it slice by slice (never across
    /// an await).
    pub(crate) fn scratch(&self) -> &RefCell<SearchScratch> {
        &self.scratch
    }

    fn shard_dir(&self, collection: &str, shard_id: u32) -> PathBuf {
        self.config
            .data_dir
            .join(collection)
            .join(format!("shard-{shard_id}"))
    }

    /// The shard a data call names, if this core serves it at that epoch.
    pub fn shard(&self, r: Option<&ShardRef>) -> Result<Rc<ShardHandle>, ShardError> {
        let r = r.ok_or(ShardError::BadAssignment {
            reason: "the request names no shard".into(),
        })?;
        let shard = self
            .shards
            .borrow()
            .get(&(r.collection.clone(), r.shard_id))
            .cloned()
            .ok_or_else(|| ShardError::UnknownShard {
                collection: r.collection.clone(),
                shard_id: r.shard_id,
            })?;
        let current = shard.epoch();
        if current != r.epoch {
            return Err(ShardError::WrongEpoch {
                collection: r.collection.clone(),
                shard_id: r.shard_id,
                current,
                requested: r.epoch,
            });
        }
        Ok(shard)
    }

    /// Every shard held, ordered by collection and shard id.
    pub fn shards(&self) -> Vec<Rc<ShardHandle>> {
        self.shards.borrow().values().cloned().collect()
    }

    /// Opens a shard (or adopts a new epoch for one already open, or reopens one that
    /// stopped after a failure). Idempotent. With `must_exist`, a shard whose directory
    /// holds no manifest is refused rather than created empty: its data was lost.
    ///
    /// A shard held or stored under the same name and id but another incarnation
    /// belonged to a dropped collection: it is closed, its files are removed, and the
    /// shard opens empty (or, with `must_exist`, is refused as missing).
    pub async fn open_shard(
        &self,
        assignment: &ShardAssignment,
        must_exist: bool,
    ) -> Result<Rc<ShardHandle>, ShardError> {
        let mut spec = ShardSpec::from_assignment(assignment)?;
        let key: ShardKey = (spec.name().to_owned(), spec.shard_id);
        let existing = self.shards.borrow().get(&key).cloned();
        if let Some(shard) = existing {
            let held = shard.spec();
            if !shard.is_stopped() && !spec.replaces(held.incarnation) {
                if !held.same_collection(&spec.collection) || held.range != spec.range {
                    return Err(ShardError::SpecMismatch {
                        collection: key.0,
                        shard_id: key.1,
                    });
                }
                let incarnation = match spec.incarnation {
                    0 => held.incarnation,
                    wanted => wanted,
                };
                if held.replica.as_ref().map(|r| r.id) != spec.replica.as_ref().map(|r| r.id) {
                    return Err(ShardError::BadAssignment {
                        reason: format!(
                            "shard {} of collection {:?} is held here as {}; close it before opening it as {}",
                            key.1,
                            key.0,
                            replica_name(&held),
                            replica_name(&spec)
                        ),
                    });
                }
                if held.epoch != spec.epoch || held.incarnation != incarnation {
                    shard.set_placement(spec.epoch, incarnation)?;
                }
                shard.set_replica(spec.replica.as_ref())?;
                shard.set_payload_indexes(&spec.collection.payload_indexes)?;
                return Ok(shard);
            }
            // A stopped shard, or one of a dropped collection: close it; the open below
            // recovers the first from disk and removes the second's files.
            self.shards.borrow_mut().remove(&key);
            shard.release().await;
        }
        if !self.opening.borrow_mut().insert(key.clone()) {
            return Err(ShardError::Stopped {
                collection: key.0,
                shard_id: key.1,
                reason: "it is being opened by another call".into(),
            });
        }
        let dir = self.shard_dir(&key.0, key.1);
        if must_exist {
            let found = ShardHandle::current_manifest(&dir, &mut spec);
            if !matches!(found, Ok(Some(_))) {
                self.opening.borrow_mut().remove(&key);
                found?;
                return Err(ShardError::Missing {
                    collection: key.0,
                    shard_id: key.1,
                    dir,
                });
            }
        }
        let opened = if spec.replica.is_some() {
            ShardHandle::open_replica(&dir, spec, self.config.wal, &self.host).await
        } else {
            ShardHandle::open(&dir, spec, self.config.wal).await
        };
        self.opening.borrow_mut().remove(&key);
        let shard = opened?;
        let counters = Rc::clone(&self.counters);
        shard.wal().set_sync_observer(move |event| {
            counters
                .borrow_mut()
                .wal_sync_latency
                .record(event.duration);
        });
        self.shards.borrow_mut().insert(key, Rc::clone(&shard));
        self.work.notify();
        Ok(shard)
    }

    /// Closes a shard (checkpointing it), optionally removing its files.
    pub async fn close_shard(&self, r: &ShardRef, delete_data: bool) -> Result<(), ShardError> {
        let shard = self.shard(Some(r))?;
        self.shards
            .borrow_mut()
            .remove(&(r.collection.clone(), r.shard_id));
        if delete_data {
            shard.release().await;
            remove_shard_dir(shard.dir())
        } else {
            shard.close().await
        }
    }

    /// Reopens every shard found under the core's data directory. Finishes the removal
    /// of shard directories a crash interrupted, and skips (with a warning) entries that
    /// are not directories.
    pub async fn reopen_all(&self) -> Vec<(PathBuf, ShardError)> {
        let mut failures = Vec::new();
        let Ok(collections) = std::fs::read_dir(&self.config.data_dir) else {
            return failures;
        };
        for collection in collections.flatten() {
            let collection = collection.path();
            if !collection.is_dir() {
                tracing::warn!(path = %collection.display(), "not a collection directory; skipped");
                continue;
            }
            let Ok(shards) = std::fs::read_dir(&collection) else {
                continue;
            };
            for dir in shards.flatten() {
                let path = dir.path();
                if dir
                    .file_name()
                    .as_encoded_bytes()
                    .starts_with(DELETING.as_bytes())
                {
                    if let Err(e) = finish_removal(&path) {
                        failures.push((path, e));
                    }
                    continue;
                }
                if !path.is_dir() {
                    tracing::warn!(path = %path.display(), "not a shard directory; skipped");
                    continue;
                }
                let manifest = match crate::checkpoint::read_manifest(&path) {
                    Ok(Some(m)) => m,
                    Ok(None) => continue,
                    Err(e) => {
                        failures.push((path, e));
                        continue;
                    }
                };
                let Some(assignment) = manifest.assignment else {
                    continue;
                };
                if let Err(e) = self.open_shard(&assignment, true).await {
                    failures.push((path, e));
                }
            }
        }
        failures
    }

    /// Tells background work that a write arrived.
    pub(crate) fn wake_indexer(&self) {
        self.work.notify();
    }

    /// Indexes pending points and repairs graphs in short slices, yielding to the
    /// core's other tasks between slices; sleeps when there is nothing to do.
    pub async fn run_indexer(self: Rc<Self>) {
        while !self.stopping.get() {
            if self.index_slice(INDEX_SLICE) {
                self.yielder.yield_now().await;
            } else {
                self.work.notified().await;
            }
        }
    }

    /// One slice of background indexing, at least one step and then until `slice` has
    /// passed. Shards take turns: a slice starts at the shard after the one the last
    /// slice stepped last, so a shard with a long backlog does not starve the others.
    /// Returns whether there was work.
    fn index_slice(&self, slice: Duration) -> bool {
        let started = Instant::now();
        let shards: Vec<_> = self
            .shards
            .borrow()
            .iter()
            .map(|(key, shard)| (key.clone(), Rc::clone(shard)))
            .collect();
        let first = self.index_cursor.borrow().as_ref().map_or(0, |last| {
            shards.partition_point(|(key, _)| key <= last) % shards.len().max(1)
        });
        let mut worked = false;
        for i in 0..shards.len() {
            let (key, shard) = &shards[(first + i) % shards.len()];
            let mut stepped = false;
            while shard.index_step(1) {
                stepped = true;
                if started.elapsed() >= slice {
                    break;
                }
            }
            if stepped {
                worked = true;
                *self.index_cursor.borrow_mut() = Some(key.clone());
            }
            if worked && started.elapsed() >= slice {
                break;
            }
        }
        worked
    }

    /// Checkpoints shards whose log grew past the threshold, periodically.
    pub async fn run_checkpointer(self: Rc<Self>) {
        while !self.stopping.get() {
            monoio::time::sleep(CHECKPOINT_CHECK).await;
            for shard in self.shards() {
                if shard.checkpoint_due(CHECKPOINT_WAL_BYTES) {
                    let _ = self.checkpoint(&shard).await;
                }
            }
        }
    }

    /// Hands leaderships back to the replicas placement prefers, periodically
    /// ([`ShardHandle::hand_over`]).
    pub async fn run_leader_balance(self: Rc<Self>) {
        while !self.stopping.get() {
            monoio::time::sleep(LEADER_BALANCE_CHECK).await;
            for shard in self.shards() {
                if shard.hand_over().await {
                    let spec = shard.spec();
                    tracing::info!(
                        collection = spec.name(),
                        shard = spec.shard_id,
                        "handed the leadership to the group's preferred leader"
                    );
                }
            }
        }
    }

    /// Checkpoints `shard` ([`ShardHandle::checkpoint`]), then wakes the indexer, which
    /// leaves a shard alone while its checkpoint holds its writes and would otherwise
    /// sleep on its backlog until the next write.
    pub async fn checkpoint(&self, shard: &ShardHandle) -> Result<u64, ShardError> {
        let covered = shard.checkpoint().await;
        self.wake_indexer();
        covered
    }

    /// Measures, every [`DELAY_PROBE`], how long a task that becomes ready waits to run:
    /// the time from making itself ready (a yield, as an arriving call's task is made
    /// ready by its socket) to running again, behind the work the core does meanwhile.
    /// It is the core's stall detector, reported as `scheduling_delay`; one wake-up per
    /// period. (A timer's lateness would measure the runtime's 1 ms timer resolution.)
    pub async fn watch_delays(self: Rc<Self>) {
        while !self.stopping.get() {
            monoio::time::sleep(DELAY_PROBE).await;
            let ready = Instant::now();
            self.yielder.yield_now().await;
            let waited = ready.elapsed();
            self.counters.borrow_mut().scheduling_delay.record(waited);
        }
    }

    /// Stops background work and closes every shard (each checkpoints first).
    pub async fn shutdown(&self) -> Vec<ShardError> {
        self.stopping.set(true);
        self.work.notify();
        let shards: Vec<_> = std::mem::take(&mut *self.shards.borrow_mut())
            .into_values()
            .collect();
        let mut errors = Vec::new();
        for shard in shards {
            if let Err(e) = shard.close().await {
                errors.push(e);
            }
        }
        errors
    }

    /// Statistics of the core and every shard it holds; `server` is the core's gRPC
    /// server, once it runs.
    pub fn stats(&self, server: Option<&StatsHandle>) -> CoreStats {
        let mut out = CoreStats {
            worker_id: self.config.worker_id.clone(),
            core: self.config.index,
            cpu: self.config.cpu.and_then(|c| u32::try_from(c).ok()),
            address: self.config.address.clone(),
            driver: self.driver.to_owned(),
            ..Default::default()
        };
        {
            let mut counters = self.counters.borrow_mut();
            if let Some(server) = server {
                counters.in_flight = u32::try_from(server.in_flight()).unwrap_or(u32::MAX);
                counters.calls_refused =
                    server.calls_refused_max_calls() + server.calls_refused_max_buffered_bytes();
                counters.buffered_bytes = server.buffered_bytes() as u64;
            }
            counters.fill(self.uptime(), &mut out);
        }
        out.cpu_s = thread_cpu_seconds();
        let shards = self.shards();
        out.shards = shards.iter().map(|s| s.stats()).collect();
        out.memory_bytes = out.shards.iter().map(|s| s.memory_bytes).sum();
        out.queue_depth = shards.iter().map(|s| s.pending() as u64).sum();
        out
    }
}

/// How an assignment names a shard's copy, for errors.
fn replica_name(spec: &ShardSpec) -> String {
    match &spec.replica {
        Some(r) => format!("replica {}", r.id),
        None => "a shard of one copy".into(),
    }
}

/// CPU time (user + system) of the calling thread, in seconds; 0 if unavailable.
fn thread_cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the pointer it is given, which points to
    // a zeroed value of that type we own.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, usage.as_mut_ptr()) };
    if rc != 0 {
        return 0.0;
    }
    // SAFETY: getrusage returned 0, so it filled the value (and it was zeroed anyway).
    let usage = unsafe { usage.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::tests::{assignment, points, run};
    use std::path::Path;
    use vectron_proto::core::v1::Point;

    /// Both ways of yielding (the io_uring read, and the timer the legacy driver uses)
    /// let a task that became ready meanwhile run before the loop goes on.
    #[test]
    fn yielding_lets_other_tasks_run_on_either_path() {
        run(async {
            for yielder in [Yielder::new(), Yielder { null: None }] {
                let ran = Rc::new(Cell::new(false));
                let flag = Rc::clone(&ran);
                monoio::spawn(async move { flag.set(true) });
                yielder.yield_now().await;
                assert!(ran.get(), "{yielder:?}");
            }
        });
    }

    fn new_core(data_dir: &Path) -> Rc<Core> {
        Core::new(
            CoreConfig {
                index: 0,
                cpu: None,
                worker_id: "w-test".into(),
                address: "127.0.0.1:0".into(),
                data_dir: data_dir.to_path_buf(),
                wal: Options::default(),
                max_unindexed: Some(100),
                group: GroupSettings::default(),
                cluster_key: None,
            },
            "test",
        )
    }

    fn shard_ref(collection: &str) -> ShardRef {
        ShardRef {
            collection: collection.to_owned(),
            shard_id: 0,
            epoch: 1,
        }
    }

    #[test]
    fn indexing_slices_take_turns_across_shards() {
        let dir = tempfile::tempdir().unwrap();
        run(async {
            let core = new_core(dir.path());
            for name in ["a", "b", "c"] {
                let shard = core.open_shard(&assignment(name), false).await.unwrap();
                shard.upsert(points(0..4), true).await.unwrap();
                assert_eq!(shard.pending(), 4);
            }
            // A zero-length slice makes exactly one step: three slices, one per shard.
            for _ in 0..3 {
                assert!(core.index_slice(Duration::ZERO));
            }
            let pending: Vec<_> = core.shards().iter().map(|s| s.pending()).collect();
            assert_eq!(pending, [3, 3, 3]);
            // A shard without a backlog is passed over.
            core.shards()[1].index_step(usize::MAX);
            for _ in 0..2 {
                assert!(core.index_slice(Duration::ZERO));
            }
            let pending: Vec<_> = core.shards().iter().map(|s| s.pending()).collect();
            assert_eq!(pending, [2, 0, 2]);
            core.shutdown().await;
        });
    }

    #[test]
    fn writes_wait_for_a_backlog_over_its_bound_then_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        run(async {
            // At most 100 points unindexed (new_core); 500 written, nothing indexing.
            let core = new_core(dir.path());
            let shard = core.open_shard(&assignment("a"), false).await.unwrap();
            shard.upsert(points(0..500), true).await.unwrap();
            let refused = core
                .admit_write_within(&shard, true, Duration::from_millis(50))
                .await
                .unwrap_err();
            assert!(
                matches!(
                    refused,
                    ShardError::Backlog {
                        unindexed: 500,
                        max: 100,
                        ..
                    }
                ),
                "{refused}"
            );
            let status = crate::status(&refused);
            assert_eq!(status.code(), vectron_net::Code::ResourceExhausted);
            // With the indexer at work, the write waits until the backlog is under the
            // bound, then goes ahead.
            monoio::spawn(Rc::clone(&core).run_indexer());
            core.admit_write_within(&shard, true, Duration::from_secs(60))
                .await
                .unwrap();
            assert!(shard.pending() <= 100, "{}", shard.pending());
            core.shutdown().await;
        });
    }

    #[test]
    fn the_indexer_resumes_after_a_checkpoint_that_held_the_shard() {
        let dir = tempfile::tempdir().unwrap();
        run(async {
            let core = new_core(dir.path());
            let shard = core.open_shard(&assignment("a"), false).await.unwrap();
            for from in (0..20_000).step_by(5_000) {
                shard
                    .upsert(points(from..from + 5_000), true)
                    .await
                    .unwrap();
            }
            monoio::spawn(Rc::clone(&core).run_indexer());
            // The indexer starts while the checkpoint syncs the log, finds the shard
            // held once the files are being written, and sleeps.
            core.checkpoint(&shard).await.unwrap();
            assert!(shard.pending() > 0, "indexed before the checkpoint held it");
            // No write comes to wake it: the checkpoint's end must.
            let waited = Instant::now();
            while shard.pending() > 0 {
                assert!(
                    waited.elapsed() < Duration::from_secs(60),
                    "{} points left unindexed",
                    shard.pending()
                );
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
            core.shutdown().await;
        });
    }

    #[test]
    fn the_scheduling_delay_shows_a_task_that_holds_the_core() {
        let dir = tempfile::tempdir().unwrap();
        run(async {
            let core = new_core(dir.path());
            monoio::spawn(Rc::clone(&core).watch_delays());
            let yielder = Yielder::new();
            // At rest: a ready task runs again at once.
            monoio::time::sleep(Duration::from_millis(100)).await;
            let rest = core.counters.borrow().scheduling_delay.summary();
            assert!(rest.count >= 5, "{rest:?}");
            assert!(rest.max_us < 5_000.0, "{rest:?}");
            // A task that blocks the thread for 20 ms at a time.
            for _ in 0..15 {
                std::thread::sleep(Duration::from_millis(20));
                yielder.yield_now().await;
            }
            let busy = core.counters.borrow().scheduling_delay.summary();
            assert!(busy.max_us >= 15_000.0, "{busy:?}");
            core.shutdown().await;
        });
    }

    #[test]
    fn stray_files_in_the_data_directory_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        run(async {
            let core = new_core(dir.path());
            let shard = core.open_shard(&assignment("docs"), false).await.unwrap();
            shard.upsert(points(0..3), true).await.unwrap();
            let shard_dir = shard.dir().to_path_buf();
            drop(shard);
            assert!(core.shutdown().await.is_empty());
            std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
            std::fs::write(dir.path().join("docs").join("notes.txt"), b"x").unwrap();
            std::fs::write(shard_dir.join("checkpoint-notes"), b"x").unwrap();

            let core = new_core(dir.path());
            let failures = core.reopen_all().await;
            assert!(failures.is_empty(), "{failures:?}");
            assert_eq!(core.shards().len(), 1);
            assert_eq!(core.shards()[0].stats().points, 3);
            assert!(shard_dir.join("checkpoint-notes").is_file());
            core.shutdown().await;
        });
    }

    #[test]
    fn a_shard_removal_cut_short_is_finished_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        run(async {
            let core = new_core(dir.path());
            for name in ["kept", "dropped"] {
                let shard = core.open_shard(&assignment(name), false).await.unwrap();
                shard.upsert(points(0..3), true).await.unwrap();
                shard.checkpoint().await.unwrap();
            }
            core.close_shard(&shard_ref("dropped"), true).await.unwrap();
            let collection = dir.path().join("dropped");
            assert!(
                !collection.exists(),
                "the collection's last shard took its directory with it"
            );
            assert!(core.shutdown().await.is_empty());

            // A crash in the middle of removing `kept`: renamed aside, its checkpoint
            // already gone, its manifest still there.
            let shard_dir = dir.path().join("kept").join("shard-0");
            let aside = dir.path().join("kept").join(".deleting-shard-0");
            std::fs::rename(&shard_dir, &aside).unwrap();
            for entry in std::fs::read_dir(&aside).unwrap().flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with("checkpoint-")
                {
                    std::fs::remove_dir_all(entry.path()).unwrap();
                }
            }
            assert!(aside.join("MANIFEST").is_file());

            let core = new_core(dir.path());
            let failures = core.reopen_all().await;
            assert!(failures.is_empty(), "{failures:?}");
            assert!(core.shards().is_empty());
            assert!(!aside.exists());
            assert!(!dir.path().join("kept").exists());
            core.shutdown().await;
        });
    }

    /// `docs` shard 0 as the collection created at log index `incarnation` places it.
    fn incarnation(incarnation: u64, epoch: u64, dimension: u32) -> ShardAssignment {
        let mut a = assignment("docs");
        a.incarnation = incarnation;
        a.epoch = epoch;
        a.spec.as_mut().unwrap().dimension = dimension;
        a
    }

    fn files_under(dir: &Path) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }

    /// Opens `docs` at incarnation 1 with three points checkpointed and one more in the
    /// log; returns the shard's directory.
    async fn filled(core: &Core) -> PathBuf {
        let shard = core.open_shard(&incarnation(1, 1, 4), false).await.unwrap();
        shard.upsert(points(0..3), true).await.unwrap();
        shard.checkpoint().await.unwrap();
        shard.upsert(points(3..4), true).await.unwrap();
        assert_eq!(shard.stats().points, 4);
        shard.dir().to_path_buf()
    }

    #[test]
    fn a_new_epoch_of_the_same_incarnation_keeps_the_data() {
        let dir = tempfile::tempdir().unwrap();
        run(async {
            let core = new_core(dir.path());
            let shard_dir = filled(&core).await;
            let moved = core.open_shard(&incarnation(1, 9, 4), false).await.unwrap();
            assert_eq!((moved.epoch(), moved.stats().points), (9, 4));
            assert!(core.shutdown().await.is_empty());
            drop(moved);

            // And from disk, under another epoch again.
            let core = new_core(dir.path());
            let shard = core.open_shard(&incarnation(1, 12, 4), true).await.unwrap();
            assert_eq!((shard.epoch(), shard.stats().points), (12, 4));
            let manifest = crate::checkpoint::read_manifest(&shard_dir)
                .unwrap()
                .unwrap();
            let recorded = manifest.assignment.unwrap();
            assert_eq!((recorded.epoch, recorded.incarnation), (12, 1));
            core.shutdown().await;
        });
    }

    #[test]
    fn a_held_shard_of_a_dropped_collection_is_replaced_by_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        run(async {
            let core = new_core(dir.path());
            let shard_dir = filled(&core).await;
            let old = core.shard(Some(&ShardRef {
                collection: "docs".into(),
                shard_id: 0,
                epoch: 1,
            }));
            let old = old.unwrap();
            // Re-created under the same name with another dimension, before the worker
            // saw the drop: the held shard is closed and its files go.
            let new = core.open_shard(&incarnation(5, 5, 3), false).await.unwrap();
            assert!(!Rc::ptr_eq(&old, &new));
            assert_eq!(new.stats().points, 0);
            assert_eq!(new.spec().collection.dimension, 3);
            assert_eq!(new.spec().incarnation, 5);
            assert_eq!(files_under(&shard_dir), ["MANIFEST", "wal"]);
            let p = Point {
                id: "p0".into(),
                vector: vec![1.0, 2.0, 3.0],
                payload_json: Vec::new(),
            };
            new.upsert(vec![p], true).await.unwrap();
            assert_eq!(new.stats().points, 1);
            assert!(matches!(
                core.shard(Some(&shard_ref("docs"))),
                Err(ShardError::WrongEpoch { .. })
            ));
            drop(old);
            assert!(core.shutdown().await.is_empty());
            drop(new);

            // The new incarnation is what the disk holds now.
            let core = new_core(dir.path());
            assert!(core.reopen_all().await.is_empty());
            let reopened = core.open_shard(&incarnation(5, 5, 3), true).await.unwrap();
            assert_eq!(reopened.stats().points, 1);
            core.shutdown().await;
        });
    }

    #[test]
    fn a_stored_shard_of_a_dropped_collection_is_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        run(async {
            let core = new_core(dir.path());
            let shard_dir = filled(&core).await;
            assert!(core.shutdown().await.is_empty());

            // The worker was down while the collection was dropped and re-created with
            // the same spec: the restarted core reopens the old shard, and the new
            // assignment replaces it.
            let core = new_core(dir.path());
            assert!(core.reopen_all().await.is_empty());
            assert_eq!(core.shards()[0].stats().points, 4);
            let new = core.open_shard(&incarnation(7, 7, 4), false).await.unwrap();
            assert_eq!(new.stats().points, 0);
            assert_eq!(core.shards().len(), 1);
            assert!(
                new.get(&["p0".to_owned()], false, false)
                    .unwrap()
                    .is_empty()
            );
            drop(new);
            assert!(core.shutdown().await.is_empty());

            // Not reopened first: the open itself finds the old manifest.
            let core = new_core(dir.path());
            let stale = core.open_shard(&incarnation(7, 7, 4), false).await.unwrap();
            stale.upsert(points(0..2), true).await.unwrap();
            drop(stale);
            assert!(core.shutdown().await.is_empty());
            let core = new_core(dir.path());
            let new = core.open_shard(&incarnation(8, 8, 4), false).await.unwrap();
            assert_eq!(new.stats().points, 0);
            drop(new);
            assert!(core.shutdown().await.is_empty());

            // A replica that served before must not be created empty: another
            // incarnation on disk is removed and the shard reported missing.
            let core = new_core(dir.path());
            let err = core
                .open_shard(&incarnation(9, 9, 4), true)
                .await
                .unwrap_err();
            assert!(matches!(err, ShardError::Missing { .. }), "{err}");
            assert!(
                !shard_dir.exists(),
                "the dropped collection's files are gone"
            );
            assert!(core.shards().is_empty());
            core.shutdown().await;
        });
    }

    #[test]
    fn a_shard_without_a_recorded_incarnation_adopts_the_one_it_is_opened_with() {
        let dir = tempfile::tempdir().unwrap();
        run(async {
            let core = new_core(dir.path());
            let shard = core.open_shard(&incarnation(0, 1, 4), false).await.unwrap();
            shard.upsert(points(0..3), true).await.unwrap();
            let shard_dir = shard.dir().to_path_buf();
            drop(shard);
            assert!(core.shutdown().await.is_empty());
            let manifest = crate::checkpoint::read_manifest(&shard_dir)
                .unwrap()
                .unwrap();
            assert_eq!(manifest.assignment.unwrap().incarnation, 0);

            // Written before incarnations: kept, and the incarnation recorded.
            let core = new_core(dir.path());
            let shard = core.open_shard(&incarnation(4, 4, 4), true).await.unwrap();
            assert_eq!((shard.stats().points, shard.spec().incarnation), (3, 4));
            // An open that names no incarnation takes the shard as it is.
            let same = core.open_shard(&incarnation(0, 6, 4), false).await.unwrap();
            assert!(Rc::ptr_eq(&shard, &same));
            assert_eq!((same.epoch(), same.spec().incarnation), (6, 4));
            drop((shard, same));
            assert!(core.shutdown().await.is_empty());
            let manifest = crate::checkpoint::read_manifest(&shard_dir)
                .unwrap()
                .unwrap();
            let recorded = manifest.assignment.unwrap();
            assert_eq!((recorded.epoch, recorded.incarnation), (6, 4));
        });
    }
}
