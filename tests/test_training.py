"""`warriorcoder train`: reading the export, answer-only SFT and DPO with TRL, re-entry.

The trainers run on a tiny random Llama built in code (seconds). `@pytest.mark.model` tests
fine-tune the real SmolLM2-135M-Instruct on the CPU, check that the training loss falls, that
the saved folder serves through the transformers backend, and that the fine-tuned model
battles in the next arena round.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("trl")

from test_backends_transformers import build_tiny_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from warriorcoder import cli
from warriorcoder.backends.base import ChatMessage, ChatRequest, GenerationResult
from warriorcoder.backends.transformers import TransformersBackend
from warriorcoder.config import ExpertConfig, SamplingConfig, parse_config
from warriorcoder.stages.embedded import run_arena
from warriorcoder.storage.store import ArenaStore
from warriorcoder.training import (
    IGNORE_INDEX,
    LOG_FILE,
    PROVENANCE_FILE,
    LoraSettings,
    TrainingError,
    TrainingSettings,
    answer_only_batch,
    chat_renderer,
    file_sha256,
    find_data_file,
    fit_records,
    load_records,
    prompt_and_target,
    roster_entry,
    split_eval,
    train,
    trainer_row,
)
from warriorcoder.training.models import load_tokenizer
from warriorcoder.training.trainer import build_trainer
from warriorcoder.v1 import arena_pb2

REPO = Path(__file__).resolve().parents[1]

# A fixed, tiny SFT set: short answers that a model can fit in a few steps.
RECORDS = [
    ("Write a Python function that returns the square of x.",
     "def square(x):\n    return x * x"),
    ("Write a Python function that adds two numbers a and b.",
     "def add(a, b):\n    return a + b"),
    ("Write a Python function that reverses a string s.",
     "def reverse(s):\n    return s[::-1]"),
    ("Write a Python function that returns the maximum of a list.",
     "def maximum(values):\n    return max(values)"),
]
REJECTED = "hello world"
USER = {"role": "user", "content": "q"}
ANSWER = {"role": "assistant", "content": "a"}


def sft_line(prompt: str, answer: str, index: int = 0) -> dict[str, Any]:
    return {"id": f"c{index}/sft",
            "messages": [{"role": "user", "content": prompt},
                         {"role": "assistant", "content": answer}],
            "model": "expert-a", "score": 0.8, "provenance": {"round_id": "r"}}


def preference_line(prompt: str, answer: str, index: int = 0) -> dict[str, Any]:
    return {"id": f"c{index}/preference", "prompt": [{"role": "user", "content": prompt}],
            "chosen": [{"role": "assistant", "content": answer}],
            "rejected": [{"role": "assistant", "content": REJECTED}],
            "chosen_model": "expert-a", "rejected_model": "expert-b", "margin": 0.4,
            "provenance": {"round_id": "r"}}


def write_run(folder: Path, rows: list[dict[str, Any]] | None = None,
              pairs: list[dict[str, Any]] | None = None) -> Path:
    """A run folder laid out like `warriorcoder run` leaves it (RUN_DIR/export/*.jsonl)."""
    export = folder / "export"
    export.mkdir(parents=True)
    rows = rows if rows is not None else [sft_line(p, a, i) for i, (p, a) in enumerate(RECORDS)]
    pairs = pairs if pairs is not None else [preference_line(p, a, i)
                                             for i, (p, a) in enumerate(RECORDS)]
    (export / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (export / "preference.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pairs))
    return folder


# --------------------------------------------------------------------------- records


def test_run_folder_export_folder_and_file_all_find_the_data_file(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run")
    sft, pref = run / "export" / "sft.jsonl", run / "export" / "preference.jsonl"
    assert find_data_file(run, "sft") == sft
    assert find_data_file(run / "export", "sft") == sft
    assert find_data_file(sft, "sft") == sft
    assert find_data_file(run, "dpo") == pref
    loaded = load_records(sft, "sft")
    assert [r.chosen for r in loaded] == [a for _, a in RECORDS]
    assert trainer_row(loaded[0]) == {
        "prompt": [{"role": "user", "content": RECORDS[0][0]}],
        "completion": [{"role": "assistant", "content": RECORDS[0][1]}]}
    assert loaded[0].record_id == "c0/sft" and loaded[0].score == 0.8
    pairs = load_records(pref, "dpo")
    assert trainer_row(pairs[1]) == {
        "prompt": [{"role": "user", "content": RECORDS[1][0]}],
        "chosen": [{"role": "assistant", "content": RECORDS[1][1]}],
        "rejected": [{"role": "assistant", "content": REJECTED}]}
    assert pairs[1].margin == 0.4 and pairs[1].rejected_model == "expert-b"


def test_missing_run_folder_and_folder_without_export_are_named(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"no such file or folder"):
        find_data_file(tmp_path / "nope", "sft")
    (tmp_path / "empty-run").mkdir()
    with pytest.raises(TrainingError, match=r"no export/sft.jsonl in this folder"):
        find_data_file(tmp_path / "empty-run", "sft")
    with pytest.raises(TrainingError, match=r"no export/preference.jsonl in this folder"):
        find_data_file(tmp_path / "empty-run", "dpo")


def test_empty_export_file_is_an_error(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", rows=[], pairs=[])
    with pytest.raises(TrainingError, match=r"no SFT records"):
        load_records(find_data_file(run, "sft"), "sft")
    with pytest.raises(TrainingError, match=r"no preference pairs"):
        load_records(find_data_file(run, "dpo"), "dpo")


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", r"line 2: not valid JSON"),
    ('["a list"]', r"line 2: expected a JSON object"),
    ('{"prompt": [], "chosen": [], "rejected": []}', r"line 2: no 'messages'.*preference pair"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', r"line 2: the last message must be"),
    ('{"messages": [{"role": "assistant", "content": "x"}]}', r"line 2: no user message"),
    ('{"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}',
     r"line 2: messages\[0\] needs string 'role' and 'content'"),
    ('{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]}',
     r"line 2: the answer is empty"),
    (json.dumps({"messages": [USER, ANSWER], "score": "high"}),
     r"line 2: 'score' must be a number"),
    (json.dumps({"messages": [USER, ANSWER],
                 "provenance": {"votes": [{"judge": "j", "verdict": "maybe"}]}}),
     r"line 2: provenance"),
])
def test_bad_sft_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps(sft_line("q", "a")) + "\n" + line + "\n")
    with pytest.raises(TrainingError, match=message):
        load_records(path, "sft")


@pytest.mark.parametrize(("line", "message"), [
    (json.dumps(sft_line("q", "a")), r"line 2: no 'prompt' list.*SFT record"),
    ('{"prompt": [{"role": "user", "content": "q"}], "chosen": [], "rejected": []}',
     r"line 2: no 'chosen' list"),
    (json.dumps({"prompt": [USER], "chosen": [USER], "rejected": [ANSWER]}),
     r"line 2: 'chosen' must be one assistant message"),
    (json.dumps({"prompt": [USER], "chosen": [ANSWER],
                 "rejected": [{"role": "assistant", "content": ""}]}),
     r"line 2: the rejected answer is empty"),
])
def test_bad_preference_line_names_file_and_line(tmp_path: Path, line: str,
                                                 message: str) -> None:
    path = tmp_path / "preference.jsonl"
    path.write_text(json.dumps(preference_line("q", "a")) + "\n" + line + "\n")
    with pytest.raises(TrainingError, match=message):
        load_records(path, "dpo")


def test_eval_split_holds_out_and_refuses_to_leave_nothing() -> None:
    train_idx, eval_idx = split_eval(10, 0.2, seed=0)
    assert len(eval_idx) == 2 and sorted(train_idx + eval_idx) == list(range(10))
    assert split_eval(3, 0.0, seed=0) == ([0, 1, 2], [])
    with pytest.raises(TrainingError, match=r"--eval-fraction 0.9: .* leaves none"):
        split_eval(1, 0.9, seed=0)


def test_settings_errors_name_the_option(tmp_path: Path) -> None:
    base = TrainingSettings(data=tmp_path, base="smollm2", output=tmp_path / "o")
    for change, message in [({"batch_size": 0}, r"--batch-size must be >= 1"),
                            ({"dtype": "int8"}, r"--dtype must be one of"),
                            ({"lora": LoraSettings(r=0)}, r"--lora-r must be >= 1"),
                            ({"method": "ppo"}, r"--method must be one of"),
                            ({"beta": 0.0}, r"--beta must be > 0"),
                            ({"device": "cuda:1"}, r"--device .*CUDA_VISIBLE_DEVICES")]:
        with pytest.raises(TrainingError, match=message):
            TrainingSettings(**{**base.__dict__, **change}).validate()
    assert base.peak_learning_rate == 2e-5
    assert TrainingSettings(**{**base.__dict__, "lora": LoraSettings()}).peak_learning_rate == 2e-4
    assert TrainingSettings(**{**base.__dict__, "method": "dpo"}).peak_learning_rate == 1e-6


# --------------------------------------------------------------------------- tiny model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-base"))


def tiny_settings(run: Path, base: Path, output: Path, **overrides: Any) -> TrainingSettings:
    fields: dict[str, Any] = {"data": run, "base": str(base), "output": output,
                              "max_steps": 6, "learning_rate": 3e-3, "batch_size": 4,
                              "max_seq_len": 128, "device": "cpu", "dtype": "float32",
                              "lr_schedule": "constant"}
    fields.update(overrides)
    return TrainingSettings(**fields)


def sft_records(tmp_path: Path) -> list[arena_pb2.TrainingRecord]:
    run = write_run(tmp_path / "records")
    return load_records(find_data_file(run, "sft"), "sft")


def check_labels(tokenizer: Any, folder: Path, records: list[arena_pb2.TrainingRecord],
                 scratch: Path, turn_end: str) -> None:
    """In the dataset SFTTrainer trains on, every labelled token is an answer token and the
    mask ends exactly where the template's generation prompt ends."""
    settings = tiny_settings(scratch, folder, scratch / "out", max_seq_len=512)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    trainer = build_trainer(settings, model, tokenizer, [trainer_row(r) for r in records], [],
                            scratch / "trainer")
    render = chat_renderer(tokenizer)
    prepared = trainer.train_dataset
    assert len(prepared) == len(records)
    for record, example in zip(records, prepared, strict=True):
        prompt = [{"role": "user", "content": record.prompt}]
        prompt_text = render(prompt, True)
        n = len(tokenizer(prompt_text, add_special_tokens=False)["input_ids"])
        ids, labels = example["input_ids"], example["labels"]
        assert labels[:n] == [IGNORE_INDEX] * n
        assert labels[n:] == ids[n:] and IGNORE_INDEX not in labels[n:]
        assert tokenizer.decode(ids[:n]) == prompt_text
        assert tokenizer.decode(ids[n:]) == record.chosen + turn_end
        assert prompt_and_target(render, prompt, record.chosen, record.record_id) == (
            prompt_text, record.chosen + turn_end)


def test_sft_trainer_labels_cover_exactly_the_answer_under_chatml(tiny: Path,
                                                                  tmp_path: Path) -> None:
    check_labels(load_tokenizer(tiny), tiny, sft_records(tmp_path), tmp_path, "<|im_end|>\n")


def test_template_that_rewrites_the_prompt_is_refused() -> None:
    # A template whose generation prompt is not the start of the whole chat: no exact boundary.
    def render(messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        return "PROMPT>" if add_generation_prompt else "CHAT:" + messages[-1]["content"]

    with pytest.raises(TrainingError, match=r"record c0: the chat template does not render"):
        prompt_and_target(render, [{"role": "user", "content": "q"}], "a", "c0")


def test_records_that_do_not_fit_are_cut_or_dropped(tiny: Path, tmp_path: Path) -> None:
    tokenizer = load_tokenizer(tiny)
    records = sft_records(tmp_path)
    records[1].chosen = "x " * 200
    render = chat_renderer(tokenizer)

    def tokens(record: arena_pb2.TrainingRecord, *answer: str) -> int:
        chat = [{"role": "user", "content": record.prompt}]
        chat += [{"role": "assistant", "content": a} for a in answer]
        return len(tokenizer(render(chat, not answer), add_special_tokens=False)["input_ids"])

    # Room for every whole chat but the long one, whose prompt still fits.
    fit = fit_records(records, tokenizer,
                      max_len=max(tokens(r, r.chosen) for r in records if r is not records[1]))
    assert fit.truncated == ["c1/sft"] and fit.dropped == [] and len(fit.kept) == 4
    fit = fit_records(records, tokenizer, max_len=min(tokens(r) for r in records))
    assert fit.kept == [] and len(fit.dropped) == len(records)


def chat_once(folder: Path, expert_id: str = "tuned") -> GenerationResult:
    backend = TransformersBackend(ExpertConfig(id=expert_id, backend="transformers",
                                               model=str(folder), dtype="float32"))
    try:
        request = ChatRequest((ChatMessage("user", RECORDS[0][0]),),
                              SamplingConfig(temperature=0.0, max_tokens=6))
        out = asyncio.run(backend.chat([request]))[0]
    finally:
        asyncio.run(backend.aclose())
    assert isinstance(out, GenerationResult), out
    return out


def state(folder: Path) -> dict[str, Any]:
    return dict(AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
                .state_dict())


def test_tiny_full_fine_tune_saves_a_servable_folder_with_log_and_provenance(
    tiny: Path, tmp_path: Path
) -> None:
    run = write_run(tmp_path / "run")
    # The export's manifest beside the data: the model records which dataset it trained on.
    (run / "export" / "manifest.json").write_text(json.dumps({
        "format": "warriorcoder.export/1", "dataset_id": "d" * 16, "scope": "round:r",
        "files": [{"name": "sft.jsonl", "sha256": file_sha256(run / "export" / "sft.jsonl")}]}))
    result = train(tiny_settings(run, tiny, tmp_path / "out", eval_fraction=0.25),
                   progress=False)
    out = tmp_path / "out"
    assert result.output == out and result.saved == "full" and result.method == "sft"
    assert result.steps == 6 and result.examples == 3 and result.eval_examples == 1
    assert result.probe_loss_after < result.probe_loss_before
    assert result.eval_loss_before is not None and result.eval_loss_after is not None
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".safetensors") == [
        "model.safetensors"]
    assert not list(tmp_path.glob(".out.partial-*"))  # the staging folder was renamed
    assert not (out / ".trainer").exists()
    log = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    steps = [e for e in log if "loss" in e]
    assert [e["step"] for e in steps] == [1, 2, 3, 4, 5, 6]
    assert [e["loss"] for e in steps] == result.losses
    assert all(e["tokens"] > 0 and e["lr"] == 3e-3 for e in steps)
    assert [e["step"] for e in log if "probe_loss" in e] == [0, 6]
    assert any("eval_loss" in e and e["step"] == 6 for e in log)
    provenance = json.loads((out / PROVENANCE_FILE).read_text())
    sft = run / "export" / "sft.jsonl"
    assert provenance["method"] == "sft"
    assert provenance["data"]["sha256"] == file_sha256(sft)
    assert provenance["data"]["records"] == 4
    manifest = provenance["export_manifest"]
    assert (manifest["dataset_id"], manifest["scope"], manifest["matches_data"]) == (
        "d" * 16, "round:r", True)
    assert manifest["path"] == str((run / "export" / "manifest.json").resolve())
    assert provenance["base"] == str(tiny)
    assert provenance["hyperparameters"]["learning_rate"] == 3e-3
    assert provenance["results"]["probe_loss_after"] == result.probe_loss_after
    assert "trl" in provenance["versions"]
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(str(tiny)).chat_template
    # The saved folder gives the loss the trainer measured on the probe batch.
    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    rows = [trainer_row(r) for r in load_records(sft, "sft")]
    train_rows = [rows[i] for i in split_eval(4, 0.25, 0)[0]]
    batch = answer_only_batch(tokenizer, [(r["prompt"], r["completion"][0]["content"])
                                          for r in train_rows], 128)
    with torch.no_grad():
        assert float(model(**batch).loss) == pytest.approx(result.probe_loss_after, rel=1e-4)
    assert chat_once(out).completion_tokens > 0


def test_dpo_trains_on_the_preference_pairs(tiny: Path, tmp_path: Path) -> None:
    run = write_run(tmp_path / "run")
    result = train(tiny_settings(run, tiny, tmp_path / "dpo", method="dpo", max_steps=4,
                                 learning_rate=1e-2), progress=False)
    out = tmp_path / "dpo"
    assert result.method == "dpo" and result.steps == 4 and result.examples == 4
    # The policy starts as the reference: the DPO loss is ln 2, then falls.
    assert result.probe_loss_before == pytest.approx(0.6931, abs=1e-3)
    assert result.probe_loss_after < result.probe_loss_before
    base, tuned = state(tiny), state(out)
    assert set(base) == set(tuned)
    assert any(not torch.equal(base[k], tuned[k]) for k in base)
    log = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    steps = [e for e in log if "loss" in e]
    assert len(steps) == 4 and steps[-1]["reward_margin"] > 0
    provenance = json.loads((out / PROVENANCE_FILE).read_text())
    assert provenance["data"]["sha256"] == file_sha256(run / "export" / "preference.jsonl")
    assert provenance["hyperparameters"]["beta"] == 0.1
    assert chat_once(out).completion_tokens > 0


def test_dpo_with_lora_uses_the_base_as_reference_and_merges(tiny: Path, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    run = write_run(tmp_path / "run")
    result = train(tiny_settings(run, tiny, tmp_path / "dpo-lora", method="dpo", max_steps=3,
                                 learning_rate=1e-2, lora=LoraSettings(r=4, alpha=8, dropout=0.0)),
                   progress=False)
    # The reference is the base with the adapters off: the loss starts at ln 2 here too.
    assert result.saved == "merged"
    assert result.probe_loss_before == pytest.approx(0.6931, abs=1e-3)
    assert result.probe_loss_after < result.probe_loss_before
    base, tuned = state(tiny), state(tmp_path / "dpo-lora")
    changed = [k for k in base if not torch.equal(base[k], tuned[k])]
    assert changed and all("proj" in k for k in changed)


def test_existing_output_is_kept_unless_overwrite(tiny: Path, tmp_path: Path) -> None:
    run = write_run(tmp_path / "run")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(TrainingError, match=r"--output .* exists and is not empty"):
        train(tiny_settings(run, tiny, out, max_steps=1), progress=False)
    assert (out / "keep.txt").is_file() and not list(tmp_path.glob(".out.partial-*"))
    train(tiny_settings(run, tiny, out, max_steps=1, overwrite=True), progress=False)
    assert not (out / "keep.txt").exists() and (out / "config.json").is_file()


def test_lora_is_merged_into_a_plain_folder(tiny: Path, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    run = write_run(tmp_path / "run")
    lora = LoraSettings(r=4, alpha=8, dropout=0.0)
    result = train(tiny_settings(run, tiny, tmp_path / "merged", lora=lora, learning_rate=1e-2),
                   progress=False)
    merged = tmp_path / "merged"
    assert result.saved == "merged"
    assert result.probe_loss_after < result.probe_loss_before
    assert not (merged / "adapter_config.json").exists()
    base, tuned = state(tiny), state(merged)
    assert set(base) == set(tuned)  # same architecture, no lora_ weights left
    changed = [k for k in base if not torch.equal(base[k], tuned[k])]
    assert changed and all("proj" in k for k in changed)  # only the adapted linear layers
    assert chat_once(merged).completion_tokens > 0
    adapter = train(tiny_settings(run, tiny, tmp_path / "adapter", max_steps=1,
                                  lora=LoraSettings(r=4, merge=False)), progress=False)
    assert adapter.saved == "adapter"
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()
    # Adapters on layers the model does not have: named, and nothing left behind.
    with pytest.raises(TrainingError, match=r"--lora-targets nope_proj: .*nope_proj"):
        train(tiny_settings(run, tiny, tmp_path / "bad", max_steps=1,
                            lora=LoraSettings(target_modules=("nope_proj",))), progress=False)
    assert not (tmp_path / "bad").exists() and not list(tmp_path.glob(".bad.partial-*"))


def test_cli_train_and_its_errors(tiny: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "run")
    args = ["train", "--data", str(run), "--base", str(tiny), "--output", str(tmp_path / "m"),
            "--max-steps", "2", "--device", "cpu", "--no-progress", "--max-seq-len", "96"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "sft: 2 steps on 4 examples" in out and "backend: transformers" in out
    assert (tmp_path / "m" / "model.safetensors").is_file()

    def error(*argv: str) -> str:
        assert cli.main(list(argv)) == 2
        return capsys.readouterr().err

    common = ["--output", str(tmp_path / "x"), "--no-progress"]
    assert "no such file or folder" in error("train", "--data", str(tmp_path / "nope"),
                                             "--base", str(tiny), *common)
    assert "not 'smollm2' and not a folder" in error("train", "--data", str(run),
                                                     "--base", "gpt-17", *common)
    assert "no config.json" in error("train", "--data", str(run), "--base", str(run), *common)
    empty = write_run(tmp_path / "empty", rows=[], pairs=[])
    assert "no SFT records" in error("train", "--data", str(empty), "--base", str(tiny), *common)
    assert "no preference pairs" in error("train", "--method", "dpo", "--data", str(empty),
                                          "--base", str(tiny), *common)
    assert "--no-merge only applies with --lora" in error(
        "train", "--data", str(run), "--base", str(tiny), "--no-merge", *common)
    assert "--max-seq-len 8; nothing left" in error(
        "train", "--data", str(run), "--base", str(tiny), "--max-seq-len", "8", *common)
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.partial-*"))


def test_gpu_check_script_runs_tiny_on_cpu(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_train_check.py"), "--size", "tiny",
         "--device", "cpu", "--work-dir", str(tmp_path), "--json", str(tmp_path / "r.json"),
         "--no-progress"],
        check=False, capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert {r["mode"] for r in report["runs"]} >= {"sft", "dpo"}
    for r in report["runs"]:
        assert r["loss_after"] < r["loss_before"] and r["reloaded"]


# --------------------------------------------------------------------------- SmolLM2


@pytest.fixture(scope="module")
def smol_base() -> Path:
    from warriorcoder.backends.smollm2 import smollm2_path

    return smollm2_path()


@pytest.fixture(scope="module")
def smol_tuned(tmp_path_factory: pytest.TempPathFactory, smol_base: Path) -> tuple[Path, Any]:
    """SmolLM2 fully fine-tuned on the fixed set for a few steps (CPU, float32)."""
    folder = tmp_path_factory.mktemp("smol-sft")
    run = write_run(folder / "run")
    result = train(TrainingSettings(
        data=run, base="smollm2", output=folder / "model", max_steps=2, learning_rate=1e-4,
        batch_size=4, max_seq_len=96, device="cpu", dtype="float32", lr_schedule="constant",
    ), progress=False)
    return folder / "model", result


@pytest.mark.model
def test_smollm2_labels_start_after_its_generation_prompt(smol_base: Path,
                                                          tmp_path: Path) -> None:
    tokenizer = load_tokenizer(smol_base)
    check_labels(tokenizer, smol_base, sft_records(tmp_path), tmp_path, "<|im_end|>\n")
    # SmolLM2's template adds its default system prompt: it belongs to the masked prompt.
    prompt, _ = prompt_and_target(chat_renderer(tokenizer),
                                  [{"role": "user", "content": RECORDS[0][0]}], "a", "c0")
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith(
        "<|im_start|>assistant\n")


@pytest.mark.model
def test_smollm2_fine_tune_lowers_the_loss_and_serves(smol_base: Path,
                                                       smol_tuned: tuple[Path, Any]) -> None:
    folder, result = smol_tuned
    assert result.steps == 2 and result.saved == "full"
    # Measured independently with the model's own loss (labels -100 ignored) on the same batch:
    # the base from its folder, the fine-tuned model from the saved folder.
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    batch = answer_only_batch(tokenizer, [([{"role": "user", "content": p}], a)
                                          for p, a in RECORDS], 96)

    def hf_loss(path: Path) -> float:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        with torch.no_grad():
            return float(model(**batch).loss)

    before, after = hf_loss(smol_base), hf_loss(folder)
    assert before == pytest.approx(result.probe_loss_before, rel=1e-3)
    assert after == pytest.approx(result.probe_loss_after, rel=1e-3)
    assert after < 0.7 * before, (before, after)
    out = chat_once(folder, "smol-sft")
    assert out.completion_tokens > 0


@pytest.mark.model
def test_fine_tuned_model_reenters_the_arena(tmp_path: Path,
                                             smol_tuned: tuple[Path, Any]) -> None:
    folder, _ = smol_tuned
    short = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 12}
    config = parse_config({
        "round_id": "round-2",
        "roster": [
            roster_entry(folder, "smol-sft", dtype="float32", sampling=short),
            {"id": "fake-a", "backend": "fake", "model": "fake:prefer-longer"},
            {"id": "fake-b", "backend": "fake", "model": "fake:prefer-first"},
        ],
        "challenger": {"per_setting": 1, "min_chars": 5,
                       "sampling_grid": [{"temperature": 1.0, "max_tokens": 24}],
                       "user_instructions": [RECORDS[2][0]]},
        "judge": {"verdict_mode": "prefill", "max_tokens": 4, "retries_on_invalid": 0},
        "rating": {"bootstrap_rounds": 5},
    })
    result = asyncio.run(run_arena(config, tmp_path / "round-2"))
    store = ArenaStore.open_embedded(tmp_path / "round-2" / "arena.db")
    fought = [b for b in store.battles("round-2") if "smol-sft" in (b.model_a, b.model_b)
              and b.status == arena_pb2.BATTLE_STATUS_RATED]
    assert fought  # it answered challenges and was judged against the others
    ratings = {r.model_id: r for r in result.leaderboard.ratings}
    assert set(ratings) == {"smol-sft", "fake-a", "fake-b"}
    assert ratings["smol-sft"].battles == len(fought)
    board = json.loads((tmp_path / "round-2" / "export" / "leaderboard.json").read_text())
    rows = [r for r in board["ratings"] if r["model_id"] == "smol-sft"]
    assert len(rows) == 1 and rows[0]["battles"] == len(fought)
