//! Saving to and opening from the index file (layout in `FORMAT.md`).
//!
//! Opening verifies the header and every section checksum (xxh3-64) and then every
//! structural invariant the search loops rely on (ids in range, upper lists present,
//! levels consistent), so a corrupt file is an error, never undefined behaviour. The
//! graph blocks and f32 vectors are then mapped privately (copy-on-write) and used in
//! place; the small per-node arrays are copied.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use memmap2::{Mmap, MmapOptions};
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

use crate::distance::IsaKind;
use crate::graph::BuildScratch;
use crate::index::{IndexConfig, MAX_LEVEL, MAX_POINTS_3B, Quantization, layout};
use crate::quant::Quantizer;
use crate::search::{DELETED, FREE, NONE, PENDING, RECLAIMING, id_mask};
use crate::storage::Arena;
use crate::{Corruption, HnswError, HnswIndex, Metric};

const MAGIC: [u8; 8] = *b"VECTHNSW";
/// The format version this build writes. It also reads version 1 (4-byte level-0 ids,
/// int8 codes inside the blocks, no codes section).
pub const FORMAT_VERSION: u32 = 2;
/// Header size; sections start at multiples of it.
const PAGE: u64 = 4096;
const SECTION_NAMES: [&str; 10] = [
    "blocks",
    "vectors",
    "levels",
    "flags",
    "upper offsets",
    "upper links",
    "pending list",
    "free list",
    "quantizer",
    "codes",
];
const TABLE_AT: usize = 88;
/// Fuzzing builds (`--cfg fuzzing`, set by cargo-fuzz) skip the checksums, so that
/// mutated files reach the structural checks behind them.
const VERIFY_SUMS: bool = !cfg!(fuzzing);
/// Where the header checksum lies after a table of `sections` entries.
const fn header_sum_at(sections: usize) -> usize {
    TABLE_AT + 24 * sections
}
const HEADER_SUM_AT: usize = header_sum_at(SECTION_NAMES.len());

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> HnswError + '_ {
    move |source| HnswError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether a stored list is well formed: every id before the first `NONE` passes `ok`,
/// and only `NONE` follows it.
fn list_ok(ids: impl Iterator<Item = u32>, ok: impl Fn(u32) -> bool) -> bool {
    let mut ended = false;
    for x in ids {
        if x == NONE {
            ended = true;
        } else if ended || !ok(x) {
            return false;
        }
    }
    true
}

/// Whether no id of `ids` (each below `n`) appears twice.
fn distinct(ids: &[u32], n: usize) -> bool {
    let mut seen = vec![false; n];
    ids.iter()
        .all(|&x| !std::mem::replace(&mut seen[x as usize], true))
}

fn u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl HnswIndex {
    /// Writes the index to `path` atomically (a temporary file, fsync, rename, fsync of
    /// the directory). Pending points are saved as pending.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), HnswError> {
        let mut saver = self.saver(path)?;
        while !saver.write_some(self, usize::MAX)? {}
        let written = saver.finish(self)?;
        written.sync()?;
        written.commit()
    }

    /// Starts writing the index to `path` in pieces ([`IndexSaver`]), so that a caller
    /// can do other work between them. The index must not change until the saver is
    /// finished: a change it notices is an error, not a corrupt file.
    pub fn saver(&self, path: impl AsRef<Path>) -> Result<IndexSaver, HnswError> {
        let path = path.as_ref().to_path_buf();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
        let n = self.slots;
        let pending: Vec<u32> = self.pending.iter().copied().collect();
        let quant: Vec<u8> = self.quant.as_ref().map_or(Vec::new(), |q| {
            q.params().iter().flat_map(|x| x.to_le_bytes()).collect()
        });
        // The small per-node arrays are copied now; the large ones (blocks, vectors,
        // codes) are read from the index piece by piece.
        let copies = [
            Vec::new(),
            Vec::new(),
            Vec::new(),
            self.flags.iter().map(|f| f & !RECLAIMING).collect(),
            u32s(&self.upper_off),
            u32s(&self.upper),
            u32s(&pending),
            u32s(&self.free),
            quant,
            Vec::new(),
        ];
        let mut header = vec![0u8; PAGE as usize];
        header[..8].copy_from_slice(&MAGIC);
        header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&(PAGE as u32).to_le_bytes());
        header[16..20].copy_from_slice(&(self.cfg.dim as u32).to_le_bytes());
        header[20] = self.cfg.metric.to_byte();
        header[21] = match self.cfg.quantization {
            Quantization::None => 0,
            Quantization::Int8 => 1,
        };
        header[22] = u8::from(self.quant.is_some());
        header[23] = self.id_bytes as u8;
        header[24..28].copy_from_slice(&(self.cfg.m as u32).to_le_bytes());
        header[28..32].copy_from_slice(&(self.cfg.ef_construction as u32).to_le_bytes());
        header[32..40].copy_from_slice(&self.cfg.seed.to_le_bytes());
        header[40..48].copy_from_slice(&self.rng.to_le_bytes());
        header[48..56].copy_from_slice(&(n as u64).to_le_bytes());
        let (ep, ep_level) = self.entry.map_or((NONE, 0), |(e, l)| (e, l as u32));
        header[56..60].copy_from_slice(&ep.to_le_bytes());
        header[60..64].copy_from_slice(&ep_level.to_le_bytes());
        header[64..72].copy_from_slice(&(self.live as u64).to_le_bytes());
        header[72..80].copy_from_slice(&(self.tombstones as u64).to_le_bytes());
        header[80..84].copy_from_slice(&(SECTION_NAMES.len() as u32).to_le_bytes());
        // A placeholder: the table and checksums are known once every section is out.
        file.write_all(&header).map_err(io_err(&tmp))?;
        Ok(IndexSaver {
            file,
            tmp,
            path,
            header,
            copies,
            snapshot: (n, self.live, self.tombstones, self.entry),
            section: 0,
            offset: 0,
            at: PAGE,
            hasher: Xxh3::new(),
        })
    }

    /// Section `i` of the file, as [`IndexSaver`] writes it.
    fn section_bytes<'a>(&'a self, i: usize, copies: &'a [Vec<u8>; 10]) -> &'a [u8] {
        let n = self.slots;
        match i {
            0 => &self.blocks.bytes()[..n * self.stride],
            1 => self
                .side
                .as_ref()
                .map_or(&[][..], |s| &s.bytes()[..n * self.padded * 4]),
            2 => &self.levels,
            9 => self
                .codes
                .as_ref()
                .map_or(&[][..], |c| &c.bytes()[..n * self.code_len]),
            _ => &copies[i],
        }
    }

    /// Opens an index written by [`HnswIndex::save`]. The graph blocks and vectors are
    /// mapped from the file and used in place (private copy-on-write pages: the index
    /// keeps accepting adds, links and deletes, and the file never changes). The file
    /// must not be modified by others while the index is open.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, HnswError> {
        let path = path.as_ref();
        let corrupt = |reason| HnswError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let invalid = |field| corrupt(Corruption::InvalidValue { field });
        let file = File::open(path).map_err(io_err(path))?;
        let len = file.metadata().map_err(io_err(path))?.len();
        if len < PAGE {
            return Err(corrupt(Corruption::Truncated { needed: PAGE, len }));
        }
        // SAFETY: a read-only private map; the file must not change while open
        // (documented above). Bytes are only read and fully validated before use.
        let map: Mmap = unsafe { MmapOptions::new().map(&file) }.map_err(io_err(path))?;
        let h = map[..PAGE as usize].to_vec();
        let h = &h[..];
        if h[..8] != MAGIC {
            return Err(corrupt(Corruption::BadMagic));
        }
        let rd32 = |at: usize| u32::from_le_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let rd64 = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let version = rd32(8);
        if version != FORMAT_VERSION && version != 1 {
            return Err(corrupt(Corruption::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            }));
        }
        // Version 1 has no codes section.
        let nsec = if version == 1 { 9 } else { SECTION_NAMES.len() };
        let sum_at = header_sum_at(nsec);
        if VERIFY_SUMS && rd64(sum_at) != xxh3_64(&h[..sum_at]) {
            return Err(corrupt(Corruption::Checksum { section: "header" }));
        }
        if rd32(12) != PAGE as u32 || rd32(80) != nsec as u32 {
            return Err(invalid("header length"));
        }
        let metric = Metric::from_byte(h[20]).ok_or_else(|| invalid("metric"))?;
        let quantization = match h[21] {
            0 => Quantization::None,
            1 => Quantization::Int8,
            _ => return Err(invalid("quantization")),
        };
        let cfg = IndexConfig {
            dim: rd32(16) as usize,
            metric,
            m: rd32(24) as usize,
            ef_construction: rd32(28) as usize,
            quantization,
            seed: rd64(32),
        };
        cfg.validate().map_err(|_| invalid("config"))?;
        // Version 1 has 4-byte level-0 ids and a zero byte here.
        let id_bytes = match (version, h[23]) {
            (1, 0) | (2, 4) => 4,
            (2, 3) if quantization == Quantization::Int8 => 3,
            _ => return Err(invalid("id width")),
        };
        let (padded, code_len, m0, links_bytes, stride) = layout(&cfg, id_bytes);
        // Version 1 keeps int8 codes in the blocks, after the links.
        let file_stride = match version {
            1 => stride + code_len,
            _ => stride,
        };
        let n64 = rd64(48);
        if n64 > crate::index::MAX_POINTS as u64 || (id_bytes == 3 && n64 > MAX_POINTS_3B as u64) {
            return Err(invalid("slot count"));
        }
        let n = n64 as usize;
        let trained = match h[22] {
            0 => false,
            1 if quantization == Quantization::Int8 => true,
            _ => return Err(invalid("quantizer flag")),
        };
        // Section table.
        let mut secs = [(0u64, 0u64); SECTION_NAMES.len()];
        for (i, (s, name)) in secs.iter_mut().zip(SECTION_NAMES).take(nsec).enumerate() {
            let t = TABLE_AT + 24 * i;
            let (off, slen, sum) = (rd64(t), rd64(t + 8), rd64(t + 16));
            if off % PAGE != 0 || off < PAGE {
                return Err(invalid("section offset"));
            }
            let end = off
                .checked_add(slen)
                .ok_or_else(|| invalid("section length"))?;
            if end > len {
                return Err(corrupt(Corruption::Truncated { needed: end, len }));
            }
            if VERIFY_SUMS && xxh3_64(&map[off as usize..end as usize]) != sum {
                return Err(corrupt(Corruption::Checksum { section: name }));
            }
            *s = (off, slen);
        }
        // The writer pads the file to a whole page after its last section.
        let padded_end = secs
            .iter()
            .map(|&(off, slen)| (off + slen).div_ceil(PAGE) * PAGE)
            .max()
            .unwrap_or(PAGE);
        if len < padded_end {
            return Err(corrupt(Corruption::Truncated {
                needed: padded_end,
                len,
            }));
        }
        let sec = |i: usize| &map[secs[i].0 as usize..(secs[i].0 + secs[i].1) as usize];
        let want = |i: usize, bytes: usize, field| {
            if secs[i].1 as usize == bytes {
                Ok(())
            } else {
                Err(invalid(field))
            }
        };
        want(0, n * file_stride, "blocks length")?;
        want(
            9,
            if quantization == Quantization::Int8 && version > 1 {
                n * code_len
            } else {
                0
            },
            "codes length",
        )?;
        want(
            1,
            if quantization == Quantization::Int8 {
                n * padded * 4
            } else {
                0
            },
            "vectors length",
        )?;
        want(2, n, "levels length")?;
        want(3, n, "flags length")?;
        want(4, n * 4, "upper offsets length")?;
        let read_u32s = |i: usize, field| -> Result<Vec<u32>, HnswError> {
            let b = sec(i);
            if b.len() % 4 != 0 {
                return Err(invalid(field));
            }
            Ok(b.chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let levels = sec(2).to_vec();
        let flags = sec(3).to_vec();
        let upper_off = read_u32s(4, "upper offsets")?;
        let upper = read_u32s(5, "upper links")?;
        let pending = read_u32s(6, "pending list")?;
        let free = read_u32s(7, "free list")?;
        let qp: Vec<f32> = read_u32s(8, "quantizer")?
            .into_iter()
            .map(f32::from_bits)
            .collect();
        let quant = if trained {
            Some(
                Quantizer::from_params(metric.is_l2(), cfg.dim, &qp)
                    .ok_or_else(|| invalid("quantizer"))?,
            )
        } else if qp.is_empty() {
            None
        } else {
            return Err(invalid("quantizer"));
        };

        // Structure: everything the search loops dereference without checks.
        let (mut live, mut tombstones) = (0usize, 0usize);
        for i in 0..n {
            let f = flags[i];
            if f & !(DELETED | PENDING | FREE) != 0 || (f & FREE != 0 && f != FREE) {
                return Err(invalid("flags"));
            }
            if f & (DELETED | FREE) == 0 {
                live += 1;
            }
            if f & DELETED != 0 {
                tombstones += 1;
            }
            let lv = usize::from(levels[i]);
            if lv > MAX_LEVEL {
                return Err(invalid("levels"));
            }
            if lv > 0 {
                let off = upper_off[i] as usize;
                if upper_off[i] == NONE || off + lv * cfg.m > upper.len() {
                    return Err(invalid("upper offsets"));
                }
            }
        }
        // Lists are written in place: no two slots' upper chunks may share an id.
        let mut chunks: Vec<(usize, usize)> = (0..n)
            .filter(|&i| levels[i] > 0)
            .map(|i| (upper_off[i] as usize, usize::from(levels[i]) * cfg.m))
            .collect();
        chunks.sort_unstable();
        if chunks.windows(2).any(|w| w[0].0 + w[0].1 > w[1].0) {
            return Err(invalid("upper offsets"));
        }
        let blocks_bytes = sec(0);
        let linked = |x: u32| (x as usize) < n && flags[x as usize] & (FREE | PENDING) == 0;
        for i in 0..n {
            let start = i * file_stride;
            let list = &blocks_bytes[start..start + m0 * id_bytes];
            let ids = list.chunks_exact(id_bytes).map(|c| {
                let mut b = [0; 4];
                b[..id_bytes].copy_from_slice(c);
                match u32::from_le_bytes(b) {
                    x if x == id_mask(id_bytes) => NONE,
                    x => x,
                }
            });
            // Free and pending slots have empty lists; a list ends at its first NONE.
            let unlinked = flags[i] & (FREE | PENDING) != 0;
            if !list_ok(ids, |x| !unlinked && linked(x)) {
                return Err(invalid("level-0 links"));
            }
            let lv = usize::from(levels[i]);
            // Free slots' chunks are cleared when reused; pending slots' are empty
            // (linking writes only the levels the graph has).
            if lv > 0 && flags[i] & FREE == 0 {
                let off = upper_off[i] as usize;
                for l in 1..=lv {
                    let ids = upper[off + (l - 1) * cfg.m..off + l * cfg.m]
                        .iter()
                        .copied();
                    let ok =
                        |x: u32| !unlinked && linked(x) && usize::from(levels[x as usize]) >= l;
                    if !list_ok(ids, ok) {
                        return Err(invalid("upper links"));
                    }
                }
            }
        }
        let entry = match rd32(56) {
            NONE => None,
            e => {
                let l = rd32(60) as usize;
                if !linked(e) || usize::from(levels[e as usize]) != l {
                    return Err(invalid("entry point"));
                }
                Some((e, l))
            }
        };
        if entry.is_none() && (0..n).any(|i| flags[i] & (FREE | PENDING) == 0) {
            return Err(invalid("entry point"));
        }
        // Each list holds every slot of its kind exactly once: a repeated id would be
        // linked twice, or handed out twice while its first taker is live.
        if pending.iter().any(|&p| {
            (p as usize) >= n
                || flags[p as usize] & PENDING == 0
                || flags[p as usize] & DELETED != 0
        }) || !distinct(&pending, n)
            || pending.len() != (0..n).filter(|&i| flags[i] & PENDING != 0).count()
        {
            return Err(invalid("pending list"));
        }
        if free
            .iter()
            .any(|&p| (p as usize) >= n || flags[p as usize] != FREE)
            || !distinct(&free, n)
            || free.len() != (0..n).filter(|&i| flags[i] == FREE).count()
        {
            return Err(invalid("free list"));
        }
        if rd64(64) != live as u64 || rd64(72) != tombstones as u64 {
            return Err(invalid("counts"));
        }
        // Version 1 int8: the links and the codes are taken apart into their arenas.
        let split = if version == 1 && quantization == Quantization::Int8 {
            let mut links = Arena::anon(n * stride)?;
            let mut codes = Arena::anon(n * code_len)?;
            for i in 0..n {
                let b = &blocks_bytes[i * file_stride..(i + 1) * file_stride];
                links.bytes_mut()[i * stride..(i + 1) * stride].copy_from_slice(&b[..stride]);
                codes.bytes_mut()[i * code_len..(i + 1) * code_len].copy_from_slice(&b[stride..]);
            }
            Some((links, codes))
        } else {
            None
        };
        drop(map);

        let map_section = |i: usize| -> Result<Arena, HnswError> {
            let (off, slen) = secs[i];
            if slen == 0 {
                return Arena::anon(0);
            }
            // SAFETY: a private copy-on-write map of a file we just validated; writes
            // stay in this process. The file must not be changed by others while open.
            let m = unsafe {
                MmapOptions::new()
                    .offset(off)
                    .len(slen as usize)
                    .map_copy(&file)
            }
            .map_err(io_err(path))?;
            Ok(Arena::mapped(m, 0, slen as usize))
        };
        let (blocks, codes) = match (split, quantization) {
            (Some((links, codes)), _) => (links, Some(codes)),
            (None, Quantization::None) => (map_section(0)?, None),
            (None, Quantization::Int8) => (map_section(0)?, Some(map_section(9)?)),
        };
        let side = match quantization {
            Quantization::None => None,
            Quantization::Int8 => Some(map_section(1)?),
        };
        Ok(HnswIndex {
            rng: rd64(40),
            isa: IsaKind::detect(),
            padded,
            code_len,
            m0,
            id_bytes,
            links_bytes,
            stride,
            blocks,
            codes,
            side,
            levels,
            flags,
            upper_off,
            upper,
            slots: n,
            pending: VecDeque::from(pending),
            free,
            entry,
            live,
            tombstones,
            reclaim_cursor: None,
            quant,
            build: BuildScratch::default(),
            vbuf: Vec::new(),
            source: Some(path.to_path_buf()),
            cfg,
        })
    }

    /// Whether the graph blocks are still used in place from the opened file.
    pub fn is_mapped(&self) -> bool {
        self.blocks.is_file_backed()
    }
}

/// An index being written to its file piece by piece ([`HnswIndex::saver`]): each
/// [`IndexSaver::write_some`] writes at most the bytes it is given, so a caller on a
/// busy thread can let other work run between pieces. Each call takes the index again;
/// it must be unchanged since the saver was made.
pub struct IndexSaver {
    file: File,
    tmp: PathBuf,
    path: PathBuf,
    header: Vec<u8>,
    /// The sections copied when saving began (empty for those read from the index).
    copies: [Vec<u8>; 10],
    /// Slots, live points, tombstones and entry point when saving began.
    snapshot: (usize, usize, usize, Option<(u32, usize)>),
    /// The section being written, and how far into it.
    section: usize,
    offset: usize,
    /// Where the section starts in the file.
    at: u64,
    hasher: Xxh3,
}

impl IndexSaver {
    /// Writes up to `max_bytes` more (at least one byte while any is left); returns
    /// whether every section is written.
    ///
    /// # Errors
    /// [`HnswError::Io`], or [`HnswError::InvalidConfig`] when `index` changed since the
    /// saver was made.
    pub fn write_some(&mut self, index: &HnswIndex, max_bytes: usize) -> Result<bool, HnswError> {
        let now = (index.slots, index.live, index.tombstones, index.entry);
        if now != self.snapshot {
            return Err(HnswError::Save {
                reason: "the index changed while it was being saved",
            });
        }
        let err = io_err(&self.tmp);
        let mut budget = max_bytes.max(1);
        while self.section < SECTION_NAMES.len() {
            let bytes = index.section_bytes(self.section, &self.copies);
            if self.offset < bytes.len() {
                if budget == 0 {
                    return Ok(false);
                }
                let end = bytes.len().min(self.offset.saturating_add(budget));
                let piece = &bytes[self.offset..end];
                self.file.write_all(piece).map_err(&err)?;
                self.hasher.update(piece);
                budget -= piece.len();
                self.offset = end;
                continue;
            }
            // The section is out: record it in the table and pad to the next page.
            let t = TABLE_AT + 24 * self.section;
            self.header[t..t + 8].copy_from_slice(&self.at.to_le_bytes());
            self.header[t + 8..t + 16].copy_from_slice(&(bytes.len() as u64).to_le_bytes());
            self.header[t + 16..t + 24].copy_from_slice(&self.hasher.digest().to_le_bytes());
            let end = self.at + bytes.len() as u64;
            let next = end.div_ceil(PAGE) * PAGE;
            self.file
                .write_all(&[0u8; PAGE as usize][..(next - end) as usize])
                .map_err(&err)?;
            self.at = next;
            self.section += 1;
            self.offset = 0;
            self.hasher.reset();
        }
        Ok(true)
    }

    /// Writes the header, once every section is out. The file is then written but not
    /// durable: [`WrittenIndex::sync`] (or the caller, through [`WrittenIndex::file`])
    /// syncs it, and [`WrittenIndex::commit`] gives it its name.
    ///
    /// # Errors
    /// [`HnswError::Io`], or [`HnswError::InvalidConfig`] when sections remain.
    pub fn finish(mut self, index: &HnswIndex) -> Result<WrittenIndex, HnswError> {
        if !self.write_some(index, 0)? {
            return Err(HnswError::Save {
                reason: "the index was finished before every section was written",
            });
        }
        let sum = xxh3_64(&self.header[..HEADER_SUM_AT]);
        self.header[HEADER_SUM_AT..HEADER_SUM_AT + 8].copy_from_slice(&sum.to_le_bytes());
        let written = self
            .file
            .seek(SeekFrom::Start(0))
            .and_then(|_| self.file.write_all(&self.header));
        written.map_err(io_err(&self.tmp))?;
        Ok(WrittenIndex {
            file: self.file,
            tmp: self.tmp,
            path: self.path,
        })
    }
}

impl std::fmt::Debug for IndexSaver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexSaver")
            .field("path", &self.path)
            .field("section", &self.section)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

/// An index file written under a temporary name, to be synced and then committed.
#[derive(Debug)]
pub struct WrittenIndex {
    file: File,
    tmp: PathBuf,
    path: PathBuf,
}

impl WrittenIndex {
    /// The file, for a caller that syncs it its own way.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Syncs the file (blocking).
    ///
    /// # Errors
    /// [`HnswError::Io`].
    pub fn sync(&self) -> Result<(), HnswError> {
        self.file.sync_all().map_err(io_err(&self.tmp))
    }

    /// Gives the synced file its name and syncs the directory.
    ///
    /// # Errors
    /// [`HnswError::Io`].
    pub fn commit(self) -> Result<(), HnswError> {
        drop(self.file);
        std::fs::rename(&self.tmp, &self.path).map_err(io_err(&self.path))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(dir))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::NodeId;
    use crate::index::tests::vectors;

    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("vectron-format-{}-{name}", std::process::id()))
    }

    /// Rewrites header fields and its checksum, as another writer would have.
    fn patch_header(path: &Path, edit: impl FnOnce(&mut [u8])) {
        let mut b = std::fs::read(path).unwrap();
        edit(&mut b[..PAGE as usize]);
        let sum = xxh3_64(&b[..HEADER_SUM_AT]);
        b[HEADER_SUM_AT..HEADER_SUM_AT + 8].copy_from_slice(&sum.to_le_bytes());
        std::fs::write(path, b).unwrap();
    }

    /// Edits section `i` and rewrites its checksum and the header's, as a writer that
    /// got the structure wrong would have: only the structural checks can refuse it.
    fn patch_section(path: &Path, i: usize, edit: impl FnOnce(&mut [u8])) {
        let mut b = std::fs::read(path).unwrap();
        let t = TABLE_AT + 24 * i;
        let rd = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        let (off, len) = (rd(&b, t) as usize, rd(&b, t + 8) as usize);
        edit(&mut b[off..off + len]);
        let sum = xxh3_64(&b[off..off + len]);
        b[t + 16..t + 24].copy_from_slice(&sum.to_le_bytes());
        std::fs::write(path, b).unwrap();
        patch_header(path, |_| {});
    }

    fn section(path: &Path, i: usize) -> Vec<u8> {
        let b = std::fs::read(path).unwrap();
        let t = TABLE_AT + 24 * i;
        let rd = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize;
        b[rd(t)..rd(t) + rd(t + 8)].to_vec()
    }

    fn refused_as(path: &Path, want: &str) {
        match HnswIndex::open(path) {
            Err(HnswError::Corrupt {
                reason: Corruption::InvalidValue { field },
                ..
            }) => assert_eq!(field, want),
            other => panic!("expected {want}: {other:?}"),
        }
    }

    fn le32(b: &[u8], i: usize) -> u32 {
        u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap())
    }

    /// An f32 index (m 4) with linked points and pending ones of level > 0.
    fn small_index() -> HnswIndex {
        let cfg = IndexConfig {
            m: 4,
            ef_construction: 32,
            ..IndexConfig::new(8, Metric::L2)
        };
        let mut idx = HnswIndex::new(cfg).unwrap();
        let data = vectors(300, 8, 21);
        for v in &data[..200] {
            idx.insert(v).unwrap();
        }
        for v in &data[200..] {
            idx.add(v).unwrap();
        }
        idx
    }

    #[test]
    fn a_save_in_small_pieces_writes_the_same_file_and_notices_a_change() {
        let idx = small_index();
        let whole = temp("whole.hnsw");
        idx.save(&whole).unwrap();
        let pieces = temp("pieces.hnsw");
        let mut saver = idx.saver(&pieces).unwrap();
        let mut calls = 0;
        while !saver.write_some(&idx, 1000).unwrap() {
            calls += 1;
        }
        assert!(calls > 10, "{calls} pieces");
        let written = saver.finish(&idx).unwrap();
        written.sync().unwrap();
        written.commit().unwrap();
        assert_eq!(
            std::fs::read(&whole).unwrap(),
            std::fs::read(&pieces).unwrap()
        );
        HnswIndex::open(&pieces).unwrap();

        // The index changes between two pieces: the saver refuses to go on.
        let mut idx = idx;
        let mut saver = idx.saver(temp("changed.hnsw")).unwrap();
        saver.write_some(&idx, 1000).unwrap();
        idx.add(&vectors(1, 8, 99)[0]).unwrap();
        assert!(matches!(
            saver.write_some(&idx, 1000),
            Err(HnswError::Save { .. })
        ));
        for path in [whole, pieces] {
            let _ = std::fs::remove_file(path);
        }
    }

    #[test]
    fn upper_lists_shared_by_two_slots_are_refused() {
        let path = temp("overlap.hnsw");
        small_index().save(&path).unwrap();
        let levels = section(&path, 2);
        let tall: Vec<usize> = (0..200).filter(|&i| levels[i] > 0).take(2).collect();
        assert_eq!(tall.len(), 2);
        HnswIndex::open(&path).unwrap();
        patch_section(&path, 4, |offs| {
            let a = le32(offs, tall[0]);
            offs[4 * tall[1]..4 * tall[1] + 4].copy_from_slice(&a.to_le_bytes());
        });
        refused_as(&path, "upper offsets");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_pending_slot_with_upper_links_is_refused() {
        let path = temp("pending-upper.hnsw");
        small_index().save(&path).unwrap();
        let levels = section(&path, 2);
        let offs = section(&path, 4);
        let p = (200..300).find(|&i| levels[i] > 0).unwrap();
        let at = le32(&offs, p) as usize;
        patch_section(&path, 5, |upper| {
            upper[4 * at..4 * at + 4].copy_from_slice(&0u32.to_le_bytes());
        });
        refused_as(&path, "upper links");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn ids_after_the_end_of_a_list_are_refused() {
        let path = temp("after-end.hnsw");
        let idx = small_index();
        idx.save(&path).unwrap();
        let blocks = section(&path, 0);
        let node = (0..200)
            .find(|&i| le32(&blocks[i * idx.stride..], 1) != NONE)
            .unwrap();
        patch_section(&path, 0, |b| {
            b[node * idx.stride..node * idx.stride + 4].copy_from_slice(&NONE.to_le_bytes());
        });
        refused_as(&path, "level-0 links");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_slot_listed_twice_as_pending_or_free_is_refused() {
        let path = temp("listed-twice.hnsw");
        let mut idx = small_index();
        for id in (0..200).step_by(9) {
            idx.delete(NodeId(id)).unwrap();
        }
        idx.reclaim_deleted();
        idx.save(&path).unwrap();
        let good = std::fs::read(&path).unwrap();
        HnswIndex::open(&path).unwrap();
        // Same length as the list of flagged slots, each entry flagged, one repeated.
        for (sec, field) in [(6, "pending list"), (7, "free list")] {
            assert!(section(&path, sec).len() >= 8, "{field} has two entries");
            patch_section(&path, sec, |ids| {
                let first = le32(ids, 0);
                ids[4..8].copy_from_slice(&first.to_le_bytes());
            });
            refused_as(&path, field);
            std::fs::write(&path, &good).unwrap();
        }
        std::fs::remove_file(&path).unwrap();
    }

    fn int8_index(n: usize) -> HnswIndex {
        let mut cfg = IndexConfig::new(16, Metric::Cosine);
        cfg.quantization = Quantization::Int8;
        let mut idx = HnswIndex::new(cfg).unwrap();
        for v in vectors(n, 16, 9) {
            idx.insert(&v).unwrap();
        }
        idx.delete(NodeId(2)).unwrap();
        idx
    }

    #[test]
    fn an_id_width_that_does_not_fit_the_file_is_refused() {
        let idx = int8_index(300);
        let path = temp("width.hnsw");
        idx.save(&path).unwrap();
        let good = std::fs::read(&path).unwrap();
        assert_eq!(good[23], 3);
        for (width, reason) in [(4u8, "blocks length"), (5, "id width"), (0, "id width")] {
            std::fs::write(&path, &good).unwrap();
            patch_header(&path, |h| h[23] = width);
            match HnswIndex::open(&path) {
                Err(HnswError::Corrupt {
                    reason: Corruption::InvalidValue { field },
                    ..
                }) => assert_eq!(field, reason, "width {width}"),
                other => panic!("width {width}: {other:?}"),
            }
        }
        // 3-byte ids are for int8 only.
        let mut f = HnswIndex::new(IndexConfig::new(16, Metric::Cosine)).unwrap();
        for v in vectors(50, 16, 11) {
            f.insert(&v).unwrap();
        }
        f.save(&path).unwrap();
        patch_header(&path, |h| h[23] = 3);
        assert!(matches!(
            HnswIndex::open(&path),
            Err(HnswError::Corrupt {
                reason: Corruption::InvalidValue { field: "id width" },
                ..
            })
        ));
        std::fs::remove_file(&path).unwrap();
    }
}
