"""The batch scheduler shared by the embedded run and the stage loop (stages/scheduling.py), and
the bus poll that keeps a challenge's events in one batch."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from google.protobuf.message import Message

from warriorcoder.stages.bus import InMemoryBus, Topic
from warriorcoder.stages.scheduling import (
    MAX_BATCHES_IN_FLIGHT,
    BatchWindow,
    PipelineStage,
    StagePipeline,
    batches_to_fill,
)
from warriorcoder.v1 import arena_pb2


def challenge(i: int) -> arena_pb2.Challenge:
    return arena_pb2.Challenge(challenge_id=f"c{i}", instruction=f"task {i}")


def pair(challenge_id: str, n: int) -> arena_pb2.ResponsePair:
    return arena_pb2.ResponsePair(battle_id=f"{challenge_id}-{n}", challenge_id=challenge_id)


def by_challenge(message: Message) -> str:
    assert isinstance(message, arena_pb2.ResponsePair)
    return message.challenge_id


def test_poll_never_splits_a_group() -> None:
    bus = InMemoryBus()
    for cid, n in (("a", 3), ("b", 3), ("c", 1), ("d", 5)):
        for i in range(n):
            bus.publish(Topic.RESPONSES, pair(cid, i))
    polls = []
    while bus.pending(Topic.RESPONSES):
        batch = bus.poll(Topic.RESPONSES, 4, group=by_challenge)
        polls.append([by_challenge(m) for m in batch])
    # a's 3 fit, b's would be cut at 4 (given back whole), b+c fit, d alone exceeds 4.
    assert polls == [["a"] * 3, ["b"] * 3 + ["c"], ["d"] * 5]
    # Order within a group is kept.
    bus.publish(Topic.RESPONSES, pair("e", 0))
    bus.publish(Topic.RESPONSES, pair("e", 1))
    assert [m.battle_id for m in bus.poll(Topic.RESPONSES, 1, group=by_challenge)] == [
        "e-0", "e-1"]


def test_poll_without_group_takes_max_records() -> None:
    bus = InMemoryBus()
    for i in range(5):
        bus.publish(Topic.RESPONSES, pair("a", i))
    assert len(bus.poll(Topic.RESPONSES, 2)) == 2
    assert bus.pending(Topic.RESPONSES) == 3


def test_batches_to_fill_follows_the_slots() -> None:
    assert batches_to_fill(48, 16) == 6  # twice the slots in requests
    assert batches_to_fill(4, 64) == 2  # never fewer than two
    assert batches_to_fill(1024, 1) == MAX_BATCHES_IN_FLIGHT
    with pytest.raises(ValueError, match="slots"):
        batches_to_fill(0, 8)


def test_window_releases_in_start_order_and_holds_its_limit() -> None:
    async def scenario() -> None:
        window: BatchWindow[str, str] = BatchWindow(2)
        gates = {name: asyncio.Event() for name in "ab"}

        async def work(name: str) -> str:
            await gates[name].wait()
            return name

        window.start("a", work("a"))
        window.start("b", work("b"))
        assert window.full
        with pytest.raises(RuntimeError, match="already in flight"):
            window.start("c", work("c"))
        gates["b"].set()
        await asyncio.sleep(0)
        head = window.head()
        assert head is not None and head[0] == "a" and not head[1].done()
        assert [b for b, _ in window.pop_done()] == ["b"]  # any order when asked for it
        gates["a"].set()
        await window.wait_head()
        assert window.pop_head()[1].result() == "a"
        assert len(window) == 0

        window.start("slow", asyncio.sleep(3600))
        await window.cancel()
        assert len(window) == 0

    asyncio.run(scenario())


class Recorder:
    """Handlers of a two-stage pipeline that log when each batch starts and ends."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.running = {"up": 0, "down": 0}
        self.most = {"up": 0, "down": 0}

    async def up(self, batch: list[Message]) -> Sequence[Message]:
        await self._run("up")
        return [pair(m.challenge_id, 0) for m in batch if isinstance(m, arena_pb2.Challenge)]

    async def down(self, batch: list[Message]) -> Sequence[Message]:
        await self._run("down")
        return []

    async def _run(self, name: str) -> None:
        self.events.append(f"{name}-start")
        self.running[name] += 1
        self.most[name] = max(self.most[name], self.running[name])
        for _ in range(3):  # a few scheduling points, like model requests
            await asyncio.sleep(0)
        self.running[name] -= 1
        self.events.append(f"{name}-end")


def test_pipeline_overlaps_stages_and_bounds_the_queue_between_them() -> None:
    bus = InMemoryBus()
    for i in range(40):
        bus.publish(Topic.CHALLENGES, challenge(i))
    rec = Recorder()
    handled: list[str] = []
    waiting: list[int] = []

    def on_down(batch: list[Message], _: Sequence[Message]) -> None:
        handled.extend(by_challenge(m) for m in batch)
        waiting.append(bus.pending(Topic.RESPONSES))

    stages = [
        PipelineStage("up", Topic.CHALLENGES, Topic.RESPONSES, rec.up, 2, 3),
        PipelineStage("down", Topic.RESPONSES, None, rec.down, 2, 2, group=by_challenge,
                      on_batch=on_down),
    ]
    asyncio.run(StagePipeline(bus, stages).run())
    assert sorted(handled) == sorted(f"c{i}" for i in range(40))  # everything, once
    assert rec.most == {"up": 3, "down": 2}  # each window full at some point, never over
    # The second stage starts before the first has finished its input.
    assert rec.events.index("down-start") < len(rec.events) - 1 - rec.events[::-1].index("up-end")
    # Bounded queue: the first stage starts nothing while 2 x 2 events wait; the batches in
    # flight when it stopped (3 x 2 outputs) may still land on top.
    assert max(waiting) <= 2 * 2 + 3 * 2


def test_pipeline_error_cancels_the_other_batches_and_propagates() -> None:
    bus = InMemoryBus()
    for i in range(6):
        bus.publish(Topic.CHALLENGES, challenge(i))
    cancelled: list[str] = []

    async def handler(batch: list[Message]) -> Sequence[Message]:
        first = batch[0]
        assert isinstance(first, arena_pb2.Challenge)
        if first.challenge_id == "c0":
            await asyncio.sleep(0)
            raise RuntimeError("model server crashed")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(first.challenge_id)
            raise
        return []

    stage = PipelineStage("only", Topic.CHALLENGES, None, handler, 1, 3)
    with pytest.raises(RuntimeError, match="model server crashed"):
        asyncio.run(StagePipeline(bus, [stage]).run())
    assert cancelled == ["c1", "c2"]


def test_pipeline_refuses_two_stages_on_one_topic() -> None:
    async def nothing(batch: list[Message]) -> Sequence[Message]:
        return []

    with pytest.raises(ValueError, match="same topic"):
        StagePipeline(InMemoryBus(), [
            PipelineStage("a", Topic.CHALLENGES, None, nothing, 1, 1),
            PipelineStage("b", Topic.CHALLENGES, None, nothing, 1, 1),
        ])
