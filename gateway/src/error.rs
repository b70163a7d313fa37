//! Every error the gateway answers with, and the one place where each becomes a gRPC
//! status and an HTTP status.
//!
//! | variant family | gRPC | HTTP |
//! | --- | --- | --- |
//! | input that breaks a rule | `INVALID_ARGUMENT` | 400 (415 for a wrong `Content-Type`) |
//! | no key, or a key the cluster does not know | `UNAUTHENTICATED` | 401 |
//! | a key that does not allow the call | `PERMISSION_DENIED` | 403 |
//! | unknown collection or point | `NOT_FOUND` | 404 |
//! | oversized message or body | `RESOURCE_EXHAUSTED` | 413 |
//! | a feature this build does not have | `UNIMPLEMENTED` | 501 |
//! | a shard without a serving replica, control plane down | `UNAVAILABLE` | 503 |
//! | the deadline passed | `DEADLINE_EXCEEDED` | 504 |
//! | a core or the control plane refused | their code, passed through | from the code |

use std::sync::Arc;
use std::time::Duration;

use crate::config::LOGIN_ATTEMPTS_PER_MINUTE;
use tonic::{Code, Status};
use vectron_control::ClientError;
use vectron_proto::rules::RuleError;
pub use vectron_proto::rules::code_name;

/// Why a gateway call failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A request that breaks a rule of the data contract (`vectron_proto::rules`).
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// A request that names no collection.
    #[error("the request names no collection")]
    NoCollection,
    /// Messages of one stream, or a body and its path, name different collections.
    #[error("the request names collection {got:?}, but it is addressed to {expected:?}")]
    CollectionMismatch {
        /// The collection the call is for.
        expected: String,
        /// The other name.
        got: String,
    },
    /// A JSON body or line that is not valid JSON, or not the expected message.
    #[error("malformed JSON: {reason}")]
    BadJson {
        /// What is wrong, with line and column where known.
        reason: String,
    },
    /// A URL path whose parts cannot be read (not UTF-8 once percent-decoded).
    #[error("malformed path: {reason}")]
    BadPath {
        /// What is wrong.
        reason: String,
    },
    /// A query-string parameter that is unknown or has a bad value.
    #[error("query parameter {name:?}: {reason}")]
    BadQuery {
        /// The parameter.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A body sent with a content type this route does not read.
    #[error("Content-Type must be {expected}, got {got:?}")]
    UnsupportedMediaType {
        /// The type the route reads.
        expected: &'static str,
        /// The type sent.
        got: String,
    },
    /// A body or message above the size limit.
    #[error("the {what} is larger than the limit of {max} bytes")]
    TooLarge {
        /// `request body`, `request message`, `line`.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// An unknown collection.
    #[error("collection {name:?} does not exist")]
    UnknownCollection {
        /// The name asked for.
        name: String,
    },
    /// An unknown worker.
    #[error("worker {worker_id:?} is not part of the cluster")]
    UnknownWorker {
        /// The id asked for.
        worker_id: String,
    },
    /// A single point read that found nothing.
    #[error("point {id:?} does not exist in collection {collection:?}")]
    PointNotFound {
        /// The collection.
        collection: String,
        /// The id.
        id: String,
    },
    /// A search that asked for a rerank, which this build cannot do.
    #[error(
        "rerank is not available in this build: the gateway runs no reranker; send the search without `rerank`"
    )]
    RerankUnavailable,
    /// A shard without a serving replica.
    #[error("shard {shard_id} of collection {collection:?} has no serving replica: {reason}")]
    ShardUnavailable {
        /// The collection.
        collection: String,
        /// The shard.
        shard_id: u32,
        /// Which replicas exist and in what state.
        reason: String,
    },
    /// The gateway has not loaded the routing table yet.
    #[error("the gateway is not ready: {reason}")]
    NotReady {
        /// What it waits for.
        reason: String,
    },
    /// A core refused a call or could not be reached. The message a client sees names
    /// the shard, never the core's address or files (those are logged).
    #[error("{}", core_message(*.shard_id, .collection, .status))]
    Core {
        /// The collection.
        collection: String,
        /// The shard.
        shard_id: u32,
        /// The core's address.
        address: String,
        /// The core's answer.
        #[source]
        status: Status,
    },
    /// The control plane refused a call or could not be reached.
    #[error("{}", control_message(.0))]
    Control(#[source] ClientError),
    /// The deadline passed.
    #[error("the deadline of {after:?} passed before the answer was complete")]
    DeadlineExceeded {
        /// The time the request had.
        after: Duration,
    },
    /// One search of a batch failed.
    #[error("search {search} of the batch: {source}")]
    InBatch {
        /// Position of the search in the batch.
        search: usize,
        /// Its error.
        #[source]
        source: Box<GatewayError>,
    },
    /// One message of a stream failed.
    #[error("{what} {at}: {source}")]
    InStream {
        /// What `at` counts: `message` of a gRPC stream, `batch starting at line` of an
        /// NDJSON body.
        what: &'static str,
        /// Position of the message (from 0), or line (from 1).
        at: usize,
        /// Its error.
        #[source]
        source: Box<GatewayError>,
    },
    /// The gateway is at one of its budgets (`AdmissionConfig`): the request is refused
    /// at once, and the client told when to try again.
    #[error(
        "the gateway is at its limit of {limit} {what}; retry after {}s",
        retry_after.as_secs().max(1)
    )]
    Overloaded {
        /// The budget: `calls in flight`, `upsert streams`, `bytes in flight`.
        what: &'static str,
        /// Its size.
        limit: usize,
        /// When to try again.
        retry_after: Duration,
    },
    /// A request body that stopped arriving.
    #[error("the request body sent nothing for {after:?}; the call was given up")]
    RequestTimeout {
        /// How long nothing arrived.
        after: Duration,
    },
    /// The same failure, shared by every caller of a deduplicated search.
    #[error("{0}")]
    Shared(#[source] Arc<GatewayError>),
    /// The request stream from the client failed (connection lost, bad framing).
    #[error("reading the request failed: {}", .0.message())]
    Request(#[source] Status),
    /// Authentication is on and the call carries no valid key.
    #[error(
        "{reason}: send an API key or a token as `authorization: Bearer <key>` or `api-key: <key>`"
    )]
    Unauthenticated {
        /// What was wrong.
        reason: &'static str,
    },
    /// The caller's key does not allow the call.
    #[error(transparent)]
    Denied(#[from] vectron_auth::Denied),
    /// A key request that breaks a rule.
    #[error(transparent)]
    KeyRule(#[from] vectron_proto::keys::KeyRuleError),
    /// Too many logins from one client address.
    #[error(
        "too many logins from this address (at most {LOGIN_ATTEMPTS_PER_MINUTE} a minute); retry after {}s",
        retry_after.as_secs().max(1)
    )]
    TooManyLogins {
        /// When to try again.
        retry_after: Duration,
    },
    /// A caller past its plan's rate.
    #[error(
        "over the rate of plan {plan:?} ({requests_per_second} calls a second); retry after {}s",
        retry_after.as_secs().max(1)
    )]
    RateLimited {
        /// The plan.
        plan: String,
        /// Its rate.
        requests_per_second: u32,
        /// When to try again.
        retry_after: Duration,
    },
    /// A write that would take the collections a caller owns past its plan's points
    /// quota.
    #[error(
        "{caller}'s plan {plan:?} allows {max} points in the collections it owns; they hold {held} (as last reported) and this write adds {adding}"
    )]
    PointQuota {
        /// The caller.
        caller: String,
        /// Its plan.
        plan: String,
        /// The plan's `max_points`.
        max: u64,
        /// What its collections hold.
        held: u64,
        /// What the write adds.
        adding: u64,
    },
    /// A plan the cluster does not hold.
    #[error("no plan is named {name:?}; make it first (`vectron plans set`)")]
    UnknownPlan {
        /// The name.
        name: String,
    },
    /// A login with a wrong name or password (which of the two is not said).
    #[error("the user name or password is wrong")]
    BadLogin,
    /// A token asked of a gateway without a token secret.
    #[error(
        "this gateway has no token secret, so it mints no tokens: start every gateway with the same --jwt-secret-file"
    )]
    NoTokenSecret,
    /// A bug: something that must not happen did.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A core's answer as the caller reads it. Input the core refused is the caller's to fix
/// and reads as the core put it; a stale routing answer names the shard; a failure of
/// the core says what the caller can do, and leaves out the core's address and the
/// files it names (the gateway logs them).
fn core_message(shard_id: u32, collection: &str, status: &Status) -> String {
    let shard = format!("shard {shard_id} of collection {collection:?}");
    match status.code() {
        Code::InvalidArgument | Code::ResourceExhausted | Code::OutOfRange => {
            status.message().to_owned()
        }
        Code::FailedPrecondition | Code::NotFound => format!("{shard}: {}", status.message()),
        Code::Cancelled | Code::DeadlineExceeded => {
            format!("{shard} did not answer in time")
        }
        Code::Unavailable => format!("{shard} is unavailable for now; retry"),
        Code::DataLoss => format!(
            "{shard} cannot serve: its stored data failed a check; the worker's log names the files"
        ),
        Code::Unauthenticated | Code::PermissionDenied => format!(
            "{shard}: the worker refused the gateway ({}); the gateway and the worker must hold the same cluster key (--cluster-key-file)",
            status.message()
        ),
        code => format!(
            "{shard} failed ({}); the worker's log has the cause",
            code_name(code)
        ),
    }
}

fn control_message(error: &ClientError) -> String {
    match error {
        ClientError::Status(status) if status.code() == Code::Unauthenticated => format!(
            "the control plane refused the gateway ({}); the gateway and the control plane must hold the same cluster key (--cluster-key-file)",
            status.message()
        ),
        ClientError::Status(status) => status.message().to_owned(),
        other => format!("control plane: {other}"),
    }
}

impl GatewayError {
    /// A core's refusal or failure. What the client is not told (the core's address,
    /// the files a failure names) is logged here when the failure is the core's.
    pub(crate) fn core(collection: &str, shard_id: u32, address: &str, status: Status) -> Self {
        if matches!(
            status.code(),
            Code::Unavailable
                | Code::DataLoss
                | Code::Internal
                | Code::Unknown
                | Code::Unimplemented
                | Code::DeadlineExceeded
                | Code::Cancelled
        ) {
            tracing::warn!(
                collection,
                shard_id,
                core = address,
                code = ?status.code(),
                message = status.message(),
                "a core failed a call"
            );
        }
        GatewayError::Core {
            collection: collection.to_owned(),
            shard_id,
            address: address.to_owned(),
            status,
        }
    }

    /// The gRPC code of this error: the one mapping from errors to codes.
    #[must_use]
    pub fn code(&self) -> Code {
        use GatewayError as E;
        match self {
            E::Rule(rule) => rule.code(),
            E::NoCollection
            | E::CollectionMismatch { .. }
            | E::BadJson { .. }
            | E::BadPath { .. }
            | E::BadQuery { .. }
            | E::UnsupportedMediaType { .. } => Code::InvalidArgument,
            E::TooLarge { .. } => Code::ResourceExhausted,
            E::UnknownCollection { .. } | E::UnknownWorker { .. } | E::PointNotFound { .. } => {
                Code::NotFound
            }
            E::RerankUnavailable => Code::Unimplemented,
            E::ShardUnavailable { .. } | E::NotReady { .. } => Code::Unavailable,
            E::DeadlineExceeded { .. } | E::RequestTimeout { .. } => Code::DeadlineExceeded,
            E::Overloaded { .. } => Code::ResourceExhausted,
            E::Core { status, .. } => core_code(status),
            E::Control(error) => match error {
                // The gateway's own credential inside the cluster, not the caller's.
                ClientError::Status(status) if status.code() == Code::Unauthenticated => {
                    Code::Internal
                }
                ClientError::Status(status) => status.code(),
                ClientError::Unavailable { .. } => Code::Unavailable,
                ClientError::NoEndpoints | ClientError::BadAddress { .. } => Code::Internal,
            },
            E::InBatch { source, .. } | E::InStream { source, .. } => source.code(),
            E::Shared(inner) => inner.code(),
            E::Request(status) => match status.code() {
                // tonic's decoder refuses an oversized message with OUT_OF_RANGE; the
                // API calls that RESOURCE_EXHAUSTED.
                Code::OutOfRange => Code::ResourceExhausted,
                code => code,
            },
            E::Unauthenticated { .. } => Code::Unauthenticated,
            E::Denied(_) => Code::PermissionDenied,
            E::KeyRule(rule) => rule.code(),
            E::NoTokenSecret => Code::FailedPrecondition,
            E::TooManyLogins { .. } | E::RateLimited { .. } | E::PointQuota { .. } => {
                Code::ResourceExhausted
            }
            E::UnknownPlan { .. } => Code::FailedPrecondition,
            E::BadLogin => Code::Unauthenticated,
            E::Internal(_) => Code::Internal,
        }
    }

    /// The HTTP status of this error.
    #[must_use]
    pub fn http_status(&self) -> http::StatusCode {
        match self {
            GatewayError::UnsupportedMediaType { .. } => http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            GatewayError::InBatch { source, .. } | GatewayError::InStream { source, .. } => {
                source.http_status()
            }
            GatewayError::Shared(inner) => inner.http_status(),
            GatewayError::Overloaded { .. }
            | GatewayError::TooManyLogins { .. }
            | GatewayError::RateLimited { .. }
            | GatewayError::PointQuota { .. } => http::StatusCode::TOO_MANY_REQUESTS,
            // The cluster's counts and quotas (collections, keys, users, plans).
            GatewayError::Control(ClientError::Status(status))
                if status.code() == Code::ResourceExhausted =>
            {
                http::StatusCode::TOO_MANY_REQUESTS
            }
            GatewayError::Core { .. } if self.retry_after().is_some() => {
                http::StatusCode::TOO_MANY_REQUESTS
            }
            GatewayError::RequestTimeout { .. } => http::StatusCode::REQUEST_TIMEOUT,
            _ => http_status(self.code()),
        }
    }

    /// The gRPC status a client receives; a refusal for load carries `retry-after`.
    #[must_use]
    pub fn to_status(&self) -> Status {
        let mut status = Status::new(self.code(), self.to_string());
        if let Some(after) = self.retry_after() {
            status.metadata_mut().insert(
                vectron_proto::rules::RETRY_AFTER,
                tonic::metadata::MetadataValue::from(after.as_secs().max(1)),
            );
        }
        status
    }

    /// When a refused client may try again, for a refusal for load.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GatewayError::Overloaded { retry_after, .. }
            | GatewayError::TooManyLogins { retry_after }
            | GatewayError::RateLimited { retry_after, .. } => Some(*retry_after),
            GatewayError::InBatch { source, .. } | GatewayError::InStream { source, .. } => {
                source.retry_after()
            }
            GatewayError::Shared(inner) => inner.retry_after(),
            // A core refusing for load says when to come back.
            GatewayError::Core { status, .. } if status.code() == Code::ResourceExhausted => status
                .metadata()
                .get(vectron_proto::rules::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .map(Duration::from_secs),
            _ => None,
        }
    }

    /// The JSON body of an HTTP error answer.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": code_name(self.code()), "message": self.to_string()}})
    }

    /// Whether a search may leave this shard out when partial results are allowed: the
    /// shard could not answer, as opposed to the request being wrong.
    #[must_use]
    pub(crate) fn is_shard_failure(&self) -> bool {
        matches!(
            self.code(),
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::FailedPrecondition
        ) && matches!(
            self,
            GatewayError::Core { .. }
                | GatewayError::ShardUnavailable { .. }
                | GatewayError::DeadlineExceeded { .. }
        )
    }
}

impl From<GatewayError> for Status {
    fn from(error: GatewayError) -> Self {
        error.to_status()
    }
}

/// What a core's status means to the gateway's caller. A core that ran out of time or
/// was cut off reads as the deadline or the shard being unavailable; a core that does not
/// hold the shard (after the routing was refreshed) as the shard being unavailable.
fn core_code(status: &Status) -> Code {
    match status.code() {
        Code::Cancelled | Code::DeadlineExceeded => Code::DeadlineExceeded,
        // The gateway's own credential inside the cluster, not the caller's.
        Code::Unauthenticated | Code::PermissionDenied => Code::Internal,
        Code::NotFound | Code::Unknown | Code::Aborted => Code::Unavailable,
        code => code,
    }
}

/// The HTTP status for a gRPC code (docs/api.md, "Errors").
#[must_use]
pub fn http_status(code: Code) -> http::StatusCode {
    use http::StatusCode as H;
    match code {
        Code::Ok => H::OK,
        Code::InvalidArgument | Code::OutOfRange => H::BAD_REQUEST,
        Code::Unauthenticated => H::UNAUTHORIZED,
        Code::PermissionDenied => H::FORBIDDEN,
        Code::NotFound => H::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => H::CONFLICT,
        Code::FailedPrecondition => H::PRECONDITION_FAILED,
        Code::ResourceExhausted => H::PAYLOAD_TOO_LARGE,
        Code::Unimplemented => H::NOT_IMPLEMENTED,
        Code::Unavailable => H::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => H::GATEWAY_TIMEOUT,
        Code::Cancelled => H::from_u16(499).unwrap_or(H::BAD_REQUEST),
        Code::Internal | Code::Unknown | Code::DataLoss => H::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_errors_are_invalid_argument_and_400() {
        let e = GatewayError::from(RuleError::from(
            vectron_proto::rules::VectorError::WrongDimension {
                point: 3,
                id: "a".into(),
                expected: 384,
                got: 385,
            },
        ));
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(e.http_status(), http::StatusCode::BAD_REQUEST);
        assert_eq!(
            e.to_json(),
            serde_json::json!({"error": {"code": "INVALID_ARGUMENT", "message":
                "point 3 (id \"a\"): vector has 385 values, the collection has dimension 384"}})
        );
    }

    #[test]
    fn a_wrong_content_type_is_415_with_invalid_argument() {
        let e = GatewayError::UnsupportedMediaType {
            expected: "application/json",
            got: "text/plain".into(),
        };
        assert_eq!(e.code(), Code::InvalidArgument);
        assert_eq!(e.http_status(), http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }

    #[test]
    fn wrapped_errors_keep_their_code_and_name_their_position() {
        let inner = GatewayError::UnknownCollection { name: "x".into() };
        let e = GatewayError::InBatch {
            search: 2,
            source: Box::new(inner),
        };
        assert_eq!(e.code(), Code::NotFound);
        assert_eq!(e.http_status(), http::StatusCode::NOT_FOUND);
        assert!(e.to_string().starts_with("search 2 of the batch: "));
        let shared = GatewayError::Shared(Arc::new(GatewayError::TooLarge {
            what: "request body",
            max: 1,
        }));
        assert_eq!(shared.http_status(), http::StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn core_answers_map_to_what_the_caller_can_do() {
        let core = |status: Status| GatewayError::Core {
            collection: "c".into(),
            shard_id: 0,
            address: "127.0.0.1:1".into(),
            status,
        };
        assert_eq!(
            core(Status::invalid_argument("bad")).code(),
            Code::InvalidArgument
        );
        assert_eq!(
            core(Status::cancelled("Timeout expired")).code(),
            Code::DeadlineExceeded
        );
        assert_eq!(core(Status::not_found("gone")).code(), Code::Unavailable);
        // A core that refuses the gateway's cluster key: the operator's to fix, not the
        // caller's credentials.
        let keyless = core(Status::unauthenticated("no cluster key"));
        assert_eq!(keyless.code(), Code::Internal);
        assert!(
            keyless.to_string().contains("--cluster-key-file"),
            "{keyless}"
        );
        let control = GatewayError::Control(ClientError::Status(Status::unauthenticated(
            "no cluster key",
        )));
        assert_eq!(control.code(), Code::Internal);
        assert!(
            control.to_string().contains("--cluster-key-file"),
            "{control}"
        );
        assert!(core(Status::unavailable("down")).is_shard_failure());
        assert!(!core(Status::invalid_argument("bad")).is_shard_failure());
        assert_eq!(
            GatewayError::Request(Status::out_of_range("too large")).code(),
            Code::ResourceExhausted
        );
    }

    /// Pins public errors that carried a core's address and the paths of its files.
    #[test]
    fn a_cores_failure_reads_without_its_address_or_files() {
        let failed = Status::unavailable(
            "shard 0 of collection \"c\" stopped after a failure (write-ahead log failed: write /data/core-0/c/shard-0/wal/00000001.seg: No space left on device)",
        );
        let e = GatewayError::core("c", 0, "10.1.2.3:7400", failed);
        let message = e.to_string();
        assert_eq!(
            message,
            "shard 0 of collection \"c\" is unavailable for now; retry"
        );
        let e = GatewayError::core(
            "c",
            0,
            "10.1.2.3:7400",
            Status::data_loss("index file /data/x.hnsw is unusable"),
        );
        assert!(!e.to_string().contains("/data"), "{e}");
        assert!(!e.to_string().contains("10.1.2.3"), "{e}");
        assert_eq!(e.code(), Code::DataLoss);
        // The caller's own mistakes read as the core put them.
        let e = GatewayError::core(
            "c",
            0,
            "10.1.2.3:7400",
            Status::invalid_argument("k must be between 1 and 10000, got 0"),
        );
        assert_eq!(e.to_string(), "k must be between 1 and 10000, got 0");
    }

    #[test]
    fn every_code_has_an_http_status_and_a_name() {
        for (code, http) in [
            (Code::InvalidArgument, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::FailedPrecondition, 412),
            (Code::ResourceExhausted, 413),
            (Code::Unimplemented, 501),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::Internal, 500),
        ] {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
            assert!(!code_name(code).is_empty());
        }
    }
}
