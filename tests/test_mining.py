import random

import pytest

from warriorcoder.arena.mining import clean_instruction, judges_for, pair_defenders


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Write a Python function that reverses a list.<|im_end|>\n<|im_start|>assistant\nSure",
         "Write a Python function that reverses a list."),
        ("  User: How do I sort a dict by value in Python?  ",
         "How do I sort a dict by value in Python?"),
        ("Implement binary search in Python.\nassistant\nHere is",
         "Implement binary search in Python."),
        ("Write a function to merge two sorted lists.[/INST] def merge",
         "Write a function to merge two sorted lists."),
    ],
)
def test_clean_cuts_run_on_text(raw: str, expected: str) -> None:
    assert clean_instruction(raw, stop_strings=["<|im_end|>"]).text == expected


@pytest.mark.parametrize(
    ("raw", "kwargs", "reason"),
    [
        ("Hi", {}, "shorter than"),
        ("x" * 50, {"max_chars": 10}, "longer than"),
        ("Supercalifragilistic expialidocious!", {}, "fewer than 3 words"),
        ("1 2 3 4 5 6 7 8 9 10 11 12 13 14 ++ --", {}, "mostly non-letters"),
        ("Write a long function that", {"truncated": True}, "token limit"),
    ],
)
def test_clean_rejects_with_reason(raw: str, kwargs: dict, reason: str) -> None:
    result = clean_instruction(raw, **kwargs)
    assert result.text is None
    assert reason in (result.reason or "")


def test_pair_defenders() -> None:
    roster = ["a", "b", "c", "d"]
    assert pair_defenders("b", roster, "all", random.Random(0)) == ["a", "c", "d"]
    two = pair_defenders("b", roster, 2, random.Random(0))
    assert len(two) == 2 and "b" not in two
    assert two == pair_defenders("b", roster, 2, random.Random(0))
    with pytest.raises(ValueError, match="defenders"):
        pair_defenders("b", roster, 4, random.Random(0))


def test_judges_never_include_competitors() -> None:
    assert judges_for("a", "b", ["a", "b", "c", "d"]) == ["c", "d"]
    with pytest.raises(ValueError, match="no uninvolved judge"):
        judges_for("a", "b", ["a", "b"])
