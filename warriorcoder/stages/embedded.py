"""The embedded arena: all five stages in one process, over an in-memory bus and an on-disk
store. Rerun with the same run folder and it resumes: everything finished is read back from the
store, only missing work is done."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import yaml
from google.protobuf.message import Message

from warriorcoder.arena.tournament import Match, opening_battles, pending_battles
from warriorcoder.backends import load_backend
from warriorcoder.backends.base import ModelBackend
from warriorcoder.config import ArenaConfig, ConfigError
from warriorcoder.console.progress import ProgressFactory, no_progress
from warriorcoder.stages.bus import InMemoryBus, Topic
from warriorcoder.stages.challenger import Challenger
from warriorcoder.stages.exporter import Export, Exporter
from warriorcoder.stages.judge import ORDERS, Judge
from warriorcoder.stages.rater import Rater
from warriorcoder.stages.responder import Responder
from warriorcoder.stages.scheduling import (
    PipelineStage,
    StageHandler,
    StagePipeline,
    batches_to_fill,
)
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

log = logging.getLogger(__name__)

# Challenges per responder batch and battles per judge batch (a challenge's opening battles
# always share one judge batch): each batch costs one store read and one write. How many
# batches run at once follows the experts' max_concurrency (`stage_plan`).
CHALLENGE_BATCH = 8
PAIR_BATCH = 8

# Called with a batch's inputs and outputs when it is done (progress bars).
BatchCallback = Callable[[list[Message], Sequence[Message]], object]


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

    async def respond(batch: list[Message]) -> list[Message]:
        return list(await responder.handle(cast(list[arena_pb2.Challenge], batch)))

    async def judge_pairs(batch: list[Message]) -> list[Message]:
        return list(await judge.handle(cast(list[arena_pb2.ResponsePair], batch)))

    # Answering and judging overlap: a challenge's battles go to the judges as soon as its
    # answers exist, and several batches of each stage share the experts' slots.
    opening = sum(len(opening_battles(config.selection.tournament, c.attacker, c.defenders))
                  for c in pending)
    with progress("respond", len(pending)) as answered, progress("judge", opening) as judged:
        await StagePipeline(bus, stage_plan(
            config,
            respond,
            judge_pairs,
            on_answered=lambda batch, _: answered.update(len(batch)),
            on_judged=lambda batch, _: judged.update(len(batch)),
        )).run()

    # Rated once every battle is judged, in one batch: online Elo goes in battle-id order
    # within a batch, so the ratings do not depend on how answering and judging interleaved
    # (a resumed run rates like an uninterrupted one).
    items = cast(list[arena_pb2.BattleJudgments], bus.poll(Topic.JUDGMENTS, 1 << 30))
    for battle in rater.handle(items):
        if battle.status == arena_pb2.BATTLE_STATUS_FAILED:
            log.warning("battle %s failed: %s", battle.battle_id, battle.failure_reason)
    # A run stopped while the rater stored its batch resumes with those battles RATED, so they
    # are never rated again: count the ones the tallies still lack.
    rater.count_untallied(config.round_id)

    board = rater.leaderboard(config.round_id)
    export = Exporter(config, store).export(board, run_dir / "export")
    return ArenaRun(run_dir, board, export, len(challenges))


def stage_plan(
    config: ArenaConfig,
    respond: StageHandler,
    judge: StageHandler,
    *,
    on_answered: BatchCallback | None = None,
    on_judged: BatchCallback | None = None,
) -> list[PipelineStage]:
    """The embedded run's model stages: responder -> judge, each with as many batches in
    flight as keep every expert's `max_concurrency` slots busy (`batches_to_fill`); the judge's
    outputs stay on the judgments topic for the rater."""
    slots = sum(e.max_concurrency for e in config.roster)
    models = len(config.roster)
    defenders = models - 1 if config.challenger.defenders == "all" else config.challenger.defenders
    judges = max(1, models - 2)
    return [
        PipelineStage("responder", Topic.CHALLENGES, Topic.RESPONSES, respond, CHALLENGE_BATCH,
                      batches_to_fill(slots, CHALLENGE_BATCH * (1 + defenders)),
                      on_batch=on_answered),
        PipelineStage("judge", Topic.RESPONSES, Topic.JUDGMENTS, judge, PAIR_BATCH,
                      batches_to_fill(slots, PAIR_BATCH * judges * len(ORDERS)),
                      group=_challenge_of, on_batch=on_judged),
    ]


def _challenge_of(message: Message) -> str:
    return cast(arena_pb2.ResponsePair, message).challenge_id


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
