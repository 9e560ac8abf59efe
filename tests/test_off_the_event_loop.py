"""The services never touch MongoDB from their event loop: every store call of a servicer or a
stage handler runs on a worker thread (`ArenaStore.call`), so one slow round trip or one long
leaderboard never stalls the gRPC server, the model requests or the Kafka loop."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from test_grpc_servicers import SEED, Arena, make_config, run_served

from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import services_pb2


class LoopGuard:
    """A pymongo database whose every collection call notes whether it ran on a thread that
    runs an event loop."""

    def __init__(self, db: Any, on_loop: list[str]) -> None:
        self._db = db
        self._on_loop = on_loop

    def __getitem__(self, name: str) -> _GuardedCollection:
        return _GuardedCollection(self._db[name], name, self._on_loop)

    def command(self, name: str, *args: Any, **kwargs: Any) -> Any:
        _note_if_on_loop(self._on_loop, f"command {name}")
        return self._db.command(name, *args, **kwargs)


def _note_if_on_loop(on_loop: list[str], what: str) -> None:
    try:
        asyncio.get_running_loop()
        on_loop.append(what)
    except RuntimeError:
        pass  # a worker thread: what the services must use


class _GuardedCollection:
    def __init__(self, collection: Any, name: str, on_loop: list[str]) -> None:
        self._collection = collection
        self._name = name
        self._on_loop = on_loop

    def __getattr__(self, method: str) -> Callable[..., Any]:
        target = getattr(self._collection, method)

        def call(*args: Any, **kwargs: Any) -> Any:
            _note_if_on_loop(self._on_loop, f"{self._name}.{method}")
            return target(*args, **kwargs)

        return call


def guarded_store(mongo_uri: str, on_loop: list[str]) -> ArenaStore:
    store = ArenaStore.connect(mongo_uri, f"loop{uuid.uuid4().hex[:8]}")
    store.db = LoopGuard(store.db, on_loop)
    return store


def test_the_guard_sees_a_call_on_the_loop(mongo_uri: str) -> None:
    on_loop: list[str] = []
    store = guarded_store(mongo_uri, on_loop)

    async def on_the_loop() -> None:
        store.challenges("r")

    asyncio.run(on_the_loop())
    assert on_loop == ["challenges.find"]
    on_loop.clear()
    asyncio.run(store.call(store.challenges, "r"))
    assert on_loop == []


def test_every_rpc_of_a_round_keeps_the_store_off_the_loop(tmp_path: Path,
                                                            mongo_uri: str) -> None:
    on_loop: list[str] = []
    config = make_config()

    async def body(arena: Arena) -> None:
        await arena.challenger.StartRound(services_pb2.StartRoundRequest(
            challenges_per_attacker=2, seed_instructions=[SEED]))
        await arena.challenger.SubmitInstructions(services_pb2.SubmitInstructionsRequest(
            instructions=["Write a Python function that merges two sorted lists."]))
        await arena.challenger.GetRoundStatus(services_pb2.GetRoundStatusRequest())
        judged = []
        for challenge in list(arena.published):
            for pair in (await arena.responder.Respond(challenge)).pairs:
                judged.append(await arena.judge.JudgeBattle(pair))
        battles = await arena.store.call(arena.rater.handle, judged)
        await arena.rater_api.GetBattle(services_pb2.GetBattleRequest(
            battle_id=battles[0].battle_id))
        await arena.rater_api.GetLeaderboard(services_pb2.GetLeaderboardRequest())
        assert [r async for r in arena.exporter.StreamRecords(services_pb2.ExportRequest())]
        await arena.exporter.WriteExport(services_pb2.ExportRequest(
            output_dir=str(tmp_path / "export")))

    run_served(tmp_path, body, config=config, store=guarded_store(mongo_uri, on_loop))
    assert on_loop == []
