"""Prometheus metrics of one service process.

Every series carries a ``service`` label so Grafana can split by service; model series add
``model``, judge series add ``judge``. Each `ServiceMetrics` owns its own CollectorRegistry, so
several services (or tests) can live in one process without clashing names.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, suppress
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from pymongo import monitoring

from warriorcoder.arena.judging import (
    JudgeTally,
    battle_judge_tallies,
    judge_stats,
    judgment_battle_verdict,
    latest_judgments,
)
from warriorcoder.backends.base import (
    ChatRequest,
    CompletionRequest,
    GenerationError,
    GenerationOutcome,
    GenerationResult,
    ModelBackend,
    WrappedBackend,
)
from warriorcoder.storage.store import COLLECTIONS
from warriorcoder.v1 import arena_pb2

# Handler calls run from milliseconds (rater) to minutes (a judge batch on a slow model).
HANDLER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
MODEL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120, 300)
# One store command: a millisecond for a read by id, seconds for a scan of a large collection.
STORE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# The MongoDB commands timed (hello, ping, endSessions and the like are not); a collection the
# store does not have is labelled "other".
_STORE_COMMANDS = frozenset({"find", "getMore", "insert", "update", "delete", "aggregate",
                             "count", "distinct", "findAndModify", "createIndexes"})

_VERDICT_LABELS: dict[int, str] = {
    arena_pb2.VERDICT_A: "a",
    arena_pb2.VERDICT_B: "b",
    arena_pb2.VERDICT_TIE: "tie",
    arena_pb2.VERDICT_INVALID: "invalid",
}
_STATUS_LABELS: dict[int, str] = {
    arena_pb2.BATTLE_STATUS_RATED: "rated",
    arena_pb2.BATTLE_STATUS_FAILED: "failed",
}


class ServiceMetrics:
    """All metrics of one service instance, in a registry of its own.

    `registry=None` creates a fresh registry that also carries the process, platform and GC
    collectors (resident memory, CPU); a registry passed in is used as is.
    """

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        if not service:
            raise ValueError("ServiceMetrics: service name must not be empty")
        self.service = service
        if registry is None:
            registry = CollectorRegistry()
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self.registry = registry
        self._http: WSGIServer | None = None
        self._judges: dict[str, JudgeTally] = {}
        self._judges_lock = threading.Lock()  # recorded from the loop and from executor threads

        r = registry
        self.consumed = Counter(
            "warriorcoder_messages_consumed", "Records polled from a topic (garbage included).",
            ["service", "topic"], registry=r)
        self.produced = Counter(
            "warriorcoder_messages_produced", "Events produced to a topic and flushed.",
            ["service", "topic"], registry=r)
        self.failed = Counter(
            "warriorcoder_messages_failed",
            "Messages in a handler attempt that raised (one message can fail several times).",
            ["service", "topic"], registry=r)
        self.dead_lettered = Counter(
            "warriorcoder_messages_dead_lettered",
            "Messages sent to the dead-letter topic, by the topic they came from.",
            ["service", "topic"], registry=r)
        self.handler_seconds = Histogram(
            "warriorcoder_handler_seconds", "Duration of one stage handler call (one batch).",
            ["service"], buckets=HANDLER_BUCKETS, registry=r)
        self.consumer_lag = Gauge(
            "warriorcoder_consumer_lag",
            "Records of an assigned partition not yet polled (high watermark - position).",
            ["service", "topic", "partition"], registry=r)
        self.model_in_flight = Gauge(
            "warriorcoder_model_requests_in_flight",
            "Requests handed to a model backend and not answered yet.",
            ["service", "model"], registry=r)
        self.model_seconds = Histogram(
            "warriorcoder_model_request_seconds", "Latency of one answered model request.",
            ["service", "model", "kind"], buckets=MODEL_BUCKETS, registry=r)
        self.model_tokens = Counter(
            "warriorcoder_model_tokens", "Tokens reported by the model server.",
            ["service", "model", "direction"], registry=r)
        self.model_errors = Counter(
            "warriorcoder_model_errors", "Model requests that failed after the backend's retries.",
            ["service", "model"], registry=r)
        self.battles = Counter(
            "warriorcoder_battles", "Battles rated or failed.", ["service", "status"], registry=r)
        self.judge_verdicts = Counter(
            "warriorcoder_judge_verdicts",
            "Judgments by battle verdict (a = model_a; one per judge and order).",
            ["service", "judge", "verdict"], registry=r)
        self.judge_consistency = Gauge(
            "warriorcoder_judge_consistency",
            "Share of both-order judgments whose two verdicts agree.",
            ["service", "judge"], registry=r)
        self.judge_invalid_rate = Gauge(
            "warriorcoder_judge_invalid_rate",
            "Share of judgments without a parsable verdict.",
            ["service", "judge"], registry=r)
        self.sandbox_isolation = Gauge(
            "warriorcoder_sandbox_isolation",
            "1 for the sandbox mode this judge runs answers in (jail, user-jail, plain).",
            ["service", "mode"], registry=r)
        self.rating = Gauge(
            "warriorcoder_rating",
            "Rating of a model on the latest leaderboard (method: elo, bradley_terry).",
            ["service", "round", "model", "method"], registry=r)
        self.season_rating = Gauge(
            "warriorcoder_season_rating",
            "Rating of a model on the latest season leaderboard of an arena, over all its rounds "
            "(method: elo, bradley_terry, bradley_terry_lower, bradley_terry_upper; a bound the "
            "battles leave open is absent).",
            ["service", "arena", "model", "method"], registry=r)
        self.season_battles = Gauge(
            "warriorcoder_season_battles",
            "Rated battles of a model over all rounds of an arena (latest season leaderboard).",
            ["service", "arena", "model"], registry=r)
        self.judge_tokens_per_record = Gauge(
            "warriorcoder_judge_tokens_per_record",
            "Judge tokens (prompt + completion, retries included) per exported SFT record on "
            "the latest leaderboard.",
            ["service", "round"], registry=r)
        self.judge_calls = Gauge(
            "warriorcoder_judge_calls",
            "Judge model calls over all battles of the round on the latest leaderboard.",
            ["service", "round"], registry=r)
        self.store_seconds = Histogram(
            "warriorcoder_store_command_seconds",
            "Duration of one MongoDB command, from sending it to its reply, by collection and "
            "command (find, getMore, update, ...).",
            ["service", "collection", "command"], buckets=STORE_BUCKETS, registry=r)

    # -- transport ------------------------------------------------------------------------

    def count_consumed(self, topic: str, count: int = 1) -> None:
        self.consumed.labels(self.service, topic).inc(count)

    def count_produced(self, topic: str, count: int = 1) -> None:
        self.produced.labels(self.service, topic).inc(count)

    def count_failed(self, topic: str, count: int = 1) -> None:
        self.failed.labels(self.service, topic).inc(count)

    def count_dead_lettered(self, topic: str, count: int = 1) -> None:
        self.dead_lettered.labels(self.service, topic).inc(count)

    def time_handler(self) -> AbstractContextManager[Any]:
        """Context manager that observes its duration in warriorcoder_handler_seconds."""
        return self.handler_seconds.labels(self.service).time()

    def store_listener(self) -> monitoring.CommandListener:
        """A pymongo command listener that times every command of the store's client in
        warriorcoder_store_command_seconds (pass it in MongoClient's event_listeners)."""
        return _StoreCommandTimer(self)

    def set_consumer_lag(self, topic: str, partition: int, lag: int) -> None:
        self.consumer_lag.labels(self.service, topic, str(partition)).set(lag)

    def forget_partition(self, topic: str, partition: int) -> None:
        """Drop the lag series of a partition this instance no longer owns."""
        try:
            self.consumer_lag.remove(self.service, topic, str(partition))
        except KeyError:
            pass  # never measured

    # -- arena results --------------------------------------------------------------------

    def record_battles(self, battles: Iterable[arena_pb2.RatedBattle]) -> None:
        """Count battles by status ("rated", "failed")."""
        for battle in battles:
            status = _STATUS_LABELS.get(battle.status, "unspecified")
            self.battles.labels(self.service, status).inc()

    def record_judgments(self, items: Iterable[arena_pb2.BattleJudgments]) -> None:
        """Count verdicts per judge and update its running consistency and invalid rate.

        Per battle only each judge's latest attempt per order counts, as in the leaderboard's
        judge statistics (arena.judging computes both); the rates cover everything this
        instance recorded since it started. A battle the arena cannot read (a judgment
        without an order, a judge not listed on the pair) counts every judgment of it as
        unreadable: metrics never raise.
        """
        touched: set[str] = set()
        for item in items:
            try:
                tallies = battle_judge_tallies(item.pair, item.judgments)
                verdicts = [(judge, judgment_battle_verdict(judgment)) for (judge, _), judgment
                            in latest_judgments(item.judgments).items()]
            except ValueError:
                tallies = {}
                verdicts = []
                for judgment in item.judgments:
                    tally = tallies.setdefault(judgment.judge, JudgeTally())
                    tally.judgments += 1
                    tally.invalid_judgments += 1
                    verdicts.append((judgment.judge, arena_pb2.VERDICT_INVALID))
            with self._judges_lock:
                for judge, verdict in verdicts:
                    self.judge_verdicts.labels(self.service, judge, _VERDICT_LABELS[verdict]).inc()
                for judge, tally in tallies.items():
                    self._judges.setdefault(judge, JudgeTally()).add(tally)
                    touched.add(judge)
        with self._judges_lock:  # the gauges once per judge and call, not once per battle
            self.set_judge_stats(judge_stats(judge, self._judges[judge]) for judge in touched)

    def set_judge_stats(self, stats: Iterable[arena_pb2.JudgeStats]) -> None:
        """Set the judge gauges from leaderboard statistics (the rater's view over all battles).

        NaN rates (nothing measured yet) leave the gauge unset.
        """
        for s in stats:
            if not math.isnan(s.consistency):
                self.judge_consistency.labels(self.service, s.judge).set(s.consistency)
            if not math.isnan(s.invalid_rate):
                self.judge_invalid_rate.labels(self.service, s.judge).set(s.invalid_rate)

    def record_leaderboard(self, board: arena_pb2.Leaderboard) -> None:
        """Set each model's Elo and Bradley-Terry rating of `board` (ratings over time) and the
        round's judge cost."""
        self.judge_tokens_per_record.labels(self.service, board.round_id).set(
            board.judge_tokens_per_record)
        self.judge_calls.labels(self.service, board.round_id).set(board.judge_calls)
        for rating in board.ratings:
            labels = (self.service, board.round_id, rating.model_id)
            self.rating.labels(*labels, "elo").set(rating.elo)
            self.rating.labels(*labels, "bradley_terry").set(rating.bradley_terry)

    def record_season_leaderboard(self, board: arena_pb2.Leaderboard) -> None:
        """Set each model's season ratings, interval bounds and battles of `board` (a season
        board: every round of its arena)."""
        for rating in board.ratings:
            labels = (self.service, board.arena, rating.model_id)
            self.season_rating.labels(*labels, "elo").set(rating.elo)
            self.season_rating.labels(*labels, "bradley_terry").set(rating.bradley_terry)
            for method, value, open_side in (
                ("bradley_terry_lower", rating.bradley_terry_lower, rating.lower_unbounded),
                ("bradley_terry_upper", rating.bradley_terry_upper, rating.upper_unbounded),
            ):
                if not open_side:
                    self.season_rating.labels(*labels, method).set(value)
                    continue
                # An open side has no number: drop a bound an earlier board had.
                with suppress(KeyError):
                    self.season_rating.remove(*labels, method)
            self.season_battles.labels(*labels).set(rating.battles)

    def set_sandbox_isolation(self, mode: str) -> None:
        """Publish the sandbox mode answers run in (probed once per process: it never changes)."""
        self.sandbox_isolation.labels(self.service, mode).set(1)

    # -- exposition -----------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The registry in Prometheus text format (what /metrics serves)."""
        return generate_latest(self.registry)

    def start_http(self, port: int, host: str = "0.0.0.0") -> int:
        """Serve /metrics for this registry on a daemon thread; returns the bound port.

        Port 0 picks a free port. Calling it twice is an error: one endpoint per instance.
        """
        if self._http is not None:
            raise RuntimeError(f"metrics of {self.service!r} are already served on "
                               f"port {self._http.server_port}")
        if not 0 <= port <= 65535:
            raise ValueError(f"metrics port must be 0-65535, got {port}")
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        return int(server.server_port)

    def stop_http(self) -> None:
        """Stop serving /metrics (no-op when not serving)."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


class InstrumentedBackend(WrappedBackend):
    """A ModelBackend that records in-flight requests, latency, tokens and errors of another.

    In flight counts every request handed to the wrapped backend and not answered yet,
    including those queued behind its concurrency limit, so a saturated endpoint shows up
    as a high gauge. Latency is the backend's own per-request `latency_s`.
    """

    def __init__(self, backend: ModelBackend, metrics: ServiceMetrics) -> None:
        super().__init__(backend)
        self._metrics = metrics

    async def chat(self, requests: Sequence[ChatRequest]) -> list[GenerationOutcome]:
        return await self._observe("chat", len(requests), self.inner.chat(requests))

    async def complete(self, requests: Sequence[CompletionRequest]) -> list[GenerationOutcome]:
        return await self._observe("complete", len(requests), self.inner.complete(requests))

    async def _observe(self, kind: str, count: int, call: Any) -> list[GenerationOutcome]:
        m, service, model = self._metrics, self._metrics.service, self.model_id
        in_flight = m.model_in_flight.labels(service, model)
        in_flight.inc(count)
        try:
            outcomes: list[GenerationOutcome] = await call
        except Exception:  # a cancellation (shutdown) is not a model error
            m.model_errors.labels(service, model).inc(count)
            raise
        finally:
            in_flight.dec(count)
        for outcome in outcomes:
            if isinstance(outcome, GenerationResult):
                m.model_seconds.labels(service, model, kind).observe(outcome.latency_s)
                if outcome.usage_reported:
                    m.model_tokens.labels(service, model, "prompt").inc(outcome.prompt_tokens)
                    m.model_tokens.labels(service, model, "completion").inc(
                        outcome.completion_tokens)
            elif isinstance(outcome, GenerationError):
                m.model_errors.labels(service, model).inc()
        return outcomes


class _StoreCommandTimer(monitoring.CommandListener):
    """Observes each command's duration under its collection and command name. pymongo calls
    it from whichever thread runs the command; the label is kept between its start and end."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics
        self._labels: dict[tuple[Any, int], tuple[str, str]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if name not in _STORE_COMMANDS:
            return
        target = event.command.get("collection" if name == "getMore" else name)
        collection = target if isinstance(target, str) and target in COLLECTIONS else "other"
        self._labels[(event.connection_id, event.request_id)] = (collection, name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._observe(event)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._observe(event)

    def _observe(self, event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent,
                 ) -> None:
        labels = self._labels.pop((event.connection_id, event.request_id), None)
        if labels is not None:
            self._metrics.store_seconds.labels(self._metrics.service, *labels).observe(
                event.duration_micros / 1e6)


__all__ = ["InstrumentedBackend", "ServiceMetrics"]
