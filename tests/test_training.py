"""`warriorcoder train`: records, answer-only loss masking, the training loop, re-entry.

The loop's mechanics run on a tiny random Llama built in code (seconds). `@pytest.mark.model`
tests fine-tune the real SmolLM2-135M-Instruct on the CPU, check that the training loss falls,
that the saved folder serves through the transformers backend, and that the fine-tuned model
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
    SftRecord,
    TrainingError,
    TrainingExample,
    TrainingSettings,
    accumulate_gradients,
    batch_tensors,
    chat_renderer,
    encode_records,
    file_sha256,
    find_sft_file,
    load_sft_records,
    lr_factor,
    masked_example,
    pad_batch,
    prompt_and_target,
    roster_entry,
    split_eval,
    step_plan,
    target_loss_sum,
    tokenizer_ids,
    train,
)
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


def sft_line(prompt: str, answer: str, index: int = 0) -> dict[str, Any]:
    return {"id": f"c{index}/sft",
            "messages": [{"role": "user", "content": prompt},
                         {"role": "assistant", "content": answer}],
            "model": "expert-a", "score": 0.8, "provenance": {"round_id": "r"}}


def write_run(folder: Path, rows: list[dict[str, Any]] | None = None) -> Path:
    """A run folder laid out like `warriorcoder run` leaves it (RUN_DIR/export/sft.jsonl)."""
    export = folder / "export"
    export.mkdir(parents=True)
    rows = rows if rows is not None else [sft_line(p, a, i) for i, (p, a) in enumerate(RECORDS)]
    (export / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def records() -> list[SftRecord]:
    return [SftRecord(f"c{i}", ({"role": "user", "content": p},), a)
            for i, (p, a) in enumerate(RECORDS)]


# --------------------------------------------------------------------------- records


def test_run_folder_export_folder_and_file_all_find_the_sft_file(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run")
    sft = run / "export" / "sft.jsonl"
    assert find_sft_file(run) == sft
    assert find_sft_file(run / "export") == sft
    assert find_sft_file(sft) == sft
    loaded = load_sft_records(sft)
    assert [r.answer for r in loaded] == [a for _, a in RECORDS]
    assert loaded[0].prompt == ({"role": "user", "content": RECORDS[0][0]},)
    assert loaded[0].id == "c0/sft"


def test_missing_run_folder_and_folder_without_export_are_named(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match=r"no such file or folder"):
        find_sft_file(tmp_path / "nope")
    (tmp_path / "empty-run").mkdir()
    with pytest.raises(TrainingError, match=r"no export/sft.jsonl in this folder"):
        find_sft_file(tmp_path / "empty-run")


def test_empty_sft_file_is_an_error(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", rows=[])
    with pytest.raises(TrainingError, match=r"no SFT records"):
        load_sft_records(find_sft_file(run))


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
])
def test_bad_record_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps(sft_line("q", "a")) + "\n" + line + "\n")
    with pytest.raises(TrainingError, match=message):
        load_sft_records(path)


# --------------------------------------------------------------------------- pure parts


def test_masked_example_masks_the_prompt_and_cuts_only_the_answer() -> None:
    ex = masked_example([5, 6, 7], [8, 9], max_len=10)
    assert ex == TrainingExample((5, 6, 7, 8, 9), (IGNORE_INDEX,) * 3 + (8, 9))
    assert ex.prompt_length == 3
    cut = masked_example([5, 6, 7], [8, 9, 10, 11], max_len=5)
    assert cut is not None and cut.input_ids == (5, 6, 7, 8, 9)
    assert masked_example([5, 6, 7], [8], max_len=3) is None  # no room for one answer token
    assert masked_example([5], [], max_len=3) is None


def test_pad_batch_pads_right_with_ignored_labels() -> None:
    a = TrainingExample((1, 2, 3), (IGNORE_INDEX, 2, 3))
    b = TrainingExample((4, 5), (IGNORE_INDEX, 5))
    batch = pad_batch([a, b], pad_id=0)
    assert batch.input_ids == [[1, 2, 3], [4, 5, 0]]
    assert batch.attention_mask == [[1, 1, 1], [1, 1, 0]]
    assert batch.labels == [[IGNORE_INDEX, 2, 3], [IGNORE_INDEX, 5, IGNORE_INDEX]]
    assert batch.target_tokens == 3 and batch.tokens == 5


def test_step_plan_visits_every_example_once_per_epoch() -> None:
    plan = step_plan(list(range(10)), batch_size=3, grad_accum=2, epochs=2, max_steps=None,
                     seed=1)
    # ceil(10 / 3) = 4 micro-batches -> 2 steps per epoch.
    assert len(plan) == 4 and [s.epoch for s in plan] == [0, 0, 1, 1]
    for epoch in (0, 1):
        seen = [i for s in plan if s.epoch == epoch for mb in s.micro_batches for i in mb]
        assert sorted(seen) == list(range(10))
    assert plan == step_plan(list(range(10)), batch_size=3, grad_accum=2, epochs=2,
                             max_steps=None, seed=1)
    cycled = step_plan([0, 1], batch_size=1, grad_accum=1, epochs=1, max_steps=5, seed=0)
    assert len(cycled) == 5 and cycled[-1].epoch == 2


def test_lr_factor_warms_up_then_decays_and_never_zero_on_a_step() -> None:
    factors = [lr_factor(s, 6, 2, "linear") for s in range(6)]
    assert factors[:2] == [0.5, 1.0]
    assert factors[2:] == sorted(factors[2:], reverse=True) and min(factors) > 0
    assert [lr_factor(s, 4, 0, "constant") for s in range(4)] == [1.0] * 4


def test_eval_split_holds_out_and_refuses_to_leave_nothing() -> None:
    train_idx, eval_idx = split_eval(10, 0.2, seed=0)
    assert len(eval_idx) == 2 and sorted(train_idx + eval_idx) == list(range(10))
    assert split_eval(3, 0.0, seed=0) == ([0, 1, 2], [])
    with pytest.raises(TrainingError, match=r"--eval-fraction 0.9: .* leaves none"):
        split_eval(1, 0.9, seed=0)


def test_settings_errors_name_the_option(tmp_path: Path) -> None:
    base = TrainingSettings(data=tmp_path, base="smollm2", output=tmp_path / "o")
    with pytest.raises(TrainingError, match=r"--batch-size must be >= 1"):
        TrainingSettings(**{**base.__dict__, "batch_size": 0}).validate()
    with pytest.raises(TrainingError, match=r"--dtype must be one of"):
        TrainingSettings(**{**base.__dict__, "dtype": "int8"}).validate()
    with pytest.raises(TrainingError, match=r"--lora-r must be >= 1"):
        TrainingSettings(**{**base.__dict__, "lora": LoraSettings(r=0)}).validate()
    assert base.peak_learning_rate == 2e-5
    assert TrainingSettings(**{**base.__dict__, "lora": LoraSettings()}).peak_learning_rate == 2e-4


# --------------------------------------------------------------------------- tiny model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-base"))


def check_boundary(tokenizer: Any, folder: Path, turn_end: str) -> None:
    """Every labelled token is an answer token, and the split sits exactly where the
    template's generation prompt ends."""
    render = chat_renderer(tokenizer, folder)
    tokenize = tokenizer_ids(tokenizer)
    data = encode_records(records(), render, tokenize, max_len=512)
    assert len(data.examples) == len(RECORDS) and not data.truncated and not data.dropped
    for (prompt, answer), record, ex in zip(RECORDS, records(), data.examples):
        prompt_text = render([{"role": "user", "content": prompt}], True)
        n = len(tokenize(prompt_text))
        assert ex.labels[:n] == (IGNORE_INDEX,) * n
        assert ex.labels[n:] == ex.input_ids[n:] and IGNORE_INDEX not in ex.labels[n:]
        assert tokenizer.decode(list(ex.input_ids[:n])) == prompt_text
        assert tokenizer.decode(list(ex.input_ids[n:])) == answer + turn_end
        # Joining the separately tokenized parts gives the tokens of the whole rendered chat.
        full = render([{"role": "user", "content": prompt},
                       {"role": "assistant", "content": answer}], False)
        assert list(ex.input_ids) == tokenize(full)
        assert prompt_and_target(render, record) == (prompt_text, answer + turn_end)


def test_labels_cover_exactly_the_answer_under_chatml(tiny: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(tiny))
    check_boundary(tokenizer, tiny, turn_end="<|im_end|>\n")


def test_template_that_rewrites_the_prompt_is_refused(tiny: Path) -> None:
    # A template whose generation prompt is not the start of the whole chat: no exact boundary.
    def render(messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        return "PROMPT>" if add_generation_prompt else "CHAT:" + messages[-1]["content"]

    with pytest.raises(TrainingError, match=r"record c0: the chat template does not render"):
        prompt_and_target(render, records()[0])


def tiny_batches(folder: Path) -> list[TrainingExample]:
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    rows = records() + [SftRecord("long", ({"role": "user", "content": "Explain sorting."},),
                                  "Sorting puts items in order. " * 6)]
    return encode_records(rows, chat_renderer(tokenizer, folder), tokenizer_ids(tokenizer),
                          max_len=200).examples


def test_padding_adds_nothing_to_the_loss(tiny: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32)
    a, b = tiny_batches(tiny)[0], tiny_batches(tiny)[-1]  # short and long
    cpu, f32 = torch.device("cpu"), torch.float32
    with torch.no_grad():
        together = float(target_loss_sum(model, pad_batch([a, b], 0), cpu, f32))
        apart = (float(target_loss_sum(model, pad_batch([a], 0), cpu, f32))
                 + float(target_loss_sum(model, pad_batch([b], 0), cpu, f32)))
    assert together == pytest.approx(apart, rel=1e-4)


def test_gradient_accumulation_weights_every_answer_token_equally(tiny: Path) -> None:
    examples = tiny_batches(tiny)
    short, long = examples[:2], examples[2:]  # the long answer sits in the second half
    cpu, f32 = torch.device("cpu"), torch.float32

    def grads(micro: list[list[TrainingExample]]) -> tuple[float, list[Any]]:
        model = AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32)
        loss = accumulate_gradients(model, [pad_batch(m, 0) for m in micro], cpu, f32)
        return loss, [p.grad.clone() for p in model.parameters() if p.grad is not None]

    one_loss, one = grads([short + long])
    two_loss, two = grads([short, long])
    assert two_loss == pytest.approx(one_loss, rel=1e-5)
    assert all(torch.allclose(g1, g2, atol=1e-6) for g1, g2 in zip(one, two))
    # Averaging the micro-batch means instead would weigh the short answers' tokens more: the
    # test tells the two apart.
    model = AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32)
    for m in (short, long):
        batch = pad_batch(m, 0)
        (target_loss_sum(model, batch, cpu, f32) / batch.target_tokens / 2).backward()
    naive = [p.grad for p in model.parameters()]
    assert not all(torch.allclose(g1, g2, atol=1e-6) for g1, g2 in zip(one, naive))


def tiny_settings(run: Path, base: Path, output: Path, **overrides: Any) -> TrainingSettings:
    fields: dict[str, Any] = {"data": run, "base": str(base), "output": output,
                              "max_steps": 6, "learning_rate": 3e-3, "batch_size": 4,
                              "max_seq_len": 128, "device": "cpu", "dtype": "float32",
                              "lr_schedule": "constant"}
    fields.update(overrides)
    return TrainingSettings(**fields)


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


def test_tiny_full_fine_tune_saves_a_servable_folder_with_log_and_provenance(
    tiny: Path, tmp_path: Path
) -> None:
    run = write_run(tmp_path / "run")
    result = train(tiny_settings(run, tiny, tmp_path / "out", eval_fraction=0.25),
                   progress=False)
    out = tmp_path / "out"
    assert result.output == out and result.saved == "full"
    assert result.steps == 6 and result.examples == 3 and result.eval_examples == 1
    assert result.probe_loss_after < result.probe_loss_before
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".safetensors") == [
        "model.safetensors"]
    assert not list(tmp_path.glob(".out.partial-*"))  # the staging folder was renamed
    log = [json.loads(line) for line in (out / LOG_FILE).read_text().splitlines()]
    steps = [e for e in log if "loss" in e]
    assert [e["step"] for e in steps] == [1, 2, 3, 4, 5, 6]
    assert [e["loss"] for e in steps] == result.losses
    assert any("eval_loss" in e and e["step"] == 6 for e in log)
    provenance = json.loads((out / PROVENANCE_FILE).read_text())
    sft = run / "export" / "sft.jsonl"
    assert provenance["data"]["sha256"] == file_sha256(sft)
    assert provenance["data"]["records"] == 4
    assert provenance["base"] == str(tiny)
    assert provenance["hyperparameters"]["learning_rate"] == 3e-3
    assert provenance["results"]["probe_loss_after"] == result.probe_loss_after
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    assert tokenizer.chat_template == AutoTokenizer.from_pretrained(str(tiny)).chat_template
    assert chat_once(out).completion_tokens > 0


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
    base = AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32).state_dict()
    tuned = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.float32).state_dict()
    assert set(base) == set(tuned)  # same architecture, no lora_ weights left
    changed = [k for k in base if not torch.equal(base[k], tuned[k])]
    assert changed and all("proj" in k for k in changed)  # only the adapted linear layers
    assert chat_once(merged).completion_tokens > 0
    adapter = train(tiny_settings(run, tiny, tmp_path / "adapter", max_steps=1,
                                  lora=LoraSettings(r=4, merge=False)), progress=False)
    assert adapter.saved == "adapter"
    assert (tmp_path / "adapter" / "adapter_config.json").is_file()


def test_cli_train_and_its_errors(tiny: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    run = write_run(tmp_path / "run")
    args = ["train", "--data", str(run), "--base", str(tiny), "--output", str(tmp_path / "m"),
            "--max-steps", "2", "--device", "cpu", "--no-progress", "--max-seq-len", "96"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "2 steps on 4 examples" in out and "backend: transformers" in out
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
    empty = write_run(tmp_path / "empty", rows=[])
    assert "no SFT records" in error("train", "--data", str(empty), "--base", str(tiny), *common)
    assert "--no-merge only applies with --lora" in error(
        "train", "--data", str(run), "--base", str(tiny), "--no-merge", *common)
    assert "--max-seq-len 8; nothing left" in error(
        "train", "--data", str(run), "--base", str(tiny), "--max-seq-len", "8", *common)
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob(".x.partial-*"))


def test_gpu_check_script_runs_tiny_on_cpu(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_train_check.py"), "--size", "tiny",
         "--device", "cpu", "--work-dir", str(tmp_path), "--json", str(tmp_path / "r.json")],
        check=False, capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    modes = {r["mode"] for r in report["runs"]}
    assert "full" in modes
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
def test_smollm2_labels_start_after_its_generation_prompt(smol_base: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(str(smol_base))
    check_boundary(tokenizer, smol_base, turn_end="<|im_end|>\n")
    # SmolLM2's template adds its default system prompt: it belongs to the masked prompt.
    render = chat_renderer(tokenizer, smol_base)
    prompt, _ = prompt_and_target(render, records()[0])
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
    batch = pad_batch(encode_records(records(), chat_renderer(tokenizer, folder),
                                     tokenizer_ids(tokenizer), 96).examples,
                      tokenizer.pad_token_id)
    tensors = batch_tensors(batch, torch.device("cpu"))

    def hf_loss(path: Path) -> float:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        with torch.no_grad():
            return float(model(**tensors).loss)

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
