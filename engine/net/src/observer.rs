//! Hooks and counters for the core's stats.
//!
//! Everything here lives on the core's thread: the counters are `Cell`s and the observer
//! is called inline, so observing a call costs a few non-atomic increments and two
//! virtual calls, with no lock and no atomic operation.

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use crate::router::Method;
use crate::status::Code;

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionEnd {
    /// Closed in an orderly way: the client went away after its last call, or the
    /// server's graceful shutdown completed.
    Closed,
    /// The bytes received were not an HTTP/2 client preface.
    HandshakeFailed,
    /// No HTTP/2 preface arrived within the handshake timeout.
    HandshakeTimedOut,
    /// A protocol or transport error after the handshake (the peer sent invalid frames,
    /// reset the TCP connection, or h2 tore the connection down).
    Error,
    /// The peer stopped answering keepalive PINGs.
    Unresponsive,
    /// The shutdown grace period expired with calls still running.
    Aborted,
    /// The server closed it after `idle_timeout` with no call in flight (GOAWAY, then
    /// the close once any call that raced the GOAWAY has ended).
    Idle,
}

/// Receives the server's events, inline on the core's thread. Every method has an empty
/// default; a stats layer overrides what it records. Implementations must be cheap and
/// must not block: they run on the request path.
///
/// `method` is `None` for a call to a path no handler is registered for.
pub trait Observer {
    /// A call's request headers arrived.
    fn call_started(&self, method: Option<&Method>) {
        let _ = method;
    }

    /// A call ended with `code`, `elapsed` after it started. `CANCELLED` is reported
    /// for a call whose client reset it or went away, and for one whose client left its
    /// answer unread for `send_timeout` (the server reset that stream);
    /// `DEADLINE_EXCEEDED` also for an answer still unread at the deadline (reset too);
    /// `RESOURCE_EXHAUSTED` for a call refused for `max_calls` or `max_buffered_bytes`;
    /// `INTERNAL` for a request that is not gRPC at all (not `POST`, or not
    /// `application/grpc`), which is answered with HTTP 405 or 415.
    fn call_finished(&self, method: Option<&Method>, code: Code, elapsed: Duration) {
        let _ = (method, code, elapsed);
    }

    /// A connection was accepted and is being served.
    fn connection_opened(&self, peer: SocketAddr) {
        let _ = peer;
    }

    /// A served connection ended.
    fn connection_closed(&self, peer: SocketAddr, end: ConnectionEnd) {
        let _ = (peer, end);
    }

    /// A connection was closed at once because `max_connections` were open.
    fn connection_refused(&self, peer: SocketAddr) {
        let _ = peer;
    }
}

/// A snapshot of a server's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Calls started and not yet finished.
    pub in_flight: usize,
    /// Connections being served.
    pub open_connections: usize,
    /// Calls started since the server was created.
    pub calls_started: u64,
    /// Calls finished since the server was created.
    pub calls_finished: u64,
    /// Connections served since the server was created.
    pub connections_accepted: u64,
    /// Connections closed at once because `max_connections` were open.
    pub connections_refused: u64,
    /// Bytes held against `max_buffered_bytes` now: request messages over 64 KiB being
    /// received or held (their announced length) and response bytes waiting for the
    /// client.
    pub buffered_bytes: usize,
    /// The most `buffered_bytes` has been since the server was created.
    pub peak_buffered_bytes: usize,
    /// Calls refused because `max_calls` calls were in flight.
    pub calls_refused_max_calls: u64,
    /// Calls refused because a request or response message did not fit
    /// `max_buffered_bytes`.
    pub calls_refused_max_buffered_bytes: u64,
    /// Streams reset because the client left response bytes unread for `send_timeout`
    /// or past the call's deadline.
    pub send_timeouts: u64,
}

/// Live counters of one server, readable from any task of its core.
#[derive(Clone, Debug, Default)]
pub struct StatsHandle(Rc<Counters>);

#[derive(Debug, Default)]
pub(crate) struct Counters {
    in_flight: Cell<usize>,
    open_connections: Cell<usize>,
    calls_started: Cell<u64>,
    calls_finished: Cell<u64>,
    connections_accepted: Cell<u64>,
    connections_refused: Cell<u64>,
    /// Calls admitted under `max_calls` and not yet ended.
    admitted: Cell<usize>,
    buffered_bytes: Cell<usize>,
    peak_buffered_bytes: Cell<usize>,
    calls_refused_max_calls: Cell<u64>,
    calls_refused_max_buffered_bytes: Cell<u64>,
    send_timeouts: Cell<u64>,
}

impl StatsHandle {
    /// The counters now.
    pub fn snapshot(&self) -> ServerStats {
        let c = &self.0;
        ServerStats {
            in_flight: c.in_flight.get(),
            open_connections: c.open_connections.get(),
            calls_started: c.calls_started.get(),
            calls_finished: c.calls_finished.get(),
            connections_accepted: c.connections_accepted.get(),
            connections_refused: c.connections_refused.get(),
            buffered_bytes: c.buffered_bytes.get(),
            peak_buffered_bytes: c.peak_buffered_bytes.get(),
            calls_refused_max_calls: c.calls_refused_max_calls.get(),
            calls_refused_max_buffered_bytes: c.calls_refused_max_buffered_bytes.get(),
            send_timeouts: c.send_timeouts.get(),
        }
    }

    /// Calls started and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.0.in_flight.get()
    }

    /// Connections being served.
    pub fn open_connections(&self) -> usize {
        self.0.open_connections.get()
    }

    /// Bytes held against `max_buffered_bytes` now (see [`ServerStats::buffered_bytes`]).
    pub fn buffered_bytes(&self) -> usize {
        self.0.buffered_bytes.get()
    }

    /// Calls refused since the server was created because `max_calls` calls were in
    /// flight.
    pub fn calls_refused_max_calls(&self) -> u64 {
        self.0.calls_refused_max_calls.get()
    }

    /// Calls refused since the server was created because a message did not fit
    /// `max_buffered_bytes`.
    pub fn calls_refused_max_buffered_bytes(&self) -> u64 {
        self.0.calls_refused_max_buffered_bytes.get()
    }

    pub(crate) fn call_started(&self) {
        let c = &self.0;
        c.in_flight.set(c.in_flight.get() + 1);
        c.calls_started.set(c.calls_started.get() + 1);
    }

    pub(crate) fn call_finished(&self) {
        let c = &self.0;
        c.in_flight.set(c.in_flight.get().saturating_sub(1));
        c.calls_finished.set(c.calls_finished.get() + 1);
    }

    pub(crate) fn connection_opened(&self) {
        let c = &self.0;
        c.open_connections.set(c.open_connections.get() + 1);
        c.connections_accepted.set(c.connections_accepted.get() + 1);
    }

    pub(crate) fn connection_closed(&self) {
        let c = &self.0;
        c.open_connections
            .set(c.open_connections.get().saturating_sub(1));
    }

    pub(crate) fn connection_refused(&self) {
        let c = &self.0;
        c.connections_refused.set(c.connections_refused.get() + 1);
    }
}

/// The counters behind admission control (see `admission`).
impl StatsHandle {
    pub(crate) fn admitted(&self) -> usize {
        self.0.admitted.get()
    }

    pub(crate) fn call_admitted(&self) {
        let c = &self.0;
        c.admitted.set(c.admitted.get() + 1);
    }

    pub(crate) fn admitted_call_ended(&self) {
        let c = &self.0;
        c.admitted.set(c.admitted.get().saturating_sub(1));
    }

    pub(crate) fn refused_for_max_calls(&self) {
        let c = &self.0;
        c.calls_refused_max_calls
            .set(c.calls_refused_max_calls.get() + 1);
    }

    pub(crate) fn refused_for_max_buffered_bytes(&self) {
        let c = &self.0;
        c.calls_refused_max_buffered_bytes
            .set(c.calls_refused_max_buffered_bytes.get() + 1);
    }

    pub(crate) fn send_timed_out(&self) {
        let c = &self.0;
        c.send_timeouts.set(c.send_timeouts.get() + 1);
    }

    pub(crate) fn add_buffered(&self, bytes: usize) {
        let c = &self.0;
        let now = c.buffered_bytes.get().saturating_add(bytes);
        c.buffered_bytes.set(now);
        c.peak_buffered_bytes
            .set(c.peak_buffered_bytes.get().max(now));
    }

    pub(crate) fn remove_buffered(&self, bytes: usize) {
        let c = &self.0;
        c.buffered_bytes
            .set(c.buffered_bytes.get().saturating_sub(bytes));
    }
}
