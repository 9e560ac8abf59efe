"""Challenger: mine challenges by pre-query prompting, filter them, pair each with defenders.

Mining sends each attacker its own chat template cut just before the user's words (the
pre-query prefix), so the model writes a user request from its own distribution. Raw mined text
is stored as it arrives (a rerun mines only what is missing); filtering then runs once over all
attackers together: clean, deduplicate (MinHash LSH), decontaminate against benchmarks, optional
quality scoring and diversity selection, then defender pairing.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from warriorcoder.arena.decontamination import BenchmarkIndex, decontaminate
from warriorcoder.arena.dedup import minhash_dedup
from warriorcoder.arena.ids import derive_seed, stable_id
from warriorcoder.arena.mining import clean_instruction, pair_defenders
from warriorcoder.arena.quality import parse_quality_score, quality_prompt
from warriorcoder.backends.base import (
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    GenerationError,
)
from warriorcoder.backends.chat_templates import prequery_prefix
from warriorcoder.config import ConfigError, SamplingConfig
from warriorcoder.stages.model_calls import (
    ModelStage,
    ProgressBar,
    generate_by_model,
    to_generation_pb,
)
from warriorcoder.v1 import arena_pb2

log = logging.getLogger(__name__)


def read_user_instructions(path: str | Path) -> list[str]:
    """Instructions from a .txt file (one per line) or .jsonl file (field "instruction")."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"challenger.user_instructions_file: {p} not found")
    if p.suffix == ".jsonl":
        out = []
        for n, line in enumerate(p.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                out.append(str(item["instruction"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise ConfigError(
                    f"challenger.user_instructions_file: {p}:{n} is not a JSON object with an "
                    "'instruction' field"
                ) from None
        return out
    return [line.strip() for line in p.read_text().splitlines() if line.strip()]


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
    rejected: dict[str, int] = field(default_factory=dict)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1


class Challenger(ModelStage):
    _benchmark: BenchmarkIndex | None = None

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
        done = self.store.mined(cfg.round_id)
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
                for (mined_id, _, _), outcome in zip(part, outcomes, strict=True):
                    if isinstance(outcome, GenerationError):
                        failures += 1
                        log.warning("mining by %s failed: %s", attacker, outcome.reason)
                        continue
                    self.store.save_mined(
                        mined_id,
                        arena_pb2.Challenge(
                            round_id=cfg.round_id,
                            instruction=outcome.text,
                            attacker=attacker,
                            source="mined",
                            mining=to_generation_pb(outcome),
                        ),
                    )
                if progress is not None:
                    progress.update(len(part))
        return failures

    def user_instructions(self) -> list[str]:
        c = self.config.challenger
        items = list(c.user_instructions)
        if c.user_instructions_file:
            items += read_user_instructions(c.user_instructions_file)
        return items

    async def select(self, funnel: Funnel) -> list[arena_pb2.Challenge]:
        """Filter the mined instructions of the round and pair them with defenders."""
        cfg = self.config
        ch = cfg.challenger
        stop_strings = {s for b in self.backends.values() for s in b.end_of_turn()}

        # User instructions come first so that dedup keeps them over a mined near-duplicate.
        candidates: list[arena_pb2.Challenge] = []
        for n, text in enumerate(self.user_instructions()):
            funnel.user += 1
            candidates.append(
                arena_pb2.Challenge(
                    round_id=cfg.round_id,
                    instruction=text.strip(),
                    # User instructions have no attacker; experts take turns at that seat.
                    attacker=self.roster[n % len(self.roster)],
                    source="user",
                )
            )
        mined = self.store.mined(cfg.round_id)
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
            raw.instruction = result.text
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
        for c in candidates:
            c.challenge_id = challenge_id_for(cfg.round_id, c.instruction)
            rng = random.Random(derive_seed(cfg.seed, "defenders", c.challenge_id))
            del c.defenders[:]
            c.defenders.extend(pair_defenders(c.attacker, self.roster, ch.defenders, rng))
            challenges.append(c)
        return challenges

    def user_challenges(
        self, round_id: str, texts: list[str], stored: list[arena_pb2.Challenge]
    ) -> list[arena_pb2.Challenge]:
        """Challenges for instructions submitted to a running round.

        Dropped: instructions already stored, near-duplicates of stored challenges or of each
        other, and benchmark leaks. The attacker seat is given by the id, so resubmitting an
        instruction gives the same challenge.
        """
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
        for cid, text in candidates:
            attacker = self.roster[int(cid, 16) % len(self.roster)]
            rng = random.Random(derive_seed(self.config.seed, "defenders", cid))
            challenges.append(arena_pb2.Challenge(
                challenge_id=cid,
                round_id=round_id,
                instruction=text,
                attacker=attacker,
                source="user",
                defenders=pair_defenders(attacker, self.roster, ch.defenders, rng),
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
            score = None if isinstance(outcome, GenerationError) else parse_quality_score(outcome.text)
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
        info = self.store.round_info(cfg.round_id) or {}
        if info.get("challenges_ready"):
            return self.store.challenges(cfg.round_id)
        funnel = Funnel()
        funnel.mining_failures = await self.mine(progress)
        challenges = await self.select(funnel)
        self.store.save_challenges(challenges)
        # Only a round whose mining fully succeeded is sealed; otherwise a rerun mines the rest.
        self.store.save_round_info(
            cfg.round_id,
            challenges_ready=funnel.mining_failures == 0,
            funnel=funnel.__dict__,
        )
        return challenges
