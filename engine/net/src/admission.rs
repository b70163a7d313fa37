//! Admission control: the bound on calls in flight (`max_calls`) and the budget of
//! buffered message bytes (`max_buffered_bytes`), shared by every call of one server.
//!
//! Both are plain counters in the server's [`StatsHandle`], on the core's thread: taking
//! or giving back costs a few non-atomic operations, with no lock. Both are held through
//! guards that give them back when dropped, so every way a call can end (an answer, an
//! error, a panic, a reset, a shutdown) releases what it held:
//!
//! | guard | held for | taken | given back |
//! | --- | --- | --- | --- |
//! | [`CallSlot`] | an admitted call | before the handler starts | when the call has answered |
//! | [`Charge`] (request) | a request message over [`SMALL_MESSAGE`] | its announced length, as soon as its 5-byte prefix is in | when the next message of the stream starts, or the call ends |
//! | [`Charge`] (response) | encoded response bytes not yet handed to h2 | as each message is encoded | as the bytes move into h2 under send capacity |
//!
//! A refusal is never queued: the call ends at once with `RESOURCE_EXHAUSTED`, a message
//! naming the setting, and a `retry-after` trailer in whole seconds. Messages up to
//! [`SMALL_MESSAGE`] are always let through (response bytes are charged all the same),
//! so small calls such as searches keep flowing while large uploads are refused. The
//! budget may therefore be exceeded, by small messages only.

use std::fmt;
use std::time::Duration;

use http::header::{HeaderName, HeaderValue};

use crate::config::ServerConfig;
use crate::observer::StatsHandle;
use crate::status::Status;

/// Messages up to this many bytes are never refused for `max_buffered_bytes`, and
/// request messages up to it are not charged: a call buffers at most one of them plus
/// one DATA frame.
pub(crate) const SMALL_MESSAGE: usize = 64 * 1024;

/// The trailer that tells a refused client when to retry, in whole seconds.
pub(crate) const RETRY_AFTER: HeaderName = HeaderName::from_static("retry-after");

/// Which way a refused message was going.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Request => "request",
            Side::Response => "response",
        })
    }
}

/// Why a call or a message was refused; becomes a `RESOURCE_EXHAUSTED` status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// `max_calls` calls are in flight.
    #[error(
        "the server is at its limit of {max} calls in flight (max_calls); retry in {retry_after_secs} s"
    )]
    Calls {
        /// The configured limit.
        max: usize,
        /// What the `retry-after` trailer says.
        retry_after_secs: u64,
    },
    /// The message does not fit what is left of the budget now.
    #[error(
        "{side} message of {len} bytes does not fit the server's budget for buffered messages: {held} of {max} bytes (max_buffered_bytes) are held by calls in flight; retry in {retry_after_secs} s"
    )]
    Bytes {
        /// Request or response.
        side: Side,
        /// The message's length.
        len: usize,
        /// Bytes held when it was refused.
        held: usize,
        /// The configured budget.
        max: usize,
        /// What the `retry-after` trailer says.
        retry_after_secs: u64,
    },
    /// The message is larger than the whole budget: retrying cannot help, so no
    /// `retry-after` is sent.
    #[error(
        "{side} message of {len} bytes is larger than the server's whole budget of {max} bytes for buffered messages (max_buffered_bytes): send smaller messages"
    )]
    NeverFits {
        /// Request or response.
        side: Side,
        /// The message's length.
        len: usize,
        /// The configured budget.
        max: usize,
    },
}

impl From<Refusal> for Status {
    fn from(refusal: Refusal) -> Status {
        let retry_after_secs = match refusal {
            Refusal::Calls {
                retry_after_secs, ..
            }
            | Refusal::Bytes {
                retry_after_secs, ..
            } => Some(retry_after_secs),
            Refusal::NeverFits { .. } => None,
        };
        let status = Status::resource_exhausted(refusal.to_string());
        match retry_after_secs {
            Some(secs) => status.with_metadata(RETRY_AFTER, HeaderValue::from(secs)),
            None => status,
        }
    }
}

/// `retry_after` in whole seconds, rounded up, at least 1.
fn whole_seconds(retry_after: Duration) -> u64 {
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    secs.max(1)
}

/// The byte budget of one server; cheap to clone (one `Rc`).
#[derive(Clone, Debug)]
pub(crate) struct Budget {
    max: usize,
    retry_after_secs: u64,
    stats: StatsHandle,
}

impl Budget {
    /// A charge of nothing yet, against this budget.
    pub(crate) fn charge(&self) -> Charge {
        Charge {
            budget: self.clone(),
            bytes: 0,
        }
    }
}

/// The admission state of one server: its bound on calls and its byte budget.
#[derive(Debug)]
pub(crate) struct Admission {
    max_calls: usize,
    budget: Budget,
}

impl Admission {
    pub(crate) fn new(config: &ServerConfig, stats: StatsHandle) -> Admission {
        Admission {
            max_calls: config.max_calls,
            budget: Budget {
                max: config.max_buffered_bytes,
                retry_after_secs: whole_seconds(config.retry_after),
                stats,
            },
        }
    }

    /// A slot for one more call, unless `max_calls` calls hold one.
    pub(crate) fn admit(&self) -> Result<CallSlot, Refusal> {
        let stats = &self.budget.stats;
        if stats.admitted() >= self.max_calls {
            stats.refused_for_max_calls();
            return Err(Refusal::Calls {
                max: self.max_calls,
                retry_after_secs: self.budget.retry_after_secs,
            });
        }
        stats.call_admitted();
        Ok(CallSlot {
            stats: stats.clone(),
        })
    }

    pub(crate) fn budget(&self) -> &Budget {
        &self.budget
    }
}

/// One admitted call's place under `max_calls`, given back when dropped.
#[derive(Debug)]
pub(crate) struct CallSlot {
    stats: StatsHandle,
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        self.stats.admitted_call_ended();
    }
}

/// Bytes one call holds against the budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Budget,
    bytes: usize,
}

impl Charge {
    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Holds `bytes` from now on, whether or not that fits: to give bytes back, or for
    /// small messages, which are always let through.
    pub(crate) fn set(&mut self, bytes: usize) {
        let stats = &self.budget.stats;
        if bytes > self.bytes {
            stats.add_buffered(bytes - self.bytes);
        } else {
            stats.remove_buffered(self.bytes - bytes);
        }
        self.bytes = bytes;
    }

    /// Holds `len` more bytes for a `side` message of that length, if they fit the
    /// budget. On a refusal nothing changes but the refusal count.
    pub(crate) fn try_grow(&mut self, len: usize, side: Side) -> Result<(), Refusal> {
        let budget = &self.budget;
        let held = budget.stats.buffered_bytes();
        if len > budget.max {
            budget.stats.refused_for_max_buffered_bytes();
            return Err(Refusal::NeverFits {
                side,
                len,
                max: budget.max,
            });
        }
        if held.saturating_add(len) > budget.max {
            budget.stats.refused_for_max_buffered_bytes();
            return Err(Refusal::Bytes {
                side,
                len,
                held,
                max: budget.max,
                retry_after_secs: budget.retry_after_secs,
            });
        }
        self.set(self.bytes + len);
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Code;

    fn admission(max_calls: usize, max_buffered_bytes: usize) -> (Admission, StatsHandle) {
        let config = ServerConfig {
            max_calls,
            max_buffered_bytes,
            retry_after: Duration::from_millis(1500),
            ..ServerConfig::default()
        };
        let stats = StatsHandle::default();
        (Admission::new(&config, stats.clone()), stats)
    }

    #[test]
    fn calls_past_max_calls_are_refused_until_a_slot_is_given_back() {
        let (admission, stats) = admission(2, 1024);
        let first = admission.admit().unwrap();
        let _second = admission.admit().unwrap();
        let refusal = admission.admit().unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Calls {
                max: 2,
                retry_after_secs: 2
            }
        );
        assert_eq!(stats.calls_refused_max_calls(), 1);
        drop(first);
        assert!(admission.admit().is_ok());
    }

    #[test]
    fn charges_fit_the_budget_or_are_refused_and_are_given_back_on_drop() {
        let (admission, stats) = admission(8, 1000);
        let mut upload = admission.budget().charge();
        upload.try_grow(600, Side::Request).unwrap();
        let mut answer = admission.budget().charge();
        let refusal = answer.try_grow(500, Side::Response).unwrap_err();
        assert_eq!(
            refusal,
            Refusal::Bytes {
                side: Side::Response,
                len: 500,
                held: 600,
                max: 1000,
                retry_after_secs: 2
            }
        );
        assert_eq!(answer.bytes(), 0, "a refusal charges nothing");
        answer.try_grow(400, Side::Response).unwrap();
        assert_eq!(stats.buffered_bytes(), 1000);

        // Always let through, even over the budget.
        answer.set(1200);
        assert_eq!(stats.buffered_bytes(), 1800);
        answer.set(100);
        drop(upload);
        assert_eq!(stats.buffered_bytes(), 100);
        drop(answer);
        let snapshot = stats.snapshot();
        assert_eq!(
            (snapshot.buffered_bytes, snapshot.peak_buffered_bytes),
            (0, 1800)
        );
        assert_eq!(stats.calls_refused_max_buffered_bytes(), 1);
    }

    #[test]
    fn a_message_larger_than_the_whole_budget_is_refused_without_retry_after() {
        let (admission, _) = admission(8, 1000);
        let refusal = admission
            .budget()
            .charge()
            .try_grow(1001, Side::Request)
            .unwrap_err();
        let status = Status::from(refusal);
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.metadata().is_none());
        assert_eq!(
            status.message(),
            "request message of 1001 bytes is larger than the server's whole budget of 1000 \
             bytes for buffered messages (max_buffered_bytes): send smaller messages"
        );
    }

    #[test]
    fn refusals_that_may_pass_later_carry_retry_after_in_whole_seconds() {
        let status = Status::from(Refusal::Calls {
            max: 4,
            retry_after_secs: whole_seconds(Duration::from_millis(10)),
        });
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.metadata().unwrap()[RETRY_AFTER], "1");
        assert_eq!(
            status.message(),
            "the server is at its limit of 4 calls in flight (max_calls); retry in 1 s"
        );
        assert_eq!(whole_seconds(Duration::from_secs(3)), 3);
        assert_eq!(whole_seconds(Duration::from_millis(3001)), 4);
    }
}
