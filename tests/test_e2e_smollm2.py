"""A tiny real round: SmolLM2-135M-Instruct in three configurations, every stage, on the CPU.

Nothing here asserts on what the model writes (a 135M model writes what it writes); it asserts
that a real model's output goes through every stage and comes out as loadable training data.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from warriorcoder.config import parse_config
from warriorcoder.stages.embedded import run_arena
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

pytestmark = pytest.mark.model


def test_tiny_round_with_smollm2(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    expert = {"backend": "transformers", "model": "smollm2", "batch_size": 8}
    config = parse_config({
        "round_id": "smoke",
        "roster": [
            {**expert, "id": "smol-a", "sampling": {"temperature": 0.0, "max_tokens": 48}},
            {**expert, "id": "smol-b", "sampling": {"temperature": 0.8, "max_tokens": 48},
             "system_prompt": "You write short Python code."},
            {**expert, "id": "smol-c", "sampling": {"temperature": 1.0, "max_tokens": 48},
             "system_prompt": "You are a terse programmer."},
        ],
        "challenger": {
            "per_setting": 2,
            "sampling_grid": [{"temperature": 1.0, "max_tokens": 64}],
            "min_chars": 10,
            "user_instructions": ["Write a Python function that returns the maximum of a list."],
            "defenders": 1,
        },
        "judge": {"max_tokens": 48, "retries_on_invalid": 0},
        "rating": {"bootstrap_rounds": 10},
    })
    result = asyncio.run(run_arena(config, tmp_path))
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    challenges = store.challenges("smoke")
    battles = store.battles("smoke")
    assert challenges and len(battles) == len(challenges)
    assert all(b.status == arena_pb2.BATTLE_STATUS_RATED or b.failure_reason for b in battles)
    for c in challenges:
        for model in (c.attacker, *c.defenders):
            r = store.response(c.challenge_id, model)
            assert r is not None and r.generation.completion_tokens > 0
    judged = [j for b in battles for j in store.judgments(b.battle_id)]
    assert judged and all(j.generation.completion_tokens > 0 for j in judged)
    assert {s.judge for s in result.leaderboard.judges} <= {"smol-a", "smol-b", "smol-c"}
    export = tmp_path / "export"
    # A kind with no records gets no file (the manifest says why); one with records loads.
    assert (export / "sft.jsonl").exists() == (result.export.sft_records > 0)
    if result.export.sft_records:
        sft_rows = [json.loads(line) for line in (export / "sft.jsonl").read_text().splitlines()]
        assert len(sft_rows) == result.export.sft_records
        ds = datasets.load_dataset("json", data_files=str(export / "sft.jsonl"), split="train")
        assert ds[0]["messages"][0]["role"] == "user"
    if result.export.preference_records:
        ds = datasets.load_dataset("json", data_files=str(export / "preference.jsonl"),
                                   split="train")
        assert set(ds.column_names) >= {"prompt", "chosen", "rejected"}
