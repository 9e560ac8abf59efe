"""A viewer on loopback answers only requests addressed to a loopback host (DNS rebinding)."""

from __future__ import annotations

import asyncio
import http.client
from pathlib import Path

from aiohttp import web

from warriorcoder.storage.store import ArenaStore
from warriorcoder.viewer.server import Viewer, ViewerSource, start_viewer


def _get(port: int, host_header: str) -> tuple[int, str, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", "/", skip_host=True)
        connection.putheader("Host", host_header)
        connection.endheaders()
        response = connection.getresponse()
        return (response.status, response.getheader("Content-Security-Policy") or "",
                response.read().decode())
    finally:
        connection.close()


def test_a_loopback_viewer_refuses_other_host_names(tmp_path: Path) -> None:
    source = ViewerSource(open_store=lambda: ArenaStore.open_embedded(tmp_path / "arena.db"))

    async def scenario() -> None:
        runner, viewer, port = await start_viewer(source, "127.0.0.1", 0)
        try:
            for host in (f"localhost:{port}", f"127.0.0.1:{port}", "[::1]", "localhost"):
                status, _, _ = await asyncio.to_thread(_get, port, host)
                assert status == 200, host  # the index of the store's rounds
            # A page of evil.example whose name now resolves to 127.0.0.1.
            status, csp, body = await asyncio.to_thread(_get, port, f"evil.example:{port}")
            assert status == 403
            assert "answers requests for localhost or a loopback address only" in body
            assert "evil.example" in body and "default-src 'none'" in csp
        finally:
            await runner.cleanup()
            viewer.close()

    asyncio.run(scenario())


def test_a_viewer_listening_beyond_loopback_answers_any_host_name(tmp_path: Path) -> None:
    """Behind an Ingress or a Service the host names are the cluster's: no check there (the
    viewer is started on loopback here, as one listening on every interface is made)."""
    source = ViewerSource(open_store=lambda: ArenaStore.open_embedded(tmp_path / "arena.db"))

    async def scenario() -> None:
        viewer = Viewer(source, loopback_only=False)
        runner = web.AppRunner(viewer.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        try:
            status, _, _ = await asyncio.to_thread(_get, port, "viewer.arena.example")
            assert status == 200
        finally:
            await runner.cleanup()
            viewer.close()

    asyncio.run(scenario())
