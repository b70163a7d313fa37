//! Faults injected into the replication traffic a core sends, for tests: lost requests
//! and lost answers, delays (which reorder messages), duplicates, and partitions between
//! replicas. A plan is shared by every core of an in-process cluster (it is `Send`), and
//! its randomness is seeded, so a failing schedule can be run again.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// What happens to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// The request never arrives.
    DropRequest,
    /// The request arrives and is acted on; the answer is lost.
    DropAnswer,
    /// The request arrives after `delay`, twice when `duplicate`.
    Deliver { delay: Duration, duplicate: bool },
}

#[derive(Debug)]
struct Plan {
    rng: StdRng,
    drop_rate: f64,
    duplicate_rate: f64,
    max_delay: Duration,
    /// (from, to) replica pairs whose messages are lost.
    cut: HashSet<(u64, u64)>,
}

/// A seeded fault plan for the replication traffic of a cluster's cores.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    plan: Arc<Mutex<Plan>>,
}

impl FaultPlan {
    /// A plan that does nothing yet, its randomness seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            plan: Arc::new(Mutex::new(Plan {
                rng: StdRng::seed_from_u64(seed),
                drop_rate: 0.0,
                duplicate_rate: 0.0,
                max_delay: Duration::ZERO,
                cut: HashSet::new(),
            })),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Plan) -> T) -> T {
        f(&mut self
            .plan
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Loses this share of requests, and as many answers (0 to 1).
    pub fn set_drop_rate(&self, rate: f64) {
        self.with(|p| p.drop_rate = rate.clamp(0.0, 1.0));
    }

    /// Delivers this share of requests twice (0 to 1).
    pub fn set_duplicate_rate(&self, rate: f64) {
        self.with(|p| p.duplicate_rate = rate.clamp(0.0, 1.0));
    }

    /// Delays every request by up to `max` (uniformly), which reorders them.
    pub fn set_max_delay(&self, max: Duration) {
        self.with(|p| p.max_delay = max);
    }

    /// Cuts `isolated` off from every other replica of `all`, both ways.
    pub fn isolate(&self, isolated: u64, all: &[u64]) {
        self.with(|p| {
            for &other in all.iter().filter(|&&o| o != isolated) {
                p.cut.insert((isolated, other));
                p.cut.insert((other, isolated));
            }
        });
    }

    /// Cuts the messages from `from` to `to` only (an asymmetric partition).
    pub fn cut_one_way(&self, from: u64, to: u64) {
        self.with(|p| {
            p.cut.insert((from, to));
        });
    }

    /// Ends every partition.
    pub fn heal(&self) {
        self.with(|p| p.cut.clear());
    }

    /// Ends every fault: no partition, loss, duplicate or delay.
    pub fn calm(&self) {
        self.with(|p| {
            p.cut.clear();
            p.drop_rate = 0.0;
            p.duplicate_rate = 0.0;
            p.max_delay = Duration::ZERO;
        });
    }

    /// The fate of a call from replica `from` to replica `to`.
    pub(crate) fn fate(&self, from: u64, to: u64) -> Fate {
        self.with(|p| {
            if p.cut.contains(&(from, to)) {
                return Fate::DropRequest;
            }
            if p.drop_rate > 0.0 && p.rng.random_bool(p.drop_rate) {
                return if p.rng.random_bool(0.5) {
                    Fate::DropRequest
                } else {
                    Fate::DropAnswer
                };
            }
            let delay = if p.max_delay.is_zero() {
                Duration::ZERO
            } else {
                p.max_delay.mul_f64(p.rng.random::<f64>())
            };
            let duplicate = p.duplicate_rate > 0.0 && p.rng.random_bool(p.duplicate_rate);
            Fate::Deliver { delay, duplicate }
        })
    }

    /// Whether messages from `from` to `to` are cut.
    pub fn is_cut(&self, from: u64, to: u64) -> bool {
        self.with(|p| p.cut.contains(&(from, to)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_replays_the_same_fates_and_partitions_are_exact() {
        let fates = |seed| {
            let plan = FaultPlan::new(seed);
            plan.set_drop_rate(0.3);
            plan.set_duplicate_rate(0.2);
            plan.set_max_delay(Duration::from_millis(10));
            (0..200)
                .map(|i| plan.fate(1, 2 + i % 2))
                .collect::<Vec<_>>()
        };
        assert_eq!(fates(7), fates(7));
        assert_ne!(fates(7), fates(8));
        let drops = fates(7)
            .iter()
            .filter(|f| !matches!(f, Fate::Deliver { .. }))
            .count();
        assert!((30..=90).contains(&drops), "{drops} of 200 at 30%");

        let plan = FaultPlan::new(1);
        plan.isolate(2, &[1, 2, 3]);
        assert_eq!(plan.fate(1, 2), Fate::DropRequest);
        assert_eq!(plan.fate(2, 3), Fate::DropRequest);
        assert!(matches!(plan.fate(1, 3), Fate::Deliver { .. }));
        plan.heal();
        plan.cut_one_way(3, 1);
        assert!(plan.is_cut(3, 1) && !plan.is_cut(1, 3));
        plan.calm();
        assert!(matches!(
            plan.fate(3, 1),
            Fate::Deliver {
                delay: Duration::ZERO,
                duplicate: false
            }
        ));
    }
}
