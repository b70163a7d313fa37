//! The timing and sizes of a shard group's Raft: one place for every replica's settings.

use std::sync::Arc;
use std::time::Duration;

use openraft::{Config, SnapshotPolicy};

/// How a shard group's Raft runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSettings {
    /// How often a leader tells its followers it is alive.
    pub heartbeat: Duration,
    /// A follower stands for election once it has heard no leader for `election_max`
    /// (the leader's lease: openraft lets no other replica lead within it) plus a random
    /// time between `election_min` and `election_max`.
    pub election_min: Duration,
    /// See [`GroupSettings::election_min`].
    pub election_max: Duration,
    /// Most entries in one AppendEntries.
    pub max_entries_per_append: u64,
}

impl Default for GroupSettings {
    /// Heartbeats every 100 ms; a follower stands for election after 1.2 to 1.6 s of
    /// silence (an 800 ms lease, then 400 to 800 ms), so a dead leader's writes resume
    /// within about 2 s, and a loaded core that pauses for a second does not set off an
    /// election (pre-vote keeps one that does from disrupting the group when it returns).
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(100),
            election_min: Duration::from_millis(400),
            election_max: Duration::from_millis(800),
            max_entries_per_append: 256,
        }
    }
}

impl GroupSettings {
    /// openraft's configuration for these settings. Pre-vote is on (a replica cut off
    /// from its group does not disrupt it when it returns); snapshots are built when the
    /// shard's checkpoint policy asks, never by openraft's own count of entries.
    pub fn config(&self) -> Result<Arc<Config>, openraft::ConfigError> {
        let ms = |d: Duration| d.as_millis() as u64;
        let config = Config {
            cluster_name: "vectron-shard".into(),
            heartbeat_interval: ms(self.heartbeat),
            election_timeout_min: ms(self.election_min),
            election_timeout_max: ms(self.election_max),
            max_payload_entries: self.max_entries_per_append,
            snapshot_policy: SnapshotPolicy::Never,
            enable_pre_vote: Some(true),
            ..Config::default()
        };
        Ok(Arc::new(config.validate()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_make_a_valid_configuration() {
        let config = GroupSettings::default().config().expect("valid");
        assert_eq!(config.heartbeat_interval, 100);
        assert_eq!(
            (config.election_timeout_min, config.election_timeout_max),
            (400, 800)
        );
        let bad = GroupSettings {
            election_min: Duration::from_millis(50),
            ..GroupSettings::default()
        };
        assert!(bad.config().is_err(), "an election sooner than a heartbeat");
    }
}
