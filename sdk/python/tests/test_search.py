"""Search and batched search with filters on a real `vectron dev`."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

import vectron
from vectron import Client, Field, Filter, HasId, ReadConsistency

DIM = 8
COUNT = 200


@pytest.fixture
def planets(client: Client, collection_name: str) -> Iterator[tuple[str, np.ndarray]]:
    """A collection of COUNT random points with kind/year/tags payloads."""
    client.create_collection(
        collection_name, DIM, "cosine", payload_indexes={"kind": "keyword", "year": "numeric"}
    )
    vectors = np.random.default_rng(11).standard_normal((COUNT, DIM)).astype(np.float32)
    kinds = ["moon", "sun", "comet", "asteroid"]
    payloads = [
        {"kind": kinds[i % 4], "year": 1900 + i, "tags": [f"t{i % 3}", "all"]} for i in range(COUNT)
    ]
    client.upsert(collection_name, vectors, ids=[str(i) for i in range(COUNT)], payloads=payloads)
    try:
        yield collection_name, vectors
    finally:
        client.drop_collection(collection_name)


def exact_top(
    vectors: np.ndarray, query: np.ndarray, k: int, mask: np.ndarray | None = None
) -> list[str]:
    """Ids of the k best cosine matches, by brute force."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = unit @ (query / np.linalg.norm(query))
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    order = np.argsort(-scores, kind="stable")[:k]
    return [str(i) for i in order if np.isfinite(scores[i])]


def test_search_returns_the_nearest_with_scores(
    client: Client, planets: tuple[str, np.ndarray]
) -> None:
    name, vectors = planets
    query = vectors[17] + 0.01
    hits = client.search(name, query, k=5, ef=128, with_vector=True)
    assert len(hits) == 5
    assert hits[0].id == "17"
    assert hits.ids == exact_top(vectors, query, 5)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert -1.0 <= scores[-1] <= scores[0] <= 1.0 + 1e-6
    assert hits[0].payload == {"kind": "sun", "year": 1917, "tags": ["t2", "all"]}
    assert hits[0].vector is not None and hits[0].vector.shape == (DIM,)
    assert hits.missing_shards == () and hits.reranked is False
    no_payload = client.search(name, query, k=1, with_payload=False)
    assert no_payload[0].payload is None and no_payload[0].vector is None


def test_search_with_filters(client: Client, planets: tuple[str, np.ndarray]) -> None:
    name, vectors = planets
    query = vectors[3]
    years = 1900 + np.arange(COUNT)
    kinds = np.array(["moon", "sun", "comet", "asteroid"])[np.arange(COUNT) % 4]

    moons = client.search(
        name, query, k=10, ef=256, filter=Filter(must=[Field("kind").keyword("moon")])
    )
    assert moons.ids == exact_top(vectors, query, 10, kinds == "moon")
    assert all(h.payload is not None and h.payload["kind"] == "moon" for h in moons)

    window = Filter(must=[Field("year").range(gte=1950, lt=1960)])
    in_window = client.search(name, query, k=20, filter=window)
    assert sorted(in_window.ids, key=int) == [str(i) for i in range(50, 60)]

    either = Filter(should=[Field("kind").any_of(["comet", "asteroid"])], must_not=[HasId(["3"])])
    hits = client.search(name, query, k=10, ef=256, filter=either)
    mask = np.isin(kinds, ["comet", "asteroid"]) & (np.arange(COUNT) != 3)
    assert hits.ids == exact_top(vectors, query, 10, mask)

    nested = Filter(
        must=[
            Filter(should=[Field("kind").keyword("sun"), Field("year").range(gt=2095)]),
            Field("tags").keyword("t0"),
        ]
    )
    got = client.search(name, query, k=COUNT, filter=nested)
    tag0 = np.arange(COUNT) % 3 == 0
    expected = ((kinds == "sun") | (years > 2095)) & tag0
    assert sorted(got.ids, key=int) == [str(i) for i in np.flatnonzero(expected)]


def test_search_batch(client: Client, planets: tuple[str, np.ndarray]) -> None:
    name, vectors = planets
    queries = vectors[:5] + 0.001
    results = client.search_batch(
        name, queries, k=3, ef=64, consistency=ReadConsistency.LINEARIZABLE
    )
    assert len(results) == 5
    for i, result in enumerate(results):
        assert result.ids[0] == str(i)
        assert result.ids == exact_top(vectors, queries[i], 3)
    filtered = client.search_batch(
        name, queries, k=2, filter=Filter(must=[Field("kind").keyword("comet")])
    )
    assert all(h.payload is not None and h.payload["kind"] == "comet" for r in filtered for h in r)


def test_search_rejects_bad_queries(client: Client, planets: tuple[str, np.ndarray]) -> None:
    name, _ = planets
    with pytest.raises(vectron.InvalidArgument) as caught:
        client.search(name, [0.1] * (DIM + 2), k=3)  # the server checks the dimension
    assert str(DIM) in caught.value.message
    with pytest.raises(vectron.InvalidArgument):
        client.search(name, [0.1] * DIM, k=0)
    with pytest.raises(vectron.InvalidArgument, match="not finite"):
        client.search(name, [float("nan")] + [0.1] * (DIM - 1), k=1)
    with pytest.raises(vectron.InvalidArgument, match="query 1"):
        client.search_batch(name, [[0.1] * DIM, [np.inf] * DIM], k=1)
    with pytest.raises(vectron.InvalidArgument) as batch_error:
        client.search_batch(name, [[0.1] * DIM, [0.1] * (DIM + 1)], k=1)
    assert "1" in batch_error.value.message  # the server names the search's position
