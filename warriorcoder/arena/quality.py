"""Rubric-based quality scoring of mined challenges by a judge model.

:func:`quality_prompt` builds the user message asking a judge to rate one challenge from 1 to 10
on clarity, specificity, solvability and being a coding task, ending with ``Score: N``.
:func:`parse_quality_score` reads the score back from whatever the judge wrote. Small judges
are messy, so the parser accepts the usual spellings (``Score: 7``, ``score = 7/10``,
``**Score:** 8``, ``Rating: 6 out of 10``, ``[[7]]``) and takes the last one; it never guesses
from a bare number, and an out-of-range or ambiguous last score gives None.

:func:`not_a_coding_task` needs no judge: it says why a mined text is not a programming request
("What is the capital of France?", "Write a poem about autumn"), or None for one that is. The
Challenger drops such mined texts before deduplication, whether or not rubric scoring is on.
"""

from __future__ import annotations

import re

__all__ = [
    "MAX_SCORE",
    "MIN_SCORE",
    "QUALITY_RUBRIC",
    "not_a_coding_task",
    "parse_quality_score",
    "quality_prompt",
]

MIN_SCORE = 1
MAX_SCORE = 10

QUALITY_RUBRIC = """\
You are reviewing a programming challenge that will be posed to code assistants. Rate the \
quality of the challenge itself (not of any answer) on a scale from 1 to 10 using these criteria:

1. Clarity: is the request unambiguous and understandable on first reading?
2. Specificity: does it state the inputs, outputs, constraints or expected behaviour precisely \
enough that an answer can be judged right or wrong?
3. Solvability: can a competent programmer solve it completely from the text alone, without \
missing information, external files or private context?
4. Coding task: is it a genuine programming task (writing, fixing, explaining, testing or \
optimizing code) rather than small talk, a non-technical question or a harmful request?

Guide: 1-3 poor (vague, unsolvable or not about code); 4-6 usable but flawed; 7-8 good; 9-10 \
excellent (clear, specific, self-contained and clearly a coding task).

Explain your reasoning in at most three sentences, then end your reply with one final line of \
the form "Score: N", where N is an integer from 1 to 10."""

# Markdown and quoting that judges wrap around keywords and numbers: "**Score:** 8", "`7`".
_DECOR = r"[\s*_`#>\[]*"
_NUMBER = r"(?P<value>-?\d+(?:\.\d+)?)"
# "/10", "out of 10", "(out of 10)": the scale the number claims to be on.
_DENOMINATOR = r"(?:\s*\(?\s*(?:/|out\s+of)\s*(?P<denominator>\d+(?:\.\d+)?))?"
# "7-8", "7 to 8": a range instead of a score.
_RANGE = r"(?P<range>\s*(?:-|–|to)\s*\d)?"
_SCORE = re.compile(
    r"(?:"
    r"\b(?:final\s+|overall\s+|quality\s+)?(?:score|rating)\b"  # keyword
    r"(?:\s*\([^)\n]*\))?"  # "Score (1-10): 7"
    rf"{_DECOR}(?P<separator>:|=|-(?=\s)|–|\bis\b|\bof\b)?{_DECOR}{_NUMBER}{_DENOMINATOR}{_RANGE}"
    r"|"
    r"\[\[\s*(?P<bracketed>-?\d+(?:\.\d+)?)\s*(?:/\s*(?P<bracket_denominator>\d+))?\s*\]\]"
    r")",
    re.IGNORECASE,
)


def quality_prompt(instruction: str) -> str:
    """User message asking a judge to rate ``instruction`` with :data:`QUALITY_RUBRIC`."""
    if not isinstance(instruction, str):
        raise TypeError(f"instruction must be str, got {type(instruction).__name__}")
    if not instruction.strip():
        raise ValueError("instruction is empty")
    return f"{QUALITY_RUBRIC}\n\n[Challenge]\n{instruction.strip()}\n[End of challenge]"


def parse_quality_score(text: str) -> float | None:
    """The judge's score in [1, 10], or None when there is none to trust.

    The last explicit score in ``text`` wins. None when no score is written, or when that last
    score is out of range (0, 11, negative), given on another scale ("4/5"), or a range ("7-8").
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    # "score 2 test cases" is not a score: without a separator only "score 7/10" counts.
    explicit = [
        match
        for match in _SCORE.finditer(text)
        if match.group("bracketed") is not None
        or match.group("separator") is not None
        or match.group("denominator") is not None
    ]
    if not explicit:
        return None
    last = explicit[-1]
    if last.group("bracketed") is not None:
        value, denominator = last.group("bracketed"), last.group("bracket_denominator")
        is_range = False
    else:
        value, denominator = last.group("value"), last.group("denominator")
        is_range = last.group("range") is not None
    if is_range or (denominator is not None and float(denominator) != MAX_SCORE):
        return None
    score = float(value)
    if not MIN_SCORE <= score <= MAX_SCORE:
        return None
    return score




def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words that make a request about programming on their own ("write a function", "this regex").
_CODING_TERMS = _word_set("""
    algorithm algorithms api apis array arrays async bash binary bit bitwise boolean bug bugs
    c# c++ char class classes cli code codebase codes coding compile compiler complexity csv
    css database debug debugging decorator def dict dictionary django docker dockerfile enum
    exception exceptions fastapi flask func function functions generator git golang hashmap
    html http implement implementation implementing int integer integers iterator java
    javascript json kotlin lambda leetcode library linked linux loop loops matrix method
    methods module numpy object-oriented oop pandas parse parser parsing php program
    programmatically programming programs pseudocode pytest python query queue recursion
    recursive refactor regex regexp rust scala script scripting scripts sql stack string
    strings struct subarray substring syntax thread threading threads tuple typescript unittest
    variable variables xml yaml concurrency multiprocessing mutex pointer pointers
""")
# Words that hint at programming only together ("sort a list", "read a file").
_WEAK_TERMS = _word_set("""
    input inputs output outputs list lists sort sorted sorting file files data return returns
    print value values number numbers element elements index key keys count characters
    character calculate compute convert test tests error errors efficient performance tree
    graph node nodes process memory
""")
# Text that is code, or names code: a fenced block, an inline `span`, a call like f(x), an
# identifier in snake_case or camelCase, a comparison or an assignment operator.
_CODE_MARKERS = re.compile(
    r"```|`[^`\n]+`|\b[A-Za-z_]\w*\([^()\n]*\)|\b[a-z]+_[a-z0-9_]+\b|\b[a-z]+[A-Z]\w*\b"
    r"|==|!=|<=|>=|\+=|->"
)
_WORD = re.compile(r"[a-z][a-z0-9+#-]*")


def not_a_coding_task(text: str) -> str | None:
    """Why `text` is not a programming request, or None when it is one.

    A request counts as a coding task when it shows code (a fenced block, an inline code span,
    a call, a snake_case or camelCase name, a comparison operator), uses one programming term
    ("function", "regex", "Python", "SQL", ...), or two words that hint at programming together
    ("sort a list of numbers"). Small talk, trivia and creative writing have none of these. The
    check is lenient on purpose: it removes what plainly is not about code and leaves doubtful
    cases to rubric scoring (`quality_prompt`).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    if not text.strip():
        return "empty"
    if _CODE_MARKERS.search(text):
        return None
    words = {w.strip("-") for w in _WORD.findall(text.lower())}
    if words & _CODING_TERMS:
        return None
    if len(words & _WEAK_TERMS) >= 2:
        return None
    return "not a coding task (no code and no programming terms)"
