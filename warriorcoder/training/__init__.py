"""Fine-tuning on an arena round's export with TRL (`warriorcoder train`).

- `records`: the export files, read into the same TrainingRecord messages the exporter wrote;
- `settings`: what a run is asked to do, checked before anything loads;
- `models`: the base folder, device, dtype, tokenizer and chat template, LoRA's configuration;
- `trainer`: SFT with TRL's SFTTrainer (loss on the answers only) or DPO with DPOTrainer on
  the preference pairs, into a servable model folder;
- `cli`: the `train` command.

Only the standard library and protobuf are imported here: torch, transformers, TRL and peft
load when training starts, and nothing here needs pydantic, so the package runs on a bare GPU
machine. Models and tokenizers load from local folders only (`local_files_only`), so nothing
reaches for a model hub. See docs/training.md.
"""

from warriorcoder.training.cli import add_train_parser, run_train, settings_from_args
from warriorcoder.training.models import (
    IGNORE_INDEX,
    answer_only_batch,
    chat_renderer,
    prompt_and_target,
    resolve_base,
    resolve_device,
    resolve_dtype,
)
from warriorcoder.training.records import (
    PREFERENCE_FILE,
    SFT_FILE,
    export_manifest,
    file_sha256,
    find_data_file,
    load_records,
    trainer_row,
)
from warriorcoder.training.settings import (
    DPO,
    SFT,
    LoraSettings,
    TrainingError,
    TrainingSettings,
)
from warriorcoder.training.trainer import (
    LOG_FILE,
    PROVENANCE_FILE,
    TrainingResult,
    fit_records,
    roster_entry,
    split_eval,
    train,
)

__all__ = [
    "DPO",
    "IGNORE_INDEX",
    "LOG_FILE",
    "PREFERENCE_FILE",
    "PROVENANCE_FILE",
    "SFT",
    "SFT_FILE",
    "LoraSettings",
    "TrainingError",
    "TrainingResult",
    "TrainingSettings",
    "add_train_parser",
    "answer_only_batch",
    "chat_renderer",
    "export_manifest",
    "file_sha256",
    "find_data_file",
    "fit_records",
    "load_records",
    "prompt_and_target",
    "resolve_base",
    "resolve_device",
    "resolve_dtype",
    "roster_entry",
    "run_train",
    "settings_from_args",
    "split_eval",
    "train",
    "trainer_row",
]
