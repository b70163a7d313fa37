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
//! When the call ends, what is still pending (at most [`HIGH_WATER`] plus one message)
//! is handed to h2 in one piece together with the trailers, so ending never waits for
//! the client.

use std::cell::RefCell;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use h2::SendStream;
use h2::server::SendResponse;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use prost::Message;

use crate::codec;
use crate::inbound::stream_status;
use crate::status::Status;

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
    max_message: usize,
    /// Where the message being encoded starts in `pending`, while it is encoded: a
    /// handler that panics inside `encode` leaves a partial message behind, cut here.
    encoding_from: Option<usize>,
    sent_in_a_row: u32,
}

impl Outbound {
    pub(crate) fn new(respond: SendResponse<Bytes>, max_message: usize) -> Outbound {
        Outbound {
            phase: Phase::Headers(respond),
            pending: BytesMut::new(),
            max_message,
            encoding_from: None,
            sent_in_a_row: 0,
        }
    }

    /// Encodes `message` behind the pending bytes.
    pub(crate) fn enqueue<M: Message>(&mut self, message: &M) -> Result<(), Status> {
        if matches!(self.phase, Phase::Done) {
            return Err(Status::cancelled("the call is already over"));
        }
        self.encoding_from = Some(self.pending.len());
        let encoded = codec::checked_len(message, self.max_message)
            .and_then(|len| codec::encode(message, len, &mut self.pending));
        self.encoding_from = None;
        encoded
    }

    /// Drops the partial message a panic inside `encode` may have left.
    pub(crate) fn discard_partial(&mut self) {
        if let Some(from) = self.encoding_from.take() {
            self.pending.truncate(from);
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
                Poll::Pending => return Poll::Pending,
            }
        }
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

    /// Ends the call with `status`: a trailers-only response when nothing was sent yet
    /// and there is no message, otherwise the pending messages and the trailers. Never
    /// waits; see the module documentation for why that is bounded.
    pub(crate) fn finish(&mut self, status: &Status) {
        self.discard_partial();
        let only_trailers = self.pending.is_empty() && status.code() != crate::Code::Ok;
        if let (true, Phase::Headers(respond)) = (only_trailers, &mut self.phase) {
            let mut response = Response::new(());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, GRPC_CONTENT_TYPE);
            status.write_to(response.headers_mut());
            let _ = respond.send_response(response, true);
            self.phase = Phase::Done;
            return;
        }
        let pending = self.pending.split().freeze();
        if let Ok(stream) = self.body() {
            if !pending.is_empty() {
                let _ = stream.send_data(pending, false);
            }
            let mut trailers = HeaderMap::with_capacity(2);
            status.write_to(&mut trailers);
            let _ = stream.send_trailers(trailers);
        }
        self.phase = Phase::Done;
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
/// HTTP/2 flow control lets through.
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
    /// `RESOURCE_EXHAUSTED` when the message is over the send limit (nothing is sent, and
    /// the stream can go on), `CANCELLED` or `UNAVAILABLE` when the client is gone: the
    /// handler should then stop and return the error.
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
async fn yield_once() {
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
