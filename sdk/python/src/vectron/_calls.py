"""What both clients share, without a transport: checking arguments, building requests,
parsing responses, deciding retries and mapping errors.

Each public method of :class:`vectron.Client` and :class:`vectron.AsyncClient` runs an
*operation* of :class:`Calls`: a generator that checks its arguments, yields a
:class:`Call` for each request to send, is sent the response back (or has the call's
error thrown in), and returns the method's result. The clients only move bytes:
``Client`` with blocking grpcio calls, ``AsyncClient`` with ``grpc.aio``. Retries are
shared the same way: :class:`Attempts` says whether a failed attempt is tried again and
after how long, and raises the mapped error when it is not; the clients only sleep.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar, cast

import grpc
import numpy as np
import numpy.typing as npt
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message

from vectron import _convert, _encode, _upload
from vectron._channel import (
    CaCert,
    authorization_metadata,
    channel_options,
    resolve_target,
)
from vectron._proto.vectron.v1 import (
    collections_pb2,
    filter_pb2,
    keys_pb2,
    plans_pb2,
    points_pb2,
    search_pb2,
    stats_pb2,
    users_pb2,
)
from vectron._version import __version__
from vectron.errors import (
    Cancelled,
    DeadlineExceeded,
    Internal,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
    VectronError,
    from_rpc_error,
)
from vectron.filters import Filter
from vectron.models import (
    Access,
    CollectionInfo,
    CoreStatsResult,
    CreatedKey,
    EfTuning,
    HnswConfig,
    KeyInfo,
    KeyRole,
    Metric,
    Payload,
    PayloadFieldKind,
    PayloadIndex,
    Plan,
    Point,
    PointId,
    Quantization,
    ReadConsistency,
    Record,
    ScrollPage,
    SearchCacheSettings,
    SearchEvent,
    SearchResult,
    Token,
    UpsertResult,
    UserInfo,
    VectorLike,
)

#: Most points the server accepts in one upsert, get or delete request.
MAX_POINTS_PER_REQUEST = _encode.MAX_POINTS_PER_REQUEST
#: Most searches the server accepts in one batch; ``search_batch`` splits more.
MAX_SEARCHES_PER_BATCH = 1000
#: Requests are kept this far under the message limit (room for headers and framing).
_MESSAGE_MARGIN = 64 << 10
#: Longest pause between two retries of an ``UNAVAILABLE`` call.
_MAX_BACKOFF = 2.0
#: A CANCELLED answer this close to the client's deadline is the deadline passing.
_DEADLINE_SLACK = 0.01

T = TypeVar("T")
Req = TypeVar("Req")
Msg = TypeVar("Msg", bound=_message.Message)
Resp = TypeVar("Resp", bound=_message.Message)

# --- methods -------------------------------------------------------------------------

_SERVICES: dict[str, _descriptor.ServiceDescriptor] = {
    "Collections": collections_pb2.DESCRIPTOR.services_by_name["Collections"],
    "Points": points_pb2.DESCRIPTOR.services_by_name["Points"],
    "Stats": stats_pb2.DESCRIPTOR.services_by_name["Stats"],
    "Keys": keys_pb2.DESCRIPTOR.services_by_name["Keys"],
    "Plans": plans_pb2.DESCRIPTOR.services_by_name["Plans"],
    "Users": users_pb2.DESCRIPTOR.services_by_name["Users"],
}


def _method_path(
    service: str, method: str, request: type[_message.Message], response: type[_message.Message]
) -> str:
    """``/vectron.v1.Service/Method``, checked against the service's descriptor."""
    descriptor = _SERVICES[service].methods_by_name[method]
    if (
        descriptor.input_type.full_name != request.DESCRIPTOR.full_name
        or descriptor.output_type.full_name != response.DESCRIPTOR.full_name
    ):
        raise TypeError(
            f"{service}.{method} does not take {request.__name__} to {response.__name__}"
        )
    return f"/{_SERVICES[service].full_name}/{method}"


@dataclass(frozen=True, eq=False)
class Method(Generic[Req, Resp]):
    """One RPC of the API: its path and how its messages are (de)serialized."""

    path: str
    #: ``None`` where requests are wire bytes already (the upserts, see ``_encode``).
    serializer: Callable[[Req], bytes] | None
    deserializer: Callable[[bytes], Resp]


def _method(service: str, name: str, request: type[Msg], response: type[Resp]) -> Method[Msg, Resp]:
    """A method whose requests protobuf serializes."""
    path = _method_path(service, name, request, response)
    return Method(path, request.SerializeToString, response.FromString)


def _raw_method(
    service: str, name: str, request: type[_message.Message], response: type[Resp]
) -> Method[bytes, Resp]:
    """A method whose requests are passed through as bytes: no request serializer."""
    return Method(_method_path(service, name, request, response), None, response.FromString)


_c, _p, _k, _u = collections_pb2, points_pb2, keys_pb2, users_pb2
CREATE = _method("Collections", "Create", _c.CreateCollectionRequest, _c.CreateCollectionResponse)
DROP = _method("Collections", "Drop", _c.DropCollectionRequest, _c.DropCollectionResponse)
LIST = _method("Collections", "List", _c.ListCollectionsRequest, _c.ListCollectionsResponse)
DESCRIBE = _method("Collections", "Describe", _c.DescribeCollectionRequest, _c.CollectionInfo)
UPDATE = _method("Collections", "Update", _c.UpdateCollectionRequest, _c.CollectionInfo)
GET = _method("Points", "Get", _p.GetRequest, _p.GetResponse)
DELETE = _method("Points", "Delete", _p.DeleteRequest, _p.DeleteResponse)
COUNT = _method("Points", "Count", _p.CountRequest, _p.CountResponse)
SCROLL = _method("Points", "Scroll", _p.ScrollRequest, _p.ScrollResponse)
SEARCH = _method("Points", "Search", search_pb2.SearchRequest, search_pb2.SearchResponse)
SEARCH_BATCH = _method(
    "Points", "SearchBatch", search_pb2.SearchBatchRequest, search_pb2.SearchBatchResponse
)
#: Upserts travel as wire bytes made by :mod:`vectron._encode`.
UPSERT = _raw_method("Points", "Upsert", _p.UpsertRequest, _p.UpsertResponse)
#: The one client-streaming method; each client opens its calls itself.
UPSERT_STREAM = _raw_method("Points", "UpsertStream", _p.UpsertRequest, _p.UpsertResponse)
CORES = _method("Stats", "Cores", stats_pb2.CoreStatsRequest, stats_pb2.CoreStatsResponse)
CREATE_KEY = _method("Keys", "Create", _k.CreateKeyRequest, _k.CreateKeyResponse)
LIST_KEYS = _method("Keys", "List", _k.ListKeysRequest, _k.ListKeysResponse)
REVOKE_KEY = _method("Keys", "Revoke", _k.RevokeKeyRequest, _k.RevokeKeyResponse)
CREATE_TOKEN = _method("Keys", "CreateToken", _k.CreateTokenRequest, _k.CreateTokenResponse)
SET_PLAN = _method("Plans", "Set", plans_pb2.Plan, plans_pb2.Plan)
LIST_PLANS = _method("Plans", "List", plans_pb2.ListPlansRequest, plans_pb2.ListPlansResponse)
DELETE_PLAN = _method("Plans", "Delete", plans_pb2.DeletePlanRequest, plans_pb2.DeletePlanResponse)
CREATE_USER = _method("Users", "Create", _u.CreateUserRequest, _u.UserInfo)
LIST_USERS = _method("Users", "List", _u.ListUsersRequest, _u.ListUsersResponse)
DELETE_USER = _method("Users", "Delete", _u.DeleteUserRequest, _u.DeleteUserResponse)
LOGIN = _method("Users", "Login", _u.LoginRequest, _u.LoginResponse)

#: The one server-streaming method; each client opens its calls itself.
SEARCH_STREAM = _method(
    "Points", "SearchStream", search_pb2.SearchRequest, search_pb2.SearchStreamEvent
)

#: Every unary method; each client makes one multicallable per entry.
UNARY_METHODS: tuple[Method[Any, Any], ...] = (
    CREATE, DROP, LIST, DESCRIBE, UPDATE, GET, DELETE, COUNT, SCROLL, SEARCH, SEARCH_BATCH,
    UPSERT, CORES, CREATE_KEY, LIST_KEYS, REVOKE_KEY, CREATE_TOKEN, SET_PLAN, LIST_PLANS,
    DELETE_PLAN, CREATE_USER, LIST_USERS, DELETE_USER, LOGIN,
)  # fmt: skip


# --- operations ----------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One unary call an operation asks its client to make."""

    method: Method[Any, Any]
    request: Any
    #: Whether it may be retried: sending it twice does what sending it once does.
    idempotent: bool


#: An operation: yields the calls to make, is sent their responses, returns the result.
Op: TypeAlias = Generator[Call, Any, T]


def _call(method: Method[Req, Resp], request: Req, *, idempotent: bool) -> Op[Resp]:
    """Makes one call and returns its response (its error is raised here)."""
    response = yield Call(method, request, idempotent)
    return cast(Resp, response)


# --- retries -------------------------------------------------------------------------


#: What grpc.aio sets as the status of a call when sending a message on it fails.
_AIO_SEND_FAILED = "Internal error from Core"


def _status_lost(rpc_error: grpc.RpcError) -> bool:
    """Whether grpc.aio put its own ``INTERNAL`` in place of the server's status.

    When the server ends a client-streaming call (refusing it at once, say, for the
    caller's rate) while grpc.aio is still sending a message on it, the failed send sets
    the call's status to ``INTERNAL`` "Internal error from Core", and that can replace
    the status the server sent. The message was not taken: the call is as good as cut.
    """
    code = getattr(rpc_error, "code", None)
    details = getattr(rpc_error, "details", None)
    debug = getattr(rpc_error, "debug_error_string", None)
    return (
        callable(code)
        and code() == grpc.StatusCode.INTERNAL
        and callable(details)
        and details() == _AIO_SEND_FAILED
        and callable(debug)
        and "SendMessageOperation" in str(debug())
    )


def _jitter(delay: float) -> float:
    """`delay` times a random factor in [0.5, 1.5), so clients do not retry in step."""
    return delay * random.uniform(0.5, 1.5)


class Attempts:
    """The attempts of one call: its deadline, the retries left and the next backoff.

    A client sends with :meth:`remaining` as the attempt's timeout, and on a failure asks
    :meth:`pause_after` how long to wait before the next attempt; it raises the failure,
    as a :class:`VectronError`, when the call must not be tried again.
    """

    def __init__(
        self, *, timeout: float | None, retries: int, backoff: float, max_retry_after: float
    ) -> None:
        """Starts the call's clock: its deadline is `timeout` seconds from now."""
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self._retries_left = retries
        self._backoff = backoff
        self._max_retry_after = max_retry_after

    def remaining(self) -> float | None:
        """Seconds left before the deadline (``None``: no deadline)."""
        return None if self.deadline is None else max(self.deadline - time.monotonic(), 0.0)

    def error(self, rpc_error: grpc.RpcError) -> VectronError:
        """The error of a failed attempt of this call."""
        if _status_lost(rpc_error):
            return Unavailable(
                "the server ended the stream while a message was being sent on it, and "
                "grpc.aio lost the status it sent"
            )
        error = from_rpc_error(rpc_error)
        if (
            isinstance(error, Cancelled)
            and self.deadline is not None
            and time.monotonic() >= self.deadline - _DEADLINE_SLACK
        ):
            # The server's own timer on our deadline answers CANCELLED (tonic's "Timeout
            # expired"); to the caller it is the deadline passing.
            return DeadlineExceeded(error.message)
        return error

    def _pause(self, error: VectronError) -> float | None:
        """How long to wait before retrying after `error`, or ``None`` not to retry."""
        if isinstance(error, Unavailable):
            return _jitter(self._backoff)
        if isinstance(error, ResourceExhausted) and error.retry_after is not None:
            if error.retry_after <= self._max_retry_after:
                return error.retry_after
        return None

    def pause_after(self, rpc_error: grpc.RpcError) -> float:
        """Seconds to wait before trying again after `rpc_error`; raises its
        :class:`VectronError` instead when no retry is left, the failure is not one to
        retry (only ``UNAVAILABLE`` and ``RESOURCE_EXHAUSTED`` with a ``retry-after``
        are), or the pause would pass the deadline."""
        error = self.error(rpc_error)
        pause = self._pause(error) if self._retries_left > 0 else None
        if pause is None or (
            self.deadline is not None and time.monotonic() + pause >= self.deadline
        ):
            raise error from rpc_error
        self._retries_left -= 1
        self._backoff = min(self._backoff * 2, _MAX_BACKOFF)
        return pause


class SearchEvents:
    """The reading of one streamed search (``SearchStream``), shared by both clients.

    A client opens the call and reads its first event with :attr:`attempts` as a unary
    call is sent: a failure before the first event (the server refusing the request, or
    ``UNAVAILABLE``) is retried or raised by :meth:`Attempts.pause_after`. Once an event
    has come, a failure is raised as :meth:`error` maps it, never retried: the events
    would come again. :meth:`event` parses each message read and checks that the stream
    ends with exactly one last event.
    """

    def __init__(self, attempts: Attempts) -> None:
        """Reads a stream whose call runs under `attempts` (its deadline and retries)."""
        self.attempts = attempts
        #: Whether the last event (``done``) has come.
        self.done = False

    def event(self, message: search_pb2.SearchStreamEvent | None) -> SearchEvent | None:
        """The event of `message`, or ``None`` for the end of the stream (`message` is
        ``None``) after its last event.

        Raises:
            Internal: The stream ended before its last event, or went on after it.
        """
        if message is None:
            if not self.done:
                raise Internal("the search stream ended before its last event")
            return None
        if self.done:
            raise Internal("the search stream sent an event after its last")
        event = _convert.search_event_from_proto(message)
        self.done = event.done
        return event

    def first(self, message: search_pb2.SearchStreamEvent | None) -> SearchEvent:
        """The first event, from the first message read (``None``: the stream ended).

        Raises:
            Internal: The stream ended without any event.
        """
        event = self.event(message)
        if event is None:  # `event` raises first: no last event has come yet
            raise Internal("the search stream ended before its last event")
        return event

    def error(self, rpc_error: grpc.RpcError) -> VectronError:
        """The error a failure after the first event is raised as (not retried)."""
        return self.attempts.error(rpc_error)


# --- argument checks -----------------------------------------------------------------


def _filter_proto(filter: Filter | None) -> filter_pb2.Filter | None:
    """The message of an optional filter, type-checked."""
    if filter is None:
        return None
    if not isinstance(filter, Filter):
        raise InvalidArgument(
            f"filter must be a vectron.Filter; got {type(filter).__name__} "
            "(wrap conditions: Filter(must=[...]))"
        )
    return filter.to_proto()


def _ids(ids: Iterable[PointId], what: str) -> list[str]:
    """Point ids as strings; a bare string is refused (it is no list)."""
    if isinstance(ids, (str, bytes)):
        raise InvalidArgument(f"{what} takes a list of ids, not one string: {ids!r}")
    out: list[str] = []
    for point_id in ids:
        if isinstance(point_id, str):
            out.append(point_id)
        elif isinstance(point_id, (int, np.integer)) and not isinstance(point_id, bool):
            out.append(str(int(point_id)))
        else:
            raise InvalidArgument(f"a point id is a string or an integer; got {point_id!r}")
    return out


def _query_vector(vector: VectorLike, what: str) -> list[float]:
    """A query vector as float32 values, checked: 1-D, real, finite."""
    try:
        array = np.asarray(vector)
    except (TypeError, ValueError) as error:
        raise InvalidArgument(f"{what} must be a list of numbers: {error}") from None
    if array.ndim != 1 or array.size == 0:
        raise InvalidArgument(f"{what} must be a non-empty 1-D vector; got shape {array.shape}")
    if array.dtype.kind not in "fiu":
        raise InvalidArgument(f"{what} must hold real numbers; got dtype {array.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        values = array.astype(np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        index = int(np.flatnonzero(~finite)[0])
        raise InvalidArgument(
            f"{what}: value {array[index].item()!r} at index {index} is not finite"
        )
    out: list[float] = values.tolist()
    return out


def _check_exact(exact: bool, ef: int | None) -> None:
    """Refuses an `ef` given with ``exact=True``, which would ignore it."""
    if exact and ef is not None:
        raise InvalidArgument(f"exact=True ignores ef: pass one or the other; got ef={ef!r}")


#: Largest value of a ``uint32`` field; the server's own bound on ``ef`` is lower.
_MAX_U32 = 2**32 - 1


def _default_ef(ef: object) -> int:
    """A collection's default `ef`, checked: a positive integer (the server enforces its
    upper bound)."""
    if isinstance(ef, bool) or not isinstance(ef, int) or not 1 <= ef <= _MAX_U32:
        raise InvalidArgument(f"ef must be a positive integer; got {ef!r}")
    return ef


def _query_rows(vectors: npt.ArrayLike) -> list[list[float]]:
    """The rows of a 2-D array (or list) of queries, each checked."""
    if isinstance(vectors, np.ndarray):
        if vectors.ndim != 2:
            raise InvalidArgument(
                f"vectors must be 2-D (queries x dimension); got shape {vectors.shape}"
            )
        rows: Sequence[Any] = list(vectors)
    elif isinstance(vectors, Sequence) and not isinstance(vectors, (str, bytes)):
        rows = vectors
    else:
        raise InvalidArgument(
            f"vectors must be a 2-D array or a list of vectors; got {type(vectors).__name__}"
        )
    return [_query_vector(row, f"query {i}") for i, row in enumerate(rows)]


def _fields(fields: Iterable[str] | None, what: str) -> list[str]:
    """Payload fields given as a list of strings; a bare string is refused (it is no
    list)."""
    if fields is None:
        return []
    if isinstance(fields, (str, bytes)) or not isinstance(fields, Iterable):
        raise InvalidArgument(f"{what} takes a list of field names; got {fields!r}")
    out: list[str] = []
    for field in fields:
        if not isinstance(field, str):
            raise InvalidArgument(f"{what} holds {field!r}: a field name is a string")
        out.append(field)
    return out


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _payload_indexes(
    indexes: Mapping[str, PayloadFieldKind | str] | Sequence[PayloadIndex] | None,
    what: str = "payload_indexes",
) -> list[collections_pb2.PayloadIndex]:
    """Payload indexes given as a mapping or a list, as messages (`what` names the
    argument in errors)."""
    if indexes is None:
        return []
    given: object = indexes  # checked as what it is, not as what it is typed as
    shape = "give PayloadIndex values or a {field: kind} mapping"
    pairs: list[tuple[str, PayloadFieldKind | str]]
    if isinstance(given, Mapping):
        pairs = list(given.items())
    elif isinstance(given, (str, bytes)) or not isinstance(given, Iterable):
        raise InvalidArgument(f"{what} is {given!r}: {shape}")
    else:
        pairs = []
        for index in given:
            if not isinstance(index, PayloadIndex):
                raise InvalidArgument(f"{what} holds {index!r}: {shape}")
            pairs.append((index.field, index.kind))
    return [
        collections_pb2.PayloadIndex(
            field=field,
            kind=_convert.enum_name(
                _convert.enum_arg(PayloadFieldKind, kind, f"kind of payload index {field!r}")
            ),
        )
        for field, kind in pairs
    ]


def columns(
    points: Sequence[Point],
) -> tuple[list[PointId], list[VectorLike], list[Payload | Mapping[str, Any] | None] | None]:
    """Ids, vectors and payloads of `points` (payloads ``None`` when none has one)."""
    for row, point in enumerate(points):
        if not isinstance(point, Point):
            raise InvalidArgument(f"item {row} is {point!r}, not a vectron.Point")
    ids: list[PointId] = [p.id for p in points]
    vectors: list[VectorLike] = [p.vector for p in points]
    payloads: list[Payload | Mapping[str, Any] | None] | None = None
    if any(p.payload is not None for p in points):
        payloads = [p.payload for p in points]
    return ids, vectors, payloads


def stream_batch_size(batch_size: int) -> int:
    """The points per message of an upsert stream: `batch_size`, checked and capped."""
    if batch_size < 1:
        raise InvalidArgument(f"batch_size must be at least 1; got {batch_size}")
    return min(batch_size, MAX_POINTS_PER_REQUEST)


def batched(points: Iterable[Point], size: int) -> Iterator[list[Point]]:
    """`points` in lists of `size` (the last may be shorter)."""
    batch: list[Point] = []
    for point in points:
        batch.append(point)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _search_request(
    collection: str,
    vector: list[float],
    k: int,
    filter: filter_pb2.Filter | None,
    ef: int | None,
    exact: bool,
    with_payload: bool,
    with_vector: bool,
    consistency: str | None,
    timeout_ms: int | None,
    allow_partial_results: bool,
) -> search_pb2.SearchRequest:
    """One ``SearchRequest``."""
    return search_pb2.SearchRequest(
        collection=collection,
        vector=vector,
        k=k,
        ef=ef,
        exact=exact,
        filter=filter,
        with_payload=with_payload,
        with_vector=with_vector,
        consistency=consistency,
        timeout_ms=timeout_ms,
        allow_partial_results=allow_partial_results,
    )


# --- the shared half of a client -----------------------------------------------------


class Calls:
    """A client's settings and every operation of its API, without a transport.

    Holds what the two clients share: the checked settings, the credentials sent, the
    dimensions of the collections the client has seen (to check upserts before sending),
    and one operation per public method.
    """

    def __init__(
        self,
        address: str,
        *,
        api_key: str | None,
        timeout: float | None,
        tls: bool,
        ca_cert: CaCert | None,
        retries: int,
        backoff: float,
        max_retry_after: float,
        read_consistency: ReadConsistency | str | None,
        max_message_bytes: int,
        tls_server_name: str | None,
    ) -> None:
        """Checks a client's arguments (see :class:`vectron.Client`)."""
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidArgument(f"retries must be a non-negative integer; got {retries!r}")
        if timeout is not None and not timeout > 0:
            raise InvalidArgument(f"timeout must be positive seconds or None; got {timeout!r}")
        if not backoff > 0:
            raise InvalidArgument(f"backoff must be positive seconds; got {backoff!r}")
        if max_message_bytes < 1 << 20:
            raise InvalidArgument(
                f"max_message_bytes must be at least 1 MiB; got {max_message_bytes}"
            )
        self.address = address
        #: ``host:port`` to dial, and whether to speak TLS.
        self.target, self.use_tls = resolve_target(address, tls, ca_cert)
        #: The channel's arguments.
        self.options = channel_options(
            max_message_bytes, f"vectron-python/{__version__}", tls_server_name
        )
        #: Sent with every call.
        self.metadata = authorization_metadata(api_key)
        #: Seconds a call may take in all (``None``: the server's deadline).
        self.timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._max_retry_after = max_retry_after
        self._max_bytes = max_message_bytes - _MESSAGE_MARGIN
        self._read_consistency = (
            ReadConsistency.UNSPECIFIED
            if read_consistency is None
            else _convert.enum_arg(ReadConsistency, read_consistency, "read_consistency")
        )
        self._dimensions: dict[str, int] = {}

    def attempts(self, *, idempotent: bool, retries: int | None = None) -> Attempts:
        """The attempts of one call starting now: `retries` (default: the client's) when
        `idempotent`, else none."""
        return Attempts(
            timeout=self.timeout,
            retries=(self._retries if retries is None else retries) if idempotent else 0,
            backoff=self._backoff,
            max_retry_after=self._max_retry_after,
        )

    def _consistency(self, asked: ReadConsistency | str | None) -> str | None:
        """The protobuf name of a read's consistency, or ``None`` to leave it unset."""
        member = (
            self._read_consistency
            if asked is None
            else _convert.enum_arg(ReadConsistency, asked, "consistency")
        )
        if member is ReadConsistency.UNSPECIFIED:
            return None
        return _convert.enum_name(member)

    def _seen(self, info: CollectionInfo) -> CollectionInfo:
        """Remembers a collection's dimension, to check upserts before sending."""
        self._dimensions[info.name] = info.dimension
        return info

    # --- collections -------------------------------------------------------------------

    def create_collection(
        self,
        name: str,
        dimension: int,
        metric: Metric | str,
        *,
        shard_count: int | None,
        replication_factor: int | None,
        hnsw: HnswConfig | None,
        quantization: Quantization | str | None,
        payload_indexes: Mapping[str, PayloadFieldKind | str] | Sequence[PayloadIndex] | None,
        search_cache: SearchCacheSettings | None,
    ) -> Op[CollectionInfo]:
        """Creates a collection. Not retried."""
        spec = collections_pb2.CollectionSpec(
            name=name,
            dimension=dimension,
            metric=_convert.enum_name(_convert.enum_arg(Metric, metric, "metric")),
        )
        if shard_count is not None:
            spec.shard_count = shard_count
        if replication_factor is not None:
            spec.replication_factor = replication_factor
        if hnsw is not None:
            spec.hnsw.SetInParent()
            if hnsw.m is not None:
                spec.hnsw.m = hnsw.m
            if hnsw.ef_construction is not None:
                spec.hnsw.ef_construction = hnsw.ef_construction
            if hnsw.ef is not None:
                spec.hnsw.ef = hnsw.ef
        if quantization is not None:
            member = _convert.enum_arg(Quantization, quantization, "quantization")
            spec.MergeFrom(collections_pb2.CollectionSpec(quantization=_convert.enum_name(member)))
        for index in _payload_indexes(payload_indexes):
            spec.payload_indexes.append(index)
        if search_cache is not None:
            spec.search_cache.CopyFrom(_convert.search_cache_to_proto(search_cache))
        request = collections_pb2.CreateCollectionRequest(spec=spec)
        response = yield from _call(CREATE, request, idempotent=False)
        return self._seen(_convert.collection_from_proto(response.collection))

    def drop_collection(self, name: str) -> Op[None]:
        """Drops a collection. Not retried."""
        self._dimensions.pop(name, None)
        yield from _call(DROP, collections_pb2.DropCollectionRequest(name=name), idempotent=False)

    def list_collections(self) -> Op[list[CollectionInfo]]:
        """Every collection."""
        request = collections_pb2.ListCollectionsRequest()
        response = yield from _call(LIST, request, idempotent=True)
        return [self._seen(_convert.collection_from_proto(c)) for c in response.collections]

    def describe_collection(self, name: str) -> Op[CollectionInfo]:
        """One collection."""
        request = collections_pb2.DescribeCollectionRequest(name=name)
        response = yield from _call(DESCRIBE, request, idempotent=True)
        return self._seen(_convert.collection_from_proto(response))

    def update_collection(
        self,
        name: str,
        *,
        ef: int | None,
        tuning: EfTuning | None,
        add_payload_indexes: Mapping[str, PayloadFieldKind | str] | Sequence[PayloadIndex] | None,
        drop_payload_indexes: Sequence[str] | None,
        search_cache: SearchCacheSettings | None,
    ) -> Op[CollectionInfo]:
        """Changes a collection's mutable settings: its default `ef` (with the
        measurement that chose it), its payload indexes and its search cache settings.
        Retried, unless it drops an index: a retried drop that had been applied would be
        refused."""
        request = collections_pb2.UpdateCollectionRequest(name=name)
        if ef is not None:
            request.spec.hnsw.ef = _default_ef(ef)
        if tuning is not None:
            request.tuning.CopyFrom(_convert.tuning_to_proto(tuning))
        request.add_payload_indexes.extend(
            _payload_indexes(add_payload_indexes, "add_payload_indexes")
        )
        request.drop_payload_indexes.extend(_fields(drop_payload_indexes, "drop_payload_indexes"))
        if search_cache is not None:
            request.spec.search_cache.CopyFrom(_convert.search_cache_to_proto(search_cache))
        if (
            ef is None
            and tuning is None
            and not request.add_payload_indexes
            and not request.drop_payload_indexes
            and not request.spec.search_cache.ListFields()
        ):
            raise InvalidArgument(
                "update_collection changes nothing: give ef (or tuning), "
                "add_payload_indexes, drop_payload_indexes or search_cache"
            )
        idempotent = not request.drop_payload_indexes
        response = yield from _call(UPDATE, request, idempotent=idempotent)
        return self._seen(_convert.collection_from_proto(response))

    def collection_exists(self, name: str) -> Op[bool]:
        """Whether a collection has this name."""
        try:
            yield from self.describe_collection(name)
        except NotFound:
            return False
        return True

    # --- writing points ----------------------------------------------------------------

    def prepare(
        self,
        collection: str,
        vectors: Any,
        ids: Sequence[PointId] | npt.NDArray[Any] | None,
        payloads: Sequence[Mapping[str, Any] | None] | None,
        *,
        stream_width: int | None = None,
    ) -> Op[_encode.PreparedPoints]:
        """Checks points before sending: shape, dtype, finiteness, and the width.

        The width must be `stream_width` when given (the first vector of a stream),
        else the collection's dimension when this client knows it; a mismatch with a
        known dimension is confirmed with the server first, in case the collection was
        recreated meanwhile.
        """
        if stream_width is not None:
            return _encode.prepare_points(
                vectors,
                ids,
                payloads,
                dimension=stream_width,
                dimension_is="the stream's first vector has",
            )
        known = self._dimensions.get(collection)
        try:
            return _encode.prepare_points(vectors, ids, payloads, dimension=known)
        except InvalidArgument as error:
            if known is None:
                raise
            refused = error
        fresh = (yield from self.describe_collection(collection)).dimension
        if fresh == known:
            raise refused
        return _encode.prepare_points(vectors, ids, payloads, dimension=fresh)

    def encode(
        self, collection: str, points: _encode.PreparedPoints, wait: bool | None, batch_size: int
    ) -> Iterator[bytes]:
        """The wire bytes of the ``UpsertRequest`` messages holding `points`."""
        return _encode.encode_upsert_requests(
            collection, points, wait=wait, batch_size=batch_size, max_bytes=self._max_bytes
        )

    def _send_upserts(
        self, collection: str, points: _encode.PreparedPoints, wait: bool | None, batch_size: int
    ) -> Op[UpsertResult]:
        """Sends prepared points as unary upserts, each retried on its own."""
        if len(points) == 0:
            return UpsertResult(count=0, durable=True, ids=())
        count, durable = 0, True
        for request in self.encode(collection, points, wait, batch_size):
            response = yield from _call(UPSERT, request, idempotent=True)
            count += response.count
            durable = durable and response.durable
        return UpsertResult(count=count, durable=durable, ids=tuple(points.ids))

    def upsert(
        self,
        collection: str,
        vectors: npt.ArrayLike,
        ids: Sequence[PointId] | npt.NDArray[Any] | None,
        payloads: Sequence[Mapping[str, Any] | None] | None,
        *,
        wait: bool | None,
        batch_size: int,
    ) -> Op[UpsertResult]:
        """Upserts points given as arrays."""
        prepared = yield from self.prepare(collection, vectors, ids, payloads)
        return (yield from self._send_upserts(collection, prepared, wait, batch_size))

    def upsert_points(
        self, collection: str, points: Iterable[Point], *, wait: bool | None, batch_size: int
    ) -> Op[UpsertResult]:
        """Upserts :class:`Point` values."""
        ids, vectors, payloads = columns(list(points))
        prepared = yield from self.prepare(collection, vectors, ids, payloads)
        return (yield from self._send_upserts(collection, prepared, wait, batch_size))

    def stream_chunk(
        self, collection: str, chunk: Sequence[Point], width: int | None
    ) -> Op[_encode.PreparedPoints]:
        """One message's worth of a stream's points, checked: every vector as wide as
        `width` (the stream's first), or for the first message, as the collection."""
        ids, vectors, payloads = columns(chunk)
        return (yield from self.prepare(collection, vectors, ids, payloads, stream_width=width))

    def upload_plan(
        self,
        collection: str,
        vectors: npt.ArrayLike,
        payloads: Sequence[Mapping[str, Any] | None] | None,
        ids: Sequence[PointId] | npt.NDArray[Any] | None,
        *,
        batch_size: int,
        parallel: int,
        wait: bool | None,
        progress: _upload.ProgressCallback | None,
        max_retries: int,
    ) -> Op[_upload.UploadPlan]:
        """Checks an upload whole, before anything is sent, and cuts it into batches."""
        _upload.check_upload_args(batch_size, parallel, max_retries, progress)
        prepared = yield from self.prepare(collection, vectors, ids, payloads)
        return _upload.UploadPlan(
            collection=collection,
            points=prepared,
            batch_size=batch_size,
            parallel=parallel,
            wait=wait,
            max_retries=max_retries,
            max_bytes=self._max_bytes,
        )

    # --- reading and deleting points ---------------------------------------------------

    def get(
        self,
        collection: str,
        ids: Iterable[PointId],
        *,
        with_payload: bool,
        with_vector: bool,
        consistency: ReadConsistency | str | None,
    ) -> Op[list[Record]]:
        """Points by id, in the order asked."""
        wanted = _ids(ids, "get")
        consistency_name = self._consistency(consistency)
        records: list[Record] = []
        for chunk in _chunks(wanted, MAX_POINTS_PER_REQUEST):
            request = points_pb2.GetRequest(
                collection=collection,
                ids=chunk,
                with_payload=with_payload,
                with_vector=with_vector,
                consistency=consistency_name,
            )
            response = yield from _call(GET, request, idempotent=True)
            records.extend(_convert.record_from_proto(p) for p in response.points)
        return records

    def delete(
        self,
        collection: str,
        ids: Iterable[PointId] | None,
        *,
        filter: Filter | None,
        wait: bool | None,
    ) -> Op[int]:
        """Deletes by ids (retried) or by filter (not retried)."""
        if (ids is None) == (filter is None):
            raise InvalidArgument("delete takes ids or a filter, exactly one of them")
        if ids is None:
            request = points_pb2.DeleteRequest(
                collection=collection, filter=_filter_proto(filter), wait=wait
            )
            return (yield from _call(DELETE, request, idempotent=False)).deleted
        deleted = 0
        for chunk in _chunks(_ids(ids, "delete"), MAX_POINTS_PER_REQUEST):
            request = points_pb2.DeleteRequest(
                collection=collection, ids=points_pb2.PointIds(ids=chunk), wait=wait
            )
            deleted += (yield from _call(DELETE, request, idempotent=True)).deleted
        return deleted

    def count(
        self, collection: str, filter: Filter | None, *, consistency: ReadConsistency | str | None
    ) -> Op[int]:
        """The exact count."""
        request = points_pb2.CountRequest(
            collection=collection,
            filter=_filter_proto(filter),
            consistency=self._consistency(consistency),
        )
        return (yield from _call(COUNT, request, idempotent=True)).count

    def scroll(
        self,
        collection: str,
        *,
        offset: str | None,
        limit: int,
        filter: Filter | None,
        with_payload: bool,
        with_vector: bool,
        consistency: ReadConsistency | str | None,
    ) -> Op[ScrollPage]:
        """One page of points in id order."""
        request = points_pb2.ScrollRequest(
            collection=collection,
            offset=offset or "",
            limit=limit,
            filter=_filter_proto(filter),
            with_payload=with_payload,
            with_vector=with_vector,
            consistency=self._consistency(consistency),
        )
        response = yield from _call(SCROLL, request, idempotent=True)
        return ScrollPage(
            points=tuple(_convert.record_from_proto(p) for p in response.points),
            next_offset=response.next_offset or None,
        )

    # --- search ------------------------------------------------------------------------

    def search(
        self,
        collection: str,
        vector: VectorLike,
        k: int,
        *,
        filter: Filter | None,
        ef: int | None,
        exact: bool,
        with_payload: bool,
        with_vector: bool,
        consistency: ReadConsistency | str | None,
        timeout_ms: int | None,
        allow_partial_results: bool,
    ) -> Op[SearchResult]:
        """One top-k search."""
        request = self.search_request(
            collection,
            vector,
            k,
            filter=filter,
            ef=ef,
            exact=exact,
            with_payload=with_payload,
            with_vector=with_vector,
            consistency=consistency,
            timeout_ms=timeout_ms,
            allow_partial_results=allow_partial_results,
        )
        response = yield from _call(SEARCH, request, idempotent=True)
        return _convert.search_result_from_proto(response)

    def search_request(
        self,
        collection: str,
        vector: VectorLike,
        k: int,
        *,
        filter: Filter | None,
        ef: int | None,
        exact: bool,
        with_payload: bool,
        with_vector: bool,
        consistency: ReadConsistency | str | None,
        timeout_ms: int | None,
        allow_partial_results: bool,
    ) -> search_pb2.SearchRequest:
        """The checked request of one search, unary or streamed (``SearchStream``)."""
        _check_exact(exact, ef)
        return _search_request(
            collection,
            _query_vector(vector, "vector"),
            k,
            _filter_proto(filter),
            ef,
            exact,
            with_payload,
            with_vector,
            self._consistency(consistency),
            timeout_ms,
            allow_partial_results,
        )

    def search_events(self) -> SearchEvents:
        """The reading of one streamed search starting now: retried before its first
        event as a search is (it is idempotent)."""
        return SearchEvents(self.attempts(idempotent=True))

    def search_batch(
        self,
        collection: str,
        vectors: npt.ArrayLike,
        k: int,
        *,
        filter: Filter | None,
        ef: int | None,
        exact: bool,
        with_payload: bool,
        with_vector: bool,
        consistency: ReadConsistency | str | None,
        timeout_ms: int | None,
        allow_partial_results: bool,
    ) -> Op[list[SearchResult]]:
        """One search per row, split into batches of at most 1000."""
        _check_exact(exact, ef)
        queries = _query_rows(vectors)
        filter_message = _filter_proto(filter)
        consistency_name = self._consistency(consistency)
        results: list[SearchResult] = []
        for chunk in _chunks(queries, MAX_SEARCHES_PER_BATCH):
            request = search_pb2.SearchBatchRequest(
                searches=[
                    _search_request(
                        collection,
                        query,
                        k,
                        filter_message,
                        ef,
                        exact,
                        with_payload,
                        with_vector,
                        consistency_name,
                        timeout_ms,
                        allow_partial_results,
                    )
                    for query in chunk
                ]
            )
            response = yield from _call(SEARCH_BATCH, request, idempotent=True)
            results.extend(_convert.search_result_from_proto(r) for r in response.results)
        return results

    # --- statistics --------------------------------------------------------------------

    def core_stats(self, worker_id: str) -> Op[CoreStatsResult]:
        """Statistics of cores."""
        request = stats_pb2.CoreStatsRequest(worker_id=worker_id)
        response = yield from _call(CORES, request, idempotent=True)
        return _convert.core_stats_from_proto(response)

    # --- keys, plans, users (admin) ----------------------------------------------------

    def create_key(
        self,
        role: KeyRole | str,
        *,
        grants: Mapping[str, Access | str] | None,
        description: str,
        plan: str,
    ) -> Op[CreatedKey]:
        """Makes an API key. Not retried."""
        request = keys_pb2.CreateKeyRequest(
            role=_convert.enum_name(_convert.enum_arg(KeyRole, role, "role")),
            grants=_convert.grants_to_proto(grants),
            description=description,
            plan=plan,
        )
        response = yield from _call(CREATE_KEY, request, idempotent=False)
        return CreatedKey(key=_convert.key_from_proto(response.key), secret=response.secret)

    def list_keys(self) -> Op[list[KeyInfo]]:
        """Every API key."""
        response = yield from _call(LIST_KEYS, keys_pb2.ListKeysRequest(), idempotent=True)
        return [_convert.key_from_proto(k) for k in response.keys]

    def revoke_key(self, key_id: str) -> Op[None]:
        """Revokes a key. Not retried."""
        yield from _call(REVOKE_KEY, keys_pb2.RevokeKeyRequest(id=key_id), idempotent=False)

    def create_token(
        self,
        subject: str,
        role: KeyRole | str,
        *,
        grants: Mapping[str, Access | str] | None,
        ttl_seconds: int,
        plan: str,
    ) -> Op[Token]:
        """Mints a token. Retried: minting changes nothing."""
        request = keys_pb2.CreateTokenRequest(
            subject=subject,
            role=_convert.enum_name(_convert.enum_arg(KeyRole, role, "role")),
            grants=_convert.grants_to_proto(grants),
            ttl_seconds=ttl_seconds,
            plan=plan,
        )
        response = yield from _call(CREATE_TOKEN, request, idempotent=True)
        return Token(token=response.token, expires_at_unix_s=response.expires_at_unix_s)

    def set_plan(self, plan: Plan) -> Op[Plan]:
        """Makes or changes a plan. Retried."""
        request = plans_pb2.Plan(
            name=plan.name,
            requests_per_second=plan.requests_per_second,
            burst=plan.burst,
            max_collections=plan.max_collections,
            max_points=plan.max_points,
        )
        return _convert.plan_from_proto((yield from _call(SET_PLAN, request, idempotent=True)))

    def list_plans(self) -> Op[list[Plan]]:
        """Every plan."""
        response = yield from _call(LIST_PLANS, plans_pb2.ListPlansRequest(), idempotent=True)
        return [_convert.plan_from_proto(p) for p in response.plans]

    def delete_plan(self, name: str) -> Op[None]:
        """Deletes a plan. Not retried."""
        yield from _call(DELETE_PLAN, plans_pb2.DeletePlanRequest(name=name), idempotent=False)

    def create_user(
        self,
        name: str,
        password: str,
        role: KeyRole | str,
        *,
        grants: Mapping[str, Access | str] | None,
        plan: str,
    ) -> Op[UserInfo]:
        """Makes a user. Not retried."""
        request = users_pb2.CreateUserRequest(
            name=name,
            password=password,
            role=_convert.enum_name(_convert.enum_arg(KeyRole, role, "role")),
            grants=_convert.grants_to_proto(grants),
            plan=plan,
        )
        return _convert.user_from_proto((yield from _call(CREATE_USER, request, idempotent=False)))

    def list_users(self) -> Op[list[UserInfo]]:
        """Every user."""
        response = yield from _call(LIST_USERS, users_pb2.ListUsersRequest(), idempotent=True)
        return [_convert.user_from_proto(u) for u in response.users]

    def delete_user(self, name: str) -> Op[None]:
        """Deletes a user. Not retried."""
        yield from _call(DELETE_USER, users_pb2.DeleteUserRequest(name=name), idempotent=False)

    def login(self, name: str, password: str, *, ttl_seconds: int) -> Op[Token]:
        """Logs in. Not retried: each try counts against the login limit."""
        request = users_pb2.LoginRequest(name=name, password=password, ttl_seconds=ttl_seconds)
        response = yield from _call(LOGIN, request, idempotent=False)
        return Token(token=response.token, expires_at_unix_s=response.expires_at_unix_s)
