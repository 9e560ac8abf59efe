"""The `warriorcoder` command."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

from warriorcoder.backends.base import BackendError
from warriorcoder.calibration import add_calibrate_parser
from warriorcoder.config import ConfigError, load_config
from warriorcoder.evaluation.commands import add_eval_parser
from warriorcoder.service.settings import ServiceName
from warriorcoder.training import add_train_parser

EPILOG = """examples:
  warriorcoder run --config examples/arena.yaml --run-dir runs/demo
  warriorcoder validate --config examples/arena.yaml
  warriorcoder leaderboard --run-dir runs/demo
  warriorcoder calibrate --config examples/arena.yaml --problems 20

distributed (services started with `warriorcoder serve NAME` or `make up`):
  warriorcoder round start --challenger 127.0.0.1:50051
  warriorcoder round status --challenger 127.0.0.1:50051
  warriorcoder submit --challenger 127.0.0.1:50051 --file instructions.txt
  warriorcoder leaderboard --rater 127.0.0.1:50054
  warriorcoder export --exporter 127.0.0.1:50055 --out runs/export
"""


@contextmanager
def tqdm_bar(desc: str, total: int) -> Iterator[Any]:
    from tqdm import tqdm

    with tqdm(total=total or None, desc=f"{desc:<16}", unit="item", dynamic_ncols=True) as bar:
        yield bar


def _setup_logging(run_dir: Path | None, verbose: bool) -> None:
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
    from tqdm.contrib.logging import logging_redirect_tqdm

    try:
        # Warnings print above the progress bars instead of through them.
        with logging_redirect_tqdm():
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
    board = result.leaderboard
    print(f"judge cost:         {board.judge_calls} calls, {board.judge_tokens} tokens, "
          f"{board.judge_tokens_per_record:.0f} tokens per exported record")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(f"{args.config}: valid; round {config.round_id!r}, {len(config.roster)} experts "
          f"({', '.join(e.id for e in config.roster)}), config hash {config.config_hash()}")
    return 0


def _rpc(address: str, stub_name: str, method: str, request: Any, timeout: float) -> Any:
    """One unary call; gRPC errors become a one-line message naming the status."""
    import grpc

    from warriorcoder.v1 import services_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = getattr(services_pb2_grpc, f"{stub_name}Stub")(channel)
        try:
            return getattr(stub, method)(request, timeout=timeout)
        except grpc.RpcError as err:
            raise RemoteError(f"{stub_name}.{method} at {address}: {err.code().name}: "
                              f"{err.details()}") from None


class RemoteError(RuntimeError):
    """A distributed verb's RPC failed."""


def cmd_round(args: argparse.Namespace) -> int:
    from warriorcoder.v1 import services_pb2

    if args.action == "start":
        reply = _rpc(args.challenger, "Challenger", "StartRound",
                     services_pb2.StartRoundRequest(round_id=args.round_id,
                                                    challenges_per_attacker=args.per_attacker),
                     args.timeout)
        print(f"round {reply.round_id}: {reply.challenges} challenges published")
    else:
        s = _rpc(args.challenger, "Challenger", "GetRoundStatus",
                 services_pb2.GetRoundStatusRequest(round_id=args.round_id), args.timeout)
        print(f"round {s.round_id}: {s.challenges} challenges, {s.responses} responses, "
              f"{s.judgments} judgments, {s.rated_battles} rated and {s.failed_battles} failed "
              "battles")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    from warriorcoder.stages.challenger import read_user_items
    from warriorcoder.v1 import services_pb2

    items = read_user_items(args.file)
    tests = [i.tests for i in items] if any(i.tests for i in items) else []
    reply = _rpc(args.challenger, "Challenger", "SubmitInstructions",
                 services_pb2.SubmitInstructionsRequest(round_id=args.round_id,
                                                        instructions=[i.instruction for i in items],
                                                        tests=tests),
                 args.timeout)
    print(f"{reply.accepted} accepted, {reply.rejected} rejected (duplicates or benchmark leaks)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from warriorcoder.v1 import services_pb2

    out = str(Path(args.out).resolve())
    reply = _rpc(args.exporter, "Exporter", "WriteExport",
                 services_pb2.ExportRequest(round_id=args.round_id, output_dir=out), args.timeout)
    print(f"{reply.sft_records} SFT records, {reply.preference_records} preference pairs")
    for f in reply.files:
        print(f"  {f}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import importlib

    from warriorcoder.service.runner import main as run_main

    module = importlib.import_module(f"services.{args.service}")
    return run_main(args.service, module.build, args.service_args)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    if args.rater:
        from warriorcoder.report import leaderboard_markdown
        from warriorcoder.v1 import services_pb2

        board = _rpc(args.rater, "Rater", "GetLeaderboard",
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

    board = sub.add_parser("leaderboard", help="print the leaderboard of a run (embedded or "
                           "from the rater service)")
    board.add_argument("--run-dir", help="folder of an embedded run")
    board.add_argument("--rater", metavar="HOST:PORT", help="the rater service")
    _remote_args(board)
    board.set_defaults(func=cmd_leaderboard)

    serve = sub.add_parser("serve", help="run one distributed service (settings: "
                           "WARRIORCODER_* environment variables)")
    serve.add_argument("service", choices=get_args(ServiceName))
    serve.add_argument("service_args", nargs=argparse.REMAINDER,
                       help="passed to the service, e.g. --settings FILE")
    serve.set_defaults(func=cmd_serve)

    round_ = sub.add_parser("round", help="start a round or show its status (challenger service)")
    round_.add_argument("action", choices=("start", "status"))
    round_.add_argument("--challenger", required=True, metavar="HOST:PORT")
    round_.add_argument("--per-attacker", type=int, default=0,
                        help="challenges mined per attacker (default: the arena config's)")
    _remote_args(round_)
    round_.set_defaults(func=cmd_round)

    submit = sub.add_parser("submit", help="add your own instructions to a round")
    submit.add_argument("--challenger", required=True, metavar="HOST:PORT")
    submit.add_argument("--file", required=True,
                        help=".txt (one instruction per line) or .jsonl (field 'instruction', "
                             "optional 'tests')")
    _remote_args(submit)
    submit.set_defaults(func=cmd_submit)

    export = sub.add_parser("export", help="write a round's dataset (exporter service)")
    export.add_argument("--exporter", required=True, metavar="HOST:PORT")
    export.add_argument("--out", required=True, help="folder for the files (on the exporter)")
    _remote_args(export)
    export.set_defaults(func=cmd_export)
    add_train_parser(sub)
    add_calibrate_parser(sub)
    add_eval_parser(sub)
    return parser


def _remote_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--round-id", default="", help="default: the services' configured round")
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds to wait for the reply (default: %(default)s)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RemoteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except BackendError as err:  # a model that cannot be loaded or reached at start-up
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
