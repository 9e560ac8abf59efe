"""The embedded run with execution on: attackers write tests, the Judge stage runs the answers
in the real sandbox, battles are scored from judges and execution together."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from warriorcoder.arena.challenge_tests import TESTS_PROMPT
from warriorcoder.backends import load_backend
from warriorcoder.backends.base import (
    ChatRequest,
    GenerationError,
    GenerationOutcome,
    GenerationResult,
    ModelBackend,
    WrappedBackend,
)
from warriorcoder.config import ArenaConfig, parse_config
from warriorcoder.stages.challenger import Challenger
from warriorcoder.stages.embedded import run_arena
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

TESTS_MARKER = TESTS_PROMPT.split("\n", 1)[0]
# What each expert answers to every challenge: a right answer, a wrong one, and no code.
ANSWERS = {
    "alpha": "Sorted:\n\n```python\ndef solve(values):\n    return sorted(values)\n```",
    "beta": "Easy:\n\n```python\ndef solve(values):\n    return list(values)\n```",
    "gamma": "I would sort the values and return them.",
}
EXPECTED = {"alpha": arena_pb2.EXECUTION_STATUS_PASSED,
            "beta": arena_pb2.EXECUTION_STATUS_FAILED,
            "gamma": arena_pb2.EXECUTION_STATUS_NO_CODE}
WRITTEN_TESTS = ("Here are the tests.\n\n```python\nfrom solution import solve\n"
                 "assert solve([3, 1, 2]) == [1, 2, 3]\nassert solve([]) == []\n```")
USER_TESTS = "assert solve([2, 1]) == [1, 2]\n"


class ScriptedBackend(WrappedBackend):
    """The fake model for mining and judging; scripted answers and tests (the fake model's own
    answers are not code that tests could decide)."""

    def __init__(self, inner: ModelBackend, fail_tests: bool = False) -> None:
        super().__init__(inner)
        self.fail_tests = fail_tests
        self.tests_requests = 0

    async def chat(self, requests: Sequence[ChatRequest]) -> list[GenerationOutcome]:
        out: list[GenerationOutcome] = []
        for request in requests:
            prompt = request.messages[-1].content
            if prompt.startswith(TESTS_MARKER):
                self.tests_requests += 1
                if self.fail_tests:
                    out.append(GenerationError(self.model_id, "server down"))
                    continue
                text = WRITTEN_TESTS
            elif any("[[A]]" in m.content for m in request.messages):
                out += await self.inner.chat([request])
                continue
            else:
                text = ANSWERS[self.model_id]
            out.append(GenerationResult(self.model_id, text, len(prompt.split()),
                                        len(text.split()), 0.0, "stop"))
        return out


def make_config(tmp_path: Path, **execution: Any) -> ArenaConfig:
    user_file = tmp_path / "user.jsonl"
    user_file.write_text(json.dumps({"instruction": "Write solve(values) that sorts a list.",
                                     "tests": USER_TESTS}) + "\n")
    return parse_config({
        "round_id": "x1",
        "roster": [
            {"id": "alpha", "backend": "fake", "model": "fake:prefer-longer"},
            {"id": "beta", "backend": "fake", "model": "fake:prefer-first"},
            {"id": "gamma", "backend": "fake", "model": "fake:random"},
        ],
        "challenger": {
            "per_setting": 1,
            "user_instructions": ["Write a Python function that reverses a string in place."],
            "user_instructions_file": str(user_file),
        },
        "rating": {"bootstrap_rounds": 10},
        "execution": {"enabled": True, "timeout_s": 5, **execution},
    })


def backends_for(config: ArenaConfig, **kwargs: Any) -> dict[str, ScriptedBackend]:
    return {e.id: ScriptedBackend(load_backend(e), **kwargs) for e in config.roster}


def test_round_with_execution_grounds_every_battle_that_has_tests(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    backends = backends_for(config)
    result = asyncio.run(run_arena(config, tmp_path / "run", backends=backends))
    store = ArenaStore.open_embedded(tmp_path / "run" / "arena.db")
    challenges = {c.challenge_id: c for c in store.challenges("x1")}
    mined = [c for c in challenges.values() if c.source == "mined"]
    assert mined and sum(b.tests_requests for b in backends.values()) == len(mined)
    for c in mined:  # the attacker's tests, cleaned: the import of "solution" is gone
        assert c.tests == "assert solve([3, 1, 2]) == [1, 2, 3]\nassert solve([]) == []\n"
        assert c.tests_generation.text == WRITTEN_TESTS
    user = {c.instruction: c for c in challenges.values() if c.source == "user"}
    assert user["Write solve(values) that sorts a list."].tests == USER_TESTS
    assert user["Write a Python function that reverses a string in place."].tests == ""

    battles = store.battles("x1")
    assert battles and all(b.status == arena_pb2.BATTLE_STATUS_RATED for b in battles)
    grounded = 0
    for b in battles:
        if not challenges[b.challenge_id].tests:
            assert not b.HasField("execution_a") and not b.HasField("execution_score_a")
            continue
        grounded += 1
        assert b.execution_a.status == EXPECTED[b.model_a]
        assert b.execution_b.status == EXPECTED[b.model_b]
        passed_a, passed_b = b.model_a == "alpha", b.model_b == "alpha"
        assert b.execution_score_a == (0.5 if passed_a == passed_b else float(passed_a))
        decisive = b.votes_a + b.votes_b
        assert b.judge_score_a == (b.votes_a / decisive if decisive else 0.5)
        assert b.local_score_a == 0.5 * b.judge_score_a + 0.5 * b.execution_score_a
    # All but the battles of the instruction without tests.
    untested = [b for b in battles if not challenges[b.challenge_id].tests]
    assert untested and grounded == len(battles) - len(untested)
    assert result.leaderboard.battles == len(battles)

    # A rerun finds the round done: nothing is asked or run again.
    again = backends_for(config)
    asyncio.run(run_arena(config, tmp_path / "run", backends=again))
    assert sum(b.tests_requests for b in again.values()) == 0
    assert store.battles("x1") == battles


def test_stored_tests_answers_are_reused_when_the_round_is_prepared_again(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    first = asyncio.run(Challenger(config, backends_for(config), store).prepare_round())
    # Interrupted before the round was sealed: preparing again filters again, asks nothing.
    store.save_round_info("x1", challenges_ready=False)
    backends = backends_for(config)
    second = asyncio.run(Challenger(config, backends, store).prepare_round())
    assert sum(b.tests_requests for b in backends.values()) == 0
    assert {c.challenge_id: c.tests for c in second} == {c.challenge_id: c.tests for c in first}


def test_failed_tests_requests_leave_the_round_unsealed_and_are_asked_again(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path)
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    failing = backends_for(config, fail_tests=True)
    challenges = asyncio.run(Challenger(config, failing, store).prepare_round())
    mined = [c for c in challenges if c.source == "mined"]
    assert mined and not any(c.tests for c in mined)
    info = store.round_info("x1") or {}
    assert not info["challenges_ready"] and info["funnel"]["tests_failures"] == len(mined)
    working = backends_for(config)
    challenges = asyncio.run(Challenger(config, working, store).prepare_round())
    assert sum(b.tests_requests for b in working.values()) == len(mined)
    assert all(c.tests for c in challenges if c.source == "mined")
    assert (store.round_info("x1") or {})["challenges_ready"]


def test_no_tests_are_asked_for_when_generation_is_off(tmp_path: Path) -> None:
    config = make_config(tmp_path, generate_tests=False)
    backends = backends_for(config)
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    challenges = asyncio.run(Challenger(config, backends, store).prepare_round())
    assert sum(b.tests_requests for b in backends.values()) == 0
    assert [c.tests for c in challenges if c.tests] == [USER_TESTS]
