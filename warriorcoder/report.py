"""The leaderboard as JSON, Markdown and a PNG plot with bootstrap intervals."""

from __future__ import annotations

import math
from pathlib import Path

from google.protobuf import json_format

from warriorcoder.v1 import arena_pb2


def _rate(value: float) -> str:
    """A share as 0.00, or n/a where there was nothing to count (NaN)."""
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def leaderboard_markdown(board: arena_pb2.Leaderboard) -> str:
    lines = [
        f"## Leaderboard: {board.round_id}",
        "",
        (
            f"{board.battles} rated battles, {board.failed_battles} failed; "
            f"Bradley-Terry 95% intervals from {board.bootstrap_rounds} bootstrap rounds."
        ),
        "",
        "| rank | model | Bradley-Terry | 95% interval | Elo | battles | W / L / T | win rate |",
        "|---:|---|---:|---|---:|---:|---|---:|",
    ]
    for rank, r in enumerate(board.ratings, 1):
        lines.append(
            f"| {rank} | {r.model_id} | {r.bradley_terry:.1f} | "
            f"[{r.bradley_terry_lower:.1f}, {r.bradley_terry_upper:.1f}] | {r.elo:.1f} | "
            f"{r.battles} | {r.wins} / {r.losses} / {r.ties} | {_rate(r.win_rate)} |"
        )
    if board.judges:
        lines += [
            "",
            "### Judges",
            "",
            (
                "| judge | battles judged | consistency | tie rate | invalid rate | picks longer "
                "| picks first shown |"
            ),
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for j in board.judges:
            lines.append(
                f"| {j.judge} | {j.pairs} | {_rate(j.consistency)} | {_rate(j.tie_rate)} | "
                f"{_rate(j.invalid_rate)} | {_rate(j.longer_pick_rate)} | "
                f"{_rate(j.first_position_rate)} |"
            )
    return "\n".join(lines) + "\n"


def plot_leaderboard(board: arena_pb2.Leaderboard, path: Path) -> None:
    """Bradley-Terry ratings with their 95% intervals, best at the top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratings = list(board.ratings)[::-1]
    names = [r.model_id for r in ratings]
    values = [r.bradley_terry for r in ratings]
    err = [
        [r.bradley_terry - r.bradley_terry_lower for r in ratings],
        [r.bradley_terry_upper - r.bradley_terry for r in ratings],
    ]
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.45 * len(ratings)))
    ax.errorbar(values, range(len(ratings)), xerr=err, fmt="o", capsize=4)
    ax.set_yticks(range(len(ratings)), names)
    ax.set_xlabel("Bradley-Terry rating (95% bootstrap interval)")
    ax.set_title(f"{board.round_id}: {board.battles} battles")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_leaderboard(board: arena_pb2.Leaderboard, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "leaderboard.json", out_dir / "leaderboard.md", out_dir / "leaderboard.png"]
    paths[0].write_text(
        json_format.MessageToJson(
            board, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
    )
    paths[1].write_text(leaderboard_markdown(board))
    plot_leaderboard(board, paths[2])
    return paths
