//! Byte framing of segments and records (see `FORMAT.md`; every integer little-endian).
//!
//! ```text
//! segment: [header 32 B][record][record]…          every record starts 16-aligned
//! header:  magic 8 | version u32 | flags u32 | first_lsn u64 | crc32c(0..24) u32 | 0 u32
//! record:  len u32 | crc32c u32 | lsn u64 | body (len B) | zero pad to 16
//!          crc32c covers len ‖ lsn ‖ body
//! ```
//!
//! The scanners here are pure functions over byte slices; recovery and replay feed them
//! memory-mapped segments.

/// Bytes of a segment header.
pub(crate) const SEGMENT_HEADER_LEN: usize = 32;
/// Bytes of a record header.
pub(crate) const RECORD_HEADER_LEN: usize = 16;
/// Records start and end on this boundary, so archived bodies stay aligned in the mmap.
pub(crate) const ALIGN: usize = 16;
/// First eight bytes of every segment.
pub(crate) const MAGIC: [u8; 8] = *b"VCTRNWAL";
/// Segment format this build writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;

/// Rounds a body length up to the record's footprint: header, body, padding.
pub(crate) const fn record_footprint(body_len: usize) -> usize {
    (RECORD_HEADER_LEN + body_len).div_ceil(ALIGN) * ALIGN
}

/// The largest body a segment of `segment_bytes` holds.
pub(crate) const fn max_body(segment_bytes: u64) -> u64 {
    segment_bytes - (SEGMENT_HEADER_LEN + RECORD_HEADER_LEN) as u64
}

pub(crate) fn segment_header(first_lsn: u64) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    // 12..16: flags, none defined.
    h[16..24].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Why a segment header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderProblem {
    /// Shorter than a header, wrong magic, or wrong checksum.
    Bad,
    /// A valid header of a format this build does not read.
    Version(u32),
}

/// Parses a segment header and returns the segment's first LSN.
pub(crate) fn parse_segment_header(bytes: &[u8]) -> Result<u64, HeaderProblem> {
    let Some(h) = bytes.get(..SEGMENT_HEADER_LEN) else {
        return Err(HeaderProblem::Bad);
    };
    if h[0..8] != MAGIC || crc32c::crc32c(&h[0..24]) != le_u32(h, 24) {
        return Err(HeaderProblem::Bad);
    }
    match le_u32(h, 8) {
        FORMAT_VERSION => Ok(le_u64(h, 16)),
        other => Err(HeaderProblem::Version(other)),
    }
}

/// Checksum of a record: its length, its LSN and its body.
pub(crate) fn record_crc(len: u32, lsn: u64, body: &[u8]) -> u32 {
    let crc = crc32c::crc32c(&len.to_le_bytes());
    let crc = crc32c::crc32c_append(crc, &lsn.to_le_bytes());
    crc32c::crc32c_append(crc, body)
}

/// Writes the header of a record whose body already sits at `buf[start + 16..]`, and pads
/// the buffer to the alignment. `start` is where the record begins.
pub(crate) fn seal_record(buf: &mut Vec<u8>, start: usize, lsn: u64) {
    let body_len = buf.len() - start - RECORD_HEADER_LEN;
    let len = u32::try_from(body_len).expect("record bodies are bounded by the segment size");
    let crc = record_crc(len, lsn, &buf[start + RECORD_HEADER_LEN..]);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    buf[start + 8..start + 16].copy_from_slice(&lsn.to_le_bytes());
    buf.resize(start + record_footprint(body_len), 0);
}

/// A record that passed its length and checksum checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawRecord {
    pub(crate) lsn: u64,
    /// Body position in the scanned slice.
    pub(crate) body: (usize, usize),
    /// Where the next record starts.
    pub(crate) next: usize,
}

/// Parses the record at `off`. `None` when it is incomplete, has an impossible length or
/// fails its checksum: the caller decides whether that is a torn tail or corruption.
pub(crate) fn parse_record(bytes: &[u8], off: usize, max_body: u64) -> Option<RawRecord> {
    let h = bytes.get(off..off.checked_add(RECORD_HEADER_LEN)?)?;
    let len = le_u32(h, 0);
    if len == 0 || u64::from(len) > max_body {
        return None;
    }
    let body_start = off + RECORD_HEADER_LEN;
    let body_end = body_start + len as usize;
    let body = bytes.get(body_start..body_end)?;
    let lsn = le_u64(h, 8);
    if record_crc(len, lsn, body) != le_u32(h, 4) {
        return None;
    }
    let next = off + record_footprint(len as usize);
    if next > bytes.len() {
        // The padding is missing: the write stopped inside it.
        return None;
    }
    Some(RawRecord {
        lsn,
        body: (body_start, body_end),
        next,
    })
}

/// After a bad record at `bad_off`, looks for any valid record further on whose LSN could
/// follow (`>= expected_lsn`). Finding one means the bad record is not a torn tail.
pub(crate) fn valid_record_after(
    bytes: &[u8],
    bad_off: usize,
    expected_lsn: u64,
    max_body: u64,
) -> Option<usize> {
    let mut off = bad_off + ALIGN;
    while off + RECORD_HEADER_LEN <= bytes.len() {
        // Only an LSN that a record at this distance could carry is worth a checksum.
        let lsn = le_u64(bytes, off + 8);
        let most = expected_lsn.saturating_add(((off - bad_off) / ALIGN) as u64);
        if (expected_lsn..=most).contains(&lsn) && parse_record(bytes, off, max_body).is_some() {
            return Some(off);
        }
        off += ALIGN;
    }
    None
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(lsn: u64, body: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; RECORD_HEADER_LEN];
        buf.extend_from_slice(body);
        seal_record(&mut buf, 0, lsn);
        buf
    }

    #[test]
    fn footprint_rounds_to_sixteen() {
        assert_eq!(record_footprint(1), 32);
        assert_eq!(record_footprint(16), 32);
        assert_eq!(record_footprint(17), 48);
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        let h = segment_header(42);
        assert_eq!(parse_segment_header(&h), Ok(42));
        for i in 0..28 {
            let mut d = h;
            d[i] ^= 0x10;
            assert!(
                parse_segment_header(&d).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
        assert_eq!(parse_segment_header(&h[..31]), Err(HeaderProblem::Bad));
    }

    #[test]
    fn header_of_a_newer_version_is_named() {
        let mut h = segment_header(1);
        h[8..12].copy_from_slice(&2u32.to_le_bytes());
        let crc = crc32c::crc32c(&h[0..24]);
        h[24..28].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(parse_segment_header(&h), Err(HeaderProblem::Version(2)));
    }

    #[test]
    fn header_bytes_are_pinned() {
        let h = segment_header(0x0102_0304_0506_0708);
        assert_eq!(&h[0..8], b"VCTRNWAL");
        assert_eq!(&h[8..16], &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&h[16..24], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&h[28..32], &[0, 0, 0, 0]);
    }

    #[test]
    fn record_round_trips() {
        let r = record(7, b"hello");
        assert_eq!(r.len(), 32);
        assert_eq!(&r[0..4], &5u32.to_le_bytes());
        assert_eq!(&r[8..16], &7u64.to_le_bytes());
        let raw = parse_record(&r, 0, 1 << 20).expect("valid");
        assert_eq!(
            raw,
            RawRecord {
                lsn: 7,
                body: (16, 21),
                next: 32
            }
        );
    }

    #[test]
    fn every_flipped_byte_of_header_or_body_is_caught() {
        let r = record(9, b"some body bytes!");
        for i in 0..RECORD_HEADER_LEN + 16 {
            let mut d = r.clone();
            d[i] ^= 0x01;
            assert!(
                parse_record(&d, 0, 1 << 20).is_none(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn every_truncation_is_caught() {
        let r = record(3, &[0xAB; 40]);
        for cut in 0..r.len() {
            assert!(
                parse_record(&r[..cut], 0, 1 << 20).is_none(),
                "cut at {cut} accepted"
            );
        }
    }

    #[test]
    fn oversized_length_is_refused_without_reading() {
        let mut r = record(1, b"x");
        r[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse_record(&r, 0, 1 << 20).is_none());
    }

    #[test]
    fn valid_record_after_a_bad_one_is_found() {
        let mut log = record(1, b"first");
        let second = log.len();
        log.extend(record(2, b"second"));
        log.extend(record(3, b"third"));
        log[second + 20] ^= 0xFF;
        assert!(parse_record(&log, second, 1 << 20).is_none());
        assert_eq!(
            valid_record_after(&log, second, 2, 1 << 20),
            Some(second + 32)
        );
        // A zeroed or garbage tail has nothing valid after it.
        let mut torn = record(1, b"first");
        torn.extend([0u8; 100]);
        assert_eq!(valid_record_after(&torn, 32, 2, 1 << 20), None);
    }
}
