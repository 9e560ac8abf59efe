"""The viewer inside a distributed service (the rater), on its own port: WARRIORCODER_VIEWER_PORT
switches it on (see service/settings.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from warriorcoder.config import ArenaConfig
from warriorcoder.service.settings import ServiceSettings
from warriorcoder.storage.store import ArenaStore
from warriorcoder.viewer.server import Viewer, ViewerSource, start_viewer

log = logging.getLogger(__name__)


def start_service_viewer(
    settings: ServiceSettings, config: ArenaConfig, store: ArenaStore
) -> Callable[[], Awaitable[None]]:
    """Start serving the viewer over the service's store in the running event loop (its reads
    run on a thread of their own; the MongoDB client is thread-safe) and return the coroutine
    function that stops it (for ServiceParts.on_stop). A port that cannot be bound is logged
    as an error; the service goes on without its viewer."""
    assert settings.viewer_port is not None
    source = ViewerSource(
        open_store=lambda: store,
        config=config,
        export_dir=None,
        default_round=config.round_id,
        label=f"MongoDB database {settings.mongo_database}",
    )
    started: list[tuple[web.AppRunner, Viewer]] = []

    async def start() -> None:
        try:
            runner, viewer, port = await start_viewer(source, settings.viewer_host,
                                                      settings.viewer_port or 0)
        except OSError as error:
            log.error("viewer not started on %s:%s: %s", settings.viewer_host,
                      settings.viewer_port, error)
            return
        started.append((runner, viewer))
        log.info("viewer serving on %s:%d", settings.viewer_host, port)

    task = asyncio.get_running_loop().create_task(start())

    async def stop() -> None:
        await asyncio.gather(task, return_exceptions=True)
        for runner, viewer in started:
            await runner.cleanup()
            viewer.close()

    return stop
