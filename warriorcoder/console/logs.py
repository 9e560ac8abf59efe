"""The logging set-up of every command and service process."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

# Libraries whose INFO lines drown the arena's own.
_NOISY = ("httpx", "httpcore", "transformers", "urllib3", "filelock", "kafka", "aiohttp")


def setup_logging(
    console_level: int | str = logging.WARNING,
    *,
    log_file: Path | None = None,
    process: str = "",
) -> None:
    """Log to stderr at `console_level` and, when `log_file` is given, to that file at INFO.

    `process` names the process in every line (a service's name). A second call in the same
    process changes nothing (logging.basicConfig's rule), so a command run twice in one test
    keeps the first set-up.
    """
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(console_level)
    handlers: list[logging.Handler] = [console]
    level = console.level
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file)
        file_handler.setLevel(logging.INFO)
        handlers.append(file_handler)
        level = min(level, logging.INFO)
    name = f" {process}" if process else ""
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s %(levelname)s{name} %(name)s: %(message)s",
        handlers=handlers,
    )
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
