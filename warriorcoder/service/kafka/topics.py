"""Kafka topics of the arena: creating them, and the key that keeps one battle's events in
order on one partition."""

from __future__ import annotations

import logging
from collections.abc import Iterable

import kafka.errors as kafka_errors
from google.protobuf.message import Message
from kafka.admin import KafkaAdminClient

from warriorcoder.service.security import kafka_client_options
from warriorcoder.service.settings import ServiceSettings
from warriorcoder.v1 import arena_pb2

__all__ = ["KEYED_TYPES", "bootstrap_servers", "ensure_topics", "message_key"]

log = logging.getLogger(__name__)

# The arena events: each names the challenge it belongs to.
KEYED_TYPES = (arena_pb2.Challenge, arena_pb2.ResponsePair, arena_pb2.RatedBattle,
               arena_pb2.BattleJudgments)


def bootstrap_servers(settings: ServiceSettings) -> list[str]:
    """The brokers of settings.kafka_bootstrap_servers; ValueError when there are none."""
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
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(settings),
                             **kafka_client_options(settings),
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
                        f"(expected one of {', '.join(t.__name__ for t in KEYED_TYPES)})")
    if not challenge_id:
        raise ValueError(f"message_key: {type(message).__name__} has no challenge_id")
    return challenge_id.encode()

