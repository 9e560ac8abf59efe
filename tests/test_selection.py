"""Winner selection e(A) and the exported record layouts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from warriorcoder.arena.rating import win_probability
from warriorcoder.arena.selection import final_scores, select_winners, training_records
from warriorcoder.arena.training_record import (
    RecordError,
    record_from_json,
    record_json,
)
from warriorcoder.v1 import arena_pb2

RATED = arena_pb2.BATTLE_STATUS_RATED


def battle(bid: str, a: str, b: str, x: float, *, challenge: str = "c1", tokens=(10, 10),
           status: int = RATED) -> arena_pb2.RatedBattle:
    return arena_pb2.RatedBattle(
        battle_id=bid, challenge_id=challenge, round_id="r", model_a=a, model_b=b,
        local_score_a=x, status=status, tokens_a=tokens[0], tokens_b=tokens[1],
        votes=[arena_pb2.Vote(judge="j",
                              verdict=arena_pb2.VERDICT_A if x > 0.5 else arena_pb2.VERDICT_B)],
    )


def test_final_score_formula() -> None:
    ratings = {"a": 1100.0, "b": 1000.0, "c": 900.0}
    battles = [battle("1", "a", "b", 0.0), battle("2", "a", "c", 1.0)]
    alpha = 0.7
    s = final_scores(battles, ratings, alpha)
    p_ab = win_probability(1100, 1000)
    p_ac = win_probability(1100, 900)
    # a battled two opponents: the mean of its two battle scores.
    assert s["a"] == pytest.approx((alpha * p_ab + alpha * p_ac + (1 - alpha) * (0.0 + 1.0)) / 2)
    assert s["b"] == pytest.approx(alpha * (1 - p_ab) + (1 - alpha) * 1.0)
    assert s["c"] == pytest.approx(alpha * (1 - p_ac) + (1 - alpha) * 0.0)


def test_alpha_extremes_pick_by_votes_or_by_rating() -> None:
    ratings = {"a": 1200.0, "b": 1000.0, "c": 1000.0}
    battles = [battle("1", "a", "b", 0.0)]  # judges prefer b, global rating prefers a
    assert select_winners(battles, ratings, alpha=0.0)[0].winner == "b"
    assert select_winners(battles, ratings, alpha=1.0)[0].winner == "a"


def test_ties_go_to_the_shorter_answer_and_failed_battles_are_skipped() -> None:
    ratings = {"a": 1000.0, "b": 1000.0, "c": 1000.0}
    battles = [
        battle("1", "a", "b", 0.5, tokens=(300, 40)),
        battle("2", "a", "c", 1.0, challenge="c2", status=arena_pb2.BATTLE_STATUS_FAILED),
    ]
    outcomes = select_winners(battles, ratings, alpha=0.7)
    assert [o.challenge_id for o in outcomes] == ["c1"]
    assert outcomes[0].winner == "b" and outcomes[0].loser == "a"


def test_swapping_sides_mirrors_selection() -> None:
    ratings = {"a": 1050.0, "b": 990.0, "c": 1000.0}
    one = select_winners([battle("1", "a", "b", 0.25)], ratings, 0.7)[0]
    two = select_winners([battle("1", "b", "a", 0.75)], ratings, 0.7)[0]
    assert one.scores == pytest.approx(two.scores)
    assert (one.winner, one.loser) == (two.winner, two.loser)


def test_records_load_with_datasets(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    ratings = {"a": 1000.0, "b": 1000.0, "c": 1000.0}
    battles = [battle("1", "a", "b", 1.0), battle("2", "b", "c", 0.0, challenge="c2")]
    outcomes = select_winners(battles, ratings, 0.7)
    sft, pref = training_records(
        outcomes,
        {"c1": "Write f", "c2": "Write g"},
        {("c1", "a"): "A1", ("c1", "b"): "B1", ("c2", "b"): "B2", ("c2", "c"): "C2"},
        round_id="r", config_hash="h",
    )
    assert [r.chosen_model for r in sft] == ["a", "c"]
    assert [(p.chosen_model, p.rejected_model) for p in pref] == [("a", "b"), ("c", "b")]
    assert list(sft[0].provenance.battle_ids) == ["1"] and sft[0].provenance.config_hash == "h"
    for name, rows in (("sft", sft), ("pref", pref)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(record_json(r)) + "\n" for r in rows))
        ds = datasets.load_dataset("json", data_files=str(path), split="train")
        assert len(ds) == len(rows)
    ds = datasets.load_dataset("json", data_files=str(tmp_path / "sft.jsonl"), split="train")
    assert ds[0]["messages"] == [{"role": "user", "content": "Write f"},
                                 {"role": "assistant", "content": "A1"}]


def test_identical_answers_give_no_preference_pair() -> None:
    ratings = {"a": 1000.0, "b": 1000.0, "c": 1000.0}
    outcomes = select_winners([battle("1", "a", "b", 1.0)], ratings, 0.7)
    sft, pref = training_records(outcomes, {"c1": "p"}, {("c1", "a"): "same", ("c1", "b"): "same"},
                                 round_id="r", config_hash="h")
    assert len(sft) == 1 and pref == []


def test_record_json_keeps_the_layout_and_reads_back_into_the_same_record() -> None:
    ratings = {"a": 1000.0, "b": 1000.0, "c": 1000.0}
    battles = [battle("1", "a", "b", 1.0), battle("2", "a", "c", 0.75)]
    outcomes = select_winners(battles, ratings, 0.5)
    sft, pref = training_records(
        outcomes, {"c1": "Write f"}, {("c1", "a"): "A", ("c1", "b"): "B", ("c1", "c"): "C"},
        round_id="r", config_hash="h")
    line = record_json(sft[0])
    assert list(line) == ["id", "messages", "model", "score", "provenance"]
    assert line["messages"] == [{"role": "user", "content": "Write f"},
                                {"role": "assistant", "content": "A"}]
    assert line["score"] == outcomes[0].scores["a"]
    prov = line["provenance"]
    assert list(prov) == ["round_id", "challenge_id", "battle_ids", "models", "judges", "votes",
                          "local_scores", "scores", "head_to_head_losers", "config_hash"]
    assert prov["votes"] == [{"battle_id": "1", "judge": "j", "verdict": "a"},
                             {"battle_id": "2", "judge": "j", "verdict": "a"}]
    assert prov["local_scores"][1] == {"battle_id": "2", "model_a": "a", "model_b": "c",
                                       "x_a": 0.75}
    assert prov["scores"] == [{"model": m, "score": outcomes[0].scores[m]} for m in "abc"]
    assert prov["head_to_head_losers"] == list(outcomes[0].beaten_unanimously)
    pair = record_json(pref[0])
    assert list(pair) == ["id", "prompt", "chosen", "rejected", "chosen_model",
                          "rejected_model", "margin", "provenance"]
    assert pair["margin"] == pytest.approx(outcomes[0].scores["a"] - outcomes[0].scores[
        pref[0].rejected_model])
    # Written and read back (through JSON text, as a file holds it): the same message.
    for record in (*sft, *pref):
        text = json.dumps(record_json(record))
        assert record_from_json(json.loads(text), record.kind) == record
    with pytest.raises(RecordError, match=r"kind must be one of"):
        record_json(sft[0].__class__(record_id="x", kind="dpo"))


def test_attacker_with_many_defenders_gets_no_edge_from_battle_count() -> None:
    ratings = {"a": 1000.0, "b": 1000.0, "c": 1000.0}
    # Every battle tied: the attacker battled two defenders, each defender one battle.
    battles = [battle("1", "a", "b", 0.5, tokens=(50, 20)),
               battle("2", "a", "c", 0.5, tokens=(50, 30))]
    outcome = select_winners(battles, ratings, 0.7)[0]
    assert outcome.scores == pytest.approx({"a": 0.5, "b": 0.5, "c": 0.5})
    assert outcome.winner == "b"  # equal scores: the shortest answer
