"""Shared fixtures: the MongoDB wire server (nx-27017) started for the tests that use it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@pytest.fixture(scope="session")
def mongo_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh MongoDB wire server on a free port, from an empty data file."""
    exe = shutil.which("nx-27017") or str(Path(sys.executable).parent / "nx-27017")
    db_file = tmp_path_factory.mktemp("mongo") / "mongo.db"
    port = free_port()
    proc = subprocess.Popen(
        [exe, "--db", str(db_file), "-p", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"mongodb://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
