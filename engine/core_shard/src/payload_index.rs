//! Payload indexes of one shard: keyword → posting bitmap, number → sorted postings.
//!
//! A collection declares which payload keys to index and how. The shard keeps each
//! index current on every upsert and delete, and the filter planner turns conditions
//! on indexed keys into bitmaps of internal ids, so a selective filter never scans
//! every payload.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

use roaring::RoaringBitmap;
use serde_json::Value;
use vectron_proto::v1::{PayloadFieldKind, PayloadIndex};

use crate::filter::{Range, lookup};

/// Every payload index of a shard.
#[derive(Debug, Default)]
pub(crate) struct PayloadIndexes {
    keyword: HashMap<String, KeywordIndex>,
    numeric: HashMap<String, NumericIndex>,
}

#[derive(Debug)]
struct KeywordIndex {
    path: Vec<String>,
    postings: HashMap<Box<str>, RoaringBitmap>,
}

#[derive(Debug)]
struct NumericIndex {
    path: Vec<String>,
    /// Keyed by the order-preserving bits of the value (see [`OrderedF64`]).
    postings: BTreeMap<OrderedF64, RoaringBitmap>,
}

/// An `f64` with a total order that agrees with `<` on every non-NaN value. JSON cannot
/// hold NaN, so no NaN is ever stored. -0.0 and 0.0 are one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct OrderedF64(u64);

impl OrderedF64 {
    fn new(x: f64) -> Self {
        let x = if x == 0.0 { 0.0 } else { x };
        let bits = x.to_bits();
        // Flip all bits of negatives and the sign bit of positives: the unsigned order
        // of the result is the numeric order.
        Self(if bits >> 63 == 1 {
            !bits
        } else {
            bits | (1 << 63)
        })
    }
}

impl PayloadIndexes {
    /// Empty indexes for the declared fields. Kinds other than keyword and numeric are
    /// refused before a collection is created; they are ignored here.
    pub(crate) fn new(declared: &[PayloadIndex]) -> Self {
        let mut out = Self::default();
        for d in declared {
            let path = d.field.split('.').map(str::to_owned).collect();
            match d.kind() {
                PayloadFieldKind::Keyword => {
                    out.keyword.insert(
                        d.field.clone(),
                        KeywordIndex {
                            path,
                            postings: HashMap::new(),
                        },
                    );
                }
                PayloadFieldKind::Numeric => {
                    out.numeric.insert(
                        d.field.clone(),
                        NumericIndex {
                            path,
                            postings: BTreeMap::new(),
                        },
                    );
                }
                PayloadFieldKind::Unspecified => {}
            }
        }
        out
    }

    /// Whether any index is declared.
    pub(crate) fn is_empty(&self) -> bool {
        self.keyword.is_empty() && self.numeric.is_empty()
    }

    /// Adds point `id` with `payload` to every index whose key it holds.
    pub(crate) fn insert(&mut self, id: u32, payload: &Value) {
        for index in self.keyword.values_mut() {
            for_each_value(payload, &index.path, |v| {
                if let Value::String(s) = v {
                    index
                        .postings
                        .entry(s.as_str().into())
                        .or_default()
                        .insert(id);
                }
            });
        }
        for index in self.numeric.values_mut() {
            for_each_value(payload, &index.path, |v| {
                if let Some(x) = v.as_f64() {
                    index
                        .postings
                        .entry(OrderedF64::new(x))
                        .or_default()
                        .insert(id);
                }
            });
        }
    }

    /// Removes point `id`, which was inserted with `payload`.
    pub(crate) fn remove(&mut self, id: u32, payload: &Value) {
        for index in self.keyword.values_mut() {
            for_each_value(payload, &index.path, |v| {
                if let Value::String(s) = v
                    && let Some(set) = index.postings.get_mut(s.as_str())
                {
                    set.remove(id);
                    if set.is_empty() {
                        index.postings.remove(s.as_str());
                    }
                }
            });
        }
        for index in self.numeric.values_mut() {
            for_each_value(payload, &index.path, |v| {
                if let Some(x) = v.as_f64() {
                    let key = OrderedF64::new(x);
                    if let Some(set) = index.postings.get_mut(&key) {
                        set.remove(id);
                        if set.is_empty() {
                            index.postings.remove(&key);
                        }
                    }
                }
            });
        }
    }

    /// Points whose `key` equals any of `words`, if `key` has a keyword index.
    pub(crate) fn keyword(&self, key: &str, words: &[String]) -> Option<RoaringBitmap> {
        let index = self.keyword.get(key)?;
        let mut out = RoaringBitmap::new();
        for w in words {
            if let Some(set) = index.postings.get(w.as_str()) {
                out |= set;
            }
        }
        Some(out)
    }

    /// Points whose `key` holds a number in `range`, if `key` has a numeric index.
    pub(crate) fn numeric(&self, key: &str, range: &Range) -> Option<RoaringBitmap> {
        let index = self.numeric.get(key)?;
        let lower = match (range.gt, range.gte) {
            (Some(a), Some(b)) if a >= b => Bound::Excluded(OrderedF64::new(a)),
            (_, Some(b)) => Bound::Included(OrderedF64::new(b)),
            (Some(a), None) => Bound::Excluded(OrderedF64::new(a)),
            (None, None) => Bound::Unbounded,
        };
        let upper = match (range.lt, range.lte) {
            (Some(a), Some(b)) if a <= b => Bound::Excluded(OrderedF64::new(a)),
            (_, Some(b)) => Bound::Included(OrderedF64::new(b)),
            (Some(a), None) => Bound::Excluded(OrderedF64::new(a)),
            (None, None) => Bound::Unbounded,
        };
        let mut out = RoaringBitmap::new();
        if range_is_empty(lower, upper) {
            return Some(out);
        }
        for set in index.postings.range((lower, upper)).map(|(_, s)| s) {
            out |= set;
        }
        Some(out)
    }

    /// Approximate heap bytes held by the indexes.
    pub(crate) fn memory_bytes(&self) -> u64 {
        let keyword: u64 = self
            .keyword
            .values()
            .flat_map(|i| i.postings.iter())
            .map(|(k, s)| k.len() as u64 + s.serialized_size() as u64 + 48)
            .sum();
        let numeric: u64 = self
            .numeric
            .values()
            .flat_map(|i| i.postings.values())
            .map(|s| s.serialized_size() as u64 + 48)
            .sum();
        keyword + numeric
    }
}

/// `BTreeMap::range` panics on an inverted or empty-excluded range: detect those.
fn range_is_empty(lower: Bound<OrderedF64>, upper: Bound<OrderedF64>) -> bool {
    match (lower, upper) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b)) => a >= b,
        _ => false,
    }
}

/// Calls `f` for the value at `path`, or for each element when it is an array.
fn for_each_value(payload: &Value, path: &[String], mut f: impl FnMut(&Value)) {
    match lookup(payload, path) {
        Some(Value::Array(items)) => items.iter().for_each(f),
        Some(v) => f(v),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn indexes() -> PayloadIndexes {
        PayloadIndexes::new(&[
            PayloadIndex {
                field: "title".into(),
                kind: PayloadFieldKind::Keyword.into(),
            },
            PayloadIndex {
                field: "meta.year".into(),
                kind: PayloadFieldKind::Numeric.into(),
            },
        ])
    }

    fn ids(set: Option<RoaringBitmap>) -> Vec<u32> {
        set.expect("indexed").iter().collect()
    }

    fn range(gt: Option<f64>, gte: Option<f64>, lt: Option<f64>, lte: Option<f64>) -> Range {
        Range { gt, gte, lt, lte }
    }

    #[test]
    fn ordered_f64_orders_like_numbers() {
        let xs = [-1e300, -2.5, -1.0, -0.0, 0.0, 1e-300, 1.0, 3.5, f64::MAX];
        for w in xs.windows(2) {
            assert!(
                OrderedF64::new(w[0]) <= OrderedF64::new(w[1]),
                "{} vs {}",
                w[0],
                w[1]
            );
        }
        assert_eq!(OrderedF64::new(-0.0), OrderedF64::new(0.0));
    }

    #[test]
    fn keyword_postings_follow_inserts_and_removes() {
        let mut ix = indexes();
        let a = json!({"title": ["Moon", "Apollo"]});
        ix.insert(1, &a);
        ix.insert(2, &json!({"title": "Moon"}));
        ix.insert(3, &json!({"title": 5}));
        assert_eq!(ids(ix.keyword("title", &["Moon".into()])), [1, 2]);
        assert_eq!(
            ids(ix.keyword("title", &["Apollo".into(), "Moon".into()])),
            [1, 2]
        );
        ix.remove(1, &a);
        assert_eq!(ids(ix.keyword("title", &["Moon".into()])), [2]);
        assert!(ids(ix.keyword("title", &["Apollo".into()])).is_empty());
        assert!(ix.keyword("other", &["x".into()]).is_none());
        assert!(ix.keyword("meta.year", &["x".into()]).is_none());
    }

    #[test]
    fn numeric_ranges_respect_every_bound() {
        let mut ix = indexes();
        for (id, year) in [(1, 1969.0), (2, 1976.5), (3, 2019.0), (4, -3.0)] {
            ix.insert(id, &json!({"meta": {"year": year}}));
        }
        ix.insert(5, &json!({"meta": {"year": "1970"}}));
        assert_eq!(
            ids(ix.numeric("meta.year", &range(None, Some(1969.0), None, None))),
            [1, 2, 3]
        );
        assert_eq!(
            ids(ix.numeric("meta.year", &range(Some(1969.0), None, None, None))),
            [2, 3]
        );
        assert_eq!(
            ids(ix.numeric("meta.year", &range(None, None, Some(2019.0), None))),
            [1, 2, 4]
        );
        assert_eq!(
            ids(ix.numeric("meta.year", &range(None, None, None, Some(2019.0)))),
            [1, 2, 3, 4]
        );
        // Both kinds of bound on one side: the tighter one wins.
        let r = range(Some(1976.5), Some(1969.0), Some(3000.0), Some(2019.0));
        assert_eq!(ids(ix.numeric("meta.year", &r)), [3]);
        // Inverted and empty ranges give nothing instead of panicking.
        assert!(ids(ix.numeric("meta.year", &range(Some(5.0), None, Some(1.0), None))).is_empty());
        assert!(ids(ix.numeric("meta.year", &range(Some(1.0), None, Some(1.0), None))).is_empty());
        assert!(ids(ix.numeric("meta.year", &range(None, Some(1.0), None, Some(1.0)))).is_empty());
    }
}
