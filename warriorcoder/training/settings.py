"""What one `warriorcoder train` run is asked to do, checked before anything loads."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SFT = "sft"
DPO = "dpo"
METHODS = (SFT, DPO)
DTYPES = ("auto", "float32", "bfloat16")
SCHEDULES = ("linear", "constant")
# Peak learning rates by (method, LoRA): DPO moves a model that already answers well, so it
# steps far more gently than SFT; adapters take larger steps than full weights.
DEFAULT_LEARNING_RATES = {
    (SFT, False): 2e-5, (SFT, True): 2e-4, (DPO, False): 1e-6, (DPO, True): 1e-5,
}


class TrainingError(ValueError):
    """Training cannot start or go on; the message names the input at fault."""


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
    """Everything one fine-tuning run needs. `learning_rate=None` picks the default of the
    method (DEFAULT_LEARNING_RATES)."""

    data: Path
    base: str
    output: Path
    method: str = SFT
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
    # DPO's beta: how far the policy may move from the base (higher: less).
    beta: float = 0.1
    lora: LoraSettings | None = None
    overwrite: bool = False

    @property
    def peak_learning_rate(self) -> float:
        """The learning rate given, or the method's default."""
        if self.learning_rate is not None:
            return self.learning_rate
        return DEFAULT_LEARNING_RATES[(self.method, self.lora is not None)]

    def validate(self) -> None:
        """Raise TrainingError naming the first option out of range."""
        checks: list[tuple[bool, str]] = [
            (self.method in METHODS, f"--method must be one of {METHODS}, got {self.method!r}"),
            (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
            (self.max_steps is None or self.max_steps >= 1,
             f"--max-steps must be >= 1, got {self.max_steps}"),
            (self.method not in METHODS or self.peak_learning_rate > 0,
             f"--lr must be > 0, got {self.learning_rate}"),
            (self.batch_size >= 1, f"--batch-size must be >= 1, got {self.batch_size}"),
            (self.grad_accum >= 1, f"--grad-accum must be >= 1, got {self.grad_accum}"),
            (self.max_seq_len >= 2, f"--max-seq-len must be >= 2, got {self.max_seq_len}"),
            (self.dtype in DTYPES, f"--dtype must be one of {DTYPES}, got {self.dtype!r}"),
            (self.device in ("auto", "cpu", "cuda"),
             (f"--device must be auto, cpu or cuda, got {self.device!r} (pick the GPU with "
              "CUDA_VISIBLE_DEVICES)")),
            (0 <= self.eval_fraction < 1,
             f"--eval-fraction must be in [0, 1), got {self.eval_fraction}"),
            (self.warmup_steps >= 0, f"--warmup-steps must be >= 0, got {self.warmup_steps}"),
            (self.lr_schedule in SCHEDULES,
             f"--lr-schedule must be one of {SCHEDULES}, got {self.lr_schedule!r}"),
            (self.weight_decay >= 0, f"--weight-decay must be >= 0, got {self.weight_decay}"),
            (self.max_grad_norm >= 0, f"--max-grad-norm must be >= 0, got {self.max_grad_norm}"),
            (self.beta > 0, f"--beta must be > 0, got {self.beta}"),
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
        if self.method != DPO:
            values.pop("beta")
        values["learning_rate"] = self.peak_learning_rate
        return values
