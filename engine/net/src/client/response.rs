//! The response side of a client call: the HTTP status, the single message, the status
//! in the trailers, and what every way of failing maps to.
//!
//! | what arrives                                   | the call's result                  |
//! |------------------------------------------------|------------------------------------|
//! | HTTP status other than 200                     | the gRPC spec's mapping: 400 → `INTERNAL`, 401 → `UNAUTHENTICATED`, 403 → `PERMISSION_DENIED`, 404 → `UNIMPLEMENTED`, 429/502/503/504 → `UNAVAILABLE`, others → `UNKNOWN` |
//! | `grpc-status` in the headers (trailers-only)   | that status                        |
//! | a `content-type` that is not gRPC              | `UNKNOWN`                          |
//! | a message over the channel's limit             | `RESOURCE_EXHAUSTED`, from its prefix |
//! | bytes that do not decode, or not one message   | `INTERNAL`                         |
//! | trailers without `grpc-status`, or none        | `INTERNAL`                         |
//! | `grpc-status` in the trailers                  | that status, `grpc-message` percent-decoded, other trailers as metadata |
//! | the stream reset, or the connection lost       | see [`stream_status`]              |
//!
//! Flow-control capacity is released as soon as a DATA frame is taken from h2, so what
//! a call buffers is one message plus one frame, with the stream's window in h2.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;
use h2::{Reason, RecvStream};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Response, StatusCode};
use percent_encoding::percent_decode;
use prost::Message;

use crate::call::is_grpc;
use crate::codec::{Decoded, FrameDecoder, FrameError};
use crate::status::{Code, GRPC_MESSAGE, GRPC_STATUS, Status};

/// The call a status is about, for the messages of the statuses the client makes up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Target<'a> {
    pub(crate) path: &'a str,
    pub(crate) addr: SocketAddr,
}

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.path, self.addr)
    }
}

/// Reads the response of a call that expects one message: the message, or the status
/// the call ended with.
pub(crate) async fn read<T: Message + Default>(
    response: Response<RecvStream>,
    max_message: usize,
    target: Target<'_>,
) -> Result<T, Status> {
    let (head, mut body) = response.into_parts();
    if head.status != StatusCode::OK {
        return Err(http_status(head.status, target));
    }
    if head.headers.contains_key(GRPC_STATUS) {
        // Trailers-only: the status came in the headers, and no message can follow.
        end_status(&head.headers, target)?;
        return Err(Status::internal(format!(
            "{target} answered OK without a response message"
        )));
    }
    if !is_grpc(head.headers.get(CONTENT_TYPE)) {
        let content_type = head
            .headers
            .get(CONTENT_TYPE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        return Err(Status::unknown(format!(
            "{target} answered with content-type {content_type:?}, not application/grpc"
        )));
    }

    let mut decoder = FrameDecoder::new(max_message, usize::MAX);
    let mut chunk = Bytes::new();
    let mut message = None;
    loop {
        match decoder
            .decode(&mut chunk)
            .map_err(|error| frame_status(&error, target))?
        {
            Decoded::Message(body) if message.is_none() => {
                message = Some(body);
                continue;
            }
            Decoded::Message(_) => {
                return Err(Status::internal(format!(
                    "{target} answered with more than one response message"
                )));
            }
            // Not reported by a decoder made with no threshold.
            Decoded::Announced(_) => {
                decoder.admit();
                continue;
            }
            Decoded::More => {}
        }
        match body.data().await {
            Some(Ok(data)) => {
                // Cannot fail for a stream that is still open; a closed one reports its
                // error on the next read.
                let _ = body.flow_control().release_capacity(data.len());
                chunk = data;
            }
            Some(Err(error)) => return Err(stream_status(&error, target)),
            None => break,
        }
    }
    decoder
        .finish()
        .map_err(|error| frame_status(&error, target))?;
    let trailers = body
        .trailers()
        .await
        .map_err(|error| stream_status(&error, target))?
        .ok_or_else(|| {
            Status::internal(format!(
                "the response of {target} ended without trailers (no grpc-status)"
            ))
        })?;
    end_status(&trailers, target)?;
    let message = message.ok_or_else(|| {
        Status::internal(format!("{target} answered OK without a response message"))
    })?;
    T::decode(message).map_err(|error| {
        Status::internal(format!(
            "the response message of {target} could not be decoded: {error}"
        ))
    })
}

/// The status in `grpc-status` and `grpc-message` of the trailers (or of a
/// trailers-only response): `Ok` for `OK`, the status otherwise, with the other entries
/// as its metadata.
fn end_status(headers: &HeaderMap, target: Target<'_>) -> Result<(), Status> {
    let Some(value) = headers.get(GRPC_STATUS) else {
        return Err(Status::internal(format!(
            "the response of {target} carried no grpc-status"
        )));
    };
    let code = std::str::from_utf8(value.as_bytes())
        .ok()
        .and_then(|digits| digits.parse::<i32>().ok())
        .map(Code::from_i32)
        .ok_or_else(|| {
            Status::internal(format!(
                "the response of {target} carried a malformed grpc-status {value:?}"
            ))
        })?;
    if code == Code::Ok {
        return Ok(());
    }
    let message = headers
        .get(GRPC_MESSAGE)
        .map(|value| {
            percent_decode(value.as_bytes())
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    let mut status = Status::new(code, message);
    for (name, value) in headers {
        if name != GRPC_STATUS && name != GRPC_MESSAGE && name != CONTENT_TYPE {
            status = status.with_metadata(name.clone(), value.clone());
        }
    }
    Err(status)
}

/// The status for a response that is not HTTP 200, as the gRPC spec maps it
/// (`doc/http-grpc-status-mapping.md`): the server is not a gRPC server, or something
/// between them answered.
fn http_status(status: StatusCode, target: Target<'_>) -> Status {
    let code = match status.as_u16() {
        400 => Code::Internal,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        429 | 502 | 503 | 504 => Code::Unavailable,
        _ => Code::Unknown,
    };
    Status::new(code, format!("{target} answered HTTP {status}"))
}

/// The status for a response body that is not a valid gRPC message sequence.
fn frame_status(error: &FrameError, target: Target<'_>) -> Status {
    match *error {
        FrameError::TooLarge { len, max } => Status::resource_exhausted(format!(
            "the response message of {target} is {len} bytes, over the channel's limit of {max} bytes"
        )),
        FrameError::Compressed => Status::internal(format!(
            "{target} sent a compressed message, but the call negotiated no compression"
        )),
        FrameError::InvalidFlag { flag } => Status::internal(format!(
            "{target} sent an invalid compressed flag {flag} in a message prefix"
        )),
        FrameError::Truncated { buffered, expected } => Status::internal(format!(
            "the response of {target} ended inside a message ({buffered} of {expected} bytes)"
        )),
    }
}

/// The status for an h2 error on a call's stream.
///
/// The connection failing or going away (an IO error, GOAWAY) is `UNAVAILABLE`, and so
/// is a stream the server refused (`REFUSED_STREAM`): the call may be retried. A reset
/// stream maps as the gRPC spec says: `CANCEL` → `CANCELLED`, `ENHANCE_YOUR_CALM` →
/// `RESOURCE_EXHAUSTED`, `INADEQUATE_SECURITY` → `PERMISSION_DENIED`, any other reason →
/// `INTERNAL`.
pub(crate) fn stream_status(error: &h2::Error, target: Target<'_>) -> Status {
    let addr = target.addr;
    if error.is_io() {
        return Status::unavailable(format!("the connection to {addr} failed: {error}"));
    }
    if error.is_go_away() {
        return Status::unavailable(format!("{addr} closed the connection: {error}"));
    }
    match error.reason() {
        Some(Reason::REFUSED_STREAM) => {
            Status::unavailable(format!("{addr} refused the stream of {}", target.path))
        }
        Some(Reason::CANCEL) => Status::cancelled(format!("{target} was cancelled: {error}")),
        Some(Reason::ENHANCE_YOUR_CALM) => {
            Status::resource_exhausted(format!("{target} was refused: {error}"))
        }
        Some(Reason::INADEQUATE_SECURITY) => {
            Status::permission_denied(format!("{target} was refused: {error}"))
        }
        _ => Status::internal(format!("{target} failed: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use http::header::HeaderName;

    use super::*;
    use crate::status::encode_message;

    fn target() -> Target<'static> {
        Target {
            path: "/pkg.Svc/Method",
            addr: "127.0.0.1:7000".parse().unwrap(),
        }
    }

    #[test]
    fn http_statuses_map_as_the_grpc_spec_says() {
        for (http, code) in [
            (400, Code::Internal),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::Unimplemented),
            (429, Code::Unavailable),
            (502, Code::Unavailable),
            (503, Code::Unavailable),
            (504, Code::Unavailable),
            (500, Code::Unknown),
            (302, Code::Unknown),
        ] {
            let status = http_status(StatusCode::from_u16(http).unwrap(), target());
            assert_eq!(status.code(), code, "HTTP {http}");
            assert!(
                status
                    .message()
                    .contains("/pkg.Svc/Method on 127.0.0.1:7000")
            );
        }
    }

    #[test]
    fn trailers_give_the_status_message_and_metadata() {
        let sent = Status::failed_precondition("50% moved: époch 7\r\n").with_metadata(
            HeaderName::from_static("vectron-epoch"),
            HeaderValue::from_static("7"),
        );
        let mut trailers = HeaderMap::new();
        sent.write_to(&mut trailers);
        assert_eq!(end_status(&trailers, target()), Err(sent));

        let mut ok = HeaderMap::new();
        Status::new(Code::Ok, "").write_to(&mut ok);
        assert_eq!(end_status(&ok, target()), Ok(()));
    }

    #[test]
    fn trailers_without_a_valid_grpc_status_are_internal() {
        let missing = end_status(&HeaderMap::new(), target()).unwrap_err();
        assert_eq!(missing.code(), Code::Internal);
        assert!(missing.message().contains("no grpc-status"), "{missing}");

        let mut malformed = HeaderMap::new();
        malformed.insert(GRPC_STATUS, HeaderValue::from_static("fourteen"));
        malformed.insert(GRPC_MESSAGE, encode_message("x"));
        let status = end_status(&malformed, target()).unwrap_err();
        assert_eq!(status.code(), Code::Internal);

        // A code outside the specification reads as UNKNOWN, as the specification asks.
        let mut unknown = HeaderMap::new();
        unknown.insert(GRPC_STATUS, HeaderValue::from_static("99"));
        assert_eq!(
            end_status(&unknown, target()).unwrap_err().code(),
            Code::Unknown
        );
    }

    #[test]
    fn oversized_response_messages_are_resource_exhausted() {
        let status = frame_status(&FrameError::TooLarge { len: 10, max: 5 }, target());
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("10 bytes"), "{status}");
        let status = frame_status(
            &FrameError::Truncated {
                buffered: 3,
                expected: 5,
            },
            target(),
        );
        assert_eq!(status.code(), Code::Internal);
    }
}
