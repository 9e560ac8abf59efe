"""ChallengerServicer: StartRound, SubmitInstructions, GetRoundStatus."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from warriorcoder.arena.challenge_tests import check_user_tests
from warriorcoder.arena.ids import battle_id
from warriorcoder.arena.tournament import TournamentMode, unsettled_challenges
from warriorcoder.config import ArenaConfig
from warriorcoder.service.grpc_server import InvalidArgument, NotFound, NotReady
from warriorcoder.service.outbox import ChallengeOutbox, Publish
from warriorcoder.service.servicers.checks import Context
from warriorcoder.stages.challenger import Challenger, RoundStart
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2, services_pb2
from warriorcoder.v1 import services_pb2_grpc as services_grpc

log = logging.getLogger(__name__)

# Challenge counts by status come from the stored enum names (see storage.store.to_document).
_RATED = arena_pb2.BattleStatus.Name(arena_pb2.BATTLE_STATUS_RATED)
_FAILED = arena_pb2.BattleStatus.Name(arena_pb2.BATTLE_STATUS_FAILED)
# Ids per `$in` query when counting a round's responses and judgments.
_IN_CHUNK = 1000
# What the round's completeness rule reads of a challenge and of a battle.
_CHALLENGE_FIELDS = ("challenge_id", "attacker", "defenders")
_BATTLE_FIELDS = ("challenge_id", "model_a", "model_b", "status", "local_score_a")


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


class ChallengerServicer(services_grpc.ChallengerServicer):
    """StartRound mines, filters and publishes a round; SubmitInstructions adds user challenges.

    Challenges go out through an outbox (`publish`, or one made around a plain publish
    function), which clears the not-yet-published mark a challenger with `outbox=True` stores
    them with, and publishes in the background whatever a crash or an outage left
    unacknowledged (`start_outbox`).
    """

    def __init__(
        self, config: ArenaConfig, challenger: Challenger, store: ArenaStore,
        publish: ChallengeOutbox | Publish,
    ) -> None:
        self.config = config
        self.challenger = challenger
        self.store = store
        self.outbox = (publish if isinstance(publish, ChallengeOutbox)
                       else ChallengeOutbox(store, publish))
        self._draining: asyncio.Task[None] | None = None
        # One preparation at a time; it runs as its own task so that a client that gives up
        # (deadline, disconnect) does not cancel mining half-way.
        self._preparing: asyncio.Task[int] | None = None
        self._preparing_request: RoundStart | None = None

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
        wanted = RoundStart(
            request.challenges_per_attacker,
            tuple(_checked_instructions(
                request.seed_instructions, "seed_instructions", self.config.challenger.max_chars
            )),
        )
        wanted.round_config(self.config)  # ConfigError (INVALID_ARGUMENT) before anything starts
        if self._preparing is None or self._preparing.done():
            self._preparing = asyncio.create_task(self._prepare(wanted))
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

    def start_outbox(self) -> None:
        """Publish stored challenges the broker has not acknowledged (left by a crash or an
        outage), now and periodically, in a background task (needs a running event loop)."""
        if self._draining is None:
            self._draining = asyncio.get_running_loop().create_task(self.outbox.run())

    async def aclose(self) -> None:
        """Cancel a preparation in progress and the outbox task (on shutdown); mined work is
        stored and a later StartRound resumes it; unpublished challenges stay marked."""
        for task in (self._preparing, self._draining):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _prepare(self, wanted: RoundStart) -> int:
        challenges = await self.challenger.start_round(wanted)
        await self.outbox.publish(challenges)  # waits for the broker's acks
        log.info("round %s: %d challenges published", self.config.round_id, len(challenges))
        return len(challenges)

    async def SubmitInstructions(
        self, request: services_pb2.SubmitInstructionsRequest, context: Context
    ) -> services_pb2.SubmitInstructionsResponse:
        """Store and publish user instructions as challenges of the round.

        Already accepted (counted, not rejected): instructions whose challenge the round holds
        (exact after whitespace normalization); any of those the broker has not acknowledged
        yet is published again, so a retry after a lost reply or a crash loses nothing.
        Rejected (counted, not an error): duplicates of an earlier instruction of the request,
        near-duplicates of a challenge of any round of the arena (when dedup is on) and
        instructions that overlap a benchmark. `tests`, when given, holds one entry per
        instruction: its plain-Python asserts, or "" for none.
        """
        self._own_round(request.round_id)
        if not request.instructions:
            raise InvalidArgument("instructions is empty: give at least one instruction")
        texts = _checked_instructions(
            request.instructions, "instructions", self.config.challenger.max_chars
        )
        tests = _checked_tests(request.tests, len(texts))
        submission = await self.challenger.submit(texts, tests)
        unacknowledged = await self.store.call(
            self.store.unpublished_among, [c.challenge_id for c in submission.already_accepted])
        if unacknowledged:
            log.info("%d resubmitted challenges were never acknowledged: publishing them again",
                     len(unacknowledged))
        pending = [*submission.accepted, *unacknowledged]
        if pending:
            await self.outbox.publish(pending)
        return services_pb2.SubmitInstructionsResponse(
            accepted=len(submission.accepted), rejected=submission.rejected,
            already_accepted=len(submission.already_accepted),
        )

    async def GetRoundStatus(
        self, request: services_pb2.GetRoundStatusRequest, context: Context
    ) -> services_pb2.RoundStatus:
        """Counts of the round's challenges, responses, judgments and battles in the store, and
        whether the round is complete (see `round_status`)."""
        round_id = request.round_id or self.config.round_id
        status = await self.store.call(
            round_status, self.store, round_id, self.config.selection.tournament)
        if status is None:
            raise NotFound(f"round {round_id!r} is unknown: no challenges and no round record")
        return status


def round_status(
    store: ArenaStore, round_id: str, tournament: TournamentMode = "contenders",
    chunk: int = _IN_CHUNK,
) -> services_pb2.RoundStatus | None:
    """Counts of the round's challenges, responses, judgments and battles in the store; None
    when the round is unknown (no challenges and no round record). Blocking: several reads.

    A round is complete when its challenges are final (mining and test writing finished) and
    every battle their tournaments schedule is rated or failed (`unsettled_challenges`). The
    challenges are read `chunk` at a time, with only the fields that rule reads, and the
    battles of each chunk with them: memory holds one chunk, never the round (anyone may poll
    this until the round completes).
    """
    info = store.round_info(round_id)
    challenges = responses = judgments = pending = 0
    for page in store.stream_fields("challenges", {"round_id": round_id}, _CHALLENGE_FIELDS,
                                    chunk, arena_pb2.Challenge):
        ids = [c.challenge_id for c in page]
        battles = [b for part in store.stream_fields(
            "battles", {"round_id": round_id, "challenge_id": {"$in": ids}}, _BATTLE_FIELDS,
            chunk, arena_pb2.RatedBattle) for b in part]
        challenges += len(page)
        pending += len(unsettled_challenges(tournament, page, battles))
        responses += store.count("responses", {"challenge_id": {"$in": ids}})
        judgments += store.count("judgments", {"battle_id": {"$in": [
            battle_id(c.challenge_id, c.attacker, d) for c in page for d in c.defenders]}})
    if not challenges and info is None:
        return None
    ready = bool((info or {}).get("challenges_ready"))
    return services_pb2.RoundStatus(
        round_id=round_id,
        challenges=challenges,
        responses=responses,
        judgments=judgments,
        rated_battles=store.count("battles", {"round_id": round_id, "status": _RATED}),
        failed_battles=store.count("battles", {"round_id": round_id, "status": _FAILED}),
        challenges_ready=ready,
        pending_challenges=pending,
        complete=ready and not pending,
    )


def _log_task_failure(task: asyncio.Task[int]) -> None:
    # Callers may all have gone (cancelled); the failure must still reach the log.
    if not task.cancelled() and task.exception() is not None:
        log.error("round preparation failed", exc_info=task.exception())
