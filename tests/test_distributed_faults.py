"""Faults in the distributed arena: services killed with SIGKILL mid-round, MongoDB restarted,
model servers failing, two judge replicas; and what counts as an infrastructure (transient)
error in the Kafka stage loop.

Real processes, the real broker (Tansu) and the MongoDB wire server (nx-27017). Every wait is a
deadline for a broken run; nothing asserts on speed.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import kafka.errors as kafka_errors
import pymongo.errors as mongo_errors
import pytest
from distributed_harness import (
    INSTRUCTIONS,
    SERVICES,
    Arena,
    MongoServer,
    arena_config,
    expert,
    running_arena,
    wait_for,
)
from fake_openai_server import FakeOpenAIServer
from google.protobuf.message import Message
from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient
from kafka.partitioner.default import murmur2
from kafka.structs import TopicPartition

from warriorcoder.arena.ids import battle_id
from warriorcoder.bus import Topic
from warriorcoder.service.grpc_server import status_for
from warriorcoder.service.kafka_loop import DeliveryError, StageLoop, is_transient
from warriorcoder.service.metrics import ServiceMetrics
from warriorcoder.service.servicers import challenge_id_for
from warriorcoder.service.settings import ServiceSettings
from warriorcoder.v1 import arena_pb2, services_pb2, services_pb2_grpc

ROUND_INSTRUCTIONS = [
    *INSTRUCTIONS,
    "Write a Python function that checks whether a number is prime.",
    "Implement binary search over a sorted list of integers in Python.",
    "Parse a CSV line with quoted fields into a list of strings.",
]
# Three experts, every other expert defends: two battles per challenge, one judge each.
BATTLES = 2 * len(ROUND_INSTRUCTIONS)
RATED = arena_pb2.BattleStatus.Name(arena_pb2.BATTLE_STATUS_RATED)
# Small batches: a round is many consume -> handle -> produce -> commit cycles, so a kill
# lands between commits, and the model delay makes the round last long enough to land in it.
SMALL_BATCHES = {"WARRIORCODER_KAFKA_POLL_MAX_RECORDS": "2"}
MODEL_DELAY_S = 0.3


def round_config(model_url: str, round_id: str,
                 instructions: Sequence[str] = ROUND_INSTRUCTIONS,
                 roster: Sequence[dict[str, Any]] | None = None) -> dict[str, Any]:
    # No mining: the challenges are exactly the user's instructions.
    return arena_config(model_url, round_id, roster=roster, instructions=instructions,
                        per_setting=0)


@pytest.fixture
def models() -> Iterator[FakeOpenAIServer]:
    """The experts' model server: "A]]" completes a pre-filled verdict; every answer waits
    MODEL_DELAY_S, so that a round takes a few seconds."""
    with FakeOpenAIServer() as server:
        server.set_behaviour("normal", completion_text="A]]", delay_s=MODEL_DELAY_S)
        yield server


def start_round(arena: Arena, timeout_s: float = 60) -> int:
    channel, stub = arena.stub("challenger", services_pb2_grpc.ChallengerStub)
    with channel:
        reply = stub.StartRound(services_pb2.StartRoundRequest(), timeout=timeout_s)
    return int(reply.challenges)


def battle_ids_of_round(arena: Arena) -> set[str]:
    """The battles the round must have: every (challenge, defender) of the stored challenges,
    whose ids must be exactly the ones derived from the configured instructions."""
    round_id = arena.round_id
    challenges = list(arena.database()["challenges"].find({"round_id": round_id}))
    assert {c["_id"] for c in challenges} == {
        challenge_id_for(round_id, text) for text in ROUND_INSTRUCTIONS}
    return {battle_id(c["_id"], c["attacker"], d) for c in challenges for d in c["defenders"]}


def assert_exactly_once(arena: Arena, out_dir: Path) -> None:
    """One rated battle per (challenge, defender), no extra document anywhere, and one SFT
    record per challenge in the export."""
    arena.wait_round_done(battles=BATTLES)
    db = arena.database()
    expected = battle_ids_of_round(arena)
    assert len(expected) == BATTLES
    battles = list(db["battles"].find({"round_id": arena.round_id}))
    assert sorted(b["_id"] for b in battles) == sorted(expected)
    assert {b["status"] for b in battles} == {RATED}
    challenge_ids = sorted({b["challenge_id"] for b in battles})
    # attacker + 2 defenders answer; one judge judges each battle in both orders
    assert db["responses"].count_documents({"challenge_id": {"$in": challenge_ids}}) == \
        3 * len(challenge_ids)
    assert db["judgments"].count_documents({"battle_id": {"$in": sorted(expected)}}) == \
        2 * len(expected)

    channel, exporter = arena.stub("exporter", services_pb2_grpc.ExporterStub)
    with channel:
        summary = exporter.WriteExport(services_pb2.ExportRequest(output_dir=str(out_dir)),
                                       timeout=60)
    records = [json.loads(line) for line in (out_dir / "sft.jsonl").read_text().splitlines()]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == summary.sft_records == len(ROUND_INSTRUCTIONS)
    assert sorted(r["provenance"]["challenge_id"] for r in records) == challenge_ids


def assert_nothing_dead_lettered(arena: Arena) -> None:
    for name in arena.procs:
        total = arena.metric_total(name, "warriorcoder_messages_dead_lettered_total")
        assert total == 0, f"{name} dead-lettered {total} messages: {arena.log(name)}"


# -- SIGKILL of each service mid-round ------------------------------------------------------


def kill_challenger_while_publishing(arena: Arena, kafka_bootstrap: str) -> None:
    """SIGKILL the challenger once its first challenge is on the topic (StartRound publishes,
    then answers); restarted, it is asked again if the call did not get through."""
    outcome: dict[str, Any] = {}

    def call() -> None:
        try:
            outcome["challenges"] = start_round(arena)
        except grpc.RpcError as error:
            outcome["error"] = error.code()

    topic = arena.env["WARRIORCODER_KAFKA_TOPIC_PREFIX"] + Topic.CHALLENGES
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap,
                             auto_offset_reset="earliest")
    caller = threading.Thread(target=call)
    try:
        caller.start()
        deadline = time.monotonic() + 60
        while not consumer.poll(timeout_ms=50):
            assert time.monotonic() < deadline, "StartRound published nothing"
        arena.kill("challenger")
    finally:
        consumer.close()
        caller.join(timeout=60)
    arena.start("challenger")
    if "challenges" not in outcome:  # the client saw the crash: it starts the round again
        assert start_round(arena) == len(ROUND_INSTRUCTIONS)


def progress(arena: Arena, victim: str) -> int:
    """How far the stage of `victim` got, from the store (what the dead process left)."""
    status = arena.status()
    return {"responder": status.responses, "judge": status.judgments}.get(
        victim, status.rated_battles)


@pytest.mark.parametrize("victim", SERVICES)
def test_sigkill_mid_round_then_restart_loses_and_duplicates_nothing(
    victim: str, models: FakeOpenAIServer, tmp_path: Path, kafka_bootstrap: str,
    mongo_uri: str, unique_kafka_prefix: str,
) -> None:
    config = round_config(models.base_url, f"kill-{victim}")
    with running_arena(tmp_path, config, kafka_bootstrap=kafka_bootstrap, mongo_uri=mongo_uri,
                       prefix=unique_kafka_prefix, extra_env=SMALL_BATCHES) as arena:
        if victim == "challenger":
            kill_challenger_while_publishing(arena, kafka_bootstrap)
        else:
            assert start_round(arena) == len(ROUND_INSTRUCTIONS)
            # The victim has done some of its work (a batch is stored) but not all of it.
            wait_for(lambda: progress(arena, victim) >= 2, f"{victim} to get going")
            arena.kill(victim)
            done = {"responder": 3 * len(ROUND_INSTRUCTIONS), "judge": 2 * BATTLES}
            left_at = progress(arena, victim)
            assert left_at < done.get(victim, BATTLES), f"{victim} had finished: no mid-round kill"
            arena.start(victim)
        assert_exactly_once(arena, tmp_path / "export")
        assert_nothing_dead_lettered(arena)


# -- MongoDB restarted mid-round ----------------------------------------------------------


def test_mongodb_restarted_mid_round_the_round_completes(
    models: FakeOpenAIServer, tmp_path: Path, kafka_bootstrap: str, unique_kafka_prefix: str,
) -> None:
    handler_attempts = 2
    with MongoServer(tmp_path / "mongo") as mongo:
        # Fail fast while the server is away (pymongo waits 30 s for a server by default), so
        # the outage outlasts the handler's attempts many times over.
        uri = mongo.uri + "?serverSelectionTimeoutMS=500&connectTimeoutMS=500"
        env = {**SMALL_BATCHES, "WARRIORCODER_HANDLER_ATTEMPTS": str(handler_attempts)}
        with running_arena(tmp_path, round_config(models.base_url, "mongo-restart"),
                           kafka_bootstrap=kafka_bootstrap, mongo_uri=uri,
                           prefix=unique_kafka_prefix, extra_env=env) as arena:
            assert start_round(arena) == len(ROUND_INSTRUCTIONS)
            wait_for(lambda: arena.status().responses >= 2, "the round to get going")
            mongo.stop()

            # RPCs that need the store say "try again later", not "internal error".
            with pytest.raises(grpc.RpcError) as err:
                arena.status()
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            channel, rater = arena.stub("rater", services_pb2_grpc.RaterStub)
            with channel, pytest.raises(grpc.RpcError) as err:
                rater.GetBattle(services_pb2.GetBattleRequest(battle_id="any"), timeout=30)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE

            def failed_attempts() -> float:
                return sum(arena.metric_total(name, "warriorcoder_messages_failed_total")
                           for name in ("responder", "judge", "rater"))

            # Keep the server away until the stages have failed far more often than
            # handler_attempts allows one message before it would be dead-lettered.
            wait_for(lambda: failed_attempts() >= 4 * handler_attempts * 2,
                     "the stages to hit the outage")
            mongo.start()
            assert_exactly_once(arena, tmp_path / "export")
            assert_nothing_dead_lettered(arena)
            for name in SERVICES:
                arena.wait_serving(name, timeout_s=10)


# -- model servers failing ----------------------------------------------------------------


def test_failing_and_slow_model_servers_give_failed_battles_with_reasons(
    models: FakeOpenAIServer, tmp_path: Path, kafka_bootstrap: str, mongo_uri: str,
    unique_kafka_prefix: str,
) -> None:
    good = ("a", "b", "c")
    with FakeOpenAIServer() as broken, FakeOpenAIServer() as slow:
        broken.set_behaviour("error", status=500)
        slow.set_behaviour("slow", slow_s=30)
        roster = [*(expert(n, models.base_url) for n in good),
                  expert("x", broken.base_url, max_retries=1),
                  expert("y", slow.base_url, max_retries=1, timeout_s=1)]
        instructions = ROUND_INSTRUCTIONS[: len(roster)]  # each expert attacks once
        config = round_config(models.base_url, "model-faults", instructions, roster)
        with running_arena(tmp_path, config, kafka_bootstrap=kafka_bootstrap,
                           mongo_uri=mongo_uri, prefix=unique_kafka_prefix) as arena:
            assert start_round(arena) == len(instructions)
            battles = len(instructions) * (len(roster) - 1)
            status = arena.wait_round_done(battles=battles)
            expected: dict[str, tuple[str, str]] = {}
            for c in arena.database()["challenges"].find({"round_id": arena.round_id}):
                for d in c["defenders"]:
                    expected[battle_id(c["_id"], c["attacker"], d)] = (c["attacker"], d)
            assert len(expected) == battles
            # A battle between good experts is rated: its one good judge outvotes the
            # invalid votes of x and y. Every other battle failed, and says why.
            rated = {b for b, pair in expected.items() if set(pair) <= set(good)}
            assert (status.rated_battles, status.failed_battles) == \
                (len(rated), battles - len(rated))

            channel, rater = arena.stub("rater", services_pb2_grpc.RaterStub)
            with channel:
                for bid, pair in sorted(expected.items()):
                    battle = rater.GetBattle(services_pb2.GetBattleRequest(battle_id=bid),
                                             timeout=30)
                    if bid in rated:
                        assert battle.status == arena_pb2.BATTLE_STATUS_RATED, battle
                        continue
                    assert battle.status == arena_pb2.BATTLE_STATUS_FAILED, battle
                    reason = battle.failure_reason
                    # max_retries=1: the first try and one retry, then the battle fails.
                    if "x" in pair:
                        assert "x failed: x: HTTP 500" in reason and "after 2 attempts" in reason
                    if "y" in pair:
                        assert "y failed: y: timeout after 1s" in reason
                        assert "after 2 attempts" in reason
            for name in SERVICES:
                arena.wait_serving(name, timeout_s=10)
            assert_nothing_dead_lettered(arena)


# -- two judge replicas -------------------------------------------------------------------


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a key (murmur2, as the Java client)."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def lag_partitions(arena: Arena, name: str) -> set[int]:
    """Partitions instance `name` owns now (it exposes a lag gauge for each)."""
    return {int(labels["partition"]) for labels, _ in
            arena.metric_samples(name, "warriorcoder_consumer_lag")}


def test_two_judge_replicas_share_a_round(
    models: FakeOpenAIServer, tmp_path: Path, kafka_bootstrap: str, mongo_uri: str,
    unique_kafka_prefix: str,
) -> None:
    round_id = "replicas-1"
    # A fixed round: its challenge ids (the partition keys) reach all four partitions, so
    # whichever two partitions each replica owns, both get battles to judge.
    keys = {challenge_id_for(round_id, text) for text in ROUND_INSTRUCTIONS}
    assert {partition_of(k, 4) for k in keys} == {0, 1, 2, 3}
    env = {**SMALL_BATCHES, "WARRIORCODER_KAFKA_PARTITIONS": "4"}
    with running_arena(tmp_path, round_config(models.base_url, round_id),
                       kafka_bootstrap=kafka_bootstrap, mongo_uri=mongo_uri,
                       prefix=unique_kafka_prefix, extra_env=env) as arena:
        arena.start("judge-2", service="judge")

        def split() -> bool:
            first, second = lag_partitions(arena, "judge"), lag_partitions(arena, "judge-2")
            return bool(first) and bool(second) and not first & second and \
                first | second == {0, 1, 2, 3}

        wait_for(split, "the two judges to split the partitions")
        assert start_round(arena) == len(ROUND_INSTRUCTIONS)
        assert_exactly_once(arena, tmp_path / "export")
        consumed = {name: arena.metric_total(name, "warriorcoder_messages_consumed_total")
                    for name in ("judge", "judge-2")}
        assert all(consumed.values()), consumed
        assert sum(consumed.values()) >= BATTLES
