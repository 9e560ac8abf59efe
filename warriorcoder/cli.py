"""The `warriorcoder` command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from warriorcoder.config import ConfigError, load_config

EPILOG = """examples:
  warriorcoder run --config examples/arena.yaml --run-dir runs/demo
  warriorcoder validate --config examples/arena.yaml
  warriorcoder leaderboard --run-dir runs/demo
"""


@contextmanager
def tqdm_bar(desc: str, total: int) -> Iterator[Any]:
    from tqdm import tqdm

    with tqdm(total=total or None, desc=f"{desc:<16}", unit="item", dynamic_ncols=True) as bar:
        yield bar


def _setup_logging(run_dir: Path | None, verbose: bool) -> None:
    from tqdm.contrib.logging import logging_redirect_tqdm  # noqa: F401  (keeps bars intact)

    handlers: list[logging.Handler] = []
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    handlers.append(console)
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(run_dir / "run.log")
        file_handler.setLevel(logging.INFO)
        handlers.append(file_handler)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
    )
    for noisy in ("httpx", "httpcore", "transformers", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_run(args: argparse.Namespace) -> int:
    from warriorcoder.pipeline import no_progress, run_arena_sync
    from warriorcoder.report import leaderboard_markdown

    config = load_config(args.config)  # validated before any model loads
    run_dir = Path(args.run_dir)
    _setup_logging(run_dir, args.verbose)
    try:
        result = run_arena_sync(
            config, run_dir, progress=no_progress if args.no_progress else tqdm_bar
        )
    except KeyboardInterrupt:
        print(f"\ninterrupted: rerun the same command to resume from {run_dir}", file=sys.stderr)
        return 130
    print()
    print(leaderboard_markdown(result.leaderboard))
    print(f"challenges: {result.challenges}")
    print(f"SFT records:        {len(result.export.sft):5d}  {run_dir / 'export' / 'sft.jsonl'}")
    print(f"preference pairs:   {len(result.export.preference):5d}  "
          f"{run_dir / 'export' / 'preference.jsonl'}")
    print(f"leaderboard:        {run_dir / 'export' / 'leaderboard.md'} (.json, .png)")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(f"{args.config}: valid; round {config.round_id!r}, {len(config.roster)} experts "
          f"({', '.join(e.id for e in config.roster)}), config hash {config.config_hash()}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    path = Path(args.run_dir) / "export" / "leaderboard.md"
    if not path.is_file():
        print(f"no leaderboard in {args.run_dir}: run `warriorcoder run` first", file=sys.stderr)
        return 1
    print(path.read_text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warriorcoder",
        description="WarriorCoder Arena: expert code models battle; the winners become training data.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run (or resume) an arena round in this process")
    run.add_argument("--config", required=True, help="arena YAML (see examples/arena.yaml)")
    run.add_argument("--run-dir", default="runs/default",
                     help="folder for the store, logs and exported dataset; rerun to resume "
                          "(default: %(default)s)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("-v", "--verbose", action="store_true", help="log progress to the console")
    run.set_defaults(func=cmd_run)

    validate = sub.add_parser("validate", help="check an arena config without loading models")
    validate.add_argument("--config", required=True)
    validate.set_defaults(func=cmd_validate)

    board = sub.add_parser("leaderboard", help="print the leaderboard of a finished run")
    board.add_argument("--run-dir", required=True)
    board.set_defaults(func=cmd_leaderboard)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
