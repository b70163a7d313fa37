"""Fixtures: real `vectron dev` servers on loopback, and clients of them.

The binary is ``$VECTRON_BIN``, else ``<repo>/target/debug/vectron`` (``cargo build``
makes it). A missing binary fails the tests that need a server, with a message saying
so: they are never skipped.
"""

from __future__ import annotations

import json
import os
import queue
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import vectron

SDK_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = SDK_DIR.parents[1]
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0


def vectron_bin() -> Path:
    """The server binary the tests run."""
    return Path(os.environ.get("VECTRON_BIN", REPO_DIR / "target" / "debug" / "vectron"))


@dataclass
class DevServer:
    """A running ``vectron dev``."""

    #: ``127.0.0.1:PORT`` of the gRPC listener.
    grpc: str
    #: ``127.0.0.1:PORT`` of the HTTP listener.
    http: str
    #: The admin key, when started with ``--auth``.
    admin_key: str | None
    data_dir: Path
    log: Path
    process: subprocess.Popen[str]
    stdout_reader: threading.Thread

    def stop(self) -> None:
        """SIGINT, then SIGKILL if it has not stopped in time; closes its stdout."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        self.stdout_reader.join(timeout=STOP_TIMEOUT_S)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _log_tail(log: Path, lines: int = 30) -> str:
    """The last lines of a server log, for failure messages."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_dev(
    data_dir: Path,
    *extra_args: str,
    grpc_addr: str = "127.0.0.1:0",
    admin_key: str | None = None,
) -> DevServer:
    """Starts ``vectron dev`` on loopback and waits for its ready line.

    Fails the calling test when the binary is missing, the process exits, or no ready
    line comes within READY_TIMEOUT_S.
    """
    binary = vectron_bin()
    if not binary.is_file() or not os.access(binary, os.X_OK):
        pytest.fail(
            f"vectron binary not found (or not executable) at {binary}: build it with "
            "`cargo build` in the repository root, or point VECTRON_BIN at one",
            pytrace=False,
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "server.log"
    args = [
        str(binary),
        "dev",
        "--data-dir",
        str(data_dir / "data"),
        "--grpc-addr",
        grpc_addr,
        "--http-addr",
        "127.0.0.1:0",
        "--cores",
        "1",
        "--no-pin",
        *extra_args,
    ]
    if admin_key is not None:
        args += ["--auth", "--admin-key", admin_key]
    with log.open("w") as log_file:
        process = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=log_file,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    lines: queue.Queue[str | None] = queue.Queue()

    def drain() -> None:
        # Reads stdout for the process's whole life, so the pipe never fills.
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=drain, name="vectron-dev-stdout", daemon=True)
    reader.start()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        left = deadline - time.monotonic()
        try:
            line = lines.get(timeout=max(left, 0.01))
        except queue.Empty:
            line = None  # the deadline passed
        if line is None:
            exited = process.poll()
            if exited is None:
                process.kill()
                process.wait()
            reader.join(timeout=STOP_TIMEOUT_S)
            if process.stdout is not None:
                process.stdout.close()
            what = f"exited with {exited}" if exited is not None else "printed no ready line"
            pytest.fail(
                f"vectron dev {what} within {READY_TIMEOUT_S:.0f} s; log tail:\n{_log_tail(log)}",
                pytrace=False,
            )
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict) and event.get("event") == "ready":
            break
    return DevServer(
        grpc=str(event["grpc"]),
        http=str(event["http"]),
        admin_key=admin_key,
        data_dir=data_dir,
        log=log,
        process=process,
        stdout_reader=reader,
    )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """A `vectron dev` without authentication, shared by the session."""
    dev = start_dev(tmp_path_factory.mktemp("vectron-dev"))
    try:
        yield dev
    finally:
        dev.stop()


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """A `vectron dev --auth` with a known admin key, shared by the session."""
    key = "test-admin-" + secrets.token_hex(16)
    dev = start_dev(tmp_path_factory.mktemp("vectron-dev-auth"), admin_key=key)
    try:
        yield dev
    finally:
        dev.stop()


@pytest.fixture
def client(server: DevServer) -> Iterator[vectron.Client]:
    """A client of the shared server."""
    with vectron.Client(server.grpc, timeout=60) as c:
        yield c


@pytest.fixture
def admin(auth_server: DevServer) -> Iterator[vectron.Client]:
    """A client of the auth server holding its admin key."""
    with vectron.Client(auth_server.grpc, api_key=auth_server.admin_key, timeout=60) as c:
        yield c


@pytest.fixture
def collection_name(request: pytest.FixtureRequest) -> str:
    """A collection name unique to the test."""
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:40]
    return f"t{stem}_{uuid.uuid4().hex[:8]}"


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
