"""The bus between stages. The embedded run uses `InMemoryBus`; the distributed services use
Kafka topics of the same names, carrying the same protobuf events."""

from __future__ import annotations

from collections import defaultdict, deque
from enum import StrEnum

from google.protobuf.message import Message


class Topic(StrEnum):
    CHALLENGES = "challenges"  # Challenge -> responder
    RESPONSES = "responses"  # ResponsePair -> judge
    JUDGMENTS = "judgments"  # BattleJudgments -> rater
    BATTLES = "battles"  # RatedBattle -> exporter
    DEAD_LETTER = "dead-letter"


class InMemoryBus:
    """FIFO topics inside one process."""

    def __init__(self) -> None:
        self._queues: dict[Topic, deque[Message]] = defaultdict(deque)

    def publish(self, topic: Topic, message: Message) -> None:
        self._queues[topic].append(message)

    def poll(self, topic: Topic, max_records: int) -> list[Message]:
        queue = self._queues[topic]
        return [queue.popleft() for _ in range(min(max_records, len(queue)))]

    def pending(self, topic: Topic) -> int:
        return len(self._queues[topic])
