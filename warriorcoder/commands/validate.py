"""`warriorcoder validate`: check an arena config without loading any model."""

from __future__ import annotations

import argparse
from typing import Any

from warriorcoder.config import load_config


def add_parser(sub: Any) -> None:
    """Register `validate`."""
    validate = sub.add_parser("validate", help="check an arena config without loading models")
    validate.add_argument("--config", required=True)
    validate.set_defaults(func=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    """Print the config's round, roster and hash, or fail with the config's error."""
    config = load_config(args.config)
    print(f"{args.config}: valid; round {config.round_id!r}, {len(config.roster)} experts "
          f"({', '.join(e.id for e in config.roster)}), config hash {config.config_hash()}")
    return 0
