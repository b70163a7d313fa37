"""hnswlib's side of `query_profile`: qps of wall time and of this thread's CPU time.

usage: hnswlib_cpu.py DATA_DIR cosine|l2|dot EF[,EF...] REPEATS

Builds the index once on one thread (M 16, ef_construction 200, seed 100) and keeps it
in $TMPDIR/hnswlib-<dataset>.bin, then per ef runs 100 warm-up queries and REPEATS
passes over query.fvecs, one query at a time, printing recall@10 and qps in the same
form as `cargo run --release -p vectron-benches --example query_profile`. Thread CPU
time stays meaningful while other processes share the cores.
"""

import os
import sys
import tempfile
import time

import hnswlib
import numpy as np


def read_vecs(path, dtype):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    rows = raw.reshape(-1, dim + 1)[:, 1:]
    return rows.view(dtype) if dtype == np.float32 else rows


def main():
    data, metric = sys.argv[1], sys.argv[2]
    efs = [int(e) for e in sys.argv[3].split(",")]
    reps = int(sys.argv[4])
    queries = read_vecs(os.path.join(data, "query.fvecs"), np.float32)
    truth = read_vecs(os.path.join(data, "groundtruth.ivecs"), np.int32)[:, :10]
    space = {"cosine": "cosine", "l2": "l2", "dot": "ip"}[metric]
    name = os.path.basename(os.path.normpath(data))
    cached = os.path.join(tempfile.gettempdir(), f"hnswlib-{name}.bin")
    index = hnswlib.Index(space=space, dim=queries.shape[1])
    if os.path.exists(cached):
        index.load_index(cached)
    else:
        base = read_vecs(os.path.join(data, "base.fvecs"), np.float32)
        index.init_index(max_elements=len(base), M=16, ef_construction=200, random_seed=100)
        index.set_num_threads(1)
        index.add_items(base, np.arange(len(base)))
        index.save_index(cached)
    index.set_num_threads(1)
    for ef in efs:
        index.set_ef(max(ef, 10))
        for q in queries[:100]:
            index.knn_query(q, k=10)
        wall, cpu = time.perf_counter(), time.thread_time()
        hits = 0
        for _ in range(reps):
            hits = 0
            for i, q in enumerate(queries):
                ids, _ = index.knn_query(q, k=10)
                hits += len(set(ids[0].tolist()) & set(truth[i].tolist()))
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        n = len(queries) * reps
        print(f"ef {ef}: recall {hits / (len(queries) * 10):.4f}, {n / wall:.0f} qps wall, {n / cpu:.0f} qps cpu")


if __name__ == "__main__":
    main()
