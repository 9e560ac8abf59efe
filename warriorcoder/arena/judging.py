"""Pure judging logic: the judge prompt, verdict parsing, votes, local scores, judge statistics.

No I/O and no model calls. A judge sees each battle twice, once per order (ORDER_AB shows
model_a's answer first, ORDER_BA shows model_b's first), so position bias cancels out: a judge
that always picks the first answer contradicts itself across the two orders and votes TIE.

Vocabulary:
- position verdict: the verdict as the judge wrote it, A = the answer shown first.
- battle verdict: the same verdict in terms of the battle, A = model_a (see `unswap`).
- vote: one judge's combined battle verdict over both orders (see `combine_orders`).
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

# battle_id and judgment_id live in ids.py (stages import them from there); re-exported here.
from warriorcoder.arena.ids import battle_id, judgment_id
from warriorcoder.v1 import arena_pb2
from warriorcoder.v1.arena_pb2 import (
    JudgeStats,
    Judgment,
    Order,
    RatedBattle,
    ResponsePair,
    Verdict,
    Vote,
)

VERDICT_A = arena_pb2.VERDICT_A
VERDICT_B = arena_pb2.VERDICT_B
VERDICT_TIE = arena_pb2.VERDICT_TIE
VERDICT_INVALID = arena_pb2.VERDICT_INVALID
ORDER_AB = arena_pb2.ORDER_AB
ORDER_BA = arena_pb2.ORDER_BA

NO_VALID_VERDICT_REASON = "no judge wrote a valid verdict"
NO_JUDGES_REASON = "battle has no judges"

__all__ = [
    "ARENA_HARD_LABELS",
    "JSON_VERDICT_INSTRUCTION",
    "JUDGE_SYSTEM_PROMPT",
    "NO_JUDGES_REASON",
    "NO_VALID_VERDICT_REASON",
    "NO_VERDICT_REASON",
    "VERDICT_CHOICES",
    "VERDICT_FIRST_INSTRUCTION",
    "VERDICT_LETTER_INSTRUCTION",
    "VERDICT_PREFILL",
    "JudgeTally",
    "ParsedVerdict",
    "VerdictFormat",
    "VoteCounts",
    "battle_id",
    "battle_judge_tallies",
    "combine_orders",
    "explanation_chars",
    "judge_cost",
    "judge_prompt",
    "judge_statistics",
    "judge_stats",
    "judge_votes",
    "judgment_battle_verdict",
    "judgment_id",
    "latest_judgments",
    "local_score",
    "parse_verdict",
    "prefilled_verdict_text",
    "rate_battle",
    "read_choice_verdict",
    "read_json_verdict",
    "read_judge_answer",
    "read_verdict",
    "soft_margin",
    "unswap",
    "verdict_format",
    "verdict_json_schema",
    "verdict_probabilities",
]

# ---------------------------------------------------------------------------------------------
# Prompt
# ---------------------------------------------------------------------------------------------

_JUDGE_RULES = (
    "Please act as an impartial judge and compare the answers of two AI assistants to the "
    "user's coding request shown below. Judge correctness first: does the code solve the "
    "stated problem, run without errors, and handle edge cases? Then judge helpfulness and "
    "clarity: does the answer follow the instruction, explain what matters, and stay easy to "
    "read?\n\n"
    "Begin your evaluation with a short comparison of the two answers that names concrete "
    "mistakes. Avoid any position bias: the order in which the answers are shown must not "
    "influence your decision. Do not let the length of the answers influence you: an answer is "
    "not better for being longer. Do not favour either assistant by its name. Be as objective "
    "as possible.\n\n"
    "If both answers are equally good, prefer the shorter, more concise one. Only if both are "
    "equally good and equally long is it a tie.\n\n"
)
JUDGE_SYSTEM_PROMPT = (
    _JUDGE_RULES
    + "After your explanation, output your final verdict on the last line, strictly in this "
    'format: "[[A]]" if assistant A is better, "[[B]]" if assistant B is better, and "[[C]]" '
    "for a tie."
)

_JUDGE_USER_TEMPLATE = (
    "[User Request]\n{instruction}\n\n"
    "[The Start of Assistant A's Answer]\n{first}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{second}\n[The End of Assistant B's Answer]"
)


VERDICT_PREFILL = "[["
VERDICT_FIRST_INSTRUCTION = (
    'Reply with your verdict only: "[[A]]" if assistant A is better, "[[B]]" if assistant B is '
    'better, "[[C]]" for a tie.'
)


# Arena-Hard's five labels, from A much better to B much better.
ARENA_HARD_LABELS: tuple[str, ...] = ("A>>B", "A>B", "A=B", "B>A", "B>>A")
_LABEL_MEANINGS = (
    "if assistant A is significantly better",
    "if assistant A is slightly better",
    "for a tie",
    "if assistant B is slightly better",
    "if assistant B is significantly better",
)


def _label_list(wrap: str) -> str:
    return ", ".join(
        f'"{wrap}{label}{wrap.replace("[", "]")}" {meaning}'
        for label, meaning in zip(ARENA_HARD_LABELS, _LABEL_MEANINGS, strict=True)
    )


@dataclass(frozen=True)
class VerdictFormat:
    """How judges are asked for their verdict (judge.labels): the system prompt, the extra
    instruction of each request kind, and the constrained answers."""

    system_prompt: str
    # Appended to the user message in prefill mode (the turn is pre-filled with "[[").
    first_instruction: str
    # Appended when the answer is constrained to `choices` (structured_output choice).
    choice_instruction: str
    # Appended when the answer is constrained to JSON (structured_output json_schema).
    json_instruction: str
    # The answers a constrained judge may give (choice list and JSON enum).
    choices: tuple[str, ...]


def verdict_format(labels: str = "abc") -> VerdictFormat:
    """The verdict format of judge.labels: "abc" ([[A]], [[B]], [[C]]; the default) or
    "arena_hard" (the five labels [[A>>B]] ... [[B>>A]], whose ">>" is a strong verdict)."""
    if labels == "abc":
        return VerdictFormat(
            JUDGE_SYSTEM_PROMPT,
            VERDICT_FIRST_INSTRUCTION,
            VERDICT_LETTER_INSTRUCTION,
            JSON_VERDICT_INSTRUCTION,
            VERDICT_CHOICES,
        )
    if labels == "arena_hard":
        return VerdictFormat(
            _JUDGE_RULES
            + "After your explanation, output your final verdict on the last line with exactly "
            f"one of these labels: {_label_list('[[')}.",
            f"Reply with your verdict label only: {_label_list('[[')}.",
            f"Reply with one label only: {_label_list('')}.",
            'Answer with a JSON object: {"explanation": "<your short comparison>", "verdict": '
            f'"A>B"}} where verdict is {_label_list("")}.',
            ARENA_HARD_LABELS,
        )
    raise ValueError(f"verdict_format: labels must be 'abc' or 'arena_hard', got {labels!r}")


def prefilled_verdict_text(completion: str) -> str:
    """The full verdict of a judge whose turn was pre-filled with "[[": "A]]" -> "[[A]]"."""
    return VERDICT_PREFILL + completion.split("]]", 1)[0].strip() + "]]"


def judge_prompt(instruction: str, first_answer: str, second_answer: str) -> str:
    """Return the user message of a pairwise judgment (send it with `JUDGE_SYSTEM_PROMPT`).

    `first_answer` is shown as Assistant A, `second_answer` as Assistant B: the caller decides
    the order (ORDER_AB passes model_a's answer first). An empty answer is allowed (a model may
    answer nothing and should lose for it); an empty instruction is a ValueError.
    """
    for name, value in (
        ("instruction", instruction),
        ("first_answer", first_answer),
        ("second_answer", second_answer),
    ):
        if not isinstance(value, str):
            raise TypeError(f"judge_prompt: {name} must be str, got {type(value).__name__}")
    if not instruction.strip():
        raise ValueError("judge_prompt: instruction is empty")
    return _JUDGE_USER_TEMPLATE.format(
        instruction=instruction.strip(),
        first=first_answer.strip(),
        second=second_answer.strip(),
    )


# ---------------------------------------------------------------------------------------------
# Verdict parsing
# ---------------------------------------------------------------------------------------------

_TOKEN_VERDICT: dict[str, Verdict] = {
    "a": VERDICT_A,
    "b": VERDICT_B,
    "c": VERDICT_TIE,
    "tie": VERDICT_TIE,
    "draw": VERDICT_TIE,
}


@dataclass(frozen=True)
class ParsedVerdict:
    """A verdict read from a judge's text, in position terms (A = the answer shown first)."""

    verdict: Verdict
    # An Arena-Hard "significantly better" label: [[A>>B]], [[B>>A]] (also [[B<<A]], [[A<<B]]).
    strong: bool = False
    # Why the verdict is VERDICT_INVALID ("" when it is not).
    reason: str = ""


NO_VERDICT_REASON = "no verdict found in the judge's answer"

# A fenced code block; judges quote code, and code is full of `x[a]`-like text.
_CODE_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)
# Emphasis markers that wrap verdicts: **[[A]]**, `[[B]]`, **Final verdict:** A.
_EMPHASIS = re.compile(r"[*`]")

# Arena-Hard labels: A>>B, A>B, A=B, B>A, B>>A, and the same read right to left (B<<A = A>>B).
_RELATION = r"(>>|≫|>|==|=|<<|≪|<)"
_LABEL = r"(?:assistant\s+)?([ab])\s*" + _RELATION + r"\s*(?:assistant\s+)?([ab])"
# [[A]], [[ b ]], [[tie]], [[Assistant A]], [[A>>B]], [[ b > a ]]; not x[[a]] (code), not [[[A]]].
# Groups: 1 = a plain verdict; 2, 3, 4 = a label's left side, relation and right side.
_DOUBLE_BRACKET = re.compile(
    r"(?<![\w\[])\[\[\s*(?:(?:assistant\s+)?(a|b|c|tie|draw)|" + _LABEL + r")\s*\]\](?!\])",
    re.IGNORECASE,
)
# [A], [B], [C], [tie], [A>B]: letters upper case only, so a list literal like `[a]` is no verdict.
_SINGLE_BRACKET = re.compile(
    r"(?<![\w\[])\[\s*(?:([ABC]|(?i:tie|draw))|([AB])\s*" + _RELATION + r"\s*([AB]))\s*\](?!\])"
)
# An unbracketed label (capitals only), read inside a final statement: "Final verdict: B>A".
_BARE_LABEL = re.compile(
    r"(?<![\w\[<>=≫≪])([AB])\s*" + _RELATION + r"\s*([AB])(?![\w\]<>=≫≪])"
)
_CONJUNCTION = re.compile(r"\b(?:or|and)\b", re.IGNORECASE)
# The rest of a line after a verdict that ends it.
_LINE_END = re.compile(r"""[ \t.,;"')\]]*(?:\n|$)""")
# What may stand between the items of an echoed list: '"[[A]]", "[[B]]", or "[[C]]"'.
_LIST_GAP = re.compile(r"""[\s,/|"'*]*(?:(?:or|and)\b[\s,/|"'*]*)?""", re.IGNORECASE)

# A letter verdict ends here: end of line, punctuation, or a verb ("A is", "B wins", "A's").
# This keeps the article in "verdict: a tie" or "winner is a close call" from reading as A.
_LETTER_END = r"(?=[ \t]*$|\s*[^\w\s]|\s+(?:is|was|wins|won|has|does|did|performs|provides)\b)"
_WHO = r"(?:(?:the\s+)?(?:assistant|answer|response|model|option)\s*)?"
_MARKER = (
    r"\b(?:(?:final|my|overall|the)\s+)?"
    r"(?:verdict|decision|judge?ment|winner|choice|better\s+(?:answer|response|solution|assistant))"
    r"(?:\s*(?::|=|-+|–|—)\s*|\s+(?:is|would\s+be|goes\s+to)\s*:?\s*)(?:that\s+)?"
)
_TIE_WORDS = r"(?:tie|draw)\b"
_EQUALLY_GOOD = r"equally\s+(?:good|correct|helpful|valid|strong|effective)\b"
_BOTH_EQUAL = (
    r"\bboth\b(?:\s+(?:assistants|answers|responses|solutions|of\s+them))?"
    r"(?:\s+(?:are|were|seem|look|appear)(?:\s+to\s+be)?)?\s+" + _EQUALLY_GOOD
)


def _stated_value(opening: str) -> str:
    """What a stated verdict says after its marker: "tie", "both are equally good",
    "Assistant B"; `opening`: the characters allowed before the letter."""
    return (
        r"(?:(?:it'?s\s+|it\s+is\s+)?(?:a\s+)?(?P<tie>"
        + _TIE_WORDS
        + r")|(?P<both>both\b[^.\n]{0,60}?"
        + _EQUALLY_GOOD
        + r")|"
        + _WHO
        + opening
        + r"*\s*(?P<letter>[abc])"
        + _LETTER_END
        + r")"
    )



# Explicit verdict statements; the last one in the text wins.
_STATED_VERDICT = re.compile(_MARKER + _stated_value(r"""["'(\[]"""), re.IGNORECASE | re.MULTILINE)
_STATED_TIE = re.compile(
    r"\b(?:it'?s|it\s+is|this\s+is|that'?s|that\s+is|we\s+have|declare|call\s+it|ends\s+in"
    r"|(?:consider|call|rate|judge)\s+(?:this|it)(?:\s+as)?)\s+a\s+" + _TIE_WORDS,
    re.IGNORECASE,
)
# A last line that holds nothing but a verdict: "A", "[b]", "Tie.", "Assistant B", "Answer: A".
_BARE_LINE = re.compile(
    r"^\W*(?:(?:final\s+)?(?:assistant|answer|response|verdict|winner|decision)\W*)?"
    r"(a|b|c|tie|draw)\W*$",
    re.IGNORECASE,
)

_ADVERBS = (
    r"(?:(?:clearly|slightly|much|far|significantly|overall|definitely|marginally|somewhat"
    r"|also|a\s+bit|the)\s+)*"
)
_BETTER = (
    r"(?:better|superior|preferable|preferred|stronger|winner|clear\s+winner"
    r"|more\s+(?:correct|helpful|accurate|complete))\b"
)
_ANSWER_NOUN = r"(?:'s\s+(?:answer|response|solution|code|implementation))?"
# Comparative statements; they count only when all of them agree.
_COMPARISONS: tuple[re.Pattern[str], ...] = (
    re.compile(
        r"\b(?:assistant|answer|response|solution|option)\s+(?P<letter>[ab])"
        + _ANSWER_NOUN
        + r"\s+(?:is|was|seems|appears)(?:\s+to\s+be)?\s+"
        + _ADVERBS
        + _BETTER,
        re.IGNORECASE,
    ),
    re.compile(
        r"\b(?:assistant|answer|response)\s+(?P<letter>[ab])"
        + _ANSWER_NOUN
        + r"\s+(?:wins|won|outperforms|performs\s+better|did\s+better|does\s+better)\b",
        re.IGNORECASE,
    ),
    # A bare capital letter: "Overall, B is better." (lower case "a is better" is prose or code).
    re.compile(
        r"(?<![\w'])(?P<letter>(?-i:[AB]))" + _ANSWER_NOUN + r"\s+is\s+" + _ADVERBS + _BETTER,
        re.IGNORECASE,
    ),
    re.compile(r"\bprefer\s+(?:assistant|answer|response)\s+(?P<letter>[ab])\b", re.IGNORECASE),
    re.compile(_BOTH_EQUAL, re.IGNORECASE),
    re.compile(r"\bthey\s+are\s+" + _EQUALLY_GOOD, re.IGNORECASE),
)

# A statement in a conditional or negated clause is no verdict: "I don't think Assistant B is
# better" (rules 2 and 3 of parse_verdict).
_CLAUSE_BREAK = re.compile(r"[.!?\n;,]")
_HEDGE = re.compile(
    r"\b(?:if|whether|unless|not|never|neither|nor|cannot)\b|n't\b|\bhard\s+to\s+say\b",
    re.IGNORECASE,
)

# --- Which verdict mentions count ------------------------------------------------------------
# A verdict token counts unless its clause says it is not the decision. The clause before a
# token runs back to the nearest break: punctuation, a dash, an adversative ("but", "however"),
# or the previous verdict token ("[[B]] rather than [[A]]").
_SCOPE_BREAK = re.compile(
    r"[.!?;:,()\n—–]|\s-\s|\b(?:but|however|yet|so|thus|hence|therefore|actually|overall"
    r"|ultimately|still|nevertheless|nonetheless)\b",
    re.IGNORECASE,
)
_BEFORE_NEGATED = re.compile(
    r"\b(?:not|never|nor|neither|cannot|rather\s+than|instead\s+of|other\s+than|over|than"
    r"|against|beats?|defeats?|outperforms?|outranks?|versus|vs|except|excluding)\b|n't\b",
    re.IGNORECASE,
)
_BEFORE_CONCEDED = re.compile(
    r"\b(?:although|though|while|whilst|whereas|despite|albeit|granted|admittedly|initially"
    r"|originally|earlier|previously|at\s+first|first\s+(?:thought|instinct|impression)"
    r"|i\s+thought|leaned|leaning|tempted|torn\s+between|was\s+going\s+to|almost|nearly"
    r"|close\s+to)\b",
    re.IGNORECASE,
)
_BEFORE_CONDITIONAL = re.compile(
    r"\b(?:if|unless|otherwise|whether|suppose|supposing|assuming|hypothetically"
    r"|would\s+have|could\s+have|might\s+have|should\s+have|would've|could've|might've"
    r"|should've|example|e\.g|for\s+instance|such\s+as)\b",
    re.IGNORECASE,
)
# An example on the same line: 'Example output: "My final verdict is tie: [[A=B]]"'.
_EXAMPLE = re.compile(r"\b(?:example|e\.g|for\s+instance)\b", re.IGNORECASE)
# A sentence that opens with a condition makes all of it hypothetical: "If A handled None, it
# would be [[A]]" (an adversative restarts the sentence: "..., but [[B]]").
_SENTENCE_BREAK = re.compile(r"[.!?\n(;]")
_ADVERSATIVE = re.compile(
    r"\b(?:but|however|yet|still|nevertheless|nonetheless|as\s+it\s+is|in\s+reality)\b",
    re.IGNORECASE,
)
_OPENS_CONDITION = re.compile(
    r"[\W_]*(?:(?:and|so|then|only)\s+)?(?:if|unless|suppose|supposing|assuming|in\s+case"
    r"|had\s+(?:it|they|the|a|b|assistant|answer|either|both)|were\s+(?:it|they|the|both|either"
    r"|assistant|answer|i|we|one))\b",
    re.IGNORECASE,
)
# Idioms that look conditional but state a decision: "If I had to choose, [[B]]".
_FORCED_CHOICE = re.compile(
    r"\b(?:if|when)\s+(?:i|we|one)\s+(?:had|have|has|must|need|needed|were|am|are)\s+"
    r"(?:forced\s+)?to\s+(?:choose|pick|decide|select|name|declare)\b(?:\s+one)?"
    r"|\bif\s+forced(?:\s+to\s+(?:choose|pick|decide))?\b|\bif\s+anything\b"
    r"|\bif\s+i\s+must\b|\bif\s+i\s+(?:am|'m)\s+honest\b"
    # Rhetorical: "If we look at correctness, [[B]] is better."
    r"|\bif\s+(?:we|you|one|i)\s+(?:look|focus|consider|compare|judge|weigh|go|take|count"
    r"|prioriti[sz]e)\b",
    re.IGNORECASE,
)
# What follows a token and takes it back: the format explained ("[[A]] if assistant A is
# better", "[[C]] for a tie"), a concession ("[[A]] was close", "[[A]] is a close second"), a
# negation ("[[A]] is not ...", "[[A]] loses") or a counterfactual ("[[A]] would have won").
_AFTER_DISCOUNT = re.compile(
    r"""[ \t"'*)\]]*(?:
      (?:if|when|means|indicates|denotes|represents|stands\s+for|for\s+(?:a\s+)?(?:tie|draw))\b
      | = | -> | →
      | (?:(?:is|was|were|came|comes|looked|looks|seemed|seems|being|ranks|ranked|finished)\s+)?
        (?:(?:also|very|quite|a|an|pretty|really|fairly|extremely|so|too|rather|strong|close)\s+)*
        (?:close|near|nearly|almost|runner[-\s]?up|second|contender|tempting|considered
           |competitive|not\s+far\s+behind|behind)\b
      | was\s+(?:my\s+)?(?:first|initial|original)\b | (?:initially|originally|at\s+first)\b
      | (?:is|was|are|were)\s+(?:(?:much|far|clearly|slightly|significantly|even|also|a\s+bit)\s+)*
        (?:not|never|no\s+longer|wrong|incorrect|worse|weaker|inferior|buggy|broken)\b
      | (?:isn't|wasn't|aren't|doesn't|does\s+not|didn't|did\s+not|can't|cannot|loses|lost
         |fails|failed|falls\s+short|crashes|crashed)\b
      | (?:would|could|might|should)(?:\s+have|'ve)\b | (?:unless|otherwise)\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)

# A verdict taken back by what follows it: "[[A]]? No. [[B]]", "[[A]]... no wait, [[B]]",
# "[[A]]. Actually, [[B]].", "[[A]], or rather [[B]]", "[[A]]. Scratch that: [[B]]". It only
# takes the mention back when a corrected verdict follows (see _is_correction).
_RETRACTION = re.compile(
    r"""[ \t"'*)\]]*(?:[.,;:!?…—–(-]+[ \t]*|\n+[ \t]*)*
      (?:(?:hmm+|well|oh|um+|uh+|ah)\b[\s,.!…]*)?(?:
      no\s*(?:[,.!;:—–-]|…|wait\b|actually\b|sorry\b|i\s+mean\b|make\s+that\b)
      | nope\b | wait\b | actually\b | scratch\s+that\b | strike\s+that\b | correction\b
      | sorry\b | oops\b | i\s+mean\b | make\s+that\b | (?:or\s+)?rather\b
      | on\s+second\s+thought\b | i\s+take\s+(?:that|it)\s+back\b
      | let\s+me\s+(?:correct|reconsider|rephrase)\b
    )""",
    re.IGNORECASE | re.VERBOSE,
)
# How far after the retraction its correction may start.
_CORRECTION_WINDOW = 120
# A correction ends its sentence or says that side is better: "Actually, [[B]].", "No, [[B]]
# is better"; "Actually, [[B]] also has a bug" corrects nothing.
_CORRECTION_END = re.compile(
    r"""[ \t"'*)\]]*(?:[.!;]|\n|$|\s+wins\b|\s+(?:is|was)\s+(?:\w+\s+)?(?:better|superior
    |preferable|stronger|the\s+winner)\b)""",
    re.IGNORECASE | re.VERBOSE,
)


def _retraction_end(text: str, token: _Token) -> int | None:
    """Where a retraction right after `token` ends ("? No.", "... no wait,"), or None."""
    found = _RETRACTION.match(text, token.end)
    return found.end() if found else None


def _is_correction(text: str, retraction_end: int, token: _Token) -> bool:
    """True when `token` corrects a verdict whose retraction ended at `retraction_end`."""
    return (
        0 <= token.start - retraction_end <= _CORRECTION_WINDOW
        and _CORRECTION_END.match(text, token.end) is not None
    )


# --- Final statements ------------------------------------------------------------------------
# "My final verdict is ...", "Verdict: ...", "Decision - ...", "In conclusion, ...", "## Verdict".
_FINAL_MARKER = re.compile(
    r"\b(?:final(?:\s+|-)(?:verdict|decision|judge?ment|ruling|call|choice|pick|assessment"
    r"|evaluation|rating|result|conclusion|answer)|final(?=[ \t]*[:=\-–—])"
    r"|(?:my|our)\s+(?:overall\s+)?(?:verdict|decision|judge?ment|ruling|conclusion|choice|pick"
    r"|call|assessment|rating)"
    r"|(?:verdict|decision|judge?ment|ruling|conclusion|winner)"
    r"(?=[ \t]*(?:[:=\-–—]|->|→|$)|\s+(?:is|would\s+be|goes\s+to)\b)"
    r"|in\s+conclusion|to\s+conclude|in\s+summary|to\s+sum\s+up|all\s+things\s+considered"
    r"|on\s+balance)\b",
    re.IGNORECASE | re.MULTILINE,
)
# A marker inside an instruction or an example is no statement: "Output your final verdict by
# following this format", 'Example output: "My final verdict is tie: [[A=B]]"'.
_MARKER_IN_INSTRUCTION = re.compile(
    r"(?:\byour\s+(?:overall\s+)?$|\b(?:example|e\.g|for\s+instance|format|template|such\s+as)"
    r"\b[^.!?\n]*$)",
    re.IGNORECASE,
)
_MARKER_FOLLOWED_BY_INSTRUCTION = re.compile(
    r"\s+(?:by|using|should|must|has\s+to|needs\s+to|format|in\s+(?:the|this|a)\s+format"
    r"|will\s+be\s+(?:one|in))\b",
    re.IGNORECASE,
)
_STATED_AFTER_MARKER = re.compile(
    # Brackets are read as brackets, not as a stated letter ("[[B<<A]]" is no "B").
    r"[\s:=\-–—>→]*(?:(?:is|was|would\s+be|goes\s+to)\b[\s:]*)?(?:that\s+)?"
    + _stated_value(r"""["'(]"""),
    re.IGNORECASE,
)
# What may stand between a marker and the end of its line when the verdict is on the next
# line: "## Final Verdict", "My final verdict is:", "Verdict as follows:".
_EMPTY_LEAD = re.compile(
    r"(?:[\W_]|\b(?:is|are|as\s+follows|would\s+be|goes\s+to|below|here)\b)*", re.IGNORECASE
)
# A statement ends with its sentence: at . ! ? before a word that does not start in lower case
# ("[[A]]... or maybe [[B]]" is one sentence), at a semicolon, or at a line break.
_SENTENCE_END = re.compile(r"[.!?](?=\s*$|\s+[^a-z\s])|;|\n")


@dataclass(frozen=True)
class _Token:
    """One verdict mention: a bracket, a label or a stated verdict."""

    start: int
    end: int
    verdict: Verdict
    # "strong" (A>>B), "weak" (A>B) or "" (a plain [[A]], [[A=B]], or a stated verdict).
    strength: str
    text: str


@dataclass(frozen=True)
class _Candidate:
    position: int
    verdict: Verdict


def _strip_code(text: str) -> str:
    """Drop fenced code blocks, except a fence that holds nothing but a verdict."""

    def keep_if_verdict(match: re.Match[str]) -> str:
        body = match.group(1).strip()
        return body if _BARE_LINE.match(body) or _DOUBLE_BRACKET.fullmatch(body) else "\n"

    return _CODE_FENCE.sub(keep_if_verdict, text)


def _label_value(left: str, relation: str, right: str) -> tuple[Verdict, str] | None:
    """(verdict, strength) of a label; None for a label that compares a side with itself."""
    left, right = left.lower(), right.lower()
    if left == right:
        return None
    if relation in ("=", "=="):
        return VERDICT_TIE, ""
    winner = left if relation in (">", ">>", "≫") else right
    strength = "strong" if relation in (">>", "<<", "≫", "≪") else "weak"
    return _TOKEN_VERDICT[winner], strength


def _bracket_tokens(text: str, pattern: re.Pattern[str]) -> list[_Token]:
    tokens = []
    for m in pattern.finditer(text):
        if m.group(1):
            value: tuple[Verdict, str] | None = (_TOKEN_VERDICT[m.group(1).lower()], "")
        else:
            value = _label_value(m.group(2), m.group(3), m.group(4))
        if value is not None:
            tokens.append(_Token(m.start(), m.end(), value[0], value[1], m.group(0)))
    return tokens


_LOOKBACK = 400
_NON_SPACE = re.compile(r"\S")


def _between(tokens: Sequence[_Token], start: int, end: int) -> list[_Token]:
    """The tokens (sorted by position) that start in [start, end)."""
    low = bisect.bisect_left(tokens, start, key=lambda t: t.start)
    high = bisect.bisect_left(tokens, end, key=lambda t: t.start)
    return list(tokens[low:high])


def _discount(text: str, token: _Token, floor: int, previous_end: int) -> str | None:
    """Why a verdict mention is not the decision ('negated', 'conceded', 'conditional',
    'format'), or None when it counts. `floor`: where the text under analysis starts;
    `previous_end`: where the previous verdict mention ended."""
    start = token.start
    # Clauses and sentences are looked at no further back than _LOOKBACK characters, which keeps
    # a long degenerate answer ("[[A]] [[A]] ..." thousands of times) linear.
    floor = max(floor, start - _LOOKBACK)
    clause_start = max(floor, previous_end)
    for brk in _SCOPE_BREAK.finditer(text, clause_start, start):
        clause_start = brk.end()
    clause = text[clause_start:start]
    if _BEFORE_NEGATED.search(clause):
        return "negated"
    if _BEFORE_CONCEDED.search(clause):
        return "conceded"
    if _BEFORE_CONDITIONAL.search(clause) or _EXAMPLE.search(
        text, max(floor, text.rfind("\n", floor, start) + 1), start
    ):
        return "conditional"
    sentence_start = floor
    for brk in _SENTENCE_BREAK.finditer(text, floor, start):
        sentence_start = brk.end()
    for brk in _ADVERSATIVE.finditer(text, sentence_start, start):
        sentence_start = brk.end()
    if _OPENS_CONDITION.match(text[sentence_start:start]):
        return "conditional"
    if _AFTER_DISCOUNT.match(text, token.end):
        return "discounted by what follows"
    return None


def _counted(text: str, tokens: Sequence[_Token], floor: int = 0) -> list[_Token]:
    """The tokens (sorted by position) that count as decisions; a mention that is taken back
    and corrected by the next one ("[[A]]? No. [[B]]") does not count."""
    counts = []
    previous_end = floor
    for token in tokens:
        counts.append(_discount(text, token, floor, previous_end) is None)
        previous_end = token.end
    for i in range(len(tokens) - 1):
        end = _retraction_end(text, tokens[i]) if counts[i] else None
        if end is not None and counts[i + 1] and _is_correction(text, end, tokens[i + 1]):
            counts[i] = False
    return [token for token, counts_ in zip(tokens, counts, strict=True) if counts_]


def _ends_line(text: str, token: _Token) -> bool:
    return _LINE_END.match(text, token.end) is not None


def _without_lists(text: str, tokens: Sequence[_Token]) -> list[_Token]:
    """Drop lists of different verdicts, the format's options rather than a decision: runs
    that stand next to each other ('"[[A]]", "[[B]]", or "[[C]]"'; a run ends after its "or" /
    "and" item, so in "[[A]] and [[B]], [[B]] is better" the last mention stands alone), and
    runs of three or more different ones that end consecutive lines ("1. Assistant A is
    significantly better: [[A>>B]]" ...)."""
    groups: list[list[_Token]] = []
    closed = False  # the last group's run already had its "or"/"and" item
    for token in tokens:
        previous = groups[-1][-1] if groups else None
        gap = _LIST_GAP.fullmatch(text, previous.end, token.start) if previous else None
        if previous is not None and gap is not None and not closed:
            groups[-1].append(token)
            closed = _CONJUNCTION.search(gap.group(0)) is not None
        elif (
            previous is not None
            and _ends_line(text, previous)
            and _ends_line(text, token)
            and text.count("\n", previous.end, token.start) == 1
        ):
            groups[-1].append(token)
        else:
            groups.append([token])
            closed = False
    kept = []
    for group in groups:
        # Options are all different; a judge's per-criterion lines repeat themselves.
        values = [(t.verdict, t.strength) for t in group]
        lines = len(set(values)) == len(values) >= 3 and all(_ends_line(text, t) for t in group)
        adjacent = all(
            _LIST_GAP.fullmatch(text, a.end, b.start) for a, b in itertools.pairwise(group)
        )
        if len(set(values)) > 1 and (adjacent or lines):
            continue
        kept.extend(group)
    return kept


def _is_hedged(text: str, start: int) -> bool:
    """True when the clause before `start` makes the statement conditional or negated."""
    window = max(0, start - _LOOKBACK)
    breaks = [m.end() for m in _CLAUSE_BREAK.finditer(text, window, start)]
    clause = text[breaks[-1] if breaks else window : start]
    return _HEDGE.search(clause) is not None


_LABEL_TAIL = re.compile(r"\s*" + _RELATION + r"\s*(?:assistant\s+)?[ab]\b", re.IGNORECASE)


def _label_tail_end(text: str, pos: int) -> int:
    """Where a label that a stated letter starts ends ("A" + ">>B"), or `pos` without one."""
    tail = _LABEL_TAIL.match(text, pos)
    return tail.end() if tail else pos


def _stated_candidates(text: str) -> list[_Candidate]:
    """Explicit statements: "Final verdict: A", "The winner is B", "It's a tie", last line "A"."""
    candidates: list[_Candidate] = []
    for match in _STATED_VERDICT.finditer(text):
        if (
            _is_hedged(text, match.start())
            or _MARKER_IN_INSTRUCTION.search(
                text, max(0, text.rfind("\n", 0, match.start()) + 1), match.start()
            )
            # A format explained: 'verdict is "A" if A is better', 'verdict is "A>B" if ...'.
            or _AFTER_DISCOUNT.match(text, _label_tail_end(text, match.end()))
        ):
            continue
        if match.group("letter"):
            verdict = _TOKEN_VERDICT[match.group("letter").lower()]
        else:
            verdict = VERDICT_TIE
        candidates.append(_Candidate(match.start(), verdict))
    for match in _STATED_TIE.finditer(text):
        if not _is_hedged(text, match.start()):
            candidates.append(_Candidate(match.start(), VERDICT_TIE))
    lines = text.rstrip().splitlines()
    if lines:
        bare = _BARE_LINE.match(lines[-1])
        if bare:
            candidates.append(_Candidate(len(text), _TOKEN_VERDICT[bare.group(1).lower()]))
    return candidates


def _comparison_verdicts(text: str) -> set[Verdict]:
    """Verdicts of comparative statements ("Assistant A is better", "both are equally good")."""
    verdicts: set[Verdict] = set()
    for pattern in _COMPARISONS:
        for match in pattern.finditer(text):
            if _is_hedged(text, match.start()):
                continue
            letter = match.groupdict().get("letter")
            verdicts.add(_TOKEN_VERDICT[letter.lower()] if letter else VERDICT_TIE)
    return verdicts


def _statement_end(text: str, start: int, tokens: Sequence[_Token]) -> int:
    """Where the final statement that starts at `start` ends: the end of its sentence, or of
    the next non-empty line when the marker stands alone ("## Verdict" / "Final verdict:")."""
    found = _SENTENCE_END.search(text, start)
    end = found.end() if found else len(text)
    if _between(tokens, start, end) or not _EMPTY_LEAD.fullmatch(text, start, end):
        return end
    next_line = _NON_SPACE.search(text, end)
    if next_line is None:
        return len(text)
    found = _SENTENCE_END.search(text, next_line.start())
    return found.end() if found else len(text)


def _statement_tokens(text: str, marker: re.Match[str], tokens: Sequence[_Token]) -> list[_Token]:
    """Verdict mentions in the final statement that starts at `marker`, in order. A statement
    whose last mention is taken back runs on to the sentence of its correction ("Final
    verdict: [[A]]. Actually, [[B]].")."""
    end = _statement_end(text, marker.end(), tokens)
    while True:
        inside = _between(tokens, marker.start(), end)
        retraction = _retraction_end(text, inside[-1]) if inside else None
        after = _between(tokens, end, len(text))[:1] if retraction is not None else []
        if retraction is None or not after or not _is_correction(text, retraction, after[0]):
            break
        found_end = _SENTENCE_END.search(text, after[0].end)
        end = found_end.end() if found_end else len(text)
    found = _between(tokens, marker.start(), end)
    for m in _BARE_LABEL.finditer(text, marker.end(), end):
        value = _label_value(m.group(1), m.group(2), m.group(3))
        if value is not None and not any(t.start <= m.start() < t.end for t in found):
            found.append(_Token(m.start(), m.end(), value[0], value[1], m.group(0)))
    stated = _STATED_AFTER_MARKER.match(text, marker.end())
    # A stated letter that starts a label ("verdict is B>>A") is that label, found above.
    if stated and stated.end() <= end and _label_tail_end(text, stated.end()) == stated.end():
        letter = stated.group("letter")
        verdict = _TOKEN_VERDICT[letter.lower()] if letter else VERDICT_TIE
        found.append(_Token(stated.start(), stated.end(), verdict, "", stated.group(0).strip()))
    return sorted(found, key=lambda t: t.start)


def _qualified(text: str, marker: re.Match[str]) -> bool:
    """True for a verdict on one criterion ("Correctness verdict: [[B]]"), not the overall one:
    a bare marker word right after another word ("final", "overall", "the" do not qualify)."""
    if _EXPLICIT_FINAL.match(marker.group(0)):
        return False
    before = _WORD_BEFORE.search(text, max(0, marker.start() - 40), marker.start())
    return before is not None and before.group(1).lower() not in _NOT_QUALIFIERS


_EXPLICIT_FINAL = re.compile(r"(?:final|my|our|in|to|all|on)\b", re.IGNORECASE)
_WORD_BEFORE = re.compile(r"([A-Za-z]+)[ \t]+$")
_NOT_QUALIFIERS = frozenset(
    {"the", "overall", "and", "so", "thus", "therefore", "hence", "then", "here", "is"}
)


def _final_statement(text: str, tokens: Sequence[_Token]) -> ParsedVerdict | None:
    """The verdict of the final statements, or None without one that names a verdict.

    The last statement decides (the last overall one when there is one: a verdict on one
    criterion does not); conflicting verdicts in it, or another overall final statement that
    disagrees with it ("My final verdict is [[A]]. ... Final verdict: [[B]]"), are INVALID."""
    markers = [
        m
        for m in _FINAL_MARKER.finditer(text)
        if not _MARKER_IN_INSTRUCTION.search(text, max(0, m.start() - 80), m.start())
        and not _MARKER_FOLLOWED_BY_INSTRUCTION.match(text, m.end())
    ]
    statements: list[tuple[bool, list[_Token]]] = []  # (qualified, counted mentions)
    for marker in markers:
        as_token = _Token(marker.start(), marker.end(), VERDICT_INVALID, "", marker.group(0))
        if _discount(text, as_token, 0, 0) not in (None, "discounted by what follows"):
            continue  # "If my final verdict were [[A]] ..." states nothing
        counted = _counted(text, _statement_tokens(text, marker, tokens), marker.start())
        if counted:
            statements.append((_qualified(text, marker), counted))
    if not statements:
        return None
    overall = [counted for qualified, counted in statements if not qualified]
    last = overall[-1] if overall else statements[-1][1]
    if len({t.verdict for t in last}) > 1:
        names = ", ".join(dict.fromkeys(t.text for t in last))
        return ParsedVerdict(
            VERDICT_INVALID, reason=f"conflicting verdicts in the final statement: {names}"
        )
    others = [t for counted in overall for t in counted if t.verdict != last[0].verdict]
    if others:
        names = ", ".join(dict.fromkeys(t.text for t in [*others, last[0]]))
        return ParsedVerdict(VERDICT_INVALID, reason=f"conflicting final statements: {names}")
    # Strong only when some mention says ">>" and none says ">" (a plain [[A]] is neutral).
    strengths = {t.strength for t in last}
    strong = "strong" in strengths and "weak" not in strengths
    return ParsedVerdict(last[0].verdict, strong=strong)


def read_verdict(text: str) -> ParsedVerdict:
    """`parse_verdict` with the verdict's strength and, when it is INVALID, the reason."""
    if not isinstance(text, str):
        raise TypeError(f"parse_verdict: text must be str, got {type(text).__name__}")
    cleaned = _EMPHASIS.sub("", _strip_code(text))
    # Forced-choice idioms ("if I had to choose") are blanked, keeping every position.
    cleaned = _FORCED_CHOICE.sub(lambda m: " " * len(m.group(0)), cleaned)
    if not cleaned.strip():
        return ParsedVerdict(VERDICT_INVALID, reason="the judge's answer is empty")
    doubles = _bracket_tokens(cleaned, _DOUBLE_BRACKET)
    singles = _bracket_tokens(cleaned, _SINGLE_BRACKET)
    brackets = sorted(doubles + singles, key=lambda t: t.start)
    final = _final_statement(cleaned, brackets)
    if final is not None:
        return final
    # A list of options is recognised before any of its items is taken back: in "not sure
    # between [[A]] and [[B]]" the [[B]] is no decision either.
    counted = set(_counted(cleaned, brackets))
    counted_doubles = [t for t in _without_lists(cleaned, doubles) if t in counted]
    if counted_doubles:
        last = counted_doubles[-1]
        return ParsedVerdict(last.verdict, strong=last.strength == "strong")
    counted_singles = [t for t in _without_lists(cleaned, singles) if t in counted]
    candidates = [(t.start, t.verdict, t.strength) for t in counted_singles] + [
        (c.position, c.verdict, "") for c in _stated_candidates(cleaned)
    ]
    if candidates:
        _, verdict, strength = max(candidates, key=lambda c: c[0])
        return ParsedVerdict(verdict, strong=strength == "strong")
    comparisons = _comparison_verdicts(cleaned)
    if len(comparisons) == 1:
        return ParsedVerdict(next(iter(comparisons)))
    if len(comparisons) > 1:
        return ParsedVerdict(VERDICT_INVALID, reason="the judge's comparisons disagree")
    if brackets:
        return ParsedVerdict(
            VERDICT_INVALID,
            reason="no verdict found: every verdict mentioned is negated, conceded, conditional "
            "or one of a list of the format's options",
        )
    return ParsedVerdict(VERDICT_INVALID, reason=NO_VERDICT_REASON)


def parse_verdict(text: str) -> Verdict:
    """Read a judge's verdict from its output; VERDICT_INVALID when it is not clearly stated.

    Fenced code blocks are ignored (code is full of `x[a]`), `*`/backtick emphasis is dropped.

    Verdict mentions:
    - plain brackets: [[A]], [[b]], [[C]] (= tie), [[tie]], [[Assistant B]], and in capitals
      with single brackets [A], [C];
    - Arena-Hard labels, any case and spacing: [[A>>B]], [[A>B]], [[A=B]], [[B>A]], [[B>>A]];
      the same read right to left ([[B<A]] = [[A>B]], [[B<<A]] = [[A>>B]]) and ``≫``/``≪``.
      ">>" is a strong verdict (`read_verdict(...).strong`); [[A=B]] and [[A==B]] are a tie;
      a label comparing a side with itself ([[A>A]]) is no verdict.

    A mention does not count when its clause takes it back (the clause runs back to the nearest
    punctuation, dash, "but"/"however", or the previous mention):
    - negated: "not [[A]]", "[[B]] rather than / over / than [[A]]", "[[A]] is not ...";
    - conceded: "although / while / despite [[A]] ...", "I first thought [[A]]", "[[A]] was
      close", "[[A]] is a close second", "[[A]] was tempting";
    - conditional: "if / unless / otherwise / e.g. ... [[A]]", a sentence that opens with a
      condition ("If A handled None, it would be [[A]]"), "[[A]] would have won", and format
      explanations ('"[[A]]" if assistant A is better', "[[C]] for a tie"). Forced-choice
      idioms ("if I had to choose", "if anything") are not conditions;
    - retracted: a retraction and a correction follow it ("[[A]]? No. [[B]]", "[[A]]... no
      wait, [[B]]", "[[A]]. Actually, [[B]].", "[[A]], or rather [[B]]"); a final statement
      runs on to its correction.

    Then the first rule that finds anything decides:

    0. A final statement: the sentence that starts at a marker ("My final verdict is",
       "Final decision:", "Verdict:", "The winner is", "In conclusion", a "## Verdict" heading
       with the verdict on the next line) decides over mentions anywhere else, before or after.
       Its counted mentions (brackets, labels, unbracketed capitals like "B>A", or a stated
       "Assistant B" / "tie" right after the marker) must all agree: conflicting verdicts
       ("Final verdict: [[A]] or [[B]]") are INVALID, never a guess. The last marker whose
       sentence has a counted mention is the final statement; markers inside instructions or
       examples ("Output your final verdict by ...", 'Example: "My final verdict is ..."') and
       markers whose sentence names only taken-back verdicts are skipped. Another final
       statement that disagrees ("My final verdict is [[A]]. ... Final verdict: [[B]]") makes
       it INVALID too; a verdict on one criterion ("Correctness verdict: [[B]]") does not.
    1. Double brackets and labels, the requested format: the LAST counted one wins (judges
       restate the format before deciding). Runs of different options ('"[[A]]", "[[B]]", or
       "[[C]]"') are the format echoed, not a verdict.
    2. Other explicit statements, the LAST one wins: single brackets in capitals; "Final
       verdict: A", "Verdict: Assistant B", "The winner is B", "My decision: tie", "Verdict:
       both are equally good"; "It's a tie", "I consider this a tie"; a last line that holds
       only a verdict ("A", "[b]", "Tie.", "Assistant B", "Answer: A").
    3. Comparative statements: "Assistant A is better", "Answer B's code is clearly superior",
       "Response A wins", "B is better" (capital letter only), "I prefer Assistant A", "both
       answers are equally good". They count only if they ALL agree.

    Statements in a conditional or negated clause ("I don't think Assistant B is better") are
    skipped in rules 2 and 3. Nothing found gives VERDICT_INVALID: the parser never guesses.
    A verdict is strong only when a counted label says ">>" and none says ">" (a plain [[A]]
    says nothing about the margin). `read_verdict` returns the strength and the reason.
    """
    return read_verdict(text).verdict


# ---------------------------------------------------------------------------------------------
# Constrained verdicts (structured output) and soft votes
# ---------------------------------------------------------------------------------------------

# The verdicts a constrained judge may give; one token each, so the first token's logprobs are
# the verdict's probabilities.
VERDICT_CHOICES: tuple[str, ...] = ("A", "B", "C")
JSON_VERDICT_INSTRUCTION = (
    'Answer with a JSON object: {"explanation": "<your short comparison>", "verdict": "A"} '
    'where verdict is "A" if assistant A is better, "B" if assistant B is better, "C" for a tie.'
)
VERDICT_LETTER_INSTRUCTION = (
    'Reply with one letter only: "A" if assistant A is better, "B" if assistant B is better, '
    '"C" for a tie.'
)
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


# Tokens a constrained JSON answer needs besides its explanation: braces, keys, quotes, verdict.
JSON_VERDICT_OVERHEAD_TOKENS = 32


def explanation_chars(max_tokens: int) -> int:
    """The longest explanation (in characters) that leaves room for the verdict within
    `max_tokens`: a token holds at least one character of plain text, so an explanation of
    max_tokens - JSON_VERDICT_OVERHEAD_TOKENS characters cannot push the verdict past the end."""
    return max(1, max_tokens - JSON_VERDICT_OVERHEAD_TOKENS)


def verdict_json_schema(
    max_explanation_chars: int | None = None, choices: Sequence[str] = VERDICT_CHOICES
) -> dict[str, Any]:
    """JSON schema of a constrained judge answer: the explanation first, then the verdict
    (so the verdict is written after the reasoning, as in explain mode).

    `max_explanation_chars` bounds the explanation (`maxLength`) so that an answer cut at the
    token limit cannot lose its verdict (see `explanation_chars`). `choices`: the verdict's
    enum (VERDICT_CHOICES, or ARENA_HARD_LABELS with judge.labels arena_hard).
    """
    explanation: dict[str, Any] = {"type": "string"}
    if max_explanation_chars is not None:
        if max_explanation_chars < 1:
            raise ValueError(f"max_explanation_chars must be >= 1, got {max_explanation_chars}")
        explanation["maxLength"] = max_explanation_chars
    return {
        "type": "object",
        "properties": {
            "explanation": explanation,
            "verdict": {"type": "string", "enum": list(choices)},
        },
        "required": ["explanation", "verdict"],
        "additionalProperties": False,
    }


def _verdict_value(value: str) -> ParsedVerdict | None:
    """A verdict written as a bare value: "A", " b ", "[[C]]", "tie", "A>>B"."""
    inner = value.strip().strip("[]").strip()
    token = _TOKEN_VERDICT.get(inner.lower())
    if token is not None:
        return ParsedVerdict(token)
    label = re.fullmatch(_LABEL, inner, re.IGNORECASE)
    if label:
        found = _label_value(label.group(1), label.group(2), label.group(3))
        if found is not None:
            return ParsedVerdict(found[0], strong=found[1] == "strong")
    return None


def read_json_verdict(text: str) -> ParsedVerdict:
    """Read a judge answer constrained to JSON {"explanation": ..., "verdict": "A"|"B"|"C"}.

    Tolerant of what servers and models wrap around the object (a ```json fence, text before
    or after it) and of the verdict's case, spacing and brackets ("b", "[[B]]"); a label such
    as "A>>B" is read like `parse_verdict` reads it. Anything else is INVALID with a reason:
    no JSON object, broken JSON, no "verdict" key, or a value that is no verdict.
    """
    if not isinstance(text, str):
        raise TypeError(f"read_json_verdict: text must be str, got {type(text).__name__}")
    found = _JSON_OBJECT.search(text)
    if found is None:
        return ParsedVerdict(VERDICT_INVALID, reason="structured verdict: no JSON object")
    try:
        data = json.loads(found.group(0))
    except json.JSONDecodeError as err:
        return ParsedVerdict(
            VERDICT_INVALID, reason=f"structured verdict: invalid JSON ({err.msg} at {err.pos})"
        )
    if not isinstance(data, dict):
        return ParsedVerdict(VERDICT_INVALID, reason="structured verdict: not a JSON object")
    keys = {str(k).strip().lower(): v for k, v in data.items()}
    if "verdict" not in keys:
        return ParsedVerdict(
            VERDICT_INVALID, reason=f"structured verdict: no 'verdict' key in {sorted(data)}"
        )
    value = keys["verdict"]
    parsed = _verdict_value(value) if isinstance(value, str) else None
    if parsed is None:
        return ParsedVerdict(
            VERDICT_INVALID,
            reason=f"structured verdict: {str(value)[:40]!r} is not one of "
            f"{', '.join(VERDICT_CHOICES)}",
        )
    return parsed


def read_choice_verdict(text: str, choices: Sequence[str] = VERDICT_CHOICES) -> ParsedVerdict:
    """Read a judge answer constrained to one of `choices` ("A", "B", "C", or the five
    Arena-Hard labels).

    Surrounding whitespace and brackets, case and spaces inside a label are tolerated; a
    server that ignored the constraint and wrote prose gives INVALID with a reason (it is not
    guessed from the prose).
    """
    if not isinstance(text, str):
        raise TypeError(f"read_choice_verdict: text must be str, got {type(text).__name__}")
    inner = "".join(text.strip().strip("[]").split()).upper()
    if inner in {c.upper() for c in choices}:
        parsed = _verdict_value(inner)
        if parsed is not None:
            return parsed
    return ParsedVerdict(
        VERDICT_INVALID,
        reason=f"constrained verdict {text[:40]!r} is not one of {', '.join(choices)}",
    )


def read_judge_answer(
    text: str,
    structured_output: str = "none",
    verdict_mode: str = "explain",
    labels: str = "abc",
) -> ParsedVerdict:
    """The verdict of a judge's answer, read the way it was asked for (judge settings).

    structured_output "json_schema": `read_json_verdict`; "choice"/"guided_choice" in explain
    mode (a chat answer of one choice of judge.labels): `read_choice_verdict`; otherwise, and
    in prefill mode (whose text is already "[[" + completion + "]]"): `read_verdict`.
    """
    if structured_output == "json_schema":
        return read_json_verdict(text)
    if structured_output in ("choice", "guided_choice") and verdict_mode == "explain":
        return read_choice_verdict(text, verdict_format(labels).choices)
    return read_verdict(text)


def _bare_token(token: str) -> str:
    return token.strip().strip("[]").strip().lower()


def verdict_probabilities(
    top_logprobs: Sequence[Sequence[tuple[str, float]]],
) -> tuple[float, float, float] | None:
    """(P(A), P(B), P(tie)) of the verdict token, normalised over the three, from the top
    logprobs of the first generated tokens (one list of (token, logprob) per position).

    The verdict token is the first position whose most likely token is more than whitespace
    and brackets (a server may emit " " or "[[" first). Tokens read as A, B and C/tie after
    stripping whitespace and brackets ("A", " B", "C]]"); their probabilities add up. None
    when the most likely token there is no verdict (the judge was about to write something
    else, so the verdict's probabilities say nothing).
    """
    letters = {"a": VERDICT_A, "b": VERDICT_B, "c": VERDICT_TIE}
    for position in top_logprobs:
        if not position:
            continue
        best = _bare_token(max(position, key=lambda alt: alt[1])[0])
        if not best:
            continue
        if best not in letters:
            return None
        mass = {VERDICT_A: 0.0, VERDICT_B: 0.0, VERDICT_TIE: 0.0}
        for token, logprob in position:
            verdict = letters.get(_bare_token(token))
            if verdict is not None and math.isfinite(logprob):
                mass[verdict] += math.exp(min(logprob, 0.0))
        total = sum(mass.values())
        if total <= 0.0:
            return None
        return mass[VERDICT_A] / total, mass[VERDICT_B] / total, mass[VERDICT_TIE] / total
    return None


# ---------------------------------------------------------------------------------------------
# Orders and votes
# ---------------------------------------------------------------------------------------------

_KNOWN_VERDICTS = (VERDICT_A, VERDICT_B, VERDICT_TIE, VERDICT_INVALID)


def _check_verdict(verdict: Verdict, what: str) -> None:
    if verdict not in _KNOWN_VERDICTS:
        raise ValueError(f"{what}: expected VERDICT_A/B/TIE/INVALID, got {_verdict_name(verdict)}")


def _verdict_name(verdict: int) -> str:
    try:
        return str(arena_pb2.Verdict.Name(verdict))
    except ValueError:
        return str(verdict)


def _order_name(order: int) -> str:
    try:
        return str(arena_pb2.Order.Name(order))
    except ValueError:
        return str(order)


def unswap(position_verdict: Verdict, order: Order) -> Verdict:
    """Turn a position verdict (A = shown first) into a battle verdict (A = model_a).

    ORDER_AB showed model_a first: unchanged. ORDER_BA showed model_b first: A and B swap.
    TIE and INVALID are unchanged in both orders. ORDER_UNSPECIFIED and VERDICT_UNSPECIFIED
    are ValueErrors: an order nobody set cannot be un-swapped.
    """
    _check_verdict(position_verdict, "unswap position_verdict")
    if order == ORDER_AB:
        return position_verdict
    if order == ORDER_BA:
        return {VERDICT_A: VERDICT_B, VERDICT_B: VERDICT_A}.get(position_verdict, position_verdict)
    raise ValueError(f"unswap: order must be ORDER_AB or ORDER_BA, got {_order_name(order)}")


def combine_orders(verdict_ab: Verdict, verdict_ba: Verdict) -> Verdict:
    """Combine one judge's two battle verdicts (both already un-swapped) into its vote.

    A judge must pick the same answer in both orders to vote for it; anything else is a TIE,
    and an unreadable order voids the vote (it is never filled in from the other order):

        ORDER_AB \\ ORDER_BA   A        B        TIE      INVALID
        A                     A        TIE      TIE      INVALID
        B                     TIE      B        TIE      INVALID
        TIE                   TIE      TIE      TIE      INVALID
        INVALID               INVALID  INVALID  INVALID  INVALID

    An INVALID vote is counted but excluded from the local score.
    """
    _check_verdict(verdict_ab, "combine_orders verdict_ab")
    _check_verdict(verdict_ba, "combine_orders verdict_ba")
    if VERDICT_INVALID in (verdict_ab, verdict_ba):
        return VERDICT_INVALID
    if verdict_ab == verdict_ba:
        return verdict_ab
    return VERDICT_TIE


def judgment_battle_verdict(judgment: Judgment) -> Verdict:
    """The battle verdict (A = model_a) of one judgment, from its position verdict and order.

    `position_verdict` (what the judge wrote) is the source of truth, not the stored `verdict`
    field. A judgment with an `error`, or whose position verdict was never set, is INVALID.
    """
    if judgment.order not in (ORDER_AB, ORDER_BA):
        raise ValueError(
            f"judgment {judgment.judgment_id!r} of judge {judgment.judge!r}: order must be "
            f"ORDER_AB or ORDER_BA, got {_order_name(judgment.order)}"
        )
    if judgment.error or judgment.position_verdict == arena_pb2.VERDICT_UNSPECIFIED:
        return VERDICT_INVALID
    return unswap(judgment.position_verdict, judgment.order)


def latest_judgments(judgments: Iterable[Judgment]) -> dict[tuple[str, int], Judgment]:
    """The latest attempt per (judge, order): highest `attempts`, later in the input on a tie."""
    latest: dict[tuple[str, int], Judgment] = {}
    for judgment in judgments:
        if not judgment.judge:
            raise ValueError(f"judgment {judgment.judgment_id!r} has no judge")
        judgment_battle_verdict(judgment)  # validates the order
        key = (judgment.judge, judgment.order)
        if key not in latest or judgment.attempts >= latest[key].attempts:
            latest[key] = judgment
    return latest


def _check_strong_weight(strong_weight: float) -> None:
    if (
        isinstance(strong_weight, bool)
        or not isinstance(strong_weight, int | float)
        or not math.isfinite(strong_weight)
        or strong_weight < 1.0
    ):
        raise ValueError(f"strong_weight must be a finite number >= 1, got {strong_weight!r}")


def _battle_probabilities(judgment: Judgment) -> tuple[float, float]:
    """(P(model_a), P(model_b)) of a judgment's verdict token, from its position-term `soft`."""
    soft = judgment.soft
    values = (soft.a, soft.b, soft.tie)
    if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in values) or sum(values) > 1.0 + 1e-6:
        raise ValueError(
            f"judgment {judgment.judgment_id!r} of judge {judgment.judge!r}: soft probabilities "
            f"must lie in [0, 1] and sum to at most 1, got {values}"
        )
    return (soft.a, soft.b) if judgment.order == ORDER_AB else (soft.b, soft.a)


def soft_margin(first: Judgment, second: Judgment, verdict: Verdict) -> float | None:
    """How sure a judge was of its decisive vote, from the verdict tokens' probabilities.

    The mean over its two judgments of P(chosen) - P(other), both in battle terms (chosen =
    the answer the vote is for), clamped at 0; in [0, 1]. None unless both judgments carry
    soft probabilities or when the vote is not A or B.
    """
    if verdict not in (VERDICT_A, VERDICT_B):
        return None
    if not (first.HasField("soft") and second.HasField("soft")):
        return None
    margins = []
    for judgment in (first, second):
        p_a, p_b = _battle_probabilities(judgment)
        margins.append(p_a - p_b if verdict == VERDICT_A else p_b - p_a)
    return max(0.0, sum(margins) / 2)


def _vote_of(
    latest: dict[tuple[str, int], Judgment], judge: str, strong_weight: float = 1.0
) -> Vote:
    first, second = latest.get((judge, ORDER_AB)), latest.get((judge, ORDER_BA))
    if first is None or second is None:
        # A missing order is never filled in from the other one.
        return Vote(judge=judge, verdict=VERDICT_INVALID, weight=0.0)
    verdict = combine_orders(judgment_battle_verdict(first), judgment_battle_verdict(second))
    if verdict not in (VERDICT_A, VERDICT_B):
        return Vote(judge=judge, verdict=verdict, weight=0.0)
    strong = first.strong and second.strong
    weight = strong_weight if strong else 1.0
    margin = soft_margin(first, second, verdict)
    if margin is not None:
        weight *= margin
    return Vote(judge=judge, verdict=verdict, strong=strong, weight=weight)


def judge_votes(judgments: Sequence[Judgment], *, strong_weight: float = 1.0) -> list[Vote]:
    """One vote per judge of one battle, sorted by judge id.

    Each judge's vote combines its latest ORDER_AB and ORDER_BA judgments (`combine_orders`);
    a judge with either order missing votes INVALID. All judgments must belong to one battle.

    A decisive vote (A or B) is strong when both judgments were strong verdicts (Arena-Hard
    ">>" labels) for the same answer. Its weight in the local score is `strong_weight` (>= 1)
    when strong, else 1, multiplied by `soft_margin` when both judgments carry soft
    probabilities. Ties and invalid votes weigh 0.
    """
    _check_strong_weight(strong_weight)
    battle_ids = {j.battle_id for j in judgments}
    if len(battle_ids) > 1:
        raise ValueError(f"judge_votes: judgments of several battles: {sorted(battle_ids)}")
    latest = latest_judgments(judgments)
    judges = sorted({judge for judge, _ in latest})
    return [_vote_of(latest, judge, strong_weight) for judge in judges]


class VoteCounts(NamedTuple):
    """How the votes of one battle split."""

    votes_a: int
    votes_b: int
    ties: int
    invalid: int


def local_score(votes: Iterable[Vote]) -> tuple[float, VoteCounts]:
    """Return x(A>B) = W_a / (W_a + W_b) and the vote counts.

    W_a is the summed weight of the votes for A (a vote without a weight counts 1; see
    `judge_votes` for strong and soft weights), W_b likewise: with every weight 1 this is
    votes_a / (votes_a + votes_b). Ties and invalid votes are counted but excluded from the
    score; 0.5 when no decisive vote has weight. The counts are plain vote counts.
    """
    tally = {VERDICT_A: 0, VERDICT_B: 0, VERDICT_TIE: 0, VERDICT_INVALID: 0}
    weights = {VERDICT_A: 0.0, VERDICT_B: 0.0}
    for vote in votes:
        _check_verdict(vote.verdict, f"local_score vote of judge {vote.judge!r}")
        tally[vote.verdict] += 1
        if vote.verdict in weights:
            weight = vote.weight if vote.HasField("weight") else 1.0
            if not (math.isfinite(weight) and weight >= 0.0):
                raise ValueError(
                    f"local_score vote of judge {vote.judge!r}: weight must be a finite "
                    f"number >= 0, got {weight!r}"
                )
            weights[vote.verdict] += weight
    counts = VoteCounts(
        tally[VERDICT_A], tally[VERDICT_B], tally[VERDICT_TIE], tally[VERDICT_INVALID]
    )
    decisive = weights[VERDICT_A] + weights[VERDICT_B]
    return (weights[VERDICT_A] / decisive if decisive > 0 else 0.5), counts


# ---------------------------------------------------------------------------------------------
# Battles
# ---------------------------------------------------------------------------------------------


def _check_pair(pair: ResponsePair, judgments: Sequence[Judgment]) -> None:
    """Raise ValueError when the pair or its judgments do not fit together."""
    where = f"battle {pair.battle_id!r}"
    if not pair.model_a or not pair.model_b:
        raise ValueError(f"{where}: model_a and model_b must be set")
    if pair.model_a == pair.model_b:
        raise ValueError(f"{where}: model_a and model_b are both {pair.model_a!r}")
    for side, model, response in (
        ("response_a", pair.model_a, pair.response_a),
        ("response_b", pair.model_b, pair.response_b),
    ):
        if response.model_id and response.model_id != model:
            raise ValueError(f"{where}: {side} is by {response.model_id!r}, expected {model!r}")
    contestants = {pair.model_a, pair.model_b}
    listed = set(pair.judges)
    if listed & contestants:
        raise ValueError(f"{where}: judges include a contestant: {sorted(listed & contestants)}")
    for judgment in judgments:
        if judgment.battle_id != pair.battle_id:
            raise ValueError(
                f"{where}: judgment {judgment.judgment_id!r} belongs to battle "
                f"{judgment.battle_id!r}"
            )
        if judgment.judge in contestants:
            raise ValueError(f"{where}: contestant {judgment.judge!r} judged its own battle")
        if listed and judgment.judge not in listed:
            raise ValueError(f"{where}: judge {judgment.judge!r} is not one of {sorted(listed)}")


def rate_battle(
    pair: ResponsePair, judgments: Sequence[Judgment], *, strong_weight: float = 1.0
) -> RatedBattle:
    """Turn a battle's judgments into a RatedBattle with votes, counts and local score.

    Votes come from `judge_votes` (with `strong_weight`, judge.strong_verdict_weight); a judge
    listed in `pair.judges` without judgments votes INVALID. The battle is FAILED (local_score_a
    0.5, to be left out of ratings) when:
    - a response has an error: failure_reason names the model and its error, and no votes are
      recorded (judges of a broken battle are not data);
    - it has no judges at all: NO_JUDGES_REASON;
    - every vote is INVALID: NO_VALID_VERDICT_REASON, so unparsable judge output never becomes
      a 0.5 score. All-TIE votes are valid: RATED with 0.5.
    Judgments of another battle, or by a contestant or an unlisted judge, are a ValueError.
    """
    _check_pair(pair, judgments)
    rated = RatedBattle(
        battle_id=pair.battle_id,
        challenge_id=pair.challenge_id,
        round_id=pair.round_id,
        model_a=pair.model_a,
        model_b=pair.model_b,
        tokens_a=pair.response_a.generation.completion_tokens,
        tokens_b=pair.response_b.generation.completion_tokens,
        local_score_a=0.5,
        status=arena_pb2.BATTLE_STATUS_FAILED,
    )
    rated.judge_calls, rated.judge_tokens = judge_cost(judgments)
    errors = [
        f"{model} failed: {response.error}"
        for model, response in ((pair.model_a, pair.response_a), (pair.model_b, pair.response_b))
        if response.error
    ]
    if errors:
        rated.failure_reason = "; ".join(errors)
        return rated
    votes = {vote.judge: vote for vote in judge_votes(judgments, strong_weight=strong_weight)}
    for judge in pair.judges:
        votes.setdefault(judge, Vote(judge=judge, verdict=VERDICT_INVALID, weight=0.0))
    ordered = [votes[judge] for judge in sorted(votes)]
    score, counts = local_score(ordered)
    rated.votes.extend(ordered)
    rated.votes_a, rated.votes_b, rated.ties, rated.invalid = counts
    if not ordered:
        rated.failure_reason = NO_JUDGES_REASON
    elif counts.invalid == len(ordered):
        rated.failure_reason = NO_VALID_VERDICT_REASON
    else:
        rated.local_score_a = score
        rated.status = arena_pb2.BATTLE_STATUS_RATED
    return rated


def judge_cost(judgments: Iterable[Judgment]) -> tuple[int, int]:
    """Model calls and tokens spent on these judgments, every attempt included.

    Each judgment carries what was spent on it so far (`spent_calls`, `spent_tokens`); only the
    latest per (judge, order) counts, since it already includes the earlier attempts. A
    judgment written before these fields existed counts its `attempts` as calls.
    """
    calls = tokens = 0
    for judgment in latest_judgments(judgments).values():
        calls += judgment.spent_calls or judgment.attempts
        tokens += judgment.spent_tokens
    return calls, tokens


# ---------------------------------------------------------------------------------------------
# Judge statistics
# ---------------------------------------------------------------------------------------------


@dataclass
class JudgeTally:
    """The counts behind a judge's statistics; tallies of different battles add up."""

    judgments: int = 0
    invalid_judgments: int = 0
    pairs: int = 0
    consistent_pairs: int = 0
    votes: int = 0
    tie_votes: int = 0
    length_votes: int = 0
    longer_picks: int = 0
    position_verdicts: int = 0
    first_picks: int = 0

    def add(self, other: JudgeTally) -> None:
        """Count `other`'s battles in this tally too."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _ratio(part: int, whole: int) -> float:
    # NaN, not 0.0, when there is nothing to measure: 0.0 would read as a strong bias.
    return part / whole if whole else math.nan


def battle_judge_tallies(
    pair: ResponsePair, judgments: Sequence[Judgment]
) -> dict[str, JudgeTally]:
    """Each judge's tally over one battle (its latest attempt per order counts); ValueError
    when the pair and its judgments do not fit together (see `judge_statistics`)."""
    _check_pair(pair, judgments)
    tokens_a = pair.response_a.generation.completion_tokens
    tokens_b = pair.response_b.generation.completion_tokens
    latest = latest_judgments(judgments)
    tallies: dict[str, JudgeTally] = {}
    for judge in sorted({judge for judge, _ in latest}):
        tally = tallies[judge] = JudgeTally()
        mine = [latest[key] for key in ((judge, ORDER_AB), (judge, ORDER_BA)) if key in latest]
        battle_verdicts = [judgment_battle_verdict(j) for j in mine]
        tally.judgments += len(mine)
        tally.invalid_judgments += battle_verdicts.count(VERDICT_INVALID)
        for judgment, verdict in zip(mine, battle_verdicts, strict=True):
            if verdict in (VERDICT_A, VERDICT_B):
                tally.position_verdicts += 1
                tally.first_picks += judgment.position_verdict == VERDICT_A
        if len(mine) == 2:
            tally.pairs += 1
            tally.consistent_pairs += battle_verdicts[0] == battle_verdicts[1] != VERDICT_INVALID
        vote = _vote_of(latest, judge).verdict
        tally.votes += 1
        tally.tie_votes += vote == VERDICT_TIE
        if vote in (VERDICT_A, VERDICT_B) and tokens_a != tokens_b:
            tally.length_votes += 1
            tally.longer_picks += (vote == VERDICT_A) == (tokens_a > tokens_b)
    return tallies


def judge_stats(judge: str, tally: JudgeTally) -> JudgeStats:
    """A judge's statistics from its tally (rates as in `judge_statistics`)."""
    return JudgeStats(
        judge=judge,
        pairs=tally.pairs,
        consistency=_ratio(tally.consistent_pairs, tally.pairs),
        tie_rate=_ratio(tally.tie_votes, tally.votes),
        invalid_rate=_ratio(tally.invalid_judgments, tally.judgments),
        longer_pick_rate=_ratio(tally.longer_picks, tally.length_votes),
        first_position_rate=_ratio(tally.first_picks, tally.position_verdicts),
    )


def judge_statistics(
    pairs_and_judgments: Iterable[tuple[ResponsePair, Sequence[Judgment]]],
) -> list[JudgeStats]:
    """Per-judge reliability over many battles, sorted by judge id.

    Per battle only each judge's latest attempt per order counts. A judge appears once it has
    at least one judgment. For each judge:
    - pairs: battles it judged in both orders.
    - consistency: share of those pairs whose two battle verdicts are valid and equal (TIE ==
      TIE counts as agreement).
    - tie_rate: share of its votes (one per battle it judged, INVALID included) that are TIE.
    - invalid_rate: share of its judgments whose verdict is INVALID (or that hold an error).
    - longer_pick_rate: among its decisive votes in battles whose answers differ in
      completion_tokens, the share that picked the longer answer.
    - first_position_rate: among its judgments with a position verdict of A or B, the share
      that picked the answer shown first (position bias; 0.5 is unbiased).
    A rate with nothing to count (e.g. no decisive votes) is NaN.
    """
    tallies: dict[str, JudgeTally] = {}
    for pair, judgments in pairs_and_judgments:
        for judge, tally in battle_judge_tallies(pair, judgments).items():
            tallies.setdefault(judge, JudgeTally()).add(tally)
    return [judge_stats(judge, tally) for judge, tally in sorted(tallies.items())]
