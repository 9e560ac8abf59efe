"""Rater: local score per battle from the judges' votes; global ratings over all battles."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from warriorcoder.arena.grounding import rate_grounded_battle
from warriorcoder.arena.judging import judge_statistics
from warriorcoder.arena.mining import judges_for as eligible_judges
from warriorcoder.arena.rating import (
    RatingScale,
    bradley_terry,
    elo_ratings,
    rating_intervals,
    win_stats,
)
from warriorcoder.config import ArenaConfig
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

# Confidence level of the leaderboard's rating intervals.
_CONFIDENCE = 0.95


def rate_judged_battle(
    config: ArenaConfig,
    pair: arena_pb2.ResponsePair,
    judgments: Sequence[arena_pb2.Judgment],
    execution_a: arena_pb2.ExecutionResult | None,
    execution_b: arena_pb2.ExecutionResult | None,
) -> arena_pb2.RatedBattle:
    """A battle's votes and local score under the arena's settings: the one place that rates a
    battle (the rater stores it; the judge stage's tournaments decide on the same score)."""
    ex = config.execution
    return rate_grounded_battle(
        pair,
        judgments,
        execution_a,
        execution_b,
        ex.weight if ex.enabled else None,
        strong_weight=config.judge.strong_verdict_weight,
        score=ex.score,
    )


def battles_digest(config_hash: str, battles: Sequence[arena_pb2.RatedBattle]) -> str:
    """What a leaderboard was computed from: the arena config's hash and the round's stored
    battles (in store order). Equal digests give equal leaderboards."""
    digest = hashlib.sha256(config_hash.encode())
    for battle in battles:
        data = battle.SerializeToString(deterministic=True)
        digest.update(len(data).to_bytes(8, "big"))  # framed: two battles never read as one
        digest.update(data)
    return digest.hexdigest()


class Rater:
    """Rates battles as their judgments arrive and writes the round's leaderboard: the only
    writer of leaderboards (the exporter reads the stored one, `current_leaderboard`)."""

    def __init__(self, config: ArenaConfig, store: ArenaStore) -> None:
        self.config = config
        self.store = store
        r = config.rating
        self.scale = RatingScale(initial=r.initial, scale=r.scale, base=r.base)
        self.roster = [e.id for e in config.roster]

    def handle(self, items: Sequence[arena_pb2.BattleJudgments]) -> list[arena_pb2.RatedBattle]:
        """Rate each battle and store it (same battle twice: same document, nothing doubled).

        With execution on, the judges' score is grounded by the execution results that came
        with the judgments (see arena.grounding); without them the score is the judges' alone.
        """
        rated = []
        for item in items:
            battle = rate_judged_battle(
                self.config,
                item.pair,
                item.judgments,
                item.execution_a if item.HasField("execution_a") else None,
                item.execution_b if item.HasField("execution_b") else None,
            )
            if self.config.judge.adaptive:
                # Adaptive judging lists only the judges it asked; the rest were skipped.
                battle.skipped_judges.extend(
                    j for j in eligible_judges(item.pair.model_a, item.pair.model_b, self.roster)
                    if j not in item.pair.judges
                )
            rated.append(battle)
        self.store.save_battles(rated)  # one request for the batch
        return rated

    def leaderboard(self, round_id: str) -> arena_pb2.Leaderboard:
        """The round's leaderboard computed from the stored battles now, and stored."""
        board = self._compute(round_id, self.store.battles(round_id))
        self.store.save_leaderboard(board)
        return board

    def current_leaderboard(self, round_id: str) -> arena_pb2.Leaderboard | None:
        """The stored leaderboard when it was computed from the battles stored now (the rater
        service refreshes it as battles arrive); otherwise one computed now and not stored.
        None when the round has no battles."""
        battles = self.store.battles(round_id)
        if not battles:
            return None
        stored = self.store.leaderboard(round_id)
        if stored is not None and stored.battles_digest == battles_digest(
                self.config.config_hash(), battles):
            return stored
        return self._compute(round_id, battles)

    def _compute(
        self, round_id: str, battles: Sequence[arena_pb2.RatedBattle]
    ) -> arena_pb2.Leaderboard:
        """Elo (online, in battle-id order), Bradley-Terry with 95% intervals, judge stats.

        `battles` are the round's stored battles, sorted by battle id (a deterministic Elo
        order). Models are listed by comparison group (models that never met, directly or
        through others, are in different groups, each on its own scale), then by Bradley-Terry
        rating.
        """
        ok = [b for b in battles if b.status == arena_pb2.BATTLE_STATUS_RATED]
        outcomes = [(b.model_a, b.model_b, b.local_score_a) for b in ok]
        cfg = self.config.rating
        elo = elo_ratings(outcomes, k_factor=cfg.k_factor, scale=self.scale)
        bt = bradley_terry(outcomes, scale=self.scale)
        intervals = rating_intervals(
            outcomes,
            scale=self.scale,
            confidence=_CONFIDENCE,
            method=cfg.intervals,
            rounds=cfg.bootstrap_rounds,
            seed=self.config.seed,
        )
        bootstrap = cfg.intervals == "bootstrap"
        stats = win_stats(outcomes)
        board = arena_pb2.Leaderboard(
            round_id=round_id,
            battles=len(ok),
            failed_battles=len(battles) - len(ok),
            bootstrap_rounds=cfg.bootstrap_rounds if bootstrap else 0,
            interval_method=(
                f"{_CONFIDENCE:.0%} bootstrap, {cfg.bootstrap_rounds} rounds (profile "
                "likelihood for one-sided records)"
                if bootstrap
                else f"{_CONFIDENCE:.0%} profile likelihood"
            ),
            judge_calls=sum(b.judge_calls for b in battles),
            judge_tokens=sum(b.judge_tokens for b in battles),
            # One SFT record per challenge with a rated battle (arena.selection).
            records=len({b.challenge_id for b in ok}),
            battles_digest=battles_digest(self.config.config_hash(), battles),
        )
        if board.records:
            board.judge_tokens_per_record = board.judge_tokens / board.records
        for model in sorted(bt, key=lambda m: (intervals[m].group, -bt[m], m)):
            s = stats[model]
            interval = intervals[model]
            board.ratings.add(
                model_id=model,
                elo=elo[model],
                bradley_terry=bt[model],
                bradley_terry_lower=interval.lower,
                bradley_terry_upper=interval.upper,
                group=interval.group,
                lower_unbounded=interval.lower_unbounded,
                upper_unbounded=interval.upper_unbounded,
                anchor=interval.anchor,
                battles=s.battles,
                wins=s.wins,
                losses=s.losses,
                ties=s.ties,
                win_rate=s.win_rate,
            )
        # Failed battles count too: a judge that never writes a verdict must show it.
        board.judges.extend(judge_statistics(self._judged_pairs(battles)))
        return board

    def _judged_pairs(
        self, battles: Sequence[arena_pb2.RatedBattle]
    ) -> list[tuple[arena_pb2.ResponsePair, list[arena_pb2.Judgment]]]:
        """(pair, judgments) per battle; the pair carries only what the statistics read."""
        judgments = self.store.judgments_of(b.battle_id for b in battles)  # one read, not N
        out = []
        for b in battles:
            pair = arena_pb2.ResponsePair(battle_id=b.battle_id, model_a=b.model_a,
                                          model_b=b.model_b)
            pair.response_a.generation.completion_tokens = b.tokens_a
            pair.response_b.generation.completion_tokens = b.tokens_b
            out.append((pair, judgments[b.battle_id]))
        return out
