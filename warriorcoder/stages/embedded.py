"""The embedded arena: all five stages in one process, over an in-memory bus and an on-disk
store. Rerun with the same run folder and it resumes: everything finished is read back from the
store, only missing work is done."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml

from warriorcoder.arena.tournament import Match, pending_battles
from warriorcoder.backends import load_backend
from warriorcoder.backends.base import ModelBackend
from warriorcoder.config import ArenaConfig, ConfigError
from warriorcoder.console.progress import ProgressFactory, no_progress
from warriorcoder.stages.bus import InMemoryBus, Topic
from warriorcoder.stages.challenger import Challenger
from warriorcoder.stages.exporter import Export, Exporter
from warriorcoder.stages.judge import Judge
from warriorcoder.stages.rater import Rater
from warriorcoder.stages.responder import Responder
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

log = logging.getLogger(__name__)

# Challenges per responder call: big enough to fill a batch on every expert.
CHALLENGE_BATCH = 8
PAIR_BATCH = 8

@dataclass(frozen=True)
class ArenaRun:
    """What an embedded round produced: its folder, leaderboard, export and challenge count."""

    run_dir: Path
    leaderboard: arena_pb2.Leaderboard
    export: Export
    challenges: int


def open_run(config: ArenaConfig, run_dir: Path) -> ArenaStore:
    """The run folder's store; refuses a folder that holds a run of a different config."""
    run_dir.mkdir(parents=True, exist_ok=True)
    store = ArenaStore.open_embedded(run_dir / "arena.db")
    info = store.round_info(config.round_id) or {}
    stored_hash = info.get("config_hash")
    if stored_hash and stored_hash != config.config_hash():
        raise ConfigError(
            f"run folder {run_dir} holds round {config.round_id!r} made with a different config "
            f"(hash {stored_hash}, now {config.config_hash()}); use a new --run-dir or a new "
            "round_id"
        )
    store.save_round_info(config.round_id, config_hash=config.config_hash())
    (run_dir / "config.yaml").write_text(
        yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    return store


async def run_arena(
    config: ArenaConfig,
    run_dir: Path,
    *,
    progress: ProgressFactory = no_progress,
    backends: Mapping[str, ModelBackend] | None = None,
) -> ArenaRun:
    """Run (or resume) one round end to end and write the dataset under run_dir/export."""
    store = open_run(config, run_dir)
    owned = backends is None
    if backends is None:
        backends = {e.id: load_backend(e) for e in config.roster}
    try:
        return await _run_stages(config, run_dir, store, backends, progress)
    finally:
        if owned:
            for b in backends.values():
                await b.aclose()


async def _run_stages(
    config: ArenaConfig,
    run_dir: Path,
    store: ArenaStore,
    backends: Mapping[str, ModelBackend],
    progress: ProgressFactory,
) -> ArenaRun:
    bus = InMemoryBus()
    challenger = Challenger(config, backends, store)
    responder = Responder(config, backends, store)
    judge = Judge(config, backends, store)
    rater = Rater(config, store)

    with progress("mine challenges", 0) as bar:
        challenges = await challenger.start_round(progress=bar)
    pending = unfinished_challenges(config, challenges, store.battles(config.round_id))
    log.info("%d challenges, %d with battles still to fight", len(challenges), len(pending))
    for c in pending:
        bus.publish(Topic.CHALLENGES, c)

    with progress("respond", len(pending)) as bar:
        while bus.pending(Topic.CHALLENGES):
            batch = bus.poll(Topic.CHALLENGES, CHALLENGE_BATCH)
            for pair in await responder.handle(cast(list[arena_pb2.Challenge], batch)):
                bus.publish(Topic.RESPONSES, pair)
            bar.update(len(batch))

    with progress("judge", bus.pending(Topic.RESPONSES)) as bar:
        while bus.pending(Topic.RESPONSES):
            pairs = cast(list[arena_pb2.ResponsePair], bus.poll(Topic.RESPONSES, PAIR_BATCH))
            for item in await judge.handle(pairs):
                bus.publish(Topic.JUDGMENTS, item)
            bar.update(len(pairs))

    items = cast(list[arena_pb2.BattleJudgments], bus.poll(Topic.JUDGMENTS, 1 << 30))
    for battle in rater.handle(items):
        if battle.status == arena_pb2.BATTLE_STATUS_FAILED:
            log.warning("battle %s failed: %s", battle.battle_id, battle.failure_reason)

    board = rater.leaderboard(config.round_id)
    export = Exporter(config, store).export(board, run_dir / "export")
    return ArenaRun(run_dir, board, export, len(challenges))


def unfinished_challenges(
    config: ArenaConfig,
    challenges: Sequence[arena_pb2.Challenge],
    battles: Sequence[arena_pb2.RatedBattle],
) -> list[arena_pb2.Challenge]:
    """Challenges whose tournament still has a battle to fight or one that is not RATED.

    A failed battle is fought again on resume (its judges' model servers may be back).
    """
    rated: dict[str, dict[Match, float | None]] = {}
    for b in battles:
        if b.status == arena_pb2.BATTLE_STATUS_RATED:
            rated.setdefault(b.challenge_id, {})[(b.model_a, b.model_b)] = b.local_score_a
    mode = config.selection.tournament
    return [
        c for c in challenges
        if pending_battles(mode, c.attacker, c.defenders, rated.get(c.challenge_id, {}))
    ]


def run_arena_sync(config: ArenaConfig, run_dir: Path, **kwargs: Any) -> ArenaRun:
    return asyncio.run(run_arena(config, run_dir, **kwargs))
