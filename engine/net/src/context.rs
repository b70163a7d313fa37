//! What a handler knows about the call it serves, besides the request message.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::HeaderMap;

use crate::router::Method;

/// The per-call context a handler receives: the method, the deadline, the peer and the
/// request metadata.
///
/// The deadline comes from the client's `grpc-timeout` header, measured from the moment
/// the request headers arrived. The server enforces it: when it passes, the handler's
/// future is dropped at its next suspension point and the client gets
/// `DEADLINE_EXCEEDED`. A handler reads it to bound its own work (for example, an
/// exact-search fallback) or to pass a shorter deadline downstream.
#[derive(Debug)]
pub struct RequestContext {
    method: Method,
    deadline: Option<Instant>,
    peer: SocketAddr,
    metadata: HeaderMap,
}

impl RequestContext {
    pub(crate) fn new(
        method: Method,
        deadline: Option<Instant>,
        peer: SocketAddr,
        metadata: HeaderMap,
    ) -> RequestContext {
        RequestContext {
            method,
            deadline,
            peer,
            metadata,
        }
    }

    /// The method being called.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// When the call must be complete, if the client set a deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left until the deadline (zero once it has passed), if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    /// The address of the client's end of the connection.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Every request header except the HTTP/2 pseudo-headers: gRPC metadata (such as
    /// `authorization` or an epoch), `content-type`, `grpc-timeout`, `user-agent`.
    /// Binary metadata (`-bin` names) is left base64-encoded, as it travels.
    pub fn metadata(&self) -> &HeaderMap {
        &self.metadata
    }

    /// The value of the metadata entry `name`, if it is present and visible ASCII.
    pub fn metadata_str(&self, name: &str) -> Option<&str> {
        self.metadata
            .get(name)
            .and_then(|value| value.to_str().ok())
    }
}
