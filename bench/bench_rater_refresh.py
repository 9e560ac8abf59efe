"""One leaderboard refresh of the rater as the round grows: time and peak RSS, today's rater
against the rater of an earlier commit (before rating tallies, a refresh read every battle and
every judgment of the round).

An embedded store gets N judged battles through `Rater.handle`, with their judgments stored as
the judge stage stores them (each with a 1.5 KB explanation, as a judge writes). Then each
rater refreshes the round's leaderboard once, in a fresh process so that its peak RSS is its
own.

    .venv/bin/python bench/bench_rater_refresh.py --sizes 5000 20000 --before 306a77c

`--before` loads warriorcoder/stages/rater.py of that commit (`git show`) next to today's
modules; it needs the git history.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from bench_season import config, judged  # noqa: E402

EXPLANATION = "The first answer handles the edge cases; the second does not. " * 25


def fill(path: Path, size: int) -> None:
    from warriorcoder.stages.rater import Rater
    from warriorcoder.storage.store import ArenaStore

    store = ArenaStore.open_embedded(path)
    rater = Rater(config(8, 100, "s-1"), store)
    rng = random.Random(size)
    for start in range(0, size, 1000):
        items = [judged("s-1", n, 8, rng) for n in range(start, min(start + 1000, size))]
        for item in items:
            for judgment in item.judgments:
                judgment.generation.text = EXPLANATION
        store.save_judgments(j for item in items for j in item.judgments)
        rater.handle(items)


def refresh(path: Path, rater_file: str | None) -> dict[str, Any]:
    """One refresh of the round's leaderboard in this (fresh) process."""
    from warriorcoder.storage.store import ArenaStore

    if rater_file:
        spec = importlib.util.spec_from_file_location("rater_before", rater_file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        rater_class = module.Rater
    else:
        from warriorcoder.stages.rater import Rater as rater_class
    rater = rater_class(config(8, 100, "s-1"), ArenaStore.open_embedded(path))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    board = rater.leaderboard("s-1")
    return {"refresh_s": round(time.perf_counter() - started, 2),
            "rss_before_mib": round(before, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "battles": board.battles}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--before", help="a commit whose rater is measured too")
    parser.add_argument("--refresh", help=argparse.SUPPRESS)
    parser.add_argument("--rater-file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.refresh:
        print(json.dumps(refresh(Path(args.refresh), args.rater_file)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        raters: dict[str, str | None] = {"today": None}
        if args.before:
            old = Path(scratch) / "rater_before.py"
            old.write_text(subprocess.run(
                ["git", "show", f"{args.before}:warriorcoder/stages/rater.py"], cwd=ROOT,
                capture_output=True, text=True, check=True).stdout)
            raters[args.before] = str(old)
        for size in args.sizes:
            path = Path(scratch) / f"arena-{size}.db"
            fill(path, size)
            for name, rater_file in raters.items():
                command = [sys.executable, __file__, "--refresh", str(path)]
                if rater_file:
                    command += ["--rater-file", rater_file]
                out = subprocess.run(command, capture_output=True, text=True, check=True)
                row = {"rater": name, "battles": size, **json.loads(out.stdout.splitlines()[-1])}
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
