"""The viewer's pages over a real embedded run (fake models, real sandbox, real store): over
HTTP (read-only, headers, errors) and in a real browser, headless Chromium driven over the
DevTools protocol: the elements that matter are there, model-written script never runs, the
page refreshes while the round goes on. Screenshots are saved (docs/images/ with
WARRIORCODER_VIEWER_SCREENSHOTS=docs/images, as `make screenshots` does)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from warriorcoder import cli
from warriorcoder.arena.challenge_tests import TESTS_PROMPT
from warriorcoder.backends import load_backend
from warriorcoder.backends.base import (
    ChatRequest,
    GenerationError,
    GenerationOutcome,
    GenerationResult,
    WrappedBackend,
)
from warriorcoder.config import ArenaConfig, load_config, parse_config
from warriorcoder.stages.embedded import run_arena
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2
from warriorcoder.viewer.server import Viewer, ViewerSource, start_viewer

ROUND = "view1"
# Each payload would set document.title (or a global) if it ever ran.
PAYLOADS = (
    "<script>document.title='pwned-script';window.pwned=1</script>",
    "<img src=x onerror=\"document.title='pwned-img';window.pwned=2\">",
    "<a href=\"javascript:document.title='pwned-link'\" id=\"evil-link\">click me</a>",
    "<svg onload=\"window.pwned=3\"></svg>",
)
PAYLOAD = "\n".join(PAYLOADS)
TESTS_MARKER = TESTS_PROMPT.split("\n", 1)[0]
WRITTEN_TESTS = ("```python\nassert solve([3, 1, 2]) == [1, 2, 3]\nassert solve([]) == []\n"
                 "assert solve([2, 2, 1]) == [1, 2, 2]\n```")
ANSWERS = {
    "alpha": (f"Sorted, safely. {PAYLOAD}\n\n```python\ndef solve(values):\n"
              f"    # {PAYLOADS[0]}\n    return sorted(values)\n```"),
    "beta": f"Easy:\n\n```python\ndef solve(values):\n    return list(values)\n```\n{PAYLOAD}",
    "gamma": f"I would sort the values. {PAYLOADS[1]}",
}
# gamma cannot answer this challenge: its battles fail, with the error as their reason.
FAILING = "reverses"


class ScriptedBackend(WrappedBackend):
    """The fake model for mining and judging (with the payload in every explanation); scripted
    answers and tests."""

    async def chat(self, requests: Sequence[ChatRequest]) -> list[GenerationOutcome]:
        out: list[GenerationOutcome] = []
        for request in requests:
            prompt = request.messages[-1].content
            if any("[[A]]" in m.content for m in request.messages):
                (judged,) = await self.inner.chat([request])
                if isinstance(judged, GenerationResult):
                    judged = GenerationResult(judged.model_id, judged.text + "\n" + PAYLOAD,
                                              judged.prompt_tokens, judged.completion_tokens,
                                              judged.latency_s, judged.finish_reason)
                out.append(judged)
                continue
            if prompt.startswith(TESTS_MARKER):
                text = WRITTEN_TESTS
            elif self.model_id == "gamma" and FAILING in prompt:
                out.append(GenerationError(self.model_id, f"server said {PAYLOADS[0]}"))
                continue
            else:
                text = ANSWERS[self.model_id]
            out.append(GenerationResult(self.model_id, text, len(prompt.split()),
                                        len(text.split()), 0.01, "stop"))
        return out


def make_config(tmp: Path) -> ArenaConfig:
    user = tmp / "user.jsonl"
    user.write_text(json.dumps({"instruction": f"Write solve(values) that sorts a list. {PAYLOAD}",
                               "tests": "assert solve([2, 1]) == [1, 2]\n"}) + "\n")
    return parse_config({
        "round_id": ROUND,
        "roster": [
            {"id": "alpha", "backend": "fake", "model": "fake:prefer-longer"},
            {"id": "beta", "backend": "fake", "model": "fake:prefer-first"},
            {"id": "gamma", "backend": "fake", "model": "fake:random"},
        ],
        "challenger": {
            "per_setting": 2,
            "user_instructions": ["Write a Python function that reverses a string in place."],
            "user_instructions_file": str(user),
        },
        "rating": {"bootstrap_rounds": 10},
        # A generous limit: on a loaded machine a run that times out has no per-test record.
        "execution": {"enabled": True, "timeout_s": 60, "min_isolation": "plain"},
    })


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished embedded round with payloads in answers, challenge, explanations and a
    failure reason."""
    tmp = tmp_path_factory.mktemp("viewer-run")
    config = make_config(tmp)
    backends = {e.id: ScriptedBackend(load_backend(e)) for e in config.roster}
    asyncio.run(run_arena(config, tmp / "run", backends=backends))
    return tmp / "run"


@dataclass
class Served:
    url: str
    viewer: Viewer


@contextmanager
def serve(source: ViewerSource) -> Iterator[Served]:
    """The viewer on a free port, in a thread with its own event loop."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    def main() -> None:
        asyncio.set_event_loop(loop)
        runner, viewer, port = loop.run_until_complete(start_viewer(source, "127.0.0.1", 0))
        box.update(viewer=viewer, port=port)
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        viewer.close()
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(30), "viewer did not start"
    try:
        yield Served(f"http://127.0.0.1:{box['port']}", box["viewer"])
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


def source_for(run: Path, live_poll_s: float = 5.0) -> ViewerSource:
    return ViewerSource(open_store=lambda: ArenaStore.open_embedded(run / "arena.db"),
                        config=load_config(run / "config.yaml"), export_dir=run / "export",
                        default_round=ROUND, label=str(run), live_poll_s=live_poll_s)


@pytest.fixture(scope="module")
def served(run_dir: Path) -> Iterator[Served]:
    with serve(source_for(run_dir)) as s:
        yield s


def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


RAW = ("<script>document", "<img src=x", "<svg onload", 'href="javascript:', "onerror=\"")


VOID = {"meta", "link", "br", "hr", "img", "input", "col", "wbr", "source", "area", "base"}


class TagBalance(HTMLParser):
    """Every element the page opens is closed, in order (a template slip shows here)."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, (tag, self.open[-5:])
        self.open.pop()


def assert_no_raw_payload(body: str) -> None:
    for fragment in RAW:
        assert fragment not in body
    balance = TagBalance()
    balance.feed(body)
    assert balance.open == [], balance.open


def battle_ids(run: Path) -> list[arena_pb2.RatedBattle]:
    return ArenaStore.open_embedded(run / "arena.db").battles(ROUND)


# -- over HTTP ------------------------------------------------------------------------------------
def test_every_page_renders_the_run_with_model_text_escaped(served: Served, run_dir: Path) -> None:
    status, _, body = fetch(served.url + "/")
    assert status == 200 and f"Round {ROUND}" in body  # redirected to the run's round
    for model in ("alpha", "beta", "gamma"):
        assert f"?model={model}" in body
    assert 'id="funnel"' in body and 'id="judges"' in body and "profile likelihood" in body
    assert_no_raw_payload(body)
    store = ArenaStore.open_embedded(run_dir / "arena.db")
    board = store.leaderboard(ROUND)
    assert board is not None
    season = store.season_leaderboard(board.arena) if board.arena else None
    # The season's board, when the run stored one, is on the round page too.
    assert ('id="season-ratings"' in body) == (season is not None and bool(season.ratings))
    battles = battle_ids(run_dir)
    failed = [b for b in battles if b.status == arena_pb2.BATTLE_STATUS_FAILED]
    executed = [b for b in battles if b.HasField("execution_score_a")]
    assert failed and executed and len(failed) < len(battles)
    status, _, body = fetch(f"{served.url}/rounds/{ROUND}/battles")
    assert status == 200 and 'id="count-link"' in body and "battles match" not in body
    assert body.count('class="battle outcome-') == len(battles)
    status, _, body = fetch(f"{served.url}/rounds/{ROUND}/battles?outcome=failed&count=1")
    assert f"{len(failed)} battle{'' if len(failed) == 1 else 's'} match" in body
    status, _, body = fetch(f"{served.url}/rounds/{ROUND}/battles?outcome=failed")
    assert body.count('class="battle outcome-failed"') == len(failed)
    assert "server said &lt;script&gt;" in body  # the failure reason, escaped
    assert_no_raw_payload(body)
    for battle in battles:
        status, _, body = fetch(f"{served.url}/rounds/{ROUND}/battles/{battle.battle_id}")
        assert status == 200, battle.battle_id
        assert_no_raw_payload(body)
        assert battle.model_a in body and battle.model_b in body
        if battle in executed:
            tests = len(battle.execution_a.tests) + len(battle.execution_b.tests)
            assert body.count('class="test test-') == tests
            assert 'id="execution-a"' in body
        if battle.status == arena_pb2.BATTLE_STATUS_RATED:
            assert 'id="selection-reasons"' in body and "SFT example" in body
    assert "&lt;script&gt;document.title=&#39;pwned-script&#39;" in body


def test_nothing_but_get_is_served_and_nothing_is_written(served: Served, run_dir: Path) -> None:
    store = ArenaStore.open_embedded(run_dir / "arena.db")
    before = {c: store.count(c) for c in ("battles", "judgments", "rounds", "leaderboards")}
    battle = battle_ids(run_dir)[0].battle_id
    paths = ["/", f"/rounds/{ROUND}/", f"/rounds/{ROUND}/battles",
             f"/rounds/{ROUND}/battles/{battle}", f"/live/{ROUND}", "/static/viewer.css",
             "/static/live.js", "/static/highlight.css"]
    for path in paths:
        status, headers, _ = fetch(served.url + path)
        assert status in (200, 302) or path == "/", path
        assert "script-src 'self'" in headers["Content-Security-Policy"], path
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            status, headers, _ = fetch(served.url + path, method)
            assert status == 405, (method, path)
            assert headers["Allow"] == "GET,HEAD"
            assert "Content-Security-Policy" in headers
    assert {c: store.count(c) for c in before} == before


def test_bad_requests_get_a_page_that_names_the_problem(served: Served) -> None:
    cases = {
        f"/rounds/{ROUND}/battles?outcome=best": (400, "outcome: &#39;best&#39; is not one of"),
        f"/rounds/{ROUND}/battles?model=%3Cb%3E": (400, "model: &#39;&lt;b&gt;&#39; is not an id"),
        f"/rounds/{ROUND}/battles?after=..%2F": (400, "after:"),
        f"/rounds/{ROUND}/battles/0123abc": (404, "has no battle 0123abc"),
        "/rounds/nope/battles/0123abc": (404, "round nope has no battle"),
        "/static/../arena.db": (404, ""),
        "/static/secret.txt": (404, "no static file"),
        "/nowhere": (404, "Not Found"),
    }
    for path, (code, message) in cases.items():
        status, headers, body = fetch(served.url + path)
        assert status == code, path
        assert message in body, (path, body[-500:])
        assert "Content-Security-Policy" in headers


def test_live_token_changes_when_the_round_does(run_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    with serve(source_for(run)) as s:
        url = f"{s.url}/live/{ROUND}"
        first = json.loads(fetch(url)[2])["token"]
        assert json.loads(fetch(url)[2])["token"] == first
        add_battle(run)
        assert json.loads(fetch(url)[2])["token"] != first


def add_battle(run: Path) -> str:
    store = ArenaStore.open_embedded(run / "arena.db")
    battle = arena_pb2.RatedBattle(battle_id="fffffffffffffffffffffff0", challenge_id="new",
                                   round_id=ROUND, model_a="alpha", model_b="beta",
                                   status=arena_pb2.BATTLE_STATUS_RATED, local_score_a=1.0)
    store.save_battles([battle])
    return battle.battle_id


def test_view_command_refuses_a_folder_without_a_run(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["view", "--run-dir", str(tmp_path)]) == 2
    assert "holds no arena.db" in capsys.readouterr().err


# -- in a real browser ----------------------------------------------------------------------------
def chromium_binary() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no chromium on PATH (`make tools` installs Debian's chromium package)")


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Headless Chromium with its DevTools port; yields the browser's websocket URL. It
    reaches nothing but loopback (every other host name resolves to nothing)."""
    binary = chromium_binary()
    profile = tmp_path_factory.mktemp("chromium-profile")
    proc = subprocess.Popen(
        [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--no-default-browser-check", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-extensions",
         "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
         "--window-size=1400,1000", "--remote-debugging-port=0", f"--user-data-dir={profile}",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and len(port_file.read_text().split()) >= 2):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start (exit {proc.poll()})")
            time.sleep(0.1)
        port, path = port_file.read_text().split()[:2]
        yield f"ws://127.0.0.1:{port}{path}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


class DevTools:
    """A minimal Chrome DevTools protocol client over one browser websocket (aiohttp)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0
        self.waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.listeners: list[tuple[str, str, asyncio.Future[dict[str, Any]]]] = []
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            msg = json.loads(message.data)
            if "id" in msg:
                future = self.waiting.pop(msg["id"], None)
                if future is not None and not future.done():
                    future.set_result(msg)
                continue
            for method, session, future in list(self.listeners):
                if msg.get("method") == method and msg.get("sessionId") == session \
                        and not future.done():
                    future.set_result(msg.get("params", {}))

    async def send(self, method: str, params: dict[str, Any] | None = None,
                   session: str | None = None) -> dict[str, Any]:
        self.next_id += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiting[self.next_id] = future
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        await self.ws.send_str(json.dumps(msg))
        reply = await asyncio.wait_for(future, 60)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return dict(reply["result"])

    def expect(self, method: str, session: str) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.listeners.append((method, session, future))
        return future


class Tab:
    """One page of the browser."""

    def __init__(self, devtools: DevTools, session: str) -> None:
        self.devtools = devtools
        self.session = session

    @classmethod
    async def open(cls, devtools: DevTools) -> Tab:
        target = await devtools.send("Target.createTarget", {"url": "about:blank"})
        attached = await devtools.send("Target.attachToTarget",
                                       {"targetId": target["targetId"], "flatten": True})
        tab = cls(devtools, attached["sessionId"])
        await devtools.send("Page.enable", session=tab.session)
        await devtools.send("Runtime.enable", session=tab.session)
        await devtools.send("Emulation.setDeviceMetricsOverride", {
            "width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
            session=tab.session)
        return tab

    async def goto(self, url: str) -> None:
        loaded = self.devtools.expect("Page.loadEventFired", self.session)
        await self.devtools.send("Page.navigate", {"url": url}, self.session)
        await asyncio.wait_for(loaded, 60)
        await asyncio.sleep(0.5)  # time for anything that would run after load (onerror, ...)

    async def eval(self, expression: str) -> Any:
        result = await self.devtools.send("Runtime.evaluate", {
            "expression": expression, "returnByValue": True, "awaitPromise": True},
            self.session)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def screenshot(self, path: Path, max_height: int = 2400) -> None:
        metrics = await self.devtools.send("Page.getLayoutMetrics", session=self.session)
        height = min(int(metrics["cssContentSize"]["height"]) + 20, max_height)
        shot = await self.devtools.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": 1400, "height": height, "scale": 1}}, self.session)
        path.write_bytes(base64.b64decode(shot["data"]))


async def with_tab(ws_url: str, body: Any) -> Any:
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:
        devtools = DevTools(ws)
        try:
            return await body(await Tab.open(devtools))
        finally:
            devtools.reader.cancel()


# What each page must not have: script that ran, a link or handler that could run.
SAFETY = """(() => ({
  title: document.title,
  pwned: typeof window.pwned,
  scripts: Array.from(document.scripts).map(s => s.getAttribute('src')),
  jsLinks: document.querySelectorAll('a[href^="javascript:" i]').length,
  handlers: Array.from(document.querySelectorAll('*')).filter(
      e => Array.from(e.attributes).some(a => a.name.startsWith('on'))).length,
  evilLink: document.getElementById('evil-link') !== null,
  live: document.documentElement.dataset.liveScript || null,
  shownAsText: document.body.innerText.includes("<script>document.title='pwned-script'"),
}))()"""


def screenshot_dirs(tmp_path: Path) -> list[Path]:
    dirs = [tmp_path]
    wanted = os.environ.get("WARRIORCODER_VIEWER_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        dirs.append(Path(wanted))
    return dirs


@pytest.mark.integration
def test_in_a_browser_pages_show_the_battle_and_no_model_text_runs(
    chromium: str, served: Served, run_dir: Path, tmp_path: Path
) -> None:
    battles = battle_ids(run_dir)
    shown = next(b for b in battles if len(b.execution_a.tests) == 3
                 and {b.model_a, b.model_b} == {"alpha", "beta"})

    async def body(tab: Tab) -> None:
        # The check would see script that ran: a page whose script does run is caught.
        await tab.goto("data:text/html,<title>t</title><script>document.title='pwned-script'"
                       "</script>")
        assert await tab.eval("document.title") == "pwned-script"

        pages = {
            "viewer-round": f"{served.url}/rounds/{ROUND}/",
            "viewer-battles": f"{served.url}/rounds/{ROUND}/battles",
            "viewer-battle": f"{served.url}/rounds/{ROUND}/battles/{shown.battle_id}",
        }
        found: dict[str, Any] = {}
        for name, url in pages.items():
            await tab.goto(url)
            safety = await tab.eval(SAFETY)
            assert not safety["title"].startswith("pwned"), (name, safety)
            assert safety["pwned"] == "undefined", (name, safety)
            assert safety["scripts"] == ["/static/live.js"], (name, safety)
            assert safety["jsLinks"] == 0 and safety["handlers"] == 0, (name, safety)
            assert not safety["evilLink"], (name, safety)
            assert safety["live"] == "polling", (name, safety)  # our own script does run
            found[name] = await tab.eval("""(() => ({
              ratings: document.querySelectorAll('#leaderboard tr.rating').length,
              intervals: Array.from(document.querySelectorAll('#leaderboard td.interval'))
                  .map(td => td.textContent.trim()),
              judges: document.querySelectorAll('#judges tr.judge').length,
              funnel: document.querySelectorAll('#funnel tr.step').length,
              rows: document.querySelectorAll('#battle-list tr.battle').length,
              answers: document.querySelectorAll('.side-by-side > .answer').length,
              highlighted: document.querySelectorAll('.answer .hl span.k').length,
              judgeRows: document.querySelectorAll('#judgments .judge-row').length,
              explanations: document.querySelectorAll('#judgments details').length,
              tests: document.querySelectorAll('#execution tr.test').length,
              reasons: document.querySelectorAll('#selection-reasons li').length,
              shownAsText: document.body.innerText.includes(
                  "<script>document.title='pwned-script'"),
              columns: (() => { const a = document.getElementById('answer-a');
                                const b = document.getElementById('answer-b');
                                return a && b ? [a.getBoundingClientRect().left,
                                                 b.getBoundingClientRect().left] : null; })(),
            }))()""")
            for directory in screenshot_dirs(tmp_path):
                await tab.screenshot(directory / f"{name}.png")
        board, listing, battle = (found[n] for n in pages)
        assert board["ratings"] == 3 and board["judges"] == 3 and board["funnel"] >= 9
        assert all(i.startswith("[") and i.endswith("]") for i in board["intervals"])
        assert listing["rows"] == len(battles)
        assert battle["answers"] == 2 and battle["highlighted"] >= 2
        assert battle["columns"][1] > battle["columns"][0] + 300  # side by side
        assert battle["judgeRows"] == 1 and battle["explanations"] == 2
        assert battle["tests"] == len(shown.execution_a.tests) + len(shown.execution_b.tests) > 2
        assert battle["reasons"] >= 3
        assert battle["shownAsText"]  # the payload is there, as text

    asyncio.run(with_tab(chromium, body))
    for name in ("viewer-round", "viewer-battles", "viewer-battle"):
        png = (tmp_path / f"{name}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000


@pytest.mark.integration
def test_in_a_browser_the_page_reloads_when_the_round_goes_on(
    chromium: str, run_dir: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    with serve(source_for(run, live_poll_s=0.5)) as s:
        async def body(tab: Tab) -> None:
            await tab.goto(f"{s.url}/rounds/{ROUND}/battles")
            count = await tab.eval("document.querySelectorAll('#battle-list tr.battle').length")
            await tab.eval("window.marker = 1")
            await asyncio.sleep(1.5)
            assert await tab.eval("window.marker") == 1  # nothing changed: no reload
            added = await asyncio.to_thread(add_battle, run)
            deadline = time.monotonic() + 20
            while await tab.eval("window.marker") == 1:
                assert time.monotonic() < deadline, "the page did not refresh"
                await asyncio.sleep(0.25)
            await asyncio.sleep(0.5)
            rows = await tab.eval("document.querySelectorAll('#battle-list tr.battle').length")
            assert rows == count + 1
            assert await tab.eval(f"document.body.innerText.includes('{added}')")
            # Paused, it stays put.
            await tab.eval("document.getElementById('live-toggle').click()")
            await tab.eval("window.marker = 2")
            await asyncio.to_thread(add_second_battle, run)
            await asyncio.sleep(2)
            assert await tab.eval("window.marker") == 2

        asyncio.run(with_tab(chromium, body))


def add_second_battle(run: Path) -> None:
    store = ArenaStore.open_embedded(run / "arena.db")
    store.save_battles([arena_pb2.RatedBattle(
        battle_id="fffffffffffffffffffffff1", challenge_id="new2", round_id=ROUND,
        model_a="beta", model_b="gamma", status=arena_pb2.BATTLE_STATUS_RATED,
        local_score_a=0.5)])


def test_a_store_that_cannot_be_read_gets_an_error_page(tmp_path: Path) -> None:
    from conftest import free_port

    uri = f"mongodb://127.0.0.1:{free_port()}/?serverSelectionTimeoutMS=300"
    source = ViewerSource(open_store=lambda: ArenaStore.connect(uri), default_round=ROUND)
    with serve(source) as s:
        status, headers, body = fetch(f"{s.url}/rounds/{ROUND}/battles")
    assert status == 500
    assert "the page could not be made: ServerSelectionTimeoutError" in body
    assert "script-src 'self'" in headers["Content-Security-Policy"]


def test_view_command_serves_the_run_until_stopped(run_dir: Path) -> None:
    exe = Path(sys.executable).parent / "warriorcoder"
    proc = subprocess.Popen([str(exe), "view", "--run-dir", str(run_dir), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "viewer: http://127.0.0.1:PORT/  (Ctrl-C stops)"
        url = line.split()[1]
        status, _, body = fetch(url)
        assert status == 200 and f"Round {ROUND}" in body
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


def test_without_a_round_to_show_the_index_lists_the_rounds(tmp_path: Path) -> None:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    for round_id in ("r-a", "r-b"):
        store.save_round_info(round_id, config_hash="x")
    with serve(ViewerSource(open_store=lambda: ArenaStore.open_embedded(tmp_path / "arena.db"))
               ) as s:
        status, _, body = fetch(s.url + "/")
    assert status == 200
    assert 'href="/rounds/r-a/"' in body and 'href="/rounds/r-b/"' in body
