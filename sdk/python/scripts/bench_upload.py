#!/usr/bin/env python3
"""Measures ``upload_points`` against a running server and prints one JSON line.

Reads ``base.fvecs`` of a dataset folder (and ``base.jsonl``, one payload per row, when
it is there), creates a fresh cosine collection of the vectors' dimension, uploads every
row with ``upload_points`` (ids are the row numbers), checks the count, drops the
collection, and prints::

    {"vectors_per_s": ..., "points": ..., "parallel": ..., "batch_size": ..., "seconds": ...,
     "client": "sync", "dataset": "wiki-minilm-2k", "dimension": 384, "payloads": true}

Only the ``upload_points`` call is timed (not reading the files). Point it at a server of
your own, such as a ``vectron dev`` on loopback:

    python scripts/bench_upload.py --addr 127.0.0.1:6334
    python scripts/bench_upload.py --addr 127.0.0.1:6334 --data ../shared/data/wiki-minilm
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import vectron

SDK_DIR = Path(__file__).resolve().parents[1]
DEFAULT_DATA = SDK_DIR.parents[1] / "testdata" / "wiki-minilm-2k"


def read_fvecs(path: Path) -> npt.NDArray[np.float32]:
    """An .fvecs file: per row a little-endian int32 dimension, then float32 values."""
    raw = np.fromfile(path, dtype="<i4")
    dimension = int(raw[0])
    rows = raw.reshape(-1, dimension + 1)
    if not (rows[:, 0] == dimension).all():
        raise SystemExit(f"{path}: rows of differing dimension")
    vectors: npt.NDArray[np.float32] = np.ascontiguousarray(rows[:, 1:]).view("<f4")
    return vectors


def read_payloads(path: Path, rows: int) -> list[dict[str, Any]] | None:
    """One JSON object per line, or ``None`` when the file is not there."""
    if not path.is_file():
        return None
    with path.open() as lines:
        payloads = [json.loads(line) for line in lines]
    if len(payloads) != rows:
        raise SystemExit(f"{path}: {len(payloads)} payloads for {rows} vectors")
    return payloads


def options() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--addr", required=True, help="the gateway's gRPC host:port")
    parser.add_argument("--api-key", default=None, help="for a server with --auth")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a dataset folder")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--client", choices=("sync", "async"), default="sync")
    parser.add_argument("--limit", type=int, default=None, help="upload only the first rows")
    parser.add_argument("--no-payloads", action="store_true", help="vectors only")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per call")
    return parser.parse_args()


def main() -> None:
    """Uploads the dataset once and prints the measurement."""
    args = options()
    vectors = read_fvecs(args.data / "base.fvecs")
    if args.limit is not None:
        vectors = vectors[: args.limit]
    points, dimension = vectors.shape
    payloads = None if args.no_payloads else read_payloads(args.data / "base.jsonl", points)
    if payloads is not None and args.limit is not None:
        payloads = payloads[: args.limit]
    ids = np.arange(points)
    name = f"bench_upload_{uuid.uuid4().hex[:8]}"
    settings: dict[str, Any] = {"api_key": args.api_key, "timeout": args.timeout}

    def upload_sync() -> float:
        with vectron.Client(args.addr, **settings) as client:
            client.create_collection(name, dimension, "cosine")
            try:
                started = time.perf_counter()
                result = client.upload_points(
                    name,
                    vectors,
                    payloads,
                    ids,
                    batch_size=args.batch_size,
                    parallel=args.parallel,
                )
                seconds = time.perf_counter() - started
                assert result.count == points, result
                assert client.count(name) == points
            finally:
                client.drop_collection(name)
        return seconds

    async def upload_async() -> float:
        async with vectron.AsyncClient(args.addr, **settings) as client:
            await client.create_collection(name, dimension, "cosine")
            try:
                started = time.perf_counter()
                result = await client.upload_points(
                    name,
                    vectors,
                    payloads,
                    ids,
                    batch_size=args.batch_size,
                    parallel=args.parallel,
                )
                seconds = time.perf_counter() - started
                assert result.count == points, result
                assert await client.count(name) == points
            finally:
                await client.drop_collection(name)
        return seconds

    seconds = upload_sync() if args.client == "sync" else asyncio.run(upload_async())
    line = {
        "vectors_per_s": round(points / seconds, 1),
        "points": points,
        "parallel": args.parallel,
        "batch_size": args.batch_size,
        "seconds": round(seconds, 3),
        "client": args.client,
        "dataset": args.data.name,
        "dimension": dimension,
        "payloads": payloads is not None,
    }
    print(json.dumps(line))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
