//! The index: storage layout, adds, cooperative linking, deletes, searches.
//!
//! Level-0 block of slot `i`, at `i * stride` in one arena (no pointer chasing):
//!
//! ```text
//! f32 mode:  | m0 × u32 neighbour ids (NONE-terminated), padded | f32 × padded_dim |
//! int8 mode: | m0 × 3-byte neighbour ids, padded to 32 bytes |
//! ```
//!
//! In int8 mode the codes live in their own arena (`code_len` bytes per slot, so each
//! code stays within as few cache lines as its length allows), and so do the f32 vectors
//! (for rescoring, construction and `vector`). Level-0 ids take 3 bytes there: at 128
//! dims 32 four-byte ids would weigh as much as the codes. An int8 index widens them to
//! 4 bytes, once, when it outgrows 3-byte ids ([`MAX_POINTS_3B`] slots). Upper-level
//! lists (`m` u32 ids per level) live in `upper`, found through `upper_off`.

use std::collections::VecDeque;
use std::path::PathBuf;

use crate::distance::{CODE_PAD, Dist, F32_PAD, IsaKind, Space, WithDist, dispatch};
use crate::graph::{BuildScratch, Consolidate, Insert};
use crate::quant::Quantizer;
use crate::search::{
    Cand, DELETED, FREE, Layer, List, NONE, PENDING, RECLAIMING, View, greedy, scan, search_layer,
};
use crate::storage::Arena;
use crate::{Filter, HnswError, Metric};

/// Highest level a node can get (levels are drawn as `floor(-ln U / ln m)`, capped).
pub(crate) const MAX_LEVEL: usize = 15;
/// Most slots an index holds: ids are `u32` and `u32::MAX` marks an empty list slot.
pub const MAX_POINTS: usize = u32::MAX as usize - 1;
/// Most slots with 3-byte level-0 ids: `0xFFFFFF` marks an empty list slot.
pub(crate) const MAX_POINTS_3B: usize = 0xFF_FFFF;
/// The int8 quantizer is trained once this many points have been added; before that,
/// searches traverse the f32 vectors.
pub(crate) const QUANT_TRAIN_POINTS: usize = 1024;
/// At most this many cache lines of a vector are prefetched ahead of its distance.
const PREFETCH_LINES: usize = 8;
/// int8 searches rescore at least this many times `k` of the best traversal candidates
/// (at least `k`, at most `ef`) with the f32 vectors, then go on down the candidate list
/// while a candidate's int8 distance could still hide an f32 distance among the best `k`
/// (see [`RESCORE_MARGIN`]).
const RESCORE_FACTOR: usize = 4;
/// How far past the `k`-th best f32 distance an int8 distance may lie and its candidate
/// still be rescored, in units of the largest int8 error seen on this query's rescored
/// candidates. The int8 error of a distance depends on the data (how much of a vector's
/// spread its codes' step resolves), so it is measured per query rather than assumed;
/// twice the largest of some dozens of errors is far out in their tail. Past that point
/// a candidate cannot enter the top `k` unless its error is twice any seen, so the
/// result is that of rescoring the whole list while only the candidates that could
/// matter pay for an f32 distance.
const RESCORE_MARGIN: f32 = 2.0;

/// Internal id of a point: a slot number. Ids are handed out by [`HnswIndex::add`] and
/// stay valid until the point is deleted; a deleted id may be handed out again after
/// [`HnswIndex::reclaim_deleted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// How vectors are stored for traversal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantization {
    /// Full-precision f32 vectors in the graph blocks.
    None,
    /// int8 codes beside the graph blocks for traversal, f32 vectors beside them for
    /// rescoring the best candidates.
    Int8,
}

/// Parameters of an index. Capacity is not one: the index grows as points are added.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IndexConfig {
    /// Values per vector.
    pub dim: usize,
    /// How vectors are compared.
    pub metric: Metric,
    /// Neighbours per node on the upper levels; level 0 keeps `2 * m`.
    pub m: usize,
    /// Candidate list size while linking.
    pub ef_construction: usize,
    /// Traversal on f32 vectors or int8 codes.
    pub quantization: Quantization,
    /// Seed of the level generator: equal seeds and equal insertion order give equal
    /// graphs.
    pub seed: u64,
}

impl IndexConfig {
    /// `m = 16`, `ef_construction = 200`, no quantization, seed 100.
    pub fn new(dim: usize, metric: Metric) -> Self {
        Self {
            dim,
            metric,
            m: 16,
            ef_construction: 200,
            quantization: Quantization::None,
            seed: 100,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), HnswError> {
        let bad = |field, reason| Err(HnswError::InvalidConfig { field, reason });
        if self.dim == 0 || self.dim > 65_536 {
            return bad("dim", "must be between 1 and 65536");
        }
        if self.m < 2 || self.m > 256 {
            return bad("m", "must be between 2 and 256");
        }
        if self.ef_construction == 0 {
            return bad("ef_construction", "must be at least 1");
        }
        Ok(())
    }
}

/// One search result: the id and its similarity (higher is better).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchHit {
    /// The point.
    pub id: NodeId,
    /// Similarity to the query: cosine similarity, dot product, or minus the squared
    /// Euclidean distance.
    pub score: f32,
}

/// Per-core reusable search state: visited set, heaps, the prepared query and the
/// result buffer. Create one per core and pass it to every search; it grows with the
/// index and then no search allocates.
#[derive(Debug, Default)]
pub struct SearchScratch {
    layer: Layer,
    query: Vec<f32>,
    query_codes: Vec<i16>,
    results: Vec<Cand>,
    rescore: Vec<Cand>,
    hits: Vec<SearchHit>,
}

impl SearchScratch {
    /// An empty scratch; it sizes itself on first use.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes held by the scratch.
    pub fn memory_bytes(&self) -> usize {
        self.layer.bytes()
            + self.query.capacity() * 4
            + self.query_codes.capacity() * 2
            + (self.results.capacity() + self.rescore.capacity()) * 8
            + self.hits.capacity() * size_of::<SearchHit>()
    }
}

/// Where the index's bytes go. `total()` is what [`HnswIndex::memory_bytes`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryUsage {
    /// Neighbour lists (level 0 and upper levels).
    pub links: usize,
    /// f32 vectors (inside the blocks without quantization, beside them with int8).
    pub vectors: usize,
    /// int8 codes.
    pub codes: usize,
    /// Per-node levels, flags, offsets, the pending and free lists.
    pub metadata: usize,
}

impl MemoryUsage {
    /// Sum of all parts.
    pub fn total(&self) -> usize {
        self.links + self.vectors + self.codes + self.metadata
    }
}

/// A single-core HNSW index. See the crate documentation.
#[derive(Debug)]
pub struct HnswIndex {
    pub(crate) cfg: IndexConfig,
    pub(crate) isa: IsaKind,
    /// f32 values per stored vector (dim padded to 16).
    pub(crate) padded: usize,
    /// Code bytes per vector in int8 mode (dim padded to 32), else 0.
    pub(crate) code_len: usize,
    pub(crate) m0: usize,
    /// Bytes per level-0 neighbour id: 3 (int8 mode, up to [`MAX_POINTS_3B`] slots) or 4.
    pub(crate) id_bytes: usize,
    /// Bytes of the neighbour list at the start of a block.
    pub(crate) links_bytes: usize,
    pub(crate) stride: usize,
    pub(crate) blocks: Arena,
    /// int8 codes, slot `i` at `i * code_len` (int8 mode).
    pub(crate) codes: Option<Arena>,
    /// f32 vectors in int8 mode.
    pub(crate) side: Option<Arena>,
    pub(crate) levels: Vec<u8>,
    pub(crate) flags: Vec<u8>,
    pub(crate) upper_off: Vec<u32>,
    pub(crate) upper: Vec<u32>,
    pub(crate) slots: usize,
    pub(crate) pending: VecDeque<u32>,
    pub(crate) free: Vec<u32>,
    pub(crate) entry: Option<(u32, usize)>,
    pub(crate) rng: u64,
    pub(crate) live: usize,
    pub(crate) tombstones: usize,
    /// Next slot of the running reclaim pass.
    pub(crate) reclaim_cursor: Option<usize>,
    pub(crate) quant: Option<Quantizer>,
    pub(crate) build: BuildScratch,
    pub(crate) vbuf: Vec<f32>,
    /// The file this index was opened from, if any.
    pub(crate) source: Option<PathBuf>,
}

/// Bytes per level-0 id of a new index: 3 in int8 mode (where the lists weigh as much as
/// the codes), 4 otherwise (f32 vectors stay 64-byte aligned in their blocks).
pub(crate) fn initial_id_bytes(cfg: &IndexConfig) -> usize {
    match cfg.quantization {
        Quantization::None => 4,
        Quantization::Int8 => 3,
    }
}

/// Layout derived from a config and a level-0 id width: (padded, code_len, m0,
/// links_bytes, stride).
pub(crate) fn layout(cfg: &IndexConfig, id_bytes: usize) -> (usize, usize, usize, usize, usize) {
    let padded = cfg.dim.div_ceil(F32_PAD) * F32_PAD;
    let m0 = 2 * cfg.m;
    match cfg.quantization {
        Quantization::None => {
            let links_bytes = (m0 * id_bytes).div_ceil(64) * 64;
            (padded, 0, m0, links_bytes, links_bytes + padded * 4)
        }
        Quantization::Int8 => {
            let code_len = cfg.dim.div_ceil(CODE_PAD) * CODE_PAD;
            let links_bytes = (m0 * id_bytes).div_ceil(32) * 32;
            (padded, code_len, m0, links_bytes, links_bytes)
        }
    }
}

impl HnswIndex {
    /// An empty index.
    pub fn new(cfg: IndexConfig) -> Result<Self, HnswError> {
        cfg.validate()?;
        let id_bytes = initial_id_bytes(&cfg);
        let (padded, code_len, m0, links_bytes, stride) = layout(&cfg, id_bytes);
        let (side, codes) = match cfg.quantization {
            Quantization::None => (None, None),
            Quantization::Int8 => (Some(Arena::anon(0)?), Some(Arena::anon(0)?)),
        };
        Ok(Self {
            rng: cfg.seed,
            cfg,
            isa: IsaKind::detect(),
            padded,
            code_len,
            m0,
            id_bytes,
            links_bytes,
            stride,
            blocks: Arena::anon(0)?,
            codes,
            side,
            levels: Vec::new(),
            flags: Vec::new(),
            upper_off: Vec::new(),
            upper: Vec::new(),
            slots: 0,
            pending: VecDeque::new(),
            free: Vec::new(),
            entry: None,
            live: 0,
            tombstones: 0,
            reclaim_cursor: None,
            quant: None,
            build: BuildScratch::default(),
            vbuf: Vec::new(),
            source: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &IndexConfig {
        &self.cfg
    }

    /// Values per vector.
    pub fn dim(&self) -> usize {
        self.cfg.dim
    }

    /// The metric.
    pub fn metric(&self) -> Metric {
        self.cfg.metric
    }

    /// Live points (linked or pending, not deleted).
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no live point exists.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Live points stored but not yet linked into the graph (found by exact scan).
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Deleted points still in the graph, waiting for [`HnswIndex::reclaim_deleted`].
    pub fn deleted_len(&self) -> usize {
        self.tombstones
    }

    /// Slots in use, including deleted and free ones: every id is below this.
    pub fn id_bound(&self) -> usize {
        self.slots
    }

    /// The file this index was opened from, if any.
    pub fn source_path(&self) -> Option<&std::path::Path> {
        self.source.as_deref()
    }

    /// Whether `id` is a live point.
    pub fn contains(&self, id: NodeId) -> bool {
        self.flags
            .get(id.0 as usize)
            .is_some_and(|f| f & (DELETED | FREE) == 0)
    }

    /// Validates a vector and copies it, normalised for cosine, into `out` padded with
    /// zeros to `padded`.
    fn prepare(&self, v: &[f32], out: &mut Vec<f32>) -> Result<(), HnswError> {
        if v.len() != self.cfg.dim {
            return Err(HnswError::WrongDimension {
                expected: self.cfg.dim,
                got: v.len(),
            });
        }
        if let Some(position) = v.iter().position(|x| !x.is_finite()) {
            return Err(HnswError::NonFinite { position });
        }
        out.clear();
        out.extend_from_slice(v);
        if !self.cfg.metric.normalize(out) {
            return Err(HnswError::ZeroVector);
        }
        out.resize(self.padded, 0.0);
        Ok(())
    }

    fn vec_bytes(&self) -> usize {
        self.padded * 4
    }

    /// Byte offset of slot `i`'s f32 vector within its arena.
    fn f32_offset(&self, i: usize) -> usize {
        match self.side {
            Some(_) => i * self.vec_bytes(),
            None => i * self.stride + self.links_bytes,
        }
    }

    fn f32_arena(&self) -> &Arena {
        self.side.as_ref().unwrap_or(&self.blocks)
    }

    /// The stored vector of a live point (unit length for cosine).
    pub fn vector(&self, id: NodeId) -> Option<&[f32]> {
        if !self.contains(id) {
            return None;
        }
        let off = self.f32_offset(id.0 as usize);
        let bytes = &self.f32_arena().bytes()[off..off + self.cfg.dim * 4];
        // SAFETY: arenas are page-aligned and vector offsets are multiples of 64, so
        // the bytes are aligned for f32; every bit pattern is a valid f32.
        Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), self.cfg.dim) })
    }

    fn next_level(&mut self) -> usize {
        // SplitMix64.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let u = ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64; // (0, 1]
        let mult = 1.0 / (self.cfg.m as f64).ln();
        ((-u.ln() * mult) as usize).min(MAX_LEVEL)
    }

    /// Stores a vector and returns its id. The point is found by searches at once (by
    /// exact scan) and is linked into the graph by [`HnswIndex::link_pending`].
    pub fn add(&mut self, vector: &[f32]) -> Result<NodeId, HnswError> {
        let mut v = std::mem::take(&mut self.vbuf);
        let r = self.prepare(vector, &mut v).and_then(|()| self.store(&v));
        self.vbuf = v;
        r
    }

    fn store(&mut self, v: &[f32]) -> Result<NodeId, HnswError> {
        let slot = match self.free.pop() {
            Some(s) => s as usize,
            None => {
                if self.slots >= MAX_POINTS {
                    return Err(HnswError::CapacityExceeded { max: MAX_POINTS });
                }
                if self.id_bytes < 4 && self.slots >= MAX_POINTS_3B {
                    self.widen_ids()?;
                }
                let n = self.slots;
                self.blocks.ensure((n + 1) * self.stride, n * self.stride)?;
                let vb = self.vec_bytes();
                if let Some(side) = &mut self.side {
                    side.ensure((n + 1) * vb, n * vb)?;
                }
                let cl = self.code_len;
                if let Some(codes) = &mut self.codes {
                    codes.ensure((n + 1) * cl, n * cl)?;
                }
                self.levels.push(0);
                self.flags.push(FREE);
                self.upper_off.push(NONE);
                self.slots += 1;
                n
            }
        };
        let level = self.next_level();
        // Upper lists: reuse the slot's old chunk when it is tall enough.
        if level > 0 {
            let old = self.levels[slot] as usize;
            if self.upper_off[slot] == NONE || old < level {
                self.upper_off[slot] = self.upper.len() as u32;
                self.upper
                    .resize(self.upper.len() + level * self.cfg.m, NONE);
            }
            let off = self.upper_off[slot] as usize;
            self.upper[off..off + level * self.cfg.m].fill(NONE);
        }
        self.levels[slot] = level as u8;
        let (start, stride, links_bytes) = (slot * self.stride, self.stride, self.links_bytes);
        let block = &mut self.blocks.bytes_mut()[start..start + stride];
        block[..links_bytes].fill(0xFF);
        let foff = self.f32_offset(slot);
        let f32_bytes: &[u8] = bytemuck_f32(v);
        let arena = match &mut self.side {
            Some(side) => side,
            None => &mut self.blocks,
        };
        arena.bytes_mut()[foff..foff + f32_bytes.len()].copy_from_slice(f32_bytes);
        if let (Some(q), Some(codes)) = (&self.quant, &mut self.codes) {
            let at = slot * self.code_len;
            q.encode(
                &v[..self.cfg.dim],
                &mut codes.bytes_mut()[at..at + self.code_len],
            );
        }
        self.flags[slot] = PENDING;
        self.pending.push_back(slot as u32);
        self.live += 1;
        if self.cfg.quantization == Quantization::Int8
            && self.quant.is_none()
            && self.live >= QUANT_TRAIN_POINTS
        {
            self.train_quantizer();
        }
        Ok(NodeId(slot as u32))
    }

    /// Learns int8 parameters from the live points and encodes every slot.
    fn train_quantizer(&mut self) {
        let dim = self.cfg.dim;
        let live: Vec<usize> = (0..self.slots)
            .filter(|&i| self.flags[i] & (DELETED | FREE) == 0)
            .collect();
        let q = {
            let side = self.f32_arena().bytes();
            let vb = self.vec_bytes();
            let vecs = live.iter().map(|&i| {
                let b = &side[i * vb..i * vb + dim * 4];
                // SAFETY: aligned (offset multiple of 64 in a page-aligned arena), and
                // every bit pattern is a valid f32.
                unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<f32>(), dim) }
            });
            Quantizer::train(self.cfg.metric.is_l2(), dim, vecs)
        };
        let mut v = vec![0f32; dim];
        for i in 0..self.slots {
            let foff = i * self.vec_bytes();
            let src = &self.f32_arena().bytes()[foff..foff + dim * 4];
            for (x, c) in v.iter_mut().zip(src.chunks_exact(4)) {
                *x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
            let at = i * self.code_len;
            if let Some(codes) = &mut self.codes {
                q.encode(&v, &mut codes.bytes_mut()[at..at + self.code_len]);
            }
        }
        self.quant = Some(q);
    }

    /// Rewrites every level-0 list with 4-byte ids: once, when an int8 index outgrows
    /// 3-byte ids. O(slots); the old arena is released.
    pub(crate) fn widen_ids(&mut self) -> Result<(), HnswError> {
        if self.id_bytes == 4 {
            return Ok(());
        }
        let (_, _, m0, links_bytes, stride) = layout(&self.cfg, 4);
        let n = self.slots;
        let mut next = Arena::anon(n.max(1).saturating_mul(stride))?;
        let old = self.view(true);
        let dst = next.bytes_mut();
        for i in 0..n {
            let d = i * stride;
            // SAFETY: `i` is a slot; its level-0 list lies in its block.
            let ids = unsafe { old.links(i as u32, 0) };
            for j in 0..m0 {
                // SAFETY: `j < m0`.
                let x = unsafe { ids.get(j) };
                dst[d + 4 * j..d + 4 * j + 4].copy_from_slice(&x.to_le_bytes());
            }
            dst[d + 4 * m0..d + links_bytes].fill(0xFF);
        }
        self.blocks = next;
        self.id_bytes = 4;
        self.links_bytes = links_bytes;
        self.stride = stride;
        Ok(())
    }

    /// A view whose distances read f32 vectors, with pointers derived for writing.
    pub(crate) fn view_f32_mut(&mut self) -> View {
        let (vstride, links_bytes, stride) = (self.vec_bytes(), self.links_bytes, self.stride);
        let blocks = self.blocks.as_mut_ptr();
        let (vecs, vstride) = match &mut self.side {
            Some(side) => (side.as_mut_ptr().cast_const(), vstride),
            None => (blocks.wrapping_add(links_bytes).cast_const(), stride),
        };
        self.view_with(blocks, vecs, vstride)
    }

    fn view_with(&mut self, blocks: *mut u8, vecs: *const u8, vstride: usize) -> View {
        View {
            blocks,
            stride: self.stride,
            m0: self.m0,
            m: self.cfg.m,
            id_bytes: self.id_bytes,
            vecs,
            vstride,
            pf_lines: prefetch_lines(self.vec_bytes(), vstride),
            upper: self.upper.as_mut_ptr(),
            upper_off: self.upper_off.as_ptr(),
            flags: self.flags.as_ptr(),
        }
    }

    /// A read-only view over f32 vectors (`codes = false`) or int8 codes.
    pub(crate) fn view(&self, codes: bool) -> View {
        let blocks = self.blocks.as_ptr();
        let (vecs, vstride, vlen) = match (&self.side, &self.codes, codes) {
            (Some(side), _, false) => (side.as_ptr(), self.vec_bytes(), self.vec_bytes()),
            (_, Some(c), true) => (c.as_ptr(), self.code_len, self.code_len),
            _ => (
                blocks.wrapping_add(self.links_bytes),
                self.stride,
                self.vec_bytes(),
            ),
        };
        View {
            // Never written through: searches only read.
            blocks: blocks.cast_mut(),
            stride: self.stride,
            m0: self.m0,
            m: self.cfg.m,
            id_bytes: self.id_bytes,
            vecs,
            vstride,
            pf_lines: prefetch_lines(vlen, vstride),
            upper: self.upper.as_ptr().cast_mut(),
            upper_off: self.upper_off.as_ptr(),
            flags: self.flags.as_ptr(),
        }
    }

    fn f32_space(&self) -> Space {
        if self.cfg.metric.is_l2() {
            Space::F32L2
        } else {
            Space::F32Dot
        }
    }

    /// Links up to `max_nodes` pending points into the graph, oldest first, and returns
    /// how many were linked. Call it in small batches between searches.
    pub fn link_pending(&mut self, max_nodes: usize) -> usize {
        let mut done = 0;
        while done < max_nodes {
            let Some(node) = self.pending.pop_front() else {
                break;
            };
            self.link(node);
            done += 1;
        }
        done
    }

    /// Stores and links one vector at once: [`HnswIndex::add`] then linking it.
    pub fn insert(&mut self, vector: &[f32]) -> Result<NodeId, HnswError> {
        let id = self.add(vector)?;
        if self.pending.back() == Some(&id.0) {
            self.pending.pop_back();
            self.link(id.0);
        }
        Ok(id)
    }

    fn link(&mut self, node: u32) {
        let v = self.view_f32_mut();
        let level = usize::from(self.levels[node as usize]);
        let mut b = std::mem::take(&mut self.build);
        let space = self.f32_space();
        let run = Insert {
            v,
            node,
            level,
            ef_construction: self.cfg.ef_construction,
            slots: self.slots,
            any_deleted: self.tombstones > 0,
            entry: &mut self.entry,
            b: &mut b,
        };
        dispatch(self.isa, space, v.vec(node), self.padded, 1.0, run);
        self.build = b;
        self.flags[node as usize] &= !PENDING;
    }

    /// Deletes a point: it leaves search results at once. A linked point stays in the
    /// graph as a tombstone (still traversed) until [`HnswIndex::reclaim_deleted`].
    pub fn delete(&mut self, id: NodeId) -> Result<(), HnswError> {
        let i = id.0 as usize;
        let Some(&f) = self.flags.get(i) else {
            return Err(HnswError::UnknownId { id });
        };
        if f & (DELETED | FREE) != 0 {
            return Err(HnswError::UnknownId { id });
        }
        if f & PENDING != 0 {
            if let Some(pos) = self.pending.iter().position(|&p| p == id.0) {
                self.pending.remove(pos);
            }
            self.flags[i] = FREE;
            self.free.push(id.0);
        } else {
            self.flags[i] |= DELETED;
            self.tombstones += 1;
        }
        self.live -= 1;
        Ok(())
    }

    /// Replaces a point's vector: deletes `id` and adds `vector` (pending), returning
    /// the new id.
    pub fn update(&mut self, id: NodeId, vector: &[f32]) -> Result<NodeId, HnswError> {
        let mut v = std::mem::take(&mut self.vbuf);
        let checked = self.prepare(vector, &mut v);
        self.vbuf = v;
        checked?;
        self.delete(id)?;
        self.add(vector)
    }

    /// Whether enough tombstones accumulated that reclaiming pays off (a tenth of the
    /// linked points).
    pub fn needs_reclaim(&self) -> bool {
        self.tombstones > 0 && self.tombstones * 10 >= self.live.saturating_sub(self.pending.len())
    }

    /// Repairs the graph around every tombstone (each node that listed a deleted
    /// neighbour is reconnected to that neighbour's live neighbours, pruned with the
    /// heuristic) and frees the deleted slots for reuse. Returns how many slots were
    /// freed. One pass over every list, O(points × m): a shard that must stay responsive
    /// calls [`HnswIndex::reclaim_step`] between searches instead.
    pub fn reclaim_deleted(&mut self) -> usize {
        let mut freed = 0;
        loop {
            freed += self.reclaim_step(usize::MAX);
            if self.reclaim_cursor.is_none() {
                return freed;
            }
        }
    }

    /// Runs the reclaim pass over at most `max_nodes` more nodes. A pass starts when
    /// tombstones exist and none is running, and covers the tombstones present at its
    /// start; when it completes their slots are freed, and the count is returned (0
    /// until then). Adds, links, deletes and searches may run between steps.
    pub fn reclaim_step(&mut self, max_nodes: usize) -> usize {
        let from = match self.reclaim_cursor {
            Some(c) => c,
            None => {
                if self.tombstones == 0 {
                    return 0;
                }
                for f in &mut self.flags {
                    if *f & DELETED != 0 {
                        *f |= RECLAIMING;
                    }
                }
                0
            }
        };
        let to = from.saturating_add(max_nodes).min(self.slots);
        let v = self.view_f32_mut();
        let mut b = std::mem::take(&mut self.build);
        let space = self.f32_space();
        let run = Consolidate {
            v,
            from,
            to,
            slots: self.slots,
            levels: &self.levels,
            flags: &self.flags,
            b: &mut b,
        };
        dispatch(self.isa, space, v.vecs, self.padded, 1.0, run);
        self.build = b;
        if to < self.slots {
            self.reclaim_cursor = Some(to);
            return 0;
        }
        self.reclaim_cursor = None;
        let mut freed = 0;
        for i in 0..self.slots {
            if self.flags[i] & RECLAIMING != 0 {
                self.flags[i] = FREE;
                let start = i * self.stride;
                self.blocks.bytes_mut()[start..start + self.links_bytes].fill(0xFF);
                self.free.push(i as u32);
                freed += 1;
            }
        }
        self.tombstones -= freed;
        if let Some((ep, _)) = self.entry
            && self.flags[ep as usize] & FREE != 0
        {
            self.entry = (0..self.slots)
                .filter(|&i| self.flags[i] & (DELETED | FREE | PENDING) == 0)
                .max_by_key(|&i| (self.levels[i], std::cmp::Reverse(i)))
                .map(|i| (i as u32, usize::from(self.levels[i])));
        }
        self.repair_connectivity();
        freed
    }

    /// Makes every live linked point reachable on level 0 from the entry point, and
    /// returns how many points needed a new in-link. HNSW's pruning can leave a few
    /// points with no path to them (hnswlib's graphs have them too: about 20 per
    /// million); each gets an in-link from a reachable neighbour, found in its own list
    /// or by a search. A full list gives up its entry with the most other in-links.
    /// O(points × m); runs at the end of every reclaim pass, and after bulk loads.
    pub fn repair_connectivity(&mut self) -> usize {
        let mut fixed = 0;
        for _ in 0..4 {
            let Some((ep, _)) = self.entry else {
                return fixed;
            };
            let n = self.slots;
            let v = self.view_f32_mut();
            let flags = &self.flags;
            let linked = |i: usize| flags[i] & (FREE | PENDING) == 0;
            // SAFETY: every caller passes a linked slot; its level-0 list is in bounds.
            let list = |i: u32| -> List { unsafe { v.links(i, 0) } };
            // SAFETY: as `list`: the lists of linked slots are readable.
            let ids = |i: u32| unsafe { list(i).ids() };
            let mut indeg = vec![0u32; n];
            for i in (0..n).filter(|&i| linked(i)) {
                for x in ids(i as u32) {
                    indeg[x as usize] += 1;
                }
            }
            let mut seen = vec![false; n];
            let mut stack = Vec::new();
            let reach = |from: u32, seen: &mut Vec<bool>, stack: &mut Vec<u32>| {
                seen[from as usize] = true;
                stack.push(from);
                while let Some(x) = stack.pop() {
                    for y in ids(x) {
                        if !seen[y as usize] {
                            seen[y as usize] = true;
                            stack.push(y);
                        }
                    }
                }
            };
            reach(ep, &mut seen, &mut stack);
            let lost: Vec<u32> = (0..n)
                .filter(|&i| linked(i) && flags[i] & DELETED == 0 && !seen[i])
                .map(|i| i as u32)
                .collect();
            if lost.is_empty() {
                return fixed;
            }
            let mut b = std::mem::take(&mut self.build);
            for &u in &lost {
                if seen[u as usize] {
                    continue;
                }
                let mut target = ids(u).find(|&x| seen[x as usize]);
                if target.is_none() {
                    let run = Nearest {
                        v,
                        entry: self.entry,
                        slots: n,
                        b: &mut b,
                        exclude: u,
                    };
                    target = dispatch(self.isa, self.f32_space(), v.vec(u), self.padded, 1.0, run);
                }
                let Some(x) = target else { continue };
                let xs = list(x);
                // SAFETY: `x` is a linked slot (reached or listed), `j < cap`, and `u`
                // is a slot, so it fits the list's id width.
                let at = |j: usize| unsafe { xs.get(j) };
                let slot = match (0..xs.cap()).position(|j| at(j) == NONE) {
                    Some(free) => Some(free),
                    None => (0..xs.cap())
                        .filter(|&j| indeg[at(j) as usize] >= 2)
                        .max_by_key(|&j| indeg[at(j) as usize]),
                };
                let Some(j) = slot else { continue };
                if at(j) != NONE {
                    indeg[at(j) as usize] -= 1;
                }
                // SAFETY: as `at`.
                unsafe { xs.set(j, u) };
                indeg[u as usize] += 1;
                reach(u, &mut seen, &mut stack);
                fixed += 1;
            }
            self.build = b;
        }
        fixed
    }

    /// Whether a reclaim pass is under way.
    pub fn reclaim_in_progress(&self) -> bool {
        self.reclaim_cursor.is_some()
    }

    /// Approximate nearest neighbours of `query`: the `k` best live points that pass
    /// `filter`, best first, in `scratch`'s result buffer. `ef` (raised to `k`) trades
    /// speed for recall. Points not yet linked are scanned exactly and merged in.
    pub fn search<'s>(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&dyn Filter>,
        scratch: &'s mut SearchScratch,
    ) -> Result<&'s [SearchHit], HnswError> {
        if k == 0 {
            return Err(HnswError::ZeroK);
        }
        self.prepare(query, &mut scratch.query)?;
        scratch.results.clear();
        let ef = ef.max(k);
        if let Some(f) = filter {
            let est = f
                .matching_ids()
                .map(<[NodeId]>::len)
                .or_else(|| f.estimated_matches());
            if let Some(e) = est
                && (e as f64) <= 4.0 * ((ef as f64) * (self.live as f64)).sqrt()
            {
                self.scan_filtered(f, k, scratch);
                return Ok(self.finish(k, scratch));
            }
        }
        if let Some(entry) = self.entry {
            let filtered = filter.is_some() || self.tombstones > 0;
            match &self.quant {
                Some(q) => {
                    scratch.query_codes.resize(self.code_len, 0);
                    let scale =
                        q.prepare_query(&scratch.query[..self.cfg.dim], &mut scratch.query_codes);
                    let space = if self.cfg.metric.is_l2() {
                        Space::U8L2
                    } else {
                        Space::I8Dot
                    };
                    let run = GraphSearch {
                        v: self.view(true),
                        entry,
                        ef,
                        slots: self.slots,
                        filtered,
                        filter,
                        layer: &mut scratch.layer,
                    };
                    let qp = scratch.query_codes.as_ptr().cast();
                    dispatch(self.isa, space, qp, self.code_len, scale, run);
                    scratch.rescore.clear();
                    scratch.rescore.extend_from_slice(&scratch.layer.top);
                    scratch.rescore.sort_unstable_by(|a, b| a.d.total_cmp(&b.d));
                    let run = Rescore {
                        v: self.view(false),
                        cands: &scratch.rescore,
                        first: (k * RESCORE_FACTOR).clamp(k, ef),
                        k,
                        out: &mut scratch.results,
                    };
                    dispatch(
                        self.isa,
                        self.f32_space(),
                        scratch.query.as_ptr().cast(),
                        self.padded,
                        1.0,
                        run,
                    );
                }
                None => {
                    let run = GraphSearch {
                        v: self.view(false),
                        entry,
                        ef,
                        slots: self.slots,
                        filtered,
                        filter,
                        layer: &mut scratch.layer,
                    };
                    dispatch(
                        self.isa,
                        self.f32_space(),
                        scratch.query.as_ptr().cast(),
                        self.padded,
                        1.0,
                        run,
                    );
                    scratch.results.extend_from_slice(&scratch.layer.top);
                }
            }
        }
        if !self.pending.is_empty() {
            let flags = &self.flags;
            scratch.rescore.clear();
            self.scan_f32(
                scratch.query.as_ptr().cast(),
                self.pending.iter().copied(),
                k,
                &mut scratch.rescore,
                |id: u32| {
                    flags[id as usize] & DELETED == 0
                        && filter.is_none_or(|f| f.matches(NodeId(id)))
                },
            );
            scratch.results.extend_from_slice(&scratch.rescore);
        }
        Ok(self.finish(k, scratch))
    }

    /// Exact nearest neighbours among `ids` (each at most once), with f32 vectors: one
    /// slice of a brute-force search that its caller cuts into pieces. Ids of deleted or
    /// free slots, and ids past the index, are skipped.
    pub fn exact_search_among<'s>(
        &self,
        query: &[f32],
        k: usize,
        ids: &[NodeId],
        scratch: &'s mut SearchScratch,
    ) -> Result<&'s [SearchHit], HnswError> {
        if k == 0 {
            return Err(HnswError::ZeroK);
        }
        self.prepare(query, &mut scratch.query)?;
        scratch.results.clear();
        let flags = &self.flags;
        let slots = self.slots;
        self.scan_f32(
            scratch.query.as_ptr().cast(),
            ids.iter()
                .map(|id| id.0)
                .filter(|&id| (id as usize) < slots),
            k,
            &mut scratch.results,
            |id: u32| flags[id as usize] & (DELETED | FREE) == 0,
        );
        Ok(self.finish(k, scratch))
    }

    /// Exact nearest neighbours by brute force over every live point (linked or not),
    /// with f32 vectors: ground truth for recall checks and tuning.
    pub fn exact_search<'s>(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&dyn Filter>,
        scratch: &'s mut SearchScratch,
    ) -> Result<&'s [SearchHit], HnswError> {
        if k == 0 {
            return Err(HnswError::ZeroK);
        }
        self.prepare(query, &mut scratch.query)?;
        scratch.results.clear();
        match filter {
            Some(f) => self.scan_filtered(f, k, scratch),
            None => {
                let flags = &self.flags;
                self.scan_f32(
                    scratch.query.as_ptr().cast(),
                    0..self.slots as u32,
                    k,
                    &mut scratch.results,
                    |id: u32| flags[id as usize] & (DELETED | FREE) == 0,
                );
            }
        }
        Ok(self.finish(k, scratch))
    }

    /// Exact scan over the points a filter admits (its id list when it has one).
    fn scan_filtered(&self, f: &dyn Filter, k: usize, scratch: &mut SearchScratch) {
        let flags = &self.flags;
        let slots = self.slots;
        let q = scratch.query.as_ptr().cast();
        match f.matching_ids() {
            Some(ids) => {
                let visited = &mut scratch.layer.visited;
                visited.reset(slots);
                self.scan_f32(
                    q,
                    ids.iter()
                        .map(|id| id.0)
                        .filter(|&id| (id as usize) < slots),
                    k,
                    &mut scratch.results,
                    |id: u32| {
                        // SAFETY: ids were filtered to `< slots`, the visited size.
                        flags[id as usize] & (DELETED | FREE) == 0
                            && !unsafe { visited.test_set(id) }
                    },
                );
            }
            None => {
                self.scan_f32(q, 0..slots as u32, k, &mut scratch.results, |id: u32| {
                    flags[id as usize] & (DELETED | FREE) == 0 && f.matches(NodeId(id))
                });
            }
        }
    }

    /// Scores the ids of `ids` that `accept` admits against the prepared query `q`
    /// with f32 vectors, keeping in `out` the candidates for the best `k`.
    fn scan_f32(
        &self,
        q: *const u8,
        ids: impl Iterator<Item = u32>,
        k: usize,
        out: &mut Vec<Cand>,
        accept: impl FnMut(u32) -> bool,
    ) {
        let run = ScanRun {
            v: self.view(false),
            ids,
            k,
            out,
            accept,
        };
        dispatch(self.isa, self.f32_space(), q, self.padded, 1.0, run);
    }

    fn finish<'s>(&self, k: usize, scratch: &'s mut SearchScratch) -> &'s [SearchHit] {
        let r = &mut scratch.results;
        if r.len() > k {
            r.select_nth_unstable_by(k, |a, b| a.d.total_cmp(&b.d).then(a.id.cmp(&b.id)));
            r.truncate(k);
        }
        r.sort_unstable_by(|a, b| a.d.total_cmp(&b.d).then(a.id.cmp(&b.id)));
        scratch.hits.clear();
        scratch.hits.extend(r.iter().map(|c| SearchHit {
            id: NodeId(c.id),
            score: -c.d,
        }));
        &scratch.hits
    }

    /// Where the index's bytes go.
    pub fn memory_usage(&self) -> MemoryUsage {
        let n = self.slots;
        let (vectors, codes) = match &self.codes {
            Some(_) => (n * self.vec_bytes(), n * self.code_len),
            None => (n * (self.stride - self.links_bytes), 0),
        };
        MemoryUsage {
            links: n * self.links_bytes + self.upper.capacity() * 4,
            vectors,
            codes,
            metadata: self.levels.capacity()
                + self.flags.capacity()
                + self.upper_off.capacity() * 4
                + (self.pending.capacity() + self.free.capacity()) * 4
                + self.quant.as_ref().map_or(0, |q| q.params().len() * 4)
                + self.build.bytes(),
        }
    }

    /// Total bytes held ([`MemoryUsage::total`]).
    pub fn memory_bytes(&self) -> usize {
        self.memory_usage().total()
    }

    /// Checks the graph's invariants: list lengths within limits, no self or duplicate
    /// links, no link to a pending or free slot, and every live linked point reachable
    /// from the entry point. Returns the first violation found. For tests and audits:
    /// O(points × m).
    pub fn check_invariants(&self) -> Result<(), String> {
        let v = self.view(false);
        let linked = |i: usize| self.flags[i] & (FREE | PENDING) == 0;
        let mut seen = vec![false; self.slots];
        let mut stack = Vec::new();
        if let Some((ep, top)) = self.entry {
            if !linked(ep as usize) {
                return Err(format!("entry point {ep} is not linked"));
            }
            if usize::from(self.levels[ep as usize]) != top {
                return Err(format!("entry level {top} differs from node level"));
            }
            seen[ep as usize] = true;
            stack.push(ep);
        }
        for i in 0..self.slots {
            if !linked(i) {
                continue;
            }
            for l in 0..=usize::from(self.levels[i]) {
                // SAFETY: `i` is a linked slot with level >= l.
                let links = unsafe { v.links(i as u32, l) };
                // SAFETY: a list has `cap` entries.
                let list: Vec<u32> = (0..links.cap()).map(|j| unsafe { links.get(j) }).collect();
                let cap = list.len();
                let len = list.iter().position(|&x| x == NONE).unwrap_or(cap);
                if list[len..].iter().any(|&x| x != NONE) {
                    return Err(format!("node {i} level {l}: ids after the end marker"));
                }
                for (j, &x) in list[..len].iter().enumerate() {
                    if x as usize >= self.slots || !linked(x as usize) {
                        return Err(format!("node {i} level {l}: link to unlinked slot {x}"));
                    }
                    if x as usize == i || list[..j].contains(&x) {
                        return Err(format!("node {i} level {l}: self or duplicate link {x}"));
                    }
                    if usize::from(self.levels[x as usize]) < l {
                        return Err(format!("node {i} level {l}: link to lower node {x}"));
                    }
                }
            }
        }
        while let Some(x) = stack.pop() {
            // SAFETY: `x` is a linked slot.
            let links = unsafe { v.links(x, 0) };
            // SAFETY: `x` is a linked slot, its list readable.
            for y in unsafe { links.ids() } {
                if !seen[y as usize] {
                    seen[y as usize] = true;
                    stack.push(y);
                }
            }
        }
        let unreachable = (0..self.slots)
            .filter(|&i| linked(i) && self.flags[i] & DELETED == 0 && !seen[i])
            .count();
        if unreachable > 0 {
            return Err(format!(
                "{unreachable} live points unreachable from the entry point"
            ));
        }
        Ok(())
    }
}

/// Cache lines to prefetch for a vector of `len` bytes at a multiple of `stride`: one
/// more when the stride does not keep vectors 64-byte aligned.
fn prefetch_lines(len: usize, stride: usize) -> usize {
    let extra = usize::from(!stride.is_multiple_of(64));
    (len / 64 + extra).clamp(1, PREFETCH_LINES)
}

/// Reinterprets f32s as their little-endian bytes (the index stores vectors as such).
fn bytemuck_f32(v: &[f32]) -> &[u8] {
    // SAFETY: f32 has no padding and u8 has alignment 1; the length covers the slice.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), size_of_val(v)) }
}

/// Upper-level descent then the level-0 search, leaving the best `ef` in `layer.top`.
struct GraphSearch<'a> {
    v: View,
    entry: (u32, usize),
    ef: usize,
    slots: usize,
    filtered: bool,
    filter: Option<&'a dyn Filter>,
    layer: &'a mut Layer,
}

impl WithDist for GraphSearch<'_> {
    type Out = ();

    #[inline(always)]
    fn call<D: Dist>(self, d: D) {
        let GraphSearch {
            v,
            entry: (ep, top),
            ef,
            slots,
            filtered,
            filter,
            layer,
        } = self;
        // SAFETY: the entry point is a linked slot of level `top`; the view is of a
        // consistent index whose lists name only slots below `slots`.
        unsafe {
            let ep_d = d.dist(v.vec(ep));
            let (ep, ep_d) = greedy(v, &d, ep, ep_d, top, 0);
            if filtered {
                let mut accept =
                    |id: u32| !v.deleted(id) && filter.is_none_or(|f| f.matches(NodeId(id)));
                search_layer::<D, true>(v, &d, ep, ep_d, 0, ef, slots, layer, &mut accept);
            } else {
                search_layer::<D, false>(v, &d, ep, ep_d, 0, ef, slots, layer, &mut |_| true);
            }
        }
    }
}

/// The closest point to a stored vector that a search from the entry point reaches
/// (so it is itself reachable), other than the point itself.
struct Nearest<'a> {
    v: View,
    entry: Option<(u32, usize)>,
    slots: usize,
    b: &'a mut BuildScratch,
    exclude: u32,
}

impl WithDist for Nearest<'_> {
    type Out = Option<u32>;

    #[inline(always)]
    fn call<D: Dist>(self, d: D) -> Option<u32> {
        let (ep, top) = self.entry?;
        let v = self.v;
        // SAFETY: a consistent index: the entry point has level `top`, list ids are
        // slots below `slots`.
        unsafe {
            let ep_d = d.dist(v.vec(ep));
            let (ep, ep_d) = greedy(v, &d, ep, ep_d, top, 0);
            let layer = &mut self.b.layer;
            search_layer::<D, false>(v, &d, ep, ep_d, 0, 64, self.slots, layer, &mut |_| true);
        }
        let exclude = self.exclude;
        self.b
            .layer
            .top
            .iter()
            .filter(|c| c.id != exclude)
            .min_by(|a, b| a.d.total_cmp(&b.d))
            .map(|c| c.id)
    }
}

/// Exact distances for candidates found on codes.
/// Rescores int8 traversal candidates with f32 distances: the `first` best
/// unconditionally, then each next one while its int8 distance is within
/// [`RESCORE_MARGIN`] times the largest int8 error seen so far of the `k`-th best f32
/// distance.
struct Rescore<'a> {
    v: View,
    /// Sorted by int8 distance, best first.
    cands: &'a [Cand],
    first: usize,
    k: usize,
    out: &'a mut Vec<Cand>,
}

impl WithDist for Rescore<'_> {
    type Out = ();

    #[inline(always)]
    fn call<D: Dist>(self, d: D) {
        let Rescore {
            v,
            cands,
            first,
            k,
            out,
        } = self;
        let mut error = 0.0f32;
        // The `k`-th best f32 distance once `first` are rescored. Later rescores can
        // only lower it, so keeping this one rescores a little more, never less.
        let mut kth = f32::INFINITY;
        for (i, c) in cands.iter().enumerate() {
            if i == first && out.len() >= k {
                out.select_nth_unstable_by(k - 1, |a, b| a.d.total_cmp(&b.d));
                kth = out[k - 1].d;
            }
            if i >= first && c.d > kth + RESCORE_MARGIN * error {
                break;
            }
            if let Some(n) = cands.get(i + 2) {
                crate::distance::prefetch(v.vec(n.id));
            }
            // SAFETY: candidates are slots of the index.
            let dd = unsafe { d.dist(v.vec(c.id)) };
            error = error.max((c.d - dd).abs());
            out.push(Cand { d: dd, id: c.id });
        }
    }
}

/// Exact scan over ids.
struct ScanRun<'a, I, A> {
    v: View,
    ids: I,
    k: usize,
    out: &'a mut Vec<Cand>,
    accept: A,
}

impl<I: Iterator<Item = u32>, A: FnMut(u32) -> bool> WithDist for ScanRun<'_, I, A> {
    type Out = ();

    #[inline(always)]
    fn call<D: Dist>(self, d: D) {
        let ScanRun {
            v,
            ids,
            k,
            out,
            mut accept,
        } = self;
        // SAFETY: callers pass only ids below the slot count.
        unsafe { scan(v, &d, ids, k, out, &mut accept) };
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_memory_budget() {
        let mut cfg = IndexConfig::new(128, Metric::L2);
        let (padded, _, m0, links, stride) = layout(&cfg, initial_id_bytes(&cfg));
        assert_eq!((padded, m0, links, stride), (128, 32, 128, 640));
        cfg.quantization = Quantization::Int8;
        // 3-byte ids: 96 bytes of links beside 128 of codes.
        let (_, code_len, _, links, stride) = layout(&cfg, initial_id_bytes(&cfg));
        assert_eq!((code_len, links, stride), (128, 96, 96));
        let (_, _, _, links, stride) = layout(&cfg, 4);
        assert_eq!((links, stride), (128, 128));
        cfg.dim = 100;
        let (_, code_len, _, _, stride) = layout(&cfg, 3);
        assert_eq!((code_len, stride), (128, 96));
    }

    /// Seeded vectors in [-1, 1).
    pub(crate) fn vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                (0..dim)
                    .map(|_| {
                        s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
                    })
                    .collect()
            })
            .collect()
    }

    fn answers(idx: &HnswIndex, queries: &[Vec<f32>]) -> Vec<Vec<SearchHit>> {
        let mut s = SearchScratch::new();
        queries
            .iter()
            .map(|q| idx.search(q, 10, 40, None, &mut s).unwrap().to_vec())
            .collect()
    }

    #[test]
    fn widening_to_4_byte_ids_keeps_the_graph() {
        let mut cfg = IndexConfig::new(24, Metric::L2);
        cfg.quantization = Quantization::Int8;
        let mut idx = HnswIndex::new(cfg).unwrap();
        let data = vectors(1_600, 24, 5);
        for v in &data[..1_500] {
            idx.insert(v).unwrap();
        }
        for id in (0..1_500).step_by(7) {
            idx.delete(NodeId(id)).unwrap();
        }
        idx.add(&data[1_500]).unwrap();
        assert!(idx.quant.is_some());
        assert_eq!((idx.id_bytes, idx.links_bytes, idx.stride), (3, 96, 96));
        idx.check_invariants().unwrap();
        let queries = vectors(30, 24, 6);
        let before = answers(&idx, &queries);

        idx.widen_ids().unwrap();
        assert_eq!((idx.id_bytes, idx.links_bytes, idx.stride), (4, 128, 128));
        idx.check_invariants().unwrap();
        assert_eq!(answers(&idx, &queries), before);

        // It keeps working, and saves and opens with 4-byte ids.
        idx.reclaim_deleted();
        idx.link_pending(usize::MAX);
        for v in &data[1_501..] {
            idx.insert(v).unwrap();
        }
        idx.check_invariants().unwrap();
        let after = answers(&idx, &queries);
        let path = std::env::temp_dir().join(format!("vectron-widen-{}.hnsw", std::process::id()));
        idx.save(&path).unwrap();
        let opened = HnswIndex::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(opened.id_bytes, 4);
        opened.check_invariants().unwrap();
        assert_eq!(answers(&opened, &queries), after);
    }

    #[test]
    fn levels_follow_the_hnsw_distribution() {
        let mut idx = HnswIndex::new(IndexConfig::new(4, Metric::L2)).unwrap();
        let n = 100_000;
        let above0 = (0..n).filter(|_| idx.next_level() > 0).count() as f64 / n as f64;
        // P(level >= 1) = 1/m.
        assert!((above0 - 1.0 / 16.0).abs() < 0.005, "{above0}");
    }
}
