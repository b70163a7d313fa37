//! Vectron's write-ahead log: one per shard, on the shard's monoio core thread.
//!
//! Records (upsert batches, delete batches, checkpoint markers) are encoded with rkyv,
//! framed with a length, a CRC32C and their LSN, and appended to segment files through
//! monoio (io_uring on the io_uring driver, plain syscalls on the legacy one). Appends from
//! many tasks on the core share `fdatasync`s: **group commit**. Under the default
//! [`SyncPolicy::Always`] an append resolves only once an `fdatasync` covers it, so an
//! acknowledged write survives `kill -9` and power loss.
//!
//! The life of a log:
//!
//! 1. [`Wal::open`] locks the directory and recovers: a torn tail of the last segment is
//!    cut off; anything else that is damaged is a [`WalError::Corrupt`] naming the segment
//!    and offset, never skipped.
//! 2. [`Wal::replay`] reads records from an LSN on, through read-only memory maps, as
//!    zero-copy [`RecordView`]s (`&str` ids, `&[f32]` vectors, `&[u8]` payloads).
//! 3. [`Wal::append`] appends; [`Wal::truncate_prefix`] drops segments a checkpoint covers;
//!    [`Wal::truncate_after`] cuts the suffix after an LSN (a Raft follower's log);
//!    [`Wal::reset_after`] drops every record and goes on after an LSN (a snapshot that
//!    covers the whole log).
//!
//! A [`Format::V2`] log is the Raft log of a replicated shard: every record also carries
//! the term it was written in ([`Wal::append_entry`], [`RecordView::term`]), a follower
//! stores its leader's bodies as they arrive ([`Wal::append_raw`],
//! [`RecordView::body_bytes`]), and [`RaftState`] keeps the vote, commit and purge points
//! beside it.
//! 4. A failed write or `fdatasync` poisons the log: every later call fails with
//!    [`WalError::Poisoned`] until it is reopened. [`AppendError`] tells a refused record
//!    (the request failed) from a failed log (the shard must stop).
//!
//! The log knows nothing of gRPC or protobuf; it needs a monoio runtime (with
//! `enable_timer()` for [`SyncPolicy::Interval`]) and no `Send`, locks or atomics. The
//! byte format is in `FORMAT.md`.
//!
//! ```
//! use vectron_wal::{BodyView, Lsn, Options, Record, Upsert, Wal};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut runtime = monoio::RuntimeBuilder::<monoio::FusionDriver>::new().enable_timer().build()?;
//! runtime.block_on(async {
//!     let wal = Wal::open(dir.path(), Options::default()).await?;
//!     let ids = ["doc-1".to_string()];
//!     let payloads = [br#"{"title":"Rust"}"#.to_vec()];
//!     let upsert = Upsert { ids: &ids, dim: 3, vectors: &[0.1, 0.2, 0.3], payloads: &payloads };
//!     let lsn = wal.append(Record::Upsert(upsert)).await?; // durable once this resolves
//!     assert_eq!(lsn, Lsn::new(1));
//!     wal.close().await?;
//!
//!     let wal = Wal::open(dir.path(), Options::default()).await?;
//!     let mut replay = wal.replay(Lsn::new(1))?;
//!     while let Some(record) = replay.next_record()? {
//!         if let BodyView::Upsert(batch) = record.body() {
//!             let (id, vector, payload) = batch.point(0).expect("one point");
//!             assert_eq!((id, vector, payload), ("doc-1", &[0.1, 0.2, 0.3][..], &payloads[0][..]));
//!         }
//!     }
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })
//! # }
//! ```
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]

mod commit;
mod error;
mod fault;
mod frame;
mod options;
mod raft_state;
mod record;
mod recover;
mod replay;
mod segment;
mod storage;
mod wal;

pub use crate::error::{AppendError, Corruption, IoOp, PoisonCause, RecordError, WalError};
pub use crate::fault::{CrashMode, Fault, FaultFile, FaultStorage};
pub use crate::options::{Format, Options, SyncPolicy};
pub use crate::raft_state::{HardState, LogPosition, RAFT_STATE_FILE, RaftState, StoredVote};
pub use crate::record::{
    BodyView, Delete, DeleteView, EncodedBody, Lsn, Record, RecordView, Upsert, UpsertView,
};
pub use crate::replay::Replay;
pub use crate::storage::{Durability, MonoioFile, MonoioStorage, SegmentFile, Storage};
pub use crate::wal::{Queued, SyncEvent, Wal, WalStats};
