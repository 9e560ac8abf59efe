"""Benchmarks of the roster's models: HumanEval pass@k with completions run in the sandbox."""

from warriorcoder.evaluation.humaneval import (
    HumanEvalProblem,
    HumanEvalReport,
    ProblemResult,
    SampleResult,
    evaluate_humaneval,
    evaluate_humaneval_async,
    load_problems,
    pass_at_k,
)

__all__ = [
    "HumanEvalProblem",
    "HumanEvalReport",
    "ProblemResult",
    "SampleResult",
    "evaluate_humaneval",
    "evaluate_humaneval_async",
    "load_problems",
    "pass_at_k",
]
