"""The `warriorcoder eval` command: `eval humaneval` scores one model on HumanEval."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from pathlib import Path
from typing import Any

from warriorcoder.config import ConfigError, ExpertConfig, SamplingConfig, load_config
from warriorcoder.evaluation.humaneval import (
    DEFAULT_LIMITS,
    DEFAULT_SAMPLING,
    PROMPT_STYLES,
    HumanEvalReport,
    evaluate_humaneval_async,
    load_problems,
)
from warriorcoder.execution import (
    SandboxLimits,
    SandboxMode,
    SandboxUnavailable,
    require_isolation,
)

EPILOG = """examples:
  warriorcoder eval humaneval --model smollm2 --limit 10
  warriorcoder eval humaneval --model smollm2 --batch-size 8 --out runs/eval/smollm2.jsonl
  warriorcoder eval humaneval --config examples/arena.yaml --expert smollm2-greedy \\
      --problems HumanEval/0,HumanEval/12
  warriorcoder eval humaneval --backend openai --endpoint http://127.0.0.1:8000/v1 \\
      --model SmolLM2-135M-Instruct --samples 10 --temperature 0.8 --k 1,10
"""


def add_parser(sub: Any) -> None:
    """Register `eval humaneval` on the top-level sub-parsers of `warriorcoder`."""
    evaluate = sub.add_parser("eval", help="benchmark a model (HumanEval pass@k, run in the "
                              "sandbox)")
    kinds = evaluate.add_subparsers(dest="benchmark", required=True, metavar="BENCHMARK")
    he = kinds.add_parser(
        "humaneval", help="HumanEval pass@k of one model",
        description="Generate completions for HumanEval problems with any backend, run each "
                    "one with the problem's tests in the warriorcoder sandbox, and report "
                    "pass@k (unbiased estimator) per problem and overall.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = he.add_argument_group("model (either --config/--expert or --model)")
    model.add_argument("--config", help="arena YAML whose roster holds the expert")
    model.add_argument("--expert", help="expert id in the --config roster")
    model.add_argument("--model", help="transformers: a HF folder or 'smollm2'; openai: the "
                       "served model name")
    model.add_argument("--backend", choices=("transformers", "openai", "fake"),
                       help="default: openai with --endpoint, else transformers")
    model.add_argument("--endpoint", help="OpenAI-compatible base URL (vLLM: http://HOST:8000/v1)")
    model.add_argument("--api-key-env", help="environment variable holding the API key")
    model.add_argument("--id", help="model id in the report (default: from --model)")
    model.add_argument("--dtype", choices=("bfloat16", "float32", "float16"), default="bfloat16")
    model.add_argument("--device", default="cpu")
    model.add_argument("--batch-size", type=int, default=8, help="transformers batch size")
    model.add_argument("--max-concurrency", type=int, default=8,
                       help="requests in flight (openai)")
    model.add_argument("--system-prompt")
    task = he.add_argument_group("problems and sampling")
    task.add_argument("--problems", help="comma-separated task ids (HumanEval/3 or 3)")
    task.add_argument("--limit", type=int, help="only the first N (selected) problems")
    task.add_argument("--samples", type=int, default=1, help="samples per problem (n)")
    task.add_argument("--temperature", type=float,
                      help=f"default: the expert's, else {DEFAULT_SAMPLING.temperature} (greedy)")
    task.add_argument("--top-p", type=float)
    task.add_argument("--max-tokens", type=int,
                      help=f"default: the expert's, else {DEFAULT_SAMPLING.max_tokens}")
    task.add_argument("--seed", type=int)
    task.add_argument("--k", default="1,10,100",
                      help="pass@k values, those <= --samples are reported (default: %(default)s)")
    task.add_argument("--prompt-style", choices=PROMPT_STYLES, default="chat",
                      help="chat: instruct models get a chat request; completion: the prompt is "
                           "continued as raw text (default: %(default)s)")
    run = he.add_argument_group("execution and output")
    run.add_argument("--exec-timeout", type=float, default=DEFAULT_LIMITS.timeout_s,
                     help="seconds per program (default: %(default)s)")
    run.add_argument("--memory-mb", type=int, default=DEFAULT_LIMITS.memory_mb,
                     help="address-space limit per program (default: %(default)s)")
    run.add_argument("--min-isolation", choices=[m.value for m in SandboxMode],
                     default=SandboxMode.JAIL.value,
                     help="weakest sandbox mode completions may run in; the evaluation refuses "
                          "to start when this machine cannot give it (default: %(default)s)")
    run.add_argument("--workers", type=int, default=2,
                     help="programs run at once (default: %(default)s)")
    run.add_argument("--out", help="per-problem JSONL report (default: "
                     "runs/eval/humaneval-<id>.jsonl; the summary goes beside it)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    he.set_defaults(func=cmd_eval_humaneval)


def _model_id(model: str) -> str:
    name = Path(model.rstrip("/")).name or model
    cleaned = re.sub(r"[^A-Za-z0-9._:-]+", "-", name).strip("-._:")
    return cleaned or "model"


def expert_from_args(args: argparse.Namespace) -> ExpertConfig:
    """The evaluated expert: from the arena config's roster, or built from the flags."""
    if args.config or args.expert:
        if not (args.config and args.expert):
            raise ConfigError("--config and --expert go together")
        config = load_config(args.config)
        for expert in config.roster:
            if expert.id == args.expert:
                return expert
        raise ConfigError(f"--expert {args.expert!r} is not in the roster of {args.config} "
                          f"(experts: {', '.join(e.id for e in config.roster)})")
    if not args.model:
        raise ConfigError("give --model (with --backend/--endpoint) or --config with --expert")
    backend = args.backend or ("openai" if args.endpoint else "transformers")
    fields: dict[str, Any] = {
        "id": args.id or _model_id(args.model), "backend": backend, "model": args.model,
        "endpoint": args.endpoint, "api_key_env": args.api_key_env,
        "system_prompt": args.system_prompt, "dtype": args.dtype, "device": args.device,
        "batch_size": args.batch_size, "max_concurrency": args.max_concurrency,
    }
    try:
        return ExpertConfig(**fields)
    except ValueError as err:  # pydantic's ValidationError: name the flag's field
        raise ConfigError(f"model flags: {err}") from None


def sampling_from_args(args: argparse.Namespace, expert: ExpertConfig) -> SamplingConfig:
    """The expert's decoding (greedy, 512 tokens by default) with the flags given on top."""
    base = expert.sampling or DEFAULT_SAMPLING
    update = {name: value for name, value in (
        ("temperature", args.temperature), ("top_p", args.top_p),
        ("max_tokens", args.max_tokens), ("seed", args.seed)) if value is not None}
    try:
        return SamplingConfig(**{**base.model_dump(), **update})
    except ValueError as err:
        raise ConfigError(f"sampling flags: {err}") from None


def _parse_ks(text: str) -> list[int]:
    try:
        ks = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--k: expected comma-separated integers, got {text!r}") from None
    if not ks or min(ks) < 1:
        raise ConfigError(f"--k: values must be >= 1, got {text!r}")
    return ks


async def _evaluate(expert: ExpertConfig, args: argparse.Namespace,
                    **kwargs: Any) -> HumanEvalReport:
    from warriorcoder.backends import load_backend

    backend = load_backend(expert)
    try:
        return await evaluate_humaneval_async(backend, **kwargs)
    finally:
        await backend.aclose()


def cmd_eval_humaneval(args: argparse.Namespace) -> int:
    """Run `warriorcoder eval humaneval`."""
    expert = expert_from_args(args)
    sampling = sampling_from_args(args, expert)
    ks = _parse_ks(args.k)
    try:
        ids = [t.strip() for t in args.problems.split(",") if t.strip()] if args.problems else None
        problems = load_problems(ids, args.limit)
        limits = SandboxLimits(timeout_s=args.exec_timeout, memory_mb=args.memory_mb,
                               min_isolation=SandboxMode(args.min_isolation))
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:  # before any generation: completions never run weaker than allowed
        require_isolation(limits.min_isolation)
    except SandboxUnavailable as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.samples < 1 or args.workers < 1:
        print("error: --samples and --workers must be >= 1", file=sys.stderr)
        return 2
    chunk = expert.max_concurrency if expert.backend == "openai" else expert.batch_size
    report = asyncio.run(_evaluate(
        expert, args, problems=problems, samples=args.samples, sampling=sampling,
        style=args.prompt_style, ks=ks, limits=limits, workers=args.workers, chunk_size=chunk,
        progress=not args.no_progress))
    out = Path(args.out) if args.out else Path("runs/eval") / f"humaneval-{expert.id}.jsonl"
    report.write_jsonl(out)
    print(report.summary())
    print(f"report: {out} (summary: {out.with_suffix('.summary.json')})")
    return 0
