"""A real service process (`warriorcoder serve`) configured for security through its
WARRIORCODER_* environment, over the real broker and the MongoDB wire server: gRPC over TLS, a
token for writes, the plaintext health port, and the CLI's credentials; and a service that
would listen beyond loopback with nothing to authenticate writers does not start."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from certificates import CertificateAuthority
from conftest import free_port
from distributed_harness import INSTRUCTIONS, Arena, arena_config, running_arena
from fake_openai_server import FakeOpenAIServer

TOKEN = "token-of-the-service-test"


class HealthPortArena(Arena):
    """Waits for SERVING on the plaintext health port (the API port speaks TLS only)."""

    def health_address(self, name: str) -> str:
        return f"127.0.0.1:{self.env['WARRIORCODER_GRPC_HEALTH_PORT']}"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "warriorcoder.cli", *args], capture_output=True,
                          text=True, timeout=120, check=False, env=env)


def test_a_service_serves_tls_and_requires_the_token_to_write(
    tmp_path: Path, kafka_bootstrap: str, mongo_uri: str, unique_kafka_prefix: str
) -> None:
    ca = CertificateAuthority(tmp_path, "arena-ca")
    server = ca.issue("challenger", "challenger", server=True)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    env = {"WARRIORCODER_GRPC_TLS_CERT_FILE": str(server.cert),
           "WARRIORCODER_GRPC_TLS_KEY_FILE": str(server.key),
           "WARRIORCODER_GRPC_TOKEN": TOKEN,
           "WARRIORCODER_GRPC_HEALTH_PORT": str(free_port())}
    with FakeOpenAIServer() as models:
        config = arena_config(models.base_url, f"sec-{uuid.uuid4().hex[:8]}")
        with running_arena(tmp_path, config, kafka_bootstrap=kafka_bootstrap,
                           mongo_uri=mongo_uri, prefix=unique_kafka_prefix, extra_env=env,
                           services=("challenger",), arena_type=HealthPortArena) as arena:
            address = arena.address("challenger")
            client_env = {k: v for k, v in os.environ.items()
                          if not k.startswith("WARRIORCODER_GRPC_")}
            tls = ("--challenger", address, "--ca-file", str(ca.cert_file))
            refused = cli("round", "start", *tls, env=client_env)
            assert refused.returncode != 0
            assert "StartRound" in refused.stderr and "UNAUTHENTICATED" in refused.stderr
            started = cli("round", "start", *tls, "--token-file", str(token_file), env=client_env)
            assert started.returncode == 0, started.stderr
            assert f"{len(INSTRUCTIONS)} challenges published" in started.stdout
            # A read needs no token. (Plaintext clients and the token from the variable:
            # tests/test_security_grpc.py, in-process.)
            status = cli("round", "status", *tls, env=client_env)
            assert status.returncode == 0, status.stderr
            assert f"{len(INSTRUCTIONS)} challenges" in status.stdout


def test_a_service_exposed_without_a_way_to_authenticate_does_not_start(tmp_path: Path) -> None:
    host = "0.0.0.0"
    config = tmp_path / "arena.yaml"
    config.write_text("round_id: r\nroster: []\n")  # never read: the settings are refused first
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARRIORCODER_")}
    # No broker or MongoDB is reached: the settings are refused before anything connects.
    env.update(WARRIORCODER_ARENA_CONFIG=str(config), WARRIORCODER_GRPC_HOST=host)
    done = cli("serve", "rater", env=env)
    assert done.returncode == 2
    assert f"grpc_host {host!r} listens beyond loopback" in done.stderr
    assert "set grpc_token or grpc_tls_client_ca_file" in done.stderr
