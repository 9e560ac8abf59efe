"""Winner selection and training records.

For each challenge, every answer gets a final score

    e(A) = mean over the opponents B that A battled on this challenge of
           alpha * P_rating(A beats B) + (1 - alpha) * x(A > B)

where P_rating comes from the global ratings (Bradley-Terry by default) and x is the battle's
local score from the judges' votes (grounded by execution when it ran). The paper sums over
opponents (`aggregate="sum"`); with several defenders per challenge the attacker battles every
defender while each defender battles only the attacker, so a sum favours the attacker by the
number of its battles. The mean ranks answers the same way whenever all answers had the same
number of opponents.

The global term says who is strong in general, not who answered this challenge best, so it must
never overrule the judges' own head-to-head verdict: with the head-to-head guard (default) an
answer that lost a battle by a unanimous vote (every judge that voted decisively voted against
it, none tied, and execution did not favour it) is never exported over the answer that beat it.
The winner is the best-scored answer among those that no answer beat that way; only when every
answer was beaten (a cycle of unanimous losses) does the score alone decide.

The best-chosen answer becomes an SFT example; the best against the worst gives a preference
pair for DPO. Both are TrainingRecord messages (see arena.training_record for their JSON form).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from warriorcoder.arena.rating import RatingScale, win_probability
from warriorcoder.arena.training_record import PREFERENCE, SFT
from warriorcoder.v1 import arena_pb2

DEFAULT_SCALE = RatingScale()

Aggregate = Literal["mean", "sum"]


@dataclass(frozen=True)
class ChallengeOutcome:
    challenge_id: str
    # e(model) for every model that answered in a rated battle of this challenge.
    scores: dict[str, float]
    winner: str
    loser: str
    battles: tuple[arena_pb2.RatedBattle, ...]
    # Models that lost a unanimous head-to-head on this challenge (never exported over the
    # answer that beat them when the guard is on).
    beaten_unanimously: tuple[str, ...] = ()


def final_scores(
    battles: Iterable[arena_pb2.RatedBattle],
    ratings: Mapping[str, float],
    alpha: float,
    scale: RatingScale = DEFAULT_SCALE,
    aggregate: Aggregate = "mean",
) -> dict[str, float]:
    """e(model) over the rated battles of one challenge (mean or sum over opponents)."""
    totals: dict[str, float] = defaultdict(float)
    opponents: dict[str, int] = defaultdict(int)
    for b in battles:
        p_a = win_probability(ratings[b.model_a], ratings[b.model_b], scale)
        x_a = b.local_score_a
        totals[b.model_a] += alpha * p_a + (1 - alpha) * x_a
        totals[b.model_b] += alpha * (1 - p_a) + (1 - alpha) * (1 - x_a)
        opponents[b.model_a] += 1
        opponents[b.model_b] += 1
    if aggregate == "sum":
        return dict(totals)
    return {m: totals[m] / opponents[m] for m in totals}


def unanimous_loser(battle: arena_pb2.RatedBattle) -> str | None:
    """The model that lost `battle` by a unanimous vote, or None.

    Unanimous: at least one decisive vote, every decisive vote for the same side, no tie vote
    (a judge whose two orders disagreed votes TIE, so every counted vote was order-consistent),
    every eligible judge asked (adaptive judging may have skipped one whose vote is unknown),
    and execution, where it ran, did not favour the loser at all. Invalid votes are no votes.
    """
    if battle.status != arena_pb2.BATTLE_STATUS_RATED or battle.ties or battle.skipped_judges:
        return None
    if battle.votes_a and not battle.votes_b:
        loser = battle.model_b
    elif battle.votes_b and not battle.votes_a:
        loser = battle.model_a
    else:
        return None
    if battle.HasField("execution_score_a"):
        loser_execution = (
            battle.execution_score_a if loser == battle.model_a else 1 - battle.execution_score_a
        )
        if loser_execution > 0.5:
            return None
    return loser


def _ranked(
    models: Iterable[str], scores: Mapping[str, float], tokens: Mapping[str, int]
) -> list[str]:
    # Equal scores go to the shorter answer, then to the model id: deterministic, and length
    # never wins a tie.
    return sorted(models, key=lambda m: (-round(scores[m], 12), tokens[m], m))


def select_winners(
    battles: Sequence[arena_pb2.RatedBattle],
    ratings: Mapping[str, float],
    alpha: float,
    scale: RatingScale = DEFAULT_SCALE,
    *,
    aggregate: Aggregate = "mean",
    head_to_head_guard: bool = True,
) -> list[ChallengeOutcome]:
    """One outcome per challenge that has at least one rated battle, in challenge-id order.

    The winner is the best-scored answer; with `head_to_head_guard`, the best-scored among the
    answers that lost no unanimous head-to-head (all answers when each lost one). The loser is
    the worst-scored answer. Equal scores go to the shorter answer (fewer completion tokens),
    then to the model id.
    """
    by_challenge: dict[str, list[arena_pb2.RatedBattle]] = defaultdict(list)
    for b in battles:
        by_challenge[b.challenge_id].append(b)
    outcomes = []
    for challenge_id in sorted(by_challenge):
        outcome = select_winner(challenge_id, by_challenge[challenge_id], ratings, alpha, scale,
                                aggregate=aggregate, head_to_head_guard=head_to_head_guard)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def select_winner(
    challenge_id: str,
    battles: Iterable[arena_pb2.RatedBattle],
    ratings: Mapping[str, float],
    alpha: float,
    scale: RatingScale = DEFAULT_SCALE,
    *,
    aggregate: Aggregate = "mean",
    head_to_head_guard: bool = True,
) -> ChallengeOutcome | None:
    """The outcome of one challenge from its battles (see `select_winners`); None when none of
    them is rated. Battles of other challenges are a caller's bug: ValueError."""
    group = sorted((b for b in battles if b.status == arena_pb2.BATTLE_STATUS_RATED),
                   key=lambda b: b.battle_id)
    if not group:
        return None
    strays = sorted({b.challenge_id for b in group} - {challenge_id})
    if strays:
        raise ValueError(f"battles of challenges {strays} given as challenge {challenge_id!r}")
    scores = final_scores(group, ratings, alpha, scale, aggregate)
    tokens: dict[str, int] = {}
    for b in group:
        tokens[b.model_a] = b.tokens_a
        tokens[b.model_b] = b.tokens_b
    ranked = _ranked(scores, scores, tokens)
    lost = sorted({m for b in group if (m := unanimous_loser(b)) is not None})
    eligible = [m for m in ranked if m not in lost] if head_to_head_guard else ranked
    winner = (eligible or ranked)[0]
    # The worst answer other than the winner (the guard may have promoted the winner past
    # a better-scored answer; a pair with a margin below the minimum is dropped later).
    loser = [m for m in ranked if m != winner][-1] if len(ranked) > 1 else winner
    return ChallengeOutcome(challenge_id, scores, winner, loser, tuple(group), tuple(lost))


def instruction_key(instruction: str) -> str:
    """What makes two challenges the same task for a dataset: the instruction with its
    whitespace runs collapsed and its ends stripped (hex SHA-256). An export keeps one record
    per key, across rounds."""
    normal = " ".join(instruction.split())
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()


def _provenance(
    outcome: ChallengeOutcome, round_id: str, config_hash: str
) -> arena_pb2.Provenance:
    return arena_pb2.Provenance(
        round_id=round_id,
        challenge_id=outcome.challenge_id,
        battle_ids=[b.battle_id for b in outcome.battles],
        models=sorted(outcome.scores),
        judges=sorted({v.judge for b in outcome.battles for v in b.votes}),
        # Who voted what, per battle (strength and weight stay with the stored battle).
        votes=[arena_pb2.Vote(battle_id=b.battle_id, judge=v.judge, verdict=v.verdict)
               for b in outcome.battles for v in b.votes],
        local_scores=[arena_pb2.LocalScore(battle_id=b.battle_id, model_a=b.model_a,
                                           model_b=b.model_b, x_a=b.local_score_a)
                      for b in outcome.battles],
        scores=outcome.scores,
        head_to_head_losers=outcome.beaten_unanimously,
        config_hash=config_hash,
    )


def training_records(
    outcomes: Sequence[ChallengeOutcome],
    instructions: Mapping[str, str],
    answers: Mapping[tuple[str, str], str],
    *,
    round_id: str,
    config_hash: str,
    min_preference_margin: float = 0.0,
) -> tuple[list[arena_pb2.TrainingRecord], list[arena_pb2.TrainingRecord]]:
    """SFT records (the winner's answer) and preference pairs (winner against loser).

    `answers` maps (challenge_id, model_id) to the answer text. A preference pair needs a loser
    whose score is more than `min_preference_margin` below the winner's and whose text differs.
    The JSON form of the records (arena.training_record.record_json) is the conversational
    layout that `datasets` loads and TRL's SFTTrainer and DPOTrainer read.
    """
    sft, preference = [], []
    for o in outcomes:
        prompt = instructions[o.challenge_id]
        turn = arena_pb2.ChatTurn(role="user", content=prompt)
        chosen = answers[(o.challenge_id, o.winner)]
        prov = _provenance(o, round_id, config_hash)
        sft.append(arena_pb2.TrainingRecord(
            record_id=f"{o.challenge_id}/sft", kind=SFT, prompt=prompt, prompt_messages=[turn],
            chosen=chosen, chosen_model=o.winner, score=o.scores[o.winner], provenance=prov,
        ))
        rejected = answers[(o.challenge_id, o.loser)]
        margin = o.scores[o.winner] - o.scores[o.loser]
        if o.loser != o.winner and rejected != chosen and margin > min_preference_margin:
            preference.append(arena_pb2.TrainingRecord(
                record_id=f"{o.challenge_id}/preference", kind=PREFERENCE, prompt=prompt,
                prompt_messages=[turn], chosen=chosen, rejected=rejected,
                chosen_model=o.winner, rejected_model=o.loser, margin=margin, provenance=prov,
            ))
    return sft, preference
