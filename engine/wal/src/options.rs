//! How a log is configured.

use std::time::Duration;

use crate::error::WalError;

/// When an append is acknowledged, and what a crash can take back.
///
/// | policy | `append` resolves | survives `kill -9` | survives power loss |
/// | --- | --- | --- | --- |
/// | [`Always`](Self::Always) | after the `fdatasync` covering it | yes | yes |
/// | [`Interval`](Self::Interval) | after the write reached the page cache | yes | all but the last interval |
/// | [`Never`](Self::Never) | after the write reached the page cache | yes | only what [`Wal::sync`](crate::Wal::sync), a segment switch or close synced |
///
/// `Always` costs one sync per group of concurrent appends (group commit shares it; the
/// group's write is made `O_DSYNC`, so write and sync are one operation);
/// the others trade the power-loss window for latency and are meant for tests, benchmarks
/// and data that can be rebuilt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Acknowledge after `fdatasync`: nothing acknowledged is ever lost. The default.
    #[default]
    Always,
    /// Acknowledge after the write; `fdatasync` at most this often. Needs a monoio runtime
    /// built with `enable_timer()`.
    Interval(Duration),
    /// Acknowledge after the write; never `fdatasync` on its own.
    Never,
}

/// The framing of a new log's records (`FORMAT.md`). A log is wholly one or the other:
/// opening an existing log keeps the format its segments were written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// Records carry their LSN: a shard's log of its own writes. The default.
    #[default]
    V1,
    /// Records also carry the Raft term they were written in, and a leader's records can
    /// be stored as they arrive ([`Wal::append_raw`](crate::Wal::append_raw)): the Raft log
    /// of a replicated shard. No checkpoint markers.
    V2,
}

/// Options of one log.
///
/// ```
/// use std::time::Duration;
/// use vectron_wal::{Options, SyncPolicy};
///
/// let options = Options::default()
///     .sync(SyncPolicy::Interval(Duration::from_millis(5)))
///     .segment_bytes(16 << 20);
/// assert_eq!(options.sync_policy(), SyncPolicy::Interval(Duration::from_millis(5)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    sync: SyncPolicy,
    segment_bytes: u64,
    format: Format,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            sync: SyncPolicy::Always,
            segment_bytes: Self::DEFAULT_SEGMENT_BYTES,
            format: Format::V1,
        }
    }
}

impl Options {
    /// Segment size unless set: 64 MiB.
    pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
    /// The smallest segment: one page.
    pub const MIN_SEGMENT_BYTES: u64 = 4096;
    /// The largest segment: record lengths are 32-bit.
    pub const MAX_SEGMENT_BYTES: u64 = 1 << 31;

    /// Sets the sync policy.
    #[must_use]
    pub fn sync(mut self, policy: SyncPolicy) -> Self {
        self.sync = policy;
        self
    }

    /// Sets the size at which the log starts a new segment. A multiple of 4096 between
    /// [`MIN_SEGMENT_BYTES`](Self::MIN_SEGMENT_BYTES) and
    /// [`MAX_SEGMENT_BYTES`](Self::MAX_SEGMENT_BYTES); it also bounds one record.
    #[must_use]
    pub fn segment_bytes(mut self, bytes: u64) -> Self {
        self.segment_bytes = bytes;
        self
    }

    /// Sets the format of a new log (an existing one keeps its own).
    #[must_use]
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// The format a new log is written in.
    pub fn new_format(&self) -> Format {
        self.format
    }

    /// The sync policy.
    pub fn sync_policy(&self) -> SyncPolicy {
        self.sync
    }

    /// The segment size.
    pub fn segment_size(&self) -> u64 {
        self.segment_bytes
    }

    pub(crate) fn validate(&self) -> Result<(), WalError> {
        let s = self.segment_bytes;
        if !(Self::MIN_SEGMENT_BYTES..=Self::MAX_SEGMENT_BYTES).contains(&s)
            || !s.is_multiple_of(4096)
        {
            return Err(WalError::InvalidOptions(
                "segment_bytes must be a multiple of 4096 between 4 KiB and 2 GiB",
            ));
        }
        if self.sync == SyncPolicy::Interval(Duration::ZERO) {
            return Err(WalError::InvalidOptions(
                "a sync interval must be longer than zero (use SyncPolicy::Always)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_refuses_unusable_options() {
        assert!(Options::default().validate().is_ok());
        for bytes in [0, 4095, 4097, 3 << 30] {
            assert!(
                Options::default().segment_bytes(bytes).validate().is_err(),
                "{bytes}"
            );
        }
        let zero = Options::default().sync(SyncPolicy::Interval(Duration::ZERO));
        assert!(zero.validate().is_err());
    }
}
