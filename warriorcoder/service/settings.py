"""One frozen settings object per service process, loaded once in main() and passed down.

Values come from the environment (prefix ``WARRIORCODER_``, e.g. ``WARRIORCODER_MONGO_URI``) or
from an env file given with ``--settings``. Nothing else in the services reads the environment.
Secrets are SecretStr: printed as '**********'.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ServiceName = Literal["challenger", "responder", "judge", "rater", "exporter"]


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WARRIORCODER_", frozen=True, extra="forbid")

    # The arena YAML (roster, stage settings); the same file for every service of an arena.
    arena_config: Path
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Prepended to every topic name (e.g. "prod." or a unique prefix per test).
    kafka_topic_prefix: str = ""
    # Consumer group of a service: "{kafka_group_prefix}.{service}" (replicas share it).
    kafka_group_prefix: str = "warriorcoder"
    # Partitions of topics created at start-up: the most replicas that can share a stage.
    kafka_partitions: int = Field(4, ge=1)
    kafka_replication_factor: int = Field(1, ge=1)
    # Messages handed to a stage at once (sized to keep the model servers' slots busy).
    kafka_poll_max_records: int = Field(16, ge=1)
    # Polled batches handled at once: the next batch is polled while earlier ones wait on the
    # model servers, so their slots never idle between batches. Also bounds what a crash
    # hands back for redelivery: at most this many batches.
    kafka_max_inflight_batches: int = Field(4, ge=1, le=64)
    # Largest event a service produces (the producer's max_request_size; keep it at or under
    # the broker's message.max.bytes). A larger output dead-letters the input it came from.
    kafka_max_message_bytes: int = Field(1048576, ge=16384)
    kafka_session_timeout_ms: int = Field(10000, ge=1000)
    kafka_heartbeat_interval_ms: int = Field(1000, ge=100)
    mongo_uri: SecretStr = SecretStr("mongodb://127.0.0.1:27017")
    mongo_database: str = "warriorcoder"
    grpc_host: str = "0.0.0.0"
    grpc_port: int = Field(50051, ge=0, le=65535)
    metrics_port: int = Field(9400, ge=0, le=65535)
    # Attempts at a batch before its messages go to the dead-letter topic one by one.
    handler_attempts: int = Field(3, ge=1)
    # Seconds in-flight work gets to finish after SIGTERM.
    shutdown_grace_s: float = Field(20.0, ge=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def topic(self, name: str) -> str:
        return f"{self.kafka_topic_prefix}{name}"

    def group(self, service: ServiceName) -> str:
        return f"{self.kafka_group_prefix}.{service}"


def load_settings(env_file: Path | None = None) -> ServiceSettings:
    """Settings from the environment, overlaid on an optional env file."""
    if env_file is not None and not env_file.is_file():
        raise FileNotFoundError(f"settings file {env_file} not found")
    return ServiceSettings(_env_file=env_file)  # type: ignore[call-arg]
