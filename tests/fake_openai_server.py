"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests (stdlib only, no model).

    with FakeOpenAIServer() as server:          # random free port, serves from a thread
        server.set_behaviour("error", status=500, times=2)   # two 500s, then normal answers
        ... OpenAIBackend(expert with endpoint=server.base_url) ...
        assert server.max_in_flight <= 4
        assert server.requests[0].body["seed"] == 7

Endpoints: POST /v1/chat/completions and POST /v1/completions. Like vLLM, a request with
``structured_outputs: {"choice": [...]}`` (or the older ``guided_choice``) gets one of the
choices, and one that asks for logprobs (chat: ``logprobs: true, top_logprobs: N``;
completions: ``logprobs: N``) gets them, the first token's alternatives set by
``first_token_logprobs``. Behaviours (`set_behaviour`):
  normal   a deterministic answer with usage; chat echoes the last user message, completions
           return `completion_text` cut at the first stop string (as real servers do)
  error    HTTP `status` (500, 401, 429...) with a JSON error body
  slow     sleeps `slow_s` before answering (use a client timeout below it)
  garbage  HTTP 200 whose body is not the expected shape: `garbage="not-json"` (plain text),
           `"no-choices"` ({"object": ...} without choices), `"no-content"` (content null)
With `times=N` the behaviour applies to the next N requests only, then answers are normal.
`delay_s` adds latency to every answer (to make requests overlap). Every request is recorded.

Scripted answers (`replies`, kept in every mode's normal answers): a sequence of `Reply`; the
first whose `contains` is in the prompt (chat: the last user message; completions: the prompt)
and whose `model` is None or the request's model gives the answer text, e.g. code for the
answers and asserts for a request for tests:

    server.set_behaviour("normal", completion_text="A]]", replies=(
        Reply("Write tests", "```python\nassert add(2, 3) == 5\n```"),
        Reply("add(a, b)", "```python\ndef add(a, b):\n    return a + b\n```", model="m-a"),
    ))

Run it by hand: ``python tests/fake_openai_server.py --port 8000``.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self

Mode = Literal["normal", "error", "slow", "garbage"]
GarbageKind = Literal["not-json", "no-choices", "no-content"]


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None when the body was not JSON


@dataclass(frozen=True)
class Reply:
    """A scripted answer: `text` for prompts containing `contains` (of `model`, or any)."""

    contains: str
    text: str
    model: str | None = None
    # "chat", "completion" or None for both.
    endpoint: Literal["chat", "completion"] | None = None


@dataclass
class Behaviour:
    mode: Mode = "normal"
    status: int = 500
    times: int | None = None  # None: until changed
    slow_s: float = 10.0
    garbage: GarbageKind = "not-json"
    delay_s: float = 0.0
    omit_usage: bool = False
    retry_after: str | None = None
    completion_text: str = "Write a Python function that reverses a linked list."
    replies: tuple[Reply, ...] = ()
    # Top alternatives of the first generated token, (token, logprob), returned when a request
    # asks for logprobs; the other tokens get their own token at logprob 0.
    first_token_logprobs: tuple[tuple[str, float], ...] = ()
    served: int = field(default=0)  # requests that got this behaviour so far


def _words(value: Any) -> int:
    return len(str(value).split())


class FakeOpenAIServer:
    """OpenAI-compatible test server with switchable behaviours and a request log."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._behaviour = Behaviour()
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.app = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The `endpoint` to configure: ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def set_behaviour(self, mode: Mode = "normal", **options: Any) -> None:
        """Switch behaviour (see the module docstring); options are `Behaviour` fields."""
        with self._lock:
            self._behaviour = Behaviour(mode=mode, **options)

    def reset_log(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = self.in_flight

    def start(self) -> FakeOpenAIServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes handlers sleeping in "slow"
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- called from handler threads -------------------------------------------------------

    def _begin(self, record: RecordedRequest) -> Behaviour:
        """Log a request and pick the behaviour it gets (normal once `times` is used up)."""
        with self._lock:
            self.requests.append(record)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            b = self._behaviour
            if b.times is not None and b.served >= b.times:
                return Behaviour(delay_s=b.delay_s, completion_text=b.completion_text,
                                 replies=b.replies,
                                 first_token_logprobs=b.first_token_logprobs)
            b.served += 1
            return Behaviour(**b.__dict__)

    def _end(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)


def scripted_reply(replies: tuple[Reply, ...], endpoint: str, model: str,
                   prompt: str) -> str | None:
    """The text of the first matching `Reply`, or None."""
    for reply in replies:
        if (reply.contains in prompt and reply.model in (None, model)
                and reply.endpoint in (None, endpoint)):
            return reply.text
    return None


def allowed_choices(body: dict[str, Any]) -> list[str] | None:
    """The choices a request constrains its answer to (vLLM's structured_outputs.choice, or
    the older guided_choice), or None."""
    structured = body.get("structured_outputs")
    if isinstance(structured, dict) and isinstance(structured.get("choice"), list):
        return [str(c) for c in structured["choice"]]
    if isinstance(body.get("guided_choice"), list):
        return [str(c) for c in body["guided_choice"]]
    return None


def logprobs_of(text: str, body: dict[str, Any], chat: bool, b: Behaviour) -> dict[str, Any] | None:
    """Logprobs in the shape of each endpoint when the request asks for them (one token per
    word; the first token's alternatives from `first_token_logprobs`)."""
    if chat:
        if not body.get("logprobs"):
            return None
        top_n = int(body.get("top_logprobs") or 0)
    else:
        if body.get("logprobs") is None:
            return None
        top_n = int(body["logprobs"])
    tokens = text.split() or [""]
    positions = [list(b.first_token_logprobs) or [(tokens[0], 0.0)]]
    positions += [[(token, 0.0)] for token in tokens[1:]]
    if chat:
        return {"content": [
            {"token": token, "logprob": alts[0][1] if alts else 0.0,
             "top_logprobs": [{"token": t, "logprob": lp} for t, lp in alts[:top_n]]}
            for token, alts in zip(tokens, positions, strict=True)
        ]}
    return {"tokens": tokens, "top_logprobs": [dict(alts[:top_n]) for alts in positions]}


def answer_body(path: str, body: dict[str, Any], b: Behaviour) -> dict[str, Any]:
    """The JSON a normal server returns for `body` (deterministic). A choice constraint is
    honoured: an answer that is not one of the choices becomes the first choice."""
    model = body.get("model", "fake")
    max_tokens = int(body.get("max_tokens") or 10_000)
    if path.endswith("/chat/completions"):
        messages = body.get("messages") or []
        last_user = next((m.get("content", "") for m in reversed(messages)
                          if m.get("role") == "user"), "")
        scripted = scripted_reply(b.replies, "chat", model, str(last_user))
        text = scripted if scripted is not None else f"echo {model}: {last_user}"
        prompt_tokens = sum(_words(m.get("content", "")) for m in messages)
    else:
        prompt = str(body.get("prompt", ""))
        scripted = scripted_reply(b.replies, "completion", model, prompt)
        text = scripted if scripted is not None else b.completion_text
        for stop in body.get("stop") or []:
            text = text.split(stop, 1)[0]
        prompt_tokens = _words(prompt)
    choices = allowed_choices(body)
    if choices is not None and text not in choices:
        text = choices[0]
    finish = "stop"
    words = text.split()
    if len(words) > max_tokens:
        text, finish = " ".join(words[:max_tokens]), "length"
    chat = path.endswith("/chat/completions")
    if chat:
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                  "finish_reason": finish}
    else:
        choice = {"index": 0, "text": text, "finish_reason": finish}
    logprobs = logprobs_of(text, body, chat, b)
    if logprobs is not None:
        choice["logprobs"] = logprobs
    out: dict[str, Any] = {"id": "fake-1", "object": "completion", "model": model,
                           "choices": [choice]}
    if not b.omit_usage:
        out["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": _words(text),
                        "total_tokens": prompt_tokens + _words(text)}
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real servers

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _send(self, status: int, payload: bytes, content_type: str = "application/json",
              extra_headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (extra_headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.close_connection = True

    def do_POST(self) -> None:
        app: FakeOpenAIServer = self.server.app  # type: ignore[attr-defined]
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        record = RecordedRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        b = app._begin(record)
        try:
            self._respond(app, b, body)
        finally:
            app._end()

    def _respond(self, app: FakeOpenAIServer, b: Behaviour, body: Any) -> None:
        if self.path not in ("/v1/chat/completions", "/v1/completions"):
            self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}).encode())
            return
        if not isinstance(body, dict):
            self._send(400, b'{"error": {"message": "body is not a JSON object"}}')
            return
        if b.delay_s:
            app._sleep(b.delay_s)
        if b.mode == "slow":
            app._sleep(b.slow_s)
        if b.mode == "error":
            headers = {"Retry-After": b.retry_after} if b.retry_after is not None else None
            message = json.dumps({"error": {"message": f"fake failure {b.status}",
                                            "code": b.status}}).encode()
            self._send(b.status, message, extra_headers=headers)
        elif b.mode == "garbage":
            if b.garbage == "not-json":
                self._send(200, b"<html>upstream proxy error</html>", "text/html")
            elif b.garbage == "no-choices":
                self._send(200, b'{"object": "list", "data": []}')
            else:
                self._send(200, b'{"choices": [{"index": 0, "message": {"content": null},'
                                b' "text": null, "finish_reason": "stop"}]}')
        else:
            self._send(200, json.dumps(answer_body(self.path, body, b)).encode())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (for connection-refused tests)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    with FakeOpenAIServer(port=args.port) as server:
        print(f"fake OpenAI server on {server.base_url} (Ctrl-C to stop)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
