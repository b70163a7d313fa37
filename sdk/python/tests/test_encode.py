"""The upsert fast path: wire bytes written by hand must parse to the message protobuf
builds from the same points (a property test over random ids, dimensions, payloads)."""

from __future__ import annotations

import random
import string
from typing import Any

import numpy as np
import pytest

from vectron._convert import payload_to_struct
from vectron._encode import encode_upsert_requests, prepare_points, varint
from vectron._proto.vectron.v1 import points_pb2

ALPHABET = string.ascii_letters + string.digits + "-_:/é日本🙂"


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON value (finite numbers, nested objects and lists)."""
    kinds = ["null", "bool", "int", "float", "str"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.randint(-(2**53), 2**53)
    if kind == "float":
        return rng.uniform(-1e12, 1e12)
    if kind == "str":
        return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 12)))
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return random_payload(rng, depth + 1)


def random_payload(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    """A random JSON object."""
    return {
        "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 8))): random_json(rng, depth)
        for _ in range(rng.randint(0, 5))
    }


def protobuf_built(
    collection: str,
    ids: list[str],
    vectors: np.ndarray,
    payloads: list[dict[str, Any] | None] | None,
    wait: bool | None,
) -> points_pb2.UpsertRequest:
    """The request as protobuf builds it, one Python float at a time."""
    request = points_pb2.UpsertRequest(collection=collection, wait=wait)
    for row, point_id in enumerate(ids):
        point = request.points.add(id=point_id, vector=vectors[row].tolist())
        payload = payloads[row] if payloads is not None else None
        if payload is not None:
            point.payload.CopyFrom(payload_to_struct(payload, "test"))
    return request


@pytest.mark.parametrize("seed", range(60))
def test_fast_encoding_parses_to_the_protobuf_message(seed: int) -> None:
    rng = random.Random(seed)
    rows = rng.randint(1, 40)
    dim = rng.choice([1, 2, 3, 7, 16, 128, 384, 1536])
    ids = ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 30))) for _ in range(rows)]
    vectors = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    if seed % 3 == 0:
        vectors *= np.float32(1e30)  # large magnitudes, still finite
    payloads: list[dict[str, Any] | None] | None = None
    if seed % 4 != 0:
        payloads = [random_payload(rng) if rng.random() < 0.8 else None for _ in range(rows)]
    wait = rng.choice([None, True, False])
    collection = rng.choice(["c", "docs", "a-much-longer_collection-name-0123456789"])
    batch = rng.choice([1, 3, 1000])

    prepared = prepare_points(vectors, ids, payloads, dimension=dim)
    encoded = list(
        encode_upsert_requests(
            collection, prepared, wait=wait, batch_size=batch, max_bytes=64 << 20
        )
    )
    assert len(encoded) == -(-rows // batch)
    parsed = [points_pb2.UpsertRequest.FromString(chunk) for chunk in encoded]
    for start, message in zip(range(0, rows, batch), parsed, strict=True):
        stop = min(start + batch, rows)
        expected = protobuf_built(
            collection,
            ids[start:stop],
            vectors[start:stop],
            payloads[start:stop] if payloads is not None else None,
            wait,
        )
        assert message == expected
        assert message.HasField("wait") == (wait is not None)
        if payloads is None:
            # Without payloads (maps, whose order protobuf does not fix) the bytes match too.
            assert message.SerializeToString(deterministic=True) == expected.SerializeToString(
                deterministic=True
            )


def test_vectors_are_the_raw_little_endian_rows() -> None:
    vectors = np.array([[1.5, -2.0, 3.25]], dtype=">f4")  # big-endian in, little-endian out
    prepared = prepare_points(vectors, ["id"], None, dimension=None)
    (wire,) = encode_upsert_requests("c", prepared, wait=None, batch_size=10, max_bytes=1 << 20)
    raw = np.array([1.5, -2.0, 3.25], dtype="<f4").tobytes()
    point = b"\x0a\x02id" + b"\x12" + bytes([len(raw)]) + raw
    assert wire == b"\x0a\x01c" + b"\x12" + bytes([len(point)]) + point


def test_requests_stay_under_the_byte_budget() -> None:
    rows, dim = 500, 256  # each point about 1 KiB
    vectors = np.ones((rows, dim), dtype=np.float32)
    prepared = prepare_points(vectors, [f"{i:06d}" for i in range(rows)], None, dimension=dim)
    chunks = list(
        encode_upsert_requests("c", prepared, wait=True, batch_size=10_000, max_bytes=64 << 10)
    )
    assert all(len(chunk) <= 64 << 10 for chunk in chunks)
    assert sum(len(points_pb2.UpsertRequest.FromString(c).points) for c in chunks) == rows
    assert len(chunks) > 1


def test_batch_size_is_capped_at_the_server_limit() -> None:
    prepared = prepare_points(np.ones((10_001, 1), dtype=np.float32), None, None, dimension=1)
    chunks = list(
        encode_upsert_requests("c", prepared, wait=None, batch_size=50_000, max_bytes=64 << 20)
    )
    assert [len(points_pb2.UpsertRequest.FromString(c).points) for c in chunks] == [10_000, 1]


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16_383, 16_384, 2**31, 2**63 - 1])
def test_varint_matches_protobuf(value: int) -> None:
    # CountResponse.count (uint64, field 1) is its one-byte tag and then a bare varint.
    encoded = points_pb2.CountResponse(count=value).SerializeToString()
    assert encoded == (b"\x08" + varint(value) if value else b"")
