"""OpenAIBackend against a real HTTP server on 127.0.0.1 (no mocking of httpx)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_openai_server import FakeOpenAIServer, Reply, free_port

from warriorcoder.arena.judging import judge_votes
from warriorcoder.backends import load_backend
from warriorcoder.backends.base import (
    TOP_LOGPROB_POSITIONS,
    BackendError,
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    GenerationError,
    GenerationResult,
)
from warriorcoder.backends.chat_templates import BUILTIN_TEMPLATES, prequery_prefix
from warriorcoder.backends.openai import (
    OpenAIBackend,
    _top_logprobs,
    choice_constraint,
    json_schema_format,
)
from warriorcoder.config import (
    ArenaConfig,
    ChatTemplateConfig,
    ConfigError,
    ExpertConfig,
    SamplingConfig,
    parse_config,
)
from warriorcoder.stages.judge import Judge
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

KEY_ENV = "WARRIORCODER_TEST_API_KEY"
SECRET = "sk-test-secret-7f1e"


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as s:
        yield s


def make_expert(endpoint: str, **overrides: Any) -> ExpertConfig:
    fields: dict[str, Any] = {
        "id": "remote-1",
        "backend": "openai",
        "model": "served-model",
        "endpoint": endpoint,
        "chat_template": ChatTemplateConfig(builtin="chatml"),
        "max_retries": 2,
        "timeout_s": 5.0,
    }
    fields.update(overrides)
    return ExpertConfig(**fields)


def make_backend(endpoint: str, **overrides: Any) -> OpenAIBackend:
    return OpenAIBackend(make_expert(endpoint, **overrides), backoff_base_s=0.01,
                         backoff_max_s=0.05)


def chat_req(text: str, seed: int = 0, max_tokens: int = 64) -> ChatRequest:
    sampling = SamplingConfig(temperature=0.5, top_p=0.9, max_tokens=max_tokens, seed=seed)
    return ChatRequest((ChatMessage("user", text),), sampling)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_chat_sends_sampling_and_returns_usage(server: FakeOpenAIServer) -> None:
    backend = make_backend(server.base_url)
    [out] = run(backend.chat([chat_req("add two numbers", seed=7)]))
    assert isinstance(out, GenerationResult)
    assert out.text == "echo served-model: add two numbers"
    assert out.model_id == "remote-1"
    assert out.finish_reason == "stop"
    assert (out.prompt_tokens, out.completion_tokens) == (3, 5)
    assert out.usage_reported
    [req] = server.requests
    assert req.path == "/v1/chat/completions"
    assert req.body["model"] == "served-model"
    assert req.body["seed"] == 7
    assert req.body["temperature"] == 0.5
    assert req.body["top_p"] == 0.9
    assert req.body["max_tokens"] == 64
    assert req.body["messages"] == [{"role": "user", "content": "add two numbers"}]
    assert "authorization" not in req.headers


def test_results_keep_request_order(server: FakeOpenAIServer) -> None:
    backend = make_backend(server.base_url)
    outs = run(backend.chat([chat_req(f"task {i}") for i in range(6)]))
    assert [o.text for o in outs] == [f"echo served-model: task {i}" for i in range(6)]


def test_length_finish_reason_is_passed_through(server: FakeOpenAIServer) -> None:
    backend = make_backend(server.base_url)
    [out] = run(backend.chat([chat_req("one two three four five", max_tokens=2)]))
    assert out.finish_reason == "length"
    assert out.completion_tokens == 2


def test_system_prompt_prepended_unless_present(server: FakeOpenAIServer) -> None:
    backend = make_backend(server.base_url, system_prompt="You are terse.")
    own_system = ChatRequest(
        (ChatMessage("system", "Mine."), ChatMessage("user", "hi")), SamplingConfig()
    )
    run(backend.chat([chat_req("hi"), own_system]))
    sent = sorted(tuple((m["role"], m["content"]) for m in r.body["messages"])
                  for r in server.requests)
    assert sent == [
        (("system", "Mine."), ("user", "hi")),
        (("system", "You are terse."), ("user", "hi")),
    ]


def test_complete_sends_prompt_verbatim_with_stop(server: FakeOpenAIServer) -> None:
    server.set_behaviour(completion_text="Sort a list.<|im_end|>\n<|im_start|>assistant")
    backend = make_backend(server.base_url)
    prefix = prequery_prefix(backend.chat_template())
    request = CompletionRequest(prefix, SamplingConfig(seed=3), stop=backend.end_of_turn())
    [out] = run(backend.complete([request]))
    assert isinstance(out, GenerationResult)
    assert out.text == "Sort a list."
    [req] = server.requests
    assert req.path == "/v1/completions"
    assert req.body["prompt"] == "<|im_start|>user\n"
    assert req.body["stop"] == ["<|im_end|>"]
    assert req.body["seed"] == 3


def test_complete_without_stop_sends_no_stop_field(server: FakeOpenAIServer) -> None:
    backend = make_backend(server.base_url)
    run(backend.complete([CompletionRequest("abc", SamplingConfig())]))
    assert "stop" not in server.requests[0].body


def test_api_key_sent_as_bearer_and_never_shown(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    backend = make_backend(server.base_url, api_key_env=KEY_ENV, max_retries=0)
    run(backend.chat([chat_req("hi")]))
    assert server.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    server.set_behaviour("error", status=401)
    [err] = run(backend.chat([chat_req("hi")]))
    assert isinstance(err, GenerationError)
    assert SECRET not in err.reason and SECRET not in str(err.details)
    assert SECRET not in repr(backend)


def test_missing_api_key_env_is_a_setup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(BackendError, match=KEY_ENV):
        make_backend("http://127.0.0.1:1/v1", api_key_env=KEY_ENV)


def test_missing_chat_template_fails_only_where_a_raw_prompt_needs_it() -> None:
    backend = make_backend("http://127.0.0.1:1/v1", chat_template=None)  # a chat client is fine
    with pytest.raises(BackendError, match=r"roster\.N\.chat_template"):
        backend.chat_template()
    with pytest.raises(BackendError, match=r"roster\.N\.chat_template"):
        backend.end_of_turn()


def test_bad_chat_template_folder_is_a_setup_error(tmp_path: Any) -> None:
    with pytest.raises(BackendError, match=r"tokenizer_config\.json"):
        make_backend("http://127.0.0.1:1/v1",
                     chat_template=ChatTemplateConfig(tokenizer=str(tmp_path)))


def test_concurrency_never_exceeds_max(server: FakeOpenAIServer) -> None:
    server.set_behaviour(delay_s=0.15)
    backend = make_backend(server.base_url, max_concurrency=3)
    outs = run(backend.chat([chat_req(f"t{i}") for i in range(10)]))
    assert all(isinstance(o, GenerationResult) for o in outs)
    assert len(server.requests) == 10
    # 10 overlapping requests: the limit is reached, never exceeded.
    assert server.max_in_flight == 3


def test_always_500_gives_error_after_retries(server: FakeOpenAIServer) -> None:
    server.set_behaviour("error", status=500)
    backend = make_backend(server.base_url, max_retries=2)
    [err] = run(backend.chat([chat_req("hi")]))
    assert isinstance(err, GenerationError)
    assert err.attempts == 3
    assert len(server.requests) == 3
    assert err.reason.startswith(f"HTTP 500 from {server.base_url}/chat/completions")
    assert "fake failure 500" in err.reason  # body excerpt
    assert err.details["status"] == "500"


def test_500_then_ok_recovers(server: FakeOpenAIServer) -> None:
    server.set_behaviour("error", status=503, times=2)
    backend = make_backend(server.base_url, max_retries=2)
    [out] = run(backend.chat([chat_req("hi")]))
    assert isinstance(out, GenerationResult)
    assert len(server.requests) == 3


def test_429_is_retried(server: FakeOpenAIServer) -> None:
    server.set_behaviour("error", status=429, times=1, retry_after="0")
    backend = make_backend(server.base_url, max_retries=1)
    [out] = run(backend.chat([chat_req("hi")]))
    assert isinstance(out, GenerationResult)
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 404])
def test_other_4xx_not_retried(server: FakeOpenAIServer, status: int) -> None:
    server.set_behaviour("error", status=status)
    backend = make_backend(server.base_url, max_retries=3)
    [err] = run(backend.chat([chat_req("hi")]))
    assert isinstance(err, GenerationError)
    assert err.attempts == 1
    assert len(server.requests) == 1
    assert err.reason.startswith(f"HTTP {status} from ")


def test_timeout_is_retried_then_reported(server: FakeOpenAIServer) -> None:
    server.set_behaviour("slow", slow_s=5.0)
    backend = make_backend(server.base_url, timeout_s=0.3, max_retries=1)
    [err] = run(backend.chat([chat_req("hi")]))
    assert isinstance(err, GenerationError)
    assert err.attempts == 2
    assert err.reason.startswith("timeout after 0.3s")
    assert len(server.requests) == 2


def test_slow_once_then_ok(server: FakeOpenAIServer) -> None:
    server.set_behaviour("slow", slow_s=5.0, times=1)
    backend = make_backend(server.base_url, timeout_s=0.3, max_retries=1)
    [out] = run(backend.chat([chat_req("hi")]))
    assert isinstance(out, GenerationResult)


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        ("not-json", "body is not JSON"),
        ("no-choices", "no choices[0]"),
        ("no-content", "choices[0].message.content is not a string"),
    ],
)
def test_garbage_200_is_a_retryable_failure(
    server: FakeOpenAIServer, kind: str, what: str
) -> None:
    server.set_behaviour("garbage", garbage=kind)
    backend = make_backend(server.base_url, max_retries=1)
    [err] = run(backend.chat([chat_req("hi")]))
    assert isinstance(err, GenerationError)
    assert err.attempts == 2
    assert what in err.reason
    assert err.reason.startswith("malformed response from ")


def test_garbage_completion_text_detected(server: FakeOpenAIServer) -> None:
    server.set_behaviour("garbage", garbage="no-content")
    backend = make_backend(server.base_url, max_retries=0)
    [err] = run(backend.complete([CompletionRequest("p", SamplingConfig())]))
    assert isinstance(err, GenerationError)
    assert "choices[0].text is not a string" in err.reason


def test_garbage_once_then_ok(server: FakeOpenAIServer) -> None:
    server.set_behaviour("garbage", garbage="not-json", times=1)
    backend = make_backend(server.base_url, max_retries=1)
    [out] = run(backend.chat([chat_req("hi")]))
    assert isinstance(out, GenerationResult)


def test_missing_usage_is_marked(server: FakeOpenAIServer) -> None:
    server.set_behaviour(omit_usage=True)
    backend = make_backend(server.base_url)
    [out] = run(backend.chat([chat_req("hi")]))
    assert isinstance(out, GenerationResult)
    assert (out.prompt_tokens, out.completion_tokens) == (0, 0)
    assert not out.usage_reported


def test_connection_refused_is_retried_then_reported() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/v1"
    backend = make_backend(endpoint, max_retries=1)
    [err] = run(backend.chat([chat_req("hi")]))
    assert isinstance(err, GenerationError)
    assert err.attempts == 2
    assert err.reason.startswith(f"connection error to {endpoint}/chat/completions")


def test_one_failure_does_not_lose_the_batch(server: FakeOpenAIServer) -> None:
    server.set_behaviour("error", status=400, times=1)
    backend = make_backend(server.base_url, max_concurrency=1)
    outs = run(backend.chat([chat_req(f"t{i}") for i in range(3)]))
    assert [type(o) for o in outs] == [GenerationError, GenerationResult, GenerationResult]


def test_backend_survives_a_new_event_loop(server: FakeOpenAIServer) -> None:
    backend = make_backend(server.base_url)
    first = run(backend.chat([chat_req("a")]))
    second = run(backend.chat([chat_req("b")]))
    assert isinstance(first[0], GenerationResult) and isinstance(second[0], GenerationResult)

    async def use_and_close() -> None:
        await backend.chat([chat_req("c")])
        await backend.aclose()

    run(use_and_close())
    assert len(server.requests) == 3


def test_template_accessors_and_load_backend(server: FakeOpenAIServer) -> None:
    expert = make_expert(
        server.base_url, chat_template=ChatTemplateConfig(builtin="llama3", bos_token="<B>")
    )
    backend = load_backend(expert)
    assert isinstance(backend, OpenAIBackend)
    assert backend.chat_template() == BUILTIN_TEMPLATES["llama3"]
    assert backend.bos_token() == "<B>"
    assert backend.end_of_turn() == ("<|eot_id|>",)


# -- constrained verdicts and logprobs ---------------------------------------------------------


def test_chat_sends_response_format_extra_body_and_logprobs(server: FakeOpenAIServer) -> None:
    server.set_behaviour(first_token_logprobs=(("B", -0.2), ("A", -1.8), ("C", -4.0)))
    backend = make_backend(server.base_url)
    schema = json_schema_format("judge_verdict", {"type": "object"})
    request = ChatRequest(
        (ChatMessage("user", "judge"),),
        SamplingConfig(seed=1),
        response_format=schema,
        # Never replaces the fields the backend sets (model, messages, sampling).
        extra_body={"structured_outputs": {"choice": ["A", "B"]}, "model": "other", "seed": 9},
        logprobs=2,
    )
    [out] = run(backend.chat([request]))
    [req] = server.requests
    assert req.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "judge_verdict", "schema": {"type": "object"}, "strict": True},
    }
    assert req.body["structured_outputs"] == {"choice": ["A", "B"]}
    assert (req.body["model"], req.body["seed"]) == ("served-model", 1)
    assert (req.body["logprobs"], req.body["top_logprobs"]) == (True, 2)
    assert isinstance(out, GenerationResult)
    assert out.text == "A"  # the fake honours the choice constraint like vLLM
    assert out.top_logprobs == ((("B", -0.2), ("A", -1.8)),)


def test_plain_requests_carry_no_structured_or_logprob_fields(server: FakeOpenAIServer) -> None:
    backend = make_backend(server.base_url)
    [out] = run(backend.chat([chat_req("hi")]))
    run(backend.complete([CompletionRequest("abc", SamplingConfig())]))
    for req in server.requests:
        assert not {"response_format", "logprobs", "top_logprobs", "structured_outputs",
                    "guided_choice"} & set(req.body)
    assert isinstance(out, GenerationResult) and out.top_logprobs == ()


def test_complete_sends_legacy_logprobs_and_reads_them(server: FakeOpenAIServer) -> None:
    server.set_behaviour(completion_text="B]] because", first_token_logprobs=(("B", -0.1),
                                                                             ("A", -2.5)))
    backend = make_backend(server.base_url)
    request = CompletionRequest("<prompt>[[", SamplingConfig(), stop=("]]",),
                                extra_body=choice_constraint(("A", "B", "C"), "guided_choice"),
                                logprobs=5)
    [out] = run(backend.complete([request]))
    [req] = server.requests
    assert req.body["logprobs"] == 5
    assert req.body["guided_choice"] == ["A", "B", "C"]
    assert "structured_outputs" not in req.body
    assert isinstance(out, GenerationResult)
    assert out.text == "B"  # cut at the stop string: one of the choices
    assert out.top_logprobs[0] == (("B", -0.1), ("A", -2.5))


def test_choice_constraint_field_names() -> None:
    assert choice_constraint(["A", "B", "C"]) == {"structured_outputs": {"choice": ["A", "B", "C"]}}
    assert choice_constraint(["A"], "guided_choice") == {"guided_choice": ["A"]}
    with pytest.raises(ValueError, match="non-empty"):
        choice_constraint([])


@pytest.mark.parametrize(
    "logprobs",
    [None, "x", {"content": "x"}, {"content": [{"token": "A", "top_logprobs": "bad"}]},
     {"content": [{"token": "A", "top_logprobs": [{"token": 1, "logprob": "x"}]}]}],
)
def test_unexpected_logprobs_are_dropped_not_fatal(logprobs: Any) -> None:
    choice = {"message": {"content": "A"}, "logprobs": logprobs}
    assert _top_logprobs(choice, chat=True) == ()


def test_top_logprobs_keep_the_first_positions_only() -> None:
    content = [{"token": str(i), "top_logprobs": [{"token": str(i), "logprob": -0.5}]}
               for i in range(TOP_LOGPROB_POSITIONS + 5)]
    got = _top_logprobs({"logprobs": {"content": content}}, chat=True)
    assert len(got) == TOP_LOGPROB_POSITIONS
    assert got[0] == (("0", -0.5),)


# -- the judge stage through the HTTP path -----------------------------------------------------

RIGHT_ANSWER = "def add(a, b):\n    return a + b"
WRONG_ANSWER = "def add(a, b):\n    return a - b"


def judge_config(server: FakeOpenAIServer, **judge: Any) -> ArenaConfig:
    return parse_config({
        "round_id": "r1",
        "roster": [{"id": n, "backend": "openai", "model": f"served-{n}",
                    "endpoint": server.base_url, "chat_template": {"builtin": "chatml"},
                    "max_retries": 0} for n in ("alpha", "beta", "gamma")],
        "selection": {"tournament": "none"},
        "judge": {"retries_on_invalid": 0, **judge},
    })


def judged(server: FakeOpenAIServer, config: ArenaConfig,
           tmp_path: Path) -> list[arena_pb2.Judgment]:
    pair = arena_pb2.ResponsePair(battle_id="b1", challenge_id="c1", round_id="r1",
                                  instruction="Write add(a, b).", model_a="alpha",
                                  model_b="beta", judges=["gamma"])
    pair.response_a.model_id, pair.response_b.model_id = "alpha", "beta"
    pair.response_a.generation.text = RIGHT_ANSWER
    pair.response_b.generation.text = WRONG_ANSWER
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    stage = Judge(config, {e.id: load_backend(e) for e in config.roster}, store)
    [item] = run(stage.handle([pair]))
    return sorted(item.judgments, key=lambda j: j.order)


# The right answer shown first: "A", else "B" (a judge that prefers the right answer).
RIGHT_FIRST = f"[The Start of Assistant A's Answer]\n{RIGHT_ANSWER}"


def test_judge_json_schema_requests_and_reads_the_structured_verdict(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.set_behaviour(replies=(
        Reply(RIGHT_FIRST, '{"explanation": "A adds.", "verdict": "A"}'),
        Reply("[User Request]", '```json\n{"explanation": "B adds.", "verdict": "B"}\n```'),
    ))
    ab, ba = judged(server, judge_config(server, structured_output="json_schema"), tmp_path)
    assert (ab.position_verdict, ba.position_verdict) == (arena_pb2.VERDICT_A,
                                                         arena_pb2.VERDICT_B)
    assert ab.verdict == ba.verdict == arena_pb2.VERDICT_A  # model_a in both orders
    for req in server.requests:
        assert req.path == "/v1/chat/completions"
        fmt = req.body["response_format"]
        assert fmt["type"] == "json_schema"
        properties = fmt["json_schema"]["schema"]["properties"]
        assert properties["verdict"]["enum"] == ["A", "B", "C"]
        # Bounded so that the verdict fits in judge.max_tokens (default 256).
        assert properties["explanation"]["maxLength"] == 256 - 32
        assert '"verdict"' in req.body["messages"][-1]["content"]  # the JSON instruction


def test_judge_json_schema_broken_json_is_invalid_with_the_reason(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.set_behaviour(replies=(Reply("[User Request]", '{"explanation": "cut'),))
    for j in judged(server, judge_config(server, structured_output="json_schema"), tmp_path):
        assert j.position_verdict == arena_pb2.VERDICT_INVALID
        assert j.error == "structured verdict: no JSON object"


def test_judge_choice_in_prefill_mode_records_soft_probabilities(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    import math

    server.set_behaviour(completion_text="B", first_token_logprobs=(
        ("B", math.log(0.75)), ("A", math.log(0.2)), ("C", math.log(0.05)), ("The", -6.0)))
    config = judge_config(server, verdict_mode="prefill", structured_output="choice",
                          soft_votes=True)
    ab, ba = judged(server, config, tmp_path)
    for req in server.requests:
        assert req.path == "/v1/completions"
        assert req.body["prompt"].endswith("<|im_start|>assistant\n[[")
        assert req.body["structured_outputs"] == {"choice": ["A", "B", "C"]}
        assert req.body["logprobs"] == 5
    for j in (ab, ba):
        assert j.position_verdict == arena_pb2.VERDICT_B and j.generation.text == "[[B]]"
        assert (j.soft.a, j.soft.b, j.soft.tie) == pytest.approx((0.2, 0.75, 0.05), abs=1e-3)
    # B in both orders is a position-biased judge: a tie, and soft votes do not change that.
    [vote] = judge_votes([ab, ba])
    assert vote.verdict == arena_pb2.VERDICT_TIE and vote.weight == 0.0


def test_judge_guided_choice_in_explain_mode_asks_for_one_letter(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.set_behaviour(replies=(Reply(RIGHT_FIRST, "A"), Reply("[User Request]", "B")))
    config = judge_config(server, structured_output="guided_choice", soft_votes=True)
    ab, ba = judged(server, config, tmp_path)
    assert ab.verdict == ba.verdict == arena_pb2.VERDICT_A
    assert ab.soft.a == pytest.approx(1.0) and ba.soft.b == pytest.approx(1.0)
    [vote] = judge_votes([ab, ba])
    assert (vote.verdict, vote.weight) == (arena_pb2.VERDICT_A, pytest.approx(1.0))
    for req in server.requests:
        assert req.path == "/v1/chat/completions"
        assert req.body["guided_choice"] == ["A", "B", "C"]
        assert (req.body["logprobs"], req.body["top_logprobs"]) == (True, 5)
        assert "one letter" in req.body["messages"][-1]["content"]


def test_judge_explain_mode_reads_arena_hard_labels_and_strength(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.set_behaviour(replies=(
        Reply(RIGHT_FIRST, "A adds; B subtracts. My final verdict is [[A>>B]], not [[B>A]]."),
        Reply("[User Request]", "B adds. Although [[A]] is shorter, my final verdict: [[B>>A]]"),
    ))
    ab, ba = judged(server, judge_config(server), tmp_path)
    assert (ab.position_verdict, ab.strong) == (arena_pb2.VERDICT_A, True)
    assert (ba.position_verdict, ba.strong) == (arena_pb2.VERDICT_B, True)
    [vote] = judge_votes([ab, ba], strong_weight=2.0)
    assert (vote.verdict, vote.strong, vote.weight) == (arena_pb2.VERDICT_A, True, 2.0)
    assert not {"response_format", "logprobs"} & set(server.requests[0].body)


def test_structured_output_needs_openai_judges() -> None:
    with pytest.raises(ConfigError, match=r"roster.0.backend: expert 'm0' is 'fake'"):
        parse_config({"roster": [{"id": f"m{i}", "backend": "fake", "model": "x"}
                                 for i in range(3)],
                      "judge": {"structured_output": "choice"}})


def test_judge_arena_hard_labels_through_json_schema_and_choice(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.set_behaviour(replies=(
        Reply(RIGHT_FIRST, '{"explanation": "A adds.", "verdict": "A>>B"}'),
        Reply("[User Request]", '{"explanation": "B adds.", "verdict": "B>>A"}'),
    ))
    config = judge_config(server, labels="arena_hard", structured_output="json_schema")
    ab, ba = judged(server, config, tmp_path)
    assert (ab.position_verdict, ab.strong, ba.position_verdict, ba.strong) == (
        arena_pb2.VERDICT_A, True, arena_pb2.VERDICT_B, True)
    body = server.requests[0].body
    assert "[[A>>B]]" in body["messages"][0]["content"]  # the system prompt asks for labels
    schema = body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["verdict"]["enum"] == ["A>>B", "A>B", "A=B", "B>A", "B>>A"]

    server.reset_log()
    server.set_behaviour(replies=(Reply(RIGHT_FIRST, "A>B"), Reply("[User Request]", "B>A")))
    config = judge_config(server, labels="arena_hard", structured_output="choice")
    ab, ba = judged(server, config, tmp_path / "choice")
    assert ab.verdict == ba.verdict == arena_pb2.VERDICT_A and not (ab.strong or ba.strong)
    assert server.requests[0].body["structured_outputs"] == {
        "choice": ["A>>B", "A>B", "A=B", "B>A", "B>>A"]}


def test_soft_votes_need_abc_labels() -> None:
    with pytest.raises(ConfigError, match="soft_votes needs labels 'abc'"):
        parse_config({"roster": [{"id": f"m{i}", "backend": "openai", "model": "x",
                                  "endpoint": "http://127.0.0.1:1/v1",
                                  "chat_template": {"builtin": "chatml"}} for i in range(3)],
                      "judge": {"labels": "arena_hard", "verdict_mode": "prefill",
                                "soft_votes": True}})
