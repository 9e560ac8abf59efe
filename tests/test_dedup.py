"""MinHash + LSH near-duplicate removal of mined challenges."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warriorcoder.arena.dedup import (
    DedupResult,
    jaccard,
    minhash_dedup,
    normalized_tokens,
    optimal_bands,
)

BASE = (
    "Write a Python function that takes a list of integers and returns a new list containing "
    "only the even numbers, preserving their original order."
)
NEAR_DUPLICATES = [
    BASE.upper(),  # re-cased
    BASE.replace(" ", "   ").replace("function that", "function\n\tthat"),  # whitespace
    BASE.replace("even", "odd"),  # one word changed
    "Please " + BASE[0].lower() + BASE[1:].replace("preserving", "keeping"),  # reworded
    BASE.replace(",", " ,").replace(".", " !"),  # punctuation moved around
]
DISTINCT = [
    "Implement a binary search tree in Rust with insert, delete and in-order traversal methods.",
    "Explain the difference between a process and a thread, with a short C example.",
    "Write a SQL query that finds the second highest salary in the employees table.",
    (
        "Given an array of numbers, filter out the odd values and return the rest in order "
        "using JavaScript."
    ),
    "How do I read a large CSV file lazily in Go without loading it all into memory?",
]


def _words(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


def test_near_duplicates_are_dropped_and_distinct_texts_kept() -> None:
    texts = [BASE, *NEAR_DUPLICATES, *DISTINCT]
    for dup in NEAR_DUPLICATES:  # the fixtures really are near-duplicates
        assert jaccard(BASE, dup) >= 0.6
    result = minhash_dedup(texts)
    assert result.kept == [0, *range(1 + len(NEAR_DUPLICATES), len(texts))]
    assert result.duplicate_of == {i: 0 for i in range(1, 1 + len(NEAR_DUPLICATES))}


def test_normalization_ignores_case_whitespace_and_punctuation_only_tokens() -> None:
    assert normalized_tokens("  Sort   the LIST, please -- now!\n") == [
        "sort", "the", "list", "please", "now"
    ]
    assert normalized_tokens("«Héllo» → wörld…") == ["héllo", "wörld"]
    assert jaccard("Sort the list, please!", "sort   the list please") == 1.0


def test_exact_jaccard_values() -> None:
    # 3-shingles of a b c d e: abc bcd cde; of a b c d f: abc bcd cdf -> 2 / 4.
    assert jaccard("a b c d e", "a b c d f") == pytest.approx(0.5)
    assert jaccard("a b c", "x y z") == 0.0
    assert jaccard("", "...") == 1.0  # both without tokens
    assert jaccard("", "a b c") == 0.0
    assert jaccard("a b", "a b") == 1.0  # shorter than a shingle: one shingle of what is there
    assert jaccard("a b", "a b c") == 0.0
    assert jaccard("a b c d e", "a b c d f", shingle_size=1) == pytest.approx(4 / 6)


def test_threshold_is_respected_for_pairs_below_and_above() -> None:
    rng = random.Random(3)
    vocab = _words("tok", 400)
    texts: list[str] = []
    expected_drop: dict[int, int] = {}
    below: list[tuple[int, int]] = []
    for _ in range(40):
        words = rng.sample(vocab, 30)
        base = len(texts)
        texts.append(" ".join(words))
        # Clearly below 0.5: a third of the words replaced.
        far = list(words)
        for pos in rng.sample(range(30), 10):
            far[pos] = rng.choice(vocab)
        texts.append(" ".join(far))
        below.append((base, base + 1))
        # Clearly above 0.5: one word replaced.
        close = list(words)
        close[rng.randrange(30)] = "changed"
        texts.append(" ".join(close))
        expected_drop[base + 2] = base
    for i, j in below:
        assert jaccard(texts[i], texts[j]) < 0.35
    for i, j in expected_drop.items():
        assert jaccard(texts[i], texts[j]) > 0.7
    result = minhash_dedup(texts, threshold=0.5)
    assert result.duplicate_of == expected_drop
    for i, j in below:
        assert i in result.kept and j in result.kept


def test_first_occurrence_wins_and_order_is_preserved() -> None:
    texts = [DISTINCT[0], BASE, DISTINCT[1], BASE.upper(), DISTINCT[2], BASE + " "]
    result = minhash_dedup(texts)
    assert result.kept == [0, 1, 2, 4]
    assert result.duplicate_of == {3: 1, 5: 1}
    reversed_result = minhash_dedup(texts[::-1])
    assert reversed_result.kept == [0, 1, 3, 5]  # now BASE + " " (old index 5) wins
    assert reversed_result.duplicate_of == {2: 0, 4: 0}


def test_candidates_are_confirmed_against_kept_texts_only() -> None:
    # B is close to A and to C, but C is far from A. B is dropped as a duplicate of A, so C is
    # compared with A alone and must be kept. Words are the shingles (shingle_size=1).
    shared, a1, a2 = _words("s", 24), _words("a", 10), _words("x", 10)
    c1, c2 = _words("c", 10), _words("y", 10)
    a, b, c = (" ".join(shared + a1 + a2), " ".join(shared + a1 + c1),
               " ".join(shared + c1 + c2))
    assert jaccard(a, b, shingle_size=1) == pytest.approx(34 / 54)
    assert jaccard(b, c, shingle_size=1) == pytest.approx(34 / 54)
    assert jaccard(a, c, shingle_size=1) == pytest.approx(24 / 64)
    result = minhash_dedup([a, b, c], threshold=0.5, num_perm=512, shingle_size=1)
    assert result.kept == [0, 2]
    assert result.duplicate_of == {1: 0}


def test_duplicate_points_to_most_similar_kept_text() -> None:
    # Two kept texts share S; D is above the threshold with both, and much closer to k2.
    shared, x, y = _words("s", 10), _words("x", 20), _words("y", 20)
    k1, k2 = " ".join(shared + x), " ".join(shared + y)
    d = " ".join(shared + x[:8] + y[:16])
    assert jaccard(k1, k2, shingle_size=1) == pytest.approx(10 / 50)
    assert jaccard(d, k1, shingle_size=1) == pytest.approx(18 / 46)
    assert jaccard(d, k2, shingle_size=1) == pytest.approx(26 / 38)
    result = minhash_dedup([k1, k2, d], threshold=0.3, num_perm=512, shingle_size=1)
    assert result.kept == [0, 1]
    assert result.duplicate_of == {2: 1}


def test_empty_and_short_texts() -> None:
    texts = ["", "sort list", "???", "Sort list!", "sort lists", "  "]
    result = minhash_dedup(texts)
    # Texts without a token duplicate each other only; short texts are one shingle each.
    assert result.kept == [0, 1, 4]
    assert result.duplicate_of == {2: 0, 3: 1, 5: 0}


def test_empty_input() -> None:
    assert minhash_dedup([]) == DedupResult(kept=[], duplicate_of={}, bands=25, rows=5)


def _run_in_subprocess(texts: list[str], hash_seed: str) -> dict[str, object]:
    code = (
        "import json, sys\n"
        "from warriorcoder.arena.dedup import minhash_dedup\n"
        "r = minhash_dedup(json.load(sys.stdin))\n"
        "print(json.dumps({'kept': r.kept, 'dup': sorted(r.duplicate_of.items())}))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(texts), env=env,
        capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)


def test_deterministic_across_processes_with_different_hash_seeds() -> None:
    rng = random.Random(11)
    vocab = _words("t", 60)
    texts = [" ".join(rng.choices(vocab, k=12)) for _ in range(150)]
    texts += [t.upper() for t in texts[:30]]
    texts += [" ".join([*t.split()[:-1], "end"]) for t in texts[:30]]
    first = _run_in_subprocess(texts, "1")
    second = _run_in_subprocess(texts, "987654")
    here = minhash_dedup(texts)
    assert first == second
    assert first["kept"] == here.kept
    assert first["dup"] == [list(p) for p in sorted(here.duplicate_of.items())]
    assert len(here.duplicate_of) >= 60  # the upper-cased and one-word-changed copies


def test_seed_changes_signatures_but_not_clear_decisions() -> None:
    texts = [BASE, *NEAR_DUPLICATES, *DISTINCT]
    assert minhash_dedup(texts, seed=1).kept == minhash_dedup(texts, seed=99).kept


def test_optimal_bands_layout() -> None:
    bands, rows = optimal_bands(0.5, 128)
    assert bands * rows <= 128
    # The S-curve's steepest point (1/b)^(1/r) sits near the threshold.
    assert abs((1 / bands) ** (1 / rows) - 0.5) < 0.1
    strict_bands, strict_rows = optimal_bands(0.9, 128)
    assert strict_rows > rows and strict_bands < bands


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"threshold": 0.0}, ValueError, "threshold"),
        ({"threshold": 1.5}, ValueError, "threshold"),
        ({"num_perm": 0}, ValueError, "num_perm"),
        ({"shingle_size": 0}, ValueError, "shingle_size"),
    ],
)
def test_bad_parameters_are_named(kwargs: dict[str, float], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        minhash_dedup(["a b c"], **kwargs)  # type: ignore[arg-type]


def test_bad_texts_are_named() -> None:
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        minhash_dedup(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="single str"):
        minhash_dedup("not a list")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.sampled_from(["alpha", "beta", "gamma", "delta", "eps", "Zeta!", "  "]),
                 max_size=8).map(" ".join),
        max_size=25,
    )
)
def test_result_partitions_the_input(texts: list[str]) -> None:
    result = minhash_dedup(texts)
    assert result.kept == sorted(result.kept)
    assert set(result.kept).isdisjoint(result.duplicate_of)
    assert set(result.kept) | set(result.duplicate_of) == set(range(len(texts)))
    for dropped, keeper in result.duplicate_of.items():
        assert keeper < dropped and keeper in result.kept
    # Identical normalized texts are always duplicates of the first of them.
    first_seen: dict[tuple[str, ...], int] = {}
    for i, text in enumerate(texts):
        key = tuple(normalized_tokens(text))
        if key in first_seen:
            assert i in result.duplicate_of
        else:
            first_seen[key] = i
