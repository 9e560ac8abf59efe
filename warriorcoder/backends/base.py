"""The one interface every model backend implements.

A backend turns batches of requests into `Generation`s. Stages hand it whole batches so that
in-process backends can batch on the device and remote backends can keep many requests in
flight; either way each request gets exactly one result, in order. A request that fails after
the backend's retries comes back as a `GenerationError` in its slot instead of raising, so one
bad request never loses the rest of the batch.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field

from warriorcoder.config import SamplingConfig


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[ChatMessage, ...]
    sampling: SamplingConfig


@dataclass(frozen=True)
class CompletionRequest:
    """A raw text completion: the prompt is sent as is, no chat template applied."""

    prompt: str
    sampling: SamplingConfig
    # Stop strings (e.g. the end-of-turn marker of the template, so a mined user turn ends there).
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class GenerationResult:
    model_id: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    finish_reason: str  # "stop" | "length" | backend-specific
    # False when the server sent no token usage (the counts are then 0, not measured).
    usage_reported: bool = True


@dataclass(frozen=True)
class GenerationError:
    model_id: str
    reason: str
    attempts: int = 1
    details: dict[str, str] = field(default_factory=dict)


Outcome = GenerationResult | GenerationError


class BackendError(RuntimeError):
    """A backend could not be set up (bad path, missing package); raised at load time."""


class ModelBackend(abc.ABC):
    """An expert model behind one backend. `model_id` is the roster expert id."""

    model_id: str

    @abc.abstractmethod
    async def chat(self, requests: Sequence[ChatRequest]) -> list[Outcome]:
        """Generate one assistant turn per request (chat template applied by the backend)."""

    @abc.abstractmethod
    async def complete(self, requests: Sequence[CompletionRequest]) -> list[Outcome]:
        """Continue each raw prompt (used by pre-query mining)."""

    @abc.abstractmethod
    def chat_template(self) -> str:
        """The Jinja chat template of this expert (for building the pre-query prefix)."""

    def bos_token(self) -> str:
        return ""

    def end_of_turn(self) -> tuple[str, ...]:
        """Strings that end a user turn in this expert's template (stop strings for mining)."""
        return ()

    async def aclose(self) -> None:
        """Release connections or memory."""
