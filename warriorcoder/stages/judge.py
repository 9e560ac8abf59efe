"""Judge: every uninvolved expert judges each battle in both orders.

A verdict that cannot be parsed is never guessed: it is recorded as INVALID and, up to
`judge.retries_on_invalid` times, asked again with sampling (a greedy retry would repeat itself).
"""

from __future__ import annotations

from collections.abc import Sequence

from warriorcoder.arena.ids import derive_seed
from warriorcoder.arena.judging import (
    JUDGE_SYSTEM_PROMPT,
    VERDICT_FIRST_INSTRUCTION,
    VERDICT_PREFILL,
    judge_prompt,
    judgment_id,
    parse_verdict,
    prefilled_verdict_text,
    unswap,
)
from warriorcoder.backends.base import (
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    GenerationError,
)
from warriorcoder.backends.chat_templates import render_chat
from warriorcoder.config import SamplingConfig
from warriorcoder.stages.model_calls import ModelStage, generate_by_model, to_generation_pb
from warriorcoder.v1 import arena_pb2

ORDERS: tuple[arena_pb2.Order, ...] = (arena_pb2.ORDER_AB, arena_pb2.ORDER_BA)
RETRY_TEMPERATURE = 0.7


class Judge(ModelStage):
    def _request(
        self, judge: str, pair: arena_pb2.ResponsePair, order: arena_pb2.Order, attempt: int
    ) -> ChatRequest | CompletionRequest:
        a, b = pair.response_a.generation.text, pair.response_b.generation.text
        first, second = (a, b) if order == arena_pb2.ORDER_AB else (b, a)
        cfg = self.config.judge
        sampling = SamplingConfig(
            temperature=cfg.temperature if attempt == 1 else max(cfg.temperature, RETRY_TEMPERATURE),
            top_p=1.0,
            max_tokens=cfg.max_tokens,
            seed=derive_seed(self.config.seed, pair.battle_id, order, attempt),
        )
        prompt = judge_prompt(pair.instruction, first, second)
        if cfg.verdict_mode == "explain":
            messages = (ChatMessage("system", JUDGE_SYSTEM_PROMPT), ChatMessage("user", prompt))
            return ChatRequest(messages, sampling)
        # Pre-fill the judge's turn with "[[" so that its first tokens are the verdict.
        backend = self.backends[judge]
        text = render_chat(
            backend.chat_template(),
            [
                ChatMessage("system", JUDGE_SYSTEM_PROMPT),
                ChatMessage("user", f"{prompt}\n\n{VERDICT_FIRST_INSTRUCTION}"),
            ],
            add_generation_prompt=True,
            bos_token=backend.bos_token(),
        )
        return CompletionRequest(text + VERDICT_PREFILL, sampling, stop=("]]",))

    async def handle(
        self, pairs: Sequence[arena_pb2.ResponsePair]
    ) -> list[arena_pb2.BattleJudgments]:
        """All judgments of each battle; stored valid judgments are reused."""
        judgments: dict[str, arena_pb2.Judgment] = {}
        todo: list[tuple[arena_pb2.ResponsePair, str, arena_pb2.Order]] = []
        # One store read for the whole batch (a round trip per battle dominated the stage).
        stored_by_battle = self.store.judgments_of(
            p.battle_id for p in pairs if not (p.response_a.error or p.response_b.error)
        )
        for pair in pairs:
            if pair.response_a.error or pair.response_b.error:
                continue  # the rater marks the battle failed with the responder's reason
            stored_judgments = {j.judgment_id: j for j in stored_by_battle[pair.battle_id]}
            for judge in pair.judges:
                for order in ORDERS:
                    jid = judgment_id(pair.battle_id, judge, order)
                    stored = stored_judgments.get(jid)
                    if stored is not None and stored.verdict != arena_pb2.VERDICT_INVALID:
                        judgments[jid] = stored
                    else:
                        todo.append((pair, judge, order))

        cfg = self.config.judge
        attempt = 1
        while todo and attempt <= 1 + self.config.judge.retries_on_invalid:
            requests = [
                (judge, self._request(judge, pair, order, attempt)) for pair, judge, order in todo
            ]
            outcomes = await generate_by_model(self.backends, requests)
            retry = []
            fresh = []
            for (pair, judge, order), outcome in zip(todo, outcomes, strict=True):
                j = arena_pb2.Judgment(
                    judgment_id=judgment_id(pair.battle_id, judge, order),
                    battle_id=pair.battle_id,
                    judge=judge,
                    order=order,
                    attempts=attempt,
                )
                if isinstance(outcome, GenerationError):
                    # The model server failed after its own retries: no point asking again now.
                    j.position_verdict = j.verdict = arena_pb2.VERDICT_INVALID
                    j.error = f"{judge}: {outcome.reason}"
                else:
                    j.generation.CopyFrom(to_generation_pb(outcome))
                    if cfg.verdict_mode == "prefill":
                        j.generation.text = prefilled_verdict_text(outcome.text)
                    j.position_verdict = parse_verdict(j.generation.text)
                    j.verdict = unswap(j.position_verdict, order)
                    if j.verdict == arena_pb2.VERDICT_INVALID:
                        j.error = "no verdict found in the judge's answer"
                        retry.append((pair, judge, order))
                fresh.append(j)
                judgments[j.judgment_id] = j
            self.store.save_judgments(fresh)
            todo, attempt = retry, attempt + 1

        by_battle: dict[str, list[arena_pb2.Judgment]] = {}
        for jid in sorted(judgments):
            by_battle.setdefault(judgments[jid].battle_id, []).append(judgments[jid])
        return [
            arena_pb2.BattleJudgments(pair=pair, judgments=by_battle.get(pair.battle_id, []))
            for pair in pairs
        ]
