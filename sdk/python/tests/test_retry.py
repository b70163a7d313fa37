"""Retries on UNAVAILABLE: a read issued before the server listens succeeds once it
does; a non-idempotent call is not retried."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import vectron
from conftest import Connect, DevServer, free_loopback_port, start_dev


@pytest.mark.timeout(180)
def test_an_idempotent_call_is_retried_until_the_server_is_up(
    tmp_path: Path, connect: Connect
) -> None:
    port = free_loopback_port()
    address = f"127.0.0.1:{port}"
    outcome: dict[str, object] = {}

    def read() -> None:
        with connect(address, retries=30, backoff=0.2, timeout=120) as patient:
            try:
                outcome["collections"] = patient.list_collections()
            except vectron.VectronError as error:
                outcome["error"] = error

    with connect(address, retries=0, timeout=5) as impatient:
        with pytest.raises(vectron.Unavailable):
            impatient.list_collections()  # nothing listens yet
    with connect(address, retries=30, backoff=1.0, timeout=60) as retrying:
        started = time.monotonic()
        with pytest.raises(vectron.Unavailable):
            retrying.create_collection("never", 2)  # not idempotent: raised at once
        assert time.monotonic() - started < 0.5, "a create was retried"
    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.5)  # the reader has failed at least once by now
    dev: DevServer | None = None
    try:
        dev = start_dev(tmp_path / "late", grpc_addr=address)
        reader.join(timeout=120)
        assert not reader.is_alive()
        assert "error" not in outcome, outcome.get("error")
        assert outcome["collections"] == []
        # Creating a collection is not retried, but works now that the server is up.
        with connect(address, retries=0, timeout=30) as c:
            c.create_collection("late", 2)
            assert [x.name for x in c.list_collections()] == ["late"]
    finally:
        if dev is not None:
            dev.stop()
        reader.join(timeout=5)
