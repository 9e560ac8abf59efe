"""`warriorcoder export`: have the exporter service write a round's dataset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from warriorcoder.commands.remote import add_remote_args, call, client_security


def add_parser(sub: Any) -> None:
    """Register `export`."""
    export = sub.add_parser("export", help="write a round's dataset (exporter service)")
    export.add_argument("--exporter", required=True, metavar="HOST:PORT")
    export.add_argument("--out", required=True, help="folder for the files (on the exporter)")
    add_remote_args(export)
    export.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """WriteExport into --out; prints the counts and the files written."""
    from warriorcoder.v1 import services_pb2

    out = str(Path(args.out).resolve())
    reply = call(args.exporter, "Exporter", "WriteExport",
                 services_pb2.ExportRequest(round_id=args.round_id, output_dir=out),
                 args.timeout, client_security(args))
    print(f"{reply.sft_records} SFT records, {reply.preference_records} preference pairs")
    for f in reply.files:
        print(f"  {f}")
    return 0
