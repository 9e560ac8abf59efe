"""Responder: attacker and defenders answer each challenge; consumes `challenges`, produces
`responses` (one ResponsePair per battle)."""

from warriorcoder.service.runner import ServiceContext, ServiceParts
from warriorcoder.service.servicers.responder import ResponderServicer
from warriorcoder.stages.bus import Topic
from warriorcoder.stages.responder import Responder
from warriorcoder.v1 import arena_pb2, services_pb2_grpc


def build(ctx: ServiceContext) -> ServiceParts:
    responder = Responder(ctx.config, ctx.backends(), ctx.store)
    return ServiceParts(
        servicers=[(services_pb2_grpc.add_ResponderServicer_to_server,
                    ResponderServicer(responder))],
        service_names=["warriorcoder.v1.Responder"],
        loop=ctx.stage_loop(Topic.CHALLENGES, arena_pb2.Challenge, Topic.RESPONSES,
                            responder.handle),
    )
