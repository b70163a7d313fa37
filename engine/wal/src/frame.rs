//! Byte framing of segments and records (see `FORMAT.md`; every integer little-endian).
//!
//! ```text
//! segment: [header 32 B][record][record]…          every record starts 16-aligned
//! header:  magic 8 | version u32 | flags u32 | first_lsn u64 | crc32c(0..24) u32 | 0 u32
//! v1 record: len u32 | crc32c u32 | lsn u64 | body (len B) | zero pad to 16
//!            crc32c covers len ‖ lsn ‖ body
//! v2 record: len u32 | crc32c u32 | lsn u64 | term u64 | 0 u64 | body | zero pad to 16
//!            crc32c covers len ‖ lsn ‖ term ‖ body
//! ```
//!
//! Version 2 is the Raft log of a replicated shard: each record also carries the term it
//! was written in. A log is wholly one version or the other. The scanners here are pure
//! functions over byte slices; recovery and replay feed them memory-mapped segments.

use crate::options::Format;

/// Bytes of a segment header.
pub(crate) const SEGMENT_HEADER_LEN: usize = 32;
/// Records start and end on this boundary, so archived bodies stay aligned in the mmap.
pub(crate) const ALIGN: usize = 16;
/// First eight bytes of every segment.
pub(crate) const MAGIC: [u8; 8] = *b"VCTRNWAL";
/// The newest segment format this build reads.
pub(crate) const NEWEST_VERSION: u32 = 2;

impl Format {
    /// The version number in segment headers.
    pub(crate) const fn version(self) -> u32 {
        match self {
            Format::V1 => 1,
            Format::V2 => 2,
        }
    }

    fn from_version(version: u32) -> Option<Self> {
        match version {
            1 => Some(Format::V1),
            2 => Some(Format::V2),
            _ => None,
        }
    }

    /// Bytes of a record header.
    pub(crate) const fn record_header_len(self) -> usize {
        match self {
            Format::V1 => 16,
            Format::V2 => 32,
        }
    }
}

/// How records are framed in one log: its format and the largest body a segment holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Framing {
    pub(crate) format: Format,
    pub(crate) max_body: u64,
}

impl Framing {
    /// The framing of a log of `format` with segments of `segment_bytes`.
    pub(crate) const fn new(format: Format, segment_bytes: u64) -> Self {
        Self {
            format,
            max_body: segment_bytes - (SEGMENT_HEADER_LEN + format.record_header_len()) as u64,
        }
    }

    /// Bytes of a record header.
    pub(crate) const fn header_len(self) -> usize {
        self.format.record_header_len()
    }

    /// Rounds a body length up to the record's footprint: header, body, padding.
    pub(crate) const fn footprint(self, body_len: usize) -> usize {
        (self.header_len() + body_len).div_ceil(ALIGN) * ALIGN
    }

    /// Checksum of a record: its length, its LSN, its term (v2) and its body.
    pub(crate) fn crc(self, len: u32, lsn: u64, term: u64, body: &[u8]) -> u32 {
        let crc = crc32c::crc32c(&len.to_le_bytes());
        let crc = crc32c::crc32c_append(crc, &lsn.to_le_bytes());
        let crc = match self.format {
            Format::V1 => crc,
            Format::V2 => crc32c::crc32c_append(crc, &term.to_le_bytes()),
        };
        crc32c::crc32c_append(crc, body)
    }

    /// Writes the header of a record whose body already sits after its header at
    /// `buf[start..]`, and pads the buffer to the alignment. `start` is where the record
    /// begins. A v1 record carries no term (`term` must be 0).
    pub(crate) fn seal(self, buf: &mut Vec<u8>, start: usize, lsn: u64, term: u64) {
        debug_assert!(self.format == Format::V2 || term == 0);
        let header = self.header_len();
        let body_len = buf.len() - start - header;
        let len = u32::try_from(body_len).expect("record bodies are bounded by the segment size");
        let crc = self.crc(len, lsn, term, &buf[start + header..]);
        buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
        buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
        buf[start + 8..start + 16].copy_from_slice(&lsn.to_le_bytes());
        if self.format == Format::V2 {
            buf[start + 16..start + 24].copy_from_slice(&term.to_le_bytes());
            buf[start + 24..start + 32].fill(0);
        }
        buf.resize(start + self.footprint(body_len), 0);
    }

    /// Parses the record at `off`. `None` when it is incomplete, has an impossible length
    /// or fails its checksum: the caller decides whether that is a torn tail or corruption.
    pub(crate) fn parse(self, bytes: &[u8], off: usize) -> Option<RawRecord> {
        let header = self.header_len();
        let h = bytes.get(off..off.checked_add(header)?)?;
        let len = le_u32(h, 0);
        if len == 0 || u64::from(len) > self.max_body {
            return None;
        }
        let body_start = off + header;
        let body_end = body_start + len as usize;
        let body = bytes.get(body_start..body_end)?;
        let lsn = le_u64(h, 8);
        let term = match self.format {
            Format::V1 => 0,
            Format::V2 => le_u64(h, 16),
        };
        if self.crc(len, lsn, term, body) != le_u32(h, 4) {
            return None;
        }
        let next = off + self.footprint(len as usize);
        if next > bytes.len() {
            // The padding is missing: the write stopped inside it.
            return None;
        }
        Some(RawRecord {
            lsn,
            term,
            body: (body_start, body_end),
            next,
        })
    }

    /// After a bad record at `bad_off`, looks for any valid record further on whose LSN
    /// could follow (`>= expected_lsn`). Finding one means the bad record is not a torn
    /// tail.
    pub(crate) fn valid_record_after(
        self,
        bytes: &[u8],
        bad_off: usize,
        expected_lsn: u64,
    ) -> Option<usize> {
        let mut off = bad_off + ALIGN;
        while off + self.header_len() <= bytes.len() {
            // Only an LSN that a record at this distance could carry is worth a checksum.
            let lsn = le_u64(bytes, off + 8);
            let most = expected_lsn.saturating_add(((off - bad_off) / ALIGN) as u64);
            if (expected_lsn..=most).contains(&lsn) && self.parse(bytes, off).is_some() {
                return Some(off);
            }
            off += ALIGN;
        }
        None
    }
}

pub(crate) fn segment_header(first_lsn: u64, format: Format) -> [u8; SEGMENT_HEADER_LEN] {
    let mut h = [0u8; SEGMENT_HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&format.version().to_le_bytes());
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

/// Parses a segment header and returns the segment's first LSN and format.
pub(crate) fn parse_segment_header(bytes: &[u8]) -> Result<(u64, Format), HeaderProblem> {
    let Some(h) = bytes.get(..SEGMENT_HEADER_LEN) else {
        return Err(HeaderProblem::Bad);
    };
    if h[0..8] != MAGIC || crc32c::crc32c(&h[0..24]) != le_u32(h, 24) {
        return Err(HeaderProblem::Bad);
    }
    let version = le_u32(h, 8);
    match Format::from_version(version) {
        Some(format) => Ok((le_u64(h, 16), format)),
        None => Err(HeaderProblem::Version(version)),
    }
}

/// A record that passed its length and checksum checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawRecord {
    pub(crate) lsn: u64,
    /// The term it was written in (v2); 0 in a v1 log.
    pub(crate) term: u64,
    /// Body position in the scanned slice.
    pub(crate) body: (usize, usize),
    /// Where the next record starts.
    pub(crate) next: usize,
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

    const V1: Framing = Framing::new(Format::V1, 1 << 20);
    const V2: Framing = Framing::new(Format::V2, 1 << 20);

    fn record(framing: Framing, lsn: u64, term: u64, body: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; framing.header_len()];
        buf.extend_from_slice(body);
        framing.seal(&mut buf, 0, lsn, term);
        buf
    }

    #[test]
    fn footprint_rounds_to_sixteen() {
        assert_eq!(V1.footprint(1), 32);
        assert_eq!(V1.footprint(16), 32);
        assert_eq!(V1.footprint(17), 48);
        assert_eq!(V2.footprint(1), 48);
        assert_eq!(V2.footprint(16), 48);
        assert_eq!(V2.footprint(17), 64);
        assert_eq!(Framing::new(Format::V1, 4096).max_body, 4096 - 48);
        assert_eq!(Framing::new(Format::V2, 4096).max_body, 4096 - 64);
    }

    #[test]
    fn header_round_trips_and_rejects_damage() {
        for format in [Format::V1, Format::V2] {
            let h = segment_header(42, format);
            assert_eq!(parse_segment_header(&h), Ok((42, format)));
            for i in 0..28 {
                let mut d = h;
                d[i] ^= 0x10;
                assert!(
                    parse_segment_header(&d) != Ok((42, format)),
                    "flip at byte {i} went unnoticed"
                );
            }
            assert_eq!(parse_segment_header(&h[..31]), Err(HeaderProblem::Bad));
        }
    }

    #[test]
    fn header_of_a_newer_version_is_named() {
        let mut h = segment_header(1, Format::V2);
        h[8..12].copy_from_slice(&3u32.to_le_bytes());
        let crc = crc32c::crc32c(&h[0..24]);
        h[24..28].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(parse_segment_header(&h), Err(HeaderProblem::Version(3)));
    }

    #[test]
    fn header_bytes_are_pinned() {
        let h = segment_header(0x0102_0304_0506_0708, Format::V1);
        assert_eq!(&h[0..8], b"VCTRNWAL");
        assert_eq!(&h[8..16], &[1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&h[16..24], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&h[28..32], &[0, 0, 0, 0]);
        let h = segment_header(0x0102_0304_0506_0708, Format::V2);
        assert_eq!(&h[8..16], &[2, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn record_round_trips() {
        let r = record(V1, 7, 0, b"hello");
        assert_eq!(r.len(), 32);
        assert_eq!(&r[0..4], &5u32.to_le_bytes());
        assert_eq!(&r[8..16], &7u64.to_le_bytes());
        let raw = V1.parse(&r, 0).expect("valid");
        assert_eq!(
            raw,
            RawRecord {
                lsn: 7,
                term: 0,
                body: (16, 21),
                next: 32
            }
        );
    }

    #[test]
    fn a_v2_record_carries_its_term_under_the_checksum() {
        let r = record(V2, 7, 0x0A0B, b"hello");
        assert_eq!(r.len(), 48);
        assert_eq!(&r[0..4], &5u32.to_le_bytes());
        assert_eq!(&r[8..16], &7u64.to_le_bytes());
        assert_eq!(&r[16..24], &0x0A0Bu64.to_le_bytes());
        assert_eq!(&r[24..32], &[0; 8]);
        assert_eq!(&r[32..37], b"hello");
        assert_eq!(
            V2.parse(&r, 0),
            Some(RawRecord {
                lsn: 7,
                term: 0x0A0B,
                body: (32, 37),
                next: 48
            })
        );
        // The same bytes are no v1 record.
        assert!(V1.parse(&r, 0).is_none());
    }

    #[test]
    fn every_flipped_byte_of_header_or_body_is_caught() {
        for (framing, term) in [(V1, 0), (V2, 4)] {
            let r = record(framing, 9, term, b"some body bytes!");
            // Bytes 24..32 of a v2 header are reserved: not read, not checked.
            for i in
                (0..framing.header_len() + 16).filter(|i| framing == V1 || !(24..32).contains(i))
            {
                let mut d = r.clone();
                d[i] ^= 0x01;
                assert!(
                    framing.parse(&d, 0).is_none(),
                    "{framing:?}: flip at byte {i} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn every_truncation_is_caught() {
        for (framing, term) in [(V1, 0), (V2, 5)] {
            let r = record(framing, 3, term, &[0xAB; 40]);
            for cut in 0..r.len() {
                assert!(
                    framing.parse(&r[..cut], 0).is_none(),
                    "cut at {cut} accepted"
                );
            }
        }
    }

    #[test]
    fn oversized_length_is_refused_without_reading() {
        let mut r = record(V1, 1, 0, b"x");
        r[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(V1.parse(&r, 0).is_none());
    }

    #[test]
    fn valid_record_after_a_bad_one_is_found() {
        for (framing, term) in [(V1, 0), (V2, 2)] {
            let mut log = record(framing, 1, term, b"first");
            let second = log.len();
            log.extend(record(framing, 2, term, b"second"));
            let third = log.len();
            log.extend(record(framing, 3, term, b"third"));
            log[second + framing.header_len() + 2] ^= 0xFF;
            assert!(framing.parse(&log, second).is_none());
            assert_eq!(framing.valid_record_after(&log, second, 2), Some(third));
            // A zeroed or garbage tail has nothing valid after it.
            let mut torn = record(framing, 1, term, b"first");
            let end = torn.len();
            torn.extend([0u8; 100]);
            assert_eq!(framing.valid_record_after(&torn, end, 2), None);
        }
    }
}
