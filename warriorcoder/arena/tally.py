"""Ratings from counts: what a leaderboard needs from its battles, kept as sums that a new
battle adds to, so a leaderboard is refreshed from a tally of bounded size, never from the
whole history.

Pure, no I/O. A `RatingTally` holds, for one scope (a round, or a whole season of an arena):

* **cells**: rated battles aggregated per ordered pair of models and score bin, each cell
  holding its battle count and the exact sum of its scores. Bradley-Terry depends on the
  battles only through each ordered pair's count and score sum, which the cells keep exactly,
  so the point ratings and profile-likelihood intervals equal those of the battles one by one.
  The percentile bootstrap resamples cells multinomially with the battle count as the number of
  draws, which is the battle bootstrap exactly when a cell holds one distinct score (every
  vote share of up to 31 judges does); a cell of near-equal soft-vote scores resamples at
  their mean (scores differ by less than 1 / `SCORE_BINS`). The bins keep the cell count
  bounded by ``pairs x (SCORE_BINS + 1) x 3`` whatever the number of battles.
* the counters of the leaderboard: failed battles, judge calls and tokens, SFT records.
* each judge's `JudgeTally` (its statistics add up battle by battle).
* **online Elo** in the order battles were first rated: each battle counts once, when it
  arrives, like a chess game; a season's Elo therefore carries over from round to round, and a
  model that joins a later round starts at the initial rating.

See docs/ratings.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from warriorcoder.arena.judging import JudgeTally
from warriorcoder.arena.rating import BattleOutcomes, RatingScale, win_probability

__all__ = ["PRUNE_AT", "SCORE_BINS", "BattleEntry", "RatingTally", "score_cell"]

# Score bins per unit of score: scores closer than 1/SCORE_BINS may share a cell.
SCORE_BINS = 1000
# A tally remembers the ids (battle ids, move and record tokens) it counted: a writer stopped
# between counting a batch and marking its battles counted is redelivered that batch, which must
# not count twice. An id is needed only while its battle (or challenge) is still marked not
# counted; past this many ids, the rater drops the ones no longer marked (whose marks are never
# set again: ids are unique), so exactly once never depends on how many battles came since.
# Every batch reads and rewrites the tally whole: at 4096 ids it weighed up to 130 KB; at 512
# it stays under about 20 KB, for two reads by id every few batches.
PRUNE_AT = 512


def score_cell(score: float) -> tuple[int, int]:
    """The (bin, side) a score falls in. The side (1 won, -1 lost, 0 exact tie) keeps a
    near-tie from being counted as a tie in the win statistics."""
    side = 1 if score > 0.5 else -1 if score < 0.5 else 0
    return round(score * SCORE_BINS), side


@dataclass(frozen=True)
class BattleEntry:
    """What one battle adds to a tally: its outcome (``rated`` False for a failed battle), its
    judge cost, and each judge's tally over its judgments."""

    model_a: str
    model_b: str
    rated: bool
    score_a: float
    judge_calls: int = 0
    judge_tokens: int = 0
    judges: Mapping[str, JudgeTally] = field(default_factory=dict)


CellKey = tuple[str, str, int, int]


@dataclass
class RatingTally:
    """The counts behind one scope's leaderboard; see the module docstring."""

    cells: dict[CellKey, list[float]] = field(default_factory=dict)
    failed: int = 0
    judge_calls: int = 0
    judge_tokens: int = 0
    records: int = 0
    judges: dict[str, JudgeTally] = field(default_factory=dict)
    elo: dict[str, float] = field(default_factory=dict)
    rounds: list[str] = field(default_factory=list)
    recent: list[str] = field(default_factory=list)

    @property
    def battles(self) -> int:
        """Rated battles counted."""
        return int(sum(cell[0] for cell in self.cells.values()))

    def add(self, entry: BattleEntry, sign: int = 1, judges: bool = True) -> None:
        """Count `entry` in (sign 1) or out again (sign -1: a stored battle that was rated
        anew). `judges` False leaves the judge tallies alone."""
        if sign not in (1, -1):
            raise ValueError(f"sign must be 1 or -1, got {sign}")
        self.judge_calls += sign * entry.judge_calls
        self.judge_tokens += sign * entry.judge_tokens
        if entry.rated:
            if not 0.0 <= entry.score_a <= 1.0:
                raise ValueError(f"score_a={entry.score_a!r} is outside [0, 1]")
            if entry.model_a == entry.model_b or not entry.model_a or not entry.model_b:
                raise ValueError(f"a battle needs two different models, got {entry.model_a!r} "
                                 f"and {entry.model_b!r}")
            key = (entry.model_a, entry.model_b, *score_cell(entry.score_a))
            cell = self.cells.setdefault(key, [0.0, 0.0])
            cell[0] += sign
            cell[1] += sign * entry.score_a
            if cell[0] <= 0:
                del self.cells[key]
        else:
            self.failed += sign
        if judges:
            for judge, tally in entry.judges.items():
                mine = self.judges.setdefault(judge, JudgeTally())
                for name in JudgeTally.__dataclass_fields__:
                    setattr(mine, name, getattr(mine, name) + sign * getattr(tally, name))

    def remember(self, battle_ids: Iterable[str]) -> None:
        """Note battles (or move and record tokens) as counted."""
        self.recent = [*self.recent, *battle_ids]

    def rate_elo(self, entries: Iterable[BattleEntry], k_factor: float, scale: RatingScale
                 ) -> None:
        """Online Elo over `entries` in the given order (rated ones only), from the ratings so
        far; a model not seen before starts at `scale.initial`. Both expected scores come from
        the ratings before the battle."""
        for entry in entries:
            if not entry.rated:
                continue
            rating_a = self.elo.setdefault(entry.model_a, scale.initial)
            rating_b = self.elo.setdefault(entry.model_b, scale.initial)
            expected_a = win_probability(rating_a, rating_b, scale)
            expected_b = win_probability(rating_b, rating_a, scale)
            self.elo[entry.model_a] = rating_a + k_factor * (entry.score_a - expected_a)
            self.elo[entry.model_b] = rating_b + k_factor * ((1.0 - entry.score_a) - expected_b)

    def outcomes(self) -> BattleOutcomes:
        """The rated battles as aggregated rows (one per cell, with its count and mean score),
        what arena.rating's Bradley-Terry, intervals and win statistics take."""
        keys = sorted(self.cells)
        models = sorted({name for key in keys for name in key[:2]})
        index = {name: i for i, name in enumerate(models)}
        counts = np.array([self.cells[k][0] for k in keys], dtype=np.float64)
        means = np.array([self.cells[k][1] / self.cells[k][0] for k in keys], dtype=np.float64)
        # A mean is a sum divided back: keep it inside [0, 1] and on its cell's side of 0.5.
        means = np.clip(means, 0.0, 1.0)
        sides = np.array([k[3] for k in keys], dtype=np.int64)
        means[sides == 0] = 0.5
        means[(sides > 0) & (means <= 0.5)] = np.nextafter(0.5, 1.0)
        means[(sides < 0) & (means >= 0.5)] = np.nextafter(0.5, 0.0)
        return BattleOutcomes(
            tuple(models),
            np.array([index[k[0]] for k in keys], dtype=np.intp),
            np.array([index[k[1]] for k in keys], dtype=np.intp),
            means,
            counts,
        )

    # -- as a document (plain lists: model and judge ids may hold dots, which MongoDB keys
    # must not) ----------------------------------------------------------------------------
    def to_document(self) -> dict[str, Any]:
        """The tally as a JSON/BSON-safe document (deterministic order)."""
        return {
            "cells": [[a, b, bin_, side, cell[0], cell[1]]
                      for (a, b, bin_, side), cell in sorted(self.cells.items())],
            "failed": self.failed,
            "judge_calls": self.judge_calls,
            "judge_tokens": self.judge_tokens,
            "records": self.records,
            "judges": [[judge, {f.name: getattr(t, f.name) for f in fields(t)}]
                       for judge, t in sorted(self.judges.items())],
            "elo": [[model, rating] for model, rating in sorted(self.elo.items())],
            "rounds": list(self.rounds),
            "recent": list(self.recent),
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> RatingTally:
        """The tally `to_document` wrote (other keys of the document are ignored)."""
        tally = cls(
            failed=int(doc.get("failed", 0)),
            judge_calls=int(doc.get("judge_calls", 0)),
            judge_tokens=int(doc.get("judge_tokens", 0)),
            records=int(doc.get("records", 0)),
            rounds=[str(r) for r in doc.get("rounds", [])],
            recent=[str(r) for r in doc.get("recent", [])],
        )
        for a, b, bin_, side, count, total in doc.get("cells", []):
            tally.cells[(str(a), str(b), int(bin_), int(side))] = [float(count), float(total)]
        for judge, counts in doc.get("judges", []):
            tally.judges[str(judge)] = JudgeTally(**{k: int(v) for k, v in counts.items()})
        for model, rating in doc.get("elo", []):
            tally.elo[str(model)] = float(rating)
        return tally

    def digest(self, config_hash: str) -> str:
        """SHA-256 of the arena config's hash and this tally (what a board is computed from;
        the ids it remembers are bookkeeping): equal digests, equal boards."""
        content = {k: v for k, v in self.to_document().items() if k != "recent"}
        blob = json.dumps([config_hash, content], sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()
