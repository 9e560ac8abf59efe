"""The viewer's HTTP server (aiohttp): read-only pages rendered on the server.

Only GET (and HEAD) routes exist, so any other method gets 405. Every page is rendered by
Jinja2 with autoescaping on, and model-written text goes through viewer.highlight. The
Content-Security-Policy allows scripts, styles and fetches from the viewer itself only (no
inline script or style), so even text that escaped escaping could not run. A viewer listening
on loopback answers only requests addressed to a loopback name (the Host header): a web page
whose own host name an attacker pointed at 127.0.0.1 (DNS rebinding) cannot read the pages.
Store reads run on one
thread of their own: the embedded store's SQLite connection belongs to the thread that opened
it, and the event loop (the rater service's, when the rater serves the viewer) never waits on
the store.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from aiohttp import web
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from warriorcoder.arena.battle_review import OUTCOMES
from warriorcoder.config import ArenaConfig
from warriorcoder.service.settings import is_loopback
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2
from warriorcoder.viewer import data
from warriorcoder.viewer.exports import ExportIndex
from warriorcoder.viewer.filters import (
    FILTER_OUTCOMES,
    OUTCOME_LABELS,
    BattleFilter,
    FilterError,
    checked_id,
)
from warriorcoder.viewer.highlight import answer_html, stylesheet

log = logging.getLogger(__name__)
T = TypeVar("T")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
# Seconds between the live script's checks for new data while a page is open.
LIVE_POLL_S = 5
_STATIC = ("viewer.css", "live.js")
# Sorts after every battle id (hex digits): `before` it is the last page.
LAST_PAGE = "~"


@dataclass(frozen=True)
class ViewerSource:
    """Where the viewer reads: how to open the store (called once, on the store thread), the
    arena config (None: the selection is not recomputed), the export folder of an embedded run
    (None in distributed mode) and the round shown first."""

    open_store: Callable[[], ArenaStore]
    config: ArenaConfig | None = None
    export_dir: Path | None = None
    default_round: str | None = None
    # Shown in the page header: the run folder or the database.
    label: str = ""
    # Seconds between the live script's checks for new data while a page is open.
    live_poll_s: float = LIVE_POLL_S


class Viewer:
    """The pages over one source; `app()` is the aiohttp application."""

    def __init__(self, source: ViewerSource, *, loopback_only: bool = False) -> None:
        self.source = source
        # Listening on loopback: requests must name a loopback host (no DNS rebinding).
        self.loopback_only = loopback_only
        self.exports = ExportIndex(source.export_dir)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="viewer-store")
        self._store: ArenaStore | None = None
        self.env = Environment(
            loader=PackageLoader("warriorcoder.viewer", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            answer=answer_html, verdict=verdict_name, order=order_name, score=score,
            pct=pct, status=status_name, rating=rating,
        )
        self.env.globals.update(outcome_labels=OUTCOME_LABELS, label=source.label,
                                live_poll_s=f"{source.live_poll_s:g}")
        self._css = stylesheet()

    def _on_store_thread(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._store is None:
            self._store = self.source.open_store()
        return fn(self._store, *args, **kwargs)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run `fn(store, *args, **kwargs)` on the store thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._pool, lambda: self._on_store_thread(fn, *args, **kwargs))

    def close(self) -> None:
        """Stop the store thread (the store itself belongs to whoever opened it)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def app(self) -> web.Application:
        """The application: GET routes only."""
        app = web.Application(middlewares=[self._headers])
        app.router.add_get("/", self.index)
        app.router.add_get("/static/highlight.css", self.highlight_css)
        app.router.add_get("/static/{name}", self.static)
        app.router.add_get("/rounds/{round_id}/", self.round_page)
        app.router.add_get("/rounds/{round_id}", self.to_round_page)
        app.router.add_get("/rounds/{round_id}/battles", self.battles_page)
        app.router.add_get("/rounds/{round_id}/battles/{battle_id}", self.battle_page)
        app.router.add_get("/live/{round_id}", self.live)
        return app

    # -- plumbing ------------------------------------------------------------------------------
    @web.middleware
    async def _headers(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        try:
            if self.loopback_only and not is_loopback(request.url.host or ""):
                raise web.HTTPForbidden(text=(
                    f"this viewer listens on loopback and answers requests for localhost or a "
                    f"loopback address only, not for host {request.host[:80]!r}"))
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as error:
            if error.status >= 400 and error.status != 405:
                response = self._page("error.html", status=error.status, title=error.reason,
                                      message=error.text or error.reason)
            else:
                error.headers.update(SECURITY_HEADERS)
                raise
        except Exception as error:  # the store down, a broken record: a page that says so
            log.exception("viewer: %s failed", request.path)
            response = self._page("error.html", status=500, title="error",
                                  message=f"the page could not be made: {type(error).__name__}: "
                                          f"{str(error)[:300]}")
        response.headers.update(SECURITY_HEADERS)
        return response

    def _page(self, template: str, status: int = 200, **context: Any) -> web.Response:
        html = self.env.get_template(template).render(**context)
        return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")

    def _error(self, status: int, message: str) -> web.Response:
        return self._page("error.html", status=status, title="error", message=message)

    @staticmethod
    def _round_id(request: web.Request) -> str:
        try:
            return checked_id("round", request.match_info["round_id"])
        except FilterError as error:
            raise web.HTTPBadRequest(text=str(error)) from None

    # -- pages ---------------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.StreamResponse:
        """Straight to the configured round, or to the store's only round; else the rounds."""
        if self.source.default_round:
            raise web.HTTPFound(f"/rounds/{self.source.default_round}/")
        rounds = await self.read(ArenaStore.round_ids)
        if len(rounds) == 1:
            raise web.HTTPFound(f"/rounds/{rounds[0]}/")
        return self._page("index.html", rounds=rounds, title="rounds", round_id=None)

    async def static(self, request: web.Request) -> web.StreamResponse:
        """The package's own CSS and script."""
        name = request.match_info["name"]
        if name not in _STATIC:
            raise web.HTTPNotFound(text=f"no static file {name[:80]!r}")
        body = resources.files("warriorcoder.viewer").joinpath("static", name).read_bytes()
        kind = "text/css" if name.endswith(".css") else "text/javascript"
        return web.Response(body=body, content_type=kind, charset="utf-8")

    async def highlight_css(self, request: web.Request) -> web.StreamResponse:
        """The code highlighter's colours."""
        return web.Response(text=self._css, content_type="text/css", charset="utf-8")

    async def round_page(self, request: web.Request) -> web.StreamResponse:
        """Leaderboard with intervals, judge table, funnel."""
        round_id = self._round_id(request)
        summary = await self.read(data.round_summary, round_id, self.exports)
        return self._page("round.html", title=f"round {round_id}", round_id=round_id,
                          s=summary, live=f"/live/{round_id}")

    async def to_round_page(self, request: web.Request) -> web.StreamResponse:
        """A round's address typed without its closing slash: to the round page."""
        raise web.HTTPMovedPermanently(request.rel_url.with_path(request.rel_url.path + "/"))

    async def battles_page(self, request: web.Request) -> web.StreamResponse:
        """The battle list: filters and paging."""
        round_id = self._round_id(request)
        query = request.rel_url.query
        try:
            flt = BattleFilter.from_query(query)
            after = checked_id("after", query["after"]) if query.get("after") else None
            before = checked_id("before", query["before"]) if query.get("before") else None
        except FilterError as error:
            return self._error(400, str(error))
        if query.get("page") == "last" and after is None and before is None:
            before = LAST_PAGE
        # Counting every match reads every match: only when asked (a link on the page).
        counted = query.get("count") == "1"
        page, board = await self.read(_list_and_board, round_id, flt, after, before, counted)
        base = f"/rounds/{round_id}/battles"
        params = flt.query_string()

        def link(**cursor: str) -> str:
            return base + "?" + urlencode({**params, **cursor}) if params or cursor else base

        models = sorted({r.model_id for r in board.ratings} if board else set())
        if self.source.config is not None:
            models = sorted({*models, *(e.id for e in self.source.config.roster)})
        judges = sorted({j.judge for j in board.judges} if board else set())
        judges = sorted({*judges, *models})
        return self._page(
            "battles.html", title=f"battles of {round_id}", round_id=round_id, page=page,
            flt=flt, models=models, judges=judges, outcomes=FILTER_OUTCOMES,
            battle_outcomes=OUTCOMES,
            next_link=link(after=page.next_after) if page.next_after else None,
            prev_link=link(before=page.prev_before) if page.prev_before else None,
            first_link=link(), last_link=link(page="last"),
            count_link=None if counted or flt.needs_judgments else link(
                **{k: v for k, v in (("after", after), ("before", before)) if v}, count="1"),
            live=f"/live/{round_id}",
        )

    async def battle_page(self, request: web.Request) -> web.StreamResponse:
        """One battle: challenge, answers, judges in both orders, execution, export."""
        round_id = self._round_id(request)
        try:
            battle_id = checked_id("battle", request.match_info["battle_id"])
        except FilterError as error:
            return self._error(400, str(error))
        detail = await self.read(data.battle_detail, battle_id, self.source.config,
                                 self.exports)
        if detail is None or detail.battle.round_id != round_id:
            return self._error(404, f"round {round_id} has no battle {battle_id}")
        return self._page("battle.html", title=f"battle {battle_id}", round_id=round_id, d=detail,
                          b=detail.battle, live=f"/live/{round_id}?battle={battle_id}")

    async def live(self, request: web.Request) -> web.StreamResponse:
        """A token that changes when the round's data changes (polled by static/live.js)."""
        round_id = self._round_id(request)
        battle = request.rel_url.query.get("battle")
        try:
            battle_id = checked_id("battle", battle) if battle else None
        except FilterError as error:
            return web.json_response({"error": str(error)}, status=400)
        token = await self.read(data.live_token, round_id, battle_id)
        return web.json_response({"token": token})


def _list_and_board(
    store: ArenaStore,
    round_id: str,
    flt: BattleFilter,
    after: str | None,
    before: str | None,
    count: bool,
) -> tuple[data.BattlePage, arena_pb2.Leaderboard | None]:
    page = data.battle_page(store, round_id, flt, after=after, before=before, count=count)
    return page, store.leaderboard(round_id)


# -- template filters --------------------------------------------------------------------------
def verdict_name(verdict: int) -> str:
    """"A", "B", "tie", "invalid" or "-"."""
    names: dict[int, str] = {arena_pb2.VERDICT_A: "A", arena_pb2.VERDICT_B: "B",
                             arena_pb2.VERDICT_TIE: "tie", arena_pb2.VERDICT_INVALID: "invalid"}
    return names.get(verdict, "-")


def order_name(order: int) -> str:
    """"A first" or "B first"."""
    names: dict[int, str] = {arena_pb2.ORDER_AB: "A shown first",
                             arena_pb2.ORDER_BA: "B shown first"}
    return names.get(order, "?")


def status_name(value: int, enum: str = "ExecutionStatus") -> str:
    """An enum value's name without its prefix, lower-case ("passed", "failed", ...)."""
    wrapper = getattr(arena_pb2, enum)
    try:
        name = str(wrapper.Name(value))
    except ValueError:
        return str(value)
    prefix = {"ExecutionStatus": "EXECUTION_STATUS_", "TestCaseStatus": "TEST_CASE_STATUS_",
              "BattleStatus": "BATTLE_STATUS_"}.get(enum, "")
    return name.removeprefix(prefix).lower().replace("_", " ")


def score(value: float | None, digits: int = 3) -> str:
    """A number with `digits` decimals; "-" for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def pct(value: float | None) -> str:
    """A rate as a percentage; "-" when there was nothing to measure (NaN)."""
    if value is None or math.isnan(value):
        return "-"
    return f"{100 * value:.0f}%"


def rating(r: arena_pb2.ModelRating) -> str:
    """A Bradley-Terry interval, with ∞ for an open side."""
    lower = "-∞" if r.lower_unbounded else f"{r.bradley_terry_lower:.0f}"
    upper = "+∞" if r.upper_unbounded else f"{r.bradley_terry_upper:.0f}"
    return f"[{lower}, {upper}]"


# -- running -----------------------------------------------------------------------------------
async def start_viewer(
    source: ViewerSource, host: str, port: int
) -> tuple[web.AppRunner, Viewer, int]:
    """Start serving in the running event loop; returns the runner (await `runner.cleanup()`
    to stop), the viewer (`close()` after) and the port bound (useful with port 0)."""
    viewer = Viewer(source, loopback_only=is_loopback(host))
    runner = web.AppRunner(viewer.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    log.info("viewer on http://%s:%d/", host, bound)
    return runner, viewer, bound


async def serve_until_cancelled(source: ViewerSource, host: str, port: int,
                                ready: Callable[[int], None] | None = None) -> None:
    """Serve until the task is cancelled (Ctrl-C in `warriorcoder view`)."""
    runner, viewer, bound = await start_viewer(source, host, port)
    if ready is not None:
        ready(bound)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        viewer.close()
