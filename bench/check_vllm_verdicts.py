"""Check: the judge stage's verdict modes against a real vLLM server.

Runs the real Judge stage (three openai experts, all served by the one model at `--endpoint`)
on a few battles of a right and a wrong answer, once per judge setting: free text (explain and
prefill), json_schema, choice and guided_choice, with soft votes where they apply. For each
setting (also with judge.labels arena_hard) it prints how many judgments held a valid verdict,
how many were strong, how many carry soft probabilities, and the most common error (an HTTP 400
from a request field the server refuses shows there). This is how docs/judging.md's vLLM results
were measured.

    python -m vllm.entrypoints.openai.api_server --model DIR --port 8011 ... &
    .venv/bin/python bench/check_vllm_verdicts.py --endpoint http://127.0.0.1:8011/v1 \\
        --model DIR
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from warriorcoder.backends import load_backend
from warriorcoder.config import parse_config
from warriorcoder.stages.judge import Judge
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

TASKS = [
    ("Write a Python function add(a, b) that returns the sum of a and b.",
     "def add(a, b):\n    return a + b", "def add(a, b):\n    return a - b"),
    ("Write a Python function is_even(n) that returns True when n is even.",
     "def is_even(n):\n    return n % 2 == 0", "def is_even(n):\n    return n % 2 == 1"),
    ("Write a Python function reverse(s) that returns the string s reversed.",
     "def reverse(s):\n    return s[::-1]", "def reverse(s):\n    return s"),
    ("Write a Python function first(xs) that returns the first element of a list.",
     "def first(xs):\n    return xs[0]", "def first(xs):\n    return xs[-1]"),
]

SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("explain, free text", {"verdict_mode": "explain"}),
    ("prefill, free text", {"verdict_mode": "prefill"}),
    ("explain, json_schema", {"verdict_mode": "explain", "structured_output": "json_schema"}),
    ("explain, choice + soft votes",
     {"verdict_mode": "explain", "structured_output": "choice", "soft_votes": True}),
    ("prefill, choice + soft votes",
     {"verdict_mode": "prefill", "structured_output": "choice", "soft_votes": True}),
    ("prefill, guided_choice + soft votes",
     {"verdict_mode": "prefill", "structured_output": "guided_choice", "soft_votes": True}),
    ("arena_hard labels, explain, free text", {"labels": "arena_hard"}),
    ("arena_hard labels, explain, json_schema",
     {"labels": "arena_hard", "structured_output": "json_schema"}),
    ("arena_hard labels, prefill, choice",
     {"labels": "arena_hard", "verdict_mode": "prefill", "structured_output": "choice"}),
]


def pairs() -> list[arena_pb2.ResponsePair]:
    out = []
    for n, (instruction, right, wrong) in enumerate(TASKS):
        # The right answer is model_a in even battles and model_b in odd ones.
        a, b = (right, wrong) if n % 2 == 0 else (wrong, right)
        p = arena_pb2.ResponsePair(battle_id=f"b{n}", challenge_id=f"c{n}", round_id="r1",
                                   instruction=instruction, model_a="alpha", model_b="beta",
                                   judges=["gamma", "delta"])
        p.response_a.model_id, p.response_b.model_id = "alpha", "beta"
        p.response_a.generation.text, p.response_b.generation.text = a, b
        out.append(p)
    return out


async def judge_once(endpoint: str, model: str, judge: dict[str, Any],
                     store_dir: Path) -> list[arena_pb2.Judgment]:
    config = parse_config({
        "round_id": "r1",
        "roster": [{"id": n, "backend": "openai", "model": model, "endpoint": endpoint,
                    "chat_template": {"builtin": "chatml"}, "max_retries": 1, "timeout_s": 120}
                   for n in ("alpha", "beta", "gamma", "delta")],
        "selection": {"tournament": "none"},
        "judge": {"max_tokens": 200, "retries_on_invalid": 0, **judge},
    })
    backends = {e.id: load_backend(e) for e in config.roster}
    stage = Judge(config, backends, ArenaStore.open_embedded(store_dir / "arena.db"))
    items = await stage.handle(pairs())
    for backend in backends.values():
        await backend.aclose()
    return [j for item in items for j in item.judgments]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--model", required=True, help="the model name the server serves")
    args = parser.parse_args()
    print("| setting | judgments | valid verdicts | strong | errors (first) | with soft "
          "probabilities |")
    print("|---|---|---|---|---|---|")
    for name, judge in SETTINGS:
        with tempfile.TemporaryDirectory() as tmp:
            judgments = asyncio.run(judge_once(args.endpoint, args.model, judge, Path(tmp)))
        valid = sum(j.position_verdict != arena_pb2.VERDICT_INVALID for j in judgments)
        soft = sum(j.HasField("soft") for j in judgments)
        errors = Counter(j.error[:90] for j in judgments if j.error)
        first = errors.most_common(1)[0][0] if errors else ""
        strong = sum(j.strong for j in judgments)
        print(f"| {name} | {len(judgments)} | {valid} | {strong} | {sum(errors.values())} "
              f"{first!r} | {soft} |")


if __name__ == "__main__":
    main()
