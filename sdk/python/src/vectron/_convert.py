"""Conversions between the client's values and the protobuf messages of the API.

Payloads (JSON objects) travel as ``google.protobuf.Struct``; enums by name; results come
back as the frozen dataclasses of :mod:`vectron.models`.
"""

from __future__ import annotations

import enum
import math
import numbers
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from google.protobuf import descriptor as _descriptor
from google.protobuf import struct_pb2
from google.protobuf.internal.containers import RepeatedScalarFieldContainer

from vectron._proto.vectron.v1 import (
    collections_pb2,
    keys_pb2,
    plans_pb2,
    points_pb2,
    search_pb2,
    stats_pb2,
    users_pb2,
)
from vectron.errors import InvalidArgument
from vectron.models import (
    Access,
    CollectionGrant,
    CollectionInfo,
    CollectionState,
    CoreStats,
    CoreStatsResult,
    EfTuning,
    HnswConfig,
    KeyInfo,
    KeyRole,
    LatencySummary,
    Metric,
    Payload,
    PayloadFieldKind,
    PayloadIndex,
    PayloadIndexStatus,
    Plan,
    Quantization,
    ReadConsistency,
    Record,
    ReplicaInfo,
    ReplicaRole,
    ReplicaState,
    ReplicaStats,
    ReplicaStatus,
    ScoredPoint,
    SearchCacheSettings,
    SearchEvent,
    SearchResult,
    ShardInfo,
    ShardStats,
    UserInfo,
)

E = TypeVar("E", bound=enum.Enum)

#: Each client enum, with the protobuf enum it stands for and the prefix of its values.
_ENUMS: dict[type[enum.Enum], tuple[_descriptor.EnumDescriptor, str]] = {
    Metric: (collections_pb2.DESCRIPTOR.enum_types_by_name["Metric"], "METRIC"),
    Quantization: (collections_pb2.DESCRIPTOR.enum_types_by_name["Quantization"], "QUANTIZATION"),
    PayloadFieldKind: (
        collections_pb2.DESCRIPTOR.enum_types_by_name["PayloadFieldKind"],
        "PAYLOAD_FIELD_KIND",
    ),
    CollectionState: (
        collections_pb2.DESCRIPTOR.enum_types_by_name["CollectionState"],
        "COLLECTION_STATE",
    ),
    ReplicaState: (collections_pb2.DESCRIPTOR.enum_types_by_name["ReplicaState"], "REPLICA_STATE"),
    ReplicaRole: (collections_pb2.DESCRIPTOR.enum_types_by_name["ReplicaRole"], "REPLICA_ROLE"),
    ReadConsistency: (
        search_pb2.DESCRIPTOR.enum_types_by_name["ReadConsistency"],
        "READ_CONSISTENCY",
    ),
    KeyRole: (keys_pb2.DESCRIPTOR.enum_types_by_name["KeyRole"], "KEY_ROLE"),
    Access: (keys_pb2.DESCRIPTOR.enum_types_by_name["Access"], "ACCESS"),
}


def _check_enum_tables() -> None:
    """Every member of every client enum names a value of its protobuf enum."""
    for cls, (descriptor, prefix) in _ENUMS.items():
        for member in cls:
            name = f"{prefix}_{member.name}"
            if name not in descriptor.values_by_name:
                raise ImportError(
                    f"{cls.__name__}.{member.name}: no {name} in {descriptor.full_name}"
                )


_check_enum_tables()


def enum_arg(cls: type[E], value: E | str, what: str) -> E:
    """`value` as a member of `cls`; a string is taken case-insensitively by value."""
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        for member in cls:
            if member.value == value.lower():
                return member
    allowed = ", ".join(repr(m.value) for m in cls if m.name != "UNSPECIFIED")
    raise InvalidArgument(f"{what} must be one of {allowed}; got {value!r}")


def enum_name(member: enum.Enum) -> str:
    """The protobuf name of an enum member (``METRIC_COSINE``), for message constructors."""
    _, prefix = _ENUMS[type(member)]
    return f"{prefix}_{member.name}"


def enum_from_proto(cls: type[E], number: int) -> E:
    """The member of `cls` for a protobuf enum number; ``UNSPECIFIED`` for one unknown."""
    descriptor, prefix = _ENUMS[cls]
    value = descriptor.values_by_number.get(number)
    if value is not None:
        short = value.name[len(prefix) + 1 :]
        member = cls.__members__.get(short)
        if member is not None:
            return member
    return cls.__members__["UNSPECIFIED"]


# --- payloads ------------------------------------------------------------------------


def payload_to_struct(payload: Mapping[str, Any], where: str) -> struct_pb2.Struct:
    """A JSON object as a ``Struct``. `where` names the point in error messages.

    Takes dicts (string keys), lists and tuples, strings, booleans, ``None`` and finite
    numbers (numpy scalars and arrays included); refuses anything else with
    :class:`~vectron.InvalidArgument` naming the key path.
    """
    if not isinstance(payload, Mapping):
        raise InvalidArgument(
            f"{where}: a payload is a JSON object (a dict); got {type(payload).__name__}"
        )
    message = struct_pb2.Struct()
    _fill_struct(message, payload, where, "")
    return message


def _fill_struct(
    target: struct_pb2.Struct, mapping: Mapping[Any, Any], where: str, path: str
) -> None:
    """Copies `mapping` into `target`."""
    for key, value in mapping.items():
        if not isinstance(key, str):
            raise InvalidArgument(f"{where}: payload key {key!r} at {path or '/'} is not a string")
        _fill_value(target.fields[key], value, where, f"{path}.{key}" if path else key)


def _fill_value(target: struct_pb2.Value, value: object, where: str, path: str) -> None:
    """Sets `target` to the JSON value `value`."""
    if value is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, (bool, np.bool_)):
        target.bool_value = bool(value)
    elif isinstance(value, numbers.Real):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):
            raise InvalidArgument(
                f"{where}: payload value at {path} is not a finite number: {value!r}"
            )
        target.number_value = number
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, Mapping):
        target.struct_value.SetInParent()
        _fill_struct(target.struct_value, value, where, path)
    elif isinstance(value, (list, tuple, np.ndarray)):
        target.list_value.SetInParent()
        items = value.tolist() if isinstance(value, np.ndarray) else value
        for index, item in enumerate(items):
            _fill_value(target.list_value.values.add(), item, where, f"{path}[{index}]")
    else:
        raise InvalidArgument(
            f"{where}: payload value at {path} is a {type(value).__name__}, not a JSON value"
        )


_EXACT_INT = 2.0**53


def struct_to_payload(message: struct_pb2.Struct) -> Payload:
    """A ``Struct`` as a dict. Integral numbers within 2**53 come back as ``int``, so
    ``{"year": 1969}`` round-trips unchanged."""
    return {key: _value_to_json(value) for key, value in message.fields.items()}


def _value_to_json(value: struct_pb2.Value) -> Any:
    """The JSON value held by a ``Value``."""
    kind = value.WhichOneof("kind")
    if kind == "bool_value":
        return value.bool_value
    if kind == "number_value":
        number = value.number_value
        if number.is_integer() and abs(number) <= _EXACT_INT:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "struct_value":
        return struct_to_payload(value.struct_value)
    if kind == "list_value":
        return [_value_to_json(item) for item in value.list_value.values]
    return None


# --- results -------------------------------------------------------------------------


def _vector(values: RepeatedScalarFieldContainer[float]) -> npt.NDArray[np.float32] | None:
    """A repeated float field as an array; ``None`` when empty (not asked for)."""
    if len(values) == 0:
        return None
    return np.array(values, dtype=np.float32)


def record_from_proto(point: points_pb2.Point) -> Record:
    """A stored point read back."""
    return Record(
        id=point.id,
        payload=struct_to_payload(point.payload) if point.HasField("payload") else None,
        vector=_vector(point.vector),
    )


def search_result_from_proto(response: search_pb2.SearchResponse) -> SearchResult:
    """The hits of one search."""
    return SearchResult(
        hits=tuple(
            ScoredPoint(
                id=hit.id,
                score=hit.score,
                payload=struct_to_payload(hit.payload) if hit.HasField("payload") else None,
                vector=_vector(hit.vector),
            )
            for hit in response.hits
        ),
        missing_shards=tuple(response.missing_shards),
        reranked=response.reranked,
    )


def search_event_from_proto(event: search_pb2.SearchStreamEvent) -> SearchEvent:
    """One event of a streamed search."""
    return SearchEvent(
        result=search_result_from_proto(event.result),
        shards_answered=event.shards_answered,
        shards_total=event.shards_total,
        done=event.done,
    )


def _replica_from_proto(replica: collections_pb2.ReplicaInfo) -> ReplicaInfo:
    """One replica of a shard."""
    status: ReplicaStatus | None = None
    if replica.HasField("status"):
        s = replica.status
        status = ReplicaStatus(
            role=enum_from_proto(ReplicaRole, s.role),
            leader_id=s.leader_id,
            term=s.term,
            applied_lsn=s.applied_lsn,
            lag=s.lag if s.HasField("lag") else None,
            points=s.points,
            indexed_points=s.indexed_points,
        )
    return ReplicaInfo(
        worker_id=replica.worker_id,
        core=replica.core,
        address=replica.address,
        epoch=replica.epoch,
        state=enum_from_proto(ReplicaState, replica.state),
        replica_id=replica.replica_id,
        status=status,
    )


def tuning_from_proto(tuning: collections_pb2.EfTuning) -> EfTuning:
    """How a default ``ef`` was measured."""
    return EfTuning(
        target_recall=tuning.target_recall,
        k=tuning.k,
        measured_recall=tuning.measured_recall,
        recall_lower_bound=tuning.recall_lower_bound,
        queries=tuning.queries,
        tuned_at_unix_ms=tuning.tuned_at_unix_ms,
        filter_json=tuning.filter_json,
    )


def tuning_to_proto(tuning: EfTuning) -> collections_pb2.EfTuning:
    """A measurement to store with a default ``ef``, type-checked (the server checks the
    values: recalls from 0 to 1, ``k`` and ``queries`` at least 1)."""
    if not isinstance(tuning, EfTuning):
        raise InvalidArgument(f"tuning must be a vectron.EfTuning or None; got {tuning!r}")
    try:
        return collections_pb2.EfTuning(
            target_recall=tuning.target_recall,
            k=tuning.k,
            measured_recall=tuning.measured_recall,
            recall_lower_bound=tuning.recall_lower_bound,
            queries=tuning.queries,
            tuned_at_unix_ms=tuning.tuned_at_unix_ms,
            filter_json=tuning.filter_json,
        )
    except (TypeError, ValueError) as error:
        raise InvalidArgument(f"tuning holds a value out of its field's range: {error}") from None


#: Longest cached-answer TTL the server allows, in milliseconds (one hour).
MAX_SEARCH_CACHE_TTL_MS = 3_600_000
#: Largest value of a ``uint32`` field.
_MAX_U32 = 2**32 - 1


def search_cache_to_proto(settings: SearchCacheSettings) -> collections_pb2.SearchCacheSettings:
    """Search cache settings to send, checked: a :class:`SearchCacheSettings` whose
    ``enabled`` is a bool and ``ttl_ms`` a non-negative integer, each or ``None`` (left
    unset). The server enforces the TTL's upper bound (one hour)."""
    if not isinstance(settings, SearchCacheSettings):
        raise InvalidArgument(
            f"search_cache must be a vectron.SearchCacheSettings or None; got {settings!r}"
        )
    enabled, ttl_ms = settings.enabled, settings.ttl_ms
    if enabled is not None and not isinstance(enabled, bool):
        raise InvalidArgument(f"search_cache.enabled must be True, False or None; got {enabled!r}")
    if ttl_ms is not None and (
        isinstance(ttl_ms, bool) or not isinstance(ttl_ms, int) or not 0 <= ttl_ms <= _MAX_U32
    ):
        raise InvalidArgument(
            f"search_cache.ttl_ms must be a non-negative integer (milliseconds, at most "
            f"{MAX_SEARCH_CACHE_TTL_MS}) or None; got {ttl_ms!r}"
        )
    return collections_pb2.SearchCacheSettings(enabled=enabled, ttl_ms=ttl_ms)


def search_cache_from_proto(settings: collections_pb2.SearchCacheSettings) -> SearchCacheSettings:
    """A collection's search cache settings; a field the server left unset is ``None``."""
    return SearchCacheSettings(
        enabled=settings.enabled if settings.HasField("enabled") else None,
        ttl_ms=settings.ttl_ms if settings.HasField("ttl_ms") else None,
    )


def collection_from_proto(info: collections_pb2.CollectionInfo) -> CollectionInfo:
    """A collection as the server describes it."""
    spec = info.spec
    hnsw = spec.hnsw
    quantization = enum_from_proto(Quantization, spec.quantization)
    if quantization is Quantization.UNSPECIFIED:
        quantization = Quantization.NONE  # the proto's default: no quantization
    return CollectionInfo(
        name=spec.name,
        dimension=spec.dimension,
        metric=enum_from_proto(Metric, spec.metric),
        state=enum_from_proto(CollectionState, info.state),
        point_count=info.point_count,
        shard_count=spec.shard_count if spec.HasField("shard_count") else len(info.shards),
        replication_factor=spec.replication_factor if spec.HasField("replication_factor") else 1,
        hnsw=HnswConfig(
            m=hnsw.m if hnsw.HasField("m") else None,
            ef_construction=hnsw.ef_construction if hnsw.HasField("ef_construction") else None,
            ef=hnsw.ef if hnsw.HasField("ef") else None,
        ),
        quantization=quantization,
        payload_indexes=tuple(
            PayloadIndex(field=index.field, kind=enum_from_proto(PayloadFieldKind, index.kind))
            for index in spec.payload_indexes
        ),
        shards=tuple(
            ShardInfo(
                shard_id=shard.shard_id,
                hash_range_start=shard.hash_range_start,
                hash_range_end=shard.hash_range_end,
                replicas=tuple(_replica_from_proto(r) for r in shard.replicas),
                point_count=shard.point_count,
            )
            for shard in info.shards
        ),
        owner=info.owner,
        tuning=tuning_from_proto(info.tuning) if info.HasField("tuning") else None,
        search_cache=search_cache_from_proto(spec.search_cache),
        payload_index_status=tuple(
            PayloadIndexStatus(
                field=status.field,
                ready=status.ready,
                replicas_ready=status.replicas_ready,
                replicas_total=status.replicas_total,
            )
            for status in info.payload_index_status
        ),
    )


def _latency(summary: stats_pb2.LatencySummary) -> LatencySummary:
    """Latency percentiles."""
    return LatencySummary(
        count=summary.count,
        mean_us=summary.mean_us,
        p50_us=summary.p50_us,
        p90_us=summary.p90_us,
        p99_us=summary.p99_us,
        p999_us=summary.p999_us,
        max_us=summary.max_us,
    )


def _shard_stats(shard: stats_pb2.ShardStats) -> ShardStats:
    """One shard replica held by a core."""
    replica: ReplicaStats | None = None
    if shard.HasField("replica"):
        r = shard.replica
        replica = ReplicaStats(
            replica_id=r.replica_id,
            leader=r.leader,
            leader_id=r.leader_id,
            term=r.term,
            applied_lsn=r.applied_lsn,
            voters=tuple(r.voters),
        )
    return ShardStats(
        collection=shard.collection,
        shard_id=shard.shard_id,
        epoch=shard.epoch,
        points=shard.points,
        indexed_points=shard.indexed_points,
        deleted_points=shard.deleted_points,
        memory_bytes=shard.memory_bytes,
        disk_bytes=shard.disk_bytes,
        wal_bytes=shard.wal_bytes,
        last_lsn=shard.last_lsn,
        checkpoint_lsn=shard.checkpoint_lsn,
        replica=replica,
        payload_indexes_ready=tuple(shard.payload_indexes_ready),
    )


def core_stats_from_proto(response: stats_pb2.CoreStatsResponse) -> CoreStatsResult:
    """Statistics of cores."""
    return CoreStatsResult(
        cores=tuple(
            CoreStats(
                worker_id=c.worker_id,
                core=c.core,
                cpu=c.cpu if c.HasField("cpu") else None,
                address=c.address,
                driver=c.driver,
                uptime_s=c.uptime_s,
                searches_total=c.searches_total,
                upserted_points_total=c.upserted_points_total,
                search_qps=c.search_qps,
                upsert_points_per_s=c.upsert_points_per_s,
                search_latency=_latency(c.search_latency),
                upsert_latency=_latency(c.upsert_latency),
                wal_sync_latency=_latency(c.wal_sync_latency),
                in_flight=c.in_flight,
                queue_depth=c.queue_depth,
                memory_bytes=c.memory_bytes,
                shards=tuple(_shard_stats(s) for s in c.shards),
                cpu_s=c.cpu_s,
                calls_refused_total=c.calls_refused_total,
                buffered_bytes=c.buffered_bytes,
                writes_refused_backlog_total=c.writes_refused_backlog_total,
                scheduling_delay=_latency(c.scheduling_delay),
            )
            for c in response.cores
        ),
        unreachable_workers=tuple(response.unreachable_workers),
    )


def grants_to_proto(
    grants: Mapping[str, Access | str] | None,
) -> list[keys_pb2.CollectionGrant]:
    """Grants given as ``{collection: access}``."""
    if not grants:
        return []
    return [
        keys_pb2.CollectionGrant(
            collection=collection,
            access=enum_name(enum_arg(Access, access, f"access to {collection!r}")),
        )
        for collection, access in grants.items()
    ]


def _grants(grants: Any) -> tuple[CollectionGrant, ...]:
    """Grants read back."""
    return tuple(
        CollectionGrant(collection=g.collection, access=enum_from_proto(Access, g.access))
        for g in grants
    )


def key_from_proto(key: keys_pb2.KeyInfo) -> KeyInfo:
    """An API key without its secret."""
    return KeyInfo(
        id=key.id,
        role=enum_from_proto(KeyRole, key.role),
        grants=_grants(key.grants),
        description=key.description,
        created_at_unix_ms=key.created_at_unix_ms,
        plan=key.plan,
    )


def plan_from_proto(plan: plans_pb2.Plan) -> Plan:
    """A plan."""
    return Plan(
        name=plan.name,
        requests_per_second=plan.requests_per_second,
        burst=plan.burst,
        max_collections=plan.max_collections if plan.HasField("max_collections") else None,
        max_points=plan.max_points if plan.HasField("max_points") else None,
    )


def user_from_proto(user: users_pb2.UserInfo) -> UserInfo:
    """A user without their password."""
    return UserInfo(
        name=user.name,
        role=enum_from_proto(KeyRole, user.role),
        grants=_grants(user.grants),
        created_at_unix_ms=user.created_at_unix_ms,
        plan=user.plan,
    )
