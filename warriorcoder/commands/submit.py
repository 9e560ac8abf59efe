"""`warriorcoder submit`: add your own instructions (and their tests) to a running round."""

from __future__ import annotations

import argparse
from typing import Any

from warriorcoder.commands.remote import add_remote_args, call, client_security


def add_parser(sub: Any) -> None:
    """Register `submit`."""
    submit = sub.add_parser("submit", help="add your own instructions to a round")
    submit.add_argument("--challenger", required=True, metavar="HOST:PORT")
    submit.add_argument("--file", required=True,
                        help=".txt (one instruction per line) or .jsonl (field 'instruction', "
                             "optional 'tests')")
    add_remote_args(submit)
    submit.set_defaults(func=cmd_submit)


def cmd_submit(args: argparse.Namespace) -> int:
    """SubmitInstructions with the file's instructions; prints accepted and rejected counts."""
    from warriorcoder.stages.challenger import read_user_items
    from warriorcoder.v1 import services_pb2

    items = read_user_items(args.file)
    tests = [i.tests for i in items] if any(i.tests for i in items) else []
    reply = call(args.challenger, "Challenger", "SubmitInstructions",
                 services_pb2.SubmitInstructionsRequest(round_id=args.round_id,
                                                        instructions=[i.instruction for i in items],
                                                        tests=tests),
                 args.timeout, client_security(args))
    print(f"{reply.accepted} accepted, {reply.already_accepted} already accepted (the round holds "
          f"them), {reply.rejected} rejected (duplicates or benchmark leaks)")
    return 0
