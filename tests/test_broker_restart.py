"""The Kafka broker restarted in the middle of a distributed round.

Tansu (the session broker of the other tests) keeps its data in memory, so a restart would wipe
the topics; here the broker is noida-db (a dev dependency), a Kafka-protocol emulator that keeps
topics, messages and committed offsets in its data folder across a restart. The five services
run as real processes against it and the MongoDB wire server; the broker is stopped while the
stages are mid-round, kept away long enough for every stage to notice, and started again on the
same port. The services must ride it out without exiting, and the round must end with every
battle rated exactly once and exported once, nothing dead-lettered.

Every wait is a deadline for a broken run; nothing asserts on speed.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed_harness import SERVICES, Arena, RestartableServer, running_arena, wait_for
from fake_openai_server import FakeOpenAIServer
from kafka_broker import _wait_for_broker
from test_distributed_faults import (
    BATTLES,
    MODEL_DELAY_S,
    ROUND_INSTRUCTIONS,
    SMALL_BATCHES,
    assert_exactly_once,
    assert_nothing_dead_lettered,
    round_config,
    start_round,
)

# How long the broker stays away: longer than the consumers' session timeout (6 s in the
# harness), so the group coordinator state is rebuilt from the broker's disk, not from memory.
OUTAGE_S = 8.0


def noida_binary() -> Path:
    """The noida-db server binary inside the installed package (run directly, not through its
    Python launcher, so that SIGTERM reaches the server and it saves its data)."""
    try:
        import noida_db
    except ImportError as exc:
        raise RuntimeError("the broker-restart test needs the dev dependency noida-db "
                           "(pip install noida-db==0.2.3)") from exc
    path = Path(noida_db.__file__).parent / "noida-db"
    if not path.is_file():
        raise RuntimeError(f"noida-db binary {path} is missing")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)  # wheels do not always keep the mode; its own launcher does the same
    return path


class PersistentBroker(RestartableServer):
    """A Kafka-protocol broker (noida-db) on a fixed port and data folder that can be stopped
    and started again: the same bootstrap address reaches the same topics, messages and
    committed offsets after a restart."""

    stop_timeout_s = 30

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def _launch(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [str(noida_binary()), "start", "--data-dir", str(self.data_dir), "--host",
                 "127.0.0.1", "--only", "kafka", "--kafka-port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT,
            )

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        _wait_for_broker(self.bootstrap, proc, self.log)


@pytest.fixture
def models() -> Iterator[FakeOpenAIServer]:
    """The experts' model server: pre-filled verdicts ("A]]"), every answer MODEL_DELAY_S late so
    that the round is still going when the broker goes away."""
    with FakeOpenAIServer() as server:
        server.set_behaviour("normal", completion_text="A]]", delay_s=MODEL_DELAY_S)
        yield server


def assert_all_running(arena: Arena) -> None:
    """Every service process is the one started with the round: none exited (and none was
    restarted by the test)."""
    for name in SERVICES:
        code = arena.procs[name].poll()
        assert code is None, f"{name} exited with {code} during the outage: {arena.log(name)}"


@pytest.mark.integration
def test_broker_restarted_mid_round_loses_and_duplicates_nothing(
    models: FakeOpenAIServer, tmp_path: Path, mongo_uri: str, unique_kafka_prefix: str,
) -> None:
    with PersistentBroker(tmp_path / "broker") as broker, running_arena(
        tmp_path, round_config(models.base_url, "broker-restart"),
        kafka_bootstrap=broker.bootstrap, mongo_uri=mongo_uri, prefix=unique_kafka_prefix,
        extra_env={**SMALL_BATCHES, "WARRIORCODER_EXPORT_ROOT": str(tmp_path)},
    ) as arena:
        assert start_round(arena) == len(ROUND_INSTRUCTIONS)
        # Mid-round: some answers stored, the round far from rated.
        wait_for(lambda: arena.status().responses >= 2, "the round to get going")
        assert arena.status().rated_battles < BATTLES, "the round ended before the restart"
        broker.stop()

        # While the broker is away the services keep running and answer their health checks
        # (gRPC and the store do not need the broker), and the round cannot end.
        time.sleep(OUTAGE_S)
        assert_all_running(arena)
        for name in SERVICES:
            arena.wait_serving(name, timeout_s=10)
        assert arena.status().rated_battles < BATTLES, "the round ended without the broker"

        broker.start()
        assert_exactly_once(arena, tmp_path / "export")
        assert_nothing_dead_lettered(arena)
        assert_all_running(arena)
