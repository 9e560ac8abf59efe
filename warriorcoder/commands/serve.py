"""`warriorcoder serve NAME`: run one distributed service (warriorcoder/services/NAME.py)."""

from __future__ import annotations

import argparse
from typing import Any, get_args

from warriorcoder.service.settings import ServiceName


def add_parser(sub: Any) -> None:
    """Register `serve`."""
    serve = sub.add_parser("serve", help="run one distributed service (settings: "
                           "WARRIORCODER_* environment variables)")
    serve.add_argument("service", choices=get_args(ServiceName))
    serve.add_argument("service_args", nargs=argparse.REMAINDER,
                       help="passed to the service, e.g. --settings FILE")
    serve.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Import the service's module and run it until SIGTERM."""
    import importlib

    from warriorcoder.service.runner import main as run_main

    module = importlib.import_module(f"warriorcoder.services.{args.service}")
    return run_main(args.service, module.build, args.service_args)
