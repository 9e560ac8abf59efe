"""`train`: fine-tune a base model on a round's export with TRL, into a servable folder.

SFT runs TRL's SFTTrainer on conversational prompt/completion rows made from the exported chat
(`messages` minus the answer, then the answer): the base model's chat template renders them,
and the loss counts only the completion, i.e. the answer and the template's end-of-turn marker
(`completion_only_loss`). Prompt and padding positions get label -100. DPO runs TRL's
DPOTrainer on the exported preference pairs (conversational prompt/chosen/rejected) against the
base model as reference. LoRA goes to either trainer as peft's LoraConfig.

The saved folder is a plain Hugging Face model folder (safetensors, tokenizer with its chat
template) plus `train_log.jsonl` and `warriorcoder_training.json` (data hash, base,
hyper-parameters, losses): the transformers backend and vLLM serve it as is. LoRA adapters are
merged into the weights before saving unless asked not to.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from warriorcoder.training.models import (
    chat_renderer,
    load_model,
    load_tokenizer,
    lora_config,
    prompt_and_target,
    resolve_base,
    resolve_device,
    resolve_dtype,
)
from warriorcoder.training.records import (
    export_manifest,
    file_sha256,
    find_data_file,
    load_records,
    trainer_row,
)
from warriorcoder.training.settings import DPO, TrainingError, TrainingSettings
from warriorcoder.v1 import arena_pb2

LOG_FILE = "train_log.jsonl"
PROVENANCE_FILE = "warriorcoder_training.json"
# Trainer scratch (checkpoints are off; TRL may still write here); removed before publishing.
SCRATCH = ".trainer"

Saved = Literal["full", "merged", "adapter"]


@dataclass(frozen=True)
class TrainingResult:
    """What a run did. SFT losses are mean cross-entropy per answer token (nats); DPO losses
    are the DPO objective (ln 2 where the policy equals the reference)."""

    output: Path
    method: str
    saved: Saved
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
    train_seconds: float
    tokens_per_second: float
    peak_memory_bytes: int | None
    device: str
    dtype: str
    losses: list[float] = field(default_factory=list)


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


@dataclass(frozen=True)
class Fit:
    """Which records fit --max-seq-len: cut ones lose the end of an answer, dropped ones have
    a prompt that fills the length alone (the trainers would train nothing on them)."""

    kept: list[arena_pb2.TrainingRecord]
    truncated: list[str]
    dropped: list[str]


def fit_records(records: Sequence[arena_pb2.TrainingRecord], tokenizer: Any,
                max_len: int) -> Fit:
    """Check every record's prompt/answer boundary under the chat template and measure it."""
    render = chat_renderer(tokenizer)

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    kept, truncated, dropped = [], [], []
    for record in records:
        row = trainer_row(record)
        answers = [row["completion"][0]["content"]] if "completion" in row \
            else [row["chosen"][0]["content"], row["rejected"][0]["content"]]
        parts = [prompt_and_target(render, row["prompt"], a, record.record_id) for a in answers]
        prompt_tokens = count(parts[0][0])
        if prompt_tokens >= max_len:
            dropped.append(record.record_id)
            continue
        if any(prompt_tokens + count(target) > max_len for _, target in parts):
            truncated.append(record.record_id)
        kept.append(record)
    return Fit(kept, truncated, dropped)


def trainer_config(settings: TrainingSettings, scratch: Path, *, use_cpu: bool, bf16: bool,
                   has_eval: bool, progress: bool) -> Any:
    """TRL's SFTConfig or DPOConfig for the settings (no checkpoints, a log line per step)."""
    common: dict[str, Any] = {
        "output_dir": str(scratch),
        "num_train_epochs": settings.epochs,
        "max_steps": settings.max_steps or -1,
        "learning_rate": settings.peak_learning_rate,
        "per_device_train_batch_size": settings.batch_size,
        "per_device_eval_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.grad_accum,
        "max_length": settings.max_seq_len,
        "seed": settings.seed,
        "warmup_steps": settings.warmup_steps,
        # transformers' constant schedule with warm-up is constant when warm-up is 0.
        "lr_scheduler_type": "linear" if settings.lr_schedule == "linear"
        else "constant_with_warmup",
        "weight_decay": settings.weight_decay,
        "max_grad_norm": settings.max_grad_norm if settings.max_grad_norm > 0 else None,
        "use_cpu": use_cpu,
        "bf16": bf16,
        # Activations kept, no recomputation (TRL turns it on by default). transformers 5 names
        # it activation_checkpointing; TRL's default for the old name is cleared so that the
        # deprecated alias is not set at all.
        "activation_checkpointing": False,
        "gradient_checkpointing": None,
        "eval_strategy": "epoch" if has_eval else "no",
        "save_strategy": "no",
        "logging_steps": 1,
        "report_to": "none",
        "disable_tqdm": not progress,
    }
    if settings.method == DPO:
        from trl import DPOConfig

        return DPOConfig(**common, beta=settings.beta)
    from trl import SFTConfig

    # Prompt/completion rows: the loss counts the completion only, under any chat template.
    return SFTConfig(**common, completion_only_loss=True)


def build_trainer(settings: TrainingSettings, model: Any, tokenizer: Any,
                  train_rows: Sequence[dict[str, Any]], eval_rows: Sequence[dict[str, Any]],
                  scratch: Path, *, callbacks: Sequence[Any] = (), progress: bool = False) -> Any:
    """TRL's SFTTrainer or DPOTrainer over the rows (see `trainer_row`), data prepared."""
    import torch
    from datasets import Dataset
    from transformers import PrinterCallback

    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    config = trainer_config(settings, scratch, use_cpu=device.type == "cpu",
                            bf16=dtype == torch.bfloat16, has_eval=bool(eval_rows),
                            progress=progress)
    kwargs: dict[str, Any] = {
        "model": model, "args": config, "train_dataset": Dataset.from_list(list(train_rows)),
        "eval_dataset": Dataset.from_list(list(eval_rows)) if eval_rows else None,
        "processing_class": tokenizer, "peft_config": lora_config(settings.lora),
        "callbacks": list(callbacks),
    }
    try:
        if settings.method == DPO:
            from trl import DPOTrainer

            trainer: Any = DPOTrainer(**kwargs)
        else:
            from trl import SFTTrainer

            trainer = SFTTrainer(**kwargs)
    except ValueError as err:  # e.g. LoRA target modules that the model does not have
        lora = settings.lora
        targets = "" if lora is None else lora.target_modules if isinstance(
            lora.target_modules, str) else ",".join(lora.target_modules)
        flag = f" with --lora-targets {targets}" if lora is not None else ""
        raise TrainingError(f"cannot set up training{flag}: {err}") from None
    trainer.remove_callback(PrinterCallback)  # the log file and the bar say it all
    return trainer


class StepLog:
    """Appends one JSON line per logged event to the run's log (a transformers callback)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Opened at the first event: a run that fails before training leaves no log behind.
        self.file: TextIO | None = None
        self.started = time.perf_counter()
        self.tokens_seen = 0.0

    def write(self, **values: Any) -> None:
        if self.file is None:
            self.file = self.path.open("a", encoding="utf-8")
        self.file.write(json.dumps(values) + "\n")
        self.file.flush()

    def train_begins(self) -> None:
        self.started = time.perf_counter()

    def logged(self, step: int, logs: dict[str, float]) -> None:
        """One `Trainer.log` call: a training step, an evaluation, or the run's summary."""
        if "loss" in logs:
            tokens = float(logs.get("num_tokens", self.tokens_seen))
            entry = {"step": step, "epoch": logs.get("epoch"), "loss": logs["loss"],
                     "lr": logs.get("learning_rate"), "grad_norm": logs.get("grad_norm"),
                     "tokens": int(tokens - self.tokens_seen),
                     "elapsed_s": round(time.perf_counter() - self.started, 4)}
            self.tokens_seen = tokens
            if "rewards/margins" in logs:  # DPO: how far chosen is above rejected
                entry["reward_margin"] = logs["rewards/margins"]
                entry["reward_accuracy"] = logs.get("rewards/accuracies")
            self.write(**entry)
        for key in ("eval_loss", "probe_loss"):
            if key in logs:
                self.write(step=step, epoch=logs.get("epoch"), **{key: logs[key]})

    def callback(self) -> Any:
        """The transformers TrainerCallback that feeds this log."""
        from transformers import TrainerCallback

        log = self

        class Callback(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any,
                               **kwargs: Any) -> None:
                log.train_begins()

            def on_log(self, args: Any, state: Any, control: Any,
                       logs: dict[str, float] | None = None, **kwargs: Any) -> None:
                log.logged(int(state.global_step), logs or {})

        return Callback()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


@contextlib.contextmanager
def _quiet(progress: bool) -> Iterator[None]:
    """Without progress: no `datasets` bars while TRL prepares the data, and no transformers
    bars while the weights load and save."""
    import datasets
    from transformers.utils import logging as transformers_logging

    datasets_bars = datasets.is_progress_bar_enabled()
    transformers_bars = transformers_logging.is_progress_bar_enabled()
    if not progress:
        datasets.disable_progress_bars()
        transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if datasets_bars:
            datasets.enable_progress_bars()
        if transformers_bars:
            transformers_logging.enable_progress_bar()


def train(settings: TrainingSettings, *, progress: bool = True) -> TrainingResult:
    """Fine-tune `settings.base` on the export of `settings.data` (SFT records, or preference
    pairs with method 'dpo'); save the model to `settings.output` (see the module docstring)."""
    settings.validate()
    data_path = find_data_file(settings.data, settings.method)
    records = load_records(data_path, settings.method)
    base_path = resolve_base(settings.base)
    output = settings.output.expanduser()
    staging = _staging_folder(output, settings.overwrite)
    try:
        with _quiet(progress):
            result = _train_into(settings, data_path, records, base_path, staging, output,
                                 progress)
        _publish(staging, output)
    except BaseException:
        shutil.rmtree(staging / SCRATCH, ignore_errors=True)
        if (staging / LOG_FILE).is_file():
            # Training had started: keep its log beside the output for diagnosis, not weights.
            for leftover in staging.glob("*.safetensors"):
                leftover.unlink()
        else:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


def _train_into(settings: TrainingSettings, data_path: Path,
                records: list[arena_pb2.TrainingRecord], base_path: Path, staging: Path,
                output: Path, progress: bool) -> TrainingResult:
    import torch

    device = resolve_device(settings.device)
    dtype = resolve_dtype(settings.dtype, device)
    tokenizer = load_tokenizer(base_path)
    fit = fit_records(records, tokenizer, settings.max_seq_len)
    if not fit.kept:
        raise TrainingError(f"{data_path}: every record's prompt fills --max-seq-len "
                            f"{settings.max_seq_len}; nothing left to train on")
    train_idx, eval_idx = split_eval(len(fit.kept), settings.eval_fraction, settings.seed)
    rows = [trainer_row(r) for r in fit.kept]
    # Full fine-tune: float32 master weights, bf16 compute under autocast. LoRA: the frozen
    # base in the compute dtype (half the memory), adapters kept in float32 by peft.
    model = load_model(base_path, dtype if settings.lora is not None else torch.float32)
    log = StepLog(staging / LOG_FILE)
    if progress:
        print(f"training log: {staging / LOG_FILE} (moves to {output} when done)",
              file=sys.stderr)
    try:
        trainer = build_trainer(settings, model, tokenizer, [rows[i] for i in train_idx],
                                [rows[i] for i in eval_idx], staging / SCRATCH,
                                callbacks=[log.callback()], progress=progress)
    except BaseException:
        log.close()
        raise
    probe = trainer.train_dataset.select(range(min(settings.batch_size,
                                                   len(trainer.train_dataset))))
    try:
        probe_before = trainer.evaluate(probe, metric_key_prefix="probe")["probe_loss"]
        eval_before = trainer.evaluate()["eval_loss"] if eval_idx else None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        outcome = trainer.train()
        steps = [e for e in trainer.state.log_history if "loss" in e]
        evals = [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e]
        probe_after = trainer.evaluate(probe, metric_key_prefix="probe")["probe_loss"]
    finally:
        log.close()
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    train_seconds = float(outcome.metrics["train_runtime"])
    tokens = int(steps[-1].get("num_tokens", 0)) if steps else 0

    model = trainer.model
    saved: Saved = "full"
    if settings.lora is not None:
        if settings.lora.merge:
            model = model.merge_and_unload()
            saved = "merged"
        else:
            saved = "adapter"
    shutil.rmtree(staging / SCRATCH, ignore_errors=True)
    model.to(dtype)  # served in the compute dtype; float32 runs stay float32
    model.config.use_cache = True
    model.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))

    result = TrainingResult(
        output=output, method=settings.method, saved=saved, steps=int(outcome.global_step),
        examples=len(train_idx), eval_examples=len(eval_idx), truncated=len(fit.truncated),
        dropped=len(fit.dropped), probe_loss_before=float(probe_before),
        probe_loss_after=float(probe_after),
        eval_loss_before=float(eval_before) if eval_before is not None else None,
        eval_loss_after=float(evals[-1]) if evals else None, train_tokens=tokens,
        train_seconds=train_seconds,
        tokens_per_second=tokens / train_seconds if train_seconds > 0 else 0.0,
        peak_memory_bytes=peak, device=str(device), dtype=str(dtype).removeprefix("torch."),
        losses=[float(e["loss"]) for e in steps],
    )
    provenance = {
        "method": settings.method,
        "base": settings.base,
        "base_path": str(base_path.resolve()),
        "data": {"path": str(data_path.resolve()), "sha256": file_sha256(data_path),
                 "records": len(records), "train_examples": len(train_idx),
                 "eval_examples": len(eval_idx), "truncated": fit.truncated,
                 "dropped": fit.dropped},
        # The export the data came from (its manifest.json), when there is one.
        "export_manifest": export_manifest(data_path),
        "hyperparameters": settings.hyperparameters(),
        "lora": asdict(settings.lora) if settings.lora is not None else None,
        "saved": saved,
        "results": {k: v for k, v in asdict(result).items()
                    if k not in ("output", "losses", "saved", "method")},
        "versions": _versions(),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (staging / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n")
    return result


def _versions() -> dict[str, str]:
    versions = {}
    for package in ("torch", "transformers", "trl", "peft", "warriorcoder"):
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


def roster_entry(folder: Path, expert_id: str, **fields: Any) -> dict[str, Any]:
    """The roster entry (arena YAML) that puts a fine-tuned folder back into the arena."""
    return {"id": expert_id, "backend": "transformers", "model": str(folder.resolve()),
            **fields}
