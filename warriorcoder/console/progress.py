"""Progress bars: the one place that knows tqdm.

Long steps take a `ProgressFactory` (a name and a total give a bar as a context manager) and
report to the `ProgressBar` it yields. Commands choose `terminal_progress` or `no_progress`
(`progress_factory`); library code and tests default to `no_progress`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import partial
from typing import Protocol


class ProgressBar(Protocol):
    """What long steps need of a progress bar (tqdm satisfies it)."""

    total: float | None

    def update(self, n: float = 1) -> bool | None: ...


ProgressFactory = Callable[[str, int], AbstractContextManager[ProgressBar]]


class _SilentBar:
    total: float | None = None

    def update(self, n: float = 1) -> None:
        return None


def no_progress(desc: str, total: int) -> AbstractContextManager[ProgressBar]:
    """A bar that shows nothing."""
    return nullcontext(_SilentBar())


@contextmanager
def terminal_progress(desc: str, total: int, unit: str = "item") -> Iterator[ProgressBar]:
    """A tqdm bar on stderr; a total of 0 means unknown (it grows as the step learns it)."""
    from tqdm import tqdm

    with tqdm(total=total or None, desc=f"{desc:<16}", unit=unit, dynamic_ncols=True) as bar:
        yield bar


def progress_factory(enabled: bool, unit: str = "item") -> ProgressFactory:
    """`terminal_progress` counting `unit`s when `enabled` (a command without --no-progress),
    else silence."""
    return partial(terminal_progress, unit=unit) if enabled else no_progress


@contextmanager
def logs_above_bars() -> Iterator[None]:
    """Log lines print above the progress bars instead of through them."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        yield
