"""`warriorcoder leaderboard`: print a round's or a season's leaderboard, of an embedded run
or from the rater."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from warriorcoder.commands.remote import add_remote_args, call, client_security


def add_parser(sub: Any) -> None:
    """Register `leaderboard`."""
    board = sub.add_parser("leaderboard", help="print the leaderboard of a run (embedded or "
                           "from the rater service)")
    board.add_argument("--run-dir", help="folder of an embedded run")
    board.add_argument("--rater", metavar="HOST:PORT", help="the rater service")
    board.add_argument("--season", action="store_true",
                       help="the season leaderboard: every battle of every round of the arena "
                            "(docs/ratings.md)")
    board.add_argument("--arena", default="",
                       help="with --season: the arena (default: the configured one)")
    add_remote_args(board)
    board.set_defaults(func=cmd_leaderboard)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """The rater's leaderboard (computed now), or the one an embedded run wrote; with --season
    or --round-id on a run folder, computed now from the run's store."""
    if args.arena and not args.season:
        print("leaderboard: --arena needs --season", file=sys.stderr)
        return 2
    if args.rater:
        from warriorcoder.reporting.leaderboard import leaderboard_markdown
        from warriorcoder.v1 import services_pb2

        board = call(args.rater, "Rater", "GetLeaderboard",
                     services_pb2.GetLeaderboardRequest(round_id=args.round_id,
                                                        season=args.season, arena=args.arena),
                     args.timeout, client_security(args))
        print(leaderboard_markdown(board))
        return 0
    if not args.run_dir:
        print("leaderboard: give --run-dir DIR or --rater HOST:PORT", file=sys.stderr)
        return 2
    if args.season or args.round_id:
        return _from_store(Path(args.run_dir), args.season, args.arena, args.round_id)
    path = Path(args.run_dir) / "export" / "leaderboard.md"
    if not path.is_file():
        print(f"no leaderboard in {args.run_dir}: run `warriorcoder run` first", file=sys.stderr)
        return 1
    print(path.read_text())
    return 0


def _from_store(run_dir: Path, season: bool, arena: str, round_id: str) -> int:
    """A season's or a round's board computed now from a run folder's store and config."""
    from warriorcoder.config import ConfigError, load_config
    from warriorcoder.reporting.leaderboard import leaderboard_markdown
    from warriorcoder.stages.rater import Rater
    from warriorcoder.storage.store import ArenaStore

    config_path, db_path = run_dir / "config.yaml", run_dir / "arena.db"
    if not db_path.is_file():
        print(f"no arena store in {run_dir}: run `warriorcoder run` first", file=sys.stderr)
        return 1
    try:
        config = load_config(config_path)
    except ConfigError as err:
        print(f"leaderboard: {err}", file=sys.stderr)
        return 1
    rater = Rater(config, ArenaStore.open_embedded(db_path))
    if season:
        board = rater.season_leaderboard(arena or config.arena)
        if board is None:
            print(f"arena {arena or config.arena!r} has no battles in {run_dir}", file=sys.stderr)
            return 1
    else:
        if rater.store.count("battles", {"round_id": round_id}) == 0:
            print(f"round {round_id!r} has no battles in {run_dir}", file=sys.stderr)
            return 1
        board = rater.leaderboard(round_id)
    print(leaderboard_markdown(board))
    return 0
