"""A rater stopped mid-batch whose batch is never delivered again (the embedded run resumes from
its store and rates only what is not RATED there): the stored battles are counted once."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from test_season import POOL, judged, kill_rater_at, make_config

from warriorcoder.stages.rater import Rater
from warriorcoder.storage.store import ArenaStore


@pytest.mark.parametrize("killed_at", ["round tally", "season tally", "marking counted"])
def test_battles_a_stopped_rater_stored_are_counted_once_without_redelivery(
        tmp_path: Path, killed_at: str) -> None:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    rng = random.Random(23)
    first = [judged("r1", f"c{c}", "alpha", "beta", POOL, rng) for c in range(5)]
    batch = [judged("r1", f"d{c}", "gamma", "delta", POOL, rng) for c in range(5)]
    for item in (*first, *batch):  # the judge stage stores the judgments
        store.save_judgments(item.judgments)
    Rater(make_config(), store).handle(first)
    expected = Rater(make_config(), ArenaStore.open_embedded(tmp_path / "clean.db"))
    expected.handle(first)
    expected.handle(batch)

    kill_rater_at(store, killed_at, lambda: Rater(make_config(), store).handle(batch),
                  spare_first_writes=True)

    resumed = Rater(make_config(), store)
    resumed.handle([])  # nothing is redelivered
    resumed.count_untallied("r1")
    assert resumed.count_untallied("r1") == 0  # counted once
    assert store.untallied_among(store.battle_ids("r1")) == set()
    for got, want in ((resumed.leaderboard("r1"), expected.leaderboard("r1")),
                      (resumed.season_leaderboard(), expected.season_leaderboard())):
        assert got is not None and want is not None
        assert (got.battles, got.records) == (want.battles, want.records) == (10, 10)
        assert [(r.model_id, r.wins, r.losses) for r in got.ratings] == [
            (r.model_id, r.wins, r.losses) for r in want.ratings]
        assert [(j.judge, j.pairs, j.consistency) for j in got.judges] == [
            (j.judge, j.pairs, j.consistency) for j in want.judges]
