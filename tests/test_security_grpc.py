"""gRPC security on the real server (`build_service_server`, as every service builds it): TLS
with certificates made here, the bearer token and client certificates on the RPCs that write,
the open read-only RPCs, the plaintext health listener, the CLI's credentials, and the checks
of the security settings."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from certificates import CertificateAuthority, Issued
from grpc_health.v1 import health_pb2, health_pb2_grpc
from test_grpc_servicers import SEED, SERVICE_NAMES, make_config

from warriorcoder.backends import load_backend
from warriorcoder.commands.remote import RemoteError, add_remote_args, call, client_security
from warriorcoder.service.grpc_server import ServiceServer, build_service_server
from warriorcoder.service.security import (
    READ_ONLY_METHODS,
    is_read_only,
    plaintext_token_warning,
)
from warriorcoder.service.servicers.challenger import ChallengerServicer
from warriorcoder.service.servicers.exporter import ExporterServicer
from warriorcoder.service.servicers.judge import JudgeServicer
from warriorcoder.service.servicers.rater import RaterServicer
from warriorcoder.service.servicers.responder import ResponderServicer
from warriorcoder.service.settings import ServiceSettings, is_loopback
from warriorcoder.stages.challenger import Challenger
from warriorcoder.stages.exporter import Exporter
from warriorcoder.stages.judge import Judge
from warriorcoder.stages.rater import Rater
from warriorcoder.stages.responder import Responder
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2, services_pb2
from warriorcoder.v1 import services_pb2_grpc as services_grpc

TOKEN = "s3cret-token-for-tests"
DEADLINE_S = 30.0
API_DOC = Path(__file__).parent.parent / "docs" / "api.md"


@dataclass
class Pki:
    ca: CertificateAuthority
    server: Issued
    operator: Issued  # a client certificate that may write
    viewer: Issued  # a client certificate of the same CA that may only read
    rogue_ca: CertificateAuthority
    rogue: Issued  # a client certificate of another CA


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority(folder, "arena-ca")
    rogue_ca = CertificateAuthority(folder, "rogue-ca")
    return Pki(ca, ca.issue("server", "warriorcoder-challenger", server=True),
               ca.issue("operator", "operator", dns_names=("operator.arena",)),
               ca.issue("viewer", "viewer"), rogue_ca, rogue_ca.issue("rogue", "operator"))


def settings_of(tmp_path: Path, **values: Any) -> ServiceSettings:
    return ServiceSettings(arena_config=tmp_path / "arena.yaml", grpc_host="127.0.0.1",
                           grpc_port=0, **values)


@dataclass
class Served:
    api: ServiceServer
    store: ArenaStore
    published: list[arena_pb2.Challenge]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.api.port}"


@asynccontextmanager
async def serving(tmp_path: Path, settings: ServiceSettings) -> AsyncIterator[Served]:
    """The five servicers behind `build_service_server(settings)`, on a free port."""
    config = make_config()
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    backends = {e.id: load_backend(e) for e in config.roster}
    published: list[arena_pb2.Challenge] = []
    servicers = [
        (services_grpc.add_ChallengerServicer_to_server,
         ChallengerServicer(config, Challenger(config, backends, store), store, published.extend)),
        (services_grpc.add_ResponderServicer_to_server,
         ResponderServicer(Responder(config, backends, store))),
        (services_grpc.add_JudgeServicer_to_server, JudgeServicer(Judge(config, backends, store))),
        (services_grpc.add_RaterServicer_to_server, RaterServicer(store, Rater(config, store))),
        (services_grpc.add_ExporterServicer_to_server,
         ExporterServicer(config, store, Exporter(config, store),
                          export_root=tmp_path / "exports")),
    ]
    api = await build_service_server(settings, servicers, SERVICE_NAMES)
    try:
        yield Served(api, store, published)
    finally:
        await api.server.stop(None)
        await api.stop_health_listener()


def run(tmp_path: Path, settings: ServiceSettings,
        body: Callable[[Served], Awaitable[None]]) -> None:
    async def main() -> None:
        async with serving(tmp_path, settings) as served:
            await asyncio.wait_for(body(served), DEADLINE_S)

    asyncio.run(main())


def tls_channel(address: str, ca: Path, client: Issued | None = None) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None)
    return grpc.aio.secure_channel(address, credentials)


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def code_of(call: Awaitable[Any]) -> grpc.StatusCode:
    """The status code of an RPC (OK when it succeeds)."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def refusal(call: Awaitable[Any]) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    return err.value.code(), err.value.details() or ""


START = services_pb2.StartRoundRequest(challenges_per_attacker=1, seed_instructions=[SEED])


# -- TLS and the bearer token --------------------------------------------------------------


def test_tls_with_token_refuses_writes_without_it_and_keeps_reads_open(
    tmp_path: Path, pki: Pki
) -> None:
    settings = settings_of(tmp_path, grpc_tls_cert_file=pki.server.cert,
                           grpc_tls_key_file=pki.server.key, grpc_token=TOKEN)

    async def body(served: Served) -> None:
        async with tls_channel(served.address, pki.ca.cert_file) as channel:
            challenger = services_grpc.ChallengerStub(channel)
            code, details = await refusal(challenger.StartRound(START))
            assert code == grpc.StatusCode.UNAUTHENTICATED
            assert "authorization: Bearer TOKEN" in details
            code, details = await refusal(challenger.StartRound(START, metadata=bearer("nope")))
            assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED,
                                       "this RPC writes, and the bearer token is not valid")
            # A refused call ran nothing: no round, no challenge stored or published.
            assert served.published == [] and served.store.challenges("t1") == []
            writes: list[Awaitable[Any]] = [
                challenger.SubmitInstructions(services_pb2.SubmitInstructionsRequest(
                    instructions=["Write a function that sums a list."])),
                services_grpc.ResponderStub(channel).Respond(
                    arena_pb2.Challenge(challenge_id="c1")),
                services_grpc.JudgeStub(channel).JudgeBattle(
                    arena_pb2.ResponsePair(battle_id="b1")),
                services_grpc.ExporterStub(channel).WriteExport(
                    services_pb2.ExportRequest(output_dir="x")),
            ]
            for write in writes:
                assert await code_of(write) == grpc.StatusCode.UNAUTHENTICATED
            assert served.store.challenges("t1") == []
            exports = tmp_path / "exports"
            assert not exports.exists() or not any(exports.iterdir())  # no file written

            started = await challenger.StartRound(START, metadata=bearer(TOKEN))
            assert started.challenges == len(served.published) > 0
            # Reads need no token.
            status = await challenger.GetRoundStatus(services_pb2.GetRoundStatusRequest())
            assert status.challenges == started.challenges
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            # With the token, the other writes get past authorization to their own checks.
            assert await code_of(services_grpc.ResponderStub(channel).Respond(
                arena_pb2.Challenge(challenge_id="c1"), metadata=bearer(TOKEN))
            ) == grpc.StatusCode.NOT_FOUND

    run(tmp_path, settings, body)


def test_tls_port_refuses_plaintext_and_clients_that_do_not_trust_it(
    tmp_path: Path, pki: Pki
) -> None:
    settings = settings_of(tmp_path, grpc_tls_cert_file=pki.server.cert,
                           grpc_tls_key_file=pki.server.key, grpc_token=TOKEN)

    async def body(served: Served) -> None:
        request = health_pb2.HealthCheckRequest(service="")
        async with grpc.aio.insecure_channel(served.address) as plain:
            assert await code_of(health_pb2_grpc.HealthStub(plain).Check(
                request, timeout=5)) == grpc.StatusCode.UNAVAILABLE
        # A client that trusts another CA does not accept the server's certificate.
        async with tls_channel(served.address, pki.rogue_ca.cert_file) as distrust:
            assert await code_of(health_pb2_grpc.HealthStub(distrust).Check(
                request, timeout=5)) == grpc.StatusCode.UNAVAILABLE

    run(tmp_path, settings, body)


# -- client certificates (mutual TLS) --------------------------------------------------------


def test_mutual_tls_requires_a_certificate_of_the_ca_and_a_writer_identity_to_write(
    tmp_path: Path, pki: Pki
) -> None:
    settings = settings_of(tmp_path, grpc_tls_cert_file=pki.server.cert,
                           grpc_tls_key_file=pki.server.key,
                           grpc_tls_client_ca_file=pki.ca.cert_file,
                           grpc_writer_identities="operator.arena, someone-else")
    status_request = services_pb2.GetRoundStatusRequest(round_id="t1")

    async def body(served: Served) -> None:
        health = health_pb2.HealthCheckRequest(service="")
        # No client certificate, or one of another CA: the handshake fails, for every RPC.
        for client in (None, pki.rogue):
            async with tls_channel(served.address, pki.ca.cert_file, client) as channel:
                assert await code_of(health_pb2_grpc.HealthStub(channel).Check(
                    health, timeout=5)) == grpc.StatusCode.UNAVAILABLE
        # The viewer's certificate reads but may not write.
        async with tls_channel(served.address, pki.ca.cert_file, pki.viewer) as channel:
            challenger = services_grpc.ChallengerStub(channel)
            code, details = await refusal(challenger.StartRound(START))
            assert code == grpc.StatusCode.PERMISSION_DENIED
            assert "['viewer'] is not one of the writer identities" in details
            assert await code_of(challenger.GetRoundStatus(status_request)
                                 ) == grpc.StatusCode.NOT_FOUND  # read, and no round yet
        assert served.published == []
        # The operator's certificate (SAN operator.arena) writes, with no token.
        async with tls_channel(served.address, pki.ca.cert_file, pki.operator) as channel:
            challenger = services_grpc.ChallengerStub(channel)
            started = await challenger.StartRound(START)
            assert started.challenges == len(served.published) > 0
            status = await challenger.GetRoundStatus(status_request)
            assert status.challenges == started.challenges

    run(tmp_path, settings, body)


def test_mutual_tls_without_identities_lets_every_certificate_of_the_ca_write(
    tmp_path: Path, pki: Pki
) -> None:
    settings = settings_of(tmp_path, grpc_tls_cert_file=pki.server.cert,
                           grpc_tls_key_file=pki.server.key,
                           grpc_tls_client_ca_file=pki.ca.cert_file, grpc_token=TOKEN)

    async def body(served: Served) -> None:
        async with tls_channel(served.address, pki.ca.cert_file, pki.viewer) as channel:
            started = await services_grpc.ChallengerStub(channel).StartRound(START)
            assert started.challenges > 0

    run(tmp_path, settings, body)


# -- the plaintext health listener -------------------------------------------------------------


def test_health_listener_answers_plaintext_probes_and_serves_nothing_else(
    tmp_path: Path, pki: Pki
) -> None:
    settings = settings_of(tmp_path, grpc_tls_cert_file=pki.server.cert,
                           grpc_tls_key_file=pki.server.key,
                           grpc_tls_client_ca_file=pki.ca.cert_file, grpc_health_port=0)

    async def body(served: Served) -> None:
        assert served.api.health_port
        async with grpc.aio.insecure_channel(f"127.0.0.1:{served.api.health_port}") as plain:
            health = health_pb2_grpc.HealthStub(plain)
            for service in ("", "warriorcoder.v1.Challenger"):
                reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            assert await code_of(services_grpc.ChallengerStub(plain).StartRound(START)
                                 ) == grpc.StatusCode.UNIMPLEMENTED
            # The statuses are the API port's: shutting down shows on the probe port too.
            await served.api.health.enter_graceful_shutdown()
            reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert served.published == []

    run(tmp_path, settings, body)


# -- the CLI's credentials -----------------------------------------------------------------------


def cli_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_remote_args(parser)
    return parser.parse_args(list(argv))


def test_cli_calls_with_the_token_file_and_the_ca(
    tmp_path: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("TOKEN", "CA_FILE", "CLIENT_CERT_FILE", "CLIENT_KEY_FILE"):
        monkeypatch.delenv(f"WARRIORCODER_GRPC_{name}", raising=False)
    settings = settings_of(tmp_path, grpc_tls_cert_file=pki.server.cert,
                           grpc_tls_key_file=pki.server.key, grpc_token=TOKEN)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")

    async def body(served: Served) -> None:
        def start(args: argparse.Namespace) -> Any:
            return call(served.address, "Challenger", "StartRound", START, 10,
                        client_security(args))

        with pytest.raises(RemoteError, match=r"StartRound at .*: UNAUTHENTICATED"):
            await asyncio.to_thread(start, cli_args("--ca-file", str(pki.ca.cert_file)))
        with pytest.raises(RemoteError, match="UNAVAILABLE"):  # plaintext to a TLS port
            await asyncio.to_thread(start, cli_args("--token-file", str(token_file)))
        reply = await asyncio.to_thread(start, cli_args(
            "--ca-file", str(pki.ca.cert_file), "--token-file", str(token_file)))
        assert reply.challenges == len(served.published) > 0
        # The variables stand in for the flags.
        monkeypatch.setenv("WARRIORCODER_GRPC_TOKEN", TOKEN)
        monkeypatch.setenv("WARRIORCODER_GRPC_CA_FILE", str(pki.ca.cert_file))
        status = await asyncio.to_thread(
            call, served.address, "Challenger", "GetRoundStatus",
            services_pb2.GetRoundStatusRequest(), 10, client_security(cli_args()))
        assert status.challenges == reply.challenges

    run(tmp_path, settings, body)


def test_cli_names_unreadable_or_half_given_credentials(tmp_path: Path) -> None:
    with pytest.raises(RemoteError, match=r"--token-file .*missing: cannot read it"):
        client_security(cli_args("--token-file", str(tmp_path / "missing")))
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(RemoteError, match=r"--token-file .* is empty"):
        client_security(cli_args("--token-file", str(tmp_path / "empty")))
    with pytest.raises(RemoteError, match="--cert-file and --key-file go together"):
        client_security(cli_args("--cert-file", str(tmp_path / "empty")))


# -- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "message"), [
    ({"grpc_host": "0.0.0.0"}, "grpc_host '0.0.0.0' listens beyond loopback"),
    ({"grpc_host": "::"}, "set grpc_token or grpc_tls_client_ca_file"),
    ({"grpc_host": "10.0.0.7"}, "grpc_allow_unauthenticated=true to accept that"),
    ({"grpc_tls_cert_file": "CERT"}, "grpc_tls_cert_file and grpc_tls_key_file go together"),
    ({"grpc_tls_client_ca_file": "CA"}, "grpc_tls_client_ca_file needs server TLS"),
    ({"grpc_writer_identities": "ops"}, "grpc_writer_identities needs client certificates"),
    ({"grpc_token": "  "}, "grpc_token is blank"),
    ({"grpc_tls_cert_file": "missing.crt", "grpc_tls_key_file": "KEY"},
     "grpc_tls_cert_file: missing.crt is not a file"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN"},
     "kafka_sasl_username is required with kafka_security_protocol SASL_SSL"),
    ({"kafka_sasl_username": "svc"},
     "kafka_sasl_username is set, but kafka_security_protocol PLAINTEXT uses no SASL"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "PLAIN",
      "kafka_sasl_username": "svc", "kafka_sasl_password": "pw", "kafka_ssl_ca_file": "CA"},
     "kafka_ssl_ca_file is set, but kafka_security_protocol SASL_PLAINTEXT uses no SSL"),
    ({"mongo_tls_ca_file": "nope.pem"}, "mongo_tls_ca_file: nope.pem is not a file"),
])
def test_inconsistent_security_settings_are_refused_by_name(
    tmp_path: Path, pki: Pki, values: dict[str, Any], message: str
) -> None:
    files = {"CERT": pki.server.cert, "KEY": pki.server.key, "CA": pki.ca.cert_file}
    given = {k: files.get(v, v) if isinstance(v, str) else v for k, v in values.items()}
    given.setdefault("grpc_host", "127.0.0.1")
    with pytest.raises(ValueError) as err:
        ServiceSettings(arena_config=tmp_path / "arena.yaml", **given)
    assert message in str(err.value)


@pytest.mark.parametrize("values", [
    {"grpc_host": "0.0.0.0", "grpc_token": TOKEN},
    {"grpc_host": "0.0.0.0", "grpc_allow_unauthenticated": True},
    {"grpc_host": "localhost"},
    {"grpc_host": "::1"},
])
def test_exposed_services_start_with_a_way_to_authenticate_or_the_explicit_opt_out(
    tmp_path: Path, values: dict[str, Any]
) -> None:
    ServiceSettings(arena_config=tmp_path / "arena.yaml", **values)


def test_a_token_sent_in_plaintext_beyond_loopback_is_warned_about(
    tmp_path: Path, pki: Pki
) -> None:
    def warning(**values: Any) -> str | None:
        return plaintext_token_warning(
            ServiceSettings(arena_config=tmp_path / "arena.yaml", **values))

    assert "without TLS" in (warning(grpc_host="0.0.0.0", grpc_token=TOKEN) or "")
    assert warning(grpc_host="127.0.0.1", grpc_token=TOKEN) is None
    assert warning(grpc_host="0.0.0.0", grpc_token=TOKEN, grpc_tls_cert_file=pki.server.cert,
                   grpc_tls_key_file=pki.server.key) is None
    assert warning(grpc_host="0.0.0.0", grpc_allow_unauthenticated=True) is None


def test_loopback_hosts() -> None:
    assert [is_loopback(h) for h in ("127.0.0.1", "127.9.9.9", "::1", "[::1]", "localhost")] == [
        True] * 5
    assert [is_loopback(h) for h in ("0.0.0.0", "::", "", "10.1.2.3", "arena.svc")] == [False] * 5


def test_the_token_is_masked_when_settings_are_printed(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, grpc_token=TOKEN, kafka_security_protocol="SASL_SSL",
                           kafka_sasl_mechanism="SCRAM-SHA-512", kafka_sasl_username="svc",
                           kafka_sasl_password="kafka-pw")
    assert TOKEN not in repr(settings) and "kafka-pw" not in repr(settings)


# -- which RPCs write: code and docs agree --------------------------------------------------------


def all_methods() -> list[str]:
    return [f"/{service.full_name}/{method.name}"
            for service in services_pb2.DESCRIPTOR.services_by_name.values()
            for method in service.methods]


def test_read_only_rpcs_exist_and_every_other_rpc_needs_write_access() -> None:
    methods = all_methods()
    assert READ_ONLY_METHODS <= set(methods)
    writes = {m for m in methods if not is_read_only(m)}
    assert {f"/warriorcoder.v1.{rpc}" for rpc in (
        "Challenger/StartRound", "Challenger/SubmitInstructions", "Exporter/WriteExport",
        "Responder/Respond", "Judge/JudgeBattle")} <= writes
    assert is_read_only("/grpc.health.v1.Health/Check")
    assert is_read_only("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
    # An RPC nobody declared read-only is protected.
    assert not is_read_only("/warriorcoder.v1.Exporter/SomethingNew")


def test_the_api_docs_state_each_rpcs_authorization() -> None:
    """docs/api.md has one table row per RPC, saying 'write' exactly for the RPCs the
    interceptor protects."""
    rows = {}
    for line in API_DOC.read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and cells[0] in {s.name for s in
                                            services_pb2.DESCRIPTOR.services_by_name.values()}:
            rows[f"/warriorcoder.v1.{cells[0]}/{cells[1]}"] = cells[2]
    assert set(rows) == set(all_methods())
    for method, access in rows.items():
        assert access == ("read" if is_read_only(method) else "write"), method
