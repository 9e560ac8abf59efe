"""Rubric prompt and tolerant score parsing for challenge quality judging."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warriorcoder.arena.quality import (
    QUALITY_RUBRIC,
    not_a_coding_task,
    parse_quality_score,
    quality_prompt,
)


def test_rubric_names_every_criterion_and_the_answer_format() -> None:
    for criterion in ("Clarity", "Specificity", "Solvability", "Coding task"):
        assert criterion in QUALITY_RUBRIC
    assert "1 to 10" in QUALITY_RUBRIC
    assert QUALITY_RUBRIC.rstrip().endswith('"Score: N", where N is an integer from 1 to 10.')


def test_quality_prompt_embeds_the_instruction_after_the_rubric() -> None:
    instruction = "Write a function {that} reverses a string in C."  # braces stay literal
    prompt = quality_prompt(f"  {instruction}\n")
    assert prompt.startswith(QUALITY_RUBRIC)
    assert f"[Challenge]\n{instruction}\n[End of challenge]" in prompt
    assert prompt.index(instruction) > len(QUALITY_RUBRIC)


def test_quality_prompt_rejects_bad_instructions() -> None:
    with pytest.raises(ValueError, match="instruction is empty"):
        quality_prompt(" \n\t")
    with pytest.raises(TypeError, match="instruction must be str"):
        quality_prompt(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Score: 7", 7.0),
        ("score = 7/10", 7.0),
        ("**Score:** 8", 8.0),
        ("**Score: 9**", 9.0),
        ("Score: **6**", 6.0),
        ("Rating: 6 out of 10", 6.0),
        ("Rating: 6 (out of 10)", 6.0),
        ("[[7]]", 7.0),
        ("[[ 9 / 10 ]]", 9.0),
        ("Score: [[6]]", 6.0),
        ("SCORE:7", 7.0),
        ("Final score: 7.5", 7.5),
        ("Overall rating - 4", 4.0),
        ("Quality score: 10/10", 10.0),
        ("The score is 6.", 6.0),
        ("score of 3 out of 10", 3.0),
        ("Score (1-10): 9", 9.0),
        ("Score:\n\n**8/10**", 8.0),
        ("Score 7/10", 7.0),
        ("## Score\n\n: 5", 5.0),
        ("Score: 1", 1.0),
        (
            (
                "The challenge asks for a function but never says what it returns. It is "
                "still clearly about code.\nScore: 5"
            ),
            5.0,
        ),
        ("Score: 7 - clear and specific, fully solvable.", 7.0),
    ],
)
def test_parses_messy_judge_outputs(text: str, expected: float) -> None:
    assert parse_quality_score(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Score: 5\nOn reflection the task is clearer than I thought.\nScore: 8", 8.0),
        ("[[3]] ... final answer: Score: 9", 9.0),
        ("Rating: 9 out of 10. Hmm, too generous. [[6]]", 6.0),
        ("I'd use a score 1-10 scale here. Score: 4", 4.0),
        ("Score: 6\nThe task mentions score 2 test cases.", 6.0),  # not explicit: ignored
    ],
)
def test_last_explicit_score_wins(text: str, expected: float) -> None:
    assert parse_quality_score(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "This is a good, clear task. I would give it 7.",  # bare number: never guess
        "7/10",
        "Score: N",
        "Score: 0",
        "Score: 11",
        "Score: 100",
        "Score: -3",
        "[[0]]",
        "[[12]]",
        "Score: 4/5",  # another scale
        "Rating: 3 out of 5",
        "Score: 7-8",  # a range
        "Score: 8 to 9",
        "score 2 test cases",  # "score" used as a verb, no separator
        "The scores are 7",
        "Score: 8\nWait, that is too high. Score: 11",  # the last one is out of range
    ],
)
def test_returns_none_when_nothing_trustworthy(text: str) -> None:
    assert parse_quality_score(text) is None


def test_rejects_non_str() -> None:
    with pytest.raises(TypeError, match="text must be str"):
        parse_quality_score(7)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=10), st.text(alphabet="abc .,\n", max_size=40))
def test_any_valid_integer_after_prose_round_trips(score: int, prose: str) -> None:
    assert parse_quality_score(f"{prose}\nScore: {score}") == float(score)


# Programming requests in the forms mined text takes: named functions, plain questions about
# code, SQL, shell, a pasted snippet, and two hints together ("sort a list").
CODING = [
    "Write a Python function `count_vowels(text)` that returns how many vowels text contains.",
    "How do I sort a list of tuples by the second element?",
    "Why does my for loop never end?",
    "Explain what a closure is in JavaScript.",
    "Write a SQL query that finds duplicate emails.",
    "What's the difference between a process and a thread?",
    "How can I read a CSV file and compute the average of a column?",
    "Write unit tests for this: def f(x): return x*2",
    "What is wrong with this: for i in range(10) print(i)",
    "Create a program that asks the user for their age and prints it in days.",
    "Make my website's navigation bar sticky with CSS.",
    "Given a list of numbers, return the index of the largest one.",
]
NOT_CODING = [
    "What is the capital of France?",
    "Write a poem about the ocean at night.",
    "How are you doing today?",
    "Tell me a joke about cats.",
    "Can you recommend a good book to read this summer?",
    "What are the health benefits of green tea?",
    "I'm feeling sad today, can you cheer me up?",
    "Summarize the history of the Roman Empire in three sentences.",
    "Please write a short story about a dragon and a knight.",
    "What should I cook for dinner tonight?",
]


@pytest.mark.parametrize("text", CODING)
def test_coding_requests_are_kept(text: str) -> None:
    assert not_a_coding_task(text) is None


@pytest.mark.parametrize("text", NOT_CODING)
def test_requests_that_are_not_about_code_are_named(text: str) -> None:
    assert not_a_coding_task(text) == "not a coding task (no code and no programming terms)"


def test_one_hint_alone_is_not_enough_but_code_is() -> None:
    assert not_a_coding_task("Count the sheep in the picture.") is not None
    assert not_a_coding_task("Count the sheep: total_sheep = 3") is None
    assert not_a_coding_task("   ") == "empty"
    with pytest.raises(TypeError):
        not_a_coding_task(None)  # type: ignore[arg-type]


def test_the_shipped_demo_challenges_and_the_fake_miner_pass() -> None:
    import json
    import random
    from pathlib import Path

    from warriorcoder.backends.fake import fake_instruction

    demo = Path(__file__).resolve().parent.parent / "examples" / "demo-challenges.jsonl"
    texts = [json.loads(line)["instruction"] for line in demo.read_text().splitlines()]
    texts += [fake_instruction(random.Random(seed)) for seed in range(100)]
    assert len(texts) > 100
    assert [t for t in texts if not_a_coding_task(t)] == []
