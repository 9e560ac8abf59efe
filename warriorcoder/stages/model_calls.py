"""What the model-calling stages share: their constructor, batched calls to many models at
once, and turning backend results into schema messages."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import cast

from warriorcoder.backends.base import (
    ChatRequest,
    CompletionRequest,
    GenerationOutcome,
    GenerationResult,
    ModelBackend,
)
from warriorcoder.config import ArenaConfig
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2


class ModelStage:
    """A stage that calls the roster's models and keeps its work in the store."""

    def __init__(
        self, config: ArenaConfig, backends: Mapping[str, ModelBackend], store: ArenaStore
    ) -> None:
        self.config = config
        self.backends = backends
        self.store = store
        self.roster = [e.id for e in config.roster]


async def generate_by_model(
    backends: Mapping[str, ModelBackend],
    requests: Sequence[tuple[str, ChatRequest | CompletionRequest]],
) -> list[GenerationOutcome]:
    """Results for (model_id, request) pairs, in input order: one batch per model and kind of
    request, all models at once."""
    slots: dict[tuple[str, bool], list[int]] = defaultdict(list)
    for i, (model_id, request) in enumerate(requests):
        slots[(model_id, isinstance(request, ChatRequest))].append(i)

    async def run(model_id: str, is_chat: bool, indices: list[int]) -> list[GenerationOutcome]:
        backend = backends[model_id]
        if is_chat:
            return await backend.chat([cast(ChatRequest, requests[i][1]) for i in indices])
        return await backend.complete([cast(CompletionRequest, requests[i][1]) for i in indices])

    results: list[GenerationOutcome | None] = [None] * len(requests)
    per_batch = await asyncio.gather(*(run(m, c, idx) for (m, c), idx in slots.items()))
    for indices, outcomes in zip(slots.values(), per_batch, strict=True):
        for i, outcome in zip(indices, outcomes, strict=True):
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
