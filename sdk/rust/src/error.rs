//! One error type for every call, mapped from gRPC status codes.

use tonic::{Code, Status};

/// What went wrong with a call. Server-side failures keep the server's message, which
/// says what to change.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request broke a rule: wrong dimension, NaN, bad id, bad filter, `k = 0`, …
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Unknown collection (or point, where a single point was asked for).
    #[error("not found: {0}")]
    NotFound(String),
    /// A collection with that name exists.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// Missing or invalid credentials.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The caller may not use this resource.
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// A size or rate limit was reached.
    #[error("resource exhausted: {0}")]
    ResourceExhausted(String),
    /// The cluster cannot do this now (for example, shards cannot be placed).
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// A shard or the control plane is unavailable; idempotent calls were retried.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The deadline passed before the answer came.
    #[error("deadline exceeded: {0}")]
    DeadlineExceeded(String),
    /// The call was cancelled.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// A server bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
    /// A status this client does not classify further.
    #[error("{code:?}: {message}")]
    Other {
        /// The gRPC code.
        code: Code,
        /// The server's message.
        message: String,
    },
    /// The connection could not be made.
    #[error("cannot connect to {endpoint}")]
    Connect {
        /// The endpoint dialled.
        endpoint: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// The endpoint is not a valid URI.
    #[error("invalid endpoint {endpoint:?}")]
    InvalidEndpoint {
        /// The endpoint given.
        endpoint: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// TLS settings were given for an explicit `http://` endpoint.
    #[error("TLS is set but the endpoint {endpoint:?} says http://; use https:// or no scheme")]
    TlsOverPlaintext {
        /// The endpoint given.
        endpoint: String,
    },
    /// An `https://` endpoint, but this build has no TLS (cargo feature `tls` of
    /// vectron-client).
    #[error("{endpoint:?} needs TLS, which this build leaves out (cargo feature `tls`)")]
    TlsNotBuilt {
        /// The endpoint given.
        endpoint: String,
    },
    /// The TLS settings could not be used (a certificate or key that does not parse).
    #[error("invalid TLS settings for {endpoint}")]
    TlsConfig {
        /// The endpoint given.
        endpoint: String,
        /// Why.
        #[source]
        source: tonic::transport::Error,
    },
    /// A payload could not be turned into a JSON object.
    #[error("payload must be a JSON object with finite numbers: {0}")]
    InvalidPayload(String),
    /// An API key that cannot travel in a header (non-ASCII or control characters).
    #[error("the API key holds characters a header cannot carry")]
    InvalidApiKey,
}

impl Error {
    /// The gRPC code this error corresponds to (`Unavailable` for connection failures,
    /// `InvalidArgument` for payloads refused by the client).
    pub fn code(&self) -> Code {
        match self {
            Error::InvalidArgument(_) | Error::InvalidPayload(_) | Error::InvalidApiKey => {
                Code::InvalidArgument
            }
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::Unauthenticated(_) => Code::Unauthenticated,
            Error::PermissionDenied(_) => Code::PermissionDenied,
            Error::ResourceExhausted(_) => Code::ResourceExhausted,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Unavailable(_) | Error::Connect { .. } => Code::Unavailable,
            Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Error::Cancelled(_) => Code::Cancelled,
            Error::Internal(_) => Code::Internal,
            Error::InvalidEndpoint { .. }
            | Error::TlsOverPlaintext { .. }
            | Error::TlsNotBuilt { .. }
            | Error::TlsConfig { .. } => Code::InvalidArgument,
            Error::Other { code, .. } => *code,
        }
    }
}

impl Error {
    /// The server's own message, without the code: `None` for errors raised by the
    /// client itself (connection, endpoint, TLS, payload).
    pub fn server_message(&self) -> Option<&str> {
        match self {
            Error::InvalidArgument(m)
            | Error::NotFound(m)
            | Error::AlreadyExists(m)
            | Error::Unauthenticated(m)
            | Error::PermissionDenied(m)
            | Error::ResourceExhausted(m)
            | Error::FailedPrecondition(m)
            | Error::Unavailable(m)
            | Error::DeadlineExceeded(m)
            | Error::Cancelled(m)
            | Error::Internal(m)
            | Error::Other { message: m, .. } => Some(m),
            Error::Connect { .. }
            | Error::InvalidEndpoint { .. }
            | Error::TlsOverPlaintext { .. }
            | Error::TlsNotBuilt { .. }
            | Error::TlsConfig { .. }
            | Error::InvalidPayload(_)
            | Error::InvalidApiKey => None,
        }
    }
}

impl From<Status> for Error {
    fn from(status: Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::InvalidArgument | Code::OutOfRange => Error::InvalidArgument(message),
            Code::NotFound => Error::NotFound(message),
            Code::AlreadyExists => Error::AlreadyExists(message),
            Code::Unauthenticated => Error::Unauthenticated(message),
            Code::PermissionDenied => Error::PermissionDenied(message),
            Code::ResourceExhausted => Error::ResourceExhausted(message),
            Code::FailedPrecondition | Code::Aborted => Error::FailedPrecondition(message),
            Code::Unavailable => Error::Unavailable(message),
            Code::DeadlineExceeded => Error::DeadlineExceeded(message),
            Code::Cancelled => Error::Cancelled(message),
            Code::Internal | Code::DataLoss => Error::Internal(message),
            code => Error::Other { code, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_back_to_itself_or_its_family() {
        for code in [
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::Unauthenticated,
            Code::PermissionDenied,
            Code::ResourceExhausted,
            Code::FailedPrecondition,
            Code::Unavailable,
            Code::DeadlineExceeded,
            Code::Cancelled,
            Code::Internal,
            Code::Unimplemented,
            Code::Unknown,
        ] {
            let err = Error::from(Status::new(code, "why"));
            assert_eq!(err.code(), code, "{err}");
            assert!(err.to_string().contains("why"));
            assert_eq!(err.server_message(), Some("why"));
        }
        assert_eq!(
            Error::from(Status::out_of_range("x")).code(),
            Code::InvalidArgument
        );
        assert_eq!(Error::from(Status::data_loss("x")).code(), Code::Internal);
    }
}
