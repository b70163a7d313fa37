"""The synchronous client: one gRPC channel to a gateway, shared by every call."""

from __future__ import annotations

import queue
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc
import numpy as np
import numpy.typing as npt
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message

from vectron import _convert, _encode
from vectron._channel import (
    DEFAULT_MAX_MESSAGE_BYTES,
    CaCert,
    authorization_metadata,
    channel_options,
    open_channel,
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
    SearchResult,
    Token,
    UpsertResult,
    UserInfo,
    VectorLike,
)

__all__ = ["MAX_POINTS_PER_REQUEST", "MAX_SEARCHES_PER_BATCH", "Client"]

#: Most points the server accepts in one upsert, get or delete request.
MAX_POINTS_PER_REQUEST = _encode.MAX_POINTS_PER_REQUEST
#: Most searches the server accepts in one batch; :meth:`Client.search_batch` splits more.
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


def _jitter(delay: float) -> float:
    """`delay` times a random factor in [0.5, 1.5), so clients do not retry in step."""
    return delay * random.uniform(0.5, 1.5)


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


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Client:
    """A Vectron client over one gRPC channel (HTTP/2), safe to share between threads.

    Calls raise a :class:`vectron.VectronError` subclass per status code. Idempotent
    calls (reads, searches, listings, upserts and deletes by id) are retried with
    jittered exponential backoff when the server answers ``UNAVAILABLE``, and after the
    server's ``retry-after`` when it refuses for load (``RESOURCE_EXHAUSTED``); creating
    and dropping collections, deletes by filter, streamed upserts and admin writes are
    never retried.

    >>> with Client("127.0.0.1:6334") as client:  # doctest: +SKIP
    ...     client.create_collection("docs", dimension=3, metric="cosine")
    ...     client.upsert("docs", [[0.1, 0.2, 0.3]], ids=["a"], payloads=[{"kind": "moon"}])
    ...     hits = client.search("docs", [0.1, 0.2, 0.3], k=5)
    """

    def __init__(
        self,
        address: str = "127.0.0.1:6334",
        *,
        api_key: str | None = None,
        timeout: float | None = None,
        tls: bool = False,
        ca_cert: CaCert | None = None,
        retries: int = 3,
        backoff: float = 0.05,
        max_retry_after: float = 30.0,
        read_consistency: ReadConsistency | str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        tls_server_name: str | None = None,
    ) -> None:
        """Makes a client of the gateway at `address`; it connects on first use.

        Args:
            address: ``host:port`` of the gateway's gRPC listener, or ``http://host:port``
                / ``https://host:port``.
            api_key: Sent with every call as ``authorization: Bearer <key>``: an API key
                (``vk_...``), the gateway's admin key, or a token. Needed when the
                gateway runs with ``--auth``.
            timeout: Seconds a call may take in all, retries and their pauses included;
                ``None`` leaves the deadline to the server (10 s by default).
            tls: Speak TLS (trusting the system's roots unless `ca_cert` is given).
            ca_cert: Trust this CA certificate instead of the system's: PEM bytes or
                text, or a file path. Implies `tls`.
            retries: How often an idempotent call is retried (0: never).
            backoff: First pause before a retry after ``UNAVAILABLE``, in seconds; it
                doubles each time, up to 2 s, with jitter.
            max_retry_after: Longest ``retry-after`` (seconds) the client waits out;
                a refusal asking for longer is raised as :class:`ResourceExhausted`.
            read_consistency: Consistency of reads that set none (default: the
                server's, eventual).
            max_message_bytes: Largest message sent or received (default 64 MiB, the
                server's limit); upserts are split to stay under it.
            tls_server_name: Check the server's certificate against this name instead
                of the address's host.
        """
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
        target, use_tls = resolve_target(address, tls, ca_cert)
        self._address = address
        self._timeout = timeout
        self._retries = retries
        self._backoff = backoff
        self._max_retry_after = max_retry_after
        self._max_message_bytes = max_message_bytes
        self._read_consistency = (
            ReadConsistency.UNSPECIFIED
            if read_consistency is None
            else _convert.enum_arg(ReadConsistency, read_consistency, "read_consistency")
        )
        self._metadata = authorization_metadata(api_key)
        self._dimensions: dict[str, int] = {}
        self._closed = False
        self._channel = open_channel(
            target,
            use_tls=use_tls,
            ca_cert=ca_cert,
            options=channel_options(
                max_message_bytes, f"vectron-python/{__version__}", tls_server_name
            ),
        )

        pb_c, pb_p = collections_pb2, points_pb2
        self._create = self._unary(
            "Collections", "Create", pb_c.CreateCollectionRequest, pb_c.CreateCollectionResponse
        )
        self._drop = self._unary(
            "Collections", "Drop", pb_c.DropCollectionRequest, pb_c.DropCollectionResponse
        )
        self._list = self._unary(
            "Collections", "List", pb_c.ListCollectionsRequest, pb_c.ListCollectionsResponse
        )
        self._describe = self._unary(
            "Collections", "Describe", pb_c.DescribeCollectionRequest, pb_c.CollectionInfo
        )
        self._get = self._unary("Points", "Get", pb_p.GetRequest, pb_p.GetResponse)
        self._delete = self._unary("Points", "Delete", pb_p.DeleteRequest, pb_p.DeleteResponse)
        self._count = self._unary("Points", "Count", pb_p.CountRequest, pb_p.CountResponse)
        self._scroll = self._unary("Points", "Scroll", pb_p.ScrollRequest, pb_p.ScrollResponse)
        self._search = self._unary(
            "Points", "Search", search_pb2.SearchRequest, search_pb2.SearchResponse
        )
        self._search_batch = self._unary(
            "Points", "SearchBatch", search_pb2.SearchBatchRequest, search_pb2.SearchBatchResponse
        )
        # Upserts travel as wire bytes made by vectron._encode: no request serializer.
        self._upsert_raw: grpc.UnaryUnaryMultiCallable[bytes, points_pb2.UpsertResponse] = (
            self._channel.unary_unary(
                _method_path("Points", "Upsert", pb_p.UpsertRequest, pb_p.UpsertResponse),
                request_serializer=None,
                response_deserializer=pb_p.UpsertResponse.FromString,
            )
        )
        self._upsert_stream_raw: grpc.StreamUnaryMultiCallable[bytes, points_pb2.UpsertResponse] = (
            self._channel.stream_unary(
                _method_path("Points", "UpsertStream", pb_p.UpsertRequest, pb_p.UpsertResponse),
                request_serializer=None,
                response_deserializer=pb_p.UpsertResponse.FromString,
            )
        )
        self._cores = self._unary(
            "Stats", "Cores", stats_pb2.CoreStatsRequest, stats_pb2.CoreStatsResponse
        )
        pb_k = keys_pb2
        self._create_key = self._unary(
            "Keys", "Create", pb_k.CreateKeyRequest, pb_k.CreateKeyResponse
        )
        self._list_keys = self._unary("Keys", "List", pb_k.ListKeysRequest, pb_k.ListKeysResponse)
        self._revoke_key = self._unary(
            "Keys", "Revoke", pb_k.RevokeKeyRequest, pb_k.RevokeKeyResponse
        )
        self._create_token = self._unary(
            "Keys", "CreateToken", pb_k.CreateTokenRequest, pb_k.CreateTokenResponse
        )
        self._set_plan = self._unary("Plans", "Set", plans_pb2.Plan, plans_pb2.Plan)
        self._list_plans = self._unary(
            "Plans", "List", plans_pb2.ListPlansRequest, plans_pb2.ListPlansResponse
        )
        self._delete_plan = self._unary(
            "Plans", "Delete", plans_pb2.DeletePlanRequest, plans_pb2.DeletePlanResponse
        )
        pb_u = users_pb2
        self._create_user = self._unary("Users", "Create", pb_u.CreateUserRequest, pb_u.UserInfo)
        self._list_users = self._unary(
            "Users", "List", pb_u.ListUsersRequest, pb_u.ListUsersResponse
        )
        self._delete_user = self._unary(
            "Users", "Delete", pb_u.DeleteUserRequest, pb_u.DeleteUserResponse
        )
        self._login = self._unary("Users", "Login", pb_u.LoginRequest, pb_u.LoginResponse)

    # --- plumbing ----------------------------------------------------------------------

    def _unary(
        self, service: str, method: str, request: type[Msg], response: type[Resp]
    ) -> grpc.UnaryUnaryMultiCallable[Msg, Resp]:
        """A unary multicallable for `service.method` with protobuf (de)serialization."""
        return self._channel.unary_unary(
            _method_path(service, method, request, response),
            request_serializer=request.SerializeToString,
            response_deserializer=response.FromString,
        )

    def _retry_pause(self, error: VectronError, backoff: float) -> float | None:
        """How long to wait before retrying after `error`, or ``None`` not to retry."""
        if isinstance(error, Unavailable):
            return _jitter(backoff)
        if isinstance(error, ResourceExhausted) and error.retry_after is not None:
            if error.retry_after <= self._max_retry_after:
                return error.retry_after
        return None

    @staticmethod
    def _classify(rpc_error: grpc.RpcError, deadline: float | None) -> VectronError:
        """The error of a failed call whose client deadline was `deadline`."""
        error = from_rpc_error(rpc_error)
        if (
            isinstance(error, Cancelled)
            and deadline is not None
            and time.monotonic() >= deadline - _DEADLINE_SLACK
        ):
            # The server's own timer on our deadline answers CANCELLED (tonic's "Timeout
            # expired"); to the caller it is the deadline passing.
            return DeadlineExceeded(error.message)
        return error

    def _run(self, attempt: Callable[[float | None], T], *, idempotent: bool) -> T:
        """Runs a call, retrying it when `idempotent` and the failure allows.

        `attempt` gets the seconds left before the client's deadline (``None``: none).
        """
        if self._closed:
            raise RuntimeError("this Client is closed")
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        backoff = self._backoff
        retries_left = self._retries if idempotent else 0
        while True:
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                return attempt(remaining)
            except grpc.RpcError as rpc_error:
                error = self._classify(rpc_error, deadline)
                cause: BaseException = rpc_error
            pause = self._retry_pause(error, backoff) if retries_left > 0 else None
            if pause is None or (deadline is not None and time.monotonic() + pause >= deadline):
                raise error from cause
            time.sleep(pause)
            retries_left -= 1
            backoff = min(backoff * 2, _MAX_BACKOFF)

    def _invoke(
        self, call: grpc.UnaryUnaryMultiCallable[Req, Resp], request: Req, *, idempotent: bool
    ) -> Resp:
        """One unary call with this client's credentials, deadline and retries."""
        return self._run(
            lambda timeout: call(request, timeout=timeout, metadata=self._metadata),
            idempotent=idempotent,
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

    # --- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled. Closing twice is harmless."""
        if not self._closed:
            self._closed = True
            self._channel.close()

    def __enter__(self) -> Client:
        """The client itself; :meth:`close` runs on leaving the ``with`` block."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Closes the client."""
        self.close()

    def __repr__(self) -> str:
        """The address and whether a key is set (never the key)."""
        key = "set" if self._metadata else "none"
        return f"Client({self._address!r}, api_key={key}, closed={self._closed})"

    # --- collections -------------------------------------------------------------------

    def create_collection(
        self,
        name: str,
        dimension: int,
        metric: Metric | str = Metric.COSINE,
        *,
        shard_count: int | None = None,
        replication_factor: int | None = None,
        hnsw: HnswConfig | None = None,
        quantization: Quantization | str | None = None,
        payload_indexes: Mapping[str, PayloadFieldKind | str]
        | Sequence[PayloadIndex]
        | None = None,
    ) -> CollectionInfo:
        """Creates a collection and returns it with every default resolved. Not retried.

        Args:
            name: 1 to 64 characters from ``[A-Za-z0-9_-]``, starting with a letter or
                a digit.
            dimension: Number of float32 values in every vector (1 to 65536).
            metric: ``"cosine"`` (default), ``"l2"`` or ``"dot"``.
            shard_count: Shards, fixed at creation (default: one per worker core).
            replication_factor: Copies of every shard on different workers (default 1).
            hnsw: Graph parameters; unset fields take the server's defaults.
            quantization: ``"none"`` (default) or ``"int8"``.
            payload_indexes: Fields to index: ``{"kind": "keyword", "year": "numeric"}``
                or a list of :class:`PayloadIndex`.

        Raises:
            AlreadyExists: The name is taken.
            InvalidArgument: The spec breaks a rule.
            FailedPrecondition: The shards cannot be placed.
        """
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
        for index in self._payload_indexes(payload_indexes):
            spec.payload_indexes.append(index)
        response = self._invoke(
            self._create, collections_pb2.CreateCollectionRequest(spec=spec), idempotent=False
        )
        info = _convert.collection_from_proto(response.collection)
        self._dimensions[info.name] = info.dimension
        return info

    @staticmethod
    def _payload_indexes(
        indexes: Mapping[str, PayloadFieldKind | str] | Sequence[PayloadIndex] | None,
    ) -> list[collections_pb2.PayloadIndex]:
        """Payload indexes given as a mapping or a list, as messages."""
        if indexes is None:
            return []
        pairs: list[tuple[str, PayloadFieldKind | str]]
        if isinstance(indexes, Mapping):
            pairs = list(indexes.items())
        else:
            pairs = []
            for index in indexes:
                if not isinstance(index, PayloadIndex):
                    raise InvalidArgument(
                        f"payload_indexes holds {index!r}: give PayloadIndex values or a "
                        "{field: kind} mapping"
                    )
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

    def drop_collection(self, name: str) -> None:
        """Drops a collection and every point in it. Dropping is final. Not retried.

        Raises:
            NotFound: No collection has that name.
        """
        self._dimensions.pop(name, None)
        self._invoke(self._drop, collections_pb2.DropCollectionRequest(name=name), idempotent=False)

    def list_collections(self) -> list[CollectionInfo]:
        """Every collection, ordered by name (point counts as last reported)."""
        response = self._invoke(
            self._list, collections_pb2.ListCollectionsRequest(), idempotent=True
        )
        infos = [_convert.collection_from_proto(c) for c in response.collections]
        for info in infos:
            self._dimensions[info.name] = info.dimension
        return infos

    def describe_collection(self, name: str) -> CollectionInfo:
        """One collection: spec, state, point count, shards and replicas as of the call.

        Raises:
            NotFound: No collection has that name.
        """
        response = self._invoke(
            self._describe, collections_pb2.DescribeCollectionRequest(name=name), idempotent=True
        )
        info = _convert.collection_from_proto(response)
        self._dimensions[info.name] = info.dimension
        return info

    def collection_exists(self, name: str) -> bool:
        """Whether a collection has this name."""
        try:
            self.describe_collection(name)
        except NotFound:
            return False
        return True

    # --- writing points ----------------------------------------------------------------

    def _prepare(
        self,
        collection: str,
        vectors: Any,
        ids: Sequence[PointId] | npt.NDArray[Any] | None,
        payloads: Sequence[Mapping[str, Any] | None] | None,
        *,
        stream_width: int | None = None,
    ) -> _encode.PreparedPoints:
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
        except InvalidArgument:
            if known is None:
                raise
            fresh = self.describe_collection(collection).dimension
            if fresh == known:
                raise
            return _encode.prepare_points(vectors, ids, payloads, dimension=fresh)

    def _send_upserts(
        self, collection: str, points: _encode.PreparedPoints, wait: bool | None, batch_size: int
    ) -> UpsertResult:
        """Sends prepared points as unary upserts, each retried on its own."""
        count, durable = 0, True
        for request in _encode.encode_upsert_requests(
            collection,
            points,
            wait=wait,
            batch_size=batch_size,
            max_bytes=self._max_message_bytes - _MESSAGE_MARGIN,
        ):
            response = self._invoke(self._upsert_raw, request, idempotent=True)
            count += response.count
            durable = durable and response.durable
        return UpsertResult(count=count, durable=durable, ids=tuple(points.ids))

    def upsert(
        self,
        collection: str,
        vectors: npt.ArrayLike,
        ids: Sequence[PointId] | npt.NDArray[Any] | None = None,
        payloads: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        wait: bool | None = None,
        batch_size: int = 1000,
    ) -> UpsertResult:
        """Inserts or replaces points given as arrays; replacing replaces vector and payload.

        The input is checked before anything is sent: `vectors` must be 2-D (a numpy
        array or a list of lists), of real numbers (converted to float32), finite, and as
        wide as the collection's dimension when this client knows it. Vectors are then
        written to the wire with one ``tobytes()`` per row.

        Args:
            collection: The collection to write to.
            vectors: Shape (points, dimension).
            ids: One id per row (strings, or integers sent as their decimal string);
                ``None`` generates random UUIDs, returned in the result.
            payloads: One JSON object (or ``None``) per row.
            wait: ``None``/``True``: return once the points are durable and visible;
                ``False``: once they are validated and queued.
            batch_size: Points per request (at most 10000); requests also stay under the
                message size limit. Each request is retried on its own; if one fails,
                the ones before it stay written (upserts are idempotent: resend).

        Raises:
            InvalidArgument: Bad input, found by the client (naming the row) or by the
                server (naming the point).
            NotFound: No such collection.
        """
        prepared = self._prepare(collection, vectors, ids, payloads)
        if len(prepared) == 0:
            return UpsertResult(count=0, durable=True, ids=())
        return self._send_upserts(collection, prepared, wait, batch_size)

    def upsert_points(
        self,
        collection: str,
        points: Iterable[Point],
        *,
        wait: bool | None = None,
        batch_size: int = 1000,
    ) -> UpsertResult:
        """Inserts or replaces :class:`Point` values; like :meth:`upsert` otherwise."""
        ids, vectors, payloads = self._columns(list(points))
        prepared = self._prepare(collection, vectors, ids, payloads)
        if len(prepared) == 0:
            return UpsertResult(count=0, durable=True, ids=())
        return self._send_upserts(collection, prepared, wait, batch_size)

    @staticmethod
    def _columns(
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

    def upsert_stream(
        self,
        collection: str,
        points: Iterable[Point],
        *,
        wait: bool | None = None,
        batch_size: int = 1000,
    ) -> UpsertResult:
        """Bulk ingest over one ``UpsertStream`` call: `points` is consumed lazily, in
        messages of `batch_size` points, and the call returns once every point is
        acknowledged (durable, unless `wait` is ``False``).

        The iterator runs in the calling thread; each message is checked (as in
        :meth:`upsert`, and every vector as wide as the first) before it is sent. On the
        first error the call fails with it; messages sent before it stay written. An
        empty iterable sends nothing. Not retried: the iterator is consumed. The
        result's ``ids`` is empty.
        """
        if batch_size < 1:
            raise InvalidArgument(f"batch_size must be at least 1; got {batch_size}")
        batch_size = min(batch_size, MAX_POINTS_PER_REQUEST)
        if self._closed:
            raise RuntimeError("this Client is closed")
        outbox: queue.Queue[bytes | None] = queue.Queue(maxsize=4)

        def requests() -> Iterator[bytes]:
            """The messages, read by gRPC's thread until the ``None`` that ends them."""
            while True:
                item = outbox.get()
                if item is None:
                    return
                yield item

        # The call starts with its first message: an empty iterable makes no call, and a
        # first message refused by the client's checks sends nothing.
        call: grpc.Future[points_pb2.UpsertResponse] | None = None
        deadline: float | None = None

        def send(item: bytes | None) -> bool:
            """Queues `item` for the stream; false once the call has ended."""
            nonlocal call, deadline
            if call is None:
                deadline = None if self._timeout is None else time.monotonic() + self._timeout
                call = self._upsert_stream_raw.future(
                    requests(), timeout=self._timeout, metadata=self._metadata
                )
            while not call.done():
                try:
                    outbox.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            width: int | None = None
            for chunk in self._batched(points, batch_size):
                ids, vectors, payloads = self._columns(chunk)
                prepared = self._prepare(collection, vectors, ids, payloads, stream_width=width)
                if width is None:
                    width = int(prepared.vectors.shape[1])
                sent = all(
                    send(request)
                    for request in _encode.encode_upsert_requests(
                        collection,
                        prepared,
                        wait=wait,
                        batch_size=batch_size,
                        max_bytes=self._max_message_bytes - _MESSAGE_MARGIN,
                    )
                )
                if not sent:
                    break  # the call ended early: its result says why
            if call is None:
                return UpsertResult(count=0, durable=True)
            send(None)
        except BaseException:
            if call is not None:
                call.cancel()
            self._unblock(outbox)
            raise
        try:
            response = call.result()
        except grpc.RpcError as rpc_error:
            raise self._classify(rpc_error, deadline) from rpc_error
        except grpc.FutureCancelledError:
            raise Cancelled("the upsert stream was cancelled before the server answered") from None
        finally:
            # The call is over: if it ended before the iterator did, let gRPC's thread go.
            self._unblock(outbox)
        return UpsertResult(count=response.count, durable=response.durable)

    @staticmethod
    def _batched(points: Iterable[Point], size: int) -> Iterator[list[Point]]:
        """`points` in lists of `size` (the last may be shorter)."""
        batch: list[Point] = []
        for point in points:
            batch.append(point)
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch

    @staticmethod
    def _unblock(outbox: queue.Queue[bytes | None]) -> None:
        """Empties the queue and ends the request iterator, so gRPC's thread returns."""
        while True:
            try:
                outbox.get_nowait()
            except queue.Empty:
                break
        try:
            outbox.put_nowait(None)
        except queue.Full:
            pass

    # --- reading and deleting points ---------------------------------------------------

    def get(
        self,
        collection: str,
        ids: Iterable[PointId],
        *,
        with_payload: bool = True,
        with_vector: bool = False,
        consistency: ReadConsistency | str | None = None,
    ) -> list[Record]:
        """Reads points by id, in the order asked; ids that do not exist are left out."""
        wanted = _ids(ids, "get")
        records: list[Record] = []
        for chunk in _chunks(wanted, MAX_POINTS_PER_REQUEST):
            request = points_pb2.GetRequest(
                collection=collection,
                ids=chunk,
                with_payload=with_payload,
                with_vector=with_vector,
                consistency=self._consistency(consistency),
            )
            response = self._invoke(self._get, request, idempotent=True)
            records.extend(_convert.record_from_proto(p) for p in response.points)
        return records

    def delete(
        self,
        collection: str,
        ids: Iterable[PointId] | None = None,
        *,
        filter: Filter | None = None,
        wait: bool | None = None,
    ) -> int:
        """Deletes points by id or by filter (exactly one) and returns how many existed.

        Deletes by id are retried (deleting twice deletes once); deletes by filter are
        not. An empty filter is refused by the server: drop the collection instead.
        """
        if (ids is None) == (filter is None):
            raise InvalidArgument("delete takes ids or a filter, exactly one of them")
        if filter is not None:
            request = points_pb2.DeleteRequest(
                collection=collection, filter=_filter_proto(filter), wait=wait
            )
            return self._invoke(self._delete, request, idempotent=False).deleted
        assert ids is not None
        deleted = 0
        for chunk in _chunks(_ids(ids, "delete"), MAX_POINTS_PER_REQUEST):
            request = points_pb2.DeleteRequest(
                collection=collection, ids=points_pb2.PointIds(ids=chunk), wait=wait
            )
            deleted += self._invoke(self._delete, request, idempotent=True).deleted
        return deleted

    def count(
        self,
        collection: str,
        filter: Filter | None = None,
        *,
        consistency: ReadConsistency | str | None = None,
    ) -> int:
        """Counts the points exactly, optionally those passing `filter`."""
        request = points_pb2.CountRequest(
            collection=collection,
            filter=_filter_proto(filter),
            consistency=self._consistency(consistency),
        )
        return self._invoke(self._count, request, idempotent=True).count

    def scroll(
        self,
        collection: str,
        *,
        offset: str | None = None,
        limit: int = 100,
        filter: Filter | None = None,
        with_payload: bool = True,
        with_vector: bool = False,
        consistency: ReadConsistency | str | None = None,
    ) -> ScrollPage:
        """One page of points in ascending byte order of their ids (``"10"`` before
        ``"9"``). Pass the page's ``next_offset`` as `offset` to continue; it is ``None``
        after the last page."""
        request = points_pb2.ScrollRequest(
            collection=collection,
            offset=offset or "",
            limit=limit,
            filter=_filter_proto(filter),
            with_payload=with_payload,
            with_vector=with_vector,
            consistency=self._consistency(consistency),
        )
        response = self._invoke(self._scroll, request, idempotent=True)
        return ScrollPage(
            points=tuple(_convert.record_from_proto(p) for p in response.points),
            next_offset=response.next_offset or None,
        )

    def iter_points(
        self,
        collection: str,
        *,
        filter: Filter | None = None,
        page_size: int = 1000,
        with_payload: bool = True,
        with_vector: bool = False,
        consistency: ReadConsistency | str | None = None,
    ) -> Iterator[Record]:
        """Every point (passing `filter`), in id order, scrolling `page_size` at a time."""
        offset: str | None = None
        while True:
            page = self.scroll(
                collection,
                offset=offset,
                limit=page_size,
                filter=filter,
                with_payload=with_payload,
                with_vector=with_vector,
                consistency=consistency,
            )
            yield from page.points
            if page.next_offset is None:
                return
            offset = page.next_offset

    # --- search ------------------------------------------------------------------------

    def _search_request(
        self,
        collection: str,
        vector: list[float],
        k: int,
        filter: filter_pb2.Filter | None,
        ef: int | None,
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
            filter=filter,
            with_payload=with_payload,
            with_vector=with_vector,
            consistency=consistency,
            timeout_ms=timeout_ms,
            allow_partial_results=allow_partial_results,
        )

    def search(
        self,
        collection: str,
        vector: VectorLike,
        k: int = 10,
        *,
        filter: Filter | None = None,
        ef: int | None = None,
        with_payload: bool = True,
        with_vector: bool = False,
        consistency: ReadConsistency | str | None = None,
        timeout_ms: int | None = None,
        allow_partial_results: bool = False,
    ) -> SearchResult:
        """Top-`k` similarity search; hits best first (higher scores are better).

        Args:
            collection: The collection to search.
            vector: The query: the collection's dimension, finite values.
            k: Hits wanted (1 to 10000).
            filter: Only points passing it are returned.
            ef: Candidate list size (larger: slower, more accurate); default the
                collection's.
            with_payload: Return each hit's payload.
            with_vector: Return each hit's stored vector.
            consistency: Freshness required (default: the client's).
            timeout_ms: The server's time budget for this search.
            allow_partial_results: Return the hits of the shards that answered when some
                cannot, listing the others in ``missing_shards``.
        """
        request = self._search_request(
            collection,
            _query_vector(vector, "vector"),
            k,
            _filter_proto(filter),
            ef,
            with_payload,
            with_vector,
            self._consistency(consistency),
            timeout_ms,
            allow_partial_results,
        )
        response = self._invoke(self._search, request, idempotent=True)
        return _convert.search_result_from_proto(response)

    def search_batch(
        self,
        collection: str,
        vectors: npt.ArrayLike,
        k: int = 10,
        *,
        filter: Filter | None = None,
        ef: int | None = None,
        with_payload: bool = True,
        with_vector: bool = False,
        consistency: ReadConsistency | str | None = None,
        timeout_ms: int | None = None,
        allow_partial_results: bool = False,
    ) -> list[SearchResult]:
        """One search per row of `vectors` (2-D), with the same parameters as
        :meth:`search`; results in row order. The searches of one call run concurrently
        on the server, 1000 per request at most (more are split)."""
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
        queries = [_query_vector(row, f"query {i}") for i, row in enumerate(rows)]
        filter_message = _filter_proto(filter)
        consistency_name = self._consistency(consistency)
        results: list[SearchResult] = []
        for chunk in _chunks(queries, MAX_SEARCHES_PER_BATCH):
            request = search_pb2.SearchBatchRequest(
                searches=[
                    self._search_request(
                        collection,
                        query,
                        k,
                        filter_message,
                        ef,
                        with_payload,
                        with_vector,
                        consistency_name,
                        timeout_ms,
                        allow_partial_results,
                    )
                    for query in chunk
                ]
            )
            response = self._invoke(self._search_batch, request, idempotent=True)
            results.extend(_convert.search_result_from_proto(r) for r in response.results)
        return results

    # --- statistics --------------------------------------------------------------------

    def core_stats(self, worker_id: str = "") -> CoreStatsResult:
        """Statistics of every core of one worker, or of the whole cluster (empty id)."""
        response = self._invoke(
            self._cores, stats_pb2.CoreStatsRequest(worker_id=worker_id), idempotent=True
        )
        return _convert.core_stats_from_proto(response)

    # --- keys (admin) ------------------------------------------------------------------

    def create_key(
        self,
        role: KeyRole | str,
        *,
        grants: Mapping[str, Access | str] | None = None,
        description: str = "",
        plan: str = "",
    ) -> CreatedKey:
        """Makes an API key (an admin's call). The result's ``secret`` is the whole key
        to hand over; it is shown this once. Not retried.

        Args:
            role: ``"admin"``, ``"read"`` or ``"scoped"`` (needs grants).
            grants: ``{collection: "read" | "read_write"}`` beyond the role.
            description: Free text, at most 256 bytes.
            plan: The plan that limits it (``set_plan``); empty for none.
        """
        request = keys_pb2.CreateKeyRequest(
            role=_convert.enum_name(_convert.enum_arg(KeyRole, role, "role")),
            grants=_convert.grants_to_proto(grants),
            description=description,
            plan=plan,
        )
        response = self._invoke(self._create_key, request, idempotent=False)
        return CreatedKey(key=_convert.key_from_proto(response.key), secret=response.secret)

    def list_keys(self) -> list[KeyInfo]:
        """Every API key, ordered by id, without secrets (an admin's call)."""
        response = self._invoke(self._list_keys, keys_pb2.ListKeysRequest(), idempotent=True)
        return [_convert.key_from_proto(k) for k in response.keys]

    def revoke_key(self, key_id: str) -> None:
        """Revokes an API key by id (an admin's call): every gateway refuses it within a
        second. Not retried."""
        self._invoke(self._revoke_key, keys_pb2.RevokeKeyRequest(id=key_id), idempotent=False)

    def create_token(
        self,
        subject: str,
        role: KeyRole | str,
        *,
        grants: Mapping[str, Access | str] | None = None,
        ttl_seconds: int = 0,
        plan: str = "",
    ) -> Token:
        """Mints a token (an admin's call): a JWT presented like a key, until it expires
        (`ttl_seconds`, 0 for an hour, at most 30 days). Retried: minting changes nothing.

        Raises:
            FailedPrecondition: The gateway has no token secret.
        """
        request = keys_pb2.CreateTokenRequest(
            subject=subject,
            role=_convert.enum_name(_convert.enum_arg(KeyRole, role, "role")),
            grants=_convert.grants_to_proto(grants),
            ttl_seconds=ttl_seconds,
            plan=plan,
        )
        response = self._invoke(self._create_token, request, idempotent=True)
        return Token(token=response.token, expires_at_unix_s=response.expires_at_unix_s)

    # --- plans (admin) -----------------------------------------------------------------

    def set_plan(self, plan: Plan) -> Plan:
        """Makes or changes a plan (an admin's call); callers on it get its rate within a
        second. Retried: setting a plan twice sets it once."""
        request = plans_pb2.Plan(
            name=plan.name,
            requests_per_second=plan.requests_per_second,
            burst=plan.burst,
            max_collections=plan.max_collections,
            max_points=plan.max_points,
        )
        return _convert.plan_from_proto(self._invoke(self._set_plan, request, idempotent=True))

    def list_plans(self) -> list[Plan]:
        """Every plan, ordered by name (an admin's call)."""
        response = self._invoke(self._list_plans, plans_pb2.ListPlansRequest(), idempotent=True)
        return [_convert.plan_from_proto(p) for p in response.plans]

    def delete_plan(self, name: str) -> None:
        """Deletes a plan that no key or user names (an admin's call). Not retried.

        Raises:
            FailedPrecondition: Unknown plan, or a key or user names it.
        """
        self._invoke(self._delete_plan, plans_pb2.DeletePlanRequest(name=name), idempotent=False)

    # --- users -------------------------------------------------------------------------

    def create_user(
        self,
        name: str,
        password: str,
        role: KeyRole | str,
        *,
        grants: Mapping[str, Access | str] | None = None,
        plan: str = "",
    ) -> UserInfo:
        """Makes a user who logs in with `password` (an admin's call). Not retried."""
        request = users_pb2.CreateUserRequest(
            name=name,
            password=password,
            role=_convert.enum_name(_convert.enum_arg(KeyRole, role, "role")),
            grants=_convert.grants_to_proto(grants),
            plan=plan,
        )
        return _convert.user_from_proto(self._invoke(self._create_user, request, idempotent=False))

    def list_users(self) -> list[UserInfo]:
        """Every user, ordered by name, without passwords (an admin's call)."""
        response = self._invoke(self._list_users, users_pb2.ListUsersRequest(), idempotent=True)
        return [_convert.user_from_proto(u) for u in response.users]

    def delete_user(self, name: str) -> None:
        """Deletes a user (an admin's call): they log in no more. Not retried."""
        self._invoke(self._delete_user, users_pb2.DeleteUserRequest(name=name), idempotent=False)

    def login(self, name: str, password: str, *, ttl_seconds: int = 0) -> Token:
        """Logs in as `name` and returns a token carrying the user's role and grants, for
        ``Client(api_key=token.token)``. Needs no key. Not retried: each try counts
        against the address's login limit.

        Raises:
            Unauthenticated: Wrong name or password.
        """
        request = users_pb2.LoginRequest(name=name, password=password, ttl_seconds=ttl_seconds)
        response = self._invoke(self._login, request, idempotent=False)
        return Token(token=response.token, expires_at_unix_s=response.expires_at_unix_s)
