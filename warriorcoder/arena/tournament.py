"""Answer tournaments: which battles a challenge's answers fight, and when judging can stop.

Pure: no models, no store. A challenge is answered by its attacker and its defenders. Battles
of attacker against defenders alone leave the defenders unranked among themselves: when two
defenders both beat the attacker, nothing the judges said tells which of them is better, and
the pick falls to the global rating. A tournament schedules further battles between the answers
that are still in contention, so the exported answer has met its rivals head to head.

Modes (`selection.tournament`):

- ``none``: attacker against each defender, nothing more (the paper's schedule).
- ``contenders``: attacker against each defender first. Then, as long as answers that no other
  answer has beaten have not all met each other, those pairs fight. An answer is beaten when it
  lost a rated battle (its local score below 0.5). Ties and failed battles beat nobody. The set
  of unbeaten answers only shrinks, so this ends after at most one battle per pair.
- ``round_robin``: every pair of answers fights, all at once.

A battle is identified by its ordered pair (model_a, model_b): the attacker is model_a in its
battles, and between two defenders the one listed first among the challenge's defenders is
model_a. Battle ids come from `warriorcoder.arena.ids.battle_id`, so a rescheduled battle is
the same battle.

Adaptive judging (`judge.adaptive`) asks a battle's judges in waves and stops once the judges
not yet asked can no longer change who wins: see `outcome_settled`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from warriorcoder.arena.ids import judgment_id, stable_id
from warriorcoder.arena.judging import judge_votes
from warriorcoder.v1 import arena_pb2
from warriorcoder.v1.arena_pb2 import Judgment

TournamentMode = Literal["none", "contenders", "round_robin"]
TOURNAMENT_MODES: tuple[TournamentMode, ...] = ("none", "contenders", "round_robin")

Match = tuple[str, str]
_ORDERS = (arena_pb2.ORDER_AB, arena_pb2.ORDER_BA)

__all__ = [
    "TOURNAMENT_MODES",
    "Match",
    "TournamentMode",
    "WeightedTally",
    "beaten",
    "contenders",
    "next_battles",
    "opening_battles",
    "outcome_settled",
    "pending_battles",
    "plan_judges",
    "tournament_models",
    "unsettled_challenges",
]


def tournament_models(attacker: str, defenders: Sequence[str]) -> list[str]:
    """Everyone who answers the challenge, in the order that orients battles."""
    if not attacker:
        raise ValueError("tournament: attacker is empty")
    models = [attacker, *defenders]
    if len(set(models)) != len(models):
        raise ValueError(f"tournament: answerers repeat: {models}")
    return models


def opening_battles(mode: TournamentMode, attacker: str, defenders: Sequence[str]) -> list[Match]:
    """The battles scheduled as soon as the answers exist."""
    _check_mode(mode)
    models = tournament_models(attacker, defenders)
    if mode == "round_robin":
        return list(itertools.combinations(models, 2))
    return [(attacker, d) for d in defenders]


def beaten(results: Mapping[Match, float | None]) -> set[str]:
    """Models that lost at least one rated battle (`results` maps a match to model_a's local
    score, None for a failed battle)."""
    out: set[str] = set()
    for (a, b), score in results.items():
        if score is None:
            continue
        if score < 0.5:
            out.add(a)
        elif score > 0.5:
            out.add(b)
    return out


def contenders(models: Sequence[str], results: Mapping[Match, float | None]) -> list[str]:
    """The answers no other answer has beaten, in `models` order."""
    lost = beaten(results)
    return [m for m in models if m not in lost]


def _met(a: str, b: str, fought: Iterable[Match]) -> bool:
    return (a, b) in fought or (b, a) in fought


def next_battles(
    mode: TournamentMode,
    attacker: str,
    defenders: Sequence[str],
    results: Mapping[Match, float | None],
) -> list[Match]:
    """Battles to fight next, given the results of every battle scheduled so far.

    Call it only once every scheduled battle has a result (see `pending_battles`). Empty when the
    tournament is over.
    """
    _check_mode(mode)
    models = tournament_models(attacker, defenders)
    fought = set(results)
    wanted = opening_battles(mode, attacker, defenders)
    missing = [m for m in wanted if not _met(*m, fought)]
    if missing or mode != "contenders":
        return missing
    alive = contenders(models, results)
    return [(a, b) for a, b in itertools.combinations(alive, 2) if not _met(a, b, fought)]


def pending_battles(
    mode: TournamentMode,
    attacker: str,
    defenders: Sequence[str],
    results: Mapping[Match, float | None],
) -> list[Match]:
    """All battles the tournament has scheduled given `results` whose results are still missing.

    Replays the schedule from the opening battles: a stage's follow-ups count once every battle
    of that stage has a result. The tournament is complete when this is empty.
    """
    known: dict[Match, float | None] = {}
    stage = opening_battles(mode, attacker, defenders)
    while stage:
        missing = [m for m in stage if m not in results]
        if missing:
            return missing
        known.update({m: results[m] for m in stage})
        stage = next_battles(mode, attacker, defenders, known)
    return []


def unsettled_challenges(
    mode: TournamentMode,
    challenges: Iterable[arena_pb2.Challenge],
    battles: Iterable[arena_pb2.RatedBattle],
) -> list[str]:
    """Ids of the challenges whose tournament still has a battle that is neither rated nor
    failed: the work a round has in flight. A failed battle counts as fought (it beats nobody,
    as in `beaten`), so a round whose every battle is rated or failed has none.
    """
    results: dict[str, dict[Match, float | None]] = {}
    for b in battles:
        if b.status == arena_pb2.BATTLE_STATUS_RATED:
            results.setdefault(b.challenge_id, {})[(b.model_a, b.model_b)] = b.local_score_a
        elif b.status == arena_pb2.BATTLE_STATUS_FAILED:
            results.setdefault(b.challenge_id, {})[(b.model_a, b.model_b)] = None
    return [
        c.challenge_id for c in challenges
        if pending_battles(mode, c.attacker, c.defenders, results.get(c.challenge_id, {}))
    ]


def _check_mode(mode: str) -> None:
    if mode not in TOURNAMENT_MODES:
        raise ValueError(f"tournament mode must be one of {TOURNAMENT_MODES}, got {mode!r}")


def plan_judges(
    battle_id: str,
    judges: Sequence[str],
    judgments: Mapping[str, Judgment],
    *,
    adaptive: bool,
    is_final: Callable[[Judgment | None], bool],
    strong_weight: float = 1.0,
) -> tuple[list[str], bool]:
    """The judges to ask for a battle given its judgments so far (by judgment id), and whether
    the battle is complete: every judge to ask has a final judgment (`is_final`) in both orders.

    Without `adaptive` every judge is asked. With it, the judges are taken in a per-battle order
    (which spreads the load over the judges), a majority first, then one at a time until the
    judges not yet asked can no longer change who wins (`outcome_settled`). Votes weigh what
    they weigh in the local score (`judge_votes` with `strong_weight`); a judge not yet asked
    could add up to `strong_weight`.
    """
    ordered = list(judges)
    if not adaptive:
        asked = ordered
    else:
        ordered.sort(key=lambda j: stable_id("adaptive-order", battle_id, j))
        asked = ordered[: len(ordered) // 2 + 1]
    while True:
        mine = [judgments.get(judgment_id(battle_id, j, o)) for j in asked for o in _ORDERS]
        if not all(is_final(j) for j in mine):
            return asked, False
        if len(asked) == len(ordered):
            return asked, True
        votes = judge_votes([j for j in mine if j is not None], strong_weight=strong_weight)
        tally = WeightedTally(
            sum(_weight(v) for v in votes if v.verdict == arena_pb2.VERDICT_A),
            sum(_weight(v) for v in votes if v.verdict == arena_pb2.VERDICT_B),
        )
        if outcome_settled(tally, len(ordered) - len(asked), strong_weight):
            return asked, True
        asked = ordered[: len(asked) + 1]


def _weight(vote: arena_pb2.Vote) -> float:
    return vote.weight if vote.HasField("weight") else 1.0


@dataclass(frozen=True)
class WeightedTally:
    """Votes of the judges asked so far: weight for A, weight for B."""

    for_a: float
    for_b: float


def outcome_settled(tally: WeightedTally, judges_left: int, max_vote_weight: float) -> bool:
    """True when the judges not yet asked cannot change who wins the battle.

    Who wins is the sign of ``for_a - for_b`` (A, B, or a tie at zero). Each judge left can add
    at most `max_vote_weight` to either side, so the outcome is settled when the lead is larger
    than what they could add together. A tie is never settled while a judge is left.
    """
    if judges_left < 0 or max_vote_weight <= 0:
        raise ValueError(
            f"outcome_settled: judges_left must be >= 0 and max_vote_weight > 0, got "
            f"{judges_left}, {max_vote_weight}"
        )
    if judges_left == 0:
        return True
    return abs(tally.for_a - tally.for_b) > judges_left * max_vote_weight
