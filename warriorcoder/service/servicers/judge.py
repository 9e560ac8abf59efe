"""JudgeServicer: JudgeBattle."""

from __future__ import annotations

from warriorcoder.service.grpc_server import InvalidArgument
from warriorcoder.service.servicers.checks import Context, check_roster_member, check_seats
from warriorcoder.stages.judge import Judge
from warriorcoder.v1 import arena_pb2
from warriorcoder.v1 import services_pb2_grpc as services_grpc


class JudgeServicer(services_grpc.JudgeServicer):
    """JudgeBattle: every judge of the pair judges it in both orders."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge

    async def JudgeBattle(
        self, request: arena_pb2.ResponsePair, context: Context
    ) -> arena_pb2.BattleJudgments:
        """All judgments of the battle (stored valid judgments are reused)."""
        config = self.judge.config
        if not request.battle_id:
            raise InvalidArgument("battle_id is required")
        for side in ("response_a", "response_b"):
            if not request.HasField(side):
                raise InvalidArgument(f"{side} is required")
        check_roster_member(config, "model_a", request.model_a)
        check_roster_member(config, "model_b", request.model_b)
        if request.model_a == request.model_b:
            raise InvalidArgument(f"model_a and model_b are both {request.model_a!r}")
        check_seats(config, "judges", request.judges, taken=(request.model_a, request.model_b),
                    taken_as="competes in this battle",
                    empty="a battle needs at least one uninvolved judge")
        (result,) = await self.judge.judge_battles([request])
        return result
