"""One service process: settings, store, models, Kafka loop, gRPC server, metrics, shutdown.

Each service in warriorcoder/services/ is a `build(context) -> ServiceParts` function;
`run_service` does the rest. On SIGTERM or SIGINT the health status turns NOT_SERVING, the
Kafka loop finishes its batch, commits and leaves its group, the gRPC server drains for
`shutdown_grace_s`, and the process exits 0. A broken Kafka loop (broker gone, produce not
acknowledged) stops the process
with exit status 1 so that its supervisor restarts it; uncommitted work is redelivered.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from warriorcoder.backends import load_backend
from warriorcoder.backends.base import ModelBackend
from warriorcoder.config import ArenaConfig, ConfigError, load_config
from warriorcoder.console.logs import setup_logging
from warriorcoder.service.grpc_server import (
    ServicerRegistration,
    build_service_server,
    install_signal_handlers,
    serve_until_stopped,
)
from warriorcoder.service.kafka.producer import EventProducer
from warriorcoder.service.kafka.stage_loop import StageLoop
from warriorcoder.service.kafka.topics import ensure_topics
from warriorcoder.service.metrics import InstrumentedBackend, ServiceMetrics
from warriorcoder.service.security import mongo_client_options
from warriorcoder.service.settings import ServiceName, ServiceSettings, load_settings
from warriorcoder.stages.bus import Topic
from warriorcoder.storage.store import ArenaStore

log = logging.getLogger(__name__)


@dataclass
class ServiceParts:
    """What a service adds to the shared skeleton."""

    servicers: list[ServicerRegistration]
    # Full gRPC service names, for health checking and reflection.
    service_names: list[str]
    loop: StageLoop[Any] | None = None
    # Awaited at shutdown, after the gRPC server stopped.
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


@dataclass
class ServiceContext:
    """Everything a service's build function may use; built once per process."""

    name: ServiceName
    settings: ServiceSettings
    config: ArenaConfig
    store: ArenaStore
    metrics: ServiceMetrics
    producer: EventProducer
    _backends: dict[str, ModelBackend] | None = None

    def backends(self) -> dict[str, ModelBackend]:
        """The roster's models, instrumented; loaded on first use (only model-calling services)."""
        if self._backends is None:
            self._backends = {
                e.id: InstrumentedBackend(load_backend(e), self.metrics) for e in self.config.roster
            }
        return self._backends

    def stage_loop(
        self,
        consumes: Topic,
        message_type: type[Message],
        produces: Topic | None,
        handler: Callable[[list[Any]], Awaitable[Sequence[Message]]],
    ) -> StageLoop[Any]:
        return StageLoop(
            self.settings, self.name, consumes, message_type, produces, handler, self.metrics,
            producer=self.producer,
        )

    def publish(self, topic: Topic, messages: Sequence[Message]) -> None:
        """Send events and wait until the broker has them."""
        self.producer.publish(topic, messages)


Builder = Callable[[ServiceContext], ServiceParts]


async def run_service(name: ServiceName, settings: ServiceSettings, build: Builder) -> int:
    config = load_config(settings.arena_config)
    metrics = ServiceMetrics(name)
    store = ArenaStore.connect(settings.mongo_uri.get_secret_value(), settings.mongo_database,
                               client_options={**mongo_client_options(settings),
                                               "event_listeners": [metrics.store_listener()]})
    metrics_port = metrics.start_http(settings.metrics_port)
    await asyncio.to_thread(ensure_topics, settings, list(Topic))
    producer = EventProducer(settings, client_id=f"warriorcoder-{name}")
    context = ServiceContext(name, settings, config, store, metrics, producer)
    parts = build(context)
    api = await build_service_server(settings, parts.servicers, parts.service_names)
    server, health, grpc_port = api.server, api.health, api.port
    stop = asyncio.Event()
    install_signal_handlers(asyncio.get_running_loop(), stop)
    log.info("%s serving: gRPC %s:%d, metrics :%d, settings %s",
             name, settings.grpc_host, grpc_port, metrics_port, settings)

    exit_code = 0
    loop_task: asyncio.Task[None] | None = None
    if parts.loop is not None:
        loop_task = asyncio.create_task(parts.loop.run(stop))

        def on_loop_done(task: asyncio.Task[None]) -> None:
            nonlocal exit_code
            if not task.cancelled() and task.exception() is not None:
                log.error("%s: Kafka loop failed: %s", name, task.exception())
                exit_code = 1
            stop.set()

        loop_task.add_done_callback(on_loop_done)
    try:
        await serve_until_stopped(server, health, stop, settings.shutdown_grace_s)
        if loop_task is not None:
            await asyncio.gather(loop_task, return_exceptions=True)
        for callback in parts.on_stop:
            await callback()
    finally:
        await api.stop_health_listener()
        producer.close()
        for backend in (context._backends or {}).values():
            await backend.aclose()
        metrics.stop_http()
    log.info("%s stopped (exit %d)", name, exit_code)
    return exit_code


def main(name: ServiceName, build: Builder, argv: Sequence[str] | None = None) -> int:
    """Entry point of one service: `warriorcoder serve NAME [--settings FILE]`."""
    parser = argparse.ArgumentParser(
        prog=f"warriorcoder serve {name}",
        description=f"Run the {name} service. Settings come from WARRIORCODER_* environment "
        "variables (see warriorcoder/service/settings.py), optionally from an env file.",
    )
    parser.add_argument("--settings", type=Path, help="env file with WARRIORCODER_* settings")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.settings)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: invalid service settings: {err}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level, process=name)
    try:
        return asyncio.run(run_service(name, settings, build))
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
