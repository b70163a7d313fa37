//! A bare HTTP/2 client written frame by frame, for what client libraries never do: keep
//! sending on a stream the server has already answered, regardless of resets.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::PREFACE;

const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// What ended a wait for frames, other than the frames waited for.
#[derive(Debug)]
pub enum FrameError {
    /// The server sent GOAWAY with this error code (`0xb` is ENHANCE_YOUR_CALM).
    GoAway { error_code: u32, debug: String },
    /// The connection closed.
    Io(std::io::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::GoAway { error_code, debug } => {
                write!(f, "GOAWAY with error code {error_code:#x} ({debug})")
            }
            FrameError::Io(error) => write!(f, "connection failed: {error}"),
        }
    }
}

pub struct RawConnection {
    stream: TcpStream,
}

fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len[1..]);
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK header block of literal fields without indexing, no Huffman coding.
fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.push(0x00);
        for string in [name, value] {
            assert!(string.len() < 127, "single-byte HPACK lengths only");
            out.push(u8::try_from(string.len()).unwrap());
            out.extend_from_slice(string.as_bytes());
        }
    }
    out
}

impl RawConnection {
    /// Connects and sends the client preface with empty SETTINGS.
    pub async fn connect(addr: std::net::SocketAddr) -> RawConnection {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(PREFACE).await.unwrap();
        RawConnection { stream }
    }

    /// Opens stream `id` with a gRPC request to `path` and one DATA frame carrying `body`,
    /// leaving the client side of the stream open.
    pub async fn open_call(&mut self, id: u32, path: &str, body: &[u8]) {
        let block = header_block(&[
            (":method", "POST"),
            (":scheme", "http"),
            (":path", path),
            (":authority", "core"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]);
        let mut bytes = frame(HEADERS, END_HEADERS, id, &block);
        bytes.extend(frame(DATA, 0, id, body));
        self.stream.write_all(&bytes).await.unwrap();
    }

    /// Ends the client side of stream `id` with an empty DATA frame.
    pub async fn end_stream(&mut self, id: u32) {
        self.stream
            .write_all(&frame(DATA, END_STREAM, id, &[]))
            .await
            .unwrap();
    }

    /// Reads frames until the server has ended every stream in `ids` (a HEADERS or DATA
    /// frame with END_STREAM), answering SETTINGS and PING on the way.
    pub async fn await_responses(&mut self, ids: &[u32]) -> Result<(), FrameError> {
        let mut open: std::collections::BTreeSet<u32> = ids.iter().copied().collect();
        while !open.is_empty() {
            let (kind, flags, id) = self.read_frame().await?;
            if matches!(kind, HEADERS | DATA) && flags & END_STREAM != 0 {
                open.remove(&id);
            }
        }
        Ok(())
    }

    /// Sends a PING and waits for its ACK: every frame sent before it was processed.
    pub async fn round_trip(&mut self) -> Result<(), FrameError> {
        let payload = *b"vectron!";
        self.stream
            .write_all(&frame(PING, 0, 0, &payload))
            .await
            .map_err(FrameError::Io)?;
        loop {
            let (kind, flags, _) = self.read_frame().await?;
            if kind == PING && flags & ACK != 0 {
                return Ok(());
            }
        }
    }

    /// Reads one frame, handling connection-level frames.
    async fn read_frame(&mut self) -> Result<(u8, u8, u32), FrameError> {
        let mut head = [0u8; 9];
        self.stream
            .read_exact(&mut head)
            .await
            .map_err(FrameError::Io)?;
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let (kind, flags) = (head[3], head[4]);
        let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        self.stream
            .read_exact(&mut payload)
            .await
            .map_err(FrameError::Io)?;
        match kind {
            SETTINGS if flags & ACK == 0 => {
                self.stream
                    .write_all(&frame(SETTINGS, ACK, 0, &[]))
                    .await
                    .map_err(FrameError::Io)?;
            }
            PING if flags & ACK == 0 => {
                self.stream
                    .write_all(&frame(PING, ACK, 0, &payload))
                    .await
                    .map_err(FrameError::Io)?;
            }
            GOAWAY => {
                let error_code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
                let debug = String::from_utf8_lossy(&payload[8..]).into_owned();
                return Err(FrameError::GoAway { error_code, debug });
            }
            _ => {}
        }
        Ok((kind, flags, id))
    }
}
