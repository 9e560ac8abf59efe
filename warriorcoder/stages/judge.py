"""Judge: every uninvolved expert judges each battle in both orders.

A verdict that cannot be parsed is never guessed: it is recorded as INVALID and, up to
`judge.retries_on_invalid` times, asked again with sampling (a greedy retry would repeat itself).

With execution on, a battle whose challenge has tests also has both answers' code run against
them in the sandbox, alongside the judging; the results travel to the rater with the judgments.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from warriorcoder.arena.code_extraction import extract_python_code
from warriorcoder.arena.grounding import execution_id
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
    ModelBackend,
)
from warriorcoder.backends.chat_templates import render_chat
from warriorcoder.config import ArenaConfig, SamplingConfig
from warriorcoder.execution import RunResult, RunStatus, SandboxLimits, run_tests
from warriorcoder.stages.model_calls import ModelStage, generate_by_model, to_generation_pb
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

log = logging.getLogger(__name__)

ORDERS: tuple[arena_pb2.Order, ...] = (arena_pb2.ORDER_AB, arena_pb2.ORDER_BA)
RETRY_TEMPERATURE = 0.7
# Execution results kept in memory: a redelivered battle reuses them instead of running again.
EXECUTION_CACHE_SIZE = 4096

# Runs `solution` followed by `tests` under limits (the sandbox's run_tests, or a stand-in).
TestRunner = Callable[[str, str, SandboxLimits], RunResult]

_STATUS: dict[RunStatus, arena_pb2.ExecutionStatus] = {
    RunStatus.PASSED: arena_pb2.EXECUTION_STATUS_PASSED,
    RunStatus.FAILED: arena_pb2.EXECUTION_STATUS_FAILED,
    RunStatus.TIMEOUT: arena_pb2.EXECUTION_STATUS_TIMEOUT,
    RunStatus.KILLED: arena_pb2.EXECUTION_STATUS_KILLED,
    RunStatus.ERROR: arena_pb2.EXECUTION_STATUS_ERROR,
}


def execution_result_pb(exec_id: str, model_id: str, run: RunResult) -> arena_pb2.ExecutionResult:
    """A sandbox result as the schema's ExecutionResult."""
    result = arena_pb2.ExecutionResult(
        execution_id=exec_id,
        model_id=model_id,
        status=_STATUS[run.status],
        reason=run.reason,
        duration_s=run.duration_s,
        stdout=run.stdout,
        stderr=run.stderr,
    )
    if run.exit_code is not None:
        result.exit_code = run.exit_code
    return result


class Judge(ModelStage):
    def __init__(
        self,
        config: ArenaConfig,
        backends: Mapping[str, ModelBackend],
        store: ArenaStore,
        *,
        test_runner: TestRunner = run_tests,
    ) -> None:
        super().__init__(config, backends, store)
        self.test_runner = test_runner
        ex = config.execution
        self.limits = SandboxLimits(timeout_s=ex.timeout_s, memory_mb=ex.memory_mb)
        self._executions: OrderedDict[str, arena_pb2.ExecutionResult] = OrderedDict()

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
        """All judgments of each battle (stored valid judgments are reused) and, with execution
        on, both answers run against the battle's tests (judging and running overlap)."""
        by_battle, executions = await asyncio.gather(self._judge(pairs), self.execute(pairs))
        out = []
        for pair in pairs:
            item = arena_pb2.BattleJudgments(pair=pair, judgments=by_battle.get(pair.battle_id, []))
            if pair.battle_id in executions:
                result_a, result_b = executions[pair.battle_id]
                item.execution_a.CopyFrom(result_a)
                item.execution_b.CopyFrom(result_b)
            out.append(item)
        return out

    async def _judge(
        self, pairs: Sequence[arena_pb2.ResponsePair]
    ) -> dict[str, list[arena_pb2.Judgment]]:
        """Judgments of each battle by battle id, sorted by judgment id."""
        judgments: dict[str, arena_pb2.Judgment] = {}
        todo: list[tuple[arena_pb2.ResponsePair, str, arena_pb2.Order]] = []
        # One store read for the whole batch (a round trip per battle dominated the stage).
        stored_by_battle = await self.store.call(
            self.store.judgments_of,
            [p.battle_id for p in pairs if not (p.response_a.error or p.response_b.error)],
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
            await self.store.call(self.store.save_judgments, fresh)
            todo, attempt = retry, attempt + 1

        by_battle: dict[str, list[arena_pb2.Judgment]] = {}
        for jid in sorted(judgments):
            by_battle.setdefault(judgments[jid].battle_id, []).append(judgments[jid])
        return by_battle

    async def execute(
        self, pairs: Sequence[arena_pb2.ResponsePair]
    ) -> dict[str, tuple[arena_pb2.ExecutionResult, arena_pb2.ExecutionResult]]:
        """(result_a, result_b) by battle id for the battles that are executed: execution on,
        tests present, both answers without error.

        Each distinct (challenge, model, code, tests) runs once (an attacker's answer fights
        every defender), at most `execution.concurrency` runs at a time, each in a thread.
        Results are remembered, so a redelivered battle is not run again; running it again
        would store the same result under the same id anyway.
        """
        if not self.config.execution.enabled:
            return {}
        wanted: dict[str, tuple[str, str, str]] = {}  # execution id -> (model, code, tests)
        sides: dict[str, tuple[str, str]] = {}  # battle id -> (execution id a, execution id b)
        for pair in pairs:
            if not pair.tests.strip() or pair.response_a.error or pair.response_b.error:
                continue
            ids = []
            for model, response in ((pair.model_a, pair.response_a),
                                    (pair.model_b, pair.response_b)):
                code = extract_python_code(response.generation.text)
                exec_id = execution_id(pair.challenge_id, model, code, pair.tests)
                wanted[exec_id] = (model, code, pair.tests)
                ids.append(exec_id)
            sides[pair.battle_id] = (ids[0], ids[1])
        todo = [i for i in wanted if i not in self._executions]
        semaphore = asyncio.Semaphore(self.config.execution.concurrency)

        async def run(exec_id: str) -> arena_pb2.ExecutionResult:
            model, code, tests = wanted[exec_id]
            if not code.strip():
                return arena_pb2.ExecutionResult(
                    execution_id=exec_id,
                    model_id=model,
                    status=arena_pb2.EXECUTION_STATUS_NO_CODE,
                    reason="the answer holds no Python code",
                )
            async with semaphore:
                try:
                    outcome = await asyncio.to_thread(self.test_runner, code, tests, self.limits)
                except (OSError, RuntimeError) as error:  # the sandbox broke: no signal
                    log.warning("sandbox failed on %s: %r", exec_id, error)
                    return arena_pb2.ExecutionResult(
                        execution_id=exec_id,
                        model_id=model,
                        status=arena_pb2.EXECUTION_STATUS_ERROR,
                        reason=f"sandbox failed: {error!r}"[:300],
                    )
            return execution_result_pb(exec_id, model, outcome)

        fresh = dict(zip(todo, await asyncio.gather(*(run(i) for i in todo)), strict=True))
        results = {i: fresh[i] if i in fresh else self._executions[i] for i in wanted}
        for exec_id, result in fresh.items():
            if result.status != arena_pb2.EXECUTION_STATUS_ERROR:  # errors are tried again
                self._executions[exec_id] = result
        for exec_id in wanted:
            if exec_id in self._executions:
                self._executions.move_to_end(exec_id)
        while len(self._executions) > EXECUTION_CACHE_SIZE:
            self._executions.popitem(last=False)
        return {b: (results[a], results[c]) for b, (a, c) in sides.items()}
