"""JudgeServicer: JudgeBattle."""

from __future__ import annotations

from warriorcoder.service.servicers.checks import Context
from warriorcoder.service.servicers.stored import stored_battle
from warriorcoder.stages.judge import Judge
from warriorcoder.v1 import arena_pb2
from warriorcoder.v1 import services_pb2_grpc as services_grpc


class JudgeServicer(services_grpc.JudgeServicer):
    """JudgeBattle: every judge of the battle judges it in both orders. The battle is built from
    the stored challenge and answers; any content the request carries must match them
    (servicers/stored.py), so a caller cannot plant answers or judges."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge

    async def JudgeBattle(
        self, request: arena_pb2.ResponsePair, context: Context
    ) -> arena_pb2.BattleJudgments:
        """All judgments of the battle (stored valid judgments are reused)."""
        store = self.judge.store
        pair = await store.call(stored_battle, store, self.judge.config, request)
        (result,) = await self.judge.judge_battles([pair])
        return result
