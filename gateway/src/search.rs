//! Search: checked at the door, answered from the cache or by joining an identical
//! search in flight when possible, otherwise fanned out to one replica of every shard
//! under the request's deadline, each answer folded into the merged top k as it
//! arrives. A streamed search sends the merged top k as it changes, then the answer.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use vectron_auth::{Action, Principal};

use futures_util::future::{BoxFuture, join_all};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, Stream, StreamExt as _};
use prost::Message as _;
use vectron_proto::core::v1 as core;
use vectron_proto::v1::{GetRequest, ReadConsistency, SearchRequest};

use crate::admission::charge_answer;
use crate::cache::{SearchKey, SearchOutcome};
use crate::cores::{Deadline, call_shard};
use crate::error::GatewayError;
use crate::merge::merge_into;
use crate::routing::CollectionRoute;
use crate::service::Service;
use vectron_proto::rules::{self, RuleError};

/// Searches of one batch run at once.
const BATCH_CONCURRENCY: usize = 64;

/// Everything a search needs once checked.
struct Plan {
    route: Arc<CollectionRoute>,
    request: core::SearchRequest,
    /// Brute force on every shard rather than the graph.
    exact: bool,
    allow_partial: bool,
    deadline: Deadline,
    /// The consistency asked for, which the second round of a large answer keeps.
    consistency: ReadConsistency,
    /// Linearizable searches neither use the cache nor join searches in flight: either
    /// could hand them an answer computed before a write that was acknowledged (through
    /// another gateway) before they started. Nor do the searches of a collection whose
    /// `search_cache.enabled` is false.
    cacheable: bool,
}

impl Service {
    /// One search. `deadline` is the call's (the gRPC deadline or the default); the
    /// request's `timeout_ms` tightens it.
    pub(crate) async fn search(
        self: &Arc<Self>,
        who: &Principal,
        request: SearchRequest,
        deadline: Deadline,
    ) -> Result<Arc<SearchOutcome>, GatewayError> {
        // Before the cache: a cached answer is no answer for a caller who may not read.
        self.authorize_on(who, Action::Read, &request.collection)?;
        let plan = self.plan(request, deadline).await?;
        let deadline = plan.deadline;
        if !plan.cacheable {
            return deadline
                .run(fan_out(self.clone(), plan))
                .await
                .map(Arc::new);
        }
        let key = self.search_key(&plan);
        let work = fan_out(self.clone(), plan);
        deadline
            .run(async {
                self.cache
                    .get_or_run(key, work)
                    .await
                    .map_err(GatewayError::Shared)
            })
            .await
    }

    /// One search whose merged hits are sent as its shards answer (see `SearchStream` in
    /// `points.proto`). The request is checked, and refused, before the stream starts. A
    /// cached answer is sent as the one and last event; an answer computed here is
    /// cached as a unary search's is. The stream does not join a search in flight.
    pub(crate) async fn search_stream(
        self: &Arc<Self>,
        who: &Principal,
        request: SearchRequest,
        deadline: Deadline,
    ) -> Result<SearchEvents, GatewayError> {
        self.authorize_on(who, Action::Read, &request.collection)?;
        let plan = self.plan(request, deadline).await?;
        let key = plan.cacheable.then(|| self.search_key(&plan));
        let fan = FanOut::new(self.clone(), plan);
        let total = fan.shards();
        if let Some(found) = key.as_ref().and_then(|k| self.cache.cached(k)) {
            let event = SearchEvent {
                answered: total,
                total,
                done: true,
                outcome: found,
            };
            return Ok(Box::pin(futures_util::stream::once(
                async move { Ok(event) },
            )));
        }
        let streaming = Streaming {
            waiting: fan.route.shards.iter().map(|s| s.shard_id).collect(),
            pending: fan.calls().map(FutureExt::boxed).collect(),
            fan,
            gathered: Gathered::default(),
            key,
            done: false,
        };
        Ok(Box::pin(futures_util::stream::unfold(
            streaming,
            Streaming::next,
        )))
    }

    /// What identifies the answer to `plan`, as of now.
    fn search_key(&self, plan: &Plan) -> SearchKey {
        let ttl_ms = plan
            .route
            .spec
            .search_cache
            .as_ref()
            .and_then(|c| c.ttl_ms)
            .filter(|&ms| ms > 0);
        SearchKey {
            collection: plan.route.name().into(),
            generation: self.generations.get(plan.route.name()),
            request: key_bytes(&plan.request, plan.allow_partial, plan.exact).into(),
            ttl: ttl_ms.map_or(self.config.cache.ttl, |ms| {
                Duration::from_millis(u64::from(ms))
            }),
        }
    }

    /// Several searches, run concurrently, answered in request order; the first failure
    /// fails the batch and names the search's position.
    pub(crate) async fn search_batch(
        self: &Arc<Self>,
        who: &Principal,
        searches: Vec<SearchRequest>,
        deadline: Deadline,
    ) -> Result<Vec<Arc<SearchOutcome>>, GatewayError> {
        if searches.len() > self.config.limits.max_searches {
            return Err(RuleError::TooMany {
                what: "searches",
                got: searches.len(),
                max: self.config.limits.max_searches,
            }
            .into());
        }
        futures_util::stream::iter(searches.into_iter().enumerate().map(|(i, s)| async move {
            self.search(who, s, deadline)
                .await
                .map_err(|e| GatewayError::InBatch {
                    search: i,
                    source: Box::new(e),
                })
        }))
        .buffered(BATCH_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
    }

    async fn plan(&self, request: SearchRequest, deadline: Deadline) -> Result<Plan, GatewayError> {
        if request.rerank.is_some() {
            return Err(GatewayError::RerankUnavailable);
        }
        let route = self.routing.collection(&request.collection).await?;
        let limits = &self.config.limits;
        rules::check_query(limits, &route.spec, &request.vector, request.k, request.ef)?;
        let deadline = match request.timeout_ms {
            Some(ms) => {
                rules::check_range("timeout_ms", u64::from(ms), 1, u64::from(u32::MAX))?;
                let budget = Duration::from_millis(u64::from(ms));
                if budget < deadline.budget {
                    Deadline::after(budget)
                } else {
                    deadline
                }
            }
            None => deadline,
        };
        let linearizable = request.consistency() == ReadConsistency::Linearizable;
        let cached = route
            .spec
            .search_cache
            .as_ref()
            .is_none_or(|c| c.enabled != Some(false));
        // The graph's candidate list, the collection's default when not given (the cores
        // know only the one the collection was created with); an exact search has none.
        let ef = if request.exact {
            None
        } else {
            request
                .ef
                .or_else(|| route.spec.hnsw.as_ref().and_then(|h| h.ef))
        };
        Ok(Plan {
            route,
            consistency: request.consistency(),
            allow_partial: request.allow_partial_results,
            exact: request.exact,
            deadline,
            cacheable: !linearizable && cached,
            request: core::SearchRequest {
                shard: None,
                vector: request.vector,
                k: request.k,
                ef,
                filter: request.filter,
                with_payload: request.with_payload,
                with_vector: request.with_vector,
                // Set per shard as it is called (see `fan_out`).
                consistency: None,
            },
        })
    }
}

/// One event of a streamed search.
#[derive(Debug, Clone)]
pub(crate) struct SearchEvent {
    /// The best hits so far (the answer, in the last event) and the shards given up on.
    pub(crate) outcome: Arc<SearchOutcome>,
    /// Shards whose hits are in.
    pub(crate) answered: u32,
    /// Shards of the collection.
    pub(crate) total: u32,
    /// The last event.
    pub(crate) done: bool,
}

/// The events of a streamed search: partial ones, then the last one or an error.
pub(crate) type SearchEvents =
    Pin<Box<dyn Stream<Item = Result<SearchEvent, GatewayError>> + Send>>;

/// A streamed search in progress: its shards' calls, and what they answered so far.
struct Streaming {
    fan: FanOut,
    pending: FuturesUnordered<BoxFuture<'static, ShardAnswer>>,
    /// Shards that have not answered.
    waiting: Vec<u32>,
    gathered: Gathered,
    /// Where the answer is cached, when the search may be.
    key: Option<SearchKey>,
    done: bool,
}

impl Streaming {
    /// The next event: once one or more answers change the best hits (answers already
    /// in when the first of them arrives make one event), or the last one when every
    /// shard has answered or the deadline has passed.
    async fn next(mut self) -> Option<(Result<SearchEvent, GatewayError>, Self)> {
        if self.done {
            return None;
        }
        let deadline = self.fan.deadline;
        while !self.pending.is_empty() {
            let Ok(Some(first)) = tokio::time::timeout_at(deadline.at, self.pending.next()).await
            else {
                // Past the deadline: the calls, which carry it too, are giving up.
                if self.fan.allow_partial {
                    let late = std::mem::take(&mut self.waiting);
                    tracing::debug!(shards = ?late, "streamed search goes on without shards");
                    self.gathered.missing_shards.extend(late);
                    self.pending = FuturesUnordered::new();
                    break;
                }
                return self.end(Err(deadline.exceeded()));
            };
            let mut changed = false;
            let mut next = Some(first);
            while let Some(answer) = next {
                self.waiting.retain(|&s| s != answer.0);
                match self.fan.take(&mut self.gathered, answer) {
                    Ok(c) => changed |= c,
                    Err(e) => return self.end(Err(e)),
                }
                next = self.pending.next().now_or_never().flatten();
            }
            if changed && !self.pending.is_empty() {
                let mut missing_shards = self.gathered.missing_shards.clone();
                missing_shards.sort_unstable();
                let event = SearchEvent {
                    outcome: Arc::new(SearchOutcome {
                        hits: self.gathered.hits.clone(),
                        missing_shards,
                    }),
                    answered: self.gathered.answered,
                    total: self.fan.shards(),
                    done: false,
                };
                return Some((Ok(event), self));
            }
        }
        let answered = self.gathered.answered;
        let gathered = std::mem::take(&mut self.gathered);
        let outcome = deadline.run(self.fan.finish(gathered)).await.map(Arc::new);
        if let (Ok(found), Some(key)) = (&outcome, self.key.take()) {
            self.fan.service.cache.keep(key, found);
        }
        let total = self.fan.shards();
        self.end(outcome.map(|outcome| SearchEvent {
            outcome,
            answered,
            total,
            done: true,
        }))
    }

    /// The last item: the stream ends after it, and calls still out are dropped.
    fn end(
        mut self,
        last: Result<SearchEvent, GatewayError>,
    ) -> Option<(Result<SearchEvent, GatewayError>, Self)> {
        self.done = true;
        self.pending = FuturesUnordered::new();
        Some((last, self))
    }
}

/// The bytes that identify a search's answer: the core request (shard left out),
/// whether partial results are allowed and whether the search is exact.
fn key_bytes(request: &core::SearchRequest, allow_partial: bool, exact: bool) -> Vec<u8> {
    let mut bytes = request.encode_to_vec();
    bytes.push(u8::from(allow_partial));
    bytes.push(u8::from(exact));
    bytes
}

/// Worst-case bytes of the shards' answers below which a search asks for payloads and
/// vectors in one round; above it, it asks for ids and scores first and fetches the
/// payloads and vectors of the final hits only (see [`fan_out`]).
const ONE_ROUND_MAX_BYTES: usize = 4 << 20;

/// Bytes a hit takes in the answer, with its vector and payload when they are asked
/// for (whether or not they are in `h` yet).
fn hit_bytes(h: &core::ScoredPoint, request: &core::SearchRequest, dimension: usize) -> usize {
    let mut bytes = h.id.len() + rules::ANSWER_OVERHEAD_BYTES;
    if request.with_vector {
        bytes += dimension * 4;
    }
    if request.with_payload {
        bytes += h.payload_bytes as usize;
    }
    bytes
}

/// Asks one replica of every shard at once and merges the answers (see [`FanOut`]).
async fn fan_out(service: Arc<Service>, plan: Plan) -> Result<SearchOutcome, GatewayError> {
    let fan = FanOut::new(service, plan);
    let answers = join_all(fan.calls()).await;
    let mut gathered = Gathered::default();
    for answer in answers {
        fan.take(&mut gathered, answer)?;
    }
    fan.finish(gathered).await
}

/// A search's calls to its shards and what is done with their answers, shared by the
/// unary search (which waits for every shard) and the streamed one (which sends the
/// merged hits as shards answer).
///
/// A shard that fails fails the search, unless partial results are allowed and the
/// failure is the shard's (unreachable, no serving replica, out of time): then it is
/// named as missing.
///
/// When the shards' answers could be large (many hits, with payloads or vectors), the
/// shards answer with ids, scores and payload sizes only; the merged hits are sized (a
/// search whose answer would pass the answer limit is refused before any payload is
/// read), and only then are the final hits' payloads and vectors fetched from their
/// shards. Each shard thus sends what the answer keeps, not its whole top-k. A hit whose
/// point was deleted between the two rounds is left out.
struct FanOut {
    service: Arc<Service>,
    route: Arc<CollectionRoute>,
    /// What the answer holds.
    request: core::SearchRequest,
    /// What the shards are asked for (without payloads and vectors in two rounds).
    first: core::SearchRequest,
    two_rounds: bool,
    exact: bool,
    allow_partial: bool,
    deadline: Deadline,
    consistency: ReadConsistency,
}

/// The shards' answers so far.
#[derive(Debug, Default)]
struct Gathered {
    /// The best hits among them, best first, at most `k`.
    hits: Vec<core::ScoredPoint>,
    /// Shards whose hits are in.
    answered: u32,
    /// Shards given up on (partial results allowed).
    missing_shards: Vec<u32>,
}

/// One shard's answer.
type ShardAnswer = (u32, Result<core::SearchResponse, GatewayError>);

impl FanOut {
    fn new(service: Arc<Service>, plan: Plan) -> Self {
        let Plan {
            route,
            request,
            exact,
            allow_partial,
            deadline,
            consistency,
            ..
        } = plan;
        let wanted = request.with_payload || request.with_vector;
        let limits = &service.config.limits;
        let worst = route.shards.len()
            * request.k as usize
            * (rules::ANSWER_OVERHEAD_BYTES
                + limits.max_id_bytes
                + usize::from(request.with_vector) * route.spec.dimension as usize * 4
                + usize::from(request.with_payload) * limits.max_payload_bytes);
        let two_rounds = wanted && worst > ONE_ROUND_MAX_BYTES;
        let first = core::SearchRequest {
            with_payload: request.with_payload && !two_rounds,
            with_vector: request.with_vector && !two_rounds,
            ..request.clone()
        };
        Self {
            service,
            route,
            request,
            first,
            two_rounds,
            exact,
            allow_partial,
            deadline,
            consistency,
        }
    }

    fn shards(&self) -> u32 {
        u32::try_from(self.route.shards.len()).unwrap_or(u32::MAX)
    }

    /// One call per shard, each answering with its shard's id; they own what they use,
    /// so a stream can hold them.
    fn calls(&self) -> impl Iterator<Item = impl Future<Output = ShardAnswer> + Send + 'static> {
        let linearizable = self.consistency == ReadConsistency::Linearizable;
        let (exact, deadline) = (self.exact, self.deadline);
        self.route.shards.iter().map(move |shard| {
            let shard_id = shard.shard_id;
            let asked = core::SearchRequest {
                consistency: self.service.channels.read_consistency(
                    &self.route,
                    shard_id,
                    linearizable,
                ),
                ..self.first.clone()
            };
            let (service, route) = (self.service.clone(), self.route.clone());
            async move {
                let answer = call_shard(
                    &service.routing,
                    &service.channels,
                    &route,
                    shard_id,
                    deadline,
                    move |mut client, shard_ref| {
                        let r = core::SearchRequest {
                            shard: Some(shard_ref),
                            ..asked.clone()
                        };
                        async move {
                            if exact {
                                client.exact_search(deadline.request(r)).await
                            } else {
                                client.search(deadline.request(r)).await
                            }
                        }
                    },
                )
                .await;
                (shard_id, answer)
            }
        })
    }

    /// Folds one shard's answer in (charged to the call); says whether it changed the
    /// best hits.
    fn take(
        &self,
        gathered: &mut Gathered,
        (shard, answer): ShardAnswer,
    ) -> Result<bool, GatewayError> {
        match answer {
            Ok(found) => {
                let dimension = self.route.spec.dimension as usize;
                let bytes = found
                    .hits
                    .iter()
                    .map(|h| hit_bytes(h, &self.first, dimension))
                    .sum();
                charge_answer(bytes)?;
                gathered.answered += 1;
                Ok(merge_into(
                    &mut gathered.hits,
                    found.hits,
                    self.request.k as usize,
                ))
            }
            Err(e) if self.allow_partial && e.is_shard_failure() => {
                tracing::debug!(shard, error = %e, "search goes on without a shard");
                gathered.missing_shards.push(shard);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// The answer from every shard's hits: sized against the answer limit, and the
    /// payloads and vectors fetched when the shards were asked for ids only.
    async fn finish(&self, gathered: Gathered) -> Result<SearchOutcome, GatewayError> {
        let Gathered {
            mut hits,
            mut missing_shards,
            ..
        } = gathered;
        missing_shards.sort_unstable();
        let dimension = self.route.spec.dimension as usize;
        let bytes: usize = hits
            .iter()
            .map(|h| hit_bytes(h, &self.request, dimension))
            .sum();
        let max = self.service.config.limits.max_answer_bytes;
        if bytes > max {
            return Err(RuleError::AnswerTooLarge {
                what: "search hits",
                unit: "hits (k)",
                max,
            }
            .into());
        }
        if self.two_rounds && !hits.is_empty() {
            let fetch = GetRequest {
                collection: self.route.name().to_owned(),
                ids: hits.iter().map(|h| h.id.clone()).collect(),
                with_vector: self.request.with_vector,
                with_payload: self.request.with_payload,
                consistency: self.consistency.into(),
            };
            // Boxed: the second round would otherwise double every search's future.
            let mut points: HashMap<String, core::Point> =
                Box::pin(self.service.fetch(fetch, self.deadline))
                    .await?
                    .into_iter()
                    .map(|p| (p.id.clone(), p))
                    .collect();
            hits.retain_mut(|h| match points.remove(&h.id) {
                Some(p) => {
                    h.vector = p.vector;
                    h.payload_json = p.payload_json;
                    true
                }
                None => false,
            });
        }
        Ok(SearchOutcome {
            hits,
            missing_shards,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_changes_with_anything_that_changes_the_answer() {
        let base = core::SearchRequest {
            shard: None,
            vector: vec![1.0, 2.0],
            k: 10,
            ef: Some(64),
            filter: None,
            with_payload: false,
            with_vector: false,
            consistency: None,
        };
        let key = key_bytes(&base, false, false);
        assert_eq!(key, key_bytes(&base, false, false));
        assert_ne!(key, key_bytes(&base, true, false));
        assert_ne!(key, key_bytes(&base, false, true));
        for changed in [
            core::SearchRequest {
                k: 11,
                ..base.clone()
            },
            core::SearchRequest {
                ef: None,
                ..base.clone()
            },
            core::SearchRequest {
                vector: vec![1.0, 2.5],
                ..base.clone()
            },
            core::SearchRequest {
                with_payload: true,
                ..base.clone()
            },
            core::SearchRequest {
                with_vector: true,
                ..base.clone()
            },
            core::SearchRequest {
                filter: Some(vectron_proto::v1::Filter::must([
                    vectron_proto::v1::Condition::keyword("t", "x"),
                ])),
                ..base
            },
        ] {
            assert_ne!(key, key_bytes(&changed, false, false), "{changed:?}");
        }
    }
}
