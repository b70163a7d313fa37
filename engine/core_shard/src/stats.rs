//! Statistics one core keeps about itself: counters, recent rates and latency
//! histograms. Owned by the core's thread and never shared; other threads get
//! snapshots by message.

use std::time::Duration;

use hdrhistogram::Histogram;
use vectron_proto::v1::{CoreStats, LatencySummary};

/// Seconds of history behind the rates.
const RATE_WINDOW_S: u64 = 10;
/// Largest latency a histogram records exactly: one minute, in microseconds. Longer
/// ones are counted at this value.
const MAX_LATENCY_US: u64 = 60_000_000;

/// A latency histogram in microseconds with three significant digits.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds"))
    }
}

impl Latency {
    /// Records one operation.
    pub fn record(&mut self, took: Duration) {
        let us = u64::try_from(took.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_LATENCY_US);
        self.0.saturating_record(us);
    }

    /// Percentiles for the stats API.
    pub fn summary(&self) -> LatencySummary {
        let h = &self.0;
        if h.is_empty() {
            return LatencySummary::default();
        }
        let q = |p: f64| h.value_at_quantile(p) as f64;
        LatencySummary {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: q(0.5),
            p90_us: q(0.9),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: h.max() as f64,
        }
    }
}

/// Events per second over the last [`RATE_WINDOW_S`] seconds, in one-second buckets.
#[derive(Debug, Clone, Default)]
struct Rate {
    /// `(second, count)` per bucket; a bucket is reused when its second is stale.
    buckets: [(u64, u64); RATE_WINDOW_S as usize],
}

impl Rate {
    fn add(&mut self, second: u64, n: u64) {
        let slot = &mut self.buckets[(second % RATE_WINDOW_S) as usize];
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 += n;
    }

    /// The rate over the full seconds before `second` (the current, partial second is
    /// left out) within the window, or over the uptime when it is shorter.
    fn per_second(&self, second: u64) -> f64 {
        let span = second.clamp(1, RATE_WINDOW_S);
        let sum: u64 = self
            .buckets
            .iter()
            .filter(|(s, _)| *s < second && second - *s <= span)
            .map(|(_, n)| n)
            .sum();
        sum as f64 / span as f64
    }
}

/// Everything a core counts. Time is passed in as the core's uptime, so the type is
/// deterministic under test.
#[derive(Debug, Clone, Default)]
pub struct CoreCounters {
    searches_total: u64,
    upserted_points_total: u64,
    search_rate: Rate,
    upsert_rate: Rate,
    /// Search latency, measured on the core.
    pub search_latency: Latency,
    /// Upsert latency until acknowledged.
    pub upsert_latency: Latency,
    /// Write-ahead log sync latency.
    pub wal_sync_latency: Latency,
    /// How long a task that became ready waited to run ([`crate::Core::watch_delays`]).
    pub scheduling_delay: Latency,
    /// Requests being served.
    pub in_flight: u32,
    /// Calls refused at the core's limits (calls in flight, buffered bytes).
    pub calls_refused: u64,
    /// Bytes of messages the core's calls hold.
    pub buffered_bytes: u64,
    /// Writes refused for a shard's backlog.
    pub backlog_refusals: u64,
}

impl CoreCounters {
    /// Counts one search that took `took`, finishing at `uptime`.
    pub fn search(&mut self, uptime: Duration, took: Duration) {
        self.searches_total += 1;
        self.search_rate.add(uptime.as_secs(), 1);
        self.search_latency.record(took);
    }

    /// Counts an upsert of `points` points that took `took`, finishing at `uptime`.
    pub fn upsert(&mut self, uptime: Duration, points: u64, took: Duration) {
        self.upserted_points_total += points;
        self.upsert_rate.add(uptime.as_secs(), points);
        self.upsert_latency.record(took);
    }

    /// Fills the counters' part of the stats message.
    pub fn fill(&self, uptime: Duration, out: &mut CoreStats) {
        let second = uptime.as_secs();
        out.uptime_s = uptime.as_secs_f64();
        out.searches_total = self.searches_total;
        out.upserted_points_total = self.upserted_points_total;
        out.search_qps = self.search_rate.per_second(second);
        out.upsert_points_per_s = self.upsert_rate.per_second(second);
        out.search_latency = Some(self.search_latency.summary());
        out.upsert_latency = Some(self.upsert_latency.summary());
        out.wal_sync_latency = Some(self.wal_sync_latency.summary());
        out.scheduling_delay = Some(self.scheduling_delay.summary());
        out.in_flight = self.in_flight;
        out.calls_refused_total = self.calls_refused;
        out.buffered_bytes = self.buffered_bytes;
        out.writes_refused_backlog_total = self.backlog_refusals;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn rates_cover_the_last_full_seconds() {
        let mut c = CoreCounters::default();
        for sec in 0..30 {
            for _ in 0..(if sec < 20 { 100 } else { 10 }) {
                c.search(s(sec), Duration::from_micros(50));
            }
        }
        let mut out = CoreStats::default();
        c.fill(s(30), &mut out);
        assert_eq!(out.searches_total, 20 * 100 + 10 * 10);
        assert!(
            (out.search_qps - 10.0).abs() < 1e-9,
            "qps {}",
            out.search_qps
        );
        // Young core: the rate is over its uptime, not over ten seconds.
        let mut young = CoreCounters::default();
        young.upsert(s(0), 500, Duration::from_millis(2));
        young.upsert(s(1), 500, Duration::from_millis(2));
        young.fill(s(2), &mut out);
        assert!((out.upsert_points_per_s - 500.0).abs() < 1e-9);
        // A silent core decays to zero.
        c.fill(s(100), &mut out);
        assert_eq!(out.search_qps, 0.0);
    }

    #[test]
    fn latency_percentiles() {
        let mut l = Latency::default();
        for us in 1..=1000 {
            l.record(Duration::from_micros(us));
        }
        l.record(Duration::from_secs(3600)); // clamped, never an error
        let sum = l.summary();
        assert_eq!(sum.count, 1001);
        assert!((sum.p50_us - 500.0).abs() <= 1.0, "p50 {}", sum.p50_us);
        assert!((sum.p99_us - 990.0).abs() <= 1.0, "p99 {}", sum.p99_us);
        assert!(sum.max_us >= 59_000_000.0);
        assert_eq!(Latency::default().summary().count, 0);
    }
}
