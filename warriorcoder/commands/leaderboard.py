"""`warriorcoder leaderboard`: print the leaderboard of an embedded run or from the rater."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from warriorcoder.commands.remote import add_remote_args, call


def add_parser(sub: Any) -> None:
    """Register `leaderboard`."""
    board = sub.add_parser("leaderboard", help="print the leaderboard of a run (embedded or "
                           "from the rater service)")
    board.add_argument("--run-dir", help="folder of an embedded run")
    board.add_argument("--rater", metavar="HOST:PORT", help="the rater service")
    add_remote_args(board)
    board.set_defaults(func=cmd_leaderboard)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """The rater's leaderboard (computed now), or the one an embedded run wrote."""
    if args.rater:
        from warriorcoder.reporting.leaderboard import leaderboard_markdown
        from warriorcoder.v1 import services_pb2

        board = call(args.rater, "Rater", "GetLeaderboard",
                     services_pb2.GetLeaderboardRequest(round_id=args.round_id), args.timeout)
        print(leaderboard_markdown(board))
        return 0
    if not args.run_dir:
        print("leaderboard: give --run-dir DIR or --rater HOST:PORT", file=sys.stderr)
        return 2
    path = Path(args.run_dir) / "export" / "leaderboard.md"
    if not path.is_file():
        print(f"no leaderboard in {args.run_dir}: run `warriorcoder run` first", file=sys.stderr)
        return 1
    print(path.read_text())
    return 0
