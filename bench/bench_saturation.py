"""Model saturation: does the distributed pipeline keep the model servers' slots busy?

A fake OpenAI server that behaves like a batching GPU server (bench/instant_model_server.py with
a fixed latency per request, no concurrency limit, a fixed number of completion tokens per
answer) serves three experts with `max_concurrency` slots each. Measured twice, side by side:

1. pipeline: the five services as processes over Kafka and MongoDB (bench_orchestration's
   deployment); N user challenges with one defender each. Answer tokens/s = completion tokens of
   the chat answers (the responder's work) divided by the time from the first answer request to
   the last answer, as seen by the server.
2. direct: the same number of chat requests sent straight to the same server through the same
   client (OpenAIBackend, `max_concurrency` per expert, the three experts at once).

The ratio pipeline / direct is the share of the model capacity the orchestration delivers.
The judges' requests (pre-filled, 2 tokens) go to the same server and are not counted.

    .venv/bin/python bench/bench_saturation.py --challenges 600 --latency-s 0.2

With --mode embedded the pipeline is the embedded run instead (`run_arena` in this process, the
five stages over the in-memory bus and the SQLite store), on the same server, arena config and
user instructions, with the OpenAI backends wrapped to count each expert's chat and completion
requests. Here the judges share the experts' slots with the answers (one process, one
`max_concurrency` per expert), so the headline is the server's throughput over all requests:
requests/s from the first request to the last answer, over the same requests per expert and
kind (answers and pre-filled judges) sent straight to the server, each expert at
`max_concurrency`. The answer tokens/s ratio of the services mode is printed too, and the
process's CPU time per battle (the whole run: challenges, answers, judging, rating, export).

    .venv/bin/python bench/bench_saturation.py --mode embedded --challenges 1000 \
        --max-concurrency 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_orchestration import (
    ROOT,
    arena_config,
    deploy,
    free_ports,
    infrastructure,
    instructions,
    process,
    stop_on_sigterm,
    submit,
    wait_battles,
    wait_for_port,
)

from warriorcoder.backends.base import (
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    GenerationOutcome,
    ModelBackend,
    WrappedBackend,
)
from warriorcoder.backends.openai import OpenAIBackend
from warriorcoder.config import ExpertConfig, SamplingConfig, parse_config
from warriorcoder.stages.embedded import run_arena


def server_call(base: str, method: str, path: str) -> dict[str, Any]:
    """GET /stats or POST /reset on the instant model server."""
    request = urllib.request.Request(base + path, method=method, data=b"" if method == "POST"
                                     else None)
    return dict(json.loads(urllib.request.urlopen(request, timeout=10).read()))


def tokens_per_s(stats: dict[str, Any]) -> float:
    window = stats["last_chat_answer_at"] - stats["first_chat_at"]
    return float(stats["completion_tokens"] / window)


async def direct_load(roster: list[dict[str, Any]], requests_per_expert: list[int],
                      answer_tokens: int, completions_per_expert: list[int] | None = None) -> None:
    """Every expert's requests at once, each expert at its own max_concurrency: chat answers,
    and pre-filled judge completions when `completions_per_expert` is given (they share the
    expert's slots, as in the embedded run)."""
    backends = [OpenAIBackend(ExpertConfig(**e)) for e in roster]
    sampling = SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=answer_tokens)
    judging = SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=4)
    completions = completions_per_expert or [0] * len(backends)

    async def one_expert(backend: OpenAIBackend, n: int, k: int) -> None:
        outcomes: list[GenerationOutcome] = []
        for batch in await asyncio.gather(
            backend.chat([ChatRequest((ChatMessage("user", f"task {i}"),), sampling)
                          for i in range(n)]),
            backend.complete([CompletionRequest(f"judge {i} [[", judging, stop=("]]",))
                              for i in range(k)]),
        ):
            outcomes += batch
        errors = [o for o in outcomes if not hasattr(o, "text")]
        if errors:
            raise RuntimeError(f"{len(errors)} direct requests failed: {errors[0]}")

    try:
        await asyncio.gather(*(one_expert(b, n, k) for b, n, k in
                               zip(backends, requests_per_expert, completions, strict=True)))
    finally:
        for b in backends:
            await b.aclose()


class CountingBackend(WrappedBackend):
    """An expert's backend that counts the chat and completion requests sent through it."""

    def __init__(self, inner: ModelBackend) -> None:
        super().__init__(inner)
        self.chats = 0
        self.completions = 0

    async def chat(self, requests: Sequence[ChatRequest]) -> list[GenerationOutcome]:
        self.chats += len(requests)
        return await self.inner.chat(requests)

    async def complete(self, requests: Sequence[CompletionRequest]) -> list[GenerationOutcome]:
        self.completions += len(requests)
        return await self.inner.complete(requests)


async def embedded_round(config: dict[str, Any], run_dir: Path,
                         texts: list[str]) -> tuple[list[CountingBackend], int]:
    """One embedded round over `texts` (user instructions); the counting backends and the
    number of battles stored."""
    data = {**config, "challenger": {**config["challenger"], "user_instructions": texts}}
    arena = parse_config(data)
    backends = [CountingBackend(OpenAIBackend(ExpertConfig(**e))) for e in config["roster"]]
    try:
        result = await run_arena(arena, run_dir, backends={b.model_id: b for b in backends})
    finally:
        for b in backends:
            await b.aclose()
    return backends, result.leaderboard.battles + result.leaderboard.failed_battles


def requests_per_s(stats: dict[str, Any]) -> float:
    return float(stats["requests"] / (stats["last_answer_at"] - stats["first_request_at"]))


def model_server(stack: ExitStack, workdir: Path,
                 args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """bench/instant_model_server.py started under `stack` (its log in `workdir`) with the
    latency and answer length of `args`: its base URL and the arena config of experts on it."""
    (port,) = free_ports(1)
    stack.enter_context(process(
        [sys.executable, str(ROOT / "bench" / "instant_model_server.py"), "--port", str(port),
         "--latency-s", str(args.latency_s), "--completion-tokens",
         str(args.completion_tokens)], workdir / "models.log"))
    wait_for_port(port)
    base = f"http://127.0.0.1:{port}"
    config = arena_config(f"sat-{uuid.uuid4().hex[:8]}", "openai", base + "/v1",
                          args.max_concurrency, args.completion_tokens)
    return base, config


def measure_embedded(args: argparse.Namespace) -> None:
    """The embedded run against the server, then the same requests sent straight to it."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-sat-embedded-"))
    with ExitStack() as stack:
        base, config = model_server(stack, workdir, args)
        # Warm-up round in its own folder (imports, first connections, first store).
        asyncio.run(embedded_round(config, workdir / "warmup", instructions(3, "warmup")))

        server_call(base, "POST", "/reset")
        cpu0, t0 = time.process_time(), time.perf_counter()
        backends, battles = asyncio.run(embedded_round(
            config, workdir / "run", instructions(args.challenges, config["round_id"])))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        piped = server_call(base, "GET", "/stats")

        server_call(base, "POST", "/reset")
        asyncio.run(direct_load(config["roster"], [b.chats for b in backends],
                                args.completion_tokens, [b.completions for b in backends]))
        direct = server_call(base, "GET", "/stats")

    slots = 3 * args.max_concurrency
    p, q = requests_per_s(piped), requests_per_s(direct)
    pa, qa = tokens_per_s(piped), tokens_per_s(direct)
    print(f"server: {args.latency_s:g} s per request, {args.completion_tokens} completion tokens, "
          f"unlimited concurrency; 3 experts x max_concurrency {args.max_concurrency} "
          f"({slots} slots, at most {slots / args.latency_s:,.0f} requests/s)")
    print(f"embedded: {battles} battles in {wall:.1f} s ({battles / wall:.1f} battles/s), "
          f"{piped['requests']} requests ({piped['chat_requests']} answers), {p:,.1f} requests/s, "
          f"max {piped['max_in_flight']} in flight; {pa:,.0f} answer tokens/s; "
          f"CPU {cpu:.2f} s = {1000 * cpu / battles:.2f} ms per battle")
    print(f"direct:   {direct['requests']} requests ({direct['chat_requests']} answers), "
          f"{q:,.1f} requests/s, max {direct['max_in_flight']} in flight; "
          f"{qa:,.0f} answer tokens/s")
    print(f"saturation (requests/s embedded / direct): {p / q:.3f}")
    print(f"answer tokens/s embedded / direct (judges share the slots): {pa / qa:.3f}")


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--mode", choices=("services", "embedded"), default="services",
                        help="the five services over Kafka (default) or the embedded run")
    parser.add_argument("--challenges", type=int, default=600)
    parser.add_argument("--latency-s", type=float, default=0.2)
    parser.add_argument("--completion-tokens", type=int, default=256)
    parser.add_argument("--max-concurrency", type=int, default=8)
    parser.add_argument("--poll-max-records", type=int, default=64)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--judges", type=int, default=1)
    args = parser.parse_args()
    if args.challenges < 1 or args.latency_s <= 0:
        parser.error("--challenges must be >= 1 and --latency-s > 0")
    if args.mode == "embedded":
        measure_embedded(args)
        return

    workdir = Path(tempfile.mkdtemp(prefix="bench-sat-"))
    with ExitStack() as stack:
        infra = stack.enter_context(infrastructure(workdir))
        base, config = model_server(stack, workdir, args)
        d = deploy(stack, workdir, infra, config, judges=args.judges,
                   poll_max_records=args.poll_max_records, partitions=args.partitions)
        warmup = 3
        submit(d, instructions(warmup, "warmup"), warmup)
        wait_battles(d, warmup, 120)

        server_call(base, "POST", "/reset")
        t0 = time.perf_counter()
        submit(d, instructions(args.challenges, config["round_id"]), 1000)
        wait_battles(d, warmup + args.challenges, 900)
        wall = time.perf_counter() - t0
        piped = server_call(base, "GET", "/stats")
        d.stop_services()

        # Same number of chat requests per expert as the pipeline sent, straight to the server.
        counts = [0, 0, 0]
        for i in range(piped["chat_requests"]):
            counts[i % 3] += 1
        server_call(base, "POST", "/reset")
        asyncio.run(direct_load(config["roster"], counts, args.completion_tokens))
        direct = server_call(base, "GET", "/stats")

    p, q = tokens_per_s(piped), tokens_per_s(direct)
    print(f"server: {args.latency_s:g} s per request, {args.completion_tokens} completion tokens, "
          f"unlimited concurrency; 3 experts x max_concurrency {args.max_concurrency}; "
          f"poll_max_records {args.poll_max_records}, {args.judges} judge(s)")
    print(f"pipeline: {piped['chat_requests']} answers, {piped['completion_tokens']} tokens, "
          f"{p:,.0f} answer tokens/s (max {piped['max_in_flight']} requests in flight, judges "
          f"included; {args.challenges} battles rated {wall:.1f} s after the first submission)")
    print(f"direct:   {direct['chat_requests']} answers, {direct['completion_tokens']} tokens, "
          f"{q:,.0f} tokens/s (max {direct['max_in_flight']} in flight)")
    print(f"ratio pipeline / direct: {p / q:.3f}")


if __name__ == "__main__":
    main()
