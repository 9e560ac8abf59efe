"""Python code out of messy markdown answers."""

from __future__ import annotations

import ast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warriorcoder.arena.code_extraction import extract_python_code


def test_single_python_block_with_prose_around() -> None:
    answer = ("Sure! Here is the function:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\n"
              "It returns the sum.")
    assert extract_python_code(answer) == "def add(a, b):\n    return a + b"


def test_several_blocks_joined_in_order_others_skipped() -> None:
    answer = (
        "First the helper:\n```py\ndef square(x):\n    return x * x\n```\n"
        "Install nothing:\n```bash\npip install numpy\n```\n"
        "Then the main function:\n```\ndef total(xs):\n    return sum(square(x) for x in xs)\n```\n"
        "Output:\n```\n14\n```\n```text\ndone\n```\n"
        "A JavaScript version:\n```javascript\nconst f = (x) => x * x;\n```\n"
    )
    assert extract_python_code(answer) == (
        "def square(x):\n    return x * x\n\n"
        "def total(xs):\n    return sum(square(x) for x in xs)"
    )


@pytest.mark.parametrize("tag", ["python", "Python", "py", "python3", "PY3", "{python}",
                                 "python title=\"solution.py\"", " python", "ipython"])
def test_language_tags(tag: str) -> None:
    assert extract_python_code(f"```{tag}\nx = 1\n```") == "x = 1"


@pytest.mark.parametrize("tag", ["bash", "sh", "shell", "console", "text", "output", "json",
                                 "java", "cpp", "yaml", "plaintext"])
def test_non_python_tags_are_skipped(tag: str) -> None:
    # Even when the content happens to parse as Python.
    assert extract_python_code(f"```{tag}\nx = 1\n```") == ""


def test_tilde_fences_and_longer_fences() -> None:
    answer = "~~~python\na = 1\n~~~\ntext\n````python\nb = '```'\n````"
    assert extract_python_code(answer) == "a = 1\n\nb = '```'"


def test_unterminated_last_fence_runs_to_the_end() -> None:
    answer = "Here:\n```python\ndef f(n):\n    if n < 2:\n        return n\n    return f(n - 1)"
    assert extract_python_code(answer) == (
        "def f(n):\n    if n < 2:\n        return n\n    return f(n - 1)")


def test_fence_indented_in_a_list_item() -> None:
    answer = "1. Write it:\n\n   ```python\n   def one():\n       return 1\n   ```\n"
    assert extract_python_code(answer) == "def one():\n    return 1"


def test_untagged_output_block_is_skipped_but_code_kept() -> None:
    assert extract_python_code("```\n[1, 4, 9]\n```") == ""
    assert extract_python_code("```\nTrue\n```") == ""
    assert extract_python_code("```\nprint(f(3))\n```") == "print(f(3))"


def test_untagged_broken_code_is_kept_so_it_fails() -> None:
    answer = "```\ndef f(x):\n    return [x for x in\n```"
    assert extract_python_code(answer) == "def f(x):\n    return [x for x in"


def test_no_fences_takes_the_longest_parsing_run() -> None:
    answer = (
        "Sure, here you go.\n"
        "import math\n"
        "\n"
        "def area(r):\n"
        "    return math.pi * r ** 2\n"
        "\n"
        "This computes the area of a circle.\n"
        "Example: area(2) gives 12.56.\n"
        "print(area(2))\n"
    )
    assert extract_python_code(answer) == (
        "import math\n\ndef area(r):\n    return math.pi * r ** 2")


def test_answer_that_is_only_code() -> None:
    code = "def is_even(n: int) -> bool:\n    return n % 2 == 0\n\n\nassert is_even(4)"
    assert extract_python_code(code + "\n") == code


@pytest.mark.parametrize("answer", ["", "I am sorry, I cannot help with that.",
                                    "The answer is 42.", "```\n\n```",
                                    "Use a hash map: it gives O(1) lookups."])
def test_no_code_gives_empty_string(answer: str) -> None:
    assert extract_python_code(answer) == ""


def test_console_session_that_defines_code() -> None:
    answer = "```pycon\n>>> def sq(x):\n...     return x * x\n...\n>>> sq(3)\n9\n```"
    assert extract_python_code(answer) == "def sq(x):\n    return x * x\n\nsq(3)"


def test_console_session_that_only_shows_usage_is_skipped() -> None:
    answer = ("```python\ndef sq(x):\n    return x * x\n```\nUsage:\n"
              "```\n>>> sq(3)\n9\n>>> sq(4)\n16\n```")
    assert extract_python_code(answer) == "def sq(x):\n    return x * x"


def test_doctest_inside_a_docstring_is_left_alone() -> None:
    code = 'def sq(x):\n    """\n    >>> sq(2)\n    4\n    """\n    return x * x'
    assert extract_python_code(f"```python\n{code}\n```") == code


def test_crlf_answers() -> None:
    answer = "Code:\r\n```python\r\nx = 1\r\ny = 2\r\n```\r\n"
    assert extract_python_code(answer) == "x = 1\ny = 2"


def test_rejects_non_string() -> None:
    with pytest.raises(TypeError, match="answer must be a str"):
        extract_python_code(None)  # type: ignore[arg-type]


def assert_code_of(text: str, code: str) -> None:
    """What holds for the code extracted from any text: it is tidy (no blank first or last
    line, no trailing spaces) and every line of it comes from the text (compared without
    whitespace: a fence's indent, tabs and console prompts are taken off)."""
    lines = code.splitlines()
    assert code == "" or (lines[0].strip() and lines[-1].strip()), repr(code[:200])
    assert all(line == line.rstrip() for line in lines), repr(code[:200])
    flat = "".join(text.split())
    for line in lines:
        assert "".join(line.split()) in flat, (line[:200], text[:200])


def test_assert_code_of_catches_code_not_from_the_text() -> None:
    assert_code_of("```python\nx = 1\n```", "x = 1")
    for code in ("y = 2", "\nx = 1", "x = 1  "):
        with pytest.raises(AssertionError):
            assert_code_of("```python\nx = 1\n```", code)


@given(st.text(max_size=400))
def test_never_raises_and_unfenced_results_parse(text: str) -> None:
    code = extract_python_code(text)
    assert_code_of(text, code)
    if "```" not in text and "~~~" not in text and code:
        ast.parse(code)
