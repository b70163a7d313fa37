"""The synchronous client: one gRPC channel to a gateway, shared by every call.

Every method runs its operation from :mod:`vectron._calls` (checks, requests, parsing,
retry decisions and errors, shared with :class:`vectron.AsyncClient`); this module only
sends, with blocking grpcio calls, and runs the threads of :meth:`Client.upload_points`.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar, cast

import grpc
import numpy.typing as npt

from vectron import _calls, _upload
from vectron._calls import MAX_POINTS_PER_REQUEST, MAX_SEARCHES_PER_BATCH
from vectron._channel import DEFAULT_MAX_MESSAGE_BYTES, CaCert, open_channel
from vectron._proto.vectron.v1 import points_pb2, search_pb2
from vectron.errors import Cancelled, Internal, VectronError
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

__all__ = ["MAX_POINTS_PER_REQUEST", "MAX_SEARCHES_PER_BATCH", "Client", "SearchStream"]

T = TypeVar("T")


class SearchStream(Iterator[SearchEvent]):
    """The events of one streamed search (:meth:`Client.search_stream`), in the order
    the server sent them: an iterator of :class:`~vectron.SearchEvent`, whose last event
    (``done``) holds the search's answer. Read it with a ``for`` loop, or call
    :meth:`last` for the answer alone.

    >>> stream = client.search_stream("docs", [0.1, 0.2, 0.3], k=5)  # doctest: +SKIP
    >>> for event in stream:  # doctest: +SKIP
    ...     print(event.shards_answered, "/", event.shards_total, event.result.ids)

    A failure after the first event (the deadline passing, a shard failing) is raised
    while iterating, as the :class:`~vectron.VectronError` a unary call would raise, and
    again by every later read; it is never retried. Read it from one thread at a time.
    """

    def __init__(
        self,
        call: grpc._CallIterator[search_pb2.SearchStreamEvent],
        events: _calls.SearchEvents,
        first: SearchEvent,
    ) -> None:
        """Reads the events of `call`, whose `first` was already read (made by
        :meth:`Client.search_stream`)."""
        self._call = call
        self._events = events
        self._first: SearchEvent | None = first
        self._latest: SearchEvent | None = None
        self._ended = False
        self._error: VectronError | None = None

    def __iter__(self) -> SearchStream:
        """The stream itself."""
        return self

    def __next__(self) -> SearchEvent:
        """The next event; :class:`StopIteration` after the last one (``done``).

        Raises:
            VectronError: The status the stream ended with: :class:`DeadlineExceeded`
                when the deadline passed before every shard answered (without
                ``allow_partial_results``), or a shard's failure.
            Internal: The stream ended before its last event.
        """
        if self._error is not None:
            raise self._error
        if self._first is not None:
            event, self._first = self._first, None
        elif self._ended:
            raise StopIteration
        else:
            try:
                message = next(self._call, None)
                read = self._events.event(message)
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
                raise StopIteration
            event = read
        self._latest = event
        return event

    def _fail(self, error: VectronError) -> None:
        """Ends the stream with `error`, raised by every later read."""
        self._ended = True
        self._error = error

    def last(self) -> SearchEvent:
        """Reads the events left and returns the last one (``done``), whose ``result``
        is what :meth:`Client.search` answers for the same arguments.

        Raises:
            VectronError: As iterating does.
        """
        for _ in self:
            pass
        latest = self._latest
        if latest is None or not latest.done:  # iterating raised instead
            raise Internal("the search stream ended before its last event")
        return latest

    def cancel(self) -> None:
        """Cancels the call, if it has not ended: the events not read yet are dropped,
        and reading on raises :class:`~vectron.Cancelled`. Harmless after the end."""
        self._call.cancel()


class Client:
    """A Vectron client over one gRPC channel (HTTP/2), safe to share between threads.

    Calls raise a :class:`vectron.VectronError` subclass per status code. Idempotent
    calls (reads, searches, listings, upserts, deletes by id and collection updates that
    drop no payload index) are
    retried with jittered exponential backoff when the server answers ``UNAVAILABLE``,
    and after the server's ``retry-after`` when it refuses for load
    (``RESOURCE_EXHAUSTED``), as a streamed search is until its first event; creating
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
        self._channel = open_channel(
            self._calls.target,
            use_tls=self._calls.use_tls,
            ca_cert=ca_cert,
            options=self._calls.options,
        )
        self._unary: dict[_calls.Method[Any, Any], grpc.UnaryUnaryMultiCallable[Any, Any]] = {
            method: self._channel.unary_unary(
                method.path,
                request_serializer=method.serializer,
                response_deserializer=method.deserializer,
            )
            for method in _calls.UNARY_METHODS
        }
        stream = _calls.UPSERT_STREAM
        self._upsert_stream_raw: grpc.StreamUnaryMultiCallable[bytes, points_pb2.UpsertResponse] = (
            self._channel.stream_unary(
                stream.path,
                request_serializer=stream.serializer,
                response_deserializer=stream.deserializer,
            )
        )
        searches = _calls.SEARCH_STREAM
        self._search_stream_raw: grpc.UnaryStreamMultiCallable[
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
            raise RuntimeError("this Client is closed")

    def _invoke(self, call: _calls.Call) -> Any:
        """One unary call with this client's credentials, deadline and retries."""
        self._check_open()
        send = self._unary[call.method]
        attempts = self._calls.attempts(idempotent=call.idempotent)
        while True:
            try:
                return send(
                    call.request, timeout=attempts.remaining(), metadata=self._calls.metadata
                )
            except grpc.RpcError as rpc_error:
                pause = attempts.pause_after(rpc_error)
            time.sleep(pause)

    def _run(self, op: _calls.Op[T]) -> T:
        """Runs an operation to its result, making the calls it asks for."""
        try:
            call = next(op)
            while True:
                try:
                    response = self._invoke(call)
                except VectronError as error:
                    call = op.throw(error)
                else:
                    call = op.send(response)
        except StopIteration as done:
            return cast(T, done.value)

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
        key = "set" if self._calls.metadata else "none"
        return f"Client({self._calls.address!r}, api_key={key}, closed={self._closed})"

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
        search_cache: SearchCacheSettings | None = None,
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
            search_cache: How gateways cache its search answers, e.g.
                ``SearchCacheSettings(enabled=False)``; unset fields take the defaults
                (cached, for the gateway's TTL).

        Raises:
            AlreadyExists: The name is taken.
            InvalidArgument: The spec breaks a rule.
            FailedPrecondition: The shards cannot be placed.
        """
        return self._run(
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

    def drop_collection(self, name: str) -> None:
        """Drops a collection and every point in it. Dropping is final. Not retried.

        Raises:
            NotFound: No collection has that name.
        """
        return self._run(self._calls.drop_collection(name))

    def list_collections(self) -> list[CollectionInfo]:
        """Every collection, ordered by name (point counts as last reported)."""
        return self._run(self._calls.list_collections())

    def describe_collection(self, name: str) -> CollectionInfo:
        """One collection: spec, state, point count, shards and replicas as of the call.

        Raises:
            NotFound: No collection has that name.
        """
        return self._run(self._calls.describe_collection(name))

    def update_collection(
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
        """Changes a collection's mutable settings and returns it as updated (its point
        count as last reported, as in :meth:`list_collections`, and its
        ``payload_index_status`` as of the call): its default search ``ef``
        (``hnsw.ef``), its payload indexes and its search cache settings. What is left
        ``None`` keeps its value; every other setting is fixed at creation. At least one
        change must be given. Retried on ``UNAVAILABLE`` as it sets values, unless it
        drops an index: a retried drop that had been applied would be refused.

        >>> info = client.update_collection(  # doctest: +SKIP
        ...     "docs",
        ...     add_payload_indexes={"section": "keyword"},
        ...     search_cache=SearchCacheSettings(ttl_ms=60_000),
        ... )

        Args:
            name: The collection.
            ef: The new default ``ef``, the one searches that give none use from the
                moment this returns: a positive integer (the server allows up to 32768).
            tuning: The measurement that chose `ef` (as ``vectron tune --apply`` stores
                it), kept with the collection and read back as
                :attr:`CollectionInfo.tuning`. ``None``: a measurement the collection
                had is cleared when `ef` changes, and kept when it does not.
            add_payload_indexes: Payload indexes to add, as :meth:`create_collection`
                takes them: ``{"section": "keyword"}`` or a list of
                :class:`PayloadIndex`. Each replica builds a new index in the
                background from the points it holds; until
                :attr:`CollectionInfo.payload_index_status` shows it ``ready``
                (:meth:`describe_collection`), filters on its key read payloads (the same
                answers, slower). Adding an index the collection has, of the same kind,
                changes nothing; of another kind, it is refused unless the field is also
                in `drop_payload_indexes` (then it is rebuilt as the added kind).
            drop_payload_indexes: Fields whose payload indexes to drop, at once (filters
                on them read payloads from then on). A field the collection does not
                index is refused.
            search_cache: How gateways cache the collection's search answers: each field
                given replaces the collection's (``SearchCacheSettings(enabled=False)``
                computes every search; ``ttl_ms`` bounds how long a cached answer is
                served, 1 to 3,600,000, 0 for the gateway's TTL). Gateways apply it to
                the searches that start after their next routing update (well under a
                second).

        Raises:
            NotFound: No collection has that name.
            InvalidArgument: Nothing to change, or an argument of the wrong type or sign
                (refused before sending); or refused by the server: `ef` above its
                bound, `tuning` holding a value out of range, an index dropped that the
                collection does not have, a field added as another kind than it is
                indexed as, a ``search_cache.ttl_ms`` above an hour.
        """
        return self._run(
            self._calls.update_collection(
                name,
                ef=ef,
                tuning=tuning,
                add_payload_indexes=add_payload_indexes,
                drop_payload_indexes=drop_payload_indexes,
                search_cache=search_cache,
            )
        )

    def collection_exists(self, name: str) -> bool:
        """Whether a collection has this name."""
        return self._run(self._calls.collection_exists(name))

    # --- writing points ----------------------------------------------------------------

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
        return self._run(
            self._calls.upsert(collection, vectors, ids, payloads, wait=wait, batch_size=batch_size)
        )

    def upsert_points(
        self,
        collection: str,
        points: Iterable[Point],
        *,
        wait: bool | None = None,
        batch_size: int = 1000,
    ) -> UpsertResult:
        """Inserts or replaces :class:`Point` values; like :meth:`upsert` otherwise."""
        return self._run(
            self._calls.upsert_points(collection, points, wait=wait, batch_size=batch_size)
        )

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
        batch_size = _calls.stream_batch_size(batch_size)
        self._check_open()
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
        attempts = self._calls.attempts(idempotent=False)

        def send(item: bytes | None) -> bool:
            """Queues `item` for the stream; false once the call has ended."""
            nonlocal call, attempts
            if call is None:
                attempts = self._calls.attempts(idempotent=False)
                call = self._upsert_stream_raw.future(
                    requests(), timeout=attempts.remaining(), metadata=self._calls.metadata
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
            for chunk in _calls.batched(points, batch_size):
                prepared = self._run(self._calls.stream_chunk(collection, chunk, width))
                if width is None:
                    width = int(prepared.vectors.shape[1])
                sent = all(
                    send(request)
                    for request in self._calls.encode(collection, prepared, wait, batch_size)
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
            raise attempts.error(rpc_error) from rpc_error
        except grpc.FutureCancelledError:
            raise Cancelled("the upsert stream was cancelled before the server answered") from None
        finally:
            # The call is over: if it ended before the iterator did, let gRPC's thread go.
            self._unblock(outbox)
        return UpsertResult(count=response.count, durable=response.durable)

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

    def upload_points(
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
        """Bulk upload: the rows in batches of `batch_size`, sent on `parallel` concurrent
        ``UpsertStream`` calls, one stream per batch (threads of this client; tasks of an
        :class:`~vectron.AsyncClient`).

        Everything is checked before anything is sent, as in :meth:`upsert` (shape,
        dtype, finiteness, ids, payload count; errors name the row). Each batch goes to
        the wire with one ``tobytes()`` per row. A batch refused with ``UNAVAILABLE``, or
        with ``RESOURCE_EXHAUSTED`` and a ``retry-after``, is sent again whole on a fresh
        stream (upserts are idempotent by id) after the backoff or the server's
        ``retry-after``, up to `max_retries` times. On any other failure the other
        workers stop (their calls are cancelled) and the first error is raised; batches
        acknowledged before it stay written.

        Args:
            collection: The collection to write to.
            vectors: Shape (points, dimension).
            payloads: One JSON object (or ``None``) per row.
            ids: One id per row; ``None`` generates random UUIDs, returned in the result.
            batch_size: Points per batch (1 to 10000).
            parallel: Concurrent streams (workers).
            wait: ``True``/``None``: a batch is acknowledged once durable and visible;
                ``False``: once validated and queued.
            progress: ``progress(done_points, total_points)``, called in the calling
                thread (or task) as batches are acknowledged; `done_points` only grows.
            max_retries: Retries allowed to each batch.

        Returns:
            The points acknowledged, whether all are durable, and every id in input
            order.
        """
        plan = self._run(
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
        pending: queue.SimpleQueue[int] = queue.SimpleQueue()
        for index in range(plan.batch_count):
            pending.put(index)
        events: queue.SimpleQueue[tuple[int, points_pb2.UpsertResponse] | BaseException] = (
            queue.SimpleQueue()
        )
        stop = threading.Event()
        lock = threading.Lock()
        in_flight: set[grpc.Future[points_pb2.UpsertResponse]] = set()

        def send(index: int) -> points_pb2.UpsertResponse | None:
            """Sends batch `index` until acknowledged; ``None`` when stopped first."""
            messages = plan.messages(index)
            attempts = self._calls.attempts(idempotent=True, retries=plan.max_retries)
            while True:
                with lock:
                    if stop.is_set():
                        return None
                    future = self._upsert_stream_raw.future(
                        iter(messages), timeout=attempts.remaining(), metadata=self._calls.metadata
                    )
                    in_flight.add(future)
                try:
                    return future.result()
                except grpc.FutureCancelledError:
                    return None
                except grpc.RpcError as rpc_error:
                    if stop.is_set():
                        return None
                    pause = attempts.pause_after(rpc_error)
                finally:
                    with lock:
                        in_flight.discard(future)
                if stop.wait(pause):
                    return None

        def work() -> None:
            """Takes batches until none is left or the upload stops."""
            while not stop.is_set():
                try:
                    index = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    response = send(index)
                except BaseException as error:
                    events.put(error)
                    return
                if response is None:
                    return
                events.put((index, response))

        workers = [
            threading.Thread(target=work, name=f"vectron-upload-{n}", daemon=True)
            for n in range(plan.workers)
        ]
        for worker in workers:
            worker.start()
        try:
            for _ in range(plan.batch_count):
                event = events.get()
                if isinstance(event, BaseException):
                    raise event
                tally.acknowledged(*event)
        finally:
            with lock:
                stop.set()
                for future in in_flight:
                    future.cancel()
            for worker in workers:
                worker.join()
        return tally.result()

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
        return self._run(
            self._calls.get(
                collection,
                ids,
                with_payload=with_payload,
                with_vector=with_vector,
                consistency=consistency,
            )
        )

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
        return self._run(self._calls.delete(collection, ids, filter=filter, wait=wait))

    def count(
        self,
        collection: str,
        filter: Filter | None = None,
        *,
        consistency: ReadConsistency | str | None = None,
    ) -> int:
        """Counts the points exactly, optionally those passing `filter`."""
        return self._run(self._calls.count(collection, filter, consistency=consistency))

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
        return self._run(
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

    def search(
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
        """Top-`k` similarity search; hits best first (higher scores are better).

        Args:
            collection: The collection to search.
            vector: The query: the collection's dimension, finite values.
            k: Hits wanted (1 to 10000).
            filter: Only points passing it are returned.
            ef: Candidate list size (larger: slower, more accurate); default the
                collection's. Ignored by an exact search: passing it with
                ``exact=True`` raises :class:`InvalidArgument` before any call.
            exact: Brute force over every point of every shard instead of the HNSW
                graph: the true top-`k` under the same filter, in the same answer shape,
                at a cost in proportion to the collection's size (`ef` is ignored). The
                ground truth to measure recall against.
            with_payload: Return each hit's payload.
            with_vector: Return each hit's stored vector.
            consistency: Freshness required (default: the client's).
            timeout_ms: The server's time budget for this search.
            allow_partial_results: Return the hits of the shards that answered when some
                cannot, listing the others in ``missing_shards``.
        """
        return self._run(
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

    def search_stream(
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
    ) -> SearchStream:
        """One search whose merged hits arrive as its shards answer (``SearchStream``):
        an event each time answers change the best `k` hits so far, then a last one
        (``done``) whose ``result`` equals what :meth:`search` answers. Takes the same
        arguments as :meth:`search`, checked the same way.

        Returns once the first event has come, with a :class:`SearchStream` of the
        events (that one first): iterate it, or call :meth:`SearchStream.last` for the
        answer alone. A request the server refuses fails here, before any event, with
        the error :meth:`search` would raise; until the first event, the call is retried
        as :meth:`search` is (on ``UNAVAILABLE``, and after a ``retry-after``). A
        failure after it is raised while iterating, and not retried. The client's
        `timeout` covers the whole stream. Past the deadline, with
        `allow_partial_results` the last event lists the shards that had not answered;
        without it, iterating raises :class:`DeadlineExceeded` after the partial events.

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
                first = events.first(next(call, None))
            except grpc.RpcError as rpc_error:
                pause = attempts.pause_after(rpc_error)
            except BaseException:
                call.cancel()
                raise
            else:
                return SearchStream(call, events, first)
            time.sleep(pause)

    def search_batch(
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
        """One search per row of `vectors` (2-D), with the same parameters as
        :meth:`search`; results in row order. The searches of one call run concurrently
        on the server, 1000 per request at most (more are split)."""
        return self._run(
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

    def core_stats(self, worker_id: str = "") -> CoreStatsResult:
        """Statistics of every core of one worker, or of the whole cluster (empty id)."""
        return self._run(self._calls.core_stats(worker_id))

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
        return self._run(
            self._calls.create_key(role, grants=grants, description=description, plan=plan)
        )

    def list_keys(self) -> list[KeyInfo]:
        """Every API key, ordered by id, without secrets (an admin's call)."""
        return self._run(self._calls.list_keys())

    def revoke_key(self, key_id: str) -> None:
        """Revokes an API key by id (an admin's call): every gateway refuses it within a
        second. Not retried."""
        return self._run(self._calls.revoke_key(key_id))

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
        return self._run(
            self._calls.create_token(
                subject, role, grants=grants, ttl_seconds=ttl_seconds, plan=plan
            )
        )

    # --- plans (admin) -----------------------------------------------------------------

    def set_plan(self, plan: Plan) -> Plan:
        """Makes or changes a plan (an admin's call); callers on it get its rate within a
        second. Retried: setting a plan twice sets it once."""
        return self._run(self._calls.set_plan(plan))

    def list_plans(self) -> list[Plan]:
        """Every plan, ordered by name (an admin's call)."""
        return self._run(self._calls.list_plans())

    def delete_plan(self, name: str) -> None:
        """Deletes a plan that no key or user names (an admin's call). Not retried.

        Raises:
            FailedPrecondition: Unknown plan, or a key or user names it.
        """
        return self._run(self._calls.delete_plan(name))

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
        return self._run(self._calls.create_user(name, password, role, grants=grants, plan=plan))

    def list_users(self) -> list[UserInfo]:
        """Every user, ordered by name, without passwords (an admin's call)."""
        return self._run(self._calls.list_users())

    def delete_user(self, name: str) -> None:
        """Deletes a user (an admin's call): they log in no more. Not retried."""
        return self._run(self._calls.delete_user(name))

    def login(self, name: str, password: str, *, ttl_seconds: int = 0) -> Token:
        """Logs in as `name` and returns a token carrying the user's role and grants, for
        ``Client(api_key=token.token)``. Needs no key. Not retried: each try counts
        against the address's login limit.

        Raises:
            Unauthenticated: Wrong name or password.
        """
        return self._run(self._calls.login(name, password, ttl_seconds=ttl_seconds))
