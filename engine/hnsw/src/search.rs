//! The search loops: greedy descent on the upper levels, best-first search on one level,
//! exact scans, and the per-core scratch they reuse.
//!
//! Everything here works on raw pointers through [`View`], generic over [`Dist`], and is
//! `#[inline(always)]` so that it is compiled inside the instruction-set wrapper of
//! [`crate::distance::dispatch`].

use crate::distance::{Dist, prefetch};

/// Empty slot in a neighbour list. Lists are filled from the front; the first `NONE`
/// ends the list.
pub(crate) const NONE: u32 = u32::MAX;

/// Node flag: tombstoned (excluded from results, still traversed until reclaimed).
pub(crate) const DELETED: u8 = 1;
/// Node flag: stored and searchable by exact scan, not yet linked into the graph.
pub(crate) const PENDING: u8 = 2;
/// Node flag: empty slot, on the free list.
pub(crate) const FREE: u8 = 4;
/// Node flag (with `DELETED`): freed when the running reclaim pass completes. Never
/// saved: a pass interrupted by save/open restarts.
pub(crate) const RECLAIMING: u8 = 8;

/// A candidate: distance (lower is closer) and node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cand {
    pub(crate) d: f32,
    pub(crate) id: u32,
}

/// One neighbour list: `cap` little-endian ids of `w` bytes each, filled from the front,
/// the first [`NONE`] ending it. Level-0 lists of int8 indexes use 3-byte ids (a quarter
/// of their bytes saved, the stored form of `NONE` being `0xFFFFFF`); every other list
/// uses 4.
#[derive(Debug, Clone, Copy)]
pub(crate) struct List {
    p: *mut u8,
    cap: usize,
    w: usize,
    /// `0xFFFFFF` or `0xFFFFFFFF`: the low `w` bytes, and the stored `NONE`.
    mask: u32,
}

impl List {
    /// Entries the list can hold.
    #[inline(always)]
    pub(crate) fn cap(self) -> usize {
        self.cap
    }

    /// Address of the first entry (for prefetching).
    #[inline(always)]
    pub(crate) fn addr(self) -> *const u8 {
        self.p
    }

    /// Entry `i`, or [`NONE`].
    ///
    /// # Safety
    /// `i < cap`, and the list is readable.
    #[inline(always)]
    pub(crate) unsafe fn get(self, i: usize) -> u32 {
        // SAFETY: forwarded: the `w` bytes of entry `i` are in the list; the crate is
        // little-endian only. (The branch is the same for every list of a search.)
        let x = unsafe {
            let e = self.p.add(i * self.w);
            if self.w == 4 {
                e.cast::<u32>().read_unaligned()
            } else {
                u32::from(e.cast::<u16>().read_unaligned()) | u32::from(*e.add(2)) << 16
            }
        };
        if x == self.mask { NONE } else { x }
    }

    /// Writes entry `i` (`NONE` allowed).
    ///
    /// # Safety
    /// `i < cap`, the list is writable, and `id` is `NONE` or fits in `w` bytes below
    /// the stored `NONE`.
    #[inline(always)]
    pub(crate) unsafe fn set(self, i: usize, id: u32) {
        debug_assert!(id == NONE || id < self.mask);
        let b = id.to_le_bytes();
        // SAFETY: forwarded: the `w` bytes of entry `i` are in the list.
        unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), self.p.add(i * self.w), self.w) };
    }

    /// Calls `f` with each id before the first `NONE`: the hot loops' form, one loop
    /// per width with the width tested once per list.
    ///
    /// # Safety
    /// As [`List::get`], for the whole list.
    #[inline(always)]
    pub(crate) unsafe fn for_each(self, mut f: impl FnMut(u32)) {
        // SAFETY: forwarded: every entry below `cap` is in the list.
        unsafe {
            if self.w == 4 {
                let p = self.p.cast::<u32>();
                for i in 0..self.cap {
                    let x = p.add(i).read_unaligned();
                    if x == NONE {
                        break;
                    }
                    f(x);
                }
            } else {
                for i in 0..self.cap {
                    let e = self.p.add(3 * i);
                    let x =
                        u32::from(e.cast::<u16>().read_unaligned()) | u32::from(*e.add(2)) << 16;
                    if x == self.mask {
                        break;
                    }
                    f(x);
                }
            }
        }
    }

    /// The ids before the first `NONE`.
    ///
    /// # Safety
    /// As [`List::get`], for the whole list, while the iterator lives.
    #[inline(always)]
    pub(crate) unsafe fn ids(self) -> impl Iterator<Item = u32> {
        // SAFETY: forwarded: `i < cap`.
        (0..self.cap)
            .map(move |i| unsafe { self.get(i) })
            .take_while(|&x| x != NONE)
    }
}

/// Raw addresses of one index's graph and of the vectors a distance reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct View {
    /// Level-0 blocks; a block starts with `m0` neighbour ids of `id_bytes` bytes (and
    /// holds nothing else in int8 mode).
    pub(crate) blocks: *mut u8,
    pub(crate) stride: usize,
    pub(crate) m0: usize,
    pub(crate) m: usize,
    /// Bytes per level-0 id: 3 or 4.
    pub(crate) id_bytes: usize,
    /// The vectors the distance reads (f32 vectors or codes) and their stride.
    pub(crate) vecs: *const u8,
    pub(crate) vstride: usize,
    /// Cache lines of each vector to prefetch.
    pub(crate) pf_lines: usize,
    pub(crate) upper: *mut u32,
    pub(crate) upper_off: *const u32,
    pub(crate) flags: *const u8,
}

/// The stored `NONE` of `w`-byte ids.
#[inline(always)]
pub(crate) fn id_mask(w: usize) -> u32 {
    if w >= 4 {
        u32::MAX
    } else {
        (1u32 << (8 * w)) - 1
    }
}

impl View {
    /// Neighbour list of `id` on `level`.
    ///
    /// # Safety
    /// `id` is a slot of the index and has `level` (its upper chunk exists).
    #[inline(always)]
    pub(crate) unsafe fn links(self, id: u32, level: usize) -> List {
        // SAFETY: forwarded: the slot exists, so its block and (for level > 0) its
        // upper chunk are in bounds.
        unsafe {
            if level == 0 {
                List {
                    p: self.blocks.add(id as usize * self.stride),
                    cap: self.m0,
                    w: self.id_bytes,
                    mask: id_mask(self.id_bytes),
                }
            } else {
                let off = *self.upper_off.add(id as usize) as usize + (level - 1) * self.m;
                List {
                    p: self.upper.add(off).cast(),
                    cap: self.m,
                    w: 4,
                    mask: u32::MAX,
                }
            }
        }
    }

    /// Address of the vector of `id` (not dereferenced here).
    #[inline(always)]
    pub(crate) fn vec(self, id: u32) -> *const u8 {
        self.vecs.wrapping_add(id as usize * self.vstride)
    }

    /// Whether `id` is tombstoned.
    ///
    /// # Safety
    /// `id` is a slot of the index.
    #[inline(always)]
    pub(crate) unsafe fn deleted(self, id: u32) -> bool {
        // SAFETY: forwarded: flags has one byte per slot.
        unsafe { *self.flags.add(id as usize) & DELETED != 0 }
    }

    #[inline(always)]
    fn prefetch_vec(self, id: u32) {
        let p = self.vec(id);
        for l in 0..self.pf_lines {
            prefetch(p.wrapping_add(l * 64));
        }
    }
}

/// Visited set stamped by generation: reset is O(1) except once every 65,535 searches.
#[derive(Debug, Default)]
pub(crate) struct Visited {
    tags: Vec<u16>,
    epoch: u16,
}

impl Visited {
    /// Starts a new generation covering ids `< n`.
    pub(crate) fn reset(&mut self, n: usize) {
        if self.tags.len() < n {
            self.tags.resize(n, 0);
        }
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.tags.fill(0);
            self.epoch = 1;
        }
    }

    /// Marks `id` visited and says whether it already was.
    ///
    /// # Safety
    /// `id` is below the `n` of the last reset.
    #[inline(always)]
    pub(crate) unsafe fn test_set(&mut self, id: u32) -> bool {
        // SAFETY: forwarded: `id < n <= tags.len()`.
        let t = unsafe { self.tags.get_unchecked_mut(id as usize) };
        let seen = *t == self.epoch;
        *t = self.epoch;
        seen
    }

    #[inline(always)]
    fn prefetch(&self, id: u32) {
        prefetch(self.tags.as_ptr().wrapping_add(id as usize).cast());
    }

    pub(crate) fn bytes(&self) -> usize {
        self.tags.capacity() * 2
    }
}

/// Binary heap on a `Vec<Cand>`: a max-heap when `MAX`, else a min-heap.
pub(crate) mod heap {
    use super::Cand;

    #[inline(always)]
    fn above<const MAX: bool>(a: f32, b: f32) -> bool {
        if MAX { a > b } else { a < b }
    }

    #[inline(always)]
    pub(crate) fn push<const MAX: bool>(h: &mut Vec<Cand>, c: Cand) {
        let mut i = h.len();
        h.push(c);
        while i > 0 {
            let p = (i - 1) / 2;
            if above::<MAX>(c.d, h[p].d) {
                h[i] = h[p];
                i = p;
            } else {
                break;
            }
        }
        h[i] = c;
    }

    #[inline(always)]
    fn sift_down<const MAX: bool>(h: &mut [Cand], c: Cand) {
        let n = h.len();
        let mut i = 0;
        loop {
            let l = 2 * i + 1;
            if l >= n {
                break;
            }
            let r = l + 1;
            let best = if r < n && above::<MAX>(h[r].d, h[l].d) {
                r
            } else {
                l
            };
            if above::<MAX>(h[best].d, c.d) {
                h[i] = h[best];
                i = best;
            } else {
                break;
            }
        }
        h[i] = c;
    }

    #[inline(always)]
    pub(crate) fn pop<const MAX: bool>(h: &mut Vec<Cand>) -> Option<Cand> {
        let last = h.pop()?;
        if h.is_empty() {
            return Some(last);
        }
        let top = h[0];
        sift_down::<MAX>(h, last);
        Some(top)
    }

    /// Replaces the top in place (one sift instead of pop + push).
    #[inline(always)]
    pub(crate) fn replace_top<const MAX: bool>(h: &mut [Cand], c: Cand) {
        sift_down::<MAX>(h, c);
    }

    /// Keeps the `cap` smallest distances in a max-heap.
    #[inline(always)]
    pub(crate) fn push_bounded(h: &mut Vec<Cand>, c: Cand, cap: usize) {
        if h.len() < cap {
            push::<true>(h, c);
        } else if cap > 0 && c.d < h[0].d {
            replace_top::<true>(h, c);
        }
    }
}

/// Reusable state of one level search.
#[derive(Debug, Default)]
pub(crate) struct Layer {
    pub(crate) visited: Visited,
    /// Candidates to expand (min-heap).
    pub(crate) cand: Vec<Cand>,
    /// Best results so far (max-heap, at most `ef`).
    pub(crate) top: Vec<Cand>,
    /// Unvisited neighbours of the node being expanded.
    pub(crate) buf: Vec<u32>,
}

impl Layer {
    pub(crate) fn bytes(&self) -> usize {
        self.visited.bytes()
            + (self.cand.capacity() + self.top.capacity()) * 8
            + self.buf.capacity() * 4
    }
}

/// Greedy descent from `(cur, cur_d)` on levels `from` down to `to + 1`.
///
/// # Safety
/// `cur` is a slot with level `>= from`; the view is of a consistent index.
#[inline(always)]
pub(crate) unsafe fn greedy<D: Dist>(
    v: View,
    d: &D,
    mut cur: u32,
    mut cur_d: f32,
    from: usize,
    to: usize,
) -> (u32, f32) {
    let mut level = from;
    while level > to {
        loop {
            let mut changed = false;
            // SAFETY: `cur` has level >= `level` (it came from a list on this level or
            // is the entry point), and every id in a list is a slot of the index.
            unsafe {
                let links = v.links(cur, level);
                links.for_each(|nb| v.prefetch_vec(nb));
                links.for_each(|nb| {
                    let dd = d.dist(v.vec(nb));
                    if dd < cur_d {
                        cur_d = dd;
                        cur = nb;
                        changed = true;
                    }
                });
            }
            if !changed {
                break;
            }
        }
        level -= 1;
    }
    (cur, cur_d)
}

/// Best-first search on `level` from one entry point, keeping the `ef` closest accepted
/// nodes in `s.top` (a max-heap). With `FILTERED`, nodes for which `accept` is false are
/// traversed but never enter `top`, and the search goes on until `top` holds `ef`.
///
/// # Safety
/// `ep` is a slot on `level`; `s.visited` was sized for every slot of the index.
#[inline(always)]
#[expect(
    clippy::too_many_arguments,
    reason = "hot inlined loop; a struct would only rename the arguments"
)]
pub(crate) unsafe fn search_layer<D: Dist, const FILTERED: bool>(
    v: View,
    d: &D,
    ep: u32,
    ep_d: f32,
    level: usize,
    ef: usize,
    n_slots: usize,
    s: &mut Layer,
    accept: &mut impl FnMut(u32) -> bool,
) {
    s.visited.reset(n_slots);
    s.cand.clear();
    s.top.clear();
    if s.buf.len() < v.m0 {
        s.buf.resize(v.m0, NONE);
    }
    let mut lower = f32::INFINITY;
    // SAFETY: `ep < n_slots`.
    unsafe { s.visited.test_set(ep) };
    heap::push::<false>(&mut s.cand, Cand { d: ep_d, id: ep });
    if !FILTERED || accept(ep) {
        s.top.push(Cand { d: ep_d, id: ep });
        lower = ep_d;
    }
    while let Some(c) = heap::pop::<false>(&mut s.cand) {
        if c.d > lower && (!FILTERED || s.top.len() >= ef) {
            break;
        }
        if let Some(next) = s.cand.first() {
            // The next candidate's neighbour list is likely read next.
            // SAFETY: computing the address only; `links` does not read.
            prefetch(unsafe { v.links(next.id, 0) }.addr());
        }
        // Pass 1: collect the unvisited neighbours.
        let mut n = 0;
        // SAFETY: `c.id` is on `level` (reached through lists of this level); ids in
        // lists are slots (< n_slots, the visited size); `buf` holds `m0` >= cap.
        unsafe {
            let links = v.links(c.id, level);
            let buf = s.buf.as_mut_ptr();
            let visited = &mut s.visited;
            links.for_each(|nb| visited.prefetch(nb));
            links.for_each(|nb| {
                if !visited.test_set(nb) {
                    *buf.add(n) = nb;
                    n += 1;
                    v.prefetch_vec(nb);
                }
            });
        }
        // Pass 2: distances.
        for i in 0..n {
            // SAFETY: `i < n <= m0 <= buf.len()`.
            let nb = unsafe { *s.buf.get_unchecked(i) };
            // SAFETY: `nb` is a slot, so its vector is in bounds.
            let dd = unsafe { d.dist(v.vec(nb)) };
            if s.top.len() < ef || dd < lower {
                heap::push::<false>(&mut s.cand, Cand { d: dd, id: nb });
                if !FILTERED || accept(nb) {
                    if s.top.len() < ef {
                        heap::push::<true>(&mut s.top, Cand { d: dd, id: nb });
                    } else {
                        heap::replace_top::<true>(&mut s.top, Cand { d: dd, id: nb });
                    }
                    lower = s.top[0].d;
                }
            }
        }
    }
}

/// Scans `ids`, keeping the `k` closest for which `accept` holds in `out` (a max-heap).
///
/// # Safety
/// Every id is a slot of the index.
#[inline(always)]
pub(crate) unsafe fn scan<D: Dist>(
    v: View,
    d: &D,
    ids: impl Iterator<Item = u32>,
    k: usize,
    out: &mut Vec<Cand>,
    accept: &mut impl FnMut(u32) -> bool,
) {
    let mut ids = ids.peekable();
    while let Some(id) = ids.next() {
        if let Some(&next) = ids.peek() {
            v.prefetch_vec(next);
        }
        if accept(id) {
            // SAFETY: forwarded: `id` is a slot.
            let dd = unsafe { d.dist(v.vec(id)) };
            heap::push_bounded(out, Cand { d: dd, id }, k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heaps_order_and_bound() {
        let mut h = Vec::new();
        let ds = [5.0, 1.0, 4.0, 2.0, 3.0, 0.5, 9.0];
        for (i, &d) in ds.iter().enumerate() {
            heap::push::<false>(&mut h, Cand { d, id: i as u32 });
        }
        let mut out = Vec::new();
        while let Some(c) = heap::pop::<false>(&mut h) {
            out.push(c.d);
        }
        assert_eq!(out, vec![0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 9.0]);
        let mut top = Vec::new();
        for (i, &d) in ds.iter().enumerate() {
            heap::push_bounded(&mut top, Cand { d, id: i as u32 }, 3);
        }
        let mut kept: Vec<f32> = top.iter().map(|c| c.d).collect();
        kept.sort_by(f32::total_cmp);
        assert_eq!(kept, vec![0.5, 1.0, 2.0]);
        assert_eq!(top[0].d, 2.0);
    }

    #[test]
    fn three_and_four_byte_lists_round_trip_every_id_width() {
        for w in [3usize, 4] {
            let ids = [0u32, 1, 0xFFFF, 0x1_0000, 0x12_3456, id_mask(w) - 1];
            let mut bytes = vec![0xAAu8; 8 * w];
            let list = List {
                p: bytes.as_mut_ptr(),
                cap: 8,
                w,
                mask: id_mask(w),
            };
            // SAFETY: 8 entries of `w` bytes fit in `bytes`; ids fit the width.
            unsafe {
                for (i, &x) in ids.iter().enumerate() {
                    list.set(i, x);
                }
                list.set(ids.len(), NONE);
                list.set(ids.len() + 1, 7);
                assert_eq!(list.get(ids.len()), NONE);
                assert_eq!(list.ids().collect::<Vec<_>>(), ids, "width {w}");
                let mut seen = Vec::new();
                list.for_each(|x| seen.push(x));
                assert_eq!(seen, ids, "width {w}");
            }
        }
    }

    #[test]
    fn visited_resets_by_generation() {
        let mut v = Visited::default();
        v.reset(4);
        // SAFETY: ids below 4.
        unsafe {
            assert!(!v.test_set(3));
            assert!(v.test_set(3));
            v.reset(4);
            assert!(!v.test_set(3));
        }
        for _ in 0..70_000 {
            v.reset(4);
        }
        // SAFETY: as above.
        unsafe { assert!(!v.test_set(1)) };
    }
}
