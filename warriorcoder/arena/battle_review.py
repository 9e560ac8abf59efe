"""What a reviewer asks of a stored battle: who won, which judges contradicted themselves
across the two orders, and whether execution and the judges disagree.

Pure rules over RatedBattle and Judgment messages; the battle viewer (warriorcoder/viewer)
filters and labels battles with them, and its store queries are tested against them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from warriorcoder.arena.judging import judgment_battle_verdict, latest_judgments
from warriorcoder.v1 import arena_pb2

Outcome = Literal["a", "b", "tie", "failed"]
OUTCOMES: tuple[Outcome, ...] = ("a", "b", "tie", "failed")


def battle_outcome(battle: arena_pb2.RatedBattle) -> Outcome:
    """"a" when model_a won (local score above 1/2), "b" when model_b won, "tie" at exactly
    1/2, "failed" for a battle that was not rated."""
    if battle.status != arena_pb2.BATTLE_STATUS_RATED:
        return "failed"
    if battle.local_score_a > 0.5:
        return "a"
    if battle.local_score_a < 0.5:
        return "b"
    return "tie"


def contradicting_judges(judgments: Iterable[arena_pb2.Judgment]) -> list[str]:
    """Judges of one battle whose two orders gave valid but different battle verdicts (after
    un-swapping), e.g. A when model_a was shown first and B when model_b was: the position,
    not the answers, decided. Sorted; only each judge's latest attempt per order counts."""
    latest = latest_judgments(judgments)
    out = []
    for judge in sorted({judge for judge, _ in latest}):
        first = latest.get((judge, arena_pb2.ORDER_AB))
        second = latest.get((judge, arena_pb2.ORDER_BA))
        if first is None or second is None:
            continue
        verdicts = (judgment_battle_verdict(first), judgment_battle_verdict(second))
        if arena_pb2.VERDICT_INVALID not in verdicts and verdicts[0] != verdicts[1]:
            out.append(judge)
    return out


def execution_disagrees(battle: arena_pb2.RatedBattle) -> bool:
    """The tests favoured one answer and the judges the other: the execution score and the
    judges' score lie on opposite sides of 1/2. False when the battle has no usable execution
    (no tests, execution off, a sandbox error) or either side is even."""
    if not (battle.HasField("execution_score_a") and battle.HasField("judge_score_a")):
        return False
    execution, judges = battle.execution_score_a, battle.judge_score_a
    return (execution > 0.5 and judges < 0.5) or (execution < 0.5 and judges > 0.5)

