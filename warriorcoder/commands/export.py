"""`warriorcoder export`: write a round's or a season's dataset, by the exporter service or from
an embedded run's folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from warriorcoder.commands.remote import add_remote_args, call, client_security


def add_parser(sub: Any) -> None:
    """Register `export`."""
    export = sub.add_parser(
        "export", help="write a round's or a season's dataset (exporter service or run folder)",
        description="Write sft.jsonl, preference.jsonl, the leaderboard files and manifest.json. "
                    "With --exporter the service writes them into a folder under its export "
                    "root (WARRIORCODER_EXPORT_ROOT on the exporter); with --run-dir they are "
                    "computed from an embedded run's store and written into --out here. "
                    "See docs/exports.md.")
    export.add_argument("--exporter", metavar="HOST:PORT", help="the exporter service")
    export.add_argument("--run-dir", help="folder of an embedded run (`warriorcoder run`)")
    export.add_argument("--out", required=True, metavar="FOLDER",
                        help="with --exporter: a folder under the exporter's export root, e.g. "
                             "round-1 (never '..' or a link); with --run-dir: a folder here")
    export.add_argument("--season", action="store_true",
                        help="export every round of the arena: one record per instruction, "
                             "the best answer across rounds (--round-id is then ignored)")
    export.add_argument("--arena", default="",
                        help="the arena of --season (default: the configured arena)")
    add_remote_args(export)
    export.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """WriteExport into --out, or an export of a run folder; prints the counts, the dataset id
    and the files written."""
    if bool(args.exporter) == bool(args.run_dir):
        print("export: give --exporter HOST:PORT or --run-dir DIR", file=sys.stderr)
        return 2
    if args.arena and not args.season:
        print("export: --arena needs --season", file=sys.stderr)
        return 2
    if args.run_dir:
        return _from_run_dir(args)
    from warriorcoder.v1 import services_pb2

    # Sent as given: the folder is on the exporter's machine, under its export root, so the
    # client's working directory means nothing there.
    request = services_pb2.ExportRequest(round_id=args.round_id, output_dir=args.out,
                                         season=args.season, arena=args.arena)
    reply = call(args.exporter, "Exporter", "WriteExport", request, args.timeout,
                 client_security(args))
    _print(reply.sft_records, reply.preference_records, list(reply.rounds), reply.duplicates,
           reply.skipped, reply.dataset_id, reply.manifest, list(reply.files))
    return 0


def _from_run_dir(args: argparse.Namespace) -> int:
    """The export of a run folder's round (default: its configured round) or season."""
    from warriorcoder.config import ConfigError, load_config
    from warriorcoder.exports.folder import ExportPathError, ExportRoot
    from warriorcoder.stages.exporter import Exporter, ExportScope
    from warriorcoder.stages.rater import Rater
    from warriorcoder.storage.store import ArenaStore

    run_dir = Path(args.run_dir)
    if not (run_dir / "arena.db").is_file():
        print(f"export: no arena store in {run_dir}: run `warriorcoder run` first",
              file=sys.stderr)
        return 1
    try:
        config = load_config(run_dir / "config.yaml")
    except ConfigError as err:
        print(f"export: {err}", file=sys.stderr)
        return 1
    store = ArenaStore.open_embedded(run_dir / "arena.db")
    rater = Rater(config, store)
    if args.season:
        arena = args.arena or config.arena
        board = rater.season_leaderboard(arena)
        what = f"arena {arena!r}"
    else:
        round_id = args.round_id or config.round_id
        board = rater.current_leaderboard(round_id)
        what = f"round {round_id!r}"
    if board is None:
        print(f"export: {what} has no battles in {run_dir}", file=sys.stderr)
        return 1
    out = Path(args.out).expanduser().absolute()
    try:
        with ExportRoot(out.parent).open(out.name) as folder:
            export = Exporter(config, store).write(ExportScope.of(board), board, folder)
    except ExportPathError as err:
        print(f"export: {err}", file=sys.stderr)
        return 1
    manifest = export.manifest
    _print(export.sft_records, export.preference_records,
           [r["round_id"] for r in manifest["rounds"]], export.duplicates, export.skipped,
           export.dataset_id, str(export.files[-1]), [str(f) for f in export.files])
    return 0


def _print(sft: int, preference: int, rounds: list[str], duplicates: int, skipped: int,
           dataset_id: str, manifest: str, files: list[str]) -> None:
    print(f"{sft} SFT records, {preference} preference pairs (rounds: {', '.join(rounds)})")
    if duplicates or skipped:
        print(f"{duplicates} duplicate instructions dropped, {skipped} skipped "
              "(reasons in the manifest)")
    print(f"dataset {dataset_id}: {manifest}")
    for f in files:
        print(f"  {f}")
