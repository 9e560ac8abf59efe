"""The producer of arena events, and which of its errors are a broker outage."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import kafka.errors as kafka_errors
from google.protobuf.message import Message
from kafka import KafkaProducer

from warriorcoder.service.kafka.topics import bootstrap_servers, message_key
from warriorcoder.service.security import kafka_client_options
from warriorcoder.service.settings import ServiceSettings
from warriorcoder.stages.bus import Topic

__all__ = ["DeliveryError", "EventProducer", "OutgoingRecord", "is_broker_outage"]


class DeliveryError(RuntimeError):
    """The broker did not acknowledge produced records (nothing of the batch is committed).

    `causes` are the errors of the records that failed (empty when the flush timed out).
    """

    def __init__(self, message: str, causes: Sequence[BaseException] = ()) -> None:
        super().__init__(message)
        self.causes = tuple(causes)



def is_broker_outage(exc: BaseException) -> bool:
    """Whether `exc` itself is a Kafka error that retrying later fixes (KafkaTimeoutError,
    KafkaConnectionError, NodeNotReadyError, leader changes...: what kafka-python marks
    retriable). Causes are not followed here (service.errors.is_transient does that)."""
    return isinstance(exc, kafka_errors.KafkaError) and bool(exc.retriable)


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
            bootstrap_servers=bootstrap_servers(settings),
            **kafka_client_options(settings),
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

