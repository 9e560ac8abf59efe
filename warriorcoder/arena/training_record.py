"""The training record: one schema for every exported example.

The protobuf message `TrainingRecord` (protos/warriorcoder/v1/arena.proto) is the record:
selection builds it, the exporter's RPCs stream it, the JSONL writer writes its JSON form, and
`warriorcoder train` reads that form back into the same message. The JSON form is the
conversational layout that TRL's trainers and `datasets` read:

    sft:        {"id", "messages": [...prompt turns, assistant answer], "model", "score",
                 "provenance"}
    preference: {"id", "prompt": [...turns], "chosen": [assistant], "rejected": [assistant],
                 "chosen_model", "rejected_model", "margin", "provenance"}

`record_json` and `record_from_json` are inverses: a record written and read back is equal to
the message that was written. Lists stand where the message has maps (scores), so every line of
a file has the same columns in Arrow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import json_format

from warriorcoder.v1 import arena_pb2

SFT = "sft"
PREFERENCE = "preference"
KINDS = (SFT, PREFERENCE)

Turn = dict[str, str]


class RecordError(ValueError):
    """A JSON line is not a training record; the message says what is wrong."""


def turns(messages: Sequence[arena_pb2.ChatTurn]) -> list[Turn]:
    """Chat turns as the `{"role", "content"}` dicts of chat templates and TRL."""
    return [{"role": m.role, "content": m.content} for m in messages]


def _verdict_name(verdict: int) -> str:
    return str(arena_pb2.Verdict.Name(verdict)).removeprefix("VERDICT_").lower()


def provenance_json(prov: arena_pb2.Provenance) -> dict[str, Any]:
    """The provenance object of a JSONL line (key order fixed: files are compared byte-wise)."""
    return {
        "round_id": prov.round_id,
        "challenge_id": prov.challenge_id,
        "battle_ids": list(prov.battle_ids),
        "models": list(prov.models),
        "judges": list(prov.judges),
        "votes": [{"battle_id": v.battle_id, "judge": v.judge, "verdict": _verdict_name(v.verdict)}
                  for v in prov.votes],
        "local_scores": [{"battle_id": s.battle_id, "model_a": s.model_a, "model_b": s.model_b,
                          "x_a": s.x_a} for s in prov.local_scores],
        # A list, not a map keyed by model: every record then has the same columns in Arrow.
        "scores": [{"model": m, "score": prov.scores[m]} for m in sorted(prov.scores)],
        "head_to_head_losers": list(prov.head_to_head_losers),
        "config_hash": prov.config_hash,
    }


def record_json(record: arena_pb2.TrainingRecord) -> dict[str, Any]:
    """The JSONL form of a record (its kind decides the layout)."""
    prompt = turns(record.prompt_messages)
    chosen = {"role": "assistant", "content": record.chosen}
    if record.kind == SFT:
        line: dict[str, Any] = {"id": record.record_id, "messages": [*prompt, chosen],
                                "model": record.chosen_model}
        if record.HasField("score"):
            line["score"] = record.score
    elif record.kind == PREFERENCE:
        line = {"id": record.record_id, "prompt": prompt, "chosen": [chosen],
                "rejected": [{"role": "assistant", "content": record.rejected}],
                "chosen_model": record.chosen_model, "rejected_model": record.rejected_model}
        if record.HasField("margin"):
            line["margin"] = record.margin
    else:
        raise RecordError(f"record {record.record_id!r}: kind must be one of {KINDS}, "
                          f"got {record.kind!r}")
    if record.HasField("provenance"):
        line["provenance"] = provenance_json(record.provenance)
    return line


def _chat(value: Any, name: str) -> list[Turn]:
    if not isinstance(value, list) or not value:
        raise RecordError(f"no '{name}' list")
    for i, m in enumerate(value):
        if not (isinstance(m, dict) and isinstance(m.get("role"), str)
                and isinstance(m.get("content"), str)):
            raise RecordError(f"{name}[{i}] needs string 'role' and 'content'")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _answer(value: Any, name: str) -> str:
    chat = _chat(value, name)
    if len(chat) != 1 or chat[0]["role"] != "assistant":
        raise RecordError(f"'{name}' must be one assistant message")
    if not chat[0]["content"].strip():
        raise RecordError(f"the {name} answer is empty")
    return chat[0]["content"]


def text_field(obj: Mapping[str, Any], key: str) -> str | None:
    """`obj[key]` of a record's JSON form: a string, or None when missing; RecordError naming
    the key otherwise."""
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise RecordError(f"'{key}' must be a string, got {type(value).__name__}")
    return value


def _text(obj: Mapping[str, Any], key: str) -> str:
    return text_field(obj, key) or ""


def number_field(obj: Mapping[str, Any], key: str) -> float | None:
    """`obj[key]` of a record's JSON form as a float, or None when missing; RecordError naming
    the key when it is not a number (a bool is not one)."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"'{key}' must be a number, got {type(value).__name__}")
    return float(value)


def _provenance(obj: Any) -> arena_pb2.Provenance:
    if not isinstance(obj, dict):
        raise RecordError(f"'provenance' must be an object, got {type(obj).__name__}")
    data = dict(obj)
    try:
        data["votes"] = [{**v, "verdict": "VERDICT_" + str(v.get("verdict", "")).upper()}
                         for v in data.get("votes") or []]
        data["scores"] = {s["model"]: s["score"] for s in data.get("scores") or []}
        parsed: arena_pb2.Provenance = json_format.ParseDict(data, arena_pb2.Provenance())
    except (json_format.ParseError, AttributeError, KeyError, TypeError) as err:
        raise RecordError(f"provenance: {type(err).__name__}: {err}") from None
    return parsed


def record_from_json(obj: Any, kind: str) -> arena_pb2.TrainingRecord:
    """The record of one decoded JSONL line of `kind` ('sft' or 'preference').

    The messages must be a chat ending in a non-empty assistant answer (SFT), or a prompt and
    one assistant answer each for chosen and rejected (preference). `id`, the models, `score`,
    `margin` and `provenance` are optional, so hand-made files train too.
    """
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {type(obj).__name__}")
    record = arena_pb2.TrainingRecord(record_id=_text(obj, "id"), kind=kind)
    if kind == SFT:
        if not isinstance(obj.get("messages"), list) or not obj["messages"]:
            hint = " (this looks like a preference pair: give sft.jsonl)" if "chosen" in obj \
                else ""
            raise RecordError(f"no 'messages' list{hint}")
        chat = _chat(obj["messages"], "messages")
        if chat[-1]["role"] != "assistant":
            raise RecordError(f"the last message must be the assistant's answer, got role "
                              f"{chat[-1]['role']!r}")
        if len(chat) < 2:
            raise RecordError("no user message before the answer")
        if not chat[-1]["content"].strip():
            raise RecordError("the answer is empty")
        prompt, record.chosen = chat[:-1], chat[-1]["content"]
        record.chosen_model = _text(obj, "model")
        score = number_field(obj, "score")
        if score is not None:
            record.score = score
    elif kind == PREFERENCE:
        if "prompt" not in obj and "messages" in obj:
            raise RecordError("no 'prompt' list (this looks like an SFT record: give "
                              "preference.jsonl)")
        prompt = _chat(obj.get("prompt"), "prompt")
        record.chosen = _answer(obj.get("chosen"), "chosen")
        record.rejected = _answer(obj.get("rejected"), "rejected")
        record.chosen_model = _text(obj, "chosen_model")
        record.rejected_model = _text(obj, "rejected_model")
        margin = number_field(obj, "margin")
        if margin is not None:
            record.margin = margin
    else:
        raise RecordError(f"kind must be one of {KINDS}, got {kind!r}")
    record.prompt_messages.extend(arena_pb2.ChatTurn(**t) for t in prompt)
    record.prompt = _last_user_text(prompt)
    if obj.get("provenance") is not None:
        record.provenance.CopyFrom(_provenance(obj["provenance"]))
    return record


def _last_user_text(prompt: Sequence[Turn]) -> str:
    return next((t["content"] for t in reversed(prompt) if t["role"] == "user"), "")
