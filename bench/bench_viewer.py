"""Benchmark: the battle viewer on a round of 100,000 battles.

Fills a store with ``--battles`` rated battles (six models, two judges each, one judge in three
contradicting itself, executions on a third, failures on a ninth) and their judgments, serves
the viewer over it, and times full page loads over HTTP (the store query, the rendering, the
transfer): the battle list's first page, a later page (the 50,000th battle on), the last page,
filtered pages, the round page and one battle. Each time is the median of ``--repeat`` loads.
Runs on the embedded store (SQLite file) and on the MongoDB wire server (nx-27017).

    .venv/bin/python bench/bench_viewer.py                      # both stores, 100,000 battles
    .venv/bin/python bench/bench_viewer.py --store embedded --battles 20000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import mongo_server  # the tests' MongoDB wire server

from warriorcoder.arena.ids import stable_id
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2
from warriorcoder.viewer.server import ViewerSource, start_viewer

MODELS = [f"model-{i}" for i in range(6)]
ROUND = "bench"
BATCH = 5000


def fill(store: ArenaStore, n: int) -> list[str]:
    """n battles with their judgments and a stored leaderboard; returns the sorted ids."""
    ids = []
    battles: list[arena_pb2.RatedBattle] = []
    judgments: list[arena_pb2.Judgment] = []
    for i in range(n):
        a, b = MODELS[i % 6], MODELS[(i + 1 + i // 6 % 5) % 6]
        judges = [m for m in MODELS if m not in (a, b)][:2]
        bid = stable_id("battle", str(i))
        ids.append(bid)
        battle = arena_pb2.RatedBattle(battle_id=bid, challenge_id=stable_id("c", str(i // 2)),
                                       round_id=ROUND, model_a=a, model_b=b, tokens_a=120,
                                       tokens_b=90)
        if i % 9 == 4:
            battle.status = arena_pb2.BATTLE_STATUS_FAILED
            battle.failure_reason = f"{b} failed: connection refused (after 3 attempts)"
        else:
            battle.status = arena_pb2.BATTLE_STATUS_RATED
            battle.local_score_a = (0.0, 0.25, 0.5, 0.75, 1.0)[i % 5]
            if i % 3 == 0:
                battle.judge_score_a = (0.0, 0.5, 1.0)[i % 4 % 3]
                battle.execution_score_a = (1.0, 0.0, 0.5)[i % 5 % 3]
        # A third of the battles have a judge that contradicted itself, another third a judge
        # that called a tie in both orders: both vote TIE, so both are candidates of the
        # contradiction filter, which reads their judgments (stored for these two thirds).
        for judge_index, judge in enumerate(judges):
            contradicts = i % 3 == 1 and judge_index == 0
            ties = i % 3 == 2 and judge_index == 1
            if contradicts or ties:
                verdicts = ((arena_pb2.VERDICT_A, arena_pb2.VERDICT_A) if contradicts
                            else (arena_pb2.VERDICT_TIE, arena_pb2.VERDICT_TIE))
                for order, position in zip((arena_pb2.ORDER_AB, arena_pb2.ORDER_BA), verdicts,
                                           strict=True):
                    judgments.append(arena_pb2.Judgment(
                        judgment_id=stable_id("j", bid, judge, str(order)), battle_id=bid,
                        judge=judge, order=order, position_verdict=position, attempts=1,
                        generation=arena_pb2.Generation(text="Both answers work. [[A]]")))
            battle.votes.add(judge=judge, verdict=arena_pb2.VERDICT_TIE if contradicts or ties
                             else arena_pb2.VERDICT_A)
        battles.append(battle)
        if len(battles) >= BATCH:
            store.save_battles(battles)
            store.save_judgments(judgments)
            battles, judgments = [], []
    store.save_battles(battles)
    store.save_judgments(judgments)
    board = arena_pb2.Leaderboard(round_id=ROUND, battles=n - n // 9, failed_battles=n // 9)
    for m in MODELS:
        board.ratings.add(model_id=m, bradley_terry=1000, bradley_terry_lower=950,
                          bradley_terry_upper=1050, elo=1000, battles=n // 3)
        board.judges.add(judge=m, pairs=n // 3, consistency=0.8, tie_rate=0.2)
    store.save_leaderboard(board)
    store.save_round_info(ROUND, funnel={"mined": n, "cleaned": n, "deduplicated": n,
                                         "decontaminated": n, "diverse": n})
    return sorted(ids)


@contextmanager
def served(open_store: Callable[[], ArenaStore]) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    def main() -> None:
        asyncio.set_event_loop(loop)
        runner, viewer, port = loop.run_until_complete(
            start_viewer(ViewerSource(open_store=open_store, default_round=ROUND),
                         "127.0.0.1", 0))
        box["port"] = port
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        viewer.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    ready.wait(60)
    try:
        yield f"http://127.0.0.1:{box['port']}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(60)


def load(url: str) -> float:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        body = response.read()
        assert response.status == 200 and body
    return time.perf_counter() - start


def time_pages(base: str, ids: list[str], repeat: int) -> list[tuple[str, float, float]]:
    battles = f"{base}/rounds/{ROUND}/battles"
    pages = [
        ("battle list, first page", battles),
        (f"battle list, a later page (from the {len(ids) // 2:,}th battle)",
         f"{battles}?after={ids[len(ids) // 2]}"),
        ("battle list, last page", f"{battles}?page=last"),
        ("filter: one model", f"{battles}?model=model-2"),
        ("filter: one model's wins", f"{battles}?model=model-2&outcome=won"),
        ("filter: failed battles", f"{battles}?outcome=failed"),
        ("filter: execution disagrees with the judges", f"{battles}?disagreement=1"),
        ("filter: a judge contradicted itself", f"{battles}?contradiction=1"),
        ("round page (leaderboard, judges, funnel)", f"{base}/rounds/{ROUND}/"),
        ("one battle", f"{battles}/{ids[len(ids) // 3]}"),
        ("live refresh check", f"{base}/live/{ROUND}"),
        ("count all matches: one model (on request)", f"{battles}?model=model-2&count=1"),
    ]
    out = []
    for name, url in pages:
        load(url)  # warm: the first load of a page compiles its template
        times = [load(url) for _ in range(repeat)]
        out.append((name, statistics.median(times), max(times)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--battles", type=int, default=100_000)
    parser.add_argument("--store", choices=["embedded", "mongo", "both"], default="both")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        kinds = ["embedded", "mongo"] if args.store == "both" else [args.store]
        for kind in kinds:
            if kind == "embedded":
                path = Path(tmp) / "arena.db"
                start = time.perf_counter()
                ids = fill(ArenaStore.open_embedded(path), args.battles)
                filled = time.perf_counter() - start
                with served(lambda path=path: ArenaStore.open_embedded(path)) as base:
                    report(kind, args.battles, filled, time_pages(base, ids, args.repeat))
            else:
                with mongo_server(Path(tmp) / "mongo") as uri:
                    name = f"bench{uuid.uuid4().hex[:8]}"
                    start = time.perf_counter()
                    ids = fill(ArenaStore.connect(uri, name), args.battles)
                    filled = time.perf_counter() - start
                    with served(lambda name=name: ArenaStore.connect(uri, name)) as base:
                        report("MongoDB wire server (nx-27017)", args.battles, filled,
                               time_pages(base, ids, args.repeat))


def report(kind: str, n: int, filled: float, rows: list[tuple[str, float, float]]) -> None:
    print(f"\n{kind}: {n:,} battles (filled in {filled:.0f} s)")
    print("| page | median | max |\n|---|---|---|")
    for name, median, worst in rows:
        print(f"| {name} | {median * 1000:.0f} ms | {worst * 1000:.0f} ms |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
