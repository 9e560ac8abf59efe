"""`warriorcoder export`: have the exporter service write a round's or a season's dataset."""

from __future__ import annotations

import argparse
from typing import Any

from warriorcoder.commands.remote import add_remote_args, call, client_security


def add_parser(sub: Any) -> None:
    """Register `export`."""
    export = sub.add_parser(
        "export", help="write a round's or a season's dataset (exporter service)",
        description="Have the exporter service write sft.jsonl, preference.jsonl, the "
                    "leaderboard files and manifest.json into a folder under its export root "
                    "(WARRIORCODER_EXPORT_ROOT on the exporter). See docs/exports.md.")
    export.add_argument("--exporter", required=True, metavar="HOST:PORT")
    export.add_argument("--out", required=True, metavar="FOLDER",
                        help="folder under the exporter's export root, e.g. round-1 (relative "
                             "to the root, or absolute under it; never '..' or a link)")
    export.add_argument("--season", action="store_true",
                        help="export every round of the arena: one record per instruction, "
                             "the best answer across rounds (--round-id is then ignored)")
    export.add_argument("--arena", default="",
                        help="the arena of --season (default: the exporter's configured arena)")
    add_remote_args(export)
    export.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """WriteExport into --out; prints the counts, the dataset id and the files written."""
    from warriorcoder.v1 import services_pb2

    # Sent as given: the folder is on the exporter's machine, under its export root, so the
    # client's working directory means nothing there.
    request = services_pb2.ExportRequest(round_id=args.round_id, output_dir=args.out,
                                         season=args.season, arena=args.arena)
    reply = call(args.exporter, "Exporter", "WriteExport", request, args.timeout,
                 client_security(args))
    print(f"{reply.sft_records} SFT records, {reply.preference_records} preference pairs "
          f"(rounds: {', '.join(reply.rounds)})")
    if reply.duplicates or reply.skipped:
        print(f"{reply.duplicates} duplicate instructions dropped, {reply.skipped} skipped "
              "(reasons in the manifest)")
    print(f"dataset {reply.dataset_id}: {reply.manifest}")
    for f in reply.files:
        print(f"  {f}")
    return 0
