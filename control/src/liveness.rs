//! What only the leader knows: when each worker's last heartbeat arrived and what it said.
//! The reconciler turns that into commands ([`Liveness::reconcile`], a pure function of the
//! replicated state, this table and the current instant).
//!
//! ```text
//!   Heartbeat ──► Liveness::record ──(routing-relevant?)──► ObserveWorkers, committed now
//!   tick ──► Liveness::reconcile ──► MarkWorkersDown (silent > timeout)
//!                                └─► ObserveWorkers (load changed, at most once per flush interval)
//! ```
//!
//! The table is rebuilt from scratch on every new leader. A worker the new leader has not
//! heard from yet is measured from the moment leadership began, so a change of leader never
//! marks a healthy worker down: it has a whole timeout to send its next heartbeat.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::state::{Command, ControlState, Health, WorkerReport};

/// Timeouts of the reconciler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LivenessConfig {
    /// A worker silent for longer is marked down.
    pub worker_timeout: Duration,
    /// Load figures are committed at most this often per worker.
    pub stats_flush_interval: Duration,
}

#[derive(Debug)]
struct Seen {
    at: Instant,
    report: WorkerReport,
    /// The report has been committed (or says nothing new).
    flushed: bool,
    last_flush: Option<Instant>,
}

/// The leader's view of heartbeats, for one term of leadership.
#[derive(Debug)]
pub(crate) struct Liveness {
    term: u64,
    since: Instant,
    seen: HashMap<String, Seen>,
}

impl Liveness {
    /// An empty table for a leadership that began at `since` in `term`.
    pub(crate) fn new(term: u64, since: Instant) -> Self {
        Self {
            term,
            since,
            seen: HashMap::new(),
        }
    }

    /// The term this table belongs to.
    pub(crate) fn term(&self) -> u64 {
        self.term
    }

    /// Records a heartbeat.
    pub(crate) fn record(&mut self, report: WorkerReport, now: Instant) {
        let last_flush = self.seen.get(&report.worker_id).and_then(|s| s.last_flush);
        self.seen.insert(
            report.worker_id.clone(),
            Seen {
                at: now,
                report,
                flushed: false,
                last_flush,
            },
        );
    }

    /// Notes that the latest report of `worker_id` was committed.
    pub(crate) fn flushed(&mut self, worker_id: &str, report: &WorkerReport, now: Instant) {
        if let Some(seen) = self.seen.get_mut(worker_id)
            && &seen.report == report
        {
            seen.flushed = true;
            seen.last_flush = Some(now);
        }
    }

    /// Milliseconds since the last heartbeat of `worker_id`, if this leader has seen one.
    pub(crate) fn heartbeat_age(&self, worker_id: &str, now: Instant) -> Option<Duration> {
        self.seen
            .get(worker_id)
            .map(|s| now.saturating_duration_since(s.at))
    }

    /// The commands the reconciler should propose now.
    pub(crate) fn reconcile(
        &self,
        state: &ControlState,
        now: Instant,
        config: LivenessConfig,
    ) -> Vec<Command> {
        let mut down = Vec::new();
        let mut reports = Vec::new();
        for worker in state.workers.values() {
            let seen = self.seen.get(&worker.worker_id);
            let last = seen.map_or(self.since, |s| s.at.max(self.since));
            let silent = now.saturating_duration_since(last) > config.worker_timeout;
            if worker.health == Health::Up && silent {
                down.push(worker.worker_id.clone());
                continue;
            }
            let Some(seen) = seen else { continue };
            if seen.flushed || silent {
                continue;
            }
            let urgent = state.report_changes_routing(&seen.report);
            let due = seen
                .last_flush
                .is_none_or(|at| now.saturating_duration_since(at) >= config.stats_flush_interval);
            if urgent || (due && load_changed(state, &seen.report)) {
                reports.push(seen.report.clone());
            }
        }
        let at_ms = unix_ms();
        let mut commands = Vec::new();
        if !down.is_empty() {
            commands.push(Command::MarkWorkersDown {
                worker_ids: down,
                at_ms,
            });
        }
        if !reports.is_empty() {
            commands.push(Command::ObserveWorkers { reports, at_ms });
        }
        commands
    }

    /// Marks reports that say nothing new as flushed, so they are not committed.
    pub(crate) fn settle(&mut self, state: &ControlState) {
        for seen in self.seen.values_mut() {
            if !seen.flushed
                && !state.report_changes_routing(&seen.report)
                && !load_changed(state, &seen.report)
            {
                seen.flushed = true;
            }
        }
    }
}

/// Whether a report's load figures that placement uses (memory of a core, points and
/// memory of a replica) differ from the committed ones. Rates and queue depths change with
/// every request and decide nothing, so they alone never cause a commit; they ride along
/// when something else does.
fn load_changed(state: &ControlState, report: &WorkerReport) -> bool {
    let Some(worker) = state.workers.get(&report.worker_id) else {
        return false;
    };
    let core_changed = report.cores.iter().any(|reported| {
        worker
            .cores
            .iter()
            .find(|c| c.core == reported.core)
            .is_some_and(|c| c.memory_bytes != reported.memory_bytes)
    });
    if core_changed {
        return true;
    }
    state.collections.iter().any(|(name, collection)| {
        collection.shards.iter().any(|shard| {
            shard.replicas.iter().any(|replica| {
                replica.worker_id == report.worker_id
                    && report
                        .cores
                        .iter()
                        .filter(|c| c.core == replica.core)
                        .flat_map(|c| &c.shards)
                        .any(|h| {
                            &h.collection == name
                                && h.shard_id == shard.shard_id
                                && h.epoch == replica.epoch
                                && (h.points != replica.points
                                    || h.memory_bytes != replica.memory_bytes)
                        })
            })
        })
    })
}

/// Milliseconds since the Unix epoch, for timestamps that go into the log.
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{CoreReport, HeldShard, Registration};

    const CONFIG: LivenessConfig = LivenessConfig {
        worker_timeout: Duration::from_secs(3),
        stats_flush_interval: Duration::from_secs(1),
    };

    fn state_with_worker() -> ControlState {
        let mut state = ControlState::default();
        state
            .apply(
                1,
                &Command::InitCluster {
                    cluster_id: "c".into(),
                },
            )
            .unwrap();
        state
            .apply(
                2,
                &Command::RegisterWorker {
                    registration: Registration {
                        worker_id: "w1".into(),
                        data_host: "127.0.0.1".into(),
                        admin_address: String::new(),
                        cores: vec![(0, 7000)],
                        cluster_id: String::new(),
                        zone: String::new(),
                    },
                    at_ms: 0,
                },
            )
            .unwrap();
        state
    }

    fn report(points: u64, shards: Vec<HeldShard>) -> WorkerReport {
        WorkerReport {
            worker_id: "w1".into(),
            cores: vec![CoreReport {
                core: 0,
                memory_bytes: points * 10,
                search_qps: 0.0,
                upsert_points_per_s: 0.0,
                in_flight: 0,
                queue_depth: 0,
                shards,
            }],
        }
    }

    #[test]
    fn a_new_leader_gives_every_worker_a_full_timeout() {
        let state = state_with_worker();
        let t0 = Instant::now();
        let liveness = Liveness::new(2, t0);
        assert!(
            liveness
                .reconcile(&state, t0 + Duration::from_secs(2), CONFIG)
                .is_empty()
        );
        let commands = liveness.reconcile(&state, t0 + Duration::from_secs(4), CONFIG);
        assert!(matches!(
            &commands[..],
            [Command::MarkWorkersDown { worker_ids, .. }] if worker_ids == &["w1".to_owned()]
        ));
    }

    #[test]
    fn heartbeats_keep_a_worker_up_and_a_down_worker_is_not_marked_twice() {
        let mut state = state_with_worker();
        let t0 = Instant::now();
        let mut liveness = Liveness::new(2, t0);
        liveness.record(report(0, vec![]), t0 + Duration::from_secs(2));
        liveness.settle(&state);
        assert!(
            liveness
                .reconcile(&state, t0 + Duration::from_secs(4), CONFIG)
                .is_empty()
        );
        let commands = liveness.reconcile(&state, t0 + Duration::from_secs(6), CONFIG);
        assert_eq!(commands.len(), 1);
        state.apply(3, &commands[0]).unwrap();
        assert!(
            liveness
                .reconcile(&state, t0 + Duration::from_secs(7), CONFIG)
                .is_empty()
        );
    }

    #[test]
    fn a_returning_worker_is_observed_at_once() {
        let mut state = state_with_worker();
        state
            .apply(
                3,
                &Command::MarkWorkersDown {
                    worker_ids: vec!["w1".into()],
                    at_ms: 1,
                },
            )
            .unwrap();
        let t0 = Instant::now();
        let mut liveness = Liveness::new(2, t0);
        liveness.record(report(0, vec![]), t0);
        let commands = liveness.reconcile(&state, t0, CONFIG);
        assert!(matches!(&commands[..], [Command::ObserveWorkers { .. }]));
        state.apply(4, &commands[0]).unwrap();
        assert_eq!(state.workers["w1"].health, Health::Up);
    }

    #[test]
    fn rates_alone_are_not_committed() {
        let state = state_with_worker();
        let t0 = Instant::now();
        let mut liveness = Liveness::new(2, t0);
        let mut busy = report(0, vec![]);
        busy.cores[0].search_qps = 1500.0;
        busy.cores[0].in_flight = 12;
        liveness.record(busy, t0);
        liveness.settle(&state);
        assert!(liveness.reconcile(&state, t0, CONFIG).is_empty());
    }

    #[test]
    fn load_changes_are_flushed_at_most_once_per_interval() {
        let mut state = state_with_worker();
        let t0 = Instant::now();
        let mut liveness = Liveness::new(2, t0);
        let first = report(5, vec![]);
        liveness.record(first.clone(), t0);
        let commands = liveness.reconcile(&state, t0, CONFIG);
        assert_eq!(commands.len(), 1, "memory changed from 0 to 50");
        state.apply(3, &commands[0]).unwrap();
        liveness.flushed("w1", &first, t0);
        liveness.record(report(6, vec![]), t0 + Duration::from_millis(500));
        assert!(
            liveness
                .reconcile(&state, t0 + Duration::from_millis(500), CONFIG)
                .is_empty(),
            "too soon after the last flush"
        );
        assert_eq!(
            liveness
                .reconcile(&state, t0 + Duration::from_millis(1100), CONFIG)
                .len(),
            1
        );
    }
}
