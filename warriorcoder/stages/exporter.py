"""Exporter: the best answer of each challenge becomes an SFT record, best vs worst a DPO pair.

An export covers one round or a season (every round of an arena, `ExportScope`). It streams:
the battles come from a cursor sorted by challenge, a few hundred challenges at a time; each
challenge's records go to an on-disk table that keeps one record per instruction (the best
across rounds, exports.records); the files are written from that table. Memory holds one chunk
of challenges, never a round.

A battle that cannot be exported (its challenge is not in the store, an answer is missing, a
model has no rating, ...) is skipped with a reason in the log and in manifest.json; the export
goes on. A kind with no records gets no file (`datasets` cannot load a file of zero records);
the manifest says so. See docs/exports.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import itertools
import json
import logging
import tempfile
from collections import Counter
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from warriorcoder.arena.rating import RatingScale
from warriorcoder.arena.selection import ChallengeOutcome, select_winner, training_records
from warriorcoder.arena.training_record import PREFERENCE, SFT, record_json
from warriorcoder.config import ArenaConfig
from warriorcoder.exports.folder import (
    AtomicFile,
    ExportFolder,
    ExportRoot,
    NotOwned,
    WrittenFile,
)
from warriorcoder.exports.manifest import (
    FORMAT,
    LEADERBOARD_FILES,
    MANIFEST_FILE,
    PREFERENCE_FILE,
    SFT_FILE,
    SKIPPED_LISTED,
    check_ownership,
    dataset_id,
    manifest_bytes,
    read_manifest,
    scope_name,
)
from warriorcoder.exports.records import RecordTable
from warriorcoder.reporting.leaderboard import write_leaderboard
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

log = logging.getLogger(__name__)

# Challenges per store request: bounds memory and keeps each `$in` query small.
CHUNK_CHALLENGES = 500
_FILE_OF = {SFT: SFT_FILE, PREFERENCE: PREFERENCE_FILE}


@dataclass(frozen=True)
class ExportScope:
    """What an export covers: one round, or the rounds of a season of `arena`."""

    rounds: tuple[str, ...]
    arena: str | None = None  # set: a season export

    @property
    def name(self) -> str:
        return scope_name(self.rounds, self.arena)

    @classmethod
    def of(cls, board: arena_pb2.Leaderboard) -> ExportScope:
        """The scope a leaderboard rates: its season's rounds, or its round."""
        if board.season:
            return cls(tuple(board.rounds), board.arena)
        return cls((board.round_id,))


@dataclass(frozen=True)
class Skipped:
    """A challenge (or its preference pair) left out of an export, and why."""

    round_id: str
    challenge_id: str
    battle_ids: tuple[str, ...]
    code: str
    reason: str
    kind: str = "challenge"  # "challenge": no record at all; "preference": no pair

    def as_json(self) -> dict[str, Any]:
        return {"round_id": self.round_id, "challenge_id": self.challenge_id,
                "battle_ids": list(self.battle_ids), "kind": self.kind, "code": self.code,
                "reason": self.reason}


@dataclass
class RoundCounts:
    round_id: str
    config_hash: str = ""
    battles: int = 0
    rated_battles: int = 0
    challenges: int = 0


@dataclass
class Collected:
    """What the streaming pass saw: per-round counts and the skipped challenges."""

    rounds: list[RoundCounts] = field(default_factory=list)
    skipped_total: int = 0
    skipped_by_code: Counter[str] = field(default_factory=Counter)
    skipped: list[Skipped] = field(default_factory=list)  # the first SKIPPED_LISTED

    def skip(self, item: Skipped) -> None:
        log.warning("export: skipped %s %s of round %s: %s", item.kind, item.challenge_id,
                    item.round_id, item.reason)
        self.skipped_total += 1
        self.skipped_by_code[item.code] += 1
        if len(self.skipped) < SKIPPED_LISTED:
            self.skipped.append(item)


@dataclass(frozen=True)
class Export:
    """What an export wrote: its folder, counts, files (manifest last) and manifest."""

    folder: Path
    sft_records: int
    preference_records: int
    duplicates: int
    skipped: int
    files: list[Path]
    manifest: dict[str, Any]

    @property
    def dataset_id(self) -> str:
        return str(self.manifest["dataset_id"])


def _version() -> str:
    try:
        return importlib.metadata.version("warriorcoder")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class Exporter:
    def __init__(self, config: ArenaConfig, store: ArenaStore, *,
                 chunk_challenges: int = CHUNK_CHALLENGES) -> None:
        self.config = config
        self.store = store
        self.chunk_challenges = chunk_challenges

    # -- the streaming pass --------------------------------------------------------------------
    def collect(self, scope: ExportScope, board: arena_pb2.Leaderboard,
                table: RecordTable) -> Collected:
        """Select every challenge's winner in the scope's rounds under the board's ratings and
        offer its records to `table`, a chunk of challenges at a time."""
        seen = Collected()
        for round_id in scope.rounds:
            counts = RoundCounts(round_id)
            # Records carry the config their round was run with (a season spans configs); a
            # round the store has no config hash for was run with this one.
            counts.config_hash = str((self.store.round_info(round_id) or {}).get("config_hash")
                                     or self.config.config_hash())
            seen.rounds.append(counts)
            groups = itertools.groupby(self.store.iter_battles_by_challenge(round_id),
                                       key=attrgetter("challenge_id"))
            while chunk := [(cid, list(g)) for cid, g in
                            itertools.islice(groups, self.chunk_challenges)]:
                table.add(self._chunk_records(round_id, chunk, board, counts, seen))
        return seen

    def _chunk_records(
        self,
        round_id: str,
        chunk: list[tuple[str, list[arena_pb2.RatedBattle]]],
        board: arena_pb2.Leaderboard,
        counts: RoundCounts,
        seen: Collected,
    ) -> list[tuple[arena_pb2.TrainingRecord, arena_pb2.TrainingRecord | None]]:
        cfg = self.config
        sel = cfg.selection
        ratings = {r.model_id: getattr(r, sel.rating) for r in board.ratings}
        scale = RatingScale(initial=cfg.rating.initial, scale=cfg.rating.scale,
                            base=cfg.rating.base)
        outcomes: list[ChallengeOutcome] = []
        for cid, battles in chunk:
            counts.battles += len(battles)
            rated = [b for b in battles if b.status == arena_pb2.BATTLE_STATUS_RATED]
            counts.rated_battles += len(rated)
            if not rated:
                continue
            counts.challenges += 1
            ids = tuple(b.battle_id for b in rated)
            unrated = sorted({m for b in rated for m in (b.model_a, b.model_b)} - set(ratings))
            if unrated:
                seen.skip(Skipped(round_id, cid, ids, "unrated_model",
                                  f"model(s) {', '.join(unrated)} have no rating on the "
                                  "leaderboard the export uses"))
                continue
            outcome = select_winner(cid, rated, ratings, sel.alpha, scale,
                                    aggregate=sel.aggregate,
                                    head_to_head_guard=sel.head_to_head_guard)
            if outcome is not None:
                outcomes.append(outcome)
        if not outcomes:
            return []
        # Only the fields a record needs travel and are parsed (a chunk's two reads).
        challenges = self.store.instructions_of(o.challenge_id for o in outcomes)
        answers = self.store.answer_texts(
            (o.challenge_id, m) for o in outcomes for m in {o.winner, o.loser})
        out = []
        for o in outcomes:
            candidate = self._candidate(round_id, o, challenges.get(o.challenge_id), answers,
                                        counts, seen)
            if candidate is not None:
                out.append(candidate)
        return out

    def _candidate(
        self,
        round_id: str,
        o: ChallengeOutcome,
        challenge: tuple[str, str] | None,
        answers: dict[tuple[str, str], str],
        counts: RoundCounts,
        seen: Collected,
    ) -> tuple[arena_pb2.TrainingRecord, arena_pb2.TrainingRecord | None] | None:
        """The challenge's SFT record and preference pair, or None (skipped, with a reason)."""
        cid = o.challenge_id
        ids = tuple(b.battle_id for b in o.battles)
        problem: tuple[str, str] | None = None
        if challenge is None:
            problem = ("unknown_challenge",
                       f"the battles name challenge {cid}, which the store does not hold")
        elif challenge[0] != round_id:
            problem = ("wrong_round", (f"challenge {cid} belongs to round "
                       f"{challenge[0]!r}, not {round_id!r} as its battles say"))
        elif not challenge[1].strip():
            problem = ("empty_instruction", f"challenge {cid} has an empty instruction")
        else:
            missing = sorted(m for m in {o.winner, o.loser} if (cid, m) not in answers)
            if missing:
                problem = ("missing_answer",
                           f"no stored answer of {', '.join(missing)} to challenge {cid}")
            elif not answers[(cid, o.winner)].strip():
                problem = ("empty_answer", f"the chosen answer ({o.winner}) is empty")
        if problem is not None:
            seen.skip(Skipped(round_id, cid, ids, *problem))
            return None
        assert challenge is not None
        sft, preference = training_records(
            [o], {cid: challenge[1]}, answers, round_id=round_id,
            config_hash=counts.config_hash,
            min_preference_margin=self.config.export.min_preference_margin)
        pair = preference[0] if preference else None
        if pair is not None and not pair.rejected.strip():
            seen.skip(Skipped(round_id, cid, ids, "empty_answer",
                              f"the rejected answer ({o.loser}) is empty", kind="preference"))
            pair = None
        return sft[0], pair

    # -- records -------------------------------------------------------------------------------
    def stream(self, scope: ExportScope, board: arena_pb2.Leaderboard,
               kinds: Iterable[str] = (SFT, PREFERENCE)
               ) -> Generator[arena_pb2.TrainingRecord, None, None]:
        """The export's records: every SFT record, then every preference pair (or the kinds
        asked), read back from the on-disk table as they are consumed."""
        with RecordTable() as table:
            self.collect(scope, board, table)
            for kind in kinds:
                yield from table.records(kind)

    def records(
        self, board: arena_pb2.Leaderboard
    ) -> tuple[list[arena_pb2.TrainingRecord], list[arena_pb2.TrainingRecord]]:
        """The board's round's (or season's) SFT records and preference pairs, as lists."""
        with RecordTable() as table:
            self.collect(ExportScope.of(board), board, table)
            return list(table.records(SFT)), list(table.records(PREFERENCE))

    # -- files -----------------------------------------------------------------------------------
    def export(self, board: arena_pb2.Leaderboard, out_dir: Path) -> Export:
        """Write the board's export into `out_dir`, a folder the caller owns (the embedded
        run's export folder): files there without a manifest are taken over."""
        out_dir = Path(out_dir).expanduser().absolute()
        with ExportRoot(out_dir.parent).open(out_dir.name) as folder:
            return self.write(ExportScope.of(board), board, folder, adopt=True)

    def write(self, scope: ExportScope, board: arena_pb2.Leaderboard, folder: ExportFolder,
              *, adopt: bool = False) -> Export:
        """Write sft.jsonl, preference.jsonl, the leaderboard files and manifest.json into
        `folder` (exports.folder), replacing only files an earlier export of the same scope
        wrote there (NotOwned otherwise, before anything is written)."""
        folder.lock()
        owned = check_ownership(folder, scope.name, adopt=adopt)
        with RecordTable() as table:
            seen = self.collect(scope, board, table)
            staged: list[tuple[AtomicFile, WrittenFile, int | None]] = []
            try:
                counts: dict[str, int] = {}
                for kind in (SFT, PREFERENCE):
                    counts[kind] = table.count(kind)
                    if counts[kind]:
                        staged.append(self._stage_jsonl(folder, kind, table.records(kind)))
                staged += self._stage_leaderboard(folder, board)
                written = [w for _, w, _ in staged]
                manifest = self._manifest(scope, board, seen, table, written,
                                          {w.name: n for _, w, n in staged if n is not None})
                # Before any file moves, the old manifest also lists the new checksums: a crash
                # half-way leaves files that one manifest or the other vouches for.
                previous = None
                if MANIFEST_FILE in owned:
                    with contextlib.suppress(NotOwned):  # adopted: any manifest.json
                        previous = read_manifest(folder)
                # A first export of the folder writes one too: files without any manifest
                # would be refused as someone else's.
                pending = dict(previous or {"format": FORMAT, "scope": scope.name})
                pending["pending"] = True  # not a finished export: the final one replaces it
                pending["files"] = [*(previous or {}).get("files", []),
                                    *(_file_json(w, None) for w in written)]
                with folder.writer(MANIFEST_FILE) as f:
                    f.write(manifest_bytes(pending))
                    f.finish()
                    f.commit()
                for atomic, _, _ in staged:
                    atomic.commit()
            finally:
                for atomic, _, _ in staged:
                    atomic.discard()
            duplicates = table.duplicates
        names = {w.name for w in written}
        for stale in sorted(owned - names - {MANIFEST_FILE}):
            folder.remove(stale)  # e.g. preference.jsonl of an export that had pairs
        with folder.writer(MANIFEST_FILE) as f:
            f.write(manifest_bytes(manifest))
            f.finish()
            f.commit()
        log.info("export %s into %s: %d SFT records, %d preference pairs, %d duplicates, "
                 "%d skipped", scope.name, folder.path, counts[SFT], counts[PREFERENCE],
                 duplicates, seen.skipped_total)
        return Export(folder.path, counts[SFT], counts[PREFERENCE], duplicates,
                      seen.skipped_total,
                      [folder.path / w.name for w in written] + [folder.path / MANIFEST_FILE],
                      manifest)

    @staticmethod
    def _stage_jsonl(folder: ExportFolder, kind: str, records: Iterator[arena_pb2.TrainingRecord]
                     ) -> tuple[AtomicFile, WrittenFile, int]:
        atomic = folder.writer(_FILE_OF[kind])
        n = 0
        try:
            buffer: list[str] = []
            for record in records:
                buffer.append(json.dumps(record_json(record), ensure_ascii=False))
                n += 1
                if len(buffer) >= 256:
                    atomic.write(("\n".join(buffer) + "\n").encode())
                    buffer.clear()
            if buffer:
                atomic.write(("\n".join(buffer) + "\n").encode())
            return atomic, atomic.finish(), n
        except BaseException:
            atomic.discard()
            raise

    @staticmethod
    def _stage_leaderboard(folder: ExportFolder, board: arena_pb2.Leaderboard
                           ) -> list[tuple[AtomicFile, WrittenFile, None]]:
        staged = []
        with tempfile.TemporaryDirectory(prefix="warriorcoder-leaderboard-") as tmp:
            paths = {p.name: p for p in write_leaderboard(board, Path(tmp))}
            for name in LEADERBOARD_FILES:
                atomic = folder.writer(name)
                try:
                    atomic.write(paths[name].read_bytes())
                    staged.append((atomic, atomic.finish(), None))
                except BaseException:
                    atomic.discard()
                    for done, _, _ in staged:
                        done.discard()
                    raise
        return staged

    def _manifest(self, scope: ExportScope, board: arena_pb2.Leaderboard, seen: Collected,
                  table: RecordTable, written: list[WrittenFile],
                  records: dict[str, int]) -> dict[str, Any]:
        cfg = self.config
        sel = cfg.selection
        data_files = [w for w in written if w.name in records]
        empty = {name: "not written: no records (datasets cannot load a file of zero records)"
                 for kind, name in _FILE_OF.items() if not table.count(kind)}
        roster = {e.id for e in cfg.roster}
        experts: list[dict[str, Any]] = [
            {"id": e.id, "backend": e.backend, "model": e.model,
             # The version of an expert: its whole roster entry (model, decoding, prompt).
             "version": hashlib.sha256(json.dumps(e.model_dump(mode="json"),
                                                  sort_keys=True).encode()).hexdigest()[:16]}
            for e in cfg.roster]
        experts += [{"id": r.model_id, "in_roster": False} for r in board.ratings
                    if r.model_id not in roster]
        return {
            "format": FORMAT,
            "dataset_id": dataset_id(data_files),
            "scope": scope.name,
            "arena": scope.arena if scope.arena is not None else cfg.arena,
            "season": scope.arena is not None,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "warriorcoder": _version(),
            "config_hash": cfg.config_hash(),
            "rounds": [
                {"round_id": r.round_id, "battles": r.battles, "rated_battles": r.rated_battles,
                 "challenges": r.challenges,
                 "config_hash": r.config_hash}
                for r in seen.rounds],
            "selection": {"alpha": sel.alpha, "rating": sel.rating, "aggregate": sel.aggregate,
                          "head_to_head_guard": sel.head_to_head_guard,
                          "min_preference_margin": cfg.export.min_preference_margin},
            "experts": experts,
            "counts": {
                "battles": sum(r.battles for r in seen.rounds),
                "rated_battles": sum(r.rated_battles for r in seen.rounds),
                "challenges": sum(r.challenges for r in seen.rounds),
                "sft_records": table.count(SFT),
                "preference_records": table.count(PREFERENCE),
                "duplicates": table.duplicates,
                "skipped": seen.skipped_total,
            },
            "ratings": [{"model": r.model_id, "bradley_terry": r.bradley_terry,
                         "elo": r.elo, "battles": r.battles} for r in board.ratings],
            "judges": [json_format.MessageToDict(j, preserving_proto_field_name=True)
                       for j in board.judges],
            "skipped": {"total": seen.skipped_total,
                        "by_code": dict(sorted(seen.skipped_by_code.items())),
                        "listed": [s.as_json() for s in seen.skipped]},
            "empty": empty,
            "files": [_file_json(w, records.get(w.name)) for w in written],
        }


def _file_json(w: WrittenFile, records: int | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": w.name, "sha256": w.sha256, "bytes": w.bytes}
    if records is not None:
        entry["records"] = records
    return entry
