"""The Kafka stage loop against a real broker (Tansu): delivery, dead letters, stop, sharing.

Every test uses its own topic prefix and consumer group. Timeouts are only deadlines for
waiting on the broker, never assertions about speed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
from google.protobuf.message import Message
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.consumer.fetcher import ConsumerRecord
from kafka.structs import TopicPartition
from kafka_broker import committed_offsets

from warriorcoder.service.kafka.producer import EventProducer
from warriorcoder.service.kafka.stage_loop import DEAD_LETTER_HEADERS, StageLoop
from warriorcoder.service.kafka.topics import ensure_topics, message_key
from warriorcoder.service.metrics import ServiceMetrics
from warriorcoder.service.settings import ServiceSettings
from warriorcoder.stages.bus import Topic
from warriorcoder.v1 import arena_pb2

DEADLINE_S = 60.0  # generous: only bounds how long a broken test waits
T = TypeVar("T")

Challenge = arena_pb2.Challenge
ResponsePair = arena_pb2.ResponsePair


@pytest.fixture
def settings(kafka_bootstrap: str, unique_kafka_prefix: str) -> ServiceSettings:
    return ServiceSettings(
        arena_config=Path("unused.yaml"),
        kafka_bootstrap_servers=kafka_bootstrap,
        kafka_topic_prefix=unique_kafka_prefix,
        kafka_group_prefix=f"{unique_kafka_prefix}group",
        kafka_partitions=4,
        kafka_poll_max_records=8,
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=1000,
        handler_attempts=2,
    )


def challenges(n: int, start: int = 0) -> list[arena_pb2.Challenge]:
    return [Challenge(challenge_id=f"c{i:03d}", round_id="r1", instruction=f"task {i}",
                      attacker="x", defenders=["y"]) for i in range(start, start + n)]


def answer(c: arena_pb2.Challenge) -> arena_pb2.ResponsePair:
    return ResponsePair(battle_id=f"b-{c.challenge_id}", challenge_id=c.challenge_id,
                        round_id=c.round_id, instruction=c.instruction)


class Recorder:
    """A stage handler that answers each challenge and remembers what it saw."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.fail_on = fail_on
        self.seen: list[str] = []
        self.calls = 0

    async def __call__(self, batch: list[arena_pb2.Challenge]) -> Sequence[Message]:
        self.calls += 1
        if self.fail_on is not None and any(c.challenge_id == self.fail_on for c in batch):
            raise RuntimeError(f"cannot handle {self.fail_on}")
        self.seen.extend(c.challenge_id for c in batch)
        return [answer(c) for c in batch]


def make_loop(settings: ServiceSettings, handler: Callable[[list[arena_pb2.Challenge]],
              Awaitable[Sequence[Message]]]) -> StageLoop[arena_pb2.Challenge]:
    return StageLoop(settings, "responder", Topic.CHALLENGES, Challenge, Topic.RESPONSES,
                     handler, ServiceMetrics("responder"), retry_backoff_s=0.01,
                     poll_timeout_s=0.2)


def prepare(settings: ServiceSettings, items: Sequence[arena_pb2.Challenge] = ()) -> None:
    ensure_topics(settings, [Topic.CHALLENGES, Topic.RESPONSES, Topic.DEAD_LETTER])
    publish(settings, items)


def publish(settings: ServiceSettings, items: Sequence[arena_pb2.Challenge]) -> None:
    producer = EventProducer(settings)
    try:
        producer.publish(Topic.CHALLENGES, items, timeout_s=DEADLINE_S)
    finally:
        producer.close()


def read_topic(settings: ServiceSettings, topic: Topic, count: int) -> list[ConsumerRecord]:
    """All records of a topic once it holds at least `count` (fails after DEADLINE_S)."""
    name = settings.topic(topic)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        partitions = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + DEADLINE_S
        while len(records) < count:
            assert time.monotonic() < deadline, f"{name}: {len(records)} of {count} records"
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        # Whatever else is already there (a duplicate would show up here).
        ends = consumer.end_offsets(partitions)
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def committed_total(settings: ServiceSettings) -> int:
    """Offsets the responder group committed on the challenges topic, summed."""
    return committed_offsets(settings, "responder", Topic.CHALLENGES)


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        await asyncio.sleep(0.05)


async def until(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, DEADLINE_S)


def lags(loop: StageLoop[arena_pb2.Challenge]) -> dict[int, float]:
    """The consumer lag gauge of each partition, as the loop's registry exposes it."""
    return {int(sample.labels["partition"]): sample.value
            for family in loop.metrics.registry.collect()
            if family.name == "warriorcoder_consumer_lag" for sample in family.samples}


def header(record: ConsumerRecord, name: str) -> str:
    values = [v.decode() for k, v in record.headers if k == name]
    assert len(values) == 1, f"header {name!r} in {record.headers}"
    return values[0]


# -- pure parts --------------------------------------------------------------------------------


def test_message_key_is_the_challenge_id_of_every_event() -> None:
    pair = ResponsePair(challenge_id="c1", battle_id="b1")
    assert message_key(Challenge(challenge_id="c1")) == b"c1"
    assert message_key(pair) == b"c1"
    assert message_key(arena_pb2.RatedBattle(challenge_id="c1")) == b"c1"
    assert message_key(arena_pb2.BattleJudgments(pair=pair)) == b"c1"
    with pytest.raises(ValueError, match="Challenge has no challenge_id"):
        message_key(Challenge())
    with pytest.raises(TypeError, match="Leaderboard is not an arena event"):
        message_key(arena_pb2.Leaderboard())


def test_stage_loop_rejects_bad_wiring(settings: ServiceSettings) -> None:
    metrics = ServiceMetrics("responder")
    with pytest.raises(TypeError, match="Leaderboard is not an arena event"):
        StageLoop(settings, "responder", Topic.CHALLENGES, arena_pb2.Leaderboard,
                  Topic.RESPONSES, Recorder(), metrics)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot consume"):
        StageLoop(settings, "responder", Topic.CHALLENGES, Challenge, Topic.CHALLENGES,
                  Recorder(), metrics)


# -- against the broker ------------------------------------------------------------------------


def test_ensure_topics_creates_missing_topics_once(settings: ServiceSettings) -> None:
    created = ensure_topics(settings, [Topic.CHALLENGES, Topic.DEAD_LETTER])
    assert sorted(created) == sorted([settings.topic("challenges"),
                                      settings.topic("dead-letter")])
    again = ensure_topics(settings, [Topic.CHALLENGES, Topic.RESPONSES])
    assert again == [settings.topic("responses")]
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        [info] = admin.describe_topics([settings.topic("challenges")])
    finally:
        admin.close()
    assert len(info["partitions"]) == settings.kafka_partitions
    with pytest.raises(ValueError, match="non-empty topic names"):
        ensure_topics(settings, [""])


def test_every_message_is_handled_produced_and_committed(settings: ServiceSettings) -> None:
    n = 20
    prepare(settings, challenges(n))
    first, second = Recorder(), Recorder()

    async def scenario() -> None:
        loop = make_loop(settings, first)
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        await wait_until(lambda: len(first.seen) >= n, "the first loop to handle everything")
        await wait_until(lambda: lags(loop) == {p: 0.0 for p in range(4)}, "lag 0 everywhere")
        stop.set()
        await until(task)
        assert lags(loop) == {}  # partitions given back on close: no stale lag series
        assert loop.metrics.registry.get_sample_value(
            "warriorcoder_messages_consumed_total",
            {"service": "responder", "topic": settings.topic("challenges")}) == n
        assert loop.metrics.registry.get_sample_value(
            "warriorcoder_messages_produced_total",
            {"service": "responder", "topic": settings.topic("responses")}) == n

        # Same group again: only what arrives now is new to it.
        loop2 = make_loop(settings, second)
        stop2 = asyncio.Event()
        task2 = asyncio.create_task(loop2.run(stop2))
        await until(loop2.ready.wait())
        await asyncio.to_thread(publish, settings, challenges(1, start=n))
        await wait_until(lambda: bool(second.seen), "the second loop to handle the new one")
        stop2.set()
        await until(task2)

    asyncio.run(scenario())
    assert sorted(first.seen) == [f"c{i:03d}" for i in range(n)]
    assert second.seen == [f"c{n:03d}"]
    records = read_topic(settings, Topic.RESPONSES, n + 1)
    assert len(records) == n + 1
    for r in records:
        pair = ResponsePair.FromString(r.value)
        assert r.key == pair.challenge_id.encode()
        assert pair.battle_id == f"b-{pair.challenge_id}"
    assert committed_total(settings) == n + 1


def test_garbage_goes_to_the_dead_letter_topic_and_the_loop_goes_on(
    settings: ServiceSettings,
) -> None:
    prepare(settings)
    raw = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    raw.send(settings.topic("challenges"), key=b"junk", value=b"\xff\xfe this is no protobuf")
    raw.send(settings.topic("challenges"), key=b"empty", value=Challenge().SerializeToString())
    raw.flush()
    raw.close()
    publish(settings, challenges(5))
    recorder = Recorder()

    async def scenario() -> StageLoop[arena_pb2.Challenge]:
        loop = make_loop(settings, recorder)
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        await wait_until(lambda: len(recorder.seen) >= 5, "the valid challenges")
        stop.set()
        await until(task)
        return loop

    loop = asyncio.run(scenario())
    dead = {r.key: r for r in read_topic(settings, Topic.DEAD_LETTER, 2)}
    assert set(dead) == {b"junk", b"empty"}
    junk = dead[b"junk"]
    assert junk.value == b"\xff\xfe this is no protobuf"  # the original bytes, untouched
    assert {k for k, _ in junk.headers} == set(DEAD_LETTER_HEADERS)
    assert header(junk, "error").startswith("cannot parse Challenge")
    assert header(junk, "source-topic") == settings.topic("challenges")
    assert header(junk, "service") == "responder"
    assert int(header(junk, "partition")) in range(settings.kafka_partitions)
    assert int(header(junk, "offset")) == 0  # the first message on the topic
    assert "no challenge_id" in header(dead[b"empty"], "error")
    assert sorted(recorder.seen) == [f"c{i:03d}" for i in range(5)]
    assert len(read_topic(settings, Topic.RESPONSES, 5)) == 5
    assert loop.metrics.registry.get_sample_value(
        "warriorcoder_messages_dead_lettered_total",
        {"service": "responder", "topic": settings.topic("challenges")}) == 2
    assert committed_total(settings) == 7


def test_only_the_message_that_keeps_failing_is_dead_lettered(settings: ServiceSettings) -> None:
    n = 12
    prepare(settings, challenges(n))
    recorder = Recorder(fail_on="c003")

    async def scenario() -> StageLoop[arena_pb2.Challenge]:
        loop = make_loop(settings, recorder)
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        await wait_until(lambda: len(recorder.seen) >= n - 1, "all but the poison message")
        await asyncio.to_thread(read_topic, settings, Topic.DEAD_LETTER, 1)
        stop.set()
        await until(task)
        return loop

    loop = asyncio.run(scenario())
    [dead] = read_topic(settings, Topic.DEAD_LETTER, 1)
    assert Challenge.FromString(dead.value).challenge_id == "c003"
    assert header(dead, "error") == "RuntimeError: cannot handle c003"
    answered = {ResponsePair.FromString(r.value).challenge_id
                for r in read_topic(settings, Topic.RESPONSES, n - 1)}
    assert answered == {f"c{i:03d}" for i in range(n)} - {"c003"}
    assert sorted(recorder.seen) == sorted(answered)  # nobody handled twice
    failed = loop.metrics.registry.get_sample_value(
        "warriorcoder_messages_failed_total",
        {"service": "responder", "topic": settings.topic("challenges")})
    # the batch with c003 failed twice, then c003 alone twice
    assert failed is not None and failed >= 2 + 2
    assert committed_total(settings) == n


def test_stop_finishes_the_batches_in_flight_commits_and_hands_the_rest_over(
    settings: ServiceSettings,
) -> None:
    settings = settings.model_copy(update={"kafka_max_inflight_batches": 2})
    n = 40  # five batches of kafka_poll_max_records=8 at least
    prepare(settings, challenges(n))
    gate = asyncio.Event()
    entered = asyncio.Event()
    first_batches: list[list[str]] = []

    async def slow(batch: list[arena_pb2.Challenge]) -> Sequence[Message]:
        first_batches.append([c.challenge_id for c in batch])
        entered.set()
        await gate.wait()  # stop is set while this batch is in the handler
        return [answer(c) for c in batch]

    rest = Recorder()

    async def scenario() -> None:
        loop = make_loop(settings, slow)
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        await until(entered.wait())
        stop.set()
        gate.set()
        await until(task)  # returns: the loop exited cleanly
        assert committed_total(settings) == sum(len(b) for b in first_batches)

        loop2 = make_loop(settings, rest)
        stop2 = asyncio.Event()
        task2 = asyncio.create_task(loop2.run(stop2))
        handled = sum(len(b) for b in first_batches)
        await wait_until(lambda: len(rest.seen) >= n - handled, "the rest")
        stop2.set()
        await until(task2)

    asyncio.run(scenario())
    assert 1 <= len(first_batches) <= 2  # never more than kafka_max_inflight_batches at once
    handled = [c for batch in first_batches for c in batch]
    assert sorted(handled + rest.seen) == [f"c{i:03d}" for i in range(n)]
    outputs = read_topic(settings, Topic.RESPONSES, n)
    assert len(outputs) == n
    assert committed_total(settings) == n


def test_two_loops_in_one_group_share_the_partitions(settings: ServiceSettings) -> None:
    n = 40
    prepare(settings)
    a, b = Recorder(), Recorder()

    async def scenario() -> tuple[frozenset[int], frozenset[int]]:
        loop_a, loop_b = make_loop(settings, a), make_loop(settings, b)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(loop_a.run(stop)), asyncio.create_task(loop_b.run(stop))]

        def split() -> bool:
            pa, pb = loop_a.assignment, loop_b.assignment
            return bool(pa) and bool(pb) and not pa & pb and pa | pb == {0, 1, 2, 3}

        await wait_until(split, "both loops to own partitions")
        owned = (loop_a.assignment, loop_b.assignment)
        await asyncio.to_thread(publish, settings, challenges(n))
        await wait_until(lambda: len(a.seen) + len(b.seen) >= n, "every message")
        stop.set()
        await until(asyncio.gather(*tasks))
        return owned

    owned_a, owned_b = asyncio.run(scenario())
    assert len(owned_a) + len(owned_b) == 4
    assert a.seen and b.seen, "both replicas got work"
    assert not set(a.seen) & set(b.seen)
    assert sorted(a.seen + b.seen) == [f"c{i:03d}" for i in range(n)]
    outputs = [ResponsePair.FromString(r.value).challenge_id
               for r in read_topic(settings, Topic.RESPONSES, n)]
    assert sorted(outputs) == [f"c{i:03d}" for i in range(n)]  # each exactly once
    assert committed_total(settings) == n


def test_a_replica_joining_mid_stream_takes_over_without_losing_anything(
    settings: ServiceSettings,
) -> None:
    prepare(settings)
    a, b = Recorder(), Recorder()
    produced: list[str] = []

    async def feed(producer: EventProducer) -> None:
        """Keep challenges coming until the second replica got some, then a last burst."""
        deadline = time.monotonic() + DEADLINE_S
        while not b.seen:
            assert time.monotonic() < deadline, "the second replica never got work"
            batch = challenges(4, start=len(produced))
            await asyncio.to_thread(producer.publish, Topic.CHALLENGES, batch)
            produced.extend(c.challenge_id for c in batch)
            await asyncio.sleep(0.1)
        burst = challenges(20, start=len(produced))
        await asyncio.to_thread(producer.publish, Topic.CHALLENGES, burst)
        produced.extend(c.challenge_id for c in burst)

    async def scenario() -> None:
        loop_a, loop_b = make_loop(settings, a), make_loop(settings, b)
        stop = asyncio.Event()
        producer = EventProducer(settings)
        task_a = asyncio.create_task(loop_a.run(stop))
        feeding = asyncio.create_task(feed(producer))
        await wait_until(lambda: bool(a.seen), "the first replica to start")
        task_b = asyncio.create_task(loop_b.run(stop))
        await until(feeding)
        producer.close()
        await wait_until(lambda: set(a.seen) | set(b.seen) >= set(produced), "every message")
        stop.set()
        await until(asyncio.gather(task_a, task_b))

    asyncio.run(scenario())
    assert sorted(set(a.seen) | set(b.seen)) == sorted(produced)
    outputs = [ResponsePair.FromString(r.value).challenge_id
               for r in read_topic(settings, Topic.RESPONSES, len(produced))]
    # At-least-once: a batch whose commit a rebalance refused is handled again, never lost.
    assert sorted(set(outputs)) == sorted(produced)
    assert len(outputs) == len(a.seen) + len(b.seen)
    assert committed_total(settings) == len(produced)


# -- pipelined batches ---------------------------------------------------------------------------


def test_a_later_batch_that_finishes_first_is_committed_only_after_the_earlier_one(
    settings: ServiceSettings,
) -> None:
    n = 32  # four batches of kafka_poll_max_records=8
    prepare(settings, challenges(n))
    release_first = asyncio.Event()
    batches: list[list[str]] = []

    async def first_is_slow(batch: list[arena_pb2.Challenge]) -> Sequence[Message]:
        batches.append([c.challenge_id for c in batch])
        if len(batches) == 1:
            await release_first.wait()
        return [answer(c) for c in batch]

    async def scenario() -> None:
        loop = make_loop(settings, first_is_slow)
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        await wait_until(lambda: len(batches) >= 2, "a second batch while the first waits")
        later = sum(len(b) for b in batches[1:])
        await asyncio.to_thread(read_topic, settings, Topic.RESPONSES, later)  # published
        await asyncio.sleep(1.0)  # time for a wrong commit to happen
        assert committed_total(settings) == 0  # the first batch is not done: nothing is
        release_first.set()
        await wait_until(lambda: committed_total(settings) == n, "every commit")
        stop.set()
        await until(task)

    asyncio.run(scenario())
    assert sorted(c for b in batches for c in b) == [f"c{i:03d}" for i in range(n)]


def test_no_more_batches_than_kafka_max_inflight_batches_are_handled_at_once(
    settings: ServiceSettings,
) -> None:
    settings = settings.model_copy(update={"kafka_max_inflight_batches": 3})
    n = 80
    prepare(settings, challenges(n))
    running = 0
    most = 0
    seen: list[str] = []

    async def slow(batch: list[arena_pb2.Challenge]) -> Sequence[Message]:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.3)
        running -= 1
        seen.extend(c.challenge_id for c in batch)
        return [answer(c) for c in batch]

    async def scenario() -> None:
        loop = make_loop(settings, slow)
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        await wait_until(lambda: len(seen) >= n, "every message")
        stop.set()
        await until(task)

    asyncio.run(scenario())
    assert most == 3  # batches overlapped, and never more than the setting allows
    assert sorted(seen) == [f"c{i:03d}" for i in range(n)]
    assert committed_total(settings) == n


def test_an_output_too_large_for_the_broker_dead_letters_its_input(
    settings: ServiceSettings,
) -> None:
    settings = settings.model_copy(update={"kafka_max_message_bytes": 32768})
    n = 6
    prepare(settings, challenges(n))
    handled: list[str] = []

    async def bloats_c002(batch: list[arena_pb2.Challenge]) -> Sequence[Message]:
        handled.extend(c.challenge_id for c in batch)
        out = [answer(c) for c in batch]
        for pair in out:
            if pair.challenge_id == "c002":
                pair.instruction = "x" * 40000
        return out

    async def scenario() -> None:
        loop = make_loop(settings, bloats_c002)
        stop = asyncio.Event()
        task = asyncio.create_task(loop.run(stop))
        await wait_until(lambda: committed_total(settings) == n, "every commit")
        stop.set()
        await until(task)

    asyncio.run(scenario())
    [dead] = read_topic(settings, Topic.DEAD_LETTER, 1)
    assert Challenge.FromString(dead.value).challenge_id == "c002"
    assert "OutputTooLarge: ResponsePair of 4" in header(dead, "error")
    assert "kafka_max_message_bytes 32768" in header(dead, "error")
    answered = {ResponsePair.FromString(r.value).challenge_id
                for r in read_topic(settings, Topic.RESPONSES, n - 1)}
    assert answered == {f"c{i:03d}" for i in range(n)} - {"c002"}
