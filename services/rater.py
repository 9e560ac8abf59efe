"""Rater: local score per battle from the votes, stored; consumes `judgments`, produces
`battles`. GetLeaderboard rates the round (Elo, Bradley-Terry with intervals, judge stats)."""

from warriorcoder.bus import Topic
from warriorcoder.service.runner import ServiceContext, ServiceParts
from warriorcoder.service.servicers import RaterServicer
from warriorcoder.stages.rater import Rater
from warriorcoder.v1 import arena_pb2, services_pb2_grpc


def build(ctx: ServiceContext) -> ServiceParts:
    rater = Rater(ctx.config, ctx.store)

    async def handle(items: list[arena_pb2.BattleJudgments]) -> list[arena_pb2.RatedBattle]:
        battles = rater.handle(items)
        ctx.metrics.record_judgments(items)
        ctx.metrics.record_battles(battles)
        return battles

    return ServiceParts(
        servicers=[(services_pb2_grpc.add_RaterServicer_to_server, RaterServicer(ctx.store, rater))],
        service_names=["warriorcoder.v1.Rater"],
        loop=ctx.stage_loop(Topic.JUDGMENTS, arena_pb2.BattleJudgments, Topic.BATTLES, handle),
    )
