"""Tokens/second of the transformers backend on SmolLM2: 8 prompts one by one vs one batch of 8.

Greedy decoding with EOS disabled, so every prompt generates exactly --max-tokens tokens both
ways (the counts actually generated are printed too). Target: batch >= 2x sequential.

    .venv/bin/python bench/bench_transformers_batching.py [--max-tokens 64] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import time

import torch

from warriorcoder.backends.base import ChatMessage, ChatRequest, GenerationResult
from warriorcoder.backends.transformers import TransformersBackend
from warriorcoder.config import ExpertConfig, SamplingConfig

PROMPTS = (
    "Write a Python function that checks whether a number is prime.",
    "Reverse a linked list in Python.",
    "Write a function that merges two sorted lists into one sorted list, without using sort().",
    "What does the yield keyword do in Python? Show an example.",
    "Implement binary search over a sorted list of integers.",
    "Write a Python class for a stack with push, pop and peek.",
    "Count the vowels in a string.",
    "Write a function that returns the n-th Fibonacci number iteratively, with type hints.",
)


def generate(backend: TransformersBackend, requests: list[ChatRequest]) -> tuple[float, int]:
    """Seconds and completion tokens for one chat() call."""
    t0 = time.perf_counter()
    outs = asyncio.run(backend.chat(requests))
    elapsed = time.perf_counter() - t0
    for out in outs:
        if not isinstance(out, GenerationResult):
            raise SystemExit(f"generation failed: {out}")
    return elapsed, sum(o.completion_tokens for o in outs if isinstance(o, GenerationResult))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--dtype", choices=("bfloat16", "float32", "float16"), default="bfloat16")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    expert = ExpertConfig(id="bench", backend="transformers", model="smollm2", dtype=args.dtype,
                          device=args.device, batch_size=len(PROMPTS))
    t0 = time.perf_counter()
    backend = TransformersBackend(expert, ignore_eos=True)
    load_s = time.perf_counter() - t0
    sampling = SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=args.max_tokens)
    requests = [ChatRequest((ChatMessage("user", p),), sampling) for p in PROMPTS]

    # Warm-up: first calls pay for kernel selection and allocator growth.
    warm = SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=8)
    generate(backend, [ChatRequest((ChatMessage("user", "hi"),), warm)] * 2)

    seq_s, seq_tokens = 0.0, 0
    for request in requests:
        seconds, tokens = generate(backend, [request])
        seq_s += seconds
        seq_tokens += tokens
    batch_s, batch_tokens = generate(backend, requests)

    seq_rate, batch_rate = seq_tokens / seq_s, batch_tokens / batch_s
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"torch threads {torch.get_num_threads()}, device {args.device}, dtype {args.dtype}")
    print(f"model load: {load_s:.1f}s; {len(PROMPTS)} prompts x {args.max_tokens} new tokens, "
          "greedy, EOS disabled")
    print(f"sequential (1 x {len(PROMPTS)}): {seq_tokens} tokens in {seq_s:.2f}s "
          f"= {seq_rate:.1f} tok/s")
    print(f"batched    ({len(PROMPTS)} x 1): {batch_tokens} tokens in {batch_s:.2f}s "
          f"= {batch_rate:.1f} tok/s")
    print(f"batch / sequential throughput: {batch_rate / seq_rate:.2f}x (target >= 2x)")


if __name__ == "__main__":
    main()
