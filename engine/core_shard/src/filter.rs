//! Filters over point payloads and ids: validation of the public `vectron.v1.Filter`,
//! evaluation against one payload, and planning against a shard's payload indexes.
//!
//! A filter is compiled once per request into a [`Plan`]: every condition a payload
//! index can answer becomes a bitmap of matching points, and boolean nodes whose
//! children are all bitmaps fold into one bitmap. What is left (conditions on fields
//! without an index) is evaluated by parsing the point's payload. A plan that folds to
//! a single bitmap knows its exact cardinality, which lets the index switch to an exact
//! scan when the filter is selective.
//!
//! ```text
//!   must  ─┐
//!   should ─┼─► And[ must…, Or[should…], Not(Or[must_not…]) ] ─► fold ─► Plan
//!   must_not┘
//! ```

use roaring::RoaringBitmap;
use serde_json::Value;
use vectron_proto::v1 as api;

use crate::payload_index::PayloadIndexes;

/// Limits on the shape of a filter, so one request cannot make a core do unbounded work.
pub const MAX_ANY_OF: usize = 1024;
/// Most ids in one has-id condition.
pub const MAX_HAS_ID: usize = 10_000;
/// Deepest nesting of filters inside conditions.
pub const MAX_DEPTH: usize = 16;
/// Most conditions in a filter, counted over every nesting level.
pub const MAX_CONDITIONS: usize = 4096;
/// Longest accepted payload key (a dotted path).
pub const MAX_KEY_BYTES: usize = 1024;

/// Why a filter was refused. Every variant is the caller's fault (`INVALID_ARGUMENT`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    /// A condition with none of its kinds set.
    #[error("filter condition {path} sets nothing: give exactly one of field, has_id, filter")]
    EmptyCondition {
        /// Where the condition is, like `must[2].should[0]`.
        path: String,
    },
    /// A field condition with no match kind.
    #[error("field condition {path} on key {key:?} sets no match: give keyword, any_of or range")]
    NoMatch {
        /// Where the condition is.
        path: String,
        /// Its payload key.
        key: String,
    },
    /// An empty or oversized payload key.
    #[error(
        "field condition {path}: key must be 1 to {MAX_KEY_BYTES} bytes without empty segments, got {key:?}"
    )]
    BadKey {
        /// Where the condition is.
        path: String,
        /// The key given.
        key: String,
    },
    /// An any-of list that is empty or too long.
    #[error("field condition {path}: any_of needs 1 to {MAX_ANY_OF} keywords, got {got}")]
    AnyOfSize {
        /// Where the condition is.
        path: String,
        /// Number of keywords given.
        got: usize,
    },
    /// A range with no bound, or a NaN bound.
    #[error("field condition {path}: range needs at least one bound and no NaN")]
    BadRange {
        /// Where the condition is.
        path: String,
    },
    /// A has-id list that is empty or too long.
    #[error("condition {path}: has_id needs 1 to {MAX_HAS_ID} ids, got {got}")]
    HasIdSize {
        /// Where the condition is.
        path: String,
        /// Number of ids given.
        got: usize,
    },
    /// Filters nested too deeply.
    #[error("filter nests deeper than {MAX_DEPTH} levels at {path}")]
    TooDeep {
        /// Where the nesting went too deep.
        path: String,
    },
    /// Too many conditions in total.
    #[error("filter has more than {MAX_CONDITIONS} conditions")]
    TooManyConditions,
}

/// A validated filter. Build it with [`Filter::from_proto`].
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    must: Vec<Condition>,
    should: Vec<Condition>,
    must_not: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq)]
enum Condition {
    Field {
        key: String,
        path: Vec<String>,
        matcher: Matcher,
    },
    HasId(Vec<String>),
    Nested(Filter),
}

#[derive(Debug, Clone, PartialEq)]
enum Matcher {
    Keyword(String),
    /// Sorted and deduplicated.
    AnyOf(Vec<String>),
    Range(Range),
}

/// Numeric bounds; every present bound must hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Range {
    pub(crate) gt: Option<f64>,
    pub(crate) gte: Option<f64>,
    pub(crate) lt: Option<f64>,
    pub(crate) lte: Option<f64>,
}

impl Range {
    pub(crate) fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
    }
}

impl Filter {
    /// Validates a public filter. `None` and an empty filter both pass every point.
    pub fn from_proto(filter: Option<&api::Filter>) -> Result<Self, FilterError> {
        let mut budget = MAX_CONDITIONS;
        match filter {
            None => Ok(Self {
                must: vec![],
                should: vec![],
                must_not: vec![],
            }),
            Some(f) => Self::compile(f, "", 0, &mut budget),
        }
    }

    fn compile(
        f: &api::Filter,
        at: &str,
        depth: usize,
        budget: &mut usize,
    ) -> Result<Self, FilterError> {
        if depth > MAX_DEPTH {
            return Err(FilterError::TooDeep {
                path: at.trim_start_matches('.').to_owned(),
            });
        }
        let list = |name: &str, conds: &[api::Condition], budget: &mut usize| {
            conds
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let here = format!("{at}.{name}[{i}]");
                    Condition::compile(c, &here, depth, budget)
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Self {
            must: list("must", &f.must, budget)?,
            should: list("should", &f.should, budget)?,
            must_not: list("must_not", &f.must_not, budget)?,
        })
    }

    /// Whether the filter passes every point.
    pub fn is_empty(&self) -> bool {
        self.must.is_empty() && self.should.is_empty() && self.must_not.is_empty()
    }

    /// Evaluates the filter for one point from its id and payload, without indexes.
    pub fn matches(&self, id: &str, payload: Option<&Value>) -> bool {
        self.must.iter().all(|c| c.matches(id, payload))
            && (self.should.is_empty() || self.should.iter().any(|c| c.matches(id, payload)))
            && !self.must_not.iter().any(|c| c.matches(id, payload))
    }

    /// Plans the filter against a shard's indexes. `resolve` maps a point id to its
    /// internal id, if the point exists; `live` holds every live internal id.
    pub(crate) fn plan(
        &self,
        indexes: &PayloadIndexes,
        live: &RoaringBitmap,
        resolve: &dyn Fn(&str) -> Option<u32>,
    ) -> Plan {
        let root = self.node(indexes, live, resolve);
        Plan { root }
    }

    fn node(
        &self,
        indexes: &PayloadIndexes,
        live: &RoaringBitmap,
        resolve: &dyn Fn(&str) -> Option<u32>,
    ) -> Node {
        let mut parts: Vec<Node> = self
            .must
            .iter()
            .map(|c| c.node(indexes, live, resolve))
            .collect();
        if !self.should.is_empty() {
            let any = self
                .should
                .iter()
                .map(|c| c.node(indexes, live, resolve))
                .collect();
            parts.push(Node::or(any));
        }
        if !self.must_not.is_empty() {
            let any = self
                .must_not
                .iter()
                .map(|c| c.node(indexes, live, resolve))
                .collect();
            parts.push(Node::not(Node::or(any), live));
        }
        Node::and(parts, live)
    }
}

impl Condition {
    fn compile(
        c: &api::Condition,
        at: &str,
        depth: usize,
        budget: &mut usize,
    ) -> Result<Self, FilterError> {
        use api::condition::Condition as C;
        use api::field_condition::Match as M;
        let path = at.trim_start_matches('.').to_owned();
        *budget = budget
            .checked_sub(1)
            .ok_or(FilterError::TooManyConditions)?;
        match &c.condition {
            None => Err(FilterError::EmptyCondition { path }),
            Some(C::Filter(inner)) => Ok(Condition::Nested(Filter::compile(
                inner,
                &format!("{at}.filter"),
                depth + 1,
                budget,
            )?)),
            Some(C::HasId(h)) => {
                if h.ids.is_empty() || h.ids.len() > MAX_HAS_ID {
                    return Err(FilterError::HasIdSize {
                        path,
                        got: h.ids.len(),
                    });
                }
                Ok(Condition::HasId(h.ids.clone()))
            }
            Some(C::Field(f)) => {
                let segments: Vec<String> = f.key.split('.').map(str::to_owned).collect();
                if f.key.is_empty()
                    || f.key.len() > MAX_KEY_BYTES
                    || segments.iter().any(String::is_empty)
                {
                    return Err(FilterError::BadKey {
                        path,
                        key: f.key.clone(),
                    });
                }
                let matcher = match &f.r#match {
                    None => {
                        return Err(FilterError::NoMatch {
                            path,
                            key: f.key.clone(),
                        });
                    }
                    Some(M::Keyword(k)) => Matcher::Keyword(k.clone()),
                    Some(M::AnyOf(a)) => {
                        if a.keywords.is_empty() || a.keywords.len() > MAX_ANY_OF {
                            return Err(FilterError::AnyOfSize {
                                path,
                                got: a.keywords.len(),
                            });
                        }
                        let mut words = a.keywords.clone();
                        words.sort_unstable();
                        words.dedup();
                        Matcher::AnyOf(words)
                    }
                    Some(M::Range(r)) => {
                        let bounds = [r.gt, r.gte, r.lt, r.lte];
                        if bounds.iter().all(Option::is_none)
                            || bounds.iter().flatten().any(|b| b.is_nan())
                        {
                            return Err(FilterError::BadRange { path });
                        }
                        Matcher::Range(Range {
                            gt: r.gt,
                            gte: r.gte,
                            lt: r.lt,
                            lte: r.lte,
                        })
                    }
                };
                Ok(Condition::Field {
                    key: f.key.clone(),
                    path: segments,
                    matcher,
                })
            }
        }
    }

    fn matches(&self, id: &str, payload: Option<&Value>) -> bool {
        match self {
            Condition::HasId(ids) => ids.iter().any(|x| x == id),
            Condition::Nested(f) => f.matches(id, payload),
            Condition::Field { path, matcher, .. } => {
                let Some(value) = payload.and_then(|p| lookup(p, path)) else {
                    return false;
                };
                match value {
                    Value::Array(items) => items.iter().any(|v| matcher.matches(v)),
                    v => matcher.matches(v),
                }
            }
        }
    }

    fn node(
        &self,
        indexes: &PayloadIndexes,
        live: &RoaringBitmap,
        resolve: &dyn Fn(&str) -> Option<u32>,
    ) -> Node {
        match self {
            Condition::HasId(ids) => Node::Set(ids.iter().filter_map(|id| resolve(id)).collect()),
            Condition::Nested(f) => f.node(indexes, live, resolve),
            Condition::Field { key, matcher, .. } => {
                let set = match matcher {
                    Matcher::Keyword(k) => indexes.keyword(key, std::slice::from_ref(k)),
                    Matcher::AnyOf(ks) => indexes.keyword(key, ks),
                    Matcher::Range(r) => indexes.numeric(key, r),
                };
                set.map_or_else(|| Node::Scan(self.clone()), Node::Set)
            }
        }
    }
}

impl Matcher {
    fn matches(&self, v: &Value) -> bool {
        match (self, v) {
            (Matcher::Keyword(k), Value::String(s)) => k == s,
            (Matcher::AnyOf(ks), Value::String(s)) => ks.binary_search(s).is_ok(),
            (Matcher::Range(r), Value::Number(n)) => n.as_f64().is_some_and(|x| r.contains(x)),
            _ => false,
        }
    }
}

/// Follows a dotted key path through nested objects.
pub(crate) fn lookup<'v>(payload: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter()
        .try_fold(payload, |v, segment| v.as_object()?.get(segment))
}

/// A filter planned against one shard's indexes, for one request.
#[derive(Debug)]
pub(crate) struct Plan {
    root: Node,
}

#[derive(Debug)]
enum Node {
    /// Exactly these internal ids match.
    Set(RoaringBitmap),
    /// Evaluate this condition against the payload.
    Scan(Condition),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

impl Node {
    fn and(parts: Vec<Node>, live: &RoaringBitmap) -> Node {
        let (sets, rest) = split_sets(parts);
        let set = sets.into_iter().reduce(|a, b| a & b);
        match (set, rest.is_empty()) {
            (None, true) => Node::Set(live.clone()),
            (Some(s), true) => Node::Set(s),
            (None, false) if rest.len() == 1 => rest.into_iter().next().expect("one part"),
            (None, false) => Node::And(rest),
            (Some(s), false) => {
                let mut all = vec![Node::Set(s)];
                all.extend(rest);
                Node::And(all)
            }
        }
    }

    fn or(parts: Vec<Node>) -> Node {
        let (sets, rest) = split_sets(parts);
        let set = sets.into_iter().reduce(|a, b| a | b);
        match (set, rest.is_empty()) {
            (None, true) => Node::Set(RoaringBitmap::new()),
            (Some(s), true) => Node::Set(s),
            (None, false) if rest.len() == 1 => rest.into_iter().next().expect("one part"),
            (None, false) => Node::Or(rest),
            (Some(s), false) => {
                let mut all = vec![Node::Set(s)];
                all.extend(rest);
                Node::Or(all)
            }
        }
    }

    fn not(inner: Node, live: &RoaringBitmap) -> Node {
        match inner {
            Node::Set(s) => Node::Set(live - s),
            other => Node::Not(Box::new(other)),
        }
    }

    fn needs_payload(&self) -> bool {
        match self {
            Node::Set(_) => false,
            Node::Scan(_) => true,
            Node::And(xs) | Node::Or(xs) => xs.iter().any(Node::needs_payload),
            Node::Not(x) => x.needs_payload(),
        }
    }

    /// An upper bound on the matching ids.
    fn upper_bound(&self, live: u64) -> u64 {
        match self {
            Node::Set(s) => s.len(),
            Node::Scan(_) | Node::Not(_) => live,
            Node::And(xs) => xs.iter().map(|x| x.upper_bound(live)).min().unwrap_or(live),
            Node::Or(xs) => xs
                .iter()
                .map(|x| x.upper_bound(live))
                .sum::<u64>()
                .min(live),
        }
    }

    fn eval(&self, id: u32, point_id: &str, payload: Option<&Value>) -> bool {
        match self {
            Node::Set(s) => s.contains(id),
            Node::Scan(c) => c.matches(point_id, payload),
            Node::And(xs) => xs.iter().all(|x| x.eval(id, point_id, payload)),
            Node::Or(xs) => xs.iter().any(|x| x.eval(id, point_id, payload)),
            Node::Not(x) => !x.eval(id, point_id, payload),
        }
    }
}

fn split_sets(parts: Vec<Node>) -> (Vec<RoaringBitmap>, Vec<Node>) {
    let mut sets = Vec::new();
    let mut rest = Vec::new();
    for p in parts {
        match p {
            Node::Set(s) => sets.push(s),
            other => rest.push(other),
        }
    }
    (sets, rest)
}

impl Plan {
    /// The exact set of matching internal ids, when the indexes answer the whole filter.
    pub(crate) fn exact(&self) -> Option<&RoaringBitmap> {
        match &self.root {
            Node::Set(s) => Some(s),
            _ => None,
        }
    }

    /// An upper bound on the number of matching points, given `live` points.
    pub(crate) fn upper_bound(&self, live: u64) -> u64 {
        self.root.upper_bound(live)
    }

    /// Whether evaluating the plan needs the point's payload.
    pub(crate) fn needs_payload(&self) -> bool {
        self.root.needs_payload()
    }

    /// Evaluates the plan for one point. `payload` is only read when
    /// [`Plan::needs_payload`] is true.
    pub(crate) fn matches(&self, id: u32, point_id: &str, payload: Option<&Value>) -> bool {
        self.root.eval(id, point_id, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload_index::PayloadIndexes;
    use api::{condition::Condition as C, field_condition::Match as M};
    use serde_json::json;
    use vectron_proto::v1::{PayloadFieldKind, PayloadIndex};

    fn keyword(key: &str, v: &str) -> api::Condition {
        api::Condition {
            condition: Some(C::Field(api::FieldCondition {
                key: key.into(),
                r#match: Some(M::Keyword(v.into())),
            })),
        }
    }

    fn range(key: &str, gte: Option<f64>, lt: Option<f64>) -> api::Condition {
        api::Condition {
            condition: Some(C::Field(api::FieldCondition {
                key: key.into(),
                r#match: Some(M::Range(api::Range {
                    gte,
                    lt,
                    ..Default::default()
                })),
            })),
        }
    }

    fn any_of(key: &str, vs: &[&str]) -> api::Condition {
        let keywords = vs.iter().map(|s| (*s).to_owned()).collect();
        api::Condition {
            condition: Some(C::Field(api::FieldCondition {
                key: key.into(),
                r#match: Some(M::AnyOf(api::AnyOf { keywords })),
            })),
        }
    }

    fn has_id(ids: &[&str]) -> api::Condition {
        let ids = ids.iter().map(|s| (*s).to_owned()).collect();
        api::Condition {
            condition: Some(C::HasId(api::HasIdCondition { ids })),
        }
    }

    fn filter(
        must: Vec<api::Condition>,
        should: Vec<api::Condition>,
        must_not: Vec<api::Condition>,
    ) -> api::Filter {
        api::Filter {
            must,
            should,
            must_not,
        }
    }

    fn payloads() -> Vec<(String, Value)> {
        vec![
            (
                "a".into(),
                json!({"title": "Moon", "year": 1969, "tags": ["nasa", "apollo"]}),
            ),
            (
                "b".into(),
                json!({"title": "Mars", "year": 1976, "author": {"name": "Sagan"}}),
            ),
            ("c".into(), json!({"title": "Moon", "year": 2019})),
            ("d".into(), json!({"title": 7, "tags": "esa"})),
            ("e".into(), json!({})),
        ]
    }

    /// Evaluates `f` on every point, both by direct evaluation and through a plan built
    /// against the given indexes, and checks that they agree.
    fn matching(f: &api::Filter, indexed: &[PayloadIndex]) -> Vec<String> {
        let filter = Filter::from_proto(Some(f)).unwrap();
        let points = payloads();
        let mut indexes = PayloadIndexes::new(indexed);
        let mut live = RoaringBitmap::new();
        for (i, (_, p)) in points.iter().enumerate() {
            indexes.insert(i as u32, p);
            live.insert(i as u32);
        }
        let resolve = |id: &str| points.iter().position(|(x, _)| x == id).map(|i| i as u32);
        let plan = filter.plan(&indexes, &live, &resolve);
        let mut out = Vec::new();
        for (i, (id, p)) in points.iter().enumerate() {
            let direct = filter.matches(id, Some(p));
            let planned = plan.matches(i as u32, id, Some(p));
            assert_eq!(
                direct, planned,
                "plan and direct evaluation disagree on {id}"
            );
            if let Some(exact) = plan.exact() {
                assert_eq!(exact.contains(i as u32), direct, "exact set wrong for {id}");
            }
            if direct {
                out.push(id.clone());
            }
        }
        assert!(plan.upper_bound(points.len() as u64) >= out.len() as u64);
        out
    }

    fn both_ways(f: &api::Filter) -> Vec<String> {
        let indexed = [
            PayloadIndex {
                field: "title".into(),
                kind: PayloadFieldKind::Keyword.into(),
            },
            PayloadIndex {
                field: "tags".into(),
                kind: PayloadFieldKind::Keyword.into(),
            },
            PayloadIndex {
                field: "year".into(),
                kind: PayloadFieldKind::Numeric.into(),
            },
        ];
        let without = matching(f, &[]);
        let with = matching(f, &indexed);
        assert_eq!(without, with, "indexes change the answer");
        with
    }

    #[test]
    fn keyword_any_of_range_and_has_id() {
        assert_eq!(
            both_ways(&filter(vec![keyword("title", "Moon")], vec![], vec![])),
            ["a", "c"]
        );
        assert_eq!(
            both_ways(&filter(
                vec![any_of("tags", &["esa", "nasa"])],
                vec![],
                vec![]
            )),
            ["a", "d"]
        );
        assert_eq!(
            both_ways(&filter(
                vec![range("year", Some(1969.0), Some(2000.0))],
                vec![],
                vec![]
            )),
            ["a", "b"]
        );
        assert_eq!(
            both_ways(&filter(vec![has_id(&["e", "zz", "b"])], vec![], vec![])),
            ["b", "e"]
        );
    }

    #[test]
    fn must_should_must_not_combine() {
        let f = filter(
            vec![keyword("title", "Moon")],
            vec![],
            vec![range("year", Some(2000.0), None)],
        );
        assert_eq!(both_ways(&f), ["a"]);
        let f = filter(
            vec![],
            vec![keyword("title", "Mars"), has_id(&["e"])],
            vec![],
        );
        assert_eq!(both_ways(&f), ["b", "e"]);
        // A missing field matches no condition, so it passes must_not.
        let f = filter(vec![], vec![], vec![keyword("title", "Moon")]);
        assert_eq!(both_ways(&f), ["b", "d", "e"]);
        // An empty filter passes everything.
        assert_eq!(both_ways(&api::Filter::default()).len(), 5);
    }

    #[test]
    fn nested_filters_and_dotted_keys() {
        let nested = api::Condition {
            condition: Some(C::Filter(filter(
                vec![],
                vec![keyword("author.name", "Sagan"), any_of("tags", &["apollo"])],
                vec![],
            ))),
        };
        let f = filter(vec![nested], vec![], vec![has_id(&["a"])]);
        assert_eq!(both_ways(&f), ["b"]);
    }

    #[test]
    fn type_mismatches_do_not_match() {
        // A number is not the keyword "7"; a string is not in a numeric range.
        assert!(both_ways(&filter(vec![keyword("title", "7")], vec![], vec![])).is_empty());
        let f = filter(vec![range("title", Some(0.0), None)], vec![], vec![]);
        assert_eq!(both_ways(&f), ["d"]);
    }

    #[test]
    fn bad_filters_are_refused_with_their_position() {
        let empty = api::Condition { condition: None };
        let err = Filter::from_proto(Some(&filter(vec![], vec![empty], vec![]))).unwrap_err();
        assert_eq!(
            err,
            FilterError::EmptyCondition {
                path: "should[0]".into()
            }
        );

        let err = Filter::from_proto(Some(&filter(vec![range("y", None, None)], vec![], vec![])))
            .unwrap_err();
        assert_eq!(
            err,
            FilterError::BadRange {
                path: "must[0]".into()
            }
        );

        let nan = filter(vec![range("y", Some(f64::NAN), None)], vec![], vec![]);
        assert!(matches!(
            Filter::from_proto(Some(&nan)),
            Err(FilterError::BadRange { .. })
        ));

        let err =
            Filter::from_proto(Some(&filter(vec![any_of("t", &[])], vec![], vec![]))).unwrap_err();
        assert_eq!(
            err,
            FilterError::AnyOfSize {
                path: "must[0]".into(),
                got: 0
            }
        );

        let err = Filter::from_proto(Some(&filter(vec![keyword("a..b", "x")], vec![], vec![])))
            .unwrap_err();
        assert!(matches!(err, FilterError::BadKey { .. }));

        let err = Filter::from_proto(Some(&filter(vec![], vec![], vec![has_id(&[])]))).unwrap_err();
        assert_eq!(
            err,
            FilterError::HasIdSize {
                path: "must_not[0]".into(),
                got: 0
            }
        );

        let mut deep = filter(vec![keyword("a", "b")], vec![], vec![]);
        for _ in 0..=MAX_DEPTH {
            deep = filter(
                vec![api::Condition {
                    condition: Some(C::Filter(deep)),
                }],
                vec![],
                vec![],
            );
        }
        assert!(matches!(
            Filter::from_proto(Some(&deep)),
            Err(FilterError::TooDeep { .. })
        ));
    }

    #[test]
    fn fully_indexed_filters_fold_to_an_exact_set() {
        let indexed = [PayloadIndex {
            field: "title".into(),
            kind: PayloadFieldKind::Keyword.into(),
        }];
        let mut indexes = PayloadIndexes::new(&indexed);
        let mut live = RoaringBitmap::new();
        for (i, (_, p)) in payloads().iter().enumerate() {
            indexes.insert(i as u32, p);
            live.insert(i as u32);
        }
        let f = Filter::from_proto(Some(&filter(
            vec![keyword("title", "Moon")],
            vec![],
            vec![has_id(&["c"])],
        )))
        .unwrap();
        let resolve = |id: &str| (id == "c").then_some(2);
        let plan = f.plan(&indexes, &live, &resolve);
        assert_eq!(
            plan.exact().map(|s| s.iter().collect::<Vec<_>>()),
            Some(vec![0])
        );
        assert!(!plan.needs_payload());

        // A condition on a field without an index keeps the payload scan.
        let f = Filter::from_proto(Some(&filter(vec![keyword("tags", "esa")], vec![], vec![])))
            .unwrap();
        let plan = f.plan(&indexes, &live, &resolve);
        assert!(plan.exact().is_none());
        assert!(plan.needs_payload());
    }
}
