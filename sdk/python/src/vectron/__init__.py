"""The Python client of Vectron, a distributed vector database.

>>> import numpy as np
>>> from vectron import Client, Field, Filter
>>> with Client("127.0.0.1:6334") as client:  # doctest: +SKIP
...     client.create_collection("docs", dimension=4, metric="cosine")
...     client.upsert("docs", np.eye(4, dtype=np.float32), ids=["a", "b", "c", "d"],
...                   payloads=[{"kind": "moon"}, {"kind": "sun"}, {}, None])
...     hits = client.search("docs", [1, 0, 0, 0], k=2,
...                          filter=Filter(must=[Field("kind").keyword("moon")]))

A :class:`Client` holds one gRPC channel to a gateway; an :class:`AsyncClient` has the
same methods as coroutines, over ``grpc.aio``. Every failed call raises a
:class:`VectronError` subclass named after its status code; idempotent calls are
retried on ``UNAVAILABLE`` and after the server's ``retry-after``.
"""

from vectron._version import __version__
from vectron.aio import AsyncClient
from vectron.client import MAX_POINTS_PER_REQUEST, MAX_SEARCHES_PER_BATCH, Client
from vectron.errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OtherError,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    VectronError,
)
from vectron.filters import Condition, Field, FieldCondition, Filter, HasId, Range
from vectron.models import (
    Access,
    CollectionGrant,
    CollectionInfo,
    CollectionState,
    CoreStats,
    CoreStatsResult,
    CreatedKey,
    EfTuning,
    HnswConfig,
    KeyInfo,
    KeyRole,
    LatencySummary,
    Metric,
    PayloadFieldKind,
    PayloadIndex,
    Plan,
    Point,
    Quantization,
    ReadConsistency,
    Record,
    ReplicaInfo,
    ReplicaRole,
    ReplicaState,
    ReplicaStats,
    ReplicaStatus,
    ScoredPoint,
    ScrollPage,
    SearchResult,
    ShardInfo,
    ShardStats,
    Token,
    UpsertResult,
    UserInfo,
)

__all__ = [
    "MAX_POINTS_PER_REQUEST",
    "MAX_SEARCHES_PER_BATCH",
    "Access",
    "AlreadyExists",
    "AsyncClient",
    "Cancelled",
    "Client",
    "CollectionGrant",
    "CollectionInfo",
    "CollectionState",
    "Condition",
    "CoreStats",
    "CoreStatsResult",
    "CreatedKey",
    "DeadlineExceeded",
    "EfTuning",
    "FailedPrecondition",
    "Field",
    "FieldCondition",
    "Filter",
    "HasId",
    "HnswConfig",
    "Internal",
    "InvalidArgument",
    "KeyInfo",
    "KeyRole",
    "LatencySummary",
    "Metric",
    "NotFound",
    "OtherError",
    "PayloadFieldKind",
    "PayloadIndex",
    "PermissionDenied",
    "Plan",
    "Point",
    "Quantization",
    "Range",
    "ReadConsistency",
    "Record",
    "ReplicaInfo",
    "ReplicaRole",
    "ReplicaState",
    "ReplicaStats",
    "ReplicaStatus",
    "ResourceExhausted",
    "ScoredPoint",
    "ScrollPage",
    "SearchResult",
    "ShardInfo",
    "ShardStats",
    "Token",
    "Unauthenticated",
    "Unavailable",
    "UpsertResult",
    "UserInfo",
    "VectronError",
    "__version__",
]
