"""The leaderboard as JSON, Markdown and a PNG plot with the rating intervals."""

from __future__ import annotations

import math
from pathlib import Path

from google.protobuf import json_format

from warriorcoder.arena.rating import RatingInterval, rank_ranges
from warriorcoder.v1 import arena_pb2


def _rate(value: float) -> str:
    """A share as 0.00, or n/a where there was nothing to count (NaN)."""
    return "n/a" if math.isnan(value) else f"{value:.2f}"


def _interval(r: arena_pb2.ModelRating) -> RatingInterval:
    """A leaderboard row's interval; a leaderboard stored before the flags existed has
    finite bounds, group 0 for every model and no anchor marks."""
    return RatingInterval(
        lower=-math.inf if r.lower_unbounded else r.bradley_terry_lower,
        upper=math.inf if r.upper_unbounded else r.bradley_terry_upper,
        group=r.group,
        anchor=r.anchor,
    )


def _rating_cell(r: arena_pb2.ModelRating) -> str:
    """The Bradley-Terry rating, or what the battles say where they bound one side only (the
    point estimate of an unbeaten model is a number made by the fit's tiny penalty)."""
    if r.lower_unbounded and r.upper_unbounded:
        return "not determined"
    if r.upper_unbounded:
        return f"≥ {r.bradley_terry_lower:.1f}"
    if r.lower_unbounded:
        return f"≤ {r.bradley_terry_upper:.1f}"
    return f"{r.bradley_terry:.1f}"


def _interval_cell(r: arena_pb2.ModelRating) -> str:
    lower = "(unbounded" if r.lower_unbounded else f"[{r.bradley_terry_lower:.1f}"
    upper = "unbounded)" if r.upper_unbounded else f"{r.bradley_terry_upper:.1f}]"
    return f"{lower}, {upper}"


def _rank_cell(ranks: tuple[int, int]) -> str:
    best, worst = ranks
    return str(best) if best == worst else f"{best}–{worst}"


def _rating_tables(board: arena_pb2.Leaderboard) -> list[str]:
    """One table per comparison group; ranks as the range the intervals allow."""
    ratings = list(board.ratings)
    ranks = rank_ranges({r.model_id: _interval(r) for r in ratings})
    groups = sorted({r.group for r in ratings})
    lines: list[str] = []
    if len(groups) > 1:
        lines += [
            (
                f"The battles fall into {len(groups)} comparison groups: models of different "
                "groups never met, directly or through others, so each group has its own "
                "scale and models are ranked only within their group."
            ),
            "",
        ]
    for group in groups:
        rows = [r for r in ratings if r.group == group]
        if len(groups) > 1:
            lines += [f"### Group {group}: {len(rows)} models", ""]
        # Every interval overlapping every other (all ratings equal, or too few battles): the
        # battles rank no model above another, so none gets a rank.
        unranked = len(rows) > 1 and all(ranks[r.model_id] == (1, len(rows)) for r in rows)
        if unranked:
            lines += [
                (
                    f"These {len(rows)} models cannot be told apart: every model's interval "
                    "overlaps every other's, so the battles rank none of them above another. "
                    "They are listed, not ranked."
                ),
                "",
            ]
        anchor = [r.model_id for r in rows if r.anchor]
        if anchor and len(anchor) < len(rows):
            lines += [
                (
                    f"Ratings are relative to the mean of {', '.join(anchor)}: the models "
                    "that have each won and lost against the others, directly or through "
                    "others. The rest are bounded on one side at most."
                ),
                "",
            ]
        lines += [
            ("| rank | model | Bradley-Terry | 95% interval | Elo | battles | W / L / T "
             "| win rate |"),
            "|---:|---|---:|---|---:|---:|---|---:|",
        ]
        for r in rows:
            lines.append(
                f"| {'–' if unranked else _rank_cell(ranks[r.model_id])} | {r.model_id} | "
                f"{_rating_cell(r)} | "
                f"{_interval_cell(r)} | {r.elo:.1f} | "
                f"{r.battles} | {r.wins} / {r.losses} / {r.ties} | {_rate(r.win_rate)} |"
            )
        lines.append("")
    return lines[:-1]


def board_title(board: arena_pb2.Leaderboard) -> str:
    """What a board covers: one round, or an arena's season and its rounds."""
    if board.season:
        rounds = ", ".join(board.rounds)
        count = f"{len(board.rounds)} round{'s' if len(board.rounds) != 1 else ''}"
        return f"season of arena {board.arena} ({count}: {rounds})"
    return board.round_id


def leaderboard_markdown(board: arena_pb2.Leaderboard) -> str:
    """The leaderboard as Markdown: ratings per comparison group, judge cost, judge table."""
    method = board.interval_method or (
        f"95% bootstrap, {board.bootstrap_rounds} rounds"  # stored before the method was named
    )
    lines = [
        f"## Leaderboard: {board_title(board)}",
        "",
        (
            f"{board.battles} rated battles, {board.failed_battles} failed; "
            f"Bradley-Terry intervals: {method}. Ranks are the range the intervals allow: "
            "models whose intervals overlap share ranks."
        ),
        "",
        *_rating_tables(board),
    ]
    if board.judge_calls:
        lines += [
            "",
            (
                f"Judge cost: {board.judge_calls} calls, {board.judge_tokens} tokens, "
                f"{board.judge_tokens_per_record:.0f} tokens per exported record "
                f"({board.records} records)."
            ),
        ]
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
    """Bradley-Terry ratings with their 95% intervals, best at the top, groups apart.

    A side the battles leave open runs to the edge of the plot with an arrow, and a model
    bounded on one side only gets no point (its point estimate says nothing).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratings = list(board.ratings)[::-1]
    groups = sorted({r.group for r in ratings})
    finite = [
        value
        for r in ratings
        for value, open_side in (
            (r.bradley_terry_lower, r.lower_unbounded),
            (r.bradley_terry_upper, r.upper_unbounded),
        )
        if not open_side
    ] or [board.ratings[0].bradley_terry if board.ratings else 0.0]
    margin = max(0.1 * (max(finite) - min(finite)), 50.0)
    left, right = min(finite) - margin, max(finite) + margin
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.45 * len(ratings)))
    for y, r in enumerate(ratings):
        low = left if r.lower_unbounded else r.bradley_terry_lower
        high = right if r.upper_unbounded else r.bradley_terry_upper
        style = ":" if r.lower_unbounded and r.upper_unbounded else "-"
        ax.plot([low, high], [y, y], style, color="tab:blue")
        if not r.lower_unbounded:
            ax.plot([low], [y], "|", color="tab:blue", markersize=10)
        else:
            ax.plot([left], [y], "<", color="tab:blue")
        if not r.upper_unbounded:
            ax.plot([high], [y], "|", color="tab:blue", markersize=10)
        else:
            ax.plot([right], [y], ">", color="tab:blue")
        if not (r.lower_unbounded or r.upper_unbounded):
            ax.plot([r.bradley_terry], [y], "o", color="tab:blue")
        if y and r.group != ratings[y - 1].group:
            ax.axhline(y - 0.5, color="grey", linestyle="--", linewidth=0.8)
    labels = [f"group {r.group}: {r.model_id}" if len(groups) > 1 else r.model_id for r in ratings]
    ax.set_yticks(range(len(ratings)), labels)
    ax.set_xlim(left, right)
    method = board.interval_method or f"95% bootstrap, {board.bootstrap_rounds} rounds"
    ax.set_xlabel(f"Bradley-Terry rating ({method}); arrows: unbounded")
    ax.set_title(f"{board_title(board)}: {board.battles} battles")
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
