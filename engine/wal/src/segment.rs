//! Segment files on disk: their names, listing a log directory, mapping a segment, and the
//! recovery scan of the last segment.
//!
//! A segment is named after its first LSN, zero-padded to 20 digits
//! (`00000000000000000001.wal`), so a directory listing sorts in log order and replay from
//! an LSN finds its segment by name.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapOptions};

use crate::error::{Corruption, IoOp, WalError};
use crate::frame::{self, Framing, HeaderProblem};
use crate::options::Format;
use crate::record;

/// A segment of the log as the log knows it.
#[derive(Debug, Clone)]
pub(crate) struct SegmentInfo {
    pub(crate) first_lsn: u64,
    pub(crate) path: PathBuf,
    /// Bytes of whole records (and header) in the file.
    pub(crate) len: u64,
}

pub(crate) fn segment_name(first_lsn: u64) -> String {
    format!("{first_lsn:020}.wal")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".wal")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

pub(crate) fn io_err(op: IoOp, path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn corrupt(path: &Path, offset: u64, problem: Corruption) -> WalError {
    WalError::Corrupt {
        segment: path.to_path_buf(),
        offset,
        problem,
    }
}

/// Segment files in `dir`, in LSN order. Other files are not the log's and are left alone.
pub(crate) fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(IoOp::ListDir, dir))? {
        let entry = entry.map_err(io_err(IoOp::ListDir, dir))?;
        if let Some(first) = entry.file_name().to_str().and_then(parse_segment_name) {
            out.push((first, entry.path()));
        }
    }
    out.sort_unstable_by_key(|&(first, _)| first);
    Ok(out)
}

/// Reads and checks the header of a sealed segment; returns the file length.
pub(crate) fn check_sealed(first_lsn: u64, format: Format, path: &Path) -> Result<u64, WalError> {
    let mut file = File::open(path).map_err(io_err(IoOp::Open, path))?;
    let len = file.metadata().map_err(io_err(IoOp::Read, path))?.len();
    let mut header = [0u8; frame::SEGMENT_HEADER_LEN];
    if len < header.len() as u64 {
        return Err(corrupt(path, 0, Corruption::BadHeader));
    }
    file.read_exact(&mut header)
        .map_err(io_err(IoOp::Read, path))?;
    check_header(&header, first_lsn, format, path)?;
    Ok(len)
}

pub(crate) fn check_header(
    bytes: &[u8],
    name_lsn: u64,
    format: Format,
    path: &Path,
) -> Result<(), WalError> {
    match frame::parse_segment_header(bytes) {
        Ok((header, found)) if header == name_lsn && found == format => Ok(()),
        Ok((header, found)) if header == name_lsn => Err(corrupt(
            path,
            0,
            Corruption::MixedFormats {
                found: found.version(),
                log: format.version(),
            },
        )),
        Ok((header, _)) => Err(corrupt(
            path,
            0,
            Corruption::NameMismatch {
                name: name_lsn,
                header,
            },
        )),
        Err(HeaderProblem::Bad) => Err(corrupt(path, 0, Corruption::BadHeader)),
        Err(HeaderProblem::Version(found)) => Err(corrupt(
            path,
            0,
            Corruption::UnsupportedVersion {
                found,
                supported: frame::NEWEST_VERSION,
            },
        )),
    }
}

/// The format of a segment whose header reads, `None` otherwise.
pub(crate) fn format_of(path: &Path) -> Option<Format> {
    let mut header = [0u8; frame::SEGMENT_HEADER_LEN];
    File::open(path).ok()?.read_exact(&mut header).ok()?;
    frame::parse_segment_header(&header)
        .ok()
        .map(|(_, format)| format)
}

/// Maps the first `len` bytes of a segment, read-only. `None` for an empty length.
pub(crate) fn map(path: &Path, len: u64) -> Result<Option<Mmap>, WalError> {
    if len == 0 {
        return Ok(None);
    }
    let file = File::open(path).map_err(io_err(IoOp::Open, path))?;
    let on_disk = file.metadata().map_err(io_err(IoOp::Read, path))?.len();
    if on_disk < len {
        // Mapping past the end would fault on access; the file lost bytes under us.
        return Err(corrupt(
            path,
            on_disk,
            Corruption::ShortSegment {
                expected: len,
                found: on_disk,
            },
        ));
    }
    let len_usize = usize::try_from(len).map_err(|_| {
        corrupt(
            path,
            0,
            Corruption::ShortSegment {
                expected: len,
                found: on_disk,
            },
        )
    })?;
    // SAFETY: the mapping is read-only, and the log's directory lock keeps other
    // processes that honour it away. While mapped, the log only appends past `len`: a torn
    // tail is cut before anything maps the file, a cut of the suffix (`truncate_after`)
    // is refused while a replay is alive and drops its own scan's mapping before the file
    // is cut. So the mapped bytes neither change nor vanish.
    let map = unsafe { MmapOptions::new().len(len_usize).map(&file) }
        .map_err(io_err(IoOp::Read, path))?;
    // Replay reads front to back: ask for aggressive readahead. Advice is a hint only.
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(Some(map))
}

/// What the recovery scan found in the last segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tail {
    /// End of the last whole record; the file is cut here when `torn`.
    pub(crate) end: u64,
    /// LSN of the last whole record, or `first_lsn - 1` when there is none.
    pub(crate) last_lsn: u64,
    /// Bytes past `end` are a torn write.
    pub(crate) torn: bool,
    /// End offset of the last checkpoint marker in the segment.
    pub(crate) checkpoint_end: Option<u64>,
}

/// Scans the last segment: every record must be whole, checksummed, decodable and in LSN
/// order, up to a tail that is either clean or torn (a bad record with nothing valid after
/// it). A bad record with a valid one after it is corruption, never skipped.
pub(crate) fn scan_last(
    bytes: &[u8],
    first_lsn: u64,
    framing: Framing,
    path: &Path,
) -> Result<Tail, WalError> {
    check_header(bytes, first_lsn, framing.format, path)?;
    let mut off = frame::SEGMENT_HEADER_LEN;
    let mut expected = first_lsn;
    let mut checkpoint_end = None;
    while off < bytes.len() {
        let Some(raw) = framing.parse(bytes, off) else {
            if framing.valid_record_after(bytes, off, expected).is_some() {
                return Err(corrupt(path, off as u64, Corruption::BadRecord));
            }
            return Ok(Tail {
                end: off as u64,
                last_lsn: expected - 1,
                torn: true,
                checkpoint_end,
            });
        };
        if raw.lsn != expected {
            return Err(corrupt(
                path,
                off as u64,
                Corruption::LsnGap {
                    expected,
                    found: raw.lsn,
                },
            ));
        }
        let view = record::decode(raw.lsn, raw.term, &bytes[raw.body.0..raw.body.1])
            .map_err(|problem| corrupt(path, off as u64, problem))?;
        if matches!(view.body(), record::BodyView::Checkpoint { .. }) {
            checkpoint_end = Some(raw.next as u64);
        }
        off = raw.next;
        expected += 1;
    }
    Ok(Tail {
        end: off as u64,
        last_lsn: expected - 1,
        torn: false,
        checkpoint_end,
    })
}

/// The end offset of record `lsn` in a segment of the log (its header checked, every
/// record before it whole and in LSN order): where the segment is cut to keep `lsn` as
/// its last record.
pub(crate) fn end_of(
    bytes: &[u8],
    first_lsn: u64,
    lsn: u64,
    framing: Framing,
    path: &Path,
) -> Result<u64, WalError> {
    check_header(bytes, first_lsn, framing.format, path)?;
    let mut off = frame::SEGMENT_HEADER_LEN;
    let mut expected = first_lsn;
    loop {
        let Some(raw) = framing.parse(bytes, off) else {
            return Err(corrupt(path, off as u64, Corruption::BadRecord));
        };
        if raw.lsn != expected {
            let problem = Corruption::LsnGap {
                expected,
                found: raw.lsn,
            };
            return Err(corrupt(path, off as u64, problem));
        }
        if raw.lsn == lsn {
            return Ok(raw.next as u64);
        }
        off = raw.next;
        expected += 1;
    }
}

/// True when a last segment whose header is unreadable is only a torn creation: short, or
/// with no valid record where records would be. A crash between creating the file and
/// syncing its header leaves this; it holds nothing that was acknowledged.
pub(crate) fn is_torn_creation(bytes: &[u8], first_lsn: u64, framing: Framing) -> bool {
    bytes.len() <= frame::SEGMENT_HEADER_LEN
        || framing
            .valid_record_after(bytes, frame::SEGMENT_HEADER_LEN - frame::ALIGN, first_lsn)
            .is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sort() {
        assert_eq!(segment_name(1), "00000000000000000001.wal");
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_name("1.wal"), None);
        assert_eq!(parse_segment_name("0000000000000000000a.wal"), None);
        assert_eq!(parse_segment_name("00000000000000000001.wal.tmp"), None);
        assert!(segment_name(9) < segment_name(10));
    }
}
