#!/usr/bin/env python3
"""Measures ``Client.search`` against a running server and prints one JSON line.

Searches a collection holding a dataset (ids are the row numbers, as ``vectron bench``
and ``--upload`` write them) with the dataset's ``query.fvecs``: first every query once,
for recall@k against ``groundtruth.ivecs``; then a closed loop of searches from
``--threads`` threads sharing one ``Client`` (one channel), each starting at its own
place in the query set, for ``--seconds``. Searches are sent as ``vectron bench`` sends
them: ``linearizable`` (never answered from the gateway's cache), without payloads. It
prints::

    {"qps": ..., "p50_us": ..., "p99_us": ..., "recall": ..., "threads": 16, "ef": 64,
     "k": 10, "searches": ..., "errors": 0, "seconds": ..., "collection": ..., ...}

With ``--overhead`` it then measures the client's own cost per call: the same searches
from one thread for ``--seconds`` (``python_p50_us_1``), then ``vectron bench
--skip-ingest --concurrency 1`` at the same ef and k for as long (``vectron_p50_us_1``,
the Rust client's figure, near what the server takes); ``overhead_us`` is the first
minus the second. Point it at a server of your own, such as a ``vectron dev``::

    python scripts/bench_search.py --addr 127.0.0.1:6334 --collection wiki --upload
    python scripts/bench_search.py --addr 127.0.0.1:6334 --collection wiki --overhead
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import vectron

SDK_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = SDK_DIR.parents[1]
DEFAULT_DATA = REPO_DIR / "testdata" / "wiki-minilm-2k"


def read_vecs(path: Path, dtype: str) -> npt.NDArray[Any]:
    """An .fvecs/.ivecs file: per row a little-endian int32 dimension, then the values."""
    raw = np.fromfile(path, dtype="<i4")
    dimension = int(raw[0])
    rows = raw.reshape(-1, dimension + 1)
    if not (rows[:, 0] == dimension).all():
        raise SystemExit(f"{path}: rows of differing dimension")
    values: npt.NDArray[Any] = np.ascontiguousarray(rows[:, 1:]).view(dtype)
    return values


def read_payloads(path: Path, rows: int) -> list[dict[str, Any]] | None:
    """One JSON object per line, or ``None`` when the file is not there."""
    if not path.is_file():
        return None
    with path.open() as lines:
        payloads = [json.loads(line) for line in lines]
    if len(payloads) != rows:
        raise SystemExit(f"{path}: {len(payloads)} payloads for {rows} vectors")
    return payloads


def default_vectron_bin() -> Path:
    """``$VECTRON_BIN``, else the release binary of the repository, else the debug one."""
    if "VECTRON_BIN" in os.environ:
        return Path(os.environ["VECTRON_BIN"])
    release = REPO_DIR / "target" / "release" / "vectron"
    return release if release.is_file() else REPO_DIR / "target" / "debug" / "vectron"


def options() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--addr", required=True, help="the gateway's gRPC host:port")
    parser.add_argument("--collection", required=True, help="the collection to search")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a dataset folder")
    parser.add_argument(
        "--upload",
        action="store_true",
        help="create the collection (cosine) and upload the dataset into it first",
    )
    parser.add_argument("--threads", type=int, default=16, help="searching threads")
    parser.add_argument("--seconds", type=float, default=10.0, help="of each search loop")
    parser.add_argument("--ef", type=int, default=64)
    parser.add_argument("--k", type=int, default=10, help="neighbours per search")
    parser.add_argument(
        "--consistency",
        choices=("linearizable", "eventual"),
        default="linearizable",
        help="eventual searches may be answered from the gateway's cache",
    )
    parser.add_argument(
        "--overhead",
        action="store_true",
        help="also measure the client's cost per call against `vectron bench --concurrency 1`",
    )
    parser.add_argument(
        "--vectron-bin",
        type=Path,
        default=default_vectron_bin(),
        help="the vectron binary for --overhead (default: $VECTRON_BIN, else target/release)",
    )
    parser.add_argument("--api-key", default=None, help="for a server with --auth")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per call")
    args = parser.parse_args()
    if args.threads < 1 or args.k < 1 or args.ef < 1 or not args.seconds > 0:
        parser.error("--threads, --k, --ef and --seconds must be positive")
    return args


def upload(client: vectron.Client, name: str, data: Path) -> None:
    """Creates `name` and uploads the dataset (ids: row numbers), then waits until every
    point is indexed (a search of points not indexed yet is exact, not the index's)."""
    base = read_vecs(data / "base.fvecs", "<f4")
    points, dimension = base.shape
    payloads = read_payloads(data / "base.jsonl", points)
    client.create_collection(name, dimension, "cosine")
    client.upload_points(name, base, payloads, ids=np.arange(points), parallel=2)
    deadline = time.monotonic() + 600
    while True:
        shards = [
            s for core in client.core_stats().cores for s in core.shards if s.collection == name
        ]
        indexed = sum(s.indexed_points for s in shards)
        if shards and indexed >= points and all(s.indexed_points == s.points for s in shards):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: {indexed} of {points} points indexed after 600 s")
        time.sleep(0.1)


def quantile(sorted_us: Sequence[float], q: float) -> int:
    """The value at quantile `q` of sorted latencies (nearest rank), in whole µs."""
    if not sorted_us:
        return 0
    rank = max(1, math.ceil(q * len(sorted_us)))
    return round(sorted_us[rank - 1])


def measure_recall(
    client: vectron.Client,
    args: argparse.Namespace,
    queries: npt.NDArray[np.float32],
    truth: npt.NDArray[np.int32],
) -> float:
    """Recall@k: every query once, each hit's id a row number, against the ground truth."""
    total = 0.0
    for q, query in enumerate(queries):
        hits = client.search(
            args.collection,
            query,
            k=args.k,
            ef=args.ef,
            with_payload=False,
            consistency=args.consistency,
        )
        want = {int(i) for i in truth[q, : args.k]}
        total += sum(1 for i in hits.ids if i.isdigit() and int(i) in want) / len(want)
    return total / len(queries)


def search_loop(
    client: vectron.Client,
    args: argparse.Namespace,
    queries: npt.NDArray[np.float32],
    threads: int,
) -> dict[str, Any]:
    """`threads` threads searching for ``args.seconds``: qps and latency quantiles."""
    stop = threading.Event()
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    rows = [queries[i] for i in range(len(queries))]

    def worker(w: int) -> None:
        mine = latencies[w]
        q = w * len(rows) // threads  # each thread starts at its own place
        while not stop.is_set():
            started = time.perf_counter_ns()
            try:
                client.search(
                    args.collection,
                    rows[q % len(rows)],
                    k=args.k,
                    ef=args.ef,
                    with_payload=False,
                    consistency=args.consistency,
                )
            except vectron.VectronError:
                errors[w] += 1
            else:
                mine.append((time.perf_counter_ns() - started) / 1000)
            q += 1

    workers = [
        threading.Thread(target=worker, args=(w,), name=f"search-{w}") for w in range(threads)
    ]
    started = time.perf_counter()
    for t in workers:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in workers:
        t.join()
    elapsed = time.perf_counter() - started
    every = sorted(us for mine in latencies for us in mine)
    return {
        "qps": round(len(every) / elapsed),
        "p50_us": quantile(every, 0.5),
        "p99_us": quantile(every, 0.99),
        "mean_us": round(sum(every) / len(every)) if every else 0,
        "searches": len(every),
        "errors": sum(errors),
        "seconds": round(elapsed, 3),
    }


def vectron_bench(args: argparse.Namespace) -> dict[str, Any]:
    """``vectron bench --skip-ingest --concurrency 1`` on the same collection, ef and k,
    for as long as the Python loop ran: its JSON line."""
    command = [
        str(args.vectron_bin),
        "bench",
        "--addr",
        args.addr,
        "--dataset",
        str(args.data),
        "--collection",
        args.collection,
        "--skip-ingest",
        "--concurrency=1",
        f"--ef={args.ef}",
        f"--k={args.k}",
        f"--seconds={max(1, round(args.seconds))}",
    ]
    if args.consistency == "eventual":
        command.append("--cached")
    env = dict(os.environ)
    if args.api_key is not None:
        env["VECTRON_API_KEY"] = args.api_key  # not on the command line
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Measures once and prints the JSON line."""
    args = options()
    queries: npt.NDArray[np.float32] = read_vecs(args.data / "query.fvecs", "<f4")
    truth: npt.NDArray[np.int32] = read_vecs(args.data / "groundtruth.ivecs", "<i4")
    if len(truth) != len(queries) or truth.shape[1] < args.k:
        raise SystemExit(f"{args.data}: the ground truth does not cover {args.k} per query")
    with vectron.Client(args.addr, api_key=args.api_key, timeout=args.timeout) as client:
        if args.upload:
            upload(client, args.collection, args.data)
        recall = measure_recall(client, args, queries, truth)
        line: dict[str, Any] = search_loop(client, args, queries, args.threads)
        line |= {
            "recall": round(recall, 4),
            "threads": args.threads,
            "ef": args.ef,
            "k": args.k,
            "consistency": args.consistency,
            "collection": args.collection,
            "dataset": args.data.name,
        }
        if args.overhead:
            python_1 = search_loop(client, args, queries, 1)
            rust_1 = vectron_bench(args)
            line |= {
                "python_p50_us_1": python_1["p50_us"],
                "python_qps_1": python_1["qps"],
                "vectron_p50_us_1": rust_1["p50_us"],
                "vectron_qps_1": rust_1["qps"],
                "vectron_recall": rust_1["recall"],
                "overhead_us": python_1["p50_us"] - rust_1["p50_us"],
            }
            line["errors"] += python_1["errors"] + rust_1["errors"]
    print(json.dumps(line))
    sys.stdout.flush()
    if line["errors"]:
        raise SystemExit(f"{line['errors']} searches failed")


if __name__ == "__main__":
    main()
