"""Errors: the server's codes as exception classes, and input refused before sending."""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

import vectron
from conftest import Connect, DevServer, free_loopback_port
from vectron import Client, Field, Filter
from vectron.errors import from_rpc_error

DIM = 4


@pytest.fixture
def collection(client: Client, collection_name: str) -> Iterator[str]:
    """A fresh collection of dimension DIM."""
    client.create_collection(collection_name, DIM)
    try:
        yield collection_name
    finally:
        client.drop_collection(collection_name)


def test_wrong_dimension_from_the_server_names_the_point(
    server: DevServer, connect: Connect, collection: str
) -> None:
    # A client that never described the collection: the server does the refusing.
    with connect(server.grpc, timeout=30) as fresh:
        vectors = np.ones((3, DIM + 1), dtype=np.float32)
        with pytest.raises(vectron.InvalidArgument) as caught:
            fresh.upsert(collection, vectors, ids=["good-id", "bad-id-1", "bad-id-2"])
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "good-id" in caught.value.message
        assert str(DIM) in caught.value.message
        assert isinstance(caught.value, ValueError)
        assert fresh.count(collection) == 0


def test_wrong_dimension_known_to_the_client_is_refused_before_sending(
    client: Client, collection: str
) -> None:
    # `client` created the collection, so it knows the dimension.
    with pytest.raises(vectron.InvalidArgument, match=r"'p1' \(row 0\).*dimension is 4"):
        client.upsert(collection, np.ones((2, DIM + 2)), ids=["p1", "p2"])


def test_a_stale_dimension_is_checked_again_with_the_server(
    server: DevServer, client: Client, connect: Connect, collection_name: str
) -> None:
    client.create_collection(collection_name, DIM)  # `client` now knows DIM
    with connect(server.grpc, timeout=30) as other:
        other.drop_collection(collection_name)
        other.create_collection(collection_name, DIM * 2)
        try:
            written = client.upsert(collection_name, np.ones((1, DIM * 2)), ids=["x"])
            assert written.count == 1
            assert other.count(collection_name) == 1
        finally:
            other.drop_collection(collection_name)


@pytest.mark.parametrize(
    ("vectors", "ids", "payloads", "pattern"),
    [
        (np.ones(DIM), None, None, "2-D"),
        (np.ones((2, 2, DIM)), None, None, "2-D"),
        (
            np.array([[1.0, np.nan, 0, 0], [1, 1, 1, 1]]),
            ["a", "b"],
            None,
            r"'a' \(row 0\).*index 1",
        ),
        (np.array([[1.0, 1, 1, 1], [1, 1, np.inf, 1]]), ["a", "b"], None, r"'b' \(row 1\)"),
        (np.array([[1e300, 1, 1, 1]]), ["big"], None, "not a finite float32"),
        (np.array([[True, False, True, True]]), None, None, "dtype bool"),
        (np.array([["a", "b", "c", "d"]]), None, None, "real numbers"),
        (
            [[1, 2, 3, 4], [1, 2, 3]],
            ["a", "b"],
            None,
            r"'b' \(row 1\): vector has 3 values, point 'a'",
        ),
        ([1.0, 2.0, 3.0, 4.0], None, None, "flat list"),
        ([[1, 2, 3, "x"]], None, None, "numbers only"),
        (np.ones((2, DIM)), ["only-one"], None, "1 ids for 2 vectors"),
        (np.ones((2, DIM)), ["a", None], None, "id of row 1"),
        (np.ones((1, DIM)), ["a"], [{"x": 1}, {"y": 2}], "2 payloads for 1 vectors"),
        (np.ones((1, DIM)), ["a"], ["not a dict"], "payload is a JSON object"),
        (np.ones((1, DIM)), ["a"], [{"n": float("nan")}], r"'a'.*at n is not a finite"),
        (np.ones((1, DIM)), ["a"], [{"deep": {"k": [1, object()]}}], r"deep\.k\[1\]"),
        (np.ones((1, DIM)), ["a"], [{1: "x"}], "not a string"),
        (np.ones((1, 0)), ["a"], None, "dimension 0"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(
    connect: Connect,
    vectors: object,
    ids: list[object] | None,
    payloads: list[object] | None,
    pattern: str,
) -> None:
    # Nothing listens on this port: a call would fail with Unavailable, not InvalidArgument.
    with connect(f"127.0.0.1:{free_loopback_port()}", retries=0, timeout=5) as nowhere:
        with pytest.raises(vectron.InvalidArgument, match=pattern):
            nowhere.upsert("c", vectors, ids=ids, payloads=payloads)  # type: ignore[arg-type]


def test_refused_input_leaves_the_collection_untouched(client: Client, collection: str) -> None:
    vectors = np.ones((10, DIM), dtype=np.float32)
    vectors[7, 2] = np.nan
    with pytest.raises(vectron.InvalidArgument, match=r"row 7"):
        client.upsert(collection, vectors, ids=[str(i) for i in range(10)])
    assert client.count(collection) == 0


def test_an_unreachable_server_is_unavailable(connect: Connect) -> None:
    started = time.monotonic()
    with connect(
        f"127.0.0.1:{free_loopback_port()}", retries=2, backoff=0.01, timeout=20
    ) as nowhere:
        with pytest.raises(vectron.Unavailable):
            nowhere.list_collections()
    assert time.monotonic() - started < 20


def test_a_passed_deadline_is_deadline_exceeded(
    server: DevServer, client: Client, connect: Connect, collection_name: str
) -> None:
    dim, rows = 64, 2000
    rng = np.random.default_rng(5)
    client.create_collection(collection_name, dim)
    try:
        client.upsert(collection_name, rng.random((rows, dim), dtype=np.float32) + 0.01)
        queries = rng.random((1000, dim), dtype=np.float32)
        # A thousand searches over 2,000 points take far longer than a millisecond.
        with connect(server.grpc, timeout=0.001) as hurried:
            with pytest.raises(vectron.DeadlineExceeded) as caught:
                hurried.search_batch(collection_name, queries, k=100, ef=500)
        assert isinstance(caught.value, TimeoutError)
        assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    finally:
        client.drop_collection(collection_name)


def test_client_side_argument_checks(connect: Connect) -> None:
    with pytest.raises(vectron.InvalidArgument, match="http://"):
        connect("http://127.0.0.1:1", tls=True)
    with pytest.raises(vectron.InvalidArgument, match="header"):
        connect("127.0.0.1:1", api_key="bad key\n")
    with pytest.raises(vectron.InvalidArgument, match="retries"):
        connect("127.0.0.1:1", retries=-1)
    with pytest.raises(vectron.InvalidArgument, match="at least one bound"):
        Field("year").range()
    with pytest.raises(vectron.InvalidArgument, match="not one string"):
        Field("kind").any_of("moon")
    with pytest.raises(vectron.InvalidArgument, match="not a condition"):
        Filter(must=["kind == moon"])  # type: ignore[list-item]
    closed = connect("127.0.0.1:1")
    closed.close()
    closed.close()
    with pytest.raises(RuntimeError, match="closed"):
        closed.list_collections()


class _FailedCall(grpc.RpcError):
    """A failed call as grpcio raises it: code, details and trailing metadata."""

    def __init__(
        self, code: grpc.StatusCode, details: str, trailers: tuple[tuple[str, str], ...] = ()
    ):
        super().__init__()
        self._code, self._details, self._trailers = code, details, trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Any:  # grpcio gives (key, value) pairs
        return self._trailers


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, vectron.InvalidArgument),
        (grpc.StatusCode.OUT_OF_RANGE, vectron.InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, vectron.NotFound),
        (grpc.StatusCode.ALREADY_EXISTS, vectron.AlreadyExists),
        (grpc.StatusCode.UNAUTHENTICATED, vectron.Unauthenticated),
        (grpc.StatusCode.PERMISSION_DENIED, vectron.PermissionDenied),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, vectron.ResourceExhausted),
        (grpc.StatusCode.FAILED_PRECONDITION, vectron.FailedPrecondition),
        (grpc.StatusCode.ABORTED, vectron.FailedPrecondition),
        (grpc.StatusCode.UNAVAILABLE, vectron.Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, vectron.DeadlineExceeded),
        (grpc.StatusCode.CANCELLED, vectron.Cancelled),
        (grpc.StatusCode.INTERNAL, vectron.Internal),
        (grpc.StatusCode.DATA_LOSS, vectron.Internal),
        (grpc.StatusCode.UNIMPLEMENTED, vectron.OtherError),
        (grpc.StatusCode.UNKNOWN, vectron.OtherError),
    ],
)
def test_every_status_code_maps_to_its_class(
    code: grpc.StatusCode, cls: type[vectron.VectronError]
) -> None:
    error = from_rpc_error(_FailedCall(code, "why"))
    assert type(error) is cls
    assert error.code == code
    assert error.message == "why"
    assert str(error).endswith(": why")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls and copy.code == code and copy.message == "why"


def test_resource_exhausted_keeps_retry_after() -> None:
    limited = from_rpc_error(
        _FailedCall(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", (("retry-after", "3"),))
    )
    assert isinstance(limited, vectron.ResourceExhausted)
    assert limited.retry_after == 3.0
    too_big = from_rpc_error(_FailedCall(grpc.StatusCode.RESOURCE_EXHAUSTED, "message too large"))
    assert isinstance(too_big, vectron.ResourceExhausted)
    assert too_big.retry_after is None
