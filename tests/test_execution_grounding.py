"""Execution grounding: scoring crafted battles, the Judge stage running answers in the real
sandbox, and the Rater storing grounded battles."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

from warriorcoder.arena.grounding import (
    execution_id,
    execution_score,
    ground_battle,
    grounded_score,
    is_measured,
    rate_grounded_battle,
)
from warriorcoder.arena.judging import judgment_id, rate_battle
from warriorcoder.config import ArenaConfig, parse_config
from warriorcoder.execution import RunResult, SandboxLimits, run_tests
from warriorcoder.stages.judge import Judge
from warriorcoder.stages.rater import Rater
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

PASSED = arena_pb2.EXECUTION_STATUS_PASSED
FAILED = arena_pb2.EXECUTION_STATUS_FAILED
TIMEOUT = arena_pb2.EXECUTION_STATUS_TIMEOUT
NO_CODE = arena_pb2.EXECUTION_STATUS_NO_CODE
ERROR = arena_pb2.EXECUTION_STATUS_ERROR

TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
RIGHT = "Sure:\n\n```python\ndef add(a, b):\n    return a + b\n```\n"
WRONG = "Here you go.\n\n```python\ndef add(a, b):\n    return a - b\n```\n"


def result(status: int, model: str = "") -> arena_pb2.ExecutionResult:
    return arena_pb2.ExecutionResult(model_id=model, status=status)  # type: ignore[arg-type]


def judgment(battle: str, judge: str, order: int, verdict: int) -> arena_pb2.Judgment:
    """A judgment whose position verdict is `verdict` (A = the answer shown first)."""
    return arena_pb2.Judgment(
        judgment_id=judgment_id(battle, judge, order),  # type: ignore[arg-type]
        battle_id=battle, judge=judge, order=order,  # type: ignore[arg-type]
        position_verdict=verdict, attempts=1,  # type: ignore[arg-type]
    )


def pair(battle: str = "b1", answer_a: str = RIGHT, answer_b: str = WRONG, tests: str = TESTS,
         model_a: str = "alpha", model_b: str = "beta", judges: tuple[str, ...] = ("gamma",),
         challenge: str = "c1") -> arena_pb2.ResponsePair:
    p = arena_pb2.ResponsePair(battle_id=battle, challenge_id=challenge, round_id="r1",
                               instruction="Write add(a, b).", model_a=model_a, model_b=model_b,
                               judges=list(judges), tests=tests)
    p.response_a.model_id, p.response_b.model_id = model_a, model_b
    p.response_a.generation.text, p.response_b.generation.text = answer_a, answer_b
    return p


def first_shown_judgments(battle: str, judge: str = "gamma") -> list[arena_pb2.Judgment]:
    """A judge that picks the answer shown first in both orders: its vote is a TIE."""
    return [judgment(battle, judge, arena_pb2.ORDER_AB, arena_pb2.VERDICT_A),
            judgment(battle, judge, arena_pb2.ORDER_BA, arena_pb2.VERDICT_A)]


def b_wins_judgments(battle: str, judge: str = "gamma") -> list[arena_pb2.Judgment]:
    """A judge that prefers model_b in both orders."""
    return [judgment(battle, judge, arena_pb2.ORDER_AB, arena_pb2.VERDICT_B),
            judgment(battle, judge, arena_pb2.ORDER_BA, arena_pb2.VERDICT_A)]


# -- pure scoring ----------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "expected"), [
    (PASSED, FAILED, 1.0),
    (FAILED, PASSED, 0.0),
    (PASSED, PASSED, 0.5),
    (FAILED, FAILED, 0.5),       # both wrong, or the tests themselves are wrong: no signal
    (TIMEOUT, PASSED, 0.0),
    (PASSED, NO_CODE, 1.0),      # an answer without code does not pass
    (NO_CODE, TIMEOUT, 0.5),
    (PASSED, ERROR, None),       # the sandbox failed: nothing is known about B
    (ERROR, ERROR, None),
])
def test_execution_score(a: int, b: int, expected: float | None) -> None:
    assert execution_score(result(a), result(b)) == expected


def test_execution_score_needs_both_results() -> None:
    assert execution_score(None, result(PASSED)) is None
    assert execution_score(result(PASSED), None) is None
    assert not is_measured(result(arena_pb2.EXECUTION_STATUS_UNSPECIFIED))


def test_grounded_score_mixes_and_rejects_bad_input() -> None:
    assert grounded_score(0.0, 1.0, 0.5) == 0.5
    assert grounded_score(0.5, 1.0, 0.5) == 0.75
    assert grounded_score(1.0, 0.5, 0.25) == pytest.approx(0.875)
    assert grounded_score(0.3, None, 0.9) == 0.3
    with pytest.raises(ValueError, match="weight"):
        grounded_score(0.5, 1.0, 1.5)
    with pytest.raises(ValueError, match="judge_score"):
        grounded_score(math.nan, 1.0, 0.5)
    assert grounded_score(0.5, 0.7, 0.5) == pytest.approx(0.6)  # a fraction score
    for bad in (1.2, -0.1, math.nan):
        with pytest.raises(ValueError, match="execution"):
            grounded_score(0.5, bad, 0.5)


def test_execution_id_is_deterministic_and_tied_to_code_and_tests() -> None:
    base = execution_id("c1", "alpha", "code", "tests")
    assert base == execution_id("c1", "alpha", "code", "tests")
    others = {execution_id("c2", "alpha", "code", "tests"),
              execution_id("c1", "beta", "code", "tests"),
              execution_id("c1", "alpha", "code2", "tests"),
              execution_id("c1", "alpha", "code", "tests2")}
    assert base not in others and len(others) == 4
    with pytest.raises(ValueError, match="model_id"):
        execution_id("c1", "", "code", "tests")


def test_a_right_b_wrong_moves_a_tied_judge_panel_to_a() -> None:
    p = pair()
    judgments = first_shown_judgments("b1")
    rated = rate_grounded_battle(p, judgments, result(PASSED, "alpha"), result(FAILED, "beta"),
                                 0.5)
    assert rated.status == arena_pb2.BATTLE_STATUS_RATED
    assert (rated.judge_score_a, rated.execution_score_a, rated.local_score_a) == (0.5, 1.0, 0.75)
    assert rated.execution_a.status == PASSED and rated.execution_b.status == FAILED
    assert rated.ties == 1  # the votes are the judges', untouched


def test_execution_against_the_judges_meets_them_half_way() -> None:
    rated = rate_grounded_battle(pair(), b_wins_judgments("b1"), result(PASSED), result(FAILED),
                                 0.5)
    assert (rated.judge_score_a, rated.local_score_a) == (0.0, 0.5)
    heavy = rate_grounded_battle(pair(), b_wins_judgments("b1"), result(PASSED), result(FAILED),
                                 0.8)
    assert heavy.local_score_a == pytest.approx(0.8)


def test_both_wrong_pulls_the_judges_score_towards_half() -> None:
    rated = rate_grounded_battle(pair(), b_wins_judgments("b1"), result(FAILED), result(FAILED),
                                 0.5)
    assert (rated.judge_score_a, rated.execution_score_a, rated.local_score_a) == (0.0, 0.5, 0.25)


def test_no_tests_or_no_execution_keeps_todays_battle_exactly() -> None:
    p = pair(tests="")
    judgments = b_wins_judgments("b1")
    today = rate_battle(p, judgments)
    for rated in (rate_grounded_battle(p, judgments, None, None, 0.5),
                  rate_grounded_battle(p, judgments, result(PASSED), result(FAILED), None)):
        assert rated == today
        assert not rated.HasField("execution_score_a") and not rated.HasField("judge_score_a")
        assert not rated.HasField("execution_a")


def test_sandbox_error_stores_the_results_but_keeps_the_judges_score() -> None:
    rated = rate_grounded_battle(pair(), b_wins_judgments("b1"), result(PASSED), result(ERROR),
                                 0.5)
    assert rated.local_score_a == 0.0 and not rated.HasField("execution_score_a")
    assert rated.execution_b.status == ERROR


def test_a_battle_without_valid_verdicts_stays_failed() -> None:
    garbage = [judgment("b1", "gamma", o, arena_pb2.VERDICT_INVALID)
               for o in (arena_pb2.ORDER_AB, arena_pb2.ORDER_BA)]
    rated = rate_grounded_battle(pair(), garbage, result(PASSED), result(FAILED), 0.5)
    assert rated.status == arena_pb2.BATTLE_STATUS_FAILED
    assert rated.local_score_a == 0.5 and not rated.HasField("execution_score_a")
    assert rated.execution_a.status == PASSED


def test_weight_zero_records_execution_without_scoring_it() -> None:
    rated = rate_grounded_battle(pair(), b_wins_judgments("b1"), result(PASSED), result(FAILED),
                                 0.0)
    assert (rated.local_score_a, rated.execution_score_a) == (0.0, 1.0)


def test_results_of_the_wrong_model_are_refused() -> None:
    battle = rate_battle(pair(), b_wins_judgments("b1"))
    with pytest.raises(ValueError, match="execution_a is of 'beta', expected 'alpha'"):
        ground_battle(battle, result(PASSED, "beta"), result(FAILED, "beta"), 0.5)


# -- the Judge stage with the real sandbox ----------------------------------------------------


def make_config(**execution: Any) -> ArenaConfig:
    return parse_config({
        "round_id": "r1",
        "roster": [{"id": n, "backend": "fake", "model": "fake:prefer-first"}
                   for n in ("alpha", "beta", "gamma", "delta")],
        "execution": {"enabled": True, "timeout_s": 5, **execution},
    })


class CountingRunner:
    """The real sandbox's run_tests, counting the runs."""

    def __init__(self) -> None:
        self.runs = 0

    def __call__(self, solution: str, tests: str, limits: SandboxLimits) -> RunResult:
        self.runs += 1
        return run_tests(solution, tests, limits)


def judge_stage(tmp_path: Path, config: ArenaConfig, runner: Any) -> Judge:
    from warriorcoder.backends import load_backend

    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    backends = {e.id: load_backend(e) for e in config.roster}
    return Judge(config, backends, store, test_runner=runner)


def test_judge_runs_both_answers_once_each_and_reuses_the_results(tmp_path: Path) -> None:
    runner = CountingRunner()
    stage = judge_stage(tmp_path, make_config(), runner)
    # The attacker (alpha) fights two defenders with the same answer: one run for it.
    pairs = [pair("b1", RIGHT, WRONG, model_b="beta", judges=("gamma", "delta")),
             pair("b2", RIGHT, "No code, sorry.", model_b="gamma", judges=("beta", "delta"))]
    items = asyncio.run(stage.handle(pairs))
    assert runner.runs == 2  # alpha's answer and beta's; gamma's has no code to run
    first, second = items
    assert (first.execution_a.status, first.execution_b.status) == (PASSED, FAILED)
    assert "AssertionError" in first.execution_b.reason
    assert (second.execution_a.status, second.execution_b.status) == (PASSED, NO_CODE)
    assert first.execution_a == second.execution_a
    assert first.execution_a.model_id == "alpha" and first.execution_b.model_id == "beta"
    assert len(first.judgments) == 4  # judging happened alongside
    # Redelivered: the same results, nothing run again.
    again = asyncio.run(stage.handle(pairs))
    assert runner.runs == 2 and again == items


def test_judge_leaves_pairs_without_tests_or_with_errors_or_execution_off(tmp_path: Path) -> None:
    runner = CountingRunner()
    broken = pair("b3")
    broken.response_b.error = "beta: timed out"
    pairs = [pair("b1", tests=""), broken]
    items = asyncio.run(judge_stage(tmp_path, make_config(), runner).handle(pairs))
    assert runner.runs == 0
    assert not any(i.HasField("execution_a") or i.HasField("execution_b") for i in items)
    off = parse_config({**make_config().model_dump(mode="json"), "execution": {"enabled": False}})
    items = asyncio.run(judge_stage(tmp_path / "off", off, runner).handle([pair("b1")]))
    assert runner.runs == 0 and not items[0].HasField("execution_a")


def test_a_sandbox_failure_is_an_error_result_and_is_tried_again(tmp_path: Path) -> None:
    calls = []

    def broken_sandbox(solution: str, tests: str, limits: SandboxLimits) -> RunResult:
        calls.append(solution)
        raise OSError("cannot fork")

    stage = judge_stage(tmp_path, make_config(), broken_sandbox)
    (item,) = asyncio.run(stage.handle([pair("b1")]))
    assert item.execution_a.status == ERROR and "cannot fork" in item.execution_a.reason
    asyncio.run(stage.handle([pair("b1")]))
    assert len(calls) == 4  # errors are not remembered


def test_judge_applies_the_configured_limits(tmp_path: Path) -> None:
    endless = "```python\ndef add(a, b):\n    while True:\n        pass\n```"
    stage = judge_stage(tmp_path, make_config(timeout_s=1, concurrency=2), run_tests)
    (item,) = asyncio.run(stage.handle([pair("b1", RIGHT, endless)]))
    assert (item.execution_a.status, item.execution_b.status) == (PASSED, TIMEOUT)
    assert not item.execution_b.HasField("exit_code") and item.execution_a.exit_code == 0


# -- the Rater ----------------------------------------------------------------------------------


def test_rater_grounds_and_stores_the_battle(tmp_path: Path) -> None:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    item = arena_pb2.BattleJudgments(pair=pair(), judgments=first_shown_judgments("b1"))
    item.execution_a.CopyFrom(result(PASSED, "alpha"))
    item.execution_b.CopyFrom(result(FAILED, "beta"))
    (rated,) = Rater(make_config(weight=0.25), store).handle([item])
    assert rated.local_score_a == pytest.approx(0.625)
    assert store.battle("b1") == rated
    # With execution off the same judgments give today's score, results or not.
    off = parse_config({**make_config().model_dump(mode="json"), "execution": {"enabled": False}})
    (plain,) = Rater(off, store).handle([item])
    assert plain == rate_battle(item.pair, item.judgments)
