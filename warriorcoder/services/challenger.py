"""Challenger: StartRound mines, filters and pairs a round's challenges and publishes them to
`challenges`; SubmitInstructions adds user challenges. No Kafka input. Stored challenges the
broker has not acknowledged are published again (service/outbox.py)."""

from collections.abc import Sequence

from warriorcoder.service.outbox import ChallengeOutbox, crash_point
from warriorcoder.service.runner import ServiceContext, ServiceParts
from warriorcoder.service.servicers.challenger import ChallengerServicer
from warriorcoder.stages.bus import Topic
from warriorcoder.stages.challenger import Challenger
from warriorcoder.v1 import arena_pb2, services_pb2_grpc


def build(ctx: ServiceContext) -> ServiceParts:
    def publish(challenges: Sequence[arena_pb2.Challenge]) -> None:
        ctx.publish(Topic.CHALLENGES, challenges)

    checkpoint = crash_point(ctx.settings.fault_crash_at)
    challenger = Challenger(ctx.config, ctx.backends(), ctx.store, outbox=True,
                            checkpoint=checkpoint)
    outbox = ChallengeOutbox(ctx.store, publish, checkpoint=checkpoint)
    servicer = ChallengerServicer(ctx.config, challenger, ctx.store, outbox)
    servicer.start_outbox()  # build runs inside the service's event loop
    return ServiceParts(
        servicers=[(services_pb2_grpc.add_ChallengerServicer_to_server, servicer)],
        service_names=["warriorcoder.v1.Challenger"],
        on_stop=[servicer.aclose],
    )
