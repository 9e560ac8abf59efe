"""Send many requests to many models at once: one batch per model, all models concurrently."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Protocol

from warriorcoder.backends.base import ChatRequest, GenerationResult, ModelBackend, Outcome
from warriorcoder.v1 import arena_pb2


class ProgressBar(Protocol):
    """What stages need of a progress bar (tqdm satisfies it)."""

    total: float | None

    def update(self, n: float = 1) -> bool | None: ...


async def chat_by_model(
    backends: Mapping[str, ModelBackend], requests: Sequence[tuple[str, ChatRequest]]
) -> list[Outcome]:
    """Results for (model_id, request) pairs, in input order."""
    slots: dict[str, list[int]] = defaultdict(list)
    for i, (model_id, _) in enumerate(requests):
        slots[model_id].append(i)

    async def run(model_id: str) -> list[Outcome]:
        batch = [requests[i][1] for i in slots[model_id]]
        return await backends[model_id].chat(batch)

    results: list[Outcome | None] = [None] * len(requests)
    per_model = await asyncio.gather(*(run(m) for m in slots))
    for model_id, outcomes in zip(slots, per_model, strict=True):
        for i, outcome in zip(slots[model_id], outcomes, strict=True):
            results[i] = outcome
    return [r for r in results if r is not None]


def to_generation_pb(result: GenerationResult) -> arena_pb2.Generation:
    """A backend result as the schema's Generation message."""
    return arena_pb2.Generation(
        model_id=result.model_id,
        text=result.text,
        prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens,
        latency_s=result.latency_s,
        finish_reason=result.finish_reason,
    )
