//! Keepalive PINGs on one HTTP/2 connection, the server's or a client's: a PING every
//! interval, and the peer reported unresponsive when one stays unanswered for the
//! timeout. The connection's task polls the [`Pinger`] beside the h2 connection and
//! drops the connection when it fires; PINGs the peer sends are answered by h2 itself.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use h2::{Ping, PingPong};
use monoio::time::{Instant, Sleep};

use crate::config::Keepalive;

/// Sends a PING every interval and reports the peer unresponsive when one stays
/// unanswered for the timeout.
pub(crate) struct Pinger {
    pings: PingPong,
    settings: Keepalive,
    timer: Pin<Box<Sleep>>,
    awaiting_pong: bool,
    /// h2 refused a PING: the connection is failing, and polling it reports why.
    broken: bool,
}

impl Pinger {
    pub(crate) fn new(pings: PingPong, settings: Keepalive) -> Pinger {
        Pinger {
            pings,
            settings,
            timer: Box::pin(monoio::time::sleep(settings.interval)),
            awaiting_pong: false,
            broken: false,
        }
    }

    pub(crate) fn poll_unresponsive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while !self.broken {
            if self.awaiting_pong {
                match self.pings.poll_pong(cx) {
                    Poll::Ready(Ok(_)) => {
                        self.awaiting_pong = false;
                        self.timer
                            .as_mut()
                            .reset(Instant::now() + self.settings.interval);
                        continue;
                    }
                    Poll::Ready(Err(_)) => self.broken = true,
                    Poll::Pending => {
                        return if self.timer.as_mut().poll(cx).is_ready() {
                            Poll::Ready(())
                        } else {
                            Poll::Pending
                        };
                    }
                }
            } else {
                if self.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                match self.pings.send_ping(Ping::opaque()) {
                    Ok(()) => {
                        self.awaiting_pong = true;
                        self.timer
                            .as_mut()
                            .reset(Instant::now() + self.settings.timeout);
                    }
                    Err(_) => self.broken = true,
                }
            }
        }
        Poll::Pending
    }
}
