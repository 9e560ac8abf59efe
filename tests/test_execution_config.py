"""The `execution` block of the arena config: defaults, validation, and the config hash."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from warriorcoder.config import ConfigError, parse_config

ROSTER = [{"id": n, "backend": "fake", "model": "fake"} for n in ("a", "b", "c")]


def config(**execution: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"roster": ROSTER}
    if execution:
        data["execution"] = execution
    return data


def test_execution_is_off_by_default_with_documented_defaults() -> None:
    ex = parse_config(config()).execution
    assert not ex.enabled
    assert (ex.weight, ex.timeout_s, ex.memory_mb, ex.concurrency, ex.tests_max_tokens) == (
        0.5, 10.0, 512, 4, 512)
    assert ex.generate_tests


@pytest.mark.parametrize(("execution", "message"), [
    ({"weight": 1.5}, "execution.weight: Input should be less than or equal to 1"),
    ({"weight": -0.1}, "execution.weight: Input should be greater than or equal to 0"),
    ({"timeout_s": 0}, "execution.timeout_s: Input should be greater than 0"),
    ({"memory_mb": 16}, "execution.memory_mb: Input should be greater than or equal to 64"),
    ({"concurrency": 0}, "execution.concurrency: Input should be greater than or equal to 1"),
    ({"tests_max_tokens": 4}, "execution.tests_max_tokens: Input should be greater than or equal"),
    ({"enabled": "sometimes"}, "execution.enabled: Input should be a valid boolean"),
    ({"timeout": 5}, "execution.timeout: Extra inputs are not permitted"),
])
def test_bad_execution_settings_name_the_field(execution: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(config(**execution))
    assert message in str(err.value)


def test_the_hash_ignores_execution_while_it_is_off() -> None:
    plain = parse_config(config())
    # The hash of a config without the block, as computed before the block (and arenas) existed.
    data = plain.model_dump(mode="json")
    del data["execution"], data["arena"]
    before = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    assert plain.config_hash() == before
    assert parse_config(config(weight=0.9, enabled=False)).config_hash() == before
    on = parse_config(config(enabled=True))
    assert on.config_hash() != before
    assert parse_config(config(enabled=True, weight=0.9)).config_hash() != on.config_hash()
