"""What the servicers share: the context type and the checks of roster fields."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import grpc

from warriorcoder.config import ArenaConfig
from warriorcoder.service.grpc_server import InvalidArgument

Context: TypeAlias = grpc.aio.ServicerContext


def check_roster_member(config: ArenaConfig, field: str, model_id: str) -> None:
    """InvalidArgument unless `model_id` (the request's `field`) is an expert of the roster."""
    roster = [e.id for e in config.roster]
    if not model_id:
        raise InvalidArgument(f"{field} is required")
    if model_id not in roster:
        raise InvalidArgument(f"{field} {model_id!r} is not an expert of the roster {roster}")


def check_seats(
    config: ArenaConfig, field: str, models: Sequence[str], *, taken: Sequence[str],
    taken_as: str, empty: str,
) -> None:
    """InvalidArgument unless the request's repeated `field` names at least one expert (`empty`
    says why one is needed), each of the roster and none of `taken` (`taken_as` says why)."""
    if not models:
        raise InvalidArgument(f"{field} is empty: {empty}")
    for i, model in enumerate(models):
        check_roster_member(config, f"{field}[{i}]", model)
        if model in taken:
            raise InvalidArgument(f"{field}[{i}] {model!r} {taken_as}")
