"""Shared fixtures: the MongoDB wire server (nx-27017) started for the tests that use it, the
arena store on each of its backends (`store`), and the `unit` / `integration` markers (see
`pytest_collection_modifyitems`)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from warriorcoder.storage.store import ArenaStore

pytest_plugins = ["kafka_broker"]

# Fixtures that start a server. A test that uses one, directly or through another fixture, is
# an integration test, and so is one that loads a real model; `make test-fast` deselects them
# (-m "not integration and not model") and so needs no server. A test that reaches a server
# another way (e.g. request.getfixturevalue) marks itself `integration`.
SERVER_FIXTURES = frozenset({"mongo_uri", "kafka_bootstrap"})
INTEGRATION_MARKERS = ("integration", "model", "vllm")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test `integration` (it needs a server or a real model) or else `unit`."""
    for item in items:
        uses_server = bool(SERVER_FIXTURES.intersection(getattr(item, "fixturenames", ())))
        if uses_server or any(item.get_closest_marker(m) for m in INTEGRATION_MARKERS):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports (all held open until every one is chosen)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@contextmanager
def mongo_server(data_dir: Path) -> Iterator[str]:
    """A MongoDB wire server (nx-27017) on a free port, from an empty data folder.

    `--data-dir` gives each database name its own file: tests keep apart by database name.
    """
    exe = shutil.which("nx-27017") or str(Path(sys.executable).parent / "nx-27017")
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [exe, "--data-dir", str(data_dir), "--pid-file", str(data_dir / "nx-27017.pid"),
         "-p", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"mongodb://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One MongoDB wire server for the whole test session."""
    with mongo_server(tmp_path_factory.mktemp("mongo")) as uri:
        yield uri


# The MongoDB case reaches its server through getfixturevalue, which the marking above does not
# see: it is marked here. A module with a `store` fixture of its own uses that one instead.
@pytest.fixture(params=["embedded", pytest.param("mongo", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArenaStore]:
    """An empty arena store: the embedded SQLite file, then a fresh database on the MongoDB wire
    server (the same code must pass on both)."""
    from warriorcoder.storage.store import ArenaStore

    if request.param == "embedded":
        yield ArenaStore.open_embedded(tmp_path / "arena.db")
    else:
        uri = request.getfixturevalue("mongo_uri")
        yield ArenaStore.connect(uri, database=f"t{uuid.uuid4().hex[:12]}")
