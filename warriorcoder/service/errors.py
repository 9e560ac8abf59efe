"""Error classification of the services: an infrastructure outage (retry later, never the
message's or the client's fault) or anything else.

The store and the broker name their own outage errors (`storage.errors`,
`service.kafka.producer`); this module only follows the chain of causes. The stage loop retries
a transient failure without using up an attempt, and the gRPC error interceptor answers
UNAVAILABLE for it.
"""

from __future__ import annotations

from warriorcoder.service.kafka.producer import DeliveryError, is_broker_outage
from warriorcoder.storage.errors import is_store_outage

__all__ = ["is_transient"]


def is_transient(exc: BaseException) -> bool:
    """Whether `exc` is an infrastructure outage that retrying later fixes, not a fault of the
    message or request being handled.

    Transient: a store outage (`is_store_outage`), a broker error that Kafka marks retriable
    (`is_broker_outage`), a DeliveryError whose failed records all failed that way (or that
    timed out). An exception raised `from` a transient one counts as transient too. Everything
    else (a duplicate key, a record too large, a bug) is not.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # a chain of `raise ... from`
        seen.add(id(current))
        if is_store_outage(current) or is_broker_outage(current):
            return True
        if isinstance(current, DeliveryError):
            return all(is_transient(cause) for cause in current.causes)
        current = current.__cause__
    return False
