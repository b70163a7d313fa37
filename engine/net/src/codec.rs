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
//! 5-byte prefix is in, before any of the body is buffered.

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

/// Appends `message` with its prefix to `out`, refusing messages over `max` bytes.
pub(crate) fn encode<M: Message>(
    message: &M,
    max: usize,
    out: &mut BytesMut,
) -> Result<(), Status> {
    let len = message.encoded_len();
    let wire_len = u32::try_from(len)
        .ok()
        .filter(|_| len <= max)
        .ok_or_else(|| {
            Status::resource_exhausted(format!(
                "response message of {len} bytes exceeds the server's limit of {max} bytes"
            ))
        })?;
    out.reserve(PREFIX_LEN + len);
    out.put_u8(0);
    out.put_u32(wire_len);
    message.encode(out).map_err(|error| {
        Status::internal(format!("response message could not be encoded: {error}"))
    })
}

/// Where the decoder is inside the current message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The prefix; `partial` holds the prefix bytes received so far.
    Prefix,
    /// A body of this many bytes; `partial` holds the body bytes received so far.
    Body(usize),
}

/// Splits the DATA frames of a request body into message bodies.
#[derive(Debug)]
pub(crate) struct FrameDecoder {
    max: usize,
    expect: Expect,
    partial: BytesMut,
}

impl FrameDecoder {
    /// A decoder refusing messages over `max` bytes.
    pub(crate) fn new(max: usize) -> FrameDecoder {
        FrameDecoder {
            max,
            expect: Expect::Prefix,
            partial: BytesMut::new(),
        }
    }

    /// Takes the next whole message body out of `chunk`, together with what was buffered
    /// from earlier chunks. `None` means more bytes are needed, and `chunk` is then empty:
    /// whatever it held is buffered here.
    pub(crate) fn decode(&mut self, chunk: &mut Bytes) -> Result<Option<Bytes>, FrameError> {
        loop {
            match self.expect {
                Expect::Prefix => {
                    let prefix: [u8; PREFIX_LEN] =
                        if self.partial.is_empty() && chunk.len() >= PREFIX_LEN {
                            let mut prefix = [0; PREFIX_LEN];
                            chunk.copy_to_slice(&mut prefix);
                            prefix
                        } else {
                            let take = (PREFIX_LEN - self.partial.len()).min(chunk.len());
                            self.partial.extend_from_slice(&chunk.split_to(take));
                            match <[u8; PREFIX_LEN]>::try_from(&self.partial[..]) {
                                Ok(prefix) => {
                                    self.partial.clear();
                                    prefix
                                }
                                Err(_) => return Ok(None),
                            }
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
                    self.expect = Expect::Body(len);
                }
                Expect::Body(len) => {
                    if self.partial.is_empty() && chunk.len() >= len {
                        self.expect = Expect::Prefix;
                        return Ok(Some(chunk.split_to(len)));
                    }
                    if self.partial.is_empty() {
                        self.partial.reserve(len);
                    }
                    let take = (len - self.partial.len()).min(chunk.len());
                    self.partial.extend_from_slice(&chunk.split_to(take));
                    if self.partial.len() < len {
                        return Ok(None);
                    }
                    self.expect = Expect::Prefix;
                    return Ok(Some(self.partial.split().freeze()));
                }
            }
        }
    }

    /// Checks that the body may end here: no message is half received.
    pub(crate) fn finish(&self) -> Result<(), FrameError> {
        match self.expect {
            Expect::Prefix if self.partial.is_empty() => Ok(()),
            Expect::Prefix => Err(FrameError::Truncated {
                buffered: self.partial.len(),
                expected: PREFIX_LEN,
            }),
            Expect::Body(len) => Err(FrameError::Truncated {
                buffered: PREFIX_LEN + self.partial.len(),
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

    /// Feeds `wire` in chunks of `step` bytes and collects every message.
    fn decode_all(wire: &[u8], step: usize, max: usize) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut decoder = FrameDecoder::new(max);
        let mut out = Vec::new();
        for piece in wire.chunks(step) {
            let mut chunk = Bytes::copy_from_slice(piece);
            while let Some(message) = decoder.decode(&mut chunk)? {
                out.push(message.to_vec());
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
            assert_eq!(
                decode_all(&wire, step, 4096).unwrap(),
                expected,
                "step {step}"
            );
        }
    }

    #[test]
    fn a_whole_message_inside_one_chunk_is_not_copied() {
        let wire = Bytes::from(framed(&[b"abc", b"defg"]));
        let mut chunk = wire.clone();
        let mut decoder = FrameDecoder::new(16);
        let first = decoder.decode(&mut chunk).unwrap().unwrap();
        assert_eq!(first, &b"abc"[..]);
        assert_eq!(first.as_ptr(), wire[PREFIX_LEN..].as_ptr());
        assert_eq!(decoder.decode(&mut chunk).unwrap().unwrap(), &b"defg"[..]);
        assert_eq!(decoder.decode(&mut chunk).unwrap(), None);
    }

    #[test]
    fn oversized_messages_are_refused_from_the_prefix_alone() {
        let mut wire = vec![0];
        wire.extend_from_slice(&4097u32.to_be_bytes());
        let mut chunk = Bytes::from(wire);
        let error = FrameDecoder::new(4096).decode(&mut chunk).unwrap_err();
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
    fn compressed_and_invalid_flags_are_refused() {
        let mut chunk = Bytes::from_static(&[1, 0, 0, 0, 1, 9]);
        assert_eq!(
            FrameDecoder::new(16).decode(&mut chunk),
            Err(FrameError::Compressed)
        );
        let mut chunk = Bytes::from_static(&[2, 0, 0, 0, 1, 9]);
        assert_eq!(
            FrameDecoder::new(16).decode(&mut chunk),
            Err(FrameError::InvalidFlag { flag: 2 })
        );
    }

    #[test]
    fn a_body_ending_inside_a_message_is_truncated() {
        let wire = framed(&[b"abcdef"]);
        let error = decode_all(&wire[..8], 3, 16).unwrap_err();
        assert_eq!(
            error,
            FrameError::Truncated {
                buffered: 8,
                expected: 11
            }
        );
        let error = decode_all(&wire[..3], 3, 16).unwrap_err();
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
        encode(&message, 64, &mut out).unwrap();
        assert_eq!(&out[..PREFIX_LEN], &[0, 0, 0, 0, 9]);
        let mut chunk = out.freeze();
        let body = FrameDecoder::new(64).decode(&mut chunk).unwrap().unwrap();
        assert_eq!(String::decode(body).unwrap(), "vectron");

        let mut out = BytesMut::new();
        let status = encode(&"x".repeat(100), 64, &mut out).unwrap_err();
        assert_eq!(status.code(), crate::Code::ResourceExhausted);
        assert!(out.is_empty());
    }
}
