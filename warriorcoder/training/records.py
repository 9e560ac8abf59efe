"""Reading a round's export for training: the same TrainingRecord schema the exporter writes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from warriorcoder.arena.training_record import (
    PREFERENCE,
    SFT,
    RecordError,
    record_from_json,
    turns,
)
from warriorcoder.training.settings import DPO, TrainingError
from warriorcoder.v1 import arena_pb2

SFT_FILE = "sft.jsonl"
PREFERENCE_FILE = "preference.jsonl"
MANIFEST_FILE = "manifest.json"


def data_file_name(method: str) -> str:
    """The export file a method trains on: preference pairs for DPO, SFT records otherwise."""
    return PREFERENCE_FILE if method == DPO else SFT_FILE


def find_data_file(data: str | Path, method: str) -> Path:
    """The file `method` trains on: in a run folder (RUN_DIR/export/NAME), an export folder,
    or the .jsonl file itself."""
    name = data_file_name(method)
    path = Path(data).expanduser()
    if not path.exists():
        raise TrainingError(f"--data {path}: no such file or folder")
    if path.is_file():
        return path
    for candidate in (path / "export" / name, path / name):
        if candidate.is_file():
            return candidate
    for folder in (path / "export", path):
        # An export writes no file for a kind it has no records of; its manifest says so.
        manifest = folder / MANIFEST_FILE
        if manifest.is_file() and name in _empty_kinds(manifest):
            what = "preference pairs" if name == PREFERENCE_FILE else "SFT records"
            raise TrainingError(f"--data {path}: the export in {folder} has no {what} "
                                f"(see {manifest}: 'empty'); nothing to train on with "
                                f"--method {method}")
    raise TrainingError(
        f"--data {path}: no export/{name} in this folder; give the run folder of "
        f"`warriorcoder run`, its export folder, or a .jsonl file"
    )


def load_records(path: Path, method: str) -> list[arena_pb2.TrainingRecord]:
    """Every record of an export file (SFT records, or preference pairs for DPO); an empty
    file is an error, and a bad line is named by file and line number."""
    kind = PREFERENCE if method == DPO else SFT
    records = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                records.append(record_from_json(json.loads(line), kind))
            except json.JSONDecodeError as err:
                raise TrainingError(f"{where}: not valid JSON ({err.msg})") from None
            except RecordError as err:
                raise TrainingError(f"{where}: {err}") from None
            if not records[-1].record_id:
                records[-1].record_id = where
    if not records:
        what = "preference pairs" if kind == PREFERENCE else "SFT records"
        raise TrainingError(
            f"{path}: no {what} (a round whose battles all failed, or whose answers all "
            "tied, exports none)"
        )
    return records


def trainer_row(record: arena_pb2.TrainingRecord) -> dict[str, Any]:
    """The conversational row TRL trains on.

    SFT: prompt/completion, so the loss counts only the completion (the answer and the turn's
    end marker) under any chat template. DPO: prompt/chosen/rejected, as exported.
    """
    prompt = turns(record.prompt_messages)
    chosen = [{"role": "assistant", "content": record.chosen}]
    if record.kind == PREFERENCE:
        return {"prompt": prompt, "chosen": chosen,
                "rejected": [{"role": "assistant", "content": record.rejected}]}
    return {"prompt": prompt, "completion": chosen}


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (stamped into the provenance of the saved model)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _empty_kinds(manifest: Path) -> dict[str, Any]:
    """The files an export's manifest says it did not write (no records), by name."""
    try:
        data = json.loads(manifest.read_bytes())
    except (OSError, ValueError):
        return {}
    empty = data.get("empty") if isinstance(data, dict) else None
    return empty if isinstance(empty, dict) else {}


def export_manifest(data_path: Path) -> dict[str, Any] | None:
    """Which export `data_path` came from, for the trained model's provenance: the manifest
    beside it (manifest.json, docs/exports.md) by path, SHA-256, dataset id and scope, and
    whether it lists this file with the checksum the file has now (False: the file changed
    after the export, or the manifest is not about it). None when there is no manifest."""
    manifest_path = data_path.parent / MANIFEST_FILE
    if not manifest_path.is_file():
        return None
    raw = manifest_path.read_bytes()
    reference: dict[str, Any] = {"path": str(manifest_path.resolve()),
                                 "sha256": hashlib.sha256(raw).hexdigest()}
    try:
        manifest = json.loads(raw)
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict):
        return {**reference, "error": "not a JSON object", "matches_data": False}
    listed = [f for f in manifest.get("files") or [] if isinstance(f, dict)
              and f.get("name") == data_path.name]
    return {
        **reference,
        "dataset_id": manifest.get("dataset_id"),
        "scope": manifest.get("scope"),
        "rounds": [r.get("round_id") for r in manifest.get("rounds") or [] if isinstance(r, dict)],
        "config_hash": manifest.get("config_hash"),
        "matches_data": any(f.get("sha256") == file_sha256(data_path) for f in listed),
    }
