"""The demo arena (`make run`, examples/arena.yaml) and a new user's first run.

Fast tests check what the demo stands on: the shipped challenges and their tests, the demo
config, a demo-shaped round with fake experts (round status, exports that load with
`datasets`, a leaderboard that does not rank what it cannot tell apart), and that the README's
commands and example files exist. The full demo with SmolLM2 takes minutes on two cores:
`make test-demo` runs it (WARRIORCODER_TEST_DEMO=1), `make test` does not.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from warriorcoder.arena.challenge_tests import check_user_tests
from warriorcoder.arena.decontamination import BenchmarkIndex, decontaminate
from warriorcoder.arena.dedup import minhash_dedup
from warriorcoder.arena.quality import not_a_coding_task
from warriorcoder.arena.tournament import unsettled_challenges
from warriorcoder.backends import load_backend
from warriorcoder.commands import build_parser
from warriorcoder.commands.round import round_state_line
from warriorcoder.config import ArenaConfig, load_config, parse_config
from warriorcoder.execution.harness import run_tests
from warriorcoder.execution.sandbox import RunStatus, SandboxLimits, SandboxMode
from warriorcoder.service.servicers.challenger import round_status
from warriorcoder.stages.challenger import Challenger, Funnel, read_user_items
from warriorcoder.stages.embedded import run_arena_sync
from warriorcoder.storage.store import ArenaStore
from warriorcoder.v1 import arena_pb2

REPO = Path(__file__).resolve().parent.parent
DEMO_CONFIG = REPO / "examples" / "arena.yaml"
DEMO_CHALLENGES = REPO / "examples" / "demo-challenges.jsonl"
README = REPO / "README.md"


def demo_items() -> list[dict[str, str]]:
    return [json.loads(line) for line in DEMO_CHALLENGES.read_text().splitlines() if line.strip()]


# -- the shipped challenges --------------------------------------------------------------------


def test_demo_challenges_are_well_formed() -> None:
    items = demo_items()
    assert 20 <= len(items) <= 40
    entry_points = [item["entry_point"] for item in items]
    assert len(set(entry_points)) == len(items), "entry points repeat"
    for item in items:
        assert set(item) == {"instruction", "entry_point", "tests", "solution"}, item
        # The instruction names the function the tests call, so an answer can be checked.
        assert f"`{item['entry_point']}(" in item["instruction"], item["instruction"]
        assert item["entry_point"] in item["tests"]
        assert check_user_tests(item["tests"]) is None, item["entry_point"]
    # The arena reads them as user instructions with tests, in file order.
    read = read_user_items(DEMO_CHALLENGES)
    assert [(r.instruction, r.tests) for r in read] == [
        (i["instruction"], i["tests"]) for i in items]


def test_demo_challenges_survive_the_challengers_filters() -> None:
    texts = [item["instruction"] for item in demo_items()]
    assert [t for t in texts if not_a_coding_task(t)] == []
    kept = minhash_dedup(texts, threshold=0.5, num_perm=128, shingle_size=3).kept
    assert sorted(kept) == list(range(len(texts))), "near-duplicates among the demo challenges"
    kept_idx, dropped = decontaminate(texts, BenchmarkIndex.humaneval(ngram=10))
    assert dropped == {} and list(kept_idx) == list(range(len(texts)))


def test_reference_solutions_pass_their_tests_and_a_wrong_answer_fails() -> None:
    # The tests must tell a right answer from a wrong one, or execution grounding has no
    # signal. The reference code is ours, so the weakest sandbox mode is enough here.
    limits = SandboxLimits(timeout_s=20, min_isolation=SandboxMode.PLAIN)
    items = demo_items()

    def check(item: dict[str, str]) -> tuple[str, RunStatus, RunStatus]:
        right = run_tests(item["solution"], item["tests"], limits)
        wrong = run_tests(f"def {item['entry_point']}(*args, **kwargs):\n    return None\n",
                          item["tests"], limits)
        return item["entry_point"], right.status, wrong.status

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(check, items))
    assert [name for name, right, _ in results if right != RunStatus.PASSED] == []
    assert [name for name, _, wrong in results if wrong == RunStatus.PASSED] == []


# -- the demo config ----------------------------------------------------------------------------


def test_the_demo_config_grounds_a_roster_of_different_experts() -> None:
    config = load_config(DEMO_CONFIG)
    assert config.execution.enabled and config.execution.weight > 0
    assert Path(config.challenger.user_instructions_file or "") == Path(
        "examples/demo-challenges.jsonl")
    smol = [e for e in config.roster if e.backend == "transformers" and e.model == "smollm2"]
    scripted = [e for e in config.roster if e.backend == "fake"]
    assert len(smol) >= 2 and len(scripted) == 1
    # The SmolLM2 experts differ in what they are told or how they sample.
    assert len({(e.system_prompt, e.sampling) for e in smol}) == len(smol)


# Challenges of the demo-shaped round with fakes: enough for every expert to attack several.
FAKE_ROUND_CHALLENGES = 9


def fake_demo_config(tmp_path: Path, **challenger: Any) -> ArenaConfig:
    """The demo config with every SmolLM2 expert replaced by a fake one and the first
    FAKE_ROUND_CHALLENGES challenges: the same tests, execution and judging, in seconds."""
    data = yaml.safe_load(DEMO_CONFIG.read_text())
    for n, expert in enumerate(data["roster"]):
        if expert["backend"] != "fake":
            data["roster"][n] = {"id": expert["id"], "backend": "fake",
                                 "model": "fake:prefer-longer"}
    challenges = tmp_path / "challenges.jsonl"
    lines = DEMO_CHALLENGES.read_text().splitlines()[:FAKE_ROUND_CHALLENGES]
    challenges.write_text("\n".join(lines) + "\n")
    data["challenger"]["user_instructions_file"] = str(challenges)
    data["challenger"].update(challenger)
    data["execution"]["concurrency"] = 4
    return parse_config(data, "demo with fakes")


def test_a_demo_shaped_round_completes_and_its_exports_load(tmp_path: Path) -> None:
    import datasets

    config = fake_demo_config(tmp_path)
    run_dir = tmp_path / "run"
    result = run_arena_sync(config, run_dir)
    assert result.challenges == FAKE_ROUND_CHALLENGES

    store = ArenaStore.open_embedded(run_dir / "arena.db")
    status = round_status(store, config.round_id, config.selection.tournament)
    assert status is not None
    assert status.challenges_ready and status.pending_challenges == 0 and status.complete
    assert status.rated_battles + status.failed_battles == len(store.battles(config.round_id))
    assert round_state_line(status).startswith("complete: every battle is rated or failed")

    # Every answer of a fake fails the demo's tests: execution says nothing, the fakes'
    # length-biased votes decide. Every exported file loads with `datasets`; a kind with no
    # records has no file (docs/exports.md).
    export = result.export
    assert export.sft_records == FAKE_ROUND_CHALLENGES
    for name, count in (("sft.jsonl", export.sft_records),
                        ("preference.jsonl", export.preference_records)):
        path = export.folder / name
        if not count:
            assert not path.exists()
            continue
        loaded = datasets.load_dataset("json", data_files=str(path), split="train")
        assert loaded.num_rows == count


def test_mined_small_talk_never_becomes_a_challenge(tmp_path: Path) -> None:
    # The Challenger drops mined texts that are not coding tasks; the funnel says why.
    config = fake_demo_config(tmp_path, per_setting=0)
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    mined = {
        "m1": "What is the capital of France? Please answer in one word.",
        "m2": "Write a Python function `median(values)` that returns the median of a list.",
        "m3": "Tell me a short story about a dragon who learns to fly.",
    }
    store.save_mined_many([
        (mined_id, arena_pb2.Challenge(round_id=config.round_id, instruction=text,
                                       attacker=config.roster[0].id, source="mined"))
        for mined_id, text in mined.items()
    ])
    challenger = Challenger(config, {e.id: load_backend(e) for e in config.roster}, store)
    funnel = Funnel()
    challenges = asyncio.run(challenger.select(funnel))
    kept = [c.instruction for c in challenges if c.source == "mined"]
    assert kept == [mined["m2"]]
    assert funnel.rejected == {"not a coding task (no code and no programming terms)": 2}


# -- round status ------------------------------------------------------------------------------


def _battle(
    cid: str, a: str, b: str, status: arena_pb2.BattleStatus.ValueType, score: float = 0.5
) -> arena_pb2.RatedBattle:
    return arena_pb2.RatedBattle(challenge_id=cid, model_a=a, model_b=b, status=status,
                                 local_score_a=score)


RATED, FAILED = arena_pb2.BATTLE_STATUS_RATED, arena_pb2.BATTLE_STATUS_FAILED


def test_a_challenge_is_settled_when_every_scheduled_battle_is_rated_or_failed() -> None:
    c = arena_pb2.Challenge(challenge_id="c", attacker="a", defenders=["b", "d"])
    assert unsettled_challenges("none", [c], []) == ["c"]
    assert unsettled_challenges("none", [c], [_battle("c", "a", "b", RATED, 1.0)]) == ["c"]
    done = [_battle("c", "a", "b", RATED, 1.0), _battle("c", "a", "d", FAILED)]
    assert unsettled_challenges("none", [c], done) == []
    # Contenders: b and d both beat a, so b meets d before the challenge is settled.
    both = [_battle("c", "a", "b", RATED, 0.0), _battle("c", "a", "d", RATED, 0.0)]
    assert unsettled_challenges("contenders", [c], both) == ["c"]
    assert unsettled_challenges("contenders", [c], [*both, _battle("c", "b", "d", FAILED)]) == []
    # A battle in another status (none is stored today) is not a result.
    pending = [_battle("c", "a", "b", arena_pb2.BATTLE_STATUS_UNSPECIFIED),
               _battle("c", "a", "d", RATED)]
    assert unsettled_challenges("none", [c], pending) == ["c"]


def test_round_status_says_what_keeps_a_round_from_being_complete(tmp_path: Path) -> None:
    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    assert round_status(store, "r") is None
    c = arena_pb2.Challenge(challenge_id="c", round_id="r", attacker="a", defenders=["b"])
    store.save_challenges([c])
    store.save_round_info("r", challenges_ready=False)
    status = round_status(store, "r", "none")
    assert status is not None and not status.complete and not status.challenges_ready
    assert round_state_line(status).startswith("not complete: the challenges are not final")
    store.save_round_info("r", challenges_ready=True)
    status = round_status(store, "r", "none")
    assert status is not None and not status.complete and status.pending_challenges == 1
    assert round_state_line(status) == (
        "not complete: 1 of 1 challenges still have battles to answer, judge or rate")
    failed = _battle("c", "a", "b", FAILED)
    failed.battle_id, failed.round_id = "b1", "r"
    store.save_battles([failed])
    status = round_status(store, "r", "none")
    assert status is not None and status.complete and status.failed_battles == 1
    assert "(1 failed, each with its reason stored on the battle)" in round_state_line(status)


def test_round_status_reads_the_round_a_chunk_at_a_time(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from warriorcoder.arena.ids import battle_id

    store = ArenaStore.open_embedded(tmp_path / "arena.db")
    store.save_round_info("r", challenges_ready=True)
    challenges = [arena_pb2.Challenge(challenge_id=f"c{i}", round_id="r", attacker="a",
                                      defenders=["b", "d"]) for i in range(7)]
    store.save_challenges(challenges)
    battles = []
    for i, c in enumerate(challenges):  # c0..c4 settled (c4 by a failure); c5, c6 half fought
        for d in ("b", "d") if i < 5 else ("b",):
            b = _battle(c.challenge_id, "a", d, FAILED if (i, d) == (4, "d") else RATED, 0.8)
            b.battle_id, b.round_id = battle_id(c.challenge_id, "a", d), "r"
            battles.append(b)
    store.save_battles(battles)
    store.save_judgments([arena_pb2.Judgment(judgment_id=f"j{i}", battle_id=b.battle_id)
                          for i, b in enumerate(battles[:3])])

    def whole_round(*args: Any) -> None:
        raise AssertionError("round status loaded the whole round")

    monkeypatch.setattr(store, "challenges", whole_round)
    monkeypatch.setattr(store, "battles", whole_round)
    for chunk in (1, 2, 3, 1000):
        status = round_status(store, "r", "none", chunk=chunk)
        assert status is not None
        assert (status.challenges, status.judgments, status.rated_battles,
                status.failed_battles, status.pending_challenges, status.complete) == (
            7, 3, 11, 1, 2, False), chunk


# -- the README as a new user reads it ---------------------------------------------------------


def _readme_commands() -> list[str]:
    """Every `warriorcoder ...` line of the README's bash blocks."""
    text = README.read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, re.DOTALL)
    lines = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if re.match(r"(?:\.venv/bin/)?warriorcoder ", line)]


def test_readme_commands_parse_and_say_where_warriorcoder_comes_from() -> None:
    commands = _readme_commands()
    assert len(commands) >= 5
    parser = build_parser()
    for line in commands:
        argv = shlex.split(line)[1:]
        try:
            parser.parse_args(argv)
        except SystemExit as exc:  # argparse exits on an unknown verb or flag
            pytest.fail(f"README command does not parse: {line} ({exc})")
    text = README.read_text()
    # `warriorcoder` lives in the virtualenv that `make run` creates.
    assert "source .venv/bin/activate" in text


def test_files_the_readme_names_under_examples_exist() -> None:
    named = set(re.findall(r"\bexamples/[\w./-]+\w", README.read_text()))
    assert "examples/my-instructions.txt" in named
    missing = sorted(p for p in named if not (REPO / p).exists())
    assert missing == []
    items = read_user_items(REPO / "examples" / "my-instructions.txt")
    assert items and all(not_a_coding_task(i.instruction) is None for i in items)
    assert load_config(REPO / "examples" / "arena-vllm.yaml").roster


# -- the full demo (minutes: make test-demo) ---------------------------------------------------


@pytest.mark.model
@pytest.mark.skipif(not os.environ.get("WARRIORCODER_TEST_DEMO"),
                    reason="the full demo takes minutes: make test-demo")
def test_make_run_demo_tells_experts_apart(tmp_path: Path) -> None:
    import datasets

    run_dir = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "warriorcoder.cli", "run", "--config", str(DEMO_CONFIG),
         "--run-dir", str(run_dir), "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=3600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "## Leaderboard: " in out and "### Judges" in out
    pairs = int(re.search(r"preference pairs:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    assert pairs > 0
    for name, column in (("sft.jsonl", "messages"), ("preference.jsonl", "chosen")):
        loaded = datasets.load_dataset("json", data_files=str(run_dir / "export" / name),
                                       split="train")
        assert loaded.num_rows > 0 and column in loaded.column_names
    board = json.loads((run_dir / "export" / "leaderboard.json").read_text())
    assert {r["model_id"] for r in board["ratings"]} == {
        e.id for e in load_config(DEMO_CONFIG).roster}
    config = load_config(DEMO_CONFIG)
    store = ArenaStore.open_embedded(run_dir / "arena.db")
    status = round_status(store, config.round_id, config.selection.tournament)
    assert status is not None and status.complete
