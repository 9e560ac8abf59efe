"""The stage loop of a distributed service: poll -> handle -> produce -> commit.

Delivery is at-least-once: a batch's offsets are committed only after its outputs (and its
dead letters) are acknowledged by the broker, and after every batch polled before it, so a
process killed at any point redelivers what it had not finished. The stages are idempotent,
which turns that into effectively-once results.

kafka-python is synchronous. Every consumer call runs on one dedicated worker thread (calls
stay in order and never overlap, as the consumer requires) and producer flushes run via
`asyncio.to_thread`, so the service's event loop (gRPC server, async stage handlers) never
blocks on the broker.

Infrastructure errors are not a message's fault: while MongoDB or the broker is away
(`service.errors.is_transient`), a batch is retried with capped exponential backoff until it
goes through or the service stops, and is never dead-lettered for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import kafka.errors as kafka_errors
from google.protobuf.message import DecodeError, Message
from kafka import KafkaConsumer
from kafka.consumer.fetcher import ConsumerRecord
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.structs import OffsetAndMetadata, TopicPartition

from warriorcoder.service.errors import is_transient
from warriorcoder.service.kafka.producer import EventProducer, OutgoingRecord
from warriorcoder.service.kafka.topics import KEYED_TYPES, bootstrap_servers, message_key
from warriorcoder.service.metrics import ServiceMetrics
from warriorcoder.service.security import kafka_client_options
from warriorcoder.service.settings import ServiceName, ServiceSettings
from warriorcoder.stages.bus import Topic
from warriorcoder.stages.scheduling import BatchWindow

__all__ = ["DEAD_LETTER_HEADERS", "Handler", "OutputTooLarge", "StageLoop"]

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


class OutputTooLarge(ValueError):
    """A handler produced an event larger than the broker accepts: the input's fault, so it is
    dead-lettered instead of failing every later publish."""


class _Abandoned(Exception):
    """Stop was set while a batch waited for an outage to end: the batch stays uncommitted."""


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

    Batches are pipelined (`stages.scheduling.BatchWindow`, the scheduler the embedded run uses
    too): while up to `settings.kafka_max_inflight_batches` batches are in the handler (their
    model requests share the backends' slots, so a slot freed by one batch is taken by the
    next), the next batch is already polled. Offsets are committed strictly in
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
        if message_type not in KEYED_TYPES:
            raise TypeError(f"StageLoop: {message_type.__name__} is not an arena event "
                            f"(expected one of {', '.join(t.__name__ for t in KEYED_TYPES)})")
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

    def _set_assignment(
        self, partitions: frozenset[int], dropped: Iterable[TopicPartition]
    ) -> None:
        self._assignment = partitions
        for tp in dropped:
            self.metrics.forget_partition(tp.topic, tp.partition)

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until `stop` is set, then finish the batches in flight, commit and
        leave the group.

        Cancelled mid-batch, or stopped while a batch waits for an outage to end, nothing of
        that batch (nor of any later batch) is committed: a replica or a restart gets it again.
        Polls and commits that fail while the broker is away (a broker restart) are retried
        like publishes, so the service rides the outage out instead of exiting. Other broker
        failures (produce refused for good, commit refused for reasons other than
        a rebalance) propagate: the process should exit and be restarted.
        """
        loop = asyncio.get_running_loop()
        worker = ThreadPoolExecutor(1, thread_name_prefix=f"kafka-{self.service}")

        async def on_worker(fn: Callable[..., Any], *args: Any) -> Any:
            return await loop.run_in_executor(worker, fn, *args)

        own_producer = self._producer is None
        consumer: KafkaConsumer | None = None
        # Polled batches in poll order, each with the task handling it; committed from the head.
        in_flight: BatchWindow[list[ConsumerRecord], None] = BatchWindow(
            self.settings.kafka_max_inflight_batches)
        self._stop = stop
        try:
            if self._producer is None:
                self._producer = await asyncio.to_thread(
                    EventProducer, self.settings, client_id=f"warriorcoder-{self.service}")
            producer = self._producer
            consumer = await on_worker(self._open_consumer)
            abandoned = False
            while not stop.is_set() and not abandoned:
                if in_flight.full:
                    await in_flight.wait_head()
                else:
                    try:
                        records = await self._through_outages(
                            lambda: on_worker(self._poll, consumer), "polling")
                    except _Abandoned:
                        break
                    if self._assignment:
                        self._ready.set()
                    if records:
                        in_flight.start(records, self._process(records, producer))
                abandoned = await self._commit_finished(in_flight, consumer, on_worker)
            if in_flight and not abandoned:
                await asyncio.wait(in_flight.tasks)
                await self._commit_finished(in_flight, consumer, on_worker)
        finally:
            await in_flight.cancel()
            if consumer is not None:
                # Leaves the group at once, so a replica takes the partitions over fast.
                await on_worker(consumer.close, False)
            worker.shutdown(wait=False)
            if own_producer and self._producer is not None:
                await asyncio.to_thread(self._producer.close)
                self._producer = None

    async def _commit_finished(
        self,
        in_flight: BatchWindow[list[ConsumerRecord], None],
        consumer: KafkaConsumer,
        on_worker: Callable[..., Awaitable[Any]],
    ) -> bool:
        """Commit the finished batches at the head of `in_flight`, in poll order. True when the
        head batch was abandoned (stop during an outage): nothing from it on is committed.
        A handler or publish failure that is not the message's fault propagates."""
        done: list[ConsumerRecord] = []
        abandoned = False
        while (head := in_flight.head()) is not None and head[1].done():
            records, task = head
            if isinstance(task.exception(), _Abandoned):
                log.warning("%s: stopping during an outage; %d records left uncommitted",
                            self.service, sum(len(r) for r in in_flight.batches))
                abandoned = True
                break
            task.result()  # raises what the batch could not survive
            in_flight.pop_head()
            done.extend(records)
        if done:
            try:
                # The coordinator may be away (broker restart): wait for it like a publish does.
                await self._through_outages(lambda: on_worker(self._commit, consumer, done),
                                            f"committing {len(done)} records")
            except _Abandoned:
                log.warning("%s: stopping during an outage; %d handled records left "
                            "uncommitted", self.service, len(done))
                return True
        return abandoned

    async def _through_outages(self, call: Callable[[], Awaitable[Any]], doing: str) -> Any:
        """`call()`, retried with backoff while it fails on infrastructure (`is_transient`);
        _Abandoned when stop is set during an outage. Other errors propagate."""
        outages = 0
        while True:
            try:
                return await call()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                outages += 1
                await self._wait_out(exc, outages, doing)

    # -- consumer calls (on the worker thread) ------------------------------------------------

    def _open_consumer(self) -> KafkaConsumer:
        s = self.settings
        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers(s),
            **kafka_client_options(s),
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
