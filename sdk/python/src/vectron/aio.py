"""The asyncio client: :class:`AsyncClient`, the same API as :class:`vectron.Client` over
``grpc.aio``.

Every method runs the same operation from :mod:`vectron._calls` as the synchronous
client's (checks, requests, parsing, retry decisions and errors); this module only sends,
with ``grpc.aio`` calls awaited on the running event loop, and runs the tasks of
:meth:`AsyncClient.upload_points`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import Any, TypeVar, cast

import grpc
import grpc.aio
import numpy.typing as npt

from vectron import _calls, _upload
from vectron._channel import DEFAULT_MAX_MESSAGE_BYTES, CaCert, open_aio_channel
from vectron._proto.vectron.v1 import points_pb2, search_pb2
from vectron.client import Client
from vectron.errors import Internal, VectronError
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

__all__ = ["AsyncClient", "AsyncSearchStream"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def _doc(sync: Callable[..., Any]) -> Callable[[F], F]:
    """Gives a method the docstring of its synchronous twin on :class:`Client`."""

    def apply(method: F) -> F:
        method.__doc__ = sync.__doc__
        return method

    return apply


async def _batched(
    points: Iterable[Point] | AsyncIterable[Point], size: int
) -> AsyncGenerator[list[Point], None]:
    """`points`, an iterable or an async iterable, in lists of `size`."""
    if not isinstance(points, AsyncIterable):
        for chunk in _calls.batched(points, size):
            yield chunk
        return
    batch: list[Point] = []
    async for point in points:
        batch.append(point)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class AsyncSearchStream(AsyncIterator[SearchEvent]):
    """The events of one streamed search (:meth:`AsyncClient.search_stream`), in the
    order the server sent them: an async iterator of :class:`~vectron.SearchEvent`,
    whose last event (``done``) holds the search's answer. Read it with ``async for``,
    or ``await stream.last()`` for the answer alone.

    The same as :class:`vectron.SearchStream` otherwise: a failure after the first
    event is raised while iterating, and again by every later read, never retried.
    Read it from one task at a time.
    """

    def __init__(
        self,
        call: grpc.aio.UnaryStreamCall[search_pb2.SearchRequest, search_pb2.SearchStreamEvent],
        events: _calls.SearchEvents,
        first: SearchEvent,
    ) -> None:
        """Reads the events of `call`, whose `first` was already read (made by
        :meth:`AsyncClient.search_stream`)."""
        self._call = call
        self._events = events
        self._first: SearchEvent | None = first
        self._latest: SearchEvent | None = None
        self._ended = False
        self._error: VectronError | None = None

    def __aiter__(self) -> AsyncSearchStream:
        """The stream itself."""
        return self

    async def __anext__(self) -> SearchEvent:
        """The next event; :class:`StopAsyncIteration` after the last one (``done``).

        Raises:
            VectronError: As :meth:`vectron.SearchStream.__next__` does.
        """
        if self._error is not None:
            raise self._error
        if self._first is not None:
            event, self._first = self._first, None
        elif self._ended:
            raise StopAsyncIteration
        else:
            try:
                read = self._events.event(_event_or_none(await self._call.read()))
            except grpc.RpcError as rpc_error:
                error = self._events.error(rpc_error)
                self._fail(error)
                raise error from rpc_error
            except VectronError as error:
                self._call.cancel()
                self._fail(error)
                raise
            if read is None:
                self._ended = True
                raise StopAsyncIteration
            event = read
        self._latest = event
        return event

    def _fail(self, error: VectronError) -> None:
        """Ends the stream with `error`, raised by every later read."""
        self._ended = True
        self._error = error

    async def last(self) -> SearchEvent:
        """Reads the events left and returns the last one (``done``), whose ``result``
        is what :meth:`AsyncClient.search` answers for the same arguments.

        Raises:
            VectronError: As iterating does.
        """
        async for _ in self:
            pass
        latest = self._latest
        if latest is None or not latest.done:  # iterating raised instead
            raise Internal("the search stream ended before its last event")
        return latest

    def cancel(self) -> None:
        """Cancels the call, if it has not ended: the events not read yet are dropped,
        and reading on raises :class:`~vectron.Cancelled`. Harmless after the end."""
        self._call.cancel()


def _event_or_none(message: object) -> search_pb2.SearchStreamEvent | None:
    """A message read from a ``SearchStream`` call; ``None`` for its end (``EOF``)."""
    if isinstance(message, search_pb2.SearchStreamEvent):
        return message
    if message is grpc.aio.EOF:
        return None
    raise TypeError(f"a SearchStream call read {type(message).__name__}, not an event")


class AsyncClient:
    """A Vectron client for asyncio over one ``grpc.aio`` channel: the methods of
    :class:`vectron.Client`, with the same parameters, as coroutines.

    Make it inside the event loop that uses it (its channel belongs to that loop), and
    close it with ``await client.close()`` or ``async with``. Calls from concurrent tasks
    share the channel. Errors, retries and client-side checks are those of
    :class:`vectron.Client`.

    >>> async with AsyncClient("127.0.0.1:6334") as client:  # doctest: +SKIP
    ...     await client.create_collection("docs", dimension=3)
    ...     await client.upsert("docs", [[0.1, 0.2, 0.3]], ids=["a"])
    ...     hits = await client.search("docs", [0.1, 0.2, 0.3], k=5)
    """

    @_doc(Client.__init__)
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
        self._calls = _calls.Calls(
            address,
            api_key=api_key,
            timeout=timeout,
            tls=tls,
            ca_cert=ca_cert,
            retries=retries,
            backoff=backoff,
            max_retry_after=max_retry_after,
            read_consistency=read_consistency,
            max_message_bytes=max_message_bytes,
            tls_server_name=tls_server_name,
        )
        self._closed = False
        self._channel = open_aio_channel(
            self._calls.target,
            use_tls=self._calls.use_tls,
            ca_cert=ca_cert,
            options=self._calls.options,
        )
        self._unary: dict[_calls.Method[Any, Any], grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {
            method: self._channel.unary_unary(
                method.path,
                request_serializer=method.serializer,
                response_deserializer=method.deserializer,
            )
            for method in _calls.UNARY_METHODS
        }
        stream = _calls.UPSERT_STREAM
        self._upsert_stream_raw: grpc.aio.StreamUnaryMultiCallable[
            bytes, points_pb2.UpsertResponse
        ] = self._channel.stream_unary(
            stream.path,
            request_serializer=stream.serializer,
            response_deserializer=stream.deserializer,
        )
        searches = _calls.SEARCH_STREAM
        self._search_stream_raw: grpc.aio.UnaryStreamMultiCallable[
            search_pb2.SearchRequest, search_pb2.SearchStreamEvent
        ] = self._channel.unary_stream(
            searches.path,
            request_serializer=searches.serializer,
            response_deserializer=searches.deserializer,
        )

    # --- transport ---------------------------------------------------------------------

    def _check_open(self) -> None:
        """Refuses calls on a closed client."""
        if self._closed:
            raise RuntimeError("this AsyncClient is closed")

    async def _invoke(self, call: _calls.Call) -> Any:
        """One unary call with this client's credentials, deadline and retries."""
        self._check_open()
        send = self._unary[call.method]
        attempts = self._calls.attempts(idempotent=call.idempotent)
        while True:
            try:
                return await send(
                    call.request, timeout=attempts.remaining(), metadata=self._calls.metadata
                )
            except grpc.RpcError as rpc_error:
                pause = attempts.pause_after(rpc_error)
            await asyncio.sleep(pause)

    async def _run(self, op: _calls.Op[T]) -> T:
        """Runs an operation to its result, making the calls it asks for."""
        try:
            call = next(op)
            while True:
                try:
                    response = await self._invoke(call)
                except VectronError as error:
                    call = op.throw(error)
                else:
                    call = op.send(response)
        except StopIteration as done:
            return cast(T, done.value)

    # --- lifecycle ---------------------------------------------------------------------

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled. Closing twice is harmless."""
        if not self._closed:
            self._closed = True
            await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        """The client itself; :meth:`close` runs on leaving the ``async with`` block."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Closes the client."""
        await self.close()

    def __repr__(self) -> str:
        """The address and whether a key is set (never the key)."""
        key = "set" if self._calls.metadata else "none"
        return f"AsyncClient({self._calls.address!r}, api_key={key}, closed={self._closed})"

    # --- collections -------------------------------------------------------------------

    @_doc(Client.create_collection)
    async def create_collection(
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
        search_cache: SearchCacheSettings | None = None,
    ) -> CollectionInfo:
        return await self._run(
            self._calls.create_collection(
                name,
                dimension,
                metric,
                shard_count=shard_count,
                replication_factor=replication_factor,
                hnsw=hnsw,
                quantization=quantization,
                payload_indexes=payload_indexes,
                search_cache=search_cache,
            )
        )

    @_doc(Client.drop_collection)
    async def drop_collection(self, name: str) -> None:
        return await self._run(self._calls.drop_collection(name))

    @_doc(Client.list_collections)
    async def list_collections(self) -> list[CollectionInfo]:
        return await self._run(self._calls.list_collections())

    @_doc(Client.describe_collection)
    async def describe_collection(self, name: str) -> CollectionInfo:
        return await self._run(self._calls.describe_collection(name))

    @_doc(Client.update_collection)
    async def update_collection(
        self,
        name: str,
        *,
        ef: int | None = None,
        tuning: EfTuning | None = None,
        add_payload_indexes: Mapping[str, PayloadFieldKind | str]
        | Sequence[PayloadIndex]
        | None = None,
        drop_payload_indexes: Sequence[str] | None = None,
        search_cache: SearchCacheSettings | None = None,
    ) -> CollectionInfo:
        return await self._run(
            self._calls.update_collection(
                name,
                ef=ef,
                tuning=tuning,
                add_payload_indexes=add_payload_indexes,
                drop_payload_indexes=drop_payload_indexes,
                search_cache=search_cache,
            )
        )

    @_doc(Client.collection_exists)
    async def collection_exists(self, name: str) -> bool:
        return await self._run(self._calls.collection_exists(name))

    # --- writing points ----------------------------------------------------------------

    @_doc(Client.upsert)
    async def upsert(
        self,
        collection: str,
        vectors: npt.ArrayLike,
        ids: Sequence[PointId] | npt.NDArray[Any] | None = None,
        payloads: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        wait: bool | None = None,
        batch_size: int = 1000,
    ) -> UpsertResult:
        return await self._run(
            self._calls.upsert(collection, vectors, ids, payloads, wait=wait, batch_size=batch_size)
        )

    @_doc(Client.upsert_points)
    async def upsert_points(
        self,
        collection: str,
        points: Iterable[Point],
        *,
        wait: bool | None = None,
        batch_size: int = 1000,
    ) -> UpsertResult:
        return await self._run(
            self._calls.upsert_points(collection, points, wait=wait, batch_size=batch_size)
        )

    async def upsert_stream(
        self,
        collection: str,
        points: Iterable[Point] | AsyncIterable[Point],
        *,
        wait: bool | None = None,
        batch_size: int = 1000,
    ) -> UpsertResult:
        """Bulk ingest over one ``UpsertStream`` call: `points` (an iterable or an async
        iterable) is consumed lazily, in messages of `batch_size` points, and the call
        returns once every point is acknowledged (durable, unless `wait` is ``False``).

        Each message is checked (as in :meth:`upsert`, and every vector as wide as the
        first) before it is written to the stream. On the first error the call fails with
        it; messages sent before it stay written. An empty iterable sends nothing. Not
        retried: the iterable is consumed. The result's ``ids`` is empty.
        """
        batch_size = _calls.stream_batch_size(batch_size)
        self._check_open()
        # The call starts with its first message: an empty iterable makes no call, and a
        # first message refused by the client's checks sends nothing.
        call: grpc.aio.StreamUnaryCall[bytes, points_pb2.UpsertResponse] | None = None
        attempts = self._calls.attempts(idempotent=False)
        try:
            width: int | None = None
            ended = False
            async with contextlib.aclosing(_batched(points, batch_size)) as chunks:
                async for chunk in chunks:
                    prepared = await self._run(self._calls.stream_chunk(collection, chunk, width))
                    if width is None:
                        width = int(prepared.vectors.shape[1])
                    for request in self._calls.encode(collection, prepared, wait, batch_size):
                        if call is None:
                            attempts = self._calls.attempts(idempotent=False)
                            call = self._upsert_stream_raw(
                                timeout=attempts.remaining(), metadata=self._calls.metadata
                            )
                        try:
                            await call.write(request)
                        except (grpc.RpcError, asyncio.InvalidStateError):
                            ended = True  # the call ended early: its status says why
                            break
                    if ended:
                        break
            if call is None:
                return UpsertResult(count=0, durable=True)
            if not ended:
                await call.done_writing()
            response = await call
        except grpc.RpcError as rpc_error:
            raise attempts.error(rpc_error) from rpc_error
        except BaseException:
            if call is not None:
                call.cancel()
            raise
        return UpsertResult(count=response.count, durable=response.durable)

    @_doc(Client.upload_points)
    async def upload_points(
        self,
        collection: str,
        vectors: npt.ArrayLike,
        payloads: Sequence[Mapping[str, Any] | None] | None = None,
        ids: Sequence[PointId] | npt.NDArray[Any] | None = None,
        *,
        batch_size: int = 1000,
        parallel: int = 2,
        wait: bool | None = True,
        progress: Callable[[int, int], None] | None = None,
        max_retries: int = _upload.DEFAULT_MAX_RETRIES,
    ) -> UpsertResult:
        plan = await self._run(
            self._calls.upload_plan(
                collection,
                vectors,
                payloads,
                ids,
                batch_size=batch_size,
                parallel=parallel,
                wait=wait,
                progress=progress,
                max_retries=max_retries,
            )
        )
        tally = _upload.UploadTally(plan, progress)
        if plan.batch_count == 0:
            return tally.result()
        self._check_open()
        pending = iter(range(plan.batch_count))
        events: asyncio.Queue[tuple[int, points_pb2.UpsertResponse] | BaseException] = (
            asyncio.Queue()
        )

        async def send(index: int) -> points_pb2.UpsertResponse:
            """Sends batch `index` until acknowledged, each time on a fresh stream."""
            messages = plan.messages(index)
            attempts = self._calls.attempts(idempotent=True, retries=plan.max_retries)
            while True:
                try:
                    return await self._upsert_stream_raw(
                        iter(messages), timeout=attempts.remaining(), metadata=self._calls.metadata
                    )
                except grpc.RpcError as rpc_error:
                    pause = attempts.pause_after(rpc_error)
                await asyncio.sleep(pause)

        async def work() -> None:
            """Takes batches until none is left (cancelled when the upload stops)."""
            for index in pending:
                try:
                    response = await send(index)
                except Exception as error:
                    events.put_nowait(error)
                    return
                events.put_nowait((index, response))

        workers = [asyncio.create_task(work()) for _ in range(plan.workers)]
        try:
            for _ in range(plan.batch_count):
                event = await events.get()
                if isinstance(event, BaseException):
                    raise event
                tally.acknowledged(*event)
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        return tally.result()

    # --- reading and deleting points ---------------------------------------------------

    @_doc(Client.get)
    async def get(
        self,
        collection: str,
        ids: Iterable[PointId],
        *,
        with_payload: bool = True,
        with_vector: bool = False,
        consistency: ReadConsistency | str | None = None,
    ) -> list[Record]:
        return await self._run(
            self._calls.get(
                collection,
                ids,
                with_payload=with_payload,
                with_vector=with_vector,
                consistency=consistency,
            )
        )

    @_doc(Client.delete)
    async def delete(
        self,
        collection: str,
        ids: Iterable[PointId] | None = None,
        *,
        filter: Filter | None = None,
        wait: bool | None = None,
    ) -> int:
        return await self._run(self._calls.delete(collection, ids, filter=filter, wait=wait))

    @_doc(Client.count)
    async def count(
        self,
        collection: str,
        filter: Filter | None = None,
        *,
        consistency: ReadConsistency | str | None = None,
    ) -> int:
        return await self._run(self._calls.count(collection, filter, consistency=consistency))

    @_doc(Client.scroll)
    async def scroll(
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
        return await self._run(
            self._calls.scroll(
                collection,
                offset=offset,
                limit=limit,
                filter=filter,
                with_payload=with_payload,
                with_vector=with_vector,
                consistency=consistency,
            )
        )

    async def iter_points(
        self,
        collection: str,
        *,
        filter: Filter | None = None,
        page_size: int = 1000,
        with_payload: bool = True,
        with_vector: bool = False,
        consistency: ReadConsistency | str | None = None,
    ) -> AsyncIterator[Record]:
        """Every point (passing `filter`), in id order, scrolling `page_size` at a time:
        ``async for record in client.iter_points(...)``."""
        offset: str | None = None
        while True:
            page = await self.scroll(
                collection,
                offset=offset,
                limit=page_size,
                filter=filter,
                with_payload=with_payload,
                with_vector=with_vector,
                consistency=consistency,
            )
            for record in page.points:
                yield record
            if page.next_offset is None:
                return
            offset = page.next_offset

    # --- search ------------------------------------------------------------------------

    @_doc(Client.search)
    async def search(
        self,
        collection: str,
        vector: VectorLike,
        k: int = 10,
        *,
        filter: Filter | None = None,
        ef: int | None = None,
        exact: bool = False,
        with_payload: bool = True,
        with_vector: bool = False,
        consistency: ReadConsistency | str | None = None,
        timeout_ms: int | None = None,
        allow_partial_results: bool = False,
    ) -> SearchResult:
        return await self._run(
            self._calls.search(
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
        )

    async def search_stream(
        self,
        collection: str,
        vector: VectorLike,
        k: int = 10,
        *,
        filter: Filter | None = None,
        ef: int | None = None,
        exact: bool = False,
        with_payload: bool = True,
        with_vector: bool = False,
        consistency: ReadConsistency | str | None = None,
        timeout_ms: int | None = None,
        allow_partial_results: bool = False,
    ) -> AsyncSearchStream:
        """One search whose merged hits arrive as its shards answer, as
        :meth:`vectron.Client.search_stream` (same arguments, checks, retries and
        errors): returns once the first event has come, with an
        :class:`AsyncSearchStream` of the events (``async for event in stream``, or
        ``await stream.last()`` for the answer alone).

        Raises:
            InvalidArgument: Bad input, found by the client or by the server.
            NotFound: No such collection.
        """
        request = self._calls.search_request(
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
        self._check_open()
        events = self._calls.search_events()
        attempts = events.attempts
        while True:
            call = self._search_stream_raw(
                request, timeout=attempts.remaining(), metadata=self._calls.metadata
            )
            try:
                first = events.first(_event_or_none(await call.read()))
            except grpc.RpcError as rpc_error:
                pause = attempts.pause_after(rpc_error)
            except BaseException:
                call.cancel()
                raise
            else:
                return AsyncSearchStream(call, events, first)
            await asyncio.sleep(pause)

    @_doc(Client.search_batch)
    async def search_batch(
        self,
        collection: str,
        vectors: npt.ArrayLike,
        k: int = 10,
        *,
        filter: Filter | None = None,
        ef: int | None = None,
        exact: bool = False,
        with_payload: bool = True,
        with_vector: bool = False,
        consistency: ReadConsistency | str | None = None,
        timeout_ms: int | None = None,
        allow_partial_results: bool = False,
    ) -> list[SearchResult]:
        return await self._run(
            self._calls.search_batch(
                collection,
                vectors,
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
        )

    # --- statistics --------------------------------------------------------------------

    @_doc(Client.core_stats)
    async def core_stats(self, worker_id: str = "") -> CoreStatsResult:
        return await self._run(self._calls.core_stats(worker_id))

    # --- keys (admin) ------------------------------------------------------------------

    @_doc(Client.create_key)
    async def create_key(
        self,
        role: KeyRole | str,
        *,
        grants: Mapping[str, Access | str] | None = None,
        description: str = "",
        plan: str = "",
    ) -> CreatedKey:
        return await self._run(
            self._calls.create_key(role, grants=grants, description=description, plan=plan)
        )

    @_doc(Client.list_keys)
    async def list_keys(self) -> list[KeyInfo]:
        return await self._run(self._calls.list_keys())

    @_doc(Client.revoke_key)
    async def revoke_key(self, key_id: str) -> None:
        return await self._run(self._calls.revoke_key(key_id))

    @_doc(Client.create_token)
    async def create_token(
        self,
        subject: str,
        role: KeyRole | str,
        *,
        grants: Mapping[str, Access | str] | None = None,
        ttl_seconds: int = 0,
        plan: str = "",
    ) -> Token:
        return await self._run(
            self._calls.create_token(
                subject, role, grants=grants, ttl_seconds=ttl_seconds, plan=plan
            )
        )

    # --- plans (admin) -----------------------------------------------------------------

    @_doc(Client.set_plan)
    async def set_plan(self, plan: Plan) -> Plan:
        return await self._run(self._calls.set_plan(plan))

    @_doc(Client.list_plans)
    async def list_plans(self) -> list[Plan]:
        return await self._run(self._calls.list_plans())

    @_doc(Client.delete_plan)
    async def delete_plan(self, name: str) -> None:
        return await self._run(self._calls.delete_plan(name))

    # --- users -------------------------------------------------------------------------

    @_doc(Client.create_user)
    async def create_user(
        self,
        name: str,
        password: str,
        role: KeyRole | str,
        *,
        grants: Mapping[str, Access | str] | None = None,
        plan: str = "",
    ) -> UserInfo:
        return await self._run(
            self._calls.create_user(name, password, role, grants=grants, plan=plan)
        )

    @_doc(Client.list_users)
    async def list_users(self) -> list[UserInfo]:
        return await self._run(self._calls.list_users())

    @_doc(Client.delete_user)
    async def delete_user(self, name: str) -> None:
        return await self._run(self._calls.delete_user(name))

    @_doc(Client.login)
    async def login(self, name: str, password: str, *, ttl_seconds: int = 0) -> Token:
        return await self._run(self._calls.login(name, password, ttl_seconds=ttl_seconds))
