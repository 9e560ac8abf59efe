"""Rater: local score per battle from the votes, stored and counted into the round's and the
season's rating tallies; consumes `judgments`, produces `battles`. GetLeaderboard rates a round
or a season (Elo, Bradley-Terry with intervals, judge stats) from its tally."""

import asyncio
import logging
import math
import time

from warriorcoder.service.runner import ServiceContext, ServiceParts
from warriorcoder.service.servicers.rater import RaterServicer
from warriorcoder.stages.bus import Topic
from warriorcoder.stages.rater import Rater
from warriorcoder.v1 import arena_pb2, services_pb2_grpc

log = logging.getLogger(__name__)

# The ratings metrics (warriorcoder_rating, warriorcoder_season_rating) come from the round's
# and the season's leaderboards, computed from their tallies (a cost that grows with the models,
# not with the battles): refreshed in the background at most this often, and once more after
# the last batch, so the final ratings of a round are always published.
RATINGS_REFRESH_S = 60.0


def build(ctx: ServiceContext) -> ServiceParts:
    rater = Rater(ctx.config, ctx.store)
    last_refresh = -math.inf
    scheduled: asyncio.TimerHandle | None = None
    running: set[asyncio.Task[None]] = set()

    async def refresh_ratings(round_id: str) -> None:
        nonlocal last_refresh
        last_refresh = time.monotonic()
        try:  # off the event loop: the store is MongoDB, whose client is thread-safe
            board = await asyncio.to_thread(rater.leaderboard, round_id)
            ctx.metrics.record_leaderboard(board)
            season = await asyncio.to_thread(rater.season_leaderboard, board.arena)
            if season is not None:
                ctx.metrics.record_season_leaderboard(season)
        except Exception as error:  # noqa: BLE001 - a metric must not stop the stage
            log.warning("ratings metric not refreshed: %s", error)

    def schedule_ratings(round_id: str) -> None:
        nonlocal scheduled
        if scheduled is not None:
            return  # a refresh is due already; it will see this batch too

        def start() -> None:
            nonlocal scheduled
            scheduled = None
            task = asyncio.create_task(refresh_ratings(round_id))
            running.add(task)
            task.add_done_callback(running.discard)

        delay = max(0.0, last_refresh + RATINGS_REFRESH_S - time.monotonic())
        scheduled = asyncio.get_running_loop().call_later(delay, start)

    async def handle(items: list[arena_pb2.BattleJudgments]) -> list[arena_pb2.RatedBattle]:
        battles = await ctx.store.call(rater.handle, items)  # MongoDB: off the event loop
        ctx.metrics.record_judgments(items)
        ctx.metrics.record_battles(battles)
        if battles:
            schedule_ratings(battles[-1].round_id)
        return battles

    async def stop_ratings() -> None:
        if scheduled is not None:
            scheduled.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    viewer_stop = []
    if ctx.settings.viewer_port is not None:  # the battle viewer on its own port (docs/viewer.md)
        from warriorcoder.viewer.service import start_service_viewer

        viewer_stop.append(start_service_viewer(ctx.settings, ctx.config, ctx.store))

    return ServiceParts(
        servicers=[
            (services_pb2_grpc.add_RaterServicer_to_server, RaterServicer(ctx.store, rater))
        ],
        service_names=["warriorcoder.v1.Rater"],
        loop=ctx.stage_loop(Topic.JUDGMENTS, arena_pb2.BattleJudgments, Topic.BATTLES, handle),
        on_stop=[stop_ratings, *viewer_stop],
    )
