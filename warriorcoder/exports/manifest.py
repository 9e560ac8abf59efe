"""manifest.json: the record of one export, and the mark of the files the exporter owns.

Written last, after every data file is in place, so a folder with a manifest holds a complete
export. It names the scope (one round, or a season: every round of an arena), the config hash,
the experts and their versions, the counts, the judge statistics, the rounds included, the
battles skipped and why, and each file's SHA-256. `dataset_id` is a hash of the files' names and
checksums: two exports with the same data have the same id.

A later export may replace a file only when the folder's manifest is an export manifest of the
same scope and lists that file with the checksum it has now: files that someone else wrote, or
changed since, are never overwritten (`check_ownership`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any

from warriorcoder.exports.folder import ExportFolder, NotOwned, WrittenFile

MANIFEST_FILE = "manifest.json"
FORMAT = "warriorcoder.export/1"
# Names an export writes; only these are ever replaced or removed in a folder.
SFT_FILE = "sft.jsonl"
PREFERENCE_FILE = "preference.jsonl"
LEADERBOARD_FILES = ("leaderboard.json", "leaderboard.md", "leaderboard.png")
EXPORT_FILES = (SFT_FILE, PREFERENCE_FILE, *LEADERBOARD_FILES, MANIFEST_FILE)
# A manifest lists at most this many skipped battles one by one (all are counted by reason).
SKIPPED_LISTED = 1000
_MANIFEST_LIMIT = 64 << 20


def scope_name(rounds: Sequence[str], season: str | None) -> str:
    """What an export covers, as its manifest names it: 'season:ARENA' or 'round:ID'."""
    if season is not None:
        return f"season:{season}"
    return "round:" + ",".join(rounds)


def dataset_id(files: Iterable[WrittenFile]) -> str:
    """Short content hash of an export's data files (names and checksums)."""
    digest = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.name):
        digest.update(f"{f.name}\x00{f.sha256}\n".encode())
    return digest.hexdigest()[:16]


def read_manifest(folder: ExportFolder) -> dict[str, Any] | None:
    """The folder's export manifest, None when there is none; NotOwned when manifest.json is
    there but is not an export manifest."""
    data = folder.read_bytes(MANIFEST_FILE, _MANIFEST_LIMIT)
    if data is None:
        return None
    try:
        manifest = json.loads(data)
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise NotOwned(f"{folder.path / MANIFEST_FILE} is not an export manifest of "
                       f"{FORMAT!r}; choose another folder")
    return manifest


def check_ownership(folder: ExportFolder, scope: str, *, adopt: bool = False) -> set[str]:
    """The export files in `folder` that an export of `scope` may replace or remove.

    Raises NotOwned, naming the file, when the folder holds an export of another scope, or an
    export file that its manifest does not list with its current checksum. With `adopt` (the
    export folder of an embedded run, which the run owns whatever it holds: the export of its
    latest round) every export file there is taken over.
    """
    present = [name for name in EXPORT_FILES if folder.exists(name)]
    if adopt:
        return set(present)
    manifest = read_manifest(folder)
    if manifest is None:
        unowned = [n for n in present if n != MANIFEST_FILE]
        if unowned:
            raise NotOwned(
                f"{folder.path}: {', '.join(unowned)} exist and no export manifest says the "
                "exporter wrote them; choose another folder (or remove them)")
        return set(present)
    if manifest.get("scope") != scope:
        raise NotOwned(f"{folder.path} holds the export of {manifest.get('scope')!r}, not "
                       f"{scope!r}; one folder holds one export: choose another folder")
    # A name may be listed twice: the checksums before and after an export that was cut off
    # while it replaced the files (stages.exporter writes such a manifest first).
    listed: dict[str, set[str]] = {}
    for f in manifest.get("files", []):
        if isinstance(f, dict) and isinstance(f.get("name"), str):
            listed.setdefault(f["name"], set()).add(str(f.get("sha256")))
    for name in present:
        if name == MANIFEST_FILE:
            continue
        if name not in listed:
            raise NotOwned(f"{folder.path / name} was not written by the export in this folder "
                           "(its manifest does not list it); choose another folder")
        if folder.sha256(name) not in listed[name]:
            raise NotOwned(f"{folder.path / name} changed since the exporter wrote it (its "
                           "checksum no longer matches the manifest); choose another folder")
    return set(present)


def manifest_bytes(manifest: dict[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()
