"""`run_tests`: an answer against its tests, judged by a harness the answer cannot speak for.

The sandbox's program is the trusted harness (`harness_program.py`, stdlib only). The answer
and the tests never touch the disk, argv or the environment: they travel on a pipe that the
harness reads only after it has forked the zygote of the answer processes, so no process that
runs answer code ever holds the tests. The verdict is the record that the harness writes after
the last test, on a second pipe that only the harness holds, tagged with a nonce that only this
process and the harness know. Without that record a run never passes, whatever its exit status.

What the harness guarantees, and what it does not, is in docs/sandbox.md ("The test harness").
"""

from __future__ import annotations

import dataclasses
import json
import marshal
import os
import secrets
import threading
from functools import cache
from pathlib import Path

from warriorcoder.execution.sandbox import (
    RunResult,
    RunStatus,
    SandboxLimits,
    SandboxMode,
    TestResult,
    TestStatus,
    _run,
    resolve_mode,
)

PROGRAM = Path(__file__).with_name("harness_program.py")
# A record longer than this is not the harness's (it keeps its record under 60 kB).
MAX_RECORD_BYTES = 1 << 20
_REASON_CHARS = 300
_DEFAULT_LIMITS = SandboxLimits()


@cache
def harness_source() -> str:
    """The harness program's source (read once)."""
    return PROGRAM.read_text(encoding="utf-8")


@cache
def harness_program_text() -> str:
    """The sandbox's program without `main`'s call: the harness, compiled once here.

    Python never caches the bytecode of a main script, and compiling the harness takes
    ~13 ms a run; its marshalled code object (the same interpreter runs it: `base_interpreter`)
    loads in well under 1 ms. Marshal carries only this trusted code, never a value of a run.
    """
    code = compile(harness_source(), PROGRAM.name, "exec", dont_inherit=True, optimize=0)
    return f"import marshal\nexec(marshal.loads({marshal.dumps(code)!r}))\n"


def run_tests(solution: str, tests: str, limits: SandboxLimits = _DEFAULT_LIMITS, *,
              mode: SandboxMode | None = None) -> RunResult:
    """Run the answer `solution` against `tests` with the trusted harness (thread-safe).

    The harness, not the answer, decides: the answer is loaded as a module in its own process
    and every test runs in the harness, which records each result (`RunResult.tests`). PASSED
    only when its record says every test passed.
    """
    return run_harness(solution, tests, limits, resolve_mode(limits, mode))


def run_harness(solution: str, tests: str, limits: SandboxLimits, mode: SandboxMode) -> RunResult:
    """Run `solution` against `tests` with the harness in sandbox mode `mode`.

    Any str is accepted (NUL, lone surrogates, 10 MB): what cannot load or compile gives a
    FAILED result with a reason, never an exception.
    """
    for name, value in (("solution", solution), ("tests", tests)):
        if not isinstance(value, str):
            raise TypeError(f"run_tests: {name} must be a str, got {type(value).__name__}")
    nonce = secrets.token_hex(16)
    payload = json.dumps({"nonce": nonce, "answer": solution, "tests": tests,
                          "timeout_s": limits.timeout_s}, ensure_ascii=True).encode("ascii")
    payload_r, payload_w = os.pipe()
    record_r, record_w = os.pipe()
    program = f"{harness_program_text()}main({payload_r}, {record_w})\n"
    writer = threading.Thread(target=_write_payload, args=(payload_w, payload), daemon=True,
                              name="harness-payload")
    writer.start()
    try:
        run = _run(program, limits, mode, pass_fds=(payload_r, record_w))
    finally:
        os.close(payload_r)
        os.close(record_w)
        record = _read_record(record_r)
        os.close(record_r)
        writer.join(timeout=5.0)
    return interpret(run, record, nonce)


def _write_payload(fd: int, payload: bytes) -> None:
    """Feed the payload (length first); a harness that ended early closes the pipe."""
    try:
        data = memoryview(len(payload).to_bytes(8, "big") + payload)
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass  # the run ended without reading it all; its result says why
    finally:
        os.close(fd)


def _read_record(fd: int) -> bytes:
    """What is in the record pipe now (the run is over: nothing more can come)."""
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    size = 0
    while size <= MAX_RECORD_BYTES:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def parse_record(record: bytes, nonce: str) -> dict[str, object] | None:
    """The harness's record (the line that starts with `nonce`), or None when there is none."""
    prefix = nonce.encode("ascii") + b" "
    for line in record.split(b"\n"):
        if line.startswith(prefix):
            try:
                body = json.loads(line[len(prefix):])
            except (ValueError, RecursionError):
                return None
            return body if isinstance(body, dict) else None
    return None


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _REASON_CHARS else line[: _REASON_CHARS - 3] + "..."


def _tests_of(body: dict[str, object]) -> tuple[TestResult, ...]:
    out = []
    raw = body.get("tests")
    for item in raw if isinstance(raw, list) else []:
        if not (isinstance(item, list) and len(item) == 3 and all(isinstance(x, str)
                                                                   for x in item)):
            continue
        try:
            status = TestStatus(item[1])
        except ValueError:
            continue
        out.append(TestResult(item[0], status, item[2]))
    return tuple(out)


def interpret(run: RunResult, record: bytes, nonce: str) -> RunResult:
    """The run's result from the harness's record: PASSED only when the record exists and
    every one of its tests passed."""
    if run.status in (RunStatus.TIMEOUT, RunStatus.ERROR):
        return run
    body = parse_record(record, nonce)
    if body is None:
        # The harness never reported: something ended it early (the answer can kill it).
        if run.status is RunStatus.KILLED:
            return dataclasses.replace(run, reason=_one_line(f"no test record: {run.reason}"))
        how = run.reason or f"exit code {run.exit_code}"
        return dataclasses.replace(run, status=RunStatus.FAILED, reason=_one_line(
            f"no test record: the harness ended without reporting ({how})"))
    tests = _tests_of(body)
    omitted = body.get("omitted")
    extra_total, extra_passed = (omitted if isinstance(omitted, list) and len(omitted) == 2
                                 and all(type(x) is int for x in omitted) else (0, 0))
    total = len(tests) + extra_total
    passed = sum(t.status is TestStatus.PASSED for t in tests) + extra_passed
    result = dataclasses.replace(run, tests=tests, tests_passed=passed, tests_total=total)
    for key, what in (("harness_error", "harness error"), ("tests_error", "")):
        problem = body.get(key)
        if isinstance(problem, str) and problem:
            return dataclasses.replace(result, status=RunStatus.FAILED,
                                       reason=_one_line(f"{what}: {problem}" if what
                                                        else problem))
    if total == 0:
        return dataclasses.replace(result, status=RunStatus.FAILED,
                                   reason="the tests hold no test")
    if passed == total:
        return dataclasses.replace(result, status=RunStatus.PASSED, reason="")
    first = next((t for t in tests if t.status is not TestStatus.PASSED),
                 TestResult("a test left out of the shortened record", TestStatus.FAILED))
    status = RunStatus.TIMEOUT if first.status is TestStatus.TIMEOUT else RunStatus.FAILED
    if first.message.startswith("MemoryError"):
        status = RunStatus.KILLED
    if status is not RunStatus.FAILED:  # the harness stopped the answer: it did not exit
        result = dataclasses.replace(result, exit_code=None)
    load = body.get("load")
    note = f"; loading the answer raised {load}" if isinstance(load, str) and load else ""
    notes = body.get("notes")
    note += f"; {notes}" if isinstance(notes, str) and notes else ""
    reason = (f"{passed}/{total} tests passed; {first.name}: {first.status.value}: "
              f"{first.message}{note}")
    return dataclasses.replace(result, status=status, reason=_one_line(reason))
