"""The `warriorcoder` command line: one module per verb.

Each verb's module has `add_parser(sub)`, which registers the verb on the top-level
sub-parsers and sets `func`, the function that runs it and returns the exit status.
`build_parser` puts them together in the order `--help` lists them.
"""

from __future__ import annotations

import argparse

from warriorcoder.commands import (
    calibrate,
    export,
    leaderboard,
    run,
    serve,
    submit,
    train,
    validate,
    view,
)
from warriorcoder.commands import eval as eval_verb
from warriorcoder.commands import round as round_verb

EPILOG = """examples:
  warriorcoder run --config examples/arena.yaml --run-dir runs/demo
  warriorcoder validate --config examples/arena.yaml
  warriorcoder leaderboard --run-dir runs/demo
  warriorcoder calibrate --config examples/arena.yaml --problems 20
  warriorcoder view --run-dir runs/demo

distributed (services started with `warriorcoder serve NAME` or `make up`):
  warriorcoder round start --challenger 127.0.0.1:50051
  warriorcoder round status --challenger 127.0.0.1:50051
  warriorcoder submit --challenger 127.0.0.1:50051 --file instructions.txt
  warriorcoder leaderboard --rater 127.0.0.1:50054
  warriorcoder export --exporter 127.0.0.1:50055 --out runs/export
"""

# In the order of `warriorcoder --help`.
VERBS = (run, validate, leaderboard, view, serve, round_verb, submit, export, train, calibrate,
         eval_verb)


def build_parser() -> argparse.ArgumentParser:
    """The `warriorcoder` parser with every verb."""
    parser = argparse.ArgumentParser(
        prog="warriorcoder",
        description=(
            "WarriorCoder Arena: expert code models battle; the winners become training data."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb in VERBS:
        verb.add_parser(sub)
    return parser
