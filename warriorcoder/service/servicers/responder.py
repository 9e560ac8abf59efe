"""ResponderServicer: Respond."""

from __future__ import annotations

from warriorcoder.service.grpc_server import InvalidArgument
from warriorcoder.service.servicers.checks import Context, check_roster_member, check_seats
from warriorcoder.stages.responder import Responder
from warriorcoder.v1 import arena_pb2, services_pb2
from warriorcoder.v1 import services_pb2_grpc as services_grpc


class ResponderServicer(services_grpc.ResponderServicer):
    """Respond: the attacker and defenders answer one challenge (stored answers are reused)."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder

    async def Respond(
        self, request: arena_pb2.Challenge, context: Context
    ) -> services_pb2.RespondResponse:
        """One ResponsePair per defender of the challenge."""
        config = self.responder.config
        if not request.challenge_id:
            raise InvalidArgument("challenge_id is required")
        if not request.instruction.strip():
            raise InvalidArgument("instruction is required (it is empty or blank)")
        check_roster_member(config, "attacker", request.attacker)
        check_seats(config, "defenders", request.defenders, taken=(request.attacker,),
                    taken_as="is the attacker", empty="a challenge needs at least one defender")
        if len(set(request.defenders)) != len(request.defenders):
            raise InvalidArgument(f"defenders {list(request.defenders)} has duplicates")
        pairs = await self.responder.handle([request])
        return services_pb2.RespondResponse(pairs=pairs)
