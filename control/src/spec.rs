//! Collection specs: the rules of `vectron.v1.CollectionSpec`, checked once, with every
//! default resolved.
//!
//! Validation happens in two steps. [`CollectionRequest::from_proto`] checks everything
//! that depends only on the request (name, dimension, metric, bounds) and resolves the
//! fixed defaults. What depends on the cluster (the default shard count is the number of
//! live worker cores; the replication factor cannot exceed the live workers) is resolved
//! when the request is applied to the replicated state, into a [`CollectionConfig`].

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use vectron_proto::v1 as api;

use vectron_proto::rules::{self, EF_CONSTRUCTION_RANGE, HnswParamError, M_RANGE, NameError};
pub use vectron_proto::rules::{
    DEFAULT_EF, DEFAULT_EF_CONSTRUCTION, DEFAULT_M, MAX_COLLECTION_NAME_LEN as MAX_NAME_LEN,
    MAX_DIMENSION, MAX_PAYLOAD_FIELD_LEN, MAX_REPLICATION_FACTOR, MAX_SHARD_COUNT,
};

/// A collection spec that breaks a rule of `vectron.v1.CollectionSpec`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum SpecError {
    /// The request carries no spec at all.
    #[error("the request has no collection spec")]
    Missing,
    /// The name is empty.
    #[error("collection name is empty: use 1 to {MAX_NAME_LEN} characters from [A-Za-z0-9_-]")]
    EmptyName,
    /// The name is longer than [`MAX_NAME_LEN`].
    #[error("collection name has {len} characters: at most {MAX_NAME_LEN} are allowed")]
    NameTooLong {
        /// Characters in the name.
        len: usize,
    },
    /// The name holds a character outside `[A-Za-z0-9_-]`, or starts with `_` or `-`.
    #[error(
        "collection name {name:?} is not allowed: use [A-Za-z0-9_-], starting with a letter or a digit"
    )]
    BadName {
        /// The name as given.
        name: String,
    },
    /// The dimension is 0 or above [`MAX_DIMENSION`].
    #[error("dimension must be 1 to {MAX_DIMENSION}, got {got}")]
    Dimension {
        /// The dimension given.
        got: u32,
    },
    /// The metric is unset.
    #[error(
        "metric is required: \"cosine\", \"l2\" or \"dot\" (METRIC_COSINE, METRIC_L2 or METRIC_DOT in protobuf)"
    )]
    MetricUnspecified,
    /// The metric is not one this version knows.
    #[error(
        "unknown metric {value}: use \"cosine\", \"l2\" or \"dot\" (METRIC_COSINE, METRIC_L2 or METRIC_DOT in protobuf)"
    )]
    UnknownMetric {
        /// The enum value given.
        value: i32,
    },
    /// The shard count is present but 0 or above [`MAX_SHARD_COUNT`].
    #[error(
        "shard_count must be 1 to {MAX_SHARD_COUNT} (or absent for one shard per worker core), got {got}"
    )]
    ShardCount {
        /// The shard count given.
        got: u32,
    },
    /// The replication factor is present but 0 or above [`MAX_REPLICATION_FACTOR`].
    #[error(
        "replication_factor must be 1 to {MAX_REPLICATION_FACTOR} (or absent for 1), got {got}"
    )]
    ReplicationFactor {
        /// The replication factor given.
        got: u32,
    },
    /// HNSW `m` is outside 4 to 128.
    #[error("hnsw.m must be {} to {}, got {got}", M_RANGE.start(), M_RANGE.end())]
    HnswM {
        /// The value given.
        got: u32,
    },
    /// HNSW `ef_construction` is outside 8 to 4096 or below `m`.
    #[error(
        "hnsw.ef_construction must be {} to {} and at least m ({m}), got {got}",
        EF_CONSTRUCTION_RANGE.start(),
        EF_CONSTRUCTION_RANGE.end()
    )]
    EfConstruction {
        /// The value given.
        got: u32,
        /// The effective `m`.
        m: u32,
    },
    /// The default search `ef` is outside 1 to 32768.
    #[error("hnsw.ef must be 1 to {}, got {got}", rules::Limits::DEFAULT.max_ef)]
    Ef {
        /// The value given.
        got: u32,
    },
    /// The quantization is not one this version knows.
    #[error("unknown quantization {value}: use QUANTIZATION_NONE or QUANTIZATION_INT8")]
    UnknownQuantization {
        /// The enum value given.
        value: i32,
    },
    /// A payload index names an empty field or one longer than 128 bytes.
    #[error("payload index field must be 1 to {MAX_PAYLOAD_FIELD_LEN} bytes, got {len} bytes")]
    PayloadField {
        /// Length of the field name in bytes.
        len: usize,
    },
    /// A payload index has no kind or an unknown one.
    #[error(
        "payload index on {field:?} needs a kind: \"keyword\" or \"numeric\" (PAYLOAD_FIELD_KIND_KEYWORD or PAYLOAD_FIELD_KIND_NUMERIC in protobuf; got {value})"
    )]
    PayloadKind {
        /// The field.
        field: String,
        /// The enum value given.
        value: i32,
    },
    /// Two payload indexes name the same field.
    #[error("payload field {field:?} is indexed twice")]
    DuplicatePayloadIndex {
        /// The field.
        field: String,
    },
    /// An update sets `spec.payload_indexes` to other indexes than the collection's.
    #[error(
        "payload indexes change through add_payload_indexes and drop_payload_indexes, not spec.payload_indexes (the collection indexes {current}; the update asks for {asked})"
    )]
    PayloadIndexesInSpec {
        /// The fields indexed.
        current: String,
        /// The fields asked for.
        asked: String,
    },
    /// An update drops a payload index the collection does not have.
    #[error("payload field {field:?} has no index to drop")]
    NoPayloadIndex {
        /// The field.
        field: String,
    },
    /// An update adds an index on a field indexed as another kind.
    #[error(
        "payload field {field:?} is indexed as {current}; drop its index first (drop_payload_indexes) to index it as {asked}, or drop and add it in one update"
    )]
    PayloadIndexKind {
        /// The field.
        field: String,
        /// Its index's kind.
        current: String,
        /// The kind asked for.
        asked: String,
    },
    /// A search cache TTL above an hour.
    #[error(
        "search_cache.ttl_ms must be at most {} (an hour), got {got}; 0 takes the gateway's TTL",
        rules::MAX_SEARCH_CACHE_TTL_MS
    )]
    SearchCacheTtl {
        /// The TTL asked for.
        got: u32,
    },
    /// An update would change a setting fixed at creation.
    #[error(
        "{field} is fixed when a collection is created (it is {current}; the update asks for {asked}): only hnsw.ef, payload indexes and search_cache can be updated; create a new collection for another {field}"
    )]
    Fixed {
        /// The setting.
        field: String,
        /// Its value.
        current: String,
        /// The value asked for.
        asked: String,
    },
}

/// How similarity is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Metric {
    /// Cosine similarity.
    Cosine,
    /// Negated squared Euclidean distance.
    L2,
    /// Inner product.
    Dot,
}

/// How the index encodes vectors for traversal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Quantization {
    /// Full-precision vectors.
    None,
    /// One signed byte per dimension.
    Int8,
}

/// What a payload index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PayloadKind {
    /// Strings matched exactly.
    Keyword,
    /// Numbers matched by range.
    Numeric,
}

impl PayloadKind {
    /// The kind as the HTTP API writes it.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Keyword => "keyword",
            Self::Numeric => "numeric",
        }
    }
}

/// HNSW parameters with defaults resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HnswParams {
    /// Links per node on the upper layers.
    pub m: u32,
    /// Candidate list size while building.
    pub ef_construction: u32,
    /// Default candidate list size while searching.
    pub ef: u32,
}

/// One indexed payload field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PayloadIndexSpec {
    /// Top-level payload key.
    pub field: String,
    /// What the index holds.
    pub kind: PayloadKind,
}

impl PayloadIndexSpec {
    /// Checks a public payload index: a field of 1 to 128 bytes and a known kind.
    ///
    /// # Errors
    /// [`SpecError::PayloadField`] or [`SpecError::PayloadKind`].
    pub fn from_proto(index: &api::PayloadIndex) -> Result<Self, SpecError> {
        let len = index.field.len();
        if len == 0 || len > MAX_PAYLOAD_FIELD_LEN {
            return Err(SpecError::PayloadField { len });
        }
        let kind = match api::PayloadFieldKind::try_from(index.kind) {
            Ok(api::PayloadFieldKind::Keyword) => PayloadKind::Keyword,
            Ok(api::PayloadFieldKind::Numeric) => PayloadKind::Numeric,
            Ok(api::PayloadFieldKind::Unspecified) | Err(_) => {
                return Err(SpecError::PayloadKind {
                    field: index.field.clone(),
                    value: index.kind,
                });
            }
        };
        Ok(Self {
            field: index.field.clone(),
            kind,
        })
    }
}

/// A create request that passed every check that does not depend on the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionRequest {
    /// Collection name.
    pub name: String,
    /// Vector dimension.
    pub dimension: u32,
    /// Similarity measure.
    pub metric: Metric,
    /// Shard count asked for; `None` means one per live worker core.
    pub shard_count: Option<u32>,
    /// Copies of every shard.
    pub replication_factor: u32,
    /// Graph parameters.
    pub hnsw: HnswParams,
    /// Vector encoding for traversal.
    pub quantization: Quantization,
    /// Indexed payload fields, in request order.
    pub payload_indexes: Vec<PayloadIndexSpec>,
    /// How gateways cache its search answers.
    #[serde(default, skip_serializing_if = "SearchCache::is_default")]
    pub search_cache: SearchCache,
}

/// How gateways cache a collection's search answers (`SearchCacheSettings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SearchCache {
    /// Whether eventual searches are cached and joined in flight.
    pub enabled: bool,
    /// How long an answer may be served, in milliseconds; 0: the gateway's TTL.
    pub ttl_ms: u32,
}

impl Default for SearchCache {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl_ms: 0,
        }
    }
}

impl SearchCache {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// These settings with the fields `wanted` gives replaced.
    ///
    /// # Errors
    /// [`SpecError::SearchCacheTtl`] for a TTL above
    /// [`rules::MAX_SEARCH_CACHE_TTL_MS`].
    pub fn updated(self, wanted: Option<&api::SearchCacheSettings>) -> Result<Self, SpecError> {
        let Some(wanted) = wanted else {
            return Ok(self);
        };
        let ttl_ms = wanted.ttl_ms.unwrap_or(self.ttl_ms);
        if ttl_ms > rules::MAX_SEARCH_CACHE_TTL_MS {
            return Err(SpecError::SearchCacheTtl { got: ttl_ms });
        }
        Ok(Self {
            enabled: wanted.enabled.unwrap_or(self.enabled),
            ttl_ms,
        })
    }

    fn to_proto(self) -> api::SearchCacheSettings {
        api::SearchCacheSettings {
            enabled: Some(self.enabled),
            ttl_ms: Some(self.ttl_ms),
        }
    }
}

/// A collection's spec with every default resolved: what the cluster stores and what
/// workers receive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionConfig {
    /// Collection name.
    pub name: String,
    /// Vector dimension.
    pub dimension: u32,
    /// Similarity measure.
    pub metric: Metric,
    /// Number of shards.
    pub shard_count: u32,
    /// Copies of every shard.
    pub replication_factor: u32,
    /// Graph parameters.
    pub hnsw: HnswParams,
    /// Vector encoding for traversal.
    pub quantization: Quantization,
    /// Indexed payload fields.
    pub payload_indexes: Vec<PayloadIndexSpec>,
    /// How gateways cache its search answers.
    #[serde(default, skip_serializing_if = "SearchCache::is_default")]
    pub search_cache: SearchCache,
}

/// Checks a collection name against the rule of `CollectionSpec.name`.
///
/// # Errors
/// [`SpecError::EmptyName`], [`SpecError::NameTooLong`] or [`SpecError::BadName`].
pub fn validate_collection_name(name: &str) -> Result<(), SpecError> {
    rules::check_collection_name(name).map_err(|e| match e {
        NameError::Empty => SpecError::EmptyName,
        NameError::TooLong { len } => SpecError::NameTooLong { len },
        NameError::BadCharacters { name } => SpecError::BadName { name },
    })
}

impl CollectionRequest {
    /// Checks a public spec and resolves its fixed defaults.
    ///
    /// # Errors
    /// The first rule of `vectron.v1.CollectionSpec` the spec breaks.
    pub fn from_proto(spec: &api::CollectionSpec) -> Result<Self, SpecError> {
        validate_collection_name(&spec.name)?;
        if spec.dimension == 0 || spec.dimension > MAX_DIMENSION {
            return Err(SpecError::Dimension {
                got: spec.dimension,
            });
        }
        let metric = match api::Metric::try_from(spec.metric) {
            Ok(api::Metric::Cosine) => Metric::Cosine,
            Ok(api::Metric::L2) => Metric::L2,
            Ok(api::Metric::Dot) => Metric::Dot,
            Ok(api::Metric::Unspecified) => return Err(SpecError::MetricUnspecified),
            Err(_) => return Err(SpecError::UnknownMetric { value: spec.metric }),
        };
        if let Some(got) = spec.shard_count
            && (got == 0 || got > MAX_SHARD_COUNT)
        {
            return Err(SpecError::ShardCount { got });
        }
        let replication_factor = spec.replication_factor.unwrap_or(1);
        if replication_factor == 0 || replication_factor > MAX_REPLICATION_FACTOR {
            return Err(SpecError::ReplicationFactor {
                got: replication_factor,
            });
        }
        let hnsw = resolve_hnsw(spec.hnsw.as_ref())?;
        let quantization = match api::Quantization::try_from(spec.quantization) {
            Ok(api::Quantization::Unspecified | api::Quantization::None) => Quantization::None,
            Ok(api::Quantization::Int8) => Quantization::Int8,
            Err(_) => {
                return Err(SpecError::UnknownQuantization {
                    value: spec.quantization,
                });
            }
        };
        let mut seen = BTreeSet::new();
        let mut payload_indexes = Vec::with_capacity(spec.payload_indexes.len());
        for index in &spec.payload_indexes {
            let index = PayloadIndexSpec::from_proto(index)?;
            if !seen.insert(index.field.clone()) {
                return Err(SpecError::DuplicatePayloadIndex { field: index.field });
            }
            payload_indexes.push(index);
        }
        let search_cache = SearchCache::default().updated(spec.search_cache.as_ref())?;
        Ok(Self {
            name: spec.name.clone(),
            dimension: spec.dimension,
            metric,
            shard_count: spec.shard_count,
            replication_factor,
            hnsw,
            quantization,
            payload_indexes,
            search_cache,
        })
    }

    /// The resolved spec once the cluster has chosen the shard count.
    #[must_use]
    pub fn resolve(&self, shard_count: u32) -> CollectionConfig {
        CollectionConfig {
            name: self.name.clone(),
            dimension: self.dimension,
            metric: self.metric,
            shard_count,
            replication_factor: self.replication_factor,
            hnsw: self.hnsw,
            quantization: self.quantization,
            payload_indexes: self.payload_indexes.clone(),
            search_cache: self.search_cache,
        }
    }
}

fn resolve_hnsw(hnsw: Option<&api::HnswConfig>) -> Result<HnswParams, SpecError> {
    let resolved = rules::resolve_hnsw(
        hnsw.and_then(|h| h.m),
        hnsw.and_then(|h| h.ef_construction),
        hnsw.and_then(|h| h.ef),
    )
    .map_err(|e| match e {
        HnswParamError::M { got } => SpecError::HnswM { got },
        HnswParamError::EfConstruction { got, m } => SpecError::EfConstruction { got, m },
        HnswParamError::Ef { got } => SpecError::Ef { got },
    })?;
    Ok(HnswParams {
        m: resolved.m,
        ef_construction: resolved.ef_construction,
        ef: resolved.ef,
    })
}

impl CollectionConfig {
    /// The default `ef` an update of this collection to `wanted` sets: `wanted`'s
    /// `hnsw.ef` when given (checked against its range), else the current one. Every other
    /// field of `wanted` must be unset or equal to this collection's.
    ///
    /// # Errors
    /// [`SpecError::Fixed`] naming the first fixed setting `wanted` would change;
    /// [`SpecError::Ef`] for an `ef` out of range.
    pub fn updated_ef(&self, wanted: &api::CollectionSpec) -> Result<u32, SpecError> {
        let current = self.to_proto();
        let fixed = |field: &str, current: &dyn fmt::Debug, asked: &dyn fmt::Debug| {
            Err(SpecError::Fixed {
                field: field.to_owned(),
                current: format!("{current:?}"),
                asked: format!("{asked:?}"),
            })
        };
        if !wanted.name.is_empty() && wanted.name != current.name {
            return fixed("name", &current.name, &wanted.name);
        }
        if wanted.dimension != 0 && wanted.dimension != current.dimension {
            return fixed("dimension", &current.dimension, &wanted.dimension);
        }
        if wanted.metric != 0 && wanted.metric != current.metric {
            return fixed("metric", &current.metric(), &wanted.metric());
        }
        if wanted.shard_count.is_some() && wanted.shard_count != current.shard_count {
            return fixed(
                "shard_count",
                &self.shard_count,
                &wanted.shard_count.unwrap_or(0),
            );
        }
        if wanted.replication_factor.is_some()
            && wanted.replication_factor != current.replication_factor
        {
            return fixed(
                "replication_factor",
                &self.replication_factor,
                &wanted.replication_factor.unwrap_or(0),
            );
        }
        if wanted.quantization != 0 && wanted.quantization != current.quantization {
            return fixed(
                "quantization",
                &current.quantization(),
                &wanted.quantization(),
            );
        }
        if !wanted.payload_indexes.is_empty() && wanted.payload_indexes != current.payload_indexes {
            let fields =
                |p: &[api::PayloadIndex]| p.iter().map(|i| i.field.clone()).collect::<Vec<_>>();
            return Err(SpecError::PayloadIndexesInSpec {
                current: format!("{:?}", fields(&current.payload_indexes)),
                asked: format!("{:?}", fields(&wanted.payload_indexes)),
            });
        }
        let Some(hnsw) = &wanted.hnsw else {
            return Ok(self.hnsw.ef);
        };
        if let Some(m) = hnsw.m.filter(|&m| m != self.hnsw.m) {
            return fixed("hnsw.m", &self.hnsw.m, &m);
        }
        if let Some(ef_construction) = hnsw
            .ef_construction
            .filter(|&e| e != self.hnsw.ef_construction)
        {
            return fixed(
                "hnsw.ef_construction",
                &self.hnsw.ef_construction,
                &ef_construction,
            );
        }
        match hnsw.ef {
            None => Ok(self.hnsw.ef),
            Some(ef) => resolve_hnsw(Some(&api::HnswConfig {
                ef: Some(ef),
                ..Default::default()
            }))
            .map(|h| h.ef),
        }
    }

    /// The payload indexes after an update drops the indexes of `drop` and adds those
    /// of `add` (a field in both takes the kind `add` gives it); `None` when they stay
    /// as they are. Adding an index the collection has, of the same kind, changes nothing.
    ///
    /// # Errors
    /// [`SpecError::NoPayloadIndex`] for a dropped field without an index,
    /// [`SpecError::PayloadIndexKind`] for an added field indexed as another kind (and
    /// not dropped), [`SpecError::DuplicatePayloadIndex`] for a field added twice, and
    /// the errors of [`PayloadIndexSpec::from_proto`].
    pub fn updated_payload_indexes(
        &self,
        add: &[api::PayloadIndex],
        drop: &[String],
    ) -> Result<Option<Vec<PayloadIndexSpec>>, SpecError> {
        let mut indexes = self.payload_indexes.clone();
        for field in drop {
            let before = indexes.len();
            indexes.retain(|i| &i.field != field);
            if indexes.len() == before {
                return Err(SpecError::NoPayloadIndex {
                    field: field.clone(),
                });
            }
        }
        let mut added = BTreeSet::new();
        for index in add {
            let index = PayloadIndexSpec::from_proto(index)?;
            if !added.insert(index.field.clone()) {
                return Err(SpecError::DuplicatePayloadIndex { field: index.field });
            }
            match indexes.iter().find(|i| i.field == index.field) {
                Some(held) if held.kind == index.kind => {}
                Some(held) => {
                    return Err(SpecError::PayloadIndexKind {
                        field: index.field,
                        current: held.kind.name().to_owned(),
                        asked: index.kind.name().to_owned(),
                    });
                }
                None => indexes.push(index),
            }
        }
        Ok((indexes != self.payload_indexes).then_some(indexes))
    }

    /// The public spec, every optional field present.
    #[must_use]
    pub fn to_proto(&self) -> api::CollectionSpec {
        let metric = match self.metric {
            Metric::Cosine => api::Metric::Cosine,
            Metric::L2 => api::Metric::L2,
            Metric::Dot => api::Metric::Dot,
        };
        let quantization = match self.quantization {
            Quantization::None => api::Quantization::None,
            Quantization::Int8 => api::Quantization::Int8,
        };
        api::CollectionSpec {
            name: self.name.clone(),
            dimension: self.dimension,
            metric: metric.into(),
            shard_count: Some(self.shard_count),
            replication_factor: Some(self.replication_factor),
            hnsw: Some(api::HnswConfig {
                m: Some(self.hnsw.m),
                ef_construction: Some(self.hnsw.ef_construction),
                ef: Some(self.hnsw.ef),
            }),
            quantization: quantization.into(),
            payload_indexes: self
                .payload_indexes
                .iter()
                .map(|index| api::PayloadIndex {
                    field: index.field.clone(),
                    kind: match index.kind {
                        PayloadKind::Keyword => api::PayloadFieldKind::Keyword,
                        PayloadKind::Numeric => api::PayloadFieldKind::Numeric,
                    }
                    .into(),
                })
                .collect(),
            search_cache: Some(self.search_cache.to_proto()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(field: &str, kind: i32) -> api::PayloadIndex {
        api::PayloadIndex {
            field: field.to_owned(),
            kind,
        }
    }

    fn spec(name: &str, dimension: u32) -> api::CollectionSpec {
        api::CollectionSpec {
            name: name.to_owned(),
            dimension,
            metric: api::Metric::Cosine.into(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let request = CollectionRequest::from_proto(&spec("docs", 384)).unwrap();
        assert_eq!(request.shard_count, None);
        assert_eq!(request.replication_factor, 1);
        assert_eq!(
            request.hnsw,
            HnswParams {
                m: 16,
                ef_construction: 200,
                ef: 64
            }
        );
        assert_eq!(request.quantization, Quantization::None);
        let resolved = request.resolve(4).to_proto();
        assert_eq!(resolved.shard_count, Some(4));
        assert_eq!(resolved.replication_factor, Some(1));
        assert_eq!(resolved.quantization, api::Quantization::None as i32);
        assert_eq!(resolved.hnsw.unwrap().ef, Some(64));
    }

    #[test]
    fn names_follow_the_rule() {
        for good in ["a", "A-b_9", "9lives", &"x".repeat(64)] {
            assert_eq!(validate_collection_name(good), Ok(()), "{good}");
        }
        assert_eq!(validate_collection_name(""), Err(SpecError::EmptyName));
        assert_eq!(
            validate_collection_name(&"x".repeat(65)),
            Err(SpecError::NameTooLong { len: 65 })
        );
        for bad in ["_x", "-x", "a b", "a.b", "é", "a/b"] {
            assert!(
                matches!(
                    validate_collection_name(bad),
                    Err(SpecError::BadName { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn dimension_bounds() {
        assert_eq!(
            CollectionRequest::from_proto(&spec("a", 0)),
            Err(SpecError::Dimension { got: 0 })
        );
        assert_eq!(
            CollectionRequest::from_proto(&spec("a", 65_537)),
            Err(SpecError::Dimension { got: 65_537 })
        );
        assert!(CollectionRequest::from_proto(&spec("a", 65_536)).is_ok());
        assert!(CollectionRequest::from_proto(&spec("a", 1)).is_ok());
    }

    #[test]
    fn metric_is_required_and_known() {
        let mut unset = spec("a", 8);
        unset.metric = 0;
        assert_eq!(
            CollectionRequest::from_proto(&unset),
            Err(SpecError::MetricUnspecified)
        );
        let mut unknown = spec("a", 8);
        unknown.metric = 42;
        assert_eq!(
            CollectionRequest::from_proto(&unknown),
            Err(SpecError::UnknownMetric { value: 42 })
        );
    }

    #[test]
    fn shard_count_and_replication_bounds() {
        let mut zero = spec("a", 8);
        zero.shard_count = Some(0);
        assert_eq!(
            CollectionRequest::from_proto(&zero),
            Err(SpecError::ShardCount { got: 0 })
        );
        let mut many = spec("a", 8);
        many.shard_count = Some(1025);
        assert_eq!(
            CollectionRequest::from_proto(&many),
            Err(SpecError::ShardCount { got: 1025 })
        );
        let mut rf0 = spec("a", 8);
        rf0.replication_factor = Some(0);
        assert_eq!(
            CollectionRequest::from_proto(&rf0),
            Err(SpecError::ReplicationFactor { got: 0 })
        );
        let mut rf8 = spec("a", 8);
        rf8.replication_factor = Some(8);
        assert_eq!(
            CollectionRequest::from_proto(&rf8),
            Err(SpecError::ReplicationFactor { got: 8 })
        );
    }

    #[test]
    fn hnsw_bounds() {
        let with = |m, efc, ef| {
            let mut s = spec("a", 8);
            s.hnsw = Some(api::HnswConfig {
                m,
                ef_construction: efc,
                ef,
            });
            CollectionRequest::from_proto(&s).map(|r| r.hnsw)
        };
        assert_eq!(with(Some(3), None, None), Err(SpecError::HnswM { got: 3 }));
        assert_eq!(
            with(Some(129), None, None),
            Err(SpecError::HnswM { got: 129 })
        );
        assert_eq!(
            with(Some(64), Some(32), None),
            Err(SpecError::EfConstruction { got: 32, m: 64 })
        );
        assert_eq!(
            with(None, Some(4097), None),
            Err(SpecError::EfConstruction { got: 4097, m: 16 })
        );
        assert_eq!(with(None, None, Some(0)), Err(SpecError::Ef { got: 0 }));
        assert_eq!(
            with(None, None, Some(32_769)),
            Err(SpecError::Ef { got: 32_769 })
        );
        assert_eq!(
            with(Some(8), Some(8), Some(1)),
            Ok(HnswParams {
                m: 8,
                ef_construction: 8,
                ef: 1
            })
        );
    }

    #[test]
    fn search_cache_settings_default_to_on_and_update_field_by_field() {
        let config = CollectionRequest::from_proto(&spec("a", 8))
            .unwrap()
            .resolve(1);
        assert_eq!(config.search_cache, SearchCache::default());
        assert_eq!(
            config.to_proto().search_cache,
            Some(api::SearchCacheSettings {
                enabled: Some(true),
                ttl_ms: Some(0)
            })
        );
        let off = config
            .search_cache
            .updated(Some(&api::SearchCacheSettings {
                enabled: Some(false),
                ttl_ms: None,
            }))
            .unwrap();
        assert_eq!((off.enabled, off.ttl_ms), (false, 0));
        let timed = off
            .updated(Some(&api::SearchCacheSettings {
                enabled: None,
                ttl_ms: Some(60_000),
            }))
            .unwrap();
        assert_eq!((timed.enabled, timed.ttl_ms), (false, 60_000));
        assert_eq!(timed.updated(None), Ok(timed));
        let too_long = api::SearchCacheSettings {
            enabled: None,
            ttl_ms: Some(rules::MAX_SEARCH_CACHE_TTL_MS + 1),
        };
        assert!(matches!(
            timed.updated(Some(&too_long)),
            Err(SpecError::SearchCacheTtl { .. })
        ));
        let mut created = spec("b", 8);
        created.search_cache = Some(too_long);
        assert!(matches!(
            CollectionRequest::from_proto(&created),
            Err(SpecError::SearchCacheTtl { .. })
        ));
        // A spec that changes only the cache is no change of a fixed setting.
        let mut wanted = spec("a", 8);
        wanted.search_cache = Some(api::SearchCacheSettings {
            enabled: Some(false),
            ttl_ms: None,
        });
        assert_eq!(config.updated_ef(&wanted), Ok(config.hnsw.ef));
    }

    #[test]
    fn an_update_adds_and_drops_payload_indexes_by_field() {
        let mut created = spec("a", 8);
        created.payload_indexes = vec![index("title", 1), index("year", 2)];
        let config = CollectionRequest::from_proto(&created).unwrap().resolve(1);
        let fields = |v: Vec<PayloadIndexSpec>| {
            v.into_iter()
                .map(|i| (i.field, i.kind.name()))
                .collect::<Vec<_>>()
        };
        let added = config
            .updated_payload_indexes(&[index("section", 1)], &["year".to_owned()])
            .unwrap()
            .unwrap();
        assert_eq!(
            fields(added),
            [
                ("title".to_owned(), "keyword"),
                ("section".to_owned(), "keyword")
            ]
        );
        // Nothing changes: the same index again, or nothing asked.
        assert_eq!(
            config.updated_payload_indexes(&[index("title", 1)], &[]),
            Ok(None)
        );
        assert_eq!(config.updated_payload_indexes(&[], &[]), Ok(None));
        // Another kind needs the old index dropped in the same update.
        assert!(matches!(
            config.updated_payload_indexes(&[index("year", 1)], &[]),
            Err(SpecError::PayloadIndexKind { .. })
        ));
        let rekinded = config
            .updated_payload_indexes(&[index("year", 1)], &["year".to_owned()])
            .unwrap()
            .unwrap();
        assert_eq!(fields(rekinded)[1], ("year".to_owned(), "keyword"));
        assert_eq!(
            config.updated_payload_indexes(&[], &["nope".to_owned()]),
            Err(SpecError::NoPayloadIndex {
                field: "nope".into()
            })
        );
        assert!(matches!(
            config.updated_payload_indexes(&[index("t", 0)], &[]),
            Err(SpecError::PayloadKind { .. })
        ));
        assert!(matches!(
            config.updated_payload_indexes(&[index("s", 1), index("s", 1)], &[]),
            Err(SpecError::DuplicatePayloadIndex { .. })
        ));
        // The spec's own list may repeat the current one, not change it.
        let mut wanted = spec("a", 8);
        wanted.payload_indexes = vec![index("title", 1)];
        assert!(matches!(
            config.updated_ef(&wanted),
            Err(SpecError::PayloadIndexesInSpec { .. })
        ));
    }

    #[test]
    fn quantization_and_payload_indexes() {
        let mut q = spec("a", 8);
        q.quantization = 9;
        assert_eq!(
            CollectionRequest::from_proto(&q),
            Err(SpecError::UnknownQuantization { value: 9 })
        );
        let mut p = spec("a", 8);
        p.payload_indexes = vec![index("title", 1), index("year", 2)];
        let request = CollectionRequest::from_proto(&p).unwrap();
        assert_eq!(request.payload_indexes.len(), 2);
        assert_eq!(request.payload_indexes[1].kind, PayloadKind::Numeric);

        p.payload_indexes = vec![index("title", 1), index("title", 2)];
        assert_eq!(
            CollectionRequest::from_proto(&p),
            Err(SpecError::DuplicatePayloadIndex {
                field: "title".into()
            })
        );
        p.payload_indexes = vec![index("", 1)];
        assert_eq!(
            CollectionRequest::from_proto(&p),
            Err(SpecError::PayloadField { len: 0 })
        );
        p.payload_indexes = vec![index("t", 0)];
        assert!(matches!(
            CollectionRequest::from_proto(&p),
            Err(SpecError::PayloadKind { value: 0, .. })
        ));
    }

    #[test]
    fn resolved_spec_round_trips_through_proto() {
        let mut s = spec("round", 96);
        s.metric = api::Metric::Dot.into();
        s.shard_count = Some(3);
        s.replication_factor = Some(2);
        s.quantization = api::Quantization::Int8.into();
        let config = CollectionRequest::from_proto(&s).unwrap().resolve(3);
        let again = CollectionRequest::from_proto(&config.to_proto())
            .unwrap()
            .resolve(3);
        assert_eq!(config, again);
    }
}
