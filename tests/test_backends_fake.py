"""FakeBackend: deterministic texts, verdict modes and failure injection."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest

from warriorcoder.backends import load_backend
from warriorcoder.backends.base import (
    BackendError,
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    GenerationError,
    GenerationOutcome,
    GenerationResult,
    WrappedBackend,
)
from warriorcoder.backends.chat_templates import prequery_prefix
from warriorcoder.backends.fake import FakeBackend, parse_fake_flags
from warriorcoder.config import ChatTemplateConfig, ExpertConfig, SamplingConfig


def fake(model: str = "fake", expert_id: str = "f1", **kw: Any) -> FakeBackend:
    backend = load_backend(ExpertConfig(id=expert_id, backend="fake", model=model, **kw))
    assert isinstance(backend, FakeBackend)
    return backend


def chat(backend: FakeBackend, *texts: str, seed: int = 0, max_tokens: int = 512) -> list[Any]:
    sampling = SamplingConfig(seed=seed, max_tokens=max_tokens)
    reqs = [ChatRequest((ChatMessage("user", t),), sampling) for t in texts]
    return asyncio.run(backend.chat(reqs))


def judge_prompt(answer_a: str, answer_b: str) -> str:
    return (
        "Compare the two answers. Output [[A]] if A is better, [[B]] if B is better, [[C]] "
        "for a tie.\n[The Start of Assistant A's Answer]\n" + answer_a +
        "\n[The End of Assistant A's Answer]\n[The Start of Assistant B's Answer]\n" + answer_b +
        "\n[The End of Assistant B's Answer]"
    )


def verdict(text: str) -> str | None:
    found = re.findall(r"\[\[([ABC])\]\]", text)
    return found[-1] if found else None


def test_importing_backends_does_not_import_torch() -> None:
    # A fresh interpreter: this process may already have torch from other tests.
    code = (
        "import sys, asyncio\n"
        "import warriorcoder, warriorcoder.backends.openai\n"
        "from warriorcoder.backends import load_backend\n"
        "from warriorcoder.config import ExpertConfig\n"
        "b = load_backend(ExpertConfig(id='x', backend='fake', model='fake'))\n"
        "b.end_of_turn()\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "False"


def test_transformers_backend_without_torch_is_a_backend_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Simulates a machine without torch: `import torch` fails, and the backend module is
    # imported afresh (the original comes back after the test).
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "warriorcoder.backends.transformers", raising=False)
    expert = ExpertConfig(id="local", backend="transformers", model="smollm2")
    with pytest.raises(BackendError) as caught:
        load_backend(expert)
    message = str(caught.value)
    assert message.startswith("expert 'local': backend 'transformers' needs torch and ")
    assert "torch is not installed" in message
    assert "pip install torch==2.13.0 && pip install -e '.[local]'" in message


def test_an_import_error_of_our_own_code_is_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    # Only a missing third-party package becomes a BackendError; a broken import of ours stays.
    monkeypatch.setitem(sys.modules, "warriorcoder.backends.chat_templates", None)
    monkeypatch.delitem(sys.modules, "warriorcoder.backends.transformers", raising=False)
    with pytest.raises(ImportError) as caught:
        load_backend(ExpertConfig(id="local", backend="transformers", model="smollm2"))
    assert not isinstance(caught.value, BackendError)
    assert caught.value.name == "warriorcoder.backends.chat_templates"


def test_chat_answer_is_deterministic_with_code_block() -> None:
    a = chat(fake(), "Sort a list", seed=1)[0]
    assert isinstance(a, GenerationResult)
    assert "```python\n" in a.text and a.text.count("```") == 2
    assert a.finish_reason == "stop"
    assert a.completion_tokens == len(a.text.split())
    assert a.prompt_tokens == len(["user:", "Sort", "a", "list"])
    assert chat(fake(), "Sort a list", seed=1)[0].text == a.text


def test_answer_code_is_valid_python() -> None:
    for seed in range(20):
        text = chat(fake(), "task", seed=seed)[0].text
        code = text.split("```python\n", 1)[1].split("```", 1)[0]
        compile(code, "<fake answer>", "exec")


def test_text_depends_on_expert_content_and_seed() -> None:
    base = {chat(fake(expert_id="x"), f"task {i}")[0].text for i in range(10)}
    assert len(base) > 3
    by_expert = {chat(fake(expert_id=e), "task")[0].text for e in ("x", "y", "z", "w", "v")}
    assert len(by_expert) > 1
    by_seed = {chat(fake(), "task", seed=s)[0].text for s in range(10)}
    assert len(by_seed) > 3


def test_complete_mines_distinct_natural_instructions() -> None:
    backend = fake()
    prefix = prequery_prefix(backend.chat_template())
    sampling = [SamplingConfig(seed=s, temperature=1.0, max_tokens=256) for s in range(50)]
    outs = asyncio.run(backend.complete(
        [CompletionRequest(prefix, s, stop=backend.end_of_turn()) for s in sampling]
    ))
    texts = [o.text for o in outs]
    assert len(set(texts)) == 50
    for o in outs:
        assert isinstance(o, GenerationResult)
        assert o.finish_reason == "stop"
        assert o.text.endswith(".")
        assert "Python" in o.text or "python" in o.text
        assert "<|im_end|>" not in o.text


def test_max_tokens_truncates_with_length() -> None:
    [out] = chat(fake(), "task", max_tokens=5)
    assert out.finish_reason == "length"
    assert out.completion_tokens == 5
    assert len(out.text.split()) == 5


@pytest.mark.parametrize(
    ("model", "expected"),
    [("fake", "A"), ("fake:prefer-first", "A"), ("fake:prefer-second", "B"), ("fake:tie", "C"),
     ("some-label", "A")],
)
def test_fixed_verdicts(model: str, expected: str) -> None:
    [out] = chat(fake(model), judge_prompt("short", "a much longer answer"))
    assert verdict(out.text) == expected


def test_prefer_longer_reads_both_answers() -> None:
    backend = fake("fake:prefer-longer")
    assert verdict(chat(backend, judge_prompt("short", "much longer answer"))[0].text) == "B"
    assert verdict(chat(backend, judge_prompt("much longer answer", "short"))[0].text) == "A"
    assert verdict(chat(backend, judge_prompt("same", "same"))[0].text) == "C"
    assert verdict(chat(backend, "Pick [[A]] or [[B]], no answers given")[0].text) == "C"


def test_random_verdicts_are_deterministic_and_varied() -> None:
    backend = fake("fake:random")
    prompts = [judge_prompt(f"a{i}", f"b{i}") for i in range(30)]
    first = [verdict(o.text) for o in chat(backend, *prompts)]
    assert first == [verdict(o.text) for o in chat(backend, *prompts)]
    assert set(first) == {"A", "B", "C"}


def test_garbage_verdict_has_no_marker() -> None:
    [out] = chat(fake("fake:garbage"), judge_prompt("a", "b"))
    assert isinstance(out, GenerationResult)
    assert verdict(out.text) is None


def test_fail_returns_errors_in_every_slot() -> None:
    backend = fake("fake:fail")
    outs = chat(backend, "a", "b")
    assert all(isinstance(o, GenerationError) and "fake:fail" in o.reason for o in outs)
    [err] = asyncio.run(backend.complete([CompletionRequest("p", SamplingConfig())]))
    assert isinstance(err, GenerationError)


def test_flaky_fails_some_requests_deterministically() -> None:
    backend = fake("fake:flaky+prefer-longer")
    outs = chat(backend, *[f"task {i}" for i in range(40)])
    failed = [isinstance(o, GenerationError) for o in outs]
    assert 0 < sum(failed) < 40
    assert failed == [isinstance(o, GenerationError)
                      for o in chat(backend, *[f"task {i}" for i in range(40)])]


def test_unknown_or_conflicting_flags_are_rejected() -> None:
    with pytest.raises(BackendError, match=r"unknown flag\(s\) \['prefer-shorter'\]"):
        fake("fake:prefer-shorter")
    with pytest.raises(BackendError, match="choose one verdict flag"):
        parse_fake_flags("fake:tie+random")


def test_template_accessors() -> None:
    backend = fake()
    assert backend.end_of_turn() == ("<|im_end|>",)
    assert backend.bos_token() == ""
    llama = fake(chat_template=ChatTemplateConfig(builtin="llama3", bos_token="<B>"))
    assert llama.end_of_turn() == ("<|eot_id|>",)
    assert prequery_prefix(llama.chat_template(), bos_token=llama.bos_token()).startswith("<B>")


@pytest.mark.parametrize(
    ("model", "label"),
    [("fake:prefer-first", "A>B"), ("fake:prefer-second", "B>A"), ("fake:tie", "A=B")],
)
def test_label_prompts_get_label_verdicts(model: str, label: str) -> None:
    from warriorcoder.arena.judging import verdict_format

    system = verdict_format("arena_hard").system_prompt
    sampling = SamplingConfig(seed=0, max_tokens=512)
    request = ChatRequest(
        (ChatMessage("system", system), ChatMessage("user", "[User Request]\nx")), sampling
    )
    [out] = asyncio.run(fake(model).chat([request]))
    assert isinstance(out, GenerationResult)
    assert out.text.endswith(f"[[{label}]]")
    [done] = asyncio.run(fake(model).complete([CompletionRequest(system + "\n[[", sampling)]))
    assert isinstance(done, GenerationResult)
    assert done.text == f"{label}]]"


def test_a_wrapped_backend_passes_every_call_on_unless_it_overrides_it() -> None:
    class Closing(FakeBackend):
        closed = False

        async def aclose(self) -> None:
            self.closed = True

    class CountingChats(WrappedBackend):
        chats = 0

        async def chat(self, requests: Sequence[ChatRequest]) -> list[GenerationOutcome]:
            self.chats += len(requests)
            return await super().chat(requests)

    config = ExpertConfig(id="w1", backend="fake", model="fake",
                          chat_template=ChatTemplateConfig(builtin="llama3", bos_token="<B>"))
    inner, twin = Closing(config), FakeBackend(config)
    wrapped = CountingChats(inner)
    assert wrapped.model_id == "w1"
    assert wrapped.chat_template() == twin.chat_template()
    assert (wrapped.bos_token(), wrapped.end_of_turn()) == ("<B>", twin.end_of_turn())
    sampling = SamplingConfig(seed=3, max_tokens=64)
    chats = [ChatRequest((ChatMessage("user", "Write a sort."),), sampling)]
    completions = [CompletionRequest("<B>Write", sampling)]


    def texts(outcomes: list[GenerationOutcome]) -> list[str]:
        return [o.text for o in outcomes if isinstance(o, GenerationResult)]

    assert texts(asyncio.run(wrapped.chat(chats))) == texts(asyncio.run(twin.chat(chats)))
    assert (texts(asyncio.run(wrapped.complete(completions)))
            == texts(asyncio.run(twin.complete(completions))))
    assert (wrapped.chats, inner.calls) == (1, 2)
    asyncio.run(wrapped.aclose())
    assert inner.closed
