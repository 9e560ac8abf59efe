"""Chat template rendering, pre-query prefixes and template loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from warriorcoder.backends.base import ChatMessage
from warriorcoder.backends.chat_templates import (
    BUILTIN_TEMPLATES,
    CHATML,
    GEMMA,
    LLAMA3,
    MISTRAL,
    SENTINEL,
    ChatTemplateError,
    end_of_user_turn,
    load_template,
    prequery_prefix,
    render_chat,
)
from warriorcoder.config import ChatTemplateConfig

# SmolLM2-135M-Instruct's template: ChatML with a default system prompt.
SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Exercises what real Hub templates use: whitespace control, namespace, loop.last, tojson,
# tools, loop controls, and the {% generation %} tag.
FEATURES = """
{%- set ns = namespace(system=none) %}
{%- for message in messages %}
    {%- if message.role == 'system' %}
        {%- set ns.system = message.content %}
        {%- continue %}
    {%- endif %}
    {%- if loop.first and ns.system is not none %}
<<SYS>>{{ ns.system }}<</SYS>>
    {% endif %}
    {% if message.role == 'assistant' %}
{% generation %}A: {{ message.content | trim }}{% endgeneration %}
    {% else %}
U: {{ message.content }}
    {% endif %}
    {%- if loop.last and tools is not none %}TOOLS {{ tools | tojson }}{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}A:{% endif %}
"""

CONVERSATIONS: list[list[dict[str, str]]] = [
    [{"role": "user", "content": "Write <b>bold</b> code & \"quotes\""}],
    [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"}],
    [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "  b  "},
        {"role": "user", "content": "c\nd"},
    ],
]


def test_chatml_render_exact() -> None:
    msgs = [ChatMessage("system", "S"), ChatMessage("user", "U")]
    assert render_chat(CHATML, msgs) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    )
    assert render_chat(CHATML, msgs, add_generation_prompt=False).endswith("U<|im_end|>\n")


def test_llama3_render_exact_with_bos() -> None:
    out = render_chat(LLAMA3, [{"role": "user", "content": "  hi  "}],
                      bos_token="<|begin_of_text|>")
    assert out == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


@pytest.mark.parametrize("template", [CHATML, LLAMA3, MISTRAL, GEMMA, SMOLLM2, FEATURES])
@pytest.mark.parametrize("generation_prompt", [True, False])
def test_render_matches_huggingface(template: str, generation_prompt: bool) -> None:
    hf = pytest.importorskip("transformers.utils.chat_template_utils")
    for conversation in CONVERSATIONS:
        if template in (MISTRAL, GEMMA) and conversation[0]["role"] == "system":
            continue  # these templates reject a system role (tested below)
        ours = render_chat(template, conversation, generation_prompt, bos_token="<s>",
                           eos_token="</s>")
        rendered, _ = hf.render_jinja_template(
            conversations=[conversation], chat_template=template,
            add_generation_prompt=generation_prompt, bos_token="<s>", eos_token="</s>",
        )
        assert ours == rendered[0]


def test_raise_exception_becomes_chat_template_error() -> None:
    with pytest.raises(ChatTemplateError, match="System role not supported"):
        render_chat(GEMMA, [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}])


def test_sandbox_blocks_unsafe_code() -> None:
    with pytest.raises(ChatTemplateError):
        render_chat("{{ ''.__class__.__mro__[1].__subclasses__() }}", [])
    with pytest.raises(ChatTemplateError):  # immutable: no mutation of lists
        render_chat("{% set x = [] %}{{ x.append(1) }}", [])


def test_invalid_jinja_is_reported() -> None:
    with pytest.raises(ChatTemplateError, match="not valid Jinja"):
        render_chat("{% for m in messages %}", [])
    with pytest.raises(ChatTemplateError, match="empty"):
        render_chat("  ", [])


def test_bad_message_is_reported() -> None:
    with pytest.raises(ChatTemplateError, match="'role' and 'content'"):
        render_chat(CHATML, [{"content": "no role"}])


@pytest.mark.parametrize(
    ("template", "bos", "system", "expected"),
    [
        (CHATML, "", None, "<|im_start|>user\n"),
        (CHATML, "", "Be a coder.",
         "<|im_start|>system\nBe a coder.<|im_end|>\n<|im_start|>user\n"),
        (SMOLLM2, "", None,
         ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
          "Face<|im_end|>\n<|im_start|>user\n")),
        (LLAMA3, "<|begin_of_text|>", None,
         "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"),
        (LLAMA3, "<|begin_of_text|>", "Sys",
         ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSys<|eot_id|>"
          "<|start_header_id|>user<|end_header_id|>\n\n")),
        (MISTRAL, "<s>", None, "<s>[INST] "),
        (GEMMA, "<bos>", None, "<bos><start_of_turn>user\n"),
    ],
)
def test_prequery_prefix(template: str, bos: str, system: str | None, expected: str) -> None:
    assert prequery_prefix(template, system_prompt=system, bos_token=bos) == expected


def test_prequery_prefix_surfaces_template_refusals() -> None:
    with pytest.raises(ChatTemplateError, match="roles must alternate"):
        prequery_prefix(MISTRAL, system_prompt="no system role here")


def test_prequery_prefix_needs_the_user_content_verbatim() -> None:
    drops_content = "{% for m in messages %}<{{ m['role'] }}>{% endfor %}"
    with pytest.raises(ChatTemplateError, match=SENTINEL):
        prequery_prefix(drops_content)
    uppercases = "{% for m in messages %}{{ m['content'] | upper }}{% endfor %}"
    with pytest.raises(ChatTemplateError, match="verbatim"):
        prequery_prefix(uppercases)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        (CHATML, "<|im_end|>"),
        (SMOLLM2, "<|im_end|>"),
        (LLAMA3, "<|eot_id|>"),
        (MISTRAL, "[/INST]"),
        (GEMMA, "<end_of_turn>"),
        # Plain-text template that closes the user turn only when the assistant turn starts.
        (("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n\n{% endfor %}"
          "{% if add_generation_prompt %}assistant:{% endif %}"), "assistant:"),
    ],
)
def test_end_of_user_turn(template: str, expected: str) -> None:
    assert end_of_user_turn(template, bos_token="<s>") == expected


def test_end_of_user_turn_needs_some_marker() -> None:
    with pytest.raises(ChatTemplateError, match="writes nothing after"):
        end_of_user_turn("{% for m in messages %}{{ m['content'] }}{% endfor %}")


def test_builtin_templates_are_usable() -> None:
    assert {"chatml", "llama3"} <= set(BUILTIN_TEMPLATES)
    for name, template in BUILTIN_TEMPLATES.items():
        assert SENTINEL not in prequery_prefix(template), name
        assert end_of_user_turn(template), name


# --- load_template -------------------------------------------------------------------------


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data))


def test_load_builtin_and_inline() -> None:
    assert load_template(ChatTemplateConfig(builtin="llama3", bos_token="<B>")) == (LLAMA3, "<B>")
    assert load_template(ChatTemplateConfig(template=CHATML)) == (CHATML, "")
    with pytest.raises(ChatTemplateError, match=r"unknown template 'nope'.*chatml"):
        load_template(ChatTemplateConfig(builtin="nope"))
    with pytest.raises(ChatTemplateError, match="not valid Jinja"):
        load_template(ChatTemplateConfig(template="{% if %}"))


def test_load_from_tokenizer_config_string(tmp_path: Path) -> None:
    write_json(tmp_path / "tokenizer_config.json",
               {"chat_template": LLAMA3, "bos_token": {"content": "<|begin_of_text|>"}})
    assert load_template(ChatTemplateConfig(tokenizer=str(tmp_path))) == (
        LLAMA3, "<|begin_of_text|>")
    # An explicit bos_token in the configuration wins.
    cfg = ChatTemplateConfig(tokenizer=str(tmp_path), bos_token="<x>")
    assert load_template(cfg)[1] == "<x>"


def test_load_from_named_template_list(tmp_path: Path) -> None:
    write_json(tmp_path / "tokenizer_config.json", {
        "bos_token": "<s>",
        "chat_template": [{"name": "tool_use", "template": "T"},
                          {"name": "default", "template": CHATML}],
    })
    assert load_template(ChatTemplateConfig(tokenizer=str(tmp_path))) == (CHATML, "<s>")
    write_json(tmp_path / "tokenizer_config.json",
               {"chat_template": [{"name": "tool_use", "template": "T"}]})
    with pytest.raises(ChatTemplateError, match=r"tokenizer_config.json.*'default'"):
        load_template(ChatTemplateConfig(tokenizer=str(tmp_path)))


def test_chat_template_jinja_file_wins(tmp_path: Path) -> None:
    write_json(tmp_path / "tokenizer_config.json", {"chat_template": "old", "bos_token": "<s>"})
    (tmp_path / "chat_template.jinja").write_text(GEMMA)
    assert load_template(ChatTemplateConfig(tokenizer=str(tmp_path))) == (GEMMA, "<s>")


def test_chat_template_json_file(tmp_path: Path) -> None:
    write_json(tmp_path / "chat_template.json", {"chat_template": MISTRAL})
    assert load_template(ChatTemplateConfig(tokenizer=str(tmp_path))) == (MISTRAL, "")


def test_missing_template_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ChatTemplateError, match=r"tokenizer_config.json: file not found"):
        load_template(ChatTemplateConfig(tokenizer=str(tmp_path)))
    write_json(tmp_path / "tokenizer_config.json", {"bos_token": "<s>"})
    with pytest.raises(ChatTemplateError, match=r"tokenizer_config.json: has no 'chat_template'"):
        load_template(ChatTemplateConfig(tokenizer=str(tmp_path)))
    (tmp_path / "tokenizer_config.json").write_text("{not json")
    with pytest.raises(ChatTemplateError, match=r"tokenizer_config.json: cannot read as JSON"):
        load_template(ChatTemplateConfig(tokenizer=str(tmp_path)))
    with pytest.raises(ChatTemplateError, match="not a directory"):
        load_template(ChatTemplateConfig(tokenizer=str(tmp_path / "missing")))
