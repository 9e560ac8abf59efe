"""Challenger: StartRound mines, filters and pairs a round's challenges and publishes them to
`challenges`; SubmitInstructions adds user challenges. No Kafka input."""

from collections.abc import Sequence

from warriorcoder.service.runner import ServiceContext, ServiceParts
from warriorcoder.service.servicers.challenger import ChallengerServicer
from warriorcoder.stages.bus import Topic
from warriorcoder.stages.challenger import Challenger
from warriorcoder.v1 import arena_pb2, services_pb2_grpc


def build(ctx: ServiceContext) -> ServiceParts:
    def publish(challenges: Sequence[arena_pb2.Challenge]) -> None:
        ctx.publish(Topic.CHALLENGES, challenges)

    challenger = Challenger(ctx.config, ctx.backends(), ctx.store)
    servicer = ChallengerServicer(ctx.config, challenger, ctx.store, publish)
    return ServiceParts(
        servicers=[(services_pb2_grpc.add_ChallengerServicer_to_server, servicer)],
        service_names=["warriorcoder.v1.Challenger"],
        on_stop=[servicer.aclose],
    )
