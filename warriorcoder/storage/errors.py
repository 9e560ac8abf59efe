"""Which errors of the store's driver are an outage (retry later) rather than a fault."""

from __future__ import annotations

import pymongo.errors as mongo_errors

# Error labels MongoDB servers put on errors that a retry can fix.
_TRANSIENT_LABELS = ("RetryableWriteError", "TransientTransactionError")


def is_store_outage(exc: BaseException) -> bool:
    """Whether `exc` itself says MongoDB is away for now: pymongo's ConnectionFailure and its
    subclasses (AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError, NotPrimaryError,
    WaitQueueTimeoutError), or an error labelled RetryableWriteError or
    TransientTransactionError. A duplicate key, a bad query or a document too large is not.
    Causes are not followed here (service.errors.is_transient does that)."""
    if isinstance(exc, mongo_errors.ConnectionFailure):
        return True
    return isinstance(exc, mongo_errors.PyMongoError) and any(
        exc.has_error_label(label) for label in _TRANSIENT_LABELS
    )
