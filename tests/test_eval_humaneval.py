"""HumanEval evaluation: known answers give known pass@k; programs run in the sandbox."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from warriorcoder.backends.base import (
    ChatRequest,
    CompletionRequest,
    GenerationError,
    GenerationOutcome,
    GenerationResult,
    ModelBackend,
)
from warriorcoder.cli import main
from warriorcoder.config import SamplingConfig
from warriorcoder.evaluation import (
    HumanEvalProblem,
    evaluate_humaneval,
    load_problems,
    pass_at_k,
)
from warriorcoder.evaluation.humaneval import (
    Completion,
    ProblemResult,
    SampleResult,
    build_program,
    execute_samples,
    mean_pass_at_k,
)

REPO = Path(__file__).resolve().parents[1]
ALL = load_problems()
Answer = Callable[[HumanEvalProblem, int], str | None]  # None: a generation error


class ScriptedBackend(ModelBackend):
    """Answers each problem with text from `answer(problem, seed)`."""

    def __init__(self, answer: Answer) -> None:
        self.model_id = "scripted"
        self.answer = answer
        self.requests = 0

    def chat_template(self) -> str:
        return ""

    def _reply(self, prompt_text: str, sampling: SamplingConfig) -> GenerationOutcome:
        self.requests += 1
        # The longest matching prompt: some prompts are prefixes of others' text.
        problem = max((p for p in ALL if p.prompt in prompt_text), key=lambda p: len(p.prompt))
        text = self.answer(problem, sampling.seed)
        if text is None:
            return GenerationError(self.model_id, "injected failure")
        return GenerationResult(self.model_id, text, 0, len(text.split()), 0.0, "stop")

    async def chat(self, requests: Sequence[ChatRequest]) -> list[GenerationOutcome]:
        return [self._reply(r.messages[-1].content, r.sampling) for r in requests]

    async def complete(self, requests: Sequence[CompletionRequest]) -> list[GenerationOutcome]:
        return [self._reply(r.prompt, r.sampling) for r in requests]


def canonical_chat(problem: HumanEvalProblem, seed: int) -> str:
    return (f"Here is the solution.\n\n```python\n{problem.prompt}{problem.canonical_solution}"
            "```\n\nIt handles every case.")


def empty_body_chat(problem: HumanEvalProblem, seed: int) -> str:
    return f"```python\n{problem.prompt}    pass\n```"


def test_all_164_canonical_solutions_pass_in_the_sandbox() -> None:
    report = evaluate_humaneval(ScriptedBackend(canonical_chat), progress=False, workers=2)
    assert len(report.problems) == 164
    failed = [(p.task_id, p.samples[0].reason) for p in report.problems if p.correct != 1]
    assert failed == []
    assert report.pass_at_k == {1: 1.0}
    assert {s.source for p in report.problems for s in p.samples} == {"extracted"}
    assert report.status_counts() == {"passed": 164}


def test_empty_bodies_score_zero() -> None:
    report = evaluate_humaneval(ScriptedBackend(empty_body_chat), ALL[:40], progress=False)
    assert report.pass_at_k == {1: 0.0}
    assert all(s.status in {"failed", "timeout"} for p in report.problems for s in p.samples)


def test_completion_style_continues_the_prompt() -> None:
    backend = ScriptedBackend(lambda p, seed: p.canonical_solution)
    report = evaluate_humaneval(backend, ALL[:15], style="completion", progress=False)
    assert report.pass_at_k == {1: 1.0}
    assert report.prompt_style == "completion"


def test_answer_with_only_the_body_falls_back_to_prompt_plus_completion() -> None:
    backend = ScriptedBackend(lambda p, seed: f"```python\n{p.canonical_solution}```")
    report = evaluate_humaneval(backend, ALL[:5], progress=False)
    assert report.pass_at_k == {1: 1.0}
    assert {s.source for p in report.problems for s in p.samples} == {"prompt+completion"}


def test_answer_may_use_helpers_defined_in_the_prompt() -> None:
    # HumanEval/38's decode_cyclic calls encode_cyclic, which only the prompt defines.
    problem = next(p for p in ALL if p.task_id == "HumanEval/38")
    answer = f"```python\ndef decode_cyclic(s: str):\n{problem.canonical_solution}```"
    _, source = build_program(problem, answer, "chat")
    assert source == "extracted"
    [result] = execute_samples([problem], [[Completion(answer)]])
    assert result.samples[0].passed, result.samples[0].reason


def test_generation_errors_count_as_failed_samples() -> None:
    backend = ScriptedBackend(
        lambda p, seed: None if p.task_id == "HumanEval/1" else canonical_chat(p, seed))
    report = evaluate_humaneval(backend, ALL[:3], progress=False)
    statuses = [p.samples[0].status for p in report.problems]
    assert statuses == ["passed", "generation-error", "passed"]
    assert report.pass_at_k[1] == pytest.approx(2 / 3)
    assert report.problems[1].samples[0].reason == "injected failure"


def test_samples_use_distinct_seeds_and_give_pass_at_k() -> None:
    # Even seeds answer correctly, odd seeds with an empty body: 2 of 4 samples pass.
    backend = ScriptedBackend(
        lambda p, seed: canonical_chat(p, seed) if seed % 2 == 0 else empty_body_chat(p, seed))
    sampling = SamplingConfig(temperature=0.8, top_p=0.95, max_tokens=64, seed=10)
    report = evaluate_humaneval(backend, ALL[:2], samples=4, sampling=sampling,
                                ks=(1, 2, 4, 10), progress=False)
    assert backend.requests == 8
    assert [p.correct for p in report.problems] == [2, 2]
    assert report.pass_at_k == pytest.approx({1: 0.5, 2: 5 / 6, 4: 1.0})


@pytest.mark.parametrize(("n", "c", "k", "expected"), [
    (1, 1, 1, 1.0),
    (1, 0, 1, 0.0),
    (5, 2, 1, 0.4),
    (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
    (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
    (4, 3, 2, 1.0),  # n - c < k: every pair holds a correct sample
    (200, 0, 100, 0.0),
    (200, 200, 100, 1.0),
])
def test_pass_at_k_hand_computed(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected)


@pytest.mark.parametrize(("n", "c", "k"), [(5, 6, 1), (5, 2, 0), (5, 2, 6), (3, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="pass@k needs"):
        pass_at_k(n, c, k)


def test_mean_pass_at_k_skips_k_above_the_sample_count() -> None:
    def problem(correct: list[bool]) -> ProblemResult:
        samples = tuple(SampleResult(i, "passed" if ok else "failed", "", "extracted", "", "",
                                     "stop", 0, 0.0) for i, ok in enumerate(correct))
        return ProblemResult("HumanEval/0", "f", samples)

    results = [problem([True, False, False]), problem([False, False, False])]
    assert mean_pass_at_k(results, (1, 2, 3, 10)) == pytest.approx(
        {1: (1 / 3 + 0) / 2, 2: (2 / 3 + 0) / 2, 3: 0.5})


def test_subset_selection() -> None:
    chosen = load_problems(["HumanEval/3", "5", "HumanEval/3"])
    assert [p.task_id for p in chosen] == ["HumanEval/3", "HumanEval/5"]
    assert [p.task_id for p in load_problems(limit=3)] == [f"HumanEval/{i}" for i in range(3)]
    assert [p.task_id for p in load_problems(["7", "2", "9"], limit=2)] == [
        "HumanEval/7", "HumanEval/2"]
    with pytest.raises(ValueError, match=r"HumanEval/999"):
        load_problems(["HumanEval/1", "999"])
    with pytest.raises(ValueError, match="limit"):
        load_problems(limit=0)


def test_report_file(tmp_path: Path) -> None:
    backend = ScriptedBackend(
        lambda p, seed: canonical_chat(p, seed) if p.task_id != "HumanEval/2" else "no idea")
    report = evaluate_humaneval(backend, ALL[:3], progress=False)
    path = report.write_jsonl(tmp_path / "out" / "he.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["task_id"] for r in records] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert [r["correct"] for r in records] == [1, 1, 0]
    failed = records[2]["samples"][0]
    assert failed["status"] == "failed" and failed["completion"] == "no idea"
    assert failed["reason"]
    summary = json.loads((tmp_path / "out" / "he.summary.json").read_text())
    assert summary["pass_at_k"] == {"pass@1": pytest.approx(2 / 3)}
    assert summary["problems"] == 3
    assert "pass@1: 0.6667" in report.summary()


def test_cli_runs_a_fake_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fake.jsonl"
    code = main(["eval", "humaneval", "--backend", "fake", "--model", "fake",
                 "--problems", "HumanEval/0,4", "--out", str(out), "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "pass@1: 0.0000" in printed  # the fake model's canned answers solve nothing
    assert [json.loads(line)["task_id"] for line in out.read_text().splitlines()] == [
        "HumanEval/0", "HumanEval/4"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "fake", "--backend", "fake", "--problems", "HumanEval/500"],
     "unknown HumanEval task id"),
    (["--config", str(REPO / "examples" / "arena.yaml"), "--expert", "nobody"],
     "is not in the roster"),
    (["--backend", "fake"], "give --model"),
    (["--model", "fake", "--backend", "fake", "--temperature", "-1"], "temperature"),
])
def test_cli_reports_bad_input(argv: list[str], message: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "humaneval", "--no-progress", *argv]) == 2
    assert message in capsys.readouterr().err
