//! Filters: which ids a search may return.

use crate::NodeId;

/// A predicate over ids, implemented by the caller (for example from payload indexes).
///
/// The index plans with the two optional hints: when few ids match it scores exactly
/// those (from [`Filter::matching_ids`] when given, else by testing every id) instead of
/// walking the graph, where a selective filter would make the walk long. Otherwise the
/// graph walk passes through non-matching nodes and keeps only matching ones.
pub trait Filter {
    /// Whether `id` may appear in the results.
    fn matches(&self, id: NodeId) -> bool;

    /// About how many ids match, when known.
    fn estimated_matches(&self) -> Option<usize> {
        None
    }

    /// The matching ids, when the caller holds them as a list (duplicates and ids the
    /// index does not hold are ignored).
    fn matching_ids(&self) -> Option<&[NodeId]> {
        None
    }
}

impl<F: Fn(NodeId) -> bool> Filter for F {
    fn matches(&self, id: NodeId) -> bool {
        self(id)
    }
}

/// A filter from an explicit list of ids (a posting list): a bitmap for `matches` and
/// the list itself for exact scans.
#[derive(Debug, Clone, Default)]
pub struct IdFilter {
    ids: Vec<NodeId>,
    bits: Vec<u64>,
}

impl IdFilter {
    /// A filter matching exactly `ids`.
    pub fn new(mut ids: Vec<NodeId>) -> Self {
        ids.sort_unstable();
        ids.dedup();
        let words = ids.last().map_or(0, |id| id.0 as usize / 64 + 1);
        let mut bits = vec![0u64; words];
        for id in &ids {
            bits[id.0 as usize / 64] |= 1 << (id.0 % 64);
        }
        Self { ids, bits }
    }

    /// Number of ids in the filter.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when no id matches.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

impl Filter for IdFilter {
    fn matches(&self, id: NodeId) -> bool {
        self.bits
            .get(id.0 as usize / 64)
            .is_some_and(|w| w & (1 << (id.0 % 64)) != 0)
    }

    fn estimated_matches(&self) -> Option<usize> {
        Some(self.ids.len())
    }

    fn matching_ids(&self) -> Option<&[NodeId]> {
        Some(&self.ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_filter_matches_its_ids_only() {
        let f = IdFilter::new(vec![NodeId(5), NodeId(64), NodeId(5), NodeId(200)]);
        assert_eq!(f.len(), 3);
        assert!(f.matches(NodeId(5)) && f.matches(NodeId(64)) && f.matches(NodeId(200)));
        assert!(!f.matches(NodeId(6)) && !f.matches(NodeId(100_000)));
        assert_eq!(
            f.matching_ids().unwrap(),
            &[NodeId(5), NodeId(64), NodeId(200)]
        );
        let odd = |id: NodeId| id.0 % 2 == 1;
        assert!(odd.matches(NodeId(3)) && odd.estimated_matches().is_none());
    }
}
