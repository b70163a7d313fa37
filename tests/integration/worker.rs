//! A real `vectron worker` process driven over its core ports by a tonic client:
//! shards open and serve every CoreService call, epochs are enforced, bad input gets a
//! status (never a crashed core), and acknowledged writes survive SIGKILL.

use std::io::Write as _;
use std::net::TcpStream;
use std::time::Duration;

use tonic::Code;
use tonic::transport::Channel;
use vectron_proto::core::v1::core_service_client::CoreServiceClient;
use vectron_proto::core::v1::shard_admin_client::ShardAdminClient;
use vectron_proto::core::v1::{
    CheckpointRequest, CountRequest, DeleteRequest, GetRequest, OpenShardRequest, Point, PointIds,
    ScrollRequest, SearchRequest, ShardAssignment, ShardRef, StatsRequest, UpsertRequest,
    delete_request,
};
use vectron_proto::v1::{
    CollectionSpec, Condition, Filter, Metric, PayloadFieldKind, PayloadIndex,
};

use crate::support::{self, Fixture, Process};

const COLLECTION: &str = "wiki";

fn spec(dim: usize) -> CollectionSpec {
    let mut spec = CollectionSpec::new(COLLECTION, dim as u32, Metric::Cosine);
    spec.payload_indexes = vec![PayloadIndex {
        field: "title".into(),
        kind: PayloadFieldKind::Keyword.into(),
    }];
    spec
}

fn shard(epoch: u64) -> Option<ShardRef> {
    Some(ShardRef {
        collection: COLLECTION.into(),
        shard_id: 0,
        epoch,
    })
}

/// The whole hash range in one shard, so the fixture's ground truth applies as is.
fn assignment(dim: usize, epoch: u64) -> ShardAssignment {
    ShardAssignment {
        spec: Some(spec(dim)),
        shard_id: 0,
        hash_range_start: 0,
        hash_range_end: u64::MAX,
        epoch,
        ..Default::default()
    }
}

fn points(f: &Fixture, rows: std::ops::Range<usize>) -> Vec<Point> {
    rows.map(|i| Point {
        id: i.to_string(),
        vector: f.base[i].clone(),
        payload_json: f.payloads[i].to_string().into_bytes(),
    })
    .collect()
}

async fn client(p: &Process, core: usize) -> CoreServiceClient<Channel> {
    CoreServiceClient::connect(support::core_url(p, core))
        .await
        .unwrap()
        .max_decoding_message_size(256 << 20)
        .max_encoding_message_size(256 << 20)
}

/// A client of the ShardAdmin service of core `core` of a standalone worker.
async fn admin(p: &Process, core: usize) -> ShardAdminClient<Channel> {
    ShardAdminClient::connect(support::core_url(p, core))
        .await
        .unwrap()
}

/// A worker with one core, the fixture's shard open on it at epoch 1, and a client of
/// that core.
async fn one_shard_worker(
    dir: &std::path::Path,
    f: &Fixture,
) -> (Process, CoreServiceClient<Channel>) {
    let worker = support::worker(dir, 1);
    let core = client(&worker, 0).await;
    admin(&worker, 0)
        .await
        .open_shard(OpenShardRequest {
            assignment: Some(assignment(f.dim, 1)),
        })
        .await
        .unwrap();
    (worker, core)
}

fn search(vector: &[f32], k: u32, ef: u32, filter: Option<Filter>) -> SearchRequest {
    SearchRequest {
        shard: shard(1),
        vector: vector.to_vec(),
        k,
        ef: Some(ef),
        filter,
        with_payload: false,
        with_vector: false,
        consistency: None,
    }
}

fn ids(hits: &[vectron_proto::core::v1::ScoredPoint]) -> Vec<usize> {
    hits.iter().map(|h| h.id.parse().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_serves_every_core_call_end_to_end() {
    let f = Fixture::load();
    let dir = support::tempdir();
    let worker = support::worker(dir.path(), 2);
    assert_eq!(worker.ready["cores"].as_array().unwrap().len(), 2);
    let mut core = client(&worker, 0).await;

    let opened = admin(&worker, 0)
        .await
        .open_shard(OpenShardRequest {
            assignment: Some(assignment(f.dim, 1)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.stats.unwrap().points, 0);

    for chunk in (0..f.base.len()).step_by(500) {
        let end = (chunk + 500).min(f.base.len());
        let ack = core
            .upsert(UpsertRequest {
                shard: shard(1),
                points: points(&f, chunk..end),
                wait: None,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(ack.count as usize, end - chunk);
        assert!(ack.durable);
    }

    // Search: recall@10 against exact ground truth, whether or not indexing caught up.
    let mut total = 0.0;
    for (q, truth) in f.queries.iter().zip(&f.truth) {
        let hits = core
            .search(search(q, 10, 64, None))
            .await
            .unwrap()
            .into_inner()
            .hits;
        assert_eq!(hits.len(), 10);
        assert!(
            hits.windows(2).all(|w| w[0].score >= w[1].score),
            "best first"
        );
        total += support::recall(&ids(&hits), truth, 10);
    }
    let recall = total / f.queries.len() as f64;
    assert!(recall >= 0.95, "recall@10 at ef=64: {recall}");

    // Filtered search on the indexed title keyword against exact filtered truth.
    let mut filtered = 0.0;
    let mut n = 0;
    for (qi, q) in f.queries.iter().enumerate().take(50) {
        let title = f.payloads[f.truth[qi][0]]["title"]
            .as_str()
            .unwrap()
            .to_owned();
        let filter = Filter::must([Condition::keyword("title", title.clone())]);
        let exact = core
            .exact_search(search(q, 10, 64, Some(filter.clone())))
            .await
            .unwrap();
        let exact = ids(&exact.into_inner().hits);
        let approx = core
            .search(search(q, 10, 64, Some(filter)))
            .await
            .unwrap()
            .into_inner();
        let approx = ids(&approx.hits);
        assert!(
            approx
                .iter()
                .all(|&i| f.payloads[i]["title"] == title.as_str())
        );
        filtered += support::recall(&approx, &exact, exact.len().min(10));
        n += 1;
    }
    let filtered = filtered / f64::from(n);
    assert!(filtered >= 0.95, "filtered recall@10: {filtered}");

    // Get, with payload and vector, in request order; missing ids are left out.
    let got = core
        .get(GetRequest {
            shard: shard(1),
            ids: vec!["5".into(), "nope".into(), "3".into()],
            with_vector: true,
            with_payload: true,
            consistency: None,
        })
        .await
        .unwrap()
        .into_inner()
        .points;
    assert_eq!(
        got.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["5", "3"]
    );
    let payload: serde_json::Value = serde_json::from_slice(&got[0].payload_json).unwrap();
    assert_eq!(payload, f.payloads[5]);
    let norm: f32 = got[0].vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3);

    // Count, with and without a filter.
    let count = |filter| CountRequest {
        shard: shard(1),
        filter,
        consistency: None,
    };
    assert_eq!(
        core.count(count(None)).await.unwrap().into_inner().count,
        2000
    );
    let title = f.payloads[0]["title"].as_str().unwrap();
    let with_title = f.payloads.iter().filter(|p| p["title"] == title).count() as u64;
    let by_title = Some(Filter::must([Condition::keyword("title", title)]));
    assert_eq!(
        core.count(count(by_title.clone()))
            .await
            .unwrap()
            .into_inner()
            .count,
        with_title
    );

    // Delete by id and by filter.
    let deleted = core
        .delete(DeleteRequest {
            shard: shard(1),
            selector: Some(delete_request::Selector::Ids(PointIds {
                ids: vec!["0".into(), "1".into(), "missing".into()],
            })),
            wait: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(deleted.deleted, 2);
    let deleted = core
        .delete(DeleteRequest {
            shard: shard(1),
            selector: Some(delete_request::Selector::Filter(by_title.clone().unwrap())),
            wait: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        deleted.deleted,
        with_title - 1,
        "row 0 had that title and was gone already"
    );
    let left = 2000 - 2 - (with_title - 1);
    assert_eq!(
        core.count(count(None)).await.unwrap().into_inner().count,
        left
    );
    let hits = core
        .search(search(&f.base[0], 5, 64, None))
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert!(
        hits.iter().all(|h| h.id != "0" && h.id != "1"),
        "deleted points are not found"
    );

    // Scroll pages through every point exactly once, in id order.
    let mut seen = Vec::new();
    let mut offset = String::new();
    loop {
        let page = core
            .scroll(ScrollRequest {
                shard: shard(1),
                offset: offset.clone(),
                limit: 333,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.points.into_iter().map(|p| p.id));
        if page.next_offset.is_empty() {
            break;
        }
        offset = page.next_offset;
    }
    assert_eq!(seen.len() as u64, left);
    assert!(seen.windows(2).all(|w| w[0] < w[1]));

    // A routing epoch other than the shard's is refused with the current one.
    let stale = core
        .count(CountRequest {
            shard: shard(7),
            filter: None,
            consistency: None,
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    assert_eq!(stale.metadata().get("vectron-epoch").unwrap(), "1");
    // The other core does not hold the shard.
    let mut other = client(&worker, 1).await;
    let missing = other
        .count(CountRequest {
            shard: shard(1),
            filter: None,
            consistency: None,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    // Stats: through the core and through the admin listener.
    let stats = core.stats(StatsRequest {}).await.unwrap().into_inner();
    assert_eq!(stats.core, 0);
    assert!(stats.searches_total >= 200);
    assert_eq!(stats.shards.len(), 1);
    assert_eq!(stats.shards[0].points, left);
    assert!(matches!(stats.driver.as_str(), "io_uring" | "legacy"));
    let admin = worker.ready["admin"].as_str().unwrap();
    let (status, body) = support::http_get(admin, "/v1/stats/cores");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["cores"].as_array().unwrap().len(), 2);
    assert_eq!(json["cores"][0]["shards"][0]["points"], left);
    let (status, metrics) = support::http_get(admin, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("vectron_shard_points{"), "{metrics}");
    worker.terminate();
}

/// A unary upsert, or a streamed message, larger than a piece is checked whole, then
/// logged and applied a piece at a time (one log record each, the core's other calls
/// running between them); a unary one is answered once, for all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_upsert_is_refused_or_taken_whole_and_logged_in_pieces() {
    let f = Fixture::load();
    let dir = support::tempdir();
    let (worker, mut core) = one_shard_worker(dir.path(), &f).await;
    let piece = vectron_core_shard::WRITE_PIECE;
    let n = 3 * piece + 7;
    assert!(
        f.base.len() >= 2 * n,
        "the fixture holds {} points",
        f.base.len()
    );

    let ack = core
        .upsert(UpsertRequest {
            shard: shard(1),
            points: points(&f, 0..n),
            wait: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.count as usize, n);
    assert!(ack.durable);
    assert_eq!(
        ack.lsn,
        n.div_ceil(piece) as u64,
        "one log record per piece"
    );

    // One bad point at the end of a batch of several pieces: nothing of it is logged.
    let mut bad = points(&f, n..2 * n);
    bad.last_mut().unwrap().vector[0] = f32::NAN;
    let refused = core
        .upsert(UpsertRequest {
            shard: shard(1),
            points: bad,
            wait: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    // So is a streamed message of several pieces with one bad point at its end.
    let mut bad = points(&f, n..2 * n);
    bad.last_mut().unwrap().vector[0] = f32::NAN;
    let streamed = core
        .upsert_stream(tokio_stream::iter([UpsertRequest {
            shard: shard(1),
            points: bad,
            wait: None,
        }]))
        .await
        .unwrap_err();
    assert_eq!(streamed.code(), Code::InvalidArgument, "{streamed:?}");
    let stats = core.stats(StatsRequest {}).await.unwrap().into_inner();
    assert_eq!(stats.shards[0].points as usize, n);
    assert_eq!(stats.shards[0].last_lsn, ack.lsn);

    // Every point of the batch is there, the last piece's too.
    let got = core
        .get(GetRequest {
            shard: shard(1),
            ids: vec!["0".into(), (n - 1).to_string()],
            with_payload: false,
            with_vector: false,
            consistency: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.points.len(), 2);
    worker.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_status_and_the_core_keeps_serving() {
    let f = Fixture::load();
    let dir = support::tempdir();
    let (worker, mut core) = one_shard_worker(dir.path(), &f).await;

    let upsert = |points| UpsertRequest {
        shard: shard(1),
        points,
        wait: None,
    };
    let one = |vector: Vec<f32>| Point {
        id: "x".into(),
        vector,
        payload_json: vec![],
    };
    let cases: Vec<(UpsertRequest, &str)> = vec![
        (upsert(vec![one(vec![0.5; f.dim - 1])]), "dimension"),
        (upsert(vec![one(vec![0.5; 10_000])]), "dimension"),
        (
            upsert(vec![one({
                let mut v = vec![0.5; f.dim];
                v[3] = f32::NAN;
                v
            })]),
            "finite",
        ),
        (
            upsert(vec![one({
                let mut v = vec![0.5; f.dim];
                v[0] = f32::INFINITY;
                v
            })]),
            "finite",
        ),
        // Finite values whose squares underflow (or overflow) f32: no direction to
        // normalise, or scores that overflow. The core refuses them before its log.
        (upsert(vec![one(vec![1e-30; f.dim])]), "too short"),
        (upsert(vec![one(vec![3e38; f.dim])]), "scores overflow"),
        (
            upsert(vec![Point {
                payload_json: format!("{}1{}", "{\"a\":".repeat(25), "}".repeat(25)).into(),
                ..one(vec![0.5; f.dim])
            }]),
            "25 levels deep",
        ),
        (upsert(vec![]), "no points"),
        (
            upsert(vec![Point {
                id: "y".repeat(1024),
                ..one(vec![0.5; f.dim])
            }]),
            "128 bytes",
        ),
        (
            upsert(vec![Point {
                payload_json: b"[1,2]".to_vec(),
                ..one(vec![0.5; f.dim])
            }]),
            "JSON object",
        ),
        (
            upsert(vec![Point {
                payload_json: b"{oops".to_vec(),
                ..one(vec![0.5; f.dim])
            }]),
            "JSON object",
        ),
        (
            upsert(vec![one(vec![0.5; f.dim]), one(vec![0.5; f.dim])]),
            "more than once",
        ),
    ];
    for (request, needle) in cases {
        let err = core.upsert(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{needle}: {err:?}");
        assert!(
            err.message().contains(needle),
            "{needle}: {}",
            err.message()
        );
    }
    let err = core
        .search(search(&[0.5; 3], 10, 64, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = core
        .search(search(&f.queries[0], 0, 64, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    for (query, needle) in [(0.0, "all-zero"), (1e-30, "too short"), (3e38, "overflow")] {
        let err = core
            .search(search(&vec![query; f.dim], 10, 64, None))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains(needle), "{}", err.message());
    }
    let unknown = SearchRequest {
        shard: Some(ShardRef {
            collection: "nope".into(),
            shard_id: 0,
            epoch: 1,
        }),
        ..search(&f.queries[0], 10, 64, None)
    };
    assert_eq!(
        core.search(unknown).await.unwrap_err().code(),
        Code::NotFound
    );
    // A collection name is a directory name: one outside the control plane's rule (here,
    // one that climbs out of the data directory) is refused before anything is created.
    for name in ["../escape", "a/b", ".hidden", ""] {
        let mut bad = assignment(f.dim, 1);
        bad.spec.as_mut().unwrap().name = name.into();
        let err = admin(&worker, 0)
            .await
            .open_shard(OpenShardRequest {
                assignment: Some(bad),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name:?}: {err:?}");
        assert!(err.message().contains("collection name"), "{err:?}");
    }
    assert!(!dir.path().join("escape").exists());

    // A message over the core's 64 MiB limit.
    let huge = vec![one(vec![0.5; f.dim]); 50_000];
    let err = core.upsert(upsert(huge)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");

    // Garbage bytes on the port close that connection only.
    let addr = worker.ready["cores"][0]["addr"].as_str().unwrap();
    let mut raw = TcpStream::connect(addr).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n\x00\x01\x02garbage")
        .unwrap();
    drop(raw);

    // Nothing above was written; the core still serves.
    core.upsert(upsert(points(&f, 0..10))).await.unwrap();
    let count = core
        .count(CountRequest {
            shard: shard(1),
            filter: None,
            consistency: None,
        })
        .await
        .unwrap();
    assert_eq!(count.into_inner().count, 10);
    worker.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_during_a_streamed_ingest() {
    let f = Fixture::load();
    let dir = support::tempdir();
    let (worker, mut core) = one_shard_worker(dir.path(), &f).await;

    // Acknowledged writes: unary upserts, each answered only when durable.
    for chunk in (0..1000).step_by(100) {
        core.upsert(UpsertRequest {
            shard: shard(1),
            points: points(&f, chunk..chunk + 100),
            wait: None,
        })
        .await
        .unwrap();
    }
    // A stream still in flight when the process dies: none of it was acknowledged.
    let batches: Vec<UpsertRequest> = (1000..2000)
        .step_by(50)
        .map(|c| UpsertRequest {
            shard: shard(1),
            points: points(&f, c..c + 50),
            wait: None,
        })
        .collect();
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut streaming = client(&worker, 0).await;
    let call = tokio::spawn(async move {
        streaming
            .upsert_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    for b in batches.into_iter().take(10) {
        tx.send(b).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker.kill();
    assert!(
        call.await.unwrap().is_err(),
        "the stream never finished, so it failed"
    );

    let worker = support::worker(dir.path(), 1);
    let mut core = client(&worker, 0).await;
    // The worker reopened the shard from its directory on start.
    let count = core
        .count(CountRequest {
            shard: shard(1),
            filter: None,
            consistency: None,
        })
        .await
        .unwrap();
    let count = count.into_inner().count;
    assert!(
        (1000..=1500).contains(&count),
        "acknowledged 1000, streamed 500 more: {count}"
    );
    let got = core
        .get(GetRequest {
            shard: shard(1),
            ids: (0..1000).map(|i| i.to_string()).collect(),
            with_vector: false,
            with_payload: true,
            consistency: None,
        })
        .await
        .unwrap()
        .into_inner()
        .points;
    assert_eq!(got.len(), 1000, "every acknowledged point is back");
    for p in &got {
        let i: usize = p.id.parse().unwrap();
        let payload: serde_json::Value = serde_json::from_slice(&p.payload_json).unwrap();
        assert_eq!(payload, f.payloads[i]);
    }
    // And searchable: each acknowledged point finds itself first.
    for i in (0..1000).step_by(97) {
        let hits = core
            .search(search(&f.base[i], 1, 64, None))
            .await
            .unwrap()
            .into_inner()
            .hits;
        assert_eq!(hits[0].id, i.to_string());
    }
    worker.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_restart_reopens_from_the_checkpoint() {
    let f = Fixture::load();
    let dir = support::tempdir();
    let (worker, mut core) = one_shard_worker(dir.path(), &f).await;
    core.upsert(UpsertRequest {
        shard: shard(1),
        points: points(&f, 0..600),
        wait: None,
    })
    .await
    .unwrap();
    let before = core
        .checkpoint(CheckpointRequest { shard: shard(1) })
        .await
        .unwrap()
        .into_inner();
    assert!(before.lsn >= 1);
    core.upsert(UpsertRequest {
        shard: shard(1),
        points: points(&f, 600..700),
        wait: None,
    })
    .await
    .unwrap();
    worker.terminate(); // checkpoints again on the way out

    let worker = support::worker(dir.path(), 1);
    assert_eq!(worker.ready["cores"][0]["reopened_shards"], 1);
    let mut core = client(&worker, 0).await;
    let stats = core.stats(StatsRequest {}).await.unwrap().into_inner();
    let s = &stats.shards[0];
    assert_eq!(s.points, 700);
    assert!(
        s.checkpoint_lsn > before.lsn,
        "shutdown wrote a newer checkpoint"
    );
    assert!(
        s.wal_bytes < 4096,
        "little log left to replay: {} bytes",
        s.wal_bytes
    );
    let hits = core
        .search(search(&f.base[650], 1, 64, None))
        .await
        .unwrap()
        .into_inner()
        .hits;
    assert_eq!(hits[0].id, "650");
    worker.terminate();
}

/// The CPUs each thread of process `pid` may run on, by thread name.
fn thread_cpus(pid: u32) -> Vec<(String, Vec<usize>)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .flatten()
        .map(|task| {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .unwrap_or("")
                    .trim()
                    .to_owned()
            };
            // "0-3,6": ranges and single CPUs.
            let cpus = field("Cpus_allowed_list:")
                .split(',')
                .filter(|part| !part.is_empty())
                .flat_map(|part| {
                    let (lo, hi) = part.split_once('-').unwrap_or((part, part));
                    lo.parse::<usize>().unwrap()..=hi.parse::<usize>().unwrap()
                })
                .collect();
            (field("Name:"), cpus)
        })
        .collect()
}

/// A core pinned to a CPU has it to itself: `vectron dev`'s other threads (gateway,
/// control plane, worker admin) run on the CPUs the cores leave free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_core_has_its_cpu_to_itself() {
    let cpus = vectron_core_shard::allowed_cpus().unwrap();
    if cpus.len() < 2 {
        eprintln!(
            "WARNING: one CPU only: keeping threads off a pinned core's CPU is not exercised here"
        );
        return;
    }
    let core_cpu = cpus[cpus.len() - 1];
    let dir = support::tempdir();
    let dev = support::dev_with(dir.path(), &["--cpus", &core_cpu.to_string()]);
    // Serving: every thread has started.
    let http = support::Http::new(&support::http_addr(&dev));
    let (status, _) = http.json("GET", "/v1/stats/cores", None).await;
    assert_eq!(status, 200);
    let threads = thread_cpus(dev.child.id());
    assert!(
        threads.iter().any(|(name, _)| name == "vectron-core-0"),
        "{threads:?}"
    );
    for (name, allowed) in &threads {
        if name == "vectron-core-0" {
            assert_eq!(allowed, &[core_cpu], "{threads:?}");
        } else {
            assert!(
                !allowed.contains(&core_cpu),
                "thread {name} may run on the core's CPU {core_cpu}: {threads:?}"
            );
        }
    }
    dev.terminate();
}
