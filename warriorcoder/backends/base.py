"""The one interface every model backend implements.

A backend turns batches of requests into `Generation`s. Stages hand it whole batches so that
in-process backends can batch on the device and remote backends can keep many requests in
flight; either way each request gets exactly one result, in order. A request that fails after
the backend's retries comes back as a `GenerationError` in its slot instead of raising, so one
bad request never loses the rest of the batch.
"""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from warriorcoder.config import SamplingConfig

# Generated positions whose top logprobs a result keeps (the verdict is among the first tokens).
TOP_LOGPROB_POSITIONS = 8


@dataclass(frozen=True)
class ChatMessage:
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class ChatRequest:
    """One chat turn to generate.

    The optional fields are OpenAI-compatible request fields that only the `openai` backend
    sends (the arena config allows them only when every expert is an openai expert); other
    backends ignore them.
    """

    messages: tuple[ChatMessage, ...]
    sampling: SamplingConfig
    # OpenAI's response_format, e.g. {"type": "json_schema", "json_schema": {...}}.
    response_format: Mapping[str, Any] | None = None
    # Server-specific fields merged into the request body, e.g. vLLM's
    # {"structured_outputs": {"choice": [...]}}; they never replace the fields set above.
    extra_body: Mapping[str, Any] | None = None
    # Ask for this many top logprobs per generated token (`GenerationResult.top_logprobs`).
    logprobs: int | None = None


@dataclass(frozen=True)
class CompletionRequest:
    """A raw text completion: the prompt is sent as is, no chat template applied."""

    prompt: str
    sampling: SamplingConfig
    # Stop strings (e.g. the end-of-turn marker of the template, so a mined user turn ends there).
    stop: tuple[str, ...] = ()
    # As in ChatRequest (openai backend only).
    extra_body: Mapping[str, Any] | None = None
    logprobs: int | None = None


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
    # When logprobs were asked for and the server returned them: for each of the first
    # generated tokens (at most TOP_LOGPROB_POSITIONS), its most likely alternatives as
    # (token, logprob), the generated token included. Empty otherwise.
    top_logprobs: tuple[tuple[tuple[str, float], ...], ...] = ()

    def __post_init__(self) -> None:
        # A server may send a lone surrogate ("\ud800" in JSON): no UTF-8 holds it, so
        # protobuf, the store and files would refuse the text. It becomes U+FFFD here, once.
        object.__setattr__(self, "text", utf8_safe(self.text))


def utf8_safe(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD (unchanged when it has none)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text


_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class GenerationError:
    model_id: str
    reason: str
    attempts: int = 1
    details: dict[str, str] = field(default_factory=dict)


# What a backend returns per request: the generation, or why it failed.
GenerationOutcome = GenerationResult | GenerationError


class BackendError(RuntimeError):
    """A backend could not be set up (bad path, missing package); raised at load time."""


# How to install the in-process model stack: torch first, pinned to its CPU build (an unpinned
# torch pulls a multi-GB CUDA build), then the `local` extra.
LOCAL_INSTALL_HINT = "pip install torch==2.13.0 && pip install -e '.[local]'"


class ModelBackend(abc.ABC):
    """An expert model behind one backend. `model_id` is the roster expert id."""

    model_id: str

    @abc.abstractmethod
    async def chat(self, requests: Sequence[ChatRequest]) -> list[GenerationOutcome]:
        """Generate one assistant turn per request (chat template applied by the backend)."""

    @abc.abstractmethod
    async def complete(self, requests: Sequence[CompletionRequest]) -> list[GenerationOutcome]:
        """Continue each raw prompt (used by pre-query mining)."""

    @abc.abstractmethod
    def chat_template(self) -> str:
        """The Jinja chat template of this expert (for building the pre-query prefix)."""

    def bos_token(self) -> str:
        return ""

    def end_of_turn(self) -> tuple[str, ...]:
        """Strings that end a user turn in this expert's template (stop strings for mining)."""
        return ()

    async def aclose(self) -> None:  # noqa: B027 - a no-op unless the backend holds something
        """Release connections or memory."""


class WrappedBackend(ModelBackend):
    """A ModelBackend that hands every call to another, `inner`, under the same expert id.
    Wrappers that watch or change some calls (metrics, request counts, scripted answers in
    tests) override those and inherit the rest, so none forgets to pass one on."""

    def __init__(self, inner: ModelBackend) -> None:
        self.inner = inner
        self.model_id = inner.model_id

    async def chat(self, requests: Sequence[ChatRequest]) -> list[GenerationOutcome]:
        return await self.inner.chat(requests)

    async def complete(self, requests: Sequence[CompletionRequest]) -> list[GenerationOutcome]:
        return await self.inner.complete(requests)

    def chat_template(self) -> str:
        return self.inner.chat_template()

    def bos_token(self) -> str:
        return self.inner.bos_token()

    def end_of_turn(self) -> tuple[str, ...]:
        return self.inner.end_of_turn()

    async def aclose(self) -> None:
        await self.inner.aclose()
