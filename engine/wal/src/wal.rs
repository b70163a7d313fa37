//! The log: open and recover, append with group commit, sync, truncate (either end),
//! close.
//!
//! ```text
//!  append ─┐  encode into the pending chunk (LSN assigned, order = call order)
//!  append ─┼─▶ pending chunks ──▶ flusher task: write group ─▶ fdatasync ─▶ wake waiters
//!  append ─┘        ▲                    │ (while it syncs, new appends queue up and
//!                   └────────────────────┘  ride on the next fdatasync together)
//! ```
//!
//! One flusher task per log, spawned on the core's runtime, does every write and sync, so
//! they never interleave. Under [`SyncPolicy::Always`] the segment is opened `O_DSYNC` and
//! a group's write *is* its `fdatasync`: one operation through the ring instead of two,
//! which shortens every acknowledgement by a round trip (the other policies write
//! buffered and sync separately). A group that crosses the segment size ends the segment: the
//! flusher syncs it, creates the next one (header synced, directory synced), and writes on.
//! Because a segment is durable before its successor exists, only the last segment can
//! have a torn tail.
//!
//! A cut of the log's suffix ([`Wal::truncate_after`], a Raft follower dropping entries
//! its leader does not have) is a job for the flusher too: it runs after everything before
//! it was written and before anything appended after it, so appends that follow a cut
//! take the LSNs it freed and land in the right file.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use rkyv::ser::allocator::Arena;

use crate::error::{AppendError, IoOp, PoisonCause, WalError};
use crate::frame;
use crate::options::{Options, SyncPolicy};
use crate::record::{self, Lsn, Record};
use crate::replay::Replay;
use crate::segment::{self, SegmentInfo, io_err};
use crate::storage::{Durability, MonoioStorage, SegmentFile, Storage};

/// One sync of a group (its `O_DSYNC` write under `Always`, else an `fdatasync`), reported
/// to the [sync observer](Wal::set_sync_observer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncEvent {
    /// Every record up to this LSN is now durable.
    pub durable_lsn: Lsn,
    /// Records this sync made durable.
    pub records: u64,
    /// How long the sync took (under `Always`: the durable write of the group).
    pub duration: Duration,
}

/// Sizes and progress of a log, for the shard's statistics and checkpoint policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    /// First LSN still in the log ([`Lsn::ZERO`] when it holds no segment).
    pub first_lsn: Lsn,
    /// Last LSN handed out by `append`.
    pub last_lsn: Lsn,
    /// Every record up to here is written (survives a process crash).
    pub written_lsn: Lsn,
    /// Every record up to here is durable (survives a power loss).
    pub durable_lsn: Lsn,
    /// Segment files.
    pub segments: usize,
    /// Bytes in the segment files.
    pub bytes_on_disk: u64,
    /// Bytes after the last checkpoint marker this log knows of (appended, or seen by
    /// recovery or replay); all bytes when it knows none. What a restart would replay.
    pub bytes_since_checkpoint: u64,
    /// Records appended since open.
    pub appends: u64,
    /// Group writes since open.
    pub groups: u64,
    /// Syncs of groups since open (durable writes under `Always`, else `fdatasync`s).
    pub syncs: u64,
    /// Bytes of records appended and waiting for the flusher (not counting a write in
    /// progress).
    pub unwritten_bytes: u64,
}

/// A cut of the log's suffix, planned by [`Wal::truncate_after`] and carried out by the
/// flusher.
#[derive(Debug)]
struct Cut {
    /// Segments that hold only records after the cut, newest first.
    remove: Vec<SegmentInfo>,
    /// The segment that holds the last record kept, and its new length.
    keep: Option<(PathBuf, u64)>,
    /// The kept segment is not the open one: the flusher opens it for writing.
    reopen: bool,
}

/// Records encoded and waiting for the flusher, all bound for one segment.
#[derive(Debug)]
struct Chunk {
    /// The chunk opens a new segment named after `first_lsn`.
    new_segment: bool,
    first_lsn: u64,
    last_lsn: u64,
    buf: Vec<u8>,
    /// End offset, within `buf`, of the last checkpoint marker in it.
    checkpoint_end: Option<usize>,
}

struct State<F> {
    segments: VecDeque<SegmentInfo>,
    /// The last segment, open for writing.
    active: Option<Rc<F>>,
    next_lsn: u64,
    /// Size the last segment will have once every pending chunk is written; 0 while the
    /// log has no segment at all.
    planned_tail: u64,
    pending: VecDeque<Chunk>,
    spare: Vec<Vec<u8>>,
    arena: Arena,
    written_lsn: u64,
    durable_lsn: u64,
    /// Highest LSN an explicit `sync` or `close` waits to see durable.
    sync_target: u64,
    last_sync: Instant,
    poison: Option<PoisonCause>,
    closing: bool,
    flusher_exited: bool,
    flusher: Option<Waker>,
    waiters: Vec<Waker>,
    /// (first LSN of the segment, end offset) of the last checkpoint marker known.
    checkpoint_at: Option<(u64, u64)>,
    /// A cut for the flusher to carry out before it writes anything more.
    cut: Option<Cut>,
    /// Cuts planned and carried out since open.
    cuts_planned: u64,
    cuts_done: u64,
    /// Replays alive: the log is not cut under them.
    replays: usize,
    stats: WalStats,
}

impl<F> State<F> {
    fn acked(&self, policy: SyncPolicy) -> u64 {
        match policy {
            SyncPolicy::Always => self.durable_lsn,
            SyncPolicy::Interval(_) | SyncPolicy::Never => self.written_lsn,
        }
    }

    fn wake_flusher(&mut self) {
        if let Some(w) = self.flusher.take() {
            w.wake();
        }
    }

    fn wake_waiters(&mut self) {
        for w in self.waiters.drain(..) {
            w.wake();
        }
    }

    pub(crate) fn note_checkpoint(&mut self, segment_first: u64, end: u64) {
        if self
            .checkpoint_at
            .is_none_or(|at| at < (segment_first, end))
        {
            self.checkpoint_at = Some((segment_first, end));
        }
    }
}

/// Called after every group sync.
type SyncObserver = Box<dyn FnMut(&SyncEvent)>;

pub(crate) struct Shared<S: Storage> {
    storage: S,
    dir: PathBuf,
    options: Options,
    /// `PerWrite` under `SyncPolicy::Always`: each group is one `O_DSYNC` write, so write
    /// and sync cost one trip through the ring instead of two.
    durability: Durability,
    max_body: u64,
    state: RefCell<State<S::File>>,
    observer: RefCell<Option<SyncObserver>>,
    /// `flock` on `LOCK` keeps a second writer out; released when the flusher stops, after
    /// which nothing writes.
    lock: RefCell<Option<std::fs::File>>,
}

/// A write-ahead log in one directory, used from one monoio core thread.
///
/// Share it between the tasks of a core with `Rc<Wal>`: every method takes `&self`.
/// See the [crate documentation](crate) for the life cycle.
pub struct Wal<S: Storage = MonoioStorage> {
    shared: Rc<Shared<S>>,
}

impl<S: Storage> std::fmt::Debug for Wal<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.shared.dir)
            .field("options", &self.shared.options)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Wal<MonoioStorage> {
    /// Opens (creating if needed) the log in `dir` on the current monoio runtime, and
    /// recovers it: a torn tail of the last segment is cut off; corruption anywhere else is
    /// an error naming the segment and offset.
    pub async fn open(dir: impl AsRef<Path>, options: Options) -> Result<Self, WalError> {
        Self::open_with(MonoioStorage, dir, options).await
    }
}

impl<S: Storage> Wal<S> {
    /// [`open`](Wal::open) with another storage, such as a
    /// [`FaultStorage`](crate::FaultStorage).
    pub async fn open_with(
        storage: S,
        dir: impl AsRef<Path>,
        options: Options,
    ) -> Result<Self, WalError> {
        options.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let lock = lock_dir(&storage, &dir).await?;
        let max_body = frame::max_body(options.segment_size());
        let durability = match options.sync_policy() {
            SyncPolicy::Always => Durability::PerWrite,
            SyncPolicy::Interval(_) | SyncPolicy::Never => Durability::Buffered,
        };
        let recovered = recover(&storage, &dir, max_body, durability).await?;
        let last = recovered.next_lsn - 1;
        let planned_tail = recovered.segments.back().map_or(0, |s| s.len);
        let state = State {
            segments: recovered.segments,
            active: recovered.active.map(Rc::new),
            next_lsn: recovered.next_lsn,
            planned_tail,
            pending: VecDeque::new(),
            spare: Vec::new(),
            arena: Arena::new(),
            written_lsn: last,
            durable_lsn: last,
            sync_target: 0,
            last_sync: Instant::now(),
            poison: None,
            closing: false,
            flusher_exited: false,
            flusher: None,
            waiters: Vec::new(),
            checkpoint_at: recovered.checkpoint_at,
            cut: None,
            cuts_planned: 0,
            cuts_done: 0,
            replays: 0,
            stats: WalStats::default(),
        };
        let shared = Rc::new(Shared {
            storage,
            dir,
            options,
            durability,
            max_body,
            state: RefCell::new(state),
            observer: RefCell::new(None),
            lock: RefCell::new(Some(lock)),
        });
        monoio::spawn(flusher(shared.clone()));
        Ok(Self { shared })
    }

    /// Appends one record. The LSN is assigned when `append` is called (not when the
    /// future is first polled), so LSN order is call order. The future resolves once the
    /// record is acknowledged under the [`SyncPolicy`]: with `Always`, once an
    /// `fdatasync` covers it. Appends made while a sync is in flight share the next one.
    ///
    /// A refused record ([`AppendError::Rejected`]) leaves the log healthy. Dropping the
    /// future does not withdraw the record: it is written anyway.
    pub fn append(
        &self,
        record: Record<'_>,
    ) -> impl Future<Output = Result<Lsn, AppendError>> + '_ {
        let queued = self.shared.enqueue(&record);
        async move {
            let lsn = queued?;
            self.shared.wait(lsn, Wait::Acked).await?;
            Ok(Lsn::new(lsn))
        }
    }

    /// Makes every record appended so far durable, whatever the policy, and returns the
    /// durable LSN.
    pub async fn sync(&self) -> Result<Lsn, WalError> {
        let target = {
            let mut st = self.shared.state.borrow_mut();
            self.shared.usable(&st)?;
            let target = st.next_lsn - 1;
            if st.durable_lsn >= target {
                return Ok(Lsn::new(st.durable_lsn));
            }
            st.sync_target = st.sync_target.max(target);
            st.wake_flusher();
            target
        };
        self.shared.wait(target, Wait::Durable).await?;
        Ok(Lsn::new(self.shared.state.borrow().durable_lsn))
    }

    /// Reads the log from `from` on (LSN 0 reads from the start of the log). The records
    /// are those written when `replay` is called; appends may continue meanwhile.
    pub fn replay(&self, from: Lsn) -> Result<Replay<'_, S>, WalError> {
        let st = self.shared.state.borrow();
        self.shared.usable(&st)?;
        let first = st.segments.front().map_or(st.next_lsn, |s| s.first_lsn);
        let from = from.get().max(1);
        if from < first {
            return Err(WalError::ReplayGap {
                requested: from,
                first,
            });
        }
        let start = st
            .segments
            .iter()
            .rposition(|s| s.first_lsn <= from)
            .unwrap_or(0);
        let segments = st.segments.iter().skip(start).cloned().collect();
        let until = st.written_lsn;
        drop(st);
        Ok(Replay::new(self, segments, from, until))
    }

    /// Removes every whole segment whose records a checkpoint covering `covers` contains
    /// (all their LSNs `<= covers`). The last segment always stays, so LSNs keep counting
    /// from where they were. Returns how many segments were removed. A [`Replay`] made
    /// earlier fails on a removed segment it had not reached yet.
    pub async fn truncate_prefix(&self, covers: Lsn) -> Result<usize, WalError> {
        let victims: Vec<SegmentInfo> = {
            let mut st = self.shared.state.borrow_mut();
            self.shared.usable(&st)?;
            let mut victims = Vec::new();
            while st.segments.len() > 1 && st.segments[1].first_lsn - 1 <= covers.get() {
                victims.extend(st.segments.pop_front());
            }
            victims
        };
        let shared = &self.shared;
        for v in &victims {
            match shared.storage.remove(&v.path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_err(IoOp::Remove, &v.path)(e));
                }
                _ => {}
            }
        }
        if !victims.is_empty() {
            shared
                .storage
                .sync_dir(&shared.dir)
                .await
                .map_err(io_err(IoOp::SyncDir, &shared.dir))?;
        }
        Ok(victims.len())
    }

    /// Removes every record after `keep`, so that the next append gets LSN `keep + 1`: a
    /// Raft follower cutting entries its leader does not have. Waits until everything
    /// appended is written, then has the flusher delete the segments holding only later
    /// records, newest first, each removal made durable before the next, and cut the
    /// segment holding `keep` just after it (`ftruncate`, then `fsync`). The first segment
    /// always stays, cut to its header if need be, so LSNs go on after a reopen. A crash midway
    /// leaves a longer suffix than asked for, never a gap; once this returns, the records
    /// cut never come back, whatever crash follows. Keeping the last LSN or more does
    /// nothing.
    ///
    /// Fails with [`WalError::CutGap`] when `keep` lies before the log's first record but
    /// one (records a checkpoint let go of), and with [`WalError::ReplayOpen`] while a
    /// [`Replay`] of this log is alive. Appends made meanwhile are kept if they come after
    /// the cut; the caller should not make them, as their LSNs depend on timing.
    pub async fn truncate_after(&self, keep: Lsn) -> Result<(), WalError> {
        let keep = keep.get();
        let planned = loop {
            // One cut at a time: an earlier one is carried out first.
            let earlier = self.shared.state.borrow().cuts_planned;
            self.shared.wait_cut(earlier).await?;
            {
                let mut st = self.shared.state.borrow_mut();
                self.shared.usable(&st)?;
                let last = st.next_lsn - 1;
                if keep >= last {
                    return Ok(());
                }
                let first = st.segments.front().map_or(st.next_lsn, |s| s.first_lsn);
                if keep + 1 < first {
                    return Err(WalError::CutGap { keep, first });
                }
                if st.replays > 0 {
                    return Err(WalError::ReplayOpen);
                }
                if st.pending.is_empty() && st.written_lsn == last && st.cut.is_none() {
                    break self.shared.plan_cut(&mut st, keep)?;
                }
            }
            self.sync().await?;
        };
        self.shared.wait_cut(planned).await
    }

    /// Calls `observer` after every sync of a group, with its duration (for the
    /// shard's latency histogram). Replaces any earlier observer.
    pub fn set_sync_observer(&self, observer: impl FnMut(&SyncEvent) + 'static) {
        *self.shared.observer.borrow_mut() = Some(Box::new(observer));
    }

    /// Writes and syncs everything appended, stops the flusher and releases the directory.
    /// Later calls fail with [`WalError::Closed`].
    pub async fn close(&self) -> Result<(), WalError> {
        {
            let mut st = self.shared.state.borrow_mut();
            st.closing = true;
            st.wake_flusher();
        }
        poll_fn(|cx| {
            let mut st = self.shared.state.borrow_mut();
            if st.flusher_exited {
                return Poll::Ready(());
            }
            st.waiters.push(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let st = self.shared.state.borrow();
        match &st.poison {
            Some(cause) => Err(self.shared.poisoned(cause)),
            None => Ok(()),
        }
    }

    /// Sizes and progress.
    pub fn stats(&self) -> WalStats {
        let st = self.shared.state.borrow();
        let bytes_on_disk = st.segments.iter().map(|s| s.len).sum();
        let bytes_since_checkpoint = match st.checkpoint_at {
            Some((first, end)) if st.segments.iter().any(|s| s.first_lsn == first) => {
                st.segments
                    .iter()
                    .filter(|s| s.first_lsn >= first)
                    .map(|s| s.len)
                    .sum::<u64>()
                    - end
            }
            _ => bytes_on_disk,
        };
        WalStats {
            first_lsn: Lsn::new(st.segments.front().map_or(0, |s| s.first_lsn)),
            last_lsn: Lsn::new(st.next_lsn - 1),
            written_lsn: Lsn::new(st.written_lsn),
            durable_lsn: Lsn::new(st.durable_lsn),
            segments: st.segments.len(),
            bytes_on_disk,
            bytes_since_checkpoint,
            unwritten_bytes: st.pending.iter().map(|c| c.buf.len() as u64).sum(),
            ..st.stats
        }
    }

    /// Every record up to this LSN survives a power loss.
    pub fn durable_lsn(&self) -> Lsn {
        Lsn::new(self.shared.state.borrow().durable_lsn)
    }

    /// The last LSN handed out ([`Lsn::ZERO`] for an empty log).
    pub fn last_lsn(&self) -> Lsn {
        Lsn::new(self.shared.state.borrow().next_lsn - 1)
    }

    /// True once a write or sync failed: every call fails until the log is reopened.
    pub fn is_poisoned(&self) -> bool {
        self.shared.state.borrow().poison.is_some()
    }

    /// The error every call fails with once a write or sync failed
    /// ([`WalError::Poisoned`], naming the cause), or `None` while the log is usable.
    pub fn poison(&self) -> Option<WalError> {
        let st = self.shared.state.borrow();
        st.poison.as_ref().map(|cause| self.shared.poisoned(cause))
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The options the log was opened with.
    pub fn options(&self) -> Options {
        self.shared.options
    }

    pub(crate) fn note_checkpoint(&self, segment_first: u64, end: u64) {
        self.shared
            .state
            .borrow_mut()
            .note_checkpoint(segment_first, end);
    }

    pub(crate) fn check_usable(&self) -> Result<(), WalError> {
        self.shared.usable(&self.shared.state.borrow())
    }

    /// A [`Replay`] began (`true`) or ended (`false`).
    pub(crate) fn note_replay(&self, alive: bool) {
        let mut st = self.shared.state.borrow_mut();
        if alive {
            st.replays += 1;
        } else {
            st.replays -= 1;
        }
    }
}

impl<S: Storage> Drop for Wal<S> {
    /// Lets the flusher write and sync what is pending, then stop. Use [`Wal::close`] to
    /// wait for that (and to see its errors).
    fn drop(&mut self) {
        let mut st = self.shared.state.borrow_mut();
        st.closing = true;
        st.wake_flusher();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Acknowledged under the sync policy.
    Acked,
    /// Durable, whatever the policy.
    Durable,
}

impl<S: Storage> Shared<S> {
    fn usable(&self, st: &State<S::File>) -> Result<(), WalError> {
        if let Some(cause) = &st.poison {
            return Err(self.poisoned(cause));
        }
        if st.closing {
            return Err(WalError::Closed);
        }
        Ok(())
    }

    fn poisoned(&self, cause: &PoisonCause) -> WalError {
        WalError::Poisoned {
            dir: self.dir.clone(),
            cause: cause.clone(),
        }
    }

    /// Encodes a record into the pending chunks and returns its LSN.
    fn enqueue(&self, record: &Record<'_>) -> Result<u64, AppendError> {
        let mut guard = self.state.borrow_mut();
        self.usable(&guard)?;
        let st = &mut *guard;
        let lsn = st.next_lsn;
        let segment_bytes = self.options.segment_size();
        let header = frame::SEGMENT_HEADER_LEN as u64;
        if st.pending.is_empty() || st.planned_tail == 0 {
            let new_segment = st.planned_tail == 0;
            let buf = st.spare.pop().unwrap_or_default();
            st.pending.push_back(Chunk {
                new_segment,
                first_lsn: lsn,
                last_lsn: lsn - 1,
                buf,
                checkpoint_end: None,
            });
            if new_segment {
                st.planned_tail = header;
            }
        }
        let chunk = st.pending.back_mut().expect("a chunk was just ensured");
        let start = chunk.buf.len();
        let n = match record::encode(record, lsn, &mut chunk.buf, &mut st.arena, self.max_body) {
            Ok(n) => n as u64,
            Err(e) => {
                if chunk.buf.is_empty() {
                    // Nothing else rides in this chunk: take it back.
                    let chunk = st.pending.pop_back().expect("the chunk exists");
                    if chunk.new_segment {
                        st.planned_tail = 0;
                    }
                    st.spare.push(chunk.buf);
                }
                return Err(e.into());
            }
        };
        let is_checkpoint = matches!(record, Record::Checkpoint { .. });
        if st.planned_tail + n > segment_bytes && st.planned_tail > header {
            // The record does not fit: it opens the next segment.
            let mut buf = st.spare.pop().unwrap_or_default();
            buf.extend_from_slice(&chunk.buf[start..]);
            chunk.buf.truncate(start);
            if chunk.buf.is_empty() && !chunk.new_segment {
                let empty = st.pending.pop_back().expect("the chunk exists");
                st.spare.push(empty.buf);
            }
            let checkpoint_end = is_checkpoint.then_some(buf.len());
            st.pending.push_back(Chunk {
                new_segment: true,
                first_lsn: lsn,
                last_lsn: lsn,
                buf,
                checkpoint_end,
            });
            st.planned_tail = header + n;
        } else {
            chunk.last_lsn = lsn;
            if is_checkpoint {
                chunk.checkpoint_end = Some(chunk.buf.len());
            }
            st.planned_tail += n;
        }
        st.next_lsn += 1;
        st.stats.appends += 1;
        st.wake_flusher();
        Ok(lsn)
    }

    /// Plans a cut after `keep` (`keep` before the last LSN, nothing pending, everything
    /// written): the log's state moves at once, so appends that follow get the freed
    /// LSNs; the flusher carries out the file operations before it writes them. Returns
    /// the cut's number, for [`Wal::truncate_after`] to wait on.
    fn plan_cut(&self, st: &mut State<S::File>, keep: u64) -> Result<u64, WalError> {
        // The first segment always stays, emptied to its header if need be: its name is
        // what tells a reopened log where LSNs continue.
        let mut remove = Vec::new();
        while st.segments.len() > 1 && st.segments.back().is_some_and(|s| s.first_lsn > keep) {
            remove.extend(st.segments.pop_back());
        }
        let kept = match st.segments.back() {
            Some(seg) if seg.first_lsn > keep => Some((
                seg.first_lsn,
                seg.path.clone(),
                frame::SEGMENT_HEADER_LEN as u64,
            )),
            Some(seg) => {
                let map = segment::map(&seg.path, seg.len)?;
                let bytes = map.as_deref().unwrap_or_default();
                let end = segment::end_of(bytes, seg.first_lsn, keep, self.max_body, &seg.path)?;
                Some((seg.first_lsn, seg.path.clone(), end))
            }
            None => None,
        };
        let reopen = !remove.is_empty() && kept.is_some();
        if !remove.is_empty() {
            // The open file was removed: the flusher opens the kept one, if any.
            st.active = None;
        }
        if let Some((first, _, end)) = &kept {
            st.segments.back_mut().expect("the kept segment").len = *end;
            if st
                .checkpoint_at
                .is_some_and(|(at, marker_end)| at > *first || (at == *first && marker_end > *end))
            {
                st.checkpoint_at = None;
            }
        } else {
            st.checkpoint_at = None;
        }
        st.planned_tail = kept.as_ref().map_or(0, |(_, _, end)| *end);
        st.next_lsn = keep + 1;
        st.written_lsn = keep;
        st.durable_lsn = st.durable_lsn.min(keep);
        st.sync_target = st.sync_target.min(keep);
        st.cut = Some(Cut {
            remove,
            keep: kept.map(|(_, path, end)| (path, end)),
            reopen,
        });
        st.cuts_planned += 1;
        st.wake_flusher();
        Ok(st.cuts_planned)
    }

    /// Waits until cut number `planned` (and every one before it) is carried out.
    async fn wait_cut(&self, planned: u64) -> Result<(), WalError> {
        poll_fn(|cx| {
            let mut st = self.state.borrow_mut();
            if st.cuts_done >= planned {
                return Poll::Ready(Ok(()));
            }
            if let Some(cause) = &st.poison {
                return Poll::Ready(Err(self.poisoned(cause)));
            }
            if st.flusher_exited {
                return Poll::Ready(Err(WalError::Closed));
            }
            st.waiters.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Carries out a planned cut (see [`Cut`]).
    async fn carry_out(&self, cut: Cut) -> Result<(), WalError> {
        for seg in &cut.remove {
            match self.storage.remove(&seg.path).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_err(IoOp::Remove, &seg.path)(e));
                }
                _ => {}
            }
            // Each removal is durable before the next, older one: no gap, ever.
            self.storage
                .sync_dir(&self.dir)
                .await
                .map_err(io_err(IoOp::SyncDir, &self.dir))?;
        }
        if let Some((path, end)) = &cut.keep {
            let file = if cut.reopen {
                Rc::new(
                    self.storage
                        .open(path, self.durability)
                        .await
                        .map_err(io_err(IoOp::Open, path))?,
                )
            } else {
                self.state
                    .borrow()
                    .active
                    .clone()
                    .expect("the kept segment is the open one")
            };
            file.truncate(*end)
                .await
                .map_err(io_err(IoOp::Truncate, path))?;
            if cut.reopen {
                self.state.borrow_mut().active = Some(file);
            }
        }
        let mut st = self.state.borrow_mut();
        st.cuts_done += 1;
        st.wake_waiters();
        Ok(())
    }

    /// Waits until `lsn` is acknowledged (or durable), or the log is poisoned.
    async fn wait(&self, lsn: u64, wait: Wait) -> Result<(), WalError> {
        let policy = self.options.sync_policy();
        poll_fn(|cx| {
            let mut st = self.state.borrow_mut();
            let done = match wait {
                Wait::Acked => st.acked(policy),
                Wait::Durable => st.durable_lsn,
            };
            if done >= lsn {
                return Poll::Ready(Ok(()));
            }
            if let Some(cause) = &st.poison {
                return Poll::Ready(Err(self.poisoned(cause)));
            }
            if st.flusher_exited {
                return Poll::Ready(Err(WalError::Closed));
            }
            st.waiters.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Waits until there is something to write or sync, or the log is closing.
    async fn next_work(&self) {
        let mut timer: Option<Pin<Box<monoio::time::Sleep>>> = None;
        poll_fn(|cx| {
            let mut st = self.state.borrow_mut();
            if !st.pending.is_empty()
                || st.cut.is_some()
                || st.closing
                || st.sync_target > st.durable_lsn
            {
                return Poll::Ready(());
            }
            if let SyncPolicy::Interval(every) = self.options.sync_policy()
                && st.written_lsn > st.durable_lsn
            {
                let deadline = st.last_sync + every;
                if Instant::now() >= deadline {
                    return Poll::Ready(());
                }
                let sleep = timer.get_or_insert_with(|| {
                    Box::pin(monoio::time::sleep_until(monoio::time::Instant::from_std(
                        deadline,
                    )))
                });
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
            }
            st.flusher = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }

    /// The flusher's loop; returns when the log closed, or with the error that poisons it.
    async fn flush_loop(&self) -> Result<(), WalError> {
        let mut chunks = VecDeque::new();
        loop {
            self.next_work().await;
            let cut = self.state.borrow_mut().cut.take();
            if let Some(cut) = cut {
                // Everything before the cut was written when it was planned; everything
                // pending now came after it.
                self.carry_out(cut).await?;
            }
            std::mem::swap(&mut chunks, &mut self.state.borrow_mut().pending);
            for chunk in chunks.drain(..) {
                self.write_chunk(chunk).await?;
            }
            let (sync, exit) = {
                let mut st = self.state.borrow_mut();
                let due = match self.options.sync_policy() {
                    SyncPolicy::Always => true,
                    SyncPolicy::Interval(every) => st.last_sync.elapsed() >= every,
                    SyncPolicy::Never => false,
                };
                let exit = st.closing && st.pending.is_empty();
                let wanted = due || st.sync_target > st.durable_lsn || exit;
                if self.options.sync_policy() != SyncPolicy::Always {
                    // Acks that only need the write go out before the sync starts.
                    st.wake_waiters();
                }
                (wanted && st.written_lsn > st.durable_lsn, exit)
            };
            if sync {
                self.sync_active().await?;
            }
            self.state.borrow_mut().wake_waiters();
            if exit {
                return Ok(());
            }
        }
    }

    async fn write_chunk(&self, chunk: Chunk) -> Result<(), WalError> {
        if chunk.new_segment {
            self.start_segment(chunk.first_lsn).await?;
        }
        if chunk.buf.is_empty() {
            self.state.borrow_mut().spare.push(chunk.buf);
            return Ok(());
        }
        let (file, pos, path) = {
            let st = self.state.borrow();
            let seg = st
                .segments
                .back()
                .expect("a chunk is written to an existing segment");
            (
                st.active.clone().expect("the last segment is open"),
                seg.len,
                seg.path.clone(),
            )
        };
        let started = Instant::now();
        let (res, mut buf) = write_all(&*file, chunk.buf, pos).await;
        res.map_err(io_err(IoOp::Write, &path))?;
        let took = started.elapsed();
        {
            let mut st = self.state.borrow_mut();
            let n = buf.len() as u64;
            let seg = st.segments.back_mut().expect("the segment exists");
            seg.len += n;
            let first = seg.first_lsn;
            if let Some(end) = chunk.checkpoint_end {
                st.note_checkpoint(first, pos + end as u64);
            }
            st.written_lsn = chunk.last_lsn;
            st.stats.groups += 1;
            buf.clear();
            if buf.capacity() <= 4 << 20 {
                st.spare.push(buf);
            }
        }
        if self.durability == Durability::PerWrite {
            // The write was the sync.
            self.synced(chunk.last_lsn, took);
        }
        Ok(())
    }

    /// Seals the current segment (durable before its successor exists) and starts the next.
    async fn start_segment(&self, first_lsn: u64) -> Result<(), WalError> {
        let dirty = {
            let st = self.state.borrow();
            st.active.is_some() && st.written_lsn > st.durable_lsn
        };
        if dirty {
            self.sync_active().await?;
        }
        let path = self.dir.join(segment::segment_name(first_lsn));
        let file = self
            .storage
            .create(&path, self.durability)
            .await
            .map_err(io_err(IoOp::Create, &path))?;
        let (res, _) = write_all(&file, frame::segment_header(first_lsn).to_vec(), 0).await;
        res.map_err(io_err(IoOp::Write, &path))?;
        if self.durability == Durability::Buffered {
            file.sync_data().await.map_err(io_err(IoOp::Sync, &path))?;
        }
        self.storage
            .sync_dir(&self.dir)
            .await
            .map_err(io_err(IoOp::SyncDir, &self.dir))?;
        let mut st = self.state.borrow_mut();
        let len = frame::SEGMENT_HEADER_LEN as u64;
        st.segments.push_back(SegmentInfo {
            first_lsn,
            path,
            len,
        });
        st.active = Some(Rc::new(file));
        Ok(())
    }

    /// `fdatasync` of the last segment: everything written becomes durable.
    async fn sync_active(&self) -> Result<(), WalError> {
        let (file, path, target) = {
            let st = self.state.borrow();
            let seg = st.segments.back().expect("a written log has a segment");
            let file = st.active.clone().expect("the last segment is open");
            (file, seg.path.clone(), st.written_lsn)
        };
        let started = Instant::now();
        file.sync_data().await.map_err(io_err(IoOp::Sync, &path))?;
        self.synced(target, started.elapsed());
        Ok(())
    }

    /// Records that every LSN up to `target` is durable, after a sync that took `took`.
    fn synced(&self, target: u64, took: Duration) {
        let before = {
            let mut st = self.state.borrow_mut();
            let before = st.durable_lsn;
            st.durable_lsn = target;
            st.last_sync = Instant::now();
            st.stats.syncs += 1;
            before
        };
        let event = SyncEvent {
            durable_lsn: Lsn::new(target),
            records: target - before,
            duration: took,
        };
        // Taken out while it runs, so it may call back into the log.
        let observer = self.observer.borrow_mut().take();
        if let Some(mut observe) = observer {
            observe(&event);
            let mut slot = self.observer.borrow_mut();
            if slot.is_none() {
                *slot = Some(observe);
            }
        }
    }
}

async fn flusher<S: Storage>(shared: Rc<Shared<S>>) {
    let result = shared.flush_loop().await;
    let mut st = shared.state.borrow_mut();
    if let Err(e) = result {
        // Never retried: after a failed fdatasync the kernel may have dropped the dirty
        // pages, so a later "successful" sync would prove nothing.
        st.poison = Some(PoisonCause(std::sync::Arc::new(e)));
        st.pending.clear();
    }
    st.flusher_exited = true;
    st.wake_waiters();
    shared.lock.borrow_mut().take();
}

/// Writes all of `buf` at `pos`, continuing after short writes.
pub(crate) async fn write_all<F: SegmentFile>(
    file: &F,
    mut buf: Vec<u8>,
    pos: u64,
) -> (std::io::Result<()>, Vec<u8>) {
    let mut done = 0;
    while done < buf.len() {
        let (res, back) = file.write_at(buf, done, pos + done as u64).await;
        buf = back;
        match res {
            Ok(0) => {
                let e = std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "segment write wrote nothing",
                );
                return (Err(e), buf);
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (Err(e), buf),
        }
    }
    (Ok(()), buf)
}

async fn lock_dir<S: Storage>(storage: &S, dir: &Path) -> Result<std::fs::File, WalError> {
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(io_err(IoOp::CreateDir, dir))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            storage
                .sync_dir(parent)
                .await
                .map_err(io_err(IoOp::SyncDir, parent))?;
        }
    }
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(IoOp::Lock, &path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(WalError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io_err(IoOp::Lock, &path)(e)),
    }
}

struct Recovered<F> {
    segments: VecDeque<SegmentInfo>,
    active: Option<F>,
    next_lsn: u64,
    checkpoint_at: Option<(u64, u64)>,
}

async fn recover<S: Storage>(
    storage: &S,
    dir: &Path,
    max_body: u64,
    durability: Durability,
) -> Result<Recovered<S::File>, WalError> {
    let mut listed = segment::list(dir)?;
    // The last segment: a torn creation is removed, a torn tail is cut.
    let tail = loop {
        let Some((first, path)) = listed.last().cloned() else {
            break None;
        };
        let len = std::fs::metadata(&path)
            .map_err(io_err(IoOp::Read, &path))?
            .len();
        let map = segment::map(&path, len)?;
        let bytes = map.as_deref().unwrap_or_default();
        if frame::parse_segment_header(bytes) == Err(frame::HeaderProblem::Bad)
            && segment::is_torn_creation(bytes, first, max_body)
        {
            drop(map);
            storage
                .remove(&path)
                .await
                .map_err(io_err(IoOp::Remove, &path))?;
            storage
                .sync_dir(dir)
                .await
                .map_err(io_err(IoOp::SyncDir, dir))?;
            listed.pop();
            continue;
        }
        let tail = segment::scan_last(bytes, first, max_body, &path)?;
        break Some((first, path, tail));
    };
    let mut segments = VecDeque::with_capacity(listed.len());
    let sealed = listed.len().saturating_sub(1);
    for (first, path) in listed.into_iter().take(sealed) {
        let len = segment::check_sealed(first, &path)?;
        segments.push_back(SegmentInfo {
            first_lsn: first,
            path,
            len,
        });
    }
    let Some((first, path, tail)) = tail else {
        return Ok(Recovered {
            segments,
            active: None,
            next_lsn: 1,
            checkpoint_at: None,
        });
    };
    let file = storage
        .open(&path, durability)
        .await
        .map_err(io_err(IoOp::Open, &path))?;
    if tail.torn {
        file.truncate(tail.end)
            .await
            .map_err(io_err(IoOp::Truncate, &path))?;
    } else {
        // A process that died under `Never` or `Interval` may have left unsynced records;
        // they are acknowledged history now, so make them durable before reporting them so.
        file.sync_data().await.map_err(io_err(IoOp::Sync, &path))?;
    }
    segments.push_back(SegmentInfo {
        first_lsn: first,
        path,
        len: tail.end,
    });
    Ok(Recovered {
        segments,
        active: Some(file),
        next_lsn: tail.last_lsn + 1,
        checkpoint_at: tail.checkpoint_end.map(|end| (first, end)),
    })
}
