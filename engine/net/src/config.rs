//! Settings of the server (one core port) and of the client channels a core opens to
//! its peers, with defaults for a data core, and their validation.

use std::time::Duration;

/// HTTP/2 forbids a SETTINGS_MAX_FRAME_SIZE below this (RFC 9113 §6.5.2).
const MIN_FRAME_SIZE: u32 = 16 * 1024;
/// … and above this.
const MAX_FRAME_SIZE: u32 = (1 << 24) - 1;
/// The largest HTTP/2 flow-control window.
const MAX_WINDOW_SIZE: u32 = (1 << 31) - 1;

/// How a connection's end watches for a dead peer: the server on its accepted
/// connections, a client channel on its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Time between two PINGs on a connection.
    pub interval: Duration,
    /// How long a PING may stay unanswered before the connection is closed.
    pub timeout: Duration,
}

/// Settings of one gRPC server (one core port).
///
/// The defaults suit a data core behind a gateway: few long-lived connections with many
/// concurrent streams, 4 MiB requests, 16 MiB responses, at most 4,096 calls and 256 MiB
/// of buffered messages at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Largest request message accepted, in bytes; larger ones are refused with
    /// `RESOURCE_EXHAUSTED` before their body is buffered. Default 4 MiB.
    pub max_recv_message_size: usize,
    /// Largest response message sent, in bytes; a larger one ends the call with
    /// `RESOURCE_EXHAUSTED`. Default 16 MiB.
    pub max_send_message_size: usize,
    /// HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS: calls one connection may have open at
    /// once. Default 1024.
    pub max_concurrent_streams: u32,
    /// HTTP/2 initial flow-control window of each stream, in bytes. Default 1 MiB.
    pub initial_stream_window_size: u32,
    /// HTTP/2 flow-control window of each connection, in bytes. Default 4 MiB.
    pub initial_connection_window_size: u32,
    /// HTTP/2 SETTINGS_MAX_FRAME_SIZE: the largest frame the client may send, 16 KiB to
    /// 16 MiB - 1. Default 64 KiB.
    pub max_frame_size: u32,
    /// HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE: bound on the request headers, in bytes.
    /// Default 16 KiB.
    pub max_header_list_size: u32,
    /// Connections served at once; further ones are closed as soon as they are
    /// accepted. Default 1024.
    pub max_connections: usize,
    /// PING-based liveness check, or `None` for none. Default: a PING every 30 s,
    /// answered within 10 s.
    pub keepalive: Option<Keepalive>,
    /// How long a new connection may take to send the HTTP/2 preface. Default 10 s.
    pub handshake_timeout: Duration,
    /// On shutdown, how long in-flight calls may run after GOAWAY before their
    /// connections are closed. Default 10 s.
    pub shutdown_grace: Duration,
    /// Set TCP_NODELAY on accepted sockets (small responses leave at once). Default on.
    pub tcp_nodelay: bool,
    /// Calls in flight on this server, across all its connections. A call beyond it is
    /// answered at once, before its request is read, with `RESOURCE_EXHAUSTED` and a
    /// `retry-after` entry; it is never queued. Default 4096.
    pub max_calls: usize,
    /// Bytes of messages the server holds for its calls, across all of them: request
    /// messages over 64 KiB being received or held (charged their announced length as
    /// soon as their prefix arrives), plus response bytes waiting for the client's
    /// flow-control window. A request or response message over 64 KiB that does not fit
    /// ends its call with `RESOURCE_EXHAUSTED`; smaller messages are always let through,
    /// so small calls keep flowing while large ones are refused. Default 256 MiB.
    pub max_buffered_bytes: usize,
    /// A connection with no call in flight for this long is closed gracefully (GOAWAY),
    /// even when its peer answers keepalive PINGs, so idle peers do not hold
    /// `max_connections` slots. `None` keeps idle connections open. Default 5 minutes.
    pub idle_timeout: Option<Duration>,
    /// How long response bytes may wait for the client's flow-control window without any
    /// of them moving; past it the stream is reset and the bytes are dropped. The call's
    /// deadline, when it has one, bounds the wait too. Default 30 s.
    pub send_timeout: Duration,
    /// What refusals for `max_calls` or `max_buffered_bytes` tell the client to wait
    /// before it retries: the `retry-after` trailer, in whole seconds, at least 1.
    /// Default 1 s.
    pub retry_after: Duration,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            max_recv_message_size: 4 << 20,
            max_send_message_size: 16 << 20,
            max_concurrent_streams: 1024,
            initial_stream_window_size: 1 << 20,
            initial_connection_window_size: 4 << 20,
            max_frame_size: 64 << 10,
            max_header_list_size: 16 << 10,
            max_connections: 1024,
            keepalive: Some(Keepalive {
                interval: Duration::from_secs(30),
                timeout: Duration::from_secs(10),
            }),
            handshake_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(10),
            tcp_nodelay: true,
            max_calls: 4096,
            max_buffered_bytes: 256 << 20,
            idle_timeout: Some(Duration::from_secs(5 * 60)),
            send_timeout: Duration::from_secs(30),
            retry_after: Duration::from_secs(1),
        }
    }
}

/// A [`ServerConfig`] or [`ClientConfig`] value that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A size, count or duration that must be positive is zero.
    #[error("setting `{setting}` must be greater than zero")]
    Zero {
        /// The setting's field name.
        setting: &'static str,
    },
    /// A message size limit does not fit the 32-bit length of gRPC framing.
    #[error("setting `{setting}` is {got} bytes; gRPC framing allows at most {max}")]
    MessageSizeTooLarge {
        /// The setting's field name.
        setting: &'static str,
        /// The value given.
        got: usize,
        /// The largest allowed.
        max: usize,
    },
    /// `max_frame_size` is outside what HTTP/2 allows.
    #[error("max_frame_size is {got}; HTTP/2 allows {min} to {max}")]
    FrameSizeOutOfRange {
        /// The value given.
        got: u32,
        /// The smallest allowed.
        min: u32,
        /// The largest allowed.
        max: u32,
    },
    /// A flow-control window is larger than HTTP/2 allows.
    #[error("setting `{setting}` is {got}; HTTP/2 windows are at most {max}")]
    WindowTooLarge {
        /// The setting's field name.
        setting: &'static str,
        /// The value given.
        got: u32,
        /// The largest allowed.
        max: u32,
    },
}

impl ServerConfig {
    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_positive(&[
            ("max_recv_message_size", self.max_recv_message_size > 0),
            ("max_send_message_size", self.max_send_message_size > 0),
            ("max_concurrent_streams", self.max_concurrent_streams > 0),
            (
                "initial_stream_window_size",
                self.initial_stream_window_size > 0,
            ),
            (
                "initial_connection_window_size",
                self.initial_connection_window_size > 0,
            ),
            ("max_header_list_size", self.max_header_list_size > 0),
            ("max_connections", self.max_connections > 0),
            (
                "keepalive.interval",
                self.keepalive.is_none_or(|k| !k.interval.is_zero()),
            ),
            (
                "keepalive.timeout",
                self.keepalive.is_none_or(|k| !k.timeout.is_zero()),
            ),
            ("handshake_timeout", !self.handshake_timeout.is_zero()),
            ("max_calls", self.max_calls > 0),
            ("max_buffered_bytes", self.max_buffered_bytes > 0),
            (
                "idle_timeout",
                self.idle_timeout.is_none_or(|idle| !idle.is_zero()),
            ),
            ("send_timeout", !self.send_timeout.is_zero()),
            ("retry_after", !self.retry_after.is_zero()),
        ])?;
        check_message_size("max_recv_message_size", self.max_recv_message_size)?;
        check_message_size("max_send_message_size", self.max_send_message_size)?;
        check_frame_size(self.max_frame_size)?;
        check_window(
            "initial_stream_window_size",
            self.initial_stream_window_size,
        )?;
        check_window(
            "initial_connection_window_size",
            self.initial_connection_window_size,
        )
    }

    /// The h2 connection builder for these settings.
    pub(crate) fn h2_builder(&self) -> h2::server::Builder {
        let mut builder = h2::server::Builder::new();
        builder
            .max_concurrent_streams(self.max_concurrent_streams)
            .initial_window_size(self.initial_stream_window_size)
            .initial_connection_window_size(self.initial_connection_window_size)
            .max_frame_size(self.max_frame_size)
            .max_header_list_size(self.max_header_list_size);
        builder
    }
}

/// Settings of a client [`Channel`](crate::Channel): the one HTTP/2 connection a core
/// keeps to a peer.
///
/// The defaults suit calls between cores (Raft replication, snapshot transfer): a short
/// connect timeout, so that a peer that is down is reported at once instead of holding
/// up the caller; the server's keepalive; 64 MiB messages; and receive windows large
/// enough that a bulk answer is not held back by round trips.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientConfig {
    /// How long opening the TCP connection and sending the HTTP/2 preface may take;
    /// past it, the calls waiting for the connection fail with `UNAVAILABLE`. Default
    /// 1 s.
    pub connect_timeout: Duration,
    /// PING-based liveness check, or `None` for none: a connection whose PING stays
    /// unanswered for the timeout is dropped, its calls fail with `UNAVAILABLE`, and the
    /// next call reconnects. Default, as the server's: a PING every 30 s, answered
    /// within 10 s.
    pub keepalive: Option<Keepalive>,
    /// Largest message sent or received, in bytes. A request over it fails with
    /// `RESOURCE_EXHAUSTED` before any of it is sent; a response over it fails the call
    /// with `RESOURCE_EXHAUSTED` as soon as its length prefix arrives. Default 64 MiB.
    pub max_message_bytes: usize,
    /// Set TCP_NODELAY on the socket (small calls leave at once). Default on.
    pub tcp_nodelay: bool,
    /// HTTP/2 initial flow-control window of each stream: response bytes the server may
    /// send before the client has read them. Default 4 MiB. (How fast requests go out
    /// is set by the server's windows.)
    pub initial_stream_window_size: u32,
    /// HTTP/2 flow-control window of the connection, shared by all its calls' responses.
    /// Default 16 MiB.
    pub initial_connection_window_size: u32,
    /// HTTP/2 SETTINGS_MAX_FRAME_SIZE: the largest frame the server may send, 16 KiB
    /// to 16 MiB - 1. Default 64 KiB.
    pub max_frame_size: u32,
    /// HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE: bound on response headers and trailers, in
    /// bytes. Default 16 KiB.
    pub max_header_list_size: u32,
    /// Metadata sent with every call (a credential the peer's gate asks for). Default
    /// none.
    pub metadata: http::HeaderMap,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        let server = ServerConfig::default();
        ClientConfig {
            connect_timeout: Duration::from_secs(1),
            keepalive: server.keepalive,
            max_message_bytes: 64 << 20,
            tcp_nodelay: true,
            initial_stream_window_size: 4 << 20,
            initial_connection_window_size: 16 << 20,
            max_frame_size: server.max_frame_size,
            max_header_list_size: server.max_header_list_size,
            metadata: http::HeaderMap::new(),
        }
    }
}

impl ClientConfig {
    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_positive(&[
            ("connect_timeout", !self.connect_timeout.is_zero()),
            (
                "keepalive.interval",
                self.keepalive.is_none_or(|k| !k.interval.is_zero()),
            ),
            (
                "keepalive.timeout",
                self.keepalive.is_none_or(|k| !k.timeout.is_zero()),
            ),
            ("max_message_bytes", self.max_message_bytes > 0),
            (
                "initial_stream_window_size",
                self.initial_stream_window_size > 0,
            ),
            (
                "initial_connection_window_size",
                self.initial_connection_window_size > 0,
            ),
            ("max_header_list_size", self.max_header_list_size > 0),
        ])?;
        check_message_size("max_message_bytes", self.max_message_bytes)?;
        check_frame_size(self.max_frame_size)?;
        check_window(
            "initial_stream_window_size",
            self.initial_stream_window_size,
        )?;
        check_window(
            "initial_connection_window_size",
            self.initial_connection_window_size,
        )
    }

    /// The h2 connection builder for these settings. Server push is refused: gRPC does
    /// not use it.
    pub(crate) fn h2_builder(&self) -> h2::client::Builder {
        let mut builder = h2::client::Builder::new();
        builder
            .enable_push(false)
            .initial_window_size(self.initial_stream_window_size)
            .initial_connection_window_size(self.initial_connection_window_size)
            .max_frame_size(self.max_frame_size)
            .max_header_list_size(self.max_header_list_size);
        builder
    }
}

/// The first setting whose check failed, if any.
fn check_positive(checks: &[(&'static str, bool)]) -> Result<(), ConfigError> {
    match checks.iter().find(|(_, ok)| !ok) {
        Some(&(setting, _)) => Err(ConfigError::Zero { setting }),
        None => Ok(()),
    }
}

/// A message size limit must fit the 32-bit length of gRPC framing.
fn check_message_size(setting: &'static str, got: usize) -> Result<(), ConfigError> {
    let max = usize::try_from(u32::MAX).unwrap_or(usize::MAX);
    if got > max {
        return Err(ConfigError::MessageSizeTooLarge { setting, got, max });
    }
    Ok(())
}

fn check_frame_size(got: u32) -> Result<(), ConfigError> {
    if !(MIN_FRAME_SIZE..=MAX_FRAME_SIZE).contains(&got) {
        return Err(ConfigError::FrameSizeOutOfRange {
            got,
            min: MIN_FRAME_SIZE,
            max: MAX_FRAME_SIZE,
        });
    }
    Ok(())
}

fn check_window(setting: &'static str, got: u32) -> Result<(), ConfigError> {
    if got > MAX_WINDOW_SIZE {
        return Err(ConfigError::WindowTooLarge {
            setting,
            got,
            max: MAX_WINDOW_SIZE,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(ServerConfig::default().validate(), Ok(()));
        assert_eq!(ClientConfig::default().validate(), Ok(()));
    }

    #[test]
    fn impossible_client_settings_are_refused_with_the_setting_named() {
        let zero = ClientConfig {
            connect_timeout: Duration::ZERO,
            ..ClientConfig::default()
        };
        assert_eq!(
            zero.validate(),
            Err(ConfigError::Zero {
                setting: "connect_timeout"
            })
        );
        let no_limit = ClientConfig {
            max_message_bytes: 0,
            ..ClientConfig::default()
        };
        assert_eq!(
            no_limit.validate(),
            Err(ConfigError::Zero {
                setting: "max_message_bytes"
            })
        );
        let window = ClientConfig {
            initial_connection_window_size: u32::MAX,
            ..ClientConfig::default()
        };
        assert!(matches!(
            window.validate(),
            Err(ConfigError::WindowTooLarge {
                setting: "initial_connection_window_size",
                ..
            })
        ));
        let frame = ClientConfig {
            max_frame_size: 1 << 24,
            ..ClientConfig::default()
        };
        assert!(matches!(
            frame.validate(),
            Err(ConfigError::FrameSizeOutOfRange { .. })
        ));
        let no_keepalive = ClientConfig {
            keepalive: None,
            ..ClientConfig::default()
        };
        assert_eq!(no_keepalive.validate(), Ok(()));
    }

    #[test]
    fn impossible_settings_are_refused_with_the_setting_named() {
        let zero = ServerConfig {
            max_connections: 0,
            ..ServerConfig::default()
        };
        assert_eq!(
            zero.validate(),
            Err(ConfigError::Zero {
                setting: "max_connections"
            })
        );

        let keepalive = ServerConfig {
            keepalive: Some(Keepalive {
                interval: Duration::from_secs(1),
                timeout: Duration::ZERO,
            }),
            ..ServerConfig::default()
        };
        assert_eq!(
            keepalive.validate(),
            Err(ConfigError::Zero {
                setting: "keepalive.timeout"
            })
        );

        for (setting, config) in [
            (
                "max_calls",
                ServerConfig {
                    max_calls: 0,
                    ..ServerConfig::default()
                },
            ),
            (
                "max_buffered_bytes",
                ServerConfig {
                    max_buffered_bytes: 0,
                    ..ServerConfig::default()
                },
            ),
            (
                "idle_timeout",
                ServerConfig {
                    idle_timeout: Some(Duration::ZERO),
                    ..ServerConfig::default()
                },
            ),
            (
                "send_timeout",
                ServerConfig {
                    send_timeout: Duration::ZERO,
                    ..ServerConfig::default()
                },
            ),
            (
                "retry_after",
                ServerConfig {
                    retry_after: Duration::ZERO,
                    ..ServerConfig::default()
                },
            ),
        ] {
            assert_eq!(config.validate(), Err(ConfigError::Zero { setting }));
        }
        let no_idle_timeout = ServerConfig {
            idle_timeout: None,
            ..ServerConfig::default()
        };
        assert_eq!(no_idle_timeout.validate(), Ok(()));

        let frame = ServerConfig {
            max_frame_size: 1024,
            ..ServerConfig::default()
        };
        assert!(matches!(
            frame.validate(),
            Err(ConfigError::FrameSizeOutOfRange { got: 1024, .. })
        ));

        let window = ServerConfig {
            initial_stream_window_size: u32::MAX,
            ..ServerConfig::default()
        };
        assert!(matches!(
            window.validate(),
            Err(ConfigError::WindowTooLarge {
                setting: "initial_stream_window_size",
                ..
            })
        ));

        if usize::BITS > 32 {
            let huge = ServerConfig {
                max_recv_message_size: 1 << 33,
                ..ServerConfig::default()
            };
            assert!(matches!(
                huge.validate(),
                Err(ConfigError::MessageSizeTooLarge { .. })
            ));
        }
    }
}
