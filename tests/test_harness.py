"""The test harness: the answer cannot speak for itself, honest answers still pass, and no
answer text crashes extraction, the harness or the judge's execute path."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import random
import string
import subprocess
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_code_extraction import assert_code_of

from warriorcoder.arena.code_extraction import extract_python_code
from warriorcoder.arena.grounding import execution_score, passed_fraction
from warriorcoder.config import parse_config
from warriorcoder.execution import (
    RunResult,
    RunStatus,
    SandboxLimits,
    SandboxMode,
    TestStatus,
    run_python,
    run_tests,
)
from warriorcoder.execution import harness_program as hp
from warriorcoder.execution.harness import interpret, parse_record
from warriorcoder.stages.judge import Judge
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

LIMITS = SandboxLimits(timeout_s=10.0, min_isolation=SandboxMode.PLAIN)
TESTS = "assert f(2) == 4\nassert f(3) == 9\nassert abs(f(5) - 25) < 1e-9\n"


@cache
def runnable_modes() -> tuple[SandboxMode, ...]:
    """The sandbox modes that can run here (as root: jail and user-jail; plain needs an
    interpreter every user can execute)."""
    return tuple(m for m in SandboxMode if run_python("pass", LIMITS, mode=m).passed)


def modes() -> list[Any]:
    return [pytest.param(m, id=m.value) for m in SandboxMode]


def run_in(mode: SandboxMode, solution: str, tests: str = TESTS,
           limits: SandboxLimits = LIMITS) -> RunResult:
    if mode not in runnable_modes():
        pytest.skip(f"sandbox mode {mode.value} cannot run on this machine")
    return run_tests(solution, tests, limits, mode=mode)


# Each cheat with a part of the reason it must give ("" when any failing reason will do).
CHEATS: dict[str, tuple[str, str]] = {
    "os_exit_at_load": ("import os\ndef f(x):\n    return 0\nos._exit(0)\n",
                        "exited with status 0 (os._exit?) while loading"),
    "os_exit_in_call": ("import os\ndef f(x):\n    os._exit(0)\n",
                        "exited with status 0 (os._exit?) during test 1"),
    "system_exit": ("def f(x):\n    return 0\nraise SystemExit(0)\n",
                    "loading the answer raised SystemExit: 0"),
    "system_exit_in_call": ("def f(x):\n    raise SystemExit(0)\n", "SystemExit: 0"),
    "atexit": ("import atexit, os\natexit.register(os._exit, 0)\ndef f(x):\n    return 0\n",
               "registered 1 atexit handler(s): the harness ignores that"),
    "excepthook": ("import sys\nsys.excepthook = lambda *a: None\ndef f(x):\n    return 0\n",
                   "replaced sys.excepthook: the harness ignores that"),
    "always_equal": (("class A:\n    def __eq__(self, o): return True\n    def __ne__(self, o): "
                     "return False\n    def __sub__(self, o): return 0\n    def __abs__(self): "
                     "return 0\n    def __lt__(self, o): return True\ndef f(x):\n    return A()\n"),
                     "AssertionError at line 1"),
    "always_equal_int": (("class I(int):\n    def __eq__(self, o): return True\n    __hash__ = "
                         "int.__hash__\n    def __sub__(self, o): return 0\ndef f(x):\n"
                         "    return I(0)\n"), "AssertionError at line 1"),
    "always_equal_list": (("class L(list):\n    def __eq__(self, o): return True\ndef f(x):\n"
                          "    return L()\n"), "AssertionError at line 1"),
    "reexec_optimized": (("import os, sys\nif sys.flags.optimize == 0:\n"
                          "    os.execv(sys.executable, [sys.executable, '-O'] + sys.argv)\n"
                          "def f(x):\n    return 0\n"),
                         "re-executed the program with exec) while loading"),
    "read_own_file": (("import re, sys\nsrc = open(sys.argv[0]).read()\n"
                       "E = {int(a): int(b) for a, b"
                       " in re.findall(r'f\\((\\d+)\\) == (\\d+)', src)}\ndef f(x):\n"
                      "    return E.get(x, 0)\n"), ""),
    "search_memory": (("import gc, re\ndef f(x):\n    for o in gc.get_objects():\n"
                      "        if isinstance(o, str):\n"
                      "            m = re.search(r'f\\(%d\\) == (\\d+)' % x, o)\n"
                      "            if m:\n                return int(m.group(1))\n    return 0\n"),
                      "AssertionError at line 1"),
    "search_stack": (("import re, sys\ndef f(x):\n    frame = sys._getframe()\n    while frame:\n"
                     "        for v in [*frame.f_globals.values(), *frame.f_locals.values()]:\n"
                     "            m = re.search(r'f\\(%d\\) == (\\d+)' % x, str(v))\n"
                     "            if m:\n                return int(m.group(1))\n"
                     "        frame = frame.f_back\n    return 0\n"), "AssertionError at line 1"),
    "forge_record": (("import os\nfor fd in range(3, 256):\n    try:\n"
                      "        os.write(fd, b'PASSED "
                      "{\"tests\": []}\\n')\n    except OSError:\n        pass\ndef f(x):\n"
                     "    return 0\n"), ""),
    "print_pass": (("print('PASSED')\nimport sys\nsys.stdout.write('0/0 tests passed\\n')\n"
                   "def f(x):\n    return 0\n"), "AssertionError at line 1"),
    "kill_everything": (("import os, signal\ndef f(x):\n    for p in os.listdir('/proc'):\n"
                        "        if p.isdigit() and int(p) != os.getpid():\n            try:\n"
                        "                os.kill(int(p), signal.SIGKILL)\n"
                        "            except OSError:\n                pass\n    return 0\n"),
                        "no test record"),
    "fake_class": (("class A:\n    __class__ = property(lambda s: int)\n"
                   "    def __eq__(self, o): return True\n    def __index__(self): return 4\n"
                   "def f(x):\n    return A()\n"), "AssertionError at line 1"),
    "replace_builtins": (("import builtins\nbuiltins.AssertionError = type('X', (Exception,), {})\n"
                         "builtins.abs = lambda v: 0\ndef f(x):\n    return 0\n"),
                         "AssertionError at line 1"),
}


@pytest.mark.parametrize("mode", modes())
@pytest.mark.parametrize("cheat", sorted(CHEATS))
def test_every_cheat_fails_with_a_reason(mode: SandboxMode, cheat: str) -> None:
    solution, reason = CHEATS[cheat]
    result = run_in(mode, solution)
    assert result.status is not RunStatus.PASSED, result
    assert result.status is not RunStatus.ERROR, result  # the answer's failure, not ours
    assert result.tests_passed == 0
    assert result.reason and reason in result.reason, result.reason


def test_the_answer_cannot_shadow_builtins_or_modules_the_tests_use() -> None:
    # Tests that lean on the answer's `import math` get the real module, and `abs` is always
    # the built-in: an answer's own `abs` or `math` cannot answer the asserts for it.
    tests = "assert abs(f(5) - 25) < 1e-9\nassert math.isclose(f(6), 36)\n"
    cheat = ("def abs(v):\n    return 0\nclass math:\n    @staticmethod\n"
             "    def isclose(a, b):\n        return True\ndef f(x):\n    return 0\n")
    result = run_tests(cheat, tests, LIMITS)
    assert [t.status for t in result.tests] == [TestStatus.FAILED, TestStatus.FAILED]
    honest = run_tests("import math\ndef f(x):\n    return x * x\n", tests, LIMITS)
    assert honest.status is RunStatus.PASSED
    explicit = run_tests("def abs(v):\n    return -v\n", "from solution import abs\n"
                         "assert abs(2) == -2\nimport solution\nassert solution.abs(1) == -1\n",
                         LIMITS)
    assert explicit.status is RunStatus.PASSED, explicit.reason


@pytest.mark.parametrize("mode", modes())
def test_exit_status_never_counts(mode: SandboxMode) -> None:
    # The answer's process ends with status 0 before any test runs: no test runs at all,
    # even one that needs nothing from the answer.
    for tests in ("assert 1 == 1\n", "assert f(1) == 1\n"):
        result = run_in(mode, "import os\nos._exit(0)\n", tests)
        assert result.status is RunStatus.FAILED and "os._exit?" in result.reason
        assert result.tests_passed == 0 and result.exit_code == 0


SYSTEM_PYTHON = "/usr/bin/python3"
REPO = Path(__file__).resolve().parents[1]


def _everyone_can_run(path: str) -> bool:
    return os.path.exists(path) and all(
        os.stat(p).st_mode & 0o001 for p in [Path(path), *Path(path).resolve().parents])


def _cheats_elsewhere(mode: SandboxMode, uid: int | None) -> dict[str, dict[str, Any]]:
    """Every cheat through run_tests in a fresh process of SYSTEM_PYTHON (as `uid`): the modes
    this process cannot give (plain as root needs an interpreter every user can run;
    user-jail is what a non-root judge gets)."""
    if not _everyone_can_run(SYSTEM_PYTHON):
        pytest.skip(f"{SYSTEM_PYTHON} is missing or not executable by every user")
    if uid is not None and os.geteuid() != 0:
        pytest.skip("switching to another uid needs root")
    driver = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(REPO)!r})
        from warriorcoder.execution import SandboxLimits, SandboxMode, run_python, run_tests
        limits = SandboxLimits(timeout_s=10.0, min_isolation="plain")
        mode = SandboxMode({mode.value!r})
        if not run_python("pass", limits, mode=mode).passed:
            print(json.dumps(None))
            sys.exit(0)
        out = {{}}
        for name, (solution, tests) in json.loads(sys.stdin.read()).items():
            r = run_tests(solution, tests, limits, mode=mode)
            out[name] = {{"status": r.status.value, "reason": r.reason,
                         "passed": r.tests_passed, "isolation": r.isolation.value}}
        print(json.dumps(out))
    """)
    # Plain mode as non-root keeps the caller's uid: there a program can kill its caller
    # (docs/sandbox.md), and kill_everything would end this driver, not only the run.
    skip = {"kill_everything"} if mode is SandboxMode.PLAIN and uid is not None else set()
    jobs = {name: (solution, TESTS) for name, (solution, _) in CHEATS.items()
            if name not in skip}
    jobs["honest"] = (HONEST["sys_exit_main"][0], TESTS)
    done = subprocess.run([SYSTEM_PYTHON, "-I", "-c", driver], input=json.dumps(jobs),
                          capture_output=True, text=True, timeout=600, check=False, user=uid,
                          group=uid, extra_groups=[] if uid is not None else None)
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(done.stdout.splitlines()[-1])
    if results is None:
        pytest.skip(f"mode {mode.value} cannot run under {SYSTEM_PYTHON} here")
    return dict(results)


@pytest.mark.parametrize(("mode", "uid"), [
    pytest.param(SandboxMode.PLAIN, None, id="plain-as-root"),
    pytest.param(SandboxMode.USER_JAIL, 65534, id="user-jail-as-nobody"),
    pytest.param(SandboxMode.PLAIN, 65534, id="plain-as-nobody"),
])
def test_every_cheat_fails_under_the_system_interpreter(mode: SandboxMode,
                                                        uid: int | None) -> None:
    results = _cheats_elsewhere(mode, uid)
    assert results["honest"]["status"] == "passed", results["honest"]
    for cheat, (_, reason) in CHEATS.items():
        if cheat not in results:
            continue
        got = results[cheat]
        assert got["status"] not in ("passed", "error"), (cheat, got)
        assert got["passed"] == 0 and reason in got["reason"], (cheat, got)
        assert got["isolation"] == mode.value


HONEST: dict[str, tuple[str, str]] = {
    "main_guard": (("def f(x):\n    return x * x\n\nif __name__ == '__main__':\n"
                   "    print(f(int(input())))\n"), TESTS),
    "sys_exit_main": (("import sys\ndef f(x):\n    return x * x\ndef main():\n"
                      "    print(f(int(input())))\n    return 0\nsys.exit(main())\n"), TESTS),
    "unittest_main": (("import unittest\ndef f(x):\n    return x * x\nclass T(unittest.TestCase):\n"
                       "    def test_f(self):\n        self.assertEqual(f(2), 4)\n"
                       "unittest.main()\n"),
                      TESTS),
    "input_and_prints": ("n = int(input('n? '))\nprint('demo', n)\ndef f(x):\n    return x * x\n",
                         TESTS),
    "demo_code": ("def f(x):\n    return x * x\nfor i in range(3):\n    print(i, f(i))\n", TESTS),
    "from_solution_import": ("def f(x):\n    return x * x\n",
                             ("from solution import f\nimport solution\nassert f(2) == 4\n"
                             "assert solution.f(3) == 9\n")),
    "in_place": ("def sort_it(xs):\n    xs.sort()\n",
                 "xs = [3, 1, 2]\nsort_it(xs)\nassert xs == [1, 2, 3]\n"),
    "class_methods": (("class Solution:\n    def two_sum(self, nums, target):\n"
                      "        seen = {}\n        for i, n in enumerate(nums):\n"
                      "            if target - n in seen:\n"
                      "                return [seen[target - n], i]\n"
                      "            seen[n] = i\n"),
                      "assert Solution().two_sum([2, 7, 11], 9) == [0, 1]\n"),
    "exceptions": ("def f(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x\n",
                   ("try:\n    f(-1)\n    assert False\nexcept ValueError as e:\n"
                   "    assert 'negative' in str(e)\n")),
    "generators_and_types": (("from collections import Counter, namedtuple\nfrom fractions import "
                             "Fraction\nP = namedtuple('P', 'x y')\ndef g(n):\n    yield from "
                             "range(n)\ndef c(s):\n    return Counter(s)\ndef half(n):\n"
                             "    return Fraction(n, 2)\ndef p():\n    return P(1, 2)\n"),
                             ("assert list(g(3)) == [0, 1, 2]\nassert c('aab') == {'a': 2, 'b': 1}"
                             "\nfrom fractions import Fraction\nassert half(1) == Fraction(1, 2)\n"
                             "assert p() == (1, 2) and p().x == 1\n")),
    "callbacks": ("def apply(fn, xs):\n    return [fn(x) for x in xs]\n",
                  "assert apply(lambda v: v + 1, [1, 2]) == [2, 3]\n"),
    "humaneval_style": ("def add(a, b):\n    return a + b\n",
                        ("METADATA = {}\n\ndef check(candidate):\n    assert candidate(1, 2) == 3\n"
                        "    assert abs(candidate(0.1, 0.2) - 0.3) < 1e-9\n\ncheck(add)\n")),
    "linked_objects": (("class Node:\n    def __init__(self, v, nxt=None):\n        self.v = v\n"
                       "        self.nxt = nxt\ndef rev(h):\n    prev = None\n    while h:\n"
                       "        h.nxt, prev, h = prev, h, h.nxt\n    return prev\n"),
                       ("h = rev(Node(1, Node(2)))\nassert h.v == 2 and h.nxt.v == 1\n"
                       "assert h.nxt.nxt is None\n")),
}


@pytest.mark.parametrize("honest", sorted(HONEST))
def test_honest_answers_pass(honest: str) -> None:
    solution, tests = HONEST[honest]
    result = run_tests(solution, tests, LIMITS)
    assert result.status is RunStatus.PASSED, result.reason
    assert result.tests_total >= 1 and result.tests_passed == result.tests_total


@pytest.mark.parametrize("mode", modes())
def test_honest_answer_passes_in_every_mode(mode: SandboxMode) -> None:
    result = run_in(mode, HONEST["sys_exit_main"][0])
    assert result.status is RunStatus.PASSED and result.isolation is mode


def test_per_test_results_name_each_test() -> None:
    tests = ("data = [1, 2]\nassert f(1) == 1\nassert f(2) == 5, 'two'\n"
             "def test_zero():\n    assert f(0) == 0\n"
             "def test_boom():\n    f(None)\n"
             "import unittest\nclass T(unittest.TestCase):\n    def test_ok(self):\n"
             "        self.assertEqual(f(3), 3)\n    def test_bad(self):\n"
             "        self.assertEqual(f(3), 4)\n")
    result = run_tests("def f(x):\n    return x + 0\n", tests, LIMITS)
    got = [(t.name, t.status, t.message) for t in result.tests]
    assert got[0] == ("line 2: assert f(1) == 1", TestStatus.PASSED, "")
    assert got[1][1] is TestStatus.FAILED and got[1][2] == "AssertionError: two (line 3)"
    assert got[2] == ("test_zero", TestStatus.PASSED, "")
    assert got[3][0] == "test_boom" and got[3][1] is TestStatus.ERROR
    assert got[3][2].startswith("TypeError: unsupported operand") and "solution.py line 2" in \
        got[3][2]
    assert [(n, s) for n, s, _ in got[4:]] == [("T.test_ok", TestStatus.PASSED),
                                                ("T.test_bad", TestStatus.FAILED)]
    assert got[5][2] == "AssertionError: 3 != 4 (line 12)"
    assert (result.tests_passed, result.tests_total) == (3, 6)
    assert result.status is RunStatus.FAILED and result.reason.startswith("3/6 tests passed;")


def test_a_dead_answer_process_is_replaced_for_later_tests() -> None:
    solution = "import os\ndef f(x):\n    if x == 0:\n        os._exit(3)\n    return x\n"
    tests = "assert f(0) == 0\nassert f(1) == 1\nassert f(2) == 2\n"
    result = run_tests(solution, tests, LIMITS)
    assert [t.status for t in result.tests] == [TestStatus.ERROR, TestStatus.PASSED,
                                                TestStatus.PASSED]
    assert "exited with status 3 during test 1" in result.tests[0].message


def test_a_timeout_names_the_test_and_skips_the_rest() -> None:
    solution = "def f(x):\n    while x == 2:\n        pass\n    return x\n"
    tests = "assert f(1) == 1\nassert f(2) == 2\nassert f(3) == 3\n"
    result = run_tests(solution, tests, SandboxLimits(timeout_s=2.0,
                                                      min_isolation=SandboxMode.PLAIN))
    assert result.status is RunStatus.TIMEOUT
    assert [t.status for t in result.tests] == [TestStatus.PASSED, TestStatus.TIMEOUT,
                                                TestStatus.ERROR]
    assert "during test 2" in result.tests[1].message
    assert result.tests[2].message == "not run: the time limit was reached"


def test_broken_tests_fail_with_a_reason() -> None:
    result = run_tests("def f(x):\n    return x\n", "assert f(1) ==\n", LIMITS)
    assert result.status is RunStatus.FAILED
    assert result.reason.startswith("the tests do not compile: SyntaxError at line 1")
    assert run_tests("x = 1", "y = 2\n", LIMITS).tests_total == 1  # no check: one unit


def test_hostile_text_gives_a_result_never_an_exception() -> None:
    for solution in ("def f(x):\n    return '\ud800'\n", "def f(x):\x00\n", "(" * 5000,
                     "-" * 1500 + "1", "x = 1\n" * 200_000):
        result = run_tests(solution, TESTS, LIMITS)
        assert result.status is RunStatus.FAILED and result.reason
    result = run_tests("def f(x):\n    return x * x\n", "assert f(2) == 4  # \udc80\n", LIMITS)
    assert result.status is RunStatus.FAILED and "do not compile" in result.reason


# -- the record: only the harness's counts --------------------------------------------------


def _run(status: RunStatus = RunStatus.PASSED) -> RunResult:
    return RunResult(status, "", "", "", 0.1, 0)


def test_no_record_is_never_a_pass() -> None:
    result = interpret(_run(), b"PASSED\n", "nonce")
    assert result.status is RunStatus.FAILED and result.reason.startswith("no test record")
    forged = b'othernonce {"tests": [["t", "passed", ""]]}\n'
    assert interpret(_run(), forged, "nonce").status is RunStatus.FAILED
    good = b'junk\nnonce {"tests": [["t", "passed", ""]]}\n'
    assert interpret(_run(), good, "nonce").status is RunStatus.PASSED
    assert interpret(_run(RunStatus.KILLED), b"", "n").status is RunStatus.KILLED
    assert parse_record(b"nonce {not json", "nonce") is None


def test_a_shortened_record_keeps_its_counts() -> None:
    record = b'n {"tests": [["a", "passed", ""]], "omitted": [5, 4]}'
    result = interpret(_run(), record, "n")
    assert (result.tests_passed, result.tests_total) == (5, 6)
    assert result.status is RunStatus.FAILED


# -- pure parts of the harness, in process ---------------------------------------------------


def test_split_tests_units() -> None:
    source = ("import math\nx = 3\nassert x == 3\nfor i in range(2):\n    assert i < 2\n"
              "def helper(v):\n    return v\ndef check(c):\n    assert c(1) == 1\ncheck(helper)\n"
              "def test_a():\n    assert True\nif __name__ == '__main__':\n    assert x\n"
              "    unittest.main()\nprint('end')\n")
    names = [name for name, _ in hp.split_tests(source)]
    assert names == ["line 3: assert x == 3", "line 4: for i in range(2):",
                     "line 10: check(helper)", "line 14: assert x", "test_a"]
    with pytest.raises(SyntaxError):
        hp.split_tests("assert (")


plain_data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    | st.binary() | st.complex_numbers(allow_nan=False),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner)
    | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=4)
    | st.frozensets(st.integers() | st.text(max_size=3), max_size=4),
    max_leaves=20,
)


@given(plain_data)
@settings(max_examples=200, deadline=None)
def test_plain_data_crosses_unchanged(value: object) -> None:
    sender = hp.Peer(-1, -1, strict=False)
    receiver = hp.Peer(-1, -1, strict=True)
    import json
    wire = json.loads(json.dumps(sender.encode(value)))
    back = receiver.decode(wire)
    assert back == value and type(back) is type(value)


@given(st.recursive(st.none() | st.integers() | st.text(max_size=4),
                    lambda inner: st.lists(inner, max_size=3), max_leaves=10))
@settings(max_examples=200, deadline=None)
def test_malformed_wire_data_is_a_protocol_error(junk: object) -> None:
    receiver = hp.Peer(-1, -1, strict=True)
    try:
        receiver.decode(junk)
    except hp.ProtocolError:
        pass


def test_the_answer_cannot_name_arbitrary_objects_in_the_harness() -> None:
    receiver = hp.Peer(-1, -1, strict=True)
    for wire in (["R", "unittest.mock", "ANY"], ["R", "os", "_exit"], ["M", "os"],
                 ["Y", "f"], ["Y", 7], ["R", "math", "sqrt.__globals__"], ["R", "math"]):
        with pytest.raises(hp.ProtocolError):
            receiver.decode(wire)
    # A shared function or module the answer names is its own copy (a proxy), never the
    # harness's: builtins.exec from the answer is not the harness's exec.
    for wire in (["R", "builtins", "exec"], ["R", "builtins", "getattr"], ["R", "math", "sqrt"],
                 ["M", "builtins"], ["R", "math", "pi"]):
        value = receiver.decode(wire)
        assert isinstance(value, hp.Proxy) and value._wc_ref() == wire
    from collections import Counter
    assert receiver.decode(["R", "builtins", "int"]) is int  # value types compare as themselves
    assert receiver.decode(["R", "collections", "Counter"]) is Counter
    assert receiver.decode(["R", "builtins", "ValueError"]) is ValueError


def test_a_handle_never_equals_plain_data() -> None:
    peer = hp.Peer(-1, -1, strict=True)
    handle: Any = hp.Proxy(peer, 1, "A")
    assert handle != 4 and handle.__eq__(4) is False and (4 == handle) is False
    assert handle not in [4, 5]
    for operation in (lambda: handle - 4, lambda: 4 - handle, lambda: abs(handle),
                      lambda: handle < 4, lambda: float(handle)):
        with pytest.raises(TypeError):
            operation()
    shadowed: Any = hp.Proxy(peer, 2, "I", 0)  # an int subclass: its built-in value counts
    assert shadowed == 0 and shadowed != 4 and shadowed - 4 == -4
    assert isinstance(shadowed, int) and not isinstance(handle, int) and type(shadowed) is hp.Proxy


# -- the answer's process speaks the protocol: every message it sends is the answer's -------

# Finds the answer process's end of the channel, as an answer can (gc, the harness's globals).
_PEER = ("    import gc\n"
         "    peer = next(o for o in gc.get_objects() if type(o).__name__ == 'Peer')\n")
# Harness code that, run in the harness, would mark every test passed in its record.
_PATCH_RECORD = (
    "g = globals()\n"
    "if '_wc_orig' not in g:\n"
    "    g['_wc_orig'] = g['_record']\n"
    "    def patched(fd, nonce, body, orig=g['_wc_orig']):\n"
    "        for t in body['tests']:\n"
    "            t[1] = 'passed'\n"
    "            t[2] = ''\n"
    "        orig(fd, nonce, body)\n"
    "    g['_record'] = patched\n"
)
# Run in the harness, this leaves a mark the tests can see; run in the answer, it does not.
_MARK = "import builtins; builtins.wc_mark = True"
_MARK_EXPR = "setattr(__import__('builtins'), 'wc_mark', True)"
_MARK_TESTS = "assert f(2) == 4\nimport builtins\nassert not hasattr(builtins, 'wc_mark')\n"


def _attack(requests: str) -> str:
    """An honest `f` that first sends `requests` (lines using `peer`) to the harness."""
    body = "".join(f"    try:\n        {line}\n    except BaseException:\n        pass\n"
                   for line in requests.splitlines())
    return f"def f(x):\n{_PEER}{body}    return x * x\n"


PROTOCOL_ATTACKS: dict[str, str] = {
    "exec": f"peer.request('call', ['R', 'builtins', 'exec'], peer.encode(({_MARK!r},)), ['D'])",
    "eval": (f"peer.request('call', ['R', 'builtins', 'eval'], peer.encode(({_MARK_EXPR!r},)), "
             "['D'])"),
    "setattr": ("peer.request('call', ['R', 'builtins', 'setattr'], "
                "['T', ['M', 'builtins'], 'wc_mark', True], ['D'])"),
    "getattr_of_builtins": ("h = peer.request('getattr', ['M', 'builtins'], 'exec')\n"
                            f"peer.request('call', peer._handle(h), peer.encode(({_MARK!r},)), "
                            "['D'])"),
    "getattr_by_call": ("h = peer.request('call', ['R', 'builtins', 'getattr'], "
                        "['T', ['M', 'builtins'], '__import__'], ['D'])\n"
                        "peer.request('call', ['R', 'builtins', 'exec'], "
                        f"peer.encode(({_MARK!r},)), ['D'])"),
    "import": ("m = peer.request('call', ['R', 'builtins', '__import__'], "
               "['T', '__main__'], ['D'])\n"
               "peer.request('setattr', peer._handle(m), '_TEST_LINES', ['L'])\n"
               "peer.request('call', ['R', 'builtins', 'setattr'], "
               "['T', ['M', 'builtins'], 'wc_mark', True], ['D'])"),
    "harness_functions": ("peer.request('call', ['R', '__main__', '_record'], ['T', 1], ['D'])\n"
                          "peer.request('call', ['Y', 1], ['T'], ['D'])\n"
                          "peer.request('call', ['Y', '_record'], ['T'], ['D'])\n"
                          "peer.request('call', ['M', 'builtins'], ['T'], ['D'])"),
    "setitem_on_module": ("peer.request('setitem', ['M', 'builtins'], 'wc_mark', True)\n"
                          "peer.request('setattr', ['M', 'builtins'], 'wc_mark', True)"),
}


@pytest.mark.parametrize("attack", sorted(PROTOCOL_ATTACKS))
def test_the_answer_cannot_run_code_in_the_harness(attack: str) -> None:
    # The harness acts only on objects it gave the answer itself; a reference to builtins.exec,
    # eval, getattr, setattr or __import__ is the answer's own copy, in the answer's process.
    result = run_tests(_attack(PROTOCOL_ATTACKS[attack]), _MARK_TESTS, LIMITS)
    assert result.tests[-1].status is TestStatus.PASSED, result.tests


def test_the_answer_cannot_rewrite_the_record() -> None:
    # The reproducer: the answer had the harness exec code that marked every test passed.
    answer = _attack("peer.request('call', ['R', 'builtins', 'exec'], "
                     f"peer.encode(({_PATCH_RECORD!r},)), ['D'])").replace("x * x", "0")
    result = run_tests(answer, TESTS, LIMITS)
    assert result.status is not RunStatus.PASSED and result.tests_passed == 0, result


@pytest.mark.parametrize("name", ["exec", "eval"])
def test_a_tests_callback_cannot_be_made_to_run_code_in_the_harness(name: str) -> None:
    # A function of the tests that calls what it is given (`apply(g, x)`) gets the answer's
    # own exec: the code runs in the answer's process, not in the harness.
    code = _PATCH_RECORD.replace("g = globals()",
                                 "import sys\ng = sys.modules['__main__'].__dict__")
    arg = code if name == "exec" else f"exec({code!r})"
    answer = f"def f(apply):\n    apply({name}, {arg!r})\n    return 0\n"
    tests = "def apply(g, x):\n    return g(x)\nassert f(apply) == 4\nassert f(apply) == 9\n"
    result = run_tests(answer, tests, LIMITS)
    assert result.status is not RunStatus.PASSED and result.tests_passed == 0, result
    honest = run_tests("def f(apply):\n    return apply(int, '4')\n",
                       "def apply(g, x):\n    return g(x)\nassert f(apply) == 4\n", LIMITS)
    assert honest.status is RunStatus.PASSED, honest.reason


# The answer rewrites the "loaded" message that names its top level (its process is its own).
_LOADED = ("import __main__, gc\n_send = __main__.send_message\n"
           "def _rewrite(fd, message):\n"
           "    if isinstance(message, list) and message and message[0] == 'loaded':\n"
           "        peer = next(o for o in gc.get_objects() if type(o).__name__ == 'Peer')\n"
           "{change}"
           "    return _send(fd, message)\n"
           "__main__.send_message = _rewrite\n"
           "def nothing(*a, **k):\n    return None\n"
           "def zero(*a, **k):\n    return 0\n"
           "def f(x):\n    return 0\n")
UNITTEST_TESTS = ("import unittest\nclass T(unittest.TestCase):\n    def test_a(self):\n"
                  "        self.assertEqual(f(2), 4)\n    def test_b(self):\n"
                  "        self.assertEqual(f(3), 9)\nunittest.main()\n")
LOADED_CHEATS: dict[str, tuple[str, str]] = {
    "unittest_runner": (("        globals()['__wc_unittest__'] = nothing\n"
                         "        message[2]['__wc_unittest__'] = ['H', 'nothing', 'function']\n"),
                        UNITTEST_TESTS),
    "builtins_dict": ("        message[2]['__builtins__'] = peer.encode({'abs': zero})\n",
                      "assert abs(f(2) - 4) < 1e-9\nassert abs(f(3) - 9) < 1e-9\n"),
    "builtins_name": (("        globals()['abs'] = zero\n"
                       "        message[2]['abs'] = ['H', 'zero', 'function']\n"),
                      "assert abs(f(2) - 4) < 1e-9\nassert abs(f(3) - 9) < 1e-9\n"),
    "name_and_dunders": (("        for k in ('__name__', '__spec__', '__path__', '__all__', "
                          "'__getattr__', '__loader__'):\n"
                          "            globals()[k] = nothing\n"
                          "            message[2][k] = ['H', 'nothing', 'function']\n"),
                         "from solution import *\n" + TESTS),
}


@pytest.mark.parametrize("cheat", sorted(LOADED_CHEATS))
def test_the_answer_cannot_name_the_harnesss_own_names(cheat: str) -> None:
    # The harness filters the answer's names itself and sets its own last: the unittest runner,
    # __builtins__, __name__ and built-in names are never the answer's.
    change, tests = LOADED_CHEATS[cheat]
    result = run_tests(_LOADED.format(change=change), tests, LIMITS)
    assert result.status is not RunStatus.PASSED and result.tests_passed == 0, result


def test_a_star_import_of_the_answer_leaves_builtins_alone() -> None:
    tests = "from solution import *\nassert abs(f(2) - 4) < 1e-9\nassert g() == 1\n"
    cheat = run_tests("def abs(v):\n    return 0\ndef f(x):\n    return 0\ndef g():\n"
                      "    return 1\n", tests, LIMITS)
    assert [t.status for t in cheat.tests] == [TestStatus.FAILED, TestStatus.PASSED]
    honest = run_tests("import math\ndef f(x):\n    return x * x\ndef g():\n    return 1\n",
                       tests, LIMITS)
    assert honest.status is RunStatus.PASSED, honest.reason


def test_stop_iteration_out_of_a_call_cannot_end_the_tests_loop() -> None:
    # all(map(...)) would stop at the first case and be True with no case checked.
    tests = ("cases = [(2, 4), (3, 9)]\nassert all(map(lambda c: f(c[0]) == c[1], cases))\n"
             "assert not any(map(lambda c: f(c[0]) != c[1], cases))\n")
    cheat = run_tests("def f(x):\n    raise StopIteration\n", tests, LIMITS)
    assert cheat.status is RunStatus.FAILED and cheat.tests_passed == 0, cheat
    assert "RuntimeError: the answer's call raised StopIteration" in cheat.tests[0].message
    honest = run_tests("def f(x):\n    return x * x\ndef g(n):\n    yield from range(n)\n",
                       tests + "assert list(g(2)) == [0, 1]\n", LIMITS)
    assert honest.status is RunStatus.PASSED, honest.reason


def test_the_answer_cannot_stand_in_for_a_function_the_tests_define() -> None:
    # The statement before test_b's definition raises, so test_b is never defined by the tests:
    # the harness's call test_b() must not reach the answer's own test_b.
    answer = ("def f(x):\n    if x == 0:\n        raise ValueError\n    return 0\n"
              "def test_b():\n    pass\n")
    tests = "x = f(0)\ndef test_a():\n    assert f(2) == 4\ndef test_b():\n    assert f(3) == 9\n"
    result = run_tests(answer, tests, LIMITS)
    assert [t.status for t in result.tests] == [TestStatus.ERROR, TestStatus.ERROR], result.tests
    # The same with a name the tests import: the answer's own `isclose` never answers.
    answer = answer.replace("def test_b():\n    pass\n", "def isclose(a, b):\n    return True\n")
    tests = ("x = f(0)\nfrom math import isclose\nassert isclose(x, 0)\n"
             "assert isclose(f(2), 4)\n")
    result = run_tests(answer, tests, LIMITS)
    assert [t.status for t in result.tests] == [TestStatus.ERROR, TestStatus.ERROR], result.tests


def test_an_assert_of_the_tests_that_the_answer_catches_still_fails() -> None:
    # The tests hand the answer a checking callback; the answer calls it and swallows its
    # AssertionError. The assert failed in the harness: the test fails.
    tests = ("def check(v):\n    assert v == 4\nassert f(2, check) is None\n"
             "import unittest\nclass T(unittest.TestCase):\n    def test_cb(self):\n"
             "        def cb(v):\n            self.assertEqual(v, 9)\n        f(3, cb)\n")
    cheat = run_tests("def f(x, cb):\n    try:\n        cb(0)\n    except AssertionError:\n"
                      "        pass\n", tests, LIMITS)
    assert [t.status for t in cheat.tests] == [TestStatus.FAILED, TestStatus.FAILED], cheat.tests
    assert "in a function of the tests that the answer called" in cheat.tests[0].message
    honest = run_tests("def f(x, cb):\n    cb(x * x)\n", tests, LIMITS)
    assert honest.status is RunStatus.PASSED, honest.reason


def test_the_answer_cannot_replace_a_method_of_the_tests_objects() -> None:
    # The tests hand the answer their TestCase; it may set data attributes of the tests'
    # objects (a linked list's `nxt`), never replace `assertEqual`.
    tests = ("import unittest\nclass T(unittest.TestCase):\n    def test_a(self):\n"
             "        prepare(self)\n        self.assertEqual(f(2), 4)\n")
    cheat = run_tests("def prepare(case):\n    case.assertEqual = lambda *a: None\n"
                      "def f(x):\n    return 0\n", tests, LIMITS)
    assert cheat.status is RunStatus.FAILED and cheat.tests_passed == 0, cheat
    honest = run_tests("def link(a, b):\n    a.nxt = b\n    a.val = 5\n",
                       "class Node:\n    val = 0\n"
                       "    def __init__(self):\n        self.nxt = None\n"
                       "a, b = Node(), Node()\nlink(a, b)\nassert a.nxt is b and a.val == 5\n",
                       LIMITS)
    assert honest.status is RunStatus.PASSED, honest.reason


def test_an_int_subclass_is_an_int_to_the_tests() -> None:
    answer = ("class MyInt(int):\n    pass\nclass MyStr(str):\n    def shout(self):\n"
              "        return self.upper()\ndef f(x):\n    return MyInt(x * x)\n"
              "def s():\n    return MyStr('hi')\n")
    tests = ("assert isinstance(f(2), int) and f(2) == 4\nassert isinstance(s(), str)\n"
             "assert s().shout() == 'HI'\nassert type(f(2)) is not int\n")
    result = run_tests(answer, tests, LIMITS)
    assert result.status is RunStatus.PASSED, result.reason


# -- no answer crashes the judge: fuzz and a fixed corpus ------------------------------------


@given(st.text(max_size=3000))
@settings(max_examples=300, deadline=None)
def test_extract_python_code_never_raises(text: str) -> None:
    assert_code_of(text, extract_python_code(text))


@given(st.text(alphabet=string.printable + "`~-(\x00\ud800\u00e9", max_size=400))
@settings(max_examples=300, deadline=None)
def test_extract_python_code_never_raises_on_fence_like_text(text: str) -> None:
    answer = "```python\n" + text + "\n```\n" + text
    assert_code_of(answer, extract_python_code(answer))


@given(st.text(max_size=200))
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_harness_never_passes_or_raises_on_random_answers(text: str) -> None:
    result = run_tests(text, "assert f(1) == 2\n", SandboxLimits(timeout_s=3.0,
                                                                 min_isolation=SandboxMode.PLAIN))
    assert result.status in (RunStatus.FAILED, RunStatus.TIMEOUT, RunStatus.KILLED)


def _fuzz_answer(rng: random.Random) -> str:
    """One generated answer: prose, fences, code, deep nesting, control and odd characters."""
    pieces = [
        lambda: "Here is the answer:\n",
        lambda: "```python\ndef f(x):\n    return x\n```\n",
        lambda: "```" + rng.choice(["", "py", "python", "js", "pycon", "~~~"]) + "\n",
        lambda: "-" * rng.randint(1, 3000) + str(rng.randint(0, 9)),
        lambda: "(" * rng.randint(1, 3000),
        lambda: "[" * rng.randint(1, 200) + "]" * rng.randint(1, 200),
        lambda: ">>> " + rng.choice(["x = 1", "f(2)", "def g(): pass"]) + "\n",
        lambda: "\x00" * rng.randint(1, 5),
        lambda: "\ud800\udfff\udc80",
        lambda: "".join(rng.choice(string.printable) for _ in range(rng.randint(1, 80))),
        lambda: "    " * rng.randint(1, 50) + "return 1\n",
        lambda: "~" * rng.randint(3, 500) + "`\n",
        lambda: "x = " + "-" * rng.randint(1, 2000) + "1\n",
        lambda: "\n",
    ]
    return "".join(rng.choice(pieces)() for _ in range(rng.randint(1, 12)))


class FakeRunner:
    """Stands in for run_tests: counts the runs, and raises on some to show they are caught."""

    def __init__(self) -> None:
        self.runs = 0

    def __call__(self, solution: str, tests: str, limits: SandboxLimits) -> RunResult:
        self.runs += 1
        solution.encode("utf-8", "surrogatepass")
        if self.runs % 97 == 0:
            raise ValueError("stand-in failure")
        return RunResult(RunStatus.FAILED, "fake", "", "", 0.0, 1)


def _pair(i: int, text_a: str, text_b: str) -> arena_pb2.ResponsePair:
    pair = arena_pb2.ResponsePair(battle_id=f"b{i}", challenge_id=f"c{i}", model_a="alpha",
                                  model_b="beta", instruction="write f", tests="assert f(1)==1\n")
    # Protobuf strings are UTF-8: a lone surrogate never reaches a stored answer.
    pair.response_a.generation.text = text_a.encode("utf-8", "replace").decode()
    pair.response_b.generation.text = text_b.encode("utf-8", "replace").decode()
    return pair


def test_a_fixed_corpus_of_10000_answers_never_crashes_the_judge(tmp_path: Path) -> None:
    config = parse_config({
        "round_id": "r1",
        "roster": [{"id": n, "backend": "fake", "model": "fake:prefer-first"}
                   for n in ("alpha", "beta", "gamma")],
        "execution": {"enabled": True, "timeout_s": 5, "concurrency": 8},
    })
    from warriorcoder.backends import load_backend

    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    runner = FakeRunner()
    stage = Judge(config, {e.id: load_backend(e) for e in config.roster}, store,
                  test_runner=runner)
    rng = random.Random(10)
    answers = [_fuzz_answer(rng) for _ in range(10_000)]
    for answer in answers:  # the raw text, lone surrogates included
        assert_code_of(answer, extract_python_code(answer))
    crashes = 0
    statuses: set[int] = set()
    for start in range(0, len(answers), 500):
        chunk = answers[start:start + 500]
        pairs = [_pair(start + i, chunk[i], chunk[i - 1]) for i in range(len(chunk))]
        try:
            results = asyncio.run(stage.execute(pairs))
        except Exception:  # noqa: BLE001 - counted: the target is zero
            crashes += 1
            continue
        assert len(results) == len(pairs)
        statuses.update(r.status for pair in results.values() for r in pair)
    assert crashes == 0
    assert runner.runs > 0
    assert arena_pb2.EXECUTION_STATUS_ERROR in statuses  # the stand-in's failures, caught


# -- the execution score ----------------------------------------------------------------------


def _result(status: arena_pb2.ExecutionStatus, passed: int = 0,
            total: int = 0) -> arena_pb2.ExecutionResult:
    return arena_pb2.ExecutionResult(status=status, tests_passed=passed, tests_total=total)


def test_fraction_score_gives_partial_credit() -> None:
    passed = arena_pb2.EXECUTION_STATUS_PASSED
    failed = arena_pb2.EXECUTION_STATUS_FAILED
    a, b = _result(failed, 3, 4), _result(failed, 1, 4)
    assert execution_score(a, b) == 0.5
    assert execution_score(a, b, "fraction") == pytest.approx(0.75)
    assert execution_score(_result(passed, 4, 4), _result(failed, 0, 4), "fraction") == 1.0
    # Without per-test results (no code, killed before the record): 1 if passed, else 0.
    assert passed_fraction(_result(arena_pb2.EXECUTION_STATUS_NO_CODE)) == 0.0
    assert execution_score(_result(passed), _result(failed, 2, 4), "fraction") == 0.75
    with pytest.raises(ValueError, match="score must be one of"):
        execution_score(a, b, "best")


def test_a_lone_surrogate_in_a_humaneval_completion_is_a_failed_sample() -> None:
    # It used to abort `warriorcoder eval humaneval` with UnicodeEncodeError.
    from warriorcoder.evaluation import load_problems
    from warriorcoder.evaluation.humaneval import Completion, execute_samples

    problem = next(p for p in load_problems() if p.task_id == "HumanEval/0")
    for text in ("```python\ndef has_close_elements(n, t):\n    return '\ud800'\n```",
                 "    return '\udc80' == 1\n"):
        [result] = execute_samples([problem], [[Completion(text)]])
        assert not result.samples[0].passed and result.samples[0].reason


def test_tests_text_from_models_never_raises() -> None:
    from warriorcoder.arena.challenge_tests import check_user_tests, clean_tests, extract_tests

    for text in ("assert x == '\ud800'\n", "assert " + "-" * 5000 + "1\n", "(" * 3000,
                 "assert " + "[" * 300 + "]" * 300 + "\n"):
        for cleaned in (clean_tests(text), extract_tests(f"```python\n{text}\n```")):
            # Nothing usable, or test code that parses and asserts.
            assert cleaned == "" or ("assert" in cleaned and ast.parse(cleaned))
        assert check_user_tests(text) is not None or "assert" in text


def test_execution_results_store_the_per_test_results() -> None:
    from warriorcoder.stages.judge import execution_result_pb

    run = run_tests("def f(x):\n    return x * x\n", "assert f(2) == 4\nassert f(3) == 8\n",
                    LIMITS)
    pb = execution_result_pb("e1", "alpha", run)
    assert (pb.tests_passed, pb.tests_total) == (1, 2)
    assert [(t.name, t.status) for t in pb.tests] == [
        ("line 1: assert f(2) == 4", arena_pb2.TEST_CASE_STATUS_PASSED),
        ("line 2: assert f(3) == 8", arena_pb2.TEST_CASE_STATUS_FAILED)]
    assert pb.tests[1].message == "AssertionError at line 2: assert f(3) == 8"
    assert execution_score(pb, pb, "fraction") == 0.5


def test_a_lone_surrogate_from_a_server_becomes_a_replacement_character() -> None:
    # Protobuf, the store and files take only UTF-8: the text is made safe where it enters.
    from warriorcoder.backends.base import GenerationResult
    from warriorcoder.stages.model_calls import to_generation_pb

    result = GenerationResult("m", "a\ud800b\udc80é", 1, 1, 0.1, "stop")
    assert result.text == "a\ufffdb\ufffdé"
    assert to_generation_pb(result).text == result.text
    assert GenerationResult("m", "plain é", 1, 1, 0.1, "stop").text == "plain é"
