"""Who may call which RPC, and how the services' connections are encrypted.

- **gRPC**: TLS with the server's certificate (`grpc_tls_cert_file`, `grpc_tls_key_file`);
  with `grpc_tls_client_ca_file` every client must also present a certificate that CA signed
  (mutual TLS). The files are read again when they change (a renewed certificate, e.g. by
  cert-manager) and used from the next connection on, without a restart. The RPCs that write
  (every method not in `READ_ONLY_METHODS`, so an RPC added later is protected until it is
  declared read-only) need the bearer token (`grpc_token`, sent as `authorization: Bearer
  TOKEN`) or, over mutual TLS, a client certificate whose identity is one of
  `grpc_writer_identities` (any signed certificate when that list is empty). Read-only RPCs,
  health checking and reflection stay open to whoever can connect.
- **Exposure**: a service that listens beyond loopback with neither a token nor client
  certificates refuses to start, unless `grpc_allow_unauthenticated` says so explicitly.
- **Kafka**: SSL and SASL (PLAIN, SCRAM) options handed to every Kafka client.
- **MongoDB**: TLS options handed to the MongoDB client.

`docs/api.md` states each RPC's authorization; `ServiceSettings` (service/settings.py) checks
the combinations of these settings when it loads them.
"""

from __future__ import annotations

import hmac
import inspect
import logging
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from warriorcoder.service.settings import is_loopback

if TYPE_CHECKING:
    from warriorcoder.service.settings import ServiceSettings

log = logging.getLogger(__name__)

__all__ = [
    "OPEN_SERVICES",
    "READ_ONLY_METHODS",
    "WriteAccess",
    "WriteAccessInterceptor",
    "is_read_only",
    "kafka_client_options",
    "mongo_client_options",
    "server_credentials",
    "write_access",
]

# RPCs that read and never write: open to any client that can connect.
READ_ONLY_METHODS: frozenset[str] = frozenset({
    "/warriorcoder.v1.Challenger/GetRoundStatus",
    "/warriorcoder.v1.Rater/GetBattle",
    "/warriorcoder.v1.Rater/GetLeaderboard",
    "/warriorcoder.v1.Exporter/StreamRecords",
})
# Whole services that are open: health checking (probes) and reflection (tools like grpcurl).
OPEN_SERVICES: tuple[str, ...] = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.reflection.v1.ServerReflection",
)


def is_read_only(method: str) -> bool:
    """Whether `method` ("/package.Service/Method") may be called without write access."""
    if method in READ_ONLY_METHODS:
        return True
    service = method.lstrip("/").split("/", 1)[0]
    return service in OPEN_SERVICES


# -- gRPC server -----------------------------------------------------------------------------


def server_credentials(settings: ServiceSettings) -> grpc.ServerCredentials | None:
    """TLS credentials of the API port, or None for plaintext. With a client CA, clients must
    present a certificate it signed. The files are read again when they change (`TlsFiles`)."""
    if settings.grpc_tls_cert_file is None or settings.grpc_tls_key_file is None:
        return None
    files = TlsFiles(settings.grpc_tls_cert_file, settings.grpc_tls_key_file,
                     settings.grpc_tls_client_ca_file)
    return grpc.dynamic_ssl_server_credentials(
        files.initial(), files.fetch,
        require_client_authentication=settings.grpc_tls_client_ca_file is not None)


class TlsFiles:
    """The server's certificate, key and client CA files, as gRPC's certificate configuration.

    gRPC asks `fetch` at each new connection's handshake: when a file changed since it was read
    (a renewed certificate, a Secret volume updated in place), the files are read again and
    used from that connection on, so a certificate renewal needs no restart. A new certificate
    that does not match its key, or files that cannot be read (half-way through an update),
    leave the current configuration in place, with a warning.
    """

    def __init__(self, cert: Path, key: Path, client_ca: Path | None) -> None:
        self.paths = (cert, key, client_ca)
        self._lock = threading.Lock()  # handshakes of several connections may ask at once
        self._seen: tuple[tuple[int, int] | None, ...] = ()

    def _stamp(self) -> tuple[tuple[int, int] | None, ...]:
        out: list[tuple[int, int] | None] = []
        for path in self.paths:
            if path is None:
                out.append(None)
                continue
            st = path.stat()
            out.append((st.st_mtime_ns, st.st_size))
        return tuple(out)

    def _read(self) -> grpc.ServerCertificateConfiguration:
        cert, key, client_ca = self.paths
        # The pair must match: a certificate renewed without its key would fail every
        # handshake (the standard library's check, the same files gRPC gets).
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
        return grpc.ssl_server_certificate_configuration(
            [(key.read_bytes(), cert.read_bytes())],
            root_certificates=client_ca.read_bytes() if client_ca is not None else None)

    def initial(self) -> grpc.ServerCertificateConfiguration:
        """The configuration at start-up (errors propagate: the service cannot start)."""
        with self._lock:
            self._seen = self._stamp()
            return self._read()

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """A new configuration when the files changed, else None (keep the current one)."""
        with self._lock:
            try:
                stamp = self._stamp()
                if stamp == self._seen:
                    return None
                config = self._read()
            except (OSError, ssl.SSLError) as error:
                log.warning("gRPC TLS files changed but cannot be used yet (keeping the "
                            "current certificate): %s", error)
                return None
            self._seen = stamp
            log.info("gRPC TLS: certificate files changed; new connections use them")
            return config


class AccessDenied(Exception):
    """A write RPC without valid credentials; `code` is the status the client gets."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def bearer_token(metadata: Iterable[tuple[str, Any]] | None) -> str | None:
    """The token of the `authorization: Bearer TOKEN` metadata entry, or None."""
    for key, value in metadata or ():
        if key.lower() != "authorization":
            continue
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


@dataclass(frozen=True)
class WriteAccess:
    """What lets a client call an RPC that writes: the token, or a client certificate."""

    token: str | None
    mutual_tls: bool
    # Client certificate identities allowed to write; empty: any certificate the CA signed.
    writer_identities: frozenset[str] = frozenset()

    def check(self, metadata: Iterable[tuple[str, Any]] | None,
              peer_identities: Sequence[bytes] | None) -> None:
        """Return when the caller may write; AccessDenied (UNAUTHENTICATED without usable
        credentials, PERMISSION_DENIED for a certificate that may not write) otherwise."""
        presented = bearer_token(metadata)
        if self.token is not None and presented is not None and hmac.compare_digest(
            presented.encode(), self.token.encode()
        ):
            return
        names = sorted({i.decode("utf-8", "replace") for i in peer_identities or ()})
        if self.mutual_tls and names:
            if not self.writer_identities or self.writer_identities.intersection(names):
                return
            raise AccessDenied(
                grpc.StatusCode.PERMISSION_DENIED,
                f"this RPC writes, and client certificate {names} is not one of the writer "
                "identities (grpc_writer_identities)")
        if presented is not None:
            raise AccessDenied(grpc.StatusCode.UNAUTHENTICATED,
                               "this RPC writes, and the bearer token is not valid")
        ways = []
        if self.token is not None:
            ways.append("metadata 'authorization: Bearer TOKEN'")
        if self.mutual_tls:
            ways.append("a client certificate of a writer identity")
        raise AccessDenied(grpc.StatusCode.UNAUTHENTICATED,
                           f"this RPC writes: it needs {' or '.join(ways)}")


def write_access(settings: ServiceSettings) -> WriteAccess | None:
    """The write access the settings require, or None when writes are open (loopback, or
    grpc_allow_unauthenticated)."""
    token = settings.grpc_token.get_secret_value().strip() if settings.grpc_token else None
    mutual_tls = settings.grpc_tls_client_ca_file is not None
    if token is None and not mutual_tls:
        return None
    return WriteAccess(token, mutual_tls, settings.writer_identities())


def plaintext_token_warning(settings: ServiceSettings) -> str | None:
    """A warning when writes need the token but it would cross the network in plaintext (a
    listener beyond loopback without TLS), else None."""
    if settings.grpc_token is None or settings.grpc_tls_cert_file or is_loopback(
            settings.grpc_host):
        return None
    return (f"gRPC listens on {settings.grpc_host} without TLS: the write token travels in "
            "plaintext and anyone on the network path can read and reuse it; set "
            "grpc_tls_cert_file and grpc_tls_key_file")


Behavior = Callable[[Any, grpc.aio.ServicerContext], Any]


class WriteAccessInterceptor(grpc.aio.ServerInterceptor):
    """Refuses every RPC that is not read-only (`is_read_only`) unless the caller has write
    access: UNAUTHENTICATED or PERMISSION_DENIED, before the handler runs."""

    def __init__(self, access: WriteAccess) -> None:
        self.access = access

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or is_read_only(handler_call_details.method):
            return handler
        kinds = (
            ("unary_unary", grpc.unary_unary_rpc_method_handler),
            ("unary_stream", grpc.unary_stream_rpc_method_handler),
            ("stream_unary", grpc.stream_unary_rpc_method_handler),
            ("stream_stream", grpc.stream_stream_rpc_method_handler),
        )
        for kind, make in kinds:
            behavior = getattr(handler, kind)
            if behavior is not None:
                return make(  # type: ignore[no-any-return, operator]
                    self._guard(behavior),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler  # pragma: no cover - a handler always has one kind

    def _guard(self, behavior: Behavior) -> Behavior:
        access = self.access

        async def admit(context: grpc.aio.ServicerContext) -> None:
            try:
                access.check(context.invocation_metadata(), context.peer_identities())
            except AccessDenied as denied:
                log.info("refused: %s", denied)
                await context.abort(denied.code, str(denied))

        if inspect.isasyncgenfunction(behavior):
            async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await admit(context)
                async for item in behavior(request, context):
                    yield item

            return stream

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await admit(context)
            result = behavior(request, context)
            return await result if inspect.isawaitable(result) else result

        return call


# -- Kafka and MongoDB clients ---------------------------------------------------------------


def kafka_client_options(settings: ServiceSettings) -> dict[str, Any]:
    """Security options of every Kafka client (kafka-python's names), from the settings."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=password.get_secret_value() if password is not None else None,
        )
    if protocol.endswith("SSL"):
        options["ssl_check_hostname"] = settings.kafka_ssl_check_hostname
        for option, path in (("ssl_cafile", settings.kafka_ssl_ca_file),
                             ("ssl_certfile", settings.kafka_ssl_cert_file),
                             ("ssl_keyfile", settings.kafka_ssl_key_file)):
            if path is not None:
                options[option] = str(path)
    return options


def mongo_client_options(settings: ServiceSettings) -> dict[str, Any]:
    """TLS options of the MongoDB client (pymongo's names); empty: the URI decides."""
    options: dict[str, Any] = {}
    ca_file, key_file = settings.mongo_tls_ca_file, settings.mongo_tls_certificate_key_file
    if settings.mongo_tls or ca_file is not None or key_file is not None:
        options["tls"] = True
    if ca_file is not None:
        options["tlsCAFile"] = str(ca_file)
    if key_file is not None:
        options["tlsCertificateKeyFile"] = str(key_file)
    return options
