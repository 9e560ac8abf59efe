"""Kafka and MongoDB security settings reach the clients: the options each client is built with,
and a TLS handshake as the first bytes every client sends when SSL/TLS is on.

No TLS- or SASL-enabled Kafka broker or MongoDB server is installable here, so the handshake is
seen by a plain TCP listener on loopback that records what arrives (a TLS record starts with
byte 0x16, a Kafka request with its 4-byte length); the full handshake with such a server is
not run."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from certificates import CertificateAuthority
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient

from warriorcoder.service.kafka.producer import EventProducer
from warriorcoder.service.kafka.stage_loop import StageLoop
from warriorcoder.service.kafka.topics import ensure_topics
from warriorcoder.service.metrics import ServiceMetrics
from warriorcoder.service.security import kafka_client_options, mongo_client_options
from warriorcoder.service.settings import ServiceSettings
from warriorcoder.stages.bus import Topic
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

TLS_HANDSHAKE = 0x16  # the content type of a TLS handshake record


@pytest.fixture(scope="module")
def ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return CertificateAuthority(tmp_path_factory.mktemp("pki"), "broker-ca").cert_file


def settings_of(tmp_path: Path, **values: Any) -> ServiceSettings:
    return ServiceSettings(arena_config=tmp_path / "arena.yaml", **values)


# -- options ---------------------------------------------------------------------------------


def test_plaintext_is_the_default(tmp_path: Path) -> None:
    settings = settings_of(tmp_path)
    assert kafka_client_options(settings) == {"security_protocol": "PLAINTEXT"}
    assert mongo_client_options(settings) == {}


def test_sasl_ssl_options_use_kafka_pythons_names(tmp_path: Path, ca_file: Path) -> None:
    settings = settings_of(
        tmp_path, kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="arena", kafka_sasl_password="pw", kafka_ssl_ca_file=ca_file,
        kafka_ssl_check_hostname=False)
    options = kafka_client_options(settings)
    assert options == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "arena", "sasl_plain_password": "pw",
        "ssl_check_hostname": False, "ssl_cafile": str(ca_file),
    }
    # Every option is one that each client kafka-python builds takes.
    for client in (KafkaProducer, KafkaConsumer, KafkaAdminClient):
        assert set(options) <= set(client.DEFAULT_CONFIG), client.__name__


def test_sasl_plaintext_sends_no_ssl_options(tmp_path: Path) -> None:
    settings = settings_of(
        tmp_path, kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
        kafka_sasl_username="arena", kafka_sasl_password="pw")
    assert kafka_client_options(settings) == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
        "sasl_plain_username": "arena", "sasl_plain_password": "pw"}


def test_mongo_tls_options(tmp_path: Path, ca_file: Path) -> None:
    assert mongo_client_options(settings_of(tmp_path, mongo_tls=True)) == {"tls": True}
    key_file = tmp_path / "client.pem"
    key_file.write_text("placeholder: only its path is passed on\n")
    assert mongo_client_options(settings_of(
        tmp_path, mongo_tls_ca_file=ca_file, mongo_tls_certificate_key_file=key_file)) == {
        "tls": True, "tlsCAFile": str(ca_file), "tlsCertificateKeyFile": str(key_file)}


# -- what goes over the wire -------------------------------------------------------------------


@contextmanager
def first_bytes_listener() -> Iterator[tuple[int, list[bytes]]]:
    """A loopback TCP listener that records the first bytes of each connection and closes it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                with suppress(OSError):
                    received.append(conn.recv(64))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], received
    finally:
        stop.set()
        thread.join(5)
        server.close()


def opening_bytes(connect: Callable[[str], Any]) -> bytes:
    """The first bytes `connect(address)` sends to a listener that answers nothing.

    The client runs in a daemon thread and is left to give up on its own (kafka-python's
    clients retry for about 30 s): only its first bytes matter."""
    with first_bytes_listener() as (port, received):
        def attempt() -> None:
            with suppress(Exception):  # nothing answers its handshake
                connect(f"127.0.0.1:{port}")

        thread = threading.Thread(target=attempt, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not received and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
    assert received and received[0], "the client never connected"
    return received[0]


def kafka_settings(tmp_path: Path, bootstrap: str, ca_file: Path, protocol: str
                   ) -> ServiceSettings:
    extra: dict[str, Any] = {"kafka_ssl_ca_file": ca_file} if protocol == "SSL" else {}
    return settings_of(tmp_path, kafka_bootstrap_servers=bootstrap,
                       kafka_security_protocol=protocol, **extra)


@pytest.mark.parametrize("protocol", ["SSL", "PLAINTEXT"])
def test_every_kafka_client_of_a_service_opens_with_tls_when_ssl_is_set(
    tmp_path: Path, ca_file: Path, protocol: str
) -> None:
    def producer(address: str) -> None:
        EventProducer(kafka_settings(tmp_path, address, ca_file, protocol)).close()

    def admin(address: str) -> None:
        ensure_topics(kafka_settings(tmp_path, address, ca_file, protocol), ["challenges"],
                      timeout_s=2)

    def consumer(address: str) -> None:
        loop = StageLoop(kafka_settings(tmp_path, address, ca_file, protocol), "responder",
                         Topic.CHALLENGES, arena_pb2.Challenge, Topic.RESPONSES,
                         _never_called, ServiceMetrics("responder"))
        loop._open_consumer().close()

    for connect in (producer, admin, consumer):
        first = opening_bytes(connect)
        if protocol == "SSL":
            assert first[0] == TLS_HANDSHAKE, (connect.__name__, first[:8])
        else:  # a Kafka request: a 4-byte big-endian length, never a TLS record
            assert first[0] != TLS_HANDSHAKE and int.from_bytes(first[:4], "big") > 0


async def _never_called(batch: list[Any]) -> list[Any]:
    raise AssertionError("no message reaches the handler")


@pytest.mark.parametrize("tls", [True, False])
def test_the_mongodb_client_opens_with_tls_when_set(tmp_path: Path, ca_file: Path,
                                                     tls: bool) -> None:
    options = mongo_client_options(settings_of(tmp_path, mongo_tls_ca_file=ca_file if tls
                                               else None))

    def connect(address: str) -> None:
        store = ArenaStore.connect(f"mongodb://{address}/?serverSelectionTimeoutMS=1500", "t",
                                   client_options=options)
        try:
            store.challenge("c1")
        finally:
            store.db.client.close()

    first = opening_bytes(connect)
    assert (first[0] == TLS_HANDSHAKE) == tls, first[:8]
