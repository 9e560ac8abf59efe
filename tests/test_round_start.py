"""Round start rules live in the Challenger stage (the embedded run and the challenger service
share them), and the exporter reads the rater's leaderboard instead of writing its own."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from test_grpc_servicers import SEED, make_config

from warriorcoder.arena.tally import RatingTally
from warriorcoder.backends import load_backend
from warriorcoder.config import ConfigError
from warriorcoder.stages.challenger import Challenger, RoundStart
from warriorcoder.stages.embedded import run_arena
from warriorcoder.stages.exporter import Exporter
from warriorcoder.stages.rater import Rater, round_scope
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2


def ids(challenges: list[arena_pb2.Challenge]) -> list[str]:
    return sorted(c.challenge_id for c in challenges)


def same(a: arena_pb2.Leaderboard | None, b: arena_pb2.Leaderboard | None) -> bool:
    """Equal boards (byte for byte: a NaN rate is never == itself)."""
    assert a is not None and b is not None
    return a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)


def grid(settings: int) -> dict[str, Any]:
    return {"per_setting": 2,
            "sampling_grid": [{"temperature": 0.7 + i / 10} for i in range(settings)]}


def test_challenges_per_attacker_round_up_to_whole_grid_settings() -> None:
    config = make_config(challenger=grid(3))
    assert RoundStart(7).round_config(config).challenger.per_setting == 3  # ceil(7 / 3)
    assert RoundStart(6).round_config(config).challenger.per_setting == 2
    assert RoundStart(1).round_config(config).challenger.per_setting == 1
    assert RoundStart().round_config(config) is config  # nothing asked: the config as it is


def test_seed_instructions_join_the_configured_user_instructions() -> None:
    config = make_config(challenger={**grid(1), "user_instructions": ["Sort a list of ints."]})
    seeded = RoundStart(seed_instructions=(SEED,)).round_config(config)
    assert seeded.challenger.user_instructions == ["Sort a list of ints.", SEED]
    assert seeded.challenger.per_setting == 2


@pytest.mark.parametrize(("start", "words"), [
    (RoundStart(-1), "challenges_per_attacker must be >= 0"),
    (RoundStart(10_000_000), "challenger.per_setting"),
])
def test_a_start_the_config_cannot_take_is_a_config_error(start: RoundStart, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        start.round_config(make_config())


def test_seeds_for_a_sealed_round_are_submitted_not_dropped(tmp_path: Path) -> None:
    config = make_config()
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    stage = Challenger(config, {e.id: load_backend(e) for e in config.roster}, store)

    async def scenario() -> None:
        first = await stage.start_round()
        assert first and store.round_info("t1")["challenges_ready"]
        again = await stage.start_round(RoundStart(seed_instructions=(SEED,)))
        assert ids(again[: len(first)]) == ids(first)
        (seeded,) = again[len(first):]
        assert seeded.instruction == SEED and seeded.source == "user"
        assert store.challenge(seeded.challenge_id) == seeded
        assert store.round_info("t1")["started_with"]["seed_instructions"] == [SEED]
        # Submitted again: a duplicate, nothing new.
        assert await stage.submit_instructions([SEED]) == []

    asyncio.run(scenario())


def test_exporter_reads_the_raters_leaderboard_while_no_battle_changed(tmp_path: Path) -> None:
    config = make_config()
    asyncio.run(run_arena(config, tmp_path / "run"))
    store = ArenaStore.open_embedded(tmp_path / "run" / "arena.db")
    rater = Rater(config, store)
    stored = store.leaderboard("t1")
    battles = store.battles("t1")
    tally = store.rating_tally(round_scope("t1"))
    assert stored is not None and tally is not None
    assert stored.battles_digest == RatingTally.from_document(tally).digest(config.config_hash())
    # The stored board, read back, is what the rater computes from the same battles.
    assert same(rater.current_leaderboard("t1"), stored)
    assert same(rater.leaderboard("t1"), stored)

    # A battle changes: the exporter computes a fresh board and leaves the stored one alone.
    changed = battles[0]
    changed.local_score_a = 0.25 if changed.local_score_a != 0.25 else 0.75
    rater.record([changed])
    fresh = rater.current_leaderboard("t1")
    assert fresh is not None and fresh.battles_digest != stored.battles_digest
    assert same(store.leaderboard("t1"), stored)
    assert same(rater.leaderboard("t1"), fresh)  # the rater's next refresh stores it
    assert same(rater.current_leaderboard("t1"), fresh)

    assert rater.current_leaderboard("no such round") is None
    sft, _ = Exporter(config, store).records(fresh)
    assert len(sft) == len({b.challenge_id for b in store.battles("t1")
                            if b.status == arena_pb2.BATTLE_STATUS_RATED})


class CountingDb:
    """A database that counts the reads of each collection."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.reads: dict[str, int] = {}

    def __getitem__(self, name: str) -> Any:
        collection = self.db[name]
        counts = self.reads

        class Counted:
            def __getattr__(self, method: str) -> Any:
                if method in ("find", "find_one"):
                    counts[name] = counts.get(name, 0) + 1
                return getattr(collection, method)

        return Counted()


def test_export_reads_challenges_and_answers_once_per_round(tmp_path: Path) -> None:
    config = make_config()
    result = asyncio.run(run_arena(config, tmp_path / "run"))
    assert result.export.sft_records > 2  # several records: one read each would show
    store = ArenaStore.open_embedded(tmp_path / "run" / "arena.db")
    counting = CountingDb(store.db)
    store.db = counting
    sft, preference = Exporter(config, store).records(result.leaderboard)
    assert (len(sft), len(preference)) == (result.export.sft_records,
                                           result.export.preference_records)
    # One read each, whatever the round's size; `rounds` is the round's record (its config hash
    # for the manifest).
    assert counting.reads == {"battles": 1, "challenges": 1, "responses": 1, "rounds": 1}
