"""RaterServicer: GetBattle, GetLeaderboard."""

from __future__ import annotations

from warriorcoder.service.grpc_server import InvalidArgument, NotFound
from warriorcoder.service.servicers.checks import Context
from warriorcoder.stages.rater import Rater
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2, services_pb2
from warriorcoder.v1 import services_pb2_grpc as services_grpc


class RaterServicer(services_grpc.RaterServicer):
    """GetBattle reads one rated battle; GetLeaderboard rates a round from the stored battles."""

    def __init__(self, store: ArenaStore, rater: Rater) -> None:
        self.store = store
        self.rater = rater

    async def GetBattle(
        self, request: services_pb2.GetBattleRequest, context: Context
    ) -> arena_pb2.RatedBattle:
        """The stored battle, rated or failed."""
        if not request.battle_id:
            raise InvalidArgument("battle_id is required")
        battle = await self.store.call(self.store.battle, request.battle_id)
        if battle is None:
            raise NotFound(f"battle {request.battle_id!r} not found (not rated yet, or unknown)")
        return battle

    async def GetLeaderboard(
        self, request: services_pb2.GetLeaderboardRequest, context: Context
    ) -> arena_pb2.Leaderboard:
        """Elo, Bradley-Terry with intervals and judge statistics, computed now and stored (the
        exporter reuses it while no battle changes)."""
        round_id = request.round_id or self.rater.config.round_id
        # Off the event loop: the intervals take a while on a large round.
        board = await self.store.call(self._leaderboard, round_id)
        if board is None:
            raise NotFound(f"round {round_id!r} has no battles (unknown round, or none rated yet)")
        return board

    def _leaderboard(self, round_id: str) -> arena_pb2.Leaderboard | None:
        if self.store.count("battles", {"round_id": round_id}) == 0:
            return None
        return self.rater.leaderboard(round_id)
