"""Experts behind any OpenAI-compatible HTTP server (vLLM, llama.cpp server, TGI, OpenAI...).

`chat` posts to ``{endpoint}/chat/completions``; `complete` posts to ``{endpoint}/completions``
(raw completions are what pre-query mining needs: the prompt is the template's prefix, with no
chat template applied by the server). `endpoint` is the base URL, e.g. ``http://host:8000/v1``.

Each expert keeps at most `max_concurrency` requests in flight. A request is retried with
exponential backoff and jitter on connection errors, timeouts, HTTP 429 and 5xx, and on a 200
whose body is not the expected JSON ("garbage"); other 4xx answers are final. A request that
still fails becomes a `GenerationError` in its slot, whose reason says what went wrong.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp

from warriorcoder.backends.base import (
    TOP_LOGPROB_POSITIONS,
    BackendError,
    ChatRequest,
    CompletionRequest,
    GenerationError,
    GenerationOutcome,
    GenerationResult,
    ModelBackend,
)
from warriorcoder.backends.chat_templates import ChatTemplateError, end_of_user_turn, load_template
from warriorcoder.config import ExpertConfig, SamplingConfig, runtime_settings

log = logging.getLogger(__name__)

_EXCERPT_CHARS = 200


@dataclass(frozen=True)
class _Reply:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    usage_reported: bool
    latency_s: float
    top_logprobs: tuple[tuple[tuple[str, float], ...], ...] = ()


@dataclass(frozen=True)
class _Failure:
    reason: str
    retryable: bool
    status: int | None = None
    retry_after_s: float | None = None


def _excerpt(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _EXCERPT_CHARS else flat[:_EXCERPT_CHARS] + "..."


@dataclass(frozen=True)
class _HttpAnswer:
    status: int
    body: bytes
    retry_after: str | None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def _retry_after(answer: _HttpAnswer) -> float | None:
    value = answer.retry_after
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date: not worth parsing, the backoff applies instead
        return None


TopLogprobs = tuple[tuple[tuple[str, float], ...], ...]


def _alternatives(items: Any) -> tuple[tuple[str, float], ...] | None:
    """(token, logprob) pairs of one position: chat's [{"token", "logprob"}, ...] or
    completions' {token: logprob}; None when the shape is unexpected."""
    if isinstance(items, dict):
        pairs = list(items.items())
    elif isinstance(items, list):
        pairs = [(i.get("token"), i.get("logprob")) for i in items if isinstance(i, dict)]
    else:
        return None
    out = tuple(
        (token, float(logprob))
        for token, logprob in pairs
        if isinstance(token, str) and isinstance(logprob, int | float)
    )
    return out or None


def _top_logprobs(choice: dict[str, Any], chat: bool) -> TopLogprobs:
    """The top logprobs of the first generated tokens, () when the server sent none or sent
    them in an unexpected shape (the text is still good; only soft votes need them)."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        return ()
    if chat:
        content = logprobs.get("content")
        positions = (
            [p.get("top_logprobs") for p in content if isinstance(p, dict)]
            if isinstance(content, list)
            else []
        )
    else:
        top = logprobs.get("top_logprobs")
        positions = list(top) if isinstance(top, list) else []
    out = []
    for position in positions[:TOP_LOGPROB_POSITIONS]:
        alternatives = _alternatives(position)
        if alternatives is None:
            return ()
        out.append(alternatives)
    return tuple(out)


def _parse_body(response: _HttpAnswer, url: str, chat: bool) -> _Reply | _Failure:
    """Check the shape of a 200 answer; anything unexpected is a retryable failure."""

    def garbage(what: str) -> _Failure:
        return _Failure(
            f"malformed response from {url}: {what} (body: {_excerpt(response.text)!r})",
            retryable=True,
            status=response.status,
        )

    try:
        body = json.loads(response.body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return garbage("body is not JSON")
    if not isinstance(body, dict):
        return garbage("body is not a JSON object")
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return garbage("no choices[0]")
    choice = choices[0]
    if chat:
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        if not isinstance(text, str):
            return garbage("choices[0].message.content is not a string")
    else:
        text = choice.get("text")
        if not isinstance(text, str):
            return garbage("choices[0].text is not a string")
    finish = choice.get("finish_reason")
    usage = body.get("usage")
    prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    completion_tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    reported = isinstance(prompt_tokens, int) and isinstance(completion_tokens, int)
    return _Reply(
        text=text,
        finish_reason=str(finish) if finish else "unknown",
        prompt_tokens=int(prompt_tokens) if reported else 0,  # type: ignore[arg-type]
        completion_tokens=int(completion_tokens) if reported else 0,  # type: ignore[arg-type]
        usage_reported=reported,
        latency_s=0.0,
        top_logprobs=_top_logprobs(choice, chat),
    )


def choice_constraint(
    choices: Sequence[str], field: Literal["choice", "guided_choice"] = "choice"
) -> dict[str, Any]:
    """Request fields that make a vLLM server answer exactly one of `choices`.

    vLLM >= 0.12 reads ``{"structured_outputs": {"choice": [...]}}`` on /chat/completions and
    /completions; the older top-level ``guided_choice`` was removed in v0.12.0 (vLLM docs,
    features/structured_outputs: "guided_choice -> {"structured_outputs": {"choice": ...}}").
    `field` picks which one to send: a server ignores the field it does not know.
    """
    if not choices or not all(isinstance(c, str) and c for c in choices):
        raise ValueError(f"choice_constraint: choices must be non-empty strings, got {choices!r}")
    if field == "guided_choice":
        return {"guided_choice": list(choices)}
    return {"structured_outputs": {"choice": list(choices)}}


def json_schema_format(name: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    """OpenAI's ``response_format`` for an answer that must follow a JSON schema (also read by
    vLLM, which enforces it with its structured-output backend)."""
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": dict(schema), "strict": True},
    }


class OpenAIBackend(ModelBackend):
    """An expert served by an OpenAI-compatible server.

    `backoff_base_s` / `backoff_max_s` shape the retry delays (attempt n waits about
    base * 2**(n-1), capped, with jitter); tests shorten them.
    """

    def __init__(
        self,
        expert: ExpertConfig,
        *,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 20.0,
    ) -> None:
        if not expert.endpoint:
            raise BackendError(f"expert {expert.id!r}: backend 'openai' needs an endpoint")
        self.model_id = expert.id
        self.expert = expert
        self.endpoint = expert.endpoint.rstrip("/")
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._headers: dict[str, str] = {}
        if expert.api_key_env:
            key = runtime_settings().api_key(expert.api_key_env)
            if not key:
                raise BackendError(
                    f"expert {expert.id!r}: environment variable {expert.api_key_env} "
                    "(api_key_env) is not set or empty"
                )
            self._headers["Authorization"] = f"Bearer {key}"
        # The server applies its own template to chat requests; ours is needed only to build
        # raw prompts (pre-query mining, pre-filled verdicts). An arena config must name it for
        # every openai expert (ArenaConfig checks); a plain chat client (evaluation) need not.
        self._template: str | None = None
        self._bos = ""
        if expert.chat_template is not None:
            try:
                self._template, _ = load_template(expert.chat_template)
            except ChatTemplateError as err:
                raise BackendError(f"expert {expert.id!r}: chat_template: {err}") from None
            # OpenAI-compatible servers (vLLM) add the BOS token to /completions prompts
            # themselves, so the prefix carries one only when the configuration asks for it.
            self._bos = expert.chat_template.bos_token
        self._rng = random.Random()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None

    def __repr__(self) -> str:  # never shows the headers (API key)
        return f"OpenAIBackend(id={self.model_id!r}, model={self.expert.model!r}, {self.endpoint})"

    def chat_template(self) -> str:
        if self._template is None:
            raise BackendError(
                f"expert {self.model_id!r} (backend openai): no chat template configured; "
                "pre-query mining and pre-filled verdicts need it. Set roster.N.chat_template "
                "for this expert (N = its position in the roster) to one of: "
                "{tokenizer: <HF model folder>}, {template: <jinja>}, "
                "{builtin: chatml|llama3|mistral|gemma}"
            )
        return self._template

    def bos_token(self) -> str:
        return self._bos

    def end_of_turn(self) -> tuple[str, ...]:
        return (end_of_user_turn(self.chat_template(), self._bos),)

    def _session(self) -> tuple[aiohttp.ClientSession, asyncio.Semaphore]:
        # The connection pool and semaphore belong to one event loop; a later asyncio.run()
        # gets fresh ones (the old pool died with its loop).
        # aiohttp, not httpx: measured at about a tenth of httpx's CPU per request
        # (docs/benchmarks.md), which is most of a model-calling service's own CPU.
        loop = asyncio.get_running_loop()
        if self._client is None or self._semaphore is None or self._loop is not loop:
            n = self.expert.max_concurrency
            self._client = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=n),
                timeout=aiohttp.ClientTimeout(total=None),  # one deadline below, per attempt
            )
            self._semaphore = asyncio.Semaphore(n)
            self._loop = loop
        return self._client, self._semaphore

    def _backoff_s(self, attempt: int, retry_after_s: float | None) -> float:
        delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        # "Equal jitter": spreads out retries of many requests that failed together.
        delay = delay / 2 + self._rng.uniform(0, delay / 2)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.backoff_max_s))
        return delay

    async def _attempt(self, url: str, payload: dict[str, Any], chat: bool) -> _Reply | _Failure:
        client, semaphore = self._session()
        timeout_s = self.expert.timeout_s
        async with semaphore:
            t0 = time.perf_counter()
            try:
                async with asyncio.timeout(timeout_s):
                    async with client.post(url, json=payload) as http:
                        response = _HttpAnswer(
                            http.status, await http.read(), http.headers.get("retry-after")
                        )
            except TimeoutError:
                return _Failure(f"timeout after {timeout_s:g}s from {url}", retryable=True)
            except aiohttp.InvalidURL as err:
                return _Failure(f"request to {url} failed: invalid URL {err}", retryable=False)
            except aiohttp.ClientError as err:
                return _Failure(
                    f"connection error to {url}: {type(err).__name__}: {err}", retryable=True
                )
            except Exception as err:  # noqa: BLE001 (a bad request and the like: a retry cannot help)
                return _Failure(
                    f"request to {url} failed: {type(err).__name__}: {err}", retryable=False
                )
            latency = time.perf_counter() - t0
        status = response.status
        if status != 200:
            return _Failure(
                f"HTTP {status} from {url}: {_excerpt(response.text)}",
                retryable=status == 429 or status >= 500,
                status=status,
                retry_after_s=_retry_after(response),
            )
        parsed = _parse_body(response, url, chat)
        if isinstance(parsed, _Reply):
            return dataclasses.replace(parsed, latency_s=latency)
        return parsed

    async def _request(self, path: str, payload: dict[str, Any], chat: bool) -> GenerationOutcome:
        url = f"{self.endpoint}{path}"
        attempts = 0
        while True:
            attempts += 1
            outcome = await self._attempt(url, payload, chat)
            if isinstance(outcome, _Reply):
                return GenerationResult(
                    model_id=self.model_id,
                    text=outcome.text,
                    prompt_tokens=outcome.prompt_tokens,
                    completion_tokens=outcome.completion_tokens,
                    latency_s=outcome.latency_s,
                    finish_reason=outcome.finish_reason,
                    usage_reported=outcome.usage_reported,
                    top_logprobs=outcome.top_logprobs,
                )
            if not outcome.retryable or attempts > self.expert.max_retries:
                details = {"url": url}
                if outcome.status is not None:
                    details["status"] = str(outcome.status)
                return GenerationError(self.model_id, outcome.reason, attempts, details)
            delay = self._backoff_s(attempts, outcome.retry_after_s)
            log.warning(
                "expert %s: attempt %d failed (%s); retrying in %.2fs",
                self.model_id, attempts, outcome.reason, delay,
            )
            await asyncio.sleep(delay)

    def _sampling_fields(self, sampling: SamplingConfig) -> dict[str, Any]:
        return {
            "model": self.expert.model,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": sampling.seed,
        }

    def _messages(self, request: ChatRequest) -> list[dict[str, str]]:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        system = self.expert.system_prompt
        if system and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": system})
        return messages

    def chat_payload(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body of a /chat/completions request."""
        payload: dict[str, Any] = {
            **(request.extra_body or {}),
            **self._sampling_fields(request.sampling),
            "messages": self._messages(request),
        }
        if request.response_format is not None:
            payload["response_format"] = dict(request.response_format)
        if request.logprobs is not None:
            payload["logprobs"] = True
            payload["top_logprobs"] = request.logprobs
        return payload

    def completion_payload(self, request: CompletionRequest) -> dict[str, Any]:
        """The JSON body of a /completions request."""
        payload: dict[str, Any] = {
            **(request.extra_body or {}),
            **self._sampling_fields(request.sampling),
            "prompt": request.prompt,
        }
        if request.stop:
            payload["stop"] = list(request.stop)
        if request.logprobs is not None:
            payload["logprobs"] = request.logprobs  # the legacy API: an int, top-N per token
        return payload

    async def chat(self, requests: Sequence[ChatRequest]) -> list[GenerationOutcome]:
        """POST each request to /chat/completions, at most max_concurrency at a time."""
        jobs = [
            self._request("/chat/completions", self.chat_payload(r), chat=True) for r in requests
        ]
        return list(await asyncio.gather(*jobs))

    async def complete(self, requests: Sequence[CompletionRequest]) -> list[GenerationOutcome]:
        """POST each raw prompt to /completions (with its stop strings)."""
        jobs = [
            self._request("/completions", self.completion_payload(r), chat=False)
            for r in requests
        ]
        return list(await asyncio.gather(*jobs))

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.close()
        self._client = None
        self._semaphore = None
        self._loop = None
