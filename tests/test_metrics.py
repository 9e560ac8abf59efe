"""ServiceMetrics: what the registry holds after recording, the /metrics endpoint, and the
instrumented model backend."""

from __future__ import annotations

import asyncio
import math
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from warriorcoder.arena.judging import judge_statistics
from warriorcoder.backends.base import (
    ChatRequest,
    CompletionRequest,
    GenerationError,
    GenerationOutcome,
    GenerationResult,
    ModelBackend,
)
from warriorcoder.config import SamplingConfig, parse_config
from warriorcoder.service.metrics import InstrumentedBackend, ServiceMetrics
from warriorcoder.service.runner import ServiceContext
from warriorcoder.service.settings import ServiceSettings
from warriorcoder.services import rater as rater_service
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

A, B, TIE, INVALID = (arena_pb2.VERDICT_A, arena_pb2.VERDICT_B, arena_pb2.VERDICT_TIE,
                      arena_pb2.VERDICT_INVALID)
AB, BA = arena_pb2.ORDER_AB, arena_pb2.ORDER_BA


def value(metrics: ServiceMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"service": metrics.service, **labels})


@pytest.mark.integration
def test_store_commands_are_timed_by_collection_and_command(mongo_uri: str) -> None:
    m = ServiceMetrics("judge")
    database = f"metrics-{uuid.uuid4().hex[:8]}"
    store = ArenaStore.connect(mongo_uri, database,
                               client_options={"event_listeners": [m.store_listener()]})
    store.save_judgments([arena_pb2.Judgment(judgment_id=f"j{n}", battle_id="b", judge="c")
                          for n in range(3)])
    assert len(store.judgments_by_id(["j0", "j2", "nope"])) == 2
    assert len(list(store.db["judgments"].find({}, batch_size=1))) == 3  # find, then getMores
    store.db["unknown_collection"].find_one({})
    store.db.command("ping")

    def count(collection: str, command: str) -> float:
        return value(m, "warriorcoder_store_command_seconds_count", collection=collection,
                     command=command) or 0.0

    assert count("judgments", "update") == 1  # the bulk upsert is one command
    assert count("judgments", "find") == 2
    assert count("judgments", "getMore") >= 2
    assert count("other", "find") == 1  # collections the store does not have share one label
    assert value(m, "warriorcoder_store_command_seconds_sum", collection="judgments",
                 command="find") > 0
    exposed = m.exposition().decode()
    assert 'command="ping"' not in exposed and "unknown_collection" not in exposed


def test_transport_counters_histogram_and_lag() -> None:
    m = ServiceMetrics("judge")
    m.count_consumed("responses", 5)
    m.count_consumed("responses")
    m.count_produced("judgments", 4)
    m.count_failed("responses", 2)
    m.count_dead_lettered("responses")
    with m.time_handler():
        pass
    m.set_consumer_lag("responses", 3, 17)
    assert value(m, "warriorcoder_messages_consumed_total", topic="responses") == 6
    assert value(m, "warriorcoder_messages_produced_total", topic="judgments") == 4
    assert value(m, "warriorcoder_messages_failed_total", topic="responses") == 2
    assert value(m, "warriorcoder_messages_dead_lettered_total", topic="responses") == 1
    assert value(m, "warriorcoder_handler_seconds_count") == 1
    assert value(m, "warriorcoder_consumer_lag", topic="responses", partition="3") == 17
    m.forget_partition("responses", 3)
    m.forget_partition("responses", 3)  # twice, or never measured: no error
    assert value(m, "warriorcoder_consumer_lag", topic="responses", partition="3") is None


def test_each_instance_has_its_own_registry() -> None:
    first, second = ServiceMetrics("rater"), ServiceMetrics("rater")
    first.count_consumed("judgments", 3)
    assert value(first, "warriorcoder_messages_consumed_total", topic="judgments") == 3
    assert value(second, "warriorcoder_messages_consumed_total", topic="judgments") is None
    # A registry of its own also carries the process collector (resident memory).
    assert first.registry.get_sample_value("process_resident_memory_bytes", {}) is not None
    with pytest.raises(ValueError, match="service name"):
        ServiceMetrics("")


def test_battles_are_counted_by_status() -> None:
    m = ServiceMetrics("rater")
    m.record_battles([
        arena_pb2.RatedBattle(battle_id="b1", status=arena_pb2.BATTLE_STATUS_RATED),
        arena_pb2.RatedBattle(battle_id="b2", status=arena_pb2.BATTLE_STATUS_RATED),
        arena_pb2.RatedBattle(battle_id="b3", status=arena_pb2.BATTLE_STATUS_FAILED),
    ])
    assert value(m, "warriorcoder_battles_total", status="rated") == 2
    assert value(m, "warriorcoder_battles_total", status="failed") == 1


def judgment(judge: str, order: arena_pb2.Order, position: arena_pb2.Verdict,
             attempts: int = 1, battle: str = "b1") -> arena_pb2.Judgment:
    return arena_pb2.Judgment(judgment_id=f"{battle}-{judge}-{order}-{attempts}",
                              battle_id=battle, judge=judge, order=order,
                              position_verdict=position, attempts=attempts)


def battle(battle_id: str, *judgments: arena_pb2.Judgment) -> arena_pb2.BattleJudgments:
    pair = arena_pb2.ResponsePair(battle_id=battle_id, challenge_id="c", model_a="x",
                                  model_b="y", judges=["j1", "j2"])
    return arena_pb2.BattleJudgments(pair=pair, judgments=judgments)


def test_judge_verdicts_consistency_and_invalid_rate() -> None:
    m = ServiceMetrics("judge")
    m.record_judgments([
        # j1 picks x in both orders (A first, then B when x is shown second): consistent.
        # Its first ORDER_AB attempt said B; only the latest attempt counts.
        battle("b1", judgment("j1", AB, B, attempts=1), judgment("j1", AB, A, attempts=2),
               judgment("j1", BA, B), judgment("j2", AB, A), judgment("j2", BA, A)),
        # j1: unreadable in one order (inconsistent, one invalid); j2 ties twice (consistent).
        battle("b2", judgment("j1", AB, INVALID, battle="b2"),
               judgment("j1", BA, A, battle="b2"),
               judgment("j2", AB, TIE, battle="b2"), judgment("j2", BA, TIE, battle="b2")),
    ])
    # Battle verdicts (a = model_a): j1 b1: a, a; b2: invalid, b. j2 b1: a, b; b2: tie, tie.
    assert value(m, "warriorcoder_judge_verdicts_total", judge="j1", verdict="a") == 2
    assert value(m, "warriorcoder_judge_verdicts_total", judge="j1", verdict="b") == 1
    assert value(m, "warriorcoder_judge_verdicts_total", judge="j1", verdict="invalid") == 1
    assert value(m, "warriorcoder_judge_verdicts_total", judge="j2", verdict="tie") == 2
    assert value(m, "warriorcoder_judge_consistency", judge="j1") == 0.5
    assert value(m, "warriorcoder_judge_consistency", judge="j2") == 0.5  # b1 a vs b
    assert value(m, "warriorcoder_judge_invalid_rate", judge="j1") == 0.25
    assert value(m, "warriorcoder_judge_invalid_rate", judge="j2") == 0.0
    # A judgment without an order is unreadable, not a crash of the metrics.
    m.record_judgments([battle("b3", judgment("j3", arena_pb2.ORDER_UNSPECIFIED, A, battle="b3"))])
    assert value(m, "warriorcoder_judge_verdicts_total", judge="j3", verdict="invalid") == 1
    assert value(m, "warriorcoder_judge_invalid_rate", judge="j3") == 1.0
    assert value(m, "warriorcoder_judge_consistency", judge="j3") is None  # no pair yet


def test_judge_gauges_agree_with_the_leaderboards_judge_statistics() -> None:
    # One computation (arena.judging) behind both: the metric and the leaderboard's table.
    items = [
        battle("b1", judgment("j1", AB, B, attempts=1), judgment("j1", AB, A, attempts=2),
               judgment("j1", BA, A), judgment("j2", AB, A), judgment("j2", BA, B)),
        battle("b2", judgment("j1", AB, TIE, battle="b2"), judgment("j1", BA, TIE, battle="b2"),
               judgment("j2", AB, INVALID, battle="b2")),
        battle("b3", judgment("j2", AB, B, battle="b3"), judgment("j2", BA, A, battle="b3")),
    ]
    m = ServiceMetrics("rater")
    m.record_judgments(items)
    stats = judge_statistics((item.pair, item.judgments) for item in items)
    assert [s.judge for s in stats] == ["j1", "j2"]
    for s in stats:
        for gauge, rate in (("warriorcoder_judge_consistency", s.consistency),
                            ("warriorcoder_judge_invalid_rate", s.invalid_rate)):
            assert value(m, gauge, judge=s.judge) == (None if math.isnan(rate) else rate)
    # j1 disagrees with itself on b1 (a, then b) and agrees on b2 (tie, tie).
    assert value(m, "warriorcoder_judge_consistency", judge="j1") == 0.5


def test_judge_stats_from_the_leaderboard_set_the_gauges() -> None:
    m = ServiceMetrics("rater")
    m.set_judge_stats([
        arena_pb2.JudgeStats(judge="j1", consistency=0.75, invalid_rate=0.1),
        arena_pb2.JudgeStats(judge="j2", consistency=math.nan, invalid_rate=0.0),
    ])
    assert value(m, "warriorcoder_judge_consistency", judge="j1") == 0.75
    assert value(m, "warriorcoder_judge_invalid_rate", judge="j1") == 0.1
    assert value(m, "warriorcoder_judge_consistency", judge="j2") is None
    assert value(m, "warriorcoder_judge_invalid_rate", judge="j2") == 0.0


def test_leaderboard_ratings_set_the_rating_gauges() -> None:
    m = ServiceMetrics("rater")
    board = arena_pb2.Leaderboard(round_id="r1")
    board.ratings.add(model_id="m1", elo=1040.5, bradley_terry=1012.0)
    board.ratings.add(model_id="m2", elo=959.5, bradley_terry=988.0)
    m.record_leaderboard(board)
    assert value(m, "warriorcoder_rating", round="r1", model="m1", method="elo") == 1040.5
    assert value(m, "warriorcoder_rating", round="r1", model="m2",
                 method="bradley_terry") == 988.0
    board.ratings[0].elo = 1100.0  # a later leaderboard replaces the value
    m.record_leaderboard(board)
    assert value(m, "warriorcoder_rating", round="r1", model="m1", method="elo") == 1100.0
    assert value(m, "warriorcoder_rating", round="r2", model="m1", method="elo") is None


def test_leaderboard_sets_the_judge_cost_gauges() -> None:
    m = ServiceMetrics("rater")
    board = arena_pb2.Leaderboard(round_id="r1", judge_calls=120, judge_tokens=48000,
                                  records=10, judge_tokens_per_record=4800.0)
    m.record_leaderboard(board)
    assert value(m, "warriorcoder_judge_tokens_per_record", round="r1") == 4800.0
    assert value(m, "warriorcoder_judge_calls", round="r1") == 120


def test_metrics_are_served_over_http() -> None:
    m = ServiceMetrics("exporter")
    m.count_consumed("battles", 2)
    port = m.start_http(0, host="127.0.0.1")
    try:
        assert port > 0
        with pytest.raises(RuntimeError, match="already served"):
            m.start_http(0, host="127.0.0.1")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            assert response.status == 200
            text = response.read().decode()
        consumed = 'warriorcoder_messages_consumed_total{service="exporter",topic="battles"}'
        assert f"{consumed} 2.0" in text
    finally:
        m.stop_http()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
    with pytest.raises(ValueError, match="0-65535"):
        m.start_http(70000)


class ScriptedBackend(ModelBackend):
    """Answers chat requests with the outcomes it is given, after `release` is set."""

    def __init__(self, outcomes: list[GenerationOutcome] | None = None, fail: bool = False) -> None:
        self.model_id = "coder-7b"
        self.outcomes = outcomes or []
        self.fail = fail
        self.release = asyncio.Event()
        self.closed = False

    async def chat(self, requests: Sequence[ChatRequest]) -> list[GenerationOutcome]:
        await self.release.wait()
        if self.fail:
            raise ConnectionError("endpoint down")
        return self.outcomes[: len(requests)]

    async def complete(self, requests: Sequence[CompletionRequest]) -> list[GenerationOutcome]:
        return [GenerationResult(self.model_id, "x", 3, 1, 0.2, "stop") for _ in requests]

    def chat_template(self) -> str:
        return "{{ messages }}"

    def end_of_turn(self) -> tuple[str, ...]:
        return ("<|end|>",)

    async def aclose(self) -> None:
        self.closed = True


def test_instrumented_backend_records_in_flight_latency_tokens_and_errors() -> None:
    m = ServiceMetrics("responder")
    inner = ScriptedBackend([
        GenerationResult("coder-7b", "def f(): pass", 10, 4, 0.5, "stop"),
        GenerationError("coder-7b", "HTTP 500 after 3 attempts", attempts=3),
        GenerationResult("coder-7b", "?", 0, 0, 0.25, "stop", usage_reported=False),
    ])
    backend = InstrumentedBackend(inner, m)
    requests = [ChatRequest((), SamplingConfig())] * 3
    labels = {"model": "coder-7b"}

    async def scenario() -> list[GenerationOutcome]:
        call = asyncio.create_task(backend.chat(requests))
        for _ in range(100):  # let the call reach the backend, where it waits
            await asyncio.sleep(0)
        assert value(m, "warriorcoder_model_requests_in_flight", **labels) == 3
        inner.release.set()
        return await call

    outcomes = asyncio.run(scenario())
    assert outcomes == inner.outcomes  # passed through unchanged
    assert value(m, "warriorcoder_model_requests_in_flight", **labels) == 0
    assert value(m, "warriorcoder_model_request_seconds_count", kind="chat", **labels) == 2
    assert value(m, "warriorcoder_model_request_seconds_sum", kind="chat", **labels) == 0.75
    assert value(m, "warriorcoder_model_tokens_total", direction="prompt", **labels) == 10
    assert value(m, "warriorcoder_model_tokens_total", direction="completion", **labels) == 4
    assert value(m, "warriorcoder_model_errors_total", **labels) == 1

    asyncio.run(backend.complete([CompletionRequest("p", SamplingConfig())]))
    assert value(m, "warriorcoder_model_request_seconds_count", kind="complete", **labels) == 1
    assert backend.model_id == "coder-7b"
    assert backend.chat_template() == "{{ messages }}"
    assert backend.end_of_turn() == ("<|end|>",)
    asyncio.run(backend.aclose())
    assert inner.closed


def test_a_raising_backend_counts_every_request_as_an_error() -> None:
    m = ServiceMetrics("judge")
    inner = ScriptedBackend(fail=True)
    inner.release.set()
    backend = InstrumentedBackend(inner, m)
    with pytest.raises(ConnectionError):
        asyncio.run(backend.chat([ChatRequest((), SamplingConfig())] * 2))
    assert value(m, "warriorcoder_model_errors_total", model="coder-7b") == 2
    assert value(m, "warriorcoder_model_requests_in_flight", model="coder-7b") == 0


def test_rater_service_publishes_ratings_at_once_and_after_its_last_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mongo_uri: str) -> None:
    monkeypatch.setattr(rater_service, "RATINGS_REFRESH_S", 0.5)
    config = parse_config({"round_id": "r1", "rating": {"bootstrap_rounds": 0}, "roster": [
        {"id": e, "backend": "fake", "model": "fake:random"} for e in ("x", "y", "j1", "j2")]})
    metrics = ServiceMetrics("rater")
    # The services' store is MongoDB (the refresh reads it from a worker thread).
    store = ArenaStore.connect(mongo_uri, f"ratings{uuid.uuid4().hex[:8]}")
    context = ServiceContext("rater", ServiceSettings(arena_config=tmp_path / "arena.yaml"), config,
                             store, metrics, producer=None)  # type: ignore[arg-type]  # no loop run
    parts = rater_service.build(context)
    assert parts.loop is not None

    def x_beats_y(battle_id: str) -> arena_pb2.BattleJudgments:
        pair = arena_pb2.ResponsePair(battle_id=battle_id, challenge_id=battle_id, round_id="r1",
                                      model_a="x", model_b="y", judges=["j1", "j2"])
        votes = [judgment(j, AB, A, battle=battle_id) for j in ("j1", "j2")]
        votes += [judgment(j, BA, B, battle=battle_id) for j in ("j1", "j2")]
        return arena_pb2.BattleJudgments(pair=pair, judgments=votes)

    def elo(model: str) -> float | None:
        return value(metrics, "warriorcoder_rating", round="r1", model=model, method="elo")

    async def until(condition: Any) -> None:  # waits on the background refresh, not on speed
        deadline = time.monotonic() + 30
        while not condition():
            assert time.monotonic() < deadline, "ratings metric never refreshed"
            await asyncio.sleep(0.01)

    async def scenario() -> None:
        await parts.loop.handler([x_beats_y("b1")])  # first batch: refreshed at once
        await until(lambda: elo("x") is not None)
        first = elo("x")
        assert first is not None and first > 1000 > (elo("y") or 0)
        await parts.loop.handler([x_beats_y("b2")])  # within the interval: only scheduled
        assert elo("x") == first
        await until(lambda: elo("x") != first)  # the trailing refresh sees the second battle
        assert (elo("x") or 0) > first
        for stop in parts.on_stop:
            await stop()

    asyncio.run(scenario())
