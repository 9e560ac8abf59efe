"""What the verbs that talk to the distributed services share: one unary RPC, its error, its
credentials (TLS, client certificate, bearer token), and the flags that set them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class RemoteError(RuntimeError):
    """A distributed verb's RPC failed."""


@dataclass(frozen=True)
class ClientSecurity:
    """How a verb connects: TLS (trusting `ca`, or the system's CAs), an optional client
    certificate, and the bearer token that the RPCs which write need (docs/api.md)."""

    tls: bool = False
    ca: bytes | None = field(default=None, repr=False)
    cert: bytes | None = field(default=None, repr=False)
    key: bytes | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    # The name the server's certificate must carry when it differs from the address's host
    # (e.g. through `kubectl port-forward`, the address is 127.0.0.1).
    server_name: str | None = None

    def channel(self, address: str) -> Any:
        """A grpc.Channel to `address` with these credentials."""
        import grpc

        if not self.tls:
            return grpc.insecure_channel(address)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert)
        options = ([("grpc.ssl_target_name_override", self.server_name)]
                   if self.server_name else [])
        return grpc.secure_channel(address, credentials, options=options)

    def metadata(self) -> list[tuple[str, str]]:
        """The call metadata: the bearer token, when there is one."""
        return [("authorization", f"Bearer {self.token}")] if self.token else []


def _read(path: str, flag: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as err:
        raise RemoteError(f"{flag} {path}: cannot read it ({err.strerror or err})") from None


def client_security(args: argparse.Namespace) -> ClientSecurity:
    """The credentials of the flags in `args` (see `add_remote_args`), each flag falling back
    to its WARRIORCODER_GRPC_* variable (RuntimeSettings.grpc_client)."""
    from warriorcoder.config import runtime_settings

    env = runtime_settings()
    token: str | None = None
    if args.token_file:
        token = _read(args.token_file, "--token-file").decode("utf-8", "replace").strip()
        if not token:
            raise RemoteError(f"--token-file {args.token_file} is empty")
    else:
        token = env.grpc_client("TOKEN") or None
    ca_file = args.ca_file or env.grpc_client("CA_FILE")
    cert_file = args.cert_file or env.grpc_client("CLIENT_CERT_FILE")
    key_file = args.key_file or env.grpc_client("CLIENT_KEY_FILE")
    if bool(cert_file) != bool(key_file):
        raise RemoteError("--cert-file and --key-file go together: give both or neither")
    return ClientSecurity(
        tls=bool(args.tls or ca_file or cert_file or args.server_name),
        ca=_read(ca_file, "--ca-file") if ca_file else None,
        cert=_read(cert_file, "--cert-file") if cert_file else None,
        key=_read(key_file, "--key-file") if key_file else None,
        token=token,
        server_name=args.server_name or None,
    )


def call(address: str, stub_name: str, method: str, request: Any, timeout: float,
         security: ClientSecurity | None = None) -> Any:
    """One unary call; gRPC errors become a RemoteError naming the status."""
    import grpc

    from warriorcoder.v1 import services_pb2_grpc

    security = security or ClientSecurity()
    with security.channel(address) as channel:
        stub = getattr(services_pb2_grpc, f"{stub_name}Stub")(channel)
        try:
            return getattr(stub, method)(request, timeout=timeout, metadata=security.metadata())
        except grpc.RpcError as err:
            raise RemoteError(f"{stub_name}.{method} at {address}: {err.code().name}: "
                              f"{err.details()}") from None


def add_remote_args(parser: argparse.ArgumentParser) -> None:
    """--round-id, --timeout and the connection's security flags of every verb that calls a
    service."""
    parser.add_argument("--round-id", default="", help="default: the services' configured round")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds to wait for the reply (default: %(default)s)")
    security = parser.add_argument_group(
        "connection security (docs/api.md)",
        "Each flag defaults to its environment variable. The RPCs that write need the token or "
        "a client certificate when the service requires one.")
    security.add_argument("--token-file", metavar="FILE",
                          help="file holding the bearer token (default: $WARRIORCODER_GRPC_TOKEN;"
                               " no flag takes the token itself, so it never shows in ps)")
    security.add_argument("--tls", action="store_true",
                          help="connect with TLS, trusting the system's CAs (implied by the "
                               "flags below)")
    security.add_argument("--ca-file", metavar="PEM",
                          help="CA that signed the service's certificate "
                               "(default: $WARRIORCODER_GRPC_CA_FILE)")
    security.add_argument("--cert-file", metavar="PEM",
                          help="client certificate, for services that require one "
                               "(default: $WARRIORCODER_GRPC_CLIENT_CERT_FILE)")
    security.add_argument("--key-file", metavar="PEM",
                          help="key of --cert-file (default: $WARRIORCODER_GRPC_CLIENT_KEY_FILE)")
    security.add_argument("--server-name", metavar="NAME",
                          help="name the service's certificate carries when the address differs "
                               "(e.g. through kubectl port-forward)")
