"""execution.min_isolation: the judge runs answers only in the sandbox mode the operator
allowed, says which one (start-up, /metrics, every stored result), and refuses to start else."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from warriorcoder.config import ConfigError, parse_config
from warriorcoder.execution import SandboxMode, run_tests, sandbox_info
from warriorcoder.service.metrics import ServiceMetrics
from warriorcoder.stages.judge import Judge
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

REPO = Path(__file__).resolve().parents[1]
RIGHT = "```python\ndef add(a, b):\n    return a + b\n```"
TESTS = "assert add(2, 3) == 5\n"


def arena(**execution: Any) -> dict[str, Any]:
    return {
        "round_id": "r1",
        "roster": [{"id": n, "backend": "fake", "model": "fake:prefer-first"}
                   for n in ("alpha", "beta", "gamma")],
        "execution": {"enabled": True, "timeout_s": 10, **execution},
    }


def judge(tmp_path: Path, **execution: Any) -> Judge:
    from warriorcoder.backends import load_backend

    config = parse_config(arena(**execution))
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    return Judge(config, {e.id: load_backend(e) for e in config.roster}, store)


def test_min_isolation_setting() -> None:
    assert parse_config(arena()).execution.min_isolation == "jail"  # default: the strongest
    assert parse_config(arena(min_isolation="user-jail")).execution.min_isolation == "user-jail"
    with pytest.raises(ConfigError, match=r"execution\.min_isolation"):
        parse_config(arena(min_isolation="none"))


def test_judge_records_the_mode_on_every_execution_result(tmp_path: Path) -> None:
    mode = sandbox_info().mode
    stage = judge(tmp_path, min_isolation=mode.value)
    assert stage.isolation is not None and stage.isolation.mode is mode
    assert stage.limits.min_isolation is mode
    pair = arena_pb2.ResponsePair(battle_id="b1", challenge_id="c1", round_id="r1",
                                  instruction="Write add(a, b).", model_a="alpha",
                                  model_b="beta", judges=["gamma"], tests=TESTS)
    pair.response_a.model_id, pair.response_b.model_id = "alpha", "beta"
    pair.response_a.generation.text = pair.response_b.generation.text = RIGHT
    (item,) = asyncio.run(stage.handle([pair]))
    assert item.execution_a.status == arena_pb2.EXECUTION_STATUS_PASSED, item.execution_a.reason
    assert (item.execution_a.isolation, item.execution_b.isolation) == (mode.value, mode.value)


def test_judge_without_execution_or_with_a_stand_in_runner_checks_nothing(
        tmp_path: Path) -> None:
    assert judge(tmp_path, enabled=False).isolation is None
    config = parse_config(arena())
    stand_in = Judge(config, {}, ArenaStore.open_embedded(tmp_path / "other.db"),
                     test_runner=lambda code, tests, limits: run_tests(code, tests, limits))
    assert stand_in.isolation is None


# A machine where no namespace can be made (a container without the privilege): the kernel
# denies unshare and clone with namespace flags to this process and all it starts.
NO_NAMESPACES = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, os.path.join(REPO, "warriorcoder", "execution"))
    import jail_launcher as jl
    jl._prctl(jl.PR_SET_NO_NEW_PRIVS, 1, "no_new_privs")
    jl._install_seccomp(os.uname().machine)
    sys.path[0] = REPO
    import json
    from warriorcoder.config import parse_config
    from warriorcoder.execution import SandboxUnavailable
    from warriorcoder.stages.judge import Judge
    from warriorcoder.storage.store import ArenaStore
    config = parse_config(json.loads(sys.argv[1]))
    try:
        Judge(config, {}, ArenaStore.open_embedded(sys.argv[2]))
        print(json.dumps({"started": True}))
    except SandboxUnavailable as err:
        print(json.dumps({"started": False, "error": str(err)}))
""")


@pytest.mark.skipif(sys.platform != "linux", reason="seccomp is Linux-only")
def test_judge_refuses_to_start_when_the_sandbox_cannot_be_built(tmp_path: Path) -> None:
    from warriorcoder.execution.sandbox import seccomp_arch

    if seccomp_arch() is None:
        pytest.skip("no seccomp filter for this architecture")

    def start(**execution: Any) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, "-c", f"REPO = {str(REPO)!r}\n" + NO_NAMESPACES,
             json.dumps(arena(**execution)), str(tmp_path / f"{len(execution)}.db")],
            capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return dict(json.loads(done.stdout.splitlines()[-1]))

    refused = start(min_isolation="jail")
    assert refused["started"] is False
    assert refused["error"].startswith("sandbox: min_isolation=jail but ")
    assert "unshare: Operation not permitted" in refused["error"]
    assert start(enabled=False) == {"started": True}  # no execution: nothing to isolate


def test_metrics_show_the_mode_in_use() -> None:
    metrics = ServiceMetrics("judge")
    metrics.set_sandbox_isolation(SandboxMode.USER_JAIL.value)
    text = metrics.exposition().decode()
    assert 'warriorcoder_sandbox_isolation{mode="user-jail",service="judge"} 1.0' in text


def test_judge_service_publishes_its_mode_at_start(tmp_path: Path) -> None:
    from warriorcoder.service.runner import ServiceContext
    from warriorcoder.service.settings import ServiceSettings
    from warriorcoder.services import judge as judge_service

    config = parse_config(arena(min_isolation=SandboxMode.PLAIN.value))
    metrics = ServiceMetrics("judge")
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    context = ServiceContext("judge", ServiceSettings(arena_config=tmp_path / "arena.yaml"),
                             config, store, metrics, producer=None)  # type: ignore[arg-type]
    judge_service.build(context)
    mode = sandbox_info().mode.value
    assert (f'warriorcoder_sandbox_isolation{{mode="{mode}",service="judge"}} 1.0'
            in metrics.exposition().decode())


EVAL_WITHOUT_NAMESPACES = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, os.path.join(REPO, "warriorcoder", "execution"))
    import jail_launcher as jl
    jl._prctl(jl.PR_SET_NO_NEW_PRIVS, 1, "no_new_privs")
    jl._install_seccomp(os.uname().machine)
    sys.path[0] = REPO
    from warriorcoder.cli import main
    sys.exit(main(["eval", "humaneval", "--backend", "fake", "--model", "fake", "--problems",
                   "HumanEval/0", "--out", OUT, "--no-progress", *sys.argv[1:]]))
""")


@pytest.mark.skipif(sys.platform != "linux", reason="seccomp is Linux-only")
def test_eval_refuses_to_start_when_the_sandbox_cannot_be_built(tmp_path: Path) -> None:
    from warriorcoder.execution.sandbox import seccomp_arch

    if seccomp_arch() is None:
        pytest.skip("no seccomp filter for this architecture")
    out = tmp_path / "report.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", f"REPO = {str(REPO)!r}\nOUT = {str(out)!r}\n"
         + EVAL_WITHOUT_NAMESPACES, "--min-isolation", "jail"],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "error: sandbox: min_isolation=jail but " in done.stderr
    assert not out.exists()  # refused before generating or running anything
