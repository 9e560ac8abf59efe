"""The five services as separate processes over the real broker (Tansu) and the MongoDB wire
server, with models behind the OpenAI-compatible fake server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from distributed_harness import INSTRUCTIONS, SERVICES, Arena, arena_config, running_arena
from fake_openai_server import FakeOpenAIServer
from kafka import KafkaConsumer, KafkaProducer

from warriorcoder.config import parse_config
from warriorcoder.stages.embedded import run_arena
from warriorcoder.v1 import services_pb2, services_pb2_grpc


@pytest.fixture
def arena(tmp_path: Path, kafka_bootstrap: str, mongo_uri: str,
          unique_kafka_prefix: str) -> Iterator[Arena]:
    with FakeOpenAIServer() as models:
        models.set_behaviour("normal", completion_text="A]]")
        # The MongoDB wire server is shared by the session: a round id of its own per test.
        round_id = f"dist-{uuid.uuid4().hex[:8]}"
        with running_arena(tmp_path, arena_config(models.base_url, round_id),
                           kafka_bootstrap=kafka_bootstrap, mongo_uri=mongo_uri,
                           prefix=unique_kafka_prefix) as a:
            yield a


def start_round(arena: Arena) -> int:
    channel, stub = arena.stub("challenger", services_pb2_grpc.ChallengerStub)
    with channel:
        challenges = stub.StartRound(services_pb2.StartRoundRequest(), timeout=60).challenges
    assert challenges == len(INSTRUCTIONS), arena.log("challenger")
    return challenges


def test_full_round_matches_the_embedded_run(arena: Arena, tmp_path: Path) -> None:
    challenges = start_round(arena)
    assert challenges == len(INSTRUCTIONS)
    # Every judge writes "A" in both orders: every vote is a tie, nobody is beaten, so the
    # tournament (contenders) also makes the two defenders meet: 3 battles per challenge.
    status = arena.wait_round_done(battles=3 * challenges)
    assert status.rated_battles == 3 * challenges and status.failed_battles == 0

    channel, rater = arena.stub("rater", services_pb2_grpc.RaterStub)
    with channel:
        board = rater.GetLeaderboard(services_pb2.GetLeaderboardRequest(), timeout=30)
    assert {r.model_id for r in board.ratings} == {"a", "b", "c"}
    assert board.battles == 3 * challenges

    out = tmp_path / "export"
    channel, exporter = arena.stub("exporter", services_pb2_grpc.ExporterStub)
    with channel:
        summary = exporter.WriteExport(services_pb2.ExportRequest(output_dir=str(out)), timeout=30)
    assert summary.sft_records == challenges

    # The same config run embedded gives the same dataset, record for record.
    config = parse_config(yaml.safe_load(arena.config_path.read_text()))
    asyncio.run(run_arena(config, tmp_path / "embedded"))
    # Every vote ties: no preference pair, so neither export writes preference.jsonl.
    assert summary.preference_records == 0
    assert not (out / "preference.jsonl").exists()
    assert not (tmp_path / "embedded" / "export" / "preference.jsonl").exists()
    assert (out / "sft.jsonl").read_text() == (
        tmp_path / "embedded" / "export" / "sft.jsonl").read_text()

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
    arena.wait_round_done(battles=3 * challenges)  # 3 battles per challenge (see above)


def test_metrics_endpoints_expose_the_key_series(arena: Arena) -> None:
    challenges = start_round(arena)
    arena.wait_round_done(battles=3 * challenges)  # 3 battles per challenge (see above)
    expected = {
        "responder": ["warriorcoder_messages_consumed_total", "warriorcoder_model_tokens_total",
                      "warriorcoder_handler_seconds", "warriorcoder_consumer_lag"],
        "judge": ["warriorcoder_model_request_seconds", "warriorcoder_model_requests_in_flight",
                  ('warriorcoder_store_command_seconds_count{collection="judgments",'
                   'command="update",service="judge"}')],
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
    arena.wait_round_done(battles=3 * len(INSTRUCTIONS))
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


def test_the_rater_process_serves_the_battle_viewer(tmp_path: Path, kafka_bootstrap: str,
                                                    mongo_uri: str,
                                                    unique_kafka_prefix: str) -> None:
    """The rater, started as a service with WARRIORCODER_VIEWER_PORT, shows the battles it rated
    over Kafka, and refuses writes."""
    from conftest import free_port

    port = free_port()
    with FakeOpenAIServer() as models:
        models.set_behaviour("normal", completion_text="A]]")
        round_id = f"view-{uuid.uuid4().hex[:8]}"
        with running_arena(tmp_path, arena_config(models.base_url, round_id),
                           kafka_bootstrap=kafka_bootstrap, mongo_uri=mongo_uri,
                           prefix=unique_kafka_prefix,
                           extra_env={"WARRIORCODER_VIEWER_PORT": str(port)}) as arena:
            challenges = start_round(arena)
            arena.wait_round_done(battles=3 * challenges)
            base = f"http://127.0.0.1:{port}/rounds/{round_id}"
            with urllib.request.urlopen(base, timeout=10) as response:
                assert f"Round {round_id}" in response.read().decode()
            with urllib.request.urlopen(f"{base}/battles", timeout=10) as response:
                listing = response.read().decode()
            assert listing.count('class="battle outcome-') == 3 * challenges, arena.log("rater")
            refused = urllib.request.Request(f"{base}/battles", data=b"x", method="POST")
            with pytest.raises(urllib.error.HTTPError) as error:
                urllib.request.urlopen(refused, timeout=10)
            assert error.value.code == 405
