//! The streaming upsert: a client's stream of batches feeds one client stream per shard
//! (to the core that owns it), so a bulk load travels as a few long streams that the
//! cores log with group commit, instead of a call per batch.
//!
//! ```text
//!  client stream ──► validate ──► split by shard ──► shard 0: segment ─► core 0 UpsertStream
//!  (gRPC messages or NDJSON lines)                 └► shard 1: segment ─► core 1 UpsertStream
//! ```
//!
//! A shard's stream is cut into segments of bounded size; a core acknowledges a segment
//! when it ends, once every point in it is durable. The gateway keeps a segment's batches
//! until then, so that when the core answers that the routing is stale the segment is
//! sent again to the replica a fresh table names. At most two segments per shard are
//! held (one open, one closing), which bounds memory. The call answers once every
//! segment is acknowledged.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use vectron_auth::{Action, Principal};

use futures_util::{Stream, StreamExt as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Status};
use vectron_proto::core::v1 as core;
use vectron_proto::v1::UpsertResponse;

use crate::admission::STREAM_HELD_BYTES;
use crate::cache::WriteGuard;
use crate::error::GatewayError;
use crate::routing::CollectionRoute;
use crate::service::Service;
use vectron_proto::rules::{self, RuleError};

/// Batches queued towards one core stream before the sender waits.
const CHANNEL_DEPTH: usize = 4;
/// Smallest and largest segment.
const SEGMENT_BYTES: (usize, usize) = (1 << 20, 32 << 20);

/// One message of an incoming stream, converted to the cores' form.
#[derive(Debug)]
pub(crate) struct IncomingBatch {
    /// The collection the message names (empty: the stream's).
    pub(crate) collection: String,
    /// Its points.
    pub(crate) points: Vec<core::Point>,
    /// Whether to wait for durability.
    pub(crate) wait: bool,
}

/// Where stream errors are said to be.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Position {
    /// The n-th message of a gRPC stream (from 0).
    Message(usize),
    /// The batch of an NDJSON body that starts at this line (from 1).
    Line(usize),
}

impl Position {
    pub(crate) fn wrap(self, error: GatewayError) -> GatewayError {
        let (what, at) = match self {
            Position::Message(n) => ("message", n),
            Position::Line(n) => ("batch starting at line", n),
        };
        GatewayError::InStream {
            what,
            at,
            source: Box::new(error),
        }
    }
}

/// A segment sent (or being sent) to one core.
struct Segment {
    /// Set while the segment is open.
    sender: Option<mpsc::Sender<core::UpsertRequest>>,
    call: JoinHandle<Result<core::UpsertResponse, Status>>,
    /// Every batch sent on it, for a resend.
    batches: Vec<core::UpsertRequest>,
    bytes: usize,
}

impl Drop for Segment {
    /// A segment given up (the stream failed, or its core stalled) takes its call with
    /// it, instead of leaving it waiting on the core.
    fn drop(&mut self) {
        self.call.abort();
    }
}

/// The running total of acknowledged points.
#[derive(Debug, Default)]
struct Acks {
    count: u64,
    durable: bool,
}

impl Acks {
    fn add(&mut self, ack: &core::UpsertResponse) {
        self.count += ack.count;
        self.durable &= ack.durable;
    }
}

struct ShardStreams<'a> {
    service: &'a Service,
    route: Arc<CollectionRoute>,
    segment_bytes: usize,
    open: HashMap<u32, Segment>,
    closing: HashMap<u32, VecDeque<Segment>>,
    acks: Acks,
}

impl Service {
    /// Runs a streaming upsert: `batches` is the client's stream, `collection` the name
    /// the call is addressed to (empty: the first message decides).
    pub(crate) async fn upsert_stream<S>(
        &self,
        who: &Principal,
        collection: &str,
        mut batches: S,
        position: fn(usize) -> Position,
    ) -> Result<UpsertResponse, GatewayError>
    where
        S: Stream<Item = Result<(usize, IncomingBatch), GatewayError>> + Unpin,
    {
        let Some(first) = batches.next().await else {
            return Err(RuleError::EmptyBatch.into());
        };
        let (n, first) = first?;
        let name = if collection.is_empty() {
            first.collection.clone()
        } else {
            collection.to_owned()
        };
        self.authorize_on(who, Action::Write, &name)
            .map_err(|e| position(n).wrap(e.into()))?;
        let route = self
            .routing
            .collection(&name)
            .await
            .map_err(|e| position(n).wrap(e))?;
        let _write = WriteGuard::new(&self.generations, &name);
        let segment_bytes = (STREAM_HELD_BYTES / (2 * route.shards.len().max(1)))
            .clamp(SEGMENT_BYTES.0, SEGMENT_BYTES.1);
        let mut streams = ShardStreams {
            service: self,
            route,
            segment_bytes,
            open: HashMap::new(),
            closing: HashMap::new(),
            acks: Acks {
                count: 0,
                durable: true,
            },
        };
        let mut next = Some(Ok((n, first)));
        while let Some(item) = next.take() {
            let (n, batch) = item?;
            if !batch.collection.is_empty() && batch.collection != name {
                return Err(position(n).wrap(GatewayError::CollectionMismatch {
                    expected: name.clone(),
                    got: batch.collection,
                }));
            }
            rules::check_points(&self.config.limits, &streams.route.spec, &batch.points)
                .map_err(|e| position(n).wrap(e.into()))?;
            self.owned_points
                .admit(who, &streams.route, batch.points.len(), &self.control)
                .await
                .map_err(|e| position(n).wrap(e))?;
            streams
                .send(batch.points, batch.wait)
                .await
                .map_err(|e| position(n).wrap(e))?;
            next = batches.next().await;
        }
        streams.finish().await
    }
}

impl ShardStreams<'_> {
    /// Sends one validated message's points to their shards' streams.
    async fn send(&mut self, points: Vec<core::Point>, wait: bool) -> Result<(), GatewayError> {
        for (shard, batch) in self.service.split(&self.route, points) {
            let bytes: usize = batch.iter().map(rules::point_bytes).sum();
            if self
                .open
                .get(&shard)
                .is_some_and(|s| s.bytes + bytes > self.segment_bytes)
            {
                self.close(shard).await?;
            }
            if !self.open.contains_key(&shard) {
                let segment = self.start(shard)?;
                self.open.insert(shard, segment);
            }
            let segment = self.open.get_mut(&shard).expect("opened above");
            let request = core::UpsertRequest {
                shard: None,
                points: batch,
                wait: Some(wait),
            };
            segment.bytes += bytes;
            segment.batches.push(request.clone());
            let sender = segment.sender.clone().expect("open segments have a sender");
            // A core that stops reading (stalled, or its host gone quiet) must not hold
            // the stream forever; one that reads slowly (its backpressure) may.
            let sent = self.while_alive(shard, sender.send(request)).await?;
            if sent.is_err() {
                // The core ended the stream early (an error): settle it now, which
                // resends it if the routing was stale.
                self.close(shard).await?;
                while self.closing.get(&shard).is_some_and(|q| !q.is_empty()) {
                    self.settle_oldest(shard).await?;
                }
            }
        }
        Ok(())
    }

    /// Waits for `work` on `shard`'s core for as long as the core is alive: each time
    /// the call timeout passes without `work` done, the core is asked for its stats,
    /// and one that does not answer within the call timeout is taken as stalled. A
    /// live core refuses itself a write it can make no progress on (its backpressure),
    /// so this gives up on a core that stopped (a frozen process, a host gone quiet)
    /// and never on one that is slow because it indexes or checkpoints a large shard;
    /// the client bounds the whole stream (its gRPC deadline, or hanging up).
    async fn while_alive<F: Future>(&self, shard: u32, work: F) -> Result<F::Output, GatewayError> {
        let patience = self.service.config.default_timeout;
        let mut work = std::pin::pin!(work);
        loop {
            if let Ok(done) = tokio::time::timeout(patience, &mut work).await {
                return Ok(done);
            }
            let address = self.address(shard);
            if !self.service.channels.answers(&address, patience).await {
                return Err(self.stalled(shard, patience));
            }
        }
    }

    /// The address of the core serving `shard` (empty when the route names none): for
    /// a replicated shard, where its leader was last seen.
    fn address(&self, shard: u32) -> String {
        self.target(shard)
            .map(|(_, address)| address)
            .unwrap_or_default()
    }

    /// The replica a stream to `shard` goes to (its leader, when replicated and known),
    /// with the reference its messages carry.
    fn target(&self, shard: u32) -> Result<(core::ShardRef, String), GatewayError> {
        let leader = self.service.channels.leader(self.route.name(), shard);
        let targets = self.route.targets(shard, leader.as_deref())?;
        let (shard_ref, replica) = targets
            .into_iter()
            .next()
            .expect("targets holds the serving replica");
        Ok((shard_ref, replica.address.clone()))
    }

    /// The error of a shard whose core stopped answering while it held a batch or a
    /// segment's acknowledgement.
    fn stalled(&self, shard: u32, patience: Duration) -> GatewayError {
        let address = self.address(shard);
        GatewayError::core(
            self.route.name(),
            shard,
            &address,
            Status::deadline_exceeded(format!(
                "the core took no part of the stream and did not answer for {patience:?}"
            )),
        )
    }

    /// Opens a client stream to the core serving `shard`.
    fn start(&self, shard: u32) -> Result<Segment, GatewayError> {
        let (shard_ref, address) = self.target(shard)?;
        let mut client = self
            .service
            .channels
            .client(&address)
            .map_err(|status| GatewayError::core(self.route.name(), shard, &address, status))?;
        let (sender, receiver) = mpsc::channel::<core::UpsertRequest>(CHANNEL_DEPTH);
        // Every message names the shard; the core checks they all name the same one.
        let requests = ReceiverStream::new(receiver).map(move |mut r| {
            r.shard = Some(shard_ref.clone());
            r
        });
        let call = tokio::spawn(async move {
            client
                .upsert_stream(requests)
                .await
                .map(tonic::Response::into_inner)
        });
        Ok(Segment {
            sender: Some(sender),
            call,
            batches: Vec::new(),
            bytes: 0,
        })
    }

    /// Ends the open segment of `shard`; keeps at most one closing segment per shard,
    /// settling the older one first.
    async fn close(&mut self, shard: u32) -> Result<(), GatewayError> {
        let Some(mut segment) = self.open.remove(&shard) else {
            return Ok(());
        };
        segment.sender = None;
        self.closing.entry(shard).or_default().push_back(segment);
        while self.closing.get(&shard).is_some_and(|q| q.len() > 1) {
            self.settle_oldest(shard).await?;
        }
        Ok(())
    }

    /// Waits for the oldest closing segment of `shard`. When the core refused it for
    /// stale routing or could not be reached, every later segment of the shard is ended
    /// too and all their batches are sent again in their original order (upserts are
    /// idempotent, so batches that had already landed may land again), so a point
    /// written twice in one stream keeps its last value.
    async fn settle_oldest(&mut self, shard: u32) -> Result<(), GatewayError> {
        let Some(mut oldest) = self.closing.get_mut(&shard).and_then(VecDeque::pop_front) else {
            return Ok(());
        };
        let address = self.address(shard);
        let answer = self.while_alive(shard, &mut oldest.call).await?;
        let status = match answer {
            Ok(Ok(ack)) => {
                self.acks.add(&ack);
                self.service
                    .channels
                    .acknowledged(&self.route, shard, ack.lsn);
                return Ok(());
            }
            Ok(Err(status)) => status,
            Err(e) => {
                return Err(GatewayError::Internal(format!(
                    "a shard stream task failed: {e}"
                )));
            }
        };
        let resend = matches!(
            status.code(),
            Code::FailedPrecondition | Code::NotFound | Code::Unavailable
        );
        if !resend {
            return Err(GatewayError::core(
                self.route.name(),
                shard,
                &address,
                status,
            ));
        }
        tracing::debug!(shard, code = ?status.code(), "resending a shard's stream segments after a refusal");
        let mut batches = std::mem::take(&mut oldest.batches);
        let later: Vec<Segment> = self
            .closing
            .remove(&shard)
            .unwrap_or_default()
            .into_iter()
            .chain(self.open.remove(&shard))
            .collect();
        for mut segment in later {
            segment.sender = None;
            // Whatever it answers, its batches are sent again.
            let _ = self.while_alive(shard, &mut segment.call).await;
            batches.extend(std::mem::take(&mut segment.batches));
        }
        let seen = self.service.routing.snapshot().version;
        let fresh = self.service.routing.refresh(seen).await?;
        self.route = fresh
            .collections
            .get(self.route.name())
            .cloned()
            .ok_or_else(|| GatewayError::UnknownCollection {
                name: self.route.name().to_owned(),
            })?;
        for batch in batches {
            let wait = batch.wait.unwrap_or(true);
            let deadline = self.service.deadline(None);
            let ack = self
                .service
                .upsert_batch(&self.route, shard, batch.points, wait, deadline)
                .await?;
            self.acks.add(&ack);
        }
        Ok(())
    }

    /// Ends every segment and waits for every acknowledgement.
    async fn finish(mut self) -> Result<UpsertResponse, GatewayError> {
        let shards: Vec<u32> = self.open.keys().copied().collect();
        for shard in shards {
            self.close(shard).await?;
        }
        let shards: Vec<u32> = self.closing.keys().copied().collect();
        for shard in shards {
            while self.closing.get(&shard).is_some_and(|q| !q.is_empty()) {
                self.settle_oldest(shard).await?;
            }
        }
        Ok(UpsertResponse {
            count: self.acks.count,
            durable: self.acks.durable,
        })
    }
}
