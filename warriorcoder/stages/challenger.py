"""Challenger: mine challenges by pre-query prompting, filter them, pair each with defenders.

Mining sends each attacker its own chat template cut just before the user's words (the
pre-query prefix), so the model writes a user request from its own distribution. Raw mined text
is stored as it arrives (a rerun mines only what is missing); filtering then runs once over all
attackers together: clean, deduplicate (MinHash LSH), decontaminate against benchmarks, optional
quality scoring and diversity selection, then defender pairing.

With execution on, each mined challenge that passed the filters also gets tests: its attacker is
asked (a second chat request) for plain-Python asserts, and the raw answer is stored on the mined
record, so a rerun does not ask again. User instructions bring their own tests, or none.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warriorcoder.arena.challenge_tests import check_user_tests, extract_tests, prompt_for_tests
from warriorcoder.arena.decontamination import BenchmarkIndex, decontaminate
from warriorcoder.arena.dedup import minhash_dedup
from warriorcoder.arena.ids import derive_seed, stable_id
from warriorcoder.arena.mining import clean_instruction, pair_defenders
from warriorcoder.arena.quality import not_a_coding_task, parse_quality_score, quality_prompt
from warriorcoder.backends.base import (
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    GenerationError,
    ModelBackend,
)
from warriorcoder.backends.chat_templates import prequery_prefix
from warriorcoder.config import ArenaConfig, ConfigError, SamplingConfig, parse_config
from warriorcoder.console.progress import ProgressBar
from warriorcoder.stages.model_calls import ModelStage, generate_by_model, to_generation_pb
from warriorcoder.stages.rater import season_newcomers
from warriorcoder.storage.dedup_index import DedupIndex, IndexedItem
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UserInstruction:
    """An instruction of the user's, with its plain-Python assert tests ("" for none)."""

    instruction: str
    tests: str = ""


def read_user_items(path: str | Path) -> list[UserInstruction]:
    """Instructions from a .txt file (one per line) or a .jsonl file (field "instruction", and
    optionally "tests": plain-Python asserts that a correct answer passes)."""
    p = Path(path)
    where = "challenger.user_instructions_file"
    if not p.is_file():
        raise ConfigError(f"{where}: {p} not found")
    if p.suffix != ".jsonl":
        return [UserInstruction(line.strip()) for line in p.read_text().splitlines()
                if line.strip()]
    out = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            instruction = str(item["instruction"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ConfigError(
                f"{where}: {p}:{n} is not a JSON object with an 'instruction' field"
            ) from None
        tests = item.get("tests") or ""
        if not isinstance(tests, str):
            raise ConfigError(f"{where}: {p}:{n}: 'tests' must be a string of Python code, "
                              f"got {type(tests).__name__}")
        problem = check_user_tests(tests) if tests else None
        if problem is not None:
            raise ConfigError(f"{where}: {p}:{n}: {problem}")
        out.append(UserInstruction(instruction, tests))
    return out


def read_user_instructions(path: str | Path) -> list[str]:
    """Instructions from a .txt file (one per line) or .jsonl file (field "instruction")."""
    return [item.instruction for item in read_user_items(path)]


def challenge_id_for(round_id: str, instruction: str) -> str:
    """Deterministic challenge id: the round and the whitespace-normalised text."""
    return stable_id(round_id, " ".join(instruction.split()))


@dataclass
class Funnel:
    """How many challenges each filter let through (reported and stored with the round)."""

    mined: int = 0
    mining_failures: int = 0
    user: int = 0
    cleaned: int = 0
    deduplicated: int = 0
    decontaminated: int = 0
    quality: int = 0
    diverse: int = 0
    # Left after the claim in the arena's dedup index (another challenger may have claimed a
    # near-duplicate since the filters ran).
    claimed: int = 0
    # Challenges that have tests, and attackers' test requests that failed (execution on).
    with_tests: int = 0
    tests_failures: int = 0
    rejected: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


@dataclass(frozen=True)
class RoundStart:
    """How a round is started: challenges to mine per attacker (0 keeps the config's) and seed
    instructions added to the configured user instructions. Two equal starts are one start."""

    challenges_per_attacker: int = 0
    seed_instructions: tuple[str, ...] = ()

    def round_config(self, config: ArenaConfig) -> ArenaConfig:
        """`config` with this start's overrides, validated like the YAML file (ConfigError).

        Mining draws per_setting instructions for every setting of the sampling grid, so
        `challenges_per_attacker` n becomes per_setting = ceil(n / grid size).
        """
        if self.challenges_per_attacker < 0:
            raise ConfigError(
                f"challenges_per_attacker must be >= 0 (0 keeps the configured number), "
                f"got {self.challenges_per_attacker}"
            )
        ch = config.challenger
        update: dict[str, Any] = {}
        if self.challenges_per_attacker:
            update["per_setting"] = -(-self.challenges_per_attacker // len(ch.sampling_grid))
        if self.seed_instructions:
            update["user_instructions"] = [*ch.user_instructions, *self.seed_instructions]
        if not update:
            return config
        data = config.model_dump(mode="json")
        data["challenger"].update(update)
        return parse_config(data, "(round start)")


@dataclass(frozen=True)
class Submission:
    """What became of submitted instructions: the new challenges (stored), the challenges that
    earlier submissions (or the round itself) already hold for some of them, and how many
    instructions were rejected (duplicates or benchmark leaks)."""

    accepted: list[arena_pb2.Challenge]
    already_accepted: list[arena_pb2.Challenge]
    rejected: int


def _no_checkpoint(name: str) -> None:
    """The default checkpoint: nothing happens between the steps of storing challenges."""


class Challenger(ModelStage):
    """Mines, filters and pairs a round's challenges, and adds submitted instructions.

    `outbox`: store challenges marked as not yet published (the publisher clears the mark once
    the broker has them: see service/servicers/challenger.py). `checkpoint` is called with
    "claimed" (dedup index written, challenges not stored yet) and "stored" (challenges stored):
    the service's fault injection hooks in there.
    """

    # Experts the arena's other rounds never rated, paired against the pool first (read from
    # the store on the event loop before submitted instructions are paired in a thread).
    newcomers: Sequence[str] = ()

    _benchmark: BenchmarkIndex | None = None
    _dedup_index: DedupIndex | None = None

    def __init__(
        self,
        config: ArenaConfig,
        backends: Mapping[str, ModelBackend],
        store: ArenaStore,
        *,
        outbox: bool = False,
        checkpoint: Callable[[str], None] = _no_checkpoint,
    ) -> None:
        super().__init__(config, backends, store)
        self.outbox = outbox
        self.checkpoint = checkpoint

    def dedup_index(self) -> DedupIndex:
        """The arena's MinHash index in the store (every round of the arena, shared by every
        challenger of the store)."""
        if self._dedup_index is None:
            d = self.config.challenger.dedup
            self._dedup_index = DedupIndex(self.store, threshold=d.threshold,
                                           num_perm=d.num_perm, shingle_size=d.shingle_size,
                                           scope=self.config.arena)
        return self._dedup_index

    async def _drop_indexed(
        self, candidates: list[arena_pb2.Challenge], funnel: Funnel, *, claim: bool
    ) -> list[arena_pb2.Challenge]:
        """The candidates that are not near-duplicates of a challenge of the arena's index
        (earlier rounds, other challengers); with `claim`, the kept ones join the index."""
        if not candidates or not self.config.challenger.dedup.enabled:
            return candidates
        round_id = self.config.round_id
        items = [IndexedItem(challenge_id_for(round_id, c.instruction), round_id, c.instruction)
                 for c in candidates]
        index = self.dedup_index()
        result = await self.store.call(index.claim if claim else index.check, items)
        for i, owner in sorted(result.duplicate_of.items()):
            earlier = owner.round_id != round_id
            where = f"round {owner.round_id}" if earlier else "this round"
            funnel.reject("duplicate of an earlier round" if earlier
                          else "duplicate of a challenge stored meanwhile")
            log.info("dropped %r: near-duplicate of challenge %s of %s",
                     candidates[i].instruction[:60], owner.challenge_id, where)
        return [candidates[i] for i in result.kept]

    async def _store(self, challenges: Sequence[arena_pb2.Challenge]) -> None:
        save = self.store.save_challenges_unpublished if self.outbox else self.store.save_challenges
        await self.store.call(save, challenges)

    def benchmark_index(self) -> BenchmarkIndex:
        """The decontamination index, built once (it reads every HumanEval problem)."""
        if self._benchmark is None:
            ngram = self.config.challenger.decontamination.ngram
            self._benchmark = BenchmarkIndex.humaneval(ngram=ngram)
        return self._benchmark
    def _mining_plan(self) -> list[tuple[str, str, SamplingConfig]]:
        """(mined_id, attacker, sampling) for every raw instruction this round mines."""
        cfg = self.config
        plan = []
        for attacker in self.roster:
            for g, setting in enumerate(cfg.challenger.sampling_grid):
                for i in range(cfg.challenger.per_setting):
                    mined_id = stable_id(cfg.round_id, attacker, str(g), str(i))
                    seed = derive_seed(cfg.seed, setting.seed, mined_id)
                    plan.append((mined_id, attacker, setting.model_copy(update={"seed": seed})))
        return plan

    async def mine(self, progress: ProgressBar | None = None) -> int:
        """Mine every raw instruction not stored yet; returns how many failed."""
        cfg = self.config
        done = await self.store.call(self.store.mined, cfg.round_id)
        plan = self._mining_plan()
        todo = [p for p in plan if p[0] not in done]
        if progress is not None:
            progress.total = len(plan)
            progress.update(len(plan) - len(todo))
        failures = 0
        for attacker in self.roster:
            items = [p for p in todo if p[1] == attacker]
            if not items:
                continue
            backend = self.backends[attacker]
            prefix = prequery_prefix(
                backend.chat_template(), cfg.challenger.system_prompt, backend.bos_token()
            )
            stop = backend.end_of_turn()
            # Chunks keep progress moving and bound what an interrupt can lose.
            chunk = 16
            for start in range(0, len(items), chunk):
                part = items[start : start + chunk]
                outcomes = await backend.complete(
                    [CompletionRequest(prefix, sampling, stop) for _, _, sampling in part]
                )
                mined: list[tuple[str, arena_pb2.Challenge]] = []
                for (mined_id, _, _), outcome in zip(part, outcomes, strict=True):
                    if isinstance(outcome, GenerationError):
                        failures += 1
                        log.warning("mining by %s failed: %s", attacker, outcome.reason)
                        continue
                    mined.append((mined_id, arena_pb2.Challenge(
                        round_id=cfg.round_id,
                        instruction=outcome.text,
                        attacker=attacker,
                        source="mined",
                        mining=to_generation_pb(outcome),
                    )))
                await self.store.call(self.store.save_mined_many, mined)
                if progress is not None:
                    progress.update(len(part))
        return failures

    def user_instructions(self) -> list[UserInstruction]:
        """The configured user instructions: inline ones (no tests), then the file's."""
        c = self.config.challenger
        items = [UserInstruction(text) for text in c.user_instructions]
        if c.user_instructions_file:
            items += read_user_items(c.user_instructions_file)
        return items

    async def select(self, funnel: Funnel) -> list[arena_pb2.Challenge]:
        """Filter the mined instructions of the round and pair them with defenders."""
        challenges, _ = await self._select(funnel)
        return challenges

    async def _select(
        self, funnel: Funnel
    ) -> tuple[list[arena_pb2.Challenge], dict[str, str]]:
        """The round's challenges, and the mined id each mined one came from (by challenge id)."""
        cfg = self.config
        ch = cfg.challenger
        stop_strings = {s for b in self.backends.values() for s in b.end_of_turn()}

        # User instructions come first so that dedup keeps them over a mined near-duplicate.
        candidates: list[arena_pb2.Challenge] = []
        for n, item in enumerate(self.user_instructions()):
            funnel.user += 1
            candidates.append(
                arena_pb2.Challenge(
                    round_id=cfg.round_id,
                    instruction=item.instruction.strip(),
                    # User instructions have no attacker; experts take turns at that seat.
                    attacker=self.roster[n % len(self.roster)],
                    source="user",
                    tests=item.tests,
                )
            )
        # Cleaned instruction -> mined id (the first of exact duplicates, as dedup keeps it).
        origin: dict[str, str] = {}
        mined = await self.store.call(self.store.mined, cfg.round_id)
        for mined_id in sorted(mined):
            raw = mined[mined_id]
            funnel.mined += 1
            result = clean_instruction(
                raw.instruction,
                stop_strings=sorted(stop_strings),
                min_chars=ch.min_chars,
                max_chars=ch.max_chars,
                truncated=raw.mining.finish_reason == "length",
            )
            if result.text is None:
                funnel.reject(result.reason or "rejected")
                continue
            # Pre-query mining also yields small talk and trivia: only coding tasks battle.
            off_topic = not_a_coding_task(result.text)
            if off_topic is not None:
                funnel.reject(off_topic)
                continue
            raw.instruction = result.text
            origin.setdefault(result.text, mined_id)
            candidates.append(raw)
        funnel.cleaned = len(candidates)

        if ch.dedup.enabled and candidates:
            kept = minhash_dedup(
                [c.instruction for c in candidates],
                threshold=ch.dedup.threshold,
                num_perm=ch.dedup.num_perm,
                shingle_size=ch.dedup.shingle_size,
            ).kept
            candidates = [candidates[i] for i in kept]
            # Then against every earlier round of the arena (read only: the claim before
            # storing decides again, against whatever other challengers claimed meanwhile).
            candidates = await self._drop_indexed(candidates, funnel, claim=False)
        funnel.deduplicated = len(candidates)

        if ch.decontamination.enabled and candidates:
            kept_idx, dropped = decontaminate(
                [c.instruction for c in candidates], self.benchmark_index()
            )
            for i, overlap in dropped.items():
                log.info("decontaminated: %r overlaps %s", candidates[i].instruction[:60], overlap)
            candidates = [candidates[i] for i in kept_idx]
        funnel.decontaminated = len(candidates)

        if ch.quality.enabled and candidates:
            candidates = await self._score_quality(candidates, funnel)
        funnel.quality = len(candidates)

        if ch.diversity.enabled and len(candidates) > ch.diversity.k:
            from warriorcoder.arena.diversity import SentenceEmbedder, select_diverse

            keep = select_diverse([c.instruction for c in candidates], ch.diversity.k,
                                  SentenceEmbedder())
            candidates = [candidates[i] for i in sorted(keep)]
        funnel.diverse = len(candidates)

        challenges = []
        mined_ids: dict[str, str] = {}
        newcomers = await self.store.call(season_newcomers, self.store, cfg, cfg.round_id)
        for c in candidates:
            c.challenge_id = challenge_id_for(cfg.round_id, c.instruction)
            rng = random.Random(derive_seed(cfg.seed, "defenders", c.challenge_id))
            del c.defenders[:]
            c.defenders.extend(pair_defenders(c.attacker, self.roster, ch.defenders, rng,
                                              newcomers))
            challenges.append(c)
            if c.source == "mined" and c.instruction in origin:
                mined_ids[c.challenge_id] = origin[c.instruction]
        return challenges, mined_ids

    def _tests_request(self, challenge: arena_pb2.Challenge) -> ChatRequest:
        sampling = SamplingConfig(
            temperature=0.0,
            top_p=1.0,
            max_tokens=self.config.execution.tests_max_tokens,
            seed=derive_seed(self.config.seed, "tests", challenge.challenge_id),
        )
        ask = ChatMessage("user", prompt_for_tests(challenge.instruction))
        return ChatRequest((ask,), sampling)

    async def write_tests(
        self,
        challenges: list[arena_pb2.Challenge],
        mined_ids: dict[str, str],
        progress: ProgressBar | None = None,
    ) -> int:
        """Give each mined challenge the tests its attacker writes for it; returns how many
        requests failed (those challenges stay without tests).

        The attacker's raw answer is stored on the mined record (like the mining generation),
        so a rerun reuses it. Answers without a usable assert give no tests.
        """
        todo = [c for c in challenges
                if c.source == "mined" and not c.tests and c.challenge_id in mined_ids]
        asked = [c for c in todo if not c.tests_generation.text]
        if progress is not None:
            progress.total = (progress.total or 0) + len(asked)
        outcomes = await generate_by_model(
            self.backends, [(c.attacker, self._tests_request(c)) for c in asked]
        )
        stored = await self.store.call(self.store.mined, self.config.round_id) if asked else {}
        failures = 0
        answered: list[tuple[str, arena_pb2.Challenge]] = []
        for c, outcome in zip(asked, outcomes, strict=True):
            if isinstance(outcome, GenerationError):
                failures += 1
                log.warning("tests by %s failed: %s", c.attacker, outcome.reason)
                continue
            c.tests_generation.CopyFrom(to_generation_pb(outcome))
            raw = stored[mined_ids[c.challenge_id]]  # as mined: the instruction uncleaned
            raw.tests_generation.CopyFrom(c.tests_generation)
            answered.append((mined_ids[c.challenge_id], raw))
        await self.store.call(self.store.save_mined_many, answered)
        if progress is not None:
            progress.update(len(asked))
        for c in todo:
            if c.tests_generation.text:
                c.tests = extract_tests(c.tests_generation.text)
        return failures

    def user_challenges(
        self,
        round_id: str,
        texts: list[str],
        stored: list[arena_pb2.Challenge],
        tests: list[str] | None = None,
    ) -> list[arena_pb2.Challenge]:
        """Challenges for instructions submitted to a running round.

        Dropped: instructions already stored, near-duplicates of stored challenges or of each
        other, and benchmark leaks. The attacker seat is given by the id, so resubmitting an
        instruction gives the same challenge. `tests[i]`, when given, are the tests of
        `texts[i]` ("" for none).
        """
        if tests is not None and len(tests) != len(texts):
            raise ValueError(f"user_challenges: {len(tests)} tests for {len(texts)} instructions")
        tests_of: dict[str, str] = {}
        for text, text_tests in zip(texts, tests or [""] * len(texts), strict=True):
            tests_of.setdefault(text, text_tests)  # the first of duplicates is the one kept
        ch = self.config.challenger
        known = {c.challenge_id for c in stored}
        candidates: list[tuple[str, str]] = []
        for text in texts:
            cid = challenge_id_for(round_id, text)
            if cid in known:
                log.info("submitted instruction is already challenge %s", cid)
                continue
            known.add(cid)
            candidates.append((cid, text))

        if ch.dedup.enabled and candidates:
            # Stored challenges first: the dedup keeps the first of a group.
            pool = [c.instruction for c in stored] + [text for _, text in candidates]
            kept = set(minhash_dedup(
                pool,
                threshold=ch.dedup.threshold,
                num_perm=ch.dedup.num_perm,
                shingle_size=ch.dedup.shingle_size,
            ).kept)
            candidates = [c for i, c in enumerate(candidates) if len(stored) + i in kept]

        if ch.decontamination.enabled and candidates:
            kept_idx, dropped = decontaminate(
                [text for _, text in candidates], self.benchmark_index()
            )
            for i, overlap in dropped.items():
                log.info("submitted instruction %s overlaps %s", candidates[i][0], overlap.task_id)
            candidates = [candidates[i] for i in kept_idx]

        challenges = []
        newcomers = self.newcomers
        for cid, text in candidates:
            attacker = self.roster[int(cid, 16) % len(self.roster)]
            rng = random.Random(derive_seed(self.config.seed, "defenders", cid))
            challenges.append(arena_pb2.Challenge(
                challenge_id=cid,
                round_id=round_id,
                instruction=text,
                attacker=attacker,
                source="user",
                defenders=pair_defenders(attacker, self.roster, ch.defenders, rng, newcomers),
                tests=tests_of[text],
            ))
        return challenges

    async def _score_quality(
        self, candidates: list[arena_pb2.Challenge], funnel: Funnel
    ) -> list[arena_pb2.Challenge]:
        q = self.config.challenger.quality
        assert q.judge is not None  # checked by the config
        sampling = SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=q.max_tokens)
        requests = [
            (q.judge, ChatRequest((ChatMessage("user", quality_prompt(c.instruction)),), sampling))
            for c in candidates
        ]
        outcomes = await generate_by_model(self.backends, requests)
        kept = []
        for c, outcome in zip(candidates, outcomes, strict=True):
            score = (None if isinstance(outcome, GenerationError)
                     else parse_quality_score(outcome.text))
            if score is None:
                funnel.reject("quality: no score")
                continue
            c.quality = score
            if score < q.min_score:
                funnel.reject(f"quality below {q.min_score:g}")
                continue
            kept.append(c)
        return kept

    async def prepare_round(
        self, progress: ProgressBar | None = None
    ) -> list[arena_pb2.Challenge]:
        """Mine (resuming), then filter and pair once; later calls return the stored challenges."""
        cfg = self.config
        info = await self.store.call(self.store.round_info, cfg.round_id) or {}
        if info.get("challenges_ready"):
            return await self.store.call(self.store.challenges, cfg.round_id)
        funnel = Funnel()
        funnel.mining_failures = await self.mine(progress)
        challenges, mined_ids = await self._select(funnel)
        if cfg.execution.enabled and cfg.execution.generate_tests:
            funnel.tests_failures = await self.write_tests(challenges, mined_ids, progress)
        challenges = await self._drop_indexed(challenges, funnel, claim=True)
        funnel.claimed = len(challenges)
        funnel.with_tests = sum(1 for c in challenges if c.tests)
        self.checkpoint("claimed")
        await self._store(challenges)
        self.checkpoint("stored")
        # Only a round whose mining (and test writing) fully succeeded is sealed; otherwise a
        # rerun does the rest.
        await self.store.call(functools.partial(
            self.store.save_round_info,
            cfg.round_id,
            challenges_ready=funnel.mining_failures == 0 and funnel.tests_failures == 0,
            funnel=funnel.__dict__,
        ))
        return challenges

    async def start_round(
        self, start: RoundStart = RoundStart(), progress: ProgressBar | None = None
    ) -> list[arena_pb2.Challenge]:
        """Prepare the round as `start` asks and return every challenge to publish.

        The first start mines with its settings; a round already prepared (sealed) keeps its
        mining settings and is read back from the store, and seed instructions given for it are
        submitted like user instructions (`submit_instructions`) and returned after the stored
        challenges. The start is recorded on the round's record.
        """
        config = start.round_config(self.config)
        round_id = config.round_id
        info = await self.store.call(self.store.round_info, round_id) or {}
        started_with = {"challenges_per_attacker": start.challenges_per_attacker,
                        "seed_instructions": list(start.seed_instructions)}
        await self.store.call(
            functools.partial(self.store.save_round_info, round_id, started_with=started_with))
        # The round joins its arena now: the arena's dedup index covers the rounds it names.
        await self.store.call(self.store.register_round, round_id, config.arena)
        stage = self if config is self.config else Challenger(
            config, self.backends, self.store, outbox=self.outbox, checkpoint=self.checkpoint)
        challenges = await stage.prepare_round(progress)
        if info.get("challenges_ready") and start.seed_instructions:
            # prepare_round returns a sealed round as stored and would drop new seeds.
            challenges += await self.submit_instructions(list(start.seed_instructions))
        return challenges

    async def submit_instructions(
        self, texts: list[str], tests: list[str] | None = None
    ) -> list[arena_pb2.Challenge]:
        """Filter, pair and store instructions submitted to the running round; returns the
        new challenges (see `submit`)."""
        return (await self.submit(texts, tests)).accepted

    async def submit(self, texts: list[str], tests: list[str] | None = None) -> Submission:
        """Filter, pair and store instructions submitted to the running round.

        An instruction whose challenge the round already stores (an earlier submission, a
        retry after a lost reply, a mined one) is reported as already accepted, not rejected.
        The others go through `user_challenges` (near-duplicates within the request, benchmark
        leaks) and then the arena's dedup index (every challenge of every round of the arena,
        whichever challenger stored it), which they join.
        """
        round_id = self.config.round_id
        if tests is not None and len(tests) != len(texts):
            raise ValueError(f"submit: {len(tests)} tests for {len(texts)} instructions")
        ids = [challenge_id_for(round_id, text) for text in texts]
        stored = await self.store.call(self.store.challenges_of, ids)
        already = [stored[cid] for cid in dict.fromkeys(ids) if cid in stored]
        fresh = [i for i, cid in enumerate(ids) if cid not in stored]
        self.newcomers = await self.store.call(season_newcomers, self.store, self.config,
                                               round_id)
        # Near-duplicate search within a large request takes a while: not on the event loop.
        accepted = await asyncio.to_thread(
            self.user_challenges, round_id, [texts[i] for i in fresh], [],
            None if tests is None else [tests[i] for i in fresh])
        accepted = await self._drop_indexed(accepted, Funnel(), claim=True)
        self.checkpoint("claimed")
        await self._store(accepted)
        self.checkpoint("stored")
        return Submission(accepted, already, len(texts) - len(accepted) - len(already))
