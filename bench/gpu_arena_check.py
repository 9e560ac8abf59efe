"""The whole loop on a GPU with the in-process transformers backend: an embedded arena round,
fine-tuning on its export, and a second round in which the fine-tuned model battles.

The experts are a small random-weight Llama built in code (bench/gpu_train_check.py), because no
pretrained model can be carried to a GPU machine without a model hub; what this checks is the
code path (generation batched on the device, bf16, the store, judging, rating, export, training,
re-entry), not answer quality. Two transformers experts battle; a third, fake expert
(`fake:prefer-longer`) is the uninvolved judge that writes parseable verdicts. Random-weight
judges write no verdict, so battles they judge alone fail with that reason, as they should.

    python bench/gpu_arena_check.py --json /tmp/gpu_arena.json          # cuda when available
    python bench/gpu_arena_check.py --device cpu --size tiny            # quick check on a CPU
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

# Run from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from gpu_train_check import SIZES, build_base, synthetic_records

from warriorcoder.config import parse_config
from warriorcoder.stages.embedded import run_arena_sync
from warriorcoder.training import TrainingSettings, train

USER_INSTRUCTIONS = [
    "Write a Python function that returns the sum of the squares of a list of integers.",
    "Write a Python function that reverses the words of a sentence.",
    "Write a Python function that checks whether a string is a palindrome.",
    "Write a Python function that returns the n-th Fibonacci number.",
]


def arena_config(round_id: str, experts: list[dict[str, Any]], per_setting: int
                 ) -> dict[str, Any]:
    return {
        "round_id": round_id,
        "roster": [*experts, {"id": "referee", "backend": "fake", "model": "fake:prefer-longer"}],
        "challenger": {
            "per_setting": per_setting,
            "sampling_grid": [{"temperature": 1.0, "top_p": 1.0, "max_tokens": 48}],
            "user_instructions": USER_INSTRUCTIONS,
        },
        "responder": {"sampling": {"temperature": 0.0, "top_p": 1.0, "max_tokens": 64}},
        "judge": {"verdict_mode": "explain", "max_tokens": 24, "retries_on_invalid": 0},
        "rating": {"bootstrap_rounds": 20},
    }


def expert(expert_id: str, folder: Path, device: str, dtype: str, temperature: float
           ) -> dict[str, Any]:
    return {"id": expert_id, "backend": "transformers", "model": str(folder), "device": device,
            "dtype": dtype, "batch_size": 16,
            "sampling": {"temperature": temperature, "top_p": 1.0, "max_tokens": 64}}


def run_round(config: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    result = run_arena_sync(parse_config(config, "gpu-arena-check"), run_dir)
    board = result.leaderboard
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        "challenges": result.challenges,
        "rated_battles": board.battles,
        "failed_battles": board.failed_battles,
        "sft_records": result.export.sft_records,
        "preference_pairs": result.export.preference_records,
        "ratings": {r.model_id: round(r.elo, 1) for r in board.ratings},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cpu")
    parser.add_argument("--per-setting", type=int, default=8, help="mined per attacker")
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/warriorcoder-gpu-arena"))
    parser.add_argument("--json", type=Path, help="also write the report here")
    args = parser.parse_args()
    device = args.device if args.device != "auto" else (
        "cuda" if torch.cuda.is_available() else "cpu")
    dtype = "bfloat16"
    size = SIZES[args.size]
    work = args.work_dir
    base = work / "base"
    report: dict[str, Any] = {"device": device, "dtype": dtype, "size": args.size,
                              "gpu": torch.cuda.get_device_name() if device == "cuda" else None}
    report["parameters"] = build_base(base, size, synthetic_records(size.records, 0), seed=0)

    experts = [expert("expert-a", base, device, dtype, 1.0),
               expert("expert-b", base, device, dtype, 0.9)]
    report["round_1"] = run_round(arena_config("gpu-1", experts, args.per_setting),
                                  work / "round-1")
    print("round 1:", json.dumps(report["round_1"]), flush=True)

    tuned = work / "tuned"
    trained = train(TrainingSettings(data=work / "round-1", base=str(base), output=tuned,
                                     max_steps=args.train_steps, batch_size=4,
                                     learning_rate=1e-4, overwrite=True), progress=False)
    report["training"] = {"steps": trained.steps, "loss_before": trained.probe_loss_before,
                          "loss_after": trained.probe_loss_after, "device": trained.device,
                          "tokens_per_second": trained.tokens_per_second}
    print("training:", json.dumps(report["training"]), flush=True)

    experts = [expert("expert-a", base, device, dtype, 1.0),
               expert("expert-tuned", tuned, device, dtype, 1.0)]
    report["round_2"] = run_round(arena_config("gpu-2", experts, args.per_setting),
                                  work / "round-2")
    print("round 2:", json.dumps(report["round_2"]), flush=True)
    if device == "cuda":
        report["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    ok = (report["round_1"]["rated_battles"] > 0 and report["round_1"]["sft_records"] > 0
          and "expert-tuned" in report["round_2"]["ratings"])
    report["ok"] = ok
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
