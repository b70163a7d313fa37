//! A shard on its core: the state machine of [`crate::shard`] plus its write-ahead log
//! and checkpoints. Everything here runs on the core's thread; the state sits in a
//! `RefCell` that is never borrowed across an `.await`.
//!
//! A write is validated, appended to the log (which fixes its LSN at once, so log order
//! is call order), applied to the state right away, and acknowledged when the log says
//! it is durable. Every acknowledged write survives a crash. A reader may see a write a
//! few hundred microseconds before it is acknowledged, and may see one that is never
//! acknowledged: a failed `fdatasync` stops the shard and a restart rebuilds the state
//! from disk without it, and a crash loses it from the log. A checkpoint saves the state
//! as it is, including writes appended while the checkpoint's own sync was in flight, so
//! such an unacknowledged write can outlive a crash that lost its log record
//! (`FORMAT.md`, "Known limit").

use std::cell::{Cell, RefCell};
use std::fs;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::time::{Duration, Instant};

use vectron_hnsw::{HnswError, HnswIndex, IndexConfig, NodeId, SearchScratch};
use vectron_proto::core::v1::{Point, ShardManifest};
use vectron_proto::rules::{self, Limits, RuleError};
use vectron_proto::v1::ShardStats;
use vectron_wal::{AppendError, BodyView, Delete, Lsn, Options, Record, Upsert, Wal};

use crate::checkpoint::{self, FORMAT_VERSION, INDEX_FILE, POINTS_FILE, PointsFile, PointsWriter};
use crate::core::Yielder;
use crate::error::ShardError;
use crate::filter::{Filter, Plan};
use crate::replica::{ReadRefused, ReplicaHost, ShardReplica};
use crate::shard::{
    HitOut, PointOut, ScrollRead, ScrollStep, SearchArgs, Searched, ShardState, UpsertBatch,
};
use crate::spec::ShardSpec;
use vectron_replica::{ProposeError, ShardOp, lsn_of};

/// The rulebook's limits, which a core enforces.
const LIMITS: &Limits = &Limits::DEFAULT;

/// Work a long scan (a count, a scroll or a delete by a filter that reads payloads)
/// does before it lets the core's other work run.
pub(crate) const SCAN_SLICE: Duration = Duration::from_micros(500);
/// Vector bytes an exact search reads before it lets the core's other work run: about
/// [`SCAN_SLICE`] of distances at a few GB/s.
const EXACT_SLICE_BYTES: usize = 2 << 20;

/// A filter's plan, made again whenever the shard changed since it was made (a plan
/// names nodes, and a node may since hold another point).
struct Planned<'f> {
    filter: &'f Filter,
    made: Option<(u64, Plan)>,
}

impl<'f> Planned<'f> {
    fn new(filter: &'f Filter) -> Self {
        Self { filter, made: None }
    }

    fn plan(&mut self, state: &ShardState) -> &Plan {
        let generation = state.generation();
        if self.made.as_ref().is_none_or(|(at, _)| *at != generation) {
            self.made = Some((generation, state.plan(self.filter)));
        }
        &self.made.as_ref().expect("planned above").1
    }
}

/// The outcome of a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteAck {
    /// Points written or deleted.
    pub count: u64,
    /// LSN of the record (0 when nothing was logged).
    pub lsn: u64,
    /// Whether the record is durable.
    pub durable: bool,
}

/// A write that is taken (logged and applied, or proposed to the shard's group),
/// waiting to be acknowledged.
pub struct PendingWrite<'a> {
    done: Pin<Box<dyn Future<Output = Result<WriteAck, ShardError>> + 'a>>,
    count: u64,
    lsn: u64,
}

impl std::fmt::Debug for PendingWrite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingWrite")
            .field("count", &self.count)
            .field("lsn", &self.lsn)
            .finish()
    }
}

impl PendingWrite<'_> {
    /// Points in the write.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The write's LSN, when known before it is acknowledged (a replicated write gets
    /// its LSN when its leader logs it: 0 until then).
    pub fn lsn_hint(&self) -> u64 {
        self.lsn
    }

    /// Waits until the write is acknowledged: durable in the shard's log, or for a
    /// replicated shard, durable on a majority of its replicas and applied here. A
    /// failure of the log stops the shard.
    pub async fn finish(self) -> Result<WriteAck, ShardError> {
        self.done.await
    }
}

/// One shard, opened on its core.
#[derive(Debug)]
pub struct ShardHandle {
    /// The state; a replicated shard shares it with its state machine.
    state: Rc<RefCell<ShardState>>,
    wal: Rc<Wal>,
    /// The shard's Raft side, when it is a replica of a replicated shard.
    replica: Option<ShardReplica>,
    dir: PathBuf,
    /// Set when the shard must stop: every later call fails with it.
    failed: RefCell<Option<String>>,
    checkpoint_lsn: Cell<u64>,
    /// LSN of the last upsert or delete logged (0 when none since the log began). A
    /// checkpoint is due only when it is above `checkpoint_lsn`: checkpoint markers take
    /// LSNs too, but change nothing.
    data_lsn: Cell<u64>,
    checkpointing: Cell<bool>,
    /// Set once the shard is being closed: a checkpoint under way when it is set writes
    /// nothing more (its files could bring back a shard whose directory is being
    /// deleted).
    closing: Cell<bool>,
    /// Set while a checkpoint writes its files: writes and the indexer wait.
    writes_held: Cell<bool>,
    /// Points the indexer linked since the shard opened.
    linked: Cell<u64>,
    /// Slices of checkpoint files written since the shard opened: a checkpoint's
    /// progress, which writes held by it wait on.
    checkpoint_slices: Cell<u64>,
    /// What a checkpoint waits on between slices.
    yielder: Yielder,
    /// The build of payload indexes added by an update, if one runs.
    payload_build: Cell<PayloadBuild>,
}

/// Where the build of added payload indexes stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PayloadBuild {
    /// None runs.
    Idle,
    /// A build task runs.
    Running,
    /// A build task runs, and another index was added since it began: it starts over
    /// at its next slice, so the new index gets every point too.
    Restart,
}

impl ShardHandle {
    /// Opens the shard stored in `dir`, creating it when new: reads the newest
    /// checkpoint, replays the log after it, and adopts the assignment's epoch. An
    /// existing shard of the same incarnation must have the same collection spec and
    /// range; one of another incarnation belonged to a dropped collection of the same
    /// name: its files are removed and the shard is created empty.
    pub async fn open(
        dir: &Path,
        mut spec: ShardSpec,
        wal: Options,
    ) -> Result<Rc<Self>, ShardError> {
        if spec.replica.is_some() {
            return Err(ShardError::BadAssignment {
                reason: "a replica of a replicated shard opens on a core, with its group".into(),
            });
        }
        let manifest = Self::checked_manifest(dir, &mut spec)?;
        checkpoint::create_dir_durable(dir)?;
        let checkpoint_lsn = manifest.as_ref().map_or(0, |m| m.checkpoint_lsn);
        // Loading and replaying a large shard take a while: they let the core's other
        // shards and calls run between slices.
        let yielder = Yielder::new();
        let mut state = match manifest.as_ref().filter(|m| !m.checkpoint_dir.is_empty()) {
            None => ShardState::new(spec.clone())?,
            Some(m) => {
                load_checkpoint(&dir.join(&m.checkpoint_dir), spec.clone(), &yielder).await?
            }
        };
        let wal = Wal::open(dir.join("wal"), wal)
            .await
            .map_err(|source| ShardError::Wal { source })?;
        let data_lsn = replay(&wal, Lsn::new(checkpoint_lsn + 1), &mut state, &yielder).await?;
        let handle = Self::new(
            dir,
            Rc::new(RefCell::new(state)),
            Rc::new(wal),
            None,
            checkpoint_lsn,
            data_lsn,
            yielder,
        );
        handle.write_manifest()?;
        if let Some(m) = &manifest {
            checkpoint::remove_stale_checkpoints(dir, &m.checkpoint_dir)?;
        }
        Ok(Rc::new(handle))
    }

    /// Opens replica `spec.replica` of a replicated shard stored in `dir` (created when
    /// new), with its group's Raft registered in `host`: the state is its newest
    /// snapshot plus the committed entries of its log, which openraft applies again.
    pub(crate) async fn open_replica(
        dir: &Path,
        mut spec: ShardSpec,
        wal: Options,
        host: &Rc<ReplicaHost>,
    ) -> Result<Rc<Self>, ShardError> {
        let replica = spec
            .replica
            .clone()
            .ok_or_else(|| ShardError::BadAssignment {
                reason: "the assignment names no replica".into(),
            })?;
        let manifest = Self::checked_manifest(dir, &mut spec)?;
        let held = manifest
            .as_ref()
            .and_then(|m| m.assignment.as_ref())
            .map(|a| a.replica_id);
        if let Some(held) = held
            && held != replica.id
        {
            return Err(ShardError::BadAssignment {
                reason: format!(
                    "{} holds {}, not replica {}: a shard of one copy does not become a replica in place, nor one replica another",
                    dir.display(),
                    if held == 0 {
                        "a shard of one copy".to_owned()
                    } else {
                        format!("replica {held}")
                    },
                    replica.id
                ),
            });
        }
        checkpoint::create_dir_durable(dir)?;
        let opened = ShardReplica::open(dir, &spec, &replica, wal, host).await?;
        let handle = Self::new(
            dir,
            opened.state,
            opened.wal,
            Some(opened.replica),
            0,
            0,
            Yielder::new(),
        );
        if let Err(e) = handle.write_manifest() {
            handle.release().await;
            return Err(e);
        }
        Ok(Rc::new(handle))
    }

    fn new(
        dir: &Path,
        state: Rc<RefCell<ShardState>>,
        wal: Rc<Wal>,
        replica: Option<ShardReplica>,
        checkpoint_lsn: u64,
        data_lsn: u64,
        yielder: Yielder,
    ) -> Self {
        Self {
            state,
            wal,
            replica,
            dir: dir.to_path_buf(),
            failed: RefCell::new(None),
            checkpoint_lsn: Cell::new(checkpoint_lsn),
            data_lsn: Cell::new(data_lsn),
            checkpointing: Cell::new(false),
            closing: Cell::new(false),
            writes_held: Cell::new(false),
            linked: Cell::new(0),
            checkpoint_slices: Cell::new(0),
            yielder,
            payload_build: Cell::new(PayloadBuild::Idle),
        }
    }

    /// [`ShardHandle::current_manifest`], refusing one that holds another shard (other
    /// collection spec, range or shard id).
    fn checked_manifest(
        dir: &Path,
        spec: &mut ShardSpec,
    ) -> Result<Option<ShardManifest>, ShardError> {
        let manifest = Self::current_manifest(dir, spec)?;
        if let Some(m) = &manifest {
            let held = m
                .assignment
                .as_ref()
                .map(ShardSpec::from_assignment)
                .transpose()?;
            if let Some(held) = held
                && (!held.same_collection(&spec.collection)
                    || held.range != spec.range
                    || held.shard_id != spec.shard_id)
            {
                return Err(ShardError::SpecMismatch {
                    collection: spec.name().to_owned(),
                    shard_id: spec.shard_id,
                });
            }
        }
        Ok(manifest)
    }

    /// The manifest in `dir` that an open as `spec` would use: `None` when there is
    /// none, and when it records another incarnation than `spec` (a dropped collection
    /// of the same name), in which case the directory is removed first. When `spec`
    /// names no incarnation it takes the recorded one.
    pub(crate) fn current_manifest(
        dir: &Path,
        spec: &mut ShardSpec,
    ) -> Result<Option<ShardManifest>, ShardError> {
        let Some(manifest) = checkpoint::read_manifest(dir)? else {
            return Ok(None);
        };
        let held = manifest.assignment.as_ref().map_or(0, |a| a.incarnation);
        if spec.replaces(held) {
            tracing::info!(
                dir = %dir.display(),
                held,
                incarnation = spec.incarnation,
                "removing a shard of a dropped collection of the same name"
            );
            checkpoint::remove_shard_dir(dir)?;
            return Ok(None);
        }
        if spec.incarnation == 0 {
            spec.incarnation = held;
        }
        Ok(Some(manifest))
    }

    /// The shard's identity.
    pub fn spec(&self) -> ShardSpec {
        self.state.borrow().spec().clone()
    }

    /// The placement epoch served.
    pub fn epoch(&self) -> u64 {
        self.state.borrow().spec().epoch
    }

    /// Adopts a new placement epoch (recorded in the manifest).
    pub fn set_epoch(&self, epoch: u64) -> Result<(), ShardError> {
        let incarnation = self.spec().incarnation;
        self.set_placement(epoch, incarnation)
    }

    /// Adopts a new placement epoch and incarnation (recorded in the manifest). Only an
    /// unknown incarnation (0) may be replaced: any other change of incarnation means
    /// another collection, which [`ShardHandle::open`] handles by starting empty.
    pub(crate) fn set_placement(&self, epoch: u64, incarnation: u64) -> Result<(), ShardError> {
        self.state.borrow_mut().set_placement(epoch, incarnation);
        self.write_manifest()
    }

    /// Adopts a replica's new assignment of its group: where its peers are now
    /// (recorded in the manifest). Nothing for a shard of one copy.
    pub(crate) fn set_replica(
        &self,
        replica: Option<&crate::spec::ReplicaSpec>,
    ) -> Result<(), ShardError> {
        let (Some(mine), Some(new)) = (&self.replica, replica) else {
            return Ok(());
        };
        if self.state.borrow().spec().replica.as_ref() == Some(new) {
            return Ok(());
        }
        mine.set_peers(new);
        self.state.borrow_mut().set_replica(Some(new.clone()));
        self.write_manifest()
    }

    /// Adopts the collection's payload indexes as declared now (`Collections.Update`):
    /// dropped ones go at once; added ones are built by a task of this core, in slices
    /// of at most [`SCAN_SLICE`] with the core's other work between them, and serve
    /// filters once every point is in them. Nothing when they are as held.
    pub(crate) fn set_payload_indexes(
        self: &Rc<Self>,
        declared: &[vectron_proto::v1::PayloadIndex],
    ) -> Result<(), ShardError> {
        if self.state.borrow().spec().collection.payload_indexes == declared {
            return Ok(());
        }
        let build = self.state.borrow_mut().set_payload_indexes(declared);
        self.write_manifest()?;
        if build {
            match self.payload_build.get() {
                PayloadBuild::Idle => {
                    self.payload_build.set(PayloadBuild::Running);
                    monoio::spawn(Rc::clone(self).build_payload_indexes());
                }
                PayloadBuild::Running | PayloadBuild::Restart => {
                    self.payload_build.set(PayloadBuild::Restart);
                }
            }
        }
        Ok(())
    }

    /// Puts every live point into the payload indexes being built, a slice at a time;
    /// ends when they serve, or when the shard stops or closes (a reopened shard
    /// builds its indexes as it loads).
    async fn build_payload_indexes(self: Rc<Self>) {
        let mut from = 0;
        let started = Instant::now();
        loop {
            if self.usable().is_err() || self.closing.get() {
                self.payload_build.set(PayloadBuild::Idle);
                return;
            }
            if self.payload_build.get() == PayloadBuild::Restart {
                self.payload_build.set(PayloadBuild::Running);
                from = 0;
            }
            let next = self
                .state
                .borrow_mut()
                .build_payload_indexes(from, Instant::now() + SCAN_SLICE);
            match next {
                Some(n) => from = n,
                None => {
                    self.payload_build.set(PayloadBuild::Idle);
                    let st = self.state.borrow();
                    tracing::info!(
                        collection = st.spec().name(),
                        shard = st.spec().shard_id,
                        indexes = ?st.ready_payload_indexes(),
                        took_ms = started.elapsed().as_millis(),
                        "payload indexes built"
                    );
                    return;
                }
            }
            slice_break();
            self.yielder.yield_now().await;
        }
    }

    /// Whether the shard is a replica of a replicated shard.
    pub fn is_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// The shard's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Lets go of the shard without a checkpoint: a replica's Raft stops, and the log
    /// writes what is pending and releases its directory. What is not in a checkpoint
    /// is in the log.
    pub async fn release(&self) {
        self.begin_close();
        if let Some(replica) = &self.replica {
            replica.shutdown().await;
        }
        let _ = self.wal.close().await;
    }

    /// The write-ahead log, for hooking its sync latency into the core's statistics.
    pub fn wal(&self) -> &Wal {
        &self.wal
    }

    fn write_manifest(&self) -> Result<(), ShardError> {
        let lsn = self.checkpoint_lsn.get();
        let manifest = ShardManifest {
            format_version: FORMAT_VERSION,
            assignment: Some(self.state.borrow().spec().to_assignment()),
            checkpoint_lsn: lsn,
            checkpoint_dir: if lsn == 0 {
                String::new()
            } else {
                checkpoint::checkpoint_dir_name(lsn)
            },
        };
        checkpoint::write_manifest(&self.dir, &manifest)
    }

    /// Fails when the shard stopped, and stops it when its log failed under a write
    /// nobody waited for (`wait = false`): nothing is accepted on top of it.
    fn usable(&self) -> Result<(), ShardError> {
        if self.failed.borrow().is_none()
            && let Some(source) = self.wal.poison()
        {
            self.stop_on(ShardError::Wal { source });
        }
        if self.failed.borrow().is_none()
            && let Some(reason) = self.replica.as_ref().and_then(ShardReplica::failure)
        {
            self.stop_on(ShardError::Replay { reason });
        }
        match &*self.failed.borrow() {
            None => Ok(()),
            Some(reason) => {
                let st = self.state.borrow();
                Err(ShardError::Stopped {
                    collection: st.spec().name().to_owned(),
                    shard_id: st.spec().shard_id,
                    reason: reason.clone(),
                })
            }
        }
    }

    /// [`ShardHandle::usable`], and for a replica, able to answer reads (it knows a
    /// leader of its group and has applied what it knows is committed).
    fn readable(&self) -> Result<(), ShardError> {
        self.usable()?;
        if let Some(replica) = &self.replica
            && let Err(reason) = replica.check_readable()
        {
            let st = self.state.borrow();
            return Err(ShardError::Lagging {
                collection: st.spec().name().to_owned(),
                shard_id: st.spec().shard_id,
                reason,
            });
        }
        Ok(())
    }

    /// For a replica leading in place of its group's preferred leader: hands it the
    /// leadership once it has caught up ([`ShardReplica::hand_over`]). Returns whether
    /// it did.
    pub async fn hand_over(&self) -> bool {
        match &self.replica {
            Some(replica) if self.usable().is_ok() => replica.hand_over().await,
            _ => false,
        }
    }

    /// Holds a read of a replica to the freshness it asks for: `linearizable` confirms
    /// the replica leads its group and has applied every write acknowledged so far
    /// (refused as not the leader, or lagging, if not); `min_lsn` refuses a replica that
    /// has not applied that far yet (lagging). Nothing to do for a shard of one copy,
    /// whose every read is linearizable.
    pub async fn read_barrier(&self, linearizable: bool, min_lsn: u64) -> Result<(), ShardError> {
        let Some(replica) = &self.replica else {
            return Ok(());
        };
        self.usable()?;
        let lagging = |reason: String| {
            let st = self.state.borrow();
            ShardError::Lagging {
                collection: st.spec().name().to_owned(),
                shard_id: st.spec().shard_id,
                reason,
            }
        };
        let applied = replica.applied_lsn();
        if applied < min_lsn {
            return Err(lagging(format!(
                "it has applied its log up to {applied}, and the read must see {min_lsn}"
            )));
        }
        if !linearizable {
            return Ok(());
        }
        match replica.linearize().await {
            Ok(()) => Ok(()),
            Err(ReadRefused::NotLeader(leader)) => {
                Err(self.refused(ProposeError::NotLeader { leader }))
            }
            Err(ReadRefused::Unconfirmed(reason)) => Err(lagging(format!(
                "its leadership could not be confirmed: {reason}"
            ))),
        }
    }

    /// The error of a proposal that did not take effect, or may not have.
    fn refused(&self, e: ProposeError) -> ShardError {
        let st = self.state.borrow();
        let (collection, shard_id) = (st.spec().name().to_owned(), st.spec().shard_id);
        match e {
            ProposeError::NotLeader { leader } => ShardError::NotLeader {
                collection,
                shard_id,
                leader: leader.map(|id| {
                    let addr = st
                        .spec()
                        .replica
                        .as_ref()
                        .and_then(|r| r.peers.get(&id).copied());
                    (id, addr)
                }),
            },
            ProposeError::Indeterminate { reason } => ShardError::Indeterminate {
                collection,
                shard_id,
                reason,
            },
        }
    }

    /// Takes `record` (of `count` points or ids): logged and applied now, acknowledged
    /// once durable; or for a replica, proposed to its group now (refused when it does
    /// not lead), applied and acknowledged once committed.
    fn take(&self, record: Record<'_>, count: u64) -> Result<PendingWrite<'_>, ShardError> {
        let Some(replica) = &self.replica else {
            let logged = self.wal.append(record);
            let lsn = self.wal.last_lsn().get();
            self.data_lsn.set(lsn);
            let done = Box::pin(async move {
                match logged.await {
                    Ok(lsn) => Ok(WriteAck {
                        count,
                        lsn: lsn.get(),
                        durable: true,
                    }),
                    // Validation bounds batches far below the log's record limit, so a
                    // rejection means the state already holds a write the log refused:
                    // stop.
                    Err(AppendError::Rejected(e)) => Err(self.stop_on(ShardError::Replay {
                        reason: format!("the log refused a validated record: {e}"),
                    })),
                    Err(AppendError::Fatal(source)) => {
                        Err(self.stop_on(ShardError::Wal { source }))
                    }
                }
            });
            return Ok(PendingWrite { done, count, lsn });
        };
        let op = ShardOp::encode(&record).map_err(|e| ShardError::Replay {
            reason: format!("a validated write could not be encoded: {e}"),
        })?;
        let proposed = replica.propose(op).map_err(|e| self.refused(e))?;
        let done = Box::pin(async move {
            match proposed.await {
                Ok(done) => Ok(WriteAck {
                    count: done.data.count,
                    lsn: lsn_of(done.log_id.index).get(),
                    durable: true,
                }),
                Err(e) => Err(self.refused(e)),
            }
        });
        Ok(PendingWrite {
            done,
            count,
            lsn: 0,
        })
    }

    /// Records a fatal failure: the shard stops serving until reopened.
    fn stop_on(&self, err: ShardError) -> ShardError {
        if err.is_fatal() && self.failed.borrow().is_none() {
            let reason = crate::error::chain(&err);
            tracing::error!(
                shard = %self.dir.display(),
                error = %reason,
                "the shard stopped after a failure; it serves again once reopened"
            );
            *self.failed.borrow_mut() = Some(reason);
        }
        err
    }

    /// Refuses a write while a checkpoint writes its files (callers wait for
    /// [`ShardHandle::writes_held`] to clear first; this keeps the files consistent if
    /// one does not).
    fn check_writable(&self) -> Result<(), ShardError> {
        if self.writes_held.get() {
            let st = self.state.borrow();
            return Err(ShardError::WritesHeld {
                collection: st.spec().name().to_owned(),
                shard_id: st.spec().shard_id,
            });
        }
        Ok(())
    }

    /// Whether the shard stopped after a failure.
    pub fn is_stopped(&self) -> bool {
        self.failed.borrow().is_some()
    }

    // --- writes -------------------------------------------------------------------

    /// Upserts points: validate, log, apply, and (with `wait`) wait for durability.
    pub async fn upsert(&self, points: Vec<Point>, wait: bool) -> Result<WriteAck, ShardError> {
        let pending = self.begin_upsert(points)?;
        if wait {
            pending.finish().await
        } else {
            // Queued and applied; the log writes it whether or not anyone waits.
            Ok(WriteAck {
                count: pending.count,
                lsn: pending.lsn,
                durable: false,
            })
        }
    }

    /// Validates, logs and applies an upsert now; the returned write resolves once the
    /// log acknowledges it. Several may be outstanding: they resolve in log order.
    pub fn begin_upsert(&self, points: Vec<Point>) -> Result<PendingWrite<'_>, ShardError> {
        let batch = self.validate_upsert(points)?;
        self.begin_upsert_range(&batch, 0..batch.len())
    }

    /// Checks a whole upsert before any of it is logged: a batch is refused or taken
    /// whole, even when it is then logged and applied in pieces.
    pub(crate) fn validate_upsert(&self, points: Vec<Point>) -> Result<UpsertBatch, ShardError> {
        self.usable()?;
        self.check_writable()?;
        self.state.borrow().validate_upsert(points)
    }

    /// Logs and applies the points `range` of a validated upsert as one log record; the
    /// returned write resolves once the log acknowledges it.
    pub(crate) fn begin_upsert_range(
        &self,
        batch: &UpsertBatch,
        range: std::ops::Range<usize>,
    ) -> Result<PendingWrite<'_>, ShardError> {
        self.usable()?;
        self.check_writable()?;
        let dim = self.state.borrow().spec().collection.dimension;
        let d = dim as usize;
        let record = Record::Upsert(Upsert {
            ids: &batch.ids[range.clone()],
            dim,
            vectors: &batch.vectors[range.start * d..range.end * d],
            payloads: &batch.payloads[range.clone()],
        });
        let pending = self.take(record, range.len() as u64)?;
        if self.replica.is_none()
            && let Err(e) = self.state.borrow_mut().apply_upsert(batch, range)
        {
            return Err(self.stop_on(e));
        }
        Ok(pending)
    }

    /// Deletes points by id; returns how many existed.
    pub async fn delete_ids(&self, ids: Vec<String>, wait: bool) -> Result<WriteAck, ShardError> {
        self.usable()?;
        ShardState::validate_ids(&ids)?;
        let existing = self.state.borrow().existing(ids);
        self.delete_existing(existing, wait).await
    }

    /// Deletes every point passing a non-empty filter; returns how many.
    ///
    /// The points are found and deleted in slices of at most [`SCAN_SLICE`] of work and
    /// at most `max_ids` points, each slice one log record, with the core's other work
    /// running between slices: however many points match, no record outgrows the log
    /// and no call waits behind the scan for long. Each slice deletes what matches when
    /// it runs, so a point written while the delete is under way is deleted when it
    /// matches and its slice is still to come. With `wait`, answers once the last
    /// record is durable (the log acknowledges in order, so every earlier one is too).
    pub async fn delete_filter(
        &self,
        filter: &Filter,
        wait: bool,
        yielder: &Yielder,
    ) -> Result<WriteAck, ShardError> {
        self.usable()?;
        if filter.is_empty() {
            return Err(RuleError::EmptyDeleteFilter.into());
        }
        let mut planned = Planned::new(filter);
        let mut from = Some(0);
        let mut ack = WriteAck {
            count: 0,
            lsn: 0,
            durable: true,
        };
        let mut last = None;
        while let Some(start) = from {
            // A slice is found and logged at once, never across a checkpoint.
            while self.writes_held.get() {
                yielder.yield_now().await;
            }
            let mut nodes = Vec::new();
            let ids = {
                let st = self.state.borrow();
                let plan = planned.plan(&st);
                from = st.scan(
                    plan,
                    start,
                    Instant::now() + SCAN_SLICE,
                    LIMITS.max_ids,
                    |n| nodes.push(n),
                );
                st.ids_of(&nodes)
            };
            if !ids.is_empty() {
                let pending = self.log_delete(&ids)?;
                ack.count += pending.count;
                ack.lsn = pending.lsn;
                last = Some(pending);
            }
            if from.is_some() {
                yielder.yield_now().await;
                self.usable()?;
            }
        }
        match last {
            Some(pending) if wait => pending.finish().await.map(|done| WriteAck {
                count: ack.count,
                ..done
            }),
            Some(_) => Ok(WriteAck {
                durable: false,
                ..ack
            }),
            None => Ok(ack),
        }
    }

    async fn delete_existing(&self, ids: Vec<String>, wait: bool) -> Result<WriteAck, ShardError> {
        if ids.is_empty() {
            return Ok(WriteAck {
                count: 0,
                lsn: 0,
                durable: true,
            });
        }
        let pending = self.log_delete(&ids)?;
        if wait {
            pending.finish().await
        } else {
            Ok(WriteAck {
                count: pending.count,
                lsn: pending.lsn,
                durable: false,
            })
        }
    }

    /// Logs and applies the delete of `ids` (points that exist, at most `max_ids`).
    fn log_delete(&self, ids: &[String]) -> Result<PendingWrite<'_>, ShardError> {
        self.usable()?;
        self.check_writable()?;
        let pending = self.take(Record::Delete(Delete { ids }), ids.len() as u64)?;
        if self.replica.is_some() {
            return Ok(pending);
        }
        let applied = self
            .state
            .borrow_mut()
            .apply_delete(ids.iter().map(String::as_str));
        match applied {
            Ok(count) => Ok(PendingWrite { count, ..pending }),
            Err(e) => Err(self.stop_on(e)),
        }
    }

    // --- reads --------------------------------------------------------------------

    /// Validates a search request against the shard and runs it (see
    /// [`ShardState::search`] for `prefiltered` and [`Searched::Prefilter`]).
    pub(crate) fn search(
        &self,
        request: &vectron_proto::core::v1::SearchRequest,
        prefiltered: Option<&[NodeId]>,
        scratch: &mut SearchScratch,
    ) -> Result<Searched, ShardError> {
        self.readable()?;
        let st = self.state.borrow();
        let args: SearchArgs<'_> = st.validate_search(
            &request.vector,
            request.k,
            request.ef,
            request.filter.as_ref(),
            request.with_payload,
            request.with_vector,
        )?;
        st.search(&args, prefiltered, scratch)
    }

    /// Exact top-k by brute force over every live point passing the request's filter:
    /// in slices of at most [`SCAN_SLICE`] of filtering and [`EXACT_SLICE_BYTES`] of
    /// vectors, with the core's other work running between them, so that a scan of a
    /// large shard holds up no other call for long. A point written while the scan runs
    /// may or may not be seen; one deleted or replaced before it ends is left out.
    pub(crate) async fn exact_search(
        &self,
        request: &vectron_proto::core::v1::SearchRequest,
        scratch: &RefCell<SearchScratch>,
        yielder: &Yielder,
    ) -> Result<Vec<HitOut>, ShardError> {
        self.readable()?;
        let args = self.state.borrow().validate_search(
            &request.vector,
            request.k,
            request.ef,
            request.filter.as_ref(),
            request.with_payload,
            request.with_vector,
        )?;
        let per_slice = (EXACT_SLICE_BYTES / (4 * request.vector.len().max(1))).max(1);
        let mut planned = Planned::new(&args.filter);
        let mut best = Vec::with_capacity(args.k * 2);
        let mut nodes = Vec::with_capacity(per_slice);
        let mut from = 0;
        loop {
            let next = {
                let st = self.state.borrow();
                let plan = planned.plan(&st);
                nodes.clear();
                let next = st.scan(plan, from, Instant::now() + SCAN_SLICE, per_slice, |n| {
                    nodes.push(n);
                });
                st.exact_slice(&args, &nodes, &mut scratch.borrow_mut(), &mut best)?;
                next
            };
            match next {
                None => break,
                Some(n) => from = n,
            }
            slice_break();
            yielder.yield_now().await;
            self.readable()?;
        }
        self.state.borrow().exact_hits(&best, &args)
    }

    /// The live points passing `filter`, found in slices of [`SCAN_SLICE`] with the
    /// core's other work running between them: what a search whose filter reads too
    /// many payloads searches among ([`Searched::Prefilter`]).
    pub(crate) async fn matching_nodes(
        &self,
        filter: Option<&vectron_proto::v1::Filter>,
        yielder: &Yielder,
    ) -> Result<Vec<NodeId>, ShardError> {
        self.readable()?;
        let filter = Filter::from_proto(filter)?;
        let mut planned = Planned::new(&filter);
        let mut nodes = Vec::new();
        let mut from = 0;
        loop {
            let next = {
                let st = self.state.borrow();
                let plan = planned.plan(&st);
                st.scan(plan, from, Instant::now() + SCAN_SLICE, usize::MAX, |n| {
                    nodes.push(n);
                })
            };
            match next {
                None => return Ok(nodes),
                Some(n) => from = n,
            }
            slice_break();
            yielder.yield_now().await;
            self.usable()?;
        }
    }

    /// Reads points by id.
    pub fn get(
        &self,
        ids: &[String],
        with_vector: bool,
        with_payload: bool,
    ) -> Result<Vec<PointOut>, ShardError> {
        self.readable()?;
        ShardState::validate_ids(ids)?;
        self.state.borrow().get(ids, with_vector, with_payload)
    }

    /// Counts points passing `filter`. A filter the payload indexes answer is counted at
    /// once; one that reads payloads is counted in slices of [`SCAN_SLICE`], with the
    /// core's other work running between them.
    pub async fn count(
        &self,
        filter: Option<&vectron_proto::v1::Filter>,
        yielder: &Yielder,
    ) -> Result<u64, ShardError> {
        self.readable()?;
        let filter = Filter::from_proto(filter)?;
        if filter.is_empty() {
            return Ok(self.state.borrow().len());
        }
        let mut planned = Planned::new(&filter);
        let mut total = 0u64;
        let mut from = 0;
        loop {
            let next = {
                let st = self.state.borrow();
                let plan = planned.plan(&st);
                if let Some(set) = plan.exact() {
                    // Exactness depends on the filter and the indexes, not the points:
                    // such a plan is exact from the first slice on.
                    return Ok(set.len());
                }
                st.scan(plan, from, Instant::now() + SCAN_SLICE, usize::MAX, |_| {
                    total += 1;
                })
            };
            match next {
                None => return Ok(total),
                Some(n) => from = n,
            }
            yielder.yield_now().await;
            self.usable()?;
        }
    }

    /// One page of points in id order: at most `limit` points, and fewer when more
    /// would outgrow one answer ([`Limits::max_answer_bytes`]); the next page starts at
    /// the returned id. Read in slices of [`SCAN_SLICE`], with the core's other work
    /// running between them.
    pub async fn scroll(
        &self,
        request: &vectron_proto::core::v1::ScrollRequest,
        yielder: &Yielder,
    ) -> Result<(Vec<PointOut>, Option<String>), ShardError> {
        self.readable()?;
        let read = ScrollRead {
            limit: rules::check_scroll_limit(LIMITS, request.limit)? as usize,
            with_vector: request.with_vector,
            with_payload: request.with_payload,
        };
        let filter = Filter::from_proto(request.filter.as_ref())?;
        let mut planned = (!filter.is_empty()).then(|| Planned::new(&filter));
        let mut page = Vec::with_capacity(read.limit.min(1024));
        let mut page_bytes = 0;
        let mut resume = None::<String>;
        loop {
            let step = {
                let st = self.state.borrow();
                let plan = planned.as_mut().map(|p| p.plan(&st));
                let start = match &resume {
                    Some(id) => Bound::Included(id.as_str()),
                    None if request.offset.is_empty() => Bound::Unbounded,
                    None => Bound::Included(request.offset.as_str()),
                };
                st.scroll_step(
                    start,
                    plan,
                    &read,
                    &mut page,
                    &mut page_bytes,
                    Instant::now() + SCAN_SLICE,
                )
            };
            match step {
                ScrollStep::Done(next) => return Ok((page, next)),
                ScrollStep::Paused(id) => resume = Some(id),
            }
            yielder.yield_now().await;
            self.usable()?;
        }
    }

    // --- background work and checkpoints ---------------------------------------------

    /// Links up to `max` pending points into the graph, or repairs around deleted ones;
    /// returns whether there was work.
    pub fn index_step(&self, max: usize) -> bool {
        if self.is_stopped() || self.writes_held() {
            return false;
        }
        let mut st = self.state.borrow_mut();
        if st.pending() > 0 {
            let linked = st.link_pending(max);
            self.linked.set(self.linked.get() + linked as u64);
            true
        } else {
            st.reclaim_step(max * 32)
        }
    }

    /// Points linked into the graph since the shard opened: the indexer's progress.
    pub fn linked(&self) -> u64 {
        self.linked.get()
    }

    /// Slices of checkpoint files written since the shard opened: a checkpoint's
    /// progress.
    pub fn checkpoint_slices(&self) -> u64 {
        self.checkpoint_slices.get()
    }

    /// Points waiting to be linked into the graph.
    pub fn pending(&self) -> usize {
        self.state.borrow().pending()
    }

    /// Bytes of log a restart would replay (for a replica, every byte its log holds:
    /// a replica's log keeps entries past its snapshot for lagging followers).
    pub fn wal_bytes_since_checkpoint(&self) -> u64 {
        self.wal.stats().bytes_since_checkpoint
    }

    /// Whether a checkpoint is due: the log grew past `threshold` bytes since the last
    /// one (for a replica, its log holds that much and something was applied since its
    /// snapshot).
    pub fn checkpoint_due(&self, threshold: u64) -> bool {
        if self.is_stopped() || self.wal_bytes_since_checkpoint() <= threshold {
            return false;
        }
        self.replica
            .as_ref()
            .is_none_or(|r| r.applied_lsn() > r.snapshot_lsn())
    }

    /// Writes a checkpoint covering every durable write, then drops the log segments it
    /// covers. Returns the LSN covered. Blocks the core while the files are written.
    /// Writes nothing when no upsert or delete was logged since the last checkpoint.
    pub async fn checkpoint(&self) -> Result<u64, ShardError> {
        self.usable()?;
        if let Some(replica) = &self.replica {
            if self.checkpointing.replace(true) {
                return Ok(replica.snapshot_lsn());
            }
            let covered = replica.snapshot().await;
            self.checkpointing.set(false);
            return covered;
        }
        if self.checkpointing.replace(true) {
            return Ok(self.checkpoint_lsn.get());
        }
        let result = self.write_checkpoint().await;
        self.checkpointing.set(false);
        result.map_err(|e| self.stop_on(e))
    }

    /// Whether an upsert or delete was logged after the current checkpoint.
    fn changed_since_checkpoint(&self) -> bool {
        self.data_lsn.get() > self.checkpoint_lsn.get()
    }

    async fn write_checkpoint(&self) -> Result<u64, ShardError> {
        if !self.changed_since_checkpoint() {
            return Ok(self.checkpoint_lsn.get());
        }
        // Everything logged so far becomes durable; the state holds at least that, and
        // perhaps writes appended during the sync. Those that reach the log are replayed
        // again (which leaves them unchanged); those a crash loses from the log stay in
        // the checkpoint. None of them was acknowledged yet.
        let lsn = self
            .wal
            .sync()
            .await
            .map_err(|source| ShardError::Wal { source })?
            .get();
        if lsn == self.checkpoint_lsn.get() {
            return Ok(lsn);
        }
        if self.closing.get() {
            return Err(self.closed());
        }
        let name = checkpoint::checkpoint_dir_name(lsn);
        let tmp = self.dir.join(format!("{name}.tmp"));
        self.writes_held.set(true);
        let written =
            write_checkpoint_files(&self.state, &tmp, &self.dir.join(&name), &[], async || {
                self.between_slices().await
            })
            .await;
        self.writes_held.set(false);
        if written.is_err() {
            // A full disk, most likely: what was written is given back, the log still
            // holds every write, and the next checkpoint tries again.
            let _ = fs::remove_dir_all(&tmp);
            let _ = fs::remove_dir_all(self.dir.join(&name));
        }
        written?;
        let previous = self.checkpoint_lsn.replace(lsn);
        if let Err(e) = self.write_manifest() {
            // The manifest on disk still names the previous checkpoint, which the log
            // completes: keep using it.
            self.checkpoint_lsn.set(previous);
            let _ = fs::remove_dir_all(self.dir.join(&name));
            return Err(e);
        }
        checkpoint::remove_stale_checkpoints(&self.dir, &name)?;
        self.wal
            .append(Record::Checkpoint {
                covers: Lsn::new(lsn),
            })
            .await
            .map_err(|e| match e {
                AppendError::Fatal(source) => ShardError::Wal { source },
                AppendError::Rejected(e) => ShardError::Replay {
                    reason: e.to_string(),
                },
            })?;
        self.wal
            .truncate_prefix(Lsn::new(lsn))
            .await
            .map_err(|source| ShardError::Wal { source })?;
        Ok(lsn)
    }

    /// Lets the core's other work run between two slices of a checkpoint; fails when
    /// the shard began closing meanwhile.
    async fn between_slices(&self) -> Result<(), ShardError> {
        slice_break();
        self.checkpoint_slices.set(self.checkpoint_slices.get() + 1);
        self.yielder.yield_now().await;
        if self.closing.get() {
            return Err(self.closed());
        }
        Ok(())
    }

    /// Whether writes to the shard are held (a checkpoint is writing its files; for a
    /// replica, a snapshot is, and applies wait).
    pub fn writes_held(&self) -> bool {
        self.writes_held.get()
            || self
                .replica
                .as_ref()
                .is_some_and(ShardReplica::applies_held)
    }

    /// The error of a call on a shard that is closing.
    fn closed(&self) -> ShardError {
        let st = self.state.borrow();
        ShardError::Stopped {
            collection: st.spec().name().to_owned(),
            shard_id: st.spec().shard_id,
            reason: "the shard is closing".into(),
        }
    }

    /// Marks the shard as closing: a checkpoint under way writes nothing more. Called
    /// before the shard's directory is deleted.
    pub fn begin_close(&self) {
        self.closing.set(true);
    }

    /// Checkpoints (when an upsert or delete was logged since the last checkpoint) and
    /// closes the log.
    pub async fn close(&self) -> Result<(), ShardError> {
        if self.replica.is_some() {
            // A replica's log holds what its snapshot does not, and a replica that
            // stops is caught up by its group when it returns.
            self.release().await;
            return Ok(());
        }
        if !self.is_stopped() && self.changed_since_checkpoint() {
            self.checkpoint().await?;
        }
        self.begin_close();
        self.wal
            .close()
            .await
            .map_err(|source| ShardError::Wal { source })
    }

    /// Statistics of the shard.
    pub fn stats(&self) -> ShardStats {
        let st = self.state.borrow();
        let wal = self.wal.stats();
        let points = st.len();
        let pending = st.pending() as u64;
        let checkpoint_lsn = match &self.replica {
            Some(replica) => replica.snapshot_lsn(),
            None => self.checkpoint_lsn.get(),
        };
        ShardStats {
            collection: st.spec().name().to_owned(),
            shard_id: st.spec().shard_id,
            epoch: st.spec().epoch,
            points,
            indexed_points: points.saturating_sub(pending),
            deleted_points: st.index().deleted_len() as u64,
            memory_bytes: st.memory_bytes(),
            disk_bytes: wal.bytes_on_disk
                + dir_bytes(
                    &self
                        .dir
                        .join(checkpoint::checkpoint_dir_name(checkpoint_lsn)),
                ),
            wal_bytes: wal.bytes_since_checkpoint,
            last_lsn: wal.durable_lsn.get(),
            checkpoint_lsn,
            replica: self.replica.as_ref().map(ShardReplica::stats),
            payload_indexes_ready: st.ready_payload_indexes(),
        }
    }
}

#[cfg(test)]
thread_local! {
    /// Times long work on this thread (loading, replaying, checkpointing) let other
    /// work run between two of its slices.
    pub(crate) static SLICE_BREAKS: Cell<u64> = const { Cell::new(0) };
}

/// Counts a break between two slices of long work (tests only).
fn slice_break() {
    #[cfg(test)]
    SLICE_BREAKS.with(|n| n.set(n.get() + 1));
}

/// Bytes a checkpoint writes between two looks at the clock.
const CHECKPOINT_PIECE: usize = 1 << 20;

/// A failure to save the index into a checkpoint: writing the file failed (a full
/// disk), which fails the checkpoint, not the index.
fn saving_failed(e: HnswError) -> ShardError {
    match e {
        HnswError::Io { path, source } => ShardError::Checkpoint { path, source },
        source => ShardError::Index { source },
    }
}

/// Writes the files of a checkpoint of `state` into `tmp` (made anew), with `extra`
/// files beside them, then moves them to `dest`; every file and both directories are
/// synced.
///
/// Writes to the shard are held meanwhile (by the caller: [`ShardHandle::writes_held`],
/// or a replica's state machine holding its applies) and the indexer leaves it alone, so
/// the state the files take stays as it was; reads go on. The files are written in
/// slices of [`SCAN_SLICE`], with `between_slices` letting the core's other work run, and
/// synced through the runtime (io_uring), so a large shard's checkpoint does not stall
/// the core's other calls, its log acknowledgements or its keepalives.
pub(crate) async fn write_checkpoint_files(
    state: &RefCell<ShardState>,
    tmp: &Path,
    dest: &Path,
    extra: &[(&str, &[u8])],
    mut between_slices: impl AsyncFnMut() -> Result<(), ShardError>,
) -> Result<(), ShardError> {
    let _ = fs::remove_dir_all(tmp);
    // Not `create_dir_all`: a shard directory deleted meanwhile stays deleted.
    fs::create_dir(tmp).map_err(|source| ShardError::Checkpoint {
        path: tmp.to_path_buf(),
        source,
    })?;
    let index_path = tmp.join(INDEX_FILE);
    let points_path = tmp.join(POINTS_FILE);
    let (mut index, mut points) = {
        let st = state.borrow();
        let index = st.index().saver(&index_path).map_err(saving_failed)?;
        (index, PointsWriter::begin(&points_path, st.points())?)
    };
    loop {
        let done = {
            let st = state.borrow();
            let until = Instant::now() + SCAN_SLICE;
            loop {
                if index
                    .write_some(st.index(), CHECKPOINT_PIECE)
                    .map_err(saving_failed)?
                {
                    break true;
                }
                if Instant::now() >= until {
                    break false;
                }
            }
        };
        if done {
            break;
        }
        between_slices().await?;
    }
    loop {
        let done = {
            let st = state.borrow();
            let until = Instant::now() + SCAN_SLICE;
            loop {
                let from = st.points_from(points.next_node());
                if points.write_some(from, CHECKPOINT_PIECE)? {
                    break true;
                }
                if Instant::now() >= until {
                    break false;
                }
            }
        };
        if done {
            break;
        }
        between_slices().await?;
    }
    let index = {
        let st = state.borrow();
        index.finish(st.index()).map_err(saving_failed)?
    };
    let points = points.finish()?;
    sync_file(index.file(), &index_path).await?;
    sync_file(&points, &points_path).await?;
    drop(points);
    index.commit().map_err(saving_failed)?;
    for (name, bytes) in extra {
        checkpoint::write_atomic(&tmp.join(name), bytes)?;
    }
    checkpoint::sync_dir(tmp)?;
    fs::rename(tmp, dest).map_err(|source| ShardError::Checkpoint {
        path: dest.to_path_buf(),
        source,
    })?;
    checkpoint::sync_dir(
        dest.parent()
            .expect("a checkpoint lies in its shard directory"),
    )
}

/// Syncs a written file through the runtime, so the core goes on while the disk works.
async fn sync_file(file: &fs::File, path: &Path) -> Result<(), ShardError> {
    let failed = |source| ShardError::Checkpoint {
        path: path.to_path_buf(),
        source,
    };
    let file = monoio::fs::File::from_std(file.try_clone().map_err(failed)?).map_err(failed)?;
    file.sync_all().await.map_err(failed)
}

fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Loads a checkpoint directory into a shard state, restoring its points in slices of
/// [`SCAN_SLICE`] (each parses a payload for the payload indexes).
pub(crate) async fn load_checkpoint(
    dir: &Path,
    spec: ShardSpec,
    yielder: &Yielder,
) -> Result<ShardState, ShardError> {
    let path = dir.join(INDEX_FILE);
    let index = HnswIndex::open(&path).map_err(|source| ShardError::Index { source })?;
    check_index_config(&path, index.config(), &spec.index_config())?;
    let mut state = ShardState::with_index(spec, index);
    let file = PointsFile::read(&dir.join(POINTS_FILE))?;
    let mut points = file.points()?;
    loop {
        let until = Instant::now() + SCAN_SLICE;
        let mut more = false;
        for (i, point) in points.by_ref().enumerate() {
            let (node, id, payload) = point?;
            state.restore_node(node, id, payload)?;
            if i % 256 == 255 && Instant::now() >= until {
                more = true;
                break;
            }
        }
        if !more {
            break;
        }
        slice_break();
        yielder.yield_now().await;
    }
    points.finish()?;
    state.check_restored()?;
    Ok(state)
}

/// Refuses an index built with other parameters than the spec's. `ef_construction` and
/// the seed only shape how later points are linked, so they may differ.
fn check_index_config(
    path: &Path,
    found: &IndexConfig,
    expected: &IndexConfig,
) -> Result<(), ShardError> {
    let mismatch = |field, expected: String, found: String| ShardError::IndexMismatch {
        path: path.to_path_buf(),
        field,
        expected,
        found,
    };
    if found.dim != expected.dim {
        return Err(mismatch(
            "dimension",
            expected.dim.to_string(),
            found.dim.to_string(),
        ));
    }
    if found.metric != expected.metric {
        return Err(mismatch(
            "metric",
            format!("{:?}", expected.metric),
            format!("{:?}", found.metric),
        ));
    }
    if found.m != expected.m {
        return Err(mismatch("m", expected.m.to_string(), found.m.to_string()));
    }
    if found.quantization != expected.quantization {
        return Err(mismatch(
            "quantization",
            format!("{:?}", expected.quantization),
            format!("{:?}", found.quantization),
        ));
    }
    Ok(())
}

/// Applies every logged write from `from` on to `state`, letting the core's other work
/// run between slices of [`SCAN_SLICE`]; returns the LSN of the last upsert or delete
/// applied (0 when none).
async fn replay(
    wal: &Wal,
    from: Lsn,
    state: &mut ShardState,
    yielder: &Yielder,
) -> Result<u64, ShardError> {
    let mut data_lsn = 0;
    let mut records = wal
        .replay(from)
        .map_err(|source| ShardError::Wal { source })?;
    let mut slice_ends = Instant::now() + SCAN_SLICE;
    while let Some(record) = records
        .next_record()
        .map_err(|source| ShardError::Wal { source })?
    {
        let lsn = record.lsn().get();
        state.apply(lsn, record.body())?;
        if matches!(record.body(), BodyView::Upsert(_) | BodyView::Delete(_)) {
            data_lsn = lsn;
        }
        if Instant::now() >= slice_ends {
            slice_break();
            yielder.yield_now().await;
            slice_ends = Instant::now() + SCAN_SLICE;
        }
    }
    Ok(data_lsn)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use vectron_proto::core::v1::ShardAssignment;
    use vectron_proto::v1::{CollectionSpec, Metric};

    /// Runs `f` on a monoio runtime, as a core thread does.
    pub(crate) fn run<F: Future>(f: F) -> F::Output {
        monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
            .enable_timer()
            .build()
            .expect("a monoio runtime")
            .block_on(f)
    }

    /// Shard 0 of a 4-d cosine collection, owning every hash.
    pub(crate) fn assignment(collection: &str) -> ShardAssignment {
        ShardAssignment {
            spec: Some(CollectionSpec {
                name: collection.to_owned(),
                dimension: 4,
                metric: Metric::Cosine.into(),
                ..Default::default()
            }),
            shard_id: 0,
            hash_range_start: 0,
            hash_range_end: u64::MAX,
            epoch: 1,
            incarnation: 1,
            ..ShardAssignment::default()
        }
    }

    /// Points `p<from>` .. `p<to>`, each with a distinct direction.
    pub(crate) fn points(range: std::ops::Range<usize>) -> Vec<Point> {
        range
            .map(|i| Point {
                id: format!("p{i}"),
                vector: vec![1.0, i as f32, 0.5, -(i as f32)],
                payload_json: Vec::new(),
            })
            .collect()
    }

    fn spec(collection: &str) -> ShardSpec {
        ShardSpec::from_assignment(&assignment(collection)).unwrap()
    }

    #[test]
    fn a_checkpoint_with_no_write_since_the_last_one_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let shard_dir = dir.path().join("shard-0");
        run(async {
            let shard = ShardHandle::open(&shard_dir, spec("docs"), Options::default())
                .await
                .unwrap();
            shard.upsert(points(0..3), true).await.unwrap();
            let covered = shard.checkpoint().await.unwrap();
            assert!(covered >= 1);
            // The checkpoint's own marker took an LSN; it is no reason for another.
            assert_eq!(shard.checkpoint().await.unwrap(), covered);
            shard.close().await.unwrap();
            drop(shard);

            let shard = ShardHandle::open(&shard_dir, spec("docs"), Options::default())
                .await
                .unwrap();
            assert_eq!(shard.stats().checkpoint_lsn, covered);
            shard.close().await.unwrap();
            drop(shard);
            let manifest = checkpoint::read_manifest(&shard_dir).unwrap().unwrap();
            assert_eq!(
                manifest.checkpoint_lsn, covered,
                "a clean close with no writes"
            );

            // A delete is a write: the next close checkpoints it.
            let shard = ShardHandle::open(&shard_dir, spec("docs"), Options::default())
                .await
                .unwrap();
            let deleted = shard.delete_ids(vec!["p1".into()], true).await.unwrap();
            assert_eq!(deleted.count, 1);
            shard.close().await.unwrap();
            drop(shard);
            let manifest = checkpoint::read_manifest(&shard_dir).unwrap().unwrap();
            assert_eq!(manifest.checkpoint_lsn, deleted.lsn);
        });
    }

    /// `n` points `q<i>` with the payload `{"k": "x"}` (a field no index covers), in
    /// upserts of 2,000.
    async fn upsert_tagged(shard: &ShardHandle, n: usize) {
        for start in (0..n).step_by(2_000) {
            let batch = (start..(start + 2_000).min(n))
                .map(|i| Point {
                    id: format!("q{i}"),
                    vector: vec![1.0, i as f32, 0.5, 2.0],
                    payload_json: br#"{"k":"x"}"#.to_vec(),
                })
                .collect();
            shard.upsert(batch, true).await.unwrap();
        }
    }

    fn tagged() -> vectron_proto::v1::Filter {
        use vectron_proto::v1::{Condition, Filter as F};
        F::must([Condition::keyword("k", "x")])
    }

    /// Pins a delete by filter whose matches made one log record larger than a log
    /// segment: the log refused it after the points were gone from memory, the shard
    /// stopped, and the points came back at reopen.
    #[test]
    fn a_delete_by_filter_of_more_points_than_a_record_holds_deletes_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let shard_dir = dir.path().join("shard-0");
        // Segments of 128 KiB: 30,000 ids (240 KB as the log stores them) in one record
        // would not fit one.
        let wal = Options::default().segment_bytes(128 << 10);
        run(async {
            let shard = ShardHandle::open(&shard_dir, spec("docs"), wal)
                .await
                .unwrap();
            upsert_tagged(&shard, 30_000).await;
            let before = shard.stats().last_lsn;
            let yielder = Yielder::new();
            let filter = Filter::from_proto(Some(&tagged())).unwrap();
            let ack = shard.delete_filter(&filter, true, &yielder).await.unwrap();
            assert_eq!(ack.count, 30_000);
            assert!(ack.durable);
            assert!(
                ack.lsn >= before + 3,
                "at most {} ids per record",
                LIMITS.max_ids
            );
            assert!(!shard.is_stopped());
            assert_eq!(shard.count(None, &yielder).await.unwrap(), 0);
            // As after a crash: no checkpoint, the log replays.
            shard.wal().close().await.unwrap();
            drop(shard);
            let shard = ShardHandle::open(&shard_dir, spec("docs"), wal)
                .await
                .unwrap();
            assert_eq!(shard.count(None, &Yielder::new()).await.unwrap(), 0);
            shard.close().await.unwrap();
        });
    }

    #[test]
    fn a_count_that_reads_every_payload_lets_the_cores_other_tasks_run() {
        let dir = tempfile::tempdir().unwrap();
        run(async {
            let shard = ShardHandle::open(&dir.path().join("s"), spec("docs"), Options::default())
                .await
                .unwrap();
            upsert_tagged(&shard, 50_000).await;
            let ran = Rc::new(Cell::new(false));
            let flag = Rc::clone(&ran);
            monoio::spawn(async move { flag.set(true) });
            let counted = shard.count(Some(&tagged()), &Yielder::new()).await.unwrap();
            assert_eq!(counted, 50_000);
            assert!(
                ran.get(),
                "the other task ran while the count was under way"
            );
            shard.close().await.unwrap();
        });
    }

    /// Pins a checkpoint writing a large shard's files in one go, stalling every other
    /// call, log acknowledgement and keepalive of the core meanwhile.
    #[test]
    fn a_checkpoint_writes_its_files_in_slices_while_the_core_serves() {
        let dir = tempfile::tempdir().unwrap();
        let shard_dir = dir.path().join("s");
        run(async {
            let shard = ShardHandle::open(&shard_dir, spec("docs"), Options::default())
                .await
                .unwrap();
            upsert_tagged(&shard, 50_000).await;
            while shard.index_step(1_000) {}
            let turns = Rc::new(Cell::new(0u32));
            let done = Rc::new(Cell::new(false));
            let other = {
                let (shard, turns, done) = (Rc::clone(&shard), Rc::clone(&turns), Rc::clone(&done));
                monoio::spawn(async move {
                    let yielder = Yielder::new();
                    while !done.get() {
                        if shard.writes_held() {
                            turns.set(turns.get() + 1);
                            // Reads go on while the files are written.
                            assert_eq!(
                                shard.get(&["q7".to_owned()], false, true).unwrap().len(),
                                1
                            );
                        }
                        yielder.yield_now().await;
                    }
                })
            };
            let breaks = SLICE_BREAKS.with(Cell::get);
            let covered = shard.checkpoint().await.unwrap();
            done.set(true);
            other.await;
            let breaks = SLICE_BREAKS.with(Cell::get) - breaks;
            assert!(
                breaks > 1,
                "the files were written in {} slices",
                breaks + 1
            );
            assert!(
                turns.get() > breaks as u32 / 2,
                "another task ran {} times while the files were written",
                turns.get()
            );
            assert!(!shard.writes_held());
            shard.upsert(points(0..3), true).await.unwrap();
            shard.close().await.unwrap();
            drop(shard);
            let shard = ShardHandle::open(&shard_dir, spec("docs"), Options::default())
                .await
                .unwrap();
            assert!(shard.stats().checkpoint_lsn >= covered);
            assert_eq!(shard.count(None, &Yielder::new()).await.unwrap(), 50_003);
            shard.close().await.unwrap();
        });
    }

    /// Pins the replay of a long log (and the restore of a large checkpoint) running
    /// in one go, stalling the core's other shards and calls until the shard was open.
    #[test]
    fn opening_a_large_shard_lets_the_cores_other_work_run() {
        let dir = tempfile::tempdir().unwrap();
        let shard_dir = dir.path().join("s");
        run(async {
            let shard = ShardHandle::open(&shard_dir, spec("docs"), Options::default())
                .await
                .unwrap();
            upsert_tagged(&shard, 20_000).await;
            shard.checkpoint().await.unwrap();
            upsert_tagged(&shard, 20_000).await;
            // As after a crash: the second 20,000 are only in the log.
            shard.wal().close().await.unwrap();
            drop(shard);

            let turns = Rc::new(Cell::new(0u32));
            let opening = Rc::new(Cell::new(true));
            let other = {
                let (turns, opening) = (Rc::clone(&turns), Rc::clone(&opening));
                monoio::spawn(async move {
                    let yielder = Yielder::new();
                    while opening.get() {
                        turns.set(turns.get() + 1);
                        yielder.yield_now().await;
                    }
                })
            };
            let breaks = SLICE_BREAKS.with(Cell::get);
            let shard = ShardHandle::open(&shard_dir, spec("docs"), Options::default())
                .await
                .unwrap();
            opening.set(false);
            other.await;
            let breaks = SLICE_BREAKS.with(Cell::get) - breaks;
            assert!(breaks > 1, "loaded and replayed in {} slices", breaks + 1);
            assert!(
                turns.get() > breaks as u32 / 2,
                "another task ran {} times",
                turns.get()
            );
            assert_eq!(shard.count(None, &Yielder::new()).await.unwrap(), 20_000);
            shard.close().await.unwrap();
        });
    }

    /// `n` tagged points, then six `rare` ones whose payload the filter of
    /// [`rare_request`] passes; all indexed.
    async fn upsert_rare(shard: &ShardHandle, n: usize) {
        upsert_tagged(shard, n).await;
        let rare: Vec<Point> = (0..6)
            .map(|i| Point {
                id: format!("rare{i}"),
                vector: vec![2.0, i as f32, 1.0, 0.5],
                payload_json: br#"{"k":"y"}"#.to_vec(),
            })
            .collect();
        shard.upsert(rare, true).await.unwrap();
        while shard.index_step(1_000) {}
    }

    /// A search whose filter (on a field no index covers) passes only the rare points.
    fn rare_request() -> vectron_proto::core::v1::SearchRequest {
        use vectron_proto::v1::{Condition, Filter as F};
        vectron_proto::core::v1::SearchRequest {
            vector: vec![1.0, 0.0, 0.0, 0.0],
            k: 10,
            filter: Some(F::must([Condition::keyword("k", "y")])),
            ..Default::default()
        }
    }

    /// The ids a search answers over the points `nodes` only, sorted.
    fn prefiltered_ids(
        shard: &ShardHandle,
        request: &vectron_proto::core::v1::SearchRequest,
        nodes: &[NodeId],
        scratch: &mut SearchScratch,
    ) -> Vec<String> {
        let Searched::Hits(hits) = shard.search(request, Some(nodes), scratch).unwrap() else {
            panic!("a prefiltered search answers");
        };
        let mut ids: Vec<String> = hits.into_iter().map(|h| h.id).collect();
        ids.sort();
        ids
    }

    /// Pins a search whose filter reads payloads (a field no index covers) and matches
    /// few points parsing the payload of nearly every point inside the index's search,
    /// in one go.
    #[test]
    fn a_search_whose_filter_reads_too_many_payloads_is_redone_over_points_found_in_slices() {
        let dir = tempfile::tempdir().unwrap();
        run(async {
            let shard = ShardHandle::open(&dir.path().join("s"), spec("docs"), Options::default())
                .await
                .unwrap();
            upsert_rare(&shard, 30_000).await;
            let request = rare_request();
            let mut scratch = SearchScratch::new();
            let first = shard.search(&request, None, &mut scratch).unwrap();
            assert!(matches!(first, Searched::Prefilter), "{first:?}");
            let nodes = shard
                .matching_nodes(request.filter.as_ref(), &Yielder::new())
                .await
                .unwrap();
            assert_eq!(nodes.len(), 6);
            let ids = prefiltered_ids(&shard, &request, &nodes, &mut scratch);
            assert_eq!(ids, (0..6).map(|i| format!("rare{i}")).collect::<Vec<_>>());
            // A point of the list that no longer passes is left out.
            shard
                .upsert(
                    vec![Point {
                        id: "rare0".into(),
                        vector: vec![2.0, 0.0, 1.0, 0.5],
                        payload_json: br#"{"k":"x"}"#.to_vec(),
                    }],
                    true,
                )
                .await
                .unwrap();
            let ids = prefiltered_ids(&shard, &request, &nodes, &mut scratch);
            assert!(ids.iter().all(|id| id != "rare0"), "{ids:?}");
            shard.close().await.unwrap();
        });
    }

    /// A payload index added to a shard that holds points (`Collections.Update`) is
    /// built by a task of the core in slices, serves filters once built (a search that
    /// had to read every payload is answered from it), and keeps up with writes made
    /// while it was built; a reopened shard builds it as it loads.
    #[test]
    fn an_added_payload_index_is_built_in_slices_and_then_serves_filters() {
        use vectron_proto::v1::{PayloadFieldKind, PayloadIndex};
        let dir = tempfile::tempdir().unwrap();
        let shard_dir = dir.path().join("s");
        let indexed = |shard: &ShardHandle| shard.stats().payload_indexes_ready;
        run(async {
            let shard = ShardHandle::open(&shard_dir, spec("docs"), Options::default())
                .await
                .unwrap();
            upsert_rare(&shard, 30_000).await;
            let request = rare_request();
            let mut scratch = SearchScratch::new();
            let first = shard.search(&request, None, &mut scratch).unwrap();
            assert!(matches!(first, Searched::Prefilter), "{first:?}");

            let breaks = SLICE_BREAKS.with(Cell::get);
            let declared = [PayloadIndex {
                field: "k".into(),
                kind: PayloadFieldKind::Keyword.into(),
            }];
            shard.set_payload_indexes(&declared).unwrap();
            assert!(indexed(&shard).is_empty(), "not served before it is built");
            // A write while it is built: the index gets it too.
            shard
                .upsert(
                    vec![Point {
                        id: "rare6".into(),
                        vector: vec![2.0, 6.0, 1.0, 0.5],
                        payload_json: br#"{"k":"y"}"#.to_vec(),
                    }],
                    true,
                )
                .await
                .unwrap();
            while indexed(&shard).is_empty() {
                monoio::time::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(indexed(&shard), ["k"]);
            assert!(
                SLICE_BREAKS.with(Cell::get) > breaks + 1,
                "the build let the core's other work run"
            );
            let Searched::Hits(hits) = shard.search(&request, None, &mut scratch).unwrap() else {
                panic!("the index answers the filter without reading payloads");
            };
            let mut ids: Vec<String> = hits.into_iter().map(|h| h.id).collect();
            ids.sort();
            assert_eq!(ids, (0..7).map(|i| format!("rare{i}")).collect::<Vec<_>>());
            // Declared once more: nothing to do. Dropped: filters read payloads again.
            shard.set_payload_indexes(&declared).unwrap();
            assert_eq!(indexed(&shard), ["k"]);
            shard.set_payload_indexes(&[]).unwrap();
            assert!(indexed(&shard).is_empty());
            let again = shard.search(&request, None, &mut scratch).unwrap();
            assert!(matches!(again, Searched::Prefilter), "{again:?}");
            shard.set_payload_indexes(&declared).unwrap();
            shard.close().await.unwrap();

            // Reopened with the index declared: built as the points load.
            let mut reopened = spec("docs");
            reopened.collection.payload_indexes = declared.to_vec();
            let shard = ShardHandle::open(&shard_dir, reopened, Options::default())
                .await
                .unwrap();
            assert_eq!(indexed(&shard), ["k"]);
            shard.close().await.unwrap();
        });
    }

    /// Exact search answers what one brute-force pass over the whole index does, but in
    /// slices when its filter reads many payloads, with other tasks running between them.
    #[test]
    fn exact_search_equals_one_brute_force_pass_and_runs_in_slices() {
        let dir = tempfile::tempdir().unwrap();
        run(async {
            let shard = ShardHandle::open(&dir.path().join("s"), spec("docs"), Options::default())
                .await
                .unwrap();
            upsert_rare(&shard, 30_000).await;
            let scratch = RefCell::new(SearchScratch::new());
            let yielder = Yielder::new();
            for k in [1, 10, 100] {
                let request = vectron_proto::core::v1::SearchRequest {
                    vector: vec![0.3, -1.0, 0.2, 0.7],
                    k,
                    with_payload: true,
                    ..Default::default()
                };
                let got = shard
                    .exact_search(&request, &scratch, &yielder)
                    .await
                    .unwrap();
                let want: Vec<(String, f32)> = {
                    let st = shard.state.borrow();
                    let hits = st
                        .index()
                        .exact_search(&request.vector, k as usize, None, &mut scratch.borrow_mut())
                        .unwrap()
                        .to_vec();
                    let nodes: Vec<NodeId> = hits.iter().map(|h| h.id).collect();
                    st.ids_of(&nodes)
                        .into_iter()
                        .zip(hits.iter().map(|h| h.score))
                        .collect()
                };
                let got_pairs: Vec<(String, f32)> =
                    got.iter().map(|h| (h.id.clone(), h.score)).collect();
                assert_eq!(got_pairs, want, "k {k}");
                assert!(got.iter().all(|h| !h.payload.is_empty()));
            }

            let breaks = SLICE_BREAKS.with(Cell::get);
            let got = shard
                .exact_search(&rare_request(), &scratch, &yielder)
                .await
                .unwrap();
            let breaks = SLICE_BREAKS.with(Cell::get) - breaks;
            let mut ids: Vec<String> = got.iter().map(|h| h.id.clone()).collect();
            ids.sort();
            assert_eq!(ids, (0..6).map(|i| format!("rare{i}")).collect::<Vec<_>>());
            assert!(breaks > 0, "30,000 payloads read in one slice");
            shard.close().await.unwrap();
        });
    }

    /// A filtered search over an unindexed field whose walk under the filter finds fewer
    /// than k hits, within the payload budget: it does not answer what the walk found
    /// (a walk may stop short of points the filter passes; through the whole server,
    /// `tests/reliability` caught one answering one point of six) but finds every
    /// matching point by scanning, and answers all of them.
    #[test]
    fn a_filtered_search_short_of_k_hits_looks_at_every_matching_point() {
        let dir = tempfile::tempdir().unwrap();
        run(async {
            let shard = ShardHandle::open(&dir.path().join("s"), spec("docs"), Options::default())
                .await
                .unwrap();
            upsert_rare(&shard, 3_000).await;
            let request = rare_request();
            let mut scratch = SearchScratch::new();
            let first = shard.search(&request, None, &mut scratch).unwrap();
            assert!(matches!(first, Searched::Prefilter), "{first:?}");
            let nodes = shard
                .matching_nodes(request.filter.as_ref(), &Yielder::new())
                .await
                .unwrap();
            let ids = prefiltered_ids(&shard, &request, &nodes, &mut scratch);
            assert_eq!(ids, (0..6).map(|i| format!("rare{i}")).collect::<Vec<_>>());
            shard.close().await.unwrap();
        });
    }

    #[test]
    fn answers_are_kept_within_the_answer_limit() {
        let dir = tempfile::tempdir().unwrap();
        run(async {
            let shard = ShardHandle::open(&dir.path().join("s"), spec("docs"), Options::default())
                .await
                .unwrap();
            // 600 payloads of 60 KB: 36 MB, more than one answer carries.
            let payload = format!("{{\"t\":\"{}\"}}", "x".repeat(60_000)).into_bytes();
            let points: Vec<Point> = (0..600)
                .map(|i| Point {
                    id: format!("p{i:03}"),
                    vector: vec![1.0, i as f32, 0.5, 2.0],
                    payload_json: payload.clone(),
                })
                .collect();
            for half in points.chunks(300) {
                shard.upsert(half.to_vec(), true).await.unwrap();
            }
            let ids: Vec<String> = points.iter().map(|p| p.id.clone()).collect();
            let err = shard.get(&ids, false, true).unwrap_err();
            assert!(
                matches!(err, ShardError::Rule(RuleError::AnswerTooLarge { .. })),
                "{err}"
            );
            assert_eq!(shard.get(&ids, true, false).unwrap().len(), 600);

            let search = |with_payload| vectron_proto::core::v1::SearchRequest {
                vector: vec![1.0, 0.0, 0.0, 0.0],
                k: 600,
                with_payload,
                ..Default::default()
            };
            let mut scratch = SearchScratch::new();
            let err = shard.search(&search(true), None, &mut scratch).unwrap_err();
            assert_eq!(
                crate::status(&err).code(),
                vectron_net::Code::ResourceExhausted
            );
            let Searched::Hits(hits) = shard.search(&search(false), None, &mut scratch).unwrap()
            else {
                panic!("no filter, no prefilter");
            };
            assert_eq!(hits.len(), 600);

            // A scroll page ends early and the next one goes on from there.
            let mut request = vectron_proto::core::v1::ScrollRequest {
                limit: 10_000,
                with_payload: true,
                ..Default::default()
            };
            let yielder = Yielder::new();
            let (first, next) = shard.scroll(&request, &yielder).await.unwrap();
            let next = next.expect("a next page");
            assert!(first.len() < 600 && !first.is_empty());
            let bytes: usize = first.iter().map(|p| p.payload.len()).sum();
            assert!(bytes <= LIMITS.max_answer_bytes);
            request.offset = next;
            let (second, last) = shard.scroll(&request, &yielder).await.unwrap();
            assert_eq!(first.len() + second.len(), 600);
            assert_eq!(last, None);
            assert_eq!(second[0].id, format!("p{:03}", first.len()));
            shard.close().await.unwrap();
        });
    }

    /// Pins a checkpoint that waited for its log sync while the shard was deleted (its
    /// collection dropped), then wrote its files and a MANIFEST into a directory it
    /// created again: the dropped shard came back at the next start.
    #[test]
    fn a_checkpoint_under_way_does_not_bring_back_a_deleted_shard() {
        let dir = tempfile::tempdir().unwrap();
        let shard_dir = dir.path().join("docs").join("shard-0");
        run(async {
            let shard = ShardHandle::open(&shard_dir, spec("docs"), Options::default())
                .await
                .unwrap();
            shard.upsert(points(0..3), true).await.unwrap();
            // A write the log has not synced yet: the checkpoint waits for it.
            shard.upsert(points(3..6), false).await.unwrap();
            let mut checkpointing = Box::pin(shard.checkpoint());
            // Once: it stops where it waits for the log's sync.
            std::future::poll_fn(|cx| {
                assert!(checkpointing.as_mut().poll(cx).is_pending());
                std::task::Poll::Ready(())
            })
            .await;
            // The collection is dropped: as `Core::close_shard` with `delete_data`.
            shard.begin_close();
            checkpoint::remove_shard_dir(&shard_dir).unwrap();
            let outcome = checkpointing.await;
            assert!(outcome.is_err(), "{outcome:?}");
            assert!(!shard_dir.exists(), "the deleted shard's directory is back");
            let _ = shard.wal().close().await;
        });
    }

    #[test]
    fn a_logged_point_the_index_refuses_is_skipped_on_replay_and_the_rest_applied() {
        let dir = tempfile::tempdir().unwrap();
        let shard_dir = dir.path().join("shard-0");
        run(async {
            let shard = ShardHandle::open(&shard_dir, spec("docs"), Options::default())
                .await
                .unwrap();
            shard.upsert(points(0..3), true).await.unwrap();
            // What an older build could log: a cosine vector whose squares underflow,
            // between two good points of the same batch.
            let ids = ["p1".to_owned(), "tiny".to_owned(), "p9".to_owned()];
            let mut vectors = vec![0.0, 1.0, 0.0, 0.0];
            vectors.extend([1e-30_f32; 4]);
            vectors.extend([0.0, 0.0, 1.0, 0.0]);
            let payloads = vec![Vec::new(); 3];
            let record = Record::Upsert(Upsert {
                ids: &ids,
                dim: 4,
                vectors: &vectors,
                payloads: &payloads,
            });
            shard.wal().append(record).await.unwrap();
            // As after a crash: the log is closed, no checkpoint is written.
            shard.wal().close().await.unwrap();
            drop(shard);

            let shard = ShardHandle::open(&shard_dir, spec("docs"), Options::default())
                .await
                .unwrap();
            assert!(!shard.is_stopped());
            let all: Vec<String> = ["p0", "p1", "p2", "tiny", "p9"].map(String::from).into();
            let got = shard.get(&all, true, false).unwrap();
            let ids: Vec<&str> = got.iter().map(|p| p.id.as_str()).collect();
            assert_eq!(ids, ["p0", "p1", "p2", "p9"]);
            assert_eq!(got[1].vector, [0.0, 1.0, 0.0, 0.0], "p1 was overwritten");
            shard.close().await.unwrap();
        });
    }

    #[test]
    fn a_checkpoint_index_built_with_other_parameters_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let shard_dir = dir.path().join("shard-0");
        run(async {
            let shard = ShardHandle::open(&shard_dir, spec("docs"), Options::default())
                .await
                .unwrap();
            shard.upsert(points(0..3), true).await.unwrap();
            shard.close().await.unwrap();
        });
        let manifest = checkpoint::read_manifest(&shard_dir).unwrap().unwrap();
        type Change = fn(&mut CollectionSpec);
        let changes: [(&str, Change); 3] = [
            ("metric", |c| c.set_metric(Metric::L2)),
            ("m", |c| c.hnsw.get_or_insert_default().m = Some(8)),
            ("quantization", |c| {
                c.set_quantization(vectron_proto::v1::Quantization::Int8);
            }),
        ];
        for (field, change) in changes {
            // A manifest whose spec says otherwise than the index it names.
            let mut a = assignment("docs");
            change(a.spec.as_mut().unwrap());
            let spec = ShardSpec::from_assignment(&a).unwrap();
            let mut m = manifest.clone();
            m.assignment = Some(spec.to_assignment());
            checkpoint::write_manifest(&shard_dir, &m).unwrap();
            let err = run(ShardHandle::open(&shard_dir, spec, Options::default())).unwrap_err();
            match err {
                ShardError::IndexMismatch { field: f, .. } => assert_eq!(f, field, "{err}"),
                other => panic!("{field}: {other}"),
            }
        }
    }
}
