"""Exporter: the best answer of each challenge becomes an SFT record, best vs worst a DPO pair."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from warriorcoder.arena.rating import RatingScale
from warriorcoder.arena.selection import select_winners, training_records
from warriorcoder.arena.training_record import record_json
from warriorcoder.config import ArenaConfig
from warriorcoder.reporting.leaderboard import write_leaderboard
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2


@dataclass(frozen=True)
class Export:
    sft: list[arena_pb2.TrainingRecord]
    preference: list[arena_pb2.TrainingRecord]
    files: list[Path]


def write_jsonl(path: Path, records: Iterable[arena_pb2.TrainingRecord]) -> None:
    """Write the records' JSON form (arena.training_record.record_json), one per line.

    Atomic: a crash mid-write leaves the previous file, never half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w") as f:
        for r in records:
            f.write(json.dumps(record_json(r), ensure_ascii=False) + "\n")
    os.replace(tmp, path)


class Exporter:
    def __init__(self, config: ArenaConfig, store: ArenaStore) -> None:
        self.config = config
        self.store = store

    def records(
        self, board: arena_pb2.Leaderboard
    ) -> tuple[list[arena_pb2.TrainingRecord], list[arena_pb2.TrainingRecord]]:
        """The round's SFT records and preference pairs under the leaderboard's ratings."""
        cfg = self.config
        sel = cfg.selection
        ratings = {r.model_id: getattr(r, sel.rating) for r in board.ratings}
        r = cfg.rating
        outcomes = select_winners(
            self.store.battles(board.round_id),
            ratings,
            sel.alpha,
            RatingScale(initial=r.initial, scale=r.scale, base=r.base),
            aggregate=sel.aggregate,
            head_to_head_guard=sel.head_to_head_guard,
        )
        ids = [o.challenge_id for o in outcomes]
        challenges = self.store.challenges_of(ids)  # one read for the round, not one per record
        missing = [cid for cid in ids if cid not in challenges]
        if missing:
            raise LookupError(f"battles of unknown challenges: {', '.join(missing[:5])}")
        instructions = {cid: challenges[cid].instruction for cid in ids}
        answers = {(cid, response.model_id): response.generation.text
                   for cid, responses in self.store.responses_to(ids).items()
                   for response in responses}
        return training_records(
            outcomes,
            instructions,
            answers,
            round_id=board.round_id,
            config_hash=cfg.config_hash(),
            min_preference_margin=cfg.export.min_preference_margin,
        )

    def export(self, board: arena_pb2.Leaderboard, out_dir: Path) -> Export:
        """Write sft.jsonl, preference.jsonl and the leaderboard files into `out_dir`."""
        out_dir.mkdir(parents=True, exist_ok=True)
        sft, preference = self.records(board)
        write_jsonl(out_dir / "sft.jsonl", sft)
        write_jsonl(out_dir / "preference.jsonl", preference)
        files = [out_dir / "sft.jsonl", out_dir / "preference.jsonl"]
        files += write_leaderboard(board, out_dir)
        return Export(sft, preference, files)
