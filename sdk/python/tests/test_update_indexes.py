"""``update_collection`` beyond ``ef``: payload indexes added to a collection that holds
points (built in the background, ready per ``describe_collection``), dropped, and rebuilt
as another kind; and the search cache settings, at creation and by update. Against a
real `vectron dev`, through both clients (``client`` runs each in turn), plus one test of
an :class:`AsyncClient` in its own event loop and the requests as built."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from test_update import unreachable_calls

import vectron
from conftest import Connect, DevServer, free_loopback_port
from vectron import (
    AsyncClient,
    Client,
    Field,
    Filter,
    PayloadFieldKind,
    PayloadIndex,
    PayloadIndexStatus,
    SearchCacheSettings,
    _calls,
    _convert,
)
from vectron._proto.vectron.v1 import collections_pb2

DIM = 8
POINTS = 3000
SHARDS = 2
KINDS = 5
#: Longest wait for a background index build (a few thousand points take milliseconds).
READY_TIMEOUT_S = 60.0
#: The longest cached-answer TTL the server allows (one hour).
MAX_TTL_MS = 3_600_000

GENRE_3 = Filter(must=[Field("genre").keyword("k3")])
RECENT = Filter(must=[Field("year").range(gte=2000)])


def year(i: int) -> int:
    """The year of point `i`."""
    return 1950 + i % 70


def payload(i: int) -> dict[str, object]:
    """The payload of point `i`: a keyword and a number, on every point."""
    return {"genre": f"k{i % KINDS}", "year": year(i)}


def status_of(info: vectron.CollectionInfo, field: str) -> PayloadIndexStatus | None:
    """The status of the index on `field`, if the collection lists one."""
    return next((s for s in info.payload_index_status if s.field == field), None)


def wait_until_ready(client: Client, collection: str, field: str) -> vectron.CollectionInfo:
    """Describes `collection` until the index on `field` is ready (at most
    READY_TIMEOUT_S); returns that description."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        info = client.describe_collection(collection)
        status = status_of(info, field)
        assert status is not None, f"no status for {field!r}: {info.payload_index_status}"
        if status.ready:
            return info
        assert time.monotonic() < deadline, (
            f"the index on {field!r} is not ready after {READY_TIMEOUT_S:.0f} s: {status}"
        )
        time.sleep(0.05)


@dataclass(frozen=True)
class Answers:
    """What the filtered reads of the test answer: counts, exact searches and scrolls."""

    counts: tuple[int, ...]
    searches: tuple[tuple[str, ...], ...]
    scrolled: tuple[str, ...]


def answers(client: Client, collection: str, queries: np.ndarray) -> Answers:
    """The filtered reads on ``genre`` and ``year``, indexed or not."""
    return Answers(
        counts=(client.count(collection, GENRE_3), client.count(collection, RECENT)),
        searches=tuple(
            tuple(client.search(collection, q, k=20, filter=f, exact=True, with_payload=False).ids)
            for q in queries
            for f in (GENRE_3, RECENT)
        ),
        scrolled=tuple(
            r.id for r in client.iter_points(collection, filter=GENRE_3, with_payload=False)
        ),
    )


@pytest.fixture
def filled(client: Client, collection_name: str) -> Iterator[str]:
    """A collection of POINTS points over SHARDS shards, with payloads and no index. Its
    search cache is off, so that every search before and after an index is computed."""
    created = client.create_collection(
        collection_name,
        DIM,
        shard_count=SHARDS,
        search_cache=SearchCacheSettings(enabled=False),
    )
    assert created.payload_indexes == ()
    try:
        vectors = np.random.default_rng(7).standard_normal((POINTS, DIM)).astype(np.float32)
        written = client.upsert(
            collection_name,
            vectors,
            ids=[str(i) for i in range(POINTS)],
            payloads=[payload(i) for i in range(POINTS)],
        )
        assert written.count == POINTS
        yield collection_name
    finally:
        client.drop_collection(collection_name)


def test_an_index_added_to_a_filled_collection(client: Client, filled: str) -> None:
    queries = np.random.default_rng(8).standard_normal((5, DIM)).astype(np.float32)
    before = answers(client, filled, queries)
    recent = sum(year(i) >= 2000 for i in range(POINTS))
    assert before.counts == (POINTS // KINDS, recent)
    assert len(before.scrolled) == POINTS // KINDS

    keyword = PayloadIndex("genre", PayloadFieldKind.KEYWORD)
    added = client.update_collection(filled, add_payload_indexes={"genre": "keyword"})
    assert added.payload_indexes == (keyword,)
    # The answer lists the new index, built or not yet, over every replica.
    status = status_of(added, "genre")
    assert status is not None and status.replicas_total == SHARDS
    assert status.replicas_ready <= status.replicas_total

    ready = wait_until_ready(client, filled, "genre")
    assert ready.payload_index_status == (
        PayloadIndexStatus(field="genre", ready=True, replicas_ready=SHARDS, replicas_total=SHARDS),
    )
    assert ready.payload_indexes == (keyword,)
    # Each replica serves filters from it (core statistics say the same).
    shards = [s for c in client.core_stats().cores for s in c.shards if s.collection == filled]
    assert len(shards) == SHARDS
    assert all(s.payload_indexes_ready == ("genre",) for s in shards), shards
    # List leaves the status out; the spec is the same.
    listed = {c.name: c for c in client.list_collections()}[filled]
    assert listed.payload_indexes == (keyword,) and listed.payload_index_status == ()

    # Filters on the indexed key answer as they did reading payloads.
    assert answers(client, filled, queries) == before

    # Adding it again, the same kind (a list this time), changes nothing.
    again = client.update_collection(filled, add_payload_indexes=[keyword])
    assert again.payload_indexes == (keyword,)
    assert again.payload_index_status == ready.payload_index_status

    # Another kind alone is refused; the index stays as it was.
    with pytest.raises(vectron.InvalidArgument) as other_kind:
        client.update_collection(filled, add_payload_indexes={"genre": PayloadFieldKind.NUMERIC})
    assert "genre" in other_kind.value.message
    assert client.describe_collection(filled).payload_indexes == (keyword,)

    # A second index, numeric, alongside: both listed, both built.
    numeric = PayloadIndex("year", PayloadFieldKind.NUMERIC)
    both = client.update_collection(filled, add_payload_indexes=[numeric])
    assert set(both.payload_indexes) == {keyword, numeric}
    described = wait_until_ready(client, filled, "year")
    assert {s.field for s in described.payload_index_status} == {"genre", "year"}
    assert all(s.ready for s in described.payload_index_status)
    assert answers(client, filled, queries) == before

    # Dropped: gone from the spec and the status at once, and the answers stay.
    dropped = client.update_collection(filled, drop_payload_indexes=["genre"])
    assert dropped.payload_indexes == (numeric,)
    assert status_of(dropped, "genre") is None
    described = client.describe_collection(filled)
    assert described.payload_indexes == (numeric,)
    assert [s.field for s in described.payload_index_status] == ["year"]
    assert answers(client, filled, queries) == before

    # Dropping it again is refused: it has no index.
    with pytest.raises(vectron.InvalidArgument) as twice:
        client.update_collection(filled, drop_payload_indexes=["genre"])
    assert "genre" in twice.value.message
    assert client.describe_collection(filled).payload_indexes == (numeric,)

    # Dropped and added in one update: rebuilt as the added kind.
    rebuilt = client.update_collection(
        filled, drop_payload_indexes=["year"], add_payload_indexes={"year": "keyword"}
    )
    assert set(rebuilt.payload_indexes) == {PayloadIndex("year", PayloadFieldKind.KEYWORD)}
    wait_until_ready(client, filled, "year")
    # The search cache setting from creation was kept by every update.
    assert client.describe_collection(filled).search_cache.enabled is False


def test_index_arguments_refused_before_sending(client: Client, collection_name: str) -> None:
    keyword = PayloadIndex("genre", PayloadFieldKind.KEYWORD)
    client.create_collection(collection_name, DIM, payload_indexes=[keyword])
    try:
        bad_calls: dict[str, dict[str, object]] = {
            "kind of payload index 'x' must be one of": {"add_payload_indexes": {"x": "text"}},
            "add_payload_indexes holds": {"add_payload_indexes": ["genre"]},
            "add_payload_indexes is": {"add_payload_indexes": "genre"},
            "drop_payload_indexes takes a list": {"drop_payload_indexes": "genre"},
            "drop_payload_indexes holds": {"drop_payload_indexes": [keyword]},
        }
        for message, kwargs in bad_calls.items():
            with pytest.raises(vectron.InvalidArgument, match=message):
                client.update_collection(collection_name, **kwargs)  # type: ignore[arg-type]
        # Empty lists change nothing: refused as an update without arguments.
        with pytest.raises(vectron.InvalidArgument, match="changes nothing"):
            client.update_collection(
                collection_name, add_payload_indexes={}, drop_payload_indexes=[]
            )
        # The server refuses an unknown kind sent as such (UNSPECIFIED).
        with pytest.raises(vectron.InvalidArgument):
            client.update_collection(
                collection_name, add_payload_indexes={"y": PayloadFieldKind.UNSPECIFIED}
            )
        assert client.describe_collection(collection_name).payload_indexes == (
            PayloadIndex("genre", PayloadFieldKind.KEYWORD),
        )
    finally:
        client.drop_collection(collection_name)


def test_search_cache_settings(client: Client, collection_name: str) -> None:
    off = f"{collection_name}_off"
    created = client.create_collection(off, DIM, search_cache=SearchCacheSettings(enabled=False))
    try:
        assert created.search_cache.enabled is False
        assert client.describe_collection(off).search_cache == SearchCacheSettings(
            enabled=False, ttl_ms=0
        )
    finally:
        client.drop_collection(off)

    created = client.create_collection(collection_name, DIM)
    try:
        # Unset at creation: cached, for the gateway's TTL, both resolved.
        assert created.search_cache == SearchCacheSettings(enabled=True, ttl_ms=0)
        described = client.describe_collection(collection_name)
        assert described.search_cache == SearchCacheSettings(enabled=True, ttl_ms=0)

        # Each field given replaces the collection's; the other keeps its value.
        turned_off = client.update_collection(
            collection_name, search_cache=SearchCacheSettings(enabled=False)
        )
        assert turned_off.search_cache == SearchCacheSettings(enabled=False, ttl_ms=0)
        assert client.describe_collection(collection_name).search_cache.enabled is False
        minute = client.update_collection(
            collection_name, search_cache=SearchCacheSettings(ttl_ms=60_000)
        )
        assert minute.search_cache == SearchCacheSettings(enabled=False, ttl_ms=60_000)
        described = client.describe_collection(collection_name)
        assert described.search_cache == SearchCacheSettings(enabled=False, ttl_ms=60_000)
        listed = {c.name: c for c in client.list_collections()}[collection_name]
        assert listed.search_cache == SearchCacheSettings(enabled=False, ttl_ms=60_000)
        # An hour is the most; with another setting in the same update.
        hour = client.update_collection(
            collection_name,
            ef=32,
            search_cache=SearchCacheSettings(enabled=True, ttl_ms=MAX_TTL_MS),
        )
        assert hour.search_cache == SearchCacheSettings(enabled=True, ttl_ms=MAX_TTL_MS)
        assert hour.hnsw.ef == 32

        # Above an hour: refused by the server, and nothing changed.
        with pytest.raises(vectron.InvalidArgument) as too_long:
            client.update_collection(
                collection_name, search_cache=SearchCacheSettings(ttl_ms=MAX_TTL_MS + 1)
            )
        assert "ttl" in too_long.value.message
        # Refused by the client: not a non-negative integer, not a bool, not settings.
        for ttl_ms in (-1, True, 1.5, "60000", 2**32):
            with pytest.raises(vectron.InvalidArgument, match="search_cache.ttl_ms must be"):
                client.update_collection(
                    collection_name,
                    search_cache=SearchCacheSettings(ttl_ms=ttl_ms),  # type: ignore[arg-type]
                )
        with pytest.raises(vectron.InvalidArgument, match="search_cache.enabled must be"):
            client.update_collection(
                collection_name,
                search_cache=SearchCacheSettings(enabled="no"),  # type: ignore[arg-type]
            )
        with pytest.raises(vectron.InvalidArgument, match="must be a vectron.SearchCacheSettings"):
            client.update_collection(collection_name, search_cache={"enabled": False})  # type: ignore[arg-type]
        with pytest.raises(vectron.InvalidArgument, match="changes nothing"):
            client.update_collection(collection_name, search_cache=SearchCacheSettings())
        assert client.describe_collection(collection_name).search_cache == SearchCacheSettings(
            enabled=True, ttl_ms=MAX_TTL_MS
        )

        # 0 goes back to the gateway's TTL. Searches run under each setting.
        back = client.update_collection(collection_name, search_cache=SearchCacheSettings(ttl_ms=0))
        assert back.search_cache == SearchCacheSettings(enabled=True, ttl_ms=0)
        client.upsert(collection_name, np.eye(DIM, dtype=np.float32), ids=list(range(DIM)))
        assert client.search(collection_name, np.eye(DIM)[3], k=1).ids == ["3"]
        client.update_collection(collection_name, search_cache=SearchCacheSettings(enabled=False))
        assert client.search(collection_name, np.eye(DIM)[5], k=1).ids == ["5"]
    finally:
        client.drop_collection(collection_name)

    # A TTL above an hour is refused at creation too.
    with pytest.raises(vectron.InvalidArgument):
        client.create_collection(
            collection_name, DIM, search_cache=SearchCacheSettings(ttl_ms=MAX_TTL_MS + 1)
        )
    assert not client.collection_exists(collection_name)


def test_the_requests_sent_and_their_retries() -> None:
    calls = unreachable_calls()

    def request(
        **changes: object,
    ) -> _calls.Call:
        arguments: dict[str, object] = {
            "ef": None,
            "tuning": None,
            "add_payload_indexes": None,
            "drop_payload_indexes": None,
            "search_cache": None,
            **changes,
        }
        return next(calls.update_collection("c", **arguments))  # type: ignore[arg-type]

    added = request(add_payload_indexes={"genre": "keyword", "year": "numeric"})
    assert added.method is _calls.UPDATE and added.idempotent
    assert added.request == collections_pb2.UpdateCollectionRequest(
        name="c",
        add_payload_indexes=[
            collections_pb2.PayloadIndex(
                field="genre", kind=collections_pb2.PAYLOAD_FIELD_KIND_KEYWORD
            ),
            collections_pb2.PayloadIndex(
                field="year", kind=collections_pb2.PAYLOAD_FIELD_KIND_NUMERIC
            ),
        ],
    )
    # No spec is sent without ef or search cache settings: nothing else may change.
    assert not added.request.HasField("spec")

    # A drop is not retried, alone or with other changes.
    dropped = request(drop_payload_indexes=["genre"])
    assert not dropped.idempotent
    assert dropped.request == collections_pb2.UpdateCollectionRequest(
        name="c", drop_payload_indexes=["genre"]
    )
    rebuilt = request(
        drop_payload_indexes=("genre",),
        add_payload_indexes=[PayloadIndex("genre", PayloadFieldKind.NUMERIC)],
    )
    assert not rebuilt.idempotent
    assert list(rebuilt.request.drop_payload_indexes) == ["genre"]
    assert [i.field for i in rebuilt.request.add_payload_indexes] == ["genre"]

    # Search cache settings: only the fields given are set (0 included).
    cached = request(search_cache=SearchCacheSettings(ttl_ms=0))
    assert cached.idempotent
    assert cached.request == collections_pb2.UpdateCollectionRequest(
        name="c",
        spec=collections_pb2.CollectionSpec(
            search_cache=collections_pb2.SearchCacheSettings(ttl_ms=0)
        ),
    )
    assert cached.request.spec.search_cache.HasField("ttl_ms")
    assert not cached.request.spec.search_cache.HasField("enabled")
    assert not cached.request.spec.HasField("hnsw")
    both = request(ef=20, search_cache=SearchCacheSettings(enabled=False, ttl_ms=5))
    assert both.request.spec == collections_pb2.CollectionSpec(
        hnsw=collections_pb2.HnswConfig(ef=20),
        search_cache=collections_pb2.SearchCacheSettings(enabled=False, ttl_ms=5),
    )
    # A tuning alone is sent as it is (for the collection's current ef).
    assert request(tuning=vectron.EfTuning(0.9, 10, 0.95, 0.92, 100, 1)).idempotent

    # At creation, the settings are part of the spec.
    created = next(
        calls.create_collection(
            "c",
            4,
            "cosine",
            shard_count=None,
            replication_factor=None,
            hnsw=None,
            quantization=None,
            payload_indexes=None,
            search_cache=SearchCacheSettings(enabled=True, ttl_ms=250),
        )
    )
    assert created.request.spec.search_cache == collections_pb2.SearchCacheSettings(
        enabled=True, ttl_ms=250
    )

    # The answer's new fields are read back.
    answer = collections_pb2.CollectionInfo(
        spec=collections_pb2.CollectionSpec(
            name="c",
            dimension=4,
            search_cache=collections_pb2.SearchCacheSettings(enabled=True, ttl_ms=0),
        ),
        payload_index_status=[
            collections_pb2.PayloadIndexStatus(
                field="genre", ready=False, replicas_ready=1, replicas_total=3
            )
        ],
    )
    op = calls.update_collection(
        "c",
        ef=None,
        tuning=None,
        add_payload_indexes={"genre": "keyword"},
        drop_payload_indexes=None,
        search_cache=None,
    )
    next(op)
    with pytest.raises(StopIteration) as done:
        op.send(answer)
    info = done.value.value
    assert info.search_cache == SearchCacheSettings(enabled=True, ttl_ms=0)
    assert info.payload_index_status == (
        PayloadIndexStatus(field="genre", ready=False, replicas_ready=1, replicas_total=3),
    )
    # From a server without the settings: unset, read as None.
    older = _convert.collection_from_proto(
        collections_pb2.CollectionInfo(spec=collections_pb2.CollectionSpec(name="c"))
    )
    assert older.search_cache == SearchCacheSettings()
    assert older.payload_index_status == ()


@pytest.mark.timeout(60)
def test_an_update_that_drops_is_not_retried(connect: Connect) -> None:
    # Nothing listens: every attempt fails UNAVAILABLE at once.
    address = f"127.0.0.1:{free_loopback_port()}"
    with connect(address, retries=1, backoff=2.0, timeout=30) as client:
        started = time.monotonic()
        with pytest.raises(vectron.Unavailable):
            client.update_collection("c", drop_payload_indexes=["genre"])
        assert time.monotonic() - started < 0.5, "an update that drops was retried"
        started = time.monotonic()
        with pytest.raises(vectron.Unavailable):
            client.update_collection(
                "c", drop_payload_indexes=["genre"], add_payload_indexes={"genre": "numeric"}
            )
        assert time.monotonic() - started < 0.5, "an update that drops was retried"
        # Adding is retried (after at least half the 2 s backoff).
        started = time.monotonic()
        with pytest.raises(vectron.Unavailable):
            client.update_collection("c", add_payload_indexes={"genre": "keyword"})
        assert time.monotonic() - started >= 0.9, "an update that adds was not retried"


@pytest.mark.asyncio
async def test_async_client_adds_and_drops_an_index(
    server: DevServer, collection_name: str
) -> None:
    async with AsyncClient(server.grpc, timeout=60) as client:
        await client.create_collection(
            collection_name, DIM, search_cache=SearchCacheSettings(ttl_ms=1000)
        )
        try:
            vectors = np.random.default_rng(9).standard_normal((500, DIM)).astype(np.float32)
            await client.upsert(
                collection_name,
                vectors,
                ids=[str(i) for i in range(500)],
                payloads=[payload(i) for i in range(500)],
            )
            before = await client.count(collection_name, GENRE_3)
            added = await client.update_collection(
                collection_name,
                add_payload_indexes=[PayloadIndex("genre", PayloadFieldKind.KEYWORD)],
                search_cache=SearchCacheSettings(enabled=False),
            )
            assert added.search_cache == SearchCacheSettings(enabled=False, ttl_ms=1000)
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                info = await client.describe_collection(collection_name)
                status = status_of(info, "genre")
                assert status is not None
                if status.ready:
                    break
                assert time.monotonic() < deadline, f"not ready: {status}"
                await asyncio.sleep(0.05)
            assert await client.count(collection_name, GENRE_3) == before == 100
            dropped = await client.update_collection(
                collection_name, drop_payload_indexes=["genre"]
            )
            assert dropped.payload_indexes == () and dropped.payload_index_status == ()
            with pytest.raises(vectron.InvalidArgument):
                await client.update_collection(collection_name, drop_payload_indexes=["genre"])
            with pytest.raises(vectron.InvalidArgument):
                await client.update_collection(
                    collection_name, search_cache=SearchCacheSettings(ttl_ms=MAX_TTL_MS + 1)
                )
        finally:
            await client.drop_collection(collection_name)
