//! `vectron tune`: the smallest default `ef` that reaches a recall, measured on the
//! collection's own data against exact search.
//!
//! ```text
//! queries (a file, or N stored points drawn with --seed)
//!   └─► exact search of each (the ground truth) ──► ef ladder k, 16, 24, 32, 48, 64, …
//!         each rung: every query searched, mean recall@k, 95% bootstrap lower bound,
//!         client p50 / p99 ──► first rung whose lower bound meets the target
//!   └─► bisection between it and the rung below ──► the smallest passing ef
//!   └─► --apply: Collections.Update with the ef and the measurement
//! ```
//!
//! A query drawn from the collection is itself a point of it: it is left out of both its
//! exact and its approximate hits, so it neither helps nor hurts the recall measured.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::json;
use vectron_client::{
    Client, CollectionSpec, EfTuning, Filter, HnswConfig, ReadConsistency, ScrollRequest,
    SearchRequest, UpdateCollectionRequest,
};
use vectron_proto::rules::Limits;

use super::input::{Format, Source};
use super::points::parse_filter;
use super::{CliError, Connection, DEFAULT_TIMEOUT, output};

/// Resamples of the bootstrap that bounds each mean recall.
const BOOTSTRAP_RESAMPLES: usize = 1000;
/// The rungs of the ef ladder past `k` (each about 1.5× the one before).
const LADDER: [u32; 22] = [
    16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192,
    12288, 16384, 32768,
];
/// Most queries one tuning measures.
const MAX_QUERIES: usize = 10_000;
/// Ids per scroll page while drawing the sample.
const SCROLL_PAGE: u32 = 10_000;
/// Ids per read of the sampled points' vectors.
const GET_BATCH: usize = 1_000;

/// Find the smallest default ef that reaches a recall on this collection's data.
///
/// Queries come from a file (fvecs, npy, or JSON lines as for `points upsert`) or are
/// drawn from the collection's own points (--sample, with --seed). Exact search gives
/// each query's true top k; then every rung of an ef ladder (k, 16, 24, 32, 48, 64, ...)
/// is measured: mean recall@k over the queries, the lower end of its 95% bootstrap
/// interval, and the client's p50 and p99 latency. The first rung whose lower end meets
/// the target, narrowed by bisection against the rung below, is the ef picked. The
/// same data, queries and seed pick the same ef. With --apply it becomes the
/// collection's default, stored with the measurement (see `collections describe`).
///
/// Example: vectron tune articles --target-recall 0.95 --k 10 --apply
#[derive(Debug, Args)]
pub(crate) struct TuneArgs {
    /// The collection to tune.
    collection: String,
    /// The mean recall@k wanted, above 0 and at most 1 (0.95: 95% of the true top k
    /// found).
    #[arg(long)]
    target_recall: f64,
    /// The k of recall@k: hits per search (1 to 10000).
    #[arg(long, short = 'k', default_value_t = 10)]
    k: u32,
    /// Queries from this file (fvecs, npy, or JSON lines with "vector"); at most 10000
    /// rows are used.
    #[arg(long, value_name = "FILE", conflicts_with = "sample")]
    queries: Option<PathBuf>,
    /// Draw this many of the collection's points as queries (1 to 10000).
    #[arg(long, default_value_t = 200)]
    sample: usize,
    /// Seed of the draw and of the bootstrap.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Tune the searches that carry this filter (JSON, as for `vectron search`).
    #[arg(long, value_name = "JSON")]
    filter: Option<String>,
    /// Store the ef picked as the collection's default, with the measurement.
    #[arg(long)]
    apply: bool,
    #[command(flatten)]
    connection: Connection,
}

/// One query: its vector, and its own id when it was drawn from the collection.
struct Query {
    vector: Vec<f32>,
    own: Option<String>,
    /// The ids of its exact top k (its own id left out).
    truth: HashSet<String>,
}

/// What one ef measured.
#[derive(Debug, Clone, Copy)]
struct Rung {
    ef: u32,
    recall: f64,
    lower: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl TuneArgs {
    pub(crate) fn json(&self) -> bool {
        self.connection.json
    }

    pub(crate) async fn run(self) -> Result<(), CliError> {
        let target = self.target_recall;
        if !(target > 0.0 && target <= 1.0) {
            return Err(CliError::Flag {
                flag: "target-recall",
                reason: format!("must be above 0 and at most 1, got {target}"),
            });
        }
        let limits = Limits::DEFAULT;
        if self.k == 0 || self.k > limits.max_k {
            return Err(CliError::Flag {
                flag: "k",
                reason: format!("must be 1 to {}, got {}", limits.max_k, self.k),
            });
        }
        if self.sample == 0 || self.sample > MAX_QUERIES {
            return Err(CliError::Flag {
                flag: "sample",
                reason: format!("must be 1 to {MAX_QUERIES}, got {}", self.sample),
            });
        }
        let filter = self
            .filter
            .as_deref()
            .map(|f| parse_filter(f, "filter"))
            .transpose()?;
        let client = self.connection.connect(Some(DEFAULT_TIMEOUT)).await?;
        let info = client.describe_collection(&self.collection).await?;
        let spec = info.spec.unwrap_or_default();
        let started = Instant::now();

        let mut queries = match &self.queries {
            Some(path) => read_queries(path, &spec)?,
            None => self.draw(&client).await?,
        };
        for q in &mut queries {
            let found = client
                .search(self.request(q, filter.as_ref(), None))
                .await?;
            q.truth = kept(found.hits.into_iter().map(|h| h.id), q, self.k).collect();
        }
        queries.retain(|q| !q.truth.is_empty());
        if queries.is_empty() {
            return Err(CliError::Flag {
                flag: if self.filter.is_some() {
                    "filter"
                } else {
                    "queries"
                },
                reason: "no query has any hit to measure recall against".into(),
            });
        }

        let mut rungs: Vec<Rung> = Vec::new();
        let mut below: Option<u32> = None;
        let mut passed = None;
        let ladder = std::iter::once(self.k.min(limits.max_ef)).chain(
            LADDER
                .into_iter()
                .filter(|&ef| ef > self.k && ef <= limits.max_ef),
        );
        for ef in ladder {
            let rung = self.measure(&client, &queries, filter.as_ref(), ef).await?;
            rungs.push(rung);
            if rung.lower >= target {
                passed = Some(ef);
                break;
            }
            below = Some(ef);
        }
        let Some(mut hi) = passed else {
            let best = rungs.iter().map(|r| r.lower).fold(0.0, f64::max);
            return Err(CliError::Flag {
                flag: "target-recall",
                reason: format!(
                    "no ef up to {} reaches it: the best lower bound measured is {best:.4}",
                    limits.max_ef
                ),
            });
        };
        if let Some(mut lo) = below {
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                let rung = self
                    .measure(&client, &queries, filter.as_ref(), mid)
                    .await?;
                rungs.push(rung);
                if rung.lower >= target {
                    hi = mid;
                } else {
                    lo = mid;
                }
            }
        }
        rungs.sort_by_key(|r| r.ef);
        let chosen = *rungs.iter().find(|r| r.ef == hi).expect("measured");

        let applied = if self.apply {
            let tuning = EfTuning {
                target_recall: target,
                k: self.k,
                measured_recall: chosen.recall,
                recall_lower_bound: chosen.lower,
                queries: u32::try_from(queries.len()).unwrap_or(u32::MAX),
                tuned_at_unix_ms: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                filter_json: self.filter.clone().unwrap_or_default(),
            };
            let spec = CollectionSpec {
                hnsw: Some(HnswConfig {
                    ef: Some(chosen.ef),
                    ..Default::default()
                }),
                ..Default::default()
            };
            client
                .update_collection(UpdateCollectionRequest {
                    name: self.collection.clone(),
                    spec: Some(spec),
                    tuning: Some(tuning),
                    ..Default::default()
                })
                .await?;
            true
        } else {
            false
        };
        self.report(&rungs, chosen, queries.len(), applied, started);
        Ok(())
    }

    /// Draws `sample` of the collection's points (a reservoir over every id, seeded),
    /// then reads their vectors.
    async fn draw(&self, client: &Client) -> Result<Vec<Query>, CliError> {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut reservoir: Vec<String> = Vec::with_capacity(self.sample);
        let mut seen = 0usize;
        let mut offset = String::new();
        loop {
            let page = client
                .scroll(ScrollRequest {
                    collection: self.collection.clone(),
                    offset: offset.clone(),
                    limit: SCROLL_PAGE,
                    ..Default::default()
                })
                .await?;
            for point in page.points {
                seen += 1;
                if reservoir.len() < self.sample {
                    reservoir.push(point.id);
                } else {
                    let slot = rng.random_range(0..seen);
                    if slot < self.sample {
                        reservoir[slot] = point.id;
                    }
                }
            }
            if page.next_offset.is_empty() {
                break;
            }
            offset = page.next_offset;
        }
        reservoir.sort_unstable();
        let mut queries = Vec::with_capacity(reservoir.len());
        for ids in reservoir.chunks(GET_BATCH) {
            let points = client
                .get(&self.collection, ids.to_vec(), true, false)
                .await?;
            queries.extend(points.into_iter().map(|p| Query {
                vector: p.vector,
                own: Some(p.id),
                truth: HashSet::new(),
            }));
        }
        Ok(queries)
    }

    /// The search of `q` at `ef` (`None`: exact), one more hit than k when the query is
    /// a point of the collection, to leave it out.
    fn request(&self, q: &Query, filter: Option<&Filter>, ef: Option<u32>) -> SearchRequest {
        let k = self.k + u32::from(q.own.is_some());
        // Linearizable: past the gateway's cache, so a second tuning measures searches,
        // not cached answers (as `vectron bench` does by default).
        let mut request = SearchRequest::new(&self.collection, q.vector.clone(), k)
            .with_consistency(ReadConsistency::Linearizable);
        request.filter = filter.cloned();
        match ef {
            Some(ef) => request.ef = Some(ef),
            None => request.exact = true,
        }
        request
    }

    /// Every query at `ef`: mean recall, its bootstrap lower bound, client latency.
    async fn measure(
        &self,
        client: &Client,
        queries: &[Query],
        filter: Option<&Filter>,
        ef: u32,
    ) -> Result<Rung, CliError> {
        let mut latency = Histogram::<u64>::new(3).expect("3 significant figures");
        let mut recalls = Vec::with_capacity(queries.len());
        for q in queries {
            let asked = Instant::now();
            let found = client.search(self.request(q, filter, Some(ef))).await?;
            let us = u64::try_from(asked.elapsed().as_micros()).unwrap_or(u64::MAX);
            latency.saturating_record(us.max(1));
            let hits = kept(found.hits.into_iter().map(|h| h.id), q, self.k)
                .filter(|id| q.truth.contains(id))
                .count();
            recalls.push(hits as f64 / q.truth.len() as f64);
        }
        let recall = mean(&recalls);
        let mut rng = StdRng::seed_from_u64(self.seed ^ u64::from(ef).rotate_left(32));
        let mut means: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
            .map(|_| {
                let total: f64 = (0..recalls.len())
                    .map(|_| recalls[rng.random_range(0..recalls.len())])
                    .sum();
                total / recalls.len() as f64
            })
            .collect();
        means.sort_by(f64::total_cmp);
        // The 2.5th percentile: the lower end of a two-sided 95% interval.
        let lower = means[BOOTSTRAP_RESAMPLES * 25 / 1000];
        Ok(Rung {
            ef,
            recall,
            lower,
            p50_ms: latency.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: latency.value_at_quantile(0.99) as f64 / 1000.0,
        })
    }

    fn report(
        &self,
        rungs: &[Rung],
        chosen: Rung,
        queries: usize,
        applied: bool,
        started: Instant,
    ) {
        if self.connection.json {
            let rows: Vec<serde_json::Value> = rungs
                .iter()
                .map(|r| {
                    json!({"ef": r.ef, "recall": r.recall, "recall_lower_bound": r.lower,
                           "p50_ms": r.p50_ms, "p99_ms": r.p99_ms})
                })
                .collect();
            output::print_value(&json!({
                "collection": self.collection,
                "k": self.k,
                "target_recall": self.target_recall,
                "queries": queries,
                "ef": chosen.ef,
                "recall": chosen.recall,
                "recall_lower_bound": chosen.lower,
                "applied": applied,
                "seconds": started.elapsed().as_secs_f64(),
                "rungs": rows,
            }));
            return;
        }
        let mut out = format!(
            "recall@{} over {queries} queries, target {} (95% lower bound)\n     ef   recall   lower    p50 ms   p99 ms\n",
            self.k, self.target_recall
        );
        for r in rungs {
            out.push_str(&format!(
                "{:>7}   {:.4}   {:.4}   {:>7.3}  {:>7.3}{}\n",
                r.ef,
                r.recall,
                r.lower,
                r.p50_ms,
                r.p99_ms,
                if r.ef == chosen.ef {
                    "   <- picked"
                } else {
                    ""
                }
            ));
        }
        out.push_str(&format!(
            "ef {} {} ({:.1} s)\n",
            chosen.ef,
            if applied {
                format!("is now the default of {}", self.collection)
            } else {
                "picked; --apply makes it the collection's default".to_owned()
            },
            started.elapsed().as_secs_f64()
        ));
        output::text(&out);
    }
}

/// The queries of a file, checked against the collection; at most [`MAX_QUERIES`].
fn read_queries(path: &Path, spec: &CollectionSpec) -> Result<Vec<Query>, CliError> {
    let source = Source {
        path: path.to_path_buf(),
        format: Format::of_path(path)?,
        payloads: None,
        id_prefix: String::new(),
        dimension: spec.dimension as usize,
        cosine: spec.metric() == vectron_client::api::Metric::Cosine,
    };
    let mut queries = Vec::new();
    for point in source.open()?.take(MAX_QUERIES) {
        queries.push(Query {
            vector: point?.vector,
            own: None,
            truth: HashSet::new(),
        });
    }
    Ok(queries)
}

/// The ids of a search's hits without the query's own, at most `k`.
fn kept(ids: impl Iterator<Item = String>, q: &Query, k: u32) -> impl Iterator<Item = String> {
    let own = q.own.clone();
    ids.filter(move |id| Some(id) != own.as_ref())
        .take(k as usize)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}
