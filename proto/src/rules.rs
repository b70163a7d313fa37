//! The rulebook of Vectron's data contract: every limit, default and check that a
//! client, the gateway, a core and the control plane must agree on, written once.
//!
//! The gateway checks a request against these rules at the door (so an error names the
//! position in the caller's request and no shard sees half of a bad batch); a core
//! checks again before anything reaches its log (a core port can be called directly);
//! the control plane checks collection specs; the CLI checks a file before it sends
//! anything. All of them call the functions below with the same [`Limits`], so "the
//! gateway accepted it, the core refused it" cannot happen, and every door refuses the
//! same input with the same words.
//!
//! | rule | where it applies |
//! | --- | --- |
//! | [`Limits`] (ids, batches, payloads, k, ef, pages, messages, answers) | every request |
//! | [`check_points`], [`check_ids`], [`check_query`] | writes, reads by id, searches |
//! | [`check_vector`], [`check_length`], [`check_payload_depth`] | one point's vector and payload |
//! | [`check_collection_name`], [`MAX_DIMENSION`], [`M_RANGE`], … | collection specs |
//! | [`EPOCH_TRAILER`], [`LEADER_TRAILER`], [`code_name`] | the wire: stale routing, leaders, error code names |
//!
//! ```
//! use vectron_proto::core::v1::Point;
//! use vectron_proto::rules::{check_points, Limits, RuleError};
//! use vectron_proto::v1::{CollectionSpec, Metric};
//!
//! let docs = CollectionSpec::new("docs", 2, Metric::Cosine);
//! let point = |id: &str, vector: Vec<f32>| Point { id: id.into(), vector, payload_json: Vec::new() };
//! let limits = Limits::DEFAULT;
//! assert!(check_points(&limits, &docs, &[point("a", vec![1.0, 0.0])]).is_ok());
//! let err = check_points(&limits, &docs, &[point("a", vec![0.0, 0.0])]).unwrap_err();
//! assert_eq!(err.code(), tonic::Code::InvalidArgument);
//! assert!(matches!(
//!     check_points(&limits, &docs, &[point("", vec![1.0, 0.0])]),
//!     Err(RuleError::BadId { point: 0, len: 0, .. })
//! ));
//! ```

use std::collections::HashSet;
use std::ops::RangeInclusive;

use tonic::Code;

use crate::core::v1::Point;
use crate::v1::{CollectionSpec, Metric};

// --- requests -------------------------------------------------------------------------

/// The limits every request is checked against (docs/api.md, "Limits"). Cores check
/// with [`Limits::DEFAULT`]; a gateway may be configured stricter, never looser
/// ([`Limits::check_within`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest point id, in bytes. Default 128.
    pub max_id_bytes: usize,
    /// Most points per upsert request or stream message. Default 10,000.
    pub max_points: usize,
    /// Most ids per get or delete. Default 10,000.
    pub max_ids: usize,
    /// Largest payload of one point, as JSON text. Default 64 KiB.
    pub max_payload_bytes: usize,
    /// Most bytes of ids, vectors and payloads in one write to one shard: one log
    /// record must fit a log segment (64 MiB by default) with room to spare. Default
    /// 32 MiB.
    pub max_batch_bytes: usize,
    /// Most hits per search. Default 10,000.
    pub max_k: u32,
    /// Largest candidate list per search. Default 32,768.
    pub max_ef: u32,
    /// Most searches per batch. Default 1,000.
    pub max_searches: usize,
    /// Most points per scroll page. Default 10,000.
    pub max_scroll_limit: u32,
    /// Largest gRPC message and HTTP body. Default 64 MiB.
    pub max_message_bytes: usize,
    /// Largest line of an NDJSON upsert stream. Default 8 MiB.
    pub max_line_bytes: usize,
    /// Most bytes of ids, vectors and payloads in one answer (a search, a get, a scroll
    /// page; for a core, its shard's part). A search or get whose answer would be larger
    /// is refused before it is built; a scroll page ends early. Default 32 MiB.
    pub max_answer_bytes: usize,
}

impl Limits {
    /// The rulebook's limits.
    pub const DEFAULT: Limits = Limits {
        max_id_bytes: 128,
        max_points: 10_000,
        max_ids: 10_000,
        max_payload_bytes: 64 * 1024,
        max_batch_bytes: 32 << 20,
        max_k: 10_000,
        max_ef: 32_768,
        max_searches: 1_000,
        max_scroll_limit: 10_000,
        max_message_bytes: 64 << 20,
        max_line_bytes: 8 << 20,
        max_answer_bytes: 32 << 20,
    };

    /// Checks that every limit is positive and no looser than `outer`'s (a gateway's
    /// limits against the cores', [`Limits::DEFAULT`]).
    ///
    /// # Errors
    /// The name of the first limit that is zero or above `outer`'s, with both values.
    pub fn check_within(&self, outer: &Limits) -> Result<(), LimitError> {
        let pairs: [(&'static str, u64, u64); 12] = [
            (
                "max_id_bytes",
                self.max_id_bytes as u64,
                outer.max_id_bytes as u64,
            ),
            (
                "max_points",
                self.max_points as u64,
                outer.max_points as u64,
            ),
            ("max_ids", self.max_ids as u64, outer.max_ids as u64),
            (
                "max_payload_bytes",
                self.max_payload_bytes as u64,
                outer.max_payload_bytes as u64,
            ),
            (
                "max_batch_bytes",
                self.max_batch_bytes as u64,
                outer.max_batch_bytes as u64,
            ),
            ("max_k", u64::from(self.max_k), u64::from(outer.max_k)),
            ("max_ef", u64::from(self.max_ef), u64::from(outer.max_ef)),
            (
                "max_searches",
                self.max_searches as u64,
                outer.max_searches as u64,
            ),
            (
                "max_scroll_limit",
                u64::from(self.max_scroll_limit),
                u64::from(outer.max_scroll_limit),
            ),
            (
                "max_message_bytes",
                self.max_message_bytes as u64,
                outer.max_message_bytes as u64,
            ),
            (
                "max_line_bytes",
                self.max_line_bytes as u64,
                outer.max_line_bytes as u64,
            ),
            (
                "max_answer_bytes",
                self.max_answer_bytes as u64,
                outer.max_answer_bytes as u64,
            ),
        ];
        match pairs.iter().find(|(_, got, max)| *got == 0 || got > max) {
            Some(&(limit, got, max)) => Err(LimitError { limit, got, max }),
            None => Ok(()),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A configured limit that is zero or looser than the rulebook allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("limit {limit} is {got}; it must be 1 to {max}, the limit every core enforces")]
pub struct LimitError {
    /// The field of [`Limits`].
    pub limit: &'static str,
    /// The value given.
    pub got: u64,
    /// The largest allowed.
    pub max: u64,
}

/// Scroll page size when a request leaves it at 0.
pub const DEFAULT_SCROLL_LIMIT: u32 = 100;

/// Bytes an answer spends on one point or hit beyond its id, vector and payload (the
/// message framing and score), for [`Limits::max_answer_bytes`].
pub const ANSWER_OVERHEAD_BYTES: usize = 16;

/// Bytes a point costs in a write batch, for [`Limits::max_batch_bytes`].
#[must_use]
pub fn point_bytes(point: &Point) -> usize {
    point.id.len() + point.vector.len() * 4 + point.payload_json.len() + ANSWER_OVERHEAD_BYTES
}

/// Why a request breaks a rule. Every variant is the caller's to fix; [`RuleError::code`]
/// is its gRPC code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    /// A request without points (or ids).
    #[error("the request carries no points")]
    EmptyBatch,
    /// Too many points, ids or searches in one request.
    #[error("the request carries {got} {what}, more than the limit of {max}")]
    TooMany {
        /// What was counted: `points`, `ids`, `searches`.
        what: &'static str,
        /// How many were given.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// Too many bytes in one write to one shard.
    #[error(
        "the request carries {got} bytes of points, more than the limit of {max} per shard; split it"
    )]
    BatchBytes {
        /// Bytes given.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// A point id that is empty or too long.
    #[error("point {point}: id must be 1 to {max} bytes of UTF-8, got {len} bytes")]
    BadId {
        /// Position of the point (or id) in the request.
        point: usize,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A point id given twice in one request.
    #[error("point id {id:?} appears more than once in the request")]
    DuplicateId {
        /// The id.
        id: String,
    },
    /// A point's vector breaks a rule (dimension, finite values, direction).
    #[error(transparent)]
    Vector(#[from] VectorError),
    /// A payload nested deeper than [`MAX_PAYLOAD_DEPTH`].
    #[error("point {point} (id {id:?}): payload {reason}")]
    PayloadDepth {
        /// Position in the request.
        point: usize,
        /// The point's id.
        id: String,
        /// How deep it nests.
        reason: PayloadDepthError,
    },
    /// A payload that is not a JSON object.
    #[error("point {point} (id {id:?}): payload must be a JSON object: {reason}")]
    BadPayload {
        /// Position in the request.
        point: usize,
        /// The point's id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A payload above the size limit.
    #[error(
        "point {point} (id {id:?}): payload is {got} bytes of JSON, more than the limit of {max}"
    )]
    PayloadTooLarge {
        /// Position in the request.
        point: usize,
        /// The point's id.
        id: String,
        /// Its encoded size.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// A query vector of the wrong length.
    #[error("query vector has {got} values, the collection has dimension {expected}")]
    QueryDimension {
        /// The collection's dimension.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// A query vector holding NaN or an infinity.
    #[error("query vector value {at} is not a finite number")]
    QueryNonFinite {
        /// Index of the first bad value.
        at: usize,
    },
    /// A query vector whose length is out of range.
    #[error("query {0}")]
    QueryLength(LengthError),
    /// A numeric parameter outside its range.
    #[error("{what} must be between {min} and {max}, got {got}")]
    OutOfRange {
        /// The parameter: `k`, `ef`, `limit`, `timeout_ms`.
        what: &'static str,
        /// Given.
        got: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
    /// An answer that would be larger than [`Limits::max_answer_bytes`].
    #[error(
        "the answer would carry more than {max} bytes ({what}); ask for fewer {unit}, or leave out payloads or vectors"
    )]
    AnswerTooLarge {
        /// What was being built: `search hits`, `points`.
        what: &'static str,
        /// What to ask fewer of: `hits (k)`, `ids`.
        unit: &'static str,
        /// The limit.
        max: usize,
    },
    /// A delete that names neither ids nor a filter.
    #[error("a delete must name ids or a filter")]
    NoSelector,
    /// A delete by filter whose filter has no condition.
    #[error(
        "a delete by filter needs a non-empty filter; drop the collection to delete everything"
    )]
    EmptyDeleteFilter,
}

impl RuleError {
    /// The gRPC code of this error: `RESOURCE_EXHAUSTED` for a request or answer that is
    /// too large, `INVALID_ARGUMENT` for everything else.
    #[must_use]
    pub fn code(&self) -> Code {
        match self {
            RuleError::BatchBytes { .. } | RuleError::AnswerTooLarge { .. } => {
                Code::ResourceExhausted
            }
            _ => Code::InvalidArgument,
        }
    }
}

/// Checks a point id at position `point` of a request.
///
/// # Errors
/// [`RuleError::BadId`] for an empty id or one longer than the limit.
pub fn check_id(limits: &Limits, point: usize, id: &str) -> Result<(), RuleError> {
    if id.is_empty() || id.len() > limits.max_id_bytes {
        return Err(RuleError::BadId {
            point,
            len: id.len(),
            max: limits.max_id_bytes,
        });
    }
    Ok(())
}

/// Checks the points of one write (an upsert request, or one message of a stream) for
/// `collection`: their number, each id, vector and payload size, and that no id
/// repeats. The payload's JSON itself is checked where it is parsed
/// ([`check_payload_depth`]).
///
/// # Errors
/// The first rule broken, naming the point's position.
pub fn check_points(
    limits: &Limits,
    collection: &CollectionSpec,
    points: &[Point],
) -> Result<(), RuleError> {
    let (dimension, cosine) = shape(collection);
    if points.is_empty() {
        return Err(RuleError::EmptyBatch);
    }
    if points.len() > limits.max_points {
        return Err(RuleError::TooMany {
            what: "points",
            got: points.len(),
            max: limits.max_points,
        });
    }
    let mut seen = HashSet::with_capacity(points.len());
    for (i, p) in points.iter().enumerate() {
        check_id(limits, i, &p.id)?;
        check_vector(i, &p.id, &p.vector, dimension, cosine)?;
        check_payload_size(limits, i, &p.id, p.payload_json.len())?;
        if !seen.insert(p.id.as_str()) {
            return Err(RuleError::DuplicateId { id: p.id.clone() });
        }
    }
    Ok(())
}

/// A collection's dimension, and whether it compares by cosine similarity.
fn shape(collection: &CollectionSpec) -> (usize, bool) {
    (
        collection.dimension as usize,
        collection.metric() == Metric::Cosine,
    )
}

/// Checks the size of the payload (`len` bytes of JSON text) of the point at `point`.
///
/// # Errors
/// [`RuleError::PayloadTooLarge`].
pub fn check_payload_size(
    limits: &Limits,
    point: usize,
    id: &str,
    len: usize,
) -> Result<(), RuleError> {
    if len > limits.max_payload_bytes {
        return Err(RuleError::PayloadTooLarge {
            point,
            id: id.to_owned(),
            got: len,
            max: limits.max_payload_bytes,
        });
    }
    Ok(())
}

/// Checks the ids of a get or a delete.
///
/// # Errors
/// [`RuleError::EmptyBatch`], [`RuleError::TooMany`] or [`RuleError::BadId`].
pub fn check_ids(limits: &Limits, ids: &[String]) -> Result<(), RuleError> {
    if ids.is_empty() {
        return Err(RuleError::EmptyBatch);
    }
    if ids.len() > limits.max_ids {
        return Err(RuleError::TooMany {
            what: "ids",
            got: ids.len(),
            max: limits.max_ids,
        });
    }
    ids.iter()
        .enumerate()
        .try_for_each(|(i, id)| check_id(limits, i, id))
}

/// Checks a query: its vector against `collection`, `k` and `ef` against the limits.
///
/// # Errors
/// The first rule broken.
pub fn check_query(
    limits: &Limits,
    collection: &CollectionSpec,
    vector: &[f32],
    k: u32,
    ef: Option<u32>,
) -> Result<(), RuleError> {
    let (dimension, cosine) = shape(collection);
    if vector.len() != dimension {
        return Err(RuleError::QueryDimension {
            expected: dimension,
            got: vector.len(),
        });
    }
    if let Some(at) = vector.iter().position(|x| !x.is_finite()) {
        return Err(RuleError::QueryNonFinite { at });
    }
    check_length(vector, cosine).map_err(RuleError::QueryLength)?;
    check_range("k", u64::from(k), 1, u64::from(limits.max_k))?;
    if let Some(ef) = ef {
        check_range("ef", u64::from(ef), 1, u64::from(limits.max_ef))?;
    }
    Ok(())
}

/// Checks a scroll page size (0 means [`DEFAULT_SCROLL_LIMIT`]); returns the size to use.
///
/// # Errors
/// [`RuleError::OutOfRange`] above the limit.
pub fn check_scroll_limit(limits: &Limits, limit: u32) -> Result<u32, RuleError> {
    if limit == 0 {
        return Ok(DEFAULT_SCROLL_LIMIT);
    }
    check_range(
        "limit",
        u64::from(limit),
        1,
        u64::from(limits.max_scroll_limit),
    )?;
    Ok(limit)
}

/// Checks that `got` is within `min..=max`.
///
/// # Errors
/// [`RuleError::OutOfRange`] naming `what`.
pub fn check_range(what: &'static str, got: u64, min: u64, max: u64) -> Result<(), RuleError> {
    if (min..=max).contains(&got) {
        Ok(())
    } else {
        Err(RuleError::OutOfRange {
            what,
            got,
            min,
            max,
        })
    }
}

// --- collections ----------------------------------------------------------------------

/// Longest collection name, in characters.
pub const MAX_COLLECTION_NAME_LEN: usize = 64;
/// Largest vector dimension.
pub const MAX_DIMENSION: u32 = 65_536;
/// Largest shard count of a collection.
pub const MAX_SHARD_COUNT: u32 = 1024;
/// Largest replication factor.
pub const MAX_REPLICATION_FACTOR: u32 = 7;
/// Longest payload field name that can be indexed, in bytes.
pub const MAX_PAYLOAD_FIELD_LEN: usize = 128;
/// Most collections a cluster holds: each shard holds a few files open and a log on
/// every core that serves it, so collections are not free.
pub const MAX_COLLECTIONS: usize = 1_000;
/// Longest a collection may ask gateways to serve a cached search answer
/// (`SearchCacheSettings.ttl_ms`): an hour.
pub const MAX_SEARCH_CACHE_TTL_MS: u32 = 3_600_000;
/// HNSW `m` (links per node on the upper layers) allowed.
pub const M_RANGE: RangeInclusive<u32> = 4..=128;
/// HNSW `ef_construction` allowed (and never below `m`).
pub const EF_CONSTRUCTION_RANGE: RangeInclusive<u32> = 8..=4096;
/// Default HNSW `m`.
pub const DEFAULT_M: u32 = 16;
/// Default HNSW `ef_construction`.
pub const DEFAULT_EF_CONSTRUCTION: u32 = 200;
/// Default search `ef`.
pub const DEFAULT_EF: u32 = 64;

/// Why a collection name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error(
        "collection name is empty: use 1 to {MAX_COLLECTION_NAME_LEN} characters from [A-Za-z0-9_-]"
    )]
    Empty,
    /// The name is longer than [`MAX_COLLECTION_NAME_LEN`].
    #[error("collection name has {len} characters: at most {MAX_COLLECTION_NAME_LEN} are allowed")]
    TooLong {
        /// Characters in the name.
        len: usize,
    },
    /// The name holds a character outside `[A-Za-z0-9_-]`, or starts with `_` or `-`.
    #[error(
        "collection name {name:?} is not allowed: use [A-Za-z0-9_-], starting with a letter or a digit"
    )]
    BadCharacters {
        /// The name as given.
        name: String,
    },
}

/// Checks a collection name: 1 to [`MAX_COLLECTION_NAME_LEN`] characters from
/// `[A-Za-z0-9_-]`, starting with a letter or a digit. Such a name is one plain path
/// component (no `/`, no `..`), so a shard's directory can be named after it.
///
/// # Errors
/// [`NameError`].
pub fn check_collection_name(name: &str) -> Result<(), NameError> {
    let len = name.chars().count();
    if len == 0 {
        return Err(NameError::Empty);
    }
    if len > MAX_COLLECTION_NAME_LEN {
        return Err(NameError::TooLong { len });
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !name.chars().all(allowed) {
        return Err(NameError::BadCharacters {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// HNSW parameters with the rulebook's defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Links per node on the upper layers.
    pub m: u32,
    /// Candidate list size while building.
    pub ef_construction: u32,
    /// Default candidate list size while searching.
    pub ef: u32,
}

/// Why HNSW parameters are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HnswParamError {
    /// `m` outside [`M_RANGE`].
    #[error("hnsw.m must be {} to {}, got {got}", M_RANGE.start(), M_RANGE.end())]
    M {
        /// The value given.
        got: u32,
    },
    /// `ef_construction` outside [`EF_CONSTRUCTION_RANGE`], or below `m`.
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
    /// The default `ef` outside `1..=max_ef`.
    #[error("hnsw.ef must be 1 to {}, got {got}", Limits::DEFAULT.max_ef)]
    Ef {
        /// The value given.
        got: u32,
    },
}

/// Fills in the defaults a spec leaves out ([`DEFAULT_M`], [`DEFAULT_EF_CONSTRUCTION`],
/// [`DEFAULT_EF`]) and checks the result: the one resolution the control plane and the
/// cores share.
///
/// # Errors
/// [`HnswParamError`] for the first parameter out of range.
pub fn resolve_hnsw(
    m: Option<u32>,
    ef_construction: Option<u32>,
    ef: Option<u32>,
) -> Result<HnswParams, HnswParamError> {
    let m = m.unwrap_or(DEFAULT_M);
    if !M_RANGE.contains(&m) {
        return Err(HnswParamError::M { got: m });
    }
    let ef_construction = ef_construction.unwrap_or(DEFAULT_EF_CONSTRUCTION);
    if !EF_CONSTRUCTION_RANGE.contains(&ef_construction) || ef_construction < m {
        return Err(HnswParamError::EfConstruction {
            got: ef_construction,
            m,
        });
    }
    let ef = ef.unwrap_or(DEFAULT_EF);
    if ef == 0 || ef > Limits::DEFAULT.max_ef {
        return Err(HnswParamError::Ef { got: ef });
    }
    Ok(HnswParams {
        m,
        ef_construction,
        ef,
    })
}

// --- the wire -------------------------------------------------------------------------

/// Trailer in which a core names the epoch it serves a shard at, on a
/// `FAILED_PRECONDITION` answer to a call that named another: the caller's routing is
/// stale.
pub const EPOCH_TRAILER: &str = "vectron-epoch";

/// Trailer in which a replica of a replicated shard that does not lead its group names
/// the leader it knows of, as `<replica id>@<ip:port>`, on an `UNAVAILABLE` answer to a
/// write or a linearizable read: the caller tries that core next. Absent when the
/// replica knows no leader (an election is under way).
pub const LEADER_TRAILER: &str = "vectron-leader";

/// Metadata (and HTTP header) telling a client refused with `RESOURCE_EXHAUSTED` for
/// being over a budget how many whole seconds to wait before trying again.
pub const RETRY_AFTER: &str = "retry-after";

/// The canonical name of a gRPC code, as JSON error bodies and the CLI print it.
#[must_use]
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

// --- one point's vector and payload ---------------------------------------------------

/// The longest vector Vectron compares (Euclidean length). Past it, squared distances
/// and dot products computed in `f32` can overflow to infinity and every score ties.
pub const MAX_LENGTH: f64 = 1e15;

/// The shortest vector a cosine collection takes. Normalising a shorter one in `f32`
/// loses its direction (its squared values underflow), or leaves none at all.
pub const MIN_COSINE_LENGTH: f64 = 1e-15;

/// Why a vector's length is refused (for a point or a query alike).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum LengthError {
    /// An all-zero vector in a cosine collection, which has no direction.
    #[error("an all-zero vector has no direction for cosine similarity")]
    Zero,
    /// A cosine vector shorter than [`MIN_COSINE_LENGTH`].
    #[error(
        "vector length {length:.3e} is below {MIN_COSINE_LENGTH:e}, too short to give a direction for cosine similarity"
    )]
    TooShort {
        /// The vector's Euclidean length.
        length: f64,
    },
    /// A vector longer than [`MAX_LENGTH`].
    #[error("vector length {length:.3e} is above {MAX_LENGTH:e}, where scores overflow")]
    TooLong {
        /// The vector's Euclidean length.
        length: f64,
    },
}

/// Why a point's vector is refused. Every variant is an `INVALID_ARGUMENT`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VectorError {
    /// A vector whose length is not the collection's dimension.
    #[error(
        "point {point} (id {id:?}): vector has {got} values, the collection has dimension {expected}"
    )]
    WrongDimension {
        /// Position in the request.
        point: usize,
        /// The point's id.
        id: String,
        /// The collection's dimension.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// A vector holding NaN or an infinity.
    #[error("point {point} (id {id:?}): vector value {at} is not a finite number")]
    NonFinite {
        /// Position in the request.
        point: usize,
        /// The point's id.
        id: String,
        /// Index of the first bad value.
        at: usize,
    },
    /// A vector whose Euclidean length is out of range (see [`check_length`]).
    #[error("point {point} (id {id:?}): {reason}")]
    Length {
        /// Position in the request.
        point: usize,
        /// The point's id.
        id: String,
        /// Which bound it crosses.
        reason: LengthError,
    },
}

/// Checks the vector of the point at position `point` (id `id`) of a request against a
/// collection of `dimension` values, compared by cosine similarity when `cosine`.
///
/// ```
/// use vectron_proto::rules::{check_vector, LengthError, VectorError};
///
/// assert!(check_vector(0, "a", &[0.5, 1.0], 2, true).is_ok());
/// assert!(matches!(
///     check_vector(1, "b", &[f32::NAN, 1.0], 2, false),
///     Err(VectorError::NonFinite { point: 1, at: 0, .. })
/// ));
/// assert!(matches!(
///     check_vector(2, "c", &[1e-30, 1e-30], 2, true),
///     Err(VectorError::Length { reason: LengthError::TooShort { .. }, .. })
/// ));
/// ```
///
/// # Errors
/// [`VectorError`]: the first rule the vector breaks.
pub fn check_vector(
    point: usize,
    id: &str,
    vector: &[f32],
    dimension: usize,
    cosine: bool,
) -> Result<(), VectorError> {
    if vector.len() != dimension {
        return Err(VectorError::WrongDimension {
            point,
            id: id.to_owned(),
            expected: dimension,
            got: vector.len(),
        });
    }
    if let Some(at) = vector.iter().position(|x| !x.is_finite()) {
        return Err(VectorError::NonFinite {
            point,
            id: id.to_owned(),
            at,
        });
    }
    check_length(vector, cosine).map_err(|reason| VectorError::Length {
        point,
        id: id.to_owned(),
        reason,
    })
}

/// Checks the Euclidean length of a vector of finite values: at most [`MAX_LENGTH`], and
/// for cosine (`cosine`) not zero and at least [`MIN_COSINE_LENGTH`]. Queries are held to
/// the same rule as points. The length is computed in `f64`, so it is exact enough to
/// decide for any `f32` input.
///
/// # Errors
/// [`LengthError`]: the bound the vector crosses.
pub fn check_length(vector: &[f32], cosine: bool) -> Result<(), LengthError> {
    let length = vector
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if length > MAX_LENGTH {
        return Err(LengthError::TooLong { length });
    }
    if cosine {
        if length == 0.0 {
            return Err(LengthError::Zero);
        }
        if length < MIN_COSINE_LENGTH {
            return Err(LengthError::TooShort { length });
        }
    }
    Ok(())
}

/// How deep a payload may nest objects and arrays: `{"a": 1}` is 1 level, `{"a": [1]}` 2.
/// Past it a payload would not decode as a `google.protobuf.Struct` in a gRPC answer
/// (protobuf decoders stop at 100 nested messages, and each JSON level costs up to three).
pub const MAX_PAYLOAD_DEPTH: usize = 24;

/// A payload nested deeper than [`MAX_PAYLOAD_DEPTH`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("nests objects and arrays {depth} levels deep, more than the limit of {MAX_PAYLOAD_DEPTH}")]
pub struct PayloadDepthError {
    /// The payload's depth (see [`json_depth`]).
    pub depth: usize,
}

/// Checks a payload's depth (from [`json_depth`]) against [`MAX_PAYLOAD_DEPTH`].
///
/// # Errors
/// [`PayloadDepthError`] when it is deeper.
pub fn check_payload_depth(depth: usize) -> Result<(), PayloadDepthError> {
    if depth > MAX_PAYLOAD_DEPTH {
        Err(PayloadDepthError { depth })
    } else {
        Ok(())
    }
}

/// The nesting depth of a JSON value: 0 for a scalar, 1 for an object or array of
/// scalars, one more per level within.
#[must_use]
pub fn json_depth(value: &serde_json::Value) -> usize {
    // Iterative, so that no input can exhaust the stack.
    let mut deepest = 0;
    let mut stack = vec![(value, 1)];
    while let Some((value, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match value {
            serde_json::Value::Array(items) => Box::new(items.iter()),
            serde_json::Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        deepest = deepest.max(depth);
        stack.extend(children.map(|child| (child, depth + 1)));
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_in_order() {
        assert_eq!(
            check_vector(2, "x", &[1.0], 2, true),
            Err(VectorError::WrongDimension {
                point: 2,
                id: "x".into(),
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            check_vector(0, "x", &[0.0, f32::INFINITY], 2, true),
            Err(VectorError::NonFinite {
                point: 0,
                id: "x".into(),
                at: 1
            })
        );
        assert_eq!(
            check_vector(0, "x", &[0.0, 0.0], 2, true),
            Err(VectorError::Length {
                point: 0,
                id: "x".into(),
                reason: LengthError::Zero
            })
        );
        assert_eq!(check_vector(0, "x", &[0.0, 0.0], 2, false), Ok(()));
        assert_eq!(
            check_vector(3, "y", &[0.0; 3], 2, false)
                .unwrap_err()
                .to_string(),
            "point 3 (id \"y\"): vector has 3 values, the collection has dimension 2"
        );
    }

    #[test]
    fn lengths_are_held_to_what_f32_scores_can_carry() {
        // Squares of 1e-30 underflow f32 to zero: normalising it would divide by zero.
        assert!(matches!(
            check_length(&[1e-30, 1e-30], true),
            Err(LengthError::TooShort { .. })
        ));
        assert_eq!(check_length(&[1e-30, 1e-30], false), Ok(()));
        assert_eq!(check_length(&[0.0, 0.0], false), Ok(()));
        // 3e38 is a finite f32, but its square is not.
        for cosine in [true, false] {
            assert!(matches!(
                check_length(&[3e38, 3e38], cosine),
                Err(LengthError::TooLong { .. })
            ));
        }
        assert_eq!(check_length(&[1e-15, 0.0], true), Ok(()));
        assert_eq!(check_length(&[1e15, 0.0], false), Ok(()));
        assert_eq!(check_length(&[1e-3; 384], true), Ok(()));
        assert_eq!(
            check_vector(1, "b", &[3e38, 0.0], 2, false)
                .unwrap_err()
                .to_string(),
            "point 1 (id \"b\"): vector length 3.000e38 is above 1e15, where scores overflow"
        );
    }

    fn point(id: &str, vector: Vec<f32>) -> Point {
        Point {
            id: id.into(),
            vector,
            payload_json: Vec::new(),
        }
    }

    #[test]
    fn each_broken_point_rule_names_the_point() {
        let cosine = CollectionSpec::new("c", 3, Metric::Cosine);
        let check = |points: &[Point]| check_points(&Limits::DEFAULT, &cosine, points);
        let ok = || point("a", vec![1.0, 2.0, 3.0]);
        check(&[ok(), point("b", vec![0.0, 1.0, 0.0])]).unwrap();
        let cases: Vec<(Vec<Point>, &str)> = vec![
            (vec![], "no points"),
            (
                vec![ok(), point("b", vec![1.0; 4])],
                "point 1 (id \"b\"): vector has 4 values",
            ),
            (
                vec![point("n", vec![1.0, f32::NAN, 0.0])],
                "vector value 1 is not a finite",
            ),
            (vec![point("z", vec![0.0; 3])], "all-zero vector"),
            (
                vec![point("", vec![1.0; 3])],
                "point 0: id must be 1 to 128 bytes",
            ),
            (
                vec![point(&"x".repeat(1024), vec![1.0; 3])],
                "got 1024 bytes",
            ),
            (vec![ok(), ok()], "appears more than once"),
        ];
        for (points, expected) in cases {
            let err = check(&points).unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument);
            assert!(err.to_string().contains(expected), "{err} ∌ {expected}");
        }
        let mut big = point("p", vec![1.0; 3]);
        big.payload_json = vec![b' '; 64 * 1024 + 1];
        assert!(matches!(
            check(&[big]),
            Err(RuleError::PayloadTooLarge { got: 65537, .. })
        ));
        // Zero vectors are fine outside cosine.
        let l2 = CollectionSpec::new("c", 3, Metric::L2);
        check_points(&Limits::DEFAULT, &l2, &[point("z", vec![0.0; 3])]).unwrap();
    }

    #[test]
    fn batches_id_lists_and_queries_have_limits() {
        let limits = Limits {
            max_points: 2,
            max_ids: 2,
            ..Limits::DEFAULT
        };
        let points: Vec<Point> = (0..3)
            .map(|i| point(&i.to_string(), vec![1.0; 3]))
            .collect();
        assert!(matches!(
            check_points(&limits, &CollectionSpec::new("c", 3, Metric::Dot), &points),
            Err(RuleError::TooMany { got: 3, max: 2, .. })
        ));
        let ids: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        assert!(matches!(
            check_ids(&limits, &ids),
            Err(RuleError::TooMany { what: "ids", .. })
        ));
        assert_eq!(check_ids(&limits, &[]), Err(RuleError::EmptyBatch));
        assert!(matches!(
            check_ids(&limits, &["a".into(), String::new()]),
            Err(RuleError::BadId { point: 1, .. })
        ));
        let l = Limits::DEFAULT;
        let c = CollectionSpec::new("c", 3, Metric::Cosine);
        check_query(&l, &c, &[1.0, 0.0, 0.0], 10, Some(64)).unwrap();
        assert_eq!(
            check_query(&l, &c, &[0.5; 10], 10, None),
            Err(RuleError::QueryDimension {
                expected: 3,
                got: 10
            })
        );
        assert_eq!(
            check_query(&l, &c, &[1.0, f32::INFINITY, 0.0], 10, None),
            Err(RuleError::QueryNonFinite { at: 1 })
        );
        for (k, ef) in [(0, None), (10_001, None), (10, Some(0)), (10, Some(40_000))] {
            let err = check_query(&l, &c, &[1.0; 3], k, ef).unwrap_err();
            assert_eq!(err.code(), Code::InvalidArgument, "k={k} ef={ef:?}");
        }
        assert_eq!(check_scroll_limit(&l, 0), Ok(DEFAULT_SCROLL_LIMIT));
        assert_eq!(check_scroll_limit(&l, 10_000), Ok(10_000));
        assert!(check_scroll_limit(&l, 10_001).is_err());
    }

    #[test]
    fn a_configured_limit_may_be_stricter_never_looser() {
        let stricter = Limits {
            max_points: 100,
            ..Limits::DEFAULT
        };
        assert_eq!(stricter.check_within(&Limits::DEFAULT), Ok(()));
        let looser = Limits {
            max_k: 20_000,
            ..Limits::DEFAULT
        };
        assert_eq!(
            looser.check_within(&Limits::DEFAULT),
            Err(LimitError {
                limit: "max_k",
                got: 20_000,
                max: 10_000
            })
        );
        let zero = Limits {
            max_answer_bytes: 0,
            ..Limits::DEFAULT
        };
        assert!(zero.check_within(&Limits::DEFAULT).is_err());
    }

    #[test]
    fn collection_names_and_hnsw_parameters() {
        let longest = "a".repeat(MAX_COLLECTION_NAME_LEN);
        for ok in ["docs", "Docs_2", "a-b", "0", longest.as_str()] {
            assert_eq!(check_collection_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_collection_name(""), Err(NameError::Empty));
        assert_eq!(
            check_collection_name(&"a".repeat(65)),
            Err(NameError::TooLong { len: 65 })
        );
        for bad in ["_x", "-x", "a/b", "..", "a b", "é"] {
            assert!(
                matches!(
                    check_collection_name(bad),
                    Err(NameError::BadCharacters { .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(
            resolve_hnsw(None, None, None),
            Ok(HnswParams {
                m: DEFAULT_M,
                ef_construction: DEFAULT_EF_CONSTRUCTION,
                ef: DEFAULT_EF
            })
        );
        assert_eq!(
            resolve_hnsw(Some(3), None, None),
            Err(HnswParamError::M { got: 3 })
        );
        assert_eq!(
            resolve_hnsw(Some(64), Some(32), None),
            Err(HnswParamError::EfConstruction { got: 32, m: 64 })
        );
        assert_eq!(
            resolve_hnsw(None, None, Some(0)),
            Err(HnswParamError::Ef { got: 0 })
        );
        assert_eq!(
            HnswParamError::M { got: 3 }.to_string(),
            "hnsw.m must be 4 to 128, got 3"
        );
    }

    #[test]
    fn every_code_has_a_name() {
        assert_eq!(code_name(Code::ResourceExhausted), "RESOURCE_EXHAUSTED");
        assert_eq!(code_name(Code::DataLoss), "DATA_LOSS");
    }

    #[test]
    fn depth_counts_objects_and_arrays() {
        use serde_json::json;
        assert_eq!(json_depth(&json!(1)), 0);
        assert_eq!(json_depth(&json!({})), 1);
        assert_eq!(json_depth(&json!({"a": 1, "b": "x"})), 1);
        assert_eq!(json_depth(&json!({"a": [1, {"b": []}], "c": {}})), 4);
        assert_eq!(json_depth(&json!({"a": [1, {"b": 2}], "c": {}})), 3);
    }
}
