"""`warriorcoder train`: fine-tune a model on a run's exported records (warriorcoder.training
owns the flags and the work)."""

from __future__ import annotations

from typing import Any


def add_parser(sub: Any) -> None:
    """Register `train`."""
    from warriorcoder.training import add_train_parser

    add_train_parser(sub)
