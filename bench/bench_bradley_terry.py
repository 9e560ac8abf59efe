"""Benchmark: Bradley-Terry fit + bootstrap on a million simulated battles.

Simulates battles between models of known strength (seeded), then measures the fast path
(`bradley_terry` + `bootstrap_intervals`) for wall time and memory, the leaderboard's default
profile-likelihood intervals (`likelihood_intervals`) for wall time, and separately the slow
per-battle `reference_bradley_terry` for agreement. Targets for the fast path: under 2 s and
500 MB, agreeing with the reference within 1 rating point. Prints a markdown summary.

    .venv/bin/python bench/bench_bradley_terry.py [--battles 1000000] [--models 20]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
import tracemalloc

import numpy as np
from scipy.stats import spearmanr

from warriorcoder.arena.rating import (
    BattleOutcomes,
    bootstrap_intervals,
    bradley_terry,
    likelihood_intervals,
    reference_bradley_terry,
)

TARGET_SECONDS = 2.0
TARGET_MIB = 500.0
TARGET_POINTS = 1.0


def simulate(
    models: int, battles: int, tie_rate: float, seed: int
) -> tuple[BattleOutcomes, np.ndarray]:
    """Random distinct pairs; A wins with the Elo probability of the true ratings; some ties."""
    rng = np.random.default_rng(seed)
    strengths = np.linspace(700.0, 1300.0, models)
    model_a = rng.integers(0, models, battles)
    model_b = (model_a + rng.integers(1, models, battles)) % models
    p_a = 1.0 / (1.0 + 10.0 ** ((strengths[model_b] - strengths[model_a]) / 400.0))
    score = (rng.random(battles) < p_a).astype(np.float64)
    score[rng.random(battles) < tie_rate] = 0.5
    names = tuple(f"model-{i:02d}" for i in range(models))
    return BattleOutcomes(names, model_a, model_b, score), strengths


def current_rss_mib() -> float:
    """Resident set size now (Linux /proc), in MiB."""
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fast_path(battles: BattleOutcomes, rounds: int, seed: int) -> tuple[dict, dict]:
    return bradley_terry(battles), bootstrap_intervals(battles, rounds=rounds, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--tie-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()

    battles, strengths = simulate(args.models, args.battles, args.tie_rate, args.seed)
    # Building the container from arrays (validation + read-only copies), timed on its own.
    start = time.perf_counter()
    BattleOutcomes(battles.models, battles.model_a, battles.model_b, battles.score_a)
    container_seconds = time.perf_counter() - start
    rss_before = current_rss_mib()

    start = time.perf_counter()
    point = bradley_terry(battles)
    fit_seconds = time.perf_counter() - start
    start = time.perf_counter()
    intervals = bootstrap_intervals(battles, rounds=args.rounds, seed=args.seed)
    bootstrap_seconds = time.perf_counter() - start
    total_seconds = fit_seconds + bootstrap_seconds
    peak_after = peak_rss_mib()
    start = time.perf_counter()
    profile = likelihood_intervals(battles)
    profile_seconds = time.perf_counter() - start

    # A second run under tracemalloc (which slows it) for the peak of numpy + Python allocations.
    tracemalloc.start()
    fast_path(battles, args.rounds, args.seed)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    traced_mib = traced_peak / 2**20

    order = list(battles.models)
    estimate = np.array([point[name] for name in order])
    widths = np.array([intervals[name][1] - intervals[name][0] for name in order])
    profile_widths = np.array([profile[name].upper - profile[name].lower for name in order])
    rho = spearmanr(estimate, strengths).statistic

    reference_seconds = float("nan")
    max_difference = float("nan")
    if not args.skip_reference:
        start = time.perf_counter()
        reference = reference_bradley_terry(battles)
        reference_seconds = time.perf_counter() - start
        max_difference = max(abs(point[name] - reference[name]) for name in order)

    within_time = total_seconds < TARGET_SECONDS
    # The process peak may predate the fit (simulation); peak minus the RSS before the fit is
    # an upper bound on what the fit added.
    within_memory = peak_after - rss_before < TARGET_MIB and traced_mib < TARGET_MIB
    agrees = max_difference < TARGET_POINTS

    print(
        f"## Bradley-Terry benchmark: {args.battles:,} battles, {args.models} models, "
        f"{args.rounds} bootstrap rounds\n"
    )
    print(
        f"Data: seed {args.seed}, true ratings 700..1300 evenly spaced, {args.tie_rate:.0%} ties.\n"
    )
    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| build `BattleOutcomes` from arrays | {container_seconds * 1000:.0f} ms | |")
    print(f"| BT fit (`bradley_terry`) | {fit_seconds * 1000:.0f} ms | |")
    print(
        f"| bootstrap (`bootstrap_intervals`, {args.rounds} rounds) | "
        f"{bootstrap_seconds * 1000:.0f} ms | |"
    )
    print(
        f"| **fit + bootstrap wall time** | **{total_seconds:.3f} s** | < {TARGET_SECONDS:.0f} s "
        f"{'ok' if within_time else 'MISSED'} |"
    )
    print(
        f"| profile-likelihood intervals (`likelihood_intervals`) | "
        f"{profile_seconds * 1000:.0f} ms | |"
    )
    print(f"| RSS before fit (data loaded) | {rss_before:.0f} MiB | |")
    print(f"| process peak RSS after fit (ru_maxrss) | {peak_after:.0f} MiB | |")
    print(
        f"| peak RSS above pre-fit RSS | {peak_after - rss_before:.0f} MiB | "
        f"< {TARGET_MIB:.0f} MiB {'ok' if within_memory else 'MISSED'} |"
    )
    print(
        f"| tracemalloc peak during fit + bootstrap | {traced_mib:.1f} MiB | "
        f"< {TARGET_MIB:.0f} MiB |"
    )
    print(
        f"| reference (`reference_bradley_terry`, per battle) | {reference_seconds:.2f} s | "
        "not targeted |"
    )
    print(
        f"| max abs difference to reference | {max_difference:.2e} points | "
        f"< {TARGET_POINTS:.0f} {'ok' if agrees else 'MISSED'} |"
    )
    print(f"| Spearman(estimate, true strength) | {rho:.4f} | |")
    print(
        f"| 95% interval width (min / median / max) | {widths.min():.2f} / "
        f"{np.median(widths):.2f} / {widths.max():.2f} points | |"
    )
    print(
        f"| 95% profile-likelihood width (min / median / max) | {profile_widths.min():.2f} / "
        f"{np.median(profile_widths):.2f} / {profile_widths.max():.2f} points | |"
    )


if __name__ == "__main__":
    main()
