"""RaterServicer: GetBattle, GetLeaderboard (a round, or an arena's season)."""

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
        """Elo, Bradley-Terry with intervals and judge statistics of a round (or, with
        `season`, of every round of an arena), computed now from the rating tally and stored
        (the exporter reuses a round's board while its tally does not change)."""
        # Off the event loop: the intervals take a while (their cost grows with the models,
        # not with the battles).
        if request.season:
            arena = request.arena or self.rater.config.arena
            season = await self.store.call(self.rater.season_leaderboard, arena)
            if season is None:
                raise NotFound(f"arena {arena!r} has no battles (unknown arena, or none rated "
                               "yet)")
            return season
        if request.arena:
            raise InvalidArgument("arena names a season: set season too (or leave arena empty)")
        round_id = request.round_id or self.rater.config.round_id
        board = await self.store.call(self._leaderboard, round_id)
        if board is None:
            raise NotFound(f"round {round_id!r} has no battles (unknown round, or none rated yet)")
        return board

    def _leaderboard(self, round_id: str) -> arena_pb2.Leaderboard | None:
        if self.store.count("battles", {"round_id": round_id}) == 0:
            return None
        return self.rater.leaderboard(round_id)
