"""A server restarted between calls: the clients made before it (a ``Client`` and an
``AsyncClient``) keep working without being made again, once it is back on the same
address and data directory; their channels reconnect and the data is still there."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import cast

import numpy as np
import pytest

import vectron
from conftest import (
    BlockingAsyncClient,
    DevServer,
    LoopThread,
    free_loopback_port,
    start_dev,
)

DIM = 4
#: Seconds the first calls after the restart may take in all, reconnection included.
RECONNECT_WITHIN_S = 30.0
#: Patient enough to outlast the channel's reconnection backoff (at most 5 s).
RETRIES = 20
BACKOFF_S = 0.1


@pytest.mark.timeout(300)
def test_clients_reconnect_after_the_server_restarts(
    tmp_path: Path, client_loop: LoopThread, capsys: pytest.CaptureFixture[str]
) -> None:
    address = f"127.0.0.1:{free_loopback_port()}"
    data_dir = tmp_path / "restarted"
    rows = np.eye(DIM, dtype=np.float32)[:3] + 0.01
    dev: DevServer | None = start_dev(data_dir, grpc_addr=address)
    # Both kinds of client, made once; the async one typed as Client (the same methods).
    clients = {
        "sync": vectron.Client(address, retries=RETRIES, backoff=BACKOFF_S, timeout=60),
        "async": cast(
            vectron.Client,
            BlockingAsyncClient(
                client_loop, address, retries=RETRIES, backoff=BACKOFF_S, timeout=60
            ),
        ),
    }
    try:
        for kind, c in clients.items():
            c.create_collection(f"restart_{kind}", DIM)
            assert c.upsert(f"restart_{kind}", rows, ids=["a", "b", "c"]).count == 3
            assert c.count(f"restart_{kind}") == 3

        assert dev is not None
        status = dev.stop(signal.SIGTERM)
        dev = None
        assert status == 0, f"vectron dev exited with {status} on SIGTERM"
        dev = start_dev(data_dir, grpc_addr=address)  # the same port and data
        back = time.monotonic()

        for kind, c in clients.items():
            name = f"restart_{kind}"
            started = time.monotonic()
            assert c.count(name) == 3  # durable: written before the restart
            hits = c.search(name, rows[1], k=2, consistency="linearizable")
            assert hits.ids[0] == "b"
            assert c.upsert(name, [[0.0, 0.0, 0.0, 1.0]], ids=["d"]).count == 1
            assert c.count(name, consistency="linearizable") == 4
            took = time.monotonic() - started
            with capsys.disabled():
                print(f"\n{kind} client after the restart: count, search, upsert in {took:.2f} s")
        assert time.monotonic() - back < RECONNECT_WITHIN_S
    finally:
        for c in clients.values():
            c.close()
        if dev is not None:
            dev.stop()
