"""The on-disk table of an export's records, deduplicated by instruction as they arrive.

An export of a season may see the same instruction in several rounds (a resubmitted user
instruction, a challenge mined again before dedup covered earlier rounds). It keeps one SFT
record per instruction (`arena.selection.instruction_key`): the one whose chosen answer scored
best, e(chosen) (ties: the smaller challenge id), with that challenge's preference pair if it
has one. The table lives in a SQLite file in a temporary folder, so memory stays flat however
many records an export has; records come back in challenge-id order.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

from warriorcoder.arena.selection import instruction_key
from warriorcoder.arena.training_record import PREFERENCE, SFT
from warriorcoder.v1 import arena_pb2

_SCHEMA = """
CREATE TABLE records (
    key TEXT PRIMARY KEY,
    score REAL NOT NULL,
    challenge_id TEXT NOT NULL,
    sft BLOB NOT NULL,
    preference BLOB
)
"""
# A later candidate replaces the kept one only when it is better: the higher score, then the
# smaller challenge id (the same winner whatever order the rounds are read in).
_UPSERT = """
INSERT INTO records (key, score, challenge_id, sft, preference) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    score = excluded.score, challenge_id = excluded.challenge_id,
    sft = excluded.sft, preference = excluded.preference
WHERE excluded.score > records.score
   OR (excluded.score = records.score AND excluded.challenge_id < records.challenge_id)
"""


class RecordTable:
    """Candidate records by instruction key; `add` keeps the best, `records` reads them back."""

    def __init__(self, scratch: Path | None = None) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="warriorcoder-export-", dir=scratch))
        self._db = sqlite3.connect(self._dir / "records.db", check_same_thread=False)
        # A scratch table: losing it in a crash loses nothing (the export is redone).
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute(_SCHEMA)
        self.added = 0
        self._indexed = False

    def add(self, batch: list[tuple[arena_pb2.TrainingRecord, arena_pb2.TrainingRecord | None]]
            ) -> None:
        """Offer (SFT record, its preference pair or None) candidates, one per challenge."""
        rows = []
        for sft, preference in batch:
            rows.append((
                instruction_key(sft.prompt),
                sft.score,
                sft.provenance.challenge_id,
                sft.SerializeToString(deterministic=True),
                None if preference is None else preference.SerializeToString(deterministic=True),
            ))
        with self._db:
            self._db.executemany(_UPSERT, rows)
        self.added += len(rows)

    def count(self, kind: str) -> int:
        column = "sft" if kind == SFT else "preference"
        (n,) = self._db.execute(f"SELECT count({column}) FROM records").fetchone()
        return int(n)

    @property
    def duplicates(self) -> int:
        """Candidates dropped because another challenge had the same instruction."""
        return self.added - self.count(SFT)

    def records(self, kind: str) -> Iterator[arena_pb2.TrainingRecord]:
        """The kept records of `kind` ('sft' or 'preference'), in challenge-id order."""
        if kind not in (SFT, PREFERENCE):
            raise ValueError(f"kind must be {SFT!r} or {PREFERENCE!r}, got {kind!r}")
        if not self._indexed:
            self._db.execute("CREATE INDEX by_challenge ON records (challenge_id)")
            self._indexed = True
        rows = self._db.execute(
            f"SELECT {kind} FROM records WHERE {kind} IS NOT NULL ORDER BY challenge_id")
        for (blob,) in rows:
            yield arena_pb2.TrainingRecord.FromString(blob)

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
