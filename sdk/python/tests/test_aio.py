"""AsyncClient in its own event loop (pytest-asyncio): ``async with``, concurrent calls
on one channel, async iterables in and out, cancellation, and ``upload_points`` as tasks.

Every method also runs through both clients in the other test files (see
``conftest.connect``); these tests cover what only an event loop shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio

import vectron
from conftest import DevServer, free_loopback_port
from vectron import AsyncClient, Field, Filter, Point

DIM = 8

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def aclient(server: DevServer) -> AsyncIterator[AsyncClient]:
    """An async client of the shared server, made in the test's loop."""
    async with AsyncClient(server.grpc, timeout=60) as client:
        yield client


@pytest_asyncio.fixture
async def collection(aclient: AsyncClient, collection_name: str) -> AsyncIterator[str]:
    """A fresh cosine collection of dimension DIM with a keyword index."""
    await aclient.create_collection(collection_name, DIM, payload_indexes={"kind": "keyword"})
    try:
        yield collection_name
    finally:
        await aclient.drop_collection(collection_name)


async def test_concurrent_calls_share_the_channel(aclient: AsyncClient, collection: str) -> None:
    rng = np.random.default_rng(21)
    vectors = rng.standard_normal((200, DIM)).astype(np.float32)
    kinds = [{"kind": "moon" if i % 2 else "sun"} for i in range(200)]
    # Four upserts at once, each its own quarter of the rows.
    written = await asyncio.gather(
        *(
            aclient.upsert(
                collection,
                vectors[q * 50 : (q + 1) * 50],
                ids=[str(i) for i in range(q * 50, (q + 1) * 50)],
                payloads=kinds[q * 50 : (q + 1) * 50],
            )
            for q in range(4)
        )
    )
    assert sum(w.count for w in written) == 200
    # Fifty searches at once answer as the same searches one by one.
    together = await asyncio.gather(
        *(aclient.search(collection, vectors[i], k=3, ef=128) for i in range(50))
    )
    one_by_one = [await aclient.search(collection, vectors[i], k=3, ef=128) for i in range(50)]
    assert [r.ids for r in together] == [r.ids for r in one_by_one]
    assert all(r.ids[0] == str(i) for i, r in enumerate(together))
    counts = await asyncio.gather(
        aclient.count(collection),
        aclient.count(collection, Filter(must=[Field("kind").keyword("moon")])),
        aclient.collection_exists(collection),
        aclient.collection_exists("no_such_collection"),
    )
    assert list(counts) == [200, 100, True, False]


async def test_async_iterables_in_and_out(aclient: AsyncClient, collection: str) -> None:
    async def points() -> AsyncIterator[Point]:
        for i in range(1200):
            if i % 100 == 0:
                await asyncio.sleep(0)  # other tasks run while the stream is fed
            yield Point(f"s{i:04d}", np.full(DIM, i + 1.0), {"kind": "moon"} if i < 5 else None)

    result = await aclient.upsert_stream(collection, points(), batch_size=500)
    assert result.count == 1200 and result.durable is True
    walked = [r.id async for r in aclient.iter_points(collection, page_size=300)]
    assert walked == [f"s{i:04d}" for i in range(1200)]
    moons = [
        r.payload
        async for r in aclient.iter_points(
            collection, filter=Filter(must=[Field("kind").keyword("moon")]), page_size=2
        )
    ]
    assert moons == [{"kind": "moon"}] * 5


async def test_a_failing_async_iterable_cancels_the_stream(
    aclient: AsyncClient, collection: str
) -> None:
    async def points() -> AsyncIterator[Point]:
        yield Point("a", np.ones(DIM))
        await asyncio.sleep(0.2)
        raise KeyError("from the async iterable")

    with pytest.raises(KeyError, match="from the async iterable"):
        await aclient.upsert_stream(collection, points(), batch_size=1)
    # The call was cancelled: the one message sent may or may not have been applied.
    assert await aclient.count(collection) <= 1
    assert (await aclient.upsert_stream(collection, [])).count == 0  # no call made


async def test_a_cancelled_task_leaves_the_client_usable(
    aclient: AsyncClient, collection_name: str
) -> None:
    await aclient.create_collection(collection_name, 64)
    try:
        rows = np.random.default_rng(22).random((2000, 64), dtype=np.float32) + 0.01
        await aclient.upsert(collection_name, rows)
        queries = rows[:1000]
        task = asyncio.create_task(aclient.search_batch(collection_name, queries, k=50, ef=400))
        await asyncio.sleep(0.001)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await aclient.count(collection_name) == 2000
    finally:
        await aclient.drop_collection(collection_name)


async def test_upload_points_runs_as_tasks(aclient: AsyncClient, collection: str) -> None:
    rows = np.random.default_rng(23).random((3000, DIM), dtype=np.float32) + 0.01
    seen: list[int] = []
    loop = asyncio.get_running_loop()
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    beside = asyncio.create_task(ticker())
    try:
        result = await aclient.upload_points(
            collection,
            rows,
            ids=np.arange(3000),
            batch_size=100,
            parallel=3,
            progress=lambda done, total: seen.append(done),
        )
    finally:
        beside.cancel()
    assert asyncio.get_running_loop() is loop
    assert result.count == 3000 and result.ids[-1] == "2999"
    assert seen == sorted(seen) and seen[-1] == 3000 and len(seen) == 30
    assert ticks > 30, "the event loop was blocked during the upload"
    assert await aclient.count(collection) == 3000


async def test_lifecycle_and_errors(server: DevServer) -> None:
    client = AsyncClient(server.grpc, timeout=30)
    assert "AsyncClient(" in repr(client) and "closed=False" in repr(client)
    with pytest.raises(vectron.NotFound):
        await client.describe_collection("no_such_collection")
    await client.close()
    await client.close()  # closing twice is harmless
    assert "closed=True" in repr(client)
    with pytest.raises(RuntimeError, match="closed"):
        await client.list_collections()
    with pytest.raises(vectron.InvalidArgument, match="retries"):
        AsyncClient(server.grpc, retries=-1)
    async with AsyncClient(
        f"127.0.0.1:{free_loopback_port()}", retries=2, backoff=0.01, timeout=10
    ) as nowhere:
        with pytest.raises(vectron.Unavailable):
            await nowhere.list_collections()
        # Refused before anything is sent, naming the row.
        with pytest.raises(vectron.InvalidArgument, match=r"row 1\)"):
            await nowhere.upsert("c", [[1.0, 2.0], [np.nan, 1.0]])
