"""k-center greedy diversity selection and the offline MiniLM sentence embedder."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

import numpy as np
import pytest

from warriorcoder.arena.diversity import SentenceEmbedder, k_center_greedy, select_diverse


def _clusters(rng: np.random.Generator, centers: np.ndarray, per_cluster: int) -> np.ndarray:
    return np.concatenate([c + rng.normal(0, 0.05, size=(per_cluster, 2)) for c in centers])


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_picks_one_point_per_far_apart_cluster(seed: int) -> None:
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0], [5.0, 5.0]])
    points = _clusters(rng, centers, per_cluster=20)
    picks = k_center_greedy(points, 5, seed=seed, metric="euclidean")
    assert sorted(p // 20 for p in picks) == [0, 1, 2, 3, 4]


def test_cosine_metric_separates_directions_not_lengths() -> None:
    # Three directions, each at very different lengths: cosine sees three groups.
    angles = np.repeat([0.0, 2.1, 4.2], 4)
    scales = np.tile([0.1, 1.0, 10.0, 100.0], 3)
    points = np.stack([np.cos(angles), np.sin(angles)], axis=1) * scales[:, None]
    picks = k_center_greedy(points, 3, metric="cosine")
    assert sorted(p // 4 for p in picks) == [0, 1, 2]
    # Euclidean instead spends its picks on the long vectors.
    far = k_center_greedy(points, 3, metric="euclidean", already_selected=[0])
    assert all(scales[p] == 100.0 for p in far)


def test_farthest_point_order_on_a_line() -> None:
    points = np.array([[0.0], [1.0], [2.0], [10.0], [6.0]])
    # From {0}: 10 is farthest; then 6 (4 from 10, 6 from 0) beats 2 (distance 2).
    assert k_center_greedy(points, 3, already_selected=[0], metric="euclidean") == [3, 4, 2]


def test_first_pick_is_seeded_and_deterministic() -> None:
    points = np.random.default_rng(9).normal(size=(50, 8))
    assert k_center_greedy(points, 10, seed=5) == k_center_greedy(points, 10, seed=5)
    assert k_center_greedy(points, 1, seed=5) == [int(np.random.default_rng(5).integers(50))]
    firsts = {k_center_greedy(points, 1, seed=s)[0] for s in range(20)}
    assert len(firsts) > 1


def test_never_returns_a_duplicate_even_for_identical_rows() -> None:
    points = np.ones((6, 3))
    picks = k_center_greedy(points, 6)
    assert sorted(picks) == list(range(6))
    picks = k_center_greedy(points, 3, already_selected=[1, 4])
    assert len(set(picks)) == 3 and not {1, 4} & set(picks)


def test_already_selected_rows_are_centers_and_not_returned() -> None:
    points = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [5.2, 0.0], [0.0, 5.0]])
    picks = k_center_greedy(points, 2, already_selected=[0, 2], metric="euclidean")
    assert picks == [4, 3]
    points[3] = [5.1, 0.0]  # now 1 and 3 are equally far from their centers: lowest index wins
    assert k_center_greedy(points, 2, already_selected=[0, 2], metric="euclidean") == [4, 1]
    assert k_center_greedy(points, 0, metric="euclidean") == []


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((np.zeros(3), 1), {}, "2-D"),
        ((np.array([[np.nan, 1.0]]), 1), {}, "NaN"),
        ((np.ones((3, 2)), 4), {}, "k=4 exceeds the 3 rows"),
        ((np.ones((3, 2)), 2), {"already_selected": [0, 1]}, "k=2 exceeds the 1 rows"),
        ((np.ones((3, 2)), -1), {}, "k must be"),
        ((np.ones((3, 2)), 1), {"already_selected": [3]}, "outside"),
        ((np.ones((3, 2)), 1), {"already_selected": [1, 1]}, "repeated"),
        ((np.array([[1.0, 0.0], [0.0, 0.0]]), 1), {}, "row 1"),
        ((np.ones((3, 2)), 1), {"metric": "manhattan"}, "metric"),
    ],
)
def test_bad_input_is_named(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        k_center_greedy(*args, **kwargs)


class _LetterEmbedder:
    """Embeds a text by the direction assigned to its first letter."""

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        self.calls += 1
        angle = {"a": 0.0, "b": 2.0, "c": 4.0}
        return np.array([[np.cos(angle[t[0]]), np.sin(angle[t[0]])] for t in texts])


def test_select_diverse_covers_each_topic() -> None:
    texts = ["a1", "a2", "a3", "b1", "b2", "c1", "a4", "c2"]
    picks = select_diverse(texts, 3, _LetterEmbedder())
    assert sorted(texts[p][0] for p in picks) == ["a", "b", "c"]


def test_select_diverse_small_inputs_skip_embedding() -> None:
    embedder = _LetterEmbedder()
    assert select_diverse(["a1", "b1"], 5, embedder) == [0, 1]
    assert select_diverse(["a1", "b1"], 0, embedder) == []
    assert embedder.calls == 0


def test_importing_the_module_does_not_import_torch() -> None:
    code = (
        "import sys, warriorcoder.arena.diversity\n"
        "print('torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_embedder_rejects_bad_input_before_loading() -> None:
    embedder = SentenceEmbedder(model_dir="/nonexistent/model")
    with pytest.raises(TypeError, match="single str"):
        embedder.embed("one text")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        embedder.embed(["ok", 1])  # type: ignore[list-item]
    with pytest.raises(FileNotFoundError, match="/nonexistent/model"):
        embedder.embed(["ok"])


@pytest.mark.model
def test_minilm_paraphrases_are_closer_than_unrelated_sentences() -> None:
    embedder = SentenceEmbedder()
    texts = [
        "How do I reverse a list in Python?",
        "What is the way to reverse a Python list?",
        "Write a function that sorts an array of numbers.",
        "Implement a routine that orders a numeric array.",
        "The weather in Paris is sunny today.",
    ]
    vectors = embedder.embed(texts, batch_size=2)
    assert vectors.shape == (5, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    sim = vectors @ vectors.T
    assert sim[0, 1] > max(sim[0, 2], sim[0, 3], sim[0, 4]) + 0.3
    assert sim[2, 3] > max(sim[2, 0], sim[2, 1], sim[2, 4]) + 0.3
    assert embedder.embed([]).shape == (0, 384)
    # Selecting 3 of the 5 never takes both members of a paraphrase pair.
    picks = set(select_diverse(texts, 3, embedder))
    assert not {0, 1} <= picks and not {2, 3} <= picks
