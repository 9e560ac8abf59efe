"""Jinja chat templates rendered the way Hugging Face renders them, and the pre-query prefix.

Pre-query mining (Magpie-style) sends a model only the start of a chat, up to the point where
the user's message would begin, and lets the model write the user turn itself. That prefix is
found by rendering the template with a unique sentinel as the user's message and cutting the text
at the sentinel, which works for any template family (ChatML, Llama-3, Mistral [INST], Gemma...).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from warriorcoder.backends.base import ChatMessage
from warriorcoder.config import ChatTemplateConfig


class ChatTemplateError(ValueError):
    """A chat template is missing, malformed, or cannot be used for pre-query mining."""


# A string no template produces by itself and no template transforms (letters and digits only,
# so `| trim`, escaping or capitalisation filters leave it intact).
SENTINEL = "WCSENTINELq7Z3xK9"

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

LLAMA3 = (
    "{% set loop_messages = messages %}"
    "{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    " + message['content'] | trim + '<|eot_id|>' %}"
    "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
    "{% endif %}"
)

# Mistral-7B-Instruct v0.1/v0.2 style: no system role, strict user/assistant alternation.
MISTRAL = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}"
    "{% endfor %}"
)

GEMMA = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}"
    "{% endif %}"
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

# Templates shipped with warriorcoder, selectable with `chat_template: {builtin: NAME}`.
BUILTIN_TEMPLATES: dict[str, str] = {
    "chatml": CHATML,
    "llama3": LLAMA3,
    "mistral": MISTRAL,
    "gemma": GEMMA,
}


class _GenerationTag(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` (marks assistant text in HF templates):
    pass-through."""

    tags = {"generation"}  # noqa: RUF012 (declared so by jinja2.ext.Extension)

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render_body"), [], [], body).set_lineno(
            lineno
        )

    def _render_body(self, caller: Any) -> str:
        return str(caller())


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    # Like HF: Jinja's own tojson HTML-escapes characters, which would change the prompt.
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=64)
def _compile(template: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_GenerationTag, jinja2.ext.loopcontrols],
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as err:
        raise ChatTemplateError(
            f"chat template is not valid Jinja (line {err.lineno}): {err}") from None


def _as_dict(message: ChatMessage | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(message, ChatMessage):
        return {"role": message.role, "content": message.content}
    if isinstance(message, Mapping) and "role" in message and "content" in message:
        return dict(message)
    raise ChatTemplateError(
        "chat message must be a ChatMessage or a mapping with 'role' and 'content', "
        f"got {message!r}"
    )


def render_chat(
    template: str,
    messages: Sequence[ChatMessage | Mapping[str, Any]],
    add_generation_prompt: bool = True,
    bos_token: str = "",
    eos_token: str = "",
    **extra: Any,
) -> str:
    """Render `messages` with a Jinja chat template, as `tokenizer.apply_chat_template` would.

    Extra keyword arguments become template variables (e.g. ``tools=None``). A template that
    calls ``raise_exception`` (e.g. "System role not supported") raises ChatTemplateError.
    """
    if not isinstance(template, str) or not template.strip():
        raise ChatTemplateError("chat template is empty")
    compiled = _compile(template)
    # HF always passes these; templates test `tools is not none`, which Undefined would fail.
    extra.setdefault("tools", None)
    extra.setdefault("documents", None)
    try:
        return compiled.render(
            messages=[_as_dict(m) for m in messages],
            add_generation_prompt=add_generation_prompt,
            bos_token=bos_token,
            eos_token=eos_token,
            **extra,
        )
    except jinja2.TemplateError as err:
        raise ChatTemplateError(f"chat template raised an error while rendering: {err}") from None


def _split_at_sentinel(rendered: str, what: str) -> tuple[str, str]:
    index = rendered.find(SENTINEL)
    if index < 0:
        raise ChatTemplateError(
            f"cannot find {what}: the chat template does not copy the user's message verbatim "
            f"into its output (sentinel {SENTINEL!r} not found in {rendered[:200]!r})"
        )
    return rendered[:index], rendered[index + len(SENTINEL) :]


def prequery_prefix(template: str, system_prompt: str | None = None, bos_token: str = "") -> str:
    """The pre-query prompt: the rendered chat up to where the user's message starts.

    With ``system_prompt=None`` the template's own default (if any) is kept, e.g. SmolLM2's
    "You are a helpful AI assistant named SmolLM...". Example for ChatML without a default:
    ``"<|im_start|>user\\n"``.
    """
    messages: list[dict[str, str]] = []
    if system_prompt is not None:
        messages.append({"role": "system", "content": system_prompt})
    messages.append({"role": "user", "content": SENTINEL})
    rendered = render_chat(template, messages, add_generation_prompt=True, bos_token=bos_token)
    prefix, _ = _split_at_sentinel(rendered, "the pre-query prefix")
    return prefix


def end_of_user_turn(template: str, bos_token: str = "") -> str:
    """The marker that closes a user turn (e.g. ``"<|im_end|>"``, ``"<|eot_id|>"``, ``"[/INST]"``).

    It is the text the template puts right after the user's content, with surrounding whitespace
    removed; used as the stop string when a model writes a user turn during mining.
    """
    for add_generation_prompt in (False, True):
        try:
            rendered = render_chat(
                template,
                [{"role": "user", "content": SENTINEL}],
                add_generation_prompt=add_generation_prompt,
                bos_token=bos_token,
            )
        except ChatTemplateError:
            if add_generation_prompt:
                raise
            continue  # some templates insist on a generation prompt after a user turn
        _, suffix = _split_at_sentinel(rendered, "the end of the user turn")
        # The first line: what follows the marker (a newline, the assistant header) is not part
        # of it. Templates that close the turn only when the next one starts need the header.
        marker = suffix.strip().split("\n", 1)[0].strip()
        if marker:
            return marker
    raise ChatTemplateError(
        "cannot find the end of the user turn: the chat template writes nothing after the user's "
        "message; set explicit stop strings instead"
    )


def _token_text(value: Any) -> str:
    # tokenizer_config.json stores special tokens as strings or serialized AddedToken dicts.
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("content"), str):
        return str(value["content"])
    return ""


def _pick_named(value: Any, source: Path) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        named = {
            item.get("name"): item.get("template") for item in value if isinstance(item, Mapping)
        }
        chosen = named.get("default")
        if isinstance(chosen, str):
            return chosen
        raise ChatTemplateError(
            f"{source}: chat_template is a list of named templates without one named 'default' "
            f"(names: {sorted(str(n) for n in named)})"
        )
    raise ChatTemplateError(
        f"{source}: chat_template must be a string or a list of {{name, template}} objects, "
        f"got {type(value).__name__}"
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ChatTemplateError(f"{path}: cannot read as JSON: {err}") from None
    if not isinstance(data, dict):
        raise ChatTemplateError(f"{path}: expected a JSON object")
    return data


def template_from_folder(folder: str | Path) -> tuple[str, str]:
    """(template, bos_token) from a Hugging Face model folder.

    Looks where transformers saves it: ``chat_template.jinja`` (transformers >= 4.43),
    ``chat_template.json``, then the ``chat_template`` key of ``tokenizer_config.json``.
    """
    root = Path(folder).expanduser()
    config_file = root / "tokenizer_config.json"
    if not root.is_dir():
        raise ChatTemplateError(f"chat template folder {root}: not a directory")
    config = _read_json(config_file) if config_file.is_file() else {}
    bos = _token_text(config.get("bos_token"))
    jinja_file = root / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8"), bos
    json_file = root / "chat_template.json"
    if json_file.is_file():
        value = _read_json(json_file).get("chat_template")
        if value is not None:
            return _pick_named(value, json_file), bos
    if "chat_template" in config and config["chat_template"] is not None:
        return _pick_named(config["chat_template"], config_file), bos
    if not config_file.is_file():
        raise ChatTemplateError(
            f"{config_file}: file not found (and no chat_template.jinja / chat_template.json in "
            f"{root}); point chat_template.tokenizer at a Hugging Face model folder"
        )
    raise ChatTemplateError(
        f"{config_file}: has no 'chat_template' (and there is no chat_template.jinja or "
        f"chat_template.json next to it); use chat_template.template or chat_template.builtin"
    )


def load_template(cfg: ChatTemplateConfig) -> tuple[str, str]:
    """(template, bos_token) for an expert's `chat_template` configuration.

    `tokenizer` may also be the word "smollm2" (the packaged SmolLM2, converted on first use).
    An explicit `cfg.bos_token` wins over the folder's tokenizer_config.json.
    """
    if cfg.builtin is not None:
        if cfg.builtin not in BUILTIN_TEMPLATES:
            raise ChatTemplateError(
                f"chat_template.builtin: unknown template {cfg.builtin!r}; "
                f"known: {sorted(BUILTIN_TEMPLATES)}"
            )
        return BUILTIN_TEMPLATES[cfg.builtin], cfg.bos_token
    if cfg.template is not None:
        _compile(cfg.template)  # fail now, naming the problem, not at the first render
        return cfg.template, cfg.bos_token
    assert cfg.tokenizer is not None  # ChatTemplateConfig guarantees exactly one source
    folder: str | Path = cfg.tokenizer
    if cfg.tokenizer == "smollm2":
        from warriorcoder.backends.smollm2 import smollm2_path

        folder = smollm2_path()
    template, bos = template_from_folder(folder)
    return template, cfg.bos_token or bos
