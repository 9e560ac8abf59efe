"""Tests of the pure judging logic: prompt, verdict parsing, votes, scores, judge statistics."""

from __future__ import annotations

import itertools
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from warriorcoder.arena.ids import stable_id
from warriorcoder.arena.judging import (
    ARENA_HARD_LABELS,
    JUDGE_SYSTEM_PROMPT,
    NO_JUDGES_REASON,
    NO_VALID_VERDICT_REASON,
    VERDICT_CHOICES,
    VoteCounts,
    battle_id,
    combine_orders,
    explanation_chars,
    judge_prompt,
    judge_statistics,
    judge_votes,
    judgment_battle_verdict,
    judgment_id,
    local_score,
    parse_verdict,
    rate_battle,
    read_choice_verdict,
    read_json_verdict,
    read_judge_answer,
    read_verdict,
    soft_margin,
    unswap,
    verdict_format,
    verdict_json_schema,
    verdict_probabilities,
)
from warriorcoder.v1 import arena_pb2
from warriorcoder.v1.arena_pb2 import (
    Generation,
    Judgment,
    Response,
    ResponsePair,
    Vote,
)

A = arena_pb2.VERDICT_A
B = arena_pb2.VERDICT_B
TIE = arena_pb2.VERDICT_TIE
INVALID = arena_pb2.VERDICT_INVALID
UNSPECIFIED = arena_pb2.VERDICT_UNSPECIFIED
AB = arena_pb2.ORDER_AB
BA = arena_pb2.ORDER_BA
RATED = arena_pb2.BATTLE_STATUS_RATED
FAILED = arena_pb2.BATTLE_STATUS_FAILED

BATTLE = "battle-1"


def make_pair(
    *,
    battle: str = BATTLE,
    model_a: str = "alpha",
    model_b: str = "beta",
    tokens_a: int = 100,
    tokens_b: int = 100,
    judges: tuple[str, ...] = (),
    error_a: str = "",
    error_b: str = "",
) -> ResponsePair:
    def response(model: str, tokens: int, error: str) -> Response:
        return Response(
            challenge_id="challenge-1",
            model_id=model,
            generation=Generation(
                model_id=model, text=f"answer of {model}", completion_tokens=tokens
            ),
            error=error,
        )

    return ResponsePair(
        battle_id=battle,
        challenge_id="challenge-1",
        round_id="round-1",
        instruction="Write a function that reverses a string.",
        model_a=model_a,
        model_b=model_b,
        response_a=response(model_a, tokens_a, error_a),
        response_b=response(model_b, tokens_b, error_b),
        judges=list(judges),
    )


def make_judgment(
    judge: str,
    order: int,
    position_verdict: int,
    *,
    battle: str = BATTLE,
    attempts: int = 1,
    error: str = "",
) -> Judgment:
    return Judgment(
        judgment_id=f"{battle}/{judge}/{order}/{attempts}",
        battle_id=battle,
        judge=judge,
        order=order,
        position_verdict=position_verdict,
        attempts=attempts,
        error=error,
    )


def both_orders(judge: str, ab: int, ba: int, *, battle: str = BATTLE) -> list[Judgment]:
    """A judge's two judgments, given as position verdicts."""
    return [
        make_judgment(judge, AB, ab, battle=battle),
        make_judgment(judge, BA, ba, battle=battle),
    ]


# ---------------------------------------------------------------------------------------------
# Prompt
# ---------------------------------------------------------------------------------------------


def test_judge_prompt_shows_both_answers_in_the_given_order() -> None:
    prompt = judge_prompt("Reverse a string.", "def f(s): return s[::-1]", "use reversed()")
    assert "Reverse a string." in prompt
    start_a = prompt.index("[The Start of Assistant A's Answer]\ndef f(s): return s[::-1]\n")
    end_a = prompt.index("[The End of Assistant A's Answer]")
    start_b = prompt.index("[The Start of Assistant B's Answer]\nuse reversed()\n")
    end_b = prompt.index("[The End of Assistant B's Answer]")
    assert start_a < end_a < start_b < end_b


def test_judge_prompt_rejects_empty_instruction_and_non_strings() -> None:
    with pytest.raises(ValueError, match="instruction"):
        judge_prompt("  ", "a", "b")
    with pytest.raises(TypeError, match="second_answer"):
        judge_prompt("task", "a", None)  # type: ignore[arg-type]


def test_judge_prompt_allows_an_empty_answer() -> None:
    prompt = judge_prompt("task", "", "something")
    assert "[The Start of Assistant A's Answer]\n\n[The End of Assistant A's Answer]" in prompt


def test_system_prompt_states_rules_and_format() -> None:
    text = JUDGE_SYSTEM_PROMPT.lower()
    for phrase in ("correctness", "helpfulness", "position", "length", "concise", "tie"):
        assert phrase in text
    for token in ("[[A]]", "[[B]]", "[[C]]"):
        assert token in JUDGE_SYSTEM_PROMPT


def test_system_prompt_echoed_by_a_judge_is_no_verdict() -> None:
    assert parse_verdict(JUDGE_SYSTEM_PROMPT) == INVALID
    assert parse_verdict(JUDGE_SYSTEM_PROMPT + "\n\nB handles the empty string.\n[[B]]") == B


# ---------------------------------------------------------------------------------------------
# Verdict parsing
# ---------------------------------------------------------------------------------------------

MT_BENCH_ECHO = (
    'Output your final verdict by strictly following this format: "[[A]]" if assistant A is '
    'better, "[[B]]" if assistant B is better, and "[[C]]" for a tie.'
)

PARSE_CASES: list[tuple[str, int]] = [
    # The requested format and its decorations.
    ("[[A]]", A),
    ("[[B]]", B),
    ("[[C]]", TIE),
    ("[[tie]]", TIE),
    ("[[Tie]]", TIE),
    ("[[a]]", A),
    ("[[b]]", B),
    ("[[ A ]]", A),
    ("**[[A]]**", A),
    ("`[[B]]`", B),
    ("[[A]].", A),
    ("[[B]]   \n  \n", B),
    ("Final verdict: [[B]]", B),
    ("[[Assistant A]]", A),
    ("Both run, but A crashes on empty input.\n\n[[B]]", B),
    ("```\n[[A]]\n```", A),
    # Single brackets.
    ("[A]", A),
    ("[B]", B),
    ("[C]", TIE),
    ("Verdict: [B]", B),
    # Several verdicts: the last one wins.
    ("I first thought [[A]], but on reflection [[B]]", B),
    ("[[B]] ... wait, A handles unicode. [[A]]", A),
    (MT_BENCH_ECHO + "\nAssistant A misses the edge case.\n[[B]]", B),
    ('I must answer with "[[A]]", "[[B]]", or "[[C]]". [[C]]', TIE),
    ("Format reminder: [[A]]/[[B]]/[[C]]\nMy verdict: [[A]]", A),
    # Stated verdicts.
    ("Final verdict: A", A),
    ("final verdict: b", B),
    ("Verdict: Assistant B", B),
    ("VERDICT: ASSISTANT A", A),
    ("**Final Verdict:** Assistant A", A),
    ("The winner is B", B),
    ("The winner is Assistant A.", A),
    ("Winner - B", B),
    ("My decision: tie", TIE),
    ("Verdict: a tie", TIE),
    ("Final verdict: C", TIE),
    ("The better answer is Assistant B's.", B),
    ("It's a tie.", TIE),
    ("Both are correct and the same length, so it is a tie.", TIE),
    ("I consider this a tie.", TIE),
    ("Verdict: both answers are equally good.", TIE),
    ("Explanation of the differences.\n\nA", A),
    ("b", B),
    ("Tie.", TIE),
    ("Assistant B\n", B),
    ("Answer: A", A),
    ("A crashes.\n[b]", B),
    # Comparative statements.
    ("Assistant A is better", A),
    ("Answer A is better", A),
    ("assistant b is better", B),
    ("Assistant B's answer is clearly better than Assistant A's.", B),
    ("Overall, B is better.", B),
    ("Response A wins.", A),
    ("I prefer Assistant B because it handles None.", B),
    ("Both are equally good.", TIE),
    ("Both answers are equally correct.", TIE),
    ("Assistant A is better. Assistant A is better in every respect.", A),
    ("I don't think Assistant A is better. [[B]]", B),
    ("```python\ndef f(x):\n    return x[[a]]\n```\nAssistant B is better.", B),
    # Hard negatives: no clear verdict.
    ("", INVALID),
    ("   \n\t", INVALID),
    ('"[[A]]", "[[B]]", or "[[C]]"', INVALID),
    ("[[A]] [[B]] [[C]]", INVALID),
    ("[[A]] or [[B]]", INVALID),
    (MT_BENCH_ECHO, INVALID),
    ("If assistant A is better, output [[A]]", INVALID),
    ("A and B both have bugs", INVALID),
    ("Assistant A uses recursion while Assistant B uses a loop.", INVALID),
    ("Assistant A is better at style, but Assistant B is better at correctness.", INVALID),
    ("I don't think Assistant A is better.", INVALID),
    ("Neither answer is correct.", INVALID),
    ("The winner is a close call.", INVALID),
    ("dp[a] = dp[b] + 1", INVALID),
    ("x = [b]\nThis builds a list.", INVALID),
    ("overall, a is better than b in this loop", INVALID),
    ("```python\nmatrix = [[a]]\n```", INVALID),
    ("```\nVerdict: [[B]]\n```", B),
    ("Let me compare the two answers.", INVALID),
    ("Is A better? Hard to say.", INVALID),
]


def test_there_are_enough_parse_cases() -> None:
    assert len(PARSE_CASES) >= 40
    assert sum(expected == INVALID for _, expected in PARSE_CASES) >= 15


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES)
def test_parse_verdict(text: str, expected: int) -> None:
    got = parse_verdict(text)
    assert got == expected, f"{text!r}: {arena_pb2.Verdict.Name(got)}"


def test_parse_verdict_rejects_non_strings() -> None:
    with pytest.raises(TypeError, match="str"):
        parse_verdict(None)  # type: ignore[arg-type]


# Arena-Hard's own format instructions, echoed by a judge.
ARENA_HARD_ECHO = (
    "You must output only one of the following choices as your final verdict with a label:\n\n"
    "1. Assistant A is significantly better: [[A>>B]]\n"
    "2. Assistant A is slightly better: [[A>B]]\n"
    "3. Tie, relatively the same: [[A=B]]\n"
    "4. Assistant B is slightly better: [[B>A]]\n"
    "5. Assistant B is significantly better: [[B>>A]]\n\n"
    'Example output: "My final verdict is tie: [[A=B]]".'
)

# Arena-Hard labels and final statements: (text, verdict, strong).
ARENA_HARD_AND_FINAL_CASES: list[tuple[str, int, bool]] = [
    # The five labels, any case and spacing, and read right to left.
    ("[[A>>B]]", A, True),
    ("[[A>B]]", A, False),
    ("[[A=B]]", TIE, False),
    ("[[B>A]]", B, False),
    ("[[B>>A]]", B, True),
    ("[[ a >> b ]]", A, True),
    ("[[b > a]]", B, False),
    ("[[B<<A]]", A, True),
    ("[[A<B]]", B, False),
    ("[[A==B]]", TIE, False),
    ("[[A≫B]]", A, True),
    ("[[Assistant B >> Assistant A]]", B, True),
    ("My final verdict is tie: [[A=B]]", TIE, False),
    ("My final verdict is: Assistant A is significantly better: [[A>>B]]", A, True),
    ("My final verdict is Assistant B is slightly better: [[B>A]]", B, False),
    ("## Final Verdict\n\n**[[B>>A]]**", B, True),
    ("Decision: [[a>>b]]", A, True),
    ("Final verdict: B>A", B, False),
    ("Final verdict: [[A>B]] (slightly), maybe even [[A>>B]]", A, False),
    ("[A>B]", A, False),
    # Options listed, then the decision.
    ("Labels: [[A>>B]], [[A>B]], [[A=B]], [[B>A]], [[B>>A]].\nB is right. [[B>A]]", B, False),
    (
        ARENA_HARD_ECHO + "\n\nAssistant B handles empty input.\n\nMy final verdict is: [[B>A]]",
        B,
        False,
    ),
    # A final statement wins over mentions elsewhere, before and after it.
    ("My final verdict is [[B]], although [[A]] was close.", B, False),
    ("[[A]]\n\nMy final verdict is [[B]]", B, False),
    ("Final verdict: [[A]]\n\nHmm, earlier I said [[B]].", A, False),
    ("Final verdict: [[B]]\n[[A]]", B, False),
    ("Verdict: [[B]]\n\nReasoning: [[A]] fails the tests.", B, False),
    ("Final Verdict: [[A]]. Actually, wait: final verdict: [[B]].", B, False),
    ("Verdict:\n\n[[A]]", A, False),
    ("In conclusion, [[B]].", B, False),
    ("In my judgment, [[B]]", B, False),
    ("Final answer: [[B]]", B, False),
    ("The decision is clear: [[B]]", B, False),
    ("Final verdict: Assistant A, not Assistant B.", A, False),
    ("Final verdict: [[A]] (B is wrong).", A, False),
    ("My final verdict is that neither is better: [[C]]", TIE, False),
    ("Final verdict: tie [[C]]", TIE, False),
    ("Final verdict: neither [[A]] nor [[B]] is right, so [[C]].", TIE, False),
    ("Assistant A: [[A]] is incorrect. Final verdict: [[B]]", B, False),
    ("My final verdict is [[B]]. Had A handled None, [[A]].", B, False),
    ("My final verdict is [[B]] (I was tempted by [[A]]).", B, False),
    ("Despite [[A]] being faster, my final verdict is [[B]].", B, False),
    ("[[A]] would be my pick if it handled None; my final verdict is [[B]]", B, False),
    ("The final verdict should be given as [[A]], [[B]] or [[C]]. B is right: [[B]]", B, False),
    # Negated, conceded and conditional mentions do not count, with or without a statement.
    ("[[B]] (not [[A]])", B, False),
    ("[[B]], not [[A]].", B, False),
    ("Not [[A]]. [[B]].", B, False),
    ("I'd go with [[B]] rather than [[A]].", B, False),
    ("[[B]] is better than [[A]]", B, False),
    ("My final verdict is [[B]] over [[A]].", B, False),
    ("[[B]] beats [[A]]", B, False),
    ("[[A]] loses to [[B]].", B, False),
    ("[[A]] is wrong. [[B]] is right.", B, False),
    ("The verdict is not [[A]] but [[B]]", B, False),
    ("It's not [[A]], it's [[B]]", B, False),
    ("my decision would be [[B]], not [[A]]", B, False),
    ("I cannot pick [[A]]; [[B]] it is.", B, False),
    ("Final verdict: [[B]]. [[A]] was a close second.", B, False),
    ("[[B]]. [[A]] came close, though.", B, False),
    ("Although [[A]] is shorter, [[B]] is correct.", B, False),
    ("Final verdict: [[B]], even though [[A]] is shorter.", B, False),
    ("My verdict is [[A]]. I initially leaned [[B]].", A, False),
    ("[[A]] seems better at first glance, but on closer inspection [[B]].", B, False),
    ("I would have said [[A]] but [[B]] handles the edge case.", B, False),
    ("If A had handled None, it would be [[A]]. As it is: [[B]]", B, False),
    ("[[B]]; [[A]] would have won if it handled None.", B, False),
    ("It would be [[A]] if the tests were correct, but they are not, so [[B]].", B, False),
    # Forced-choice and rhetorical "if" are no conditions.
    ("If I had to choose, [[B]].", B, False),
    ("My final verdict: [[B]] if I must choose.", B, False),
    ("If we focus on correctness, [[B]] is better.", B, False),
    ("I'm not sure, but [[B]].", B, False),
    ("Without a doubt, [[B]].", B, False),
    ("Neither is perfect but [[B]] is closer to the spec: [[B]]", B, False),
    # More phrasings of decisions, concessions, negations and conditions.
    ('My final verdict is that Assistant B is better: [[B]].', B, False),
    ('**Verdict**: [[A]]', A, False),
    ('Final Verdict\n[[B]]', B, False),
    (
        (
            'Therefore, the final verdict is [[A]]. Note that [[B]] would be preferable if '
            'performance mattered.'
        ),
        A,
        False,
    ),
    ('The better response is [[B]], not [[A]].', B, False),
    ('[[A]]? No. [[B]].', B, False),
    ("I'd say [[B]], though one could argue for [[A]].", B, False),
    ("Final verdict: [[B]] — although Assistant A's answer [[A]] is more concise.", B, False),
    ('Verdict: [[C]] (both are equally good)', TIE, False),
    ('My final verdict is [[A]]! [[B]] is much worse.', A, False),
    ('[[A]]. [[B]] is much worse.', A, False),
    ('[[B]] is better; [[A]] is worse.', B, False),
    ('Assistant A: [[A]] fails; Assistant B: [[B]] passes. Final: [[B]]', B, False),
    (
        (
            'Final verdict: [[B]]\n\n(Note: had A handled empty input, [[A]] would have '
            'been my choice.)'
        ),
        B,
        False,
    ),
    ('Final Verdict: [[A]] is better than [[B]]', A, False),
    ('After weighing everything, I choose [[B]] over [[A]]', B, False),
    ('Final verdict: Tie [[A=B]]', TIE, False),
    ('My verdict: [[B>A]] (B is slightly better)', B, False),
    ('Both are wrong, so [[C]].', TIE, False),
    (
        (
            "[[B]]\n\nExplanation: Assistant A's code has a bug, making [[B]] the better "
            'choice.'
        ),
        B,
        False,
    ),
    (
        (
            'Explanation: [[A]] is incorrect because of off-by-one. [[B]] is correct. '
            'Verdict: [[B]]'
        ),
        B,
        False,
    ),
    ('If I must pick, [[A]].', A, False),
    ('Were I to ignore style, [[A]] would win; overall [[B]].', B, False),
    ('Neither [[A]] nor [[B]] is correct; [[C]]', TIE, False),
    ('Final verdict: [[B]]; I was torn between [[A]] and [[B]].', B, False),
    ('Assistant B is better [[B]], although I initially thought [[A]].', B, False),
    ('My final verdict would be [[B]]', B, False),
    ('You asked for a verdict: [[B]]', B, False),
    ('The final verdict must be one of [[A]], [[B]], [[C]]; mine is [[A]].', A, False),
    ("It's [[B]], no contest.", B, False),
    ('Not sure between [[A]] and [[B]].', INVALID, False),
    ('I choose [[B]]. Not [[A]].', B, False),
    ("[[B]] wins hands down; [[A]] doesn't even compile.", B, False),
    ('[[B]] handles it while [[A]] crashes', B, False),
    ('The winner: [[B]]', B, False),
    ('Winner: Assistant B ([[B]])', B, False),
    ("Hmm, [[A]] or [[B]]... I'll go with [[B]].", B, False),
    ('Final verdict: [[B]] (A is close, but not quite).', B, False),
    ('My final verdict: [[A]]\nWait, no. My final verdict: [[B]]', B, False),
    ('FINAL VERDICT: [[B>>A]]', B, True),
    ('final verdict: [[ B >> A ]]', B, True),
    ('The answer is clear. [[A]]', A, False),
    ('[[A]] would have been better if it were correct, so [[B]].', B, False),
    ('Verdict: Assistant A is better. [[A]]', A, False),
    ('Verdict: [[A]] for correctness, [[B]] for style.', INVALID, False),
    ('It is a tie: [[C]]', TIE, False),
    ("I can't decide between [[A]] and [[B]], so [[C]].", TIE, False),
    ('Given that [[A]] fails the tests, [[B]].', B, False),
    ('Since A fails, [[B]] is better than [[A]].', B, False),
    ('Tie? No: [[A]].', A, False),
    ("Comparing [[A]] and [[B]], [[B]] is better.", B, False),
    ('Options: "[[A]]", "[[B]]", or "[[C]]", [[B]]', B, False),
    # Conflicts inside the final statement, and nothing but taken-back mentions: INVALID.
    ("Final verdict: [[A]] or [[B]]", INVALID, False),
    ("Final verdict: [[A]], [[B]]", INVALID, False),
    ("Final verdict: [[A]]... or maybe [[B]]?", INVALID, False),
    ("Final decision: [[A]] and [[B]] are both fine, [[C]]", INVALID, False),
    ("My final verdict: [[A>B]], or [[B>A]] if the spec allows None", A, False),
    ("Final verdict: [[A>>B]] [[B>>A]]", INVALID, False),
    ("Unless the spec requires recursion, [[B]].", INVALID, False),
    ("Not [[A]].", INVALID, False),
    ("[[A]] was close.", INVALID, False),
    ("If the tests are right, [[A]].", INVALID, False),
    ("[[A>A]]", INVALID, False),
    ("[[A>C]]", INVALID, False),
    ("[[A>>B]] or [[B>>A]]", INVALID, False),
    (ARENA_HARD_ECHO, INVALID, False),
    ("Options:\n- A better: [[A]]\n- B better: [[B]]\n- tie: [[C]]", INVALID, False),
    # A judge's per-criterion lines are no list of options: the last line decides.
    ("A crashes.\n- style: [[A]]\n- correctness: [[B]]\n- overall: [[B]]", B, False),
]


def test_there_are_enough_arena_hard_and_final_cases() -> None:
    assert len(ARENA_HARD_AND_FINAL_CASES) >= 80
    assert sum(v == INVALID for _, v, _ in ARENA_HARD_AND_FINAL_CASES) >= 10
    assert sum(strong for _, _, strong in ARENA_HARD_AND_FINAL_CASES) >= 8


@pytest.mark.parametrize(("text", "verdict", "strong"), ARENA_HARD_AND_FINAL_CASES)
def test_read_verdict_labels_and_final_statements(text: str, verdict: int, strong: bool) -> None:
    got = read_verdict(text)
    assert (got.verdict, got.strong) == (verdict, strong), (
        f"{text!r}: {arena_pb2.Verdict.Name(got.verdict)} strong={got.strong} ({got.reason})"
    )
    assert parse_verdict(text) == verdict
    assert bool(got.reason) == (verdict == INVALID)


def test_read_verdict_reasons_name_what_is_wrong() -> None:
    assert "conflicting verdicts in the final statement: [[A]], [[B]]" in (
        read_verdict("Final verdict: [[A]] or [[B]]").reason
    )
    assert read_verdict("").reason == "the judge's answer is empty"
    assert read_verdict("Let me compare.").reason == "no verdict found in the judge's answer"
    assert "negated, conceded, conditional" in read_verdict("Not [[A]].").reason
    assert "disagree" in read_verdict(
        "Assistant A is better at style, but Assistant B is better at correctness."
    ).reason


@pytest.mark.parametrize(
    ("label", "verdict", "strong"),
    [
        (f"{left}{rel}{right}", verdict, strong)
        for (left, right) in (("A", "B"), ("B", "A"))
        for rel, winner_left, strong in (
            (">>", True, True), (">", True, False), ("<", False, False), ("<<", False, True)
        )
        for verdict in [(A if left == "A" else B) if winner_left else (B if left == "A" else A)]
    ],
)
def test_every_label_direction(label: str, verdict: int, strong: bool) -> None:
    for text in (f"[[{label}]]", f"[[ {label.lower()} ]]", f"My final verdict is [[{label}]]."):
        got = read_verdict(text)
        assert (got.verdict, got.strong) == (verdict, strong), text


@given(
    st.sampled_from(["[[A]]", "[[B]]", "[[A>>B]]", "[[B>A]]", "[[C]]"]),
    st.sampled_from(["[[A]]", "[[B]]", "[[A=B]]", "[[B>>A]]"]),
    st.sampled_from(["not ", "rather than ", "although ", "if ", "over "]),
)
def test_a_taken_back_mention_never_overrules_the_final_statement(
    decision: str, other: str, hedge: str
) -> None:
    expected = read_verdict(decision)
    for text in (
        f"My final verdict is {decision}, {hedge}{other}.",
        f"{other}\n\nMy final verdict is {decision}.",
    ):
        got = read_verdict(text)
        assert (got.verdict, got.strong) == (expected.verdict, expected.strong), text


@given(st.text(alphabet=st.characters(blacklist_characters="[]ABCabc"), max_size=200))
def test_text_without_letters_or_brackets_is_invalid(text: str) -> None:
    # No A/B/C and no brackets: nothing can name a winner, except a tie statement.
    assert parse_verdict(text) in (INVALID, TIE)


# ---------------------------------------------------------------------------------------------
# Un-swapping and combining orders
# ---------------------------------------------------------------------------------------------

UNSWAP_TABLE = {
    (A, AB): A,
    (B, AB): B,
    (TIE, AB): TIE,
    (INVALID, AB): INVALID,
    (A, BA): B,
    (B, BA): A,
    (TIE, BA): TIE,
    (INVALID, BA): INVALID,
}


@pytest.mark.parametrize(("position", "order"), sorted(UNSWAP_TABLE))
def test_unswap_table(position: int, order: int) -> None:
    assert unswap(position, order) == UNSWAP_TABLE[(position, order)]


@pytest.mark.parametrize("verdict", [A, B, TIE, INVALID])
def test_unswap_twice_is_identity(verdict: int) -> None:
    assert unswap(unswap(verdict, BA), BA) == verdict


def test_unswap_rejects_unset_values() -> None:
    with pytest.raises(ValueError, match="ORDER_UNSPECIFIED"):
        unswap(A, arena_pb2.ORDER_UNSPECIFIED)
    with pytest.raises(ValueError, match="VERDICT_UNSPECIFIED"):
        unswap(UNSPECIFIED, AB)


COMBINE_TABLE = {
    (A, A): A,
    (A, B): TIE,
    (A, TIE): TIE,
    (A, INVALID): INVALID,
    (B, A): TIE,
    (B, B): B,
    (B, TIE): TIE,
    (B, INVALID): INVALID,
    (TIE, A): TIE,
    (TIE, B): TIE,
    (TIE, TIE): TIE,
    (TIE, INVALID): INVALID,
    (INVALID, A): INVALID,
    (INVALID, B): INVALID,
    (INVALID, TIE): INVALID,
    (INVALID, INVALID): INVALID,
}


def test_combine_table_is_exhaustive() -> None:
    assert set(COMBINE_TABLE) == set(itertools.product([A, B, TIE, INVALID], repeat=2))


@pytest.mark.parametrize(("ab", "ba"), sorted(COMBINE_TABLE))
def test_combine_orders_table(ab: int, ba: int) -> None:
    assert combine_orders(ab, ba) == COMBINE_TABLE[(ab, ba)]
    assert combine_orders(ba, ab) == COMBINE_TABLE[(ab, ba)]  # the table is symmetric


def test_combine_orders_rejects_unspecified() -> None:
    with pytest.raises(ValueError, match="verdict_ba"):
        combine_orders(A, UNSPECIFIED)


def test_position_biased_judge_votes_tie() -> None:
    # Always "the first one": A in ORDER_AB, A (= model_b) in ORDER_BA.
    assert combine_orders(unswap(A, AB), unswap(A, BA)) == TIE


# ---------------------------------------------------------------------------------------------
# Votes
# ---------------------------------------------------------------------------------------------


def test_judge_votes_one_per_judge_sorted() -> None:
    judgments = both_orders("zeta", A, B) + both_orders("eta", A, A) + both_orders("mu", B, A)
    votes = judge_votes(judgments)
    assert [(v.judge, v.verdict) for v in votes] == [("eta", TIE), ("mu", B), ("zeta", A)]


def test_judge_votes_missing_order_is_invalid() -> None:
    judgments = [make_judgment("only-ab", AB, A), make_judgment("only-ba", BA, B)]
    judgments += both_orders("full", A, B)
    votes = {v.judge: v.verdict for v in judge_votes(judgments)}
    assert votes == {"only-ab": INVALID, "only-ba": INVALID, "full": A}


def test_judge_votes_uses_latest_attempt() -> None:
    judgments = [
        make_judgment("j", AB, INVALID, attempts=1),
        make_judgment("j", AB, B, attempts=3),
        make_judgment("j", AB, A, attempts=2),
        make_judgment("j", BA, A, attempts=1),
    ]
    assert [v.verdict for v in judge_votes(judgments)] == [B]


def test_judge_votes_equal_attempts_later_one_wins() -> None:
    judgments = [make_judgment("j", AB, B), make_judgment("j", AB, A), make_judgment("j", BA, B)]
    assert [v.verdict for v in judge_votes(judgments)] == [A]


def test_judgment_with_error_or_unset_verdict_is_invalid() -> None:
    assert judgment_battle_verdict(make_judgment("j", AB, A, error="timeout")) == INVALID
    assert judgment_battle_verdict(make_judgment("j", BA, UNSPECIFIED)) == INVALID
    assert judgment_battle_verdict(make_judgment("j", BA, A)) == B


def test_judge_votes_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="several battles"):
        judge_votes([make_judgment("j", AB, A, battle="x"), make_judgment("j", BA, A, battle="y")])
    with pytest.raises(ValueError, match="ORDER_UNSPECIFIED"):
        judge_votes([make_judgment("j", arena_pb2.ORDER_UNSPECIFIED, A)])
    with pytest.raises(ValueError, match="no judge"):
        judge_votes([make_judgment("", AB, A)])


def test_judge_votes_empty() -> None:
    assert judge_votes([]) == []


# ---------------------------------------------------------------------------------------------
# Local score
# ---------------------------------------------------------------------------------------------


def votes_of(*verdicts: int) -> list[Vote]:
    return [Vote(judge=f"j{i}", verdict=v) for i, v in enumerate(verdicts)]


@pytest.mark.parametrize(
    ("verdicts", "score", "counts"),
    [
        ((A, A, B), 2 / 3, VoteCounts(2, 1, 0, 0)),
        ((A, TIE, INVALID), 1.0, VoteCounts(1, 0, 1, 1)),
        ((B, B, TIE, TIE), 0.0, VoteCounts(0, 2, 2, 0)),
        ((A, B, TIE, INVALID, A, B), 0.5, VoteCounts(2, 2, 1, 1)),
        ((TIE, INVALID), 0.5, VoteCounts(0, 0, 1, 1)),
        ((), 0.5, VoteCounts(0, 0, 0, 0)),
        ((A, B, B, B), 0.25, VoteCounts(1, 3, 0, 0)),
    ],
)
def test_local_score(verdicts: tuple[int, ...], score: float, counts: VoteCounts) -> None:
    got_score, got_counts = local_score(votes_of(*verdicts))
    assert got_score == pytest.approx(score)
    assert got_counts == counts


def test_local_score_rejects_unspecified_vote() -> None:
    with pytest.raises(ValueError, match="'j0'"):
        local_score(votes_of(UNSPECIFIED))


# ---------------------------------------------------------------------------------------------
# Strong and soft votes
# ---------------------------------------------------------------------------------------------


def strong_orders(
    judge: str, ab: int, ba: int, *, strong: tuple[bool, bool] = (True, True)
) -> list[Judgment]:
    judgments = both_orders(judge, ab, ba)
    for judgment, flag in zip(judgments, strong, strict=True):
        judgment.strong = flag
    return judgments


def with_soft(judgments: list[Judgment], *probs: tuple[float, float, float]) -> list[Judgment]:
    for judgment, (a, b, tie) in zip(judgments, probs, strict=True):
        judgment.soft.a, judgment.soft.b, judgment.soft.tie = a, b, tie
    return judgments


def test_a_vote_is_strong_only_when_both_orders_are_strong_for_the_same_answer() -> None:
    # ORDER_BA's position B is model_a: both orders strong for model_a.
    judgments = (
        strong_orders("both", A, B)
        + strong_orders("one", A, B, strong=(True, False))
        + strong_orders("split", A, A)  # strong for different answers: a TIE, never strong
    )
    votes = {v.judge: v for v in judge_votes(judgments, strong_weight=3.0)}
    assert (votes["both"].verdict, votes["both"].strong, votes["both"].weight) == (A, True, 3.0)
    assert (votes["one"].verdict, votes["one"].strong, votes["one"].weight) == (A, False, 1.0)
    assert (votes["split"].verdict, votes["split"].strong, votes["split"].weight) == (
        TIE,
        False,
        0.0,
    )


def test_strong_weight_changes_the_local_score_but_not_the_counts() -> None:
    pair = make_pair(judges=("j1", "j2", "j3"))
    judgments = strong_orders("j1", A, B) + both_orders("j2", B, A) + both_orders("j3", A, A)
    plain = rate_battle(pair, judgments)
    weighted = rate_battle(pair, judgments, strong_weight=2.0)
    assert plain.local_score_a == pytest.approx(0.5)  # strong counts like a win by default
    assert weighted.local_score_a == pytest.approx(2 / 3)  # 2 / (2 + 1)
    for rated in (plain, weighted):
        assert (rated.votes_a, rated.votes_b, rated.ties, rated.invalid) == (1, 1, 1, 0)


@pytest.mark.parametrize("bad", [0.5, 0.0, -1.0, math.inf, math.nan, True])
def test_strong_weight_must_be_at_least_one(bad: float) -> None:
    with pytest.raises(ValueError, match="strong_weight"):
        judge_votes(both_orders("j", A, B), strong_weight=bad)


def test_local_score_uses_vote_weights_and_counts_unweighted_votes_as_one() -> None:
    votes = [
        Vote(judge="j1", verdict=A, weight=0.25),
        Vote(judge="j2", verdict=B, weight=0.75),
        Vote(judge="j3", verdict=A),  # stored before weights existed: counts 1
        Vote(judge="j4", verdict=TIE, weight=0.0),
    ]
    score, counts = local_score(votes)
    assert score == pytest.approx(1.25 / 2.0)
    assert counts == VoteCounts(2, 1, 1, 0)
    assert local_score([Vote(judge="j", verdict=A, weight=0.0)])[0] == 0.5
    with pytest.raises(ValueError, match=r"'bad'.*weight"):
        local_score([Vote(judge="bad", verdict=A, weight=-1.0)])


def test_soft_margin_is_the_mean_certainty_over_both_orders() -> None:
    # ORDER_AB: P(A)=0.9 for model_a; ORDER_BA shows model_b first, P(B)=0.7 is model_a's.
    first, second = with_soft(both_orders("j", A, B), (0.9, 0.1, 0.0), (0.2, 0.7, 0.1))
    assert soft_margin(first, second, A) == pytest.approx(((0.9 - 0.1) + (0.7 - 0.2)) / 2)
    # A margin against the chosen answer is clamped at 0 (a sampled retry may pick the less
    # likely verdict).
    assert soft_margin(first, second, B) == 0.0
    assert soft_margin(first, second, TIE) is None
    assert soft_margin(*both_orders("j", A, B), A) is None  # no soft probabilities


def test_soft_votes_weigh_the_local_score_by_certainty() -> None:
    pair = make_pair(judges=("sure", "unsure"))
    judgments = with_soft(both_orders("sure", A, B), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)) + (
        with_soft(both_orders("unsure", B, A), (0.4, 0.6, 0.0), (0.6, 0.4, 0.0))
    )
    rated = rate_battle(pair, judgments)
    assert [(v.judge, v.verdict) for v in rated.votes] == [("sure", A), ("unsure", B)]
    assert [v.weight for v in rated.votes] == pytest.approx([1.0, 0.2])
    assert rated.local_score_a == pytest.approx(1.0 / 1.2)
    assert (rated.votes_a, rated.votes_b) == (1, 1)


def test_soft_votes_of_one_order_only_are_not_used() -> None:
    judgments = both_orders("j", A, B)
    with_soft(judgments[:1], (0.6, 0.4, 0.0))
    assert [v.weight for v in judge_votes(judgments)] == [1.0]


def test_corrupt_soft_probabilities_are_an_error_naming_the_judgment() -> None:
    judgments = with_soft(both_orders("j", A, B), (1.5, 0.0, 0.0), (0.0, 1.0, 0.0))
    with pytest.raises(ValueError, match=r"'j'.*soft probabilities"):
        judge_votes(judgments)


# ---------------------------------------------------------------------------------------------
# Constrained verdicts and verdict token probabilities
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "verdict", "strong"),
    [
        ('{"explanation": "B handles None.", "verdict": "B"}', B, False),
        ('{"explanation": "", "verdict": "a"}', A, False),
        ('{"explanation": "same", "verdict": "C"}', TIE, False),
        ('```json\n{"explanation": "x", "verdict": "[[A]]"}\n```', A, False),
        ('Sure! {"Verdict": " B ", "explanation": "y"} Done.', B, False),
        ('{"explanation": "x", "verdict": "A>>B"}', A, True),
        ('{"explanation": "x", "verdict": "tie"}', TIE, False),
    ],
)
def test_read_json_verdict(text: str, verdict: int, strong: bool) -> None:
    got = read_json_verdict(text)
    assert (got.verdict, got.strong, got.reason) == (verdict, strong, "")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[[A]]", "no JSON object"),
        ('{"explanation": "cut off by max_tok', "no JSON object"),
        ('{"explanation": "x", "verdict": }', "invalid JSON"),
        ('{"explanation": "x"}', "no 'verdict' key"),
        ('{"explanation": "x", "verdict": "D"}', "'D' is not one of A, B, C"),
        ('{"explanation": "x", "verdict": 1}', "is not one of"),
        ('{"explanation": "x", "verdict": "A or B"}', "is not one of"),
    ],
)
def test_read_json_verdict_invalid_with_reason(text: str, reason: str) -> None:
    got = read_json_verdict(text)
    assert got.verdict == INVALID
    assert reason in got.reason


def test_verdict_json_schema_lists_the_choices_after_the_explanation() -> None:
    schema = verdict_json_schema()
    assert list(schema["properties"]) == ["explanation", "verdict"]
    assert schema["properties"]["verdict"]["enum"] == list(VERDICT_CHOICES) == ["A", "B", "C"]
    assert schema["required"] == ["explanation", "verdict"]
    assert "maxLength" not in schema["properties"]["explanation"]


def test_verdict_json_schema_bounds_the_explanation_to_leave_room_for_the_verdict() -> None:
    # An unbounded explanation ran past max_tokens on a real vLLM server (SmolLM2-135M, 4 of 16
    # answers cut before the verdict, bench/check_vllm_verdicts.py); bounded, none was.
    assert explanation_chars(256) == 224
    assert explanation_chars(10) == 1
    schema = verdict_json_schema(explanation_chars(1024))
    assert schema["properties"]["explanation"] == {"type": "string", "maxLength": 992}
    with pytest.raises(ValueError, match="max_explanation_chars"):
        verdict_json_schema(0)


@pytest.mark.parametrize(
    ("text", "verdict"), [("A", A), (" b\n", B), ("C", TIE), ("[[B]]", B), ("B is better", INVALID)]
)
def test_read_choice_verdict(text: str, verdict: int) -> None:
    got = read_choice_verdict(text)
    assert got.verdict == verdict
    assert ("not one of A, B, C" in got.reason) == (verdict == INVALID)


def test_verdict_probabilities_normalise_over_the_three_verdicts() -> None:
    top = [[("A", math.log(0.6)), ("B", math.log(0.2)), (" A", math.log(0.1)), ("x", -1.0)]]
    p_a, p_b, p_tie = verdict_probabilities(top)  # type: ignore[misc]
    assert (p_a, p_b, p_tie) == pytest.approx((0.7 / 0.9, 0.2 / 0.9, 0.0))


def test_verdict_probabilities_skip_leading_whitespace_and_brackets() -> None:
    top = [
        [(" ", -0.1), ("A", -3.0)],
        [("[[", -0.01)],
        [("C", math.log(0.5)), ("B]]", math.log(0.5))],
    ]
    assert verdict_probabilities(top) == pytest.approx((0.0, 0.5, 0.5))


def test_verdict_probabilities_none_without_a_verdict_token() -> None:
    assert verdict_probabilities([]) is None
    assert verdict_probabilities([[("{", -0.1), ("A", -5.0)]]) is None
    assert verdict_probabilities([[("The", -0.1), ("I", -2.0)]]) is None
    # "tie" is a verdict word but not a verdict token of the constrained answer (A, B, C).
    assert verdict_probabilities([[("A", -0.1), ("tie", -0.5)]]) == pytest.approx((1, 0, 0))


# ---------------------------------------------------------------------------------------------
# Rating a battle
# ---------------------------------------------------------------------------------------------


def test_rate_battle_fills_the_record() -> None:
    pair = make_pair(tokens_a=120, tokens_b=80, judges=("j1", "j2", "j3", "j4"))
    judgments = (
        both_orders("j1", A, B)  # votes A
        + both_orders("j2", A, B)  # votes A
        + both_orders("j3", B, A)  # votes B
        + both_orders("j4", A, A)  # contradicts itself: TIE
    )
    rated = rate_battle(pair, judgments)
    assert rated.status == RATED
    assert rated.failure_reason == ""
    assert (rated.battle_id, rated.challenge_id, rated.round_id) == (
        BATTLE,
        "challenge-1",
        "round-1",
    )
    assert (rated.model_a, rated.model_b) == ("alpha", "beta")
    assert [(v.judge, v.verdict) for v in rated.votes] == [
        ("j1", A),
        ("j2", A),
        ("j3", B),
        ("j4", TIE),
    ]
    assert (rated.votes_a, rated.votes_b, rated.ties, rated.invalid) == (2, 1, 1, 0)
    assert rated.local_score_a == pytest.approx(2 / 3)
    assert (rated.tokens_a, rated.tokens_b) == (120, 80)


def test_rate_battle_listed_judge_without_judgments_votes_invalid() -> None:
    pair = make_pair(judges=("j1", "silent"))
    rated = rate_battle(pair, both_orders("j1", B, A))
    assert [(v.judge, v.verdict) for v in rated.votes] == [("j1", B), ("silent", INVALID)]
    assert rated.status == RATED
    assert (rated.votes_b, rated.invalid) == (1, 1)
    assert rated.local_score_a == 0.0


@pytest.mark.parametrize(
    ("error_a", "error_b", "expected"),
    [
        ("timeout after 3 tries", "", ["alpha failed: timeout after 3 tries"]),
        ("", "HTTP 500", ["beta failed: HTTP 500"]),
        ("oom", "refused", ["alpha failed: oom", "beta failed: refused"]),
    ],
)
def test_rate_battle_failed_response(error_a: str, error_b: str, expected: list[str]) -> None:
    pair = make_pair(judges=("j1",), error_a=error_a, error_b=error_b)
    rated = rate_battle(pair, both_orders("j1", A, B))
    assert rated.status == FAILED
    for part in expected:
        assert part in rated.failure_reason
    assert len(rated.votes) == 0
    assert rated.local_score_a == 0.5


def test_rate_battle_all_invalid_fails() -> None:
    pair = make_pair(judges=("j1", "j2", "j3"))
    judgments = [*both_orders("j1", INVALID, A), make_judgment("j2", AB, A)]
    rated = rate_battle(pair, judgments)
    assert rated.status == FAILED
    assert rated.failure_reason == NO_VALID_VERDICT_REASON
    assert rated.invalid == 3
    assert len(rated.votes) == 3


def test_rate_battle_all_ties_is_rated() -> None:
    pair = make_pair(judges=("j1", "j2"))
    rated = rate_battle(pair, both_orders("j1", A, A) + both_orders("j2", TIE, TIE))
    assert rated.status == RATED
    assert rated.local_score_a == 0.5
    assert rated.ties == 2


def test_rate_battle_without_judges_fails() -> None:
    rated = rate_battle(make_pair(), [])
    assert rated.status == FAILED
    assert rated.failure_reason == NO_JUDGES_REASON


def test_rate_battle_without_listed_judges_takes_judges_from_judgments() -> None:
    rated = rate_battle(make_pair(), both_orders("j1", A, B))
    assert rated.status == RATED
    assert rated.local_score_a == 1.0


@pytest.mark.parametrize(
    ("pair", "judgments", "message"),
    [
        (make_pair(), both_orders("alpha", A, B), "contestant 'alpha'"),
        (make_pair(judges=("beta",)), [], "judges include a contestant"),
        (make_pair(judges=("j1",)), both_orders("j2", A, B), "'j2' is not one of"),
        (make_pair(), both_orders("j1", A, B, battle="other"), "belongs to battle 'other'"),
        (make_pair(model_a="same", model_b="same"), [], "both 'same'"),
        (make_pair(model_a=""), [], "must be set"),
    ],
)
def test_rate_battle_rejects_bad_input(
    pair: ResponsePair, judgments: list[Judgment], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        rate_battle(pair, judgments)


def test_rate_battle_rejects_response_of_wrong_model() -> None:
    pair = make_pair()
    pair.response_b.model_id = "gamma"
    with pytest.raises(ValueError, match="response_b is by 'gamma'"):
        rate_battle(pair, [])


def mirrored(pair: ResponsePair, judgments: list[Judgment]) -> tuple[ResponsePair, list[Judgment]]:
    """The same battle with model_a and model_b swapped; each showing keeps its position verdict.

    What ORDER_AB showed first (model_a) is, in the mirrored battle, ORDER_BA's first answer.
    """
    swapped = ResponsePair()
    swapped.CopyFrom(pair)
    swapped.model_a, swapped.model_b = pair.model_b, pair.model_a
    swapped.response_a.CopyFrom(pair.response_b)
    swapped.response_b.CopyFrom(pair.response_a)
    flipped = []
    for judgment in judgments:
        copy = Judgment()
        copy.CopyFrom(judgment)
        copy.order = BA if judgment.order == AB else AB
        flipped.append(copy)
    return swapped, flipped


judgment_strategy = st.tuples(
    st.sampled_from(["j1", "j2", "j3", "j4", "j5"]),
    st.sampled_from([AB, BA]),
    st.sampled_from([A, B, TIE, INVALID, UNSPECIFIED]),
    st.integers(min_value=1, max_value=3),
)


@given(st.lists(judgment_strategy, max_size=20))
def test_swapping_models_mirrors_local_score(raw: list[tuple[str, int, int, int]]) -> None:
    pair = make_pair()
    judgments = [make_judgment(j, o, v, attempts=n) for j, o, v, n in raw]
    rated = rate_battle(pair, judgments)
    other = rate_battle(*mirrored(pair, judgments))
    assert other.status == rated.status
    assert other.local_score_a == pytest.approx(1.0 - rated.local_score_a)
    assert (other.votes_a, other.votes_b) == (rated.votes_b, rated.votes_a)
    assert (other.ties, other.invalid) == (rated.ties, rated.invalid)


# ---------------------------------------------------------------------------------------------
# Judge statistics
# ---------------------------------------------------------------------------------------------


def stats_by_judge(
    battles: list[tuple[ResponsePair, list[Judgment]]],
) -> dict[str, arena_pb2.JudgeStats]:
    return {s.judge: s for s in judge_statistics(battles)}


def test_always_first_judge_is_position_biased_and_inconsistent() -> None:
    battles = []
    for i in range(6):
        battle = f"b{i}"
        pair = make_pair(battle=battle, tokens_a=100 + 10 * i, tokens_b=150)
        battles.append((pair, both_orders("first", A, A, battle=battle)))
    stats = stats_by_judge(battles)["first"]
    assert stats.pairs == 6
    assert stats.first_position_rate == 1.0
    assert stats.consistency == 0.0
    assert stats.tie_rate == 1.0
    assert stats.invalid_rate == 0.0
    assert math.isnan(stats.longer_pick_rate)  # it never voted decisively


def test_always_longer_judge() -> None:
    battles = []
    for i, (tokens_a, tokens_b) in enumerate([(300, 100), (100, 300), (250, 50), (40, 90)]):
        battle = f"b{i}"
        pair = make_pair(battle=battle, tokens_a=tokens_a, tokens_b=tokens_b)
        longer_is_a = tokens_a > tokens_b
        # Position verdict: A when the answer shown first is the longer one.
        ab = A if longer_is_a else B
        ba = B if longer_is_a else A
        battles.append((pair, both_orders("long", ab, ba, battle=battle)))
    stats = stats_by_judge(battles)["long"]
    assert stats.longer_pick_rate == 1.0
    assert stats.consistency == 1.0
    assert stats.first_position_rate == 0.5
    assert stats.tie_rate == 0.0


def test_judge_statistics_mixed_judge() -> None:
    battles = [
        # Consistent A vote; answers of different length, model_a shorter.
        (make_pair(battle="b1", tokens_a=50, tokens_b=90), both_orders("j", A, B, battle="b1")),
        # Consistent tie.
        (make_pair(battle="b2"), both_orders("j", TIE, TIE, battle="b2")),
        # One order unreadable: invalid vote, inconsistent pair.
        (make_pair(battle="b3"), both_orders("j", INVALID, A, battle="b3")),
        # Only one order: no pair, invalid vote.
        (make_pair(battle="b4"), [make_judgment("j", AB, B, battle="b4")]),
    ]
    stats = stats_by_judge(battles)["j"]
    assert stats.pairs == 3
    assert stats.consistency == pytest.approx(2 / 3)
    assert stats.tie_rate == pytest.approx(1 / 4)
    assert stats.invalid_rate == pytest.approx(1 / 7)
    assert stats.longer_pick_rate == 0.0  # picked the shorter answer in b1
    # Decisive position verdicts: b1 (A, B), b3 (A), b4 (B): 2 of 4 picked the first.
    assert stats.first_position_rate == pytest.approx(2 / 4)


def test_judge_statistics_several_judges_sorted_and_equal_lengths_ignored() -> None:
    pair = make_pair(tokens_a=100, tokens_b=100)
    judgments = both_orders("zed", A, B) + both_orders("amy", B, A)
    stats = judge_statistics([(pair, judgments)])
    assert [s.judge for s in stats] == ["amy", "zed"]
    assert all(math.isnan(s.longer_pick_rate) for s in stats)
    assert all(s.consistency == 1.0 for s in stats)


def test_judge_statistics_uses_latest_attempt() -> None:
    judgments = [
        make_judgment("j", AB, INVALID, attempts=1),
        make_judgment("j", AB, A, attempts=2),
        make_judgment("j", BA, B, attempts=1),
    ]
    stats = stats_by_judge([(make_pair(), judgments)])["j"]
    assert stats.invalid_rate == 0.0
    assert stats.consistency == 1.0


def test_judge_statistics_empty() -> None:
    assert judge_statistics([]) == []


def test_judge_statistics_rejects_judgment_of_other_battle() -> None:
    with pytest.raises(ValueError, match="belongs to battle"):
        judge_statistics([(make_pair(), both_orders("j", A, B, battle="elsewhere"))])


# ---------------------------------------------------------------------------------------------
# Ids
# ---------------------------------------------------------------------------------------------


def test_ids_are_deterministic_short_hex() -> None:
    first = battle_id("c1", "alpha", "beta")
    assert first == battle_id("c1", "alpha", "beta")
    assert re.fullmatch(r"[0-9a-f]{24}", first)
    assert judgment_id(first, "j", AB) == judgment_id(first, "j", AB)
    assert re.fullmatch(r"[0-9a-f]{24}", judgment_id(first, "j", AB))


def test_ids_are_distinct() -> None:
    battles = {
        battle_id("c1", "alpha", "beta"),
        battle_id("c1", "beta", "alpha"),
        battle_id("c2", "alpha", "beta"),
        battle_id("c1", "alpha", "gamma"),
    }
    assert len(battles) == 4
    judgments = {
        judgment_id(b, judge, order)
        for b in battles
        for judge in ("j1", "j2")
        for order in (AB, BA)
    }
    assert len(judgments) == 16
    assert not judgments & battles


def test_stable_id_separator_prevents_collisions() -> None:
    assert stable_id("ab", "c") != stable_id("a", "bc")
    assert stable_id("a", "") != stable_id("", "a")
    assert stable_id("x") == stable_id("x")


def test_stable_id_rejects_bad_parts() -> None:
    with pytest.raises(ValueError, match="NUL"):
        stable_id("a\x00b")
    with pytest.raises(ValueError, match="at least one"):
        stable_id()
    with pytest.raises(TypeError, match="part 1"):
        stable_id("a", 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", "a", "b"), "challenge_id"),
        (("c", "", "b"), "model_a"),
        (("c", "a", "a"), "both 'a'"),
    ],
)
def test_battle_id_rejects_bad_input(args: tuple[str, str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        battle_id(*args)


def test_judgment_id_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="order"):
        judgment_id("b", "j", arena_pb2.ORDER_UNSPECIFIED)
    with pytest.raises(ValueError, match="judge"):
        judgment_id("b", "", AB)


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("[[A]] " * 3000, A),
        ("Final verdict: [[B]] " * 2000, B),
        ("If [[A]], " * 3000, INVALID),
        ("[[A]]\n[[B]]\n[[C]]\n" * 1000, TIE),  # lines that repeat: the last one decides
    ],
)
def test_long_degenerate_answers_are_read(text: str, verdict: int) -> None:
    # A looping judge repeats itself up to max_tokens. The look-backs are bounded, so these
    # parse in milliseconds (bench/bench_verdicts.py); unbounded, the second took seconds.
    assert parse_verdict(text) == verdict


# ---------------------------------------------------------------------------------------------
# Verdict formats (judge.labels)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("labels", ["abc", "arena_hard"])
def test_every_instruction_of_a_format_echoed_is_no_verdict(labels: str) -> None:
    form = verdict_format(labels)
    for text in (form.system_prompt, form.first_instruction, form.choice_instruction,
                 form.json_instruction):
        got = read_verdict(text)
        assert got.verdict == INVALID, (text, got)


def test_arena_hard_format_asks_for_the_five_labels() -> None:
    form = verdict_format("arena_hard")
    assert form.choices == ARENA_HARD_LABELS == ("A>>B", "A>B", "A=B", "B>A", "B>>A")
    for label in ARENA_HARD_LABELS:
        assert f'"[[{label}]]"' in form.system_prompt
        assert f'"[[{label}]]"' in form.first_instruction
        assert f'"{label}"' in form.choice_instruction
    assert verdict_format("abc").system_prompt == JUDGE_SYSTEM_PROMPT
    echoed_then_decided = form.system_prompt + "\n\nB handles None. My final verdict is [[B>>A]]"
    decided = read_verdict(echoed_then_decided)
    assert (decided.verdict, decided.strong) == (B, True)
    with pytest.raises(ValueError, match="labels"):
        verdict_format("stars")


@pytest.mark.parametrize(
    ("text", "verdict", "strong"),
    [("A>>B", A, True), (" b > a ", B, False), ("[[A=B]]", TIE, False), ("B>>A\n", B, True)],
)
def test_read_choice_verdict_with_labels(text: str, verdict: int, strong: bool) -> None:
    got = read_choice_verdict(text, ARENA_HARD_LABELS)
    assert (got.verdict, got.strong) == (verdict, strong)
    assert read_judge_answer(text, "choice", "explain", "arena_hard").verdict == verdict


def test_read_choice_verdict_rejects_what_is_not_a_choice() -> None:
    assert read_choice_verdict("A", ARENA_HARD_LABELS).verdict == INVALID
    assert read_choice_verdict("A>>B").verdict == INVALID  # not one of A, B, C
    assert "not one of A>>B, A>B" in read_choice_verdict("C", ARENA_HARD_LABELS).reason


def test_json_schema_enum_follows_the_format() -> None:
    schema = verdict_json_schema(100, ARENA_HARD_LABELS)
    assert schema["properties"]["verdict"]["enum"] == list(ARENA_HARD_LABELS)
    got = read_json_verdict('{"explanation": "x", "verdict": "B>>A"}')
    assert (got.verdict, got.strong) == (B, True)


# A verdict taken back and corrected: the correction decides (never the retracted one).
RETRACTION_CASES: list[tuple[str, int]] = [
    ("Final verdict: [[A]]? No. [[B]].", B),
    ("Final verdict: [[A]]? No, [[B]]", B),
    ("[[A]]... no wait, [[B]]", B),
    ("Final verdict: [[A]]... no wait, [[B]]", B),
    ("Final verdict: [[A]]. Actually, [[B]].", B),
    ("My final verdict is [[A]]. Scratch that: [[B]].", B),
    ("Final verdict: [[A]], or rather [[B]].", B),
    ("Final verdict: [[A>B]]. Sorry, I mean [[B>A]].", B),
    ("Final verdict: [[A]]. No, [[B]]. No wait, [[C]].", TIE),
    ("Final verdict: [[A]]. Actually, [[B]] is better.", B),
    ("Final verdict: [[A]] (no wait, [[B]]).", B),
    ("Final verdict: [[A]]. Hmm, actually [[B]].", B),
    ("Final verdict: [[A]] — no, [[B]]", B),
    ("Final verdict: [[A]]\n\nHmm, earlier I said [[B]].", A),
    # Not retractions: no corrected verdict follows, or what follows is no verdict.
    ("Final verdict: [[A]]. No other answer comes close.", A),
    ("Final verdict: [[A]]. Actually, [[B]] also has a bug.", A),
    ("Final verdict: [[B]]. Actually, [[A]] was close.", B),
    ("It's [[B]], no contest.", B),
    ("Final verdict: [[A]]. No doubt [[B]] tried.", A),
]


@pytest.mark.parametrize(("text", "verdict"), RETRACTION_CASES)
def test_a_retracted_verdict_gives_way_to_its_correction(text: str, verdict: int) -> None:
    assert parse_verdict(text) == verdict, read_verdict(text)


# Two final statements: the same verdict counts, different verdicts are INVALID.
FINAL_STATEMENTS_CASES: list[tuple[str, int]] = [
    ("My final verdict is [[A]].\nFinal verdict: [[B]]", INVALID),
    ("Final verdict: [[B]]\n\nSome notes on style.\n\nMy final verdict is [[A]].", INVALID),
    ("Verdict: [[A]]\n...\nIn conclusion, [[B]].", INVALID),
    ("My final verdict is [[A]].\nFinal verdict: [[A]]", A),
    ("In conclusion, my final verdict is [[B>>A]]. Final verdict: [[B>>A]]", B),
    # A verdict on one criterion is no final statement: the overall one decides.
    ("Correctness verdict: [[B]]\nStyle verdict: [[A]]\nFinal verdict: [[B]]", B),
]


@pytest.mark.parametrize(("text", "verdict"), FINAL_STATEMENTS_CASES)
def test_final_statements_that_disagree_are_invalid(text: str, verdict: int) -> None:
    parsed = read_verdict(text)
    assert parsed.verdict == verdict, parsed
    if verdict == INVALID:
        assert parsed.reason.startswith("conflicting final statements:"), parsed.reason
