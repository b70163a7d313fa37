"""``upload_points`` through both clients: the 2k fixture with recall (as ``vectron
bench`` measures it), input refused before anything is sent, batches refused for load
sent again until they land, and the first non-retryable error raised."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

import vectron
from conftest import (
    WIKI_2K,
    WIKI_2K_MIN_RECALL,
    Connect,
    DevServer,
    free_loopback_port,
    read_vecs,
    recall_at,
    run_vectron_bench,
    wait_until_indexed,
)
from vectron import Client, Plan

K = 10
EF = 64
DIM = 8


@pytest.fixture
def collection(client: Client, collection_name: str) -> Iterator[str]:
    """A fresh cosine collection of dimension DIM."""
    client.create_collection(collection_name, DIM)
    try:
        yield collection_name
    finally:
        client.drop_collection(collection_name)


@pytest.mark.timeout(600)
def test_upload_wiki_minilm_2k_then_recall(
    server: DevServer, client: Client, collection_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Recall@10 of the 200 queries after ``upload_points``, as this client measures it
    and as ``vectron bench --skip-ingest`` measures it on the same server and collection
    at the same ef: the two agree."""
    base = read_vecs(WIKI_2K / "base.fvecs", "<f4")
    queries = read_vecs(WIKI_2K / "query.fvecs", "<f4")
    truth = read_vecs(WIKI_2K / "groundtruth.ivecs", "<i4")
    with (WIKI_2K / "base.jsonl").open() as f:
        payloads = [json.loads(line) for line in f]
    client.create_collection(collection_name, 384, "cosine", payload_indexes={"title": "keyword"})
    seen: list[tuple[int, int]] = []
    try:
        result = client.upload_points(
            collection_name,
            base,
            payloads,
            ids=list(range(2000)),
            batch_size=150,  # 14 batches, the last one short
            parallel=2,
            progress=lambda done, total: seen.append((done, total)),
        )
        assert result.count == 2000 and result.durable is True
        assert result.ids == tuple(str(i) for i in range(2000))
        # Called once per batch, in the calling thread (or task), never going back.
        assert len(seen) == 14
        assert all(total == 2000 for _, total in seen)
        done = [d for d, _ in seen]
        assert done == sorted(done) and len(set(done)) == 14 and done[-1] == 2000
        assert client.count(collection_name) == 2000

        wait_until_indexed(client, collection_name, 2000)
        # At the test's ef and at the least one (where misses are many): the same figure.
        for ef in (EF, K):
            # Linearizable, as vectron bench sends its searches: never answered from a cache.
            results = client.search_batch(
                collection_name, queries, k=K, ef=ef, with_payload=False, consistency="linearizable"
            )
            recall = recall_at(results, truth, K)
            bench = run_vectron_bench(
                server.grpc,
                WIKI_2K,
                collection_name,
                "--skip-ingest",
                f"--ef={ef}",
                f"--k={K}",
                "--concurrency=1",
                "--seconds=1",
            )
            with capsys.disabled():
                print(
                    f"\nwiki-minilm-2k by upload_points: recall@{K} at ef={ef} = {recall:.4f}; "
                    f"vectron bench --skip-ingest: {bench['recall']:.4f}"
                )
            if ef == EF:
                assert recall >= WIKI_2K_MIN_RECALL
            assert bench["ef"] == ef and bench["k"] == K and bench["errors"] == 0
            assert abs(recall - bench["recall"]) <= 0.001, (ef, recall, bench)
        got = client.get(collection_name, ["0", "1999"])
        assert [r.payload for r in got] == [payloads[0], payloads[1999]]
    finally:
        client.drop_collection(collection_name)


def test_generated_ids_and_small_inputs(client: Client, collection: str) -> None:
    vectors = np.random.default_rng(8).random((25, DIM)) + 0.01  # float64: converted
    generated = client.upload_points(collection, vectors, batch_size=10, parallel=4)
    assert generated.count == 25 and len(set(generated.ids)) == 25
    for point_id in generated.ids:
        uuid.UUID(point_id)
    # One batch for more workers than batches; lists of lists; no progress callback.
    single = client.upload_points(collection, [[1.0] * DIM], [{"k": 1}], ["one"], parallel=3)
    assert single.count == 1 and single.ids == ("one",)
    assert client.get(collection, ["one"])[0].payload == {"k": 1}
    calls: list[tuple[int, int]] = []
    empty = client.upload_points(
        collection, np.empty((0, DIM)), progress=lambda d, t: calls.append((d, t))
    )
    assert empty.count == 0 and empty.ids == () and calls == []
    assert client.count(collection) == 26


@pytest.mark.parametrize(
    ("vectors", "payloads", "ids", "options", "pattern"),
    [
        (np.ones(DIM), None, None, {}, "2-D"),
        ("nan at row 1234", None, None, {}, r"row 1234\).*index 3 is not finite"),
        ("inf at row 1999", None, "ints", {}, r"point '1999' \(row 1999\)"),
        ([[1.0] * DIM] * 3 + [[1.0] * (DIM - 1)], None, None, {}, r"row 3\): vector has 7"),
        (np.array([["x"] * DIM]), None, None, {}, "real numbers"),
        (np.ones((2000, DIM)), [{"a": 1}] * 1999, None, {}, "1999 payloads for 2000 vectors"),
        (np.ones((2000, DIM)), [{"a": 1}] * 1999 + [{"a": np.nan}], None, {}, r"row 1999"),
        (np.ones((3, DIM)), None, ["a", "b", 2.5], {}, "id of row 2"),
        (np.ones((3, DIM)), None, ["a", "b"], {}, "2 ids for 3 vectors"),
        (np.ones((3, DIM)), None, None, {"batch_size": 0}, "batch_size"),
        (np.ones((3, DIM)), None, None, {"batch_size": 10_001}, "batch_size"),
        (np.ones((3, DIM)), None, None, {"parallel": 0}, "parallel"),
        (np.ones((3, DIM)), None, None, {"max_retries": -1}, "max_retries"),
        (np.ones((3, DIM)), None, None, {"progress": "print"}, "progress"),
    ],
)
def test_bad_input_is_refused_before_anything_is_sent(
    connect: Connect,
    vectors: object,
    payloads: list[object] | None,
    ids: object,
    options: dict[str, object],
    pattern: str,
) -> None:
    if isinstance(vectors, str):
        bad = np.ones((2000, DIM), dtype=np.float32)
        bad[int(vectors.rsplit(" ", 1)[1]), 3] = np.nan if vectors.startswith("nan") else np.inf
        vectors = bad
    if ids == "ints":
        ids = np.arange(2000)
    calls: list[int] = []
    options = {"progress": lambda done, total: calls.append(done), **options}
    # Nothing listens on this port: anything sent would fail with Unavailable instead.
    with connect(f"127.0.0.1:{free_loopback_port()}", retries=0, timeout=5) as nowhere:
        with pytest.raises(vectron.InvalidArgument, match=pattern):
            nowhere.upload_points("c", vectors, payloads, ids, **options)  # type: ignore[arg-type]
    assert calls == []


def test_a_bad_row_leaves_the_collection_untouched(client: Client, collection: str) -> None:
    vectors = np.random.default_rng(9).random((5000, DIM), dtype=np.float32)
    vectors[4321, 5] = np.nan  # in the last batch: nothing of the first ones goes either
    with pytest.raises(vectron.InvalidArgument, match=r"row 4321"):
        client.upload_points(collection, vectors, batch_size=100, parallel=2)
    wide = client.describe_collection(collection).dimension + 1
    with pytest.raises(vectron.InvalidArgument, match=rf"row 0\): vector has {wide} values"):
        client.upload_points(collection, np.ones((10, wide)))  # the client knows the width
    assert client.count(collection) == 0


def test_the_first_non_retryable_error_is_raised(server: DevServer, connect: Connect) -> None:
    rows = np.random.default_rng(10).random((3000, DIM), dtype=np.float32)
    with connect(server.grpc, timeout=30) as fresh:
        with pytest.raises(vectron.NotFound, match="no_such_collection"):
            fresh.upload_points("no_such_collection", rows, batch_size=100, parallel=3)


def test_an_error_in_the_progress_callback_stops_the_upload(
    client: Client, collection: str
) -> None:
    def progress(done: int, total: int) -> None:
        if done >= 300:
            raise KeyError("enough")

    vectors = np.random.default_rng(11).random((10_000, DIM), dtype=np.float32)
    with pytest.raises(KeyError, match="enough"):
        client.upload_points(collection, vectors, batch_size=100, parallel=2, progress=progress)
    # The workers stopped long before the last of the hundred batches.
    time.sleep(0.5)
    assert 300 <= client.count(collection) < 10_000


@pytest.mark.timeout(300)
def test_batches_refused_for_load_are_sent_again(
    auth_server: DevServer, admin: Client, connect: Connect, collection_name: str
) -> None:
    plan_name = f"upload-{uuid.uuid4().hex[:8]}"
    # Two calls a second, one at a time: most streams are refused with retry-after.
    admin.set_plan(Plan(plan_name, requests_per_second=2, burst=1))
    admin.create_collection(collection_name, DIM)
    key = admin.create_key("scoped", grants={collection_name: "read_write"}, plan=plan_name)
    rows = np.random.default_rng(12).random((2000, DIM), dtype=np.float32) + 0.01
    ids = [f"r{i}" for i in range(2000)]
    try:
        with connect(auth_server.grpc, api_key=key.secret, timeout=60) as limited:
            with pytest.raises(vectron.ResourceExhausted) as caught:
                limited.upload_points(collection_name, rows, ids=ids, batch_size=250, max_retries=0)
            assert caught.value.retry_after is not None and caught.value.retry_after >= 1
            time.sleep(caught.value.retry_after)  # let the key's bucket fill again
            seen: list[int] = []
            started = time.monotonic()
            result = limited.upload_points(
                collection_name,
                rows,
                ids=ids,
                batch_size=250,
                parallel=2,
                max_retries=20,
                progress=lambda done, total: seen.append(done),
            )
            elapsed = time.monotonic() - started
        assert result.count == 2000
        assert seen == sorted(seen) and seen[-1] == 2000 and len(seen) == 8
        # Eight streams at two a second, one at a time: refusals were waited out.
        assert elapsed >= 2.0, f"no batch was refused ({elapsed:.2f} s)"
        assert admin.count(collection_name) == 2000
    finally:
        admin.drop_collection(collection_name)
        admin.revoke_key(key.key.id)
        admin.delete_plan(plan_name)
