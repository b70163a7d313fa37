//! A real `vectron dev` (control plane, worker and gateway in one process) used the way a
//! user uses it: through the Rust SDK over gRPC and through HTTP/JSON with a real HTTP
//! client. Ingest, search with recall against exact ground truth, filters, get, delete,
//! scroll, count; a clean restart and a SIGKILL, after which everything acknowledged is
//! there; and bad input, answered with the right code while the server keeps serving.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{Value, json};
use vectron_client::{
    Client, CollectionSpec, Condition, Filter, Metric, PayloadFieldKind, PayloadIndex, Point,
    Quantization, ScrollRequest, SearchRequest, payload,
};

use crate::support::{self, Fixture, Http, Process};

/// The `ef` at which recall@10 over the 2,000-point fixture, split over two shards, is
/// at least 0.95.
const EF: u32 = 64;
/// Cores of every `vectron dev` here; the collections get one shard per core.
const CORES: usize = 2;

fn spec(name: &str, dim: usize) -> CollectionSpec {
    let mut spec = CollectionSpec::new(name, dim as u32, Metric::Cosine);
    spec.shard_count = Some(CORES as u32);
    spec.payload_indexes = vec![PayloadIndex {
        field: "title".into(),
        kind: PayloadFieldKind::Keyword.into(),
    }];
    spec
}

fn point(f: &Fixture, row: usize) -> Point {
    Point::new(row.to_string(), f.base[row].clone())
        .with_payload(payload::to_struct(f.payloads[row].clone()).unwrap())
}

async fn client(p: &Process) -> Client {
    Client::builder(support::grpc_addr(p))
        .timeout(Some(Duration::from_secs(60)))
        .connect()
        .await
        .unwrap()
}

/// Mean recall@10 over every fixture query, searched through the SDK.
async fn sdk_recall(client: &Client, collection: &str, f: &Fixture) -> f64 {
    let mut total = 0.0;
    for (q, truth) in f.queries.iter().zip(&f.truth) {
        let found = client
            .search(SearchRequest::new(collection, q.clone(), 10).with_ef(EF))
            .await
            .unwrap();
        let ids: Vec<usize> = found.hits.iter().map(|h| h.id.parse().unwrap()).collect();
        total += support::recall(&ids, truth, 10);
    }
    total / f.queries.len() as f64
}

/// A title shared by several points of the fixture, and those points.
fn common_title(f: &Fixture) -> (String, HashSet<String>) {
    let mut counts = std::collections::HashMap::<String, Vec<usize>>::new();
    for (i, p) in f.payloads.iter().enumerate() {
        counts
            .entry(p["title"].as_str().unwrap().to_owned())
            .or_default()
            .push(i);
    }
    let (title, rows) = counts
        .into_iter()
        .max_by_key(|(_, rows)| rows.len())
        .unwrap();
    assert!(
        rows.len() > 3,
        "the fixture has titles shared by several points"
    );
    (title, rows.iter().map(usize::to_string).collect())
}

/// Streams every fixture point, with its payload, over one client stream of `batch`
/// points per message, and returns the acknowledgement.
async fn ingest_fixture(
    client: &Client,
    collection: &str,
    f: &Fixture,
    batch: usize,
) -> vectron_client::UpsertResponse {
    let batches: Vec<Vec<Point>> = (0..f.base.len())
        .collect::<Vec<_>>()
        .chunks(batch)
        .map(|rows| rows.iter().map(|&r| point(f, r)).collect())
        .collect();
    client
        .upsert_stream(collection, tokio_stream::iter(batches))
        .await
        .unwrap()
}

/// The stats of the (only) shard of `collection`, through the gateway.
async fn shard_stats(client: &Client, collection: &str) -> vectron_client::api::ShardStats {
    let stats = client.core_stats("").await.unwrap();
    stats
        .cores
        .into_iter()
        .flat_map(|c| c.shards)
        .find(|s| s.collection == collection)
        .expect("the shard reports")
}

async fn scroll_all(client: &Client, collection: &str, limit: u32) -> Vec<String> {
    let mut ids = Vec::new();
    let mut offset = String::new();
    loop {
        let page = client
            .scroll(ScrollRequest {
                collection: collection.into(),
                offset: offset.clone(),
                limit,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.points.len() <= limit as usize);
        ids.extend(page.points.into_iter().map(|p| p.id));
        if page.next_offset.is_empty() {
            return ids;
        }
        offset = page.next_offset;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_ingests_searches_and_finds_everything_after_a_restart() {
    let f = Fixture::load();
    let dir = support::tempdir();
    let dev = support::dev(dir.path(), CORES);
    let client = client(&dev).await;

    let info = client.create_collection(spec("wiki", f.dim)).await.unwrap();
    assert_eq!(info.shards.len(), CORES);
    assert_eq!(info.state(), vectron_client::CollectionState::Ready);

    // Bulk ingest over one client stream, 250 points per message, with payloads.
    let ack = ingest_fixture(&client, "wiki", &f, 250).await;
    assert_eq!(ack.count as usize, f.base.len());
    assert!(ack.durable);
    assert_eq!(
        client.count("wiki", None).await.unwrap() as usize,
        f.base.len()
    );

    let recall = sdk_recall(&client, "wiki", &f).await;
    assert!(recall >= 0.95, "recall@10 at ef {EF} is {recall}");

    // Filters: every hit passes, and the hits are the points with that title.
    let (title, rows) = common_title(&f);
    let filtered = client
        .search(
            SearchRequest::new("wiki", f.queries[0].clone(), 100)
                .with_ef(256)
                .with_filter(Filter::must([Condition::keyword("title", &title)]))
                .with_payload(),
        )
        .await
        .unwrap();
    let hit_ids: HashSet<String> = filtered.hits.iter().map(|h| h.id.clone()).collect();
    assert_eq!(hit_ids, rows);
    for hit in &filtered.hits {
        let p = payload::from_struct(hit.payload.clone().unwrap());
        assert_eq!(p["title"], title.as_str());
    }
    assert_eq!(
        client
            .count(
                "wiki",
                Some(Filter::must([Condition::keyword("title", &title)]))
            )
            .await
            .unwrap() as usize,
        rows.len()
    );

    // Get keeps the order asked, leaves out what does not exist, returns payloads.
    let got = client
        .get(
            "wiki",
            vec!["7".into(), "nope".into(), "3".into()],
            true,
            true,
        )
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["7", "3"]
    );
    assert_eq!(got[0].vector.len(), f.dim);
    assert_eq!(
        payload::from_struct(got[0].payload.clone().unwrap()),
        f.payloads[7]
    );

    // Delete by id and by filter.
    let doomed: Vec<String> = (0..10).map(|i| (i * 7).to_string()).collect();
    assert_eq!(client.delete_ids("wiki", doomed.clone()).await.unwrap(), 10);
    assert!(
        client
            .get("wiki", doomed.clone(), false, false)
            .await
            .unwrap()
            .is_empty()
    );
    let by_title = rows.iter().filter(|r| !doomed.contains(r)).count();
    let deleted = client
        .delete_filter("wiki", Filter::must([Condition::keyword("title", &title)]))
        .await
        .unwrap();
    assert_eq!(deleted as usize, by_title);
    let remaining = f.base.len() - 10 - by_title;
    assert_eq!(
        client.count("wiki", None).await.unwrap() as usize,
        remaining
    );

    // Scroll pages cover every remaining point once, in byte order of ids.
    let ids = scroll_all(&client, "wiki", 333).await;
    assert_eq!(ids.len(), remaining);
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);

    // Stats reach every core through the gateway.
    let stats = client.core_stats("").await.unwrap();
    assert_eq!(stats.cores.len(), CORES);
    assert!(stats.unreachable_workers.is_empty());
    let points: u64 = stats
        .cores
        .iter()
        .flat_map(|c| &c.shards)
        .map(|s| s.points)
        .sum();
    assert_eq!(points as usize, remaining);

    // A clean restart keeps the collection and every point.
    drop(client);
    dev.terminate();
    let dev = support::dev(dir.path(), CORES);
    let client = client_after_restart(&dev).await;
    assert_eq!(
        client.count("wiki", None).await.unwrap() as usize,
        remaining
    );
    let listed = client.list_collections().await.unwrap();
    assert_eq!(listed.len(), 1);
    let got = client
        .get("wiki", vec!["1".into()], true, true)
        .await
        .unwrap();
    assert_eq!(
        payload::from_struct(got[0].payload.clone().unwrap()),
        f.payloads[1]
    );
    assert_eq!(scroll_all(&client, "wiki", 1000).await, ids);
    // Recall over the points still there: every query's truth minus the deleted rows.
    let gone: HashSet<usize> = (0..f.base.len())
        .filter(|r| !ids.contains(&r.to_string()))
        .collect();
    let mut total = 0.0;
    for (q, truth) in f.queries.iter().zip(&f.truth) {
        let truth: Vec<usize> = truth
            .iter()
            .copied()
            .filter(|r| !gone.contains(r))
            .collect();
        let found = client
            .search(SearchRequest::new("wiki", q.clone(), 10).with_ef(EF))
            .await
            .unwrap();
        let found: Vec<usize> = found.hits.iter().map(|h| h.id.parse().unwrap()).collect();
        total += support::recall(&found, &truth, 10);
    }
    let recall = total / f.queries.len() as f64;
    assert!(recall >= 0.95, "recall@10 after restart is {recall}");
    dev.terminate();
}

/// An int8 collection through the SDK: one shard, so its index trains the quantizer
/// (after 1,024 points) and searches on codes with f32 rescoring; recall holds; a clean
/// restart reopens the index from its checkpoint file (3-byte neighbour ids, a codes
/// section) and answers every query exactly as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_int8_collection_searches_and_answers_the_same_after_a_restart() {
    let f = Fixture::load();
    let dir = support::tempdir();
    let dev = support::dev(dir.path(), CORES);
    let client = client(&dev).await;
    let mut spec = spec("wiki8", f.dim);
    spec.shard_count = Some(1);
    spec.set_quantization(Quantization::Int8);
    client.create_collection(spec).await.unwrap();
    let ack = ingest_fixture(&client, "wiki8", &f, 500).await;
    assert_eq!(ack.count as usize, f.base.len());

    // Wait until every point is in the graph, so that the answers compared below come
    // from the same graph before and after the restart.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let shard = shard_stats(&client, "wiki8").await;
        if shard.points as usize == f.base.len() && shard.indexed_points == shard.points {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "indexing did not finish: {shard:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recall = sdk_recall(&client, "wiki8", &f).await;
    assert!(recall >= 0.95, "int8 recall@10 is {recall}");
    let answers = |client: Client| {
        let queries = f.queries.clone();
        async move {
            let mut all = Vec::new();
            for q in queries {
                let found = client
                    .search(SearchRequest::new("wiki8", q, 10).with_ef(EF))
                    .await
                    .unwrap();
                all.push(
                    found
                        .hits
                        .into_iter()
                        .map(|h| (h.id, h.score))
                        .collect::<Vec<_>>(),
                );
            }
            all
        }
    };
    let before = answers(client.clone()).await;

    drop(client);
    dev.terminate();
    let dev = support::dev(dir.path(), CORES);
    let client = client_after_restart(&dev).await;
    let info = client.describe_collection("wiki8").await.unwrap();
    assert_eq!(
        info.spec.unwrap().quantization(),
        Quantization::Int8,
        "the collection keeps its quantization"
    );
    assert_eq!(
        client.count("wiki8", None).await.unwrap() as usize,
        f.base.len()
    );
    // The index came back from the checkpoint written at shutdown, not from the log.
    let shard = shard_stats(&client, "wiki8").await;
    assert!(
        shard.checkpoint_lsn >= 4,
        "every batch is in the checkpoint: {shard:?}"
    );
    assert_eq!(shard.wal_bytes, 0, "nothing left to replay: {shard:?}");
    let after = answers(client.clone()).await;
    assert_eq!(after.len(), before.len());
    for (i, (a, b)) in after.iter().zip(&before).enumerate() {
        assert_eq!(a, b, "query {i} answers otherwise after the restart");
    }
    dev.terminate();
}

/// The SDK retries idempotent calls on `UNAVAILABLE`, which covers the moment after a
/// restart when the gateway serves before every shard has reported in.
async fn client_after_restart(p: &Process) -> Client {
    Client::builder(support::grpc_addr(p))
        .timeout(Some(Duration::from_secs(60)))
        .retries(10, Duration::from_millis(100))
        .connect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_serves_the_same_api_and_survives_a_restart() {
    let f = Fixture::load();
    let dir = support::tempdir();
    let dev = support::dev(dir.path(), CORES);
    let http = Http::new(&support::http_addr(&dev));

    assert_eq!(http.send("GET", "/healthz", None, vec![]).await.0, 200);
    assert_eq!(http.send("GET", "/readyz", None, vec![]).await.0, 200);

    let (status, created) = http
        .json(
            "POST",
            "/v1/collections",
            Some(json!({
                "name": "wiki", "dimension": f.dim, "metric": "cosine", "shard_count": CORES,
                "payload_indexes": [{"field": "title", "kind": "keyword"}]
            })),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["spec"]["metric"], "cosine");
    assert_eq!(created["state"], "ready");
    let (status, again) = http
        .json(
            "POST",
            "/v1/collections",
            Some(json!({"name": "wiki", "dimension": 4, "metric": "l2"})),
        )
        .await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["error"]["code"], "ALREADY_EXISTS");

    // The first half as one JSON upsert, the rest as an NDJSON stream.
    let half = f.base.len() / 2;
    let points: Vec<Value> = (0..half)
        .map(|r| json!({"id": r.to_string(), "vector": f.base[r], "payload": f.payloads[r]}))
        .collect();
    let (status, ack) = http
        .json(
            "PUT",
            "/v1/collections/wiki/points",
            Some(json!({"points": points})),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack, json!({"count": half, "durable": true}));
    let mut ndjson = String::new();
    for r in half..f.base.len() {
        ndjson.push_str(
            &json!({"id": r.to_string(), "vector": f.base[r], "payload": f.payloads[r]})
                .to_string(),
        );
        ndjson.push('\n');
    }
    let (status, text) = http
        .send(
            "POST",
            "/v1/collections/wiki/points/stream",
            Some("application/x-ndjson"),
            ndjson.into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    let ack: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(ack["count"], f.base.len() - half);

    let (_, counted) = http
        .json("POST", "/v1/collections/wiki/points/count", None)
        .await;
    assert_eq!(counted["count"], f.base.len());

    // Search: recall, payloads as they were sent, the documented filter shapes.
    let mut total = 0.0;
    for (q, truth) in f.queries.iter().zip(&f.truth).take(50) {
        let (status, found) = http
            .json(
                "POST",
                "/v1/collections/wiki/points/search",
                Some(json!({"vector": q, "k": 10, "ef": EF})),
            )
            .await;
        assert_eq!(status, 200, "{found}");
        let ids: Vec<usize> = found["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().parse().unwrap())
            .collect();
        total += support::recall(&ids, truth, 10);
    }
    assert!(
        total / 50.0 >= 0.95,
        "recall@10 over HTTP is {}",
        total / 50.0
    );
    let (title, rows) = common_title(&f);
    let excluded = rows.iter().next().unwrap().clone();
    let (status, found) = http
        .json(
            "POST",
            "/v1/collections/wiki/points/search",
            Some(json!({
                "vector": f.queries[0], "k": 100, "ef": 256, "with_payload": true,
                "filter": {"must": [{"field": {"key": "title", "keyword": title}}],
                           "must_not": [{"has_id": {"ids": [excluded]}}]},
                "timeout_ms": 5000
            })),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    let hits = found["hits"].as_array().unwrap();
    assert_eq!(hits.len(), rows.len() - 1);
    for hit in hits {
        let row: usize = hit["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(hit["payload"], f.payloads[row]);
        assert!(
            hit.get("vector").is_none(),
            "a vector nobody asked for: {hit}"
        );
    }
    assert_eq!(found["missing_shards"], json!([]));
    let (status, batch) = http
        .json(
            "POST",
            "/v1/collections/wiki/points/search/batch",
            Some(json!({"searches": [
                {"vector": f.queries[0], "k": 3, "with_vector": true},
                {"vector": f.queries[1], "k": 5, "filter": {"must": [{"field": {"key": "title", "any_of": {"keywords": [title]}}}]}}
            ]})),
        )
        .await;
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["results"][0]["hits"].as_array().unwrap().len(), 3);
    assert_eq!(batch["results"][1]["hits"].as_array().unwrap().len(), 5);
    for hit in batch["results"][0]["hits"].as_array().unwrap() {
        let row: usize = hit["id"].as_str().unwrap().parse().unwrap();
        let vector: Vec<f32> = serde_json::from_value(hit["vector"].clone()).unwrap();
        assert_eq!(vector.len(), f.dim);
        let off = vector.iter().zip(&f.base[row]).map(|(a, b)| (a - b).abs());
        assert!(
            off.fold(0.0, f32::max) < 1e-4,
            "hit {row} carries its stored vector"
        );
    }
    assert!(batch["results"][1]["hits"][0].get("vector").is_none());

    // Get one, get many, delete, scroll.
    let (status, one) = http
        .json(
            "GET",
            "/v1/collections/wiki/points/5?with_vector=false",
            None,
        )
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["payload"], f.payloads[5]);
    assert!(one.get("vector").is_none(), "{one}");
    let (status, missing) = http
        .json("GET", "/v1/collections/wiki/points/nope", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(missing["error"]["code"], "NOT_FOUND");
    // An id that is also a route name is read by `GET` on that route.
    let named = json!({"id": "search", "vector": f.base[0], "payload": {"title": "named"}});
    let (status, put) = http
        .json(
            "PUT",
            "/v1/collections/wiki/points",
            Some(json!({"points": [named]})),
        )
        .await;
    assert_eq!(status, 200, "{put}");
    let (status, one) = http
        .json("GET", "/v1/collections/wiki/points/search", None)
        .await;
    assert_eq!(status, 200, "{one}");
    assert_eq!(
        (&one["id"], &one["payload"]),
        (&named["id"], &named["payload"])
    );
    let (_, deleted) = http
        .json(
            "POST",
            "/v1/collections/wiki/points/delete",
            Some(json!({"ids": ["search"]})),
        )
        .await;
    assert_eq!(deleted["deleted"], 1);
    // Integer ids stand for their decimal strings, in bodies and in NDJSON lines.
    let (status, put) = http
        .json(
            "PUT",
            "/v1/collections/wiki/points",
            Some(json!({"points": [{"id": 70_000, "vector": f.base[0]}]})),
        )
        .await;
    assert_eq!(status, 200, "{put}");
    let line = json!({"id": 70_001, "vector": f.base[1]}).to_string() + "\n";
    let (status, body) = http
        .send(
            "POST",
            "/v1/collections/wiki/points/stream",
            Some("application/x-ndjson"),
            line.into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, got) = http
        .json(
            "POST",
            "/v1/collections/wiki/points/get",
            Some(json!({"ids": [70_000, "70001"]})),
        )
        .await;
    assert_eq!(got["points"][0]["id"], "70000", "{got}");
    assert_eq!(got["points"][1]["id"], "70001", "{got}");
    let (_, deleted) = http
        .json(
            "POST",
            "/v1/collections/wiki/points/delete",
            Some(json!({"ids": [70_000, 70_001]})),
        )
        .await;
    assert_eq!(deleted["deleted"], 2);
    let (_, got) = http
        .json(
            "POST",
            "/v1/collections/wiki/points/get",
            Some(json!({"ids": ["9", "8"], "with_payload": true})),
        )
        .await;
    assert_eq!(got["points"][0]["id"], "9");
    assert_eq!(got["points"][1]["payload"], f.payloads[8]);
    let (_, deleted) = http
        .json(
            "POST",
            "/v1/collections/wiki/points/delete",
            Some(json!({"ids": ["1", "2", "3", "nope"]})),
        )
        .await;
    assert_eq!(deleted["deleted"], 3);
    let (_, deleted) = http
        .json(
            "POST",
            "/v1/collections/wiki/points/delete",
            Some(json!({"filter": {"must": [{"field": {"key": "title", "keyword": title}}]}})),
        )
        .await;
    let by_title = rows
        .iter()
        .filter(|r| !["1", "2", "3"].contains(&r.as_str()))
        .count();
    assert_eq!(deleted["deleted"], by_title);
    let remaining = f.base.len() - 3 - by_title;
    let mut ids = Vec::new();
    let mut offset = String::new();
    loop {
        let (status, page) = http
            .json(
                "POST",
                "/v1/collections/wiki/points/scroll",
                Some(json!({"offset": offset, "limit": 500, "with_payload": true})),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        for p in page["points"].as_array().unwrap() {
            let id = p["id"].as_str().unwrap().to_owned();
            assert_eq!(p["payload"], f.payloads[id.parse::<usize>().unwrap()]);
            ids.push(id);
        }
        offset = page["next_offset"].as_str().unwrap().to_owned();
        if offset.is_empty() {
            break;
        }
    }
    assert_eq!(ids.len(), remaining);

    let (status, stats) = http.json("GET", "/v1/stats/cores", None).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["cores"].as_array().unwrap().len(), CORES);
    // Started with --no-pin: no core names a CPU it is not pinned to.
    assert!(stats["cores"][0].get("cpu").is_none(), "{stats}");
    assert_eq!(stats["cores"][0]["core"], 0);

    // Restart: the same answers.
    dev.terminate();
    let dev = support::dev(dir.path(), CORES);
    let http = Http::new(&support::http_addr(&dev));
    let (status, counted) = http
        .json("POST", "/v1/collections/wiki/points/count", Some(json!({})))
        .await;
    assert_eq!(status, 200, "{counted}");
    assert_eq!(counted["count"], remaining);
    let (_, one) = http
        .json("GET", "/v1/collections/wiki/points/5", None)
        .await;
    assert_eq!(one["payload"], f.payloads[5]);
    let (_, listed) = http.json("GET", "/v1/collections", None).await;
    assert_eq!(listed["collections"][0]["spec"]["name"], "wiki");
    let (status, dropped) = http.json("DELETE", "/v1/collections/wiki", None).await;
    assert_eq!(status, 200, "{dropped}");
    let (status, gone) = http.json("GET", "/v1/collections/wiki", None).await;
    assert_eq!(status, 404, "{gone}");
    dev.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_stream_writes_survive_sigkill() {
    let f = Fixture::load();
    let dir = support::tempdir();
    let dev = support::dev(dir.path(), CORES);
    let client = client(&dev).await;
    client
        .create_collection(spec("crash", f.dim))
        .await
        .unwrap();

    // Streams of 100 points each, one after another; the process is killed while they
    // run. Every stream that was answered is acknowledged, and so durable.
    let writer = {
        let client = client.clone();
        let f = Fixture::load();
        tokio::spawn(async move {
            let mut acknowledged: Vec<String> = Vec::new();
            for round in 0.. {
                let rows: Vec<usize> = (0..100).map(|i| (round * 100 + i) % f.base.len()).collect();
                let points: Vec<Point> = rows
                    .iter()
                    .map(|&r| {
                        let mut p = point(&f, r);
                        p.id = format!("{round}-{r}");
                        p
                    })
                    .collect();
                let batches = tokio_stream::iter(
                    points.chunks(25).map(<[Point]>::to_vec).collect::<Vec<_>>(),
                );
                match client.upsert_stream("crash", batches).await {
                    Ok(ack) => {
                        assert_eq!(ack.count, 100);
                        acknowledged.extend(rows.iter().map(|r| format!("{round}-{r}")));
                    }
                    Err(_) => return acknowledged,
                }
            }
            unreachable!()
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    dev.kill();
    let acknowledged = writer.await.unwrap();
    assert!(
        acknowledged.len() >= 200,
        "only {} points were acknowledged before the kill",
        acknowledged.len()
    );

    let dev = support::dev(dir.path(), CORES);
    let client = client_after_restart(&dev).await;
    for chunk in acknowledged.chunks(5000) {
        let found = client
            .get("crash", chunk.to_vec(), false, false)
            .await
            .unwrap();
        assert_eq!(
            found.len(),
            chunk.len(),
            "acknowledged points are missing after SIGKILL"
        );
    }
    let count = client.count("crash", None).await.unwrap() as usize;
    assert!(count >= acknowledged.len());
    // And the collection still takes writes and searches.
    client.upsert("crash", vec![point(&f, 0)]).await.unwrap();
    let found = client
        .search(SearchRequest::new("crash", f.base[0].clone(), 1).with_ef(EF))
        .await
        .unwrap();
    assert_eq!(found.hits.len(), 1);
    dev.terminate();
}

/// Asserts a call failed with `code` and a message holding `words`.
fn expect<T>(result: Result<T, vectron_client::Error>, code: tonic::Code, words: &str) {
    let Err(err) = result else {
        panic!("expected {code:?}, the call succeeded")
    };
    assert_eq!(err.code(), code, "{err}");
    assert!(err.to_string().contains(words), "{err} ∌ {words:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_the_server_keeps_serving() {
    use tonic::Code;

    let f = Fixture::load();
    let dir = support::tempdir();
    let dev = support::dev(dir.path(), CORES);
    let client = Client::builder(support::grpc_addr(&dev))
        .max_message_bytes(256 << 20)
        .retries(0, Duration::from_millis(1))
        .connect()
        .await
        .unwrap();
    let http = Http::new(&support::http_addr(&dev));
    client.create_collection(spec("bad", f.dim)).await.unwrap();
    client
        .upsert("bad", vec![point(&f, 0), point(&f, 1)])
        .await
        .unwrap();

    // gRPC.
    let short = Point::new("w", vec![0.5; f.dim - 1]);
    expect(
        client.upsert("bad", vec![short]).await,
        Code::InvalidArgument,
        "vector has 383 values, the collection has dimension 384",
    );
    let mut nan = vec![0.5; f.dim];
    nan[7] = f32::NAN;
    expect(
        client.upsert("bad", vec![Point::new("n", nan)]).await,
        Code::InvalidArgument,
        "vector value 7 is not a finite number",
    );
    expect(
        client
            .upsert("bad", vec![Point::new("huge", vec![0.5; 10_000])])
            .await,
        Code::InvalidArgument,
        "vector has 10000 values",
    );
    expect(
        client
            .search(SearchRequest::new("bad", vec![0.5; 10_000], 10))
            .await,
        Code::InvalidArgument,
        "query vector has 10000 values",
    );
    // Finite values that f32 arithmetic cannot normalise (their squares underflow) or
    // score (their squares overflow): refused, and the shard keeps serving.
    expect(
        client
            .upsert("bad", vec![Point::new("tiny", vec![1e-30; f.dim])])
            .await,
        Code::InvalidArgument,
        "too short to give a direction",
    );
    expect(
        client
            .upsert("bad", vec![Point::new("vast", vec![3e38; f.dim])])
            .await,
        Code::InvalidArgument,
        "where scores overflow",
    );
    for (value, words) in [(0.0, "all-zero"), (1e-30, "too short"), (3e38, "overflow")] {
        expect(
            client
                .search(SearchRequest::new("bad", vec![value; f.dim], 10))
                .await,
            Code::InvalidArgument,
            words,
        );
    }
    expect(
        client
            .upsert("bad", vec![Point::new("x".repeat(1024), vec![0.5; f.dim])])
            .await,
        Code::InvalidArgument,
        "id must be 1 to 128 bytes",
    );
    expect(
        client.upsert("nope", vec![point(&f, 0)]).await,
        Code::NotFound,
        "\"nope\" does not exist",
    );
    expect(
        client.count("nope", None).await,
        Code::NotFound,
        "does not exist",
    );
    // 100 MB in one message: refused by size before it is read.
    let giant = Point::new("g", vec![0.5; 25 << 20]);
    expect(
        client.upsert("bad", vec![giant]).await,
        Code::ResourceExhausted,
        "too large",
    );
    let mut rerank = SearchRequest::new("bad", f.queries[0].clone(), 10);
    rerank.rerank = Some(vectron_client::Rerank {
        query_text: "moon".into(),
        top_n: 0,
    });
    expect(
        client.search(rerank).await,
        Code::Unimplemented,
        "rerank is not available",
    );
    expect(
        client
            .search(SearchRequest::new("bad", f.queries[0].clone(), 0))
            .await,
        Code::InvalidArgument,
        "k must be between 1 and 10000",
    );
    expect(
        client.delete_filter("bad", Filter::default()).await,
        Code::InvalidArgument,
        "non-empty filter",
    );
    // A payload nested past the limit would not decode in a gRPC answer: refused at the
    // door, over gRPC and over HTTP; one at the limit reads back over gRPC.
    let nested = |depth: usize| {
        let mut v = json!("leaf");
        for _ in 0..depth {
            v = json!({ "a": v });
        }
        v
    };
    let deep = |id: &str, depth: usize| {
        Point::new(id, f.base[2].clone()).with_payload(payload::to_struct(nested(depth)).unwrap())
    };
    expect(
        client.upsert("bad", vec![deep("deep", 25)]).await,
        Code::InvalidArgument,
        "25 levels deep, more than the limit of 24",
    );
    client.upsert("bad", vec![deep("limit", 24)]).await.unwrap();
    let found = client
        .search(SearchRequest::new("bad", f.base[2].clone(), 3).with_payload())
        .await
        .unwrap();
    let hit = found
        .hits
        .iter()
        .find(|h| h.id == "limit")
        .expect("the point at the limit");
    assert_eq!(
        payload::from_struct(hit.payload.clone().unwrap()),
        nested(24)
    );
    client
        .delete_ids("bad", vec!["limit".into()])
        .await
        .unwrap();
    // More replicas than live workers (`vectron dev` runs one), or than a group may have.
    let mut replicated = spec("replicated", 4);
    replicated.replication_factor = Some(2);
    expect(
        client.create_collection(replicated.clone()).await,
        Code::FailedPrecondition,
        "needs at least 2 live workers",
    );
    replicated.replication_factor = Some(8);
    expect(
        client.create_collection(replicated).await,
        Code::InvalidArgument,
        "replication_factor must be 1 to 7",
    );

    // HTTP.
    let search = "/v1/collections/bad/points/search";
    let expect_http = |(status, body): (u16, String), want: u16, code: &str, words: &str| {
        assert_eq!(status, want, "{body}");
        let body: Value =
            serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
        assert_eq!(body["error"]["code"], code, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{message} ∌ {words:?}");
    };
    let upsert = |points: Value| json!({"points": points}).to_string().into_bytes();
    let points = "/v1/collections/bad/points";
    expect_http(
        http.send(
            "PUT",
            points,
            Some("application/json"),
            upsert(json!([{"id": "deep", "vector": f.base[2], "payload": nested(30)}])),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        "point 0 (id \"deep\"): payload nests objects and arrays 30 levels deep",
    );
    expect_http(
        http.send(
            "PUT",
            points,
            Some("application/json"),
            upsert(json!([{"id": "a", "vector": [0.5, 0.5]}])),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        "vector has 2 values",
    );
    expect_http(
        http.send(
            "PUT",
            points,
            Some("application/json"),
            upsert(json!([{"id": "a", "vector": vec![0.5; 10_000]}])),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        "vector has 10000 values",
    );
    expect_http(
        http.send(
            "PUT",
            points,
            Some("application/json"),
            upsert(json!([{"id": "x".repeat(1024), "vector": vec![0.5; f.dim]}])),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        "id must be 1 to 128 bytes",
    );
    expect_http(
        http.send(
            "PUT",
            points,
            Some("application/json"),
            b"{\"points\": [{\"id\": \"a\", \"vector\": [NaN]}]}".to_vec(),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        "malformed JSON",
    );
    expect_http(
        http.send(
            "POST",
            search,
            Some("application/json"),
            b"{\"vector\": [1, 2".to_vec(),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        "malformed JSON",
    );
    expect_http(
        http.send(
            "POST",
            search,
            Some("application/json"),
            json!({"vector": f.queries[0], "k": 3, "kk": 1})
                .to_string()
                .into_bytes(),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        "kk",
    );
    expect_http(
        http.send(
            "POST",
            search,
            Some("text/plain"),
            json!({"vector": f.queries[0], "k": 3})
                .to_string()
                .into_bytes(),
        )
        .await,
        415,
        "INVALID_ARGUMENT",
        "Content-Type must be application/json",
    );
    expect_http(
        http.send(
            "POST",
            "/v1/collections/nope/points/search",
            Some("application/json"),
            json!({"vector": [1.0], "k": 3}).to_string().into_bytes(),
        )
        .await,
        404,
        "NOT_FOUND",
        "\"nope\" does not exist",
    );
    expect_http(
        http.send(
            "POST",
            search,
            Some("application/json"),
            json!({"vector": f.queries[0], "k": 3, "rerank": {"query_text": "x"}})
                .to_string()
                .into_bytes(),
        )
        .await,
        501,
        "UNIMPLEMENTED",
        "rerank",
    );
    // 100 MB body: refused by its declared length.
    expect_http(
        http.send(
            "PUT",
            points,
            Some("application/json"),
            vec![b' '; 100 << 20],
        )
        .await,
        413,
        "RESOURCE_EXHAUSTED",
        "larger than the limit",
    );
    expect_http(
        http.send(
            "POST",
            "/v1/collections/bad/points/stream",
            Some("application/json"),
            b"{}".to_vec(),
        )
        .await,
        415,
        "INVALID_ARGUMENT",
        "application/x-ndjson",
    );
    expect_http(
        http.send(
            "POST",
            "/v1/collections/bad/points/stream",
            Some("application/x-ndjson"),
            b"{\"id\": \"1\", \"vector\": [1]}\n".to_vec(),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        "batch starting at line 1: point 0 (id \"1\"): vector has 1 values",
    );
    // A filter the cores refuse reads as they put it, without naming a core.
    let (status, body) = http
        .send(
            "POST",
            search,
            Some("application/json"),
            json!({"vector": f.base[0], "k": 1, "filter": {"must": [{"field": {"key": "title"}}]}})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["error"]["message"],
        "field condition must[0] on key \"title\" sets no match: give keyword, any_of or range"
    );
    expect_http(
        http.send("GET", "/v1/collections/bad/points/%FF", None, vec![])
            .await,
        400,
        "INVALID_ARGUMENT",
        "malformed path",
    );
    // A drop with a parameter it does not take is refused, and drops nothing.
    expect_http(
        http.send("DELETE", "/v1/collections/bad?force=1", None, vec![])
            .await,
        400,
        "INVALID_ARGUMENT",
        "unknown parameter",
    );

    // Still serving, on both doors.
    let found = client
        .search(SearchRequest::new("bad", f.base[1].clone(), 2).with_ef(EF))
        .await
        .unwrap();
    assert_eq!(found.hits[0].id, "1");
    let (status, found) = http
        .json("POST", search, Some(json!({"vector": f.base[0], "k": 1})))
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["hits"][0]["id"], "0");
    assert_eq!(client.count("bad", None).await.unwrap(), 2);
    dev.terminate();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_follows_a_worker_that_restarts_on_other_ports() {
    let f = Fixture::load();
    let dir = support::tempdir();
    let control = support::ControlProcess::start(dir.path(), 1, "127.0.0.1:0", None);
    let worker_args =
        |data: &std::path::Path| support::cluster_worker_args(data, &control.address, 2);
    let gateway = Process::start(&[
        "gateway",
        "--control",
        &control.address,
        "--grpc-addr",
        "127.0.0.1:0",
        "--http-addr",
        "127.0.0.1:0",
    ]);
    let http = Http::new(&support::http_addr(&gateway));
    // Not ready while no worker could hold a collection.
    let mut waiting = String::new();
    for _ in 0..100 {
        let (status, body) = http.send("GET", "/readyz", None, vec![]).await;
        assert_eq!(status, 503, "{body}");
        if body.contains("no worker is up") {
            waiting = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(waiting.contains("UNAVAILABLE"), "{waiting}");
    let worker_dir = dir.path().join("worker");
    let args = worker_args(&worker_dir);
    let worker = Process::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let client = client_after_restart(&gateway).await;
    // The worker registers in the background; creating waits until the control plane
    // can place the shards.
    let mut created = None;
    for _ in 0..100 {
        match client.create_collection(spec("moving", f.dim)).await {
            Ok(info) => {
                created = Some(info);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(created.expect("the collection was created").shards.len(), 2);
    assert_eq!(http.send("GET", "/readyz", None, vec![]).await.0, 200);
    let points: Vec<Point> = (0..300).map(|r| point(&f, r)).collect();
    client.upsert("moving", points).await.unwrap();
    let before: Vec<u32> = client
        .describe_collection("moving")
        .await
        .unwrap()
        .shards
        .iter()
        .map(|s| {
            s.replicas[0]
                .address
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();

    // The worker comes back on other ports; the gateway finds its shards there.
    worker.terminate();
    let worker = Process::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let mut found = None;
    for _ in 0..100 {
        match client
            .search(SearchRequest::new("moving", f.base[42].clone(), 1).with_ef(EF))
            .await
        {
            Ok(hits) => {
                found = Some(hits);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    assert_eq!(found.expect("search after the restart").hits[0].id, "42");
    assert_eq!(client.count("moving", None).await.unwrap(), 300);
    let after: Vec<u32> = client
        .describe_collection("moving")
        .await
        .unwrap()
        .shards
        .iter()
        .map(|s| {
            s.replicas[0]
                .address
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_ne!(before, after, "the worker took other ports");
    gateway.terminate();
    worker.terminate();
}

/// Waits (at most 20 s) until no core of the `vectron dev` in `dir` has a directory for
/// `collection`.
async fn files_gone(dir: &std::path::Path, collection: &str) {
    let dirs: Vec<_> = (0..CORES)
        .map(|core| {
            dir.join("worker")
                .join(format!("core-{core}"))
                .join(collection)
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while let Some(left) = dirs.iter().find(|d| d.exists()) {
        assert!(
            std::time::Instant::now() < deadline,
            "{} is still there after the drop",
            left.display()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Drops `rc` and creates it again at once with `dimension`; checks that the new
/// collection is empty (the dropped `old` point is not found) and that it takes writes
/// and answers searches.
async fn drop_and_recreate(http: &Http, dimension: usize) {
    let (status, dropped) = http.json("DELETE", "/v1/collections/rc", None).await;
    assert_eq!(status, 200, "{dropped}");
    let spec = json!({"name": "rc", "dimension": dimension, "metric": "l2", "shard_count": CORES});
    let (status, created) = http.json("POST", "/v1/collections", Some(spec)).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["state"], "ready", "{created}");
    let (status, counted) = http
        .json("POST", "/v1/collections/rc/points/count", Some(json!({})))
        .await;
    assert_eq!((status, &counted["count"]), (200, &json!(0)), "{counted}");
    let (status, old) = http
        .json("GET", "/v1/collections/rc/points/old", None)
        .await;
    assert_eq!(status, 404, "the dropped point is back: {old}");
    let points: Vec<Value> = (0..10)
        .map(|i| json!({"id": format!("new-{i}"), "vector": vec![i as f32; dimension]}))
        .collect();
    let (status, ack) = http
        .json(
            "PUT",
            "/v1/collections/rc/points",
            Some(json!({"points": points})),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
    let (status, found) = http
        .json(
            "POST",
            "/v1/collections/rc/points/search",
            Some(json!({"vector": vec![3.0; dimension], "k": 3})),
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["hits"][0]["id"], "new-3", "{found}");
    assert_eq!(found["hits"].as_array().unwrap().len(), 3, "{found}");
    let (_, counted) = http
        .json("POST", "/v1/collections/rc/points/count", Some(json!({})))
        .await;
    assert_eq!(counted["count"], 10, "{counted}");
}

/// Creates `rc` (2-d) holding the point `old` and a few more.
async fn create_with_old_point(http: &Http) {
    let spec = json!({"name": "rc", "dimension": 2, "metric": "l2", "shard_count": CORES});
    let (status, created) = http.json("POST", "/v1/collections", Some(spec)).await;
    assert_eq!(status, 200, "{created}");
    let mut points = vec![json!({"id": "old", "vector": [1, 1], "payload": {"v": "old"}})];
    points.extend((0..20).map(|i| json!({"id": format!("old-{i}"), "vector": [i, 0]})));
    let (status, ack) = http
        .json(
            "PUT",
            "/v1/collections/rc/points",
            Some(json!({"points": points})),
        )
        .await;
    assert_eq!(status, 200, "{ack}");
}

/// A dropped collection's points came back when the name was created again (the worker
/// reopened the old shard under the new placement), a re-created name with another spec
/// never served, and on a data directory's first run a drop left the shards on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_collection_is_gone_and_its_name_starts_empty() {
    let dir = support::tempdir();
    let dev = support::dev(dir.path(), CORES);
    let http = Http::new(&support::http_addr(&dev));
    create_with_old_point(&http).await;
    // Same spec, then another dimension: each time right after the drop.
    drop_and_recreate(&http, 2).await;
    drop_and_recreate(&http, 3).await;
    let (status, dropped) = http.json("DELETE", "/v1/collections/rc", None).await;
    assert_eq!(status, 200, "{dropped}");
    files_gone(dir.path(), "rc").await;

    // After a restart: the same.
    create_with_old_point(&http).await;
    dev.terminate();
    let dev = support::dev(dir.path(), CORES);
    let http = Http::new(&support::http_addr(&dev));
    let (status, counted) = http
        .json("POST", "/v1/collections/rc/points/count", Some(json!({})))
        .await;
    assert_eq!((status, &counted["count"]), (200, &json!(21)), "{counted}");
    drop_and_recreate(&http, 2).await;
    drop_and_recreate(&http, 3).await;
    let (status, dropped) = http.json("DELETE", "/v1/collections/rc", None).await;
    assert_eq!(status, 200, "{dropped}");
    files_gone(dir.path(), "rc").await;
    dev.terminate();
}

/// A `vectron dev` of [`CORES`] cores holding the fixture as the collection `wiki`; the
/// directory is returned to outlive the server (and to restart it on).
async fn wiki_on_dev() -> (Fixture, tempfile::TempDir, Process, Client) {
    let f = Fixture::load();
    let dir = support::tempdir();
    let dev = support::dev(dir.path(), CORES);
    let client = client(&dev).await;
    client.create_collection(spec("wiki", f.dim)).await.unwrap();
    ingest_fixture(&client, "wiki", &f, 500).await;
    (f, dir, dev, client)
}

/// `exact: true` searches every shard by brute force: through the SDK it reproduces the
/// fixture's ground truth for every query, in order; HTTP and the CLI answer the same;
/// a filter is applied as in an approximate search.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_search_is_the_ground_truth_through_every_door() {
    let (f, _dir, dev, client) = wiki_on_dev().await;

    let mut out_of_order = 0;
    for (q, truth) in f.queries.iter().zip(&f.truth) {
        let found = client
            .search(SearchRequest::new("wiki", q.clone(), 10).exact())
            .await
            .unwrap();
        let ids: Vec<usize> = found.hits.iter().map(|h| h.id.parse().unwrap()).collect();
        assert!(
            found.hits.windows(2).all(|w| w[0].score >= w[1].score),
            "best first"
        );
        // The ground truth was computed in f64 elsewhere: two points whose scores tie
        // in f32 may come in either order.
        for (rank, (&got, &want)) in ids.iter().zip(&truth[..10]).enumerate() {
            if got != want {
                let tied = found.hits.iter().any(|h| {
                    h.id == want.to_string() && (h.score - found.hits[rank].score).abs() < 1e-6
                });
                assert!(tied, "query {q:?}: rank {rank} is {got}, truth {want}");
                out_of_order += 1;
            }
        }
    }
    assert!(out_of_order <= 4, "{out_of_order} ties resolved otherwise");

    // With a filter: exactly the matching points, best first.
    let (title, rows) = common_title(&f);
    let filtered = client
        .search(
            SearchRequest::new("wiki", f.queries[3].clone(), 100)
                .with_filter(Filter::must([Condition::keyword("title", &title)]))
                .exact(),
        )
        .await
        .unwrap();
    let hit_ids: HashSet<String> = filtered.hits.iter().map(|h| h.id.clone()).collect();
    assert_eq!(hit_ids, rows);

    // HTTP takes the same field and answers the same hits.
    let http = Http::new(&support::http_addr(&dev));
    let sdk = client
        .search(SearchRequest::new("wiki", f.queries[0].clone(), 5).exact())
        .await
        .unwrap();
    let (status, body) = http
        .json(
            "POST",
            "/v1/collections/wiki/points/search",
            Some(json!({"vector": f.queries[0], "k": 5, "exact": true})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let http_ids: Vec<&str> = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        http_ids,
        sdk.hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>()
    );

    // The CLI: --exact, and refused together with --ef.
    let addr = format!("http://{}", support::grpc_addr(&dev));
    let vector = f.queries[0]
        .iter()
        .map(f32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let cli = support::run_cli(&[
        "search", "wiki", "--addr", &addr, "--vector", &vector, "-k", "5", "--exact", "--json",
    ]);
    assert!(cli.status.success(), "{cli:?}");
    let answer: Value = serde_json::from_slice(&cli.stdout).unwrap();
    let cli_ids: Vec<&str> = answer["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(cli_ids, http_ids);
    let both = support::run_cli(&[
        "search", "wiki", "--addr", &addr, "--vector", &vector, "--exact", "--ef", "64",
    ]);
    assert!(!both.status.success());
    assert!(
        String::from_utf8_lossy(&both.stderr).contains("--exact"),
        "{both:?}"
    );
    dev.terminate();
}

/// `SearchStream` ends with the unary answer: for every fixture query the last event
/// equals `Search` (ids, order, scores, payloads), also for an answer large enough to be
/// fetched in two rounds and for an exact search; the events count the shards up to
/// all of them. HTTP sends the same events as JSON lines, the CLI prints them, and a
/// request that breaks a rule is refused before any event, with its status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_search_ends_with_the_unary_answer_through_every_door() {
    let (f, _dir, dev, client) = wiki_on_dev().await;
    // Linearizable: computed each time, neither cached nor joined, so the two doors'
    // answers are compared, not one answer twice.
    let client = client.with_read_consistency(vectron_client::ReadConsistency::Linearizable);

    let mut partial_events = 0;
    for (i, q) in f.queries.iter().enumerate() {
        let mut request = SearchRequest::new("wiki", q.clone(), 10).with_ef(EF);
        if i % 2 == 0 {
            request = request.with_payload();
        }
        let unary = client.search(request.clone()).await.unwrap();
        let mut events = client.search_stream(request).await.unwrap();
        let mut answered = 0;
        let mut last = None;
        while let Some(event) = events.next().await {
            let event = event.unwrap();
            assert!(last.is_none(), "query {i}: an event after the last one");
            assert_eq!(event.shards_total, CORES as u32);
            assert!(event.shards_answered > answered || event.done, "query {i}");
            answered = event.shards_answered;
            if event.done {
                last = Some(event);
            } else {
                partial_events += 1;
                assert!(event.shards_answered < event.shards_total);
            }
        }
        let last = last.unwrap_or_else(|| panic!("query {i}: no last event"));
        assert_eq!(last.shards_answered, CORES as u32);
        assert_eq!(last.result.unwrap(), unary, "query {i}");
    }
    eprintln!(
        "{partial_events} partial events over {} queries",
        f.queries.len()
    );

    // An answer fetched in two rounds (ids first, then payloads and vectors) and an
    // exact search end the same way.
    for request in [
        SearchRequest::new("wiki", f.queries[1].clone(), 300)
            .with_ef(400)
            .with_payload()
            .with_vector(),
        SearchRequest::new("wiki", f.queries[2].clone(), 20).exact(),
    ] {
        let unary = client.search(request.clone()).await.unwrap();
        let last = client.search_stream(request).await.unwrap().last().await;
        assert_eq!(last.unwrap().result.unwrap(), unary);
    }

    // Refused before the first event, with the status `Search` gives.
    let wrong = client
        .search_stream(SearchRequest::new("wiki", vec![0.5; 3], 10))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::InvalidArgument, "{wrong}");
    let unknown = client
        .search_stream(SearchRequest::new("nowhere", f.queries[0].clone(), 10))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown}");

    // HTTP: one JSON object per line, the last one `done` with the unary answer.
    let http = Http::new(&support::http_addr(&dev));
    let body = json!({"vector": f.queries[4], "k": 10, "ef": EF, "with_payload": true,
        "consistency": "linearizable"});
    let (status, unary) = http
        .json(
            "POST",
            "/v1/collections/wiki/points/search",
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 200, "{unary}");
    let (status, headers, text) = http
        .send_full(
            "POST",
            "/v1/collections/wiki/points/search/stream",
            Some("application/json"),
            body.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(headers["content-type"], "application/x-ndjson");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["done"], true, "{text}");
    assert_eq!(last["shards_total"], CORES);
    assert_eq!(last["shards_answered"], CORES);
    assert_eq!(last["result"], unary);
    assert!(lines[..lines.len() - 1].iter().all(|l| l["done"] == false));
    let (status, refused) = http
        .json(
            "POST",
            "/v1/collections/wiki/points/search/stream",
            Some(json!({"vector": [1.0, 2.0], "k": 10})),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"]["code"], "INVALID_ARGUMENT");

    // The CLI prints each event, one JSON line each with --json.
    let addr = format!("http://{}", support::grpc_addr(&dev));
    let vector = f.queries[4]
        .iter()
        .map(f32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let cli = support::run_cli(&[
        "search", "wiki", "--addr", &addr, "--vector", &vector, "--ef", "64", "--stream", "--json",
    ]);
    assert!(cli.status.success(), "{cli:?}");
    let stdout = String::from_utf8(cli.stdout).unwrap();
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["done"], true, "{stdout}");
    let cli_ids: Vec<&Value> = last["result"]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["id"])
        .collect();
    let unary_ids: Vec<&Value> = unary["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| &h["id"])
        .collect();
    assert_eq!(cli_ids, unary_ids);
    let text = support::run_cli(&[
        "search", "wiki", "--addr", &addr, "--vector", &vector, "--stream",
    ]);
    assert!(text.status.success(), "{text:?}");
    let stdout = String::from_utf8(text.stdout).unwrap();
    assert!(
        stdout.contains(&format!("{CORES} of {CORES} shards answered\n")),
        "{stdout}"
    );
    dev.terminate();
}

/// The ids of a search of every fixture query at `ef` (the collection's default when
/// `None`).
async fn answers(client: &Client, f: &Fixture, ef: Option<u32>) -> Vec<Vec<String>> {
    let mut all = Vec::with_capacity(f.queries.len());
    for q in &f.queries {
        let mut request = SearchRequest::new("wiki", q.clone(), 10);
        request.ef = ef;
        let found = client.search(request).await.unwrap();
        all.push(found.hits.into_iter().map(|h| h.id).collect());
    }
    all
}

/// `Collections.Update` changes the default `ef` (and keeps the measurement behind it)
/// through the control plane: searches without `ef` use it at once, it survives a
/// restart, and settings fixed at creation are refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_updated_default_ef_serves_at_once_and_after_a_restart() {
    let (f, dir, dev, client) = wiki_on_dev().await;

    let at_default = answers(&client, &f, None).await;
    assert_eq!(at_default, answers(&client, &f, Some(EF)).await);
    let at_low = answers(&client, &f, Some(10)).await;
    assert_ne!(at_low, at_default, "ef 10 and {EF} answer alike: no test");

    // Searched (and cached) at the old default, then updated: the next searches use
    // the new one.
    let info = client.set_default_ef("wiki", 10).await.unwrap();
    assert_eq!(info.spec.unwrap().hnsw.unwrap().ef, Some(10));
    assert!(info.tuning.is_none());
    assert_eq!(answers(&client, &f, None).await, at_low);

    // Fixed settings are refused by name and change nothing; so is an ef out of range.
    for (spec, field) in [
        (
            CollectionSpec {
                dimension: 7,
                ..Default::default()
            },
            "dimension",
        ),
        (
            CollectionSpec {
                metric: Metric::L2.into(),
                ..Default::default()
            },
            "metric",
        ),
        (
            CollectionSpec {
                shard_count: Some(5),
                ..Default::default()
            },
            "shard_count",
        ),
        (
            CollectionSpec {
                hnsw: Some(vectron_client::HnswConfig {
                    m: Some(48),
                    ef: Some(20),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "hnsw.m",
        ),
        (
            CollectionSpec {
                hnsw: Some(vectron_client::HnswConfig {
                    ef: Some(0),
                    ..Default::default()
                }),
                ..Default::default()
            },
            "hnsw.ef",
        ),
    ] {
        let refused = client
            .update_collection(vectron_client::UpdateCollectionRequest {
                name: "wiki".into(),
                spec: Some(spec),
                ..Default::default()
            })
            .await;
        match refused {
            Err(vectron_client::Error::InvalidArgument(m)) => {
                assert!(m.contains(field), "{field}: {m}");
            }
            other => panic!("{field}: {other:?}"),
        }
    }
    // The settings as they are, given back, are accepted.
    let same = client.describe_collection("wiki").await.unwrap().spec;
    client
        .update_collection(vectron_client::UpdateCollectionRequest {
            name: "wiki".into(),
            spec: same,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(matches!(
        client.set_default_ef("nope", 10).await,
        Err(vectron_client::Error::NotFound(_))
    ));

    // Over HTTP, with the measurement that chose it.
    let http = Http::new(&support::http_addr(&dev));
    let tuning = json!({
        "target_recall": 0.95, "k": 10, "measured_recall": 0.97,
        "recall_lower_bound": 0.955, "queries": 200, "tuned_at_unix_ms": 1_700_000_000_000_u64
    });
    let (status, body) = http
        .json(
            "PATCH",
            "/v1/collections/wiki",
            Some(json!({"spec": {"hnsw": {"ef": 24}}, "tuning": tuning})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["spec"]["hnsw"]["ef"], 24);
    assert_eq!(body["tuning"]["k"], 10);
    let (status, body) = http
        .json(
            "PATCH",
            "/v1/collections/wiki",
            Some(json!({"spec": {"dimension": 3}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let at_24 = answers(&client, &f, Some(24)).await;
    dev.terminate();

    let dev = support::dev(dir.path(), CORES);
    let client = client_after_restart(&dev).await;
    let info = client.describe_collection("wiki").await.unwrap();
    assert_eq!(info.spec.unwrap().hnsw.unwrap().ef, Some(24));
    let kept = info.tuning.expect("the tuning survives a restart");
    assert_eq!((kept.k, kept.queries), (10, 200));
    assert!((kept.recall_lower_bound - 0.955).abs() < 1e-12);
    assert_eq!(answers(&client, &f, None).await, at_24);
    // The CLI sets it too, and a new ef without a measurement clears the old one.
    let addr = format!("http://{}", support::grpc_addr(&dev));
    let cli = support::run_cli(&[
        "collections",
        "update",
        "wiki",
        "--ef",
        "32",
        "--addr",
        &addr,
        "--json",
    ]);
    assert!(cli.status.success(), "{cli:?}");
    let info: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(info["spec"]["hnsw"]["ef"], 32);
    assert!(info.get("tuning").is_none_or(Value::is_null), "{info}");
    dev.terminate();
}

/// The fixture's most common non-empty section, and its points' ids.
fn common_section(f: &Fixture) -> (String, HashSet<String>) {
    let mut counts = std::collections::HashMap::<String, Vec<usize>>::new();
    for (i, p) in f.payloads.iter().enumerate() {
        let section = p["section"].as_str().unwrap();
        if !section.is_empty() {
            counts.entry(section.to_owned()).or_default().push(i);
        }
    }
    let (section, rows) = counts
        .into_iter()
        .max_by_key(|(_, rows)| rows.len())
        .unwrap();
    assert!(rows.len() > 3, "the fixture has sections shared by points");
    (section, rows.iter().map(usize::to_string).collect())
}

/// `describe` until the payload index on `field` is ready on every replica.
async fn until_index_ready(client: &Client, field: &str) -> vectron_client::CollectionInfo {
    for _ in 0..300 {
        let info = client.describe_collection("wiki").await.unwrap();
        if info
            .payload_index_status
            .iter()
            .any(|s| s.field == field && s.ready)
        {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the index on {field} was not built within 30 s");
}

/// `Collections.Update` adds payload indexes to a collection that holds points: each
/// replica builds them while it serves, `describe` says when they are ready, and
/// filters answer the same before and after; a dropped index goes (filters still
/// answer), conflicting changes are refused by name, and the indexes survive a
/// restart. Through the SDK, HTTP and the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_payload_index_is_built_while_serving_and_reported_by_describe() {
    let (f, dir, dev, client) = wiki_on_dev().await;
    let client = client.with_read_consistency(vectron_client::ReadConsistency::Linearizable);
    let (section, rows) = common_section(&f);
    let filter = Filter::must([Condition::keyword("section", &section)]);
    let filtered = |exact: bool| {
        let mut request = SearchRequest::new("wiki", f.queries[0].clone(), 50)
            .with_filter(filter.clone())
            .with_ef(EF);
        request.exact = exact;
        if exact {
            request.ef = None;
        }
        request
    };
    let ids = |r: vectron_client::SearchResponse| -> Vec<String> {
        r.hits.into_iter().map(|h| h.id).collect()
    };
    let truth = ids(client.search(filtered(true)).await.unwrap());
    assert_eq!(truth.iter().cloned().collect::<HashSet<_>>(), rows);
    assert_eq!(ids(client.search(filtered(false)).await.unwrap()), truth);

    // Described: the index made at creation is ready.
    let info = client.describe_collection("wiki").await.unwrap();
    assert_eq!(info.payload_index_status.len(), 1);
    assert!(info.payload_index_status[0].ready);
    assert_eq!(info.payload_index_status[0].replicas_total, CORES as u32);

    let section_index = PayloadIndex {
        field: "section".into(),
        kind: PayloadFieldKind::Keyword.into(),
    };
    let updated = client
        .add_payload_index("wiki", section_index.clone())
        .await
        .unwrap();
    let spec = updated.spec.unwrap();
    assert!(spec.payload_indexes.contains(&section_index), "{spec:?}");
    assert_eq!(updated.payload_index_status.len(), 2);
    let info = until_index_ready(&client, "section").await;
    let status = &info.payload_index_status[1];
    assert_eq!(
        (status.replicas_ready, status.replicas_total),
        (CORES as u32, CORES as u32)
    );
    assert_eq!(ids(client.search(filtered(false)).await.unwrap()), truth);
    assert_eq!(
        client.count("wiki", Some(filter.clone())).await.unwrap(),
        rows.len() as u64
    );
    // The same index again changes nothing.
    client
        .add_payload_index("wiki", section_index.clone())
        .await
        .unwrap();

    // Over HTTP: a numeric index, a range filter through it, then dropped.
    let http = Http::new(&support::http_addr(&dev));
    let (status, body) = http
        .json(
            "PATCH",
            "/v1/collections/wiki",
            Some(json!({"add_payload_indexes": [{"field": "id", "kind": "numeric"}]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["spec"]["payload_indexes"][2]["field"], "id", "{body}");
    until_index_ready(&client, "id").await;
    let range = json!({"filter": {"must": [{"field": {"key": "id", "range": {"lt": 100}}}]}});
    let (status, body) = http
        .json(
            "POST",
            "/v1/collections/wiki/points/count",
            Some(range.clone()),
        )
        .await;
    assert_eq!((status, &body["count"]), (200, &json!(100)), "{body}");
    let (status, body) = http
        .json(
            "PATCH",
            "/v1/collections/wiki",
            Some(json!({"drop_payload_indexes": ["id"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["spec"]["payload_indexes"].as_array().unwrap().len(), 2);
    let (_, body) = http
        .json("POST", "/v1/collections/wiki/points/count", Some(range))
        .await;
    assert_eq!(body["count"], 100, "{body}");
    // Refused by name: dropping what is not indexed, another kind for an indexed field,
    // payload indexes through the spec.
    for (change, says) in [
        (
            json!({"drop_payload_indexes": ["id"]}),
            "\"id\" has no index",
        ),
        (
            json!({"add_payload_indexes": [{"field": "section", "kind": "numeric"}]}),
            "indexed as keyword",
        ),
        (
            json!({"spec": {"payload_indexes": [{"field": "text", "kind": "keyword"}]}}),
            "add_payload_indexes",
        ),
    ] {
        let (status, body) = http
            .json("PATCH", "/v1/collections/wiki", Some(change))
            .await;
        assert_eq!(status, 400, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }

    // The CLI drops and adds, and describe shows the indexes.
    let addr = format!("http://{}", support::grpc_addr(&dev));
    let cli = support::run_cli(&[
        "collections",
        "update",
        "wiki",
        "--drop-index",
        "title",
        "--add-index",
        "title:keyword",
        "--addr",
        &addr,
    ]);
    assert!(cli.status.success(), "{cli:?}");
    assert!(
        String::from_utf8_lossy(&cli.stdout).contains("section:keyword"),
        "{cli:?}"
    );
    until_index_ready(&client, "title").await;
    dev.terminate();

    // After a restart the indexes are declared and built as the shards load.
    let dev = support::dev(dir.path(), CORES);
    let client = client_after_restart(&dev).await;
    let info = until_index_ready(&client, "section").await;
    let fields: Vec<&str> = info
        .payload_index_status
        .iter()
        .map(|s| s.field.as_str())
        .collect();
    assert_eq!(fields, ["section", "title"]);
    assert!(info.payload_index_status.iter().all(|s| s.ready));
    let client = client.with_read_consistency(vectron_client::ReadConsistency::Linearizable);
    assert_eq!(ids(client.search(filtered(false)).await.unwrap()), truth);
    dev.terminate();
}
