"""HumanEval pass@1 of a base model before and after fine-tuning on an arena round's SFT data.

1. scores the base model (default: SmolLM2-135M-Instruct) on HumanEval through the transformers
   backend, greedy, chat prompts, every program run in the warriorcoder sandbox;
2. fine-tunes it with `warriorcoder.training.train` on RUN_DIR/export/sft.jsonl;
3. scores the fine-tuned folder the same way (same dtype, decoding, problems);
4. prints pass@1 before and after, the problems that flipped either way, and writes a JSON report.

The arena decontaminates its challenges against HumanEval (word 10-gram overlap), so the
training data does not contain the benchmark's problems.

    .venv/bin/python bench/bench_finetune_humaneval.py --data runs/demo          # all 164
    .venv/bin/python bench/bench_finetune_humaneval.py --data runs/demo --limit 5 --max-steps 2

A few dozen SFT records from a 135M model's own arena move pass@1 by a problem or two either
way at most; the difference is only meaningful against its spread, so the report lists which
problems flipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from warriorcoder.backends.transformers import TransformersBackend
from warriorcoder.config import ExpertConfig, SamplingConfig
from warriorcoder.evaluation.humaneval import (
    HumanEvalProblem,
    HumanEvalReport,
    evaluate_humaneval_async,
    load_problems,
)
from warriorcoder.training import (
    LoraSettings,
    TrainingError,
    TrainingSettings,
    find_data_file,
    resolve_base,
    train,
)


async def score(expert: ExpertConfig, problems: list[HumanEvalProblem],
                sampling: SamplingConfig, progress: bool) -> HumanEvalReport:
    backend = TransformersBackend(expert)
    try:
        return await evaluate_humaneval_async(
            backend, problems, samples=1, sampling=sampling, style="chat", ks=(1,),
            chunk_size=expert.batch_size, progress=progress)
    finally:
        await backend.aclose()


def solved(report: HumanEvalReport) -> set[str]:
    return {p.task_id for p in report.problems if p.correct > 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="arena run folder (or its sft.jsonl)")
    parser.add_argument("--base", default="smollm2", help="'smollm2' or a HF model folder")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/bench-finetune"),
                        help="fine-tuned model and reports go here (default: %(default)s)")
    evaluation = parser.add_argument_group("HumanEval")
    evaluation.add_argument("--limit", type=int, help="only the first N problems (default: 164)")
    evaluation.add_argument("--problems", help="comma-separated task ids")
    evaluation.add_argument("--max-tokens", type=int, default=512)
    evaluation.add_argument("--eval-dtype", choices=("bfloat16", "float32"), default="bfloat16")
    evaluation.add_argument("--eval-device", default="cpu")
    evaluation.add_argument("--eval-batch-size", type=int, default=8)
    training = parser.add_argument_group("fine-tuning (see `warriorcoder train --help`)")
    training.add_argument("--epochs", type=int, default=2)
    training.add_argument("--max-steps", type=int)
    training.add_argument("--lr", type=float, default=1e-5)
    training.add_argument("--batch-size", type=int, default=4)
    training.add_argument("--grad-accum", type=int, default=1)
    training.add_argument("--max-seq-len", type=int, default=1024)
    training.add_argument("--device", default="auto")
    training.add_argument("--dtype", default="auto")
    training.add_argument("--lora", action="store_true")
    training.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()

    progress = not args.no_progress
    try:
        sft = find_data_file(args.data, "sft")
        base = resolve_base(args.base)
    except TrainingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    ids = [t.strip() for t in args.problems.split(",")] if args.problems else None
    problems = load_problems(ids, args.limit)
    sampling = SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=args.max_tokens)

    def expert(expert_id: str, model: Path) -> ExpertConfig:
        return ExpertConfig(id=expert_id, backend="transformers", model=str(model),
                            dtype=args.eval_dtype, device=args.eval_device,
                            batch_size=args.eval_batch_size)

    args.work_dir.mkdir(parents=True, exist_ok=True)
    print(f"HumanEval: {len(problems)} problems, greedy, {args.max_tokens} new tokens max, "
          f"{args.eval_dtype} on {args.eval_device}")
    before = asyncio.run(score(expert("base", base), problems, sampling, progress))
    before.write_jsonl(args.work_dir / "humaneval-base.jsonl")

    t0 = time.perf_counter()
    result = train(TrainingSettings(
        data=sft, base=args.base, output=args.work_dir / "model", epochs=args.epochs,
        max_steps=args.max_steps, learning_rate=args.lr, batch_size=args.batch_size,
        grad_accum=args.grad_accum, max_seq_len=args.max_seq_len, seed=args.seed,
        dtype=args.dtype, device=args.device, overwrite=True,
        lora=LoraSettings() if args.lora else None,
    ), progress=progress)
    train_wall = time.perf_counter() - t0

    after = asyncio.run(score(expert("fine-tuned", result.output), problems, sampling,
                              progress))
    after.write_jsonl(args.work_dir / "humaneval-fine-tuned.jsonl")

    gained = sorted(solved(after) - solved(before))
    lost = sorted(solved(before) - solved(after))
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "problems": len(problems),
        "sft_file": str(sft),
        "training": {"steps": result.steps, "examples": result.examples,
                     "loss_first_batch": [result.probe_loss_before, result.probe_loss_after],
                     "device": result.device, "dtype": result.dtype,
                     "wall_seconds": round(train_wall, 1), "lora": args.lora,
                     "learning_rate": args.lr},
        "pass@1": {"base": before.pass_at_k.get(1), "fine-tuned": after.pass_at_k.get(1)},
        "solved": {"base": len(solved(before)), "fine-tuned": len(solved(after))},
        "gained": gained,
        "lost": lost,
    }
    (args.work_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(f"| model | pass@1 | solved |\n|---|---:|---:|\n"
          f"| base ({args.base}) | {100 * before.pass_at_k[1]:.1f}% | "
          f"{len(solved(before))}/{len(problems)} |\n"
          f"| fine-tuned ({result.steps} steps on {result.examples} records) | "
          f"{100 * after.pass_at_k[1]:.1f}% | {len(solved(after))}/{len(problems)} |")
    print(f"gained: {gained or 'none'}; lost: {lost or 'none'}")
    print(f"training loss on the first batch {result.probe_loss_before:.4f} -> "
          f"{result.probe_loss_after:.4f}; report: {args.work_dir / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
