"""Export folders holding something other than regular files where an export's files go."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from warriorcoder.exports.folder import ExportRoot, NotOwned
from warriorcoder.exports.manifest import FORMAT, check_ownership


def _within(seconds: float, work: Callable[[], object]) -> object:
    """`work()`'s result or exception; fails the test when it does not return in time (a
    daemon thread, so a call stuck for good cannot hold up the test run)."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome.append(error)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"still blocked after {seconds} s"
    return outcome[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_fifo_where_the_manifest_is_is_refused_without_waiting(tmp_path: Path) -> None:
    root = ExportRoot(tmp_path / "root")
    (tmp_path / "root" / "r1").mkdir()
    os.mkfifo(tmp_path / "root" / "r1" / "manifest.json")
    with root.open("r1") as folder:
        folder.lock()
        result = _within(10, lambda: check_ownership(folder, "round:r1"))
    assert isinstance(result, NotOwned), result
    assert "manifest.json is not a regular file" in str(result)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_fifo_where_a_listed_data_file_is_is_refused_without_waiting(tmp_path: Path) -> None:
    root = ExportRoot(tmp_path / "root")
    folder_path = tmp_path / "root" / "r1"
    folder_path.mkdir()
    manifest = {"format": FORMAT, "scope": "round:r1",
                "files": [{"name": "sft.jsonl", "sha256": "0" * 64}]}
    (folder_path / "manifest.json").write_text(json.dumps(manifest))
    os.mkfifo(folder_path / "sft.jsonl")
    with root.open("r1") as folder:
        folder.lock()
        result = _within(10, lambda: check_ownership(folder, "round:r1"))
        assert folder.sha256("manifest.json") is not None  # a regular file is still read
    assert isinstance(result, NotOwned), result
    assert "sft.jsonl changed since the exporter wrote it" in str(result)
