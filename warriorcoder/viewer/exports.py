"""Whether and why a challenge's answers became training records.

Two sources, shown side by side on a battle's page:
- the selection as arena.selection makes it now, from the challenge's stored battles and the
  stored leaderboard's ratings under the arena's config: who wins, who loses, every answer's
  final score e(model), the head-to-head guard and the preference margin;
- the records an export actually wrote (a run folder's `export/`): the newest `manifest.json`
  under it names the dataset and its files, else `sft.jsonl` and `preference.jsonl` are read.
  The files are indexed by challenge once per change of the files (size and mtime).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from warriorcoder.arena.rating import RatingScale
from warriorcoder.arena.selection import ChallengeOutcome, select_winners
from warriorcoder.arena.training_record import (
    PREFERENCE,
    SFT,
    RecordError,
    number_field,
    text_field,
)
from warriorcoder.config import ArenaConfig
from warriorcoder.v1 import arena_pb2

log = logging.getLogger(__name__)

SFT_FILE = "sft.jsonl"
PREFERENCE_FILE = "preference.jsonl"


@dataclass(frozen=True)
class WrittenRecords:
    """What the export files hold for one challenge."""

    sft_model: str | None = None
    sft_score: float | None = None
    chosen_model: str | None = None
    rejected_model: str | None = None
    margin: float | None = None


@dataclass
class ExportFiles:
    """An export folder's records, by challenge id, and where they came from."""

    folder: Path
    manifest: dict[str, Any] | None
    records: dict[str, WrittenRecords]
    # Lines that are not training records (named with file and line), shown on the page.
    problems: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        """Where the records come from, for the page: the folder and the dataset version."""
        version = None
        if self.manifest is not None:
            for key in ("dataset_id", "version", "dataset_version"):
                if isinstance(self.manifest.get(key), str | int):
                    version = self.manifest[key]
                    break
        return f"{self.folder}" + (f" (dataset version {version})" if version is not None else "")


def _manifest_folder(export_dir: Path) -> tuple[Path, dict[str, Any] | None]:
    """The folder of the newest manifest.json in export_dir or one level below, and the
    manifest; export_dir itself and None when there is none (or it does not parse)."""
    candidates = [p for p in (export_dir / "manifest.json", *export_dir.glob("*/manifest.json"))
                  if p.is_file()]
    if not candidates:
        return export_dir, None
    newest = max(candidates, key=lambda p: p.stat().st_mtime)
    try:
        manifest = json.loads(newest.read_text())
    except (OSError, json.JSONDecodeError) as error:
        log.warning("export manifest %s not read: %s", newest, error)
        return newest.parent, None
    return newest.parent, manifest if isinstance(manifest, dict) else None


def _data_file(folder: Path, manifest: dict[str, Any] | None, name: str) -> Path:
    """The file of a kind: one the manifest names (any string value ending in `name`), else
    `folder/name`."""
    if manifest is not None:
        stack: list[Any] = [manifest]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
            elif isinstance(item, str) and item.endswith(name):
                path = (folder / item).resolve()
                if path.is_file() and path.is_relative_to(folder.resolve()):
                    return path
    return folder / name


def read_export(export_dir: Path) -> ExportFiles | None:
    """The records of the newest export under `export_dir`; None when it holds none."""
    folder, manifest = _manifest_folder(export_dir)
    files = {kind: _data_file(folder, manifest, name)
             for kind, name in ((SFT, SFT_FILE), (PREFERENCE, PREFERENCE_FILE))}
    if not any(p.is_file() for p in files.values()):
        return None
    out = ExportFiles(folder, manifest, {})
    for kind, path in files.items():
        if not path.is_file():
            continue
        with path.open(encoding="utf-8", errors="replace") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    cid, fields = _record_fields(json.loads(line), kind)
                except (json.JSONDecodeError, RecordError) as error:
                    if len(out.problems) < 20:
                        out.problems.append(f"{path.name}:{number}: {error}")
                    continue
                found = out.records.get(cid, WrittenRecords())
                out.records[cid] = dataclasses.replace(found, **fields)
    return out


def _record_fields(obj: Any, kind: str) -> tuple[str, dict[str, Any]]:
    """The challenge id and the WrittenRecords fields of one decoded JSONL line, read from the
    record's JSON form (arena.training_record.record_json: "model" and "score" of an SFT
    record, "chosen_model", "rejected_model" and "margin" of a pair, the provenance's
    "challenge_id"). Only these fields are read: a 100,000-record export is indexed in seconds,
    where decoding whole records takes ten times longer."""
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {type(obj).__name__}")
    provenance = obj.get("provenance")
    cid = provenance.get("challenge_id") if isinstance(provenance, dict) else None
    if not isinstance(cid, str) or not cid:
        raise RecordError("no provenance.challenge_id")
    if kind == SFT:
        if not isinstance(obj.get("messages"), list):
            raise RecordError("no 'messages' list")
        return cid, {"sft_model": text_field(obj, "model"),
                     "sft_score": number_field(obj, "score")}
    if not isinstance(obj.get("chosen"), list) or not isinstance(obj.get("rejected"), list):
        raise RecordError("no 'chosen' and 'rejected' lists")
    return cid, {"chosen_model": text_field(obj, "chosen_model"),
                 "rejected_model": text_field(obj, "rejected_model"),
                 "margin": number_field(obj, "margin")}


class ExportIndex:
    """read_export, cached until a file of the export changes (the viewer reads it per page)."""

    def __init__(self, export_dir: Path | None) -> None:
        self.export_dir = export_dir
        self._lock = threading.Lock()
        self._key: tuple[tuple[str, int, int], ...] | None = None
        self._files: ExportFiles | None = None

    def _signature(self) -> tuple[tuple[str, int, int], ...]:
        assert self.export_dir is not None
        paths = sorted([*self.export_dir.glob("*.json*"), *self.export_dir.glob("*/*.json*")])
        out = []
        for p in paths:
            try:
                st = p.stat()
            except OSError:
                continue
            out.append((str(p), st.st_size, st.st_mtime_ns))
        return tuple(out)

    def current(self) -> ExportFiles | None:
        """The export as the files are now (read again only when they changed)."""
        if self.export_dir is None or not self.export_dir.is_dir():
            return None
        with self._lock:
            key = self._signature()
            if key != self._key:
                self._files = read_export(self.export_dir)
                self._key = key
            return self._files


@dataclass(frozen=True)
class Selection:
    """The selection of one challenge as arena.selection makes it now, with its reasons."""

    outcome: ChallengeOutcome
    preference: bool
    margin: float
    reasons: list[str]


def explain_selection(
    config: ArenaConfig,
    battles: Sequence[arena_pb2.RatedBattle],
    board: arena_pb2.Leaderboard,
    answers: dict[str, str],
) -> Selection | None:
    """Who arena.selection exports for the challenge of `battles` under `board`'s ratings, and
    why, in sentences; None when no battle of the challenge is rated or a model has no rating.

    `answers` maps model id to its answer text (a preference pair needs different texts).
    """
    sel = config.selection
    ratings = {r.model_id: float(getattr(r, sel.rating)) for r in board.ratings}
    rated = [b for b in battles if b.status == arena_pb2.BATTLE_STATUS_RATED]
    if not rated or any(m not in ratings for b in rated for m in (b.model_a, b.model_b)):
        return None
    r = config.rating
    outcomes = select_winners(rated, ratings, sel.alpha,
                              RatingScale(initial=r.initial, scale=r.scale, base=r.base),
                              aggregate=sel.aggregate, head_to_head_guard=sel.head_to_head_guard)
    outcome = outcomes[0]
    scores = outcome.scores
    reasons = [
        f"Final scores e(model) = {sel.aggregate} over the opponents of {sel.alpha:g} · "
        f"P({sel.rating.replace('_', '-')} rating wins) + {1 - sel.alpha:g} · local score: "
        + ", ".join(f"{m} {scores[m]:.3f}" for m in sorted(scores, key=lambda m: -scores[m]))
        + "."
    ]
    best = max(scores, key=lambda m: scores[m])
    if outcome.beaten_unanimously:
        reasons.append(
            f"Lost a head-to-head by a unanimous vote: {', '.join(outcome.beaten_unanimously)}"
            + (" (never exported over the answer that beat it)." if sel.head_to_head_guard
               else " (the head-to-head guard is off).")
        )
    if outcome.winner != best:
        reasons.append(f"{outcome.winner} is exported although {best} scored higher: "
                       f"{best} lost a unanimous head-to-head.")
    else:
        reasons.append(f"{outcome.winner} has the best final score: its answer is the SFT "
                       "example.")
    margin = scores[outcome.winner] - scores[outcome.loser]
    min_margin = config.export.min_preference_margin
    preference = False
    if outcome.loser == outcome.winner:
        reasons.append("No preference pair: only one answer was rated.")
    elif answers.get(outcome.winner) == answers.get(outcome.loser):
        reasons.append("No preference pair: the best and the worst answer are the same text.")
    elif margin <= min_margin:
        reasons.append(f"No preference pair: the margin {margin:.3f} is not above "
                       f"export.min_preference_margin {min_margin:g}.")
    else:
        preference = True
        reasons.append(f"Preference pair: {outcome.winner} chosen over {outcome.loser} "
                       f"(margin {margin:.3f} > {min_margin:g}).")
    return Selection(outcome, preference, margin, reasons)
