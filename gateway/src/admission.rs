//! Admission control: how much work a gateway takes on at once, so that no client, and
//! no burst of clients, can exhaust its memory or its sockets. Beyond a budget a request
//! is refused at once with `RESOURCE_EXHAUSTED` (HTTP 429) and a `retry-after` of
//! [`AdmissionConfig::retry_after`]; nothing waits in an unbounded queue.
//!
//! | budget | what it bounds | charged |
//! | --- | --- | --- |
//! | [`AdmissionConfig::max_calls`] | calls served at once, both doors | one per call, until its answer is sent |
//! | [`AdmissionConfig::max_streams`] | upsert streams at once (gRPC and NDJSON) | one per stream; a stream holds at most [`STREAM_HELD_BYTES`] of points |
//! | [`AdmissionConfig::max_inflight_bytes`] | request bodies and shard answers held by calls | request bytes × [`GRPC_EXPANSION`] or [`JSON_EXPANSION`] as they arrive; each shard's answer as it arrives; released when the call ends |
//! | [`AdmissionConfig::max_connections`] | open connections, per listener | one per connection |
//! | [`AdmissionConfig::body_idle_timeout`] | a body that stops arriving | the call fails |
//!
//! So a gateway holds at most about `max_inflight_bytes` + `max_streams` ×
//! [`STREAM_HELD_BYTES`] + the search cache, whatever its clients send.
//!
//! Health probes (`/healthz`, `/readyz`) are never refused.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::HttpBody;
use bytes::Bytes;
use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use crate::error::GatewayError;

/// Bytes of points one upsert stream holds until the cores acknowledge them, spread
/// over two segments per shard (`stream.rs`). A segment is at least 1 MiB, so a stream
/// to a collection of more than 32 shards holds up to 2 MiB per shard.
pub(crate) const STREAM_HELD_BYTES: usize = 64 << 20;

/// Bytes a call may hold whatever the budget: a call this small (a search, a get, a
/// small write) is never refused for bytes, so calls that hold the budget (large or
/// slow bodies) cannot starve small ones. At most `max_calls` of them are in flight.
pub(crate) const SMALL_CALL_BYTES: usize = 256 << 10;

/// What a gRPC request costs per byte received: the message as it arrives, and again
/// decoded.
pub(crate) const GRPC_EXPANSION: usize = 2;

/// What an HTTP/JSON request costs per byte received: the text, the parsed JSON tree
/// (a number of a few characters becomes a 32-byte value) and the decoded message.
pub(crate) const JSON_EXPANSION: usize = 4;

/// The budgets of one gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionConfig {
    /// Calls served at once, both doors together. Default 1,024.
    pub max_calls: usize,
    /// Upsert streams (gRPC client streams and NDJSON bodies) at once. Default 8.
    pub max_streams: usize,
    /// Bytes of request bodies and shard answers that calls in flight may hold. Default
    /// 512 MiB.
    pub max_inflight_bytes: usize,
    /// Connections open at once on each listener; more are closed as they arrive.
    /// Default 4,096.
    pub max_connections: usize,
    /// How long a request body may go without a byte arriving. Default 30 s.
    pub body_idle_timeout: Duration,
    /// How long an HTTP client has to send a request's headers, idle keep-alive
    /// connections included. Default 30 s.
    pub header_timeout: Duration,
    /// What a refused client is told to wait before trying again. Default 1 s.
    pub retry_after: Duration,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_calls: 1024,
            max_streams: 8,
            max_inflight_bytes: 512 << 20,
            max_connections: 4096,
            body_idle_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(30),
            retry_after: Duration::from_secs(1),
        }
    }
}

impl AdmissionConfig {
    /// Checks that every budget can admit something.
    ///
    /// # Errors
    /// The name of the first budget that is zero.
    pub fn validate(&self) -> Result<(), &'static str> {
        let positive = [
            ("max_calls", self.max_calls > 0),
            ("max_streams", self.max_streams > 0),
            ("max_inflight_bytes", self.max_inflight_bytes > 0),
            ("max_connections", self.max_connections > 0),
            ("body_idle_timeout", !self.body_idle_timeout.is_zero()),
            ("header_timeout", !self.header_timeout.is_zero()),
        ];
        match positive.iter().find(|(_, ok)| !ok) {
            Some((name, _)) => Err(name),
            None => Ok(()),
        }
    }
}

/// What kind of call is admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallKind {
    /// A call with one request message: its body is charged as it arrives, at this many
    /// bytes per byte.
    Unary { expansion: usize },
    /// An upsert stream: bounded by the stream budget, its body is not charged.
    Stream,
    /// A health probe: never refused, never charged.
    Probe,
}

/// The budgets and what is in use.
#[derive(Debug)]
pub(crate) struct Admission {
    config: AdmissionConfig,
    calls: Arc<Semaphore>,
    streams: Arc<Semaphore>,
    bytes: AtomicUsize,
    refused: AtomicUsize,
}

impl Admission {
    pub(crate) fn new(config: AdmissionConfig) -> Arc<Self> {
        Arc::new(Self {
            calls: Arc::new(Semaphore::new(config.max_calls)),
            streams: Arc::new(Semaphore::new(config.max_streams)),
            bytes: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            config,
        })
    }

    /// Bytes held by calls in flight.
    pub(crate) fn inflight_bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Calls refused so far.
    pub(crate) fn refused(&self) -> usize {
        self.refused.load(Ordering::Relaxed)
    }

    fn overloaded(&self, what: &'static str, limit: usize) -> GatewayError {
        self.refused.fetch_add(1, Ordering::Relaxed);
        GatewayError::Overloaded {
            what,
            limit,
            retry_after: self.config.retry_after,
        }
    }

    /// Admits a call, or refuses it at once.
    pub(crate) fn admit(self: &Arc<Self>, kind: CallKind) -> Result<Arc<Ticket>, GatewayError> {
        let (call, stream) = match kind {
            CallKind::Probe => (None, None),
            CallKind::Unary { .. } => {
                let call = Arc::clone(&self.calls)
                    .try_acquire_owned()
                    .map_err(|_| self.overloaded("calls in flight", self.config.max_calls))?;
                (Some(call), None)
            }
            CallKind::Stream => {
                let call = Arc::clone(&self.calls)
                    .try_acquire_owned()
                    .map_err(|_| self.overloaded("calls in flight", self.config.max_calls))?;
                let stream = Arc::clone(&self.streams)
                    .try_acquire_owned()
                    .map_err(|_| self.overloaded("upsert streams", self.config.max_streams))?;
                (Some(call), Some(stream))
            }
        };
        Ok(Arc::new(Ticket {
            admission: Arc::clone(self),
            expansion: match kind {
                CallKind::Unary { expansion } => expansion,
                CallKind::Stream | CallKind::Probe => 0,
            },
            charged: AtomicUsize::new(0),
            _call: call,
            _stream: stream,
        }))
    }
}

/// One admitted call: its permits, and the bytes it holds against the budget, given
/// back when the last handle on it is dropped (the call has answered).
#[derive(Debug)]
pub(crate) struct Ticket {
    admission: Arc<Admission>,
    /// Bytes charged per byte of request body (0: the body is not charged).
    expansion: usize,
    charged: AtomicUsize,
    _call: Option<OwnedSemaphorePermit>,
    _stream: Option<OwnedSemaphorePermit>,
}

impl Ticket {
    /// Charges `bytes` to the call, or refuses them when the gateway's budget is spent
    /// (never while the call holds at most [`SMALL_CALL_BYTES`]).
    pub(crate) fn charge(&self, bytes: usize) -> Result<(), GatewayError> {
        let budget = &self.admission.bytes;
        if self.charged.load(Ordering::Relaxed).saturating_add(bytes) <= SMALL_CALL_BYTES {
            budget.fetch_add(bytes, Ordering::AcqRel);
            self.charged.fetch_add(bytes, Ordering::Relaxed);
            return Ok(());
        }
        let max = self.admission.config.max_inflight_bytes;
        let mut held = budget.load(Ordering::Relaxed);
        loop {
            let Some(after) = held.checked_add(bytes).filter(|&after| after <= max) else {
                return Err(self.admission.overloaded("bytes in flight", max));
            };
            match budget.compare_exchange_weak(held, after, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => held = now,
            }
        }
        self.charged.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }
}

impl Ticket {
    /// Charges a body of `bytes` declared up front (HTTP `Content-Length`), before any
    /// of it is read: a body that cannot fit is refused at once, before the client sends
    /// it, and one that fits cannot be refused halfway.
    pub(crate) fn prepay(&self, bytes: usize) -> Result<(), GatewayError> {
        self.charge(bytes.saturating_mul(self.expansion))
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let charged = *self.charged.get_mut();
        self.admission.bytes.fetch_sub(charged, Ordering::AcqRel);
    }
}

tokio::task_local! {
    /// The ticket of the call the current task serves.
    static TICKET: Arc<Ticket>;
}

/// Runs `work` as part of the call `ticket` admitted, so that [`charge_answer`] inside
/// it charges that call.
pub(crate) async fn within<F: Future>(ticket: Arc<Ticket>, work: F) -> F::Output {
    TICKET.scope(ticket, work).await
}

/// A streamed answer that stays part of the call the current task serves: it holds
/// the call's ticket (its slot among [`AdmissionConfig::max_calls`] and the bytes
/// charged) until it ends, and [`charge_answer`] inside it charges that call. The
/// handler that returns a stream returns before the stream is sent, so without this a
/// long stream would hold no slot.
pub(crate) fn ticketed<S: futures_util::Stream + Unpin>(inner: S) -> Ticketed<S> {
    Ticketed {
        inner,
        ticket: TICKET.try_with(Arc::clone).ok(),
    }
}

/// See [`ticketed`].
#[derive(Debug)]
pub(crate) struct Ticketed<S> {
    inner: S,
    ticket: Option<Arc<Ticket>>,
}

impl<S: futures_util::Stream + Unpin> futures_util::Stream for Ticketed<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        let item = match &this.ticket {
            Some(ticket) => TICKET.sync_scope(Arc::clone(ticket), || {
                Pin::new(&mut this.inner).poll_next(cx)
            }),
            None => Pin::new(&mut this.inner).poll_next(cx),
        };
        if matches!(item, Poll::Ready(None)) {
            // Ended: the call's budget is free again even if the body lingers.
            this.ticket = None;
        }
        item
    }
}

/// Charges `bytes` of a shard's answer to the current call (nothing outside a call, or
/// in work shared between calls, such as a deduplicated search).
pub(crate) fn charge_answer(bytes: usize) -> Result<(), GatewayError> {
    TICKET
        .try_with(|ticket| ticket.charge(bytes))
        .unwrap_or(Ok(()))
}

// --- bodies -----------------------------------------------------------------------------

/// A request body under admission: each frame is charged to the call as it arrives
/// (for calls whose body is charged), and a body that stops arriving for
/// [`AdmissionConfig::body_idle_timeout`] fails.
#[derive(Debug)]
pub(crate) struct GuardedBody<B> {
    inner: B,
    ticket: Arc<Ticket>,
    /// Body bytes already charged ([`GuardedBody::prepaid`]).
    prepaid: usize,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

impl<B> GuardedBody<B> {
    pub(crate) fn new(inner: B, ticket: Arc<Ticket>) -> Self {
        let idle = ticket.admission.config.body_idle_timeout;
        Self {
            inner,
            ticket,
            prepaid: 0,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }

    /// A body whose length was declared and charged when its call was admitted
    /// ([`Ticket::prepay`]): its first `bytes` are not charged again.
    pub(crate) fn prepaid(mut self, bytes: usize) -> Self {
        self.prepaid = bytes;
        self
    }
}

/// Why a guarded body stopped: the gateway's refusal, carried through the libraries'
/// body errors. tonic finds the `Status` in the error's chain and answers with it; the
/// HTTP door finds this error and answers with [`BodyRefused::error`].
#[derive(Debug, thiserror::Error)]
#[error("{}", .status.message())]
pub(crate) struct BodyRefused {
    error: Refusal,
    #[source]
    status: tonic::Status,
}

/// The refusals a body can end with.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    Overloaded {
        what: &'static str,
        limit: usize,
        retry_after: Duration,
    },
    Slow {
        after: Duration,
    },
}

impl BodyRefused {
    fn new(error: &GatewayError) -> Self {
        let refusal = match *error {
            GatewayError::Overloaded {
                what,
                limit,
                retry_after,
            } => Refusal::Overloaded {
                what,
                limit,
                retry_after,
            },
            GatewayError::RequestTimeout { after } => Refusal::Slow { after },
            _ => Refusal::Slow {
                after: Duration::ZERO,
            },
        };
        Self {
            error: refusal,
            status: error.to_status(),
        }
    }

    /// The refusal as the gateway's error.
    pub(crate) fn error(&self) -> GatewayError {
        match self.error {
            Refusal::Overloaded {
                what,
                limit,
                retry_after,
            } => GatewayError::Overloaded {
                what,
                limit,
                retry_after,
            },
            Refusal::Slow { after } => GatewayError::RequestTimeout { after },
        }
    }

    /// The refusal that ended a body, if one did.
    pub(crate) fn find<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e Self> {
        let mut cause = Some(error);
        while let Some(e) = cause {
            if let Some(refused) = e.downcast_ref::<Self>() {
                return Some(refused);
            }
            cause = e.source();
        }
        None
    }
}

impl<B> HttpBody for GuardedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let paid = this.prepaid.min(data.len());
                    this.prepaid -= paid;
                    let cost = (data.len() - paid).saturating_mul(this.ticket.expansion);
                    if let Err(refused) = this.ticket.charge(cost) {
                        return Poll::Ready(Some(Err(Box::new(BodyRefused::new(&refused)))));
                    }
                }
                let deadline = tokio::time::Instant::now() + this.idle;
                this.timer.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                ready!(this.timer.as_mut().poll(cx));
                let slow = GatewayError::RequestTimeout { after: this.idle };
                Poll::Ready(Some(Err(Box::new(BodyRefused::new(&slow)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

// --- the gRPC door --------------------------------------------------------------------

/// Admits every gRPC call (see the module documentation) before tonic reads it.
#[derive(Debug, Clone)]
pub(crate) struct AdmissionLayer {
    admission: Arc<Admission>,
}

impl AdmissionLayer {
    pub(crate) fn new(admission: Arc<Admission>) -> Self {
        Self { admission }
    }
}

impl<S> tower::Layer<S> for AdmissionLayer {
    type Service = Admitted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Admitted {
            inner,
            admission: Arc::clone(&self.admission),
        }
    }
}

/// See [`AdmissionLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Admitted<S> {
    inner: S,
    admission: Arc<Admission>,
}

/// The path of the one client-streaming call of the public API.
const GRPC_STREAM: &str = "/vectron.v1.Points/UpsertStream";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<Request<B>> for Admitted<S>
where
    S: tower::Service<Request<GuardedBody<B>>, Response = Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let kind = if request.uri().path() == GRPC_STREAM {
            CallKind::Stream
        } else {
            CallKind::Unary {
                expansion: GRPC_EXPANSION,
            }
        };
        let ticket = match self.admission.admit(kind) {
            Ok(ticket) => ticket,
            Err(refused) => {
                let response = refused.to_status().into_http();
                return Box::pin(async move { Ok(response) });
            }
        };
        let request = request.map(|body| GuardedBody::new(body, Arc::clone(&ticket)));
        // The service that was polled ready serves this call; a fresh clone waits for
        // the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        Box::pin(within(ticket, async move { inner.call(request).await }))
    }
}

// --- connections -------------------------------------------------------------------------

/// A connection holding one of its listener's [`AdmissionConfig::max_connections`]
/// slots until it closes.
#[derive(Debug)]
pub(crate) struct Limited<T> {
    io: T,
    _slot: OwnedSemaphorePermit,
}

impl<T> Limited<T> {
    /// Takes a slot for `io`, or `None` (the connection is to be closed) when every
    /// slot is taken.
    pub(crate) fn new(io: T, slots: &Arc<Semaphore>) -> Option<Self> {
        let slot = Arc::clone(slots).try_acquire_owned().ok()?;
        Some(Self { io, _slot: slot })
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Limited<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Limited<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected for Limited<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_calls: usize, max_streams: usize, max_bytes: usize) -> Arc<Admission> {
        Admission::new(AdmissionConfig {
            max_calls,
            max_streams,
            max_inflight_bytes: max_bytes,
            ..AdmissionConfig::default()
        })
    }

    #[test]
    fn calls_beyond_the_budget_are_refused_and_slots_come_back() {
        let a = admission(2, 1, 1000);
        let unary = CallKind::Unary { expansion: 1 };
        let one = a.admit(unary).unwrap();
        let two = a.admit(CallKind::Stream).unwrap();
        let refused = a.admit(unary).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
        assert_eq!(refused.http_status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.to_string().contains("calls in flight"), "{refused}");
        assert_eq!(
            refused
                .to_status()
                .metadata()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned()),
            Some("1".to_owned())
        );
        // Probes are never refused.
        let _probe = a.admit(CallKind::Probe).unwrap();
        drop(one);
        let _three = a.admit(unary).unwrap();
        drop(two);
        let _stream = a.admit(CallKind::Stream).unwrap();
        assert_eq!(a.refused(), 1);
    }

    #[test]
    fn bytes_are_held_until_the_call_ends() {
        let max = 4 * SMALL_CALL_BYTES;
        let a = admission(10, 1, max);
        let unary = CallKind::Unary { expansion: 1 };
        let one = a.admit(unary).unwrap();
        one.charge(3 * SMALL_CALL_BYTES).unwrap();
        let two = a.admit(unary).unwrap();
        assert!(matches!(
            two.charge(2 * SMALL_CALL_BYTES),
            Err(GatewayError::Overloaded {
                what: "bytes in flight",
                ..
            })
        ));
        two.charge(SMALL_CALL_BYTES / 2).unwrap();
        // A small call goes through even with the budget spent.
        two.charge(SMALL_CALL_BYTES / 2).unwrap();
        let three = a.admit(unary).unwrap();
        three.charge(1000).unwrap();
        assert_eq!(a.inflight_bytes(), max + 1000);
        drop(one);
        assert_eq!(a.inflight_bytes(), SMALL_CALL_BYTES + 1000);
        drop((two, three));
        assert_eq!(a.inflight_bytes(), 0);
    }

    #[tokio::test]
    async fn answers_are_charged_to_the_call_that_runs_them() {
        let a = admission(10, 1, 2 * SMALL_CALL_BYTES);
        let ticket = a.admit(CallKind::Unary { expansion: 1 }).unwrap();
        within(Arc::clone(&ticket), async {
            charge_answer(SMALL_CALL_BYTES + 60).unwrap();
            assert!(charge_answer(SMALL_CALL_BYTES).is_err());
        })
        .await;
        assert_eq!(a.inflight_bytes(), SMALL_CALL_BYTES + 60);
        // Outside a call, nothing is charged.
        charge_answer(1_000_000).unwrap();
        drop(ticket);
        assert_eq!(a.inflight_bytes(), 0);
    }
}
