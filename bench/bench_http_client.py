"""Client CPU per request: httpx against aiohttp (what OpenAIBackend uses), side by side.

Starts bench/instant_model_server.py (no latency), then sends the same chat completion request
`--requests` times with `--concurrency` in flight through each client in turn, `--rounds` times,
and prints the client process's CPU time (user + system) per request. httpx is imported only for
this comparison (it comes with huggingface_hub); the service code uses aiohttp.

    .venv/bin/python bench/bench_http_client.py --requests 4000 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

PAYLOAD = {"model": "m", "messages": [{"role": "user", "content": "hello " * 50}],
           "max_tokens": 16, "temperature": 0.0}


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def timed(send: Callable[[], Awaitable[Any]], requests: int, concurrency: int
                ) -> tuple[float, float]:
    """(wall s, CPU s) of `requests` sends with `concurrency` in flight, after a warm-up."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await send()

    await asyncio.gather(*(one() for _ in range(50)))
    t0, c0 = time.perf_counter(), cpu_s()
    await asyncio.gather(*(one() for _ in range(requests)))
    return time.perf_counter() - t0, cpu_s() - c0


async def with_httpx(url: str, requests: int, concurrency: int) -> tuple[float, float]:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(30)) as client:
        async def send() -> Any:
            return (await client.post(url, json=PAYLOAD)).json()

        return await timed(send, requests, concurrency)


async def with_aiohttp(url: str, requests: int, concurrency: int) -> tuple[float, float]:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        async def send() -> Any:
            async with s.post(url, json=PAYLOAD) as response:
                return json.loads(await response.read())

        return await timed(send, requests, concurrency)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--port", type=int, default=18555)
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("instant_model_server.py")),
         "--port", str(args.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{args.port}/v1/chat/completions"
    try:
        time.sleep(1.5)
        for round_ in range(1, args.rounds + 1):
            for name, client in (("httpx", with_httpx), ("aiohttp", with_aiohttp)):
                wall, cpu = asyncio.run(client(url, args.requests, args.concurrency))
                print(f"round {round_} {name:8s} {args.requests} requests: wall {wall:.2f} s, "
                      f"client CPU {cpu:.2f} s = {1000 * cpu / args.requests:.3f} ms per request",
                      flush=True)
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
