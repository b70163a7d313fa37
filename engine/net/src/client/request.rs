//! The request side of a client call: messages framed into a buffer, moved into h2 only
//! as fast as the server's flow-control windows let them go.
//!
//! `SendStream::send_data` buffers without limit, so bytes move into h2 only under send
//! capacity (`reserve_capacity` + `poll_capacity`), as on the server's response side. A
//! streaming call waits while more than [`HIGH_WATER`] bytes are pending, so a stream of
//! any length holds at most that plus one message, whatever the server's pace.

use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use h2::SendStream;
use prost::Message;

use crate::codec::{self, OverLimit};
use crate::status::Status;

/// Pending request bytes above which a streaming call waits for the server.
pub(crate) const HIGH_WATER: usize = 64 * 1024;

/// Pending request bytes from which a streaming call moves them into h2 before taking
/// the next message. Below it, small messages gather into larger DATA frames.
pub(crate) const FLUSH_AT: usize = 16 * 1024;

/// Frames `message` behind the bytes in `out`.
///
/// # Errors
///
/// `RESOURCE_EXHAUSTED` when the message is over `max` bytes; nothing of it is in `out`
/// then.
pub(crate) fn frame<M: Message>(message: &M, max: usize, out: &mut BytesMut) -> Result<(), Status> {
    let len = codec::body_len(message, max).map_err(|OverLimit { len, max }| {
        Status::resource_exhausted(format!(
            "request message of {len} bytes exceeds the channel's limit of {max} bytes"
        ))
    })?;
    codec::encode(message, len, out)
}

/// The stream takes no more request bytes: the server reset it (often after it has
/// answered, when it wants no more of the request), or the connection is gone. The
/// response, when there is one, tells which.
#[derive(Debug)]
pub(crate) struct StreamClosed(pub(crate) Option<h2::Error>);

/// The request body of one call.
#[derive(Debug)]
pub(crate) struct RequestBody {
    stream: SendStream<Bytes>,
    pending: BytesMut,
    max_message: usize,
    /// END_STREAM was sent.
    ended: bool,
}

impl RequestBody {
    /// The body of a call whose first bytes, `pending`, are already framed.
    pub(crate) fn new(
        stream: SendStream<Bytes>,
        max_message: usize,
        pending: BytesMut,
    ) -> RequestBody {
        RequestBody {
            stream,
            pending,
            max_message,
            ended: false,
        }
    }

    /// Frames `message` behind the pending bytes (see [`frame`]).
    pub(crate) fn push<M: Message>(&mut self, message: &M) -> Result<(), Status> {
        frame(message, self.max_message, &mut self.pending)
    }

    /// Bytes framed and not yet handed to h2.
    pub(crate) fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Moves pending bytes into h2 as far as send capacity allows, and waits for more
    /// capacity while more than `keep` bytes are pending. With `end`, waits until every
    /// byte is handed over and ends the stream with the last of them.
    pub(crate) fn poll_send(
        &mut self,
        cx: &mut Context<'_>,
        keep: usize,
        end: bool,
    ) -> Poll<Result<(), StreamClosed>> {
        loop {
            if self.pending.is_empty() {
                if end && !self.ended {
                    self.ended = true;
                    self.stream
                        .send_data(Bytes::new(), true)
                        .map_err(|error| StreamClosed(Some(error)))?;
                }
                return Poll::Ready(Ok(()));
            }
            self.stream.reserve_capacity(self.pending.len());
            let capacity = self.stream.capacity();
            if capacity > 0 {
                let chunk = self
                    .pending
                    .split_to(capacity.min(self.pending.len()))
                    .freeze();
                let last = end && self.pending.is_empty();
                self.ended |= last;
                self.stream
                    .send_data(chunk, last)
                    .map_err(|error| StreamClosed(Some(error)))?;
                continue;
            }
            if !end && self.pending.len() <= keep {
                return Poll::Ready(Ok(()));
            }
            match ready!(self.stream.poll_capacity(cx)) {
                Some(Ok(_)) => {}
                Some(Err(error)) => return Poll::Ready(Err(StreamClosed(Some(error)))),
                None => return Poll::Ready(Err(StreamClosed(None))),
            }
        }
    }
}
