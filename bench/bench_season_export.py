"""Season export at scale: time and peak RSS at 10k, 100k and 1M battles on the MongoDB wire
server (nx-27017).

For each size a fresh database gets a season of 10 rounds written directly in bulk, in the
store's layout: challenges (each attacked by one of 8 models against two defenders), their three
answers, and two rated battles per challenge. One instruction in ten repeats an instruction of
the round before, so the export's deduplication across rounds has work to do.

Then, each in a fresh process so that its peak RSS is its own:

* ``export``: the season export (`Exporter.write`, the code WriteExport runs): battles streamed
  by challenge, one record per instruction kept in the on-disk table, sft.jsonl,
  preference.jsonl, the leaderboard files and manifest.json written under an export root;
* ``baseline``: the process after its imports and one store connection, for reference.

The leaderboard the records are selected by is given (fixed ratings of the 8 models): computing
the season leaderboard at these sizes is bench/bench_season.py's measurement.

    .venv/bin/python bench/bench_season_export.py                 # 10k, 100k, 1M
    .venv/bin/python bench/bench_season_export.py --sizes 10000 100000
"""

from __future__ import annotations

import argparse
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
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from conftest import mongo_server  # noqa: E402

from warriorcoder.config import ArenaConfig, parse_config  # noqa: E402
from warriorcoder.v1 import arena_pb2  # noqa: E402

BATCH = 1000
ROUNDS = 10
MODELS = 8
ARENA = "bench"


def config() -> ArenaConfig:
    return parse_config({
        "round_id": "s-1",
        "arena": ARENA,
        "roster": [{"id": f"m{i}", "backend": "fake", "model": "fake:random"}
                   for i in range(MODELS)],
    })


def board(rounds: list[str]) -> arena_pb2.Leaderboard:
    """The season board the export selects by: m0 strongest, 25 points apart."""
    b = arena_pb2.Leaderboard(arena=ARENA, season=True, rounds=rounds)
    for i in range(MODELS):
        b.ratings.add(model_id=f"m{i}", bradley_terry=1100.0 - 25 * i, elo=1100.0 - 25 * i)
    return b


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def round_ids() -> list[str]:
    return [f"s-{r + 1}" for r in range(ROUNDS)]


def instruction(round_index: int, number: int) -> str:
    """Nine in ten instructions are new; one in ten repeats one of the round before."""
    if round_index > 0 and number % 10 == 0:
        round_index, number = round_index - 1, number + 1
    return (f"Write a Python function number {number} of round {round_index + 1} that "
            "returns the running maximum of a list of integers, with tests.")


def fill(uri: str, database: str, battles: int) -> dict[str, Any]:
    """A season of `battles` rated battles (two per challenge) with their challenges and
    answers, inserted in bulk."""
    import pymongo

    from warriorcoder.storage.store import ArenaStore

    store = ArenaStore.connect(uri, database)  # creates the indexes
    db = pymongo.MongoClient(uri)[database]
    rng = random.Random(battles)
    per_round = battles // ROUNDS // 2
    answer = "def running_max(xs):\n    out, best = [], None\n" + "    # step\n" * 20
    started = time.perf_counter()
    for r, round_id in enumerate(round_ids()):
        store.save_round_info(round_id, arena=ARENA, config_hash="bench")
        for start in range(0, per_round, BATCH // 2):
            challenges, responses, rated = [], [], []
            for n in range(start, min(start + BATCH // 2, per_round)):
                cid = f"{round_id}-c{n:07d}"
                attacker, *defenders = (f"m{i}" for i in rng.sample(range(MODELS), 3))
                challenges.append({"_id": cid, "challenge_id": cid, "round_id": round_id,
                                   "instruction": instruction(r, n), "attacker": attacker,
                                   "defenders": defenders, "source": "mined"})
                for m in (attacker, *defenders):
                    responses.append({"_id": f"{cid}/{m}", "challenge_id": cid, "model_id": m,
                                      "generation": {"model_id": m, "text": f"{answer}# {m}\n",
                                                     "completion_tokens": rng.randint(50, 300)}})
                for d in defenders:
                    bid = f"{cid}-{d}"
                    votes_a = rng.randint(0, 2)
                    rated.append({"_id": bid, "battle_id": bid, "challenge_id": cid,
                                  "round_id": round_id, "model_a": attacker, "model_b": d,
                                  "status": "BATTLE_STATUS_RATED", "votes_a": votes_a,
                                  "votes_b": 2 - votes_a, "local_score_a": votes_a / 2,
                                  "tokens_a": rng.randint(50, 300),
                                  "tokens_b": rng.randint(50, 300)})
            db["challenges"].insert_many(challenges, ordered=False)
            db["responses"].insert_many(responses, ordered=False)
            db["battles"].insert_many(rated, ordered=False)
    return {"fill_s": round(time.perf_counter() - started, 1)}


def measure(uri: str, database: str, what: str, out: Path) -> dict[str, Any]:
    """One measurement in this (fresh) process."""
    from warriorcoder.exports.folder import ExportRoot
    from warriorcoder.stages.exporter import Exporter, ExportScope
    from warriorcoder.storage.store import ArenaStore

    store = ArenaStore.connect(uri, database)
    store.count("battles")  # connected
    if what == "baseline":
        return {"seconds": 0.0, "peak_rss_mib": round(peak_rss_mib(), 1)}
    season = board(round_ids())
    t = time.perf_counter()
    with ExportRoot(out).open(database) as folder:
        export = Exporter(config(), store).write(ExportScope.of(season), season, folder)
    seconds = time.perf_counter() - t
    counts = export.manifest["counts"]
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(peak_rss_mib(), 1),
            "battles": counts["battles"], "sft_records": counts["sft_records"],
            "preference_records": counts["preference_records"],
            "duplicates": counts["duplicates"], "skipped": counts["skipped"],
            "sft_mib": round((folder.path / "sft.jsonl").stat().st_size / 2**20, 1)}


def in_subprocess(uri: str, database: str, what: str, out: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--measure", what, "--uri", uri, "--database", database,
         "--out", str(out)], capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def server_rss_mib(scratch: Path) -> float | None:
    """The wire server's resident set now (its pid file is in the scratch folder)."""
    for pid_file in scratch.rglob("*.pid"):
        status = Path(f"/proc/{pid_file.read_text().strip()}/status")
        if status.is_file():
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--measure", choices=["export", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--uri", help=argparse.SUPPRESS)
    parser.add_argument("--database", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.uri, args.database, args.measure, args.out)))
        return
    with tempfile.TemporaryDirectory() as scratch_dir, mongo_server(Path(scratch_dir)) as uri:
        scratch = Path(scratch_dir)
        for size in args.sizes:
            database = f"export_{size}"
            row: dict[str, Any] = {"battles": size, "rounds": ROUNDS, "models": MODELS}
            row.update(fill(uri, database, size))
            for what in ("baseline", "export"):
                row[what] = in_subprocess(uri, database, what, scratch / "exports")
            row["server_rss_mib_after"] = server_rss_mib(scratch)
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
