"""Collections: create, list, describe, drop, against a real `vectron dev`."""

from __future__ import annotations

import pytest

import vectron
from vectron import (
    Client,
    CollectionState,
    HnswConfig,
    Metric,
    PayloadFieldKind,
    PayloadIndex,
    Quantization,
)


def test_create_list_describe_drop(client: Client, collection_name: str) -> None:
    created = client.create_collection(
        collection_name,
        dimension=8,
        metric="l2",
        shard_count=2,
        hnsw=HnswConfig(m=8, ef=32),
        quantization="int8",
        payload_indexes={"kind": "keyword", "year": PayloadFieldKind.NUMERIC},
    )
    assert created.name == collection_name
    assert created.dimension == 8
    assert created.metric is Metric.L2
    assert created.shard_count == 2
    assert len(created.shards) == 2
    assert created.replication_factor == 1
    assert created.quantization is Quantization.INT8
    # Unset HNSW fields come back resolved to the server's defaults.
    assert created.hnsw.m == 8 and created.hnsw.ef == 32
    assert created.hnsw.ef_construction is not None and created.hnsw.ef_construction >= 8
    assert set(created.payload_indexes) == {
        PayloadIndex("kind", PayloadFieldKind.KEYWORD),
        PayloadIndex("year", PayloadFieldKind.NUMERIC),
    }

    names = [c.name for c in client.list_collections()]
    assert collection_name in names
    assert names == sorted(names)

    described = client.describe_collection(collection_name)
    assert described.name == collection_name
    assert described.dimension == 8
    assert described.state is CollectionState.READY
    assert described.point_count == 0
    assert [s.shard_id for s in described.shards] == [0, 1]
    for shard in described.shards:
        assert shard.replicas, "every shard has a replica"
        assert shard.replicas[0].address.startswith("127.0.0.1:")
    assert described.shards[0].hash_range_start == 0
    assert described.shards[-1].hash_range_end == 2**64 - 1
    assert client.collection_exists(collection_name)

    client.drop_collection(collection_name)
    assert collection_name not in [c.name for c in client.list_collections()]
    assert not client.collection_exists(collection_name)


def test_defaults_and_payload_index_list(client: Client, collection_name: str) -> None:
    created = client.create_collection(
        collection_name,
        3,
        payload_indexes=[PayloadIndex("tag", PayloadFieldKind.KEYWORD)],
    )
    try:
        assert created.metric is Metric.COSINE
        assert created.quantization is Quantization.NONE
        assert created.shard_count >= 1
        assert created.owner == ""
        assert created.payload_indexes == (PayloadIndex("tag", PayloadFieldKind.KEYWORD),)
    finally:
        client.drop_collection(collection_name)


def test_duplicate_create_is_already_exists(client: Client, collection_name: str) -> None:
    client.create_collection(collection_name, 4)
    try:
        with pytest.raises(vectron.AlreadyExists) as caught:
            client.create_collection(collection_name, 4)
        assert collection_name in caught.value.message
        assert caught.value.code.name == "ALREADY_EXISTS"
    finally:
        client.drop_collection(collection_name)


def test_unknown_collection_is_not_found(client: Client) -> None:
    for call in (
        lambda: client.describe_collection("no_such_collection"),
        lambda: client.drop_collection("no_such_collection"),
        lambda: client.count("no_such_collection"),
        lambda: client.search("no_such_collection", [0.1, 0.2], k=1),
        lambda: client.upsert("no_such_collection", [[0.1, 0.2]], ids=["a"]),
    ):
        with pytest.raises(vectron.NotFound) as caught:
            call()
        assert "no_such_collection" in caught.value.message


def test_invalid_specs_are_invalid_argument(client: Client) -> None:
    with pytest.raises(vectron.InvalidArgument):
        client.create_collection("bad name!", 4)
    with pytest.raises(vectron.InvalidArgument):
        client.create_collection("zero_dim", 0)
    # Refused by the client: not a metric.
    with pytest.raises(vectron.InvalidArgument, match="metric must be one of"):
        client.create_collection("bad_metric", 4, metric="hamming")
    # Refused by the server: the unspecified metric.
    with pytest.raises(vectron.InvalidArgument):
        client.create_collection("unspecified_metric", 4, metric=Metric.UNSPECIFIED)
