"""Experts run in-process with Hugging Face transformers (CPU or one GPU).

Models are loaded once per (folder, dtype, device) and shared by every roster expert that uses
the same triple: the demo roster is one small model in three configurations, and three copies
would only waste memory. Each shared model has a lock; generation runs in a worker thread
(`asyncio.to_thread`) so the event loop stays free for remote experts meanwhile.

Requests are batched (left padding) in chunks of `expert.batch_size`. Sampling is done per row
by a logits processor with its own `torch.Generator` seeded from `sampling.seed`, so a request's
text depends on its prompt and seed, not on the global RNG or on other threads; rows of one batch
may even use different temperatures, top_p, max_tokens and stop strings. Temperature 0 is
greedy decoding. Identical requests with identical seeds give identical texts: vary
`sampling.seed` per request to get distinct samples.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
)

from warriorcoder.backends.base import (
    BackendError,
    ChatRequest,
    CompletionRequest,
    GenerationError,
    GenerationOutcome,
    GenerationResult,
    ModelBackend,
)
from warriorcoder.backends.chat_templates import (
    ChatTemplateError,
    end_of_user_turn,
    load_template,
    render_chat,
)
from warriorcoder.config import ExpertConfig, SamplingConfig

_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float16": torch.float16}


@dataclass
class SharedModel:
    """One loaded model and tokenizer, shared by the experts that use the same triple."""

    path: Path
    dtype: str
    device: str
    tokenizer: Any
    model: Any
    eos_ids: frozenset[int]
    context_length: int | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0


_SHARED: dict[tuple[str, str, str], SharedModel] = {}
_SHARED_LOCK = threading.Lock()


def _version_at_least(major: int, minor: int) -> bool:
    parts = transformers.__version__.split(".")
    return (int(parts[0]), int(parts[1])) >= (major, minor)


def _eos_ids(tokenizer: Any, model: Any) -> frozenset[int]:
    ids: set[int] = set()
    for value in (getattr(model.generation_config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return frozenset(ids)


def _load(path: Path, dtype: str, device: str) -> SharedModel:
    if not (path / "config.json").is_file():
        raise BackendError(
            f"model folder {path}: no config.json (expected a Hugging Face model folder, "
            "or the model name 'smollm2')"
        )
    dtype_kw = "dtype" if _version_at_least(4, 56) else "torch_dtype"
    try:
        # Local files only: never a hub request (and no HF_HUB_OFFLINE set for the process).
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            str(path), local_files_only=True, **{dtype_kw: _DTYPES[dtype]}
        )
        model.to(device)  # type: ignore[arg-type]  # transformers' stub wraps .to oddly
    except Exception as err:
        raise BackendError(
            f"cannot load model from {path} ({dtype} on {device}): {type(err).__name__}: {err}"
        ) from err
    model.eval()
    # Decoder-only models must be padded on the left so every row ends at its last prompt token.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if tokenizer.pad_token is None:
        raise BackendError(f"model folder {path}: tokenizer has no pad, eos or unk token")
    context = getattr(model.config, "max_position_embeddings", None)
    return SharedModel(
        path=path,
        dtype=dtype,
        device=device,
        tokenizer=tokenizer,
        model=model,
        eos_ids=_eos_ids(tokenizer, model),
        context_length=context if isinstance(context, int) else None,
    )


def shared_model(path: Path, dtype: str, device: str) -> SharedModel:
    """The loaded model for (path, dtype, device), loading it on first use."""
    key = (str(path.resolve()), dtype, device)
    with _SHARED_LOCK:  # held while loading so that two experts never load the same model
        entry = _SHARED.get(key)
        if entry is None:
            entry = _load(path, dtype, device)
            _SHARED[key] = entry
        entry.users += 1
        return entry


def _release(entry: SharedModel) -> None:
    with _SHARED_LOCK:
        entry.users -= 1
        if entry.users <= 0:
            key = (str(entry.path.resolve()), entry.dtype, entry.device)
            if _SHARED.get(key) is entry:
                del _SHARED[key]


class _RowSampler(LogitsProcessor):
    """Per-row sampling: temperature 0 rows stay greedy; others are sampled with their own
    seeded generator and the logits are replaced by a one-hot choice, so greedy selection in
    `generate` picks exactly the sampled token."""

    def __init__(self, samplings: Sequence[SamplingConfig], ban: Sequence[int]) -> None:
        self.samplings = samplings
        self.ban = list(ban)
        self.generators: list[torch.Generator | None] = [None] * len(samplings)

    def _generator(self, row: int, device: torch.device) -> torch.Generator:
        g = self.generators[row]
        if g is None:
            g = torch.Generator(device=device)
            g.manual_seed(self.samplings[row].seed % (2**63))
            self.generators[row] = g
        return g

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.float()
        if self.ban:  # benchmark mode: never end early
            scores[:, self.ban] = float("-inf")
        for row, sampling in enumerate(self.samplings):
            if sampling.temperature == 0:
                continue
            probs = torch.softmax(scores[row] / sampling.temperature, dim=-1)
            if sampling.top_p < 1.0:
                sorted_probs, order = probs.sort(descending=True)
                # Keep the smallest set of top tokens whose mass reaches top_p (at least one).
                keep = (sorted_probs.cumsum(-1) - sorted_probs) < sampling.top_p
                sorted_probs = sorted_probs * keep
                generator = self._generator(row, probs.device)
                pick = torch.multinomial(sorted_probs, 1, generator=generator)
                token = order[pick]
            else:
                token = torch.multinomial(probs, 1, generator=self._generator(row, probs.device))
            scores[row] = float("-inf")
            scores[row, token] = 0.0
        return scores


class _RowStopper(StoppingCriteria):
    """Ends each row on its own terms (EOS, a stop string, its max_tokens) and records when."""

    def __init__(
        self,
        tokenizer: Any,
        prompt_len: int,
        eos_ids: frozenset[int],
        max_tokens: Sequence[int],
        stops: Sequence[tuple[str, ...]],
    ) -> None:
        self.tokenizer = tokenizer
        self.prompt_len = prompt_len
        self.eos_ids = eos_ids
        self.max_tokens = max_tokens
        self.stops = stops
        self.done_at: list[int | None] = [None] * len(max_tokens)
        self.reason: list[str] = ["length"] * len(max_tokens)

    def _has_stop(self, new_tokens: torch.Tensor, row: int) -> bool:
        text = self.tokenizer.decode(new_tokens, skip_special_tokens=False)
        return any(s in text for s in self.stops[row] if s)

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        new_len = input_ids.shape[1] - self.prompt_len
        last = input_ids[:, -1].tolist()
        for row in range(len(self.done_at)):
            if self.done_at[row] is not None:
                continue
            if last[row] in self.eos_ids or (
                self.stops[row] and self._has_stop(input_ids[row, self.prompt_len :], row)
            ):
                self.done_at[row], self.reason[row] = new_len, "stop"
            elif new_len >= self.max_tokens[row]:
                self.done_at[row] = new_len
        done = [d is not None for d in self.done_at]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]


def _cut_at_stop(text: str, stops: Sequence[str]) -> str:
    cuts = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return text[: min(cuts)] if cuts else text


@dataclass(frozen=True)
class _Job:
    index: int
    prompt: str
    sampling: SamplingConfig
    stop: tuple[str, ...]


class TransformersBackend(ModelBackend):
    """An expert run in-process with transformers.

    `model` is a local HF folder or "smollm2". `ignore_eos=True` (benchmarks only) makes every
    row generate exactly max_tokens tokens. `latency_s` of a result is the time of the whole
    batch it was generated in.
    """

    def __init__(self, expert: ExpertConfig, *, ignore_eos: bool = False) -> None:
        self.model_id = expert.id
        self.expert = expert
        self.ignore_eos = ignore_eos
        if expert.model == "smollm2":
            from warriorcoder.backends.smollm2 import smollm2_path

            path = smollm2_path()
        else:
            path = Path(expert.model).expanduser()
            if not path.is_dir():
                raise BackendError(
                    f"expert {expert.id!r}: model {expert.model!r} is not a folder; backend "
                    "'transformers' needs a local Hugging Face model folder or 'smollm2'"
                )
        try:
            self._shared = shared_model(path, expert.dtype, expert.device)
        except BackendError as err:
            raise BackendError(f"expert {expert.id!r}: {err}") from err
        self._released = False
        try:
            self._template, self._bos = self._load_template(path)
        except BackendError:
            _release(self._shared)  # this expert will not exist: drop its hold on the model
            raise
        tokenizer = self._shared.tokenizer
        # Every special token the tokenizer knows, as HF's apply_chat_template passes them.
        self._special = {
            k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)
        }
        self._special["bos_token"] = self._bos

    def _load_template(self, path: Path) -> tuple[str, str]:
        expert, tokenizer = self.expert, self._shared.tokenizer
        try:
            if expert.chat_template is not None:
                template, bos = load_template(expert.chat_template)
            else:
                template, bos = tokenizer.chat_template, tokenizer.bos_token or ""
        except ChatTemplateError as err:
            raise BackendError(f"expert {expert.id!r}: chat_template: {err}") from None
        if not isinstance(template, str) or not template:
            raise BackendError(
                f"expert {expert.id!r}: the tokenizer in {path} has no chat template; set "
                "chat_template for this expert in the roster"
            )
        return template, bos

    @property
    def shared(self) -> SharedModel:
        """The (possibly shared) loaded model behind this expert."""
        return self._shared

    def chat_template(self) -> str:
        return str(self._template)

    def bos_token(self) -> str:
        return self._bos

    def end_of_turn(self) -> tuple[str, ...]:
        return (end_of_user_turn(self.chat_template(), self._bos),)

    def render(self, request: ChatRequest) -> str:
        """The prompt text for a chat request (system prompt added when configured)."""
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        system = self.expert.system_prompt
        if system and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": system})
        return render_chat(self.chat_template(), messages, add_generation_prompt=True,
                           **self._special)

    async def chat(self, requests: Sequence[ChatRequest]) -> list[GenerationOutcome]:
        """One assistant turn per request, generated in batches."""
        jobs: list[_Job | GenerationError] = []
        for i, r in enumerate(requests):
            try:
                jobs.append(_Job(i, self.render(r), r.sampling, ()))
            except ChatTemplateError as err:
                jobs.append(GenerationError(self.model_id, f"chat template: {err}"))
        return await self._run(jobs)

    async def complete(self, requests: Sequence[CompletionRequest]) -> list[GenerationOutcome]:
        """Continue each raw prompt (sent as is: no special tokens added)."""
        return await self._run(
            [_Job(i, r.prompt, r.sampling, tuple(r.stop)) for i, r in enumerate(requests)]
        )

    async def _run(self, jobs: Sequence[_Job | GenerationError]) -> list[GenerationOutcome]:
        results: list[GenerationOutcome | None] = [None] * len(jobs)
        todo: list[tuple[int, _Job]] = []
        tokenizer = self._shared.tokenizer
        for i, job in enumerate(jobs):
            if isinstance(job, GenerationError):
                results[i] = job
                continue
            n = len(tokenizer(job.prompt, add_special_tokens=False)["input_ids"])
            context = self._shared.context_length
            if context is not None and n + job.sampling.max_tokens > context:
                results[i] = GenerationError(
                    self.model_id,
                    f"prompt of {n} tokens + max_tokens {job.sampling.max_tokens} exceeds the "
                    f"model's context of {context} tokens",
                )
            else:
                todo.append((n, job))
        # Similar lengths together: less padding per batch.
        todo.sort(key=lambda item: item[0])
        size = self.expert.batch_size
        for start in range(0, len(todo), size):
            chunk = [job for _, job in todo[start : start + size]]
            outcomes = await asyncio.to_thread(self._generate, chunk)
            for job, outcome in zip(chunk, outcomes, strict=True):  # one outcome per job
                results[job.index] = outcome
        return [r for r in results if r is not None]

    def _generate(self, chunk: Sequence[_Job]) -> list[GenerationOutcome]:
        """Generate one batch, in a worker thread, holding the shared model's lock."""
        shared = self._shared
        with shared.lock:
            t0 = time.perf_counter()
            try:
                return self._generate_locked(chunk, t0)
            except Exception as err:  # noqa: BLE001 (one bad batch must not stop the run)
                reason = f"generation failed: {type(err).__name__}: {err}"
                return [GenerationError(self.model_id, reason) for _ in chunk]

    def _generate_locked(self, chunk: Sequence[_Job], t0: float) -> list[GenerationOutcome]:
        shared = self._shared
        tokenizer, model = shared.tokenizer, shared.model
        enc = tokenizer(
            [job.prompt for job in chunk],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        ).to(shared.device)
        prompt_len = int(enc["input_ids"].shape[1])
        samplings = [job.sampling for job in chunk]
        eos = frozenset() if self.ignore_eos else shared.eos_ids
        stopper = _RowStopper(
            tokenizer, prompt_len, eos, [s.max_tokens for s in samplings],
            [job.stop for job in chunk],
        )
        sampler = _RowSampler(samplings, ban=sorted(shared.eos_ids) if self.ignore_eos else ())
        # A fresh config: the model's own generation_config defaults (temperature, repetition
        # penalty...) must not silently change the configured decoding.
        config = GenerationConfig(
            max_new_tokens=max(s.max_tokens for s in samplings),
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=sorted(eos) or None,
        )
        with torch.inference_mode():
            out = model.generate(
                **enc,
                generation_config=config,
                logits_processor=LogitsProcessorList([sampler]),
                stopping_criteria=StoppingCriteriaList([stopper]),
            )
        elapsed = time.perf_counter() - t0
        special = [t for t in tokenizer.all_special_tokens if t]
        results: list[GenerationOutcome] = []
        for row, job in enumerate(chunk):
            new = out[row, prompt_len:]
            done_at = stopper.done_at[row]
            count = done_at if done_at is not None else int(new.shape[0])
            tokens = new[:count].tolist()
            if tokens and tokens[-1] in eos:
                tokens = tokens[:-1]
            # Decode with special tokens kept so that stop strings like "<|eot_id|>" are found,
            # then drop the ones left over (as servers do with skip_special_tokens).
            text = _cut_at_stop(tokenizer.decode(tokens, skip_special_tokens=False), job.stop)
            for token in special:
                text = text.replace(token, "")
            results.append(
                GenerationResult(
                    model_id=self.model_id,
                    text=text,
                    prompt_tokens=int(enc["attention_mask"][row].sum()),
                    completion_tokens=count,
                    latency_s=elapsed,
                    finish_reason=stopper.reason[row],
                )
            )
        return results

    async def aclose(self) -> None:
        """Drop this expert's hold on the shared model (freed when no expert uses it)."""
        if not self._released:
            self._released = True
            _release(self._shared)
