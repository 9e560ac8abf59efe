"""The leaderboard as the rater builds it and as report.py shows it: comparison groups,
unbounded sides and rank ranges, through the store and the JSON/Markdown/PNG files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from warriorcoder.config import ArenaConfig, parse_config
from warriorcoder.reporting.leaderboard import (
    leaderboard_markdown,
    plot_leaderboard,
    write_leaderboard,
)
from warriorcoder.stages.rater import Rater
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

MODELS = ("alpha", "beta", "gamma", "champ", "x", "y")


def make_config(**rating: Any) -> ArenaConfig:
    return parse_config(
        {
            "round_id": "r1",
            "roster": [{"id": n, "backend": "fake", "model": "fake:prefer-first"} for n in MODELS],
            "rating": rating,
        }
    )


def battle(number: int, model_a: str, model_b: str, score_a: float) -> arena_pb2.RatedBattle:
    return arena_pb2.RatedBattle(
        battle_id=f"b{number:03d}",
        challenge_id=f"c{number:03d}",
        round_id="r1",
        model_a=model_a,
        model_b=model_b,
        local_score_a=score_a,
        status=arena_pb2.BATTLE_STATUS_RATED,
    )


def arena_battles() -> list[arena_pb2.RatedBattle]:
    """alpha, beta and gamma win and lose against each other; champ beats all three and never
    loses; x and y only ever meet each other."""
    rows = [("alpha", "beta", 1.0)] * 6 + [("beta", "alpha", 1.0)] * 4
    rows += [("beta", "gamma", 1.0)] * 6 + [("gamma", "beta", 1.0)] * 4
    rows += [("gamma", "alpha", 1.0)] * 3 + [("alpha", "gamma", 1.0)] * 7
    rows += [("champ", "alpha", 1.0)] * 3 + [("champ", "beta", 1.0)] * 3
    rows += [("x", "y", 1.0)] * 5 + [("y", "x", 1.0)] * 5
    return [battle(i, a, b, s) for i, (a, b, s) in enumerate(rows)]


@pytest.fixture
def board(tmp_path: Path) -> arena_pb2.Leaderboard:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    store.save_battles(arena_battles())
    return Rater(make_config(), store).leaderboard("r1")


def test_rater_reports_groups_and_unbounded_sides(board: arena_pb2.Leaderboard) -> None:
    rows = {r.model_id: r for r in board.ratings}
    assert [r.group for r in board.ratings] == [1, 1, 1, 1, 2, 2]
    assert [r.model_id for r in board.ratings][:1] == ["champ"]
    champ = rows["champ"]
    assert champ.upper_unbounded and champ.bradley_terry_upper == math.inf
    assert not champ.lower_unbounded and math.isfinite(champ.bradley_terry_lower)
    assert not champ.anchor
    for name in ("alpha", "beta", "gamma", "x", "y"):
        r = rows[name]
        assert r.anchor and not (r.lower_unbounded or r.upper_unbounded)
        assert r.bradley_terry_lower < r.bradley_terry < r.bradley_terry_upper
    # x and y split evenly on their own scale, anchored at the initial rating.
    assert rows["x"].bradley_terry == pytest.approx(1000.0)
    assert board.interval_method == "95% profile likelihood"
    assert board.bootstrap_rounds == 0


def test_the_stored_leaderboard_keeps_infinities_and_flags(tmp_path: Path) -> None:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    store.save_battles(arena_battles())
    board = Rater(make_config(), store).leaderboard("r1")
    assert store.leaderboard("r1") == board


def test_bootstrap_intervals_are_a_setting(tmp_path: Path) -> None:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    store.save_battles(arena_battles())
    board = Rater(make_config(intervals="bootstrap", bootstrap_rounds=30), store).leaderboard("r1")
    assert board.bootstrap_rounds == 30
    assert board.interval_method.startswith("95% bootstrap, 30 rounds")
    # The unbeaten model keeps its open side: a resample never shows it losing either.
    assert {r.model_id: r.upper_unbounded for r in board.ratings}["champ"]


def test_markdown_shows_groups_open_sides_and_shared_ranks(board: arena_pb2.Leaderboard) -> None:
    text = leaderboard_markdown(board)
    assert "2 comparison groups" in text
    assert "### Group 1: 4 models" in text and "### Group 2: 2 models" in text
    assert "Ratings are relative to the mean of alpha, beta, gamma" in text
    champ = next(line for line in text.splitlines() if "| champ |" in line)
    lower = {r.model_id: r for r in board.ratings}["champ"].bradley_terry_lower
    assert f"≥ {lower:.1f}" in champ and f"[{lower:.1f}, unbounded)" in champ
    # Ten battles each: alpha, beta and gamma overlap, so no one of them gets a single rank;
    # x and y, ranked against each other only, overlap: they are listed, not ranked.
    ranks = {
        line.split("|")[2].strip(): line.split("|")[1].strip()
        for line in text.splitlines()
        if line.startswith("| ") and "rank" not in line
    }
    assert ranks["x"] == ranks["y"] == "–"
    assert text.count("cannot be told apart") == 1
    assert "These 2 models cannot be told apart" in text
    assert all("–" in ranks[name] for name in ("alpha", "beta", "gamma"))
    assert "95% profile likelihood" in text


def test_markdown_of_a_leaderboard_stored_before_groups_existed() -> None:
    old = arena_pb2.Leaderboard(round_id="r0", battles=40, bootstrap_rounds=100)
    old.ratings.add(model_id="a", bradley_terry=1100.0, bradley_terry_lower=1050.0,
                    bradley_terry_upper=1150.0, elo=1050.0, battles=40, wins=30, losses=10)
    old.ratings.add(model_id="b", bradley_terry=900.0, bradley_terry_lower=850.0,
                    bradley_terry_upper=950.0, elo=950.0, battles=40, wins=10, losses=30)
    text = leaderboard_markdown(old)
    assert "Group" not in text and "95% bootstrap, 100 rounds" in text
    assert "| 1 | a | 1100.0 | [1050.0, 1150.0] |" in text
    assert "| 2 | b | 900.0 | [850.0, 950.0] |" in text


def test_leaderboard_files_round_trip_and_plot_open_sides(
    board: arena_pb2.Leaderboard, tmp_path: Path
) -> None:
    paths = write_leaderboard(board, tmp_path / "export")
    raw = json.loads(paths[0].read_text())
    champ = next(r for r in raw["ratings"] if r["model_id"] == "champ")
    assert champ["bradley_terry_upper"] == "Infinity" and champ["upper_unbounded"] is True
    assert json_format.Parse(paths[0].read_text(), arena_pb2.Leaderboard()) == board
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_of_models_with_nothing_bounded(tmp_path: Path) -> None:
    lonely = arena_pb2.Leaderboard(round_id="r2", battles=0)
    lonely.ratings.add(model_id="idle", bradley_terry=1000.0, bradley_terry_lower=-math.inf,
                       bradley_terry_upper=math.inf, lower_unbounded=True, upper_unbounded=True,
                       group=1, anchor=True)
    plot_leaderboard(lonely, tmp_path / "board.png")
    assert (tmp_path / "board.png").stat().st_size > 0
    assert "| 1 | idle | not determined | (unbounded, unbounded) |" in leaderboard_markdown(lonely)


def test_a_board_whose_ratings_cannot_be_told_apart_ranks_nobody() -> None:
    # What a first demo run printed: three experts at exactly 1000.0 with [1000.0, 1000.0]
    # intervals, still ranked 1-3.
    board = arena_pb2.Leaderboard(round_id="demo-1", battles=15, interval_method="x")
    for name in ("a", "b", "c"):
        board.ratings.add(model_id=name, bradley_terry=1000.0, bradley_terry_lower=1000.0,
                          bradley_terry_upper=1000.0, elo=1000.0, battles=10, ties=10)
    text = leaderboard_markdown(board)
    assert "These 3 models cannot be told apart" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "rank" not in line]
    assert [row.split("|")[1].strip() for row in rows] == ["–", "–", "–"]
    # One model apart from the rest: ranks again, shared where intervals overlap.
    board.ratings[0].bradley_terry_lower, board.ratings[0].bradley_terry_upper = 1100.0, 1200.0
    text = leaderboard_markdown(board)
    assert "cannot be told apart" not in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "rank" not in line]
    assert [row.split("|")[1].strip() for row in rows] == ["1", "2–3", "2–3"]
