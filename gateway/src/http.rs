//! The HTTP/JSON door (docs/api.md): axum routes over the shared handlers. Bodies are
//! read with a size limit and parsed with `vectron_proto::json`, the one JSON mapping of
//! the API; payloads are taken out before parsing and passed to the cores as the JSON
//! text they are, and the cores' payload text is put back into answers as it is.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use vectron_proto::core::v1 as core;
use vectron_proto::json::{from_json, to_json};
use vectron_proto::v1::{
    CollectionSpec, CoreStatsResponse, CountRequest, CountResponse, CreateKeyRequest,
    CreateTokenRequest, CreateUserRequest, DeleteRequest, DeleteResponse, GetRequest,
    ListCollectionsResponse, ListKeysResponse, ListPlansResponse, ListUsersResponse, LoginRequest,
    Plan, Point, ScrollRequest, SearchRequest, UpdateCollectionRequest, UpsertRequest,
};

use vectron_proto::rules::{self, RuleError};

use crate::admission::{BodyRefused, CallKind, GuardedBody, JSON_EXPANSION, ticketed, within};
use crate::auth::{Caller, ClientAddr, HTTP_LOGIN_PATH, authenticate};
use crate::cache::SearchOutcome;
use crate::error::GatewayError;
use crate::service::Service;
use crate::stream::{IncomingBatch, Position};

type Shared = Arc<Service>;
type Answer = Result<Response, GatewayError>;

const JSON: &str = "application/json";
const NDJSON: &str = "application/x-ndjson";

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        if self.code() == tonic::Code::Internal {
            tracing::error!(error = %self, "internal error");
        }
        let mut response = (
            self.http_status(),
            [(header::CONTENT_TYPE, JSON)],
            self.to_json().to_string(),
        )
            .into_response();
        if let Some(after) = self.retry_after() {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(after.as_secs().max(1)),
            );
        }
        response
    }
}

fn json_answer(status: StatusCode, value: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, JSON)], value.to_string()).into_response()
}

fn ok(value: &Value) -> Answer {
    Ok(json_answer(StatusCode::OK, value))
}

/// Every route of docs/api.md.
pub(crate) fn router(service: Shared) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/v1/stats/cores", get(stats))
        .route("/v1/collections", post(create).get(list))
        .route(
            "/v1/collections/{name}",
            get(describe).delete(drop_collection).patch(update_collection),
        )
        .route("/v1/collections/{name}/points", axum::routing::put(upsert))
        .route("/v1/collections/{name}/points/stream", post(upsert_stream).get(get_one))
        .route("/v1/collections/{name}/points/get", post(get_points).get(get_one))
        .route("/v1/collections/{name}/points/delete", post(delete).get(get_one))
        .route("/v1/collections/{name}/points/count", post(count).get(get_one))
        .route("/v1/collections/{name}/points/scroll", post(scroll).get(get_one))
        .route("/v1/collections/{name}/points/search", post(search).get(get_one))
        .route("/v1/collections/{name}/points/search/batch", post(search_batch))
        .route("/v1/collections/{name}/points/search/stream", post(search_stream))
        .route("/v1/collections/{name}/points/{id}", get(get_one))
        .route("/v1/keys", post(create_key).get(list_keys))
        .route("/v1/keys/{id}", axum::routing::delete(revoke_key))
        .route("/v1/tokens", post(create_token))
        .route("/v1/plans", post(set_plan).get(list_plans))
        .route("/v1/plans/{name}", axum::routing::delete(delete_plan))
        .route("/v1/users", post(create_user).get(list_users))
        .route("/v1/users/{name}", axum::routing::delete(delete_user))
        .route(HTTP_LOGIN_PATH, post(login))
        .fallback(|| async {
            json_answer(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"error": {"code": "NOT_FOUND", "message": "no such route; see docs/api.md"}}),
            )
        })
        .method_not_allowed_fallback(|| async {
            json_answer(
                StatusCode::METHOD_NOT_ALLOWED,
                &serde_json::json!({"error": {"code": "UNIMPLEMENTED", "message": "this route does not take that method; see docs/api.md"}}),
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            service.clone(),
            authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(service.clone(), admit))
        .with_state(service)
}

// --- reading requests ---------------------------------------------------------------

/// The media type of a request, lowercased, without parameters.
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let essence = value.split(';').next().unwrap_or_default().trim();
    Some(essence.to_ascii_lowercase())
}

fn check_media_type(
    headers: &HeaderMap,
    expected: &'static str,
    also: &[&str],
) -> Result<(), GatewayError> {
    match media_type(headers) {
        Some(t) if t == expected || also.contains(&t.as_str()) => Ok(()),
        got => Err(GatewayError::UnsupportedMediaType {
            expected,
            got: got.unwrap_or_else(|| "none".into()),
        }),
    }
}

/// After refusing a body as too large, the gateway reads on (and discards) at most this
/// much of it, for at most [`DRAIN_TIME`], before answering: a client that writes its
/// whole body before reading the answer then gets the 413 instead of a connection reset.
const DRAIN_BYTES: u64 = 256 << 20;
/// See [`DRAIN_BYTES`].
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads a whole body of at most `limit` bytes.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, GatewayError> {
    let too_large = GatewayError::TooLarge {
        what: "request body",
        max: limit,
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut frames = body.into_data_stream();
    if let Some(declared) = declared.filter(|&n| n > limit as u64) {
        if declared <= DRAIN_BYTES {
            drain(&mut frames).await;
        }
        return Err(too_large);
    }
    let mut collected = bytes::BytesMut::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(frame) = frames.next().await {
        let frame = frame.map_err(body_error)?;
        if collected.len() + frame.len() > limit {
            drain(&mut frames).await;
            return Err(too_large);
        }
        collected.extend_from_slice(&frame);
    }
    Ok(collected.freeze())
}

/// Why a body could not be read: the gateway's refusal (its budget, a body that stopped
/// arriving), or a connection that failed.
fn body_error(e: axum::Error) -> GatewayError {
    let inner = e.into_inner();
    match BodyRefused::find(inner.as_ref()) {
        Some(refused) => refused.error(),
        None => GatewayError::BadJson {
            reason: format!("the request body could not be read: {inner}"),
        },
    }
}

/// Admits a request (see `admission.rs`): refused at once beyond a budget, its body
/// charged as it arrives and timed out when it stops arriving.
async fn admit(
    State(service): State<Shared>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    let kind = if path == "/healthz" || path == "/readyz" {
        CallKind::Probe
    } else if request.method() == http::Method::POST && path.ends_with("/points/stream") {
        CallKind::Stream
    } else {
        CallKind::Unary {
            expansion: JSON_EXPANSION,
        }
    };
    let ticket = match service.admission.admit(kind) {
        Ok(ticket) => ticket,
        Err(refused) => return refused.into_response(),
    };
    // A declared length within the body limit is paid for now: a body that cannot fit
    // the budget is refused before it is sent. One over the limit is refused with 413 as
    // its length is read.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n <= service.config.limits.max_message_bytes)
        .unwrap_or(0);
    if let Err(refused) = ticket.prepay(declared) {
        return refused.into_response();
    }
    let request = request
        .map(|body| Body::new(GuardedBody::new(body, Arc::clone(&ticket)).prepaid(declared)));
    within(ticket, next.run(request)).await
}

/// Reads and discards what is left of a body, within [`DRAIN_BYTES`] and [`DRAIN_TIME`].
async fn drain(frames: &mut axum::body::BodyDataStream) {
    let discard = async {
        let mut read = 0u64;
        while let Some(Ok(frame)) = frames.next().await {
            read += frame.len() as u64;
            if read > DRAIN_BYTES {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, discard).await;
}

/// A JSON object body (an empty body reads as `{}`), with `collection` set from the
/// path: a body naming another collection is refused.
async fn json_body(
    service: &Service,
    headers: &HeaderMap,
    body: Body,
    collection: Option<&str>,
) -> Result<Value, GatewayError> {
    if headers.contains_key(header::CONTENT_TYPE) {
        check_media_type(headers, JSON, &[])?;
    }
    let bytes = read_body(headers, body, service.config.limits.max_message_bytes).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        let mut empty = Value::Object(Map::new());
        if let Some(name) = collection {
            set_collection(&mut empty, name)?;
        }
        return Ok(empty);
    }
    check_media_type(headers, JSON, &[])?;
    let mut value: Value = serde_json::from_slice(&bytes).map_err(|e| GatewayError::BadJson {
        reason: e.to_string(),
    })?;
    if let Some(name) = collection {
        set_collection(&mut value, name)?;
    }
    Ok(value)
}

fn set_collection(value: &mut Value, name: &str) -> Result<(), GatewayError> {
    let Value::Object(map) = value else {
        return Err(GatewayError::BadJson {
            reason: "the body must be a JSON object".into(),
        });
    };
    match map.get("collection") {
        Some(Value::String(given)) if given != name => {
            return Err(GatewayError::CollectionMismatch {
                expected: name.to_owned(),
                got: given.clone(),
            });
        }
        _ => {}
    }
    map.insert("collection".into(), Value::String(name.to_owned()));
    Ok(())
}

/// Parses a message from its JSON form.
/// A JSON body that is one whole message `M` (no collection in the path to fill in).
async fn message_body<M: prost::Message + prost::Name + Default>(
    service: &Service,
    headers: &HeaderMap,
    body: Body,
) -> Result<M, GatewayError> {
    parse(&json_body(service, headers, body, None).await?)
}

fn parse<M: prost::Message + prost::Name + Default>(value: &Value) -> Result<M, GatewayError> {
    from_json(value).map_err(|e| GatewayError::BadJson {
        reason: e.to_string(),
    })
}

/// A non-negative integer id (`7`) as the decimal string it stands for (`"7"`): ids are
/// strings, and integer ids travel as their decimal text (as the CLI reads them).
fn id_as_text(id: &mut Value) {
    if let Value::Number(n) = id
        && let Some(n) = n.as_u64()
    {
        *id = Value::String(n.to_string());
    }
}

/// Takes the payloads out of JSON points (so they travel to the cores as the text the
/// client sent), checking that each is an object; integer ids become text.
fn take_payloads(points: &mut [Value]) -> Result<Vec<Vec<u8>>, GatewayError> {
    points
        .iter_mut()
        .enumerate()
        .map(|(i, point)| {
            let Value::Object(map) = point else {
                return Err(GatewayError::BadJson {
                    reason: format!("point {i} is not a JSON object"),
                });
            };
            if let Some(id) = map.get_mut("id") {
                id_as_text(id);
            }
            match map.remove("payload") {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(payload @ Value::Object(_)) => {
                    let depth = rules::json_depth(&payload);
                    rules::check_payload_depth(depth).map_err(|reason| {
                        RuleError::PayloadDepth {
                            point: i,
                            id: point_id(map),
                            reason,
                        }
                    })?;
                    Ok(payload.to_string().into_bytes())
                }
                Some(other) => Err(RuleError::BadPayload {
                    point: i,
                    id: point_id(map),
                    reason: format!("got {}", json_kind(&other)),
                }
                .into()),
            }
        })
        .collect()
}

/// The id of a JSON point, for an error message ("" when it has none).
fn point_id(point: &Map<String, Value>) -> String {
    point
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Public points, payloads taken out, back into the cores' form.
fn core_points(points: Vec<Point>, payloads: Vec<Vec<u8>>) -> Vec<core::Point> {
    points
        .into_iter()
        .zip(payloads)
        .map(|(p, payload_json)| core::Point {
            id: p.id,
            vector: p.vector,
            payload_json,
        })
        .collect()
}

/// Query parameters, each known name at most once.
fn query_flags(
    pairs: &[(String, String)],
    known: &[&str],
) -> Result<std::collections::HashMap<String, String>, GatewayError> {
    let mut out = std::collections::HashMap::new();
    for (name, value) in pairs {
        if !known.contains(&name.as_str()) {
            return Err(GatewayError::BadQuery {
                name: name.clone(),
                reason: format!("unknown parameter; this route takes {known:?}"),
            });
        }
        if out.insert(name.clone(), value.clone()).is_some() {
            return Err(GatewayError::BadQuery {
                name: name.clone(),
                reason: "given more than once".into(),
            });
        }
    }
    Ok(out)
}

fn flag(
    flags: &std::collections::HashMap<String, String>,
    name: &str,
    default: bool,
) -> Result<bool, GatewayError> {
    match flags.get(name).map(String::as_str) {
        None => Ok(default),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(other) => Err(GatewayError::BadQuery {
            name: name.to_owned(),
            reason: format!("{other:?} is not true or false"),
        }),
    }
}

/// The query parameters of a request, in order (`?a=1&b=2`); see [`query_flags`].
struct QueryPairs(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, GatewayError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| GatewayError::BadQuery {
                name: String::new(),
                reason: e.body_text(),
            })?;
        Ok(Self(pairs))
    }
}

/// The `{name}` (and, on the one-point route, `{id}`) of the path.
struct PathParts {
    name: String,
    id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for PathParts {
    type Rejection = GatewayError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, GatewayError> {
        let Path(mut params) =
            Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
                .await
                .map_err(|e| GatewayError::BadPath {
                    reason: e.body_text(),
                })?;
        let name = params.remove("name").ok_or_else(|| GatewayError::BadPath {
            reason: "it names no collection".into(),
        })?;
        Ok(Self {
            name,
            id: params.remove("id"),
        })
    }
}

/// The collection named in the path, and the JSON object body (see [`json_body`]) with
/// its `collection` set to it.
struct CollectionJson {
    name: String,
    value: Value,
}

impl FromRequest<Shared> for CollectionJson {
    type Rejection = GatewayError;

    async fn from_request(req: Request, service: &Shared) -> Result<Self, GatewayError> {
        let (mut parts, body) = req.into_parts();
        let PathParts { name, .. } = PathParts::from_request_parts(&mut parts, service).await?;
        let mut value = json_body(service, &parts.headers, body, Some(&name)).await?;
        // The ids of a get or a delete.
        if let Some(Value::Array(ids)) = value.get_mut("ids") {
            ids.iter_mut().for_each(id_as_text);
        }
        Ok(Self { name, value })
    }
}

/// A request message read from [`CollectionJson`].
struct Message<M>(M);

impl<M: prost::Message + prost::Name + Default> FromRequest<Shared> for Message<M> {
    type Rejection = GatewayError;

    async fn from_request(req: Request, service: &Shared) -> Result<Self, GatewayError> {
        let CollectionJson { value, .. } = CollectionJson::from_request(req, service).await?;
        parse(&value).map(Self)
    }
}

// --- writing answers ----------------------------------------------------------------

/// The JSON of points: the public message's form, with each payload put back as the
/// cores' JSON text.
fn points_json(points: Vec<core::Point>) -> Result<Value, GatewayError> {
    let mut payloads = Vec::with_capacity(points.len());
    let public: Vec<Point> = points
        .into_iter()
        .map(|p| {
            payloads.push(p.payload_json);
            Point {
                id: p.id,
                vector: p.vector,
                payload: None,
            }
        })
        .collect();
    let mut value = to_json(&vectron_proto::v1::GetResponse { points: public });
    put_payloads(value.get_mut("points"), payloads)?;
    Ok(value)
}

/// Puts payload texts back into a JSON array of points or hits, and leaves out the
/// `vector` of those that carry none (the request did not ask for vectors: a stored
/// vector is never empty).
fn put_payloads(items: Option<&mut Value>, payloads: Vec<Vec<u8>>) -> Result<(), GatewayError> {
    let Some(Value::Array(items)) = items.map(|v| &mut *v) else {
        return Ok(());
    };
    for (item, text) in items.iter_mut().zip(payloads) {
        let Value::Object(map) = item else { continue };
        if map
            .get("vector")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            map.remove("vector");
        }
        if text.is_empty() {
            continue;
        }
        let payload: Value = serde_json::from_slice(&text).map_err(|e| {
            GatewayError::Internal(format!("a core returned a payload that is not JSON: {e}"))
        })?;
        map.insert("payload".into(), payload);
    }
    Ok(())
}

fn search_json(outcome: &SearchOutcome) -> Result<Value, GatewayError> {
    let hits: Vec<vectron_proto::v1::ScoredPoint> = outcome
        .hits
        .iter()
        .map(|h| vectron_proto::v1::ScoredPoint {
            id: h.id.clone(),
            score: h.score,
            vector: h.vector.clone(),
            payload: None,
        })
        .collect();
    let mut value = to_json(&vectron_proto::v1::SearchResponse {
        hits,
        missing_shards: outcome.missing_shards.clone(),
        reranked: false,
    });
    put_payloads(
        value.get_mut("hits"),
        outcome
            .hits
            .iter()
            .map(|h| h.payload_json.clone())
            .collect(),
    )?;
    Ok(value)
}

// --- handlers ------------------------------------------------------------------------

async fn readyz(State(service): State<Shared>) -> Response {
    match service.ready().await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => {
            let mut response = e.into_response();
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response
        }
    }
}

async fn stats(
    State(service): State<Shared>,
    Caller(who): Caller,
    QueryPairs(query): QueryPairs,
) -> Answer {
    let flags = query_flags(&query, &["worker_id"])?;
    let worker = flags.get("worker_id").cloned().unwrap_or_default();
    let stats: CoreStatsResponse = service.core_stats(&who, &worker).await?;
    ok(&to_json(&stats))
}

async fn create(
    State(service): State<Shared>,
    Caller(who): Caller,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let spec: CollectionSpec = message_body(&service, &headers, body).await?;
    let info = service.create_collection(&who, spec).await?;
    ok(&to_json(&info))
}

async fn list(State(service): State<Shared>, Caller(who): Caller) -> Answer {
    let collections = service.list_collections(&who).await?;
    ok(&to_json(&ListCollectionsResponse { collections }))
}

async fn describe(
    State(service): State<Shared>,
    Caller(who): Caller,
    path: PathParts,
    QueryPairs(query): QueryPairs,
) -> Answer {
    query_flags(&query, &[])?;
    let info = service.describe_collection(&who, &path.name).await?;
    ok(&to_json(&info))
}

/// `PATCH /v1/collections/{name}`: the body is an `UpdateCollectionRequest` (its `name`
/// may be left out; given, it must be the path's).
async fn update_collection(
    State(service): State<Shared>,
    Caller(who): Caller,
    path: PathParts,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let mut request: UpdateCollectionRequest = message_body(&service, &headers, body).await?;
    if !request.name.is_empty() && request.name != path.name {
        return Err(GatewayError::CollectionMismatch {
            expected: path.name,
            got: request.name,
        });
    }
    request.name = path.name;
    let info = service.update_collection(&who, request).await?;
    ok(&to_json(&info))
}

async fn drop_collection(
    State(service): State<Shared>,
    Caller(who): Caller,
    path: PathParts,
    QueryPairs(query): QueryPairs,
) -> Answer {
    // A parameter this route does not know is refused before anything is dropped.
    query_flags(&query, &[])?;
    service.drop_collection(&who, &path.name).await?;
    ok(&serde_json::json!({}))
}

async fn create_key(
    State(service): State<Shared>,
    Caller(who): Caller,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let request: CreateKeyRequest = message_body(&service, &headers, body).await?;
    let made = service.create_key(&who, &request).await?;
    ok(&to_json(&made))
}

async fn create_token(
    State(service): State<Shared>,
    Caller(who): Caller,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let request: CreateTokenRequest = message_body(&service, &headers, body).await?;
    let made = service.create_token(&who, &request)?;
    ok(&to_json(&made))
}

async fn set_plan(
    State(service): State<Shared>,
    Caller(who): Caller,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let plan: Plan = message_body(&service, &headers, body).await?;
    let set = service.set_plan(&who, &plan).await?;
    ok(&to_json(&set))
}

async fn list_plans(State(service): State<Shared>, Caller(who): Caller) -> Answer {
    let plans = service.list_plans(&who).await?;
    ok(&to_json(&ListPlansResponse { plans }))
}

async fn delete_plan(
    State(service): State<Shared>,
    Caller(who): Caller,
    Path(name): Path<String>,
    QueryPairs(query): QueryPairs,
) -> Answer {
    // A parameter this route does not know is refused before anything is deleted.
    query_flags(&query, &[])?;
    service.delete_plan(&who, &name).await?;
    ok(&serde_json::json!({}))
}

async fn create_user(
    State(service): State<Shared>,
    Caller(who): Caller,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let request: CreateUserRequest = message_body(&service, &headers, body).await?;
    let made = service.create_user(&who, &request).await?;
    ok(&to_json(&made))
}

async fn list_users(State(service): State<Shared>, Caller(who): Caller) -> Answer {
    let users = service.list_users(&who).await?;
    ok(&to_json(&ListUsersResponse { users }))
}

async fn delete_user(
    State(service): State<Shared>,
    Caller(who): Caller,
    Path(name): Path<String>,
    QueryPairs(query): QueryPairs,
) -> Answer {
    // A parameter this route does not know is refused before anything is deleted.
    query_flags(&query, &[])?;
    service.delete_user(&who, &name).await?;
    ok(&serde_json::json!({}))
}

/// Needs no credentials: the authentication middleware lets this route through.
async fn login(
    State(service): State<Shared>,
    from: Option<axum::Extension<ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let request: LoginRequest = message_body(&service, &headers, body).await?;
    let from = from.map(|axum::Extension(ClientAddr(addr))| addr.ip());
    let made = service.login(from, &request).await?;
    ok(&to_json(&made))
}

async fn list_keys(State(service): State<Shared>, Caller(who): Caller) -> Answer {
    let keys = service.list_keys(&who).await?;
    ok(&to_json(&ListKeysResponse { keys }))
}

async fn revoke_key(
    State(service): State<Shared>,
    Caller(who): Caller,
    Path(id): Path<String>,
    QueryPairs(query): QueryPairs,
) -> Answer {
    // A parameter this route does not know is refused before anything is revoked.
    query_flags(&query, &[])?;
    service.revoke_key(&who, &id).await?;
    ok(&serde_json::json!({}))
}

async fn upsert(
    State(service): State<Shared>,
    Caller(who): Caller,
    CollectionJson { name, mut value }: CollectionJson,
) -> Answer {
    let payloads = match value.get_mut("points") {
        Some(Value::Array(points)) => take_payloads(points)?,
        _ => Vec::new(),
    };
    let request: UpsertRequest = parse(&value)?;
    let points = core_points(request.points, payloads);
    let deadline = service.deadline(None);
    let answer = service
        .upsert(&who, &name, points, request.wait.unwrap_or(true), deadline)
        .await?;
    ok(&to_json(&answer))
}

/// NDJSON bulk upsert: one point per line, read as the body arrives, gathered into
/// batches of up to `max_points` points and fed to the streaming upsert. The body as a
/// whole has no size limit; each line does.
async fn upsert_stream(
    State(service): State<Shared>,
    Caller(who): Caller,
    PathParts { name, .. }: PathParts,
    QueryPairs(query): QueryPairs,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    check_media_type(&headers, NDJSON, &["application/jsonl"])?;
    let flags = query_flags(&query, &["wait"])?;
    let wait = flag(&flags, "wait", true)?;
    let (sender, receiver) = mpsc::channel(2);
    let limits = service.config.limits;
    let reader = tokio::spawn(read_ndjson(body, sender, limits, wait));
    let answer = service
        .upsert_stream(&who, &name, ReceiverStream::new(receiver), Position::Line)
        .await;
    reader.abort();
    ok(&to_json(&answer?))
}

type LineBatch = Result<(usize, IncomingBatch), GatewayError>;

/// Cuts a body into lines as its frames arrive, looking at each byte once: a long line
/// that arrives in many frames is not scanned again from its start for every frame.
#[derive(Debug, Default)]
struct LineSplitter {
    buf: Vec<u8>,
    /// Where the next line starts.
    start: usize,
    /// Bytes from `start` on known to hold no newline.
    scanned: usize,
    /// Bytes looked at for a newline, in all.
    examined: u64,
}

impl LineSplitter {
    /// Adds the next frame, dropping the lines already taken.
    fn push(&mut self, frame: &[u8]) {
        self.buf.drain(..self.start);
        self.start = 0;
        self.buf.extend_from_slice(frame);
    }

    /// The body ended: what is left is the last line.
    fn finish(&mut self) {
        if self.buf.len() > self.start && self.buf.last() != Some(&b'\n') {
            self.buf.push(b'\n');
        }
    }

    /// The next whole line (without its newline), if one has arrived.
    fn next_line(&mut self) -> Option<&[u8]> {
        let from = self.start + self.scanned;
        let found = self.buf[from..].iter().position(|&b| b == b'\n');
        let Some(at) = found else {
            self.examined += (self.buf.len() - from) as u64;
            self.scanned = self.buf.len() - self.start;
            return None;
        };
        self.examined += at as u64 + 1;
        let line = self.start..from + at;
        self.start = from + at + 1;
        self.scanned = 0;
        Some(&self.buf[line])
    }

    /// Bytes of a line that has not ended yet.
    fn partial(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// Reads NDJSON lines into batches; a batch is sent at `max_points` points or when the
/// body ends. The position of a batch is its first line.
async fn read_ndjson(
    body: Body,
    sender: mpsc::Sender<LineBatch>,
    limits: crate::config::Limits,
    wait: bool,
) {
    let mut frames = body.into_data_stream();
    let mut lines = LineSplitter::default();
    let mut line_no = 0usize;
    let mut batch = Vec::new();
    let mut first_line = 1usize;
    let mut done = false;
    while !done {
        match frames.next().await {
            Some(Ok(frame)) => lines.push(&frame),
            Some(Err(e)) => {
                let _ = sender.send(Err(body_error(e))).await;
                return;
            }
            None => {
                done = true;
                lines.finish();
            }
        }
        while let Some(line) = lines.next_line() {
            line_no += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            if batch.is_empty() {
                first_line = line_no;
            }
            match parse_line(line, line_no) {
                Ok(point) => batch.push(point),
                Err(e) => {
                    let _ = sender.send(Err(Position::Line(line_no).wrap(e))).await;
                    return;
                }
            }
            if batch.len() >= limits.max_points {
                let full = IncomingBatch {
                    collection: String::new(),
                    points: std::mem::take(&mut batch),
                    wait,
                };
                if sender.send(Ok((first_line, full))).await.is_err() {
                    return;
                }
            }
        }
        if lines.partial() > limits.max_line_bytes {
            let _ = sender
                .send(Err(Position::Line(line_no + 1).wrap(
                    GatewayError::TooLarge {
                        what: "line",
                        max: limits.max_line_bytes,
                    },
                )))
                .await;
            return;
        }
    }
    if !batch.is_empty() {
        let _ = sender
            .send(Ok((
                first_line,
                IncomingBatch {
                    collection: String::new(),
                    points: batch,
                    wait,
                },
            )))
            .await;
    }
}

/// One NDJSON line: a point.
fn parse_line(line: &[u8], line_no: usize) -> Result<core::Point, GatewayError> {
    let value: Value = serde_json::from_slice(line).map_err(|e| GatewayError::BadJson {
        reason: format!("line {line_no}: {e}"),
    })?;
    let mut one = [value];
    let payload = take_payloads(&mut one)?.pop().unwrap_or_default();
    let point: Point = parse(&one[0])?;
    Ok(core::Point {
        id: point.id,
        vector: point.vector,
        payload_json: payload,
    })
}

async fn get_points(
    State(service): State<Shared>,
    Caller(who): Caller,
    Message(request): Message<GetRequest>,
) -> Answer {
    let points = service.get(&who, request, service.deadline(None)).await?;
    let value = points_json(points)?;
    ok(&value)
}

/// `GET …/points/{id}`, also for the ids that are route names (`get`, `search`, …): their
/// routes take `GET` here.
async fn get_one(
    State(service): State<Shared>,
    Caller(who): Caller,
    PathParts { name, id }: PathParts,
    QueryPairs(query): QueryPairs,
    uri: http::Uri,
) -> Answer {
    let id = id.unwrap_or_else(|| uri.path().rsplit('/').next().unwrap_or_default().to_owned());
    let flags = query_flags(&query, &["with_vector", "with_payload", "consistency"])?;
    let consistency = match flags.get("consistency") {
        None => 0,
        Some(word) => {
            parse::<GetRequest>(&serde_json::json!({"consistency": word}))
                .map_err(|e| GatewayError::BadQuery {
                    name: "consistency".into(),
                    reason: e.to_string(),
                })?
                .consistency
        }
    };
    let request = GetRequest {
        collection: name.clone(),
        ids: vec![id.clone()],
        with_vector: flag(&flags, "with_vector", true)?,
        with_payload: flag(&flags, "with_payload", true)?,
        consistency,
    };
    let mut points = service.get(&who, request, service.deadline(None)).await?;
    let Some(point) = points.pop() else {
        return Err(GatewayError::PointNotFound {
            collection: name,
            id,
        });
    };
    let mut value = points_json(vec![point])?;
    let point = value
        .get_mut("points")
        .and_then(|p| p.as_array_mut())
        .and_then(Vec::pop)
        .unwrap_or_default();
    ok(&point)
}

async fn delete(
    State(service): State<Shared>,
    Caller(who): Caller,
    CollectionJson { mut value, .. }: CollectionJson,
) -> Answer {
    // `{"ids": [..]}` is the short form of the message's `{"ids": {"ids": [..]}}`.
    if let Some(ids @ Value::Array(_)) = value.get_mut("ids") {
        let list = ids.take();
        *ids = serde_json::json!({ "ids": list });
    }
    let request: DeleteRequest = parse(&value)?;
    let deleted = service
        .delete(&who, request, service.deadline(None))
        .await?;
    ok(&to_json(&DeleteResponse { deleted }))
}

async fn count(
    State(service): State<Shared>,
    Caller(who): Caller,
    Message(request): Message<CountRequest>,
) -> Answer {
    let count = service.count(&who, request, service.deadline(None)).await?;
    ok(&to_json(&CountResponse { count }))
}

async fn scroll(
    State(service): State<Shared>,
    Caller(who): Caller,
    Message(request): Message<ScrollRequest>,
) -> Answer {
    let (points, next_offset) = service
        .scroll(&who, request, service.deadline(None))
        .await?;
    let mut value = points_json(points)?;
    if let Value::Object(map) = &mut value {
        map.insert("next_offset".into(), Value::String(next_offset));
    }
    ok(&value)
}

async fn search(
    State(service): State<Shared>,
    Caller(who): Caller,
    Message(request): Message<SearchRequest>,
) -> Answer {
    let outcome = service
        .search(&who, request, service.deadline(None))
        .await?;
    ok(&search_json(&outcome)?)
}

/// A streamed search: one JSON line per event (the `SearchStreamEvent` message), the
/// last with `"done": true`. The request is checked before the answer starts, and
/// refused with its status; an error after that (the deadline, a shard's failure) is
/// sent as a last line `{"error": {"code", "message"}}` under the 200 already sent.
async fn search_stream(
    State(service): State<Shared>,
    Caller(who): Caller,
    Message(request): Message<SearchRequest>,
) -> Answer {
    let events = service
        .search_stream(&who, request, service.deadline(None))
        .await?;
    let lines = events.map(|event| {
        let line = event
            .and_then(|event| {
                Ok(serde_json::json!({
                    "result": search_json(&event.outcome)?,
                    "shards_answered": event.answered,
                    "shards_total": event.total,
                    "done": event.done,
                }))
            })
            .unwrap_or_else(|e| {
                if e.code() == tonic::Code::Internal {
                    tracing::error!(error = %e, "internal error");
                }
                e.to_json()
            });
        let mut text = line.to_string();
        text.push('\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(text))
    });
    let body = Body::from_stream(ticketed(lines));
    Ok(([(header::CONTENT_TYPE, NDJSON)], body).into_response())
}

async fn search_batch(
    State(service): State<Shared>,
    Caller(who): Caller,
    PathParts { name, .. }: PathParts,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let mut value = json_body(&service, &headers, body, None).await?;
    let Some(Value::Object(map)) = Some(&mut value) else {
        return Err(GatewayError::BadJson {
            reason: "the body must be a JSON object".into(),
        });
    };
    if let Some(extra) = map.keys().find(|k| k.as_str() != "searches") {
        return Err(GatewayError::BadJson {
            reason: format!("unknown field {extra:?}, expected \"searches\""),
        });
    }
    let searches = match map.remove("searches") {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => Vec::new(),
        Some(other) => {
            return Err(GatewayError::BadJson {
                reason: format!("\"searches\" must be an array, got {}", json_kind(&other)),
            });
        }
    };
    let requests = searches
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            set_collection(&mut s, &name)
                .and_then(|()| parse::<SearchRequest>(&s))
                .map_err(|e| GatewayError::InBatch {
                    search: i,
                    source: Box::new(e),
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let outcomes = service
        .search_batch(&who, requests, service.deadline(None))
        .await?;
    let results = outcomes
        .iter()
        .map(|o| search_json(o))
        .collect::<Result<Vec<_>, _>>()?;
    ok(&serde_json::json!({ "results": results }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(content_type: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = content_type {
            h.insert(header::CONTENT_TYPE, t.parse().unwrap());
        }
        h
    }

    #[test]
    fn media_types_are_matched_without_parameters_or_case() {
        assert!(check_media_type(&headers(Some("application/json")), JSON, &[]).is_ok());
        assert!(
            check_media_type(&headers(Some("Application/JSON; charset=utf-8")), JSON, &[]).is_ok()
        );
        let err = check_media_type(&headers(Some("text/plain")), JSON, &[]).unwrap_err();
        assert_eq!(err.http_status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(check_media_type(&headers(None), JSON, &[]).is_err());
        assert!(
            check_media_type(
                &headers(Some("application/jsonl")),
                NDJSON,
                &["application/jsonl"]
            )
            .is_ok()
        );
    }

    #[test]
    fn payloads_are_taken_out_as_text_and_must_be_objects() {
        let mut points = vec![
            serde_json::json!({"id": "a", "vector": [1.0], "payload": {"year": 1969}}),
            serde_json::json!({"id": "b", "vector": [1.0]}),
        ];
        let payloads = take_payloads(&mut points).unwrap();
        assert_eq!(payloads[0], br#"{"year":1969}"#);
        assert!(payloads[1].is_empty());
        assert!(points[0].get("payload").is_none());
        let mut bad = vec![serde_json::json!({"id": "c", "payload": [1, 2]})];
        let err = take_payloads(&mut bad).unwrap_err();
        assert!(
            err.to_string()
                .contains("payload must be a JSON object: got an array"),
            "{err}"
        );
    }

    #[test]
    fn a_body_naming_another_collection_is_refused() {
        let mut v = serde_json::json!({"collection": "other"});
        assert!(matches!(
            set_collection(&mut v, "mine"),
            Err(GatewayError::CollectionMismatch { .. })
        ));
        let mut v = serde_json::json!({"k": 1});
        set_collection(&mut v, "mine").unwrap();
        assert_eq!(v["collection"], "mine");
        assert!(set_collection(&mut serde_json::json!([1]), "mine").is_err());
    }

    #[test]
    fn answers_carry_payloads_as_the_cores_wrote_them() {
        let points = vec![
            core::Point {
                id: "a".into(),
                vector: vec![0.5],
                payload_json: br#"{"year":1969,"title":"Moon"}"#.to_vec(),
            },
            core::Point {
                id: "b".into(),
                vector: vec![],
                payload_json: Vec::new(),
            },
        ];
        let value = points_json(points).unwrap();
        assert_eq!(value["points"][0]["id"], "a");
        assert_eq!(value["points"][0]["payload"]["year"], 1969);
        assert_eq!(value["points"][0]["vector"][0], 0.5);
        assert!(value["points"][1]["payload"].is_null());
        assert!(value["points"][1].get("vector").is_none());
    }

    /// Pins the NDJSON reader scanning a line from its start again for every frame it
    /// arrived in: quadratic in the line's length.
    #[test]
    fn a_long_line_in_many_frames_is_scanned_once() {
        let mut lines = LineSplitter::default();
        let mut got = Vec::new();
        let line = vec![b'x'; 1 << 20];
        for frame in line.chunks(100) {
            lines.push(frame);
            assert!(lines.next_line().is_none());
        }
        lines.push(b"\nab\n\ncd");
        while let Some(l) = lines.next_line() {
            got.push(l.len());
        }
        lines.finish();
        while let Some(l) = lines.next_line() {
            got.push(l.len());
        }
        assert_eq!(got, [1 << 20, 2, 0, 2]);
        assert!(lines.examined <= (1 << 20) + 16, "{}", lines.examined);
        assert_eq!(lines.partial(), 0);
    }

    #[test]
    fn ndjson_lines_parse_into_points() {
        let p = parse_line(
            br#"{"id": "7", "vector": [1, 2], "payload": {"t": "x"}}"#,
            3,
        )
        .unwrap();
        assert_eq!(p.id, "7");
        assert_eq!(p.vector, [1.0, 2.0]);
        assert_eq!(p.payload_json, br#"{"t":"x"}"#);
        let err = parse_line(b"{\"id\": ", 3).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
        assert!(parse_line(br#"{"id": "7", "vectors": []}"#, 1).is_err());
    }

    #[test]
    fn query_flags_are_strict() {
        let pairs = vec![("with_vector".to_owned(), "false".to_owned())];
        let flags = query_flags(&pairs, &["with_vector"]).unwrap();
        assert!(!flag(&flags, "with_vector", true).unwrap());
        assert!(flag(&flags, "with_payload", true).unwrap());
        assert!(query_flags(&[("x".into(), "1".into())], &["with_vector"]).is_err());
        let bad = query_flags(&[("with_vector".into(), "maybe".into())], &["with_vector"]).unwrap();
        assert!(flag(&bad, "with_vector", true).is_err());
    }
}
