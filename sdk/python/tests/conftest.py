"""Fixtures: real `vectron dev` servers on loopback, and clients of them.

The binary is ``$VECTRON_BIN``, else ``<repo>/target/debug/vectron`` (``cargo build``
makes it). A missing binary fails the tests that need a server, with a message saying
so: they are never skipped.

Tests that take `connect` (or `client`, `admin`, which use it) run twice: once with
:class:`vectron.Client`, once with :class:`vectron.AsyncClient`, driven from the
synchronous test through :class:`BlockingAsyncClient` (each of its coroutines runs to
completion on an event loop in a thread of its own). The test ids say which:
``[sync]`` or ``[async]``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import queue
import random
import re
import secrets
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import pytest

import vectron

SDK_DIR = Path(__file__).resolve().parents[1]
REPO_DIR = SDK_DIR.parents[1]
#: The 2,000-point fixture: 384-dim MiniLM vectors of Wikipedia passages, cosine.
WIKI_2K = REPO_DIR / "testdata" / "wiki-minilm-2k"
#: Least recall@10 at ef=64 the fixture must reach, however it was loaded.
WIKI_2K_MIN_RECALL = 0.95
READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
#: The two clients every `connect` test runs with.
CLIENT_KINDS = ("sync", "async")

T = TypeVar("T")
#: Makes a client of an address, as ``Client(address, **options)`` does.
Connect = Callable[..., vectron.Client]


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

    def stop(self, stop_signal: signal.Signals = signal.SIGINT) -> int:
        """`stop_signal` (SIGINT by default), then SIGKILL if it has not stopped in time;
        closes its stdout. Returns the exit status (negative: the signal that killed it)."""
        if self.process.poll() is None:
            self.process.send_signal(stop_signal)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT_S)
        self.stdout_reader.join(timeout=STOP_TIMEOUT_S)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


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
            # An error that stops the server then ends its log, not a backtrace.
            env={**os.environ, "RUST_BACKTRACE": "0"},
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


class LoopThread:
    """An event loop running in a thread of its own, for driving async clients from
    synchronous tests."""

    def __init__(self) -> None:
        """Starts the loop."""
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="async-clients", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Runs `coroutine` on the loop and waits for its result (or its error)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        """The items of an async iterator, each fetched on the loop."""

        async def step() -> tuple[bool, T | None]:
            try:
                return True, await iterator.__anext__()
            except StopAsyncIteration:
                return False, None

        while True:
            more, item = self.run(step())
            if not more:
                return
            yield cast(T, item)

    def stop(self) -> None:
        """Stops the loop and its thread, and closes the loop."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=STOP_TIMEOUT_S)
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()


class BlockingSearchStream:
    """A :class:`vectron.AsyncSearchStream` read as a :class:`vectron.SearchStream`:
    each event fetched on `runner`'s loop."""

    def __init__(self, runner: LoopThread, stream: vectron.AsyncSearchStream) -> None:
        """Reads `stream` on the loop of `runner`."""
        self._runner = runner
        self._stream = stream
        self._events = runner.iterate(stream)

    def __iter__(self) -> Iterator[vectron.SearchEvent]:
        """The events."""
        return self._events

    def __next__(self) -> vectron.SearchEvent:
        """The next event."""
        return next(self._events)

    def last(self) -> vectron.SearchEvent:
        """The last event."""
        return self._runner.run(self._stream.last())

    def cancel(self) -> None:
        """Cancels the call."""
        self._stream.cancel()


class BlockingAsyncClient:
    """A :class:`vectron.AsyncClient` with blocking methods, for the tests that run both
    clients: each coroutine method runs to completion on `runner`'s loop, ``iter_points``
    becomes a plain iterator, and the stream ``search_stream`` returns is read as
    :class:`BlockingSearchStream`. The client itself is made on the loop."""

    def __init__(self, runner: LoopThread, address: str, **options: Any) -> None:
        """Makes the async client, on the loop."""

        async def make() -> vectron.AsyncClient:
            return vectron.AsyncClient(address, **options)

        self._runner = runner
        self._client = runner.run(make())

    def __getattr__(self, name: str) -> Any:
        """The async client's attribute; its coroutine methods made blocking."""
        attribute = getattr(self._client, name)
        if inspect.iscoroutinefunction(attribute):

            def blocking(*args: Any, **kwargs: Any) -> Any:
                result = self._runner.run(attribute(*args, **kwargs))
                if isinstance(result, vectron.AsyncSearchStream):
                    return BlockingSearchStream(self._runner, result)
                return result

            return blocking
        if inspect.isasyncgenfunction(attribute):
            return lambda *args, **kwargs: self._runner.iterate(attribute(*args, **kwargs))
        return attribute

    def close(self) -> None:
        """Closes the async client."""
        self._runner.run(self._client.close())

    def __enter__(self) -> BlockingAsyncClient:
        """The client; closed on leaving the block."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Closes the client."""
        self.close()


@pytest.fixture(scope="session")
def client_loop() -> Iterator[LoopThread]:
    """The event loop the async clients of synchronous tests run on."""
    runner = LoopThread()
    try:
        yield runner
    finally:
        runner.stop()


@pytest.fixture(params=CLIENT_KINDS)
def client_kind(request: pytest.FixtureRequest) -> str:
    """Which client the test runs with: ``"sync"`` or ``"async"``."""
    kind: str = request.param
    return kind


@pytest.fixture
def connect(client_kind: str, request: pytest.FixtureRequest) -> Connect:
    """Makes clients of the kind the test runs with, taking ``Client``'s arguments."""
    if client_kind == "sync":
        return vectron.Client
    runner: LoopThread = request.getfixturevalue("client_loop")

    def make(address: str, **options: Any) -> vectron.Client:
        # The same methods, as the signature test checks; typed as Client for the tests.
        return cast(vectron.Client, BlockingAsyncClient(runner, address, **options))

    return make


@pytest.fixture
def client(server: DevServer, connect: Connect) -> Iterator[vectron.Client]:
    """A client of the shared server (of each kind in turn)."""
    with connect(server.grpc, timeout=60) as c:
        yield c


@pytest.fixture
def admin(auth_server: DevServer, connect: Connect) -> Iterator[vectron.Client]:
    """A client of the auth server holding its admin key (of each kind in turn)."""
    with connect(auth_server.grpc, api_key=auth_server.admin_key, timeout=60) as c:
        yield c


@pytest.fixture
def collection_name(request: pytest.FixtureRequest) -> str:
    """A collection name unique to the test."""
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:40]
    return f"t{stem}_{uuid.uuid4().hex[:8]}"


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range of ports for binds to port 0 (Linux's default if unknown)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that is free now, drawn below the kernel's ephemeral
    range: no process that binds port 0 (the other tests and their servers) is handed
    it later, so a server stopped and started again on it, or started after a client
    first tried it, finds it still free."""
    low, _ = _ephemeral_ports()
    draw = random.SystemRandom()
    for _ in range(200):
        port = draw.randrange(max(1024, low - 12_000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free loopback port below the ephemeral range (from {low})")


def read_vecs(path: Path, dtype: str) -> np.ndarray:
    """An .fvecs/.ivecs file: per row a little-endian int32 dimension, then the values."""
    raw = np.fromfile(path, dtype="<i4")
    dim = int(raw[0])
    rows = raw.reshape(-1, dim + 1)
    assert (rows[:, 0] == dim).all(), f"{path}: rows of differing dimension"
    values: np.ndarray = rows[:, 1:].copy().view(dtype)
    return values


def wait_until_indexed(client: vectron.Client, collection: str, points: int) -> None:
    """Waits (at most 300 s) until every point of `collection` is in its HNSW graph:
    points not in it yet are searched exactly, so a recall measured earlier would not be
    the index's."""
    deadline = time.monotonic() + 300
    while True:
        shards = [
            s
            for core in client.core_stats().cores
            for s in core.shards
            if s.collection == collection
        ]
        if shards and all(s.indexed_points == s.points for s in shards):
            break
        assert time.monotonic() < deadline, f"not indexed after 300 s: {shards}"
        time.sleep(0.2)
    assert sum(s.indexed_points for s in shards) == points


def run_vectron_bench(
    address: str, dataset: Path, collection: str, *options: str, timeout: float = 300.0
) -> dict[str, Any]:
    """Runs ``vectron bench --addr ADDRESS --dataset DATASET --collection COLLECTION``
    with `options` and returns its JSON line; fails the test when it fails."""
    args = [
        str(vectron_bin()),
        "bench",
        "--addr",
        address,
        "--dataset",
        str(dataset),
        "--collection",
        collection,
        *options,
    ]
    done = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}",
            pytrace=False,
        )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def recall_at(results: list[vectron.SearchResult], truth: np.ndarray, k: int) -> float:
    """Recall@k of search results (ids are row numbers) against exact neighbours."""
    found = sum(
        len({int(i) for i in result.ids} & set(truth[q, :k].tolist()))
        for q, result in enumerate(results)
    )
    return found / (len(results) * k)
