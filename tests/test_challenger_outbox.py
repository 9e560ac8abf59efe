"""No loss path between the store and the topics: the challenger killed (SIGKILL) inside
SubmitInstructions and StartRound, at every step between claiming challenges in the dedup index
and marking them published, and every challenge still gets its battles.

Real processes, the real broker (Tansu) and the MongoDB wire server (nx-27017). The challenger
kills itself at a named point (the service setting `fault_crash_at`), so each step is hit
exactly; a restarted challenger publishes what the broker never acknowledged, and a client's
retry is told its instructions are already accepted. Every wait is a deadline for a broken run.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from distributed_harness import Arena, arena_config, running_arena, wait_for
from fake_openai_server import FakeOpenAIServer

from warriorcoder.arena.ids import battle_id
from warriorcoder.stages.challenger import challenge_id_for
from warriorcoder.v1 import services_pb2, services_pb2_grpc

CRASH = "WARRIORCODER_FAULT_CRASH_AT"
BATCHES = {
    "claimed": ["Write a Python function that rotates a matrix by ninety degrees in place.",
                "Implement run-length encoding and decoding of a string in Python."],
    "stored": [("Write a Python function that returns the longest common prefix of a list "
                "of strings."),
               "Implement a Python class for a min-heap with push, pop and heapify."],
    "published": ["Write a Python function that converts a Roman numeral to an integer.",
                  "Implement a trie in Python with insert, search and starts_with."],
}
# One round per crash point of StartRound (texts of different rounds must differ: a round's
# near-duplicates of an earlier round's challenges are dropped).
ROUNDS = {
    "claimed": ["Write a Python function that reverses the words of a sentence.",
                "Write a Python function that flattens an arbitrarily nested list."],
    "stored": ["Implement a queue in Python using two stacks.",
               "Write a Python function that checks whether two strings are anagrams."],
}


@pytest.fixture
def models() -> Iterator[FakeOpenAIServer]:
    """Every expert behind one fake server: "A]]" completes a pre-filled verdict (so every
    vote is a tie) and is too short to keep as a mined challenge."""
    with FakeOpenAIServer() as server:
        server.set_behaviour("normal", completion_text="A]]")
        yield server


def config(model_url: str, round_id: str, instructions: Sequence[str]) -> dict[str, Any]:
    return arena_config(model_url, round_id, instructions=instructions, per_setting=0)


def expected_battles(arena: Arena, texts: Sequence[str]) -> set[str]:
    """Three experts, all tied: the attacker meets both defenders and the defenders meet."""
    db = arena.database()
    ids = [challenge_id_for(arena.round_id, t) for t in texts]
    challenges = list(db["challenges"].find({"_id": {"$in": ids}}))
    assert sorted(c["_id"] for c in challenges) == sorted(ids)
    return {battle_id(c["_id"], a, b) for c in challenges
            for a, b in itertools.combinations([c["attacker"], *c["defenders"]], 2)}


def assert_every_battle(arena: Arena, texts: Sequence[str]) -> None:
    expected = expected_battles(arena, texts)
    assert len(expected) == 3 * len(texts)
    db = arena.database()
    wait_for(lambda: db["battles"].count_documents({"_id": {"$in": sorted(expected)}})
             == len(expected), "every battle of every challenge", timeout_s=120)
    # Nothing stays marked as unpublished.
    wait_for(lambda: db["challenges"].count_documents({"outbox": "pending"}) == 0,
             "the outbox to empty", timeout_s=60)


def crash_challenger_at(arena: Arena, point: str, call: Any, texts: Sequence[str]) -> None:
    """Make `call` to a challenger that kills itself at `point` (restarted so, unless it runs
    so already), check what the store holds of the challenges of `texts`, then start the
    challenger again without the fault."""
    if arena.env.get(CRASH) != point:
        arena.kill("challenger")
        arena.env[CRASH] = point
        arena.start("challenger")
    proc = arena.procs["challenger"]
    with pytest.raises(grpc.RpcError) as err:
        call()
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value
    assert proc.wait(timeout=30) == -9, "the challenger did not die at the crash point"
    arena.procs.pop("challenger")
    # Not stored yet; stored, none acknowledged; acknowledged, none marked so.
    assert (stored(arena, texts), pending(arena, texts)) == (
        (0, 0) if point == "claimed" else (len(texts), len(texts)))
    del arena.env[CRASH]
    arena.start("challenger")


def submit(arena: Arena, texts: Sequence[str]) -> services_pb2.SubmitInstructionsResponse:
    channel, stub = arena.stub("challenger", services_pb2_grpc.ChallengerStub)
    with channel:
        reply: services_pb2.SubmitInstructionsResponse = stub.SubmitInstructions(
            services_pb2.SubmitInstructionsRequest(instructions=list(texts)), timeout=60)
    return reply


def start_round(arena: Arena) -> int:
    channel, stub = arena.stub("challenger", services_pb2_grpc.ChallengerStub)
    with channel:
        return int(stub.StartRound(services_pb2.StartRoundRequest(), timeout=60).challenges)


def pending(arena: Arena, texts: Sequence[str]) -> int:
    """How many of the challenges of `texts` the store holds marked as unpublished."""
    ids = [challenge_id_for(arena.round_id, t) for t in texts]
    return arena.database()["challenges"].count_documents(
        {"_id": {"$in": ids}, "outbox": "pending"})


def stored(arena: Arena, texts: Sequence[str]) -> int:
    ids = [challenge_id_for(arena.round_id, t) for t in texts]
    return arena.database()["challenges"].count_documents({"_id": {"$in": ids}})


def next_round(arena: Arena, model_url: str, round_id: str, instructions: Sequence[str]) -> None:
    """Point the challenger's config at a new round (the other stages serve every round); the
    challenger reads it when it next starts."""
    arena.config_path.write_text(yaml.safe_dump(config(model_url, round_id, instructions)))


def test_challenger_killed_inside_submit_instructions_and_start_round_loses_nothing(
    models: FakeOpenAIServer, tmp_path: Path, kafka_bootstrap: str, mongo_uri: str,
    unique_kafka_prefix: str,
) -> None:
    """One arena (the services take a while to start; the challenger starts with its first
    fault): SubmitInstructions at each crash point, then a round per crash point of StartRound
    (after the broker acknowledged them is the same for both)."""
    with running_arena(tmp_path, config(models.base_url, "outbox-submit", []),
                       kafka_bootstrap=kafka_bootstrap, mongo_uri=mongo_uri,
                       prefix=unique_kafka_prefix, extra_env={CRASH: "claimed"}) as arena:
        # Killed after claiming the texts in the dedup index, before storing them: the
        # client's retry is accepted (the index knows the texts as these very challenges).
        texts = BATCHES["claimed"]
        crash_challenger_at(arena, "claimed", lambda: submit(arena, texts), texts)
        reply = submit(arena, texts)
        assert (reply.accepted, reply.already_accepted, reply.rejected) == (2, 0, 0)

        # Killed after storing, before publishing, and the client never retries: the restarted
        # challenger publishes them by itself.
        texts = BATCHES["stored"]
        crash_challenger_at(arena, "stored", lambda: submit(arena, texts), texts)

        # Killed after the broker acknowledged them, before marking them published: the retry
        # is told they are already accepted (and they are published again, harmlessly).
        texts = BATCHES["published"]
        crash_challenger_at(arena, "published", lambda: submit(arena, texts), texts)
        reply = submit(arena, texts)
        assert (reply.accepted, reply.already_accepted, reply.rejected) == (0, 2, 0)

        everything = [t for batch in BATCHES.values() for t in batch]
        assert_every_battle(arena, everything)
        # Resubmitting everything now: all already accepted, nothing rejected.
        reply = submit(arena, everything)
        assert (reply.accepted, reply.already_accepted, reply.rejected) == (0, 6, 0)

        for point, texts in ROUNDS.items():
            next_round(arena, models.base_url, f"outbox-start-{point}", texts)
            crash_challenger_at(arena, point, lambda: start_round(arena), texts)
            if point == "claimed":
                # Nothing stored: the client starts the round again, and the index, which
                # holds the round's own texts, keeps every one of them.
                assert start_round(arena) == len(texts)
            # Otherwise stored (and perhaps published): nobody calls StartRound again; the
            # restarted challenger publishes what the broker had not acknowledged.
            assert_every_battle(arena, texts)
