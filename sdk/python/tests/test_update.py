"""``update_collection``: a collection's default search ``ef`` changes, searches that give
none use it at once, the measurement that chose it round-trips, and every other setting
stays fixed. Against a real `vectron dev`, through both clients (``client`` runs each in
turn), and the raw stub for the fixed fields the client does not expose."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest

import vectron
from conftest import (
    WIKI_2K,
    DevServer,
    LoopThread,
    free_loopback_port,
    read_vecs,
    wait_until_indexed,
)
from vectron import AsyncClient, Client, EfTuning, HnswConfig, _calls
from vectron._proto.vectron.v1 import collections_pb2
from vectron.errors import from_rpc_error

K = 10
#: A low default ef: on the coarse graph below its answers differ from ef=64's.
LOW_EF = 10
HIGH_EF = 64
#: A deliberately coarse graph, so that the ef a search runs with shows in its answers.
COARSE = HnswConfig(m=4, ef_construction=8)

TUNING = EfTuning(
    target_recall=0.95,
    k=10,
    measured_recall=0.9625,
    recall_lower_bound=0.951,
    queries=200,
    tuned_at_unix_ms=1_750_000_000_123,
    filter_json='{"must":[{"key":"title","match":{"keyword":"Moon"}}]}',
)


@dataclass(frozen=True)
class Wiki:
    """The fixture's base loaded into a collection of the shared server, and its queries."""

    collection: str
    queries: np.ndarray


@pytest.fixture(scope="module")
def wiki(server: DevServer) -> Iterator[Wiki]:
    """wiki-minilm-2k upserted (ids are row numbers) into a collection with a COARSE
    graph, and indexed."""
    base = read_vecs(WIKI_2K / "base.fvecs", "<f4")
    queries = read_vecs(WIKI_2K / "query.fvecs", "<f4")
    assert base.shape == (2000, 384) and queries.shape == (200, 384)
    name = f"update_wiki_{uuid.uuid4().hex[:8]}"
    with Client(server.grpc, timeout=60) as client:
        client.create_collection(name, 384, "cosine", hnsw=COARSE)
        try:
            assert client.upsert(name, base, ids=[str(i) for i in range(2000)]).count == 2000
            wait_until_indexed(client, name, 2000)
            yield Wiki(collection=name, queries=queries)
        finally:
            client.drop_collection(name)


def batch_ids(client: Client, wiki: Wiki, ef: int | None) -> list[list[str]]:
    """The ids of the fixture's queries searched as one batch, at `ef` (``None``: the
    collection's default)."""
    results = client.search_batch(wiki.collection, wiki.queries, k=K, ef=ef, with_payload=False)
    return [r.ids for r in results]


def test_searches_without_ef_use_the_updated_default(client: Client, wiki: Wiki) -> None:
    updated = client.update_collection(wiki.collection, ef=LOW_EF)
    assert updated.name == wiki.collection
    assert updated.hnsw == HnswConfig(m=4, ef_construction=8, ef=LOW_EF)
    assert updated.dimension == 384
    assert updated.tuning is None
    assert client.describe_collection(wiki.collection).hnsw.ef == LOW_EF
    listed = {c.name: c for c in client.list_collections()}
    assert listed[wiki.collection].hnsw.ef == LOW_EF

    low = batch_ids(client, wiki, LOW_EF)
    high = batch_ids(client, wiki, HIGH_EF)
    assert low != high, "the coarse graph answers the same at ef 10 and 64"
    # Without ef, the batch and each single search run at the new default.
    assert batch_ids(client, wiki, None) == low
    for q in range(0, 200, 20):
        single = client.search(wiki.collection, wiki.queries[q], k=K, with_payload=False)
        assert single.ids == low[q], f"query {q}"

    # And back: the defaults follow each update.
    assert client.update_collection(wiki.collection, ef=HIGH_EF).hnsw.ef == HIGH_EF
    assert batch_ids(client, wiki, None) == high
    assert client.describe_collection(wiki.collection).hnsw.ef == HIGH_EF


def test_tuning_round_trips(client: Client, collection_name: str) -> None:
    created = client.create_collection(collection_name, 4, hnsw=HnswConfig(ef=32))
    try:
        assert created.tuning is None
        assert client.describe_collection(collection_name).tuning is None

        updated = client.update_collection(collection_name, ef=24, tuning=TUNING)
        assert updated.hnsw.ef == 24
        assert updated.tuning == TUNING
        described = client.describe_collection(collection_name)
        assert described.hnsw.ef == 24 and described.tuning == TUNING
        listed = {c.name: c for c in client.list_collections()}
        assert listed[collection_name].tuning == TUNING

        # The same ef without a measurement keeps the one stored (and a retry is harmless).
        again = client.update_collection(collection_name, ef=24)
        assert again.hnsw.ef == 24 and again.tuning == TUNING
        # A new ef without one clears it: the measurement was of the old ef.
        cleared = client.update_collection(collection_name, ef=48)
        assert cleared.hnsw.ef == 48 and cleared.tuning is None
        assert client.describe_collection(collection_name).tuning is None

        # A measurement without a filter comes back with an empty filter_json.
        plain = EfTuning(
            target_recall=1.0,
            k=1,
            measured_recall=1.0,
            recall_lower_bound=0.0,
            queries=1,
            tuned_at_unix_ms=0,
        )
        assert client.update_collection(collection_name, ef=48, tuning=plain).tuning == plain
        # Every other setting is as created.
        final = client.describe_collection(collection_name)
        assert (final.dimension, final.metric, final.shard_count) == (
            created.dimension,
            created.metric,
            created.shard_count,
        )
        assert final.hnsw.m == created.hnsw.m
        assert final.hnsw.ef_construction == created.hnsw.ef_construction
    finally:
        client.drop_collection(collection_name)


def test_update_errors(client: Client, collection_name: str) -> None:
    with pytest.raises(vectron.NotFound) as unknown:
        client.update_collection("no_such_collection", ef=16)
    assert "no_such_collection" in unknown.value.message

    client.create_collection(collection_name, 4)
    try:
        # Refused by the client.
        for bad in (0, -1, True, 1.5, "16", 2**32):
            with pytest.raises(vectron.InvalidArgument, match="ef must be a positive integer"):
                client.update_collection(collection_name, ef=bad)  # type: ignore[arg-type]
        # No ef and nothing else to change: refused, not sent.
        with pytest.raises(vectron.InvalidArgument, match="changes nothing"):
            client.update_collection(collection_name, ef=None)
        with pytest.raises(vectron.InvalidArgument, match="changes nothing"):
            client.update_collection(collection_name)
        with pytest.raises(vectron.InvalidArgument, match="tuning must be a vectron.EfTuning"):
            client.update_collection(collection_name, ef=16, tuning={"k": 10})  # type: ignore[arg-type]
        with pytest.raises(vectron.InvalidArgument, match="tuning holds a value"):
            client.update_collection(
                collection_name, ef=16, tuning=EfTuning(0.9, -1, 0.9, 0.9, 10, 0)
            )
        # Refused by the server: above its bound, and a measurement out of range.
        with pytest.raises(vectron.InvalidArgument):
            client.update_collection(collection_name, ef=32769)
        with pytest.raises(vectron.InvalidArgument, match="tuning.target_recall"):
            client.update_collection(
                collection_name, ef=16, tuning=EfTuning(0.0, 10, 0.9, 0.9, 10, 0)
            )
        with pytest.raises(vectron.InvalidArgument, match="tuning.queries"):
            client.update_collection(
                collection_name, ef=16, tuning=EfTuning(0.9, 10, 0.9, 0.9, 0, 0)
            )
        # Nothing refused changed the collection.
        described = client.describe_collection(collection_name)
        assert described.hnsw.ef == 64 and described.tuning is None
    finally:
        client.drop_collection(collection_name)


def test_fixed_settings_are_refused_by_name(server: DevServer, collection_name: str) -> None:
    with Client(server.grpc, timeout=60) as client:
        created = client.create_collection(collection_name, 4, "l2", hnsw=HnswConfig(m=8))
    try:
        with grpc.insecure_channel(server.grpc) as channel:
            # Collections.Update as the generated stub sends it.
            stub = channel.unary_unary(
                _calls.UPDATE.path,
                request_serializer=collections_pb2.UpdateCollectionRequest.SerializeToString,
                response_deserializer=collections_pb2.CollectionInfo.FromString,
            )

            def update(spec: collections_pb2.CollectionSpec) -> collections_pb2.CollectionInfo:
                request = collections_pb2.UpdateCollectionRequest(name=collection_name, spec=spec)
                info: collections_pb2.CollectionInfo = stub(request, timeout=60)
                return info

            refused = {
                "dimension": collections_pb2.CollectionSpec(dimension=8),
                "metric": collections_pb2.CollectionSpec(metric=collections_pb2.METRIC_COSINE),
                "m": collections_pb2.CollectionSpec(hnsw=collections_pb2.HnswConfig(m=16)),
            }
            for field, spec in refused.items():
                with pytest.raises(grpc.RpcError) as caught:
                    update(spec)
                error = from_rpc_error(caught.value)
                assert isinstance(error, vectron.InvalidArgument), (field, error)
                assert field in error.message, (field, error.message)

            # Fixed settings given at their values are accepted, with the new ef.
            same = collections_pb2.CollectionSpec(
                name=collection_name,
                dimension=4,
                metric=collections_pb2.METRIC_L2,
                hnsw=collections_pb2.HnswConfig(m=8, ef=20),
            )
            assert update(same).spec.hnsw.ef == 20
        with Client(server.grpc, timeout=60) as client:
            described = client.describe_collection(collection_name)
        assert described.hnsw == HnswConfig(
            m=8, ef_construction=created.hnsw.ef_construction, ef=20
        )
        assert described.dimension == 4 and described.metric is vectron.Metric.L2
    finally:
        with Client(server.grpc, timeout=60) as client:
            client.drop_collection(collection_name)


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


def test_the_request_sent_and_the_checks_before_it(client_loop: LoopThread) -> None:
    calls = unreachable_calls()
    op = calls.update_collection(
        "c",
        ef=12,
        tuning=TUNING,
        add_payload_indexes=None,
        drop_payload_indexes=None,
        search_cache=None,
    )
    call = next(op)
    assert call.method is _calls.UPDATE and call.idempotent
    assert call.request == collections_pb2.UpdateCollectionRequest(
        name="c",
        spec=collections_pb2.CollectionSpec(hnsw=collections_pb2.HnswConfig(ef=12)),
        tuning=collections_pb2.EfTuning(
            target_recall=0.95,
            k=10,
            measured_recall=0.9625,
            recall_lower_bound=0.951,
            queries=200,
            tuned_at_unix_ms=1_750_000_000_123,
            filter_json=TUNING.filter_json,
        ),
    )
    answer = collections_pb2.CollectionInfo(
        spec=collections_pb2.CollectionSpec(
            name="c", dimension=3, hnsw=collections_pb2.HnswConfig(ef=12)
        ),
        tuning=call.request.tuning,
    )
    with pytest.raises(StopIteration) as done:
        op.send(answer)
    info = done.value.value
    assert isinstance(info, vectron.CollectionInfo)
    assert info.hnsw.ef == 12 and info.tuning == TUNING and info.dimension == 3
    # No tuning given: none sent (the server keeps or clears its own).
    untuned = next(
        calls.update_collection(
            "c",
            ef=12,
            tuning=None,
            add_payload_indexes=None,
            drop_payload_indexes=None,
            search_cache=None,
        )
    ).request
    assert not untuned.HasField("tuning")
    # Only ef is set in the spec: every fixed setting is left unset.
    assert untuned.spec.ListFields() == [
        (collections_pb2.CollectionSpec.DESCRIPTOR.fields_by_name["hnsw"], untuned.spec.hnsw)
    ]
    with pytest.raises(vectron.InvalidArgument, match="ef"):
        next(
            calls.update_collection(
                "c",
                ef=0,
                tuning=None,
                add_payload_indexes=None,
                drop_payload_indexes=None,
                search_cache=None,
            )
        )

    # Through both clients, with nothing listening: a call would fail UNAVAILABLE.
    address = f"127.0.0.1:{free_loopback_port()}"
    with Client(address, timeout=5, retries=0) as sync_client:
        with pytest.raises(vectron.InvalidArgument, match="ef must be a positive integer"):
            sync_client.update_collection("c", ef=0)

    async def refused() -> None:
        async with AsyncClient(address, timeout=5, retries=0) as aclient:
            with pytest.raises(vectron.InvalidArgument, match="ef must be a positive integer"):
                await aclient.update_collection("c", ef=0)

    client_loop.run(refused())
