"""The gRPC APIs of the five services, each a thin layer over its stage and the store.

Servicers check their requests, call the stage, and raise `InvalidArgument` / `NotFound` /
`NotReady` for the error interceptor of `grpc_server` to turn into statuses. None of them knows
Kafka: the challenger gets a `publish` callable (the Kafka producer in a service, a list's append
in tests).

An empty `round_id` in any request means the round of the arena config the service runs with.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import grpc

from warriorcoder.arena.challenge_tests import check_user_tests
from warriorcoder.arena.ids import battle_id
from warriorcoder.config import ArenaConfig, parse_config
from warriorcoder.service.grpc_server import InvalidArgument, NotFound, NotReady
from warriorcoder.stages.challenger import Challenger
from warriorcoder.stages.exporter import Exporter
from warriorcoder.stages.judge import Judge
from warriorcoder.stages.rater import Rater
from warriorcoder.stages.responder import Responder
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2, services_pb2
from warriorcoder.v1 import services_pb2_grpc as services_grpc

log = logging.getLogger(__name__)

Context: TypeAlias = grpc.aio.ServicerContext
# Publishes a batch of challenges and returns once they are durably sent.
Publish = Callable[[Sequence[arena_pb2.Challenge]], None]

EXPORT_KINDS = ("sft", "preference")
# Challenge counts by status come from the stored enum names (see storage.store.to_document).
_RATED = arena_pb2.BattleStatus.Name(arena_pb2.BATTLE_STATUS_RATED)
_FAILED = arena_pb2.BattleStatus.Name(arena_pb2.BATTLE_STATUS_FAILED)
# Ids per `$in` query when counting a round's responses and judgments.
_IN_CHUNK = 1000


def _checked_instructions(texts: Sequence[str], field: str, max_chars: int) -> list[str]:
    """Stripped instructions; InvalidArgument naming the first bad one."""
    out = []
    for i, text in enumerate(texts):
        if not text.strip():
            raise InvalidArgument(f"{field}[{i}] is blank")
        if "\x00" in text:
            raise InvalidArgument(f"{field}[{i}] contains a NUL character")
        if len(text.strip()) > max_chars:
            raise InvalidArgument(
                f"{field}[{i}] has {len(text.strip())} characters; at most {max_chars} "
                "(challenger.max_chars) are allowed"
            )
        out.append(text.strip())
    return out


def _checked_tests(tests: Sequence[str], instructions: int) -> list[str] | None:
    """Tests of submitted instructions (None when none are given); InvalidArgument naming the
    first bad entry."""
    if not tests:
        return None
    if len(tests) != instructions:
        raise InvalidArgument(
            f"tests has {len(tests)} entries for {instructions} instructions: give none, or one "
            "per instruction (\"\" for an instruction without tests)"
        )
    for i, text in enumerate(tests):
        problem = check_user_tests(text) if text.strip() else None
        if problem is not None:
            raise InvalidArgument(f"tests[{i}]: {problem}")
    return [text if text.strip() else "" for text in tests]


def _check_roster_member(config: ArenaConfig, field: str, model_id: str) -> None:
    roster = [e.id for e in config.roster]
    if not model_id:
        raise InvalidArgument(f"{field} is required")
    if model_id not in roster:
        raise InvalidArgument(f"{field} {model_id!r} is not an expert of the roster {roster}")


# -- challenger ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _RoundStart:
    """What a StartRound asked for; a second identical call joins the one in progress."""

    challenges_per_attacker: int
    seed_instructions: tuple[str, ...]


class ChallengerServicer(services_grpc.ChallengerServicer):
    """StartRound mines, filters and publishes a round; SubmitInstructions adds user challenges."""

    def __init__(
        self, config: ArenaConfig, challenger: Challenger, store: ArenaStore, publish: Publish
    ) -> None:
        self.config = config
        self.challenger = challenger
        self.store = store
        self.publish = publish
        # One preparation at a time; it runs as its own task so that a client that gives up
        # (deadline, disconnect) does not cancel mining half-way.
        self._preparing: asyncio.Task[int] | None = None
        self._preparing_request: _RoundStart | None = None

    def _own_round(self, round_id: str) -> str:
        if round_id and round_id != self.config.round_id:
            raise InvalidArgument(
                f"round_id {round_id!r}: this challenger runs round {self.config.round_id!r} "
                "(set round_id in the arena config to start another round)"
            )
        return self.config.round_id

    async def StartRound(
        self, request: services_pb2.StartRoundRequest, context: Context
    ) -> services_pb2.StartRoundResponse:
        """Mine, filter and pair the round's challenges, publish them, return how many.

        `challenges_per_attacker` sets per_setting to ceil(n / size of the sampling grid).
        Idempotent: a round already prepared is read back from the store and published again
        (downstream stages reuse their stored work); its mining settings no longer change, and
        seed instructions given for it are submitted like SubmitInstructions. A call identical
        to the one in progress waits for it; a different one gets UNAVAILABLE.
        """
        round_id = self._own_round(request.round_id)
        if request.challenges_per_attacker < 0:
            raise InvalidArgument(
                f"challenges_per_attacker must be >= 0 (0 keeps the configured number), "
                f"got {request.challenges_per_attacker}"
            )
        wanted = _RoundStart(
            request.challenges_per_attacker,
            tuple(_checked_instructions(
                request.seed_instructions, "seed_instructions", self.config.challenger.max_chars
            )),
        )
        if self._preparing is None or self._preparing.done():
            config = self._round_config(wanted)  # ConfigError -> INVALID_ARGUMENT
            self._preparing = asyncio.create_task(self._prepare(config, wanted))
            self._preparing.add_done_callback(_log_task_failure)
            self._preparing_request = wanted
        elif wanted != self._preparing_request:
            raise NotReady(
                f"round {round_id!r} is being started with other settings; "
                "try again when that has finished"
            )
        task = self._preparing
        try:
            published = await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and current is not None and not current.cancelling():
                # The preparation was cancelled (aclose on shutdown), not this call.
                raise NotReady(
                    f"preparing round {round_id!r} was interrupted (service shutting down); "
                    "start it again: mined work is kept"
                ) from None
            raise
        return services_pb2.StartRoundResponse(round_id=round_id, challenges=published)

    async def aclose(self) -> None:
        """Cancel a preparation in progress (on shutdown); mined work is stored, a later
        StartRound resumes it."""
        task = self._preparing
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def _round_config(self, wanted: _RoundStart) -> ArenaConfig:
        """The arena config with this request's overrides, validated like the YAML file."""
        ch = self.config.challenger
        update: dict[str, Any] = {}
        if wanted.challenges_per_attacker:
            # Mining draws per_setting instructions for every setting of the sampling grid.
            grid = len(ch.sampling_grid)
            update["per_setting"] = -(-wanted.challenges_per_attacker // grid)
        if wanted.seed_instructions:
            update["user_instructions"] = [*ch.user_instructions, *wanted.seed_instructions]
        if not update:
            return self.config
        data = self.config.model_dump(mode="json")
        data["challenger"].update(update)
        return parse_config(data, "(StartRound request)")

    async def _prepare(self, config: ArenaConfig, wanted: _RoundStart) -> int:
        round_id = config.round_id
        sealed = bool((self.store.round_info(round_id) or {}).get("challenges_ready"))
        self.store.save_round_info(
            round_id,
            started_with={
                "challenges_per_attacker": wanted.challenges_per_attacker,
                "seed_instructions": list(wanted.seed_instructions),
            },
        )
        stage = Challenger(config, self.challenger.backends, self.store)
        challenges = await stage.prepare_round()
        self.publish(challenges)
        published = len(challenges)
        if sealed and wanted.seed_instructions:
            # prepare_round returns a sealed round as stored and would drop new seeds.
            published += len(self._submit(round_id, list(wanted.seed_instructions)))
        log.info("round %s: %d challenges published", round_id, published)
        return published

    async def SubmitInstructions(
        self, request: services_pb2.SubmitInstructionsRequest, context: Context
    ) -> services_pb2.SubmitInstructionsResponse:
        """Store and publish user instructions as challenges of the round.

        Rejected (counted, not an error): duplicates of the round's stored challenges or of an
        earlier instruction of the request (exact after whitespace normalization, or near
        duplicates when dedup is on) and instructions that overlap a benchmark. `tests`, when
        given, holds one entry per instruction: its plain-Python asserts, or "" for none.
        """
        round_id = self._own_round(request.round_id)
        if not request.instructions:
            raise InvalidArgument("instructions is empty: give at least one instruction")
        texts = _checked_instructions(
            request.instructions, "instructions", self.config.challenger.max_chars
        )
        tests = _checked_tests(request.tests, len(texts))
        accepted = self._submit(round_id, texts, tests)
        return services_pb2.SubmitInstructionsResponse(
            accepted=len(accepted), rejected=len(texts) - len(accepted)
        )

    def _submit(
        self, round_id: str, texts: list[str], tests: list[str] | None = None
    ) -> list[arena_pb2.Challenge]:
        """Filter, pair, store and publish user instructions; returns the accepted challenges."""
        accepted = self.challenger.user_challenges(
            round_id, texts, self.store.challenges(round_id), tests
        )
        self.store.save_challenges(accepted)
        if accepted:
            self.publish(accepted)
        return accepted

    async def GetRoundStatus(
        self, request: services_pb2.GetRoundStatusRequest, context: Context
    ) -> services_pb2.RoundStatus:
        """Counts of the round's challenges, responses, judgments and battles in the store."""
        round_id = request.round_id or self.config.round_id
        challenges = self.store.challenges(round_id)
        if not challenges and self.store.round_info(round_id) is None:
            raise NotFound(f"round {round_id!r} is unknown: no challenges and no round record")
        challenge_ids = [c.challenge_id for c in challenges]
        battle_ids = [battle_id(c.challenge_id, c.attacker, d) for c in challenges
                      for d in c.defenders]
        return services_pb2.RoundStatus(
            round_id=round_id,
            challenges=len(challenges),
            responses=self._count_in("responses", "challenge_id", challenge_ids),
            judgments=self._count_in("judgments", "battle_id", battle_ids),
            rated_battles=self.store.count("battles", {"round_id": round_id, "status": _RATED}),
            failed_battles=self.store.count("battles", {"round_id": round_id, "status": _FAILED}),
        )

    def _count_in(self, collection: str, field: str, values: Sequence[str]) -> int:
        return sum(
            self.store.count(collection, {field: {"$in": list(values[i : i + _IN_CHUNK])}})
            for i in range(0, len(values), _IN_CHUNK)
        )


def _log_task_failure(task: asyncio.Task[int]) -> None:
    # Callers may all have gone (cancelled); the failure must still reach the log.
    if not task.cancelled() and task.exception() is not None:
        log.error("round preparation failed", exc_info=task.exception())


# -- responder and judge ---------------------------------------------------------------------


class ResponderServicer(services_grpc.ResponderServicer):
    """Respond: the attacker and defenders answer one challenge (stored answers are reused)."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder

    async def Respond(
        self, request: arena_pb2.Challenge, context: Context
    ) -> services_pb2.RespondResponse:
        """One ResponsePair per defender of the challenge."""
        config = self.responder.config
        if not request.challenge_id:
            raise InvalidArgument("challenge_id is required")
        if not request.instruction.strip():
            raise InvalidArgument("instruction is required (it is empty or blank)")
        _check_roster_member(config, "attacker", request.attacker)
        if not request.defenders:
            raise InvalidArgument("defenders is empty: a challenge needs at least one defender")
        for i, defender in enumerate(request.defenders):
            _check_roster_member(config, f"defenders[{i}]", defender)
            if defender == request.attacker:
                raise InvalidArgument(f"defenders[{i}] {defender!r} is the attacker")
        if len(set(request.defenders)) != len(request.defenders):
            raise InvalidArgument(f"defenders {list(request.defenders)} has duplicates")
        pairs = await self.responder.handle([request])
        return services_pb2.RespondResponse(pairs=pairs)


class JudgeServicer(services_grpc.JudgeServicer):
    """JudgeBattle: every judge of the pair judges it in both orders."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge

    async def JudgeBattle(
        self, request: arena_pb2.ResponsePair, context: Context
    ) -> arena_pb2.BattleJudgments:
        """All judgments of the battle (stored valid judgments are reused)."""
        config = self.judge.config
        if not request.battle_id:
            raise InvalidArgument("battle_id is required")
        for side in ("response_a", "response_b"):
            if not request.HasField(side):
                raise InvalidArgument(f"{side} is required")
        _check_roster_member(config, "model_a", request.model_a)
        _check_roster_member(config, "model_b", request.model_b)
        if request.model_a == request.model_b:
            raise InvalidArgument(f"model_a and model_b are both {request.model_a!r}")
        if not request.judges:
            raise InvalidArgument("judges is empty: a battle needs at least one uninvolved judge")
        for i, judge in enumerate(request.judges):
            _check_roster_member(config, f"judges[{i}]", judge)
            if judge in (request.model_a, request.model_b):
                raise InvalidArgument(f"judges[{i}] {judge!r} competes in this battle")
        (result,) = await self.judge.judge_battles([request])
        return result


# -- rater -----------------------------------------------------------------------------------


class RaterServicer(services_grpc.RaterServicer):
    """GetBattle reads one rated battle; GetLeaderboard rates a round from the stored battles."""

    def __init__(self, store: ArenaStore, rater: Rater) -> None:
        self.store = store
        self.rater = rater

    async def GetBattle(
        self, request: services_pb2.GetBattleRequest, context: Context
    ) -> arena_pb2.RatedBattle:
        """The stored battle, rated or failed."""
        if not request.battle_id:
            raise InvalidArgument("battle_id is required")
        battle = self.store.battle(request.battle_id)
        if battle is None:
            raise NotFound(f"battle {request.battle_id!r} not found (not rated yet, or unknown)")
        return battle

    async def GetLeaderboard(
        self, request: services_pb2.GetLeaderboardRequest, context: Context
    ) -> arena_pb2.Leaderboard:
        """Elo, Bradley-Terry with bootstrap intervals and judge statistics, computed now."""
        round_id = request.round_id or self.rater.config.round_id
        return _fresh_leaderboard(self.store, self.rater, round_id)


def _fresh_leaderboard(store: ArenaStore, rater: Rater, round_id: str) -> arena_pb2.Leaderboard:
    if store.count("battles", {"round_id": round_id}) == 0:
        raise NotFound(f"round {round_id!r} has no battles (unknown round, or none rated yet)")
    return rater.leaderboard(round_id)


# -- exporter --------------------------------------------------------------------------------


def to_training_record(kind: str, record: dict[str, Any]) -> arena_pb2.TrainingRecord:
    """An exporter record (see arena.selection.training_records) as a TrainingRecord message."""
    prov = record["provenance"]
    provenance = arena_pb2.Provenance(
        round_id=prov["round_id"],
        challenge_id=prov["challenge_id"],
        battle_ids=prov["battle_ids"],
        models=prov["models"],
        judges=prov["judges"],
        config_hash=prov["config_hash"],
    )
    for vote in prov["votes"]:
        provenance.votes.add(
            judge=vote["judge"],
            verdict=arena_pb2.Verdict.Value("VERDICT_" + vote["verdict"].upper()),
        )
    for score in prov["scores"]:
        provenance.scores[score["model"]] = score["score"]
    if kind == "sft":
        return arena_pb2.TrainingRecord(
            record_id=record["id"],
            kind=kind,
            prompt=record["messages"][0]["content"],
            chosen=record["messages"][-1]["content"],
            chosen_model=record["model"],
            provenance=provenance,
        )
    if kind == "preference":
        return arena_pb2.TrainingRecord(
            record_id=record["id"],
            kind=kind,
            prompt=record["prompt"][0]["content"],
            chosen=record["chosen"][0]["content"],
            rejected=record["rejected"][0]["content"],
            chosen_model=record["chosen_model"],
            rejected_model=record["rejected_model"],
            provenance=provenance,
        )
    raise ValueError(f"kind must be one of {EXPORT_KINDS}, got {kind!r}")


def _checked_kinds(kind: str) -> tuple[str, ...]:
    if not kind:
        return EXPORT_KINDS
    if kind not in EXPORT_KINDS:
        raise InvalidArgument(f"kind must be 'sft', 'preference' or empty (both), got {kind!r}")
    return (kind,)


class ExporterServicer(services_grpc.ExporterServicer):
    """StreamRecords streams a round's training records; WriteExport writes the dataset files.

    Both rate the round from the stored battles first, so records follow the newest ratings.
    `export_root`, when given, confines WriteExport's output_dir to that folder.
    """

    def __init__(
        self,
        config: ArenaConfig,
        store: ArenaStore,
        exporter: Exporter,
        *,
        rater: Rater | None = None,
        export_root: Path | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.exporter = exporter
        self.rater = rater if rater is not None else Rater(config, store)
        self.export_root = export_root.resolve() if export_root is not None else None

    def _records(self, round_id: str) -> dict[str, Iterable[dict[str, Any]]]:
        board = _fresh_leaderboard(self.store, self.rater, round_id or self.config.round_id)
        sft, preference = self.exporter.records(board)
        return {"sft": sft, "preference": preference}

    async def StreamRecords(
        self, request: services_pb2.ExportRequest, context: Context
    ) -> AsyncIterator[arena_pb2.TrainingRecord]:
        """SFT records, then preference records (or only the requested kind)."""
        kinds = _checked_kinds(request.kind)
        records = self._records(request.round_id)
        for kind in kinds:
            for record in records[kind]:
                yield to_training_record(kind, record)

    async def WriteExport(
        self, request: services_pb2.ExportRequest, context: Context
    ) -> services_pb2.ExportSummary:
        """Write sft.jsonl, preference.jsonl and the leaderboard files into output_dir.

        Every file is written whatever `kind` says (it is checked, for the same errors as
        StreamRecords); the summary counts both kinds.
        """
        _checked_kinds(request.kind)
        if not request.output_dir.strip():
            raise InvalidArgument("output_dir is required (a folder on the exporter's machine)")
        out_dir = Path(request.output_dir).expanduser().resolve()
        if self.export_root is not None and not out_dir.is_relative_to(self.export_root):
            raise InvalidArgument(
                f"output_dir {request.output_dir!r} is outside the export root {self.export_root}"
            )
        board = _fresh_leaderboard(
            self.store, self.rater, request.round_id or self.config.round_id
        )
        try:
            export = self.exporter.export(board, out_dir)
        except (PermissionError, NotADirectoryError, FileExistsError) as error:
            message = f"output_dir {request.output_dir!r}: cannot write: {error}"
            raise InvalidArgument(message) from error
        return services_pb2.ExportSummary(
            sft_records=len(export.sft),
            preference_records=len(export.preference),
            files=[str(f) for f in export.files],
        )
