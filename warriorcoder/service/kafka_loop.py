"""Kafka transport of the distributed services: topics, an event producer, the stage loop.

Delivery is at-least-once: a batch's offsets are committed only after its outputs (and its
dead letters) are acknowledged by the broker, and after every batch polled before it, so a
process killed at any point redelivers what it had not finished. The stages are idempotent, which turns that into effectively-once results.

kafka-python is synchronous. Every consumer call runs on one dedicated worker thread (calls
stay in order and never overlap, as the consumer requires) and producer flushes run via
`asyncio.to_thread`, so the service's event loop (gRPC server, async stage handlers) never
blocks on the broker.

Infrastructure errors are not a message's fault: while MongoDB or the broker is away
(`is_transient`), a batch is retried with capped exponential backoff until it goes through or
the service stops, and is never dead-lettered for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import kafka.errors as kafka_errors
import pymongo.errors as mongo_errors
from google.protobuf.message import DecodeError, Message
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.consumer.fetcher import ConsumerRecord
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata, TopicPartition

from warriorcoder.bus import Topic
from warriorcoder.service.metrics import ServiceMetrics
from warriorcoder.service.settings import ServiceName, ServiceSettings
from warriorcoder.v1 import arena_pb2

__all__ = ["DEAD_LETTER_HEADERS", "DeliveryError", "EventProducer", "Handler", "OutgoingRecord",
           "OutputTooLarge", "StageLoop", "ensure_topics", "is_transient", "message_key"]

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)
Handler = Callable[[list[M]], Awaitable[Sequence[Message]]]

# Headers of a dead-lettered record (values are UTF-8); its key and value are the original's.
DEAD_LETTER_HEADERS = ("error", "source-topic", "partition", "offset", "service")
# An error text in a dead letter's headers never needs more than this.
_MAX_ERROR_CHARS = 4000
# Room for a record's key, headers and framing within the producer's max_request_size.
_RECORD_OVERHEAD_BYTES = 1024
_MAX_BACKOFF_S = 30.0
# Waits between retries during an outage stay short, so a batch resumes soon after recovery.
_MAX_OUTAGE_BACKOFF_S = 10.0
# Error labels MongoDB servers put on errors that a retry can fix.
_TRANSIENT_MONGO_LABELS = ("RetryableWriteError", "TransientTransactionError")
_KEYED_TYPES = (arena_pb2.Challenge, arena_pb2.ResponsePair, arena_pb2.RatedBattle,
                arena_pb2.BattleJudgments)


class DeliveryError(RuntimeError):
    """The broker did not acknowledge produced records (nothing of the batch is committed).

    `causes` are the errors of the records that failed (empty when the flush timed out).
    """

    def __init__(self, message: str, causes: Sequence[BaseException] = ()) -> None:
        super().__init__(message)
        self.causes = tuple(causes)


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is an infrastructure outage that retrying later fixes, not a fault of the
    message being handled.

    Transient: pymongo connection errors (ConnectionFailure and its subclasses AutoReconnect,
    NetworkTimeout, ServerSelectionTimeoutError, NotPrimaryError, WaitQueueTimeoutError) and
    MongoDB errors labelled RetryableWriteError or TransientTransactionError; Kafka errors
    marked retriable (KafkaTimeoutError, KafkaConnectionError, NodeNotReadyError, leader
    changes...); a DeliveryError whose failed records all failed that way (or that timed out).
    An exception raised `from` a transient one counts as transient too. Everything else (a
    duplicate key, a record too large, a bug) is not.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # a chain of `raise ... from`
        seen.add(id(current))
        if isinstance(current, mongo_errors.ConnectionFailure):
            return True
        if isinstance(current, mongo_errors.PyMongoError) and any(
            current.has_error_label(label) for label in _TRANSIENT_MONGO_LABELS
        ):
            return True
        if isinstance(current, kafka_errors.KafkaError) and current.retriable:
            return True
        if isinstance(current, DeliveryError):
            return all(is_transient(cause) for cause in current.causes)
        current = current.__cause__
    return False


class OutputTooLarge(ValueError):
    """A handler produced an event larger than the broker accepts: the input's fault, so it is
    dead-lettered instead of failing every later publish."""


class _Abandoned(Exception):
    """Stop was set while a batch waited for an outage to end: the batch stays uncommitted."""


def _bootstrap(settings: ServiceSettings) -> list[str]:
    servers = [s.strip() for s in settings.kafka_bootstrap_servers.split(",") if s.strip()]
    if not servers:
        raise ValueError("kafka_bootstrap_servers is empty; expected host:port[,host:port...]")
    return servers


def ensure_topics(
    settings: ServiceSettings, names: Iterable[str], *, timeout_s: float = 30.0
) -> list[str]:
    """Create the topics among `names` (prefixed with settings.topic) that do not exist yet.

    New topics get settings.kafka_partitions and kafka_replication_factor. Idempotent and safe
    to race with other replicas creating the same topics. Returns the full names created by
    this call. Blocking: call it via asyncio.to_thread from async code.
    """
    given = [str(name) for name in names]
    if not given or any(not name for name in given):
        raise ValueError(f"ensure_topics: expected non-empty topic names, got {given!r}")
    wanted = [settings.topic(name) for name in given]
    admin = KafkaAdminClient(bootstrap_servers=_bootstrap(settings),
                             client_id="warriorcoder-admin",
                             request_timeout_ms=int(timeout_s * 1000))
    try:
        existing = set(admin.list_topics())
        missing = sorted(set(wanted) - existing)
        if not missing:
            return []
        spec = {name: {"num_partitions": settings.kafka_partitions,
                       "replication_factor": settings.kafka_replication_factor}
                for name in missing}
        response = admin.create_topics(spec, timeout_ms=int(timeout_s * 1000), raise_errors=False)
        created = []
        for topic in response["topics"]:
            error = kafka_errors.for_code(topic["error_code"])
            if error is kafka_errors.NoError:
                created.append(topic["name"])
            elif error is not kafka_errors.TopicAlreadyExistsError:  # another replica won
                raise error(f"cannot create topic {topic['name']!r}: "
                            f"{topic.get('error_message') or error.__name__}")
        admin.wait_for_topics(missing, timeout_ms=int(timeout_s * 1000))
        log.info("created topics %s", created)
        return created
    finally:
        admin.close()


def message_key(message: Message) -> bytes:
    """The partition key of an arena event: its challenge id, so one battle stays in order.

    Challenge, ResponsePair and RatedBattle carry challenge_id; BattleJudgments its pair's.
    An event without a challenge id is a ValueError; any other message type a TypeError.
    """
    if isinstance(message, arena_pb2.BattleJudgments):
        challenge_id = message.pair.challenge_id
    elif isinstance(message, (arena_pb2.Challenge, arena_pb2.ResponsePair,
                              arena_pb2.RatedBattle)):
        challenge_id = message.challenge_id
    else:
        raise TypeError(f"message_key: {type(message).__name__} is not an arena event "
                        f"(expected one of {', '.join(t.__name__ for t in _KEYED_TYPES)})")
    if not challenge_id:
        raise ValueError(f"message_key: {type(message).__name__} has no challenge_id")
    return challenge_id.encode()


@dataclass(frozen=True)
class OutgoingRecord:
    """One record to produce: already encoded, with its topic (unprefixed) and key."""

    topic: Topic
    value: bytes
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


class EventProducer:
    """Idempotent producer of arena events (acks from all in-sync replicas, no duplicates
    from the producer's own retries). Thread-safe: the stage loop's concurrent batches and the
    gRPC handlers share one.

    `publish` and `publish_records` return once every record of *that call* is acknowledged and
    raise DeliveryError if any was not; concurrent calls never see each other's failures.
    Blocking: call them via asyncio.to_thread from async code.
    """

    def __init__(self, settings: ServiceSettings, *, client_id: str = "warriorcoder") -> None:
        self.settings = settings
        self._producer = KafkaProducer(
            bootstrap_servers=_bootstrap(settings),
            client_id=client_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,  # lets a batch of outputs share requests
            max_request_size=settings.kafka_max_message_bytes,
        )

    def publish(self, topic: Topic, messages: Iterable[Message],
                timeout_s: float | None = None) -> None:
        """Produce arena events on `topic`, each keyed by `message_key`, and wait for the acks."""
        self.publish_records([OutgoingRecord(topic, m.SerializeToString(), message_key(m))
                              for m in messages], timeout_s)

    def publish_records(self, records: Sequence[OutgoingRecord],
                        timeout_s: float | None = None) -> None:
        """Produce encoded records (topics prefixed by the settings) and wait for the acks."""
        futures = [self._producer.send(self.settings.topic(r.topic), value=r.value, key=r.key,
                                       headers=list(r.headers)) for r in records]
        try:
            self._producer.flush(timeout=timeout_s)
        except kafka_errors.KafkaTimeoutError as exc:
            raise DeliveryError(f"records not acknowledged within {timeout_s}s: {exc}") from exc
        failures = [f.exception for f in futures if f.failed()]
        if failures:
            raise DeliveryError(f"{len(failures)} of {len(futures)} records not delivered; "
                                f"first error: {failures[0]!r}", failures)

    def close(self) -> None:
        self._producer.close()


@dataclass(frozen=True)
class _DeadLetter:
    record: ConsumerRecord
    error: str


class _AssignmentListener(ConsumerRebalanceListener):
    """Tracks the assigned partitions; runs on the consumer's IO thread, so it only stores."""

    def __init__(self, owner: StageLoop[Any]) -> None:
        self.owner = owner

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.owner._set_assignment(frozenset(), revoked)

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.owner._set_assignment(frozenset(tp.partition for tp in assigned), ())

    def on_partitions_lost(self, lost: Any) -> None:
        self.owner._set_assignment(frozenset(), lost)


class StageLoop(Generic[M]):
    """Consume `consumes` in batches, run the stage handler, produce to `produces`, commit.

    Batches are pipelined: while up to `settings.kafka_max_inflight_batches` batches are in the
    handler (their model requests share the backends' slots, so a slot freed by one batch is
    taken by the next), the next batch is already polled. Offsets are committed strictly in
    poll order, and only for batches whose outputs are acknowledged, so a crash redelivers every
    batch that was not finished. When that many batches are uncommitted, polling waits for the
    oldest (backpressure). A record that does not parse as `message_type`, or whose handling
    still raises after `settings.handler_attempts` attempts alone, goes to the dead-letter topic
    with DEAD_LETTER_HEADERS and is committed; the loop goes on. An output larger than the broker
    accepts counts as a handling failure of its batch (OutputTooLarge). When `produces` is None
    (the last stage) the handler's outputs are discarded.

    Transient errors (`is_transient`: MongoDB or the broker away) count against no attempt
    and dead-letter nothing: the handler call, or the publishing of the batch's outputs, is
    retried with capped exponential backoff (from `retry_backoff_s`) until it succeeds or stop
    is set; then the batch is left uncommitted for a restart or a replica to handle again.
    """

    def __init__(
        self,
        settings: ServiceSettings,
        service: ServiceName,
        consumes: Topic,
        message_type: type[M],
        produces: Topic | None,
        handler: Handler[M],
        metrics: ServiceMetrics,
        *,
        producer: EventProducer | None = None,
        retry_backoff_s: float = 0.5,
        poll_timeout_s: float = 0.5,
    ) -> None:
        if message_type not in _KEYED_TYPES:
            raise TypeError(f"StageLoop: {message_type.__name__} is not an arena event "
                            f"(expected one of {', '.join(t.__name__ for t in _KEYED_TYPES)})")
        if consumes in (produces, Topic.DEAD_LETTER):
            raise ValueError(f"StageLoop: cannot consume {consumes.value!r}: it must differ "
                             "from the produced topic and from the dead-letter topic")
        if retry_backoff_s < 0 or poll_timeout_s <= 0:
            raise ValueError("StageLoop: retry_backoff_s must be >= 0 and poll_timeout_s > 0")
        self.settings = settings
        self.service = service
        self.consumes = consumes
        self.message_type = message_type
        self.produces = produces
        self.handler = handler
        self.metrics = metrics
        self.retry_backoff_s = retry_backoff_s
        self.poll_timeout_s = poll_timeout_s
        self._producer = producer
        self._topic = settings.topic(consumes)
        self._ready = asyncio.Event()
        self._assignment: frozenset[int] = frozenset()
        self._stop: asyncio.Event | None = None

    @property
    def ready(self) -> asyncio.Event:
        """Set once the consumer got partitions assigned for the first time."""
        return self._ready

    @property
    def assignment(self) -> frozenset[int]:
        """Partitions of the consumed topic this instance owns right now."""
        return self._assignment

    def _set_assignment(self, partitions: frozenset[int], dropped: Iterable[TopicPartition]) -> None:
        self._assignment = partitions
        for tp in dropped:
            self.metrics.forget_partition(tp.topic, tp.partition)

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until `stop` is set, then finish the batches in flight, commit and
        leave the group.

        Cancelled mid-batch, or stopped while a batch waits for an outage to end, nothing of
        that batch (nor of any later batch) is committed: a replica or a restart gets it again.
        Other broker failures (produce refused for good, commit refused for reasons other than
        a rebalance) propagate: the process should exit and be restarted.
        """
        loop = asyncio.get_running_loop()
        worker = ThreadPoolExecutor(1, thread_name_prefix=f"kafka-{self.service}")

        async def on_worker(fn: Callable[..., Any], *args: Any) -> Any:
            return await loop.run_in_executor(worker, fn, *args)

        own_producer = self._producer is None
        consumer: KafkaConsumer | None = None
        # Polled batches in poll order, each with the task handling it; committed from the left.
        in_flight: deque[tuple[list[ConsumerRecord], asyncio.Task[None]]] = deque()
        self._stop = stop
        try:
            if self._producer is None:
                self._producer = await asyncio.to_thread(
                    EventProducer, self.settings, client_id=f"warriorcoder-{self.service}")
            producer = self._producer
            consumer = await on_worker(self._open_consumer)
            abandoned = False
            while not stop.is_set() and not abandoned:
                if len(in_flight) >= self.settings.kafka_max_inflight_batches:
                    await asyncio.wait([in_flight[0][1]])
                else:
                    records = await on_worker(self._poll, consumer)
                    if self._assignment:
                        self._ready.set()
                    if records:
                        task = asyncio.create_task(self._process(records, producer))
                        in_flight.append((records, task))
                abandoned = await self._commit_finished(in_flight, consumer, on_worker)
            if in_flight and not abandoned:
                await asyncio.wait([task for _, task in in_flight])
                await self._commit_finished(in_flight, consumer, on_worker)
        finally:
            for _, task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.gather(*(task for _, task in in_flight), return_exceptions=True)
            if consumer is not None:
                # Leaves the group at once, so a replica takes the partitions over fast.
                await on_worker(consumer.close, False)
            worker.shutdown(wait=False)
            if own_producer and self._producer is not None:
                await asyncio.to_thread(self._producer.close)
                self._producer = None

    async def _commit_finished(
        self,
        in_flight: deque[tuple[list[ConsumerRecord], asyncio.Task[None]]],
        consumer: KafkaConsumer,
        on_worker: Callable[..., Awaitable[Any]],
    ) -> bool:
        """Commit the finished batches at the head of `in_flight`, in poll order. True when the
        head batch was abandoned (stop during an outage): nothing from it on is committed.
        A handler or publish failure that is not the message's fault propagates."""
        done: list[ConsumerRecord] = []
        abandoned = False
        while in_flight and in_flight[0][1].done():
            records, task = in_flight[0]
            if isinstance(task.exception(), _Abandoned):
                log.warning("%s: stopping during an outage; %d records left uncommitted",
                            self.service, sum(len(r) for r, _ in in_flight))
                abandoned = True
                break
            task.result()  # raises what the batch could not survive
            in_flight.popleft()
            done.extend(records)
        if done:
            await on_worker(self._commit, consumer, done)
        return abandoned

    # -- consumer calls (on the worker thread) ------------------------------------------------

    def _open_consumer(self) -> KafkaConsumer:
        s = self.settings
        consumer = KafkaConsumer(
            bootstrap_servers=_bootstrap(s),
            client_id=f"warriorcoder-{self.service}",
            group_id=s.group(self.service),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=s.kafka_poll_max_records,
            session_timeout_ms=s.kafka_session_timeout_ms,
            heartbeat_interval_ms=s.kafka_heartbeat_interval_ms,
        )
        consumer.subscribe([self._topic], listener=_AssignmentListener(self))
        return consumer

    def _poll(self, consumer: KafkaConsumer) -> list[ConsumerRecord]:
        by_partition = consumer.poll(timeout_ms=int(self.poll_timeout_s * 1000),
                                     max_records=self.settings.kafka_poll_max_records)
        records = [r for batch in by_partition.values() for r in batch]
        if records:
            self.metrics.count_consumed(self._topic, len(records))
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            position = consumer.position(tp, timeout_ms=1000) if high is not None else None
            if high is not None and position is not None:
                self.metrics.set_consumer_lag(tp.topic, tp.partition, max(0, high - position))
        return records

    def _commit(self, consumer: KafkaConsumer, records: Sequence[ConsumerRecord]) -> None:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for r in records:
            tp = TopicPartition(r.topic, r.partition)
            if tp not in offsets or offsets[tp].offset <= r.offset:
                offsets[tp] = OffsetAndMetadata(r.offset + 1, "", -1)
        try:
            consumer.commit(offsets)
        except (kafka_errors.CommitFailedError, kafka_errors.RebalanceInProgressError,
                kafka_errors.IllegalGenerationError, kafka_errors.UnknownMemberIdError) as exc:
            # The partitions moved to another member while we worked: it gets the batch again,
            # and the idempotent stages make the second pass harmless.
            log.warning("%s: commit of %d records refused after a rebalance: %s",
                        self.service, len(records), exc)

    # -- one batch ----------------------------------------------------------------------------

    async def _process(self, records: list[ConsumerRecord], producer: EventProducer) -> None:
        decoded: list[tuple[ConsumerRecord, M]] = []
        dead: list[_DeadLetter] = []
        for record in records:
            try:
                decoded.append((record, self._decode(record)))
            except (DecodeError, ValueError) as exc:
                dead.append(_DeadLetter(record, f"cannot parse {self.message_type.__name__}: "
                                                f"{exc}"))
        outputs, failed = await self._handle(decoded)
        dead.extend(failed)
        if self.produces is None:
            outputs = []
        if outputs or dead:
            await self._publish_through_outages(producer, outputs, dead)
        if self.produces is not None and outputs:
            self.metrics.count_produced(self.settings.topic(self.produces), len(outputs))
        if dead:
            self.metrics.count_dead_lettered(self._topic, len(dead))

    async def _publish_through_outages(self, producer: EventProducer,
                                       outputs: Sequence[tuple[bytes, bytes]],
                                       dead: Sequence[_DeadLetter]) -> None:
        """Publish, retrying while the broker is away. A retry may send some records twice;
        the idempotent stages downstream make that harmless."""
        records = [OutgoingRecord(self.produces, value, key)
                   for value, key in outputs if self.produces is not None]
        for letter in dead:
            records.append(OutgoingRecord(Topic.DEAD_LETTER, letter.record.value or b"",
                                          letter.record.key, tuple(self._headers(letter))))
            log.warning("%s: dead-lettered %s[%d]@%d: %s", self.service, letter.record.topic,
                        letter.record.partition, letter.record.offset, letter.error)
        outages = 0
        while True:
            try:
                # send can block on topic metadata, flush on acks: both off the event loop
                await asyncio.to_thread(producer.publish_records, records)
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise
                outages += 1
                await self._wait_out(exc, outages, "publishing a batch")

    async def _wait_out(self, exc: BaseException, outages: int, doing: str) -> None:
        """Back off after the `outages`-th transient failure in a row; _Abandoned if stop is
        set before or during the wait."""
        stop = self._stop
        delay = min(_MAX_OUTAGE_BACKOFF_S, self.retry_backoff_s * 2 ** min(outages - 1, 20))
        log.warning("%s: %s failed on infrastructure (%s); retry %d in %.2fs",
                    self.service, doing, _describe(exc), outages, delay)
        if stop is None:
            await asyncio.sleep(delay)
            return
        if not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                return
        raise _Abandoned(doing)

    def _decode(self, record: ConsumerRecord) -> M:
        if record.value is None:
            raise ValueError("record has no value")
        message = self.message_type.FromString(record.value)
        message_key(message)  # every event names its challenge; garbage often parses as empty
        return message

    async def _handle(
        self, decoded: list[tuple[ConsumerRecord, M]]
    ) -> tuple[list[tuple[bytes, bytes]], list[_DeadLetter]]:
        """Outputs of the whole batch, or, if it keeps failing, of each message alone."""
        if not decoded:
            return [], []
        batch = [message for _, message in decoded]
        try:
            return await self._attempts(batch), []
        except _Abandoned:
            raise
        except Exception as exc:  # noqa: BLE001 - any handler error: narrow it down per message
            if len(decoded) == 1:
                return [], [_DeadLetter(decoded[0][0], _describe(exc))]
            log.warning("%s: batch of %d failed (%s); retrying each message alone",
                        self.service, len(batch), _describe(exc))
        outputs: list[tuple[bytes, bytes]] = []
        dead: list[_DeadLetter] = []
        for record, message in decoded:
            try:
                outputs.extend(await self._attempts([message]))
            except _Abandoned:
                raise
            except Exception as exc:  # noqa: BLE001 - this message alone fails: dead-letter it
                dead.append(_DeadLetter(record, _describe(exc)))
        return outputs, dead

    async def _attempts(self, batch: list[M]) -> list[tuple[bytes, bytes]]:
        """Run the handler up to handler_attempts times with exponential backoff; encoded
        outputs (value, key). An output that cannot be encoded counts as a failed attempt.
        Transient failures use up no attempt: they are retried until the handler succeeds
        (or _Abandoned when stop is set)."""
        attempts = self.settings.handler_attempts
        attempt = 0
        outages = 0
        while True:
            try:
                with self.metrics.time_handler():
                    outputs = await self.handler(batch)
                return [self._encode(o) for o in outputs]
            except Exception as exc:
                self.metrics.count_failed(self._topic, len(batch))
                if is_transient(exc):
                    outages += 1
                    await self._wait_out(exc, outages, f"handling {len(batch)} messages")
                    continue
                outages = 0
                attempt += 1
                if attempt >= attempts:
                    raise
                delay = min(_MAX_BACKOFF_S, self.retry_backoff_s * 2 ** (attempt - 1))
                log.info("%s: handler attempt %d/%d on %d messages failed (%s); retry in %.2fs",
                         self.service, attempt, attempts, len(batch), _describe(exc), delay)
                await asyncio.sleep(delay)

    def _encode(self, output: Message) -> tuple[bytes, bytes]:
        value = output.SerializeToString()
        limit = self.settings.kafka_max_message_bytes - _RECORD_OVERHEAD_BYTES
        if len(value) > limit:
            raise OutputTooLarge(f"{type(output).__name__} of {len(value)} bytes is over the "
                                 f"{limit}-byte limit (kafka_max_message_bytes "
                                 f"{self.settings.kafka_max_message_bytes})")
        return value, message_key(output)

    def _headers(self, letter: _DeadLetter) -> list[tuple[str, bytes]]:
        r = letter.record
        values = (letter.error[:_MAX_ERROR_CHARS], r.topic, str(r.partition), str(r.offset),
                  self.service)
        return [(name, value.encode()) for name, value in zip(DEAD_LETTER_HEADERS, values,
                                                               strict=True)]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
