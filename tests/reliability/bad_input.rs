//! Bad input at each door of a real `vectron dev` (the HTTP door, the gRPC door, a core's
//! own port): every case is answered with its status code, and a normal search succeeds
//! right after it.

use std::time::Duration;

use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;
use vectron_proto::core::v1 as core;
use vectron_proto::core::v1::core_service_client::CoreServiceClient;
use vectron_proto::v1 as api;
use vectron_proto::v1::collections_client::CollectionsClient;
use vectron_proto::v1::points_client::PointsClient;

use crate::harness::{COLLECTION, dev_with_docs, search_ok, vector};
use crate::support::{self, Http};

/// What went wrong, case by case, reported all at once.
#[derive(Default)]
struct Mismatches(Vec<String>);

impl Mismatches {
    fn http(&mut self, case: &str, got: (u16, &Value), status: u16, code: &str) {
        let (got_status, body) = got;
        let got_code = body["error"]["code"].as_str().unwrap_or("-");
        if got_status != status || got_code != code {
            self.0.push(format!(
                "{case}: expected {status} {code}, got {got_status} {body}"
            ));
        }
        let message = body["error"]["message"].as_str().unwrap_or_default();
        if message.is_empty() || message.contains("127.0.0.1") {
            self.0.push(format!(
                "{case}: the message must say what is wrong, without addresses: {body}"
            ));
        }
    }

    fn grpc<T: std::fmt::Debug>(&mut self, case: &str, got: Result<T, tonic::Status>, code: Code) {
        match got {
            Err(status) if status.code() == code && !status.message().is_empty() => {}
            other => self
                .0
                .push(format!("{case}: expected {code:?}, got {other:?}")),
        }
    }

    fn assert_none(self) {
        assert!(self.0.is_empty(), "\n{}", self.0.join("\n"));
    }
}

fn points_path() -> String {
    format!("/v1/collections/{COLLECTION}/points")
}

fn route(what: &str) -> String {
    format!("/v1/collections/{COLLECTION}/points/{what}")
}

/// One point of the collection's shape, as JSON.
fn point(id: &str) -> Value {
    json!({"id": id, "vector": [0.5, 0.5, 0.1, 0.2]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_door_answers_bad_input_with_its_code_and_keeps_serving() {
    let dir = support::tempdir();
    let dev = dev_with_docs(dir.path(), &[]).await;
    let http = Http::new(&support::http_addr(&dev));
    let mut bad = Mismatches::default();
    let mut cases = 0;

    // --- the HTTP door ------------------------------------------------------------------
    type HttpCase = (
        &'static str,
        &'static str,
        String,
        Option<&'static str>,
        Vec<u8>,
        u16,
        &'static str,
    );
    let json_body = |v: Value| v.to_string().into_bytes();
    let long_id = "x".repeat(129);
    let deep = (0..30).fold(json!(1), |v, _| json!([v]));
    let big_payload = "y".repeat(64 * 1024 + 1);
    let too_many: Vec<Value> = (0..10_001).map(|i| point(&format!("m{i}"))).collect();
    let too_many_ids: Vec<String> = (0..10_001).map(|i| format!("m{i}")).collect();
    let many_searches: Vec<Value> = (0..1_001)
        .map(|_| json!({"vector": [1.0, 0.0, 0.0, 0.0], "k": 1}))
        .collect();
    let j = Some("application/json");
    let collections = "/v1/collections".to_owned();
    let http_cases: Vec<HttpCase> = vec![
        (
            "malformed JSON",
            "POST",
            collections.clone(),
            j,
            b"{\"name\": ".to_vec(),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "wrong content type",
            "POST",
            collections.clone(),
            Some("text/plain"),
            b"{}".to_vec(),
            415,
            "INVALID_ARGUMENT",
        ),
        (
            "dimension 0",
            "POST",
            collections.clone(),
            j,
            json_body(json!({"name": "z", "dimension": 0, "metric": "l2"})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "a name that is a path",
            "POST",
            collections.clone(),
            j,
            json_body(json!({"name": "../x", "dimension": 4, "metric": "l2"})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "no metric",
            "POST",
            collections.clone(),
            j,
            json_body(json!({"name": "z", "dimension": 4})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "5,000 shards",
            "POST",
            collections.clone(),
            j,
            json_body(json!({"name": "z", "dimension": 4, "metric": "l2", "shard_count": 5000})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "m of 2",
            "POST",
            collections.clone(),
            j,
            json_body(json!({"name": "z", "dimension": 4, "metric": "l2", "hnsw": {"m": 2}})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "an existing name",
            "POST",
            collections.clone(),
            j,
            json_body(json!({"name": COLLECTION, "dimension": 4, "metric": "l2"})),
            409,
            "ALREADY_EXISTS",
        ),
        (
            "upsert to an unknown collection",
            "PUT",
            "/v1/collections/nope/points".into(),
            j,
            json_body(json!({"points": [point("a")]})),
            404,
            "NOT_FOUND",
        ),
        (
            "a vector of the wrong dimension",
            "PUT",
            points_path(),
            j,
            json_body(json!({"points": [{"id": "a", "vector": [1.0, 2.0]}]})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "a value past f32",
            "PUT",
            points_path(),
            j,
            br#"{"points": [{"id": "a", "vector": [1e39, 0, 0, 0]}]}"#.to_vec(),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "a zero vector in a cosine collection",
            "PUT",
            points_path(),
            j,
            json_body(json!({"points": [{"id": "a", "vector": [0.0, 0.0, 0.0, 0.0]}]})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "no points",
            "PUT",
            points_path(),
            j,
            json_body(json!({"points": []})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "an id of 129 bytes",
            "PUT",
            points_path(),
            j,
            json_body(json!({"points": [point(&long_id)]})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "an id twice",
            "PUT",
            points_path(),
            j,
            json_body(json!({"points": [point("a"), point("a")]})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "a payload that is an array",
            "PUT",
            points_path(),
            j,
            json_body(json!({"points": [{"id": "a", "vector": [1, 0, 0, 0], "payload": [1]}]})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "a payload 30 levels deep",
            "PUT",
            points_path(),
            j,
            json_body(
                json!({"points": [{"id": "a", "vector": [1, 0, 0, 0], "payload": {"d": deep}}]}),
            ),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "a payload over 64 KiB",
            "PUT",
            points_path(),
            j,
            json_body(
                json!({"points": [{"id": "a", "vector": [1, 0, 0, 0], "payload": {"t": big_payload}}]}),
            ),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "10,001 points",
            "PUT",
            points_path(),
            j,
            json_body(json!({"points": too_many})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "k of 0",
            "POST",
            route("search"),
            j,
            json_body(json!({"vector": [1, 0, 0, 0], "k": 0})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "k of 10,001",
            "POST",
            route("search"),
            j,
            json_body(json!({"vector": [1, 0, 0, 0], "k": 10_001})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "ef of 40,000",
            "POST",
            route("search"),
            j,
            json_body(json!({"vector": [1, 0, 0, 0], "k": 1, "ef": 40_000})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "a query of the wrong dimension",
            "POST",
            route("search"),
            j,
            json_body(json!({"vector": [1, 0], "k": 1})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "a filter with an empty key",
            "POST",
            route("search"),
            j,
            json_body(
                json!({"vector": [1, 0, 0, 0], "k": 1, "filter": {"must": [{"field": {"key": "", "keyword": "x"}}]}}),
            ),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "a search of an unknown collection",
            "POST",
            "/v1/collections/nope/points/search".into(),
            j,
            json_body(json!({"vector": [1, 0, 0, 0], "k": 1})),
            404,
            "NOT_FOUND",
        ),
        (
            "a rerank",
            "POST",
            route("search"),
            j,
            json_body(json!({"vector": [1, 0, 0, 0], "k": 1, "rerank": {}})),
            501,
            "UNIMPLEMENTED",
        ),
        (
            "a timeout of 0 ms",
            "POST",
            route("search"),
            j,
            json_body(json!({"vector": [1, 0, 0, 0], "k": 1, "timeout_ms": 0})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "1,001 searches in a batch",
            "POST",
            route("search/batch"),
            j,
            json_body(json!({"searches": many_searches})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "an unknown point",
            "GET",
            route("nope"),
            None,
            Vec::new(),
            404,
            "NOT_FOUND",
        ),
        (
            "10,001 ids",
            "POST",
            route("get"),
            j,
            json_body(json!({"ids": too_many_ids})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "a delete with no selector",
            "POST",
            route("delete"),
            j,
            json_body(json!({})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "a delete by an empty filter",
            "POST",
            route("delete"),
            j,
            json_body(json!({"filter": {}})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "a scroll page of 10,001",
            "POST",
            route("scroll"),
            j,
            json_body(json!({"limit": 10_001})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "a body naming another collection",
            "POST",
            route("count"),
            j,
            json_body(json!({"collection": "other"})),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "an unknown route",
            "GET",
            "/v1/nothing".into(),
            None,
            Vec::new(),
            404,
            "NOT_FOUND",
        ),
        (
            "a method the route does not take",
            "DELETE",
            route("search"),
            None,
            Vec::new(),
            405,
            "UNIMPLEMENTED",
        ),
        (
            "an unknown query parameter",
            "GET",
            format!("{}?colour=red", route("p1")),
            None,
            Vec::new(),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "an NDJSON line that is not a point",
            "POST",
            route("stream"),
            Some("application/x-ndjson"),
            b"{\"id\": \"a\", \"vector\": [1, 0, 0, 0]}\n{\"id\": 7.5}\n".to_vec(),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "an NDJSON body sent as JSON",
            "POST",
            route("stream"),
            j,
            b"{}".to_vec(),
            415,
            "INVALID_ARGUMENT",
        ),
    ];
    for (case, method, path, content_type, body, status, code) in http_cases {
        let (got, text) = http.send(method, &path, content_type, body).await;
        let value: Value = serde_json::from_str(&text).unwrap_or_else(|_| json!({"raw": text}));
        bad.http(case, (got, &value), status, code);
        search_ok(&http).await;
        cases += 1;
    }
    // A body past the 64 MiB limit is refused by its declared length, before it is read.
    let huge = vec![b' '; (64 << 20) + 1];
    let (got, text) = http.send("PUT", &points_path(), j, huge).await;
    let value: Value = serde_json::from_str(&text).unwrap_or_else(|_| json!({"raw": text}));
    bad.http(
        "a body over 64 MiB",
        (got, &value),
        413,
        "RESOURCE_EXHAUSTED",
    );
    search_ok(&http).await;
    cases += 1;

    // --- the gRPC door ------------------------------------------------------------------
    let channel = Channel::from_shared(format!("http://{}", support::grpc_addr(&dev)))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut collections = CollectionsClient::new(channel.clone());
    let mut points = PointsClient::new(channel.clone()).max_encoding_message_size(256 << 20);
    let grpc_point = |id: &str, v: Vec<f32>| api::Point::new(id, v);
    let upsert = |collection: &str, pts: Vec<api::Point>| api::UpsertRequest {
        collection: collection.into(),
        points: pts,
        wait: None,
    };
    let search = |k: u32, v: Vec<f32>| api::SearchRequest::new(COLLECTION, v, k);

    bad.grpc(
        "gRPC: dimension 0",
        collections
            .create(api::CreateCollectionRequest {
                spec: Some(api::CollectionSpec::new("z", 0, api::Metric::L2)),
            })
            .await,
        Code::InvalidArgument,
    );
    bad.grpc(
        "gRPC: no spec",
        collections
            .create(api::CreateCollectionRequest { spec: None })
            .await,
        Code::InvalidArgument,
    );
    bad.grpc(
        "gRPC: describe an unknown collection",
        collections
            .describe(api::DescribeCollectionRequest {
                name: "nope".into(),
            })
            .await,
        Code::NotFound,
    );
    bad.grpc(
        "gRPC: a vector of the wrong dimension",
        points
            .upsert(upsert(COLLECTION, vec![grpc_point("a", vec![1.0; 3])]))
            .await,
        Code::InvalidArgument,
    );
    bad.grpc(
        "gRPC: a NaN",
        points
            .upsert(upsert(
                COLLECTION,
                vec![grpc_point("a", vec![f32::NAN, 1.0, 0.0, 0.0])],
            ))
            .await,
        Code::InvalidArgument,
    );
    bad.grpc(
        "gRPC: upsert to an unknown collection",
        points
            .upsert(upsert("nope", vec![grpc_point("a", vector(1))]))
            .await,
        Code::NotFound,
    );
    bad.grpc(
        "gRPC: k of 0",
        points.search(search(0, vector(1))).await,
        Code::InvalidArgument,
    );
    bad.grpc(
        "gRPC: an infinite query",
        points
            .search(search(3, vec![f32::INFINITY, 0.0, 0.0, 0.0]))
            .await,
        Code::InvalidArgument,
    );
    bad.grpc(
        "gRPC: a delete with no selector",
        points
            .delete(api::DeleteRequest {
                collection: COLLECTION.into(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
    );
    let mut big = vec![grpc_point("big", vector(1))];
    big[0].vector = vec![0.5; (65 << 20) / 4];
    bad.grpc(
        "gRPC: a message over 64 MiB",
        points.upsert(upsert(COLLECTION, big)).await,
        Code::ResourceExhausted,
    );
    let stream = tokio_stream::iter(vec![
        upsert(COLLECTION, vec![grpc_point("s1", vector(1))]),
        upsert("other", vec![grpc_point("s2", vector(2))]),
    ]);
    bad.grpc(
        "gRPC: a stream naming two collections",
        points.upsert_stream(stream).await,
        Code::InvalidArgument,
    );
    cases += 11;
    // A deadline past gRPC's eight digits is ignored, not a crash.
    let mut request = tonic::Request::new(search(3, vector(1)));
    request
        .metadata_mut()
        .insert("grpc-timeout", "123456789H".parse().unwrap());
    let answer = points.search(request).await;
    if answer.is_err() {
        bad.0
            .push(format!("gRPC: a 9-digit grpc-timeout: {answer:?}"));
    }
    search_ok(&http).await;
    cases += 1;

    // --- a core's own port ----------------------------------------------------------------
    let (_, info) = http
        .json("GET", &format!("/v1/collections/{COLLECTION}"), None)
        .await;
    let shard = &info["shards"][0];
    let replica = &shard["replicas"][0];
    let address = replica["address"].as_str().unwrap().to_owned();
    let shard_ref = core::ShardRef {
        collection: COLLECTION.into(),
        shard_id: shard["shard_id"].as_u64().unwrap_or(0) as u32,
        epoch: replica["epoch"].as_u64().unwrap(),
    };
    let mut core = CoreServiceClient::new(
        Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
    .max_encoding_message_size(128 << 20);
    let core_search = |shard: Option<core::ShardRef>, k: u32| core::SearchRequest {
        shard,
        vector: vec![1.0, 0.0, 0.0, 0.0],
        k,
        ..Default::default()
    };
    bad.grpc(
        "core: a search naming no shard",
        core.search(core_search(None, 3)).await,
        Code::InvalidArgument,
    );
    let stale = core::ShardRef {
        epoch: shard_ref.epoch + 100,
        ..shard_ref.clone()
    };
    match core.search(core_search(Some(stale), 3)).await {
        Err(s)
            if s.code() == Code::FailedPrecondition
                && s.metadata()
                    .contains_key(vectron_proto::rules::EPOCH_TRAILER) => {}
        other => bad.0.push(format!(
            "core: a stale epoch: expected FAILED_PRECONDITION with the epoch, got {other:?}"
        )),
    }
    let unknown = core::ShardRef {
        shard_id: 99,
        ..shard_ref.clone()
    };
    bad.grpc(
        "core: a shard it does not hold",
        core.search(core_search(Some(unknown), 3)).await,
        Code::NotFound,
    );
    bad.grpc(
        "core: k of 10,001",
        core.search(core_search(Some(shard_ref.clone()), 10_001))
            .await,
        Code::InvalidArgument,
    );
    // Ids whose hash another shard owns.
    let foreign: Vec<core::Point> = (0..50)
        .map(|i| core::Point {
            id: format!("f{i}"),
            vector: vector(i),
            payload_json: Vec::new(),
        })
        .collect();
    bad.grpc(
        "core: points of another shard",
        core.upsert(core::UpsertRequest {
            shard: Some(shard_ref.clone()),
            points: foreign,
            wait: None,
        })
        .await,
        Code::FailedPrecondition,
    );
    let too_many: Vec<core::Point> = (0..10_001)
        .map(|i| core::Point {
            id: format!("t{i}"),
            vector: vector(i),
            payload_json: Vec::new(),
        })
        .collect();
    bad.grpc(
        "core: 10,001 points",
        core.upsert(core::UpsertRequest {
            shard: Some(shard_ref.clone()),
            points: too_many,
            wait: None,
        })
        .await,
        Code::InvalidArgument,
    );
    bad.grpc(
        "core: a payload that is not JSON",
        core.upsert(core::UpsertRequest {
            shard: Some(shard_ref.clone()),
            points: vec![core::Point {
                id: "p0".into(),
                vector: vector(0),
                payload_json: b"{not json".to_vec(),
            }],
            wait: None,
        })
        .await,
        Code::InvalidArgument,
    );
    bad.grpc(
        "core: a delete by an empty filter",
        core.delete(core::DeleteRequest {
            shard: Some(shard_ref.clone()),
            selector: Some(core::delete_request::Selector::Filter(
                api::Filter::default(),
            )),
            wait: None,
        })
        .await,
        Code::InvalidArgument,
    );
    // A stream carrying an empty batch is refused, not taken as a stream of nothing.
    let batches = vec![core::UpsertRequest {
        shard: Some(shard_ref.clone()),
        points: Vec::new(),
        wait: None,
    }];
    bad.grpc(
        "core: an upsert stream with an empty batch",
        core.upsert_stream(tokio_stream::iter(batches)).await,
        Code::InvalidArgument,
    );
    let mut malformed = tonic::Request::new(core_search(Some(shard_ref.clone()), 3));
    malformed
        .metadata_mut()
        .insert("grpc-timeout", "soon".parse().unwrap());
    let answer = core.search(malformed).await;
    if answer.is_ok() {
        bad.0.push(format!(
            "core: a malformed grpc-timeout is refused: {answer:?}"
        ));
    }
    bad.grpc(
        "core: a scroll page of 10,001",
        core.scroll(core::ScrollRequest {
            shard: Some(shard_ref.clone()),
            limit: 10_001,
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
    );
    cases += 11;
    search_ok(&http).await;
    // The core still answers its own calls.
    let ok = tokio::time::timeout(
        Duration::from_secs(10),
        core.search(core_search(Some(shard_ref), 3)),
    )
    .await
    .expect("the core answers")
    .expect("a good search on the core's port");
    assert!(!ok.into_inner().hits.is_empty());

    assert!(cases >= 40, "{cases} cases");
    bad.assert_none();
    dev.terminate();
}
