"""Tests of challenges: the request for them, what is kept of an attacker's answer, user tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from warriorcoder.arena.challenge_tests import (
    check_user_tests,
    clean_tests,
    extract_tests,
    prompt_for_tests,
)
from warriorcoder.config import ConfigError
from warriorcoder.stages.challenger import UserInstruction, read_user_instructions, read_user_items


def test_tests_prompt_holds_the_instruction_and_asks_for_asserts_only() -> None:
    prompt = prompt_for_tests("  Write add(a, b).  ")
    assert prompt.endswith("[Task]\nWrite add(a, b).")
    assert "assert" in prompt and "Do not solve the task" in prompt
    with pytest.raises(ValueError, match="empty"):
        prompt_for_tests("   ")
    with pytest.raises(TypeError, match="str"):
        prompt_for_tests(None)  # type: ignore[arg-type]


def test_clean_tests_keeps_asserts_imports_and_data_and_drops_stand_ins() -> None:
    code = (
        "import math\n"
        "from solution import add\n"          # not stdlib: the answer is above, not a module
        "from collections import Counter\n"
        "def add(a, b):\n    return a + b\n"  # would replace the answer's add
        "class Stack:\n    pass\n"
        "mul = lambda a, b: a * b\n"
        "cases = [(1, 2, 3), (0, 0, 0)]\n"
        "for a, b, want in cases:\n    assert add(a, b) == want\n"
        "assert math.isclose(add(0.1, 0.2), 0.3)\n"
        "print('all good')\n"
    )
    cleaned = clean_tests(code)
    assert cleaned == (
        "import math\n"
        "from collections import Counter\n"
        "cases = [(1, 2, 3), (0, 0, 0)]\n"
        "for a, b, want in cases:\n    assert add(a, b) == want\n"
        "assert math.isclose(add(0.1, 0.2), 0.3)\n"
    )


def test_clean_tests_unwraps_the_main_guard_and_calls_test_functions_once() -> None:
    code = (
        "def test_add():\n    assert add(1, 2) == 3\n"
        "def test_neg():\n    assert add(-1, 1) == 0\n"
        "def helper(x):\n    return x\n"
        "if __name__ == '__main__':\n    test_add()\n    assert add(2, 2) == 4\n"
    )
    cleaned = clean_tests(code)
    assert "def helper" not in cleaned
    # test_add is called by the code, test_neg is not: it gets one call at the end.
    assert cleaned.count("\ntest_add()\n") == 1 and cleaned.endswith("test_neg()\n")
    assert "assert add(2, 2) == 4" in cleaned


@pytest.mark.parametrize("code", [
    "",
    "def add(a, b):\n    return a + b\n",          # a solution, no test
    "print(add(1, 2))\n",                           # output, no assert
    "assert add(1, 2 == 3\n",                       # does not parse
    "def test_add(x):\n    assert add(x) == x\n",   # a test function that needs arguments
    ("import unittest\nclass T(unittest.TestCase):\n    def test(self):\n"
     "        self.assertEqual(add(1, 2), 3)\n"),
])
def test_clean_tests_gives_nothing_without_a_usable_assert(code: str) -> None:
    assert clean_tests(code) == ""


def test_tests_from_answer_reads_the_fenced_code() -> None:
    answer = ("Here are the tests:\n\n```python\nassert add(1, 2) == 3\n"
              "assert add(0, 0) == 0\n```\n\nThey cover zero.")
    assert extract_tests(answer) == "assert add(1, 2) == 3\nassert add(0, 0) == 0\n"
    assert extract_tests("I cannot write tests for this.") == ""


def test_check_user_tests_names_the_problem() -> None:
    assert check_user_tests("assert f(1) == 2") is None
    assert check_user_tests("  ") == "tests are blank"
    assert check_user_tests("assert f(1 == 2") is not None
    assert "line 1" in str(check_user_tests("assert f(1 == 2"))
    assert check_user_tests("print(f(1))") == "tests contain no assert statement"
    assert check_user_tests("assert 1\x00") == "tests contain a NUL character"


def test_jsonl_user_instructions_carry_optional_tests(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text("\n".join([
        json.dumps({"instruction": "Write add(a, b).", "tests": "assert add(1, 2) == 3"}),
        "",
        json.dumps({"instruction": "Write a haiku generator."}),
    ]) + "\n")
    assert read_user_items(path) == [
        UserInstruction("Write add(a, b).", "assert add(1, 2) == 3"),
        UserInstruction("Write a haiku generator.", ""),
    ]
    assert read_user_instructions(path) == ["Write add(a, b).", "Write a haiku generator."]


@pytest.mark.parametrize(("line", "message"), [
    ({"instruction": "x", "tests": ["assert 1"]}, "mine.jsonl:1: 'tests' must be a string"),
    ({"instruction": "x", "tests": "assert f(("}, "mine.jsonl:1: tests do not parse"),
    ({"instruction": "x", "tests": "f(1)"}, "mine.jsonl:1: tests contain no assert"),
])
def test_bad_user_tests_are_a_config_error_naming_the_line(
    tmp_path: Path, line: dict[str, object], message: str
) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(ConfigError, match=message):
        read_user_items(path)
