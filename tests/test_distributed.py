"""The five services as separate processes over the real broker (Tansu) and the MongoDB wire
server, with models behind the OpenAI-compatible fake server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from conftest import free_ports
from fake_openai_server import FakeOpenAIServer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kafka import KafkaConsumer, KafkaProducer

from warriorcoder.config import parse_config
from warriorcoder.pipeline import run_arena
from warriorcoder.v1 import services_pb2, services_pb2_grpc

SERVICES = ("challenger", "responder", "judge", "rater", "exporter")
INSTRUCTIONS = [
    "Write a Python function that reverses a string.",
    "Write a Python function that sums the even numbers of a list.",
    "Write a Python class for a stack with push, pop and peek.",
    "Write a Python function that counts the vowels in a sentence.",
    "Write a Python generator that yields the first n square numbers.",
]


def arena_config(model_url: str, round_id: str) -> dict[str, Any]:
    def expert(name: str) -> dict[str, Any]:
        return {"id": name, "backend": "openai", "endpoint": model_url, "model": f"m-{name}",
                "chat_template": {"builtin": "chatml"}, "max_retries": 1, "timeout_s": 10}

    return {
        "round_id": round_id,
        "roster": [expert("a"), expert("b"), expert("c")],
        # The fake server completes every prompt with "A]]": a verdict for pre-filled judges,
        # and mined text too short to keep, so the challenges are the user's.
        "challenger": {"per_setting": 1, "user_instructions": INSTRUCTIONS},
        "judge": {"verdict_mode": "prefill", "max_tokens": 4, "retries_on_invalid": 0},
        "rating": {"bootstrap_rounds": 10},
    }


@dataclass
class Arena:
    config_path: Path
    env: dict[str, str]
    grpc_ports: dict[str, int]
    metrics_ports: dict[str, int]
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        env = {**self.env, "WARRIORCODER_GRPC_PORT": str(self.grpc_ports[name]),
               "WARRIORCODER_METRICS_PORT": str(self.metrics_ports[name])}
        log = (self.logs / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "warriorcoder.cli", "serve", name],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        self.wait_serving(name)

    def address(self, name: str) -> str:
        return f"127.0.0.1:{self.grpc_ports[name]}"

    def wait_serving(self, name: str, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {self.log(name)}")
            try:
                with grpc.insecure_channel(self.address(name)) as channel:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service=""), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{name} not SERVING after {timeout_s}s: {self.log(name)}")

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text()[-3000:]

    def stop(self, name: str) -> int:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=60)

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


@pytest.fixture
def arena(tmp_path: Path, kafka_bootstrap: str, mongo_uri: str,
          unique_kafka_prefix: str) -> Iterator[Arena]:
    with FakeOpenAIServer() as models:
        models.set_behaviour("normal", completion_text="A]]")
        config_path = tmp_path / "arena.yaml"
        # The MongoDB wire server is shared by the session: a round id of its own per test.
        round_id = f"dist-{uuid.uuid4().hex[:8]}"
        config_path.write_text(yaml.safe_dump(arena_config(models.base_url, round_id)))
        env = {
            **os.environ,
            "WARRIORCODER_ARENA_CONFIG": str(config_path),
            "WARRIORCODER_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "WARRIORCODER_KAFKA_TOPIC_PREFIX": unique_kafka_prefix,
            "WARRIORCODER_KAFKA_GROUP_PREFIX": unique_kafka_prefix + "g",
            "WARRIORCODER_KAFKA_SESSION_TIMEOUT_MS": "6000",
            "WARRIORCODER_MONGO_URI": mongo_uri,
            "WARRIORCODER_MONGO_DATABASE": f"d{uuid.uuid4().hex[:10]}",
            "WARRIORCODER_GRPC_HOST": "127.0.0.1",
            "WARRIORCODER_SHUTDOWN_GRACE_S": "5",
        }
        logs = tmp_path / "logs"
        logs.mkdir()
        ports = free_ports(2 * len(SERVICES))
        a = Arena(config_path, env, dict(zip(SERVICES, ports[:5], strict=True)),
                  dict(zip(SERVICES, ports[5:], strict=True)), logs)
        try:
            for name in SERVICES:
                a.start(name)
            yield a
        finally:
            for name in list(a.procs):
                a.procs[name].kill()
                a.procs[name].wait(timeout=10)


def start_round(arena: Arena) -> int:
    channel, stub = arena.stub("challenger", services_pb2_grpc.ChallengerStub)
    with channel:
        challenges = stub.StartRound(services_pb2.StartRoundRequest(), timeout=60).challenges
    assert challenges == len(INSTRUCTIONS), arena.log("challenger")
    return challenges


def test_full_round_matches_the_embedded_run(arena: Arena, tmp_path: Path) -> None:
    challenges = start_round(arena)
    assert challenges == len(INSTRUCTIONS)
    status = arena.wait_round_done(battles=2 * challenges)
    assert status.rated_battles == 2 * challenges and status.failed_battles == 0

    channel, rater = arena.stub("rater", services_pb2_grpc.RaterStub)
    with channel:
        board = rater.GetLeaderboard(services_pb2.GetLeaderboardRequest(), timeout=30)
    assert {r.model_id for r in board.ratings} == {"a", "b", "c"}
    assert board.battles == 2 * challenges

    out = tmp_path / "export"
    channel, exporter = arena.stub("exporter", services_pb2_grpc.ExporterStub)
    with channel:
        summary = exporter.WriteExport(services_pb2.ExportRequest(output_dir=str(out)), timeout=30)
    assert summary.sft_records == challenges

    # The same config run embedded gives the same dataset, record for record.
    config = parse_config(yaml.safe_load(arena.config_path.read_text()))
    asyncio.run(run_arena(config, tmp_path / "embedded"))
    for name in ("sft.jsonl", "preference.jsonl"):
        assert (out / name).read_text() == (tmp_path / "embedded" / "export" / name).read_text()

    # SIGTERM: each service drains, reports NOT_SERVING and exits cleanly.
    for name in SERVICES:
        assert arena.stop(name) == 0, arena.log(name)


def test_garbage_on_every_topic_goes_to_dead_letter(arena: Arena,
                                                    unique_kafka_prefix: str,
                                                    kafka_bootstrap: str) -> None:
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    consumed = {"challenges": "responder", "responses": "judge", "judgments": "rater",
                "battles": "exporter"}
    for topic in consumed:
        producer.send(unique_kafka_prefix + topic, key=b"x", value=b"\x00not a protobuf\xff")
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(unique_kafka_prefix + "dead-letter", bootstrap_servers=kafka_bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=1000,
                             group_id=f"{unique_kafka_prefix}dlq-reader")
    letters: list[dict[str, str]] = []
    deadline = time.monotonic() + 60
    while len(letters) < len(consumed) and time.monotonic() < deadline:
        for record in consumer:
            letters.append({k: v.decode() for k, v in record.headers})
    consumer.close()
    assert sorted(h["service"] for h in letters) == sorted(consumed.values())
    assert all(h["source-topic"].removeprefix(unique_kafka_prefix) in consumed for h in letters)
    assert all(h["error"] for h in letters)
    for name in SERVICES:  # still healthy
        arena.wait_serving(name, timeout_s=5)
    # ...and still working: a round goes through after the garbage.
    challenges = start_round(arena)
    arena.wait_round_done(battles=2 * challenges)


def test_metrics_endpoints_expose_the_key_series(arena: Arena) -> None:
    challenges = start_round(arena)
    arena.wait_round_done(battles=2 * challenges)
    expected = {
        "responder": ["warriorcoder_messages_consumed_total", "warriorcoder_model_tokens_total",
                      "warriorcoder_handler_seconds", "warriorcoder_consumer_lag"],
        "judge": ["warriorcoder_model_request_seconds", "warriorcoder_model_requests_in_flight"],
        "rater": ["warriorcoder_battles_total", "warriorcoder_judge_verdicts_total",
                  "warriorcoder_judge_consistency"],
    }
    for name, series in expected.items():
        url = f"http://127.0.0.1:{arena.metrics_ports[name]}/metrics"
        text = urllib.request.urlopen(url, timeout=10).read().decode()
        for s in series:
            assert s in text, f"{s} missing from {name} metrics"
        assert f'warriorcoder_messages_consumed_total{{service="{name}"' in text


def test_invalid_rpc_arguments_are_rejected(arena: Arena) -> None:
    channel, stub = arena.stub("challenger", services_pb2_grpc.ChallengerStub)
    with channel, pytest.raises(grpc.RpcError) as err:
        stub.SubmitInstructions(services_pb2.SubmitInstructionsRequest(instructions=[" "]),
                                timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    channel, rater = arena.stub("rater", services_pb2_grpc.RaterStub)
    with channel, pytest.raises(grpc.RpcError) as err:
        rater.GetBattle(services_pb2.GetBattleRequest(battle_id="nope"), timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_cli_distributed_verbs(arena: Arena, tmp_path: Path) -> None:
    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "warriorcoder.cli", *args],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "challenges published" in cli("round", "start", "--challenger",
                                         arena.address("challenger"))
    arena.wait_round_done(battles=2 * len(INSTRUCTIONS))
    assert "rated" in cli("round", "status", "--challenger", arena.address("challenger"))
    assert "Leaderboard" in cli("leaderboard", "--rater", arena.address("rater"))
    assert "SFT records" in cli("export", "--exporter", arena.address("exporter"),
                                "--out", str(tmp_path / "out"))
    lines = (tmp_path / "out" / "sft.jsonl").read_text().splitlines()
    assert len(lines) == len(INSTRUCTIONS) and json.loads(lines[0])["messages"]
    done = subprocess.run([sys.executable, "-m", "warriorcoder.cli", "leaderboard", "--rater",
                           "127.0.0.1:1", "--timeout", "2"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 1 and "UNAVAILABLE" in done.stderr
