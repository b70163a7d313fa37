//! `RAFT_STATE`: what a replica's Raft must remember beside its log — the vote, the last
//! index it knows committed, and the last entry a checkpoint let go of.
//!
//! The vote and the purge point must be durable before they are acted on; the commit
//! point is a hint (Raft learns it again from its leader), written often and never
//! synced. One small file holds both kinds in two slots, so that an unsynced write can
//! never damage the last synced state:
//!
//! ```text
//!   offset 0     slot A (80 B)        a synced write goes to the slot that does not hold
//!   offset 512   slot B (80 B)        the last synced state, then makes it the synced one;
//!                                     an unsynced write goes to the other slot, always
//! ```
//!
//! Reading takes the valid slot (magic, version, CRC) with the highest sequence number.
//! After a power loss the synced slot is intact, whatever became of the other one; a
//! process crash keeps both. Opening syncs the file, so whichever slot it read from is
//! durable from then on. The byte layout is in `FORMAT.md`.

use std::io;
use std::path::{Path, PathBuf};

use crate::commit::write_all;
use crate::error::{IoOp, WalError};
use crate::segment::io_err;
use crate::storage::{Durability, MonoioStorage, SegmentFile, Storage};

/// The file's name in the log directory.
pub const RAFT_STATE_FILE: &str = "RAFT_STATE";

const MAGIC: [u8; 8] = *b"VCTRNRST";
const VERSION: u32 = 1;
const SLOT_LEN: usize = 80;
/// Slot B starts here, in another disk sector than slot A.
const SLOT_B: u64 = 512;
const FILE_LEN: usize = 1024;

const HAS_VOTE: u32 = 1;
const VOTE_COMMITTED: u32 = 1 << 1;
const HAS_COMMITTED: u32 = 1 << 2;
const HAS_PURGED: u32 = 1 << 3;

/// A Raft vote: the term, the node voted for, and whether a quorum granted it (the node
/// is then the term's leader).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredVote {
    /// The term.
    pub term: u64,
    /// The node voted for.
    pub node_id: u64,
    /// A quorum granted it.
    pub committed: bool,
}

/// A position in the Raft log: an entry's index and the term it was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPosition {
    /// The term of the entry.
    pub term: u64,
    /// The index of the entry (its LSN in the log).
    pub index: u64,
}

/// What `RAFT_STATE` holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HardState {
    /// The last vote saved; `None` before the first.
    pub vote: Option<StoredVote>,
    /// The highest index known committed (a hint: it may lag after a crash).
    pub committed: Option<LogPosition>,
    /// The last entry removed from the log's front.
    pub purged: Option<LogPosition>,
}

/// The `RAFT_STATE` file of one log directory, used from its core thread.
pub struct RaftState<S: Storage = MonoioStorage> {
    storage: S,
    dir: PathBuf,
    path: PathBuf,
    file: Option<S::File>,
    state: HardState,
    seq: u64,
    /// The slot (0 or 1) holding the last synced state.
    synced: usize,
}

impl<S: Storage> std::fmt::Debug for RaftState<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftState")
            .field("path", &self.path)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl RaftState<MonoioStorage> {
    /// Opens the `RAFT_STATE` of the log in `dir` (an empty state when there is none).
    pub async fn open(dir: impl AsRef<Path>) -> Result<Self, WalError> {
        Self::open_with(MonoioStorage, dir).await
    }
}

impl<S: Storage> RaftState<S> {
    /// [`open`](RaftState::open) with another storage, such as a
    /// [`FaultStorage`](crate::FaultStorage).
    ///
    /// A file whose first write never completed (shorter than its full size, or all its
    /// slots unreadable in a file that short) holds nothing that was acknowledged: the
    /// state is empty. A full-size file with no readable slot is corruption.
    pub async fn open_with(storage: S, dir: impl AsRef<Path>) -> Result<Self, WalError> {
        let dir = dir.as_ref().to_path_buf();
        let path = dir.join(RAFT_STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(IoOp::Read, &path)(e)),
        };
        let slots = [decode(&bytes, 0), decode(&bytes, SLOT_B as usize)];
        let best = match (&slots[0], &slots[1]) {
            (Some((a, _)), Some((b, _))) => Some(usize::from(b > a)),
            (Some(_), None) => Some(0),
            (None, Some(_)) => Some(1),
            (None, None) => None,
        };
        let mut this = Self {
            storage,
            dir,
            path,
            file: None,
            state: HardState::default(),
            seq: 0,
            synced: 1,
        };
        match best {
            Some(slot) => {
                let (seq, state) = slots[slot].expect("the best slot is valid");
                this.seq = seq;
                this.state = state;
                this.synced = slot;
                let file = this
                    .storage
                    .open(&this.path, Durability::Buffered)
                    .await
                    .map_err(io_err(IoOp::Open, &this.path))?;
                // What was read is durable from now on, even if it was an unsynced write
                // that a process crash left in the page cache.
                file.sync_data()
                    .await
                    .map_err(io_err(IoOp::Sync, &this.path))?;
                this.file = Some(file);
            }
            None if bytes.len() >= FILE_LEN => {
                return Err(WalError::Corrupt {
                    segment: this.path,
                    offset: 0,
                    problem: crate::error::Corruption::BadHeader,
                });
            }
            None => {}
        }
        Ok(this)
    }

    /// The state as last saved.
    pub fn state(&self) -> HardState {
        self.state
    }

    /// Saves the vote; durable when this returns.
    pub async fn save_vote(&mut self, vote: StoredVote) -> Result<(), WalError> {
        let next = HardState {
            vote: Some(vote),
            ..self.state
        };
        self.write(next, true).await
    }

    /// Saves the last entry removed from the log's front; durable when this returns.
    pub async fn save_purged(&mut self, purged: LogPosition) -> Result<(), WalError> {
        let next = HardState {
            purged: Some(purged),
            ..self.state
        };
        self.write(next, true).await
    }

    /// Saves the commit point, without a sync: a crash may bring back an older one.
    pub async fn save_committed(&mut self, committed: Option<LogPosition>) -> Result<(), WalError> {
        let next = HardState {
            committed,
            ..self.state
        };
        self.write(next, false).await
    }

    async fn write(&mut self, next: HardState, sync: bool) -> Result<(), WalError> {
        let seq = self.seq + 1;
        let slot = 1 - self.synced;
        let created = self.file.is_none();
        if created {
            let file = self
                .storage
                .create(&self.path, Durability::Buffered)
                .await
                .map_err(io_err(IoOp::Create, &self.path))?;
            self.file = Some(file);
        }
        let file = self.file.as_ref().expect("the file is open");
        let (buf, pos) = if created {
            // The first write lays out the whole file: slot A, zeros elsewhere.
            let mut buf = vec![0u8; FILE_LEN];
            buf[..SLOT_LEN].copy_from_slice(&encode(seq, &next));
            (buf, 0)
        } else {
            let pos = if slot == 0 { 0 } else { SLOT_B };
            (encode(seq, &next).to_vec(), pos)
        };
        let (res, _) = write_all(file, buf, pos).await;
        res.map_err(io_err(IoOp::Write, &self.path))?;
        if sync || created {
            file.sync_data()
                .await
                .map_err(io_err(IoOp::Sync, &self.path))?;
        }
        if created {
            self.storage
                .sync_dir(&self.dir)
                .await
                .map_err(io_err(IoOp::SyncDir, &self.dir))?;
            self.synced = 0;
        } else if sync {
            self.synced = slot;
        }
        self.seq = seq;
        self.state = next;
        Ok(())
    }
}

fn encode(seq: u64, state: &HardState) -> [u8; SLOT_LEN] {
    let mut b = [0u8; SLOT_LEN];
    let mut flags = 0;
    b[0..8].copy_from_slice(&MAGIC);
    b[8..12].copy_from_slice(&VERSION.to_le_bytes());
    b[16..24].copy_from_slice(&seq.to_le_bytes());
    if let Some(vote) = state.vote {
        flags |= HAS_VOTE;
        if vote.committed {
            flags |= VOTE_COMMITTED;
        }
        b[24..32].copy_from_slice(&vote.term.to_le_bytes());
        b[32..40].copy_from_slice(&vote.node_id.to_le_bytes());
    }
    if let Some(c) = state.committed {
        flags |= HAS_COMMITTED;
        b[40..48].copy_from_slice(&c.index.to_le_bytes());
        b[48..56].copy_from_slice(&c.term.to_le_bytes());
    }
    if let Some(p) = state.purged {
        flags |= HAS_PURGED;
        b[56..64].copy_from_slice(&p.index.to_le_bytes());
        b[64..72].copy_from_slice(&p.term.to_le_bytes());
    }
    b[12..16].copy_from_slice(&flags.to_le_bytes());
    let crc = crc32c::crc32c(&b[0..72]);
    b[72..76].copy_from_slice(&crc.to_le_bytes());
    b
}

fn decode(bytes: &[u8], at: usize) -> Option<(u64, HardState)> {
    let b = bytes.get(at..at + SLOT_LEN)?;
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    if b[0..8] != MAGIC || u32_at(8) != VERSION || crc32c::crc32c(&b[0..72]) != u32_at(72) {
        return None;
    }
    let flags = u32_at(12);
    let position = |index: usize| LogPosition {
        index: u64_at(index),
        term: u64_at(index + 8),
    };
    Some((
        u64_at(16),
        HardState {
            vote: (flags & HAS_VOTE != 0).then(|| StoredVote {
                term: u64_at(24),
                node_id: u64_at(32),
                committed: flags & VOTE_COMMITTED != 0,
            }),
            committed: (flags & HAS_COMMITTED != 0).then(|| position(40)),
            purged: (flags & HAS_PURGED != 0).then(|| position(56)),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_pinned_byte_for_byte() {
        let state = HardState {
            vote: Some(StoredVote {
                term: 3,
                node_id: 9,
                committed: true,
            }),
            committed: Some(LogPosition { term: 3, index: 17 }),
            purged: None,
        };
        let b = encode(5, &state);
        let hex: String = b[..72].iter().map(|x| format!("{x:02x}")).collect();
        let expected = [
            "564354524e525354", // magic
            "01000000",         // version
            "07000000",         // flags: vote, vote committed, commit point
            "0500000000000000", // sequence
            "0300000000000000", // vote: term
            "0900000000000000", // vote: node
            "1100000000000000", // commit point: index
            "0300000000000000", // commit point: term
            "0000000000000000", // purge point: index (none)
            "0000000000000000", // purge point: term
        ]
        .concat();
        assert_eq!(hex, expected);
        assert_eq!(&b[76..], &[0; 4]);
        assert_eq!(decode(&b, 0), Some((5, state)));
        for i in 0..76 {
            let mut bad = b;
            bad[i] ^= 0x10;
            assert_eq!(decode(&bad, 0), None, "byte {i} flipped");
        }
    }
}
