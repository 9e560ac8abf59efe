"""The embedded run against real HTTP model servers (the OpenAI-compatible fake server):
one server answers, one returns 500s. Battles of the broken expert fail with the server's
reason; everything else is rated and exported."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fake_openai_server import FakeOpenAIServer

from warriorcoder.config import parse_config
from warriorcoder.stages.embedded import run_arena
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2


def test_round_over_http_with_a_failing_server(tmp_path: Path) -> None:
    with FakeOpenAIServer() as good, FakeOpenAIServer() as bad:
        # Pre-filled judge turns get "A]]"; mined text is that too (rejected as too short), so
        # the challenges are the user's.
        good.set_behaviour("normal", completion_text="A]]")
        bad.set_behaviour("error", status=500)

        def expert(name: str, url: str) -> dict:
            return {"id": name, "backend": "openai", "endpoint": url, "model": f"m-{name}",
                    "chat_template": {"builtin": "chatml"}, "max_retries": 1, "timeout_s": 5}

        config = parse_config({
            "round_id": "http",
            "roster": [expert("a", good.base_url), expert("b", good.base_url),
                       expert("c", good.base_url), expert("down", bad.base_url)],
            "challenger": {
                "per_setting": 1,
                "user_instructions": [
                    "Write a Python function that reverses a string.",
                    "Write a Python function that sums the even numbers of a list.",
                ],
            },
            "judge": {"verdict_mode": "prefill", "max_tokens": 4, "retries_on_invalid": 0},
            "rating": {"bootstrap_rounds": 10},
            "selection": {"tournament": "none"},  # attacker vs defenders: the count below
        })
        result = asyncio.run(run_arena(config, tmp_path))

    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    battles = store.battles("http")
    failed = [b for b in battles if b.status == arena_pb2.BATTLE_STATUS_FAILED]
    rated = [b for b in battles if b.status == arena_pb2.BATTLE_STATUS_RATED]
    assert len(battles) == 2 * 3  # two challenges, three defenders each
    assert {b.battle_id for b in failed} == {
        b.battle_id for b in battles if "down" in (b.model_a, b.model_b)}
    assert all("HTTP 500" in b.failure_reason for b in failed)
    assert rated and all(b.votes for b in rated)
    # The broken judge's judgments are invalid with the server's reason, never guessed.
    down_judgments = [j for b in rated for j in store.judgments(b.battle_id) if j.judge == "down"]
    assert down_judgments and all(
        j.verdict == arena_pb2.VERDICT_INVALID and "HTTP 500" in j.error for j in down_judgments)
    assert result.export.sft_records == 2
    assert result.leaderboard.failed_battles == len(failed)
