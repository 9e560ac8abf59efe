"""The challenger's outbox on a real (embedded) store: challenges stored marked unpublished,
cleared chunk by chunk once the publisher returns, published again by a drain or by a
resubmission after a failed publish. The broker itself is in tests/test_challenger_outbox.py."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from warriorcoder.backends import load_backend
from warriorcoder.config import parse_config
from warriorcoder.service.kafka.producer import DeliveryError
from warriorcoder.service.outbox import ChallengeOutbox
from warriorcoder.service.servicers.challenger import ChallengerServicer
from warriorcoder.stages.challenger import Challenger, challenge_id_for
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2, services_pb2

TEXTS = [
    "Write a Python function that rotates a list to the right by k positions.",
    "Implement a Python generator that yields the prime numbers below n.",
    "Write a Python function that returns the median of two sorted lists.",
]


class Broker:
    """Records what it was given; fails the calls numbered in `failing` (0-based)."""

    def __init__(self, failing: Sequence[int] = ()) -> None:
        self.calls = 0
        self.failing = set(failing)
        self.published: list[str] = []

    def __call__(self, challenges: Sequence[arena_pb2.Challenge]) -> None:
        call, self.calls = self.calls, self.calls + 1
        if call in self.failing:
            raise DeliveryError(f"call {call}: records not acknowledged")
        self.published += [c.challenge_id for c in challenges]


def challenges(round_id: str = "r1") -> list[arena_pb2.Challenge]:
    return [arena_pb2.Challenge(challenge_id=challenge_id_for(round_id, t), round_id=round_id,
                                instruction=t, attacker="a", defenders=["b"]) for t in TEXTS]


def test_marks_clear_per_acknowledged_chunk_and_a_drain_publishes_the_rest(
    tmp_path: Path,
) -> None:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    stored = challenges()
    store.save_challenges_unpublished(stored)
    ids = sorted(c.challenge_id for c in stored)
    assert [c.challenge_id for c in store.unpublished_challenges()] == ids
    # The second chunk is not acknowledged: the first chunk's marks clear, the rest stay.
    broker = Broker(failing=[1])
    outbox = ChallengeOutbox(store, broker, chunk=2)
    with pytest.raises(DeliveryError):
        asyncio.run(outbox.publish(stored))
    assert broker.published == [c.challenge_id for c in stored[:2]]
    assert [c.challenge_id for c in store.unpublished_challenges()] == [stored[2].challenge_id]
    # A drain publishes what is left; a second one finds nothing.
    assert asyncio.run(outbox.drain()) == 1
    assert broker.published[-1] == stored[2].challenge_id
    assert store.unpublished_challenges() == []
    assert asyncio.run(outbox.drain()) == 0
    # The challenges themselves are intact.
    assert store.challenges("r1") == sorted(stored, key=lambda c: c.challenge_id)


def test_a_resubmission_republishes_what_the_broker_never_acknowledged(tmp_path: Path) -> None:
    config = parse_config({
        "round_id": "r1",
        "roster": [{"id": n, "backend": "fake", "model": "fake:tie"} for n in ("a", "b", "c")],
        "challenger": {"per_setting": 0},
    })
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    broker = Broker(failing=[0])
    stage = Challenger(config, {e.id: load_backend(e) for e in config.roster}, store,
                       outbox=True)
    servicer = ChallengerServicer(config, stage, store, broker)
    request = services_pb2.SubmitInstructionsRequest(instructions=TEXTS[:2])

    async def scenario() -> None:
        # The broker fails: stored, marked, and the client sees the error.
        with pytest.raises(DeliveryError):
            await servicer.SubmitInstructions(request, None)  # type: ignore[arg-type]
        assert len(store.unpublished_challenges()) == 2
        # The client retries: already accepted, and published this time.
        reply = await servicer.SubmitInstructions(request, None)  # type: ignore[arg-type]
        assert (reply.accepted, reply.already_accepted, reply.rejected) == (0, 2, 0)
        assert sorted(broker.published) == sorted(
            challenge_id_for("r1", t) for t in TEXTS[:2])
        assert store.unpublished_challenges() == []
        # Once acknowledged, a resubmission publishes nothing more.
        reply = await servicer.SubmitInstructions(request, None)  # type: ignore[arg-type]
        assert (reply.accepted, reply.already_accepted) == (0, 2)
        assert len(broker.published) == 2

    asyncio.run(scenario())
