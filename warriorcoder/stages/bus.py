"""The bus between stages. The embedded run uses `InMemoryBus`; the distributed services use
Kafka topics of the same names, carrying the same protobuf events."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
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

    def poll(
        self,
        topic: Topic,
        max_records: int,
        *,
        group: Callable[[Message], str] | None = None,
    ) -> list[Message]:
        """Up to `max_records` of the oldest events of `topic`, removed from it.

        With `group`, consecutive events of the same key are never split between two polls:
        the poll takes whole groups, and at least one (which may hold more than `max_records`
        events). The judge stage relies on it: a challenge's tournament is continued by the
        batch that judged its opening battles, so they must be in one batch.
        """
        queue = self._queues[topic]
        out = [queue.popleft() for _ in range(min(max_records, len(queue)))]
        if group is None or not out or not queue:
            return out
        last = group(out[-1])
        if group(queue[0]) != last:
            return out
        if group(out[0]) != last:  # give the cut group back whole; it starts the next poll
            while group(out[-1]) == last:
                queue.appendleft(out.pop())
            return out
        while queue and group(queue[0]) == last:  # one group larger than max_records
            out.append(queue.popleft())
        return out

    def pending(self, topic: Topic) -> int:
        return len(self._queues[topic])
