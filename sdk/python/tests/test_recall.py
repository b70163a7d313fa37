"""The wiki-minilm-2k fixture (2,000 x 384, cosine) uploaded, then recall@10 of the
200 queries against the exact ground truth."""

from __future__ import annotations

import json

import pytest

from conftest import WIKI_2K, WIKI_2K_MIN_RECALL, read_vecs, recall_at, wait_until_indexed
from vectron import Client, Field, Filter

DATA = WIKI_2K
K = 10
EF = 64


@pytest.mark.timeout(600)
def test_recall_at_10_on_wiki_minilm_2k(
    client: Client, collection_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = read_vecs(DATA / "base.fvecs", "<f4")
    queries = read_vecs(DATA / "query.fvecs", "<f4")
    truth = read_vecs(DATA / "groundtruth.ivecs", "<i4")
    with (DATA / "base.jsonl").open() as f:
        payloads = [json.loads(line) for line in f]
    assert base.shape == (2000, 384) and queries.shape == (200, 384)
    assert truth.shape[0] == 200 and truth.shape[1] >= K
    assert len(payloads) == 2000

    client.create_collection(collection_name, 384, "cosine", payload_indexes={"title": "keyword"})
    try:
        written = client.upsert(
            collection_name, base, ids=[str(i) for i in range(2000)], payloads=payloads
        )
        assert written.count == 2000
        assert client.count(collection_name) == 2000
        wait_until_indexed(client, collection_name, 2000)

        results = client.search_batch(collection_name, queries, k=K, ef=EF, with_payload=False)
        assert len(results) == 200
        recall = recall_at(results, truth, K)
        with capsys.disabled():
            print(f"\nwiki-minilm-2k: recall@{K} at ef={EF} over 200 queries = {recall:.4f}")
        assert recall >= WIKI_2K_MIN_RECALL

        # A payload filter on the real titles: every hit carries the title asked for.
        title = payloads[0]["title"]
        hits = client.search(
            collection_name, queries[0], k=5, filter=Filter(must=[Field("title").keyword(title)])
        )
        assert len(hits) >= 1
        assert all(h.payload is not None and h.payload["title"] == title for h in hits)
    finally:
        client.drop_collection(collection_name)
