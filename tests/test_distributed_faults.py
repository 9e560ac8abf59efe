"""Faults in the distributed arena: services killed with SIGKILL mid-round, MongoDB restarted,
model servers failing, two judge replicas; and what counts as an infrastructure (transient)
error in the Kafka stage loop.

Real processes, the real broker (Tansu) and the MongoDB wire server (nx-27017). Every wait is a
deadline for a broken run; nothing asserts on speed.
"""

from __future__ import annotations

import asyncio
import itertools
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
from kafka.partitioner.default import murmur2
from kafka.structs import TopicPartition
from kafka_broker import committed_offsets

from warriorcoder.arena.ids import battle_id
from warriorcoder.service.errors import is_transient
from warriorcoder.service.grpc_server import status_for
from warriorcoder.service.kafka.producer import DeliveryError, EventProducer, OutgoingRecord
from warriorcoder.service.kafka.stage_loop import StageLoop
from warriorcoder.service.kafka.topics import ensure_topics
from warriorcoder.service.metrics import ServiceMetrics
from warriorcoder.service.settings import ServiceSettings
from warriorcoder.stages.bus import Topic
from warriorcoder.stages.challenger import challenge_id_for
from warriorcoder.v1 import arena_pb2, services_pb2, services_pb2_grpc

ROUND_INSTRUCTIONS = [
    *INSTRUCTIONS,
    "Write a Python function that checks whether a number is prime.",
    "Implement binary search over a sorted list of integers in Python.",
    "Parse a CSV line with quoted fields into a list of strings.",
]
# Three experts, every other expert defends: two opening battles per challenge, one judge each.
# Every judge always writes "A" in both orders, so every vote is a tie, nobody is beaten, and
# the tournament (contenders) also makes the two defenders meet: three battles per challenge.
BATTLES = 3 * len(ROUND_INSTRUCTIONS)
RATED = arena_pb2.BattleStatus.Name(arena_pb2.BATTLE_STATUS_RATED)
# Small batches: a round is many consume -> handle -> produce -> commit cycles, so a kill
# lands between commits, and the model delay makes the round last long enough to land in it.
# Small batches, one at a time: a round then takes several batches of each stage, so a kill can
# land mid-round (with batches pipelined, a stage may take the whole round at once).
SMALL_BATCHES = {"WARRIORCODER_KAFKA_POLL_MAX_RECORDS": "2",
                 "WARRIORCODER_KAFKA_MAX_INFLIGHT_BATCHES": "1"}
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
    """The battles the round must have: attacker against each defender, and the defenders
    against each other (all tied, all in contention), for the stored challenges, whose ids must
    be exactly the ones derived from the configured instructions."""
    round_id = arena.round_id
    challenges = list(arena.database()["challenges"].find({"round_id": round_id}))
    assert {c["_id"] for c in challenges} == {
        challenge_id_for(round_id, text) for text in ROUND_INSTRUCTIONS}
    return {battle_id(c["_id"], a, b) for c in challenges
            for a, b in itertools.combinations([c["attacker"], *c["defenders"]], 2)}


def assert_exactly_once(arena: Arena, out_dir: Path) -> None:
    """One rated battle per battle of each challenge's tournament, no extra document anywhere,
    and one SFT record per challenge in the export."""
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
            before = progress(arena, victim)
            arena.kill(victim)
            # A dead stage stores nothing more: its count now shows where it stopped. The
            # exporter stores nothing; it cannot have seen more battles than were rated.
            left_at = before if victim == "exporter" else progress(arena, victim)
            done = {"responder": 3 * len(ROUND_INSTRUCTIONS), "judge": 2 * BATTLES}
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
        config["selection"] = {"tournament": "none"}  # the failures of attacker vs defenders
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
        # The judges consume the opening battles (attacker vs defender); the defenders' battle
        # is fought by whichever replica stored the last result of its challenge's openings.
        assert sum(consumed.values()) >= 2 * len(ROUND_INSTRUCTIONS)


# -- what counts as transient, and what the stage loop does with it -------------------------


def labelled(label: str) -> mongo_errors.OperationFailure:
    """A server error as pymongo raises it, with an error label from the server."""
    return mongo_errors.OperationFailure("write failed", code=91,
                                         details={"errorLabels": [label]})


def chained(cause: BaseException) -> RuntimeError:
    try:
        raise RuntimeError("store call failed") from cause
    except RuntimeError as error:
        return error


@pytest.mark.parametrize("error", [
    mongo_errors.ConnectionFailure("refused"),
    mongo_errors.AutoReconnect("connection closed"),
    mongo_errors.NetworkTimeout("timed out"),
    mongo_errors.ServerSelectionTimeoutError("no servers"),
    mongo_errors.NotPrimaryError("not primary"),
    labelled("RetryableWriteError"),
    labelled("TransientTransactionError"),
    kafka_errors.KafkaTimeoutError("metadata"),
    kafka_errors.KafkaConnectionError("refused"),
    kafka_errors.NotLeaderForPartitionError(),
    DeliveryError("flush timed out"),
    DeliveryError("1 of 2 records not delivered", [kafka_errors.RequestTimedOutError()]),
    chained(mongo_errors.AutoReconnect("closed")),
], ids=lambda e: type(e).__name__)
def test_outages_of_mongodb_and_the_broker_are_transient(error: BaseException) -> None:
    assert is_transient(error)
    assert status_for(error) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("error", [
    ValueError("bad field"),
    RuntimeError("bug"),
    mongo_errors.DuplicateKeyError("E11000"),
    mongo_errors.OperationFailure("unauthorized", code=13),
    mongo_errors.ConfigurationError("bad uri"),
    kafka_errors.MessageSizeTooLargeError(),
    kafka_errors.CommitFailedError(),
    DeliveryError("1 of 1 records not delivered", [kafka_errors.MessageSizeTooLargeError()]),
    chained(ValueError("bad field")),
], ids=lambda e: type(e).__name__)
def test_errors_of_the_message_or_the_code_are_not_transient(error: BaseException) -> None:
    assert not is_transient(error)
    assert status_for(error) is None


@pytest.fixture
def settings(kafka_bootstrap: str, unique_kafka_prefix: str) -> ServiceSettings:
    return ServiceSettings(
        arena_config=Path("unused.yaml"), kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_prefix=unique_kafka_prefix, kafka_group_prefix=f"{unique_kafka_prefix}g",
        kafka_partitions=2, kafka_poll_max_records=4, kafka_session_timeout_ms=6000,
        handler_attempts=2,
    )


def some_challenges(n: int) -> list[arena_pb2.Challenge]:
    return [arena_pb2.Challenge(challenge_id=f"c{i}", round_id="r", instruction=f"task {i}",
                                attacker="x", defenders=["y"]) for i in range(n)]


def answer(c: arena_pb2.Challenge) -> arena_pb2.ResponsePair:
    return arena_pb2.ResponsePair(battle_id=f"b-{c.challenge_id}", challenge_id=c.challenge_id,
                                  round_id=c.round_id)


class Outage:
    """A stage handler that fails with `error` on its first `failures` calls (all of them
    when None), then answers every challenge."""

    def __init__(self, error: BaseException, failures: int | None) -> None:
        self.error = error
        self.failures = failures
        self.calls = 0
        self.handled: list[str] = []

    async def __call__(self, batch: list[arena_pb2.Challenge]) -> Sequence[Message]:
        self.calls += 1
        if self.failures is None or self.calls <= self.failures:
            raise self.error
        self.handled.extend(c.challenge_id for c in batch)
        return [answer(c) for c in batch]


class FlakyProducer(EventProducer):
    """An EventProducer whose first `failures` publishes fail like a broker that is away."""

    def __init__(self, settings: ServiceSettings, failures: int) -> None:
        super().__init__(settings)
        self.failures = failures
        self.flushes = 0

    def publish_records(self, records: Sequence[OutgoingRecord],
                        timeout_s: float | None = None) -> None:
        self.flushes += 1
        if self.flushes <= self.failures:
            raise DeliveryError("flush timed out", [kafka_errors.KafkaTimeoutError()])
        super().publish_records(records, timeout_s)


def stage_loop(settings: ServiceSettings, handler: Any,
               producer: EventProducer | None = None) -> StageLoop[arena_pb2.Challenge]:
    return StageLoop(settings, "responder", Topic.CHALLENGES, arena_pb2.Challenge,
                     Topic.RESPONSES, handler, ServiceMetrics("responder"),
                     producer=producer, retry_backoff_s=0.01, poll_timeout_s=0.2)


def publish_challenges(settings: ServiceSettings, items: Sequence[arena_pb2.Challenge]) -> None:
    ensure_topics(settings, list(Topic))
    producer = EventProducer(settings)
    try:
        producer.publish(Topic.CHALLENGES, items, timeout_s=60)
    finally:
        producer.close()


def committed(settings: ServiceSettings) -> int:
    """Offsets the responder group committed on the challenges topic, summed."""
    return committed_offsets(settings, "responder", Topic.CHALLENGES)


def responses_on_topic(settings: ServiceSettings, count: int) -> list[str]:
    """Challenge ids of the ResponsePairs on the responses topic, once there are `count`."""
    name = settings.topic(Topic.RESPONSES)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ids: list[str] = []
        deadline = time.monotonic() + 60
        while len(ids) < count:
            assert time.monotonic() < deadline, f"{len(ids)} of {count} responses"
            for batch in consumer.poll(timeout_ms=200).values():
                ids.extend(arena_pb2.ResponsePair.FromString(r.value).challenge_id
                           for r in batch)
        return ids
    finally:
        consumer.close()


def dead_lettered(loop: StageLoop[Any]) -> float:
    return sum(s.value for family in loop.metrics.registry.collect()
               if family.name == "warriorcoder_messages_dead_lettered" for s in family.samples
               if s.name.endswith("_total"))


async def wait_until_async(condition: Any, what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("error", [mongo_errors.ServerSelectionTimeoutError("no servers"),
                                   kafka_errors.KafkaConnectionError("refused")],
                         ids=lambda e: type(e).__name__)
def test_an_outage_longer_than_the_attempts_dead_letters_nothing(
    settings: ServiceSettings, error: BaseException,
) -> None:
    n = 6
    publish_challenges(settings, some_challenges(n))
    # Far more failures in a row than handler_attempts (2) allows a failing message.
    handler = Outage(error, failures=3 * settings.handler_attempts)
    producer = FlakyProducer(settings, failures=3)

    async def scenario() -> StageLoop[arena_pb2.Challenge]:
        loop = stage_loop(settings, handler, producer)
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        await wait_until_async(lambda: len(handler.handled) >= n, "every challenge handled")
        await asyncio.to_thread(wait_for, lambda: committed(settings) >= n, "the commits", 60)
        stop.set()
        await asyncio.wait_for(task, 60)
        return loop

    try:
        loop = asyncio.run(scenario())
    finally:
        producer.close()
    assert dead_lettered(loop) == 0
    assert sorted(handler.handled) == sorted(c.challenge_id for c in some_challenges(n))
    assert sorted(set(responses_on_topic(settings, n))) == sorted(handler.handled)
    assert producer.flushes > producer.failures  # publishing was retried too
    assert committed(settings) == n


def test_stopping_during_an_outage_leaves_the_batch_uncommitted(
    settings: ServiceSettings,
) -> None:
    n = 3
    publish_challenges(settings, some_challenges(n))
    down = Outage(mongo_errors.AutoReconnect("connection refused"), failures=None)
    healthy = Outage(mongo_errors.AutoReconnect("unused"), failures=0)

    async def scenario() -> None:
        loop = stage_loop(settings, down)
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        await wait_until_async(lambda: down.calls > 2 * settings.handler_attempts + 1,
                               "the handler to keep failing")
        stop.set()
        await asyncio.wait_for(task, 60)  # returns: a stop is no crash
        assert dead_lettered(loop) == 0
        assert committed(settings) == 0
        # Restarted (or a replica): everything is still there to handle.
        loop2 = stage_loop(settings, healthy)
        stop2 = asyncio.Event()
        task2 = asyncio.create_task(loop2.run(stop2))
        await wait_until_async(lambda: len(healthy.handled) >= n, "the restart to handle all")
        stop2.set()
        await asyncio.wait_for(task2, 60)

    asyncio.run(scenario())
    assert sorted(healthy.handled) == sorted(c.challenge_id for c in some_challenges(n))
    assert committed(settings) == n
