"""GPU check of `warriorcoder.training`: SFT (full and LoRA) and DPO on a random-weight model.

Builds, in code, a Llama-style model with SmolLM2-135M-Instruct's architecture scaled down
(grouped-query attention, SiLU MLP, tied embeddings, RMSNorm) and a byte-level BPE tokenizer
with SmolLM2's ChatML template, writes synthetic SFT records and preference pairs in the arena's
export layout, then runs `warriorcoder.training.train` on them: SFT as a full fine-tune, SFT
with LoRA (when peft imports), and DPO. For each run it prints the loss on a fixed batch before
and after, tokens/s, peak GPU memory, and checks that the saved folder reloads with transformers
and generates; for SFT also that it gives the same loss on that batch, for DPO that its weights
moved. Nothing is downloaded and nothing beyond torch, transformers, tokenizers, TRL, datasets,
protobuf (and peft for LoRA) is imported, so it runs on a bare GPU machine. Exit status 1 when
a check fails.

    python bench/gpu_train_check.py                          # cuda, bf16, ~42M parameters
    python bench/gpu_train_check.py --size tiny --device cpu # a few seconds on a CPU

The weights start random, so the loss falls from about ln(vocab); the numbers measure the
training path (masking, precision, throughput, saving), not what fine-tuning teaches a model.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from warriorcoder.training import (
    LoraSettings,
    TrainingSettings,
    answer_only_batch,
    resolve_device,
    resolve_dtype,
    train,
)

# SmolLM2-135M-Instruct's chat template (ChatML with a default system prompt).
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@dataclass(frozen=True)
class Size:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    records: int
    steps: int
    batch_size: int


# SmolLM2-135M: hidden 576, 30 layers, 9 heads, 3 kv heads, intermediate 1536, vocab 49152.
SIZES = {
    "tiny": Size(hidden=64, layers=2, heads=4, kv_heads=2, intermediate=128, vocab=512,
                 records=48, steps=12, batch_size=8),
    "small": Size(hidden=512, layers=12, heads=8, kv_heads=4, intermediate=1536, vocab=8192,
                  records=2048, steps=120, batch_size=32),
}

OPS = [("adds", "+"), ("subtracts", "-"), ("multiplies by", "*"), ("floor-divides by", "//"),
       ("takes the remainder by", "%"), ("raises to the power", "**")]


def synthetic_records(count: int, seed: int) -> list[dict[str, Any]]:
    """SFT records in the exporter's layout: small, regular coding tasks and their answers."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        verb, op = rng.choice(OPS)
        k = rng.randint(2, 99)
        name = rng.choice(["scale", "shift", "step", "apply", "combine", "mix"]) + f"_{k}"
        prompt = f"Write a Python function named {name} that {verb} {k} and returns the result."
        answer = (f"Here is the function.\n\n```python\ndef {name}(x: int) -> int:\n"
                  f"    return x {op} {k}\n```\n\nIt {verb} {k}.")
        rows.append({"id": f"synthetic-{i}/sft",
                     "messages": [{"role": "user", "content": prompt},
                                  {"role": "assistant", "content": answer}],
                     "model": "synthetic", "score": 1.0, "provenance": {"round_id": "gpu-check"}})
    return rows


def preference_pairs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Preference pairs in the exporter's layout: the right answer against a wrong operator."""
    pairs = []
    for i, row in enumerate(rows):
        prompt, answer = row["messages"][0], row["messages"][1]["content"]
        wrong = answer.replace("return x ", "return -x ", 1)
        pairs.append({"id": f"synthetic-{i}/preference", "prompt": [prompt],
                      "chosen": [{"role": "assistant", "content": answer}],
                      "rejected": [{"role": "assistant", "content": wrong}],
                      "chosen_model": "synthetic", "rejected_model": "synthetic-wrong",
                      "margin": 0.5, "provenance": {"round_id": "gpu-check"}})
    return pairs


def build_base(folder: Path, size: Size, rows: list[dict[str, Any]], seed: int) -> int:
    """Save a random-weight Llama and its tokenizer under `folder`; returns the parameter count."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=size.vocab, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [m["content"] for r in rows for m in r["messages"]]
    tok.train_from_iterator([*corpus, CHAT_TEMPLATE], trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>",
                                   eos_token="<|im_end|>", pad_token="<|im_end|>",
                                   unk_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(folder))
    config = LlamaConfig(
        vocab_size=math.ceil(len(fast) / 64) * 64,  # rows past the tokenizer stay unused
        hidden_size=size.hidden, intermediate_size=size.intermediate,
        num_hidden_layers=size.layers, num_attention_heads=size.heads,
        num_key_value_heads=size.kv_heads, max_position_embeddings=2048,
        tie_word_embeddings=True, bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(folder))
    return sum(p.numel() for p in model.parameters())


def reload_check(folder: Path, base: Path, rows: list[dict[str, Any]], batch_size: int,
                 device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """Reload the saved folder: loss on the probe batch, how many weights moved from the base,
    and a short greedy generation."""
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model: Any = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype)
    model.to(device)
    # The probe batch of `train`: the first `batch_size` records (no eval split here).
    batch = answer_only_batch(tokenizer, [(r["messages"][:1], r["messages"][1]["content"])
                                          for r in rows[:batch_size]], 512)
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype,
                                         enabled=dtype != torch.float32):
        loss = float(model(**{k: v.to(device) for k, v in batch.items()}).loss)
    original = AutoModelForCausalLM.from_pretrained(str(base), dtype=dtype).state_dict()
    tuned = model.state_dict()
    moved = sum(1 for k, v in original.items() if not torch.equal(v.to(device), tuned[k]))
    prompt = tokenizer.apply_chat_template([rows[0]["messages"][0]], tokenize=False,
                                           add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").to(device)
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=16, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    text = tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
    return {"reloaded_loss": loss, "weights_moved": moved,
            "generated_tokens": int(out.shape[1] - ids["input_ids"].shape[1]),
            "generated": text, "chat_template_kept": tokenizer.chat_template == CHAT_TEMPLATE}


def run_mode(mode: str, args: argparse.Namespace, size: Size, base: Path, data: Path,
             rows: list[dict[str, Any]]) -> dict[str, Any]:
    lora = LoraSettings(r=16, alpha=32, dropout=0.0) if mode == "lora" else None
    method = "dpo" if mode == "dpo" else "sft"
    learning_rate = {"sft": 1e-3, "lora": 3e-3, "dpo": 1e-4}[mode]
    settings = TrainingSettings(
        data=data, base=str(base), output=args.work_dir / f"out-{mode}", method=method,
        max_steps=args.steps or size.steps, batch_size=size.batch_size,
        learning_rate=learning_rate, warmup_steps=2, max_seq_len=512,
        device=args.device, dtype=args.dtype, seed=0, lora=lora, overwrite=True,
    )
    result = train(settings, progress=not args.no_progress)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    reload = reload_check(result.output, base, rows, size.batch_size, device, dtype)
    if method == "sft":
        # bf16 weights reloaded vs. float32 masters under autocast: close, not bit-equal.
        tolerance = 0.05 if dtype != torch.float32 else 1e-3
        same = abs(reload["reloaded_loss"] - result.probe_loss_after) <= tolerance * max(
            1.0, result.probe_loss_after)
    else:
        # The DPO loss needs the reference model; the saved weights must have moved instead.
        same = reload["weights_moved"] > 0
    return {
        "mode": mode, "method": method, "saved": result.saved, "steps": result.steps,
        "device": result.device, "dtype": result.dtype, "loss_before": result.probe_loss_before,
        "loss_after": result.probe_loss_after, "first_step_loss": result.losses[0],
        "last_step_loss": result.losses[-1], "tokens_per_second": result.tokens_per_second,
        "train_seconds": result.train_seconds, "train_tokens": result.train_tokens,
        "peak_memory_mib": (result.peak_memory_bytes / 2**20
                            if result.peak_memory_bytes is not None else None),
        "reloaded": same and reload["generated_tokens"] > 0 and reload["chat_template_kept"],
        **reload,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu")
    parser.add_argument("--dtype", default="auto", help="auto: bfloat16 on a GPU")
    parser.add_argument("--steps", type=int, help="optimizer steps (default: per size)")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/warriorcoder-gpu-check"))
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--no-lora", action="store_true", help="no SFT run with LoRA")
    parser.add_argument("--no-dpo", action="store_true", help="no DPO run")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()

    size = SIZES[args.size]
    args.work_dir.mkdir(parents=True, exist_ok=True)
    rows = synthetic_records(size.records, seed=0)
    run_dir = args.work_dir / "run"
    (run_dir / "export").mkdir(parents=True, exist_ok=True)
    (run_dir / "export" / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "export" / "preference.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in preference_pairs(rows)))
    base = args.work_dir / "base"
    base.mkdir(exist_ok=True)
    params = build_base(base, size, rows, seed=0)
    device = resolve_device(args.device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{args.size}: {params / 1e6:.1f}M parameters, {len(rows)} records, on {gpu}; "
          f"torch {torch.__version__}")

    modes = ["sft"]
    if not args.no_lora:
        try:
            import peft  # noqa: F401
            modes.append("lora")
        except ImportError:
            print("peft is not installed: LoRA skipped")
    if not args.no_dpo:
        modes.append("dpo")
    runs = []
    for mode in modes:
        t0 = time.perf_counter()
        r = run_mode(mode, args, size, base, run_dir, rows)
        r["wall_seconds"] = time.perf_counter() - t0
        runs.append(r)
        mem = f"{r['peak_memory_mib']:.0f} MiB" if r["peak_memory_mib"] is not None else "n/a"
        print(f"{mode:>4}: {r['steps']} steps, loss {r['loss_before']:.3f} -> "
              f"{r['loss_after']:.3f} (reloaded {r['reloaded_loss']:.3f}), "
              f"{r['tokens_per_second']:.0f} tokens/s, peak GPU memory {mem}, "
              f"saved {r['saved']}, reload ok: {r['reloaded']}")
    # The training module must stay importable without the arena's config stack.
    light = "pydantic" not in sys.modules
    report = {"size": args.size, "parameters": params, "device": gpu,
              "torch": torch.__version__, "runs": runs, "imports_pydantic": not light}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    failed = [r["mode"] for r in runs if not (r["loss_after"] < r["loss_before"] and r["reloaded"])]
    if failed or not light:
        print(f"FAILED: {failed or 'warriorcoder.training imported pydantic'}")
        return 1
    print("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
