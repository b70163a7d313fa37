"""Quickstart: connect to a running `vectron dev`, create a collection, upsert points
with payloads, search with a filter, then clean up.

    vectron dev                       # in another terminal (gRPC on 127.0.0.1:6334)
    python examples/quickstart.py     # or: python examples/quickstart.py HOST:PORT
"""

from __future__ import annotations

import os
import sys

import numpy as np

import vectron
from vectron import Client, Field, Filter


def main(address: str) -> None:
    """Runs the walk-through against the gateway at `address`."""
    with Client(address, api_key=os.environ.get("VECTRON_API_KEY")) as client:
        try:
            client.create_collection(
                "books",
                dimension=4,
                metric="cosine",
                payload_indexes={"genre": "keyword", "year": "numeric"},
            )
        except vectron.AlreadyExists:
            pass

        vectors = np.array(
            [[0.9, 0.1, 0.0, 0.1], [0.1, 0.9, 0.1, 0.0], [0.9, 0.2, 0.0, 0.0]], dtype=np.float32
        )
        client.upsert(
            "books",
            vectors,
            ids=["dune", "emma", "solaris"],
            payloads=[
                {"title": "Dune", "genre": "sci-fi", "year": 1965},
                {"title": "Emma", "genre": "novel", "year": 1815},
                {"title": "Solaris", "genre": "sci-fi", "year": 1961},
            ],
        )  # durable and searchable when it returns
        print("points:", client.count("books"))

        hits = client.search(
            "books",
            [0.9, 0.2, 0.0, 0.05],
            k=3,
            ef=128,
            filter=Filter(must=[Field("genre").keyword("sci-fi"), Field("year").range(gte=1960)]),
        )
        for hit in hits:
            assert hit.payload is not None
            print(f"{hit.id} {hit.score:.3f} {hit.payload['title']}")

        client.drop_collection("books")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.environ.get("VECTRON_ADDRESS", "127.0.0.1:6334"))
