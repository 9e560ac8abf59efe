"""Model backends: the one place that maps an expert's `backend` name to its class.

The transformers backend is imported only when an expert uses it, so importing warriorcoder
(or using only remote/fake experts) never imports torch.
"""

from __future__ import annotations

from warriorcoder.backends.base import (
    LOCAL_INSTALL_HINT,
    BackendError,
    ChatMessage,
    ChatRequest,
    CompletionRequest,
    GenerationError,
    GenerationOutcome,
    GenerationResult,
    ModelBackend,
)
from warriorcoder.config import ExpertConfig

__all__ = [
    "BackendError",
    "ChatMessage",
    "ChatRequest",
    "CompletionRequest",
    "GenerationError",
    "GenerationOutcome",
    "GenerationResult",
    "ModelBackend",
    "load_backend",
]


def load_backend(expert: ExpertConfig) -> ModelBackend:
    """Build the backend of one roster expert; raises BackendError when it cannot be set up."""
    if expert.backend == "openai":
        from warriorcoder.backends.openai import OpenAIBackend

        return OpenAIBackend(expert)
    if expert.backend == "transformers":
        try:
            from warriorcoder.backends.transformers import TransformersBackend
        except ImportError as err:
            if (err.name or "").split(".")[0] == "warriorcoder":
                raise  # our own bug, not a missing extra
            raise BackendError(
                f"expert {expert.id!r}: backend 'transformers' needs torch and transformers, "
                f"and {err.name or 'a module'} is not installed ({err}); install them with: "
                f"{LOCAL_INSTALL_HINT}"
            ) from None
        return TransformersBackend(expert)
    if expert.backend == "fake":
        from warriorcoder.backends.fake import FakeBackend

        return FakeBackend(expert)
    raise BackendError(f"expert {expert.id!r}: unknown backend {expert.backend!r}")
