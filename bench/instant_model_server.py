"""A minimal OpenAI-compatible server for benchmarks: fixed answers, optional fixed latency.

It behaves like a batching GPU server seen from outside: every request takes `latency_s`
(0 = answer at once), whatever the number of requests in flight (no concurrency limit). Chat
completions answer `completion_tokens` words; raw completions (pre-filled judges) answer "A]]".
It is a raw asyncio protocol (no HTTP framework), so that the server costs as little CPU as
possible and the benchmark measures the client side.

    python bench/instant_model_server.py --port 8000 --latency-s 0.2 --completion-tokens 256

GET /stats returns JSON counters: requests, chat_requests, completion_tokens (chat answers
only), max_in_flight, first_request_at, last_answer_at, first_chat_at and last_chat_answer_at
(Unix time). POST /reset zeroes them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import asdict, dataclass

_JUDGE_TEXT = "A]]"


@dataclass
class ServerStats:
    """Counters since start or the last reset."""

    requests: int = 0
    chat_requests: int = 0
    completion_tokens: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    first_request_at: float = 0.0
    last_answer_at: float = 0.0
    first_chat_at: float = 0.0
    last_chat_answer_at: float = 0.0


def _response(status: str, body: bytes) -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n")
    return head.encode() + body


def _answer(text: str, tokens: int, chat: bool) -> bytes:
    choice = ({"index": 0, "message": {"role": "assistant", "content": text},
               "finish_reason": "stop"} if chat
              else {"index": 0, "text": text, "finish_reason": "stop"})
    return _response("200 OK", json.dumps({
        "id": "instant", "object": "chat.completion" if chat else "text_completion",
        "model": "instant", "choices": [choice],
        "usage": {"prompt_tokens": 1, "completion_tokens": tokens, "total_tokens": tokens + 1},
    }).encode())


class InstantModelServer:
    """Serves the fixed answers on 127.0.0.1:`port` from the running event loop."""

    def __init__(self, latency_s: float = 0.0, completion_tokens: int = 16) -> None:
        if latency_s < 0 or completion_tokens < 1:
            raise ValueError("latency_s must be >= 0 and completion_tokens >= 1")
        self.latency_s = latency_s
        self.completion_tokens = completion_tokens
        self.stats = ServerStats()
        # The answers are the same every time: encode them once.
        self._chat = _answer(" ".join(["tok"] * completion_tokens), completion_tokens, True)
        self._completion = _answer(_JUDGE_TEXT, 2, False)

    async def serve(self, port: int) -> asyncio.Server:
        """Start listening; returns the asyncio server (close it to stop)."""
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: _Connection(self), "127.0.0.1", port,
                                        backlog=4096)

    def answer(self, method: str, path: str) -> tuple[bytes, bool]:
        """(response bytes, whether the answer waits for the latency)."""
        if method == "GET" and path == "/stats":
            return _response("200 OK", json.dumps(asdict(self.stats)).encode()), False
        if method == "POST" and path == "/reset":
            self.stats = ServerStats()
            return _response("200 OK", b"{}"), False
        if method == "POST" and path.endswith("/chat/completions"):
            self.stats.chat_requests += 1
            if not self.stats.first_chat_at:
                self.stats.first_chat_at = time.time()
            return self._chat, True
        if method == "POST" and path.endswith("/completions"):
            return self._completion, True
        return _response("404 Not Found", b'{"error": {"message": "no route"}}'), False


class _Connection(asyncio.Protocol):
    def __init__(self, app: InstantModelServer) -> None:
        self.app = app
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            method, path = head.split(" ", 2)[:2]
            self._handle(method, path)

    def _handle(self, method: str, path: str) -> None:
        app = self.app
        payload, delayed = app.answer(method, path)
        if not delayed:
            self._write(payload)
            return
        s = app.stats
        s.requests += 1
        s.in_flight += 1
        s.max_in_flight = max(s.max_in_flight, s.in_flight)
        if not s.first_request_at:
            s.first_request_at = time.time()
        chat = payload is app._chat
        if app.latency_s:
            asyncio.get_running_loop().call_later(app.latency_s, self._finish, payload, chat)
        else:
            self._finish(payload, chat)

    def _finish(self, payload: bytes, chat: bool) -> None:
        s = self.app.stats
        s.in_flight -= 1
        s.last_answer_at = time.time()
        if chat:
            s.completion_tokens += self.app.completion_tokens
            s.last_chat_answer_at = s.last_answer_at
        self._write(payload)

    def _write(self, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(payload)


async def _main(port: int, latency_s: float, completion_tokens: int) -> None:
    server = await InstantModelServer(latency_s, completion_tokens).serve(port)
    print(f"instant model server on http://127.0.0.1:{port}/v1", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency-s", type=float, default=0.0)
    parser.add_argument("--completion-tokens", type=int, default=16)
    args = parser.parse_args()
    try:
        asyncio.run(_main(args.port, args.latency_s, args.completion_tokens))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
