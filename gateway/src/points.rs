//! Writes and reads of points: upsert (split by shard, sent concurrently with a bound on
//! calls in flight), get, delete, count and scroll (fanned out, merged).

use std::collections::HashMap;
use std::sync::Arc;
use vectron_auth::{Action, Principal};

use futures_util::future::try_join_all;
use futures_util::{StreamExt as _, TryStreamExt as _};
use vectron_proto::core::v1 as core;
use vectron_proto::v1::{
    CountRequest, DeleteRequest, Filter, GetRequest, ReadConsistency, ScrollRequest,
    UpsertResponse, delete_request,
};

use crate::admission::charge_answer;
use crate::cache::WriteGuard;
use crate::cores::{Deadline, call_shard};
use crate::error::GatewayError;
use crate::merge::{chunk, group_by_shard, group_ids_by_shard, merge_scroll};
use crate::routing::CollectionRoute;
use crate::service::Service;
use vectron_proto::rules::{self, RuleError};

impl Service {
    /// Upserts points: validated, grouped by the shard that owns each id, split into
    /// batches a core accepts, and sent concurrently (at most
    /// `max_in_flight_per_request` calls at once). Answers once every batch is
    /// acknowledged (durable unless `wait` is false).
    pub(crate) async fn upsert(
        &self,
        who: &Principal,
        collection: &str,
        points: Vec<core::Point>,
        wait: bool,
        deadline: Deadline,
    ) -> Result<UpsertResponse, GatewayError> {
        self.authorize_on(who, Action::Write, collection)?;
        let route = self.routing.collection(collection).await?;
        rules::check_points(&self.config.limits, &route.spec, &points)?;
        self.owned_points
            .admit(who, &route, points.len(), &self.control)
            .await?;
        let _write = WriteGuard::new(&self.generations, collection);
        let batches = self.split(&route, points);
        let acks: Vec<core::UpsertResponse> = futures_util::stream::iter(
            batches
                .into_iter()
                .map(|(shard, batch)| self.upsert_batch(&route, shard, batch, wait, deadline)),
        )
        .buffer_unordered(self.config.cores.max_in_flight_per_request.max(1))
        .try_collect()
        .await?;
        Ok(UpsertResponse {
            count: acks.iter().map(|a| a.count).sum(),
            durable: acks.iter().all(|a| a.durable),
        })
    }

    /// `points` as (shard, batch) pairs, each batch within a core's limits.
    pub(crate) fn split(
        &self,
        route: &CollectionRoute,
        points: Vec<core::Point>,
    ) -> Vec<(u32, Vec<core::Point>)> {
        group_by_shard(points, route.layout)
            .into_iter()
            .flat_map(|(shard, points)| {
                chunk(
                    points,
                    self.config.limits.max_points,
                    self.config.cores.max_batch_bytes,
                )
                .into_iter()
                .map(move |batch| (shard, batch))
            })
            .collect()
    }

    /// Sends one batch to its shard (retried once on stale routing).
    pub(crate) async fn upsert_batch(
        &self,
        route: &Arc<CollectionRoute>,
        shard: u32,
        points: Vec<core::Point>,
        wait: bool,
        deadline: Deadline,
    ) -> Result<core::UpsertResponse, GatewayError> {
        call_shard(
            &self.routing,
            &self.channels,
            route,
            shard,
            deadline,
            |mut client, shard_ref| {
                let request = core::UpsertRequest {
                    shard: Some(shard_ref),
                    points: points.clone(),
                    wait: Some(wait),
                };
                async move { client.upsert(deadline.request(request)).await }
            },
        )
        .await
        .inspect(|ack| self.channels.acknowledged(route, shard, ack.lsn))
    }

    /// Reads points by id; the answer keeps the order of the ids asked for (each id
    /// once), leaving out ids that do not exist.
    pub(crate) async fn get(
        &self,
        who: &Principal,
        request: GetRequest,
        deadline: Deadline,
    ) -> Result<Vec<core::Point>, GatewayError> {
        self.authorize_on(who, Action::Read, &request.collection)?;
        self.fetch(request, deadline).await
    }

    /// [`Service::get`] for a caller already allowed to read the collection (a search's
    /// second round).
    pub(crate) async fn fetch(
        &self,
        request: GetRequest,
        deadline: Deadline,
    ) -> Result<Vec<core::Point>, GatewayError> {
        let route = self.routing.collection(&request.collection).await?;
        rules::check_ids(&self.config.limits, &request.ids)?;
        let linearizable = request.consistency() == ReadConsistency::Linearizable;
        let groups = group_ids_by_shard(&request.ids, route.layout);
        let calls = groups.into_iter().map(|(shard, ids)| {
            let route = &route;
            let consistency = self.channels.read_consistency(route, shard, linearizable);
            call_shard(
                &self.routing,
                &self.channels,
                route,
                shard,
                deadline,
                move |mut client, shard_ref| {
                    let r = core::GetRequest {
                        shard: Some(shard_ref),
                        ids: ids.clone(),
                        with_vector: request.with_vector,
                        with_payload: request.with_payload,
                        consistency,
                    };
                    async move { client.get(deadline.request(r)).await }
                },
            )
        });
        let found = try_join_all(calls).await?;
        let bytes: usize = found
            .iter()
            .flat_map(|r| &r.points)
            .map(rules::point_bytes)
            .sum();
        if bytes > self.config.limits.max_answer_bytes {
            return Err(RuleError::AnswerTooLarge {
                what: "points",
                unit: "ids",
                max: self.config.limits.max_answer_bytes,
            }
            .into());
        }
        charge_answer(bytes)?;
        let mut by_id: HashMap<String, core::Point> = found
            .into_iter()
            .flat_map(|r| r.points)
            .map(|p| (p.id.clone(), p))
            .collect();
        Ok(request
            .ids
            .iter()
            .filter_map(|id| by_id.remove(id))
            .collect())
    }

    /// Deletes points by id (sent to their shards) or by filter (sent to every shard);
    /// answers with how many existed.
    pub(crate) async fn delete(
        &self,
        who: &Principal,
        request: DeleteRequest,
        deadline: Deadline,
    ) -> Result<u64, GatewayError> {
        self.authorize_on(who, Action::Write, &request.collection)?;
        let route = self.routing.collection(&request.collection).await?;
        let wait = request.wait.unwrap_or(true);
        let selector = request.selector.ok_or(RuleError::NoSelector)?;
        let per_shard: Vec<(u32, core::delete_request::Selector)> = match selector {
            delete_request::Selector::Ids(ids) => {
                rules::check_ids(&self.config.limits, &ids.ids)?;
                group_ids_by_shard(&ids.ids, route.layout)
                    .into_iter()
                    .map(|(shard, ids)| {
                        (
                            shard,
                            core::delete_request::Selector::Ids(core::PointIds { ids }),
                        )
                    })
                    .collect()
            }
            delete_request::Selector::Filter(filter) => {
                if is_empty(&filter) {
                    return Err(RuleError::EmptyDeleteFilter.into());
                }
                route
                    .shards
                    .iter()
                    .map(|s| {
                        (
                            s.shard_id,
                            core::delete_request::Selector::Filter(filter.clone()),
                        )
                    })
                    .collect()
            }
        };
        let _write = WriteGuard::new(&self.generations, &request.collection);
        let shards: Vec<u32> = per_shard.iter().map(|(shard, _)| *shard).collect();
        let calls = per_shard.into_iter().map(|(shard, selector)| {
            call_shard(
                &self.routing,
                &self.channels,
                &route,
                shard,
                deadline,
                move |mut client, shard_ref| {
                    let r = core::DeleteRequest {
                        shard: Some(shard_ref),
                        selector: Some(selector.clone()),
                        wait: Some(wait),
                    };
                    async move { client.delete(deadline.request(r)).await }
                },
            )
        });
        let acks = try_join_all(calls).await?;
        for (ack, shard) in acks.iter().zip(&shards) {
            self.channels.acknowledged(&route, *shard, ack.lsn);
        }
        Ok(acks.iter().map(|a| a.deleted).sum())
    }

    /// Counts points (passing a filter) over every shard.
    pub(crate) async fn count(
        &self,
        who: &Principal,
        request: CountRequest,
        deadline: Deadline,
    ) -> Result<u64, GatewayError> {
        self.authorize_on(who, Action::Read, &request.collection)?;
        let route = self.routing.collection(&request.collection).await?;
        let linearizable = request.consistency() == ReadConsistency::Linearizable;
        let calls = route.shards.iter().map(|s| {
            let filter = request.filter.clone();
            let consistency = self
                .channels
                .read_consistency(&route, s.shard_id, linearizable);
            call_shard(
                &self.routing,
                &self.channels,
                &route,
                s.shard_id,
                deadline,
                move |mut client, shard_ref| {
                    let r = core::CountRequest {
                        shard: Some(shard_ref),
                        filter: filter.clone(),
                        consistency,
                    };
                    async move { client.count(deadline.request(r)).await }
                },
            )
        });
        let counts = try_join_all(calls).await?;
        Ok(counts.iter().map(|c| c.count).sum())
    }

    /// One page of points in id order over every shard, and the id that starts the next.
    pub(crate) async fn scroll(
        &self,
        who: &Principal,
        request: ScrollRequest,
        deadline: Deadline,
    ) -> Result<(Vec<core::Point>, String), GatewayError> {
        self.authorize_on(who, Action::Read, &request.collection)?;
        let route = self.routing.collection(&request.collection).await?;
        let linearizable = request.consistency() == ReadConsistency::Linearizable;
        let limit = rules::check_scroll_limit(&self.config.limits, request.limit)?;
        if !request.offset.is_empty() {
            rules::check_id(&self.config.limits, 0, &request.offset)?;
        }
        let calls = route.shards.iter().map(|s| {
            let r = core::ScrollRequest {
                shard: None,
                offset: request.offset.clone(),
                limit,
                filter: request.filter.clone(),
                with_vector: request.with_vector,
                with_payload: request.with_payload,
                consistency: self
                    .channels
                    .read_consistency(&route, s.shard_id, linearizable),
            };
            call_shard(
                &self.routing,
                &self.channels,
                &route,
                s.shard_id,
                deadline,
                move |mut client, shard_ref| {
                    let r = core::ScrollRequest {
                        shard: Some(shard_ref),
                        ..r.clone()
                    };
                    async move { client.scroll(deadline.request(r)).await }
                },
            )
        });
        let pages = try_join_all(calls).await?;
        charge_answer(
            pages
                .iter()
                .flat_map(|p| &p.points)
                .map(rules::point_bytes)
                .sum(),
        )?;
        Ok(merge_scroll(
            pages
                .into_iter()
                .map(|p| (p.points, p.next_offset))
                .collect(),
            limit as usize,
            self.config.limits.max_answer_bytes,
        ))
    }
}

/// A filter without any condition.
fn is_empty(filter: &Filter) -> bool {
    filter.must.is_empty() && filter.should.is_empty() && filter.must_not.is_empty()
}
