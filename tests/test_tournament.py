"""Answer tournaments, adaptive judging, and the head-to-head guard of selection (pure)."""

from __future__ import annotations

import itertools
import random

import pytest

from warriorcoder.arena.ids import judgment_id
from warriorcoder.arena.selection import select_winners, unanimous_loser
from warriorcoder.arena.tournament import (
    WeightedTally,
    contenders,
    next_battles,
    opening_battles,
    outcome_settled,
    pending_battles,
    plan_judges,
)
from warriorcoder.config import ConfigError, parse_config
from warriorcoder.v1 import arena_pb2

A, B, TIE = arena_pb2.VERDICT_A, arena_pb2.VERDICT_B, arena_pb2.VERDICT_TIE
RATED = arena_pb2.BATTLE_STATUS_RATED
DEFENDERS = ["d1", "d2", "d3"]


def play(mode: str, quality: dict[str, float]) -> dict[tuple[str, str], float | None]:
    """Run a whole tournament with perfect judges (the better answer wins)."""
    results: dict[tuple[str, str], float | None] = {}
    stage = opening_battles(mode, "att", DEFENDERS)  # type: ignore[arg-type]
    while stage:
        for a, b in stage:
            assert (a, b) not in results and (b, a) not in results, "a pair fought twice"
            results[(a, b)] = 1.0 if quality[a] > quality[b] else 0.0
        stage = next_battles(mode, "att", DEFENDERS, results)  # type: ignore[arg-type]
    return results


def test_opening_battles_per_mode() -> None:
    assert opening_battles("none", "att", DEFENDERS) == [("att", d) for d in DEFENDERS]
    assert opening_battles("contenders", "att", DEFENDERS) == [("att", d) for d in DEFENDERS]
    assert opening_battles("round_robin", "att", DEFENDERS) == list(
        itertools.combinations(["att", *DEFENDERS], 2))
    with pytest.raises(ValueError, match="tournament mode"):
        opening_battles("swiss", "att", DEFENDERS)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="repeat"):
        opening_battles("none", "att", ["att", "d1"])


@pytest.mark.parametrize("seed", range(30))
def test_contenders_make_the_best_answer_meet_every_remaining_rival(seed: int) -> None:
    rng = random.Random(seed)
    quality = {m: rng.random() for m in ["att", *DEFENDERS]}
    best = max(quality, key=quality.__getitem__)
    results = play("contenders", quality)
    assert contenders(["att", *DEFENDERS], results) == [best]
    assert pending_battles("contenders", "att", DEFENDERS, results) == []
    # The best answer met every answer that no one else had beaten before it.
    assert len(results) <= 6


def test_defenders_that_beat_the_attacker_meet_each_other() -> None:
    quality = {"att": 0.0, "d1": 0.5, "d2": 0.9, "d3": 0.7}
    results = play("contenders", quality)
    assert set(results) == {("att", "d1"), ("att", "d2"), ("att", "d3"),
                            ("d1", "d2"), ("d1", "d3"), ("d2", "d3")}
    quality = {"att": 1.0, "d1": 0.5, "d2": 0.9, "d3": 0.7}
    assert set(play("contenders", quality)) == {("att", d) for d in DEFENDERS}


def test_ties_and_failed_battles_beat_nobody_and_nothing_is_fought_twice() -> None:
    results: dict[tuple[str, str], float | None] = {
        ("att", "d1"): 0.5, ("att", "d2"): None, ("att", "d3"): 1.0}
    follow = next_battles("contenders", "att", DEFENDERS, results)
    assert follow == [("d1", "d2")]  # att met both already (a failed battle counts as met)
    results[("d1", "d2")] = None
    assert next_battles("contenders", "att", DEFENDERS, results) == []


def test_pending_battles_replay_the_schedule() -> None:
    assert pending_battles("contenders", "att", DEFENDERS, {}) == [
        ("att", d) for d in DEFENDERS]
    partial = {("att", "d1"): 0.0, ("att", "d2"): 0.0}
    assert pending_battles("contenders", "att", DEFENDERS, partial) == [("att", "d3")]
    done = {**partial, ("att", "d3"): 1.0}
    assert pending_battles("contenders", "att", DEFENDERS, done) == [("d1", "d2")]
    assert pending_battles("none", "att", DEFENDERS, done) == []


def test_outcome_settled() -> None:
    assert outcome_settled(WeightedTally(2, 0), judges_left=1, max_vote_weight=1.0)
    assert not outcome_settled(WeightedTally(1, 0), judges_left=1, max_vote_weight=1.0)
    assert not outcome_settled(WeightedTally(0, 0), judges_left=1, max_vote_weight=1.0)
    assert outcome_settled(WeightedTally(0, 0), judges_left=0, max_vote_weight=1.0)
    assert not outcome_settled(WeightedTally(2, 0), judges_left=1, max_vote_weight=2.0)
    with pytest.raises(ValueError):
        outcome_settled(WeightedTally(0, 0), judges_left=-1, max_vote_weight=1.0)


def _judgment(battle: str, judge: str, order: int, verdict: int) -> arena_pb2.Judgment:
    position = verdict if order == arena_pb2.ORDER_AB else {A: B, B: A}.get(verdict, verdict)
    return arena_pb2.Judgment(
        judgment_id=judgment_id(battle, judge, order), battle_id=battle, judge=judge,
        order=order, verdict=verdict, position_verdict=position, attempts=1,
    )


def test_plan_judges_asks_a_majority_then_one_at_a_time() -> None:
    judges = ["j1", "j2", "j3"]

    def final(verdict: object) -> bool:
        return verdict is not None

    assert plan_judges("b", judges, {}, adaptive=False, is_final=final) == (judges, False)
    asked, done = plan_judges("b", judges, {}, adaptive=True, is_final=final)
    assert len(asked) == 2 and not done
    # The first two agree: the third cannot change the winner.
    agree = {}
    for judge in asked:
        for order in (arena_pb2.ORDER_AB, arena_pb2.ORDER_BA):
            j = _judgment("b", judge, order, A)
            agree[j.judgment_id] = j
    assert plan_judges("b", judges, agree, adaptive=True, is_final=final) == (asked, True)
    # They disagree: the third judge is asked.
    split = dict(agree)
    for order in (arena_pb2.ORDER_AB, arena_pb2.ORDER_BA):
        j = _judgment("b", asked[1], order, B)
        split[j.judgment_id] = j
    more, done = plan_judges("b", judges, split, adaptive=True, is_final=final)
    assert sorted(more) == judges and not done


def rated(bid: str, a: str, b: str, votes_a: int, votes_b: int, ties: int = 0,
          execution: float | None = None) -> arena_pb2.RatedBattle:
    decisive = votes_a + votes_b
    battle = arena_pb2.RatedBattle(
        battle_id=bid, challenge_id="c", model_a=a, model_b=b, status=RATED,
        votes_a=votes_a, votes_b=votes_b, ties=ties,
        local_score_a=votes_a / decisive if decisive else 0.5, tokens_a=10, tokens_b=10,
    )
    if execution is not None:
        battle.execution_score_a = execution
    return battle


def test_unanimous_loser() -> None:
    assert unanimous_loser(rated("1", "a", "b", 3, 0)) == "b"
    assert unanimous_loser(rated("1", "a", "b", 0, 2)) == "a"
    assert unanimous_loser(rated("1", "a", "b", 2, 1)) is None
    assert unanimous_loser(rated("1", "a", "b", 2, 0, ties=1)) is None
    # Execution favoured the side the judges voted down: not unanimous evidence.
    assert unanimous_loser(rated("1", "a", "b", 3, 0, execution=0.0)) is None
    assert unanimous_loser(rated("1", "a", "b", 3, 0, execution=0.5)) == "b"
    # Fractional execution scores: any lean towards the loser waives the guard.
    assert unanimous_loser(rated("1", "a", "b", 3, 0, execution=0.4)) is None
    assert unanimous_loser(rated("1", "a", "b", 0, 3, execution=0.6)) is None
    assert unanimous_loser(rated("1", "a", "b", 0, 3, execution=0.3)) == "a"
    # Adaptive judging skipped a judge: its vote is unknown, so the loss is not unanimous.
    skipped = rated("1", "a", "b", 2, 0)
    skipped.skipped_judges.append("j3")
    assert unanimous_loser(skipped) is None


def test_the_global_rating_never_overrules_a_unanimous_head_to_head() -> None:
    # "star" is rated far above "underdog", but underdog beat it unanimously on this challenge.
    ratings = {"star": 1600.0, "underdog": 900.0, "att": 1000.0}
    battles = [rated("1", "att", "star", 0, 3), rated("2", "att", "underdog", 0, 3),
               rated("3", "star", "underdog", 0, 3)]
    guarded = select_winners(battles, ratings, alpha=0.9)[0]
    assert guarded.winner == "underdog" and "star" in guarded.beaten_unanimously
    unguarded = select_winners(battles, ratings, alpha=0.9, head_to_head_guard=False)[0]
    assert unguarded.winner == "star"
    # A cycle of unanimous losses: the score decides, whoever it picks.
    cycle = [rated("1", "att", "star", 3, 0), rated("2", "star", "underdog", 3, 0),
             rated("3", "att", "underdog", 0, 3)]
    assert select_winners(cycle, ratings, alpha=0.9)[0].winner == "star"


def test_sum_aggregate_and_paper_preset() -> None:
    roster = [{"id": i, "backend": "fake", "model": "fake:random"} for i in "abc"]
    cfg = parse_config({"roster": roster, "selection": {"preset": "paper"}})
    s = cfg.selection
    assert (s.tournament, s.alpha, s.rating, s.aggregate, s.head_to_head_guard) == (
        "none", 0.7, "elo", "sum", False)
    with pytest.raises(ConfigError, match="preset 'paper' fixes these settings: alpha"):
        parse_config({"roster": roster, "selection": {"preset": "paper", "alpha": 0.2}})
    with pytest.raises(ConfigError, match="preset 'paper' uses Elo with K=40"):
        parse_config({"roster": roster, "selection": {"preset": "paper"},
                      "rating": {"k_factor": 16}})
    with pytest.raises(ConfigError, match="moved to the `selection` block"):
        parse_config({"roster": roster, "export": {"alpha": 0.2}})
    default = parse_config({"roster": roster}).selection
    assert (default.tournament, default.rating, default.aggregate) == (
        "contenders", "bradley_terry", "mean")
