"""One frozen settings object per service process, loaded once in main() and passed down.

Values come from the environment (prefix ``WARRIORCODER_``, e.g. ``WARRIORCODER_MONGO_URI``) or
from an env file given with ``--settings``. Nothing else in the services reads the environment.
Secrets are SecretStr: printed as '**********'.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
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
    # Broker security (service/security.py checks the combinations and passes them to every
    # Kafka client): SSL encrypts, SASL authenticates, SASL_SSL does both.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = (
        "PLAINTEXT")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # PEM files: the CA that signed the brokers' certificates (default: the system's), and a
    # client certificate and key for brokers that require one.
    kafka_ssl_ca_file: Path | None = None
    kafka_ssl_cert_file: Path | None = None
    kafka_ssl_key_file: Path | None = None
    kafka_ssl_check_hostname: bool = True
    mongo_uri: SecretStr = SecretStr("mongodb://127.0.0.1:27017")
    mongo_database: str = "warriorcoder"
    # TLS to MongoDB (on as well when the URI says tls=true); a CA file or a client
    # certificate+key PEM file switches it on too.
    mongo_tls: bool = False
    mongo_tls_ca_file: Path | None = None
    mongo_tls_certificate_key_file: Path | None = None
    # Loopback by default; in a pod it must be 0.0.0.0, and a service that listens beyond
    # loopback refuses to start without a token or client certificates (or the explicit
    # grpc_allow_unauthenticated): see service/security.py.
    grpc_host: str = "127.0.0.1"
    grpc_port: int = Field(50051, ge=0, le=65535)
    # Server certificate chain and key (PEM): the API port then speaks TLS only.
    grpc_tls_cert_file: Path | None = None
    grpc_tls_key_file: Path | None = None
    # With it, every client must present a certificate this CA signed (mutual TLS).
    grpc_tls_client_ca_file: Path | None = None
    # Bearer token that the RPCs which write (StartRound, SubmitInstructions, Respond,
    # JudgeBattle, WriteExport) require in the `authorization` metadata.
    grpc_token: SecretStr | None = None
    # Comma-separated client certificate identities (SAN, else CN) that may call the RPCs which
    # write over mutual TLS; empty: any certificate the client CA signed.
    grpc_writer_identities: str = ""
    # Lets a service listen beyond loopback with no token and no client certificates.
    grpc_allow_unauthenticated: bool = False
    # A second, plaintext listener that serves only the health service (kubelet gRPC probes
    # speak no TLS); unset: none.
    grpc_health_port: int | None = Field(None, ge=0, le=65535)
    metrics_port: int = Field(9400, ge=0, le=65535)
    # The battle viewer (read-only web pages over the store, docs/viewer.md), served by the
    # rater on this port; unset: off. Loopback unless viewer_host says otherwise (a pod: 0.0.0.0;
    # the pages have no login, so expose them only behind an authenticating ingress).
    viewer_port: int | None = Field(None, ge=0, le=65535)
    viewer_host: str = "127.0.0.1"
    # Attempts at a batch before its messages go to the dead-letter topic one by one.
    handler_attempts: int = Field(3, ge=1)
    # Seconds in-flight work gets to finish after SIGTERM.
    shutdown_grace_s: float = Field(20.0, ge=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Exporter: the folder every WriteExport writes under (created at start-up; a relative
    # path is taken from the working directory). output_dir is a path under it; nothing is
    # ever written outside it (docs/exports.md).
    export_root: Path = Path("exports")
    # Fault injection, for tests only: the challenger kills itself (SIGKILL) when it reaches
    # this point of storing and publishing challenges. "claimed": dedup index written,
    # challenges not stored; "stored": stored, not published; "published": published, not yet
    # marked as published. Empty: never.
    fault_crash_at: Literal["", "claimed", "stored", "published"] = ""

    @model_validator(mode="after")
    def _check_security(self) -> ServiceSettings:
        check_security_settings(self)
        return self

    def writer_identities(self) -> frozenset[str]:
        """The client certificate identities of grpc_writer_identities."""
        return frozenset(n.strip() for n in self.grpc_writer_identities.split(",") if n.strip())

    def topic(self, name: str) -> str:
        return f"{self.kafka_topic_prefix}{name}"

    def group(self, service: ServiceName) -> str:
        return f"{self.kafka_group_prefix}.{service}"


def is_loopback(host: str) -> bool:
    """Whether binding `host` listens on loopback only ("0.0.0.0", "::" and "" do not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def _missing_files(settings: ServiceSettings, names: Iterable[str]) -> list[str]:
    out = []
    for name in names:
        path: Path | None = getattr(settings, name)
        if path is not None and not path.is_file():
            out.append(f"{name}: {path} is not a file")
    return out


def check_security_settings(settings: ServiceSettings) -> None:
    """ValueError naming every inconsistent security setting: half a TLS key pair, a client CA
    without server TLS, SASL without its credentials, a missing file, or a service exposed
    beyond loopback with no way to authenticate writers."""
    problems = _missing_files(settings, (
        "grpc_tls_cert_file", "grpc_tls_key_file", "grpc_tls_client_ca_file",
        "kafka_ssl_ca_file", "kafka_ssl_cert_file", "kafka_ssl_key_file",
        "mongo_tls_ca_file", "mongo_tls_certificate_key_file",
    ))
    if (settings.grpc_tls_cert_file is None) != (settings.grpc_tls_key_file is None):
        problems.append("grpc_tls_cert_file and grpc_tls_key_file go together: set both or none")
    if settings.grpc_tls_client_ca_file is not None and settings.grpc_tls_cert_file is None:
        problems.append("grpc_tls_client_ca_file needs server TLS (grpc_tls_cert_file and "
                        "grpc_tls_key_file)")
    if settings.writer_identities() and settings.grpc_tls_client_ca_file is None:
        problems.append("grpc_writer_identities needs client certificates "
                        "(grpc_tls_client_ca_file)")
    if settings.grpc_token is not None and not settings.grpc_token.get_secret_value().strip():
        problems.append("grpc_token is blank: unset it or give a token")
    protocol = settings.kafka_security_protocol
    sasl = protocol.startswith("SASL_")
    sasl_values = {"kafka_sasl_mechanism": settings.kafka_sasl_mechanism,
                   "kafka_sasl_username": settings.kafka_sasl_username,
                   "kafka_sasl_password": settings.kafka_sasl_password}
    if sasl:
        problems += [f"{name} is required with kafka_security_protocol {protocol}"
                     for name, value in sasl_values.items() if value is None]
    else:
        problems += [f"{name} is set, but kafka_security_protocol {protocol} uses no SASL"
                     for name, value in sasl_values.items() if value is not None]
    if not protocol.endswith("SSL"):
        problems += [f"{name} is set, but kafka_security_protocol {protocol} uses no SSL"
                     for name in ("kafka_ssl_ca_file", "kafka_ssl_cert_file",
                                  "kafka_ssl_key_file")
                     if getattr(settings, name) is not None]
    if not is_loopback(settings.grpc_host) and not settings.grpc_allow_unauthenticated and (
        settings.grpc_token is None and settings.grpc_tls_client_ca_file is None
    ):
        problems.append(
            f"grpc_host {settings.grpc_host!r} listens beyond loopback, so anyone who reaches "
            "the port could start rounds, submit instructions and write exports: set grpc_token "
            "or grpc_tls_client_ca_file, listen on 127.0.0.1, or set "
            "grpc_allow_unauthenticated=true to accept that")
    if problems:
        raise ValueError("; ".join(problems))


def load_settings(env_file: Path | None = None) -> ServiceSettings:
    """Settings from the environment, overlaid on an optional env file."""
    if env_file is not None and not env_file.is_file():
        raise FileNotFoundError(f"settings file {env_file} not found")
    return ServiceSettings(_env_file=env_file)  # type: ignore[call-arg]
