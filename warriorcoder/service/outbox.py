"""The challenger's outbox: no challenge stays stored without being published.

The challenger stores each challenge marked as not yet published, in the same document write
(`ArenaStore.save_challenges_unpublished`). `ChallengeOutbox.publish` sends challenges and, once
the broker has acknowledged a chunk, clears the mark of that chunk. Whatever a crash, a broker
outage or a lost reply leaves marked is published again by `drain`: when the service starts,
every `interval_s` while it runs, and when a client resubmits the instructions. Publishing twice
is harmless: every stage keys its work by deterministic ids.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable, Sequence

from warriorcoder.service.errors import is_transient
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

log = logging.getLogger(__name__)

# Publishes a batch of challenges and returns once the broker has acknowledged every one.
Publish = Callable[[Sequence[arena_pb2.Challenge]], None]
# Challenges per publish-then-mark step: a crash republishes at most this many twice.
PUBLISH_CHUNK = 500
# Seconds between two looks at the outbox while the service runs, and after a failed one.
DRAIN_INTERVAL_S = 30.0
DRAIN_RETRY_S = 5.0


def crash_point(at: str) -> Callable[[str], None]:
    """A checkpoint that kills this process (SIGKILL: no cleanup of any kind) when it reaches
    the point named `at` ("" never): fault injection for the tests of the challenger."""

    def checkpoint(name: str) -> None:
        if at and name == at:
            log.warning("fault injection: killing the process at %r", name)
            os.kill(os.getpid(), signal.SIGKILL)

    return checkpoint


class ChallengeOutbox:
    """Publishes challenges and clears their not-yet-published mark once acknowledged.
    Producing runs on a worker thread, the store through `ArenaStore.call`."""

    def __init__(
        self,
        store: ArenaStore,
        publish: Publish,
        *,
        checkpoint: Callable[[str], None] = lambda name: None,
        chunk: int = PUBLISH_CHUNK,
    ) -> None:
        self.store = store
        self._publish = publish
        self.checkpoint = checkpoint
        self.chunk = chunk

    async def publish(self, challenges: Sequence[arena_pb2.Challenge]) -> None:
        """Publish `challenges` (DeliveryError when the broker did not take them all: they stay
        marked and are published again by the next drain), clearing each chunk's mark after its
        acknowledgement."""
        for start in range(0, len(challenges), self.chunk):
            part = challenges[start : start + self.chunk]
            await asyncio.to_thread(self._publish, part)  # waits for the broker's acks
            self.checkpoint("published")
            await self.store.call(self.store.mark_published, [c.challenge_id for c in part])

    async def drain(self) -> int:
        """Publish every stored challenge (of any round) still marked as not published;
        returns how many were published."""
        published = 0
        last: list[str] = []
        while True:
            pending = await self.store.call(self.store.unpublished_challenges, self.chunk)
            ids = [c.challenge_id for c in pending]
            if not pending or ids == last:
                # Nothing left, or the marks did not clear (a store that ignored the update):
                # stop rather than publish the same chunk forever; the next drain retries.
                return published
            await self.publish(pending)
            published += len(pending)
            last = ids

    async def run(self, interval_s: float = DRAIN_INTERVAL_S,
                  retry_s: float = DRAIN_RETRY_S) -> None:
        """Drain now and then every `interval_s` until cancelled; a failed drain (broker or
        store away) is tried again after `retry_s`."""
        while True:
            try:
                published = await self.drain()
            except Exception as exc:
                # An outage is expected now and then; anything else is a bug worth a traceback.
                log.log(logging.WARNING if is_transient(exc) else logging.ERROR,
                        "outbox: publishing stored challenges failed, retrying in %gs: %s",
                        retry_s, exc, exc_info=not is_transient(exc))
                await asyncio.sleep(retry_s)
                continue
            if published:
                log.info("outbox: published %d stored challenges the broker had not "
                         "acknowledged", published)
            await asyncio.sleep(interval_s)
