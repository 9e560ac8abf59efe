"""The five services as real processes for integration tests, and a MongoDB wire server that
can be stopped and started again on the same port.

    with FakeOpenAIServer() as models, running_arena(tmp_path, arena_config(models.base_url,
            "r1"), kafka_bootstrap=..., mongo_uri=..., prefix=...) as arena:
        arena.kill("judge"); arena.start("judge")
        arena.start("judge-2", service="judge")      # a second replica (same consumer group)

Every wait here is a deadline for a broken run, never an assertion about speed.
"""

from __future__ import annotations

import abc
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import grpc
import pymongo
import yaml
from conftest import free_port, free_ports, wait_for_port
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pymongo.database import Database

from warriorcoder.v1 import services_pb2, services_pb2_grpc

SERVICES = ("challenger", "responder", "judge", "rater", "exporter")
INSTRUCTIONS = [
    "Write a Python function that reverses a string.",
    "Write a Python function that sums the even numbers of a list.",
    "Write a Python class for a stack with push, pop and peek.",
    "Write a Python function that counts the vowels in a sentence.",
    "Write a Python generator that yields the first n square numbers.",
]


def expert(name: str, endpoint: str, **overrides: Any) -> dict[str, Any]:
    """A roster entry served by the OpenAI-compatible server at `endpoint`."""
    return {"id": name, "backend": "openai", "endpoint": endpoint, "model": f"m-{name}",
            "chat_template": {"builtin": "chatml"}, "max_retries": 1, "timeout_s": 10,
            **overrides}


def arena_config(model_url: str, round_id: str, *,
                 roster: Sequence[dict[str, Any]] | None = None,
                 instructions: Sequence[str] = INSTRUCTIONS,
                 per_setting: int = 1) -> dict[str, Any]:
    """An arena YAML document; by default three experts a, b, c behind `model_url`."""
    return {
        "round_id": round_id,
        "roster": list(roster) if roster is not None
        else [expert(n, model_url) for n in ("a", "b", "c")],
        # The fake server completes every prompt with "A]]": a verdict for pre-filled judges,
        # and mined text too short to keep, so the challenges are the user's.
        "challenger": {"per_setting": per_setting, "user_instructions": list(instructions)},
        "judge": {"verdict_mode": "prefill", "max_tokens": 4, "retries_on_invalid": 0},
        "rating": {"bootstrap_rounds": 10},
    }


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 120) -> None:
    """Poll `condition` until it holds; TimeoutError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout_s}s waiting for {what}")
        time.sleep(0.1)


def wait_for_health(name: str, address: str, proc: subprocess.Popen[bytes],
                    log: Callable[[], str], timeout_s: float) -> None:
    """Poll the plaintext gRPC health service at `address` until it says SERVING; RuntimeError
    when `proc` (the process of `name`) exits first, TimeoutError after `timeout_s`, each with
    the end of its log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}: {log()}")
        try:
            with grpc.insecure_channel(address) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=1)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{name} not SERVING after {timeout_s}s: {log()}")


@dataclass
class Arena:
    """Service processes of one arena. An instance is named by its service ("judge") or, for
    extra replicas, by any other name given with `service=` ("judge-2")."""

    config_path: Path
    env: dict[str, str]
    grpc_ports: dict[str, int]
    metrics_ports: dict[str, int]
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _mongo: pymongo.MongoClient[Any] | None = None

    @property
    def round_id(self) -> str:
        return str(yaml.safe_load(self.config_path.read_text())["round_id"])

    def launch(self, name: str, *, service: str | None = None) -> None:
        """Start the process of instance `name` without waiting for it."""
        service = service or name
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; expected one of {SERVICES}")
        if name not in self.grpc_ports:
            self.grpc_ports[name], self.metrics_ports[name] = free_ports(2)
        env = {**self.env, "WARRIORCODER_GRPC_PORT": str(self.grpc_ports[name]),
               "WARRIORCODER_METRICS_PORT": str(self.metrics_ports[name])}
        with (self.logs / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "warriorcoder.cli", "serve", service],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )

    def start(self, name: str, *, service: str | None = None) -> None:
        """Start instance `name` and wait until its gRPC health says SERVING."""
        self.launch(name, service=service)
        self.wait_serving(name)

    def start_all(self, names: Sequence[str] = SERVICES) -> None:
        """Start services side by side (faster than one after the other), then wait for each."""
        for name in names:
            self.launch(name)
        for name in names:
            self.wait_serving(name)

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.grpc_ports[name]}"

    def health_address(self, name: str) -> str:
        """Where instance `name` answers gRPC health checks in plaintext (its API port)."""
        return self.address(name)

    def wait_serving(self, name: str, timeout_s: float = 60) -> None:
        wait_for_health(name, self.health_address(name), self.procs[name],
                        lambda: self.log(name), timeout_s)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()[-3000:]

    def stop(self, name: str) -> int:
        """SIGTERM, then the exit status."""
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=60)

    def kill(self, name: str) -> None:
        """SIGKILL: no cleanup of any kind (no commit, no leaving the consumer group)."""
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait(timeout=10)

    def stub(self, name: str, cls: Any) -> tuple[grpc.Channel, Any]:
        channel = grpc.insecure_channel(self.address(name))
        return channel, cls(channel)

    def status(self) -> services_pb2.RoundStatus:
        channel, stub = self.stub("challenger", services_pb2_grpc.ChallengerStub)
        with channel:
            return stub.GetRoundStatus(services_pb2.GetRoundStatusRequest(), timeout=10)

    def wait_round_done(self, battles: int, timeout_s: float = 180) -> services_pb2.RoundStatus:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            s = self.status()
            if s.rated_battles + s.failed_battles >= battles:
                return s
            time.sleep(0.5)
        raise TimeoutError(f"round not done: {self.status()}")

    def metrics(self, name: str) -> str:
        """The Prometheus exposition of instance `name`."""
        url = f"http://127.0.0.1:{self.metrics_ports[name]}/metrics"
        with urllib.request.urlopen(url, timeout=10) as reply:
            return str(reply.read().decode())

    def metric_samples(self, name: str, metric: str) -> list[tuple[dict[str, str], float]]:
        """(labels, value) of every sample of `metric` (a full sample name, e.g.
        warriorcoder_messages_consumed_total) that instance `name` exposes."""
        from prometheus_client.parser import text_string_to_metric_families

        return [(dict(s.labels), float(s.value))
                for family in text_string_to_metric_families(self.metrics(name))
                for s in family.samples if s.name == metric]

    def metric_total(self, name: str, metric: str) -> float:
        """Sum of every sample of `metric` on instance `name` (0 when it has none yet)."""
        return sum(value for _, value in self.metric_samples(name, metric))

    def database(self) -> Database[Any]:
        """The arena's MongoDB database, through a client of the test's own."""
        if self._mongo is None:
            self._mongo = pymongo.MongoClient(self.env["WARRIORCODER_MONGO_URI"])
        return self._mongo[self.env["WARRIORCODER_MONGO_DATABASE"]]

    def close(self) -> None:
        """Kill whatever still runs and close the test's MongoDB client."""
        for name in list(self.procs):
            self.kill(name)
        if self._mongo is not None:
            self._mongo.close()
            self._mongo = None


@contextmanager
def running_arena(tmp_path: Path, config: dict[str, Any], *, kafka_bootstrap: str,
                  mongo_uri: str, prefix: str, extra_env: dict[str, str] | None = None,
                  services: Sequence[str] = SERVICES,
                  arena_type: type[Arena] = Arena) -> Iterator[Arena]:
    """Write `config`, start `services` against the broker and MongoDB (a database of its
    own) with topic/group `prefix`; kill them all on exit. `arena_type` decides how a service
    process is started (an Arena subclass may run them from the container image)."""
    config_path = tmp_path / "arena.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "WARRIORCODER_ARENA_CONFIG": str(config_path),
        "WARRIORCODER_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "WARRIORCODER_KAFKA_TOPIC_PREFIX": prefix,
        "WARRIORCODER_KAFKA_GROUP_PREFIX": prefix + "g",
        "WARRIORCODER_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "WARRIORCODER_MONGO_URI": mongo_uri,
        "WARRIORCODER_MONGO_DATABASE": f"d{uuid.uuid4().hex[:10]}",
        "WARRIORCODER_GRPC_HOST": "127.0.0.1",
        # WriteExport writes only under the export root: the tests' folders are under tmp_path.
        "WARRIORCODER_EXPORT_ROOT": str(tmp_path),
        "WARRIORCODER_SHUTDOWN_GRACE_S": "5",
        **(extra_env or {}),
    }
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    ports = free_ports(2 * len(SERVICES))
    arena = arena_type(config_path, env, dict(zip(SERVICES, ports[:5], strict=True)),
                       dict(zip(SERVICES, ports[5:], strict=True)), logs)
    try:
        arena.start_all(services)
        yield arena
    finally:
        arena.close()


class RestartableServer(abc.ABC):
    """A server process on a fixed port and data folder that can be stopped and started again:
    the same address reaches the same data after a restart. Subclasses say how to launch it
    (`_launch`) and, beyond its port accepting connections, when it is ready (`_wait_ready`)."""

    # How long `stop` waits for the process to write its data and exit.
    stop_timeout_s: float = 10

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port if port is not None else free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @abc.abstractmethod
    def _launch(self) -> subprocess.Popen[bytes]:
        """Start the server on `port` over `data_dir` (which exists)."""

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:  # noqa: B027 - optional hook
        """Wait, after the port accepts connections, until the server answers."""

    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError(f"{type(self).__name__}.start: already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._proc = self._launch()
        wait_for_port(self.port)
        self._wait_ready(self._proc)

    def stop(self) -> None:
        """SIGTERM and wait: the server writes its data for the next start."""
        if self._proc is None:
            return
        self._proc.terminate()
        self._proc.wait(timeout=self.stop_timeout_s)
        self._proc = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MongoServer(RestartableServer):
    """A MongoDB wire server (nx-27017) on a fixed port and data folder that can be stopped
    and started again: the same URI reaches the same data after a restart."""

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def _launch(self) -> subprocess.Popen[bytes]:
        exe = shutil.which("nx-27017") or str(Path(sys.executable).parent / "nx-27017")
        with (self.data_dir / "nx-27017.log").open("ab") as log:
            return subprocess.Popen(
                [exe, "--data-dir", str(self.data_dir), "--pid-file",
                 str(self.data_dir / "nx-27017.pid"), "--log-file",
                 str(self.data_dir / "nx-27017.server.log"), "-p", str(self.port),
                 "--host", "127.0.0.1"],
                stdout=log, stderr=subprocess.STDOUT,
            )
