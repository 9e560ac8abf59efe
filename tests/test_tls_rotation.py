"""A service's gRPC TLS certificate renewed on disk is served from the next connection on,
without a restart; a renewal caught half-way keeps the current certificate."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import ssl
from pathlib import Path

import grpc
import pytest
from certificates import CertificateAuthority
from grpc_health.v1 import health_pb2, health_pb2_grpc

from warriorcoder.service.grpc_server import build_service_server
from warriorcoder.service.settings import ServiceSettings


def _served_name(port: int, ca: Path) -> str:
    """The common name of the certificate the server presents to a new connection."""
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        cert = tls.getpeercert()
    assert cert is not None
    return str(dict(item[0] for item in cert["subject"])["commonName"])


def test_a_renewed_certificate_is_served_without_a_restart(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ca = CertificateAuthority(tmp_path)
    first = ca.issue("first", "server-first", server=True)
    renewed = ca.issue("renewed", "server-renewed", server=True)
    live = tmp_path / "live"
    live.mkdir()
    cert, key = live / "tls.crt", live / "tls.key"
    shutil.copy(first.cert, cert)
    shutil.copy(first.key, key)
    settings = ServiceSettings(arena_config=tmp_path / "arena.yaml", grpc_host="127.0.0.1",
                               grpc_port=0, grpc_tls_cert_file=cert, grpc_tls_key_file=key)

    async def scenario() -> None:
        served = await build_service_server(settings, [], ["warriorcoder.v1.Rater"])
        port = served.port
        try:
            assert await asyncio.to_thread(_served_name, port, ca.cert_file) == "server-first"
            shutil.copy(renewed.cert, cert)
            shutil.copy(renewed.key, key)
            assert await asyncio.to_thread(_served_name, port, ca.cert_file) == "server-renewed"
            credentials = grpc.ssl_channel_credentials(ca.cert_file.read_bytes())
            async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            # Half-way through a renewal: the new certificate is there, its key not yet.
            shutil.copy(first.cert, cert)
            with caplog.at_level(logging.WARNING, logger="warriorcoder.service.security"):
                name = await asyncio.to_thread(_served_name, port, ca.cert_file)
            assert name == "server-renewed"
            assert "cannot be used yet (keeping the current certificate)" in caplog.text
            shutil.copy(first.key, key)  # the renewal completes
            assert await asyncio.to_thread(_served_name, port, ca.cert_file) == "server-first"
        finally:
            await served.server.stop(None)

    asyncio.run(scenario())
