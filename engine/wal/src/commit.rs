//! The group-commit queue and its flusher: the state behind a [`Wal`](crate::Wal), and
//! the one task per log that does every write, sync and cut.
//!
//! ```text
//!  append ─┐  encode into the pending chunk (LSN assigned, order = call order)
//!  append ─┼─▶ pending chunks ──▶ flusher task: write group ─▶ fdatasync ─▶ wake waiters
//!  append ─┘        ▲                    │ (while it syncs, new appends queue up and
//!                   └────────────────────┘  ride on the next fdatasync together)
//! ```

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use rkyv::ser::allocator::Arena;

use crate::error::{AppendError, IoOp, PoisonCause, RecordError, WalError};
use crate::frame::{self, Framing};
use crate::options::{Options, SyncPolicy};
use crate::record::{self, Lsn, Record};
use crate::segment::{self, SegmentInfo, io_err};
use crate::storage::{Durability, SegmentFile, Storage};
use crate::wal::{SyncEvent, WalStats};

/// A cut of the log's suffix, planned by [`Wal::truncate_after`] and carried out by the
/// flusher.
#[derive(Debug)]
pub(crate) struct Cut {
    /// Segments that hold only records after the cut, newest first.
    pub(crate) remove: Vec<SegmentInfo>,
    /// The segment that holds the last record kept, and its new length.
    pub(crate) keep: Option<(PathBuf, u64)>,
    /// The kept segment is not the open one: the flusher opens it for writing.
    pub(crate) reopen: bool,
    /// A reset ([`Wal::reset_after`](crate::Wal::reset_after)): the flusher starts an
    /// empty segment for this LSN once the others are gone.
    pub(crate) start: Option<u64>,
}

/// What an append hands the queue.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Item<'a> {
    /// A record to encode, written in a term (0 in a v1 log).
    Record(&'a Record<'a>, u64),
    /// A body encoded elsewhere, for exactly this LSN (v2 logs); `checked` when it is an
    /// [`EncodedBody`](crate::EncodedBody), checked when it was made.
    Raw {
        lsn: u64,
        term: u64,
        body: &'a [u8],
        checked: bool,
    },
}

/// Records encoded and waiting for the flusher, all bound for one segment.
#[derive(Debug)]
pub(crate) struct Chunk {
    /// The chunk opens a new segment named after `first_lsn`.
    pub(crate) new_segment: bool,
    pub(crate) first_lsn: u64,
    pub(crate) last_lsn: u64,
    pub(crate) buf: Vec<u8>,
    /// End offset, within `buf`, of the last checkpoint marker in it.
    pub(crate) checkpoint_end: Option<usize>,
}

pub(crate) struct State<F> {
    pub(crate) segments: VecDeque<SegmentInfo>,
    /// The last segment, open for writing.
    pub(crate) active: Option<Rc<F>>,
    pub(crate) next_lsn: u64,
    /// Size the last segment will have once every pending chunk is written; 0 while the
    /// log has no segment at all.
    pub(crate) planned_tail: u64,
    pub(crate) pending: VecDeque<Chunk>,
    pub(crate) spare: Vec<Vec<u8>>,
    pub(crate) arena: Arena,
    pub(crate) written_lsn: u64,
    pub(crate) durable_lsn: u64,
    /// Highest LSN an explicit `sync` or `close` waits to see durable.
    pub(crate) sync_target: u64,
    pub(crate) last_sync: Instant,
    pub(crate) poison: Option<PoisonCause>,
    pub(crate) closing: bool,
    pub(crate) flusher_exited: bool,
    pub(crate) flusher: Option<Waker>,
    pub(crate) waiters: Vec<Waker>,
    /// (first LSN of the segment, end offset) of the last checkpoint marker known.
    pub(crate) checkpoint_at: Option<(u64, u64)>,
    /// A cut for the flusher to carry out before it writes anything more.
    pub(crate) cut: Option<Cut>,
    /// Cuts planned and carried out since open.
    pub(crate) cuts_planned: u64,
    pub(crate) cuts_done: u64,
    /// Replays alive: the log is not cut under them.
    pub(crate) replays: usize,
    pub(crate) stats: WalStats,
}

impl<F> State<F> {
    pub(crate) fn acked(&self, policy: SyncPolicy) -> u64 {
        match policy {
            SyncPolicy::Always => self.durable_lsn,
            SyncPolicy::Interval(_) | SyncPolicy::Never => self.written_lsn,
        }
    }

    pub(crate) fn wake_flusher(&mut self) {
        if let Some(w) = self.flusher.take() {
            w.wake();
        }
    }

    pub(crate) fn wake_waiters(&mut self) {
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
pub(crate) type SyncObserver = Box<dyn FnMut(&SyncEvent)>;

pub(crate) struct Shared<S: Storage> {
    pub(crate) storage: S,
    pub(crate) dir: PathBuf,
    pub(crate) options: Options,
    /// `PerWrite` under `SyncPolicy::Always`: each group is one `O_DSYNC` write, so write
    /// and sync cost one trip through the ring instead of two.
    pub(crate) durability: Durability,
    pub(crate) framing: Framing,
    pub(crate) state: RefCell<State<S::File>>,
    pub(crate) observer: RefCell<Option<SyncObserver>>,
    /// `flock` on `LOCK` keeps a second writer out; released when the flusher stops, after
    /// which nothing writes.
    pub(crate) lock: RefCell<Option<std::fs::File>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Acknowledged under the sync policy.
    Acked,
    /// Durable, whatever the policy.
    Durable,
}

impl<S: Storage> Shared<S> {
    pub(crate) fn note_checkpoint(&self, segment_first: u64, end: u64) {
        self.state.borrow_mut().note_checkpoint(segment_first, end);
    }

    pub(crate) fn check_usable(&self) -> Result<(), WalError> {
        self.usable(&self.state.borrow())
    }

    /// A [`Replay`](crate::Replay) began (`true`) or ended (`false`).
    pub(crate) fn note_replay(&self, alive: bool) {
        let mut st = self.state.borrow_mut();
        if alive {
            st.replays += 1;
        } else {
            st.replays -= 1;
        }
    }

    pub(crate) fn usable(&self, st: &State<S::File>) -> Result<(), WalError> {
        if let Some(cause) = &st.poison {
            return Err(self.poisoned(cause));
        }
        if st.closing {
            return Err(WalError::Closed);
        }
        Ok(())
    }

    pub(crate) fn poisoned(&self, cause: &PoisonCause) -> WalError {
        WalError::Poisoned {
            dir: self.dir.clone(),
            cause: cause.clone(),
        }
    }

    /// Encodes a record into the pending chunks and returns its LSN.
    pub(crate) fn enqueue(&self, item: Item<'_>) -> Result<u64, AppendError> {
        let mut guard = self.state.borrow_mut();
        self.usable(&guard)?;
        let st = &mut *guard;
        let lsn = st.next_lsn;
        if let Item::Raw { lsn: offered, .. } = item
            && offered != lsn
        {
            return Err(RecordError::OutOfOrder {
                expected: lsn,
                got: offered,
            }
            .into());
        }
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
        let encoded = match item {
            Item::Record(record, term) => record::encode(
                record,
                lsn,
                term,
                &mut chunk.buf,
                &mut st.arena,
                self.framing,
            ),
            Item::Raw {
                term,
                body,
                checked,
                ..
            } => record::encode_raw(body, checked, lsn, term, &mut chunk.buf, self.framing),
        };
        let n = match encoded {
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
        let is_checkpoint = matches!(item, Item::Record(Record::Checkpoint { .. }, _));
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
    pub(crate) fn plan_cut(&self, st: &mut State<S::File>, keep: u64) -> Result<u64, WalError> {
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
                let end = segment::end_of(bytes, seg.first_lsn, keep, self.framing, &seg.path)?;
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
            start: None,
        });
        st.cuts_planned += 1;
        st.wake_flusher();
        Ok(st.cuts_planned)
    }

    /// Plans a reset after `after` (nothing pending, everything written): every segment
    /// goes, oldest first, and an empty one for `after + 1` takes their place. Like a cut,
    /// the state moves at once and the flusher carries out the file operations before it
    /// writes anything appended after. Returns the job's number.
    pub(crate) fn plan_reset(&self, st: &mut State<S::File>, after: u64) -> u64 {
        let remove = st.segments.drain(..).collect();
        st.active = None;
        st.checkpoint_at = None;
        // The empty segment exists by the time anything appended now is written.
        st.planned_tail = frame::SEGMENT_HEADER_LEN as u64;
        st.next_lsn = after + 1;
        st.written_lsn = after;
        st.durable_lsn = after;
        st.sync_target = st.sync_target.min(after);
        st.cut = Some(Cut {
            remove,
            keep: None,
            reopen: false,
            start: Some(after + 1),
        });
        st.cuts_planned += 1;
        st.wake_flusher();
        st.cuts_planned
    }

    /// Waits until cut number `planned` (and every one before it) is carried out.
    pub(crate) async fn wait_cut(&self, planned: u64) -> Result<(), WalError> {
        self.wait_for(|st| st.cuts_done >= planned).await
    }

    /// Carries out a planned cut (see [`Cut`]).
    pub(crate) async fn carry_out(&self, cut: Cut) -> Result<(), WalError> {
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
        if let Some(first) = cut.start {
            self.start_segment(first).await?;
        }
        let mut st = self.state.borrow_mut();
        st.cuts_done += 1;
        st.wake_waiters();
        Ok(())
    }

    /// Waits until `lsn` is acknowledged (or durable), or the log is poisoned.
    pub(crate) async fn wait(&self, lsn: u64, wait: Wait) -> Result<(), WalError> {
        let policy = self.options.sync_policy();
        self.wait_for(|st| {
            let done = match wait {
                Wait::Acked => st.acked(policy),
                Wait::Durable => st.durable_lsn,
            };
            done >= lsn
        })
        .await
    }

    /// Waits until `reached` holds, or the log is poisoned or its flusher stopped.
    async fn wait_for(&self, reached: impl Fn(&State<S::File>) -> bool) -> Result<(), WalError> {
        poll_fn(|cx| {
            let mut st = self.state.borrow_mut();
            if reached(&st) {
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
    pub(crate) async fn next_work(&self) {
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
    pub(crate) async fn flush_loop(&self) -> Result<(), WalError> {
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

    pub(crate) async fn write_chunk(&self, chunk: Chunk) -> Result<(), WalError> {
        if chunk.new_segment {
            self.start_segment(chunk.first_lsn).await?;
        }
        if chunk.buf.is_empty() {
            self.state.borrow_mut().spare.push(chunk.buf);
            return Ok(());
        }
        let (file, pos, path, cuts) = {
            let st = self.state.borrow();
            let seg = st
                .segments
                .back()
                .expect("a chunk is written to an existing segment");
            (
                st.active.clone().expect("the last segment is open"),
                seg.len,
                seg.path.clone(),
                st.cuts_planned,
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
            self.synced(chunk.last_lsn, cuts, took);
        }
        Ok(())
    }

    /// Seals the current segment (durable before its successor exists) and starts the next.
    pub(crate) async fn start_segment(&self, first_lsn: u64) -> Result<(), WalError> {
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
        let (res, _) = write_all(
            &file,
            frame::segment_header(first_lsn, self.framing.format).to_vec(),
            0,
        )
        .await;
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
    pub(crate) async fn sync_active(&self) -> Result<(), WalError> {
        let (file, path, target, cuts) = {
            let st = self.state.borrow();
            let seg = st.segments.back().expect("a written log has a segment");
            let file = st.active.clone().expect("the last segment is open");
            (file, seg.path.clone(), st.written_lsn, st.cuts_planned)
        };
        let started = Instant::now();
        file.sync_data().await.map_err(io_err(IoOp::Sync, &path))?;
        self.synced(target, cuts, started.elapsed());
        Ok(())
    }

    /// Records that every LSN up to `target` is durable, after a sync that took `took`
    /// and began when `cuts` cuts had been planned. A cut or reset planned while the
    /// sync ran has set the durable point of the log as it is now, and `target` names
    /// the log as it was (a reset may even have moved the LSNs forward past it): such a
    /// sync moves nothing. Otherwise the durable point only ever rises.
    pub(crate) fn synced(&self, target: u64, cuts: u64, took: Duration) {
        let (durable, records) = {
            let mut st = self.state.borrow_mut();
            let before = st.durable_lsn;
            if st.cuts_planned == cuts && target > before {
                st.durable_lsn = target;
            }
            st.last_sync = Instant::now();
            st.stats.syncs += 1;
            (st.durable_lsn, st.durable_lsn - before)
        };
        let event = SyncEvent {
            durable_lsn: Lsn::new(durable),
            records,
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

pub(crate) async fn flusher<S: Storage>(shared: Rc<Shared<S>>) {
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
