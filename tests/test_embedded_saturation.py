"""The embedded run keeps the model servers busy: every expert's `max_concurrency` slots fill,
and judging starts while answers are still being written. Real HTTP servers (one
OpenAI-compatible fake per expert, each answer taking a while); requests are counted, never
timed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fake_openai_server import FakeOpenAIServer

from warriorcoder.config import parse_config
from warriorcoder.stages.embedded import CHALLENGE_BATCH, run_arena
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

SLOTS = 12
# More challenges than the responder's window holds at once (5 batches of 8 fill 3 experts' 36
# slots twice over), so later answers are asked after the first judges.
CHALLENGES = 72
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"


def config_for(servers: dict[str, FakeOpenAIServer], challenges: int = CHALLENGES,
               defenders: int | str = 1) -> Any:
    return parse_config({
        "round_id": "busy",
        "roster": [
            {"id": name, "backend": "openai", "endpoint": server.base_url, "model": f"m-{name}",
             "chat_template": {"builtin": "chatml"}, "max_retries": 1, "timeout_s": 20,
             "max_concurrency": SLOTS}
            for name, server in servers.items()
        ],
        "challenger": {
            "per_setting": 0, "defenders": defenders,
            "dedup": {"enabled": False}, "decontamination": {"enabled": False},
            "user_instructions": [f"Write a Python function number {i} that returns {i} squared."
                                  for i in range(challenges)],
        },
        "judge": {"verdict_mode": "prefill", "max_tokens": 4, "retries_on_invalid": 0},
        "rating": {"bootstrap_rounds": 10},
    })


def test_slots_fill_and_judging_overlaps_answering(tmp_path: Path) -> None:
    with FakeOpenAIServer() as a, FakeOpenAIServer() as b, FakeOpenAIServer() as c:
        servers = {"a": a, "b": b, "c": c}
        for server in servers.values():
            # 0.2 s per request: many requests of a batch are in flight at once.
            server.set_behaviour("normal", completion_text="A]]", delay_s=0.2)
        result = asyncio.run(run_arena(config_for(servers), tmp_path))
        logs = {name: [r.path for r in s.requests] for name, s in servers.items()}
        most = {name: s.max_in_flight for name, s in servers.items()}

    battles = ArenaStore.open_embedded(tmp_path / "arena.db").battles("busy")
    assert len(battles) == CHALLENGES  # one defender each
    assert all(bt.status == arena_pb2.BATTLE_STATUS_RATED for bt in battles)
    assert result.leaderboard.battles == CHALLENGES
    # Slots filled up to max_concurrency and never beyond it, and every expert had more requests
    # in flight than one batch at a time ever gave (at most 8 answers per expert). Which expert
    # reaches all 12 at once depends on how its requests interleave with the others'.
    assert max(most.values()) == SLOTS
    assert all(CHALLENGE_BATCH < n <= SLOTS for n in most.values()), most
    # Judges (pre-filled completions) were asked while answers (chats) were still being asked.
    assert any(
        COMPLETIONS in log and log.index(COMPLETIONS) < len(log) - 1 - log[::-1].index(CHAT)
        for log in logs.values()
    )
    # Overlapping batches judged no battle twice: one judge, two orders per battle.
    assert sum(log.count(COMPLETIONS) for log in logs.values()) == 2 * CHALLENGES
    assert sum(log.count(CHAT) for log in logs.values()) == 2 * CHALLENGES


def test_overlapping_batches_finish_every_tournament_once(tmp_path: Path) -> None:
    """Four experts, every other one defends, tournaments on: the follow-up battles that a
    challenge's results unlock are fought by the batch that judged its opening battles, once."""
    with (FakeOpenAIServer() as a, FakeOpenAIServer() as b, FakeOpenAIServer() as c,
          FakeOpenAIServer() as d):
        servers = {"a": a, "b": b, "c": c, "d": d}
        for server in servers.values():
            # Always "[[A]]": each judge's two orders disagree, every battle is a tie, so every
            # answer stays in contention and the tournament plays every pair.
            server.set_behaviour("normal", completion_text="A]]", delay_s=0.02)
        config = config_for(servers, challenges=10, defenders="all")
        assert config.selection.tournament == "contenders"
        asyncio.run(run_arena(config, tmp_path))
        judge_requests = sum(
            [r.path for r in s.requests].count(COMPLETIONS) for s in servers.values())

    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    battles = store.battles("busy")
    assert len(store.challenges("busy")) == 10
    # 3 opening battles and 3 follow-ups (every pair of the four answers) per challenge.
    assert len(battles) == 10 * 6
    assert all(bt.status == arena_pb2.BATTLE_STATUS_RATED for bt in battles)
    judgments = [j for bt in battles for j in store.judgments(bt.battle_id)]
    assert len(judgments) == 10 * 6 * 2 * 2  # two judges, two orders
    assert judge_requests == len(judgments)  # nothing asked twice
