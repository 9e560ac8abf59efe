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

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

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
    "JUDGE_SYSTEM_PROMPT",
    "NO_JUDGES_REASON",
    "NO_VALID_VERDICT_REASON",
    "VERDICT_FIRST_INSTRUCTION",
    "VERDICT_PREFILL",
    "VoteCounts",
    "battle_id",
    "combine_orders",
    "judge_cost",
    "judge_prompt",
    "judge_statistics",
    "judge_votes",
    "judgment_battle_verdict",
    "judgment_id",
    "local_score",
    "parse_verdict",
    "prefilled_verdict_text",
    "rate_battle",
    "unswap",
]

# ---------------------------------------------------------------------------------------------
# Prompt
# ---------------------------------------------------------------------------------------------

JUDGE_SYSTEM_PROMPT = (
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
    "After your explanation, output your final verdict on the last line, strictly in this "
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

# A fenced code block; judges quote code, and code is full of `x[a]`-like text.
_CODE_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)
# Emphasis markers that wrap verdicts: **[[A]]**, `[[B]]`, **Final verdict:** A.
_EMPHASIS = re.compile(r"[*`]")

# [[A]], [[ b ]], [[tie]], [[Assistant A]]; not x[[a]] (code) and not [[[A]]].
_DOUBLE_BRACKET = re.compile(
    r"(?<![\w\[])\[\[\s*(?:assistant\s+)?(a|b|c|tie|draw)\s*\]\](?!\])", re.IGNORECASE
)
# [A], [B], [C], [tie]: letters upper case only, so a list literal like `[a]` is no verdict.
_SINGLE_BRACKET = re.compile(r"(?<![\w\[])\[\s*([ABC]|(?i:tie|draw))\s*\](?!\])")
# A bracket followed on the same line by "if", "for", "=", ... explains the format
# ('"[[A]]" if assistant A is better'); it is not a verdict.
_FORMAT_EXPLANATION = re.compile(
    r"""[ \t"'*)]*(?:(?:if|when|means|indicates|denotes|represents|stands\s+for|for\s+(?:a\s+)?"""
    r"""(?:tie|draw))\b|=|->|→)""",
    re.IGNORECASE,
)
# What may stand between the items of an echoed list: '"[[A]]", "[[B]]", or "[[C]]"'.
_LIST_GAP = re.compile(r"""[\s,;/|"'*]*(?:(?:or|and)\b[\s,;/|"'*]*)?""", re.IGNORECASE)

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

# Explicit verdict statements; the last one in the text wins.
_STATED_VERDICT = re.compile(
    _MARKER
    + r"(?:(?:it'?s\s+|it\s+is\s+)?(?:a\s+)?(?P<tie>"
    + _TIE_WORDS
    + r")|(?P<both>both\b[^.\n]{0,60}?"
    + _EQUALLY_GOOD
    + r")|"
    + _WHO
    + r"""["'(\[]*\s*(?P<letter>[abc])"""
    + _LETTER_END
    + r")",
    re.IGNORECASE | re.MULTILINE,
)
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

# A statement in a conditional or negated clause is no verdict: "if assistant A is better,
# output [[A]]", "I don't think Assistant B is better".
_CLAUSE_BREAK = re.compile(r"[.!?\n;,]")
_SENTENCE_BREAK = re.compile(r"[.!?\n]")
_CONDITION = re.compile(r"\b(?:if|whether|unless)\b", re.IGNORECASE)
_HEDGE = re.compile(
    r"\b(?:if|whether|unless|not|never|neither|nor|cannot)\b|n't\b|\bhard\s+to\s+say\b",
    re.IGNORECASE,
)


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


def _bracket_candidates(text: str, pattern: re.Pattern[str]) -> list[_Candidate]:
    """Bracketed verdicts, minus format explanations and echoed lists of options."""
    matches = [
        m
        for m in pattern.finditer(text)
        if not _FORMAT_EXPLANATION.match(text, m.end()) and not _in_condition(text, m.start())
    ]
    # Group brackets that stand next to each other as a list: '[[A]], [[B]] or [[C]]'.
    groups: list[list[re.Match[str]]] = []
    for match in matches:
        if groups and _LIST_GAP.fullmatch(text, groups[-1][-1].end(), match.start()):
            groups[-1].append(match)
        else:
            groups.append([match])
    candidates: list[_Candidate] = []
    for group in groups:
        verdicts = {_TOKEN_VERDICT[m.group(1).lower()] for m in group}
        if len(verdicts) > 1:  # a list of different options is the format, not a decision
            continue
        candidates.extend(_Candidate(m.start(), _TOKEN_VERDICT[m.group(1).lower()]) for m in group)
    return candidates


def _in_condition(text: str, start: int) -> bool:
    """True when the sentence before `start` is a condition: "If A is better, output [[A]]"."""
    breaks = [m.end() for m in _SENTENCE_BREAK.finditer(text, 0, start)]
    return _CONDITION.search(text, breaks[-1] if breaks else 0, start) is not None


def _is_hedged(text: str, start: int) -> bool:
    """True when the clause before `start` makes the statement conditional or negated."""
    breaks = [m.end() for m in _CLAUSE_BREAK.finditer(text, 0, start)]
    clause = text[breaks[-1] if breaks else 0 : start]
    return _HEDGE.search(clause) is not None


def _stated_candidates(text: str) -> list[_Candidate]:
    """Explicit statements: "Final verdict: A", "The winner is B", "It's a tie", last line "A"."""
    candidates: list[_Candidate] = []
    for match in _STATED_VERDICT.finditer(text):
        if _is_hedged(text, match.start()):
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


def parse_verdict(text: str) -> Verdict:
    """Read a judge's verdict from its output; VERDICT_INVALID when it is not clearly stated.

    Fenced code blocks are ignored (code is full of `x[a]`), and `*`/backtick emphasis is
    dropped. Then the first rule that finds anything decides:

    1. Double brackets, the requested format: [[A]], [[b]], [[C]] (= tie), [[tie]], **[[A]]**,
       [[Assistant B]]. The LAST one wins (judges often restate the format before deciding).
       Brackets that explain the format ('"[[A]]" if assistant A is better', "[[C]] for a tie")
       and lists of different options ('"[[A]]", "[[B]]", or "[[C]]"') are not verdicts.
    2. Other explicit statements, the LAST one wins: single brackets in capitals ([A], [C],
       [tie]); "Final verdict: A", "Verdict: Assistant B", "The winner is B", "My decision:
       tie", "Verdict: both are equally good"; "It's a tie", "I consider this a tie"; a last
       line that holds only a verdict ("A", "[b]", "Tie.", "Assistant B", "Answer: A").
    3. Comparative statements: "Assistant A is better", "Answer B's code is clearly superior",
       "Response A wins", "B is better" (capital letter only), "I prefer Assistant A", "both
       answers are equally good". They count only if they ALL agree; any disagreement (e.g.
       "A is better at X, but Assistant B is better at Y") is ambiguous.

    Statements in a conditional or negated clause ("if assistant A is better", "I don't think
    Assistant B is better") are skipped in rules 2 and 3. Nothing found (empty text, "A and B
    both have bugs", the format echoed) gives VERDICT_INVALID: the parser never guesses.
    """
    if not isinstance(text, str):
        raise TypeError(f"parse_verdict: text must be str, got {type(text).__name__}")
    cleaned = _EMPHASIS.sub("", _strip_code(text))
    if not cleaned.strip():
        return VERDICT_INVALID
    for candidates in (
        _bracket_candidates(cleaned, _DOUBLE_BRACKET),
        _bracket_candidates(cleaned, _SINGLE_BRACKET) + _stated_candidates(cleaned),
    ):
        if candidates:
            return max(candidates, key=lambda c: c.position).verdict
    comparisons = _comparison_verdicts(cleaned)
    if len(comparisons) == 1:
        return next(iter(comparisons))
    return VERDICT_INVALID


# ---------------------------------------------------------------------------------------------
# Orders and votes
# ---------------------------------------------------------------------------------------------

_KNOWN_VERDICTS = (VERDICT_A, VERDICT_B, VERDICT_TIE, VERDICT_INVALID)


def _check_verdict(verdict: Verdict, what: str) -> None:
    if verdict not in _KNOWN_VERDICTS:
        raise ValueError(f"{what}: expected VERDICT_A/B/TIE/INVALID, got {_verdict_name(verdict)}")


def _verdict_name(verdict: int) -> str:
    try:
        return arena_pb2.Verdict.Name(verdict)
    except ValueError:
        return str(verdict)


def _order_name(order: int) -> str:
    try:
        return arena_pb2.Order.Name(order)
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


def _latest_judgments(judgments: Iterable[Judgment]) -> dict[tuple[str, int], Judgment]:
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


def _vote_of(latest: dict[tuple[str, int], Judgment], judge: str) -> Verdict:
    first, second = latest.get((judge, ORDER_AB)), latest.get((judge, ORDER_BA))
    if first is None or second is None:
        return VERDICT_INVALID  # a missing order is never filled in from the other one
    return combine_orders(judgment_battle_verdict(first), judgment_battle_verdict(second))


def judge_votes(judgments: Sequence[Judgment]) -> list[Vote]:
    """One vote per judge of one battle, sorted by judge id.

    Each judge's vote combines its latest ORDER_AB and ORDER_BA judgments (`combine_orders`);
    a judge with either order missing votes INVALID. All judgments must belong to one battle.
    """
    battle_ids = {j.battle_id for j in judgments}
    if len(battle_ids) > 1:
        raise ValueError(f"judge_votes: judgments of several battles: {sorted(battle_ids)}")
    latest = _latest_judgments(judgments)
    judges = sorted({judge for judge, _ in latest})
    return [Vote(judge=judge, verdict=_vote_of(latest, judge)) for judge in judges]


class VoteCounts(NamedTuple):
    """How the votes of one battle split."""

    votes_a: int
    votes_b: int
    ties: int
    invalid: int


def local_score(votes: Iterable[Vote]) -> tuple[float, VoteCounts]:
    """Return x(A>B) = votes_a / (votes_a + votes_b) and the vote counts.

    Ties and invalid votes are counted but excluded from the score; 0.5 when no vote is
    decisive.
    """
    tally = {VERDICT_A: 0, VERDICT_B: 0, VERDICT_TIE: 0, VERDICT_INVALID: 0}
    for vote in votes:
        _check_verdict(vote.verdict, f"local_score vote of judge {vote.judge!r}")
        tally[vote.verdict] += 1
    counts = VoteCounts(
        tally[VERDICT_A], tally[VERDICT_B], tally[VERDICT_TIE], tally[VERDICT_INVALID]
    )
    decisive = counts.votes_a + counts.votes_b
    return (counts.votes_a / decisive if decisive else 0.5), counts


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


def rate_battle(pair: ResponsePair, judgments: Sequence[Judgment]) -> RatedBattle:
    """Turn a battle's judgments into a RatedBattle with votes, counts and local score.

    Votes come from `judge_votes`; a judge listed in `pair.judges` without judgments votes
    INVALID. The battle is FAILED (local_score_a 0.5, to be left out of ratings) when:
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
    votes = {vote.judge: vote for vote in judge_votes(judgments)}
    for judge in pair.judges:
        votes.setdefault(judge, Vote(judge=judge, verdict=VERDICT_INVALID))
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
    for judgment in _latest_judgments(judgments).values():
        calls += judgment.spent_calls or judgment.attempts
        tokens += judgment.spent_tokens
    return calls, tokens


# ---------------------------------------------------------------------------------------------
# Judge statistics
# ---------------------------------------------------------------------------------------------


@dataclass
class _JudgeTally:
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


def _ratio(part: int, whole: int) -> float:
    # NaN, not 0.0, when there is nothing to measure: 0.0 would read as a strong bias.
    return part / whole if whole else math.nan


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
    tallies: dict[str, _JudgeTally] = {}
    for pair, judgments in pairs_and_judgments:
        _check_pair(pair, judgments)
        tokens_a = pair.response_a.generation.completion_tokens
        tokens_b = pair.response_b.generation.completion_tokens
        latest = _latest_judgments(judgments)
        for judge in sorted({judge for judge, _ in latest}):
            tally = tallies.setdefault(judge, _JudgeTally())
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
                tally.consistent_pairs += (
                    battle_verdicts[0] == battle_verdicts[1] != VERDICT_INVALID
                )
            vote = _vote_of(latest, judge)
            tally.votes += 1
            tally.tie_votes += vote == VERDICT_TIE
            if vote in (VERDICT_A, VERDICT_B) and tokens_a != tokens_b:
                tally.length_votes += 1
                tally.longer_picks += (vote == VERDICT_A) == (tokens_a > tokens_b)
    return [
        JudgeStats(
            judge=judge,
            pairs=t.pairs,
            consistency=_ratio(t.consistent_pairs, t.pairs),
            tie_rate=_ratio(t.tie_votes, t.votes),
            invalid_rate=_ratio(t.invalid_judgments, t.judgments),
            longer_pick_rate=_ratio(t.longer_picks, t.length_votes),
            first_position_rate=_ratio(t.first_picks, t.position_verdicts),
        )
        for judge, t in sorted(tallies.items())
    ]
