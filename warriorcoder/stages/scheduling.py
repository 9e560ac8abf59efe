"""Batches in flight: the one scheduler of the stages' batches, for the embedded run and for the
services' stage loop.

A stage handles its input in batches (one store read and one write per batch). Handling one
batch at a time leaves the model servers idle while a batch waits for its slowest request, and
handling the stages one after the other leaves the judges idle while answers are written. So
both modes keep several batches in flight: their model requests queue on each expert's
`max_concurrency` slots, and a slot freed by one batch is taken by the next.

`BatchWindow` holds the batches in flight in the order they started; the services' stage loop
(service/kafka/stage_loop.py) releases them in that order, so offsets are committed in poll
order. `StagePipeline` runs in-process stages over the in-memory bus (the embedded run): every
stage has its own window, a stage's outputs go to the next stage's topic as soon as its batch
is done, and a stage stops taking input while the next stage has a full window's worth of input
waiting (bounded queues between stages).
"""

from __future__ import annotations

import asyncio
import inspect
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from google.protobuf.message import Message

from warriorcoder.stages.bus import InMemoryBus, Topic

__all__ = ["BatchWindow", "PipelineStage", "StagePipeline", "batches_to_fill"]

K = TypeVar("K")
R = TypeVar("R")

# A window never needs more batches than this: past it, batches only hold memory.
MAX_BATCHES_IN_FLIGHT = 64


def batches_to_fill(slots: int, requests_per_batch: float) -> int:
    """Batches in flight that keep `slots` model slots busy with as many requests again waiting
    (a request that finishes is replaced at once, even while a batch is being stored).

    At least 2 (one batch handled while the next one's requests run), at most
    MAX_BATCHES_IN_FLIGHT.
    """
    if slots < 1:
        raise ValueError(f"batches_to_fill: slots must be >= 1, got {slots}")
    wanted = math.ceil(2 * slots / max(requests_per_batch, 1.0))
    return max(2, min(MAX_BATCHES_IN_FLIGHT, wanted))


class BatchWindow(Generic[K, R]):
    """Up to `limit` batches in flight, each a task with its batch (`K`), in start order.

    A batch counts against the limit until it is released (`pop_head`, `pop_done`), not merely
    until its task ends: the stage loop keeps a finished batch in the window until every batch
    before it is committed, which is its backpressure.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"BatchWindow: limit must be >= 1, got {limit}")
        self.limit = limit
        self._batches: deque[tuple[K, asyncio.Task[R]]] = deque()

    def __len__(self) -> int:
        return len(self._batches)

    @property
    def full(self) -> bool:
        """True when no batch may start before one is released."""
        return len(self._batches) >= self.limit

    @property
    def batches(self) -> list[K]:
        """The batches in the window, in start order."""
        return [batch for batch, _ in self._batches]

    @property
    def tasks(self) -> list[asyncio.Task[R]]:
        """The tasks of the batches in the window, in start order."""
        return [task for _, task in self._batches]

    def start(self, batch: K, work: Awaitable[R]) -> asyncio.Task[R]:
        """Run `work` (the handling of `batch`) as a task in the window; the caller checks
        `full` first (starting past the limit is a bug, not backpressure)."""
        if self.full:
            if inspect.iscoroutine(work):
                work.close()  # never run: no "never awaited" warning
            raise RuntimeError(f"BatchWindow: {self.limit} batches already in flight")
        task = asyncio.ensure_future(work)
        self._batches.append((batch, task))
        return task

    def head(self) -> tuple[K, asyncio.Task[R]] | None:
        """The oldest batch in the window, or None when it is empty."""
        return self._batches[0] if self._batches else None

    def pop_head(self) -> tuple[K, asyncio.Task[R]]:
        """Release the oldest batch."""
        return self._batches.popleft()

    def pop_done(self) -> list[tuple[K, asyncio.Task[R]]]:
        """Release every batch whose task has ended, in start order (batches still running keep
        their place)."""
        done = [item for item in self._batches if item[1].done()]
        if done:
            self._batches = deque(item for item in self._batches if not item[1].done())
        return done

    async def wait_head(self) -> None:
        """Wait until the oldest batch's task has ended (at once when the window is empty)."""
        if self._batches:
            await asyncio.wait([self._batches[0][1]])

    async def cancel(self) -> None:
        """Cancel every batch still in the window, wait for them to end, and empty it."""
        tasks = self.tasks
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._batches.clear()


# The stage's work on one batch: the events it produces.
StageHandler = Callable[[list[Message]], Awaitable[Sequence[Message]]]


@dataclass(frozen=True)
class PipelineStage:
    """One in-process stage: reads `consumes`, writes its outputs to `produces` (None: the
    outputs are dropped), `batch_size` events per batch, up to `max_in_flight` batches at once.

    `group` keeps events of the same key in one batch (a batch may then exceed `batch_size`
    by the rest of its last group); events of a group must be published together, one after
    the other. `on_batch(inputs, outputs)` is called when a batch is done (progress, logs).
    """

    name: str
    consumes: Topic
    produces: Topic | None
    handler: StageHandler
    batch_size: int
    max_in_flight: int
    group: Callable[[Message], str] | None = None
    on_batch: Callable[[list[Message], Sequence[Message]], object] | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_in_flight < 1:
            raise ValueError(f"stage {self.name}: batch_size and max_in_flight must be >= 1")


class StagePipeline:
    """Runs in-process stages (listed in flow order, upstream first) over an `InMemoryBus`
    until every topic they read is empty and no batch is in flight.

    Each stage keeps up to its `max_in_flight` batches running. A stage whose next stage (the
    one consuming its `produces`) already has a full window's worth of events waiting
    (`batch_size * max_in_flight`) starts no batch: the queues between stages are bounded, so
    work moves downstream as fast as it is made instead of piling up. A handler that raises
    ends the run: the other batches are cancelled and the error propagates (what is stored
    stays stored; a rerun resumes from it).
    """

    def __init__(self, bus: InMemoryBus, stages: Sequence[PipelineStage]) -> None:
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"StagePipeline: stage names must differ: {names}")
        consumed = [s.consumes for s in stages]
        if len(set(consumed)) != len(consumed):
            raise ValueError("StagePipeline: two stages read the same topic")
        self.bus = bus
        self.stages = list(stages)
        self._windows: dict[str, BatchWindow[list[Message], Sequence[Message]]] = {
            s.name: BatchWindow(s.max_in_flight) for s in stages
        }
        self._by_topic = {s.consumes: s for s in stages}

    async def run(self) -> None:
        """Handle everything on the stages' topics, including what they publish to each
        other; returns when all is done."""
        try:
            while True:
                self._start_batches()
                running = [t for w in self._windows.values() for t in w.tasks]
                if not running:
                    return
                await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for stage in self.stages:
                    for batch, task in self._windows[stage.name].pop_done():
                        outputs = task.result()  # a handler's error ends the run
                        if stage.produces is not None:
                            for message in outputs:
                                self.bus.publish(stage.produces, message)
                        if stage.on_batch is not None:
                            stage.on_batch(batch, outputs)
        finally:
            for window in self._windows.values():
                await window.cancel()

    def _start_batches(self) -> None:
        # Downstream stages first: finishing work in flight comes before starting new work.
        for stage in reversed(self.stages):
            window = self._windows[stage.name]
            while not window.full and self.bus.pending(stage.consumes) and self._room(stage):
                batch = self.bus.poll(stage.consumes, stage.batch_size, group=stage.group)
                window.start(batch, stage.handler(batch))

    def _room(self, stage: PipelineStage) -> bool:
        """Whether the stage reading `stage`'s output has room for more input waiting."""
        nxt = self._by_topic.get(stage.produces) if stage.produces is not None else None
        if nxt is None:
            return True
        return self.bus.pending(nxt.consumes) < nxt.batch_size * nxt.max_in_flight
