"""`warriorcoder run`: run (or resume) an arena round in this process."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from warriorcoder.config import load_config
from warriorcoder.console.logs import setup_logging
from warriorcoder.console.progress import logs_above_bars, progress_factory


def add_parser(sub: Any) -> None:
    """Register `run`."""
    run = sub.add_parser("run", help="run (or resume) an arena round in this process")
    run.add_argument("--config", required=True, help="arena YAML (see examples/arena.yaml)")
    run.add_argument("--run-dir", default="runs/default",
                     help="folder for the store, logs and exported dataset; rerun to resume "
                          "(default: %(default)s)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("-v", "--verbose", action="store_true", help="log progress to the console")
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    """Run the round, then print the leaderboard and where the dataset went."""
    from warriorcoder.reporting.leaderboard import leaderboard_markdown
    from warriorcoder.stages.embedded import run_arena_sync

    config = load_config(args.config)  # validated before any model loads
    run_dir = Path(args.run_dir)
    setup_logging("INFO" if args.verbose else "WARNING", log_file=run_dir / "run.log")
    try:
        with logs_above_bars():
            result = run_arena_sync(config, run_dir,
                                    progress=progress_factory(not args.no_progress))
    except KeyboardInterrupt:
        print(f"\ninterrupted: rerun the same command to resume from {run_dir}", file=sys.stderr)
        return 130
    print()
    print(leaderboard_markdown(result.leaderboard))
    print(f"challenges: {result.challenges}")
    export = result.export
    # A kind with no records has no file (docs/exports.md): say so instead of naming a path.
    for label, count, name in (("SFT records:     ", export.sft_records, "sft.jsonl"),
                               ("preference pairs:", export.preference_records,
                                "preference.jsonl")):
        where = export.folder / name if count else "(no file: none this round)"
        print(f"{label}   {count:5d}  {where}")
    print(f"manifest:           {export.folder / 'manifest.json'} (dataset {export.dataset_id})")
    print(f"leaderboard:        {run_dir / 'export' / 'leaderboard.md'} (.json, .png)")
    board = result.leaderboard
    print(f"judge cost:         {board.judge_calls} calls, {board.judge_tokens} tokens, "
          f"{board.judge_tokens_per_record:.0f} tokens per exported record")
    return 0
