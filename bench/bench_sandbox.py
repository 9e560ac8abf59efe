"""Sandbox overhead per run: a trivial program through `run_python` vs a bare subprocess.

    .venv/bin/python bench/bench_sandbox.py [--runs 40]

Both sides run the same interpreter (the base interpreter the sandbox uses), interleaved in
one process so that machine load hits them alike. The sandbox's time includes its launcher
process, namespaces, the jail's mounts, the limits and the output capture; "plain" is the
sandbox's fallback mode without namespaces. The last three rows run an answer with three
asserts: bare, as one program through `run_python` (how `run_tests` worked before the harness),
and through `run_tests`'s harness (answer process, zygote, per-test record).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from warriorcoder.execution import SandboxLimits, SandboxMode, run_python, run_tests, sandbox_info
from warriorcoder.execution.sandbox import base_interpreter

SOLUTION = "def add(a, b):\n    return a + b\n"
TESTS = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\nassert add(0.5, 0.25) == 0.75\n"


def _p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="runs per variant")
    args = parser.parse_args()
    exe = base_interpreter()[0]
    info = sandbox_info()
    # Any mode: the bench measures each mode it can run, forced one by one.
    limits = SandboxLimits(timeout_s=30.0, min_isolation=SandboxMode.PLAIN)

    def bare() -> None:
        subprocess.run([exe, "-I", "-c", "pass"], check=True)

    # An answer and its tests: today's way (one program, exit status 0 = passed) against the
    # harness of run_tests (the answer in its own process, the harness judges every assert).
    def bare_tests() -> None:
        subprocess.run([exe, "-I", "-c", SOLUTION + "\n\n" + TESTS], check=True)

    def one_program() -> None:
        assert run_python(SOLUTION + "\n\n" + TESTS, limits).passed

    def harness() -> None:
        result = run_tests(SOLUTION, TESTS, limits)
        assert result.passed and result.tests_total == 3, result.reason

    def jailed() -> None:
        assert run_python("pass", limits).passed

    def plain() -> None:
        assert run_python("pass", limits, mode=SandboxMode.PLAIN).passed

    variants: dict[str, Callable[[], None]] = {
        f"bare `{Path(exe).name} -I -c pass`": bare,
        f"run_python('pass'), mode {info.mode.value}": jailed,
    }
    # As root, plain needs an interpreter every user can run (docs/sandbox.md).
    plain_works = run_python("pass", limits, mode=SandboxMode.PLAIN).passed
    if info.mode is not SandboxMode.PLAIN and plain_works:
        variants["run_python('pass'), mode plain"] = plain
    elif not plain_works:
        print("mode plain: not available here (skipped)")
    variants["bare `python -I -c answer+tests`"] = bare_tests
    variants[f"answer+tests as one program (before), mode {info.mode.value}"] = one_program
    variants[f"run_tests harness (now), mode {info.mode.value}"] = harness
    times: dict[str, list[float]] = {name: [] for name in variants}
    for fn in variants.values():  # warm-up: page cache, first probe
        fn()
    for _ in range(args.runs):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)

    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"interpreter: {exe}; runs per variant: {args.runs}; interleaved")
    print(f"sandbox mode: {info.mode.value}; protections: {', '.join(info.protections)}")
    base = statistics.median(next(iter(times.values())))
    print(f"{'variant':60s} {'median ms':>10s} {'p90 ms':>8s} {'overhead':>9s}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:60s} {1000 * median:10.1f} {1000 * _p90(values):8.1f} "
              f"{1000 * (median - base):+8.1f}")


if __name__ == "__main__":
    main()
