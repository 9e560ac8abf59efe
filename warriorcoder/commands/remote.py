"""What the verbs that talk to the distributed services share: one unary RPC, its error, and
the --round-id/--timeout flags."""

from __future__ import annotations

import argparse
from typing import Any


class RemoteError(RuntimeError):
    """A distributed verb's RPC failed."""


def call(address: str, stub_name: str, method: str, request: Any, timeout: float) -> Any:
    """One unary call; gRPC errors become a RemoteError naming the status."""
    import grpc

    from warriorcoder.v1 import services_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = getattr(services_pb2_grpc, f"{stub_name}Stub")(channel)
        try:
            return getattr(stub, method)(request, timeout=timeout)
        except grpc.RpcError as err:
            raise RemoteError(f"{stub_name}.{method} at {address}: {err.code().name}: "
                              f"{err.details()}") from None


def add_remote_args(parser: argparse.ArgumentParser) -> None:
    """--round-id and --timeout of every verb that calls a service."""
    parser.add_argument("--round-id", default="", help="default: the services' configured round")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds to wait for the reply (default: %(default)s)")
