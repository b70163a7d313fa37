//! The shard's write-ahead log as its Raft log: openraft's [`RaftLogStorage`] over a
//! [`Format::V2`] [`Wal`] and the [`RaftState`] file beside it.
//!
//! Raft index `i` is LSN `i + 1` ([`lsn_of`]). Every entry is stored as a record body
//! with its term: a normal entry as the body its leader encoded ([`ShardOp`]), a blank one
//! as [`Record::Blank`], a membership change as [`Record::Membership`] (openraft's JSON).
//! The log acknowledges an entry once it is on disk (`SyncPolicy::Always` is required:
//! a replica that counted an unsynced entry towards a majority could lose a committed
//! write), and only then does openraft hear that it is flushed.
//!
//! Readers (openraft's replication streams) share the log with the writer. Entries the log
//! has not written yet are served from a tail kept in memory, which also holds the most
//! recent [`TAIL_CACHE_BYTES`] of entries, so that followers that keep up are fed without
//! touching the disk; older entries are read back through the log's memory maps.
//!
//! The purge point (the last entry a snapshot let go of) is saved in `RAFT_STATE` before the
//! log lets go of anything. Entries at or before it are never served, even while the log's
//! first segment still holds them; when it passes the log's end, the log is reset to go on
//! after it ([`Wal::reset_after`]), and an open that finds the log ending before it resets
//! again (a crash during the reset).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt::{self, Debug};
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::rc::Rc;

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{EntryPayload, OptionalSend, RaftLogReader};
use vectron_wal::{
    Format, LogPosition, Lsn, MonoioStorage, Options, RaftState, RecordView, Storage, StoredVote,
    SyncPolicy, Wal, WalError,
};

use crate::types::{Entry, LogId, ShardRaft, Vote, index_of, log_id, lsn_of};
use crate::wire::{body_of, entry_from_body};

/// Bytes of the most recent entries a log store keeps in memory for its readers (beyond
/// those not yet written, which it always keeps).
pub const TAIL_CACHE_BYTES: usize = 64 << 20;

/// What an entry weighs in the tail: its body, or a small constant for the others.
fn weight(entry: &Entry) -> usize {
    match &entry.payload {
        EntryPayload::Normal(op) => op.body().len(),
        EntryPayload::Blank | EntryPayload::Membership(_) => 64,
    }
}

/// An error openraft can carry.
fn io_err(e: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::other(e)
}

/// The state readers and the writer share.
struct View {
    /// The last vote saved (durable).
    vote: Option<Vote>,
    /// The last entry let go of.
    purged: Option<LogId>,
    /// The last entry in the log.
    last: Option<LogId>,
    /// The index the log's first record holds (entries before the purge point in it are
    /// not served all the same).
    start: u64,
    /// Consecutive entries ending at `last`: every one the log has not written yet, and
    /// the most recent ones up to [`TAIL_CACHE_BYTES`].
    tail: VecDeque<Entry>,
    tail_bytes: usize,
}

impl View {
    /// Index of the first entry that may be served.
    fn first_index(&self) -> u64 {
        self.start.max(self.purged.map_or(0, |p| p.index + 1))
    }

    /// Index after the last entry.
    fn end_index(&self) -> u64 {
        self.last.map_or(0, |l| l.index + 1)
    }

    fn push(&mut self, entry: Entry) {
        self.tail_bytes += weight(&entry);
        self.last = Some(entry.log_id);
        self.tail.push_back(entry);
    }

    /// Lets go of cached entries the log has written, oldest first, down to the budget.
    fn trim(&mut self, written: Lsn) {
        while self.tail_bytes > TAIL_CACHE_BYTES
            && let Some(front) = self.tail.front()
            && lsn_of(front.log_id.index) <= written
        {
            self.tail_bytes -= weight(front);
            self.tail.pop_front();
        }
    }

    /// Drops cached entries after `keep` (all of them for `None`).
    fn cut_after(&mut self, keep: Option<u64>) {
        while let Some(back) = self.tail.back()
            && keep.is_none_or(|k| back.log_id.index > k)
        {
            self.tail_bytes -= weight(back);
            self.tail.pop_back();
        }
    }

    /// Drops cached entries up to `index`.
    fn cut_through(&mut self, index: u64) {
        while let Some(front) = self.tail.front()
            && front.log_id.index <= index
        {
            self.tail_bytes -= weight(front);
            self.tail.pop_front();
        }
    }
}

struct Shared<S: Storage> {
    wal: Rc<Wal<S>>,
    view: RefCell<View>,
}

impl<S: Storage> Shared<S> {
    /// Entries with indexes in `range`, clamped to those the log holds.
    fn entries(&self, range: impl RangeBounds<u64>) -> io::Result<Vec<Entry>> {
        let view = self.view.borrow();
        let start = match range.start_bound() {
            Bound::Included(&i) => i,
            Bound::Excluded(&i) => i.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&i) => i.saturating_add(1),
            Bound::Excluded(&i) => i,
            Bound::Unbounded => u64::MAX,
        };
        let start = start.max(view.first_index());
        let end = end.min(view.end_index());
        if start >= end {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity((end - start).min(4096) as usize);
        // Everything before the tail is written (the tail keeps what is not), so the
        // log's replay reads it.
        let tail_first = view.tail.front().map_or(end, |e| e.log_id.index);
        if start < tail_first {
            let upto = end.min(tail_first);
            let mut replay = self.wal.replay(lsn_of(start)).map_err(io_err)?;
            while out.len() < (upto - start) as usize {
                let record = replay.next_record().map_err(io_err)?.ok_or_else(|| {
                    io::Error::other(format!(
                        "the log ends before index {} it should hold",
                        start + out.len() as u64
                    ))
                })?;
                out.push(entry_of(record)?);
            }
        }
        for entry in &view.tail {
            let index = entry.log_id.index;
            if index >= end {
                break;
            }
            if index >= start {
                out.push(entry.clone());
            }
        }
        Ok(out)
    }
}

/// The entry a log record holds.
fn entry_of(record: RecordView<'_>) -> io::Result<Entry> {
    let id = log_id(record.term(), index_of(record.lsn()));
    let body = record.to_encoded().ok_or_else(|| {
        io::Error::other(format!(
            "LSN {} is a checkpoint marker, which a Raft log never holds",
            record.lsn()
        ))
    })?;
    entry_from_body(id, body).map_err(io::Error::other)
}

/// A shard replica's Raft log and vote. Used from the core thread that owns the shard.
pub struct LogStore<S: Storage = MonoioStorage> {
    shared: Rc<Shared<S>>,
    state: RaftState<S>,
}

impl<S: Storage> Debug for LogStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let view = self.shared.view.borrow();
        f.debug_struct("LogStore")
            .field("dir", &self.shared.wal.dir())
            .field("purged", &view.purged)
            .field("last", &view.last)
            .field("tail", &view.tail.len())
            .finish_non_exhaustive()
    }
}

impl LogStore<MonoioStorage> {
    /// Opens (creating if needed) the Raft log in `dir` on the current monoio runtime.
    pub async fn open(dir: impl AsRef<Path>, options: Options) -> io::Result<Self> {
        Self::open_with(MonoioStorage, dir, options).await
    }
}

impl<S: Storage + Clone> LogStore<S> {
    /// [`open`](LogStore::open) with another storage, such as a
    /// [`FaultStorage`](vectron_wal::FaultStorage). The log is a [`Format::V2`] one;
    /// `options` must sync every write ([`SyncPolicy::Always`]).
    pub async fn open_with(
        storage: S,
        dir: impl AsRef<Path>,
        options: Options,
    ) -> io::Result<Self> {
        let options = options.format(Format::V2);
        if options.sync_policy() != SyncPolicy::Always {
            return Err(io_err(WalError::InvalidOptions(
                "a Raft log syncs every write: a replica must not count an unsynced entry",
            )));
        }
        let dir = dir.as_ref();
        let wal = Wal::open_with(storage.clone(), dir, options)
            .await
            .map_err(io_err)?;
        if wal.format() != Format::V2 {
            return Err(io::Error::other(format!(
                "{} holds a v1 log, which has no terms",
                dir.display()
            )));
        }
        let state = RaftState::open_with(storage, dir).await.map_err(io_err)?;
        let hard = state.state();
        let purged = hard.purged.map(|p| log_id(p.term, p.index));
        let purged_lsn = purged.map_or(Lsn::ZERO, |p| lsn_of(p.index));
        if wal.last_lsn() < purged_lsn {
            // The log was being reset past its end when the replica stopped.
            wal.reset_after(purged_lsn).await.map_err(io_err)?;
        }
        let first = wal.stats().first_lsn;
        if wal.last_lsn() > purged_lsn && first.get() > purged_lsn.get() + 1 {
            return Err(io::Error::other(format!(
                "{}: the log starts at LSN {first}, after its purge point {purged_lsn}: entries are missing",
                dir.display()
            )));
        }
        let last = if wal.last_lsn() > purged_lsn {
            let mut replay = wal.replay(wal.last_lsn()).map_err(io_err)?;
            let record = replay
                .next_record()
                .map_err(io_err)?
                .ok_or_else(|| io::Error::other("the log's last record is missing"))?;
            Some(log_id(record.term(), index_of(record.lsn())))
        } else {
            purged
        };
        let vote = hard.vote.map(|v| {
            let mut vote = Vote::new(v.term, v.node_id);
            vote.committed = v.committed;
            vote
        });
        let first = wal.stats().first_lsn;
        let view = View {
            vote,
            purged,
            last,
            start: if first == Lsn::ZERO {
                0
            } else {
                index_of(first)
            },
            tail: VecDeque::new(),
            tail_bytes: 0,
        };
        Ok(Self {
            shared: Rc::new(Shared {
                wal: Rc::new(wal),
                view: RefCell::new(view),
            }),
            state,
        })
    }
}

impl<S: Storage> LogStore<S> {
    /// The log underneath (for statistics).
    pub fn wal(&self) -> &Wal<S> {
        &self.shared.wal
    }

    /// The log underneath, shared (for statistics and closing after the store went to
    /// openraft).
    pub fn shared_wal(&self) -> Rc<Wal<S>> {
        Rc::clone(&self.shared.wal)
    }

    /// Writes and syncs everything appended, and releases the directory.
    pub async fn close(&self) -> io::Result<()> {
        self.shared.wal.close().await.map_err(io_err)
    }

    /// Makes the log ready to take the entry at `index` next.
    async fn make_room(&self, index: u64) -> io::Result<()> {
        let wal = &self.shared.wal;
        if lsn_of(index) == Lsn::new(wal.last_lsn().get() + 1) {
            return Ok(());
        }
        let (end, holds_entries) = {
            let view = self.shared.view.borrow();
            (view.end_index(), view.last != view.purged)
        };
        if holds_entries {
            return Err(io::Error::other(format!(
                "an entry at index {index} does not follow the log's end (next index {end})"
            )));
        }
        // An empty log may begin anywhere: after a snapshot, or where its purge point
        // says. The LSN before entry `index`'s is `index`.
        wal.reset_after(Lsn::new(index)).await.map_err(io_err)?;
        self.shared.view.borrow_mut().start = index;
        Ok(())
    }
}

impl<S: Storage> RaftLogReader<ShardRaft> for LogReader<S> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> io::Result<Vec<Entry>> {
        self.shared.entries(range)
    }

    async fn read_vote(&mut self) -> io::Result<Option<Vote>> {
        Ok(self.shared.view.borrow().vote)
    }
}

/// A reader of a [`LogStore`], for openraft's replication streams.
pub struct LogReader<S: Storage = MonoioStorage> {
    shared: Rc<Shared<S>>,
}

impl<S: Storage> Debug for LogReader<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogReader")
            .field("dir", &self.shared.wal.dir())
            .finish_non_exhaustive()
    }
}

impl<S: Storage> RaftLogStorage<ShardRaft> for LogStore<S> {
    type LogReader = LogReader<S>;

    async fn get_log_state(&mut self) -> io::Result<LogState<ShardRaft>> {
        let view = self.shared.view.borrow();
        Ok(LogState {
            last_purged_log_id: view.purged,
            last_log_id: view.last.or(view.purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    async fn save_vote(&mut self, vote: &Vote) -> io::Result<()> {
        let stored = StoredVote {
            term: vote.leader_id.term,
            node_id: vote.leader_id.voted_for,
            committed: vote.committed,
        };
        self.state.save_vote(stored).await.map_err(io_err)?;
        self.shared.view.borrow_mut().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> io::Result<()> {
        let committed = committed.map(|c| LogPosition {
            term: c.leader_id.term,
            index: c.index,
        });
        self.state.save_committed(committed).await.map_err(io_err)
    }

    async fn read_committed(&mut self) -> io::Result<Option<LogId>> {
        Ok(self
            .state
            .state()
            .committed
            .map(|c| log_id(c.term, c.index)))
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<ShardRaft>) -> io::Result<()>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut last_queued = None;
        for entry in entries {
            let index = entry.log_id.index;
            self.make_room(index).await?;
            let body = body_of(&entry)?;
            let queued = self
                .shared
                .wal
                .queue_raw(lsn_of(index), entry.log_id.leader_id.term, &body)
                .map_err(io_err)?;
            self.shared.view.borrow_mut().push(entry);
            last_queued = Some(queued);
        }
        {
            let written = self.shared.wal.written_lsn();
            self.shared.view.borrow_mut().trim(written);
        }
        match last_queued {
            Some(queued) => {
                monoio::spawn(async move {
                    let flushed = queued.acked().await.map(drop).map_err(io_err);
                    callback.io_completed(flushed);
                });
            }
            None => callback.io_completed(Ok(())),
        }
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> io::Result<()> {
        let keep = {
            let mut view = self.shared.view.borrow_mut();
            // Entries up to the purge point are gone already.
            let keep = match (last_log_id, view.purged) {
                (Some(k), Some(p)) if k.index < p.index => Some(p),
                (None, purged) => purged,
                (keep, _) => keep,
            };
            if keep.is_none_or(|k| view.last.is_some_and(|l| l.index > k.index)) {
                view.cut_after(keep.map(|k| k.index));
                view.last = keep;
            }
            keep
        };
        // A cut of every entry keeps the log's first segment, which names where it began.
        let start = self.shared.view.borrow().start;
        let keep_lsn = keep
            .map_or(Lsn::ZERO, |k| lsn_of(k.index))
            .max(Lsn::new(start));
        if keep_lsn < self.shared.wal.last_lsn() {
            self.shared
                .wal
                .truncate_after(keep_lsn)
                .await
                .map_err(io_err)?;
        }
        Ok(())
    }

    async fn purge(&mut self, upto: LogId) -> io::Result<()> {
        self.state
            .save_purged(LogPosition {
                term: upto.leader_id.term,
                index: upto.index,
            })
            .await
            .map_err(io_err)?;
        {
            let mut view = self.shared.view.borrow_mut();
            view.purged = Some(upto);
            view.start = view.start.max(upto.index + 1);
            view.cut_through(upto.index);
            if view.last.is_none_or(|l| l.index < upto.index) {
                view.last = Some(upto);
            }
        }
        let lsn = lsn_of(upto.index);
        let wal = &self.shared.wal;
        if wal.last_lsn() < lsn {
            wal.reset_after(lsn).await.map_err(io_err)?;
        } else {
            wal.truncate_prefix(lsn).await.map_err(io_err)?;
        }
        Ok(())
    }
}
