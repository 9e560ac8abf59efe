"""The `warriorcoder` command: parse the verb (warriorcoder.commands), run it, turn the
project's errors into an exit status and a one-line message."""

from __future__ import annotations

import sys

from warriorcoder.backends.base import BackendError
from warriorcoder.commands import build_parser
from warriorcoder.commands.remote import RemoteError
from warriorcoder.config import ConfigError


def main(argv: list[str] | None = None) -> int:
    """Run `warriorcoder ARGV...`; returns the exit status."""
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
