"""Season ratings: battles counted once into round and season tallies, leaderboards computed
from the tallies (work per refresh independent of the history), newcomers placed against the
pool, and the views in the CLI and the gRPC API."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pymongo
import pytest
import yaml

from warriorcoder.arena.ids import battle_id, judgment_id
from warriorcoder.arena.judging import JudgeTally
from warriorcoder.arena.mining import pair_defenders
from warriorcoder.arena.rating import (
    BattleOutcomes,
    bootstrap_intervals,
    bradley_terry,
    elo_ratings,
    likelihood_intervals,
    win_stats,
)
from warriorcoder.arena.tally import BattleEntry, RatingTally, score_cell
from warriorcoder.cli import main as cli_main
from warriorcoder.config import ArenaConfig, parse_config
from warriorcoder.service.grpc_server import build_server
from warriorcoder.service.servicers.rater import RaterServicer
from warriorcoder.stages.rater import Rater, round_scope, season_newcomers, season_scope
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2, services_pb2
from warriorcoder.v1 import services_pb2_grpc as services_grpc

POOL = ("alpha", "beta", "gamma", "delta")
STRENGTH = {"alpha": 1.5, "beta": 0.5, "gamma": 0.0, "delta": -1.0, "newbie": 2.5}


def make_config(round_id: str = "r1", roster: tuple[str, ...] = POOL, **extra: Any
                ) -> ArenaConfig:
    data: dict[str, Any] = {
        "round_id": round_id,
        "roster": [{"id": m, "backend": "fake", "model": "fake:random"} for m in roster],
        "rating": {"bootstrap_rounds": 20},
    }
    data.update(extra)
    return parse_config(data)


def judged(round_id: str, challenge: str, a: str, b: str, roster: tuple[str, ...],
           rng: random.Random) -> arena_pb2.BattleJudgments:
    """A battle of `a` against `b` judged in both orders by the rest of `roster`, each judge
    preferring the stronger model with the Bradley-Terry probability of STRENGTH."""
    bid = battle_id(challenge, a, b)
    judges = [m for m in roster if m not in (a, b)]
    pair = arena_pb2.ResponsePair(battle_id=bid, challenge_id=challenge, round_id=round_id,
                                  instruction="Write add(a, b).", model_a=a, model_b=b,
                                  judges=judges)
    pair.response_a.model_id, pair.response_b.model_id = a, b
    pair.response_a.generation.completion_tokens = rng.randint(10, 50)
    pair.response_b.generation.completion_tokens = rng.randint(10, 50)
    p_a = 1.0 / (1.0 + math.exp(STRENGTH[b] - STRENGTH[a]))
    item = arena_pb2.BattleJudgments(pair=pair)
    for judge in judges:
        for order in (arena_pb2.ORDER_AB, arena_pb2.ORDER_BA):
            a_wins = rng.random() < p_a
            # The position verdict names the answer shown first (A) or second (B).
            first_is_a = order == arena_pb2.ORDER_AB
            verdict = arena_pb2.VERDICT_A if a_wins == first_is_a else arena_pb2.VERDICT_B
            item.judgments.add(judgment_id=judgment_id(bid, judge, order), battle_id=bid,
                               judge=judge, order=order, position_verdict=verdict, attempts=1,
                               spent_calls=1, spent_tokens=20)
    return item


def play(rater: Rater, round_id: str, roster: tuple[str, ...], challenges: int, seed: int,
         batch: int = 50) -> list[arena_pb2.RatedBattle]:
    """Every ordered pair of `roster` battles on each challenge; rated in batches."""
    rng = random.Random(seed)
    items = [judged(round_id, f"{round_id}-s{seed}-c{c}", a, b, roster, rng)
             for c in range(challenges) for a in roster for b in roster if a != b]
    battles = []
    for start in range(0, len(items), batch):
        # The judge stage stores the judgments; the rater gets them with the battle.
        rater.store.save_judgments(j for item in items[start:start + batch]
                                   for j in item.judgments)
        battles += rater.handle(items[start:start + batch])
    return battles


def as_rows(battles: list[arena_pb2.RatedBattle]) -> list[tuple[str, str, float]]:
    return [(b.model_a, b.model_b, b.local_score_a) for b in battles
            if b.status == arena_pb2.BATTLE_STATUS_RATED]


# -- the tally (pure) ---------------------------------------------------------------------------


def random_rows(count: int, seed: int) -> list[tuple[str, str, float]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        a, b = rng.sample(POOL, 2)
        rows.append((a, b, rng.choice([0.0, 1 / 3, 0.5, 2 / 3, 1.0])))
    return rows


def tally_of(rows: list[tuple[str, str, float]]) -> RatingTally:
    tally = RatingTally()
    for a, b, s in rows:
        tally.add(BattleEntry(a, b, True, s))
    return tally


def test_ratings_of_a_tally_equal_those_of_its_battles_one_by_one() -> None:
    rows = random_rows(3000, seed=1)
    outcomes = tally_of(rows).outcomes()
    assert len(outcomes) < 200 and outcomes.total == 3000  # aggregated, nothing lost
    assert bradley_terry(outcomes) == pytest.approx(bradley_terry(rows), abs=1e-7)
    assert win_stats(outcomes) == win_stats(rows)
    by_tally, by_battle = likelihood_intervals(outcomes), likelihood_intervals(rows)
    for model, interval in by_battle.items():
        assert by_tally[model].lower == pytest.approx(interval.lower, abs=1e-5)
        assert by_tally[model].upper == pytest.approx(interval.upper, abs=1e-5)
    # The multinomial bootstrap over cells is the battle bootstrap: same seed, same draws.
    by_cells, by_rows = bootstrap_intervals(outcomes, 30, seed=7), bootstrap_intervals(
        rows, 30, seed=7)
    assert sorted(by_cells) == sorted(by_rows)
    for model, bounds in by_rows.items():
        assert by_cells[model] == pytest.approx(bounds, abs=1e-6)


def test_counted_rows_are_validated_and_elo_refuses_them() -> None:
    with pytest.raises(ValueError, match=r"count=0\.5 is not a whole number"):
        BattleOutcomes(("a", "b"), np.array([0]), np.array([1]), np.array([1.0]),
                       np.array([0.5]))
    with pytest.raises(ValueError, match="one entry per row"):
        BattleOutcomes(("a", "b"), np.array([0]), np.array([1]), np.array([1.0]),
                       np.array([1.0, 2.0]))
    counted = BattleOutcomes(("a", "b"), np.array([0]), np.array([1]), np.array([1.0]),
                             np.array([3.0]))
    with pytest.raises(ValueError, match="aggregated rows have no order"):
        elo_ratings(counted)


def test_a_battle_counted_out_again_leaves_the_tally_as_before() -> None:
    tally = tally_of(random_rows(50, seed=2))
    before = tally.to_document()
    entry = BattleEntry("org.model:v1", "alpha", True, 0.75, judge_calls=4, judge_tokens=99,
                        judges={"beta": JudgeTally(judgments=2, pairs=1, votes=1)})
    tally.add(entry)
    assert tally.battles == 51 and tally.judges["beta"].pairs == 1
    tally.add(entry, -1)
    tally.judges.clear()  # judge tallies are counted out too; an emptied one stays listed
    assert tally.to_document() == before


def test_a_tally_survives_its_document_with_dotted_names() -> None:
    tally = tally_of([("org.model:v1", "alpha", 0.8), ("alpha", "org.model:v1", 0.5)])
    tally.add(BattleEntry("x", "y", False, 0.5, judge_calls=3, judges={"j.1": JudgeTally(1)}))
    tally.rate_elo([BattleEntry("org.model:v1", "alpha", True, 1.0)], 40.0,
                   make_rater_scale())
    tally.records, tally.rounds = 2, ["r1", "r2"]
    again = RatingTally.from_document(tally.to_document())
    assert again == tally and again.digest("h") == tally.digest("h") != tally.digest("other")


def make_rater_scale() -> Any:
    from warriorcoder.arena.rating import RatingScale

    return RatingScale()


def test_near_ties_keep_their_side() -> None:
    assert score_cell(0.5) == (500, 0)
    assert score_cell(0.5002) == (500, 1) and score_cell(0.4998) == (500, -1)
    tally = tally_of([("alpha", "beta", 0.5002), ("alpha", "beta", 0.5)])
    stats = win_stats(tally.outcomes())
    assert (stats["alpha"].wins, stats["alpha"].ties) == (1, 1)


def test_tally_elo_is_online_elo_in_arrival_order() -> None:
    rows = random_rows(200, seed=3)
    tally = RatingTally()
    tally.rate_elo([BattleEntry(a, b, True, s) for a, b, s in rows], 40.0, make_rater_scale())
    assert tally.elo == pytest.approx(elo_ratings(rows))


# -- newcomers are paired against the pool --------------------------------------------------------


def test_sampled_defenders_put_newcomers_against_the_pool() -> None:
    roster = [*POOL, "newbie"]
    for seed in range(50):
        rng = random.Random(seed)
        defenders = pair_defenders("alpha", roster, 1, rng, newcomers={"newbie"})
        assert defenders == ["newbie"]
        # A newcomer attacking is defended by the pool as usual.
        assert len(pair_defenders("newbie", roster, 2, random.Random(seed), {"newbie"})) == 2
    # Without newcomers the draw is exactly today's.
    assert pair_defenders("alpha", roster, 2, random.Random(9)) == pair_defenders(
        "alpha", roster, 2, random.Random(9), newcomers=())


# -- the rater over a store -----------------------------------------------------------------------


class CountingDb:
    """A database that counts the documents each collection returns."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.documents: dict[str, int] = {}

    def __getitem__(self, name: str) -> Any:
        collection = self.db[name]
        counts = self.documents

        def counted(docs: Any) -> Any:
            for doc in docs:
                counts[name] = counts.get(name, 0) + 1
                yield doc

        class Cursor:
            def __init__(self, cursor: Any) -> None:
                self.cursor = cursor

            def sort(self, *args: Any) -> Cursor:
                return Cursor(self.cursor.sort(*args))

            def batch_size(self, n: int) -> Cursor:
                return Cursor(self.cursor.batch_size(n))

            def limit(self, n: int) -> Cursor:
                return Cursor(self.cursor.limit(n))

            def __iter__(self) -> Any:
                return counted(self.cursor)

        class Counted:
            def find(self, *args: Any, **kwargs: Any) -> Cursor:
                return Cursor(collection.find(*args, **kwargs))

            def find_one(self, *args: Any, **kwargs: Any) -> Any:
                doc = collection.find_one(*args, **kwargs)
                if doc is not None:
                    counts[name] = counts.get(name, 0) + 1
                return doc

            def __getattr__(self, method: str) -> Any:
                return getattr(collection, method)

        return Counted()

    def take(self) -> dict[str, int]:
        taken, self.documents = dict(self.documents), {}
        return taken


def counting_store(tmp_path: Path) -> tuple[ArenaStore, CountingDb]:
    import neosqlite

    db = CountingDb(neosqlite.Connection(str(tmp_path / "arena.db")))
    store = ArenaStore(db)
    store._replace_one = neosqlite.ReplaceOne  # the wrapper hides the driver's module
    return store, db


def test_refresh_reads_one_tally_whatever_the_history(tmp_path: Path) -> None:
    store, db = counting_store(tmp_path)
    rater = Rater(make_config(), store)
    reads = []
    for wave in range(3):
        play(rater, "r1", POOL, challenges=10 * (1 + 4 * wave), seed=wave, batch=40)
        db.take()
        before = rater.tally_reads
        board = rater.leaderboard("r1")
        season = rater.season_leaderboard()
        reads.append((db.take(), rater.tally_reads - before))
        assert season is not None and season.battles == board.battles
    assert board.battles == 12 * (10 + 50 + 90)
    # Each refresh reads the two tallies and the round's info, never a battle or a judgment.
    assert reads[0] == reads[1] == reads[2]
    documents, tallies = reads[0]
    assert tallies == 2 and "battles" not in documents and "judgments" not in documents


def test_rating_a_batch_reads_only_that_batch(tmp_path: Path) -> None:
    store, db = counting_store(tmp_path)
    rater = Rater(make_config(), store)
    rng = random.Random(4)
    per_batch = []
    for wave in range(4):
        play(rater, "r1", POOL, challenges=20, seed=10 + wave)  # history grows
        items = [judged("r1", f"probe{wave}-{c}", "alpha", "beta", POOL, rng) for c in range(30)]
        db.take()
        rater.handle(items)
        per_batch.append(db.take().get("battles", 0))
    # The new battles' own ids are looked up (none stored yet); the history is never read.
    assert per_batch == [0, 0, 0, 0]


def test_the_tally_board_equals_the_board_of_all_battles(tmp_path: Path) -> None:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    config = make_config(rating={"intervals": "bootstrap", "bootstrap_rounds": 25})
    rater = Rater(config, store)
    battles = play(rater, "r1", POOL, challenges=15, seed=5)
    board = rater.leaderboard("r1")
    rows = as_rows(battles)
    expected = bradley_terry(rows)
    got = {r.model_id: r for r in board.ratings}
    for model, rating in expected.items():
        assert got[model].bradley_terry == pytest.approx(rating, abs=1e-6)
    stats = win_stats(rows)
    assert {m: (r.wins, r.losses, r.ties) for m, r in got.items()} == {
        m: (s.wins, s.losses, s.ties) for m, s in stats.items()}
    # Elo in the order the battles were rated (batches in battle-id order).
    order = []
    for start in range(0, len(battles), 50):
        order += sorted(battles[start:start + 50], key=lambda b: b.battle_id)
    assert {m: r.elo for m, r in got.items()} == pytest.approx(elo_ratings(as_rows(order)))
    assert board.battles == len(rows) and board.records == 15
    assert board.judge_calls == sum(b.judge_calls for b in battles) > 0
    assert {j.judge for j in board.judges} == set(POOL)
    # A rater started afresh over the same store (a restart) reads the same board.
    assert Rater(config, store).leaderboard("r1") == board


def test_a_battle_rated_again_is_counted_once(tmp_path: Path) -> None:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    rater = Rater(make_config(), store)
    rng = random.Random(6)
    items = [judged("r1", f"c{c}", "alpha", "beta", POOL, rng) for c in range(10)]
    rater.handle(items)
    first = rater.leaderboard("r1")
    rater.handle(items)  # redelivered
    rater.handle(items[:3])
    assert rater.leaderboard("r1") == first
    # A battle rated anew with another result moves its count; a failed one leaves the records.
    (battle,) = rater.handle(items[:1])
    failed = arena_pb2.RatedBattle()
    failed.CopyFrom(battle)
    failed.status = arena_pb2.BATTLE_STATUS_FAILED
    failed.failure_reason = "no valid verdict"
    rater.record([failed])
    after = rater.leaderboard("r1")
    assert (after.battles, after.failed_battles, after.records) == (9, 1, 9)
    rater.record([battle])
    assert rater.leaderboard("r1") == first


class Stop(Exception):
    """A rater killed mid-batch."""


def kill_rater_at(store: ArenaStore, killed_at: str, work: Callable[[], object], *,
                  spare_first_writes: bool = False) -> None:
    """Run `work` (a rater's batch on `store`) and let the rater die (raise Stop) where
    `killed_at` says: storing the "round tally", the "season tally", or "marking counted" its
    battles. With `spare_first_writes`, a tally's first write (no version yet) goes through.
    The store's own methods are back afterwards."""
    real_put, real_mark = store.put_rating_tally, store.mark_tallied

    def put(scope: str, doc: Any, version: int | None) -> bool:
        if (version is not None or not spare_first_writes) and killed_at == (
                "round tally" if scope.startswith("round/") else "season tally"):
            raise Stop
        return real_put(scope, doc, version)

    def mark(ids: Any) -> None:
        raise Stop

    store.put_rating_tally = put  # type: ignore[method-assign]
    if killed_at == "marking counted":
        store.mark_tallied = mark  # type: ignore[method-assign, assignment]
    try:
        with pytest.raises(Stop):
            work()
    finally:
        store.put_rating_tally, store.mark_tallied = real_put, real_mark  # type: ignore[method-assign]


@pytest.mark.parametrize("killed_at", ["round tally", "season tally", "marking counted"])
def test_a_rater_killed_mid_batch_counts_the_redelivered_batch_once(
        tmp_path: Path, killed_at: str) -> None:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    rng = random.Random(17)
    first = [judged("r1", f"c{c}", "alpha", "beta", POOL, rng) for c in range(6)]
    batch = [judged("r1", f"d{c}", "gamma", "delta", POOL, rng) for c in range(6)]
    Rater(make_config(), store).handle(first)
    expected = Rater(make_config(), ArenaStore.open_embedded(tmp_path / "clean.db"))
    expected.handle(first)
    expected.handle(batch)

    killed = Rater(make_config(), store)
    kill_rater_at(store, killed_at, lambda: killed.handle(batch))
    # The batch is stored; redelivered to a restarted rater, it is counted exactly once.
    assert store.count("battles") == 12
    restarted = Rater(make_config(), store)
    restarted.handle(batch)
    restarted.handle(batch)
    for name in ("leaderboard", "season_leaderboard"):
        got, want = getattr(restarted, name)(*(["r1"] if name == "leaderboard" else [])), \
            getattr(expected, name)(*(["r1"] if name == "leaderboard" else []))
        assert (got.battles, got.records) == (want.battles, want.records) == (12, 12)
        assert [(r.model_id, r.wins, r.losses) for r in got.ratings] == [
            (r.model_id, r.wins, r.losses) for r in want.ratings]
        assert [r.bradley_terry for r in got.ratings] == pytest.approx(
            [r.bradley_terry for r in want.ratings])
    assert store.untallied_among(store.battle_ids("r1")) == set()


@pytest.mark.parametrize("killed_at", ["round tally", "season tally", "marking counted"])
def test_a_batch_redelivered_after_many_others_is_counted_once(
        tmp_path: Path, killed_at: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exactly once does not depend on how many battles other raters counted into the same
    tallies before the killed rater's batch came again (the remembered ids are pruned, here
    from 8 on, keeping only those still marked not counted)."""
    import warriorcoder.stages.rater as rater_module

    monkeypatch.setattr(rater_module, "PRUNE_AT", 8)
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    rng = random.Random(31)
    batch = [judged("r1", f"d{c}", "gamma", "delta", POOL, rng) for c in range(6)]
    others = [[judged("r1", f"o{n}-{c}", "alpha", "beta", POOL, rng) for c in range(6)]
              for n in range(4)]
    expected = Rater(make_config(), ArenaStore.open_embedded(tmp_path / "clean.db"))
    for items in (batch, *others):
        expected.handle(items)

    kill_rater_at(store, killed_at, lambda: Rater(make_config(), store).handle(batch),
                  spare_first_writes=True)
    other = Rater(make_config(), store)  # another replica counts 24 battles meanwhile
    for items in others:
        other.handle(items)
    restarted = Rater(make_config(), store)
    restarted.handle(batch)
    restarted.handle(batch)
    for got, want in ((restarted.leaderboard("r1"), expected.leaderboard("r1")),
                      (restarted.season_leaderboard(), expected.season_leaderboard())):
        assert got is not None and want is not None
        assert (got.battles, got.records) == (want.battles, want.records) == (30, 30)
        assert [(r.model_id, r.wins, r.losses) for r in got.ratings] == [
            (r.model_id, r.wins, r.losses) for r in want.ratings]
    assert store.untallied_among(store.battle_ids("r1")) == set()
    # What a tally remembers stays bounded by what is still in flight, not by the history.
    for scope in (round_scope("r1"), season_scope("default")):
        doc = store.rating_tally(scope)
        assert doc is not None and len(doc["recent"]) <= 8 + 12


@pytest.mark.parametrize("killed_at", ["round tally", "season tally", "marking counted"])
@pytest.mark.parametrize("now_rated", [True, False])
def test_a_battle_rated_anew_by_a_killed_rater_moves_once(
        tmp_path: Path, killed_at: str, now_rated: bool) -> None:
    """A stored battle rated again with another result (failed -> rated, or rated -> failed,
    which loses its challenge's record) by a rater killed mid-batch: the redelivered batch
    moves it once in both tallies, however often it comes."""
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    rng = random.Random(29)
    items = [judged("r1", f"c{c}", "alpha", "beta", POOL, rng) for c in range(4)]
    rated = Rater(make_config(), store).handle(items)
    failed = arena_pb2.RatedBattle()
    failed.CopyFrom(rated[0])
    failed.status = arena_pb2.BATTLE_STATUS_FAILED
    failed.failure_reason = "no valid verdict"
    before, after = (failed, rated[0]) if now_rated else (rated[0], failed)
    Rater(make_config(), store).record([before])
    expected = Rater(make_config(), ArenaStore.open_embedded(tmp_path / "clean.db"))
    expected.handle(items)
    expected.record([after])
    want_round, want_season = expected.leaderboard("r1"), expected.season_leaderboard()
    assert want_season is not None
    assert (want_round.battles, want_round.records) == ((4, 4) if now_rated else (3, 3))

    kill_rater_at(store, killed_at, lambda: Rater(make_config(), store).record([after]))
    restarted = Rater(make_config(), store)
    restarted.record([after])  # redelivered
    restarted.record([after])
    for got, want in ((restarted.leaderboard("r1"), want_round),
                      (restarted.season_leaderboard(), want_season)):
        assert got is not None
        assert (got.battles, got.failed_battles, got.records) == (
            want.battles, want.failed_battles, want.records)
        assert [(r.model_id, r.wins, r.losses) for r in got.ratings] == [
            (r.model_id, r.wins, r.losses) for r in want.ratings]
    assert store.untallied_among(store.battle_ids("r1")) == set()
    assert store.pending_moves(store.battle_ids("r1")) == {}
    # Moved back by a later rating: counted out and in once more.
    restarted.record([before])
    board = restarted.season_leaderboard()
    assert board is not None and board.battles == (3 if now_rated else 4)


def test_a_store_rated_before_tallies_is_counted_from_its_battles(tmp_path: Path) -> None:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    rater = Rater(make_config(), store)
    battles = play(rater, "r1", POOL, challenges=5, seed=7)
    board = rater.leaderboard("r1")
    store.db["tallies"].delete_many({})  # as a store written before tallies existed
    store.db["rounds"].update_many({}, {"$unset": {"arena": "", "arena_order": ""}})
    fresh = Rater(make_config(), store)
    rebuilt = fresh.leaderboard("r1")
    assert rebuilt.battles == len(battles) and rebuilt.records == board.records
    assert [r.model_id for r in rebuilt.ratings] == [r.model_id for r in board.ratings]
    assert [r.bradley_terry for r in rebuilt.ratings] == pytest.approx(
        [r.bradley_terry for r in board.ratings])
    assert [j.pairs for j in rebuilt.judges] == [j.pairs for j in board.judges]
    # Rounds that name no arena belong to the default arena's season.
    season = fresh.season_leaderboard()
    assert season is not None and list(season.rounds) == ["r1"]
    assert season.battles == len(battles)


def test_records_of_a_round_stored_before_marks_are_counted_once(tmp_path: Path) -> None:
    from warriorcoder.stages.rater import rate_judged_battle

    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    config = make_config()
    rng = random.Random(16)
    old = [judged("r1", f"c{c}", a, b, POOL, rng)
           for c in range(4) for a, b in (("alpha", "beta"), ("gamma", "delta"))]
    # Battles as a rater stored them before tallies and record marks existed: battles alone.
    store.save_battles(rate_judged_battle(config, item.pair, item.judgments, None, None)
                       for item in old)
    rater = Rater(config, store)
    # New battles on two old challenges and on two new ones.
    rater.handle([judged("r1", c, "alpha", "gamma", POOL, rng) for c in ("c0", "c1", "n0", "n1")])
    board = rater.leaderboard("r1")
    assert board.records == 6 and board.battles == len(old) + 4
    assert store.count("rated_challenges") == 6


# -- seasons ------------------------------------------------------------------------------------


def test_a_newcomer_joins_the_season_and_is_placed_with_an_interval(tmp_path: Path) -> None:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    round_1 = Rater(make_config("r1", arena="league"), store)
    play(round_1, "r1", POOL, challenges=8, seed=8)
    first_board = round_1.leaderboard("r1")
    first_season = round_1.season_leaderboard()
    assert first_season is not None
    stored_r1 = store.count("battles", {"round_id": "r1"})

    roster_2 = (*POOL, "newbie")
    config_2 = make_config("r2", roster=roster_2, arena="league",
                           challenger={"defenders": 1})
    assert season_newcomers(store, config_2, "r2") == ["newbie"]
    round_2 = Rater(config_2, store)
    rng = random.Random(9)
    # Round 2: the newcomer battles the pool (the pool's earlier battles are not re-fought).
    items = [judged("r2", f"r2-c{c}", a, b, roster_2, rng)
             for c in range(6) for m in POOL for a, b in ((m, "newbie"), ("newbie", m))]
    round_2.handle(items)
    assert store.count("battles", {"round_id": "r1"}) == stored_r1
    assert round_1.leaderboard("r1") == first_board  # a round's board is its own

    season = round_2.season_leaderboard()
    assert season is not None and season.season and season.arena == "league"
    assert list(season.rounds) == ["r1", "r2"] and season.round_id == ""
    assert season.battles == first_season.battles + len(items)
    rows = {r.model_id: r for r in season.ratings}
    newbie = rows["newbie"]
    assert newbie.battles == len(items) and rows["alpha"].battles > newbie.battles
    assert not (newbie.lower_unbounded or newbie.upper_unbounded)
    assert newbie.bradley_terry_lower < newbie.bradley_terry < newbie.bradley_terry_upper
    # Elo carries over: the pool keeps its round-1 Elo, the newcomer started at 1000.
    round_2_board = round_2.leaderboard("r2")
    assert {r.model_id for r in round_2_board.ratings} == set(roster_2)
    assert rows["alpha"].elo != {r.model_id: r for r in round_2_board.ratings}["alpha"].elo
    # Once rated, nobody is new any more.
    assert season_newcomers(store, make_config("r3", roster=roster_2, arena="league"),
                            "r3") == []
    # Another arena in the same store is another season.
    assert round_2.season_leaderboard("other") is None
    assert store.rating_tally(season_scope("league")) is not None
    assert store.rating_tally(round_scope("r2")) is not None


def test_leaderboard_cli_prints_a_season_and_a_round(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = make_config("r1", arena="league")
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    store = ArenaStore.open_embedded(run_dir / "arena.db")
    play(Rater(config, store), "r1", POOL, challenges=3, seed=11)
    play(Rater(make_config("r2", arena="league"), store), "r2", POOL, challenges=2, seed=12)
    assert cli_main(["leaderboard", "--run-dir", str(run_dir), "--season"]) == 0
    out = capsys.readouterr().out
    assert "## Leaderboard: season of arena league (2 rounds: r1, r2)" in out
    assert "60 rated battles" in out
    assert cli_main(["leaderboard", "--run-dir", str(run_dir), "--round-id", "r2"]) == 0
    assert "## Leaderboard: r2\n" in capsys.readouterr().out
    assert cli_main(["leaderboard", "--run-dir", str(run_dir), "--season",
                     "--arena", "nope"]) == 1
    assert "arena 'nope' has no battles" in capsys.readouterr().err
    assert cli_main(["leaderboard", "--run-dir", str(run_dir), "--arena", "x"]) == 2


def test_get_leaderboard_serves_rounds_and_seasons(tmp_path: Path) -> None:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    rater = Rater(make_config("r1", arena="league"), store)
    play(rater, "r1", POOL, challenges=3, seed=13)

    async def main() -> None:
        server, _, port = await build_server(
            "127.0.0.1", 0,
            [(services_grpc.add_RaterServicer_to_server, RaterServicer(store, rater))],
            ["warriorcoder.v1.Rater"])
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = services_grpc.RaterStub(channel)
                Request = services_pb2.GetLeaderboardRequest
                season = await stub.GetLeaderboard(Request(season=True))
                board = await stub.GetLeaderboard(Request(round_id="r1"))
                assert season.season and season.arena == "league" and not board.season
                assert season.battles == board.battles == 36
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.GetLeaderboard(Request(season=True, arena="nope"))
                assert err.value.code() == grpc.StatusCode.NOT_FOUND
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.GetLeaderboard(Request(arena="league"))
                assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        finally:
            await server.stop(None)

    asyncio.run(asyncio.wait_for(main(), 60))


@pytest.mark.integration
def test_two_raters_on_mongodb_count_each_battle_once(mongo_uri: str) -> None:
    """Two rater replicas on one MongoDB, the same battles delivered to both (a rebalance):
    the server decides which write inserted each battle, the tallies are swapped in by version,
    and each battle counts once."""
    name = f"season_{random.randrange(1 << 30)}"
    pymongo.MongoClient(mongo_uri).drop_database(name)
    config = make_config("r1", arena="league")
    replicas = [Rater(config, ArenaStore.connect(mongo_uri, name)) for _ in range(2)]
    rng = random.Random(14)
    items = [judged("r1", f"c{c}", a, b, POOL, rng)
             for c in range(12) for a in POOL for b in POOL if a != b]

    async def deliver(rater: Rater, order: list[int]) -> None:
        for start in range(0, len(order), 16):
            await asyncio.to_thread(rater.handle, [items[i] for i in order[start:start + 16]])

    async def main() -> None:
        forwards = list(range(len(items)))
        await asyncio.gather(deliver(replicas[0], forwards),
                             deliver(replicas[1], forwards[::-1]))

    asyncio.run(main())
    store = ArenaStore.connect(mongo_uri, name)
    board = Rater(config, store).leaderboard("r1")
    season = Rater(config, store).season_leaderboard()
    assert board.battles + board.failed_battles == len(items) == store.count("battles")
    assert season is not None and season.battles == board.battles
    assert board.records == 12
    assert sum(r.battles for r in board.ratings) == 2 * board.battles


# -- metrics and the dashboard ------------------------------------------------------------------

DASHBOARD = (Path(__file__).resolve().parent.parent / "helm" / "warriorcoder" / "files"
             / "dashboards" / "warriorcoder-arena.json")


def season_board(tmp_path: Path) -> arena_pb2.Leaderboard:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    rater = Rater(make_config("r1", arena="league"), store)
    play(rater, "r1", POOL, challenges=3, seed=15)
    # An unbeaten newcomer: its upper side is open.
    rater.record([arena_pb2.RatedBattle(
        battle_id=f"champ{i}", challenge_id=f"k{i}", round_id="r1", model_a="champ",
        model_b="alpha", status=arena_pb2.BATTLE_STATUS_RATED, local_score_a=1.0)
        for i in range(3)])
    season = rater.season_leaderboard()
    assert season is not None
    return season


def test_season_metrics_leave_an_open_side_out(tmp_path: Path) -> None:
    from warriorcoder.service.metrics import ServiceMetrics

    board = season_board(tmp_path)
    metrics = ServiceMetrics("rater")
    metrics.record_season_leaderboard(board)
    text = metrics.exposition().decode()
    assert 'warriorcoder_season_rating{arena="league",method="bradley_terry_lower",model="champ"'\
        in text.replace('service="rater",', "")
    assert 'method="bradley_terry_upper",model="champ"' not in text
    assert 'method="bradley_terry_upper",model="alpha"' in text
    assert 'warriorcoder_season_battles{arena="league",model="champ",service="rater"} 3.0' in text


@pytest.mark.integration
def test_the_dashboards_season_panels_show_every_model(tmp_path: Path) -> None:
    """Prometheus scrapes a rater's season metrics; every query of the dashboard's season
    panels, as Grafana sends it, returns every model."""
    import json
    import shutil
    import subprocess
    import time
    import urllib.parse
    import urllib.request

    from conftest import free_ports, wait_for_port

    from warriorcoder.service.metrics import ServiceMetrics

    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.skip("prometheus is not installed (make tools)")
    board = season_board(tmp_path)
    metrics = ServiceMetrics("rater")
    metrics.record_season_leaderboard(board)
    metrics_port = metrics.start_http(0, "127.0.0.1")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": [
        {"job_name": "rater", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}]}))
    (port,) = free_ports(1)
    proc = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'db'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def query(expr: str) -> list[dict[str, Any]]:
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        body = json.loads(urllib.request.urlopen(url, timeout=10).read())
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    panels = [p for p in json.loads(DASHBOARD.read_text())["panels"]
              if p["title"].startswith("Season") and p["type"] != "row"]
    assert len(panels) == 3
    models = {r.model_id for r in board.ratings}
    try:
        wait_for_port(port)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if query('warriorcoder_season_battles{model="champ"}'):
                    break
            except OSError:  # not ready yet
                pass
            time.sleep(0.3)
        for panel in panels:
            for target in panel["targets"]:
                expr = target["expr"].replace("$namespace", ".*").replace("$arena", "league")
                found = {r["metric"]["model"] for r in query(expr)}
                # The open upper side of the unbeaten newcomer has no series.
                expected = models - {"champ"} if "bradley_terry_upper" in expr else models
                assert found == expected, (panel["title"], expr, found)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
