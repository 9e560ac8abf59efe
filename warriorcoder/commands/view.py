"""`warriorcoder view`: the battle viewer over an embedded run's folder, in a browser."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

DEFAULT_PORT = 8765


def add_parser(sub: Any) -> None:
    """Register `view`."""
    view = sub.add_parser(
        "view",
        help="browse a run's battles, judges and winners (read-only web pages)",
        description="Serve the battle viewer over an embedded run's folder: the leaderboard "
        "with intervals, the judge table and funnel, the battle list with filters, and each "
        "battle with its answers, verdicts, tests and export decision. Read-only; the pages "
        "refresh while a round runs. Distributed mode: the rater serves the same pages "
        "(WARRIORCODER_VIEWER_PORT). See docs/viewer.md.",
    )
    view.add_argument("--run-dir", required=True, help="folder of an embedded run "
                      "(the one given to `warriorcoder run`)")
    view.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (default: %(default)s, this machine only)")
    view.add_argument("--port", type=int, default=DEFAULT_PORT,
                      help="port to listen on; 0 picks a free one (default: %(default)s)")
    view.add_argument("--round", dest="round_id", default=None,
                      help="round shown first (default: the run's config.yaml round)")
    view.set_defaults(func=cmd_view)


def cmd_view(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C."""
    from warriorcoder.config import load_config
    from warriorcoder.storage.store import ArenaStore
    from warriorcoder.viewer.server import ViewerSource, serve_until_cancelled

    run_dir = Path(args.run_dir)
    db = run_dir / "arena.db"
    if not db.is_file():
        print(f"view: {run_dir} holds no arena.db: give the folder of a `warriorcoder run`",
              file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print(f"view: --port must be 0..65535, got {args.port}", file=sys.stderr)
        return 2
    config_file = run_dir / "config.yaml"
    config = load_config(config_file) if config_file.is_file() else None
    source = ViewerSource(
        open_store=lambda: ArenaStore.open_embedded(db),
        config=config,
        export_dir=run_dir / "export",
        default_round=args.round_id or (config.round_id if config else None),
        label=str(run_dir),
    )

    def ready(port: int) -> None:
        print(f"viewer: http://{args.host}:{port}/  (Ctrl-C stops)", flush=True)

    try:
        asyncio.run(serve_until_cancelled(source, args.host, args.port, ready))
    except KeyboardInterrupt:
        return 0
    except OSError as error:
        print(f"view: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    return 0
