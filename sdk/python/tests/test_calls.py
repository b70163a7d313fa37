"""The retry decisions both clients share (``vectron._calls.Attempts``), and the
operations driven without a transport."""

from __future__ import annotations

import time
from typing import Any

import grpc
import grpc.aio
import pytest

import vectron
from vectron import _calls
from vectron._proto.vectron.v1 import collections_pb2, points_pb2


def failed(
    code: grpc.StatusCode, details: str = "why", retry_after: str | None = None, debug: str = ""
) -> grpc.aio.AioRpcError:
    """A failed call as grpc.aio raises it (a grpc.RpcError like the blocking ones)."""
    trailers = grpc.aio.Metadata()
    if retry_after is not None:
        trailers.add("retry-after", retry_after)
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details, debug)


def attempts(
    *, timeout: float | None = None, retries: int = 3, max_retry_after: float = 30.0
) -> _calls.Attempts:
    """The attempts of one call."""
    return _calls.Attempts(
        timeout=timeout, retries=retries, backoff=0.1, max_retry_after=max_retry_after
    )


def test_unavailable_backs_off_with_jitter_then_gives_up() -> None:
    call = attempts(retries=3)
    pauses = [call.pause_after(failed(grpc.StatusCode.UNAVAILABLE)) for _ in range(3)]
    for pause, base in zip(pauses, (0.1, 0.2, 0.4), strict=True):
        assert 0.5 * base <= pause < 1.5 * base
    with pytest.raises(vectron.Unavailable) as caught:
        call.pause_after(failed(grpc.StatusCode.UNAVAILABLE, "gone"))
    assert caught.value.message == "gone"
    assert isinstance(caught.value.__cause__, grpc.RpcError)


def test_resource_exhausted_waits_the_servers_retry_after() -> None:
    assert attempts().pause_after(failed(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_after="2")) == 2
    with pytest.raises(vectron.ResourceExhausted) as too_long:
        attempts(max_retry_after=1).pause_after(
            failed(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_after="2")
        )
    assert too_long.value.retry_after == 2
    with pytest.raises(vectron.ResourceExhausted):  # no retry-after: a size or a quota
        attempts().pause_after(failed(grpc.StatusCode.RESOURCE_EXHAUSTED))


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, vectron.InvalidArgument),
        (grpc.StatusCode.NOT_FOUND, vectron.NotFound),
        (grpc.StatusCode.UNAUTHENTICATED, vectron.Unauthenticated),
        (grpc.StatusCode.INTERNAL, vectron.Internal),
        (grpc.StatusCode.DEADLINE_EXCEEDED, vectron.DeadlineExceeded),
    ],
)
def test_other_failures_are_raised_at_once(
    code: grpc.StatusCode, cls: type[vectron.VectronError]
) -> None:
    with pytest.raises(cls):
        attempts().pause_after(failed(code))


def test_no_retry_for_a_call_that_is_not_idempotent_or_past_its_deadline() -> None:
    calls = _calls.Calls(
        "127.0.0.1:1",
        api_key=None,
        timeout=None,
        tls=False,
        ca_cert=None,
        retries=5,
        backoff=0.05,
        max_retry_after=30.0,
        read_consistency=None,
        max_message_bytes=64 << 20,
        tls_server_name=None,
    )
    with pytest.raises(vectron.Unavailable):
        calls.attempts(idempotent=False).pause_after(failed(grpc.StatusCode.UNAVAILABLE))
    assert calls.attempts(idempotent=True).pause_after(failed(grpc.StatusCode.UNAVAILABLE)) > 0
    upload = calls.attempts(idempotent=True, retries=1)
    upload.pause_after(failed(grpc.StatusCode.UNAVAILABLE))
    with pytest.raises(vectron.Unavailable):
        upload.pause_after(failed(grpc.StatusCode.UNAVAILABLE))
    # A pause that would end past the deadline is not taken.
    with pytest.raises(vectron.ResourceExhausted):
        attempts(timeout=1.0).pause_after(
            failed(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_after="5")
        )


def test_cancelled_at_the_deadline_is_deadline_exceeded() -> None:
    call = attempts(timeout=0.05)
    assert isinstance(call.error(failed(grpc.StatusCode.CANCELLED)), vectron.Cancelled)
    time.sleep(0.06)
    late = call.error(failed(grpc.StatusCode.CANCELLED, "Timeout expired"))
    assert isinstance(late, vectron.DeadlineExceeded) and late.message == "Timeout expired"


def test_a_status_grpc_aio_lost_while_sending_is_unavailable() -> None:
    lost = failed(
        grpc.StatusCode.INTERNAL,
        "Internal error from Core",
        debug='Failed "execute_batch": (<grpc._cython.cygrpc.SendMessageOperation object>,)',
    )
    call = attempts()
    assert isinstance(call.error(lost), vectron.Unavailable)
    assert call.pause_after(lost) > 0  # sent again, as after UNAVAILABLE
    # The server's own INTERNAL stays Internal.
    assert isinstance(call.error(failed(grpc.StatusCode.INTERNAL, "a bug")), vectron.Internal)


def test_operations_yield_calls_and_return_results() -> None:
    calls = _calls.Calls(
        "127.0.0.1:1",
        api_key="k",
        timeout=None,
        tls=False,
        ca_cert=None,
        retries=3,
        backoff=0.05,
        max_retry_after=30.0,
        read_consistency="linearizable",
        max_message_bytes=64 << 20,
        tls_server_name=None,
    )
    assert calls.metadata == (("authorization", "Bearer k"),)
    op = calls.count("c", None, consistency=None)
    call = next(op)
    assert call.method is _calls.COUNT and call.idempotent
    assert call.request == points_pb2.CountRequest(
        collection="c", consistency="READ_CONSISTENCY_LINEARIZABLE"
    )
    with pytest.raises(StopIteration) as done:
        op.send(points_pb2.CountResponse(count=7))
    assert done.value.value == 7
    # An error thrown in is handled by the operation where it means something.
    exists = calls.collection_exists("x")
    assert next(exists).method is _calls.DESCRIBE
    with pytest.raises(StopIteration) as answer:
        exists.throw(vectron.NotFound("no collection 'x'"))
    assert answer.value.value is False
    # Ids are checked before any call is asked for.
    with pytest.raises(vectron.InvalidArgument, match="not one string"):
        next(calls.get("c", "abc", with_payload=True, with_vector=False, consistency=None))
    # A stale dimension is checked with the server before the upsert is refused.
    created = calls.create_collection(
        "c",
        2,
        "cosine",
        shard_count=None,
        replication_factor=None,
        hnsw=None,
        quantization=None,
        payload_indexes=None,
        search_cache=None,
    )
    next(created)
    info = collections_pb2.CollectionInfo(
        spec=collections_pb2.CollectionSpec(name="c", dimension=2)
    )
    with pytest.raises(StopIteration):
        created.send(collections_pb2.CreateCollectionResponse(collection=info))
    upsert = calls.upsert("c", [[1.0, 2.0, 3.0]], ["a"], None, wait=None, batch_size=10)
    describe: Any = next(upsert)
    assert describe.method is _calls.DESCRIBE
    wider = collections_pb2.CollectionInfo(
        spec=collections_pb2.CollectionSpec(name="c", dimension=3)
    )
    sent = upsert.send(wider)
    assert sent.method is _calls.UPSERT and isinstance(sent.request, bytes)
