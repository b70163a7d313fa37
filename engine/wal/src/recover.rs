//! Opening a log directory: its lock, and recovery of the segments found there (a torn
//! tail cut off, a torn creation removed, anything else damaged reported).

use std::collections::VecDeque;
use std::path::Path;

use crate::error::{IoOp, WalError};
use crate::frame::{self, Framing};
use crate::options::Options;
use crate::segment::{self, SegmentInfo, io_err};
use crate::storage::{Durability, SegmentFile, Storage};

pub(crate) async fn lock_dir<S: Storage>(
    storage: &S,
    dir: &Path,
) -> Result<std::fs::File, WalError> {
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

pub(crate) struct Recovered<F> {
    /// How the log's records are framed: the format of its segments, or the asked one for
    /// a log without any.
    pub(crate) framing: Framing,
    pub(crate) segments: VecDeque<SegmentInfo>,
    pub(crate) active: Option<F>,
    pub(crate) next_lsn: u64,
    pub(crate) checkpoint_at: Option<(u64, u64)>,
}

pub(crate) async fn recover<S: Storage>(
    storage: &S,
    dir: &Path,
    options: Options,
    durability: Durability,
) -> Result<Recovered<S::File>, WalError> {
    let mut listed = segment::list(dir)?;
    // A log is wholly one format: the first readable header says which.
    let format = listed
        .iter()
        .find_map(|(_, path)| segment::format_of(path))
        .unwrap_or(options.new_format());
    let framing = Framing::new(format, options.segment_size());
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
            && segment::is_torn_creation(bytes, first, framing)
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
        let tail = segment::scan_last(bytes, first, framing, &path)?;
        break Some((first, path, tail));
    };
    let mut segments = VecDeque::with_capacity(listed.len());
    let sealed = listed.len().saturating_sub(1);
    for (first, path) in listed.into_iter().take(sealed) {
        let len = segment::check_sealed(first, format, &path)?;
        segments.push_back(SegmentInfo {
            first_lsn: first,
            path,
            len,
        });
    }
    let Some((first, path, tail)) = tail else {
        return Ok(Recovered {
            framing,
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
        framing,
        segments,
        active: Some(file),
        next_lsn: tail.last_lsn + 1,
        checkpoint_at: tail.checkpoint_end.map(|end| (first, end)),
    })
}
