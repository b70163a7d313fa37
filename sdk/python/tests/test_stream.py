"""Streamed search (``search_stream``): on the wiki-minilm-2k fixture, in a collection of
several shards, the last event is what ``search`` answers, through both clients; refused
requests fail before any event, as ``search`` fails. Against a scripted in-process
server: opening is retried on ``UNAVAILABLE``, a failure after the first event is not,
and a stream cut short raises."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
import pytest

import vectron
from conftest import WIKI_2K, Connect, DevServer, read_vecs, wait_until_indexed
from vectron import AsyncClient, Client, Field, Filter, ReadConsistency, SearchEvent
from vectron._proto.vectron.v1 import search_pb2

DIM = 384
SHARDS = 4
#: The fixture queries searched, by row.
QUERIES = range(6)


@dataclass(frozen=True)
class Wiki:
    """The fixture, loaded into a collection of SHARDS shards of the shared server."""

    collection: str
    queries: np.ndarray
    titles: list[str]


@pytest.fixture(scope="module")
def wiki(server: DevServer) -> Iterator[Wiki]:
    """wiki-minilm-2k upserted (ids are row numbers, a keyword index on ``title``) into a
    collection of SHARDS shards, and indexed."""
    base = read_vecs(WIKI_2K / "base.fvecs", "<f4")
    queries = read_vecs(WIKI_2K / "query.fvecs", "<f4")
    with (WIKI_2K / "base.jsonl").open() as f:
        payloads = [json.loads(line) for line in f]
    name = f"stream_wiki_{uuid.uuid4().hex[:8]}"
    with Client(server.grpc, timeout=60) as client:
        client.create_collection(
            name, DIM, "cosine", shard_count=SHARDS, payload_indexes={"title": "keyword"}
        )
        try:
            written = client.upsert(
                name, base, ids=[str(i) for i in range(len(base))], payloads=payloads
            )
            assert written.count == len(base)
            wait_until_indexed(client, name, len(base))
            yield Wiki(collection=name, queries=queries, titles=[p["title"] for p in payloads])
        finally:
            client.drop_collection(name)


def search_args(wiki: Wiki) -> list[dict[str, Any]]:
    """Keyword arguments of the searches compared (each with linearizable consistency,
    so that every answer is computed, none read from the gateway's cache)."""
    linearizable = {"consistency": ReadConsistency.LINEARIZABLE}
    title = wiki.titles[0]
    return [
        {**linearizable},
        {**linearizable, "k": 5, "ef": 32, "with_payload": False},
        {**linearizable, "k": 10, "exact": True, "with_payload": False},
        {**linearizable, "k": 8, "filter": Filter(must=[Field("title").keyword(title)])},
        {**linearizable, "k": 3, "with_vector": True},
        {"consistency": "linearizable", "k": 20, "allow_partial_results": True},
    ]


def check_events(events: list[SearchEvent], k: int, what: str) -> None:
    """The events of one complete stream: ranked hits, shards answered only growing,
    every shard in by the last event, which alone is ``done``."""
    assert events, f"{what}: no event"
    answered = [e.shards_answered for e in events]
    assert answered == sorted(answered), f"{what}: shards answered {answered}"
    assert [e.done for e in events] == [False] * (len(events) - 1) + [True], what
    for event in events:
        assert event.shards_total == SHARDS, what
        assert 1 <= event.shards_answered <= SHARDS, what
        assert len(event.hits) <= k, what
        scores = [h.score for h in event.hits]
        assert scores == sorted(scores, reverse=True), f"{what}: scores {scores}"
        assert event.hits == event.result.hits, what
        assert event.missing_shards == event.result.missing_shards == (), what
    assert events[-1].shards_answered == events[-1].shards_total, what


def test_the_last_event_is_the_search_answer(client: Client, wiki: Wiki) -> None:
    for args in search_args(wiki):
        for q in QUERIES:
            query = wiki.queries[q]
            what = f"query {q}, {args}"
            expected = client.search(wiki.collection, query, **args)
            assert len(expected) > 0, what
            stream = client.search_stream(wiki.collection, query, **args)
            events = list(stream)
            check_events(events, args.get("k", 10), what)
            last = events[-1]
            assert stream.last() is last, what  # the stream read, last() is its last event
            # Ids, order, scores, payloads and vectors: the whole answer.
            assert last.result == expected, what
            assert last.result.ids == expected.ids, what
            assert [h.score for h in last.hits] == [h.score for h in expected], what
            assert [h.payload for h in last.hits] == [h.payload for h in expected], what
            if args.get("with_payload", True):
                assert all(h.payload is not None for h in last.hits), what
            if args.get("with_vector", False):
                assert all(h.vector is not None and h.vector.shape == (DIM,) for h in last.hits)
            # last() reads the same answer.
            assert client.search_stream(wiki.collection, query, **args).last() == last, what


def test_refused_requests_fail_before_any_event(client: Client, wiki: Wiki) -> None:
    query = wiki.queries[0]
    # The server's refusals: the same error class and message as search's.
    refused: list[tuple[type[vectron.VectronError], str, Any, dict[str, Any]]] = [
        (vectron.InvalidArgument, wiki.collection, [0.1] * (DIM + 2), {}),  # dimension
        (vectron.InvalidArgument, wiki.collection, query, {"k": 0}),
        (vectron.NotFound, f"no_such_{uuid.uuid4().hex[:8]}", query, {}),
    ]
    for cls, collection, vector, args in refused:
        with pytest.raises(cls) as by_search:
            client.search(collection, vector, **args)
        with pytest.raises(cls) as by_stream:
            client.search_stream(collection, vector, **args)
        assert by_stream.value.code == by_search.value.code
        assert by_stream.value.message == by_search.value.message
    with pytest.raises(vectron.InvalidArgument) as dimension:
        client.search_stream(wiki.collection, [0.1] * (DIM + 2))
    assert str(DIM) in dimension.value.message
    # The client's own checks, as search makes them, before any call.
    with pytest.raises(vectron.InvalidArgument, match="not finite"):
        client.search_stream(wiki.collection, [float("nan")] * DIM)
    with pytest.raises(vectron.InvalidArgument, match="exact=True ignores ef"):
        client.search_stream(wiki.collection, query, exact=True, ef=10)
    with pytest.raises(vectron.InvalidArgument, match="vectron.Filter"):
        client.search_stream(wiki.collection, query, filter=Field("title").keyword("x"))  # type: ignore[arg-type]
    # The client is still usable.
    assert client.search_stream(wiki.collection, query).last().done


@pytest.mark.asyncio
async def test_the_async_client_gives_the_same_last_event(server: DevServer, wiki: Wiki) -> None:
    args = search_args(wiki)
    with Client(server.grpc, timeout=60) as sync:
        expected = [
            (sync.search(wiki.collection, wiki.queries[q], **a), a, q)
            for a in args
            for q in QUERIES
        ]
        sync_last = sync.search_stream(wiki.collection, wiki.queries[0], **args[0]).last()
    async with AsyncClient(server.grpc, timeout=60) as client:
        for result, a, q in expected:
            what = f"query {q}, {a}"
            stream = await client.search_stream(wiki.collection, wiki.queries[q], **a)
            assert isinstance(stream, vectron.AsyncSearchStream)
            events = [event async for event in stream]
            check_events(events, a.get("k", 10), what)
            assert events[-1].result == result, what
        stream = await client.search_stream(wiki.collection, wiki.queries[0], **args[0])
        assert await stream.last() == sync_last
        with pytest.raises(vectron.NotFound):
            await client.search_stream("no_such_collection", wiki.queries[0])
        with pytest.raises(vectron.InvalidArgument):
            await client.search_stream(wiki.collection, [0.1] * (DIM - 1))


# --- against a scripted server -------------------------------------------------------


def event(answered: int, done: bool, *ids: str) -> search_pb2.SearchStreamEvent:
    """An event of a stream over 2 shards, with hits `ids` (scores descending)."""
    hits = [search_pb2.ScoredPoint(id=i, score=1.0 - n / 10) for n, i in enumerate(ids)]
    return search_pb2.SearchStreamEvent(
        result=search_pb2.SearchResponse(hits=hits),
        shards_answered=answered,
        shards_total=2,
        done=done,
    )


#: One step of a scripted stream: an event to send, or a status to end the call with.
Step = search_pb2.SearchStreamEvent | tuple[grpc.StatusCode, str]


@dataclass
class ScriptedPoints:
    """A ``Points`` service whose ``SearchStream`` calls follow `scripts`, one per call
    (the last one repeats), and whose ``Search`` answers no hits; it keeps the
    requests."""

    scripts: list[list[Step]]
    requests: list[search_pb2.SearchRequest] = field(default_factory=list)
    searches: list[search_pb2.SearchRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def search_stream(
        self, request: search_pb2.SearchRequest, context: grpc.ServicerContext
    ) -> Iterable[search_pb2.SearchStreamEvent]:
        with self.lock:
            self.requests.append(request)
            script = self.scripts[min(len(self.requests), len(self.scripts)) - 1]
        for step in script:
            if isinstance(step, tuple):
                context.abort(*step)
            yield step

    def search(
        self, request: search_pb2.SearchRequest, context: grpc.ServicerContext
    ) -> search_pb2.SearchResponse:
        with self.lock:
            self.searches.append(request)
        return search_pb2.SearchResponse()

    @property
    def calls(self) -> int:
        """``SearchStream`` calls made so far."""
        with self.lock:
            return len(self.requests)


@pytest.fixture
def scripted() -> Iterator[tuple[str, ScriptedPoints]]:
    """An in-process gRPC server of a ScriptedPoints (scripts set by the test), and its
    address."""
    points = ScriptedPoints(scripts=[])
    handler = grpc.method_handlers_generic_handler(
        "vectron.v1.Points",
        {
            "SearchStream": grpc.unary_stream_rpc_method_handler(
                points.search_stream,
                request_deserializer=search_pb2.SearchRequest.FromString,
                response_serializer=search_pb2.SearchStreamEvent.SerializeToString,
            ),
            "Search": grpc.unary_unary_rpc_method_handler(
                points.search,
                request_deserializer=search_pb2.SearchRequest.FromString,
                response_serializer=search_pb2.SearchResponse.SerializeToString,
            ),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", points
    finally:
        server.stop(grace=None)


def test_opening_is_retried_and_a_failure_after_an_event_is_not(
    connect: Connect, scripted: tuple[str, ScriptedPoints]
) -> None:
    address, points = scripted
    points.scripts = [
        [(grpc.StatusCode.UNAVAILABLE, "warming up")],
        [event(1, False, "a"), (grpc.StatusCode.UNAVAILABLE, "a shard went away")],
    ]
    with connect(address, retries=3, backoff=0.01, timeout=30) as client:
        stream = client.search_stream("c", [0.5, 0.5], k=1)
        assert points.calls == 2  # the refusal before any event was retried
        first = next(stream)
        assert (first.result.ids, first.shards_answered, first.done) == (["a"], 1, False)
        with pytest.raises(vectron.Unavailable, match="a shard went away"):
            next(stream)
        with pytest.raises(vectron.Unavailable):
            stream.last()
        assert points.calls == 2  # ... and the failure after an event was not


def test_retries_run_out_and_other_refusals_are_raised_at_once(
    connect: Connect, scripted: tuple[str, ScriptedPoints]
) -> None:
    address, points = scripted
    points.scripts = [[(grpc.StatusCode.UNAVAILABLE, "down")]]
    with connect(address, retries=2, backoff=0.01, timeout=30) as client:
        with pytest.raises(vectron.Unavailable, match="down"):
            client.search_stream("c", [0.5, 0.5])
        assert points.calls == 3
        points.scripts = [[(grpc.StatusCode.NOT_FOUND, "collection 'c' not found")]]
        with pytest.raises(vectron.NotFound, match="collection 'c'"):
            client.search_stream("c", [0.5, 0.5])
        assert points.calls == 4


def test_the_deadline_after_partial_events_is_deadline_exceeded(
    connect: Connect, scripted: tuple[str, ScriptedPoints]
) -> None:
    address, points = scripted
    points.scripts = [
        [
            event(1, False, "a"),
            event(2, False, "b", "a"),
            (grpc.StatusCode.DEADLINE_EXCEEDED, "shard 2 did not answer in time"),
        ]
    ]
    with connect(address, retries=3, backoff=0.01, timeout=30) as client:
        stream = client.search_stream("c", [0.5, 0.5], k=2)
        got: list[SearchEvent] = []
        with pytest.raises(vectron.DeadlineExceeded, match="shard 2"):
            for e in stream:
                got.append(e)
        assert [e.result.ids for e in got] == [["a"], ["b", "a"]]
        assert points.calls == 1


def test_a_stream_cut_short_or_running_on_is_internal(
    connect: Connect, scripted: tuple[str, ScriptedPoints]
) -> None:
    address, points = scripted
    with connect(address, retries=3, backoff=0.01, timeout=30) as client:
        points.scripts = [[event(1, False, "a")]]  # no last event
        stream = client.search_stream("c", [0.5, 0.5])
        with pytest.raises(vectron.Internal, match="before its last event"):
            stream.last()
        points.scripts = [[]]  # no event at all
        with pytest.raises(vectron.Internal, match="before its last event"):
            client.search_stream("c", [0.5, 0.5])
        points.scripts = [[event(2, True, "a"), event(2, True, "b")]]  # one after the last
        with pytest.raises(vectron.Internal, match="after its last"):
            list(client.search_stream("c", [0.5, 0.5]))
        points.scripts = [[event(2, True, "a", "b")]]  # a single last event, as from cache
        (only,) = list(client.search_stream("c", [0.5, 0.5], k=2))
        assert (only.result.ids, only.shards_answered, only.shards_total, only.done) == (
            ["a", "b"],
            2,
            2,
            True,
        )


def test_the_request_is_the_one_search_sends(
    connect: Connect, scripted: tuple[str, ScriptedPoints]
) -> None:
    address, points = scripted
    points.scripts = [[event(2, True)]]
    calls: list[dict[str, Any]] = [
        {},
        {"k": 7, "ef": 99, "with_payload": False, "with_vector": True, "timeout_ms": 1500},
        {"exact": True, "allow_partial_results": True, "consistency": "eventual"},
        {"filter": Filter(must=[Field("kind").keyword("moon")])},
    ]
    for read_consistency in (None, "linearizable"):
        with connect(address, timeout=30, read_consistency=read_consistency) as client:
            for args in calls:
                client.search("c", np.array([0.25, 1]), **args)
                assert client.search_stream("c", np.array([0.25, 1]), **args).last().done
    assert len(points.requests) == len(points.searches) == 2 * len(calls)
    assert points.requests == points.searches
    # The client's default consistency is sent, as search sends it.
    assert points.requests[0].consistency == search_pb2.READ_CONSISTENCY_UNSPECIFIED
    assert points.requests[len(calls)].consistency == search_pb2.READ_CONSISTENCY_LINEARIZABLE
