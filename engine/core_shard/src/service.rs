//! `vectron.core.v1.CoreService` on a core's gRPC port: each handler finds the shard the
//! request names (checking the epoch), calls it, and counts the call. Errors map to gRPC
//! status codes in one place, [`status`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use vectron_hnsw::HnswError;
use vectron_net::{Code, RequestContext, RequestStream, Router, RouterError, StatsHandle, Status};
use vectron_proto::core::v1::{
    CheckpointRequest, CheckpointResponse, CloseShardRequest, CloseShardResponse, CountRequest,
    CountResponse, DeleteRequest, DeleteResponse, GetRequest, GetResponse, OpenShardRequest,
    OpenShardResponse, Point, ReadConsistency, ScoredPoint, ScrollRequest, ScrollResponse,
    SearchBatchRequest, SearchBatchResponse, SearchRequest, SearchResponse, StatsRequest,
    UpsertRequest, UpsertResponse, delete_request,
};
use vectron_proto::rules::{EPOCH_TRAILER, LEADER_TRAILER, RETRY_AFTER, RuleError};
use vectron_proto::v1::CoreStats;
use vectron_wal::WalError;

use crate::core::Core;
use crate::error::ShardError;
use crate::filter::Filter;
use crate::handle::{PendingWrite, ShardHandle, WriteAck};
use crate::shard::{HitOut, PointOut, Searched, UpsertBatch};

/// Pieces of one upsert stream that may wait for the log at once.
const STREAM_WINDOW: usize = 32;
/// Points of an upsert logged and applied at once: a batch, unary or streamed, is taken
/// in pieces of at most this many (each its own log record), with the core's other calls
/// running between them, so that a large batch does not hold the core for milliseconds.
pub const WRITE_PIECE: usize = 256;

/// The gRPC status for a shard error: the one place where errors meet codes.
pub fn status(err: &ShardError) -> Status {
    use ShardError as E;
    let code = match err {
        E::Rule(rule) => Code::from_i32(rule.code() as i32),
        E::Filter(_) | E::BadAssignment { .. } => Code::InvalidArgument,
        E::OutsideRange { .. } | E::WrongEpoch { .. } | E::SpecMismatch { .. } => {
            Code::FailedPrecondition
        }
        E::UnknownShard { .. } => Code::NotFound,
        E::Backlog { .. } | E::WritesHeld { .. } => Code::ResourceExhausted,
        E::Missing { .. } => Code::FailedPrecondition,
        // A shard that stopped is reopened by its worker's reconciler; a failed read or
        // write of its files may pass (a full disk): worth retrying.
        E::Stopped { .. } => Code::Unavailable,
        // Another replica may answer (the leader, or one that caught up); a write that
        // may or may not have taken effect is retried by id, which is idempotent.
        E::NotLeader { .. } | E::Indeterminate { .. } | E::Lagging { .. } => Code::Unavailable,
        E::Wal { source } => match source {
            WalError::Corrupt { .. } | WalError::ReplayGap { .. } => Code::DataLoss,
            WalError::InvalidOptions(_) => Code::Internal,
            _ => Code::Unavailable,
        },
        E::Index { source } => match source {
            HnswError::Corrupt { .. } => Code::DataLoss,
            HnswError::Io { .. } => Code::Unavailable,
            HnswError::CapacityExceeded { .. } | HnswError::Alloc { .. } => Code::ResourceExhausted,
            _ => Code::Internal,
        },
        E::Checkpoint { source, .. } if source.kind() == std::io::ErrorKind::InvalidData => {
            Code::DataLoss
        }
        E::Checkpoint { .. } => Code::Unavailable,
        // Stored data that disagrees with itself or with the collection: retrying cannot
        // help, and serving it would answer wrongly.
        E::IndexMismatch { .. } | E::Replay { .. } => Code::DataLoss,
    };
    let status = Status::new(code, crate::error::chain(err));
    match err {
        E::WrongEpoch { current, .. } => status.with_metadata(
            http::HeaderName::from_static(EPOCH_TRAILER),
            http::HeaderValue::from(*current),
        ),
        E::Backlog { .. } | E::WritesHeld { .. } => status.with_metadata(
            http::HeaderName::from_static(RETRY_AFTER),
            http::HeaderValue::from(1u64),
        ),
        E::NotLeader {
            leader: Some((id, Some(addr))),
            ..
        } => match http::HeaderValue::from_str(&format!("{id}@{addr}")) {
            Ok(value) => status.with_metadata(http::HeaderName::from_static(LEADER_TRAILER), value),
            Err(_) => status,
        },
        _ => status,
    }
}

fn point(p: PointOut) -> Point {
    Point {
        id: p.id,
        vector: p.vector,
        payload_json: p.payload,
    }
}

fn hit(h: HitOut) -> ScoredPoint {
    ScoredPoint {
        id: h.id,
        score: h.score,
        vector: h.vector,
        payload_json: h.payload,
        payload_bytes: h.payload_bytes,
    }
}

/// Where the Stats handler reads the number of calls in flight, set once the server
/// serving the router exists.
pub type InFlight = Rc<RefCell<Option<StatsHandle>>>;

/// Holds a read to the freshness it asks for ([`ShardHandle::read_barrier`]).
async fn read_barrier(
    shard: &ShardHandle,
    consistency: Option<&ReadConsistency>,
) -> Result<(), Status> {
    let (linearizable, min_lsn) = consistency.map_or((false, 0), |c| (c.linearizable, c.min_lsn));
    shard
        .read_barrier(linearizable, min_lsn)
        .await
        .map_err(|e| status(&e))
}

/// One search. It runs to its end without waiting (so it sees every write applied
/// before it), unless its filter reads more payloads than one search may: then the
/// matching points are found in slices first.
async fn search_one(core: &Core, request: &SearchRequest) -> Result<SearchResponse, Status> {
    let started = Instant::now();
    let shard = core.shard(request.shard.as_ref()).map_err(|e| status(&e))?;
    read_barrier(&shard, request.consistency.as_ref()).await?;
    let first = core
        .with_scratch(|scratch| shard.search(request, None, scratch))
        .map_err(|e| status(&e))?;
    let hits = match first {
        Searched::Hits(hits) => hits,
        Searched::Prefilter => {
            let nodes = shard
                .matching_nodes(request.filter.as_ref(), core.yielder())
                .await
                .map_err(|e| status(&e))?;
            match core
                .with_scratch(|scratch| shard.search(request, Some(&nodes), scratch))
                .map_err(|e| status(&e))?
            {
                Searched::Hits(hits) => hits,
                Searched::Prefilter => {
                    return Err(Status::internal(
                        "a prefiltered search asked to be prefiltered again",
                    ));
                }
            }
        }
    };
    core.counters()
        .borrow_mut()
        .search(core.uptime(), started.elapsed());
    Ok(SearchResponse {
        hits: hits.into_iter().map(hit).collect(),
    })
}

/// One exact search, in slices (see [`ShardHandle::exact_search`]).
async fn exact_search(core: &Core, request: &SearchRequest) -> Result<SearchResponse, Status> {
    let started = Instant::now();
    let shard = core.shard(request.shard.as_ref()).map_err(|e| status(&e))?;
    read_barrier(&shard, request.consistency.as_ref()).await?;
    let hits = shard
        .exact_search(request, core.scratch(), core.yielder())
        .await
        .map_err(|e| status(&e))?;
    core.counters()
        .borrow_mut()
        .search(core.uptime(), started.elapsed());
    Ok(SearchResponse {
        hits: hits.into_iter().map(hit).collect(),
    })
}

/// `router` with the unary method at `path`, whose handler is given the core.
fn unary<Req, Resp, F, Fut>(
    router: Router,
    core: &Rc<Core>,
    path: &str,
    handler: F,
) -> Result<Router, RouterError>
where
    Req: prost::Message + Default + 'static,
    Resp: prost::Message + 'static,
    F: Fn(Rc<Core>, Req) -> Fut + 'static,
    Fut: Future<Output = Result<Resp, Status>> + 'static,
{
    let core = Rc::clone(core);
    router.unary(path, move |_: RequestContext, request: Req| {
        handler(Rc::clone(&core), request)
    })
}

/// Every CoreService method, bound to `core`, and the ShardAdmin methods as `admin`
/// says.
pub fn router(
    core: &Rc<Core>,
    in_flight: InFlight,
    admin: ShardAdministration,
) -> Result<Router, RouterError> {
    const SVC: &str = "/vectron.core.v1.CoreService/";
    let router = shard_admin(Router::new(), core, admin)?;
    let router = unary(
        router,
        core,
        &format!("{SVC}Upsert"),
        |core, r: UpsertRequest| async move {
            let started = Instant::now();
            let shard = core.shard(r.shard.as_ref()).map_err(|e| status(&e))?;
            let points = r.points.len() as u64;
            let ack = upsert_in_pieces(&core, &shard, r.points, r.wait.unwrap_or(true))
                .await
                .map_err(|e| status(&e))?;
            core.counters()
                .borrow_mut()
                .upsert(core.uptime(), points, started.elapsed());
            Ok(UpsertResponse {
                count: ack.count,
                durable: ack.durable,
                lsn: ack.lsn,
            })
        },
    )?;
    let c = Rc::clone(core);
    let router = router.client_streaming(
        &format!("{SVC}UpsertStream"),
        move |_: RequestContext, stream: RequestStream<UpsertRequest>| {
            let core = Rc::clone(&c);
            async move { upsert_stream(&core, stream).await }
        },
    )?;
    let router = unary(
        router,
        core,
        &format!("{SVC}Search"),
        |core, r: SearchRequest| async move { search_one(&core, &r).await },
    )?;
    let router = unary(
        router,
        core,
        &format!("{SVC}ExactSearch"),
        |core, r: SearchRequest| async move { exact_search(&core, &r).await },
    )?;
    let router = unary(
        router,
        core,
        &format!("{SVC}SearchBatch"),
        |core, r: SearchBatchRequest| async move {
            let mut results = Vec::with_capacity(r.searches.len());
            for (i, s) in r.searches.iter().enumerate() {
                let found = search_one(&core, s).await.map_err(|e| {
                    Status::new(
                        e.code(),
                        format!("search {i} of the batch: {}", e.message()),
                    )
                })?;
                results.push(found);
            }
            Ok(SearchBatchResponse { results })
        },
    )?;
    let router = unary(
        router,
        core,
        &format!("{SVC}Get"),
        |core, r: GetRequest| async move {
            let shard = core.shard(r.shard.as_ref()).map_err(|e| status(&e))?;
            read_barrier(&shard, r.consistency.as_ref()).await?;
            shard
                .get(&r.ids, r.with_vector, r.with_payload)
                .map(|points| GetResponse {
                    points: points.into_iter().map(point).collect(),
                })
                .map_err(|e| status(&e))
        },
    )?;
    let router = unary(
        router,
        core,
        &format!("{SVC}Delete"),
        |core, r: DeleteRequest| async move {
            let shard = core.shard(r.shard.as_ref()).map_err(|e| status(&e))?;
            core.admit_write(&shard, false)
                .await
                .map_err(|e| status(&e))?;
            let wait = r.wait.unwrap_or(true);
            let ack = match r.selector {
                Some(delete_request::Selector::Ids(ids)) => shard.delete_ids(ids.ids, wait).await,
                Some(delete_request::Selector::Filter(f)) => match Filter::from_proto(Some(&f)) {
                    Ok(filter) => shard.delete_filter(&filter, wait, core.yielder()).await,
                    Err(e) => Err(e.into()),
                },
                None => Err(RuleError::NoSelector.into()),
            }
            .map_err(|e| status(&e))?;
            core.wake_indexer();
            Ok(DeleteResponse {
                deleted: ack.count,
                lsn: ack.lsn,
            })
        },
    )?;
    let router = unary(
        router,
        core,
        &format!("{SVC}Scroll"),
        |core, r: ScrollRequest| async move {
            let shard = core.shard(r.shard.as_ref()).map_err(|e| status(&e))?;
            read_barrier(&shard, r.consistency.as_ref()).await?;
            let (points, next) = shard
                .scroll(&r, core.yielder())
                .await
                .map_err(|e| status(&e))?;
            Ok(ScrollResponse {
                points: points.into_iter().map(point).collect(),
                next_offset: next.unwrap_or_default(),
            })
        },
    )?;
    let router = unary(
        router,
        core,
        &format!("{SVC}Count"),
        |core, r: CountRequest| async move {
            let shard = core.shard(r.shard.as_ref()).map_err(|e| status(&e))?;
            read_barrier(&shard, r.consistency.as_ref()).await?;
            let count = shard
                .count(r.filter.as_ref(), core.yielder())
                .await
                .map_err(|e| status(&e))?;
            Ok(CountResponse { count })
        },
    )?;
    let router = unary(
        router,
        core,
        &format!("{SVC}Checkpoint"),
        |core, r: CheckpointRequest| async move {
            let shard = core.shard(r.shard.as_ref()).map_err(|e| status(&e))?;
            let lsn = core.checkpoint(&shard).await.map_err(|e| status(&e))?;
            Ok(CheckpointResponse { lsn })
        },
    )?;
    let c = Rc::clone(core);
    router.unary(
        &format!("{SVC}Stats"),
        move |_: RequestContext, _: StatsRequest| {
            let stats: CoreStats = c.stats(in_flight.borrow().as_ref());
            async move { Ok(stats) }
        },
    )
}

/// Who opens and closes a core's shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShardAdministration {
    /// The worker runs without a control plane: the ShardAdmin methods are served on
    /// the core's port (to callers past its gate).
    Served,
    /// The worker is in a cluster: only the control plane's assignments open and
    /// close its shards, and every ShardAdmin call is refused.
    ByControlPlane,
}

/// The answer to a ShardAdmin call on a worker in a cluster.
async fn refused<T>() -> Result<T, Status> {
    Err(Status::permission_denied(
        "this worker is in a cluster: its shards are opened and closed by the control plane's assignments, not through ShardAdmin",
    ))
}

/// The ShardAdmin methods on `router`, served or refused as `admin` says.
fn shard_admin(
    router: Router,
    core: &Rc<Core>,
    admin: ShardAdministration,
) -> Result<Router, RouterError> {
    const SVC: &str = "/vectron.core.v1.ShardAdmin/";
    if admin == ShardAdministration::ByControlPlane {
        return router
            .unary(
                &format!("{SVC}OpenShard"),
                |_: RequestContext, _: OpenShardRequest| refused::<OpenShardResponse>(),
            )?
            .unary(
                &format!("{SVC}CloseShard"),
                |_: RequestContext, _: CloseShardRequest| refused::<CloseShardResponse>(),
            );
    }
    let router = unary(
        router,
        core,
        &format!("{SVC}OpenShard"),
        |core, r: OpenShardRequest| async move {
            let assignment = r.assignment.unwrap_or_default();
            let shard = core
                .open_shard(&assignment, false)
                .await
                .map_err(|e| status(&e))?;
            Ok(OpenShardResponse {
                stats: Some(shard.stats()),
            })
        },
    )?;
    unary(
        router,
        core,
        &format!("{SVC}CloseShard"),
        |core, r: CloseShardRequest| async move {
            let shard = r.shard.unwrap_or_default();
            core.close_shard(&shard, r.delete_data)
                .await
                .map_err(|e| status(&e))?;
            Ok(CloseShardResponse {})
        },
    )
}

/// Bulk ingest on one stream: every batch is validated, logged and applied as it
/// arrives, in pieces of at most [`WRITE_PIECE`] points (each its own log record);
/// up to [`STREAM_WINDOW`] pieces wait for the log at once, so reading the stream,
/// syncing and indexing overlap. Answers once every piece is acknowledged.
async fn upsert_stream(
    core: &Core,
    mut stream: RequestStream<UpsertRequest>,
) -> Result<UpsertResponse, Status> {
    let started = Instant::now();
    let Some(first) = stream.message().await? else {
        return Err(Status::invalid_argument(
            "an upsert stream must carry at least one batch",
        ));
    };
    let shard_ref = first.shard.clone();
    let shard = core.shard(shard_ref.as_ref()).map_err(|e| status(&e))?;
    let mut waiting = VecDeque::new();
    let mut total = 0u64;
    let mut lsn = 0u64;
    let mut durable = true;
    let mut next = Some(first);
    while let Some(batch) = next.take() {
        if batch.shard.is_some() && batch.shard != shard_ref {
            return Err(Status::invalid_argument(
                "every message of an upsert stream must name the same shard and epoch",
            ));
        }
        let wait = batch.wait.unwrap_or(true);
        durable &= wait;
        // Each message is refused or taken whole, then logged in pieces.
        let points = shard
            .validate_upsert(batch.points)
            .map_err(|e| status(&e))?;
        let mut from = 0;
        loop {
            let (pending, rest) = upsert_piece(core, &shard, &points, from)
                .await
                .map_err(|e| status(&e))?;
            total += pending.count();
            lsn = pending.lsn_hint();
            if wait {
                waiting.push_back(pending);
                if waiting.len() > STREAM_WINDOW {
                    let oldest = waiting.pop_front().expect("non-empty");
                    oldest.finish().await.map_err(|e| status(&e))?;
                }
            }
            let Some(rest) = rest else { break };
            from = rest;
            core.yielder().yield_now().await;
        }
        next = stream.message().await?;
    }
    while let Some(pending) = waiting.pop_front() {
        pending.finish().await.map_err(|e| status(&e))?;
    }
    core.counters()
        .borrow_mut()
        .upsert(core.uptime(), total, started.elapsed());
    Ok(UpsertResponse {
        count: total,
        durable,
        lsn,
    })
}

/// Logs and applies one piece of a validated batch, the points from `from` on (at most
/// [`WRITE_PIECE`]), once the backlog rules admit it. Returns its write and where the
/// next piece starts (`None` after the last).
async fn upsert_piece<'s>(
    core: &Core,
    shard: &'s ShardHandle,
    batch: &UpsertBatch,
    from: usize,
) -> Result<(PendingWrite<'s>, Option<usize>), ShardError> {
    core.admit_write(shard, true).await?;
    let end = (from + WRITE_PIECE).min(batch.len());
    let pending = shard.begin_upsert_range(batch, from..end)?;
    core.wake_indexer();
    Ok((pending, (end < batch.len()).then_some(end)))
}

/// A unary upsert: validated whole (refused or taken whole), then logged and applied in
/// pieces ([`upsert_piece`]) with the core's other calls running between them. With
/// `wait`, answers once the last piece is durable (the log acknowledges in order, so
/// every earlier one is too).
async fn upsert_in_pieces(
    core: &Core,
    shard: &ShardHandle,
    points: Vec<Point>,
    wait: bool,
) -> Result<WriteAck, ShardError> {
    let batch = shard.validate_upsert(points)?;
    let mut from = 0;
    let pending = loop {
        // An earlier piece's write is not awaited: the log acknowledges in order, and a
        // failure poisons it for the last piece too.
        let (pending, rest) = upsert_piece(core, shard, &batch, from).await?;
        let Some(rest) = rest else { break pending };
        from = rest;
        core.yielder().yield_now().await;
    };
    let count = batch.len() as u64;
    if wait {
        let done = pending.finish().await?;
        Ok(WriteAck { count, ..done })
    } else {
        Ok(WriteAck {
            count,
            lsn: pending.lsn_hint(),
            durable: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn what_a_client_can_do_decides_the_code() {
        let code = |e: ShardError| status(&e).code();
        assert_eq!(
            code(RuleError::BatchBytes { got: 2, max: 1 }.into()),
            Code::ResourceExhausted
        );
        assert_eq!(code(RuleError::EmptyBatch.into()), Code::InvalidArgument);
        // A stopped shard is reopened by its worker: worth retrying.
        let stopped = ShardError::Stopped {
            collection: "c".into(),
            shard_id: 0,
            reason: "fsync failed".into(),
        };
        assert_eq!(code(stopped), Code::Unavailable);
        // Stored data that fails a check: retrying cannot help.
        let replay = ShardError::Replay {
            reason: "checkpoint names a node the index does not hold".into(),
        };
        assert_eq!(code(replay), Code::DataLoss);
        let corrupt = ShardError::Checkpoint {
            path: PathBuf::from("points.bin"),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "bad checksum"),
        };
        assert_eq!(code(corrupt), Code::DataLoss);
        let full = ShardError::Checkpoint {
            path: PathBuf::from("points.bin"),
            source: std::io::Error::from_raw_os_error(28),
        };
        assert_eq!(code(full), Code::Unavailable, "a full disk may pass");
    }
}
