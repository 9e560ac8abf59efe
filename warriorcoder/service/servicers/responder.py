"""ResponderServicer: Respond."""

from __future__ import annotations

from warriorcoder.service.servicers.checks import Context
from warriorcoder.service.servicers.stored import stored_challenge
from warriorcoder.stages.responder import Responder
from warriorcoder.v1 import arena_pb2, services_pb2
from warriorcoder.v1 import services_pb2_grpc as services_grpc


class ResponderServicer(services_grpc.ResponderServicer):
    """Respond: the attacker and defenders answer one stored challenge (stored answers are
    reused). The request names the challenge; any other field it sets must match the stored
    challenge (servicers/stored.py), so a caller cannot plant a prompt."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder

    async def Respond(
        self, request: arena_pb2.Challenge, context: Context
    ) -> services_pb2.RespondResponse:
        """One ResponsePair per opening battle of the stored challenge."""
        store = self.responder.store
        challenge = await store.call(stored_challenge, store, self.responder.config, request)
        pairs = await self.responder.handle([challenge])
        return services_pb2.RespondResponse(pairs=pairs)
