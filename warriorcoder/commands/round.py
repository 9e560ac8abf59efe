"""`warriorcoder round start|status`: start a round on the challenger service, or show its
progress."""

from __future__ import annotations

import argparse
from typing import Any

from warriorcoder.commands.remote import add_remote_args, call, client_security


def add_parser(sub: Any) -> None:
    """Register `round`."""
    round_ = sub.add_parser("round", help="start a round or show its status (challenger service)")
    round_.add_argument("action", choices=("start", "status"))
    round_.add_argument("--challenger", required=True, metavar="HOST:PORT")
    round_.add_argument("--per-attacker", type=int, default=0,
                        help="challenges mined per attacker (default: the arena config's)")
    add_remote_args(round_)
    round_.set_defaults(func=cmd_round)


def cmd_round(args: argparse.Namespace) -> int:
    """StartRound or GetRoundStatus, printed in one line."""
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
    return 0
