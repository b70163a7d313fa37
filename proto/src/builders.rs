//! Constructors for the messages users build most, so code reads as what it asks for:
//! `SearchRequest::new("docs", query, 10).with_ef(128).with_payload()`.

use crate::v1::{
    AnyOf, CollectionSpec, Condition, FieldCondition, Filter, HasIdCondition, Metric, Point, Range,
    ReadConsistency, SearchRequest, condition, field_condition,
};

impl CollectionSpec {
    /// A collection with the given name, dimension and metric; everything else takes
    /// the server's defaults.
    pub fn new(name: impl Into<String>, dimension: u32, metric: Metric) -> Self {
        Self {
            name: name.into(),
            dimension,
            metric: metric.into(),
            ..Default::default()
        }
    }
}

impl Point {
    /// A point without payload.
    pub fn new(id: impl Into<String>, vector: Vec<f32>) -> Self {
        Self {
            id: id.into(),
            vector,
            payload: None,
        }
    }

    /// Sets the payload.
    pub fn with_payload(mut self, payload: prost_types::Struct) -> Self {
        self.payload = Some(payload);
        self
    }
}

impl SearchRequest {
    /// Top `k` of `collection` for `vector`, with the collection's default `ef`.
    pub fn new(collection: impl Into<String>, vector: Vec<f32>, k: u32) -> Self {
        Self {
            collection: collection.into(),
            vector,
            k,
            ..Default::default()
        }
    }

    /// Sets the candidate list size.
    pub fn with_ef(mut self, ef: u32) -> Self {
        self.ef = Some(ef);
        self
    }

    /// Keeps only points passing `filter`.
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Returns payloads with the hits.
    pub fn with_payload(mut self) -> Self {
        self.with_payload = true;
        self
    }

    /// Returns stored vectors with the hits.
    pub fn with_vector(mut self) -> Self {
        self.with_vector = true;
        self
    }

    /// Searches by brute force: the true top-k (see the field's documentation).
    pub fn exact(mut self) -> Self {
        self.exact = true;
        self
    }

    /// Reads with `consistency`: `Linearizable` sees every write acknowledged before
    /// the search (served by each shard's leader, past the gateway's cache).
    pub fn with_consistency(mut self, consistency: ReadConsistency) -> Self {
        self.consistency = consistency.into();
        self
    }
}

impl Filter {
    /// Every condition must hold.
    pub fn must(conditions: impl IntoIterator<Item = Condition>) -> Self {
        Self {
            must: conditions.into_iter().collect(),
            ..Default::default()
        }
    }

    /// At least one condition must hold.
    pub fn should(conditions: impl IntoIterator<Item = Condition>) -> Self {
        Self {
            should: conditions.into_iter().collect(),
            ..Default::default()
        }
    }

    /// No condition may hold.
    pub fn must_not(conditions: impl IntoIterator<Item = Condition>) -> Self {
        Self {
            must_not: conditions.into_iter().collect(),
            ..Default::default()
        }
    }
}

impl Condition {
    fn field(key: impl Into<String>, m: field_condition::Match) -> Self {
        Self {
            condition: Some(condition::Condition::Field(FieldCondition {
                key: key.into(),
                r#match: Some(m),
            })),
        }
    }

    /// Payload field `key` equals `value`.
    pub fn keyword(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self::field(key, field_condition::Match::Keyword(value.into()))
    }

    /// Payload field `key` equals one of `values`.
    pub fn any_of<S: Into<String>>(
        key: impl Into<String>,
        values: impl IntoIterator<Item = S>,
    ) -> Self {
        let keywords = values.into_iter().map(Into::into).collect();
        Self::field(key, field_condition::Match::AnyOf(AnyOf { keywords }))
    }

    /// Payload field `key` is a number within `range`.
    pub fn range(key: impl Into<String>, range: Range) -> Self {
        Self::field(key, field_condition::Match::Range(range))
    }

    /// The point id is one of `ids`.
    pub fn has_id<S: Into<String>>(ids: impl IntoIterator<Item = S>) -> Self {
        let ids = ids.into_iter().map(Into::into).collect();
        Self {
            condition: Some(condition::Condition::HasId(HasIdCondition { ids })),
        }
    }

    /// A nested filter.
    pub fn nested(filter: Filter) -> Self {
        Self {
            condition: Some(condition::Condition::Filter(filter)),
        }
    }
}

impl Range {
    /// `lo <= x < hi`.
    pub fn half_open(lo: f64, hi: f64) -> Self {
        Self {
            gte: Some(lo),
            lt: Some(hi),
            ..Default::default()
        }
    }
}
