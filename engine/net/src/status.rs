//! gRPC status codes and the status a call ends with.
//!
//! A status travels in the trailers (or in the single header block of a trailers-only
//! response) as `grpc-status` (the decimal code) and `grpc-message` (percent-encoded
//! UTF-8, as the gRPC HTTP/2 protocol specifies). Extra trailer metadata a handler
//! attaches travels beside them.

use std::fmt;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// Bytes of `grpc-message` are sent as they are only when they are printable ASCII other
/// than `%` (`%x20-24 / %x26-7E`); every other byte is percent-encoded.
const GRPC_MESSAGE_ENCODE: &AsciiSet = &CONTROLS.add(b'%');

/// The longest `grpc-message` header value sent, after encoding. Longer messages are cut
/// at a character boundary and end in `…`, so a long error text cannot push the trailer
/// block past a client's header-list limit (16 KiB in tonic and grpc-go) and turn a clear
/// status into a protocol error.
pub(crate) const MAX_ENCODED_MESSAGE: usize = 4096;

/// Name of the status code trailer.
pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// Name of the status message trailer.
pub(crate) const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// A gRPC status code: every code of the gRPC specification, with its wire value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Code {
    /// Not an error: the call succeeded.
    Ok = 0,
    /// The call was cancelled, typically by the caller.
    Cancelled = 1,
    /// An error with no better code, or a status from an unknown error space.
    Unknown = 2,
    /// The client sent an argument that is invalid whatever the state of the system.
    InvalidArgument = 3,
    /// The deadline passed before the call completed.
    DeadlineExceeded = 4,
    /// A requested entity was not found.
    NotFound = 5,
    /// The entity the client tried to create already exists.
    AlreadyExists = 6,
    /// The caller may not run this operation.
    PermissionDenied = 7,
    /// A resource ran out: a quota, a size limit, memory.
    ResourceExhausted = 8,
    /// The system is not in the state the operation needs (a stale epoch, for example).
    FailedPrecondition = 9,
    /// The operation was aborted, typically by a concurrency conflict.
    Aborted = 10,
    /// The operation went past a valid range.
    OutOfRange = 11,
    /// The operation is not implemented or not supported by this server.
    Unimplemented = 12,
    /// An invariant the server relies on is broken.
    Internal = 13,
    /// The service is unavailable for now; retrying may succeed.
    Unavailable = 14,
    /// Data was lost or corrupted beyond recovery.
    DataLoss = 15,
    /// The request has no valid authentication credentials.
    Unauthenticated = 16,
}

impl Code {
    /// Every code, in wire order (`Code::ALL[n]` has wire value `n`).
    pub const ALL: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The wire value, as sent in `grpc-status`.
    pub const fn as_i32(self) -> i32 {
        self as i32
    }

    /// The code for a wire value; values outside the specification read as
    /// [`Code::Unknown`], as the specification asks.
    pub fn from_i32(value: i32) -> Code {
        usize::try_from(value)
            .ok()
            .and_then(|index| Code::ALL.get(index).copied())
            .unwrap_or(Code::Unknown)
    }

    /// The canonical name, such as `"DEADLINE_EXCEEDED"`.
    pub const fn as_str(self) -> &'static str {
        match self {
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

    /// The `grpc-status` header value, without allocating.
    pub(crate) fn header_value(self) -> HeaderValue {
        const DIGITS: [&str; 17] = [
            "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15",
            "16",
        ];
        HeaderValue::from_static(DIGITS[self as usize])
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of a call that did not succeed: a [`Code`], a message for a person, and
/// optional trailer metadata (ASCII headers such as the current epoch of a shard).
///
/// ```
/// use vectron_net::{Code, Status};
///
/// let status = Status::failed_precondition("shard 3 moved: epoch 7 is current")
///     .with_metadata("vectron-epoch".parse().unwrap(), "7".parse().unwrap());
/// assert_eq!(status.code(), Code::FailedPrecondition);
/// assert_eq!(status.metadata().unwrap()["vectron-epoch"], "7");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    code: Code,
    message: String,
    /// Boxed so that `Result<T, Status>` stays small on the hot path.
    metadata: Option<Box<HeaderMap>>,
}

macro_rules! constructors {
    ($($(#[$doc:meta])* $name:ident => $code:ident,)*) => {
        $(
            $(#[$doc])*
            pub fn $name(message: impl Into<String>) -> Status {
                Status::new(Code::$code, message)
            }
        )*
    };
}

impl Status {
    /// A status with `code` and `message`.
    pub fn new(code: Code, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
            metadata: None,
        }
    }

    constructors! {
        /// [`Code::Cancelled`].
        cancelled => Cancelled,
        /// [`Code::Unknown`].
        unknown => Unknown,
        /// [`Code::InvalidArgument`].
        invalid_argument => InvalidArgument,
        /// [`Code::DeadlineExceeded`].
        deadline_exceeded => DeadlineExceeded,
        /// [`Code::NotFound`].
        not_found => NotFound,
        /// [`Code::AlreadyExists`].
        already_exists => AlreadyExists,
        /// [`Code::PermissionDenied`].
        permission_denied => PermissionDenied,
        /// [`Code::ResourceExhausted`].
        resource_exhausted => ResourceExhausted,
        /// [`Code::FailedPrecondition`].
        failed_precondition => FailedPrecondition,
        /// [`Code::Aborted`].
        aborted => Aborted,
        /// [`Code::OutOfRange`].
        out_of_range => OutOfRange,
        /// [`Code::Unimplemented`].
        unimplemented => Unimplemented,
        /// [`Code::Internal`].
        internal => Internal,
        /// [`Code::Unavailable`].
        unavailable => Unavailable,
        /// [`Code::DataLoss`].
        data_loss => DataLoss,
        /// [`Code::Unauthenticated`].
        unauthenticated => Unauthenticated,
    }

    /// Adds one trailer to send with this status. `grpc-status` and `grpc-message` are
    /// the protocol's own and are not taken from here.
    #[must_use]
    pub fn with_metadata(mut self, name: HeaderName, value: HeaderValue) -> Status {
        self.metadata
            .get_or_insert_with(Box::default)
            .append(name, value);
        self
    }

    /// The code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The message, as the handler wrote it (before percent-encoding).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The trailer metadata attached with [`Status::with_metadata`], if any.
    pub fn metadata(&self) -> Option<&HeaderMap> {
        self.metadata.as_deref()
    }

    /// Writes `grpc-status`, `grpc-message` and the metadata into `headers`.
    pub(crate) fn write_to(&self, headers: &mut HeaderMap) {
        if let Some(metadata) = &self.metadata {
            for (name, value) in metadata.iter() {
                if name != GRPC_STATUS && name != GRPC_MESSAGE {
                    headers.append(name.clone(), value.clone());
                }
            }
        }
        headers.insert(GRPC_STATUS, self.code.header_value());
        if !self.message.is_empty() {
            headers.insert(GRPC_MESSAGE, encode_message(&self.message));
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.message)
        }
    }
}

impl std::error::Error for Status {}

/// Percent-encodes `message` for `grpc-message`, cut to [`MAX_ENCODED_MESSAGE`] bytes.
pub(crate) fn encode_message(message: &str) -> HeaderValue {
    const ELLIPSIS: &str = "…";
    let encoded_len = |c: char| {
        if matches!(c, ' '..='~') && c != '%' {
            1
        } else {
            3 * c.len_utf8()
        }
    };
    // The longest prefix that still leaves room for the ellipsis (9 bytes once encoded).
    let budget = MAX_ENCODED_MESSAGE - 3 * ELLIPSIS.len();
    let (mut total, mut prefix) = (0, 0);
    for (at, c) in message.char_indices() {
        total += encoded_len(c);
        if total <= budget {
            prefix = at + c.len_utf8();
        }
    }
    let cut = if total <= MAX_ENCODED_MESSAGE {
        message.len()
    } else {
        prefix
    };
    let mut encoded = utf8_percent_encode(&message[..cut], GRPC_MESSAGE_ENCODE).to_string();
    if cut < message.len() {
        encoded.extend(utf8_percent_encode(ELLIPSIS, GRPC_MESSAGE_ENCODE));
    }
    // Every byte is now printable ASCII, which is always a valid header value.
    HeaderValue::try_from(encoded).unwrap_or_else(|_| HeaderValue::from_static("%E2%80%A6"))
}

#[cfg(test)]
mod tests {
    use percent_encoding::percent_decode_str;

    use super::*;

    #[test]
    fn every_code_round_trips_through_its_wire_value() {
        for (wire, code) in Code::ALL.iter().enumerate() {
            let wire = i32::try_from(wire).unwrap();
            assert_eq!(code.as_i32(), wire);
            assert_eq!(Code::from_i32(wire), *code);
            assert_eq!(code.header_value(), wire.to_string().as_str());
        }
        assert_eq!(Code::from_i32(17), Code::Unknown);
        assert_eq!(Code::from_i32(-1), Code::Unknown);
        assert_eq!(Code::DeadlineExceeded.to_string(), "DEADLINE_EXCEEDED");
    }

    #[test]
    fn messages_are_percent_encoded_as_the_protocol_specifies() {
        let value = encode_message("50% of ünïcode\r\n東京 ok ~");
        assert_eq!(
            value,
            "50%25 of %C3%BCn%C3%AFcode%0D%0A%E6%9D%B1%E4%BA%AC ok ~"
        );
        let decoded = percent_decode_str(value.to_str().unwrap())
            .decode_utf8()
            .unwrap();
        assert_eq!(decoded, "50% of ünïcode\r\n東京 ok ~");
    }

    #[test]
    fn long_messages_are_cut_at_a_character_boundary() {
        let message = "é".repeat(10_000);
        let value = encode_message(&message);
        assert!(value.len() <= MAX_ENCODED_MESSAGE, "{} bytes", value.len());
        let decoded = percent_decode_str(value.to_str().unwrap())
            .decode_utf8()
            .unwrap();
        assert!(decoded.ends_with('…'));
        assert!(decoded.trim_end_matches('…').chars().all(|c| c == 'é'));

        let short = "x".repeat(MAX_ENCODED_MESSAGE);
        assert_eq!(encode_message(&short).len(), MAX_ENCODED_MESSAGE);
    }

    #[test]
    fn metadata_cannot_override_the_protocol_trailers() {
        let status = Status::not_found("gone")
            .with_metadata(
                HeaderName::from_static("grpc-status"),
                HeaderValue::from_static("0"),
            )
            .with_metadata(
                HeaderName::from_static("grpc-message"),
                HeaderValue::from_static("x"),
            )
            .with_metadata(
                HeaderName::from_static("x-epoch"),
                HeaderValue::from_static("9"),
            );
        let mut headers = HeaderMap::new();
        status.write_to(&mut headers);
        assert_eq!(headers["grpc-status"], "5");
        assert_eq!(headers.get_all("grpc-status").iter().count(), 1);
        assert_eq!(headers["grpc-message"], "gone");
        assert_eq!(headers["x-epoch"], "9");
    }
}
