from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_UNSPECIFIED: _ClassVar[Metric]
    METRIC_COSINE: _ClassVar[Metric]
    METRIC_L2: _ClassVar[Metric]
    METRIC_DOT: _ClassVar[Metric]

class Quantization(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUANTIZATION_UNSPECIFIED: _ClassVar[Quantization]
    QUANTIZATION_NONE: _ClassVar[Quantization]
    QUANTIZATION_INT8: _ClassVar[Quantization]

class PayloadFieldKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYLOAD_FIELD_KIND_UNSPECIFIED: _ClassVar[PayloadFieldKind]
    PAYLOAD_FIELD_KIND_KEYWORD: _ClassVar[PayloadFieldKind]
    PAYLOAD_FIELD_KIND_NUMERIC: _ClassVar[PayloadFieldKind]

class CollectionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COLLECTION_STATE_UNSPECIFIED: _ClassVar[CollectionState]
    COLLECTION_STATE_CREATING: _ClassVar[CollectionState]
    COLLECTION_STATE_READY: _ClassVar[CollectionState]
    COLLECTION_STATE_DEGRADED: _ClassVar[CollectionState]
    COLLECTION_STATE_DROPPING: _ClassVar[CollectionState]

class ReplicaState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPLICA_STATE_UNSPECIFIED: _ClassVar[ReplicaState]
    REPLICA_STATE_OPENING: _ClassVar[ReplicaState]
    REPLICA_STATE_ACTIVE: _ClassVar[ReplicaState]
    REPLICA_STATE_UNAVAILABLE: _ClassVar[ReplicaState]

class ReplicaRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPLICA_ROLE_UNSPECIFIED: _ClassVar[ReplicaRole]
    REPLICA_ROLE_LEADER: _ClassVar[ReplicaRole]
    REPLICA_ROLE_FOLLOWER: _ClassVar[ReplicaRole]
    REPLICA_ROLE_NO_LEADER: _ClassVar[ReplicaRole]
METRIC_UNSPECIFIED: Metric
METRIC_COSINE: Metric
METRIC_L2: Metric
METRIC_DOT: Metric
QUANTIZATION_UNSPECIFIED: Quantization
QUANTIZATION_NONE: Quantization
QUANTIZATION_INT8: Quantization
PAYLOAD_FIELD_KIND_UNSPECIFIED: PayloadFieldKind
PAYLOAD_FIELD_KIND_KEYWORD: PayloadFieldKind
PAYLOAD_FIELD_KIND_NUMERIC: PayloadFieldKind
COLLECTION_STATE_UNSPECIFIED: CollectionState
COLLECTION_STATE_CREATING: CollectionState
COLLECTION_STATE_READY: CollectionState
COLLECTION_STATE_DEGRADED: CollectionState
COLLECTION_STATE_DROPPING: CollectionState
REPLICA_STATE_UNSPECIFIED: ReplicaState
REPLICA_STATE_OPENING: ReplicaState
REPLICA_STATE_ACTIVE: ReplicaState
REPLICA_STATE_UNAVAILABLE: ReplicaState
REPLICA_ROLE_UNSPECIFIED: ReplicaRole
REPLICA_ROLE_LEADER: ReplicaRole
REPLICA_ROLE_FOLLOWER: ReplicaRole
REPLICA_ROLE_NO_LEADER: ReplicaRole

class PayloadIndex(_message.Message):
    __slots__ = ("field", "kind")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    field: str
    kind: PayloadFieldKind
    def __init__(self, field: _Optional[str] = ..., kind: _Optional[_Union[PayloadFieldKind, str]] = ...) -> None: ...

class HnswConfig(_message.Message):
    __slots__ = ("m", "ef_construction", "ef")
    M_FIELD_NUMBER: _ClassVar[int]
    EF_CONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    m: int
    ef_construction: int
    ef: int
    def __init__(self, m: _Optional[int] = ..., ef_construction: _Optional[int] = ..., ef: _Optional[int] = ...) -> None: ...

class CollectionSpec(_message.Message):
    __slots__ = ("name", "dimension", "metric", "shard_count", "replication_factor", "hnsw", "quantization", "payload_indexes", "search_cache")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SHARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_FACTOR_FIELD_NUMBER: _ClassVar[int]
    HNSW_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_INDEXES_FIELD_NUMBER: _ClassVar[int]
    SEARCH_CACHE_FIELD_NUMBER: _ClassVar[int]
    name: str
    dimension: int
    metric: Metric
    shard_count: int
    replication_factor: int
    hnsw: HnswConfig
    quantization: Quantization
    payload_indexes: _containers.RepeatedCompositeFieldContainer[PayloadIndex]
    search_cache: SearchCacheSettings
    def __init__(self, name: _Optional[str] = ..., dimension: _Optional[int] = ..., metric: _Optional[_Union[Metric, str]] = ..., shard_count: _Optional[int] = ..., replication_factor: _Optional[int] = ..., hnsw: _Optional[_Union[HnswConfig, _Mapping]] = ..., quantization: _Optional[_Union[Quantization, str]] = ..., payload_indexes: _Optional[_Iterable[_Union[PayloadIndex, _Mapping]]] = ..., search_cache: _Optional[_Union[SearchCacheSettings, _Mapping]] = ...) -> None: ...

class SearchCacheSettings(_message.Message):
    __slots__ = ("enabled", "ttl_ms")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    ttl_ms: int
    def __init__(self, enabled: _Optional[bool] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: CollectionSpec
    def __init__(self, spec: _Optional[_Union[CollectionSpec, _Mapping]] = ...) -> None: ...

class CreateCollectionResponse(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: CollectionInfo
    def __init__(self, collection: _Optional[_Union[CollectionInfo, _Mapping]] = ...) -> None: ...

class DropCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections",)
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionInfo]
    def __init__(self, collections: _Optional[_Iterable[_Union[CollectionInfo, _Mapping]]] = ...) -> None: ...

class DescribeCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class UpdateCollectionRequest(_message.Message):
    __slots__ = ("name", "spec", "tuning", "add_payload_indexes", "drop_payload_indexes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    TUNING_FIELD_NUMBER: _ClassVar[int]
    ADD_PAYLOAD_INDEXES_FIELD_NUMBER: _ClassVar[int]
    DROP_PAYLOAD_INDEXES_FIELD_NUMBER: _ClassVar[int]
    name: str
    spec: CollectionSpec
    tuning: EfTuning
    add_payload_indexes: _containers.RepeatedCompositeFieldContainer[PayloadIndex]
    drop_payload_indexes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., spec: _Optional[_Union[CollectionSpec, _Mapping]] = ..., tuning: _Optional[_Union[EfTuning, _Mapping]] = ..., add_payload_indexes: _Optional[_Iterable[_Union[PayloadIndex, _Mapping]]] = ..., drop_payload_indexes: _Optional[_Iterable[str]] = ...) -> None: ...

class EfTuning(_message.Message):
    __slots__ = ("target_recall", "k", "measured_recall", "recall_lower_bound", "queries", "tuned_at_unix_ms", "filter_json")
    TARGET_RECALL_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    MEASURED_RECALL_FIELD_NUMBER: _ClassVar[int]
    RECALL_LOWER_BOUND_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    TUNED_AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    target_recall: float
    k: int
    measured_recall: float
    recall_lower_bound: float
    queries: int
    tuned_at_unix_ms: int
    filter_json: str
    def __init__(self, target_recall: _Optional[float] = ..., k: _Optional[int] = ..., measured_recall: _Optional[float] = ..., recall_lower_bound: _Optional[float] = ..., queries: _Optional[int] = ..., tuned_at_unix_ms: _Optional[int] = ..., filter_json: _Optional[str] = ...) -> None: ...

class ReplicaInfo(_message.Message):
    __slots__ = ("worker_id", "core", "address", "epoch", "state", "replica_id", "status")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    core: int
    address: str
    epoch: int
    state: ReplicaState
    replica_id: int
    status: ReplicaStatus
    def __init__(self, worker_id: _Optional[str] = ..., core: _Optional[int] = ..., address: _Optional[str] = ..., epoch: _Optional[int] = ..., state: _Optional[_Union[ReplicaState, str]] = ..., replica_id: _Optional[int] = ..., status: _Optional[_Union[ReplicaStatus, _Mapping]] = ...) -> None: ...

class ReplicaStatus(_message.Message):
    __slots__ = ("role", "leader_id", "term", "applied_lsn", "lag", "points", "indexed_points")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    APPLIED_LSN_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    INDEXED_POINTS_FIELD_NUMBER: _ClassVar[int]
    role: ReplicaRole
    leader_id: int
    term: int
    applied_lsn: int
    lag: int
    points: int
    indexed_points: int
    def __init__(self, role: _Optional[_Union[ReplicaRole, str]] = ..., leader_id: _Optional[int] = ..., term: _Optional[int] = ..., applied_lsn: _Optional[int] = ..., lag: _Optional[int] = ..., points: _Optional[int] = ..., indexed_points: _Optional[int] = ...) -> None: ...

class ShardInfo(_message.Message):
    __slots__ = ("shard_id", "hash_range_start", "hash_range_end", "replicas", "point_count")
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    HASH_RANGE_START_FIELD_NUMBER: _ClassVar[int]
    HASH_RANGE_END_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    POINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    shard_id: int
    hash_range_start: int
    hash_range_end: int
    replicas: _containers.RepeatedCompositeFieldContainer[ReplicaInfo]
    point_count: int
    def __init__(self, shard_id: _Optional[int] = ..., hash_range_start: _Optional[int] = ..., hash_range_end: _Optional[int] = ..., replicas: _Optional[_Iterable[_Union[ReplicaInfo, _Mapping]]] = ..., point_count: _Optional[int] = ...) -> None: ...

class CollectionInfo(_message.Message):
    __slots__ = ("spec", "state", "point_count", "shards", "owner", "tuning", "payload_index_status")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    POINT_COUNT_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TUNING_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_INDEX_STATUS_FIELD_NUMBER: _ClassVar[int]
    spec: CollectionSpec
    state: CollectionState
    point_count: int
    shards: _containers.RepeatedCompositeFieldContainer[ShardInfo]
    owner: str
    tuning: EfTuning
    payload_index_status: _containers.RepeatedCompositeFieldContainer[PayloadIndexStatus]
    def __init__(self, spec: _Optional[_Union[CollectionSpec, _Mapping]] = ..., state: _Optional[_Union[CollectionState, str]] = ..., point_count: _Optional[int] = ..., shards: _Optional[_Iterable[_Union[ShardInfo, _Mapping]]] = ..., owner: _Optional[str] = ..., tuning: _Optional[_Union[EfTuning, _Mapping]] = ..., payload_index_status: _Optional[_Iterable[_Union[PayloadIndexStatus, _Mapping]]] = ...) -> None: ...

class PayloadIndexStatus(_message.Message):
    __slots__ = ("field", "ready", "replicas_ready", "replicas_total")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_READY_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    field: str
    ready: bool
    replicas_ready: int
    replicas_total: int
    def __init__(self, field: _Optional[str] = ..., ready: _Optional[bool] = ..., replicas_ready: _Optional[int] = ..., replicas_total: _Optional[int] = ...) -> None: ...
