"""Season leaderboard at scale: time and peak RSS at 10k, 100k and 1M battles on the MongoDB
wire server (nx-27017), Bradley-Terry with 100 bootstrap rounds; and the rater's work per new
battle as the history grows.

**Scale** (`--sizes`). For each size a fresh database gets that many rated battle documents
(the store's layout, 8 models, the season split into 10 rounds), written directly in bulk.
Then, each in a fresh process so that its peak RSS is its own:

* ``cold``: the season leaderboard when no tally exists yet: the tallies of the season are
  counted from the stored battles, streamed a page of 1000 at a time, and stored (what a store
  rated before tallies existed goes through once);
* ``warm``: the season leaderboard from its tally, what the rater service refreshes;
* ``baseline``: the process after its imports and one store connection, for reference.

**Ingest** (`--ingest N`). N judged battles go through the rater's own path (`Rater.handle`,
batches of 1000) into one round: the rate of the first and of the last tenth of the batches,
and the process's RSS after each tenth, show whether rating work per battle and the rater's
memory stay flat as the history grows.

    .venv/bin/python bench/bench_season.py                      # 10k, 100k, 1M
    .venv/bin/python bench/bench_season.py --sizes 10000 --ingest 100000

Judgments are not stored (the judge stage writes them): the cold count's judge statistics are
empty, though each page still looks its judgments up.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from conftest import mongo_server  # noqa: E402

from warriorcoder.arena.ids import battle_id, judgment_id  # noqa: E402
from warriorcoder.config import ArenaConfig, parse_config  # noqa: E402
from warriorcoder.v1 import arena_pb2  # noqa: E402

BATCH = 1000
ROUNDS = 10


def config(models: int, bootstrap: int, round_id: str = "s-1") -> ArenaConfig:
    return parse_config({
        "round_id": round_id,
        "arena": "bench",
        "roster": [{"id": f"m{i}", "backend": "fake", "model": "fake:random"}
                   for i in range(models)],
        "rating": {"intervals": "bootstrap", "bootstrap_rounds": bootstrap},
    })


def judged(round_id: str, number: int, models: int, rng: random.Random
           ) -> arena_pb2.BattleJudgments:
    """Battle `number`: two models, two judges in both orders, each judge preferring the
    stronger model (strength = minus the model's index / 4) by Bradley-Terry odds."""
    a, b, *judges = rng.sample(range(models), 4)
    challenge = f"{round_id}-c{number}"
    model_a, model_b = f"m{a}", f"m{b}"
    bid = battle_id(challenge, model_a, model_b)
    pair = arena_pb2.ResponsePair(battle_id=bid, challenge_id=challenge, round_id=round_id,
                                  model_a=model_a, model_b=model_b,
                                  judges=[f"m{j}" for j in judges])
    pair.response_a.model_id, pair.response_b.model_id = model_a, model_b
    pair.response_a.generation.completion_tokens = rng.randint(50, 300)
    pair.response_b.generation.completion_tokens = rng.randint(50, 300)
    p_a = 1.0 / (1.0 + math.exp((a - b) / 4))
    item = arena_pb2.BattleJudgments(pair=pair)
    for judge in pair.judges:
        for order in (arena_pb2.ORDER_AB, arena_pb2.ORDER_BA):
            a_wins = rng.random() < p_a
            verdict = (arena_pb2.VERDICT_A if a_wins == (order == arena_pb2.ORDER_AB)
                       else arena_pb2.VERDICT_B)
            item.judgments.add(judgment_id=judgment_id(bid, judge, order), battle_id=bid,
                               judge=judge, order=order, position_verdict=verdict, attempts=1,
                               spent_calls=1, spent_tokens=400)
    return item


def rss_mib() -> float:
    """This process's resident set now, MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fill(uri: str, database: str, size: int, models: int) -> dict[str, Any]:
    """`size` rated battle documents into a fresh database, in bulk (10 rounds)."""
    import pymongo

    from warriorcoder.storage.store import ArenaStore

    store = ArenaStore.connect(uri, database)  # creates the indexes
    battles: Any = pymongo.MongoClient(uri)[database]["battles"]
    rng = random.Random(size)
    per_round = size // ROUNDS
    started = time.perf_counter()
    for r in range(ROUNDS):
        round_id = f"s-{r + 1}"
        store.register_round(round_id, "bench")
        for start in range(0, per_round, BATCH):
            battles.insert_many([rated_document(round_id, n, models, rng)
                                 for n in range(start, min(start + BATCH, per_round))],
                                ordered=False)
    return {"fill_s": round(time.perf_counter() - started, 1)}


def rated_document(round_id: str, number: int, models: int, rng: random.Random
                   ) -> dict[str, Any]:
    """A rated battle as the store holds it (warriorcoder.storage.store.to_document): two
    judges' votes, the strongest model (m0) winning by Bradley-Terry odds."""
    a, b = rng.sample(range(models), 2)
    challenge = f"{round_id}-c{number}"
    bid = battle_id(challenge, f"m{a}", f"m{b}")
    votes_a = sum(rng.random() < 1.0 / (1.0 + math.exp((a - b) / 4)) for _ in range(2))
    doc: dict[str, Any] = {
        "_id": bid, "battle_id": bid, "challenge_id": challenge, "round_id": round_id,
        "model_a": f"m{a}", "model_b": f"m{b}", "status": "BATTLE_STATUS_RATED",
        "votes_a": votes_a, "votes_b": 2 - votes_a, "local_score_a": votes_a / 2,
        "tokens_a": rng.randint(50, 300), "tokens_b": rng.randint(50, 300),
        "judge_calls": 4, "judge_tokens": "1600",
    }
    if votes_a == 0:
        del doc["local_score_a"], doc["votes_a"]  # defaults are left out, as the store does
    return doc


def ingest(uri: str, database: str, size: int, models: int, bootstrap: int) -> dict[str, Any]:
    """Rate `size` judged battles through Rater.handle into one round of a fresh database."""
    from warriorcoder.stages.rater import Rater
    from warriorcoder.storage.store import ArenaStore

    rater = Rater(config(models, bootstrap, "s-1"), ArenaStore.connect(uri, database))
    rng = random.Random(size)
    batch_seconds: list[float] = []
    rss: list[float] = []
    started = time.perf_counter()
    batches = size // BATCH
    for number in range(batches):
        items = [judged("s-1", n, models, rng)
                 for n in range(number * BATCH, (number + 1) * BATCH)]
        t = time.perf_counter()
        rater.handle(items)
        batch_seconds.append(time.perf_counter() - t)
        if (number + 1) % max(1, batches // 10) == 0:
            rss.append(round(rss_mib(), 1))
    tenth = max(1, batches // 10)
    return {
        "ingested": size,
        "ingest_s": round(time.perf_counter() - started, 1),
        "battles_per_s_per_tenth": [
            round(tenth * BATCH / sum(batch_seconds[start:start + tenth]))
            for start in range(0, tenth * 10, tenth)],
        "rss_mib_per_tenth": rss,
        "tally_reads_per_batch": rater.tally_reads / batches,
    }


def measure(uri: str, database: str, what: str, models: int, bootstrap: int) -> dict[str, Any]:
    """One measurement in this (fresh) process."""
    from warriorcoder.stages.rater import Rater
    from warriorcoder.storage.store import ArenaStore

    store = ArenaStore.connect(uri, database)
    store.count("battles")  # connected
    if what == "baseline":
        return {"seconds": 0.0, "peak_rss_mib": round(peak_rss_mib(), 1)}
    rater = Rater(config(models, bootstrap), store)
    t = time.perf_counter()
    board = rater.season_leaderboard("bench")
    seconds = time.perf_counter() - t
    assert board is not None
    return {"seconds": round(seconds, 2), "peak_rss_mib": round(peak_rss_mib(), 1),
            "battles": board.battles, "rounds": len(board.rounds),
            "top": board.ratings[0].model_id,
            "top_interval": [round(board.ratings[0].bradley_terry_lower, 1),
                             round(board.ratings[0].bradley_terry_upper, 1)]}


def in_subprocess(uri: str, database: str, what: str, models: int, bootstrap: int
                  ) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", what, "--uri", uri, "--database", database,
         "--models", str(models), "--bootstrap", str(bootstrap)],
        capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--models", type=int, default=8)
    parser.add_argument("--bootstrap", type=int, default=100)
    parser.add_argument("--ingest", type=int, default=0,
                        help="also rate this many battles through Rater.handle (0: none)")
    parser.add_argument("--measure", choices=["warm", "cold", "baseline"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.uri, args.database, args.measure, args.models,
                                 args.bootstrap)))
        return
    with tempfile.TemporaryDirectory() as scratch, mongo_server(Path(scratch)) as uri:
        if args.ingest:
            print(json.dumps(ingest(uri, "ingest", args.ingest, args.models, args.bootstrap)),
                  flush=True)
        for size in args.sizes:
            database = f"season_{size}"
            row: dict[str, Any] = {"battles": size, "models": args.models,
                                   "bootstrap_rounds": args.bootstrap}
            row.update(fill(uri, database, size, args.models))
            for what in ("baseline", "cold", "warm"):
                row[what] = in_subprocess(uri, database, what, args.models, args.bootstrap)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
