"""The battle list's filters, read from the page's query string, as store queries.

A filter becomes a list of store queries that no battle matches twice (the store pages
through each and the list merges them in battle-id order): `$or` and `$not` are left out on
purpose, since the embedded store and the MongoDB wire server evaluate them in Python over the
whole collection instead of in SQL. The outcome queries follow arena.battle_review's rules
(`battle_outcome`, `execution_disagrees`); the tests check the two against each other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import product
from typing import Any

from warriorcoder.arena.battle_review import OUTCOMES

# Outcome names of the list's filter: the battle's (arena.battle_review.OUTCOMES), and, with a
# model chosen, that model's.
MODEL_OUTCOMES = ("won", "lost")
FILTER_OUTCOMES = (*OUTCOMES, *MODEL_OUTCOMES)
OUTCOME_LABELS = {"a": "model A won", "b": "model B won", "tie": "tie", "failed": "failed",
                  "won": "the model won", "lost": "the model lost"}
# Model and judge ids as the config allows them, and battle ids (hashes); anything else in a
# query string is refused with a message rather than sent to the store.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}$")
_RATED = {"status": "BATTLE_STATUS_RATED"}


class FilterError(ValueError):
    """A query-string parameter the battle list cannot use; the message names it."""


def checked_id(name: str, value: str) -> str:
    """`value` when it is a plausible id (model, judge, battle, round); FilterError naming
    the parameter otherwise."""
    if not _ID.match(value):
        raise FilterError(f"{name}: {value[:80]!r} is not an id (letters, digits and ._:/@+-, "
                          "at most 200 characters)")
    return value


def _flag(name: str, value: str) -> bool:
    if value in ("", "0", "off", "false"):
        return False
    if value in ("1", "on", "true"):
        return True
    raise FilterError(f"{name}: expected 1 or 0, got {value[:20]!r}")


@dataclass(frozen=True)
class BattleFilter:
    """What the battle list shows: every field narrows it; the empty filter shows all."""

    model: str = ""
    judge: str = ""
    outcome: str = ""
    # Some judge (the chosen judge, when one is) contradicted itself across the two orders.
    contradiction: bool = False
    # Execution favoured one answer and the judges the other.
    disagreement: bool = False

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> BattleFilter:
        """The filter of a query string; FilterError naming the first bad parameter."""
        model = params.get("model", "").strip()
        judge = params.get("judge", "").strip()
        outcome = params.get("outcome", "").strip()
        if model:
            checked_id("model", model)
        if judge:
            checked_id("judge", judge)
        if outcome and outcome not in FILTER_OUTCOMES:
            raise FilterError(f"outcome: {outcome[:40]!r} is not one of "
                              f"{', '.join(FILTER_OUTCOMES)}")
        if outcome in MODEL_OUTCOMES and not model:
            raise FilterError(f"outcome: {outcome!r} needs a model")
        return cls(model, judge, outcome, _flag("contradiction", params.get("contradiction", "")),
                   _flag("disagreement", params.get("disagreement", "")))

    def query_string(self) -> dict[str, str]:
        """The filter as query-string parameters (empty ones left out)."""
        out = {"model": self.model, "judge": self.judge, "outcome": self.outcome,
               "contradiction": "1" if self.contradiction else "",
               "disagreement": "1" if self.disagreement else ""}
        return {k: v for k, v in out.items() if v}

    @property
    def needs_judgments(self) -> bool:
        """Matching battles are known only once their judgments are read (the store cannot
        tell a judge that contradicted itself from one that called a tie)."""
        return self.contradiction

    def queries(self, round_id: str) -> list[dict[str, Any]]:
        """Store queries whose matches, together, are the battles this filter shows (a
        superset when `needs_judgments`), no battle matching two of them."""
        facets: list[list[dict[str, Any]]] = [[{"round_id": round_id}]]
        if self.model and self.outcome in MODEL_OUTCOMES:
            won = self.outcome == "won"
            facets.append(
                [{"model_a": self.model, **q} for q in _outcome_queries("a" if won else "b")]
                + [{"model_b": self.model, **q} for q in _outcome_queries("b" if won else "a")]
            )
        else:
            if self.model:
                facets.append([{"model_a": self.model}, {"model_b": self.model}])
            if self.outcome:
                facets.append(_outcome_queries(self.outcome))
        if self.judge:
            facets.append([{"votes.judge": self.judge}])
        if self.contradiction:
            # A judge whose orders disagree votes TIE (arena.judging.combine_orders).
            facets.append([{"votes.verdict": "VERDICT_TIE"}])
        if self.disagreement:
            facets.append([
                {"execution_score_a": {"$gt": 0.5}, "judge_score_a": {"$lt": 0.5}},
                {"execution_score_a": {"$lt": 0.5}, "judge_score_a": {"$gt": 0.5}},
            ])
        out = []
        for parts in product(*facets):
            query: dict[str, Any] = {}
            for part in parts:
                clash = query.keys() & part.keys()
                if clash:  # a bug in this module, not in the request
                    raise AssertionError(f"filter facets both constrain {sorted(clash)}")
                query.update(part)
            out.append(query)
        return out


def _outcome_queries(outcome: str) -> list[dict[str, Any]]:
    """Disjoint queries for arena.battle_review.battle_outcome == outcome. A local score of 0
    is not stored at all (proto3 leaves default values out), hence the `$exists` query."""
    if outcome == "failed":
        return [{"status": {"$ne": "BATTLE_STATUS_RATED"}}]
    if outcome == "a":
        return [{**_RATED, "local_score_a": {"$gt": 0.5}}]
    if outcome == "b":
        return [{**_RATED, "local_score_a": {"$lt": 0.5}},
                {**_RATED, "local_score_a": {"$exists": False}}]
    if outcome == "tie":
        return [{**_RATED, "local_score_a": 0.5}]
    raise FilterError(f"outcome: unknown {outcome!r}")
