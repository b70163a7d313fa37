//! The request side of a call: the h2 body, decoded into messages, with flow control.
//!
//! Three rules hold here. Flow-control capacity is released as soon as a DATA frame is
//! taken from h2, and no further frame is taken until the decoder needs one, so what a
//! call buffers is bounded by one message plus one frame. A message over
//! [`SMALL_MESSAGE`] is charged its announced length against the server's budget of
//! buffered bytes as soon as its prefix is in, before any of its body is taken; one that
//! does not fit ends the call with `RESOURCE_EXHAUSTED`, so what all calls buffer
//! together is bounded by `max_buffered_bytes` plus one small message and one frame per
//! call (h2 itself holds up to a connection window of unread DATA per connection). The
//! charge is held until the next message of the stream starts, or the call ends. And
//! the body is read to END_STREAM before a call is finished whenever the client sends it
//! promptly (see [`Inbound::poll_drain`]), because a stream dropped half-read makes h2
//! reset it, and a connection on which too many streams were reset by the library is
//! torn down by h2 (`GOAWAY ENHANCE_YOUR_CALM`, `too_many_internal_resets`).

use std::cell::RefCell;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::rc::Rc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use h2::RecvStream;
use prost::Message;

use crate::admission::{Budget, Charge, SMALL_MESSAGE, Side};
use crate::codec::{Decoded, FrameDecoder};
use crate::status::Status;

/// Messages handed out in a row without the body being pending, before the call yields
/// to the other tasks of the core.
const YIELD_EVERY: u32 = 64;

/// The body of one request, decoded into message bodies.
#[derive(Debug)]
pub(crate) struct Inbound {
    body: RecvStream,
    decoder: FrameDecoder,
    /// The rest of the last DATA frame taken from h2.
    chunk: Bytes,
    /// What the last large message holds against the budget.
    charge: Charge,
    /// The message being decoded is the one `charge` is for.
    charged: bool,
    ended: bool,
    ready_in_a_row: u32,
}

impl Inbound {
    pub(crate) fn new(body: RecvStream, max_message: usize, budget: &Budget) -> Inbound {
        Inbound {
            body,
            decoder: FrameDecoder::new(max_message, SMALL_MESSAGE),
            chunk: Bytes::new(),
            charge: budget.charge(),
            charged: false,
            ended: false,
            ready_in_a_row: 0,
        }
    }

    /// The next message body, `None` at the end of the stream.
    pub(crate) fn poll_message(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<Bytes>, Status>> {
        loop {
            if self.ready_in_a_row >= YIELD_EVERY {
                self.ready_in_a_row = 0;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            match self.decoder.decode(&mut self.chunk)? {
                Decoded::Message(message) => {
                    if !std::mem::take(&mut self.charged) {
                        // A small message followed a large one: that one is done with.
                        self.charge.set(0);
                    }
                    self.ready_in_a_row += 1;
                    return Poll::Ready(Ok(Some(message)));
                }
                Decoded::Announced(len) => {
                    self.charge.set(0);
                    self.charge.try_grow(len, Side::Request)?;
                    self.charged = true;
                    self.decoder.admit();
                    continue;
                }
                Decoded::More => {}
            }
            if self.ended {
                self.decoder.finish()?;
                return Poll::Ready(Ok(None));
            }
            match self.body.poll_data(cx) {
                Poll::Ready(Some(Ok(data))) => {
                    // Cannot fail for a stream that is still open; a closed one reports
                    // its error on the next poll.
                    let _ = self.body.flow_control().release_capacity(data.len());
                    self.chunk = data;
                }
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(stream_status(&error))),
                Poll::Ready(None) => self.ended = true,
                Poll::Pending => {
                    self.ready_in_a_row = 0;
                    return Poll::Pending;
                }
            }
        }
    }

    /// Whether the client has ended its side of the stream and every byte was read.
    pub(crate) fn is_ended(&self) -> bool {
        self.ended
    }

    /// Reads and discards the rest of the body, up to `budget` more bytes. Ready with
    /// `true` at END_STREAM, `false` when the budget ran out or the stream failed: the
    /// caller then drops the body and h2 resets the stream with `NO_ERROR`, which is how
    /// HTTP/2 lets a server that has answered stop a client that is still sending.
    pub(crate) fn poll_drain(&mut self, cx: &mut Context<'_>, budget: &mut usize) -> Poll<bool> {
        self.chunk.clear();
        self.charge.set(0);
        while !self.ended {
            match ready!(self.body.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.body.flow_control().release_capacity(data.len());
                    match budget.checked_sub(data.len()) {
                        Some(left) => *budget = left,
                        None => return Poll::Ready(false),
                    }
                }
                Some(Err(_)) => return Poll::Ready(false),
                None => self.ended = true,
            }
        }
        Poll::Ready(true)
    }
}

/// The status for an h2 error on a stream: the client went away or reset the stream.
pub(crate) fn stream_status(error: &h2::Error) -> Status {
    if error.reason() == Some(h2::Reason::CANCEL) {
        Status::cancelled("the client cancelled the call")
    } else {
        Status::unavailable(format!("the stream failed: {error}"))
    }
}

/// Decodes one message body as `T`.
pub(crate) fn decode<T: Message + Default>(body: Bytes) -> Result<T, Status> {
    T::decode(body).map_err(|error| {
        Status::internal(format!("the request message could not be decoded: {error}"))
    })
}

/// Reads the single request message of a unary or server-streaming call, to END_STREAM.
pub(crate) async fn read_single<T: Message + Default>(
    inbound: &RefCell<Inbound>,
) -> Result<T, Status> {
    let next = || poll_fn(|cx| inbound.borrow_mut().poll_message(cx));
    let message = next()
        .await?
        .ok_or_else(|| Status::internal("the call carried no request message"))?;
    if next().await?.is_some() {
        return Err(Status::internal(
            "a unary call carried more than one request message",
        ));
    }
    decode(message)
}

/// The request messages of a client-streaming call, in order.
///
/// Reading stops at the first error; the server drains what the client still sends after
/// the handler returns. Dropping the stream early is fine: the client gets the
/// handler's answer and is then asked to stop sending.
#[derive(Debug)]
pub struct RequestStream<T> {
    inbound: Rc<RefCell<Inbound>>,
    done: bool,
    _message: PhantomData<fn() -> T>,
}

impl<T: Message + Default> RequestStream<T> {
    pub(crate) fn new(inbound: Rc<RefCell<Inbound>>) -> RequestStream<T> {
        RequestStream {
            inbound,
            done: false,
            _message: PhantomData,
        }
    }

    /// The next message, or `None` once the client has closed the stream.
    ///
    /// # Errors
    ///
    /// `RESOURCE_EXHAUSTED` for a message over the receive limit or one that does not
    /// fit the server's budget of buffered bytes (with a `retry-after` trailer when
    /// retrying may succeed: return the error as it is), `INTERNAL` for bytes that are
    /// not a valid message, `CANCELLED` when the client cancels the call.
    pub async fn message(&mut self) -> Result<Option<T>, Status> {
        if self.done {
            return Ok(None);
        }
        let next = poll_fn(|cx| self.inbound.borrow_mut().poll_message(cx)).await;
        match next {
            Ok(Some(body)) => decode(body).map(Some),
            Ok(None) => {
                self.done = true;
                Ok(None)
            }
            Err(status) => {
                self.done = true;
                Err(status)
            }
        }
    }
}
