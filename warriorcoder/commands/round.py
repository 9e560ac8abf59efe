"""`warriorcoder round start|status`: start a round on the challenger service, or show its
progress."""

from __future__ import annotations

import argparse
from typing import Any

from warriorcoder.commands.remote import add_remote_args, call, client_security


def add_parser(sub: Any) -> None:
    """Register `round`."""
    round_ = sub.add_parser(
        "round", help="start a round, or show its progress and whether it is complete "
                      "(challenger service)")
    round_.add_argument("action", choices=("start", "status"))
    round_.add_argument("--challenger", required=True, metavar="HOST:PORT")
    round_.add_argument("--per-attacker", type=int, default=0,
                        help="challenges mined per attacker (default: the arena config's)")
    add_remote_args(round_)
    round_.set_defaults(func=cmd_round)


def cmd_round(args: argparse.Namespace) -> int:
    """StartRound (one line) or GetRoundStatus (the counts, then whether the round is
    complete)."""
    from warriorcoder.v1 import services_pb2

    if args.action == "start":
        reply = call(args.challenger, "Challenger", "StartRound",
                     services_pb2.StartRoundRequest(round_id=args.round_id,
                                                    challenges_per_attacker=args.per_attacker),
                     args.timeout, client_security(args))
        print(f"round {reply.round_id}: {reply.challenges} challenges published")
    else:
        s = call(args.challenger, "Challenger", "GetRoundStatus",
                 services_pb2.GetRoundStatusRequest(round_id=args.round_id),
                 args.timeout, client_security(args))
        print(f"round {s.round_id}: {s.challenges} challenges, {s.responses} responses, "
              f"{s.judgments} judgments, {s.rated_battles} rated and {s.failed_battles} failed "
              "battles")
        print(round_state_line(s))
    return 0


def round_state_line(status: Any) -> str:
    """Whether the round is complete (a `RoundStatus`), and what is still in flight if not."""
    if status.complete:
        failed = (f" ({status.failed_battles} failed, each with its reason stored on the battle)"
                  if status.failed_battles else "")
        return (f"complete: every battle is rated or failed{failed}; write the dataset with "
                "`warriorcoder export`")
    if not status.challenges_ready:
        return ("not complete: the challenges are not final yet (mining or test writing is "
                "running, or failed: start the round again to finish it)")
    return (f"not complete: {status.pending_challenges} of {status.challenges} challenges "
            "still have battles to answer, judge or rate")
