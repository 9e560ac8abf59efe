"""The environment is read only by the settings (`RuntimeSettings` in warriorcoder.config, the
services' `ServiceSettings`), and no module sets a variable."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_layout import GENERATED, module_files

from warriorcoder.config import RuntimeSettings, runtime_settings

# The modules allowed to read the environment.
SETTINGS_MODULES = {"warriorcoder.config", "warriorcoder.service.settings"}
# os functions that read or change the environment.
ENV_FUNCTIONS = {"getenv", "getenvb", "putenv", "unsetenv"}


def environment_uses(tree: ast.AST) -> list[int]:
    """Lines that touch the process environment: os.environ / os.environb, os.getenv and its
    kin, or those names imported from os."""
    names = ENV_FUNCTIONS | {"environ", "environb"}
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            uses = node.value.id == "os" and node.attr in names
        elif isinstance(node, ast.ImportFrom):
            uses = node.module == "os" and any(alias.name in names for alias in node.names)
        else:
            uses = False
        if uses:
            lines.append(node.lineno)
    return sorted(lines)


def test_the_scan_finds_every_kind_of_environment_use() -> None:
    code = ("import os\nfrom os import environ\nos.environ['A'] = '1'\nx = os.getenv('B')\n"
            "os.environ.setdefault('C', '1')\ny = os.path.join('a')\n")
    assert environment_uses(ast.parse(code)) == [2, 3, 4, 5]


def test_only_the_settings_read_the_environment() -> None:
    modules = module_files()
    assert SETTINGS_MODULES <= modules.keys()
    found = {name: lines for name, path in modules.items()
             if name not in SETTINGS_MODULES
             and (lines := environment_uses(ast.parse(path.read_text())))}
    assert found == {}, f"modules that read or set the environment (module: lines): {found}"


def test_importing_every_module_sets_no_environment_variable() -> None:
    names = sorted({*module_files(), GENERATED})
    code = ("import json, os\nbefore = dict(os.environ)\n"
            + "".join(f"import {n}\n" for n in names)
            + "after = dict(os.environ)\n"
            "print(json.dumps({k: after.get(k) for k in before.keys() | after.keys()"
            " if before.get(k) != after.get(k)}))\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "TRANSFORMERS_", "WARRIORCODER_"))}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == {}


def test_runtime_settings_cache_folder() -> None:
    home = Path.home()
    assert RuntimeSettings.from_env({}).cache_dir == home / ".cache" / "warriorcoder"
    assert RuntimeSettings.from_env({"WARRIORCODER_CACHE": ""}).cache_dir == (
        home / ".cache" / "warriorcoder")  # set but empty: the default, not the working dir
    assert RuntimeSettings.from_env({"WARRIORCODER_CACHE": "~/models"}).cache_dir == (
        home / "models")
    assert RuntimeSettings.from_env({"WARRIORCODER_CACHE": "/srv/wc"}).cache_dir == Path("/srv/wc")


def test_runtime_settings_api_keys_are_read_and_never_printed() -> None:
    settings = RuntimeSettings.from_env({"CODER_KEY": "sk-secret"})
    assert settings.api_key("CODER_KEY") == "sk-secret"
    assert settings.api_key("OTHER_KEY") == ""
    assert "sk-secret" not in repr(settings) and "sk-secret" not in str(settings)


def test_runtime_settings_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARRIORCODER_CACHE", "/tmp/wc-cache-test")
    assert runtime_settings().cache_dir == Path("/tmp/wc-cache-test")
    monkeypatch.delenv("WARRIORCODER_CACHE")
    assert runtime_settings().cache_dir == Path.home() / ".cache" / "warriorcoder"
