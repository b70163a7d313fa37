//! gRPC message framing over the DATA frames of one HTTP/2 stream.
//!
//! ```text
//! ┌──────────────┬──────────────────────────┬──────────────────────┐
//! │ compressed   │ length                   │ message              │
//! │ 1 byte (0/1) │ 4 bytes, big-endian u32  │ `length` bytes       │
//! └──────────────┴──────────────────────────┴──────────────────────┘
//! ```
//!
//! A message may span several DATA frames and a DATA frame may hold several messages.
//! The decoder hands out a message without copying when it lies inside one frame, and
//! assembles it otherwise. It checks the length against the receive limit as soon as the
//! 5-byte prefix is in, before any of the body is buffered, and stops at the prefix of a
//! large message until its owner admits it (the server charges it against the budget of
//! buffered bytes first). An assembled body grows with the bytes that arrive, never with
//! the length announced.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

use crate::status::Status;

/// Length of the prefix in front of every message.
pub(crate) const PREFIX_LEN: usize = 5;

/// Why the bytes of a request body are not a valid sequence of gRPC messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FrameError {
    /// The length prefix announces a message over the receive limit.
    #[error("request message of {len} bytes exceeds the server's limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: usize,
        /// Configured limit.
        max: usize,
    },
    /// The compressed flag is set, but this server accepts no compression.
    #[error("a request message is marked compressed, but the call negotiated no compression")]
    Compressed,
    /// The first byte of a prefix is neither 0 nor 1.
    #[error("invalid compressed flag {flag} in a message prefix")]
    InvalidFlag {
        /// The byte found.
        flag: u8,
    },
    /// The body ended in the middle of a message.
    #[error("the request body ended inside a message ({buffered} of {expected} bytes)")]
    Truncated {
        /// Bytes of the message (prefix included) received.
        buffered: usize,
        /// Bytes the message needs (prefix included).
        expected: usize,
    },
}

impl From<FrameError> for Status {
    fn from(error: FrameError) -> Status {
        match error {
            FrameError::TooLarge { .. } => Status::resource_exhausted(error.to_string()),
            FrameError::Compressed | FrameError::InvalidFlag { .. } => {
                Status::internal(error.to_string())
            }
            FrameError::Truncated { .. } => Status::internal(error.to_string()),
        }
    }
}

/// The body length of a response message that passed the send limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BodyLen {
    len: usize,
    wire: u32,
}

impl BodyLen {
    /// The message's length once framed: prefix and body.
    pub(crate) fn framed(self) -> usize {
        PREFIX_LEN + self.len
    }
}

/// A message over a size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OverLimit {
    /// The message's body length.
    pub(crate) len: usize,
    /// The limit.
    pub(crate) max: usize,
}

/// The body length of `message`, refusing messages over `max` bytes or over what the
/// 32-bit prefix can carry.
pub(crate) fn body_len<M: Message>(message: &M, max: usize) -> Result<BodyLen, OverLimit> {
    let len = message.encoded_len();
    u32::try_from(len)
        .ok()
        .filter(|_| len <= max)
        .map(|wire| BodyLen { len, wire })
        .ok_or(OverLimit { len, max })
}

/// The body length of a response message, refusing messages over the server's send
/// limit `max` with `RESOURCE_EXHAUSTED`.
pub(crate) fn checked_len<M: Message>(message: &M, max: usize) -> Result<BodyLen, Status> {
    body_len(message, max).map_err(|OverLimit { len, max }| {
        Status::resource_exhausted(format!(
            "response message of {len} bytes exceeds the server's limit of {max} bytes"
        ))
    })
}

/// Appends `message`, whose body length [`body_len`] gave, with its prefix to `out`.
pub(crate) fn encode<M: Message>(
    message: &M,
    len: BodyLen,
    out: &mut BytesMut,
) -> Result<(), Status> {
    out.reserve(len.framed());
    out.put_u8(0);
    out.put_u32(len.wire);
    message
        .encode(out)
        .map_err(|error| Status::internal(format!("a message could not be encoded: {error}")))
}

/// Where the decoder is inside the current message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The prefix; `prefix[..prefix_len]` holds the bytes received so far.
    Prefix,
    /// A prefix announced a body of this many bytes, over the reporting threshold:
    /// nothing of it is decoded until [`FrameDecoder::admit`].
    Announced(usize),
    /// A body of this many bytes; `body` holds the bytes received so far.
    Body(usize),
}

/// What [`FrameDecoder::decode`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// A whole message body.
    Message(Bytes),
    /// A prefix announcing a body of this many bytes, over the threshold the decoder
    /// was made with. The same announcement is reported until [`FrameDecoder::admit`]
    /// is called; the chunk is left as it is.
    Announced(usize),
    /// More bytes are needed: the chunk is empty, whatever it held is buffered here.
    More,
}

/// Splits the DATA frames of a body into message bodies: a request's on the server, a
/// response's on a client channel. Its errors speak of requests; a client words them
/// itself.
///
/// Memory follows the bytes received, not the lengths announced: a body assembled from
/// several chunks grows by doubling, capped at its announced length, so a prefix
/// announcing a large message costs nothing until its bytes arrive.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    max: usize,
    report_above: usize,
    expect: Expect,
    prefix: [u8; PREFIX_LEN],
    prefix_len: usize,
    body: Vec<u8>,
}

impl FrameDecoder {
    /// A decoder refusing messages over `max` bytes, and reporting prefixes that
    /// announce more than `report_above` bytes ([`Decoded::Announced`]).
    pub(crate) fn new(max: usize, report_above: usize) -> FrameDecoder {
        FrameDecoder {
            max,
            report_above,
            expect: Expect::Prefix,
            prefix: [0; PREFIX_LEN],
            prefix_len: 0,
            body: Vec::new(),
        }
    }

    /// Takes the next whole message body out of `chunk`, together with what was buffered
    /// from earlier chunks, or reports a large message's announcement.
    pub(crate) fn decode(&mut self, chunk: &mut Bytes) -> Result<Decoded, FrameError> {
        loop {
            match self.expect {
                Expect::Prefix => {
                    let prefix = if self.prefix_len == 0 && chunk.len() >= PREFIX_LEN {
                        let mut prefix = [0; PREFIX_LEN];
                        chunk.copy_to_slice(&mut prefix);
                        prefix
                    } else {
                        let take = (PREFIX_LEN - self.prefix_len).min(chunk.len());
                        let end = self.prefix_len + take;
                        chunk.copy_to_slice(&mut self.prefix[self.prefix_len..end]);
                        self.prefix_len = end;
                        if end < PREFIX_LEN {
                            return Ok(Decoded::More);
                        }
                        self.prefix_len = 0;
                        self.prefix
                    };
                    let [flag, length @ ..] = prefix;
                    match flag {
                        0 => {}
                        1 => return Err(FrameError::Compressed),
                        flag => return Err(FrameError::InvalidFlag { flag }),
                    }
                    let len = usize::try_from(u32::from_be_bytes(length)).unwrap_or(usize::MAX);
                    if len > self.max {
                        return Err(FrameError::TooLarge { len, max: self.max });
                    }
                    self.expect = if len > self.report_above {
                        Expect::Announced(len)
                    } else {
                        Expect::Body(len)
                    };
                }
                Expect::Announced(len) => return Ok(Decoded::Announced(len)),
                Expect::Body(len) => {
                    if self.body.is_empty() && chunk.len() >= len {
                        self.expect = Expect::Prefix;
                        return Ok(Decoded::Message(chunk.split_to(len)));
                    }
                    let take = (len - self.body.len()).min(chunk.len());
                    self.make_room(len, take);
                    self.body.extend_from_slice(&chunk.split_to(take));
                    if self.body.len() < len {
                        return Ok(Decoded::More);
                    }
                    self.expect = Expect::Prefix;
                    return Ok(Decoded::Message(Bytes::from(std::mem::take(
                        &mut self.body,
                    ))));
                }
            }
        }
    }

    /// Lets the announced message be decoded; does nothing in any other state.
    pub(crate) fn admit(&mut self) {
        if let Expect::Announced(len) = self.expect {
            self.expect = Expect::Body(len);
        }
    }

    /// Makes room for `take` more bytes of a body of `len`: at least doubling the
    /// capacity, so a large body is copied a bounded number of times, but never past
    /// `len`, so the last growth fits it exactly.
    fn make_room(&mut self, len: usize, take: usize) {
        let needed = self.body.len() + take;
        if needed > self.body.capacity() {
            let target = needed.max(self.body.capacity() * 2).min(len);
            self.body.reserve_exact(target - self.body.len());
        }
    }

    /// Checks that the body may end here: no message is half received.
    pub(crate) fn finish(&self) -> Result<(), FrameError> {
        match self.expect {
            Expect::Prefix if self.prefix_len == 0 => Ok(()),
            Expect::Prefix => Err(FrameError::Truncated {
                buffered: self.prefix_len,
                expected: PREFIX_LEN,
            }),
            Expect::Announced(len) => Err(FrameError::Truncated {
                buffered: PREFIX_LEN,
                expected: PREFIX_LEN + len,
            }),
            Expect::Body(len) => Err(FrameError::Truncated {
                buffered: PREFIX_LEN + self.body.len(),
                expected: PREFIX_LEN + len,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(bodies: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for body in bodies {
            out.push(0);
            out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
            out.extend_from_slice(body);
        }
        out
    }

    /// Feeds `wire` in chunks of `step` bytes and collects every message, admitting
    /// every announcement of more than `report_above` bytes.
    fn decode_all(
        wire: &[u8],
        step: usize,
        max: usize,
        report_above: usize,
    ) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut decoder = FrameDecoder::new(max, report_above);
        let mut out = Vec::new();
        for piece in wire.chunks(step) {
            let mut chunk = Bytes::copy_from_slice(piece);
            loop {
                match decoder.decode(&mut chunk)? {
                    Decoded::Message(message) => out.push(message.to_vec()),
                    Decoded::Announced(len) => {
                        assert!(len > report_above);
                        decoder.admit();
                    }
                    Decoded::More => break,
                }
            }
            assert!(
                chunk.is_empty(),
                "a chunk is consumed whole once more bytes are needed"
            );
        }
        decoder.finish()?;
        Ok(out)
    }

    #[test]
    fn messages_split_anywhere_across_chunks_decode_the_same() {
        let big = vec![7u8; 1000];
        let bodies: [&[u8]; 5] = [b"", b"a", b"hello world", &big, b""];
        let wire = framed(&bodies);
        let expected: Vec<Vec<u8>> = bodies.iter().map(|b| b.to_vec()).collect();
        for step in [1, 2, 4, 5, 6, 7, 13, 100, 1005, wire.len()] {
            for report_above in [0, 10, usize::MAX] {
                assert_eq!(
                    decode_all(&wire, step, 4096, report_above).unwrap(),
                    expected,
                    "step {step}, reporting above {report_above}"
                );
            }
        }
    }

    #[test]
    fn a_whole_message_inside_one_chunk_is_not_copied() {
        let wire = Bytes::from(framed(&[b"abc", b"defg"]));
        let mut chunk = wire.clone();
        let mut decoder = FrameDecoder::new(16, usize::MAX);
        let Decoded::Message(first) = decoder.decode(&mut chunk).unwrap() else {
            panic!("expected a message");
        };
        assert_eq!(first, &b"abc"[..]);
        assert_eq!(first.as_ptr(), wire[PREFIX_LEN..].as_ptr());
        assert_eq!(
            decoder.decode(&mut chunk).unwrap(),
            Decoded::Message(Bytes::from_static(b"defg"))
        );
        assert_eq!(decoder.decode(&mut chunk).unwrap(), Decoded::More);
    }

    #[test]
    fn oversized_messages_are_refused_from_the_prefix_alone() {
        let mut wire = vec![0];
        wire.extend_from_slice(&4097u32.to_be_bytes());
        let mut chunk = Bytes::from(wire);
        let error = FrameDecoder::new(4096, usize::MAX)
            .decode(&mut chunk)
            .unwrap_err();
        assert_eq!(
            error,
            FrameError::TooLarge {
                len: 4097,
                max: 4096
            }
        );
        assert_eq!(Status::from(error).code(), crate::Code::ResourceExhausted);
    }

    #[test]
    fn large_announcements_wait_for_admission_and_cost_only_what_arrived() {
        const ANNOUNCED: usize = 60 << 20;
        let mut wire = vec![0];
        wire.extend_from_slice(&u32::try_from(ANNOUNCED).unwrap().to_be_bytes());
        wire.extend_from_slice(&[7; 10]);
        let mut chunk = Bytes::from(wire);
        let mut decoder = FrameDecoder::new(64 << 20, 1024);
        for _ in 0..2 {
            assert_eq!(
                decoder.decode(&mut chunk).unwrap(),
                Decoded::Announced(ANNOUNCED)
            );
            assert_eq!(chunk.len(), 10, "nothing of the body is taken before admit");
        }
        decoder.admit();
        assert_eq!(decoder.decode(&mut chunk).unwrap(), Decoded::More);
        assert!(
            decoder.body.capacity() < 1024,
            "{} bytes reserved for 10 received",
            decoder.body.capacity()
        );
    }

    #[test]
    fn an_assembled_body_never_reserves_past_its_length() {
        let body: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let wire = framed(&[&body]);
        let mut decoder = FrameDecoder::new(1 << 20, usize::MAX);
        let mut pieces = wire.chunks(7_000);
        let message = loop {
            let mut chunk = Bytes::copy_from_slice(pieces.next().unwrap());
            if let Decoded::Message(message) = decoder.decode(&mut chunk).unwrap() {
                break message;
            }
            assert!(decoder.body.capacity() <= body.len());
        };
        assert_eq!(message, body);
    }

    #[test]
    fn compressed_and_invalid_flags_are_refused() {
        let mut chunk = Bytes::from_static(&[1, 0, 0, 0, 1, 9]);
        assert_eq!(
            FrameDecoder::new(16, usize::MAX).decode(&mut chunk),
            Err(FrameError::Compressed)
        );
        let mut chunk = Bytes::from_static(&[2, 0, 0, 0, 1, 9]);
        assert_eq!(
            FrameDecoder::new(16, usize::MAX).decode(&mut chunk),
            Err(FrameError::InvalidFlag { flag: 2 })
        );
    }

    #[test]
    fn a_body_ending_inside_a_message_is_truncated() {
        let wire = framed(&[b"abcdef"]);
        let error = decode_all(&wire[..8], 3, 16, usize::MAX).unwrap_err();
        assert_eq!(
            error,
            FrameError::Truncated {
                buffered: 8,
                expected: 11
            }
        );
        let error = decode_all(&wire[..3], 3, 16, usize::MAX).unwrap_err();
        assert_eq!(
            error,
            FrameError::Truncated {
                buffered: 3,
                expected: 5
            }
        );
    }

    #[test]
    fn encode_writes_the_prefix_and_enforces_the_send_limit() {
        let message = String::from("vectron");
        let mut out = BytesMut::new();
        let len = checked_len(&message, 64).unwrap();
        assert_eq!(len.framed(), PREFIX_LEN + 9);
        encode(&message, len, &mut out).unwrap();
        assert_eq!(&out[..PREFIX_LEN], &[0, 0, 0, 0, 9]);
        let mut chunk = out.freeze();
        let decoded = FrameDecoder::new(64, usize::MAX).decode(&mut chunk);
        let Ok(Decoded::Message(body)) = decoded else {
            panic!("expected a message: {decoded:?}");
        };
        assert_eq!(String::decode(body).unwrap(), "vectron");

        let status = checked_len(&"x".repeat(100), 64).unwrap_err();
        assert_eq!(status.code(), crate::Code::ResourceExhausted);
    }
}
