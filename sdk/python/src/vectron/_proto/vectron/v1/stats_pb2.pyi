from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CoreStatsRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class LatencySummary(_message.Message):
    __slots__ = ("count", "mean_us", "p50_us", "p90_us", "p99_us", "p999_us", "max_us")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MEAN_US_FIELD_NUMBER: _ClassVar[int]
    P50_US_FIELD_NUMBER: _ClassVar[int]
    P90_US_FIELD_NUMBER: _ClassVar[int]
    P99_US_FIELD_NUMBER: _ClassVar[int]
    P999_US_FIELD_NUMBER: _ClassVar[int]
    MAX_US_FIELD_NUMBER: _ClassVar[int]
    count: int
    mean_us: float
    p50_us: float
    p90_us: float
    p99_us: float
    p999_us: float
    max_us: float
    def __init__(self, count: _Optional[int] = ..., mean_us: _Optional[float] = ..., p50_us: _Optional[float] = ..., p90_us: _Optional[float] = ..., p99_us: _Optional[float] = ..., p999_us: _Optional[float] = ..., max_us: _Optional[float] = ...) -> None: ...

class ShardStats(_message.Message):
    __slots__ = ("collection", "shard_id", "epoch", "points", "indexed_points", "deleted_points", "memory_bytes", "disk_bytes", "wal_bytes", "last_lsn", "checkpoint_lsn", "replica", "payload_indexes_ready")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    INDEXED_POINTS_FIELD_NUMBER: _ClassVar[int]
    DELETED_POINTS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    DISK_BYTES_FIELD_NUMBER: _ClassVar[int]
    WAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    LAST_LSN_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_LSN_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_INDEXES_READY_FIELD_NUMBER: _ClassVar[int]
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
    replica: ReplicaStats
    payload_indexes_ready: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., shard_id: _Optional[int] = ..., epoch: _Optional[int] = ..., points: _Optional[int] = ..., indexed_points: _Optional[int] = ..., deleted_points: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., disk_bytes: _Optional[int] = ..., wal_bytes: _Optional[int] = ..., last_lsn: _Optional[int] = ..., checkpoint_lsn: _Optional[int] = ..., replica: _Optional[_Union[ReplicaStats, _Mapping]] = ..., payload_indexes_ready: _Optional[_Iterable[str]] = ...) -> None: ...

class ReplicaStats(_message.Message):
    __slots__ = ("replica_id", "leader", "leader_id", "term", "applied_lsn", "voters")
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    APPLIED_LSN_FIELD_NUMBER: _ClassVar[int]
    VOTERS_FIELD_NUMBER: _ClassVar[int]
    replica_id: int
    leader: bool
    leader_id: int
    term: int
    applied_lsn: int
    voters: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, replica_id: _Optional[int] = ..., leader: _Optional[bool] = ..., leader_id: _Optional[int] = ..., term: _Optional[int] = ..., applied_lsn: _Optional[int] = ..., voters: _Optional[_Iterable[int]] = ...) -> None: ...

class CoreStats(_message.Message):
    __slots__ = ("worker_id", "core", "cpu", "address", "driver", "uptime_s", "searches_total", "upserted_points_total", "search_qps", "upsert_points_per_s", "search_latency", "upsert_latency", "wal_sync_latency", "in_flight", "queue_depth", "memory_bytes", "shards", "cpu_s", "calls_refused_total", "buffered_bytes", "writes_refused_backlog_total", "scheduling_delay")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    SEARCHES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    UPSERTED_POINTS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SEARCH_QPS_FIELD_NUMBER: _ClassVar[int]
    UPSERT_POINTS_PER_S_FIELD_NUMBER: _ClassVar[int]
    SEARCH_LATENCY_FIELD_NUMBER: _ClassVar[int]
    UPSERT_LATENCY_FIELD_NUMBER: _ClassVar[int]
    WAL_SYNC_LATENCY_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    CPU_S_FIELD_NUMBER: _ClassVar[int]
    CALLS_REFUSED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    BUFFERED_BYTES_FIELD_NUMBER: _ClassVar[int]
    WRITES_REFUSED_BACKLOG_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SCHEDULING_DELAY_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    core: int
    cpu: int
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
    shards: _containers.RepeatedCompositeFieldContainer[ShardStats]
    cpu_s: float
    calls_refused_total: int
    buffered_bytes: int
    writes_refused_backlog_total: int
    scheduling_delay: LatencySummary
    def __init__(self, worker_id: _Optional[str] = ..., core: _Optional[int] = ..., cpu: _Optional[int] = ..., address: _Optional[str] = ..., driver: _Optional[str] = ..., uptime_s: _Optional[float] = ..., searches_total: _Optional[int] = ..., upserted_points_total: _Optional[int] = ..., search_qps: _Optional[float] = ..., upsert_points_per_s: _Optional[float] = ..., search_latency: _Optional[_Union[LatencySummary, _Mapping]] = ..., upsert_latency: _Optional[_Union[LatencySummary, _Mapping]] = ..., wal_sync_latency: _Optional[_Union[LatencySummary, _Mapping]] = ..., in_flight: _Optional[int] = ..., queue_depth: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., shards: _Optional[_Iterable[_Union[ShardStats, _Mapping]]] = ..., cpu_s: _Optional[float] = ..., calls_refused_total: _Optional[int] = ..., buffered_bytes: _Optional[int] = ..., writes_refused_backlog_total: _Optional[int] = ..., scheduling_delay: _Optional[_Union[LatencySummary, _Mapping]] = ...) -> None: ...

class CoreStatsResponse(_message.Message):
    __slots__ = ("cores", "unreachable_workers")
    CORES_FIELD_NUMBER: _ClassVar[int]
    UNREACHABLE_WORKERS_FIELD_NUMBER: _ClassVar[int]
    cores: _containers.RepeatedCompositeFieldContainer[CoreStats]
    unreachable_workers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cores: _Optional[_Iterable[_Union[CoreStats, _Mapping]]] = ..., unreachable_workers: _Optional[_Iterable[str]] = ...) -> None: ...
