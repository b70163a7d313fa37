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
    /// Whether it holds every live point: filters use it only then.
    ready: bool,
}

#[derive(Debug)]
struct NumericIndex {
    path: Vec<String>,
    /// Keyed by the order-preserving bits of the value (see [`OrderedF64`]).
    postings: BTreeMap<OrderedF64, RoaringBitmap>,
    /// Whether it holds every live point: filters use it only then.
    ready: bool,
}

impl KeywordIndex {
    fn new(field: &str, ready: bool) -> Self {
        Self {
            path: field.split('.').map(str::to_owned).collect(),
            postings: HashMap::new(),
            ready,
        }
    }

    fn insert(&mut self, id: u32, payload: &Value) {
        for_each_value(payload, &self.path, |v| {
            if let Value::String(s) = v {
                self.postings
                    .entry(s.as_str().into())
                    .or_default()
                    .insert(id);
            }
        });
    }
}

impl NumericIndex {
    fn new(field: &str, ready: bool) -> Self {
        Self {
            path: field.split('.').map(str::to_owned).collect(),
            postings: BTreeMap::new(),
            ready,
        }
    }

    fn insert(&mut self, id: u32, payload: &Value) {
        for_each_value(payload, &self.path, |v| {
            if let Some(x) = v.as_f64() {
                self.postings
                    .entry(OrderedF64::new(x))
                    .or_default()
                    .insert(id);
            }
        });
    }
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
    /// Empty indexes for the declared fields, ready: the shard is empty, or its points
    /// are about to be inserted (replay, restore). Kinds other than keyword and numeric
    /// are refused before a collection is created; they are ignored here.
    pub(crate) fn new(declared: &[PayloadIndex]) -> Self {
        let mut out = Self::default();
        out.add(declared, true);
        out
    }

    fn add(&mut self, declared: &[PayloadIndex], ready: bool) -> bool {
        let mut added = false;
        for d in declared {
            match d.kind() {
                PayloadFieldKind::Keyword if !self.keyword.contains_key(&d.field) => {
                    self.keyword
                        .insert(d.field.clone(), KeywordIndex::new(&d.field, ready));
                    added = true;
                }
                PayloadFieldKind::Numeric if !self.numeric.contains_key(&d.field) => {
                    self.numeric
                        .insert(d.field.clone(), NumericIndex::new(&d.field, ready));
                    added = true;
                }
                _ => {}
            }
        }
        added
    }

    /// Makes the indexes those `declared` (a collection's update): drops the ones no
    /// longer declared, or declared as another kind, and adds the new ones empty and
    /// not ready. Returns whether any was added: the points must then be inserted into
    /// them ([`PayloadIndexes::insert_building`]) before they are
    /// [`PayloadIndexes::finish_building`].
    pub(crate) fn set_declared(&mut self, declared: &[PayloadIndex]) -> bool {
        let declared_as = |field: &str, kind: PayloadFieldKind| {
            declared
                .iter()
                .any(|d| d.field == field && d.kind() == kind)
        };
        self.keyword
            .retain(|field, _| declared_as(field, PayloadFieldKind::Keyword));
        self.numeric
            .retain(|field, _| declared_as(field, PayloadFieldKind::Numeric));
        self.add(declared, false)
    }

    /// Whether an index is being built.
    #[cfg(test)]
    fn building(&self) -> bool {
        self.keyword.values().any(|i| !i.ready) || self.numeric.values().any(|i| !i.ready)
    }

    /// Adds point `id` with `payload` to the indexes being built (a point already in
    /// one, inserted by a write since the build began, is left as it is).
    pub(crate) fn insert_building(&mut self, id: u32, payload: &Value) {
        for index in self.keyword.values_mut().filter(|i| !i.ready) {
            index.insert(id, payload);
        }
        for index in self.numeric.values_mut().filter(|i| !i.ready) {
            index.insert(id, payload);
        }
    }

    /// Marks every index ready: each live point was inserted.
    pub(crate) fn finish_building(&mut self) {
        self.keyword.values_mut().for_each(|i| i.ready = true);
        self.numeric.values_mut().for_each(|i| i.ready = true);
    }

    /// The fields whose indexes are ready, sorted.
    pub(crate) fn ready_fields(&self) -> Vec<String> {
        let mut fields: Vec<String> = self
            .keyword
            .iter()
            .filter(|(_, i)| i.ready)
            .map(|(f, _)| f.clone())
            .chain(
                self.numeric
                    .iter()
                    .filter(|(_, i)| i.ready)
                    .map(|(f, _)| f.clone()),
            )
            .collect();
        fields.sort();
        fields
    }

    /// Whether any index is declared.
    pub(crate) fn is_empty(&self) -> bool {
        self.keyword.is_empty() && self.numeric.is_empty()
    }

    /// Adds point `id` with `payload` to every index whose key it holds.
    pub(crate) fn insert(&mut self, id: u32, payload: &Value) {
        for index in self.keyword.values_mut() {
            index.insert(id, payload);
        }
        for index in self.numeric.values_mut() {
            index.insert(id, payload);
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

    /// Points whose `key` equals any of `words`, if `key` has a keyword index that is
    /// ready.
    pub(crate) fn keyword(&self, key: &str, words: &[String]) -> Option<RoaringBitmap> {
        let index = self.keyword.get(key).filter(|i| i.ready)?;
        let mut out = RoaringBitmap::new();
        for w in words {
            if let Some(set) = index.postings.get(w.as_str()) {
                out |= set;
            }
        }
        Some(out)
    }

    /// Points whose `key` holds a number in `range`, if `key` has a numeric index that
    /// is ready.
    pub(crate) fn numeric(&self, key: &str, range: &Range) -> Option<RoaringBitmap> {
        let index = self.numeric.get(key).filter(|i| i.ready)?;
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
    fn an_added_index_serves_only_once_built_and_a_dropped_one_goes() {
        let mut ix = indexes();
        let a = json!({"title": "Moon", "section": "Orbit"});
        ix.insert(1, &a);
        let declared = [
            PayloadIndex {
                field: "title".into(),
                kind: PayloadFieldKind::Keyword.into(),
            },
            PayloadIndex {
                field: "section".into(),
                kind: PayloadFieldKind::Keyword.into(),
            },
        ];
        assert!(ix.set_declared(&declared));
        assert!(ix.building());
        assert_eq!(ix.ready_fields(), ["title"]);
        // Not served while it is built, though writes reach it meanwhile.
        ix.insert(2, &json!({"section": "Orbit"}));
        assert!(ix.keyword("section", &["Orbit".into()]).is_none());
        // The build inserts what was there; the ready index is not touched.
        ix.insert_building(1, &a);
        ix.insert_building(2, &json!({"title": "Moon", "section": "Orbit"}));
        assert_eq!(ids(ix.keyword("title", &["Moon".into()])), [1]);
        ix.finish_building();
        assert!(!ix.building());
        assert_eq!(ids(ix.keyword("section", &["Orbit".into()])), [1, 2]);
        assert_eq!(ix.ready_fields(), ["section", "title"]);
        // The numeric index on meta.year was dropped; the same declaration again adds
        // nothing.
        assert!(
            ix.numeric("meta.year", &range(None, None, None, None))
                .is_none()
        );
        assert!(!ix.set_declared(&declared));
        // Another kind for a field is a new index.
        assert!(ix.set_declared(&[PayloadIndex {
            field: "title".into(),
            kind: PayloadFieldKind::Numeric.into(),
        }]));
        assert_eq!(ix.ready_fields(), Vec::<String>::new());
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
