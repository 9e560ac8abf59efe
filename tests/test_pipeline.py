"""The embedded run end to end with the fake backend: results, resume, failures, the CLI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from warriorcoder import cli
from warriorcoder.arena.ids import battle_id
from warriorcoder.arena.tournament import contenders, opening_battles, pending_battles
from warriorcoder.backends import load_backend
from warriorcoder.backends.base import (
    ChatRequest,
    CompletionRequest,
    GenerationOutcome,
    ModelBackend,
    WrappedBackend,
)
from warriorcoder.config import ArenaConfig, ConfigError, parse_config
from warriorcoder.stages.embedded import run_arena
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2


def make_config(**overrides: Any) -> ArenaConfig:
    data: dict[str, Any] = {
        "round_id": "t1",
        "roster": [
            {"id": "alpha", "backend": "fake", "model": "fake:prefer-longer"},
            {"id": "beta", "backend": "fake", "model": "fake:prefer-first"},
            {"id": "gamma", "backend": "fake", "model": "fake:random"},
            {"id": "delta", "backend": "fake", "model": "fake:tie"},
        ],
        "challenger": {
            "per_setting": 3,
            "sampling_grid": [{"temperature": 1.0}, {"temperature": 1.2}],
            "user_instructions": ["Write a Python function that adds two numbers a and b."],
        },
        "rating": {"bootstrap_rounds": 20},
    }
    data.update(overrides)
    return parse_config(data)


class SimulatedCrash(RuntimeError):
    """Stands for the process dying mid-run."""


class CountingBackend(WrappedBackend):
    """Wraps a backend, counts requests, and can crash after a number of chat requests."""

    def __init__(self, inner: ModelBackend, interrupt_after: int | None = None) -> None:
        super().__init__(inner)
        self.chat_requests = 0
        self.completion_requests = 0
        self.interrupt_after = interrupt_after

    async def chat(self, requests: Sequence[ChatRequest]) -> list[GenerationOutcome]:
        self.chat_requests += len(requests)
        if self.interrupt_after is not None and self.chat_requests > self.interrupt_after:
            raise SimulatedCrash
        return await self.inner.chat(requests)

    async def complete(self, requests: Sequence[CompletionRequest]) -> list[GenerationOutcome]:
        self.completion_requests += len(requests)
        return await self.inner.complete(requests)


def backends_for(config: ArenaConfig, **kwargs: Any) -> dict[str, CountingBackend]:
    return {e.id: CountingBackend(load_backend(e), **kwargs) for e in config.roster}


def run(config: ArenaConfig, run_dir: Path, backends: dict[str, CountingBackend] | None = None):
    return asyncio.run(run_arena(config, run_dir, backends=backends or backends_for(config)))


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_full_round(tmp_path: Path) -> None:
    config = make_config()
    result = run(config, tmp_path)
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    challenges = store.challenges("t1")
    battles = store.battles("t1")
    assert challenges and result.challenges == len(challenges)
    assert any(c.source == "user" for c in challenges)
    assert all(b.status == arena_pb2.BATTLE_STATUS_RATED for b in battles)
    # Every other expert defends every challenge (3 opening battles), then the answers still in
    # contention meet: each challenge's tournament is complete, with nothing fought twice.
    by_challenge: dict[str, dict[tuple[str, str], float | None]] = {}
    for b in battles:
        by_challenge.setdefault(b.challenge_id, {})[(b.model_a, b.model_b)] = b.local_score_a
    assert len(by_challenge) == len(challenges)
    follow_ups = 0
    for c in challenges:
        results = by_challenge[c.challenge_id]
        assert set(opening_battles("contenders", c.attacker, c.defenders)) <= set(results)
        assert pending_battles("contenders", c.attacker, c.defenders, results) == []
        alive = contenders([c.attacker, *c.defenders], results)
        assert all((a, b) in results or (b, a) in results for a in alive for b in alive if a != b)
        follow_ups += len(results) - 3
    assert follow_ups > 0
    for b in battles:
        judgments = store.judgments(b.battle_id)
        judges = {j.judge for j in judgments}
        assert judges == {"alpha", "beta", "gamma", "delta"} - {b.model_a, b.model_b}
        assert sorted(j.order for j in judgments) == sorted(
            [arena_pb2.ORDER_AB, arena_pb2.ORDER_BA] * len(judges))
    board = result.leaderboard
    assert {r.model_id for r in board.ratings} == {"alpha", "beta", "gamma", "delta"}
    assert sum(r.battles for r in board.ratings) == 2 * len(battles)
    stats = {j.judge: j for j in board.judges}
    assert stats["beta"].first_position_rate == 1.0  # the always-[[A]] judge shows its bias
    assert stats["delta"].tie_rate == 1.0
    sft = read_jsonl(tmp_path / "export" / "sft.jsonl")
    assert len(sft) == len(challenges)
    assert all(r["provenance"]["config_hash"] == config.config_hash() for r in sft)
    for name in ("leaderboard.json", "leaderboard.md", "leaderboard.png", "preference.jsonl"):
        assert (tmp_path / "export" / name).stat().st_size > 0


def test_rerun_resumes_without_redoing_work(tmp_path: Path) -> None:
    config = make_config()
    run(config, tmp_path)
    first = (tmp_path / "export" / "sft.jsonl").read_text()
    again = backends_for(config)
    run(config, tmp_path, again)
    assert sum(b.chat_requests + b.completion_requests for b in again.values()) == 0
    assert (tmp_path / "export" / "sft.jsonl").read_text() == first


def test_interrupted_run_resumes_to_the_same_result(tmp_path: Path) -> None:
    config = make_config()
    run(config, tmp_path / "clean")
    interrupted = backends_for(config, interrupt_after=6)
    with pytest.raises(SimulatedCrash):
        run(config, tmp_path / "resumed", interrupted)
    run(config, tmp_path / "resumed")
    for name in ("sft.jsonl", "preference.jsonl", "leaderboard.json"):
        assert (tmp_path / "resumed" / "export" / name).read_text() == (
            tmp_path / "clean" / "export" / name).read_text()


def test_failing_expert_fails_its_battles_and_the_run_goes_on(tmp_path: Path) -> None:
    config = make_config(roster=[
        {"id": "alpha", "backend": "fake", "model": "fake:prefer-longer"},
        {"id": "beta", "backend": "fake", "model": "fake:prefer-first"},
        {"id": "gamma", "backend": "fake", "model": "fake:random"},
        {"id": "broken", "backend": "fake", "model": "fake:fail"},
    ])
    result = run(config, tmp_path)
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    battles = store.battles("t1")
    failed = [b for b in battles if b.status == arena_pb2.BATTLE_STATUS_FAILED]
    rated = [b for b in battles if b.status == arena_pb2.BATTLE_STATUS_RATED]
    assert failed and rated
    assert all("broken" in (b.model_a, b.model_b) for b in failed)
    assert all("broken" in b.failure_reason for b in failed)
    assert result.leaderboard.failed_battles == len(failed)
    # Its judgments are invalid (never guessed) and battles judged only by others are rated.
    assert {j.judge: j.invalid_rate for j in result.leaderboard.judges}["broken"] == 1.0


def test_garbage_judge_is_counted_invalid_not_guessed(tmp_path: Path) -> None:
    config = make_config(roster=[
        {"id": "alpha", "backend": "fake", "model": "fake:prefer-longer"},
        {"id": "beta", "backend": "fake", "model": "fake:prefer-first"},
        {"id": "junk", "backend": "fake", "model": "fake:garbage"},
    ])
    result = run(config, tmp_path)
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    stats = {j.judge: j for j in result.leaderboard.judges}
    assert stats["junk"].invalid_rate == 1.0
    # alpha vs beta is judged by junk alone: never scored from a guess.
    ab = [b for b in store.battles("t1") if {b.model_a, b.model_b} == {"alpha", "beta"}]
    assert ab and all(b.status == arena_pb2.BATTLE_STATUS_FAILED for b in ab)
    # retries_on_invalid=1: each order was asked twice.
    assert all(j.attempts == 2 for b in ab for j in store.judgments(b.battle_id))


def test_run_folder_of_another_config_is_refused(tmp_path: Path) -> None:
    run(make_config(), tmp_path)
    with pytest.raises(ConfigError, match="different config"):
        run(make_config(seed=7), tmp_path)


def test_battle_ids_are_deterministic(tmp_path: Path) -> None:
    config = make_config(selection={"tournament": "round_robin"})
    run(config, tmp_path)
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    expected = set()
    for c in store.challenges("t1"):
        models = [c.attacker, *c.defenders]
        expected |= {battle_id(c.challenge_id, a, b)
                     for i, a in enumerate(models) for b in models[i + 1:]}
    assert store.battle_ids("t1") == expected


def test_cli_run_validate_leaderboard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg_path = tmp_path / "arena.yaml"
    cfg_path.write_text(yaml.safe_dump(make_config().model_dump(mode="json")))
    assert cli.main(["validate", "--config", str(cfg_path)]) == 0
    run_dir = tmp_path / "run"
    assert cli.main(["run", "--config", str(cfg_path), "--run-dir", str(run_dir),
                     "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Leaderboard" in out and "sft.jsonl" in out
    assert cli.main(["leaderboard", "--run-dir", str(run_dir)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("roster:\n  - {id: a, backend: openai, model: m}\n")
    assert cli.main(["validate", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "roster.0: endpoint: required for backend 'openai'" in err


class ScoringBackend(CountingBackend):
    """Answers quality-rubric prompts with a score: 9 for user-style 'adds two numbers', else 3
    or 'no idea' for every third challenge (an unparseable score)."""

    async def chat(self, requests: Sequence[ChatRequest]) -> list[GenerationOutcome]:
        from warriorcoder.backends.base import GenerationResult

        out: list[GenerationOutcome] = []
        for i, r in enumerate(requests):
            text = r.messages[-1].content
            if "[Challenge]" not in text:
                out.extend(await self.inner.chat([r]))
                continue
            reply = ("Score: 9" if "adds two numbers" in text
                     else "no idea" if i % 3 == 0 else "Clear enough.\nScore: 3")
            out.append(GenerationResult(self.model_id, reply, 10, 3, 0.0, "stop"))
        return out


def test_quality_filter_keeps_only_well_scored_challenges(tmp_path: Path) -> None:
    config = make_config(challenger={
        "per_setting": 3,
        "user_instructions": ["Write a Python function that adds two numbers a and b."],
        "quality": {"enabled": True, "judge": "gamma", "min_score": 5},
    })
    backends = {e.id: (ScoringBackend if e.id == "gamma" else CountingBackend)(load_backend(e))
                for e in config.roster}
    run(config, tmp_path, backends)
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    challenges = store.challenges("t1")
    assert [c.instruction for c in challenges] == [
        "Write a Python function that adds two numbers a and b."]
    assert challenges[0].quality == 9
    funnel = store.round_info("t1")["funnel"]
    assert funnel["rejected"]["quality: no score"] > 0
    assert funnel["rejected"]["quality below 5"] > 0


@pytest.mark.model  # loads the real MiniLM embedder
def test_diversity_selection_caps_the_challenges(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    config = make_config(challenger={"per_setting": 4, "diversity": {"enabled": True, "k": 5}})
    run(config, tmp_path)
    assert len(ArenaStore.open_embedded(tmp_path / "arena.db").challenges("t1")) == 5


def test_prefill_verdict_mode(tmp_path: Path) -> None:
    """Judges whose turn is pre-filled with "[[" answer with the verdict straight away."""
    config = make_config(judge={"verdict_mode": "prefill", "max_tokens": 4})
    backends = backends_for(config)
    result = run(config, tmp_path, backends)
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    judgments = [j for b in store.battles("t1") for j in store.judgments(b.battle_id)]
    assert judgments and all(j.generation.text.startswith("[[") for j in judgments)
    assert all(j.verdict != arena_pb2.VERDICT_INVALID for j in judgments)
    stats = {j.judge: j for j in result.leaderboard.judges}
    assert stats["beta"].first_position_rate == 1.0 and stats["delta"].tie_rate == 1.0
    # No judge used the chat endpoint: every verdict came from a pre-filled completion.
    mined = sum(b.completion_requests for b in backends.values())
    assert mined > config.challenger.per_setting * 2 * len(config.roster)


def test_cli_names_a_model_that_cannot_load(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "arena.yaml"
    cfg.write_text(yaml.safe_dump({"roster": [
        {"id": "a", "backend": "transformers", "model": str(tmp_path / "missing")},
        {"id": "b", "backend": "fake", "model": "fake"},
        {"id": "c", "backend": "fake", "model": "fake"},
    ]}))
    assert cli.main(["run", "--config", str(cfg), "--run-dir", str(tmp_path / "run"),
                     "--no-progress"]) == 2
    assert "expert 'a'" in capsys.readouterr().err


def test_adaptive_judging_skips_judges_that_cannot_change_the_winner(tmp_path: Path) -> None:
    roster = [
        {"id": "alpha", "backend": "fake", "model": "fake:prefer-longer"},
        {"id": "beta", "backend": "fake", "model": "fake:prefer-longer"},
        {"id": "gamma", "backend": "fake", "model": "fake:prefer-longer"},
        {"id": "delta", "backend": "fake", "model": "fake:random"},
        {"id": "epsilon", "backend": "fake", "model": "fake:tie"},
    ]
    full = run(make_config(roster=roster), tmp_path / "full")
    adaptive = run(make_config(roster=roster, judge={"adaptive": True}), tmp_path / "adaptive")
    store = ArenaStore.open_embedded(tmp_path / "adaptive" / "arena.db")
    battles = store.battles("t1")
    assert battles and all(b.status == arena_pb2.BATTLE_STATUS_RATED for b in battles)
    skipped = [b for b in battles if b.skipped_judges]
    assert skipped  # three agreeing prefer-longer judges settle many battles after two votes
    for b in battles:
        voted = {v.judge for v in b.votes}
        assert len(voted) + len(b.skipped_judges) == 3
        assert not voted & set(b.skipped_judges)
        if b.skipped_judges:  # nothing the skipped judges could have voted changes who wins
            assert abs(b.votes_a - b.votes_b) > len(b.skipped_judges)
        judged = {j.judge for j in store.judgments(b.battle_id)}
        assert judged == voted
    assert adaptive.leaderboard.judge_calls < full.leaderboard.judge_calls
    assert full.leaderboard.judge_tokens_per_record > 0
