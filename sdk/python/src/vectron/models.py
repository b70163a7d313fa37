"""Plain, typed values that the client takes and returns.

Results are frozen dataclasses; vectors are numpy ``float32`` arrays and payloads plain
``dict`` objects (JSON values). Enums are ``str`` enums, so ``Metric.COSINE == "cosine"``
and every method that takes one also takes its string value.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "Access",
    "CollectionGrant",
    "CollectionInfo",
    "CollectionState",
    "CoreStats",
    "CoreStatsResult",
    "CreatedKey",
    "EfTuning",
    "HnswConfig",
    "KeyInfo",
    "KeyRole",
    "LatencySummary",
    "Metric",
    "PayloadFieldKind",
    "PayloadIndex",
    "PayloadIndexStatus",
    "Plan",
    "Point",
    "Quantization",
    "ReadConsistency",
    "Record",
    "ReplicaInfo",
    "ReplicaRole",
    "ReplicaState",
    "ReplicaStats",
    "ReplicaStatus",
    "ScoredPoint",
    "ScrollPage",
    "SearchCacheSettings",
    "SearchEvent",
    "SearchResult",
    "ShardInfo",
    "ShardStats",
    "Token",
    "UpsertResult",
    "UserInfo",
]

#: A point id as the client takes it: a string, or an integer sent as its decimal string.
PointId: TypeAlias = str | int
#: A JSON object: what a payload is.
Payload: TypeAlias = dict[str, Any]
#: A vector as the client takes it.
VectorLike: TypeAlias = Sequence[float] | npt.NDArray[Any]


# --- enums -------------------------------------------------------------------------


class Metric(str, enum.Enum):
    """How similarity between two vectors is measured; higher scores are better."""

    #: Not a metric (a value this client does not know); refused at create.
    UNSPECIFIED = "unspecified"
    #: Cosine similarity in [-1, 1]; vectors are stored normalised to unit length.
    COSINE = "cosine"
    #: Negated squared Euclidean distance (0 for an exact match).
    L2 = "l2"
    #: Inner product of the vectors as given.
    DOT = "dot"


class Quantization(str, enum.Enum):
    """How the index holds vectors for graph traversal."""

    #: A value this client does not know.
    UNSPECIFIED = "unspecified"
    #: Full-precision float32 vectors only (the default).
    NONE = "none"
    #: One signed byte per dimension for traversal, rescored with float32 vectors.
    INT8 = "int8"


class PayloadFieldKind(str, enum.Enum):
    """The kind of a payload index."""

    #: A value this client does not know; refused at create.
    UNSPECIFIED = "unspecified"
    #: Strings (or arrays of strings), matched by keyword and any-of conditions.
    KEYWORD = "keyword"
    #: Numbers (or arrays of numbers), matched by range conditions.
    NUMERIC = "numeric"


class ReadConsistency(str, enum.Enum):
    """How fresh a read (get, count, scroll, search) must be."""

    #: The server's default (eventual).
    UNSPECIFIED = "unspecified"
    #: Any replica answers; every write acknowledged to this client before the read is
    #: visible when the collection has one replica per shard.
    EVENTUAL = "eventual"
    #: Each shard's leader confirms its leadership first: every acknowledged write is
    #: visible.
    LINEARIZABLE = "linearizable"


class CollectionState(str, enum.Enum):
    """Lifecycle of a collection."""

    UNSPECIFIED = "unspecified"
    #: Shards are being opened on their cores.
    CREATING = "creating"
    #: Every replica of every shard serves.
    READY = "ready"
    #: Some replica does not serve (its worker is down).
    DEGRADED = "degraded"
    #: The collection is being dropped.
    DROPPING = "dropping"


class ReplicaState(str, enum.Enum):
    """Lifecycle of one replica of a shard."""

    UNSPECIFIED = "unspecified"
    #: Assigned to a core that has not confirmed it serves the shard yet.
    OPENING = "opening"
    #: Serving reads and writes.
    ACTIVE = "active"
    #: Its worker is down.
    UNAVAILABLE = "unavailable"


class ReplicaRole(str, enum.Enum):
    """A replica's role in its shard's Raft group."""

    UNSPECIFIED = "unspecified"
    #: Takes the shard's writes (the only copy of a one-copy shard leads it).
    LEADER = "leader"
    #: Follows the leader.
    FOLLOWER = "follower"
    #: Knows of no leader (election under way, or cut off).
    NO_LEADER = "no_leader"


class KeyRole(str, enum.Enum):
    """What a key, token or user may do everywhere."""

    #: A value this client does not know; refused at create.
    UNSPECIFIED = "unspecified"
    #: Everything: collections, points, statistics, keys, plans, users.
    ADMIN = "admin"
    #: Read every collection and the statistics; write only where a grant allows.
    READ = "read"
    #: Only the collections its grants name.
    SCOPED = "scoped"


class Access(str, enum.Enum):
    """What a grant allows on one collection."""

    #: A value this client does not know; refused at create.
    UNSPECIFIED = "unspecified"
    #: Describe the collection and read its points.
    READ = "read"
    #: Also upsert and delete its points.
    READ_WRITE = "read_write"


# --- points --------------------------------------------------------------------------


def _vectors_equal(a: npt.NDArray[np.float32] | None, b: npt.NDArray[np.float32] | None) -> bool:
    """Whether two optional vectors are both absent or hold the same values."""
    if a is None or b is None:
        return a is None and b is None
    return bool(np.array_equal(a, b))


@dataclass(frozen=True, eq=False)
class Point:
    """A point to write: an id, a vector and an optional payload.

    Used by :meth:`vectron.Client.upsert_points` and :meth:`vectron.Client.upsert_stream`;
    :meth:`vectron.Client.upsert` takes the same data as arrays.
    """

    #: Unique within the collection: 1 to 128 bytes of UTF-8; integers travel as their
    #: decimal string.
    id: PointId
    #: Exactly the collection's dimension, finite values only.
    vector: VectorLike
    #: A JSON object (at most 64 KiB encoded), or ``None`` for no payload.
    payload: Mapping[str, Any] | None = None


@dataclass(frozen=True, eq=False)
class Record:
    """A stored point, as :meth:`~vectron.Client.get` and :meth:`~vectron.Client.scroll`
    return it."""

    #: The point's id.
    id: str
    #: Its payload when asked for and present, else ``None``.
    payload: Payload | None
    #: Its stored vector when asked for (unit length in a cosine collection), else ``None``.
    vector: npt.NDArray[np.float32] | None

    def __eq__(self, other: object) -> bool:
        """Equal ids, payloads and vectors (compared by value)."""
        if not isinstance(other, Record):
            return NotImplemented
        return (
            self.id == other.id
            and self.payload == other.payload
            and _vectors_equal(self.vector, other.vector)
        )


@dataclass(frozen=True, eq=False)
class ScoredPoint:
    """One search hit."""

    #: The point's id.
    id: str
    #: Similarity to the query: higher is better, for every metric.
    score: float
    #: Its payload when ``with_payload`` was set and it has one, else ``None``.
    payload: Payload | None
    #: Its stored vector when ``with_vector`` was set, else ``None``.
    vector: npt.NDArray[np.float32] | None

    def __eq__(self, other: object) -> bool:
        """Equal ids, scores, payloads and vectors (compared by value)."""
        if not isinstance(other, ScoredPoint):
            return NotImplemented
        return (
            self.id == other.id
            and self.score == other.score
            and self.payload == other.payload
            and _vectors_equal(self.vector, other.vector)
        )


@dataclass(frozen=True)
class SearchResult(Sequence[ScoredPoint]):
    """The hits of one search, best first; a sequence of :class:`ScoredPoint`."""

    #: Best first, at most ``k``.
    hits: tuple[ScoredPoint, ...]
    #: Shards that did not answer (only with ``allow_partial_results``).
    missing_shards: tuple[int, ...] = ()
    #: Whether the hits were reranked by text.
    reranked: bool = False

    @overload
    def __getitem__(self, index: int) -> ScoredPoint: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ScoredPoint]: ...

    def __getitem__(self, index: int | slice) -> ScoredPoint | Sequence[ScoredPoint]:
        """The hit (or hits) at `index`."""
        return self.hits[index]

    def __len__(self) -> int:
        """Number of hits."""
        return len(self.hits)

    def __iter__(self) -> Iterator[ScoredPoint]:
        """The hits, best first."""
        return iter(self.hits)

    @property
    def ids(self) -> list[str]:
        """The hits' ids, best first."""
        return [hit.id for hit in self.hits]


@dataclass(frozen=True)
class SearchEvent:
    """One event of a streamed search (:meth:`~vectron.Client.search_stream`).

    Every event holds the best hits among the shards that have answered so far; the last
    one (``done``) holds the search's answer, equal to what :meth:`~vectron.Client.search`
    answers for the same arguments. When the answer could be large (many hits with
    payloads or vectors: over 4 MiB at worst), the hits of the events before the last
    carry ids and scores only.
    """

    #: The best hits so far, best first, at most ``k``; in the last event, the answer.
    result: SearchResult
    #: Shards whose hits are in `result`.
    shards_answered: int
    #: Shards the collection has.
    shards_total: int
    #: Whether this is the last event: `result` is the answer and the stream ends.
    done: bool

    @property
    def hits(self) -> tuple[ScoredPoint, ...]:
        """The hits of `result`, best first."""
        return self.result.hits

    @property
    def missing_shards(self) -> tuple[int, ...]:
        """The shards given up on so far (only with ``allow_partial_results``)."""
        return self.result.missing_shards


@dataclass(frozen=True)
class ScrollPage:
    """One page of :meth:`~vectron.Client.scroll`."""

    #: At most ``limit`` points in ascending byte order of their ids.
    points: tuple[Record, ...]
    #: The id that starts the next page (pass it as ``offset``); ``None`` after the last.
    next_offset: str | None


@dataclass(frozen=True)
class UpsertResult:
    """What an upsert wrote."""

    #: Points acknowledged (a stream that writes one id twice counts it twice).
    count: int
    #: Whether every acknowledged point is durable (false only with ``wait=False``).
    durable: bool
    #: The ids sent, in input order: the ones given, as strings, or the ones the client
    #: generated. Empty for :meth:`~vectron.Client.upsert_stream`, which does not keep
    #: them.
    ids: tuple[str, ...] = field(default=(), repr=False)


# --- collections ---------------------------------------------------------------------


@dataclass(frozen=True)
class HnswConfig:
    """Parameters of the HNSW graph; ``None`` takes the server's default."""

    #: Links per node on the upper layers (default 16, 4 to 128).
    m: int | None = None
    #: Candidate list size while building (default 200, 8 to 4096, at least ``m``).
    ef_construction: int | None = None
    #: Default candidate list size of searches that give no ``ef`` (default 64).
    ef: int | None = None


@dataclass(frozen=True)
class PayloadIndex:
    """A payload field to index so that filters on it do not scan every payload."""

    #: Payload key; a dot descends into nested objects (``author.name``).
    field: str
    #: What the index holds.
    kind: PayloadFieldKind


@dataclass(frozen=True)
class PayloadIndexStatus:
    """A declared payload index, as the collection's replicas serve it
    (:attr:`CollectionInfo.payload_index_status`)."""

    #: The indexed key.
    field: str
    #: Whether every replica of every shard serves filters from it. An index added by
    #: :meth:`~vectron.Client.update_collection` is built in the background by each
    #: replica; until it is ready, filters on its key read payloads where it is not built
    #: (the same answers, slower).
    ready: bool
    #: Replicas that answered and serve it.
    replicas_ready: int
    #: Replicas of the collection.
    replicas_total: int


@dataclass(frozen=True)
class SearchCacheSettings:
    """How gateways cache a collection's search answers; only eventual searches are ever
    cached. Given to :meth:`~vectron.Client.create_collection` and
    :meth:`~vectron.Client.update_collection`, where a field left ``None`` keeps the
    collection's value (at creation: the default); read back resolved in
    :attr:`CollectionInfo.search_cache`.
    """

    #: Whether gateways cache the answers of the collection's eventual searches and run
    #: identical ones in flight once (default ``True``). ``False`` computes every search,
    #: for a collection whose writes must show through other gateways at once.
    enabled: bool | None = None
    #: How long a cached answer may be served, in milliseconds: 1 to 3,600,000 (one
    #: hour); 0 takes the gateway's TTL (5 s by default), as does the default.
    ttl_ms: int | None = None


@dataclass(frozen=True)
class ReplicaStatus:
    """One replica as its core reported it during ``describe_collection``."""

    role: ReplicaRole
    #: Replica id of the leader it knows of; 0 when none (and for one-copy shards).
    leader_id: int
    #: Raft term (0 for a one-copy shard).
    term: int
    #: Sequence number of the last write applied on it.
    applied_lsn: int
    #: Writes the leader applied that this replica has not; ``None`` when unknown.
    lag: int | None
    #: Live points it holds.
    points: int
    #: Of those, points already in its HNSW graph.
    indexed_points: int


@dataclass(frozen=True)
class ReplicaInfo:
    """One copy of a shard on one worker core."""

    worker_id: str
    #: Index of the core on its worker.
    core: int
    #: gRPC address (``host:port``) of that core.
    address: str
    #: Placement epoch.
    epoch: int
    state: ReplicaState
    #: Id in the shard's Raft group; 0 for a one-copy shard.
    replica_id: int
    #: What its core said during ``describe_collection``; ``None`` elsewhere or when it
    #: did not answer in time.
    status: ReplicaStatus | None


@dataclass(frozen=True)
class ShardInfo:
    """One shard: the points whose id hashes into ``[hash_range_start, hash_range_end]``."""

    shard_id: int
    hash_range_start: int
    hash_range_end: int
    replicas: tuple[ReplicaInfo, ...]
    #: Points in the shard (as of the call in ``describe_collection``).
    point_count: int


@dataclass(frozen=True)
class EfTuning:
    """How a collection's default ``ef`` was chosen: recall measured on its own points
    against exact search (as ``vectron tune --apply`` stores it).

    Read back in :attr:`CollectionInfo.tuning`; given to
    :meth:`~vectron.Client.update_collection` to keep the measurement with a new ``ef``.
    """

    #: The recall@k asked for, in (0, 1].
    target_recall: float
    #: The k of recall@k (1 to 10000).
    k: int
    #: Mean recall@k at the chosen ``ef`` over the queries measured.
    measured_recall: float
    #: Lower end of the 95% bootstrap interval of that mean.
    recall_lower_bound: float
    #: Queries measured (at least 1).
    queries: int
    #: When it was measured, in milliseconds since the Unix epoch.
    tuned_at_unix_ms: int
    #: The filter tuned for, as its JSON; empty when tuned without one.
    filter_json: str = ""


@dataclass(frozen=True)
class CollectionInfo:
    """A collection as the cluster sees it, every default resolved."""

    name: str
    #: Number of float32 values in every vector.
    dimension: int
    metric: Metric
    state: CollectionState
    #: Points in the collection (as of the call in ``describe_collection``; lags writes
    #: by up to one heartbeat in ``list_collections``).
    point_count: int
    shard_count: int
    replication_factor: int
    hnsw: HnswConfig
    quantization: Quantization
    payload_indexes: tuple[PayloadIndex, ...]
    #: The shards, ordered by id.
    shards: tuple[ShardInfo, ...]
    #: Who created it (``key <id>``, ``admin key``, ...); empty with authentication off.
    owner: str
    #: How the default ``ef`` (``hnsw.ef``) was tuned; ``None`` when it was set by hand
    #: or left at its default.
    tuning: EfTuning | None = None
    #: How gateways cache its search answers, resolved by the server (``enabled``
    #: ``True`` or ``False``; ``ttl_ms`` 0 for the gateway's TTL). Fields are ``None``
    #: only from a server that predates the setting.
    search_cache: SearchCacheSettings = field(default_factory=SearchCacheSettings)
    #: Each index of `payload_indexes` as the replicas serve it (whether it is built
    #: everywhere yet), from ``describe_collection`` and ``update_collection``; empty from
    #: ``list_collections`` and ``create_collection``.
    payload_index_status: tuple[PayloadIndexStatus, ...] = ()


# --- statistics ----------------------------------------------------------------------


@dataclass(frozen=True)
class LatencySummary:
    """Latency percentiles of one operation over a core's lifetime, in microseconds."""

    count: int
    mean_us: float
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    max_us: float


@dataclass(frozen=True)
class ReplicaStats:
    """A replica of a replicated shard, as it sees its group."""

    replica_id: int
    leader: bool
    leader_id: int
    term: int
    applied_lsn: int
    voters: tuple[int, ...]


@dataclass(frozen=True)
class ShardStats:
    """One shard replica held by a core."""

    collection: str
    shard_id: int
    epoch: int
    points: int
    indexed_points: int
    deleted_points: int
    memory_bytes: int
    disk_bytes: int
    wal_bytes: int
    last_lsn: int
    checkpoint_lsn: int
    #: Its Raft side, for a replica of a replicated shard.
    replica: ReplicaStats | None
    #: The payload indexes it serves filters from: declared and built. A declared index
    #: not listed is being built.
    payload_indexes_ready: tuple[str, ...] = ()


@dataclass(frozen=True)
class CoreStats:
    """Statistics of one worker core (see ``proto/vectron/v1/stats.proto``)."""

    worker_id: str
    core: int
    #: The CPU its thread is pinned to; ``None`` when not pinned.
    cpu: int | None
    address: str
    driver: str
    uptime_s: float
    searches_total: int
    upserted_points_total: int
    search_qps: float
    upsert_points_per_s: float
    search_latency: LatencySummary
    upsert_latency: LatencySummary
    wal_sync_latency: LatencySummary
    in_flight: int
    queue_depth: int
    memory_bytes: int
    shards: tuple[ShardStats, ...]
    cpu_s: float
    calls_refused_total: int
    buffered_bytes: int
    writes_refused_backlog_total: int
    scheduling_delay: LatencySummary


@dataclass(frozen=True)
class CoreStatsResult:
    """Statistics of the cores asked for."""

    #: One entry per core, ordered by worker then core.
    cores: tuple[CoreStats, ...]
    #: Workers that did not answer in time.
    unreachable_workers: tuple[str, ...]


# --- keys, plans, users --------------------------------------------------------------


@dataclass(frozen=True)
class CollectionGrant:
    """Access to one collection beyond a key's (or user's) role."""

    collection: str
    access: Access


@dataclass(frozen=True)
class KeyInfo:
    """An API key, without its secret."""

    #: The 12 characters after ``vk_``.
    id: str
    role: KeyRole
    grants: tuple[CollectionGrant, ...]
    description: str
    created_at_unix_ms: int
    #: The plan that limits it; empty for none.
    plan: str


@dataclass(frozen=True)
class CreatedKey:
    """A new key. ``secret`` is the whole key to present; it is shown this once."""

    key: KeyInfo
    #: ``vk_<id>_<secret>``, for ``Client(api_key=...)``. Left out of ``repr``.
    secret: str = field(repr=False)


@dataclass(frozen=True)
class Token:
    """A token (a JWT) from ``create_token`` or ``login``, presented like a key."""

    #: For ``Client(api_key=...)``. Left out of ``repr``.
    token: str = field(repr=False)
    #: Unix time (seconds) after which it is refused.
    expires_at_unix_s: int = 0


@dataclass(frozen=True)
class Plan:
    """A plan: a rate each caller on it gets, and optional ownership quotas."""

    #: 1 to 64 characters: letters, digits, ``_``, ``-`` and ``.``.
    name: str
    #: Calls a second each caller may make, sustained.
    requests_per_second: int
    #: Calls a caller may make at once after a quiet spell.
    burst: int
    #: Most collections a caller on it may own; ``None``: no bound for admins and no
    #: creating for anyone else.
    max_collections: int | None = None
    #: Most points its callers' collections may hold together; ``None``: no bound.
    max_points: int | None = None


@dataclass(frozen=True)
class UserInfo:
    """A user, without their password."""

    name: str
    role: KeyRole
    grants: tuple[CollectionGrant, ...]
    created_at_unix_ms: int
    #: The plan that limits them; empty for none.
    plan: str
