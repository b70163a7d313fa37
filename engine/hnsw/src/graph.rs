//! Graph construction and repair: hnswlib's insertion (`addPoint`,
//! `mutuallyConnectNewElement`) and neighbour heuristic (`getNeighborsByHeuristic2`),
//! and tombstone consolidation that reconnects around deleted nodes.

use crate::distance::{Dist, WithDist};
use crate::search::{Cand, DELETED, FREE, Layer, List, NONE, PENDING, View, greedy, search_layer};

/// Reusable buffers of insertion and repair.
#[derive(Debug, Default)]
pub(crate) struct BuildScratch {
    pub(crate) layer: Layer,
    sel: Vec<Cand>,
    sel2: Vec<Cand>,
    tmp: Vec<Cand>,
    tmp2: Vec<Cand>,
}

impl BuildScratch {
    pub(crate) fn bytes(&self) -> usize {
        self.layer.bytes()
            + (self.sel.capacity()
                + self.sel2.capacity()
                + self.tmp.capacity()
                + self.tmp2.capacity())
                * 8
    }
}

/// hnswlib's heuristic: walk candidates closest first and keep one only if it is closer
/// to the base than to every neighbour kept so far; at most `m`. With fewer than `m`
/// candidates all are kept.
///
/// # Safety
/// Every candidate id is a slot of the view's index.
#[inline(always)]
unsafe fn select<D: Dist>(v: View, d: &D, sorted: &[Cand], m: usize, out: &mut Vec<Cand>) {
    out.clear();
    if sorted.len() < m {
        out.extend_from_slice(sorted);
        return;
    }
    for &c in sorted {
        if out.len() >= m {
            break;
        }
        let cv = v.vec(c.id);
        // SAFETY: forwarded: ids are slots.
        let good = out
            .iter()
            .all(|s| unsafe { d.rebase(v.vec(s.id)).dist(cv) } >= c.d);
        if good {
            out.push(c);
        }
    }
}

/// [`select`], then fill the list up to `m` with the closest pruned candidates
/// ("keep pruned connections"): repaired lists lose the in-links the deleted nodes gave
/// them, and extra out-links compensate.
///
/// # Safety
/// As [`select`].
#[inline(always)]
unsafe fn select_filled<D: Dist>(v: View, d: &D, sorted: &[Cand], m: usize, out: &mut Vec<Cand>) {
    // SAFETY: forwarded.
    unsafe { select(v, d, sorted, m, out) };
    if out.len() < m && sorted.len() > out.len() {
        let kept = out.len();
        for &c in sorted {
            if out.len() >= m {
                break;
            }
            if !out[..kept].iter().any(|s| s.id == c.id) {
                out.push(c);
            }
        }
    }
}

/// Writes `ids` into a list, padding with `NONE`.
///
/// # Safety
/// The list is writable and `ids.len() <= cap`; the ids fit its width.
#[inline(always)]
unsafe fn write_list(links: List, ids: &[Cand]) {
    for i in 0..links.cap() {
        // SAFETY: forwarded.
        unsafe { links.set(i, ids.get(i).map_or(NONE, |c| c.id)) };
    }
}

/// Adds `node` to the list of `s` on `level`, re-pruning with the heuristic when full.
///
/// # Safety
/// `s` and `node` are slots with level `>= level`.
#[inline(always)]
#[expect(
    clippy::too_many_arguments,
    reason = "hot inlined helper; a struct would only rename the arguments"
)]
unsafe fn connect<D: Dist>(
    v: View,
    d: &D,
    s: u32,
    node: u32,
    d_sn: f32,
    level: usize,
    tmp: &mut Vec<Cand>,
    sel: &mut Vec<Cand>,
) {
    // SAFETY: forwarded: `s` is a slot on `level` and list ids are slots.
    unsafe {
        let links = v.links(s, level);
        let cap = links.cap();
        let count = links.ids().count();
        if count < cap {
            links.set(count, node);
            return;
        }
        let ds = d.rebase(v.vec(s));
        tmp.clear();
        tmp.push(Cand { d: d_sn, id: node });
        for i in 0..cap {
            let e = links.get(i);
            tmp.push(Cand {
                d: ds.dist(v.vec(e)),
                id: e,
            });
        }
        tmp.sort_unstable_by(|a, b| a.d.total_cmp(&b.d));
        select(v, d, tmp, cap, sel);
        write_list(links, sel);
    }
}

/// Links one stored node into the graph (hnswlib `addPoint`). The distance's query is
/// the node's own f32 vector.
pub(crate) struct Insert<'a> {
    pub(crate) v: View,
    pub(crate) node: u32,
    pub(crate) level: usize,
    pub(crate) ef_construction: usize,
    pub(crate) slots: usize,
    pub(crate) any_deleted: bool,
    pub(crate) entry: &'a mut Option<(u32, usize)>,
    pub(crate) b: &'a mut BuildScratch,
}

impl WithDist for Insert<'_> {
    type Out = ();

    #[inline(always)]
    fn call<D: Dist>(self, d: D) {
        let Insert {
            v,
            node,
            level,
            ef_construction,
            slots,
            any_deleted,
            entry,
            b,
        } = self;
        let Some((mut ep, max_level)) = *entry else {
            *entry = Some((node, level));
            return;
        };
        // SAFETY: the view is of a consistent index: the entry point has `max_level`,
        // every list id is a slot below `slots`, and `node` owns lists up to `level`.
        unsafe {
            let mut ep_d = d.dist(v.vec(ep));
            if level < max_level {
                (ep, ep_d) = greedy(v, &d, ep, ep_d, max_level, level);
            }
            for l in (0..=level.min(max_level)).rev() {
                if any_deleted {
                    search_layer::<D, true>(
                        v,
                        &d,
                        ep,
                        ep_d,
                        l,
                        ef_construction,
                        slots,
                        &mut b.layer,
                        &mut |id| !v.deleted(id),
                    );
                } else {
                    search_layer::<D, false>(
                        v,
                        &d,
                        ep,
                        ep_d,
                        l,
                        ef_construction,
                        slots,
                        &mut b.layer,
                        &mut |_| true,
                    );
                }
                b.tmp.clear();
                b.tmp.extend_from_slice(&b.layer.top);
                b.tmp.sort_unstable_by(|a, b| a.d.total_cmp(&b.d));
                select(v, &d, &b.tmp, v.m, &mut b.sel);
                write_list(v.links(node, l), &b.sel);
                for j in 0..b.sel.len() {
                    let s = b.sel[j];
                    connect(v, &d, s.id, node, s.d, l, &mut b.tmp2, &mut b.sel2);
                }
                if let Some(c) = b.sel.first() {
                    ep = c.id;
                    ep_d = c.d;
                }
            }
        }
        if level > max_level {
            *entry = Some((node, level));
        }
    }
}

/// Reconnects every live node that lists a tombstoned neighbour: its new candidates are
/// its live neighbours plus the live neighbours of its deleted ones, pruned with the
/// heuristic (FreshDiskANN's consolidation). Afterwards no list names a deleted node.
pub(crate) struct Consolidate<'a> {
    pub(crate) v: View,
    /// Slots `from..to` are repaired.
    pub(crate) from: usize,
    pub(crate) to: usize,
    pub(crate) slots: usize,
    pub(crate) levels: &'a [u8],
    pub(crate) flags: &'a [u8],
    pub(crate) b: &'a mut BuildScratch,
}

impl WithDist for Consolidate<'_> {
    type Out = ();

    #[inline(always)]
    fn call<D: Dist>(self, d: D) {
        let Consolidate {
            v,
            from,
            to,
            slots,
            levels,
            flags,
            b,
        } = self;
        for (p, (&flag, &level)) in flags.iter().zip(levels).enumerate().take(to).skip(from) {
            if flag & (DELETED | FREE | PENDING) != 0 {
                continue;
            }
            let p = p as u32;
            for l in 0..=usize::from(level) {
                // SAFETY: `p` is a linked slot with level >= l; list ids are slots, and
                // a node listed on level l has level >= l.
                unsafe {
                    let links = v.links(p, l);
                    if !links.ids().any(|e| v.deleted(e)) {
                        continue;
                    }
                    let dp = d.rebase(v.vec(p));
                    b.layer.visited.reset(slots);
                    b.layer.visited.test_set(p);
                    b.tmp.clear();
                    for e in links.ids() {
                        if !v.deleted(e) {
                            if !b.layer.visited.test_set(e) {
                                b.tmp.push(Cand {
                                    d: dp.dist(v.vec(e)),
                                    id: e,
                                });
                            }
                            continue;
                        }
                        for f in v.links(e, l).ids() {
                            if !v.deleted(f) && !b.layer.visited.test_set(f) {
                                b.tmp.push(Cand {
                                    d: dp.dist(v.vec(f)),
                                    id: f,
                                });
                            }
                        }
                    }
                    b.tmp.sort_unstable_by(|a, b| a.d.total_cmp(&b.d));
                    select_filled(v, &dp, &b.tmp, links.cap(), &mut b.sel);
                    write_list(links, &b.sel);
                }
            }
        }
    }
}
