"""Judge: every uninvolved expert judges each battle in both orders.

A verdict that cannot be parsed is never guessed: it is recorded as INVALID and, up to
`judge.retries_on_invalid` times, asked again with sampling (a greedy retry would repeat itself).

With execution on, a battle whose challenge has tests also has both answers' code run against
them in the sandbox, alongside the judging; the results travel to the rater with the judgments.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

from warriorcoder.arena.code_extraction import extract_python_code
from warriorcoder.arena.grounding import execution_id
from warriorcoder.arena.ids import derive_seed
from warriorcoder.arena.judging import (
    VERDICT_PREFILL,
    explanation_chars,
    judge_prompt,
    judgment_id,
    prefilled_verdict_text,
    read_judge_answer,
    unswap,
    verdict_format,
    verdict_json_schema,
    verdict_probabilities,
)
from warriorcoder.arena.mining import judges_for
from warriorcoder.arena.tournament import (
    Match,
    opening_battles,
    pending_battles,
    plan_judges,
    tournament_models,
)
from warriorcoder.backends.base import (
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    GenerationError,
    ModelBackend,
)
from warriorcoder.backends.chat_templates import render_chat
from warriorcoder.backends.openai import choice_constraint, json_schema_format
from warriorcoder.config import ArenaConfig, SamplingConfig
from warriorcoder.execution import (
    RunResult,
    RunStatus,
    SandboxInfo,
    SandboxLimits,
    SandboxMode,
    SandboxUnavailable,
    TestStatus,
    require_isolation,
    run_tests,
)
from warriorcoder.stages.model_calls import ModelStage, generate_by_model, to_generation_pb
from warriorcoder.stages.rater import rate_judged_battle
from warriorcoder.stages.responder import battle_pair
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


_TEST_STATUS: dict[TestStatus, arena_pb2.TestCaseStatus] = {
    TestStatus.PASSED: arena_pb2.TEST_CASE_STATUS_PASSED,
    TestStatus.FAILED: arena_pb2.TEST_CASE_STATUS_FAILED,
    TestStatus.ERROR: arena_pb2.TEST_CASE_STATUS_ERROR,
    TestStatus.TIMEOUT: arena_pb2.TEST_CASE_STATUS_TIMEOUT,
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
    if run.isolation is not None:
        result.isolation = run.isolation.value
    for test in run.tests:
        result.tests.add(name=test.name, status=_TEST_STATUS[test.status], message=test.message)
    result.tests_passed = run.tests_passed
    result.tests_total = run.tests_total
    return result


def with_judges(pair: arena_pb2.ResponsePair, judges: Sequence[str]) -> arena_pb2.ResponsePair:
    """A copy of `pair` that lists `judges` (the ones adaptive judging asked)."""
    out = arena_pb2.ResponsePair()
    out.CopyFrom(pair)
    del out.judges[:]
    out.judges.extend(judges)
    return out


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
        self.limits = SandboxLimits(timeout_s=ex.timeout_s, memory_mb=ex.memory_mb,
                                    min_isolation=SandboxMode(ex.min_isolation))
        # Fail closed: with execution on, a judge that cannot isolate answers as strongly as
        # execution.min_isolation asks does not start (SandboxUnavailable names what failed).
        # A stand-in runner (tests, calibration's fakes) runs no untrusted code: no check.
        self.isolation: SandboxInfo | None = None
        if ex.enabled and test_runner is run_tests:
            self.isolation = require_isolation(self.limits.min_isolation)
            log.info("sandbox: mode %s (execution.min_isolation=%s); protections: %s",
                     self.isolation.mode.value, ex.min_isolation,
                     ", ".join(self.isolation.protections))
        self._executions: OrderedDict[str, arena_pb2.ExecutionResult] = OrderedDict()

    def _request(
        self, judge: str, pair: arena_pb2.ResponsePair, order: arena_pb2.Order, attempt: int
    ) -> ChatRequest | CompletionRequest:
        a, b = pair.response_a.generation.text, pair.response_b.generation.text
        first, second = (a, b) if order == arena_pb2.ORDER_AB else (b, a)
        cfg = self.config.judge
        sampling = SamplingConfig(
            temperature=(cfg.temperature if attempt == 1
                         else max(cfg.temperature, RETRY_TEMPERATURE)),
            top_p=1.0,
            max_tokens=cfg.max_tokens,
            seed=derive_seed(self.config.seed, pair.battle_id, order, attempt),
        )
        prompt = judge_prompt(pair.instruction, first, second)
        structured = cfg.structured_output
        form = verdict_format(cfg.labels)
        # Soft votes read the verdict token's probabilities: the top 5 alternatives suffice.
        logprobs = 5 if cfg.soft_votes else None
        choice = (
            choice_constraint(form.choices, structured)
            if structured in ("choice", "guided_choice")
            else None
        )
        system = ChatMessage("system", form.system_prompt)
        if cfg.verdict_mode == "explain":
            if structured == "json_schema":
                user = ChatMessage("user", f"{prompt}\n\n{form.json_instruction}")
                # The explanation is bounded so that the verdict always fits in max_tokens.
                bounded = verdict_json_schema(explanation_chars(cfg.max_tokens), form.choices)
                schema = json_schema_format("judge_verdict", bounded)
                return ChatRequest((system, user), sampling, response_format=schema)
            if choice is not None:  # the answer is one choice: no explanation
                user = ChatMessage("user", f"{prompt}\n\n{form.choice_instruction}")
                return ChatRequest((system, user), sampling, extra_body=choice, logprobs=logprobs)
            return ChatRequest((system, ChatMessage("user", prompt)), sampling)
        # Pre-fill the judge's turn with "[[" so that its first tokens are the verdict.
        backend = self.backends[judge]
        text = render_chat(
            backend.chat_template(),
            [system, ChatMessage("user", f"{prompt}\n\n{form.first_instruction}")],
            add_generation_prompt=True,
            bos_token=backend.bos_token(),
        )
        return CompletionRequest(
            text + VERDICT_PREFILL, sampling, stop=("]]",), extra_body=choice, logprobs=logprobs
        )

    async def handle(
        self, pairs: Sequence[arena_pb2.ResponsePair]
    ) -> list[arena_pb2.BattleJudgments]:
        """Judge the battles, then fight the tournament battles they unlock.

        Returns one BattleJudgments per input pair, followed by those of every further battle
        of the pairs' challenges that `selection.tournament` schedules once their battles so
        far have results (see `continue_tournaments`).
        """
        items = await self.judge_battles(pairs)
        if self.config.selection.tournament != "none":
            items += await self.continue_tournaments(pairs)
        return items

    async def judge_battles(
        self, pairs: Sequence[arena_pb2.ResponsePair]
    ) -> list[arena_pb2.BattleJudgments]:
        """All judgments of each battle (stored valid judgments are reused) and, with execution
        on, both answers run against the battle's tests (judging and running overlap).

        With adaptive judging the pair in each result lists only the judges that were asked.
        """
        (by_battle, asked), executions = await asyncio.gather(
            self._judge(pairs), self.execute(pairs)
        )
        out = []
        for pair in pairs:
            judged = with_judges(pair, asked[pair.battle_id]) if pair.battle_id in asked else pair
            item = arena_pb2.BattleJudgments(
                pair=judged, judgments=by_battle.get(pair.battle_id, [])
            )
            if pair.battle_id in executions:
                result_a, result_b = executions[pair.battle_id]
                item.execution_a.CopyFrom(result_a)
                item.execution_b.CopyFrom(result_b)
            out.append(item)
        return out

    def _max_attempts(self) -> int:
        return 1 + self.config.judge.retries_on_invalid

    def _is_final(self, judgment: arena_pb2.Judgment | None) -> bool:
        """A judgment that will not be asked again in this pass: a valid verdict, retries used
        up, or a model server that failed after its own retries (no generation)."""
        if judgment is None:
            return False
        return (
            judgment.verdict != arena_pb2.VERDICT_INVALID
            or judgment.attempts >= self._max_attempts()
            or not judgment.HasField("generation")
        )

    def _plan(
        self, pair: arena_pb2.ResponsePair, judgments: Mapping[str, arena_pb2.Judgment]
    ) -> tuple[list[str], bool]:
        """The judges to ask for `pair` and whether its battle is complete (`plan_judges`)."""
        return plan_judges(
            pair.battle_id,
            pair.judges,
            judgments,
            adaptive=self.config.judge.adaptive,
            is_final=self._is_final,
            strong_weight=self.config.judge.strong_verdict_weight,
        )

    async def _judge(
        self, pairs: Sequence[arena_pb2.ResponsePair]
    ) -> tuple[dict[str, list[arena_pb2.Judgment]], dict[str, list[str]]]:
        """Judgments of each battle by battle id (sorted by judgment id), and the judges asked
        per battle. Stored valid judgments are reused; stored invalid ones are asked again."""
        judgments: dict[str, arena_pb2.Judgment] = {}
        previous: dict[str, arena_pb2.Judgment] = {}
        judged = [p for p in pairs if not (p.response_a.error or p.response_b.error)]
        # One store read by id for the whole batch (a round trip per battle dominated the stage).
        stored_by_battle = await self._stored_judgments(judged)
        for pair in judged:
            for stored in stored_by_battle[pair.battle_id]:
                previous[stored.judgment_id] = stored
                if stored.verdict != arena_pb2.VERDICT_INVALID:
                    judgments[stored.judgment_id] = stored
        asked: dict[str, list[str]] = {}
        while True:
            todo: list[tuple[arena_pb2.ResponsePair, str, arena_pb2.Order]] = []
            for pair in judged:
                asked[pair.battle_id], done = self._plan(pair, judgments)
                if done:
                    continue
                todo += [
                    (pair, judge, order)
                    for judge in asked[pair.battle_id]
                    for order in ORDERS
                    if not self._is_final(judgments.get(judgment_id(pair.battle_id, judge, order)))
                ]
            if not todo:
                break
            await self._ask(todo, judgments, previous)

        by_battle: dict[str, list[arena_pb2.Judgment]] = {}
        for jid in sorted(judgments):
            judgment = judgments[jid]
            if judgment.judge in asked.get(judgment.battle_id, ()):
                by_battle.setdefault(judgment.battle_id, []).append(judgment)
        return by_battle, asked

    async def _stored_judgments(
        self, pairs: Sequence[arena_pb2.ResponsePair]
    ) -> dict[str, list[arena_pb2.Judgment]]:
        """The stored judgments of each pair's panel in both orders, by battle id, each list
        sorted by judgment id: one read by id, whose cost does not grow with the store."""
        battle_of = {judgment_id(p.battle_id, judge, order): p.battle_id
                     for p in pairs for judge in p.judges for order in ORDERS}
        found = await self.store.call(self.store.judgments_by_id, battle_of)
        by_battle: dict[str, list[arena_pb2.Judgment]] = {p.battle_id: [] for p in pairs}
        for jid in sorted(found):
            by_battle[battle_of[jid]].append(found[jid])
        return by_battle

    async def _ask(
        self,
        todo: list[tuple[arena_pb2.ResponsePair, str, arena_pb2.Order]],
        judgments: dict[str, arena_pb2.Judgment],
        previous: Mapping[str, arena_pb2.Judgment],
    ) -> None:
        """Ask each (battle, judge, order) in `todo`, retrying unparseable verdicts with
        sampling; every attempt is stored, and `judgments` gets the latest of each."""
        cfg = self.config.judge
        attempt = 1
        while todo and attempt <= self._max_attempts():
            requests = [
                (judge, self._request(judge, pair, order, attempt)) for pair, judge, order in todo
            ]
            outcomes = await generate_by_model(self.backends, requests)
            retry = []
            fresh = []
            for (pair, judge, order), outcome in zip(todo, outcomes, strict=True):
                jid = judgment_id(pair.battle_id, judge, order)
                before = judgments.get(jid) or previous.get(jid)
                j = arena_pb2.Judgment(
                    judgment_id=jid,
                    battle_id=pair.battle_id,
                    judge=judge,
                    order=order,
                    attempts=attempt,
                    spent_calls=(before.spent_calls if before else 0) + 1,
                    spent_tokens=before.spent_tokens if before else 0,
                )
                if isinstance(outcome, GenerationError):
                    # The model server failed after its own retries: no point asking again now.
                    j.position_verdict = j.verdict = arena_pb2.VERDICT_INVALID
                    j.error = f"{judge}: {outcome.reason}"
                else:
                    j.generation.CopyFrom(to_generation_pb(outcome))
                    j.spent_tokens += outcome.prompt_tokens + outcome.completion_tokens
                    if cfg.verdict_mode == "prefill":
                        j.generation.text = prefilled_verdict_text(outcome.text)
                    parsed = read_judge_answer(
                        j.generation.text, cfg.structured_output, cfg.verdict_mode, cfg.labels
                    )
                    j.position_verdict, j.strong = parsed.verdict, parsed.strong
                    soft = verdict_probabilities(outcome.top_logprobs) if cfg.soft_votes else None
                    if soft is not None and parsed.verdict != arena_pb2.VERDICT_INVALID:
                        j.soft.a, j.soft.b, j.soft.tie = soft
                    j.verdict = unswap(j.position_verdict, order)
                    if j.verdict == arena_pb2.VERDICT_INVALID:
                        j.error = parsed.reason
                        retry.append((pair, judge, order))
                fresh.append(j)
                judgments[jid] = j
            await self.store.call(self.store.save_judgments, fresh)
            todo, attempt = retry, attempt + 1

    # -- tournaments ------------------------------------------------------------------------

    async def continue_tournaments(
        self, pairs: Sequence[arena_pb2.ResponsePair]
    ) -> list[arena_pb2.BattleJudgments]:
        """Fight the tournament battles that the pairs' challenges have unlocked.

        Works from the store, so it does not matter which batch (or which replica) judged a
        challenge's other battles: whoever stores the last result of a stage sees the whole
        stage and fights the next one. Two replicas that finish a stage at the same moment may
        both fight it; the battles have deterministic ids, so that costs judge calls (and the
        stored cost then counts one replica's calls) but never counts a battle twice. A
        follow-up battle that failed (a model server down, no valid verdict) is fought again
        once per call, as a redelivered opening battle would be.

        The batch's challenges advance together: one store read of answers and one of
        judgments per stage of all their tournaments, and their follow-up battles are judged
        at once. A challenge whose every match is an opening battle (one defender, or
        round_robin) has nothing to continue and costs no read.
        """
        mode = self.config.selection.tournament
        out: list[arena_pb2.BattleJudgments] = []
        wanted = list(dict.fromkeys(p.challenge_id for p in pairs))
        stored = await self.store.call(self.store.challenges_of, wanted)  # one read per batch
        active: list[arena_pb2.Challenge] = []
        for challenge_id in wanted:
            challenge = stored.get(challenge_id)
            if challenge is None:
                log.warning("tournament of %s: challenge not in the store", challenge_id)
                continue
            models = tournament_models(challenge.attacker, challenge.defenders)
            opening = set(opening_battles(mode, challenge.attacker, challenge.defenders))
            if any(m not in opening for m in itertools.combinations(models, 2)):
                active.append(challenge)
        fought: dict[str, set[Match]] = {c.challenge_id: set() for c in active}
        while active:
            states = await self._tournament_states(active)
            unlocked: list[tuple[arena_pb2.Challenge, list[Match]]] = []
            for challenge in active:
                results, retry = states[challenge.challenge_id]
                opening = set(opening_battles(mode, challenge.attacker, challenge.defenders))
                pending = pending_battles(mode, challenge.attacker, challenge.defenders, results)
                done = opening | fought[challenge.challenge_id]
                todo = [m for m in dict.fromkeys(pending + retry) if m not in done]
                if todo:
                    fought[challenge.challenge_id].update(todo)
                    unlocked.append((challenge, todo))
            if unlocked:
                out += await self.judge_battles(await self._tournament_pairs(unlocked))
            active = [challenge for challenge, _ in unlocked]
        return out

    async def _tournament_pairs(
        self, wanted: Sequence[tuple[arena_pb2.Challenge, Sequence[Match]]]
    ) -> list[arena_pb2.ResponsePair]:
        """ResponsePairs of each challenge's matches from the stored answers, in one read
        (missing answers: skipped)."""
        keys = sorted({(c.challenge_id, m) for c, matches in wanted
                       for match in matches for m in match})
        responses = await self.store.call(self.store.responses_of, keys)
        out = []
        for challenge, matches in wanted:
            for a, b in matches:
                ra = responses.get((challenge.challenge_id, a))
                rb = responses.get((challenge.challenge_id, b))
                if ra is None or rb is None:
                    log.warning("tournament battle %s vs %s of %s: answer missing",
                                a, b, challenge.challenge_id)
                    continue
                try:
                    judges = judges_for(a, b, self.roster)
                except ValueError as error:  # reported, never faked
                    log.warning("tournament battle of %s not fought: %s",
                                challenge.challenge_id, error)
                    continue
                out.append(battle_pair(challenge, ra, rb, judges))
        return out

    async def _tournament_states(
        self, challenges: Sequence[arena_pb2.Challenge]
    ) -> dict[str, tuple[dict[Match, float | None], list[Match]]]:
        """Per challenge id: results so far of the challenge's battles (model_a's local score,
        None for a failed battle; absent while incomplete), and the complete battles that
        failed (worth one more try per call, as a redelivered opening battle gets: its invalid
        judgments are asked again). One read of answers and one of judgments for all."""
        matches = {
            c.challenge_id: list(itertools.combinations(
                tournament_models(c.attacker, c.defenders), 2))
            for c in challenges
        }
        built = await self._tournament_pairs([(c, matches[c.challenge_id]) for c in challenges])
        pairs = {p.battle_id: p for p in built}
        stored = await self._stored_judgments(list(pairs.values()))
        results: dict[str, dict[Match, float | None]] = {}
        # A battle that cannot be built (an answer missing, no judge to sit it) counts as failed,
        # so the schedule goes on without it; `_tournament_pairs` logged why.
        for c in challenges:
            made = {(p.model_a, p.model_b) for p in built if p.challenge_id == c.challenge_id}
            results[c.challenge_id] = {m: None for m in matches[c.challenge_id] if m not in made}
        complete: list[tuple[arena_pb2.ResponsePair, list[arena_pb2.Judgment]]] = []
        for bid, pair in pairs.items():
            match = (pair.model_a, pair.model_b)
            if pair.response_a.error or pair.response_b.error:
                results[pair.challenge_id][match] = None
                continue
            latest = {j.judgment_id: j for j in stored[bid]}
            asked, done = self._plan(pair, latest)
            if done:
                complete.append(
                    (with_judges(pair, asked), [j for j in stored[bid] if j.judge in asked])
                )
        executions = await self.execute([pair for pair, _ in complete])
        retry: dict[str, list[Match]] = {c.challenge_id: [] for c in challenges}
        for pair, judgments in complete:
            result_a, result_b = executions.get(pair.battle_id, (None, None))
            rated = rate_judged_battle(self.config, pair, judgments, result_a, result_b)
            match = (pair.model_a, pair.model_b)
            rated_ok = rated.status == arena_pb2.BATTLE_STATUS_RATED
            results[pair.challenge_id][match] = rated.local_score_a if rated_ok else None
            if not rated_ok:
                retry[pair.challenge_id].append(match)
        return {cid: (results[cid], retry[cid]) for cid in results}

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
        extract_errors: dict[tuple[str, str], str] = {}
        failed: dict[str, str] = {}  # execution id -> why its code could not be extracted
        for pair in pairs:
            if not pair.tests.strip() or pair.response_a.error or pair.response_b.error:
                continue
            ids = []
            for model, response in ((pair.model_a, pair.response_a),
                                    (pair.model_b, pair.response_b)):
                # Bounded for any text; should it still fail, this answer alone is an ERROR.
                try:
                    code = extract_python_code(response.generation.text)
                except Exception as error:  # noqa: BLE001 - one answer never fails the batch
                    log.warning("code extraction failed on %s's answer in %s: %r", model,
                                pair.battle_id, error)
                    code = ""
                    extract_errors[(pair.battle_id, model)] = f"{error!r}"[:200]
                exec_id = execution_id(pair.challenge_id, model, code, pair.tests)
                if (pair.battle_id, model) in extract_errors:
                    exec_id = f"{exec_id}-extraction-error"
                    failed[exec_id] = extract_errors[(pair.battle_id, model)]
                wanted[exec_id] = (model, code, pair.tests)
                ids.append(exec_id)
            sides[pair.battle_id] = (ids[0], ids[1])
        todo = [i for i in wanted if i not in self._executions]
        # Runs stored by another replica or an earlier process (tournaments re-read a
        # challenge's battles) are not run again.
        if todo:
            self._executions.update(await self.store.call(self.store.executions_of, todo))
            todo = [i for i in wanted if i not in self._executions]
        semaphore = asyncio.Semaphore(self.config.execution.concurrency)

        async def run(exec_id: str) -> arena_pb2.ExecutionResult:
            model, code, tests = wanted[exec_id]
            if exec_id in failed:
                return arena_pb2.ExecutionResult(
                    execution_id=exec_id, model_id=model,
                    status=arena_pb2.EXECUTION_STATUS_ERROR,
                    reason=f"code extraction failed: {failed[exec_id]}")
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
                except SandboxUnavailable:
                    raise  # fail closed: never run weaker than execution.min_isolation
                except Exception as error:  # noqa: BLE001 - the sandbox broke: no signal; one
                    # answer never fails the batch
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
        kept = [r for r in fresh.values() if r.status != arena_pb2.EXECUTION_STATUS_ERROR]
        for result in kept:  # errors are tried again
            self._executions[result.execution_id] = result
        await self.store.call(self.store.save_executions, kept)
        for exec_id in wanted:
            if exec_id in self._executions:
                self._executions.move_to_end(exec_id)
        while len(self._executions) > EXECUTION_CACHE_SIZE:
            self._executions.popitem(last=False)
        return {b: (results[a], results[c]) for b, (a, c) in sides.items()}
