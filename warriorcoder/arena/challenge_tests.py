"""Tests of a challenge: the request that asks an attacker for them, and what is kept of its answer.

Pure: no models, no sandbox. A challenge's tests are plain Python run after an answer's code
(`solution + "\\n\\n" + tests`), so they may only *check* the answer: anything in them that
could stand in for the answer (a function or class that the task asks for, a lambda bound to
its name, an import of a module that holds "the solution") is dropped, and tests without a
single assert are no tests at all.
"""

from __future__ import annotations

import ast
import sys

from warriorcoder.arena.code_extraction import extract_python_code

TESTS_PROMPT = (
    "Write tests for the programming task below, as plain Python `assert` statements that a "
    "correct solution passes.\n\n"
    "Rules:\n"
    "- Do not solve the task: write no implementation of the functions or classes it asks for. "
    "The solution's code will be placed above your tests.\n"
    "- Call the functions and classes by the names the task gives them (if it gives none, use "
    "the most obvious name).\n"
    "- Use only the Python standard library: no test framework, no input(), no files, no "
    "network.\n"
    "- Write 3 to 8 asserts with exact expected values, including an edge case.\n"
    "- Reply with a single ```python code block and nothing else.\n\n"
    "[Task]\n{instruction}"
)


def prompt_for_tests(instruction: str) -> str:
    """The user message that asks an attacker for tests of its own challenge."""
    if not isinstance(instruction, str):
        raise TypeError(
            f"prompt_for_tests: instruction must be str, got {type(instruction).__name__}")
    if not instruction.strip():
        raise ValueError("prompt_for_tests: instruction is empty")
    return TESTS_PROMPT.format(instruction=instruction.strip())


def _is_stdlib_import(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        if node.level or node.module is None:
            return False  # relative imports reach the (absent) package of the solution
        modules = [node.module]
    else:
        modules = [alias.name for alias in node.names]
    return all(m.split(".")[0] in sys.stdlib_module_names for m in modules)


def _is_main_guard(node: ast.If) -> bool:
    """`if __name__ == "__main__":` (its body runs: the tests run as the main program)."""
    if not isinstance(node.test, ast.Compare):
        return False
    names = [node.test.left, *node.test.comparators]
    return any(isinstance(n, ast.Name) and n.id == "__name__" for n in names)


def _contains_assert(node: ast.AST) -> bool:
    return any(isinstance(n, ast.Assert) for n in ast.walk(node))


def _called_function(node: ast.stmt) -> str | None:
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        func = node.value.func
        if isinstance(func, ast.Name):
            return func.id
    return None


def clean_tests(code: str) -> str:
    """The checking part of test code, or "" when it holds no usable assert.

    Kept, at top level (and inside an `if __name__ == "__main__":` block): asserts, imports of
    standard-library modules, assignments of test data (not of lambdas), loops and `with`
    blocks that assert, and `test*` functions that assert (each is called once at the end
    unless the code calls it). Everything else is dropped: other functions and classes (they
    could replace the answer's), non-stdlib imports (`from solution import f`), prints.
    Code that does not parse gives "".
    """
    if not isinstance(code, str):
        raise TypeError(f"clean_tests: code must be str, got {type(code).__name__}")
    try:
        return _clean(ast.parse(code))
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # deep nesting, surrogates
        return ""


def _clean(tree: ast.Module) -> str:
    statements: list[ast.stmt] = []
    for node in tree.body:
        if isinstance(node, ast.If) and _is_main_guard(node):
            statements.extend(node.body)
        else:
            statements.append(node)
    kept: list[ast.stmt] = []
    test_functions: list[str] = []
    called: set[str] = set()
    for node in statements:
        if isinstance(node, ast.Assert):
            kept.append(node)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if _is_stdlib_import(node):
                kept.append(node)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            if node.value is not None and not isinstance(node.value, ast.Lambda):
                kept.append(node)
        elif isinstance(node, ast.For | ast.While | ast.With):
            if _contains_assert(node):
                kept.append(node)
        elif isinstance(node, ast.FunctionDef):
            if node.name.startswith("test") and not node.args.args and _contains_assert(node):
                kept.append(node)
                test_functions.append(node.name)
        elif (name := _called_function(node)) in test_functions:
            kept.append(node)
            called.add(name)
    if not any(_contains_assert(n) for n in kept):
        return ""
    lines = [ast.unparse(node) for node in kept]
    lines += [f"{name}()" for name in test_functions if name not in called]
    return "\n".join(lines) + "\n"


def extract_tests(answer: str) -> str:
    """The tests of an attacker's answer to `prompt_for_tests`: its Python code, cleaned."""
    return clean_tests(extract_python_code(answer))


def check_user_tests(tests: str) -> str | None:
    """None when user-supplied tests are usable as given, else what is wrong with them.

    User tests are run as written (they are the user's): they must parse and assert something.
    """
    if not tests.strip():
        return "tests are blank"
    if "\x00" in tests:
        return "tests contain a NUL character"
    try:
        tree = ast.parse(tests)
    except SyntaxError as err:
        return f"tests do not parse as Python: line {err.lineno}: {err.msg}"
    except (ValueError, RecursionError, MemoryError) as err:  # lone surrogates, deep nesting
        return f"tests do not parse as Python: {type(err).__name__}"
    if not _contains_assert(tree):
        return "tests contain no assert statement"
    return None
