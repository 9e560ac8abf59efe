"""Benchmark: do the leaderboard's rating intervals cover the truth at their nominal rate?

Simulates arenas with known true ratings (seeded), rates each one and checks, model by model,
whether the 95% interval contains the true rating on the leaderboard's scale: the true rating
minus the true mean of the group's anchor set (the models whose mean rating the leaderboard
sets to 1000), plus 1000. Scenarios range from thousands of battles to a handful, with models
that never lose and judge-vote shares instead of win/loss scores. Methods:

* `profile`: `rating_intervals(method="profile")`, the leaderboard's default;
* `bootstrap`: the plain percentile bootstrap (`bootstrap_intervals`, what the leaderboard
  showed before), which never reports an unbounded side;
* `bootstrap+open`: `rating_intervals(method="bootstrap")`, the bootstrap with the sides the
  likelihood leaves open reported as unbounded.

    .venv/bin/python bench/bench_rating_coverage.py [--datasets 300] [--rounds 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from warriorcoder.arena.rating import (
    BattleOutcomes,
    RatingInterval,
    bootstrap_intervals,
    rating_intervals,
    win_stats,
)

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Scenario:
    name: str
    strengths: tuple[float, ...]
    battles: int
    # Score = share of `votes` independent judge votes for A (1 = a plain win/loss battle).
    votes: int = 1
    tie_rate: float = 0.0


SCENARIOS = (
    Scenario("large: 6 models, 3,000 battles", (0, 200, 400, 600, 800, 1000), 3000),
    Scenario("small: 6 models, 40 battles", (0, 200, 400, 600, 800, 1000), 40),
    Scenario("tiny: 5 models, 10 battles", (0, 150, 300, 450, 600), 10),
    Scenario("champion 1,000 points ahead, 60 battles", (0, 100, 200, 300, 1300), 60),
    Scenario("3-judge vote shares, 6 models, 600 battles", (0, 200, 400, 600, 800, 1000), 600, 3),
)


def simulate(scenario: Scenario, rng: np.random.Generator) -> BattleOutcomes:
    """Random distinct pairs; each vote goes to A with the Elo probability of the true ratings."""
    strengths = np.asarray(scenario.strengths, dtype=float)
    count = len(strengths)
    model_a = rng.integers(0, count, scenario.battles)
    model_b = (model_a + rng.integers(1, count, scenario.battles)) % count
    p_a = 1.0 / (1.0 + 10.0 ** ((strengths[model_b] - strengths[model_a]) / 400.0))
    score = rng.binomial(scenario.votes, p_a) / scenario.votes
    score[rng.random(scenario.battles) < scenario.tie_rate] = 0.5
    names = tuple(f"m{i}" for i in range(count))
    return BattleOutcomes(names, model_a, model_b, score)


def anchored_truth(
    battles: BattleOutcomes, strengths: np.ndarray, intervals: dict[str, RatingInterval]
) -> dict[str, float]:
    """Each model's true rating on the leaderboard's scale (its group's anchor mean = 1000)."""
    truth = dict(zip(battles.models, strengths, strict=True))
    present = [name for name in battles.models if name in intervals]
    result = {}
    for name in present:
        group = intervals[name].group
        anchor = [m for m in present if intervals[m].group == group and intervals[m].anchor]
        result[name] = 1000.0 + truth[name] - float(np.mean([truth[m] for m in anchor]))
    return result


Method = Callable[[BattleOutcomes, int, int], dict[str, RatingInterval]]


def profile(battles: BattleOutcomes, rounds: int, seed: int) -> dict[str, RatingInterval]:
    return rating_intervals(battles, confidence=CONFIDENCE, method="profile")


def plain_bootstrap(battles: BattleOutcomes, rounds: int, seed: int) -> dict[str, RatingInterval]:
    # Group and anchor flags from the profile call; the bounds are the bootstrap's alone.
    shape = rating_intervals(battles, confidence=CONFIDENCE, method="profile")
    bounds = bootstrap_intervals(battles, rounds, seed, confidence=CONFIDENCE)
    return {
        name: RatingInterval(low, high, shape[name].group, shape[name].anchor)
        for name, (low, high) in bounds.items()
    }


def open_bootstrap(battles: BattleOutcomes, rounds: int, seed: int) -> dict[str, RatingInterval]:
    return rating_intervals(
        battles, confidence=CONFIDENCE, method="bootstrap", rounds=rounds, seed=seed
    )


METHODS: dict[str, Method] = {
    "profile": profile,
    "bootstrap": plain_bootstrap,
    "bootstrap+open": open_bootstrap,
}


@dataclass
class Tally:
    intervals: int = 0
    covered: int = 0
    one_sided: int = 0
    one_sided_covered: int = 0
    open_sides: int = 0
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.widths: list[float] = []


def run(scenario: Scenario, datasets: int, rounds: int, seed: int) -> dict[str, Tally]:
    rng = np.random.default_rng(seed)
    strengths = np.asarray(scenario.strengths, dtype=float)
    tallies = {name: Tally() for name in METHODS}
    for dataset in range(datasets):
        battles = simulate(scenario, rng)
        present = {battles.models[i] for i in (*battles.model_a, *battles.model_b)}
        stats = win_stats(battles)
        for name, method in METHODS.items():
            tally = tallies[name]
            start = time.perf_counter()
            intervals = method(battles, rounds, seed + dataset)
            tally.seconds += time.perf_counter() - start
            truth = anchored_truth(battles, strengths, intervals)
            for model in present:
                interval = intervals[model]
                covered = interval.lower <= truth[model] <= interval.upper
                one_sided = stats[model].wins == 0 or stats[model].losses == 0
                tally.intervals += 1
                tally.covered += covered
                tally.one_sided += one_sided
                tally.one_sided_covered += covered and one_sided
                tally.open_sides += interval.lower_unbounded + interval.upper_unbounded
                if math.isfinite(interval.upper - interval.lower):
                    tally.widths.append(interval.upper - interval.lower)
    return tallies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(
        f"## Rating interval coverage: {args.datasets} simulated arenas per scenario, "
        f"{CONFIDENCE:.0%} intervals, {args.rounds} bootstrap rounds, seed {args.seed}\n"
    )
    print(
        "| scenario | method | coverage | coverage, models with no win or no loss (share) "
        "| open sides | median finite width | time per arena |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for scenario in SCENARIOS:
        for name, tally in run(scenario, args.datasets, args.rounds, args.seed).items():
            one_sided = (
                f"{tally.one_sided_covered / tally.one_sided:.3f} "
                f"({tally.one_sided / tally.intervals:.0%})"
                if tally.one_sided
                else "n/a (0%)"
            )
            width = f"{np.median(tally.widths):.0f}" if tally.widths else "n/a"
            print(
                f"| {scenario.name} | {name} | {tally.covered / tally.intervals:.3f} | "
                f"{one_sided} | {tally.open_sides / (2 * tally.intervals):.0%} | {width} | "
                f"{tally.seconds / args.datasets * 1000:.0f} ms |"
            )


if __name__ == "__main__":
    main()
