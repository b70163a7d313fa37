//! The worker's admin HTTP listener: per-core statistics as JSON and as Prometheus
//! text, and a health check. Statistics are gathered by asking each core over its
//! command channel; nothing reads a core's memory from here. A worker with a cluster key
//! serves statistics only to callers presenting it (`x-vectron-cluster-key: KEY`, or
//! `authorization: Bearer KEY` as Prometheus sends it); `/healthz` tells anyone.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::mpsc::Sender;
use tokio::sync::oneshot;
use vectron_auth::{CLUSTER_KEY_HEADER, ClusterKey};
use vectron_core_shard::CoreCommand;
use vectron_proto::v1::{CoreStats, CoreStatsResponse, LatencySummary};

use crate::worker::CORE_REPLY;

/// What the handlers share: the worker's id, a sender per core, and the cluster key.
#[derive(Debug, Clone)]
pub(crate) struct AdminState {
    worker_id: Arc<str>,
    inboxes: Arc<[Sender<CoreCommand>]>,
    key: Option<ClusterKey>,
}

impl AdminState {
    pub(crate) fn new(
        worker_id: String,
        inboxes: Vec<Sender<CoreCommand>>,
        key: Option<ClusterKey>,
    ) -> Self {
        Self {
            worker_id: worker_id.into(),
            inboxes: inboxes.into(),
            key,
        }
    }
}

/// Asks every core for its statistics, all at once; cores that do not answer in time
/// are left out.
pub(crate) async fn gather(inboxes: &[Sender<CoreCommand>]) -> Vec<CoreStats> {
    gather_within(inboxes, CORE_REPLY).await
}

/// [`gather`], with every core given `within`. A core whose inbox stays full (a stalled
/// core) is left out like one that does not answer: the others are still reported, so
/// one stalled core does not stop the worker's heartbeats.
async fn gather_within(inboxes: &[Sender<CoreCommand>], within: Duration) -> Vec<CoreStats> {
    let ask = |inbox: &Sender<CoreCommand>| {
        let inbox = inbox.clone();
        async move {
            let (tx, rx) = oneshot::channel();
            inbox.send(CoreCommand::Stats(tx)).await.ok()?;
            rx.await.ok()
        }
    };
    let answers = futures_util::future::join_all(
        inboxes
            .iter()
            .map(|inbox| tokio::time::timeout(within, ask(inbox))),
    )
    .await;
    answers
        .into_iter()
        .filter_map(|a| a.ok().flatten())
        .collect()
}

pub(crate) async fn serve(
    listener: TcpListener,
    state: AdminState,
    stop: impl Future<Output = ()> + Send + 'static,
) {
    let app = Router::new()
        .route("/v1/stats/cores", get(stats_json))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_key,
        ))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::error!(error = %e, "the admin listener failed");
    }
}

/// Lets through a request that presents the cluster key, when the worker has one;
/// answers 401 otherwise.
async fn require_key(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    if let Some(key) = &state.key {
        let headers = request.headers();
        let admitted = match headers.get(header::AUTHORIZATION) {
            Some(bearer) => key.admit_bearer(bearer.as_bytes()),
            None => key.admit(headers.get(CLUSTER_KEY_HEADER).map(|v| v.as_bytes())),
        };
        if let Err(refusal) = admitted {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                format!("{refusal}\n"),
            )
                .into_response();
        }
    }
    next.run(request).await
}

async fn stats_json(State(state): State<AdminState>) -> Response {
    let cores = gather(&state.inboxes).await;
    let unreachable = if cores.len() < state.inboxes.len() {
        vec![state.worker_id.to_string()]
    } else {
        Vec::new()
    };
    let body = vectron_proto::json::to_json(&CoreStatsResponse {
        cores,
        unreachable_workers: unreachable,
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let cores = gather(&state.inboxes).await;
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        prometheus_text(&cores),
    )
        .into_response()
}

/// Renders statistics in the Prometheus text exposition format.
pub(crate) fn prometheus_text(cores: &[CoreStats]) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &mut dyn FnMut(&mut String)| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        samples(&mut out);
    };
    let core_labels =
        |c: &CoreStats| format!("worker=\"{}\",core=\"{}\"", escape(&c.worker_id), c.core);
    let per_core = |f: fn(&CoreStats) -> f64, name: &'static str| {
        move |out: &mut String| {
            for c in cores {
                let _ = writeln!(out, "{name}{{{}}} {}", core_labels(c), f(c));
            }
        }
    };
    family(
        "vectron_core_searches_total",
        "counter",
        "Searches served by the core.",
        &mut per_core(|c| c.searches_total as f64, "vectron_core_searches_total"),
    );
    family(
        "vectron_core_upserted_points_total",
        "counter",
        "Points upserted on the core.",
        &mut per_core(
            |c| c.upserted_points_total as f64,
            "vectron_core_upserted_points_total",
        ),
    );
    family(
        "vectron_core_search_qps",
        "gauge",
        "Searches per second over the last ten seconds.",
        &mut per_core(|c| c.search_qps, "vectron_core_search_qps"),
    );
    family(
        "vectron_core_upsert_points_per_second",
        "gauge",
        "Upserted points per second over the last ten seconds.",
        &mut per_core(
            |c| c.upsert_points_per_s,
            "vectron_core_upsert_points_per_second",
        ),
    );
    family(
        "vectron_core_calls_refused_total",
        "counter",
        "Calls the core refused at its limits (calls in flight, buffered message bytes).",
        &mut per_core(
            |c| c.calls_refused_total as f64,
            "vectron_core_calls_refused_total",
        ),
    );
    family(
        "vectron_core_buffered_bytes",
        "gauge",
        "Bytes of request and response messages the core's calls hold.",
        &mut per_core(|c| c.buffered_bytes as f64, "vectron_core_buffered_bytes"),
    );
    family(
        "vectron_core_writes_refused_backlog_total",
        "counter",
        "Writes refused because a shard's backlog stayed over its bound.",
        &mut per_core(
            |c| c.writes_refused_backlog_total as f64,
            "vectron_core_writes_refused_backlog_total",
        ),
    );
    family(
        "vectron_core_in_flight",
        "gauge",
        "Calls being served by the core.",
        &mut per_core(|c| f64::from(c.in_flight), "vectron_core_in_flight"),
    );
    family(
        "vectron_core_queue_depth",
        "gauge",
        "Points waiting to be indexed on the core.",
        &mut per_core(|c| c.queue_depth as f64, "vectron_core_queue_depth"),
    );
    family(
        "vectron_core_memory_bytes",
        "gauge",
        "Memory held by the core's shards.",
        &mut per_core(|c| c.memory_bytes as f64, "vectron_core_memory_bytes"),
    );
    family(
        "vectron_core_uptime_seconds",
        "gauge",
        "Seconds since the core started.",
        &mut per_core(|c| c.uptime_s, "vectron_core_uptime_seconds"),
    );
    for (name, pick, help) in [
        (
            "vectron_core_search_latency_microseconds",
            (|c: &CoreStats| c.search_latency) as fn(&CoreStats) -> Option<LatencySummary>,
            "Search latency on the core.",
        ),
        (
            "vectron_core_upsert_latency_microseconds",
            |c: &CoreStats| c.upsert_latency,
            "Upsert latency until acknowledged.",
        ),
        (
            "vectron_core_wal_sync_latency_microseconds",
            |c: &CoreStats| c.wal_sync_latency,
            "Write-ahead log fdatasync latency.",
        ),
        (
            "vectron_core_scheduling_delay_microseconds",
            |c: &CoreStats| c.scheduling_delay,
            "How long a task that became ready waited to run on the core, sampled every 10 ms: the wait of a call arriving behind the core's work.",
        ),
    ] {
        family(name, "summary", help, &mut |out: &mut String| {
            for c in cores {
                let l = pick(c).unwrap_or_default();
                for (q, v) in [
                    ("0.5", l.p50_us),
                    ("0.9", l.p90_us),
                    ("0.99", l.p99_us),
                    ("0.999", l.p999_us),
                ] {
                    let _ = writeln!(out, "{name}{{{},quantile=\"{q}\"}} {v}", core_labels(c));
                }
                let _ = writeln!(
                    out,
                    "{name}_sum{{{}}} {}",
                    core_labels(c),
                    l.mean_us * l.count as f64
                );
                let _ = writeln!(out, "{name}_count{{{}}} {}", core_labels(c), l.count);
            }
        });
    }
    for (name, pick, help) in [
        (
            "vectron_shard_points",
            (|s: &vectron_proto::v1::ShardStats| s.points)
                as fn(&vectron_proto::v1::ShardStats) -> u64,
            "Live points in the shard.",
        ),
        (
            "vectron_shard_indexed_points",
            |s| s.indexed_points,
            "Points linked into the shard's graph.",
        ),
        (
            "vectron_shard_memory_bytes",
            |s| s.memory_bytes,
            "Memory held by the shard.",
        ),
        (
            "vectron_shard_disk_bytes",
            |s| s.disk_bytes,
            "Bytes of the shard's checkpoint and log on disk.",
        ),
        (
            "vectron_shard_wal_bytes",
            |s| s.wal_bytes,
            "Log bytes not yet covered by a checkpoint.",
        ),
    ] {
        family(name, "gauge", help, &mut |out: &mut String| {
            for c in cores {
                for s in &c.shards {
                    let _ = writeln!(
                        out,
                        "{name}{{{},collection=\"{}\",shard=\"{}\"}} {}",
                        core_labels(c),
                        escape(&s.collection),
                        s.shard_id,
                        pick(s)
                    );
                }
            }
        });
    }
    out
}

/// Escapes a Prometheus label value.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use vectron_proto::v1::ShardStats;

    /// Pins a stalled core (its inbox full, never read) holding back the statistics of
    /// every core, and with them the worker's heartbeats.
    #[tokio::test]
    async fn a_stalled_core_is_left_out_and_the_others_reported() {
        let (stalled, _kept) = tokio::sync::mpsc::channel(1);
        let (fill, _) = oneshot::channel();
        stalled.try_send(CoreCommand::Stats(fill)).unwrap();
        let (healthy, mut inbox) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            while let Some(CoreCommand::Stats(reply)) = inbox.recv().await {
                let _ = reply.send(CoreStats {
                    core: 1,
                    ..CoreStats::default()
                });
            }
        });
        let started = std::time::Instant::now();
        let stats = gather_within(&[stalled, healthy], Duration::from_millis(200)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].core, 1);
    }

    #[test]
    fn prometheus_text_names_every_core_and_shard() {
        let core = CoreStats {
            worker_id: "w\"1".into(),
            core: 3,
            searches_total: 42,
            search_latency: Some(LatencySummary {
                count: 2,
                mean_us: 10.0,
                p99_us: 15.0,
                ..Default::default()
            }),
            shards: vec![ShardStats {
                collection: "docs".into(),
                shard_id: 1,
                points: 7,
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = prometheus_text(&[core]);
        assert!(
            text.contains("vectron_core_searches_total{worker=\"w\\\"1\",core=\"3\"} 42\n"),
            "{text}"
        );
        assert!(text.contains("vectron_core_search_latency_microseconds{worker=\"w\\\"1\",core=\"3\",quantile=\"0.99\"} 15\n"));
        assert!(text.contains(
            "vectron_core_search_latency_microseconds_count{worker=\"w\\\"1\",core=\"3\"} 2\n"
        ));
        assert!(text.contains(
            "vectron_shard_points{worker=\"w\\\"1\",core=\"3\",collection=\"docs\",shard=\"1\"} 7\n"
        ));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "bad sample line {line}");
        }
    }
}
