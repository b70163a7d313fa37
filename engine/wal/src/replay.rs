//! Replay: reading the log back, segment by segment, through read-only memory maps. Each
//! record is checked (length, checksum, LSN order, segment continuity, rkyv validation)
//! and handed out as a view into the mapping: no copy of ids, vectors or payloads.

use std::path::Path;

use memmap2::Mmap;

use crate::commit::Shared;
use crate::error::{Corruption, WalError};
use crate::frame::{self, Framing};
use crate::record::{self, BodyView, RecordView};
use crate::segment::{self, SegmentInfo, corrupt};
use crate::storage::{MonoioStorage, Storage};

/// A reader over the log from an LSN on, made by [`Wal::replay`](crate::Wal::replay).
///
/// It lends one record at a time ([`next_record`](Self::next_record)); a shard replaying a
/// large log can yield to its runtime between records.
pub struct Replay<'w, S: Storage = MonoioStorage> {
    wal: &'w Shared<S>,
    segments: Vec<SegmentInfo>,
    next_segment: usize,
    current: Option<Mapped>,
    off: usize,
    /// The LSN the next record must carry; 0 until the first segment is mapped.
    expected: u64,
    from: u64,
    /// The last LSN written when the replay began.
    until: u64,
    framing: Framing,
}

struct Mapped {
    map: Option<Mmap>,
    info: SegmentInfo,
}

impl Mapped {
    fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }
}

impl<S: Storage> std::fmt::Debug for Replay<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("next_lsn", &self.expected)
            .field("from", &self.from)
            .field("until", &self.until)
            .finish_non_exhaustive()
    }
}

impl<'w, S: Storage> Replay<'w, S> {
    pub(crate) fn new(
        wal: &'w Shared<S>,
        segments: Vec<SegmentInfo>,
        from: u64,
        until: u64,
    ) -> Self {
        let framing = wal.framing;
        wal.note_replay(true);
        Self {
            wal,
            segments,
            next_segment: 0,
            current: None,
            off: 0,
            expected: 0,
            from,
            until,
            framing,
        }
    }

    /// The next record, or `None` after the last one written when the replay began.
    /// Corruption is an error naming the segment and offset; nothing is skipped.
    pub fn next_record(&mut self) -> Result<Option<RecordView<'_>>, WalError> {
        self.wal.check_usable()?;
        let (raw, at) = loop {
            if self.expected > self.until {
                return Ok(None);
            }
            let at = self.off;
            let Some(cur) = self.current.as_ref().filter(|c| at < c.bytes().len()) else {
                if !self.open_next()? {
                    return Ok(None);
                }
                continue;
            };
            let Some(raw) = self.framing.parse(cur.bytes(), at) else {
                return Err(corrupt(&cur.info.path, at as u64, Corruption::BadRecord));
            };
            if raw.lsn != self.expected {
                let problem = Corruption::LsnGap {
                    expected: self.expected,
                    found: raw.lsn,
                };
                return Err(corrupt(&cur.info.path, at as u64, problem));
            }
            self.off = raw.next;
            self.expected += 1;
            if raw.lsn >= self.from {
                break (raw, at);
            }
        };
        let cur = self
            .current
            .as_ref()
            .expect("a record came from the mapped segment");
        let view = record::decode(raw.lsn, raw.term, &cur.bytes()[raw.body.0..raw.body.1])
            .map_err(|problem| corrupt(&cur.info.path, at as u64, problem))?;
        if let BodyView::Checkpoint { .. } = view.body() {
            self.wal
                .note_checkpoint(cur.info.first_lsn, raw.next as u64);
        }
        Ok(Some(view))
    }

    /// Maps the next segment and checks it continues the log. False when none is left.
    fn open_next(&mut self) -> Result<bool, WalError> {
        if let Some(done) = &self.current
            && self.off != done.bytes().len()
        {
            return Err(corrupt(
                &done.info.path,
                self.off as u64,
                Corruption::BadRecord,
            ));
        }
        self.current = None;
        let Some(info) = self.segments.get(self.next_segment).cloned() else {
            return Ok(false);
        };
        self.next_segment += 1;
        let map = segment::map(&info.path, info.len)?;
        let mapped = Mapped { map, info };
        segment::check_header(
            mapped.bytes(),
            mapped.info.first_lsn,
            self.framing.format,
            &mapped.info.path,
        )?;
        if self.expected != 0 && mapped.info.first_lsn != self.expected {
            let problem = Corruption::SegmentGap {
                expected: self.expected,
                found: mapped.info.first_lsn,
            };
            return Err(corrupt(&mapped.info.path, 0, problem));
        }
        self.expected = mapped.info.first_lsn;
        self.off = frame::SEGMENT_HEADER_LEN;
        self.current = Some(mapped);
        Ok(true)
    }

    /// The segment being read, if any.
    pub fn segment(&self) -> Option<&Path> {
        self.current.as_ref().map(|c| c.info.path.as_path())
    }
}

impl<S: Storage> Drop for Replay<'_, S> {
    fn drop(&mut self) {
        self.wal.note_replay(false);
    }
}
