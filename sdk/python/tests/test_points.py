"""Writing, reading, counting, scrolling and deleting points on a real `vectron dev`."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

import vectron
from conftest import Connect, DevServer
from vectron import Client, Field, Filter, HasId, Point

DIM = 16


@pytest.fixture
def collection(client: Client, collection_name: str) -> Iterator[str]:
    """A fresh cosine collection of dimension DIM with two payload indexes."""
    client.create_collection(
        collection_name, DIM, "cosine", payload_indexes={"kind": "keyword", "year": "numeric"}
    )
    try:
        yield collection_name
    finally:
        client.drop_collection(collection_name)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1, as a cosine collection stores them."""
    unit: np.ndarray = (matrix / np.linalg.norm(matrix, axis=1, keepdims=True)).astype(np.float32)
    return unit


def test_upsert_numpy_with_payloads_then_get_count_scroll(client: Client, collection: str) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((50, DIM)).astype(np.float32)
    ids = [f"p{i:03d}" for i in range(50)]
    payloads: list[dict[str, object] | None] = [
        {
            "kind": "moon" if i % 2 == 0 else "sun",
            "year": 1950 + i,
            "score": i / 4,
            "tags": ["a", i, None, True],
            "author": {"name": f"n{i}", "born": -i},
        }
        for i in range(49)
    ]
    payloads.append(None)
    result = client.upsert(collection, vectors, ids=ids, payloads=payloads)
    assert result.count == 50
    assert result.durable is True
    assert result.ids == tuple(ids)

    got = client.get(collection, ["p003", "missing", "p049", "p000"], with_vector=True)
    assert [r.id for r in got] == ["p003", "p049", "p000"]
    assert got[0].payload == payloads[3]
    assert got[1].payload is None
    assert got[0].vector is not None and got[0].vector.dtype == np.float32
    np.testing.assert_allclose(got[0].vector, unit_rows(vectors)[3], rtol=1e-5, atol=1e-6)
    assert client.get(collection, ["p001"], with_payload=False)[0].payload is None
    assert client.get(collection, ["p001"])[0].vector is None

    assert client.count(collection) == 50
    assert client.count(collection, Filter(must=[Field("kind").keyword("moon")])) == 25
    assert client.count(collection, Filter(must=[Field("year").range(gte=1990)])) == 9
    assert client.count(collection, Filter(must=[Field("author.name").keyword("n7")])) == 1

    first = client.scroll(collection, limit=20)
    assert [r.id for r in first.points] == ids[:20]
    assert first.next_offset == "p020"
    second = client.scroll(collection, offset=first.next_offset, limit=40)
    assert [r.id for r in second.points] == ids[20:]
    assert second.next_offset is None
    filtered = client.scroll(collection, filter=Filter(must=[Field("kind").keyword("sun")]))
    assert [r.id for r in filtered.points] == [i for n, i in enumerate(ids[:49]) if n % 2 == 1]
    walked = list(client.iter_points(collection, page_size=7, with_payload=False, with_vector=True))
    assert [r.id for r in walked] == ids
    assert all(r.vector is not None and r.payload is None for r in walked)


def test_delete_by_ids_and_by_filter(client: Client, collection: str) -> None:
    vectors = np.random.default_rng(1).random((30, DIM), dtype=np.float32) + 0.01
    payloads = [{"kind": "moon" if i < 10 else "sun", "year": 2000 + i} for i in range(30)]
    client.upsert(collection, vectors, ids=list(range(30)), payloads=payloads)
    assert client.count(collection) == 30

    assert client.delete(collection, [0, "1", "2", "no-such-id"]) == 3
    assert client.count(collection) == 27
    assert client.get(collection, ["0", "1", "3"])[0].id == "3"

    assert client.delete(collection, filter=Filter(must=[Field("kind").keyword("moon")])) == 7
    assert client.count(collection) == 20
    deleted = client.delete(
        collection,
        filter=Filter(must=[Field("year").range(gte=2020)], must_not=[HasId(["25"])]),
    )
    assert deleted == 9
    assert sorted(r.id for r in client.iter_points(collection)) == sorted(
        [str(i) for i in range(10, 20)] + ["25"]
    )
    with pytest.raises(vectron.InvalidArgument):
        client.delete(collection, filter=Filter())  # an empty filter is refused
    with pytest.raises(vectron.InvalidArgument, match="exactly one"):
        client.delete(collection)


def test_generated_ids_list_input_and_dtype_conversion(client: Client, collection: str) -> None:
    as_lists = [[float(i + 1)] * DIM for i in range(3)]
    generated = client.upsert(collection, as_lists)
    assert len(generated.ids) == 3
    for point_id in generated.ids:
        uuid.UUID(point_id)  # a valid UUID
    float64 = np.random.default_rng(2).random((4, DIM)) + 0.1  # float64 in, float32 sent
    ints = np.arange(1, DIM + 1, dtype=np.int64)[None, :].repeat(2, axis=0)
    client.upsert(collection, float64, ids=["f0", "f1", "f2", "f3"])
    client.upsert(collection, ints, ids=np.array([7, 8]))
    assert client.count(collection) == 9
    got = client.get(collection, ["f2", "7"], with_vector=True)
    assert got[0].vector is not None and got[1].vector is not None
    np.testing.assert_allclose(got[0].vector, unit_rows(float64)[2], rtol=1e-5)
    np.testing.assert_allclose(got[1].vector, unit_rows(ints.astype(np.float64))[0], rtol=1e-5)
    assert client.upsert(collection, np.empty((0, DIM), dtype=np.float32)).count == 0


def test_upsert_points_and_wait_false(client: Client, collection: str) -> None:
    points = [
        Point(id=f"q{i}", vector=np.full(DIM, i + 1.0), payload={"i": i} if i % 2 else None)
        for i in range(5)
    ]
    assert client.upsert_points(collection, points).count == 5
    queued = client.upsert(collection, np.ones((3, DIM)), ids=["w0", "w1", "w2"], wait=False)
    assert queued.count == 3
    got = client.get(collection, ["q1", "q2"], consistency="linearizable")
    assert [(r.id, r.payload) for r in got] == [("q1", {"i": 1}), ("q2", None)]


def test_batches_split_by_count_and_by_message_size(
    server: DevServer, connect: Connect, collection: str
) -> None:
    rows = 2100
    vectors = np.random.default_rng(3).random((rows, DIM), dtype=np.float32) + 0.01
    ids = [f"b{i:05d}" for i in range(rows)]
    payloads = [{"text": "x" * 1000, "i": i} for i in range(rows)]  # ~2.2 MB in all
    # With a 1 MiB message limit the client must split by size, not only by count.
    with connect(server.grpc, max_message_bytes=1 << 20, timeout=60) as small:
        result = small.upsert(collection, vectors, ids=ids, payloads=payloads, batch_size=1000)
    assert result.count == rows
    with connect(server.grpc, timeout=60) as whole:
        assert whole.count(collection) == rows
        assert whole.get(collection, ["b02099"])[0].payload == {"text": "x" * 1000, "i": 2099}


def test_upsert_stream(client: Client, collection: str) -> None:
    rng = np.random.default_rng(4)
    consumed: list[int] = []

    def points() -> Iterator[Point]:
        for i in range(2500):
            consumed.append(i)
            yield Point(str(i), rng.random(DIM) + 0.01, {"kind": "moon" if i % 5 == 0 else "sun"})

    result = client.upsert_stream(collection, points(), batch_size=1000)
    assert result.count == 2500
    assert result.durable is True
    assert len(consumed) == 2500
    assert client.count(collection) == 2500
    assert client.count(collection, Filter(must=[Field("kind").keyword("moon")])) == 500


def test_upsert_stream_stops_on_a_bad_point(client: Client, collection: str) -> None:
    def points() -> Iterator[Point]:
        for i in range(30):
            yield Point(f"s{i}", np.ones(DIM))
        yield Point("bad", np.ones(DIM + 1))  # first of the fourth message
        for i in range(9):
            yield Point(f"after{i}", np.ones(DIM))
        raise AssertionError("the stream went on past the message with the bad point")

    with pytest.raises(vectron.InvalidArgument, match="'bad'"):
        client.upsert_stream(collection, points(), batch_size=10)
    # The three messages sent before it stay written (the stream was cut, not ended).
    assert client.count(collection) <= 30


def test_upsert_stream_server_refusal_names_the_point(client: Client, collection: str) -> None:
    long_id = "x" * 200  # ids are 1 to 128 bytes
    with pytest.raises(vectron.InvalidArgument) as caught:
        client.upsert_stream(
            collection, [Point("ok", np.ones(DIM)), Point(long_id, np.ones(DIM))], batch_size=1
        )
    assert "128" in caught.value.message or long_id[:20] in caught.value.message


def test_core_stats_count_the_writes(client: Client, collection: str) -> None:
    before = sum(c.upserted_points_total for c in client.core_stats().cores)
    client.upsert(collection, np.ones((5, DIM)), ids=[f"c{i}" for i in range(5)])
    stats = client.core_stats()
    assert stats.unreachable_workers == ()
    assert len(stats.cores) == 1
    core = stats.cores[0]
    assert core.cpu is None  # --no-pin
    assert core.address.startswith("127.0.0.1:")
    assert core.upserted_points_total >= before + 5
    assert any(s.collection == collection and s.points == 5 for s in core.shards)
    assert core.upsert_latency.count >= 1


def settled_thread_count() -> int:
    """Threads alive once those of finished calls have ended (at most 5 s)."""
    count, stable_since = threading.active_count(), time.monotonic()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and time.monotonic() - stable_since < 0.5:
        time.sleep(0.05)
        if threading.active_count() != count:
            count, stable_since = threading.active_count(), time.monotonic()
    return count


def test_upsert_stream_edge_cases(client: Client, collection: str) -> None:
    assert client.upsert_stream(collection, []).count == 0  # no call made: none to refuse
    assert client.upsert_stream(collection, [Point("warm", np.ones(DIM))]).count == 1
    baseline = settled_thread_count()

    def failing() -> Iterator[Point]:
        yield Point("a", np.ones(DIM))
        time.sleep(0.3)  # gRPC's thread is waiting for the next message by now
        raise KeyError("from the iterator")

    for _ in range(3):
        with pytest.raises(KeyError, match="from the iterator"):
            client.upsert_stream(collection, failing(), batch_size=1)
    # The calls were cancelled and gRPC's request-reading threads let go.
    assert settled_thread_count() <= baseline
    assert client.count(collection) <= 2
