"""The gRPC side every service shares: domain errors mapped to status codes, the aio server with
health checking and reflection, and a graceful stop on SIGTERM/SIGINT.

Servicers raise plain Python exceptions (`InvalidArgument`, `NotFound`, `NotReady`, or the
config's `ConfigError`); one interceptor turns them into gRPC statuses, so no servicer touches
`context.abort` and every RPC fails the same way. Anything else is a bug: the client gets
INTERNAL with a short message and the traceback goes to the log.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

import grpc
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from warriorcoder.config import ConfigError
from warriorcoder.service.errors import is_transient
from warriorcoder.service.security import (
    WriteAccessInterceptor,
    plaintext_token_warning,
    server_credentials,
    write_access,
)

if TYPE_CHECKING:
    from warriorcoder.service.settings import ServiceSettings

log = logging.getLogger(__name__)

__all__ = [
    "ErrorStatusInterceptor",
    "InvalidArgument",
    "NotFound",
    "NotReady",
    "PermissionDenied",
    "ServiceServer",
    "ServicerRegistration",
    "build_server",
    "build_service_server",
    "install_signal_handlers",
    "serve_health_only",
    "serve_until_stopped",
    "status_for",
]


class InvalidArgument(ValueError):
    """The request is malformed; the message names the field and what is wrong with it."""


class NotFound(LookupError):
    """The request names something (a round, a battle) that does not exist."""


class NotReady(RuntimeError):
    """The service cannot do this now but may later (e.g. a round is still being prepared)."""


class PermissionDenied(PermissionError):
    """The request asks for something the service never does for anyone (e.g. a write outside
    the export root, or over files it did not write); the message names what and why."""


HealthServicer: TypeAlias = grpc_health.aio.HealthServicer

# (add_XServicer_to_server, servicer) as the generated code pairs them.
ServicerRegistration = tuple[Callable[[Any, Any], None], Any]

# Most specific first: ConfigError and InvalidArgument are both ValueErrors, but a plain
# ValueError from deep inside a stage is a bug, not the client's fault.
_STATUS_OF: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (ConfigError, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    # Transient by definition: UNAVAILABLE tells clients that retrying is right.
    (NotReady, grpc.StatusCode.UNAVAILABLE),
)


def status_for(error: BaseException) -> grpc.StatusCode | None:
    """The status code of a domain error, or None for an unexpected exception. An outage of
    MongoDB or the broker (`is_transient`) is UNAVAILABLE: the client may retry later."""
    for cls, code in _STATUS_OF:
        if isinstance(error, cls):
            return code
    if is_transient(error):
        return grpc.StatusCode.UNAVAILABLE
    return None


def _client_detail(error: Exception) -> str:
    if is_transient(error):
        # Driver messages describe the whole cluster topology: the log has it, the client
        # gets what it needs to decide to retry.
        return f"MongoDB or Kafka unavailable ({type(error).__name__}); retry later"
    return str(error)


async def _abort_with(context: grpc.aio.ServicerContext, method: str, error: Exception) -> NoReturn:
    code = status_for(error)
    if code is not None:
        log.info("%s: %s: %s", method, code.name, error)
        await context.abort(code, _client_detail(error))
    log.error("%s failed", method, exc_info=error)
    # The client sees the exception type only: internals stay in the server's log.
    await context.abort(
        grpc.StatusCode.INTERNAL, f"internal error in {method}: {type(error).__name__}"
    )
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


class ErrorStatusInterceptor(grpc.aio.ServerInterceptor):
    """Maps domain exceptions of unary-unary and unary-stream handlers to gRPC statuses.

    Async handlers only (what grpc.aio servicers are); synchronous handlers, which grpc runs in
    a thread pool, and client-streaming methods (reflection) pass through unchanged.
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: grpc answers UNIMPLEMENTED
        method = handler_call_details.method
        if handler.unary_unary is not None and inspect.iscoroutinefunction(handler.unary_unary):
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            behavior = handler.unary_stream
            wrapped: Callable[..., Any] | None = None
            if inspect.isasyncgenfunction(behavior):
                wrapped = _wrap_stream_generator(behavior, method)
            elif inspect.iscoroutinefunction(behavior):
                # A handler that writes with context.write (like health's Watch).
                wrapped = _wrap_unary(behavior, method)
            if wrapped is not None:
                return grpc.unary_stream_rpc_method_handler(
                    wrapped,
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler


def _wrap_unary(
    behavior: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]], method: str
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await behavior(request, context)
        except grpc.aio.AbortError:
            raise  # the handler chose its status itself
        except Exception as error:  # noqa: BLE001 - every error must become a status
            await _abort_with(context, method, error)

    return call


def _wrap_stream_generator(
    behavior: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]], method: str
) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    async def call(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for item in behavior(request, context):
                yield item
        except grpc.aio.AbortError:
            raise
        except Exception as error:  # noqa: BLE001
            # Messages already sent stay sent; the stream then ends with this status.
            await _abort_with(context, method, error)

    return call


def _address(host: str, port: int) -> str:
    # An IPv6 literal needs brackets before the port.
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


async def build_server(
    host: str,
    port: int,
    servicers: Sequence[ServicerRegistration],
    service_names: Sequence[str],
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, HealthServicer, int]:
    """Start an aio server with the servicers, health checking and reflection.

    `service_names` are the full names of the registered services (e.g.
    "warriorcoder.v1.Judge"); each of them and the overall "" status report SERVING once the
    server has started. Port 0 binds a free port. Returns (server, health, bound port).
    `interceptors` run after the error interceptor (it sees their exceptions too).
    With `credentials` (service/security.py, server_credentials) the port speaks TLS only.
    """
    if not service_names:
        raise ValueError("build_server: service_names must name at least one service")
    server = grpc.aio.server(interceptors=[ErrorStatusInterceptor(), *interceptors])
    for add_to_server, servicer in servicers:
        add_to_server(servicer, server)
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [*service_names, grpc_health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    address = _address(host, port)
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError as error:
        raise OSError(f"gRPC server cannot listen on {address}: {error}") from error
    if bound == 0:  # older grpc versions report a failed bind this way
        raise OSError(f"gRPC server cannot listen on {address}")
    # The "" status starts as SERVING in HealthServicer; nothing can connect before start().
    for name in ("", *service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    await server.start()
    for name in ("", *service_names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("gRPC server on %s serves %s", _address(host, bound), ", ".join(service_names))
    return server, health_servicer, bound


async def serve_health_only(
    host: str, port: int, health: HealthServicer
) -> tuple[grpc.aio.Server, int]:
    """A plaintext listener that serves only `health` (the same statuses as the API port).

    For kubelet's gRPC probes, which speak no TLS, when the API port does. It reveals nothing
    but SERVING/NOT_SERVING. Port 0 binds a free port. Returns (server, bound port).
    """
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    address = _address(host, port)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:
        raise OSError(f"gRPC health listener cannot listen on {address}: {error}") from error
    if bound == 0:
        raise OSError(f"gRPC health listener cannot listen on {address}")
    await server.start()
    log.info("gRPC health checking (plaintext) on %s", _address(host, bound))
    return server, bound


@dataclass
class ServiceServer:
    """A service's gRPC API server, its health statuses, and the plaintext health listener."""

    server: grpc.aio.Server
    health: HealthServicer
    port: int
    health_server: grpc.aio.Server | None = None
    health_port: int | None = None

    async def stop_health_listener(self) -> None:
        """Stop the health-only listener (after the API server stopped)."""
        if self.health_server is not None:
            await self.health_server.stop(None)


async def build_service_server(
    settings: ServiceSettings,
    servicers: Sequence[ServicerRegistration],
    service_names: Sequence[str],
) -> ServiceServer:
    """The API server as the settings secure it: TLS (and client certificates) on the port,
    write access (token or certificate identity) on the RPCs that write, and the plaintext
    health listener when `grpc_health_port` is set (service/security.py)."""
    access = write_access(settings)
    server, health, port = await build_server(
        settings.grpc_host, settings.grpc_port, servicers, service_names,
        interceptors=[WriteAccessInterceptor(access)] if access is not None else [],
        credentials=server_credentials(settings),
    )
    if (warning := plaintext_token_warning(settings)) is not None:
        log.warning("%s", warning)
    out = ServiceServer(server, health, port)
    if settings.grpc_health_port is not None:
        try:
            out.health_server, out.health_port = await serve_health_only(
                settings.grpc_host, settings.grpc_health_port, health)
        except OSError:
            await server.stop(None)
            raise
    log.info("gRPC API on port %d: %s; writes need %s", port,
             "TLS" if settings.grpc_tls_cert_file else "plaintext",
             "nothing (open)" if access is None else
             " or ".join(w for w, on in (("the token", access.token is not None),
                                          ("a client certificate", access.mutual_tls)) if on))
    return out


async def serve_until_stopped(
    server: grpc.aio.Server, health: HealthServicer, stop: asyncio.Event, grace_s: float
) -> None:
    """Serve until `stop` is set; then report NOT_SERVING everywhere and stop gracefully.

    NOT_SERVING goes out first so that load balancers and probes route new work elsewhere while
    the RPCs in flight get `grace_s` seconds to finish.
    """
    await stop.wait()
    await health.enter_graceful_shutdown()
    log.info("gRPC server stopping (grace %.1f s)", grace_s)
    await server.stop(grace_s)


def install_signal_handlers(loop: asyncio.AbstractEventLoop, stop_event: asyncio.Event) -> None:
    """Set `stop_event` on SIGTERM and SIGINT (handlers of the event loop; Unix only)."""

    def on_signal(signum: signal.Signals) -> None:
        log.info("received %s, shutting down", signum.name)
        stop_event.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
