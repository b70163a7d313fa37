//! The public gRPC door: tonic services `vectron.v1.Collections`, `Points` and `Stats`
//! over the shared handlers. Payloads become JSON text on the way in and `Struct`s on
//! the way out; the call's deadline comes from its `grpc-timeout`.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{StreamExt as _, TryFutureExt as _};
use tonic::{Request, Response, Status, Streaming};
use vectron_proto::core::v1 as core;
use vectron_proto::v1::collections_server::Collections;
use vectron_proto::v1::keys_server::Keys;
use vectron_proto::v1::plans_server::Plans;
use vectron_proto::v1::points_server::Points;
use vectron_proto::v1::stats_server::Stats;
use vectron_proto::v1::users_server::Users;
use vectron_proto::v1::{
    CollectionInfo, CoreStatsRequest, CoreStatsResponse, CountRequest, CountResponse,
    CreateCollectionRequest, CreateCollectionResponse, DeleteRequest, DeleteResponse,
    DescribeCollectionRequest, DropCollectionRequest, DropCollectionResponse, GetRequest,
    GetResponse, ListCollectionsRequest, ListCollectionsResponse, Point, ScoredPoint,
    ScrollRequest, ScrollResponse, SearchBatchRequest, SearchBatchResponse, SearchRequest,
    SearchResponse, SearchStreamEvent, UpdateCollectionRequest, UpsertRequest, UpsertResponse,
};
use vectron_proto::v1::{
    CreateKeyRequest, CreateKeyResponse, CreateTokenRequest, CreateTokenResponse, ListKeysRequest,
    ListKeysResponse, RevokeKeyRequest, RevokeKeyResponse,
};
use vectron_proto::v1::{
    CreateUserRequest, DeleteUserRequest, DeleteUserResponse, ListUsersRequest, ListUsersResponse,
    LoginRequest, LoginResponse, UserInfo,
};
use vectron_proto::v1::{
    DeletePlanRequest, DeletePlanResponse, ListPlansRequest, ListPlansResponse, Plan,
};

use vectron_proto::rules::{self, RuleError};

use crate::admission::ticketed;
use crate::auth::grpc_caller;
use crate::cache::SearchOutcome;
use crate::error::GatewayError;
use crate::payload::{json_to_struct, struct_depth, struct_to_json};
use crate::service::Service;
use crate::stream::{IncomingBatch, Position};

/// The three public services, sharing one [`Service`].
#[derive(Debug, Clone)]
pub(crate) struct GrpcApi {
    service: Arc<Service>,
}

impl GrpcApi {
    pub(crate) fn new(service: Arc<Service>) -> Self {
        Self { service }
    }

    fn deadline<T>(&self, request: &Request<T>) -> crate::cores::Deadline {
        self.service.deadline(grpc_timeout(request.metadata()))
    }
}

/// The `grpc-timeout` a client sent (1 to 8 digits and a unit, one of H M S m u n); a
/// malformed one is ignored, as tonic does, and the call gets the default deadline.
fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Public points to the cores' form: each payload `Struct` becomes JSON text.
fn to_core_points(points: Vec<Point>) -> Result<Vec<core::Point>, GatewayError> {
    points
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let payload_json = match &p.payload {
                Some(payload) => {
                    rules::check_payload_depth(struct_depth(payload)).map_err(|reason| {
                        RuleError::PayloadDepth {
                            point: i,
                            id: p.id.clone(),
                            reason,
                        }
                    })?;
                    struct_to_json(payload).map_err(|reason| RuleError::BadPayload {
                        point: i,
                        id: p.id.clone(),
                        reason,
                    })?
                }
                None => Vec::new(),
            };
            Ok(core::Point {
                id: p.id,
                vector: p.vector,
                payload_json,
            })
        })
        .collect()
}

fn payload(text: &[u8]) -> Result<Option<prost_types::Struct>, GatewayError> {
    json_to_struct(text).map_err(|e| {
        GatewayError::Internal(format!(
            "a core returned a payload that is not an object: {e}"
        ))
    })
}

fn to_public_point(p: core::Point) -> Result<Point, GatewayError> {
    Ok(Point {
        payload: payload(&p.payload_json)?,
        id: p.id,
        vector: p.vector,
    })
}

fn to_search_response(outcome: &SearchOutcome) -> Result<SearchResponse, GatewayError> {
    Ok(SearchResponse {
        hits: outcome
            .hits
            .iter()
            .map(|h| {
                Ok(ScoredPoint {
                    id: h.id.clone(),
                    score: h.score,
                    vector: h.vector.clone(),
                    payload: payload(&h.payload_json)?,
                })
            })
            .collect::<Result<_, GatewayError>>()?,
        missing_shards: outcome.missing_shards.clone(),
        reranked: false,
    })
}

#[tonic::async_trait]
impl Collections for GrpcApi {
    async fn create(
        &self,
        request: Request<CreateCollectionRequest>,
    ) -> Result<Response<CreateCollectionResponse>, Status> {
        let who = grpc_caller(&request)?;
        let spec = request.into_inner().spec.unwrap_or_default();
        let collection = self.service.create_collection(&who, spec).await?;
        Ok(Response::new(CreateCollectionResponse {
            collection: Some(collection),
        }))
    }

    async fn drop(
        &self,
        request: Request<DropCollectionRequest>,
    ) -> Result<Response<DropCollectionResponse>, Status> {
        let who = grpc_caller(&request)?;
        self.service
            .drop_collection(&who, &request.into_inner().name)
            .await?;
        Ok(Response::new(DropCollectionResponse {}))
    }

    async fn list(
        &self,
        request: Request<ListCollectionsRequest>,
    ) -> Result<Response<ListCollectionsResponse>, Status> {
        let who = grpc_caller(&request)?;
        let collections = self.service.list_collections(&who).await?;
        Ok(Response::new(ListCollectionsResponse { collections }))
    }

    async fn update(
        &self,
        request: Request<UpdateCollectionRequest>,
    ) -> Result<Response<CollectionInfo>, Status> {
        let who = grpc_caller(&request)?;
        let info = self
            .service
            .update_collection(&who, request.into_inner())
            .await?;
        Ok(Response::new(info))
    }

    async fn describe(
        &self,
        request: Request<DescribeCollectionRequest>,
    ) -> Result<Response<CollectionInfo>, Status> {
        let who = grpc_caller(&request)?;
        let info = self
            .service
            .describe_collection(&who, &request.into_inner().name)
            .await?;
        Ok(Response::new(info))
    }
}

#[tonic::async_trait]
impl Points for GrpcApi {
    async fn upsert(
        &self,
        request: Request<UpsertRequest>,
    ) -> Result<Response<UpsertResponse>, Status> {
        let deadline = self.deadline(&request);
        let who = grpc_caller(&request)?;
        let request = request.into_inner();
        let points = to_core_points(request.points)?;
        let answer = self
            .service
            .upsert(
                &who,
                &request.collection,
                points,
                request.wait.unwrap_or(true),
                deadline,
            )
            .await?;
        Ok(Response::new(answer))
    }

    async fn upsert_stream(
        &self,
        request: Request<Streaming<UpsertRequest>>,
    ) -> Result<Response<UpsertResponse>, Status> {
        let who = grpc_caller(&request)?;
        let batches = request.into_inner().enumerate().map(|(n, message)| {
            let message = message
                .map_err(|status| Position::Message(n).wrap(GatewayError::Request(status)))?;
            let points =
                to_core_points(message.points).map_err(|e| Position::Message(n).wrap(e))?;
            Ok((
                n,
                IncomingBatch {
                    collection: message.collection,
                    points,
                    wait: message.wait.unwrap_or(true),
                },
            ))
        });
        let answer = self
            .service
            .upsert_stream(&who, "", batches, Position::Message)
            .await?;
        Ok(Response::new(answer))
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let deadline = self.deadline(&request);
        let who = grpc_caller(&request)?;
        let points = self
            .service
            .get(&who, request.into_inner(), deadline)
            .await?;
        let points = points
            .into_iter()
            .map(to_public_point)
            .collect::<Result<_, _>>()?;
        Ok(Response::new(GetResponse { points }))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let deadline = self.deadline(&request);
        let who = grpc_caller(&request)?;
        let deleted = self
            .service
            .delete(&who, request.into_inner(), deadline)
            .await?;
        Ok(Response::new(DeleteResponse { deleted }))
    }

    async fn count(
        &self,
        request: Request<CountRequest>,
    ) -> Result<Response<CountResponse>, Status> {
        let deadline = self.deadline(&request);
        let who = grpc_caller(&request)?;
        let count = self
            .service
            .count(&who, request.into_inner(), deadline)
            .await?;
        Ok(Response::new(CountResponse { count }))
    }

    async fn scroll(
        &self,
        request: Request<ScrollRequest>,
    ) -> Result<Response<ScrollResponse>, Status> {
        let deadline = self.deadline(&request);
        let who = grpc_caller(&request)?;
        let (points, next_offset) = self
            .service
            .scroll(&who, request.into_inner(), deadline)
            .await?;
        let points = points
            .into_iter()
            .map(to_public_point)
            .collect::<Result<_, _>>()?;
        Ok(Response::new(ScrollResponse {
            points,
            next_offset,
        }))
    }

    async fn search(
        &self,
        request: Request<SearchRequest>,
    ) -> Result<Response<SearchResponse>, Status> {
        let deadline = self.deadline(&request);
        let who = grpc_caller(&request)?;
        let outcome = self
            .service
            .search(&who, request.into_inner(), deadline)
            .await?;
        Ok(Response::new(to_search_response(&outcome)?))
    }

    type SearchStreamStream = std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<SearchStreamEvent, Status>> + Send>,
    >;

    async fn search_stream(
        &self,
        request: Request<SearchRequest>,
    ) -> Result<Response<Self::SearchStreamStream>, Status> {
        let deadline = self.deadline(&request);
        let who = grpc_caller(&request)?;
        let events = self
            .service
            .search_stream(&who, request.into_inner(), deadline)
            .await?
            .map(|event| {
                let event = event?;
                Ok(SearchStreamEvent {
                    result: Some(to_search_response(&event.outcome)?),
                    shards_answered: event.answered,
                    shards_total: event.total,
                    done: event.done,
                })
            });
        Ok(Response::new(Box::pin(ticketed(events.map(
            |event: Result<_, GatewayError>| event.map_err(Status::from),
        )))))
    }

    async fn search_batch(
        &self,
        request: Request<SearchBatchRequest>,
    ) -> Result<Response<SearchBatchResponse>, Status> {
        let deadline = self.deadline(&request);
        let who = grpc_caller(&request)?;
        let outcomes = self
            .service
            .search_batch(&who, request.into_inner().searches, deadline)
            .await?;
        let results = outcomes
            .iter()
            .map(|o| to_search_response(o))
            .collect::<Result<_, _>>()?;
        Ok(Response::new(SearchBatchResponse { results }))
    }
}

#[tonic::async_trait]
impl Stats for GrpcApi {
    async fn cores(
        &self,
        request: Request<CoreStatsRequest>,
    ) -> Result<Response<CoreStatsResponse>, Status> {
        let who = grpc_caller(&request)?;
        let stats = self
            .service
            .core_stats(&who, &request.into_inner().worker_id)
            .await?;
        Ok(Response::new(stats))
    }
}

#[tonic::async_trait]
impl Keys for GrpcApi {
    async fn create(
        &self,
        request: Request<CreateKeyRequest>,
    ) -> Result<Response<CreateKeyResponse>, Status> {
        let who = grpc_caller(&request)?;
        let made = self.service.create_key(&who, request.get_ref()).await?;
        Ok(Response::new(made))
    }

    async fn list(
        &self,
        request: Request<ListKeysRequest>,
    ) -> Result<Response<ListKeysResponse>, Status> {
        let who = grpc_caller(&request)?;
        let keys = self.service.list_keys(&who).await?;
        Ok(Response::new(ListKeysResponse { keys }))
    }

    async fn revoke(
        &self,
        request: Request<RevokeKeyRequest>,
    ) -> Result<Response<RevokeKeyResponse>, Status> {
        let who = grpc_caller(&request)?;
        self.service.revoke_key(&who, &request.get_ref().id).await?;
        Ok(Response::new(RevokeKeyResponse {}))
    }

    async fn create_token(
        &self,
        request: Request<CreateTokenRequest>,
    ) -> Result<Response<CreateTokenResponse>, Status> {
        let who = grpc_caller(&request)?;
        let made = self.service.create_token(&who, request.get_ref())?;
        Ok(Response::new(made))
    }
}

#[tonic::async_trait]
impl Users for GrpcApi {
    async fn create(
        &self,
        request: Request<CreateUserRequest>,
    ) -> Result<Response<UserInfo>, Status> {
        let who = grpc_caller(&request)?;
        let made = self.service.create_user(&who, request.get_ref()).await?;
        Ok(Response::new(made))
    }

    async fn list(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let who = grpc_caller(&request)?;
        let users = self.service.list_users(&who).await?;
        Ok(Response::new(ListUsersResponse { users }))
    }

    async fn delete(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        let who = grpc_caller(&request)?;
        self.service
            .delete_user(&who, &request.get_ref().name)
            .await?;
        Ok(Response::new(DeleteUserResponse {}))
    }

    /// Needs no credentials: the authentication layer lets this method through.
    async fn login(
        &self,
        request: Request<LoginRequest>,
    ) -> Result<Response<LoginResponse>, Status> {
        let from = request.remote_addr().map(|a| a.ip());
        let made = self.service.login(from, request.get_ref()).await?;
        Ok(Response::new(made))
    }
}

/// Answers tonic's refusal of an oversized request message, which it sends as
/// `OUT_OF_RANGE` before any handler runs, as `RESOURCE_EXHAUSTED`, the code the API
/// promises for a message above the size limit. Handlers never answer `OUT_OF_RANGE`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OversizeLayer;

impl<S> tower::Layer<S> for OversizeLayer {
    type Service = Oversize<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Oversize(inner)
    }
}

/// See [`OversizeLayer`].
#[derive(Debug, Clone)]
pub(crate) struct Oversize<S>(S);

impl<S, B, RB> tower::Service<http::Request<B>> for Oversize<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>>,
{
    type Response = http::Response<RB>;
    type Error = S::Error;
    type Future =
        futures_util::future::MapOk<S::Future, fn(http::Response<RB>) -> http::Response<RB>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.0
            .call(request)
            .map_ok(out_of_range_to_resource_exhausted)
    }
}

fn out_of_range_to_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    let out_of_range = i32::from(tonic::Code::OutOfRange).to_string();
    if response
        .headers()
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == out_of_range.as_bytes())
    {
        let exhausted = i32::from(tonic::Code::ResourceExhausted);
        response
            .headers_mut()
            .insert("grpc-status", http::HeaderValue::from(exhausted));
    }
    response
}

#[tonic::async_trait]
impl Plans for GrpcApi {
    async fn set(&self, request: Request<Plan>) -> Result<Response<Plan>, Status> {
        let who = grpc_caller(&request)?;
        let set = self.service.set_plan(&who, request.get_ref()).await?;
        Ok(Response::new(set))
    }

    async fn list(
        &self,
        request: Request<ListPlansRequest>,
    ) -> Result<Response<ListPlansResponse>, Status> {
        let who = grpc_caller(&request)?;
        let plans = self.service.list_plans(&who).await?;
        Ok(Response::new(ListPlansResponse { plans }))
    }

    async fn delete(
        &self,
        request: Request<DeletePlanRequest>,
    ) -> Result<Response<DeletePlanResponse>, Status> {
        let who = grpc_caller(&request)?;
        self.service
            .delete_plan(&who, &request.get_ref().name)
            .await?;
        Ok(Response::new(DeletePlanResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use prost_types::value::Kind;

    use super::*;

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        let parse = |v: &str| {
            let mut m = tonic::metadata::MetadataMap::new();
            m.insert("grpc-timeout", v.parse().unwrap());
            grpc_timeout(&m)
        };
        assert_eq!(parse("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse("150m"), Some(Duration::from_millis(150)));
        assert_eq!(parse("7u"), Some(Duration::from_micros(7)));
        assert_eq!(parse("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse("5x"), None);
        assert_eq!(parse("S"), None);
        assert_eq!(
            parse("99999999H"),
            Some(Duration::from_secs(99_999_999 * 3600))
        );
        // Past the eight digits gRPC allows, or signed: malformed.
        assert_eq!(parse("123456789H"), None);
        assert_eq!(parse("+5S"), None);
        assert_eq!(grpc_timeout(&tonic::metadata::MetadataMap::new()), None);
    }

    #[test]
    fn payloads_become_json_text_and_bad_ones_name_the_point() {
        let mut good = prost_types::Struct::default();
        good.fields.insert(
            "title".into(),
            prost_types::Value {
                kind: Some(Kind::StringValue("Moon".into())),
            },
        );
        let mut bad = prost_types::Struct::default();
        bad.fields.insert(
            "x".into(),
            prost_types::Value {
                kind: Some(Kind::NumberValue(f64::INFINITY)),
            },
        );
        let points = vec![
            Point::new("a", vec![1.0]).with_payload(good),
            Point::new("b", vec![1.0]),
        ];
        let core = to_core_points(points).unwrap();
        assert_eq!(core[0].payload_json, br#"{"title":"Moon"}"#);
        assert!(core[1].payload_json.is_empty());
        let err = to_core_points(vec![
            Point::new("a", vec![1.0]),
            Point::new("c", vec![1.0]).with_payload(bad),
        ])
        .unwrap_err();
        assert!(err.to_string().starts_with("point 1 (id \"c\")"), "{err}");
    }

    #[test]
    fn oversized_messages_read_as_resource_exhausted() {
        let response = http::Response::builder()
            .header("grpc-status", "11")
            .body(())
            .unwrap();
        let fixed = out_of_range_to_resource_exhausted(response);
        assert_eq!(fixed.headers()["grpc-status"], "8");
        let ok = http::Response::builder()
            .header("grpc-status", "0")
            .body(())
            .unwrap();
        assert_eq!(
            out_of_range_to_resource_exhausted(ok).headers()["grpc-status"],
            "0"
        );
    }
}
