"""`warriorcoder calibrate`: how often the roster's judges pick a known winner (the suite and
its report are warriorcoder.evaluation.calibration)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any, cast, get_args

from warriorcoder.config import load_config
from warriorcoder.console.logs import setup_logging
from warriorcoder.console.progress import logs_above_bars, progress_factory
from warriorcoder.evaluation import calibration
from warriorcoder.evaluation.calibration import (
    DEFAULT_PROBLEMS,
    REPORT_FILE,
    VisibleTests,
    format_report,
    run_calibration,
)


def add_parser(sub: Any) -> None:
    """Register `calibrate`."""
    parser = sub.add_parser(
        "calibrate",
        help="measure the roster's judges on known-answer battles (HumanEval canonical "
             "solutions against broken copies), alone and grounded by execution",
        description=calibration.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", required=True, help="arena YAML: its roster judges, its "
                        "judge and execution blocks apply")
    parser.add_argument("--problems", type=int, default=DEFAULT_PROBLEMS,
                        help="HumanEval problems to draw (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="draws the problems and orders the mutant candidates "
                             "(default: %(default)s)")
    parser.add_argument("--out", default="runs/calibration",
                        help="folder for the judgment store, log and calibration.json; rerun "
                             "to reuse stored judgments (default: %(default)s)")
    parser.add_argument("--visible-tests", choices=get_args(VisibleTests), default="half",
                        help="tests the arena's execution sees: 'half' hides every second "
                             "assert, so some mutants pass them; 'all' gives the full tests, "
                             "which every mutant fails by construction (default: %(default)s)")
    parser.add_argument("--timeout-s", type=float, default=None,
                        help="sandbox timeout per run (default: the config's execution.timeout_s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to the console")
    parser.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Run the known-answer suite and print its report."""
    config = load_config(args.config)
    out_dir = Path(args.out)
    setup_logging("INFO" if args.verbose else "WARNING", log_file=out_dir / "run.log")
    with logs_above_bars():
        report = asyncio.run(run_calibration(
            config, out_dir, problems=args.problems, seed=args.seed,
            visible=cast(VisibleTests, args.visible_tests), timeout_s=args.timeout_s,
            progress=progress_factory(not args.no_progress),
        ))
    print()
    print(format_report(report))
    print(f"\nreport: {out_dir / REPORT_FILE}")
    return 0
