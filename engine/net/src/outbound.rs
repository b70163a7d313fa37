//! The response side of a call: headers, framed messages under flow control, trailers.
//!
//! Encoded messages wait in `pending` and move into h2 only as fast as h2 assigns send
//! capacity (`reserve_capacity` + `poll_capacity`), because `SendStream::send_data`
//! itself buffers without limit. A streaming handler is made to wait in
//! [`ResponseSink::send`] while more than [`HIGH_WATER`] bytes are pending, so a slow
//! reader holds back the handler instead of growing memory. Whenever the handler waits,
//! the call's task moves pending bytes into h2 as capacity arrives, so small messages
//! gather into large DATA frames without waiting for a timer.
//!
//! When the call ends, what is still pending (a unary answer, or at most [`HIGH_WATER`]
//! plus one message of a stream) moves into h2 the same way, under send capacity, and
//! the trailers follow it. The call's task waits for the client to take it, within the
//! call's deadline.
//!
//! Every pending byte is charged against the server's budget of buffered bytes (see
//! `admission`) and given back as it moves into h2. A message over `SMALL_MESSAGE` that
//! does not fit the budget is refused with `RESOURCE_EXHAUSTED` before it is encoded.
//! Pending bytes that wait [`ServerConfig::send_timeout`] for send capacity without any
//! of them moving, or that are still pending at the deadline, are dropped and the stream
//! is reset (`CANCEL`): a client that does not read its answers cannot make the server
//! hold them.
//!
//! [`ServerConfig::send_timeout`]: crate::ServerConfig::send_timeout

use std::cell::RefCell;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{Reason, SendStream};
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use monoio::time::Sleep;
use prost::Message;

use crate::admission::{Budget, Charge, SMALL_MESSAGE, Side};
use crate::codec;
use crate::inbound::stream_status;
use crate::status::{Code, Status};

/// Pending response bytes above which a streaming handler waits for the client.
pub(crate) const HIGH_WATER: usize = 64 * 1024;

/// Pending response bytes from which [`ResponseSink::send`] moves them into h2 itself.
/// Below it, messages gather until the handler next waits (the call's task then moves
/// them) or ends: a burst of small messages leaves as a few large DATA frames, not one
/// tiny frame per message (h2 clients, tonic's included, budget small DATA frames and
/// close connections that send too many of them).
const FLUSH_AT: usize = 16 * 1024;

/// Messages sent in a row without waiting, before the handler yields to the other tasks
/// of the core.
const YIELD_EVERY: u32 = 64;

/// The `content-type` of every gRPC response.
pub(crate) const GRPC_CONTENT_TYPE: HeaderValue = HeaderValue::from_static("application/grpc");

#[derive(Debug)]
enum Phase {
    /// Nothing sent yet.
    Headers(SendResponse<Bytes>),
    /// Response headers sent; messages may follow.
    Body(SendStream<Bytes>),
    /// The call is over: trailers were sent, or the stream is gone.
    Done,
}

/// The response of one call.
#[derive(Debug)]
pub(crate) struct Outbound {
    phase: Phase,
    pending: BytesMut,
    /// Holds `pending.len()` bytes against the budget, except inside [`Outbound::enqueue`].
    charge: Charge,
    max_message: usize,
    /// Where the message being encoded starts in `pending`, while it is encoded: a
    /// handler that panics inside `encode` leaves a partial message behind, cut here.
    encoding_from: Option<usize>,
    sent_in_a_row: u32,
    send_timeout: Duration,
    /// Since when pending bytes have waited for send capacity with none of them moving.
    waiting_since: Option<Instant>,
    /// Fires `send_timeout` after `waiting_since`; made the first time a call waits.
    stall_timer: Option<Pin<Box<Sleep>>>,
}

impl Outbound {
    pub(crate) fn new(
        respond: SendResponse<Bytes>,
        max_message: usize,
        budget: &Budget,
        send_timeout: Duration,
    ) -> Outbound {
        Outbound {
            phase: Phase::Headers(respond),
            pending: BytesMut::new(),
            charge: budget.charge(),
            max_message,
            encoding_from: None,
            sent_in_a_row: 0,
            send_timeout,
            waiting_since: None,
            stall_timer: None,
        }
    }

    /// Encodes `message` behind the pending bytes, if it fits the send limit and, when
    /// it is over [`SMALL_MESSAGE`], the budget of buffered bytes.
    pub(crate) fn enqueue<M: Message>(&mut self, message: &M) -> Result<(), Status> {
        if matches!(self.phase, Phase::Done) {
            return Err(Status::cancelled("the call is already over"));
        }
        let len = codec::checked_len(message, self.max_message)?;
        let framed = len.framed();
        if framed > SMALL_MESSAGE {
            self.charge.try_grow(framed, Side::Response)?;
        } else {
            self.charge.set(self.charge.bytes() + framed);
        }
        let from = self.pending.len();
        self.encoding_from = Some(from);
        let encoded = codec::encode(message, len, &mut self.pending);
        self.encoding_from = None;
        if encoded.is_err() {
            self.pending.truncate(from);
        }
        self.charge.set(self.pending.len());
        encoded
    }

    /// Drops the partial message a panic inside `encode` may have left.
    pub(crate) fn discard_partial(&mut self) {
        if let Some(from) = self.encoding_from.take() {
            self.pending.truncate(from);
            self.charge.set(self.pending.len());
        }
    }

    /// Sends the response headers if they are not out yet.
    fn body(&mut self) -> Result<&mut SendStream<Bytes>, Status> {
        if let Phase::Headers(respond) = &mut self.phase {
            let mut response = Response::new(());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, GRPC_CONTENT_TYPE);
            match respond.send_response(response, false) {
                Ok(stream) => self.phase = Phase::Body(stream),
                Err(error) => {
                    self.phase = Phase::Done;
                    return Err(stream_status(&error));
                }
            }
        }
        match &mut self.phase {
            Phase::Body(stream) => Ok(stream),
            Phase::Headers(_) | Phase::Done => Err(Status::cancelled("the call is already over")),
        }
    }

    /// Moves pending bytes into h2 as far as send capacity allows, and waits for more
    /// capacity while more than `keep` bytes are pending.
    pub(crate) fn poll_flush(
        &mut self,
        cx: &mut Context<'_>,
        keep: usize,
    ) -> Poll<Result<(), Status>> {
        if self.pending.is_empty() {
            return Poll::Ready(Ok(()));
        }
        self.body()?;
        let Phase::Body(stream) = &mut self.phase else {
            return Poll::Ready(Err(Status::cancelled("the call is already over")));
        };
        let pending = &mut self.pending;
        loop {
            stream.reserve_capacity(pending.len());
            let capacity = stream.capacity();
            if capacity > 0 {
                let chunk = pending.split_to(capacity.min(pending.len())).freeze();
                self.charge.set(pending.len());
                self.waiting_since = None;
                if let Err(error) = stream.send_data(chunk, false) {
                    return Poll::Ready(Err(stream_status(&error)));
                }
                if pending.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if pending.len() <= keep {
                return Poll::Ready(Ok(()));
            }
            match stream.poll_capacity(cx) {
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(stream_status(&error))),
                Poll::Ready(None) => {
                    return Poll::Ready(Err(Status::cancelled("the client closed the stream")));
                }
                Poll::Pending => {
                    self.waiting_since.get_or_insert_with(Instant::now);
                    return Poll::Pending;
                }
            }
        }
    }

    /// Ready once pending bytes have waited `send_timeout` for send capacity with none of
    /// them moving. Pending while nothing waits.
    pub(crate) fn poll_stalled(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(due) = self
            .waiting_since
            .and_then(|since| since.checked_add(self.send_timeout))
        else {
            return Poll::Pending;
        };
        let due = monoio::time::Instant::from_std(due);
        let timer = self
            .stall_timer
            .get_or_insert_with(|| Box::pin(monoio::time::sleep_until(due)));
        if timer.deadline() != due {
            timer.as_mut().reset(due);
        }
        timer.as_mut().poll(cx)
    }

    /// Gives up on a client that does not take its answer: resets the stream (`CANCEL`)
    /// and drops the pending bytes.
    pub(crate) fn reset(&mut self) {
        match &mut self.phase {
            Phase::Headers(respond) => respond.send_reset(Reason::CANCEL),
            Phase::Body(stream) => stream.send_reset(Reason::CANCEL),
            Phase::Done => {}
        }
        self.phase = Phase::Done;
        self.pending.clear();
        self.charge.set(0);
        self.waiting_since = None;
    }

    /// Ready once the client has reset the stream or the connection is gone.
    pub(crate) fn poll_gone(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let reset = match &mut self.phase {
            Phase::Headers(respond) => respond.poll_reset(cx),
            Phase::Body(stream) => stream.poll_reset(cx),
            Phase::Done => return Poll::Pending,
        };
        reset.map(|_| ())
    }

    /// Ends the call with `status`: at once with a trailers-only response when nothing
    /// was sent yet and there is no message; otherwise once the pending messages have
    /// moved into h2 under send capacity, with the trailers behind them. The caller
    /// bounds the wait (see [`Outbound::poll_stalled`]). An error means the client is
    /// gone.
    pub(crate) fn poll_finish(
        &mut self,
        cx: &mut Context<'_>,
        status: &Status,
    ) -> Poll<Result<(), Status>> {
        self.discard_partial();
        let only_trailers = self.pending.is_empty() && status.code() != Code::Ok;
        match &mut self.phase {
            Phase::Done => return Poll::Ready(Ok(())),
            Phase::Headers(respond) if only_trailers => {
                let mut response = Response::new(());
                response
                    .headers_mut()
                    .insert(CONTENT_TYPE, GRPC_CONTENT_TYPE);
                status.write_to(response.headers_mut());
                let _ = respond.send_response(response, true);
                self.phase = Phase::Done;
                return Poll::Ready(Ok(()));
            }
            Phase::Headers(_) | Phase::Body(_) => {}
        }
        if let Err(gone) = ready!(self.poll_flush(cx, 0)) {
            self.phase = Phase::Done;
            return Poll::Ready(Err(gone));
        }
        let sent = self.body().and_then(|stream| {
            let mut trailers = HeaderMap::with_capacity(2);
            status.write_to(&mut trailers);
            stream
                .send_trailers(trailers)
                .map_err(|error| stream_status(&error))
        });
        self.phase = Phase::Done;
        Poll::Ready(sent)
    }

    /// Answers a request that is not gRPC at all with a bare HTTP status.
    pub(crate) fn reject_http(&mut self, status: StatusCode) {
        if let Phase::Headers(respond) = &mut self.phase {
            let mut response = Response::new(());
            *response.status_mut() = status;
            let _ = respond.send_response(response, true);
        }
        self.phase = Phase::Done;
    }

    /// Counts an immediate send; true when the handler should yield now.
    fn should_yield(&mut self) -> bool {
        self.sent_in_a_row += 1;
        if self.sent_in_a_row >= YIELD_EVERY {
            self.sent_in_a_row = 0;
            true
        } else {
            false
        }
    }
}

/// Where a server-streaming handler sends its response messages.
///
/// [`ResponseSink::send`] waits while the client is not reading fast enough, so a handler
/// producing a large result holds at most about 64 KiB of encoded messages beyond what
/// HTTP/2 flow control lets through. A client that stops reading for the server's
/// `send_timeout` has its stream reset, which ends the handler.
#[derive(Debug)]
pub struct ResponseSink<T> {
    outbound: Rc<RefCell<Outbound>>,
    _message: PhantomData<fn(&T)>,
}

impl<T: Message> ResponseSink<T> {
    pub(crate) fn new(outbound: Rc<RefCell<Outbound>>) -> ResponseSink<T> {
        ResponseSink {
            outbound,
            _message: PhantomData,
        }
    }

    /// Sends one message, waiting for the client when too much is already pending.
    ///
    /// # Errors
    ///
    /// `RESOURCE_EXHAUSTED` when the message is over the send limit, or over 64 KiB and
    /// does not fit the server's budget of buffered bytes (nothing is sent, and the
    /// stream can go on; the status carries a `retry-after` trailer when retrying may
    /// succeed), `CANCELLED` or `UNAVAILABLE` when the client is gone: the handler
    /// should then stop and return the error.
    pub async fn send(&mut self, message: &T) -> Result<(), Status> {
        let pending = {
            let mut outbound = self.outbound.borrow_mut();
            outbound.enqueue(message)?;
            outbound.pending.len()
        };
        if pending >= FLUSH_AT {
            poll_fn(|cx| self.outbound.borrow_mut().poll_flush(cx, HIGH_WATER)).await?;
        }
        let yield_now = self.outbound.borrow_mut().should_yield();
        if yield_now {
            yield_once().await;
        }
        Ok(())
    }
}

/// Lets the other tasks of the core run once.
pub(crate) async fn yield_once() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
}
