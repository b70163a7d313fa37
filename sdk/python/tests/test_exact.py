"""Exact search (``exact=True``): brute force over every point, the true top-k. On the
wiki-minilm-2k fixture it reproduces the fixture's ground truth, the same through both
clients and through ``search_batch``, and under a filter; ``ef`` with it is refused
before any call."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import vectron
from conftest import (
    WIKI_2K,
    DevServer,
    LoopThread,
    free_loopback_port,
    read_vecs,
    recall_at,
    wait_until_indexed,
)
from vectron import AsyncClient, Client, Field, Filter, HnswConfig, _calls

K = 10
#: Scores closer than this are a tie: their hits may come in either order.
TIE = 1e-6
#: A deliberately coarse graph: searching it misses many true neighbours (recall@10
#: about 0.5 at ef=10), so answers that are the ground truth come from exact search.
COARSE = HnswConfig(m=4, ef_construction=8)


@dataclass(frozen=True)
class Wiki:
    """The fixture, loaded into a collection of the shared server."""

    collection: str
    queries: np.ndarray
    truth: np.ndarray
    titles: list[str]
    #: Cosine similarity of each query (row) to each base point (column), in float64.
    scores: np.ndarray


@pytest.fixture(scope="module")
def wiki(server: DevServer) -> Iterator[Wiki]:
    """wiki-minilm-2k upserted (ids are row numbers, a keyword index on ``title``) into
    a collection with a COARSE graph, and indexed."""
    base = read_vecs(WIKI_2K / "base.fvecs", "<f4")
    queries = read_vecs(WIKI_2K / "query.fvecs", "<f4")
    truth = read_vecs(WIKI_2K / "groundtruth.ivecs", "<i4")
    with (WIKI_2K / "base.jsonl").open() as f:
        payloads = [json.loads(line) for line in f]
    assert base.shape == (2000, 384) and queries.shape == (200, 384)
    assert truth.shape[0] == 200 and truth.shape[1] >= K
    unit_base = base.astype(np.float64)
    unit_base /= np.linalg.norm(unit_base, axis=1, keepdims=True)
    unit_queries = queries.astype(np.float64)
    unit_queries /= np.linalg.norm(unit_queries, axis=1, keepdims=True)
    name = f"exact_wiki_{uuid.uuid4().hex[:8]}"
    with Client(server.grpc, timeout=60) as client:
        client.create_collection(
            name, 384, "cosine", hnsw=COARSE, payload_indexes={"title": "keyword"}
        )
        try:
            written = client.upsert(
                name, base, ids=[str(i) for i in range(2000)], payloads=payloads
            )
            assert written.count == 2000
            wait_until_indexed(client, name, 2000)
            yield Wiki(
                collection=name,
                queries=queries,
                truth=truth,
                titles=[p["title"] for p in payloads],
                scores=unit_queries @ unit_base.T,
            )
        finally:
            client.drop_collection(name)


def assert_true_top(
    result: vectron.SearchResult, expected: list[int], scores: np.ndarray, what: str
) -> None:
    """`result` holds the ids of `expected` (row numbers, best first) in that order, but
    for hits whose exact scores (`scores`, by row) tie within TIE; each hit's score is
    its exact score."""
    got = [int(i) for i in result.ids]
    assert len(got) == len(expected), f"{what}: {len(got)} hits, expected {len(expected)}"
    assert len(set(got)) == len(got), f"{what}: a hit twice in {got}"
    for rank, (row, want) in enumerate(zip(got, expected, strict=True)):
        assert row == want or abs(scores[row] - scores[want]) <= TIE, (
            f"{what}, rank {rank}: got {row} ({scores[row]:.7f}), "
            f"expected {want} ({scores[want]:.7f}); got {got}, expected {expected}"
        )
    for hit in result:
        assert hit.score == pytest.approx(scores[int(hit.id)], abs=1e-5), what


def test_exact_search_is_the_ground_truth(server: DevServer, wiki: Wiki) -> None:
    with Client(server.grpc, timeout=60) as client:
        # The graph's own answers are far from the truth ...
        graph = client.search_batch(wiki.collection, wiki.queries, k=K, ef=K, with_payload=False)
        assert recall_at(graph, wiki.truth, K) < 0.9
        # ... and the exact ones are the truth, query by query.
        for q, query in enumerate(wiki.queries):
            result = client.search(wiki.collection, query, k=K, exact=True, with_payload=False)
            expected = wiki.truth[q, :K].tolist()
            assert_true_top(result, expected, wiki.scores[q], f"query {q}")


async def async_exact(address: str, collection: str, queries: np.ndarray) -> list[list[str]]:
    """The ids of exact searches through an AsyncClient: every query at once, then the
    same as one ``search_batch``; both must agree."""
    async with AsyncClient(address, timeout=60) as client:
        one_by_one = await asyncio.gather(
            *(client.search(collection, q, k=K, exact=True, with_payload=False) for q in queries)
        )
        batch = await client.search_batch(collection, queries, k=K, exact=True, with_payload=False)
    ids = [r.ids for r in one_by_one]
    assert [r.ids for r in batch] == ids
    return ids


def test_exact_search_agrees_across_clients_and_batches(
    server: DevServer, wiki: Wiki, client_loop: LoopThread
) -> None:
    with Client(server.grpc, timeout=60) as client:
        searched = [
            client.search(wiki.collection, q, k=K, exact=True, with_payload=False).ids
            for q in wiki.queries
        ]
        batch = client.search_batch(
            wiki.collection, wiki.queries, k=K, exact=True, with_payload=False
        )
        assert [r.ids for r in batch] == searched
        # 1,200 rows go as two requests (1,000 and 200): both exact.
        repeated = np.concatenate([wiki.queries] * 6)
        split = client.search_batch(wiki.collection, repeated, k=K, exact=True, with_payload=False)
        assert [r.ids for r in split] == searched * 6
    assert client_loop.run(async_exact(server.grpc, wiki.collection, wiki.queries)) == searched


def test_exact_search_under_a_filter(server: DevServer, wiki: Wiki) -> None:
    # The passages of the commonest title: exact search ranks them alone.
    (title, count), *_ = Counter(wiki.titles).most_common(1)
    assert count > K
    in_title = np.array([t == title for t in wiki.titles])
    only = Filter(must=[Field("title").keyword(title)])
    with Client(server.grpc, timeout=60) as client:
        for q in range(0, 200, 10):
            scores = np.where(in_title, wiki.scores[q], -np.inf)
            expected = np.argsort(-scores, kind="stable")[:K].tolist()
            result = client.search(wiki.collection, wiki.queries[q], k=K, filter=only, exact=True)
            assert_true_top(result, expected, wiki.scores[q], f"query {q} in {title!r}")
            assert all(h.payload is not None and h.payload["title"] == title for h in result)


def unreachable_calls() -> _calls.Calls:
    """The shared half of a client, for driving operations without a transport."""
    return _calls.Calls(
        "127.0.0.1:1",
        api_key=None,
        timeout=None,
        tls=False,
        ca_cert=None,
        retries=0,
        backoff=0.05,
        max_retry_after=30.0,
        read_consistency=None,
        max_message_bytes=64 << 20,
        tls_server_name=None,
    )


def search_args(**overrides: Any) -> dict[str, Any]:
    """The keyword arguments of a search operation, with `overrides`."""
    args: dict[str, Any] = {
        "filter": None,
        "ef": None,
        "exact": False,
        "with_payload": True,
        "with_vector": False,
        "consistency": None,
        "timeout_ms": None,
        "allow_partial_results": False,
    }
    return {**args, **overrides}


def test_exact_is_sent_and_ef_with_it_is_refused_before_any_call(
    client_loop: LoopThread,
) -> None:
    calls = unreachable_calls()
    # Sent: each request asks for an exact search and leaves ef unset.
    call = next(calls.search("c", [0.1, 0.2], 3, **search_args(exact=True)))
    assert call.method is _calls.SEARCH
    assert call.request.exact is True and not call.request.HasField("ef")
    batch_call = next(calls.search_batch("c", [[0.1, 0.2]] * 2, 3, **search_args(exact=True)))
    assert batch_call.method is _calls.SEARCH_BATCH
    assert [s.exact for s in batch_call.request.searches] == [True, True]
    assert next(calls.search("c", [0.1], 3, **search_args(ef=64))).request.exact is False
    # Refused: the operation raises before it yields a call.
    with pytest.raises(vectron.InvalidArgument, match="ef"):
        next(calls.search("c", [0.1, 0.2], 3, **search_args(exact=True, ef=64)))
    with pytest.raises(vectron.InvalidArgument, match="ef"):
        next(calls.search_batch("c", [[0.1, 0.2]], 3, **search_args(exact=True, ef=64)))

    # Through both clients, with nothing listening: a call would fail UNAVAILABLE.
    address = f"127.0.0.1:{free_loopback_port()}"
    with Client(address, timeout=5, retries=0) as client:
        with pytest.raises(vectron.InvalidArgument, match="ef"):
            client.search("c", [0.1, 0.2], k=3, exact=True, ef=64)
        with pytest.raises(vectron.InvalidArgument, match="ef"):
            client.search_batch("c", [[0.1, 0.2]], k=3, exact=True, ef=64)

    async def refused() -> None:
        async with AsyncClient(address, timeout=5, retries=0) as aclient:
            with pytest.raises(vectron.InvalidArgument, match="ef"):
                await aclient.search("c", [0.1, 0.2], k=3, exact=True, ef=64)
            with pytest.raises(vectron.InvalidArgument, match="ef"):
                await aclient.search_batch("c", [[0.1, 0.2]], k=3, exact=True, ef=64)

    client_loop.run(refused())
