"""Judge: uninvolved experts judge each battle in both orders; consumes `responses`, produces
`judgments` (one BattleJudgments per battle)."""

from warriorcoder.service.runner import ServiceContext, ServiceParts
from warriorcoder.service.servicers.judge import JudgeServicer
from warriorcoder.stages.bus import Topic
from warriorcoder.stages.judge import Judge
from warriorcoder.v1 import arena_pb2, services_pb2_grpc


def build(ctx: ServiceContext) -> ServiceParts:
    # With execution on, Judge refuses to start without execution.min_isolation's sandbox.
    judge = Judge(ctx.config, ctx.backends(), ctx.store)
    if judge.isolation is not None:
        ctx.metrics.set_sandbox_isolation(judge.isolation.mode.value)
    return ServiceParts(
        servicers=[(services_pb2_grpc.add_JudgeServicer_to_server, JudgeServicer(judge))],
        service_names=["warriorcoder.v1.Judge"],
        loop=ctx.stage_loop(Topic.RESPONSES, arena_pb2.ResponsePair, Topic.JUDGMENTS,
                            judge.handle),
    )
