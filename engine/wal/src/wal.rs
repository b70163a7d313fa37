//! The log's façade: open and recover, append, sync, replay, truncate either end, close.
//! The group-commit queue and its flusher live in [`commit`](crate::commit), recovery in
//! [`recover`](crate::recover).
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
use std::path::Path;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use rkyv::ser::allocator::Arena;

use crate::commit::{Item, Shared, State, Wait, flusher};
use crate::error::{AppendError, IoOp, WalError};
use crate::options::{Format, Options, SyncPolicy};
use crate::record::{EncodedBody, Lsn, Record};
use crate::recover::{lock_dir, recover};
use crate::replay::Replay;
use crate::segment::{SegmentInfo, io_err};
use crate::storage::{Durability, MonoioStorage, Storage};

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

/// A record the log took ([`Wal::queue_raw`]), on its way to the disk.
#[must_use = "dropping it does not withdraw the record; `acked` tells when it is safe"]
pub struct Queued<S: Storage = MonoioStorage> {
    shared: Rc<Shared<S>>,
    lsn: u64,
}

impl<S: Storage> std::fmt::Debug for Queued<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queued").field("lsn", &self.lsn).finish()
    }
}

impl<S: Storage> Queued<S> {
    /// The record's LSN.
    pub fn lsn(&self) -> Lsn {
        Lsn::new(self.lsn)
    }

    /// Waits until the log acknowledges the record (and every one before it) under its
    /// [`SyncPolicy`]; owns what it waits on, so it may be spawned.
    pub async fn acked(self) -> Result<Lsn, WalError> {
        self.shared.wait(self.lsn, Wait::Acked).await?;
        Ok(Lsn::new(self.lsn))
    }
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
        let durability = match options.sync_policy() {
            SyncPolicy::Always => Durability::PerWrite,
            SyncPolicy::Interval(_) | SyncPolicy::Never => Durability::Buffered,
        };
        let recovered = recover(&storage, &dir, options, durability).await?;
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
            framing: recovered.framing,
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
    /// future does not withdraw the record: it is written anyway. The future borrows
    /// nothing, so it may be spawned (a Raft log store calls back from its own task).
    pub fn append(
        &self,
        record: Record<'_>,
    ) -> impl Future<Output = Result<Lsn, AppendError>> + use<S> {
        self.append_item(Item::Record(&record, 0))
    }

    /// [`append`](Wal::append) of a record written in Raft `term`, for a v2 log (a v1 log
    /// refuses a term other than 0 with [`RecordError::NeedsV2`](crate::RecordError)).
    pub fn append_entry(
        &self,
        term: u64,
        record: Record<'_>,
    ) -> impl Future<Output = Result<Lsn, AppendError>> + use<S> {
        self.append_item(Item::Record(&record, term))
    }

    /// Appends a record whose body was encoded elsewhere, at exactly `lsn` (the next one)
    /// and in `term`: a Raft follower storing its leader's entries as they arrived
    /// ([`RecordView::body_bytes`](crate::RecordView::body_bytes) on the leader's side).
    /// The body is checked to decode as a record, never as a checkpoint marker. v2 logs
    /// only. Resolves like [`append`](Wal::append).
    pub fn append_raw(
        &self,
        lsn: Lsn,
        term: u64,
        body: &[u8],
    ) -> impl Future<Output = Result<Lsn, AppendError>> + use<S> {
        self.append_item(Item::Raw {
            lsn: lsn.get(),
            term,
            body,
            checked: false,
        })
    }

    /// [`append_raw`](Wal::append_raw) of a body checked when it was made, answering at
    /// once whether the record was taken: a Raft log store queues a batch of entries,
    /// learns right away which one the log refused, and waits on the last one only. The
    /// body is not decoded again.
    pub fn queue_raw(
        &self,
        lsn: Lsn,
        term: u64,
        body: &EncodedBody,
    ) -> Result<Queued<S>, AppendError> {
        self.queue(Item::Raw {
            lsn: lsn.get(),
            term,
            body: body.as_bytes(),
            checked: true,
        })
    }

    fn queue(&self, item: Item<'_>) -> Result<Queued<S>, AppendError> {
        let lsn = self.shared.enqueue(item)?;
        Ok(Queued {
            shared: self.shared.clone(),
            lsn,
        })
    }

    /// Queues `item` now; the future owns what it waits on, so it may be spawned.
    fn append_item(
        &self,
        item: Item<'_>,
    ) -> impl Future<Output = Result<Lsn, AppendError>> + use<S> {
        let queued = self.queue(item);
        async move { Ok(queued?.acked().await?) }
    }

    /// The format of this log's records: the one its segments were written in, or the
    /// one asked for when it had none.
    pub fn format(&self) -> Format {
        self.shared.framing.format
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
        Ok(Replay::new(&self.shared, segments, from, until))
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

    /// Drops every record and continues the log after `after`: the next append gets LSN
    /// `after + 1`. A Raft replica does this when a snapshot covers its whole log, or when
    /// it lets go of entries past the log's end. Waits until everything appended is
    /// written, then has the flusher remove every segment, oldest first, each removal made
    /// durable before the next, and create the empty segment `after + 1` (header and
    /// directory synced). Once this returns, a reopened log continues at `after + 1`.
    ///
    /// A crash midway leaves a suffix of the old segments, or none (a log that starts
    /// again at LSN 1): the caller records `after` elsewhere first (the purge point in
    /// [`RaftState`](crate::RaftState)) and calls this again after a reopen. Fails with
    /// [`WalError::ReplayOpen`] while a [`Replay`] of this log is alive.
    pub async fn reset_after(&self, after: Lsn) -> Result<(), WalError> {
        let planned = loop {
            let earlier = self.shared.state.borrow().cuts_planned;
            self.shared.wait_cut(earlier).await?;
            {
                let mut st = self.shared.state.borrow_mut();
                self.shared.usable(&st)?;
                if st.replays > 0 {
                    return Err(WalError::ReplayOpen);
                }
                let last = st.next_lsn - 1;
                if st.pending.is_empty() && st.written_lsn == last && st.cut.is_none() {
                    break self.shared.plan_reset(&mut st, after.get());
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

    /// Every record up to this LSN is written: it survives a process crash, and a
    /// [`replay`](Wal::replay) made now reads it.
    pub fn written_lsn(&self) -> Lsn {
        Lsn::new(self.shared.state.borrow().written_lsn)
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
