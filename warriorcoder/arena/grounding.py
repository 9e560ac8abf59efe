"""Execution grounding: a battle's score from its judges and from running its answers.

Pure: no sandbox, no store. When a challenge has tests, the judge stage runs both answers
against them (see `warriorcoder.stages.judge`) and the battle's local score becomes

    local_score_a = (1 - w) * judge_score_a + w * execution_score_a

with w = `execution.weight` and

    execution_score_a = 1    only model_a's answer passed
                        0    only model_b's answer passed
                        0.5  the same outcome: both passed, or both failed

Both failing says nothing about which answer is better; it is also what broken tests (a wrong
expected value, a name the task never gave) produce, so broken tests give 0.5: no signal from
execution, and the judges' score is pulled towards 0.5 by w. Execution that could not happen
(no tests, a sandbox ERROR, a missing result) leaves the battle exactly as the judges scored
it. Execution grounds the judges, it does not replace them: a battle whose judges gave no valid
verdict stays FAILED, with its execution results kept for inspection.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

from warriorcoder.arena.ids import stable_id
from warriorcoder.arena.judging import rate_battle
from warriorcoder.v1 import arena_pb2
from warriorcoder.v1.arena_pb2 import ExecutionResult, Judgment, RatedBattle, ResponsePair

# Statuses that say something about the answer (ERROR is the sandbox's own failure).
_MEASURED = (
    arena_pb2.EXECUTION_STATUS_PASSED,
    arena_pb2.EXECUTION_STATUS_FAILED,
    arena_pb2.EXECUTION_STATUS_TIMEOUT,
    arena_pb2.EXECUTION_STATUS_KILLED,
    arena_pb2.EXECUTION_STATUS_NO_CODE,
)

__all__ = [
    "execution_id",
    "execution_score",
    "ground_battle",
    "grounded_score",
    "is_measured",
    "rate_grounded_battle",
]


def _sha(text: str) -> str:
    # surrogatepass: model text may hold lone surrogates; any str has a hash.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def execution_id(challenge_id: str, model_id: str, code: str, tests: str) -> str:
    """Deterministic id of running `code` (model_id's answer) against `tests` of a challenge.

    The attacker's answer fights every defender with the same code and tests: one id, one run.
    """
    for name, value in (("challenge_id", challenge_id), ("model_id", model_id)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"execution_id: {name} must be a non-empty str, got {value!r}")
    return stable_id("execution", challenge_id, model_id, _sha(code), _sha(tests))


def is_measured(result: ExecutionResult | None) -> bool:
    """True when `result` tells something about the answer (not absent, not a sandbox ERROR)."""
    return result is not None and result.status in _MEASURED


SCORES = ("all_or_nothing", "fraction")


def passed_fraction(result: ExecutionResult) -> float:
    """Share of the run's tests that passed (the harness's per-test record); a run without
    per-test results (no code, killed before the record) counts 1 if PASSED, else 0."""
    if result.tests_total > 0:
        return min(max(result.tests_passed / result.tests_total, 0.0), 1.0)
    return 1.0 if result.status == arena_pb2.EXECUTION_STATUS_PASSED else 0.0


def execution_score(
    result_a: ExecutionResult | None, result_b: ExecutionResult | None,
    score: str = "all_or_nothing",
) -> float | None:
    """A's execution score against B; None without a signal (`execution.score`).

    all_or_nothing: 1 / 0 / 0.5 for only A passed / only B passed / same outcome.
    fraction: 0.5 + (fraction_a - fraction_b) / 2 with the fractions of tests passed
    (`passed_fraction`): the same values at the extremes, partial credit between them.
    None when either result is missing or not measured (`is_measured`). NO_CODE, FAILED,
    TIMEOUT and KILLED all count as not passing.
    """
    if score not in SCORES:
        raise ValueError(f"execution_score: score must be one of {SCORES}, got {score!r}")
    if not (is_measured(result_a) and is_measured(result_b)):
        return None
    assert result_a is not None and result_b is not None
    if score == "fraction":
        return 0.5 + (passed_fraction(result_a) - passed_fraction(result_b)) / 2
    passed_a = result_a.status == arena_pb2.EXECUTION_STATUS_PASSED
    passed_b = result_b.status == arena_pb2.EXECUTION_STATUS_PASSED
    if passed_a == passed_b:
        return 0.5
    return 1.0 if passed_a else 0.0


def grounded_score(judge_score: float, execution: float | None, weight: float) -> float:
    """(1 - weight) * judge_score + weight * execution; judge_score alone when execution is None."""
    for name, value in (("judge_score", judge_score), ("weight", weight)):
        if not (isinstance(value, int | float) and 0.0 <= value <= 1.0) or math.isnan(value):
            raise ValueError(f"grounded_score: {name} must be in [0, 1], got {value!r}")
    if execution is None:
        return judge_score
    if not (isinstance(execution, int | float) and 0.0 <= execution <= 1.0):
        raise ValueError(f"grounded_score: execution must be in [0, 1], got {execution!r}")
    return (1.0 - weight) * judge_score + weight * execution


def ground_battle(
    battle: RatedBattle,
    execution_a: ExecutionResult | None,
    execution_b: ExecutionResult | None,
    weight: float,
    *,
    score: str = "all_or_nothing",
) -> RatedBattle:
    """A copy of a rated battle with its execution results and, when they give a score, the
    grounded local score (`judge_score_a` keeps the judges' score).

    Results are stored whenever given. The score changes only for a RATED battle whose two
    results are measured; FAILED battles and battles without execution keep their score.
    """
    out = RatedBattle()
    out.CopyFrom(battle)
    for field, result, model in (
        ("execution_a", execution_a, battle.model_a),
        ("execution_b", execution_b, battle.model_b),
    ):
        if result is None:
            continue
        if result.model_id and result.model_id != model:
            raise ValueError(
                f"battle {battle.battle_id!r}: {field} is of {result.model_id!r}, "
                f"expected {model!r}"
            )
        getattr(out, field).CopyFrom(result)
    exec_score = execution_score(execution_a, execution_b, score)
    if exec_score is None or battle.status != arena_pb2.BATTLE_STATUS_RATED:
        return out
    out.judge_score_a = battle.local_score_a
    out.execution_score_a = exec_score
    out.local_score_a = grounded_score(battle.local_score_a, exec_score, weight)
    return out


def rate_grounded_battle(
    pair: ResponsePair,
    judgments: Sequence[Judgment],
    execution_a: ExecutionResult | None,
    execution_b: ExecutionResult | None,
    weight: float | None,
    *,
    strong_weight: float = 1.0,
    score: str = "all_or_nothing",
) -> RatedBattle:
    """`rate_battle` (with `strong_weight`, judge.strong_verdict_weight), then `ground_battle`
    when execution is on (`weight` not None).

    With `weight` None (execution off) or no results at all, the battle is exactly what
    `rate_battle` gives.
    """
    rated = rate_battle(pair, judgments, strong_weight=strong_weight)
    if weight is None or (execution_a is None and execution_b is None):
        return rated
    return ground_battle(rated, execution_a, execution_b, weight, score=score)
