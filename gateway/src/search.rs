//! Search: checked at the door, answered from the cache or by joining an identical
//! search in flight when possible, otherwise fanned out to one replica of every shard
//! under the request's deadline and merged with a heap.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use vectron_auth::{Action, Principal};

use futures_util::StreamExt as _;
use futures_util::future::join_all;
use prost::Message as _;
use vectron_proto::core::v1 as core;
use vectron_proto::v1::{GetRequest, ReadConsistency, SearchRequest};

use crate::admission::charge_answer;
use crate::cache::{SearchKey, SearchOutcome};
use crate::cores::{Deadline, call_shard};
use crate::error::GatewayError;
use crate::merge::merge_top_k;
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
    /// another gateway) before they started.
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
        let key = SearchKey {
            collection: plan.route.name().into(),
            generation: self.generations.get(plan.route.name()),
            request: key_bytes(&plan.request, plan.allow_partial, plan.exact).into(),
        };
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
            cacheable: !linearizable,
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

/// Asks one replica of every shard at once and merges the answers. A shard that fails
/// fails the search, unless partial results are allowed and the failure is the shard's
/// (unreachable, no serving replica, out of time): then it is named as missing.
///
/// When the shards' answers could be large (many hits, with payloads or vectors), the
/// shards answer with ids, scores and payload sizes only; the merged hits are sized (a
/// search whose answer would pass the answer limit is refused before any payload is
/// read), and only then are the final hits' payloads and vectors fetched from their
/// shards. Each shard thus sends what the answer keeps, not its whole top-k. A hit whose
/// point was deleted between the two rounds is left out.
async fn fan_out(service: Arc<Service>, plan: Plan) -> Result<SearchOutcome, GatewayError> {
    let Plan {
        route,
        request,
        exact,
        allow_partial,
        deadline,
        consistency,
        ..
    } = plan;
    let dimension = route.spec.dimension as usize;
    let wanted = request.with_payload || request.with_vector;
    let worst = route.shards.len()
        * request.k as usize
        * (rules::ANSWER_OVERHEAD_BYTES
            + service.config.limits.max_id_bytes
            + usize::from(request.with_vector) * dimension * 4
            + usize::from(request.with_payload) * service.config.limits.max_payload_bytes);
    let two_rounds = wanted && worst > ONE_ROUND_MAX_BYTES;
    let first = core::SearchRequest {
        with_payload: request.with_payload && !two_rounds,
        with_vector: request.with_vector && !two_rounds,
        ..request.clone()
    };
    let linearizable = consistency == ReadConsistency::Linearizable;
    let calls = route.shards.iter().map(|shard| {
        let asked = core::SearchRequest {
            consistency: service
                .channels
                .read_consistency(&route, shard.shard_id, linearizable),
            ..first.clone()
        };
        call_shard(
            &service.routing,
            &service.channels,
            &route,
            shard.shard_id,
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
    });
    let answers = join_all(calls).await;
    let mut lists = Vec::with_capacity(answers.len());
    let mut missing_shards = Vec::new();
    for (shard, answer) in route.shards.iter().zip(answers) {
        match answer {
            Ok(found) => {
                let bytes = found
                    .hits
                    .iter()
                    .map(|h| hit_bytes(h, &first, dimension))
                    .sum();
                charge_answer(bytes)?;
                lists.push(found.hits);
            }
            Err(e) if allow_partial && e.is_shard_failure() => {
                tracing::debug!(shard = shard.shard_id, error = %e, "search goes on without a shard");
                missing_shards.push(shard.shard_id);
            }
            Err(e) => return Err(e),
        }
    }
    let mut hits = merge_top_k(lists, request.k as usize);
    let bytes: usize = hits.iter().map(|h| hit_bytes(h, &request, dimension)).sum();
    let max = service.config.limits.max_answer_bytes;
    if bytes > max {
        return Err(RuleError::AnswerTooLarge {
            what: "search hits",
            unit: "hits (k)",
            max,
        }
        .into());
    }
    if two_rounds && !hits.is_empty() {
        let fetch = GetRequest {
            collection: route.name().to_owned(),
            ids: hits.iter().map(|h| h.id.clone()).collect(),
            with_vector: request.with_vector,
            with_payload: request.with_payload,
            consistency: consistency.into(),
        };
        // Boxed: the second round would otherwise double every search's future.
        let mut points: HashMap<String, core::Point> = Box::pin(service.fetch(fetch, deadline))
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
