//! One shard's in-memory state and its state machine: validation of requests, the
//! application of logged writes, and every read. No IO and no `.await` here: the caller
//! ([`crate::ShardHandle`]) logs a write, then applies it with the functions below, in
//! log order, so the state is always the log replayed.
//!
//! ```text
//!   request ─► validate ─► (WAL append: LSN order = call order) ─► apply ─► ack when durable
//!   search  ─► validate ─► plan filter ─► HNSW (+ exact scan of unlinked) ─► hits
//! ```
//!
//! Point ids (strings) map to the index's [`NodeId`]s; a node carries its id and its
//! payload (JSON text, kept as written). Applying a logged write is idempotent (an
//! upsert replaces, a delete removes), so replaying records a checkpoint already holds
//! is harmless.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Instant;

use roaring::RoaringBitmap;
use serde_json::Value;
use vectron_hnsw::{HnswError, HnswIndex, IdFilter, NodeId, SearchHit, SearchScratch};
use vectron_proto::core::v1::Point;
use vectron_proto::rules::{self, Limits, RuleError};
use vectron_proto::v1::{CollectionSpec, PayloadIndex};
use vectron_wal::BodyView;

use crate::error::ShardError;
use crate::filter::{Filter, Plan};
use crate::payload_index::PayloadIndexes;
use crate::spec::ShardSpec;

/// The rulebook's limits: a core enforces exactly what every gateway may at most allow.
const LIMITS: &Limits = &Limits::DEFAULT;

/// A point as stored: its id and payload. The vector lives in the index.
#[derive(Debug, Clone)]
struct Node {
    id: Box<str>,
    /// JSON object text; empty means no payload.
    payload: Box<[u8]>,
}

/// A write that passed validation, in the columns the log stores.
#[derive(Debug, Default)]
pub(crate) struct UpsertBatch {
    /// Point ids, each at most once.
    pub(crate) ids: Vec<String>,
    /// `ids.len() × dim` values.
    pub(crate) vectors: Vec<f32>,
    /// JSON object text per point; empty means none.
    pub(crate) payloads: Vec<Vec<u8>>,
    /// The parsed payloads, so applying does not parse again.
    parsed: Vec<Option<Value>>,
}

impl UpsertBatch {
    /// Number of points.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
}

/// One point read back.
#[derive(Debug, Clone, PartialEq)]
pub struct PointOut {
    /// Point id.
    pub id: String,
    /// Stored vector, when asked for (unit length for cosine collections).
    pub vector: Vec<f32>,
    /// Payload JSON text, when asked for; empty when the point has none.
    pub payload: Vec<u8>,
}

/// A hit of an exact search between its slices: the point's id is kept to tell whether
/// the node still holds the same point at the end.
#[derive(Debug)]
pub(crate) struct ExactHit {
    score: f32,
    node: NodeId,
    id: Box<str>,
}

/// The index's refusal of a query as the shard's error.
fn index_error(source: HnswError) -> ShardError {
    match source {
        HnswError::WrongDimension { expected, got } => {
            RuleError::QueryDimension { expected, got }.into()
        }
        source => ShardError::Index { source },
    }
}

/// One search hit.
#[derive(Debug, Clone, PartialEq)]
pub struct HitOut {
    /// Point id.
    pub id: String,
    /// Similarity, higher is better.
    pub score: f32,
    /// Stored vector, when asked for.
    pub vector: Vec<f32>,
    /// Payload JSON text, when asked for.
    pub payload: Vec<u8>,
    /// Bytes of the point's payload, whether or not it is returned.
    pub payload_bytes: u32,
}

/// What a search asks for, validated.
#[derive(Debug)]
pub(crate) struct SearchArgs<'a> {
    pub(crate) vector: &'a [f32],
    pub(crate) k: usize,
    pub(crate) ef: usize,
    pub(crate) filter: Filter,
    pub(crate) with_payload: bool,
    pub(crate) with_vector: bool,
}

/// What a scroll page reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScrollRead {
    /// Most points in the page.
    pub(crate) limit: usize,
    pub(crate) with_vector: bool,
    pub(crate) with_payload: bool,
}

/// Where a step of a scroll stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScrollStep {
    /// The page is complete; the id that starts the next one, if any.
    Done(Option<String>),
    /// Out of time: continue from this id (inclusive).
    Paused(String),
}

/// Nodes a scan visits between two looks at the clock.
pub(crate) const SCAN_CHECK_EVERY: usize = 256;

/// The state of one shard.
#[derive(Debug)]
pub(crate) struct ShardState {
    spec: ShardSpec,
    index: HnswIndex,
    /// Point id → node, ordered for scrolling.
    ids: BTreeMap<Box<str>, NodeId>,
    /// Node → point; `None` for free slots. Indexed by `NodeId`.
    nodes: Vec<Option<Node>>,
    payload_indexes: PayloadIndexes,
    /// Every live node.
    live: RoaringBitmap,
    /// Bytes of ids and payloads held in `nodes`.
    node_bytes: u64,
    /// Moves on every point stored or removed: a filter plan (whose exact sets name
    /// nodes) made at one generation holds only while the generation stays.
    generation: u64,
}

impl ShardState {
    /// An empty shard.
    pub(crate) fn new(spec: ShardSpec) -> Result<Self, ShardError> {
        let index =
            HnswIndex::new(spec.index_config()).map_err(|source| ShardError::Index { source })?;
        Ok(Self::with_index(spec, index))
    }

    /// A shard around an index opened from a checkpoint; the points are restored with
    /// [`ShardState::restore_node`].
    pub(crate) fn with_index(spec: ShardSpec, index: HnswIndex) -> Self {
        let payload_indexes = PayloadIndexes::new(&spec.collection.payload_indexes);
        Self {
            spec,
            index,
            ids: BTreeMap::new(),
            nodes: Vec::new(),
            payload_indexes,
            live: RoaringBitmap::new(),
            node_bytes: 0,
            generation: 0,
        }
    }

    pub(crate) fn spec(&self) -> &ShardSpec {
        &self.spec
    }

    pub(crate) fn set_placement(&mut self, epoch: u64, incarnation: u64) {
        self.spec.epoch = epoch;
        self.spec.incarnation = incarnation;
    }

    /// Adopts a replica's new assignment of its group (its peers' addresses).
    pub(crate) fn set_replica(&mut self, replica: Option<crate::spec::ReplicaSpec>) {
        self.spec.replica = replica;
    }

    pub(crate) fn index(&self) -> &HnswIndex {
        &self.index
    }

    fn collection(&self) -> &CollectionSpec {
        &self.spec.collection
    }

    /// Live points.
    pub(crate) fn len(&self) -> u64 {
        self.live.len()
    }

    // --- validation ---------------------------------------------------------------

    /// Checks an upsert and puts it into log columns. Nothing is changed.
    pub(crate) fn validate_upsert(&self, points: Vec<Point>) -> Result<UpsertBatch, ShardError> {
        let dim = self.collection().dimension as usize;
        rules::check_points(LIMITS, self.collection(), &points)?;
        let bytes: usize = points.iter().map(rules::point_bytes).sum();
        if bytes > LIMITS.max_batch_bytes {
            return Err(RuleError::BatchBytes {
                got: bytes,
                max: LIMITS.max_batch_bytes,
            }
            .into());
        }
        let mut batch = UpsertBatch {
            ids: Vec::with_capacity(points.len()),
            vectors: Vec::with_capacity(points.len() * dim),
            payloads: Vec::with_capacity(points.len()),
            parsed: Vec::with_capacity(points.len()),
        };
        for (i, p) in points.into_iter().enumerate() {
            self.check_range(&p.id)?;
            let parsed = parse_payload(i, &p.id, &p.payload_json)?;
            batch.vectors.extend_from_slice(&p.vector);
            batch.ids.push(p.id);
            batch.payloads.push(p.payload_json);
            batch.parsed.push(parsed);
        }
        Ok(batch)
    }

    /// Checks that this shard owns the point `id`.
    fn check_range(&self, id: &str) -> Result<(), ShardError> {
        let hash = vectron_proto::hashing::point_hash(id);
        if !self.spec.range.contains(hash) {
            return Err(ShardError::OutsideRange {
                id: id.to_owned(),
                hash,
                start: self.spec.range.start,
                end: self.spec.range.end,
            });
        }
        Ok(())
    }

    /// Checks ids for a get or delete.
    pub(crate) fn validate_ids(ids: &[String]) -> Result<(), ShardError> {
        Ok(rules::check_ids(LIMITS, ids)?)
    }

    /// Checks a search request.
    pub(crate) fn validate_search<'a>(
        &self,
        vector: &'a [f32],
        k: u32,
        ef: Option<u32>,
        filter: Option<&vectron_proto::v1::Filter>,
        with_payload: bool,
        with_vector: bool,
    ) -> Result<SearchArgs<'a>, ShardError> {
        let ef = ef.unwrap_or(self.spec.default_ef());
        rules::check_query(LIMITS, self.collection(), vector, k, Some(ef))?;
        Ok(SearchArgs {
            vector,
            k: k as usize,
            ef: ef.max(k) as usize,
            filter: Filter::from_proto(filter)?,
            with_payload,
            with_vector,
        })
    }

    // --- writes -------------------------------------------------------------------

    /// Applies the points `range` of a validated upsert (already logged).
    pub(crate) fn apply_upsert(
        &mut self,
        batch: &UpsertBatch,
        range: std::ops::Range<usize>,
    ) -> Result<(), ShardError> {
        let dim = self.collection().dimension as usize;
        for (i, id) in batch
            .ids
            .iter()
            .enumerate()
            .take(range.end)
            .skip(range.start)
        {
            let vector = &batch.vectors[i * dim..(i + 1) * dim];
            let payload = batch.payloads[i].as_slice().into();
            self.put(
                id.as_str().into(),
                vector,
                payload,
                batch.parsed[i].as_ref(),
            )?;
        }
        Ok(())
    }

    /// Applies a logged write: a record replayed from the shard's log, or a committed
    /// Raft entry. Its points were validated before it was logged, so only payloads are
    /// parsed again. Returns how many points it wrote or deleted. Blank and membership
    /// entries (Raft's own) and checkpoint markers change nothing.
    pub(crate) fn apply(&mut self, lsn: u64, body: BodyView<'_>) -> Result<u64, ShardError> {
        match body {
            BodyView::Upsert(batch) => {
                for (id, vector, payload) in batch.points() {
                    match self.apply_point(id, vector, payload) {
                        // Logs written before the length rules (`check_length`) can hold
                        // a vector the index cannot take; its write failed when it was
                        // made, so it is left out now too.
                        Err(ShardError::Index {
                            source: source @ (HnswError::ZeroVector | HnswError::NonFinite { .. }),
                        }) => tracing::warn!(
                            lsn,
                            id,
                            error = %source,
                            "a logged point the index refuses is skipped"
                        ),
                        other => other?,
                    }
                }
                Ok(batch.len() as u64)
            }
            BodyView::Delete(batch) => self.apply_delete(batch.ids()),
            BodyView::Checkpoint { .. } | BodyView::Blank | BodyView::Membership(_) => Ok(0),
            // Deletes by filter are logged as the ids they matched, slice by slice
            // (`ShardHandle::delete_filter`); no log holds this record.
            BodyView::DeleteByFilter(_) => Err(ShardError::Replay {
                reason: format!("LSN {lsn}: a delete-by-filter record, which Vectron never logs"),
            }),
        }
    }

    /// Applies one logged point.
    fn apply_point(&mut self, id: &str, vector: &[f32], payload: &[u8]) -> Result<(), ShardError> {
        let parsed = if payload.is_empty() {
            None
        } else {
            Some(
                serde_json::from_slice(payload).map_err(|e| ShardError::Replay {
                    reason: format!("payload of {id:?} is not JSON: {e}"),
                })?,
            )
        };
        self.put(id.into(), vector, payload.into(), parsed.as_ref())
    }

    fn put(
        &mut self,
        id: Box<str>,
        vector: &[f32],
        payload: Box<[u8]>,
        parsed: Option<&Value>,
    ) -> Result<(), ShardError> {
        // The new vector goes in first: when the index refuses it, the point is as it was.
        let node = self
            .index
            .add(vector)
            .map_err(|source| ShardError::Index { source })?;
        if let Some(&old) = self.ids.get(&id) {
            self.remove_node(old)?;
        }
        self.attach(node, id, payload, parsed);
        Ok(())
    }

    /// Records point `id` at `node` (an index slot that holds its vector).
    fn attach(&mut self, node: NodeId, id: Box<str>, payload: Box<[u8]>, parsed: Option<&Value>) {
        let slot = node.0 as usize;
        if self.nodes.len() <= slot {
            self.nodes.resize(slot + 1, None);
        }
        if let Some(p) = parsed {
            self.payload_indexes.insert(node.0, p);
        }
        self.node_bytes += (id.len() + payload.len()) as u64;
        self.generation += 1;
        self.ids.insert(id.clone(), node);
        self.nodes[slot] = Some(Node { id, payload });
        self.live.insert(node.0);
    }

    /// Restores one point from a checkpoint whose index already holds `node`.
    pub(crate) fn restore_node(
        &mut self,
        node: NodeId,
        id: &str,
        payload: &[u8],
    ) -> Result<(), ShardError> {
        if !self.index.contains(node) {
            return Err(ShardError::Replay {
                reason: format!(
                    "checkpoint names point {id:?} at node {node}, which the index does not hold"
                ),
            });
        }
        let parsed: Option<Value> = if payload.is_empty() {
            None
        } else {
            Some(
                serde_json::from_slice(payload).map_err(|e| ShardError::Replay {
                    reason: format!("checkpointed payload of {id:?} is not JSON: {e}"),
                })?,
            )
        };
        self.attach(node, id.into(), payload.into(), parsed.as_ref());
        Ok(())
    }

    /// Checks that every node the index holds has a point, after a restore.
    pub(crate) fn check_restored(&self) -> Result<(), ShardError> {
        if self.live.len() as usize != self.index.len() {
            return Err(ShardError::Replay {
                reason: format!(
                    "checkpoint holds {} points but its index holds {}",
                    self.live.len(),
                    self.index.len()
                ),
            });
        }
        Ok(())
    }

    fn remove_node(&mut self, node: NodeId) -> Result<(), ShardError> {
        let slot = node.0 as usize;
        let Some(old) = self.nodes.get_mut(slot).and_then(Option::take) else {
            return Ok(());
        };
        if !old.payload.is_empty()
            && !self.payload_indexes.is_empty()
            && let Ok(parsed) = serde_json::from_slice::<Value>(&old.payload)
        {
            self.payload_indexes.remove(node.0, &parsed);
        }
        self.node_bytes -= (old.id.len() + old.payload.len()) as u64;
        self.generation += 1;
        self.ids.remove(&old.id);
        self.live.remove(node.0);
        self.index
            .delete(node)
            .map_err(|source| ShardError::Index { source })
    }

    /// The ids among `ids` that exist, for logging a delete.
    pub(crate) fn existing(&self, ids: Vec<String>) -> Vec<String> {
        let mut out: Vec<String> = ids
            .into_iter()
            .filter(|id| self.ids.contains_key(id.as_str()))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Moves whenever a point is stored or removed (see [`ShardState::plan`]).
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Scans the live points passing `plan` in node order from node `from` on, handing
    /// each to `found`, until `until` passes (checked every [`SCAN_CHECK_EVERY`] nodes)
    /// or `found` has taken `max` nodes. Returns the node to continue from, or `None`
    /// when the scan is complete. The plan must have been made at the current
    /// [`ShardState::generation`].
    pub(crate) fn scan(
        &self,
        plan: &Plan,
        from: u32,
        until: Instant,
        max: usize,
        mut found: impl FnMut(NodeId),
    ) -> Option<u32> {
        let candidates = match plan.exact() {
            Some(set) => set.range(from..),
            None => self.live.range(from..),
        };
        let mut taken = 0;
        for (i, n) in candidates.enumerate() {
            if taken == max || (i > 0 && i % SCAN_CHECK_EVERY == 0 && Instant::now() >= until) {
                return Some(n);
            }
            let node = NodeId(n);
            if self.live.contains(n) && (plan.exact().is_some() || self.passes(plan, node)) {
                found(node);
                taken += 1;
            }
        }
        None
    }

    /// Adopts the collection's payload indexes as declared now (`Collections.Update`):
    /// drops the ones no longer declared and adds the new ones, which filters use once
    /// [`ShardState::build_payload_indexes`] has put every live point in them. Returns
    /// whether there is such a build to do.
    pub(crate) fn set_payload_indexes(&mut self, declared: &[PayloadIndex]) -> bool {
        declared.clone_into(&mut self.spec.collection.payload_indexes);
        // Filter plans made with a dropped index must not outlive it.
        self.generation += 1;
        self.payload_indexes.set_declared(declared)
    }

    /// Inserts the live points from node `from` on into the payload indexes being
    /// built, until `until`; the node to go on from, or `None` once every live point is
    /// in and the indexes serve filters. Writes meanwhile keep the indexes current, so
    /// the build may be cut into slices with any writes between them.
    pub(crate) fn build_payload_indexes(&mut self, from: u32, until: Instant) -> Option<u32> {
        for (i, n) in self.live.range(from..).enumerate() {
            if i > 0 && i % SCAN_CHECK_EVERY == 0 && Instant::now() >= until {
                return Some(n);
            }
            let Some(node) = self.nodes.get(n as usize).and_then(Option::as_ref) else {
                continue;
            };
            if node.payload.is_empty() {
                continue;
            }
            if let Ok(parsed) = serde_json::from_slice::<Value>(&node.payload) {
                self.payload_indexes.insert_building(n, &parsed);
            }
        }
        self.payload_indexes.finish_building();
        // Plans made while the index was built scanned payloads; new ones may use it.
        self.generation += 1;
        None
    }

    /// The payload indexes that serve filters.
    pub(crate) fn ready_payload_indexes(&self) -> Vec<String> {
        self.payload_indexes.ready_fields()
    }

    /// The point ids of `nodes`.
    pub(crate) fn ids_of(&self, nodes: &[NodeId]) -> Vec<String> {
        nodes.iter().map(|&n| self.node(n).id.to_string()).collect()
    }

    /// Applies a logged delete; returns how many points existed.
    pub(crate) fn apply_delete<'a>(
        &mut self,
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<u64, ShardError> {
        let mut deleted = 0;
        for id in ids {
            if let Some(&node) = self.ids.get(id) {
                self.remove_node(node)?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }

    // --- background work ------------------------------------------------------------

    /// Links up to `max` pending points into the graph; returns how many.
    pub(crate) fn link_pending(&mut self, max: usize) -> usize {
        self.index.link_pending(max)
    }

    /// Points acknowledged but not yet linked into the graph.
    pub(crate) fn pending(&self) -> usize {
        self.index.pending_len()
    }

    /// Repairs the graph around deleted points in steps of `max` nodes when enough
    /// accumulated; returns whether work was done.
    pub(crate) fn reclaim_step(&mut self, max: usize) -> bool {
        if self.index.reclaim_in_progress() || self.index.needs_reclaim() {
            self.index.reclaim_step(max);
            true
        } else {
            false
        }
    }

    // --- reads --------------------------------------------------------------------

    fn node(&self, node: NodeId) -> &Node {
        self.nodes[node.0 as usize]
            .as_ref()
            .expect("live nodes have a point")
    }

    /// The filter planned against the payload indexes and the points as they are now;
    /// valid while [`ShardState::generation`] stays.
    pub(crate) fn plan(&self, filter: &Filter) -> Plan {
        let resolve = |id: &str| self.ids.get(id).map(|n| n.0);
        filter.plan(&self.payload_indexes, &self.live, &resolve)
    }

    fn parsed_payload(&self, node: NodeId) -> Option<Value> {
        let payload = &self.node(node).payload;
        if payload.is_empty() {
            None
        } else {
            serde_json::from_slice(payload).ok()
        }
    }

    fn passes(&self, plan: &Plan, node: NodeId) -> bool {
        let point = self.node(node);
        if plan.needs_payload() {
            plan.matches(node.0, &point.id, self.parsed_payload(node).as_ref())
        } else {
            plan.matches(node.0, &point.id, None)
        }
    }

    /// Approximate top-k (exact top-k is [`ShardState::exact_slice`], in slices).
    ///
    /// A filter that reads payloads is evaluated at most [`PAYLOAD_CHECKS_PER_SEARCH`]
    /// times inside the index's search: past that, or when the graph walk under the
    /// filter found fewer than k hits (it may stop short of points the filter passes),
    /// the search gives up and answers
    /// [`Searched::Prefilter`], and the caller finds the matching points in slices
    /// (letting the core's other work run) and searches again with them as
    /// `prefiltered`. A point of `prefiltered` that no longer passes the filter is left
    /// out of the hits.
    pub(crate) fn search(
        &self,
        args: &SearchArgs<'_>,
        prefiltered: Option<&[NodeId]>,
        scratch: &mut SearchScratch,
    ) -> Result<Searched, ShardError> {
        let plan = (!args.filter.is_empty()).then(|| self.plan(&args.filter));
        let hits: &[SearchHit] = match (&plan, prefiltered) {
            (None, _) => self.run_search(args, None, scratch)?,
            (Some(_), Some(nodes)) => {
                let ids = IdFilter::new(nodes.to_vec());
                self.run_search(args, Some(&ids), scratch)?
            }
            (Some(plan), None) => match plan.exact() {
                Some(set) => {
                    // An exact set: hand the index the ids, so a selective filter turns
                    // into an exact scan over them.
                    let ids = IdFilter::new(set.iter().map(NodeId).collect());
                    self.run_search(args, Some(&ids), scratch)?
                }
                None => {
                    let predicate = PlanPredicate {
                        shard: self,
                        plan,
                        ids: None,
                        checks_left: Cell::new(PAYLOAD_CHECKS_PER_SEARCH),
                    };
                    let hits = self.run_search(args, Some(&predicate), scratch)?;
                    // Past the payload budget, or short of k hits: a graph walk under a
                    // filter that passes few points can stop before it reaches them, so
                    // the matching points are found by scanning instead (a payload index
                    // on the field spares the scan).
                    let short = hits.len() < args.k && (hits.len() as u64) < self.len();
                    if predicate.checks_left.get() == 0 || short {
                        return Ok(Searched::Prefilter);
                    }
                    hits
                }
            },
        };
        // Points found through a prefiltered list may have changed since it was made.
        let kept: Vec<&SearchHit> = hits
            .iter()
            .filter(|h| {
                prefiltered.is_none()
                    || plan
                        .as_ref()
                        .is_none_or(|p| self.live.contains(h.id.0) && self.passes(p, h.id))
            })
            .collect();
        self.hits_out(kept.iter().map(|h| (h.id, h.score)), args)
            .map(Searched::Hits)
    }

    /// One slice of an exact search: brute force over `nodes` (live points that pass
    /// the search's filter), merged into `best`, which keeps the `k` best seen so far,
    /// best first (ties by node, as the index orders them).
    pub(crate) fn exact_slice(
        &self,
        args: &SearchArgs<'_>,
        nodes: &[NodeId],
        scratch: &mut SearchScratch,
        best: &mut Vec<ExactHit>,
    ) -> Result<(), ShardError> {
        if nodes.is_empty() {
            return Ok(());
        }
        let found = self
            .index
            .exact_search_among(args.vector, args.k, nodes, scratch)
            .map_err(index_error)?;
        best.extend(found.iter().map(|h| ExactHit {
            score: h.score,
            node: h.id,
            id: self.node(h.id).id.clone(),
        }));
        best.sort_unstable_by(|a, b| b.score.total_cmp(&a.score).then(a.node.cmp(&b.node)));
        best.truncate(args.k);
        Ok(())
    }

    /// The hits of an exact search, once every slice ran: a point deleted or replaced
    /// while the search let other work run is left out.
    pub(crate) fn exact_hits(
        &self,
        best: &[ExactHit],
        args: &SearchArgs<'_>,
    ) -> Result<Vec<HitOut>, ShardError> {
        let current = best.iter().filter(|h| {
            self.live.contains(h.node.0)
                && self.nodes[h.node.0 as usize]
                    .as_ref()
                    .is_some_and(|n| n.id == h.id)
        });
        self.hits_out(current.map(|h| (h.node, h.score)), args)
    }

    /// The answer for `hits` (node and score, best first), refused whole when it would
    /// pass the answer limit.
    fn hits_out(
        &self,
        hits: impl Iterator<Item = (NodeId, f32)> + Clone,
        args: &SearchArgs<'_>,
    ) -> Result<Vec<HitOut>, ShardError> {
        let bytes: usize = hits
            .clone()
            .map(|(node, _)| self.answer_bytes(node, args.with_vector, args.with_payload))
            .sum();
        if bytes > LIMITS.max_answer_bytes {
            return Err(RuleError::AnswerTooLarge {
                what: "search hits",
                unit: "hits (k)",
                max: LIMITS.max_answer_bytes,
            }
            .into());
        }
        Ok(hits
            .map(|(node, score)| {
                let point = self.node(node);
                HitOut {
                    id: point.id.to_string(),
                    score,
                    payload_bytes: u32::try_from(point.payload.len()).unwrap_or(u32::MAX),
                    vector: self.vector_out(node, args.with_vector),
                    payload: if args.with_payload {
                        point.payload.to_vec()
                    } else {
                        Vec::new()
                    },
                }
            })
            .collect())
    }

    fn run_search<'s>(
        &self,
        args: &SearchArgs<'_>,
        filter: Option<&dyn vectron_hnsw::Filter>,
        scratch: &'s mut SearchScratch,
    ) -> Result<&'s [SearchHit], ShardError> {
        self.index
            .search(args.vector, args.k, args.ef, filter, scratch)
            .map_err(index_error)
    }

    fn vector_out(&self, node: NodeId, with_vector: bool) -> Vec<f32> {
        if with_vector {
            self.index
                .vector(node)
                .map(<[f32]>::to_vec)
                .unwrap_or_default()
        } else {
            Vec::new()
        }
    }

    fn point_out(&self, node: NodeId, with_vector: bool, with_payload: bool) -> PointOut {
        let point = self.node(node);
        PointOut {
            id: point.id.to_string(),
            vector: self.vector_out(node, with_vector),
            payload: if with_payload {
                point.payload.to_vec()
            } else {
                Vec::new()
            },
        }
    }

    /// Bytes a point takes in an answer (see [`Limits::max_answer_bytes`]).
    fn answer_bytes(&self, node: NodeId, with_vector: bool, with_payload: bool) -> usize {
        let point = self.node(node);
        let mut bytes = point.id.len() + rules::ANSWER_OVERHEAD_BYTES;
        if with_vector {
            bytes += self.collection().dimension as usize * 4;
        }
        if with_payload {
            bytes += point.payload.len();
        }
        bytes
    }

    /// The points among `ids` that exist, in the order asked; refused before anything
    /// is copied when they would not fit in one answer.
    pub(crate) fn get(
        &self,
        ids: &[String],
        with_vector: bool,
        with_payload: bool,
    ) -> Result<Vec<PointOut>, ShardError> {
        let nodes: Vec<NodeId> = ids
            .iter()
            .filter_map(|id| self.ids.get(id.as_str()).copied())
            .collect();
        let bytes: usize = nodes
            .iter()
            .map(|&n| self.answer_bytes(n, with_vector, with_payload))
            .sum();
        if bytes > LIMITS.max_answer_bytes {
            return Err(RuleError::AnswerTooLarge {
                what: "points",
                unit: "ids",
                max: LIMITS.max_answer_bytes,
            }
            .into());
        }
        Ok(nodes
            .into_iter()
            .map(|n| self.point_out(n, with_vector, with_payload))
            .collect())
    }

    /// Continues a scroll page: adds to `page` the points from `start` on, in id order,
    /// that pass `plan` (made at the current generation; `None`: every point), until
    /// the page holds `limit` points, would grow past [`Limits::max_answer_bytes`]
    /// (`page_bytes` counts it), or `until` passes.
    pub(crate) fn scroll_step(
        &self,
        start: Bound<&str>,
        plan: Option<&Plan>,
        read: &ScrollRead,
        page: &mut Vec<PointOut>,
        page_bytes: &mut usize,
        until: Instant,
    ) -> ScrollStep {
        let points = self.ids.range::<str, _>((start, Bound::Unbounded));
        for (i, (id, &node)) in points.enumerate() {
            if i > 0 && i % SCAN_CHECK_EVERY == 0 && Instant::now() >= until {
                return ScrollStep::Paused(id.to_string());
            }
            if !plan.is_none_or(|p| self.passes(p, node)) {
                continue;
            }
            let bytes = self.answer_bytes(node, read.with_vector, read.with_payload);
            let full = page.len() == read.limit
                || (!page.is_empty() && *page_bytes + bytes > LIMITS.max_answer_bytes);
            if full {
                return ScrollStep::Done(Some(id.to_string()));
            }
            *page_bytes += bytes;
            page.push(self.point_out(node, read.with_vector, read.with_payload));
        }
        ScrollStep::Done(None)
    }

    /// Approximate heap bytes: index, ids, payloads, payload indexes.
    pub(crate) fn memory_bytes(&self) -> u64 {
        const PER_POINT: u64 = 64; // map entry, node slot, bitmap share
        self.index.memory_bytes() as u64
            + self.node_bytes
            + self.live.len() * PER_POINT
            + self.payload_indexes.memory_bytes()
    }

    /// Every point with its node, in node order, for a checkpoint.
    pub(crate) fn points(&self) -> impl Iterator<Item = (NodeId, &str, &[u8])> + Clone {
        self.points_from(0)
    }

    /// The points from node `from` on, in node order.
    pub(crate) fn points_from(
        &self,
        from: usize,
    ) -> impl Iterator<Item = (NodeId, &str, &[u8])> + Clone {
        self.nodes
            .iter()
            .enumerate()
            .skip(from)
            .filter_map(|(i, n)| n.as_ref().map(|n| (NodeId(i as u32), &*n.id, &*n.payload)))
    }
}

/// Payloads a search reads for its filter inside the index's search, at most (each is
/// parsed: a few microseconds). Past it the search is redone over the matching points
/// found in slices ([`ShardState::search`]).
pub(crate) const PAYLOAD_CHECKS_PER_SEARCH: usize = 10_000;

/// What a search found.
#[derive(Debug)]
pub(crate) enum Searched {
    /// The hits, best first.
    Hits(Vec<HitOut>),
    /// The filter needed more payload reads than one search may make: find the matching
    /// points in slices, then search again with them.
    Prefilter,
}

/// A filter plan as the index's predicate, reading at most `checks_left` payloads.
struct PlanPredicate<'a> {
    shard: &'a ShardState,
    plan: &'a Plan,
    ids: Option<&'a [NodeId]>,
    checks_left: Cell<usize>,
}

impl vectron_hnsw::Filter for PlanPredicate<'_> {
    fn matches(&self, id: NodeId) -> bool {
        if !self.shard.live.contains(id.0) {
            return false;
        }
        if self.plan.needs_payload() {
            let left = self.checks_left.get();
            if left == 0 {
                return false;
            }
            self.checks_left.set(left - 1);
        }
        self.shard.passes(self.plan, id)
    }

    fn estimated_matches(&self) -> Option<usize> {
        Some(self.plan.upper_bound(self.shard.live.len()) as usize)
    }

    fn matching_ids(&self) -> Option<&[NodeId]> {
        self.ids
    }
}

/// Parses a payload: empty means none; anything else must be a JSON object within the
/// size limit.
fn parse_payload(point: usize, id: &str, payload: &[u8]) -> Result<Option<Value>, RuleError> {
    if payload.is_empty() {
        return Ok(None);
    }
    rules::check_payload_size(LIMITS, point, id, payload.len())?;
    match serde_json::from_slice::<Value>(payload) {
        Ok(v @ Value::Object(_)) => {
            rules::check_payload_depth(rules::json_depth(&v)).map_err(|reason| {
                RuleError::PayloadDepth {
                    point,
                    id: id.to_owned(),
                    reason,
                }
            })?;
            Ok(Some(v))
        }
        Ok(_) => Err(RuleError::BadPayload {
            point,
            id: id.to_owned(),
            reason: "not a JSON object".into(),
        }),
        Err(e) => Err(RuleError::BadPayload {
            point,
            id: id.to_owned(),
            reason: e.to_string(),
        }),
    }
}
