"""Near-duplicate removal of mined challenges with MinHash and LSH banding.

The paper deduplicates instructions with MinHash (128 permutations) and drops pairs whose Jaccard
similarity is at least 0.5. Everything here is numpy: each distinct word is hashed once, word
shingles are combined arithmetically, and all permutations of one chunk of shingles are computed
in one array operation.

Text normalization before shingling: lowercase, split on whitespace, strip punctuation from both
ends of every token and drop tokens that were punctuation only (so ``"sort it."`` and
``"Sort   it ."`` give the same shingles). Shingles are runs of ``shingle_size`` consecutive tokens;
a text with fewer tokens is one shingle of all its tokens, and a text with no token at all has no
shingle: two such empty texts count as duplicates of each other and of nothing else.

Pipeline of :func:`minhash_dedup`:

1. shingle hashes (32 bit, stable across processes: words are hashed with blake2b);
2. signatures: ``((a * x + b) mod 2**64) >> 32`` for 64-bit random ``a``, ``b`` — Dietzfelbinger's
   multiply-add-shift, a 2-independent family for 32-bit keys that needs only uint64 wraparound;
3. LSH: ``bands * rows <= num_perm`` chosen to minimise false positive plus false negative
   probability mass around the threshold (the rule of datasketch's ``_optimal_param``);
4. in input order, a text whose bands share a bucket with an already *kept* text is a candidate;
   it is dropped only if its estimated Jaccard with one of those kept texts is >= ``threshold``.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import string
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

__all__ = [
    "DedupResult",
    "FirstWins",
    "band_keys",
    "first_wins",
    "jaccard",
    "minhash_dedup",
    "minhash_signatures",
    "normalized_tokens",
    "optimal_bands",
]

# Characters stripped from token edges: ASCII punctuation (underscore included) and controls.
# str.strip with this set is the fast path; non-ASCII tokens go through the regex, which strips
# every non-alphanumeric character (Unicode punctuation and symbols) from both ends.
_ASCII_EDGE = string.punctuation + "".join(map(chr, range(32))) + "\x7f"
_UNICODE_EDGE = re.compile(r"^[\W_]+|[\W_]+$")
_MASK32 = np.uint64(0xFFFFFFFF)
# Signature value of a text without any shingle; no real minimum reaches it in all permutations.
_EMPTY_SIGNATURE_VALUE = np.uint32(0xFFFFFFFF)
# Shingles hashed per permutation block: bounds the (shingles x num_perm) uint64 working array.
# 4096 x 128 x 8 bytes = 4 MiB: small enough to stay in cache across the passes over a block.
_SHINGLES_PER_BLOCK = 1 << 12


@dataclass(frozen=True)
class DedupResult:
    """Outcome of :func:`minhash_dedup`.

    ``kept``: indices of the texts kept, in input order (the first of a group of duplicates wins).
    ``duplicate_of``: each dropped index mapped to the kept index it duplicates (the kept
    candidate with the highest estimated Jaccard, the lowest index on ties).
    ``bands`` and ``rows``: the LSH layout that was used.
    """

    kept: list[int]
    duplicate_of: dict[int, int] = field(default_factory=dict)
    bands: int = 0
    rows: int = 0


def normalized_tokens(text: str) -> list[str]:
    """Lowercased whitespace-separated tokens of ``text``, punctuation stripped from both ends,
    tokens left empty dropped: the word sequence that shingles are built from."""
    return [
        token
        for raw in text.lower().split()
        if (token := raw.strip(_ASCII_EDGE) if raw.isascii() else _UNICODE_EDGE.sub("", raw))
    ]


def _shingle_set(text: str, shingle_size: int) -> set[tuple[str, ...]]:
    tokens = normalized_tokens(text)
    if not tokens:
        return set()
    if len(tokens) < shingle_size:
        return {tuple(tokens)}
    return {tuple(tokens[i : i + shingle_size]) for i in range(len(tokens) - shingle_size + 1)}


def jaccard(a: str, b: str, shingle_size: int = 3) -> float:
    """Exact Jaccard similarity of the word-shingle sets of ``a`` and ``b``.

    Uses the same normalization and shingling as :func:`minhash_dedup`. Two texts without any
    token are identical (1.0); an empty text and a non-empty one share nothing (0.0).
    """
    _check_shingle_size(shingle_size)
    sa, sb = _shingle_set(a, shingle_size), _shingle_set(b, shingle_size)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


@lru_cache(maxsize=64)
def optimal_bands(
    threshold: float,
    num_perm: int,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]:
    """LSH layout ``(bands, rows)`` with ``bands * rows <= num_perm`` minimising the weighted
    sum of the false positive area (collision probability integrated over Jaccard in
    ``[0, threshold]``) and the false negative area (miss probability over ``[threshold, 1]``).
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if num_perm < 1:
        raise ValueError(f"num_perm must be >= 1, got {num_perm}")
    layouts = np.array(
        [(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)],
        dtype=np.float64,
    )
    bands, rows = layouts[:, :1], layouts[:, 1:]

    def area(lo: float, hi: float, miss: bool) -> np.ndarray:
        s = np.linspace(lo, hi, 1001)[None, :]
        collide = 1.0 - (1.0 - s**rows) ** bands
        y = 1.0 - collide if miss else collide
        # Trapezoid rule over the uniform grid, one row per layout.
        areas: np.ndarray = (y[:, :-1] + y[:, 1:]).sum(axis=1) * (hi - lo) / 2000.0
        return areas

    error = false_positive_weight * area(0.0, threshold, miss=False)
    if threshold < 1.0:
        error = error + false_negative_weight * area(threshold, 1.0, miss=True)
    best = int(np.argmin(error))
    return int(layouts[best, 0]), int(layouts[best, 1])


def _check_shingle_size(shingle_size: int) -> None:
    if isinstance(shingle_size, bool) or not isinstance(shingle_size, int) or shingle_size < 1:
        raise ValueError(f"shingle_size must be a positive int, got {shingle_size!r}")


def _word_hashes(vocabulary: dict[str, int]) -> np.ndarray:
    # blake2b, not hash(): Python's str hash is salted per process and would break determinism.
    out = np.empty(len(vocabulary), dtype=np.uint64)
    for word, idx in vocabulary.items():
        digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
        out[idx] = int.from_bytes(digest, "little")
    return out


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: spreads every input bit over the whole word (in place)."""
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _shingle_hashes(
    texts: Sequence[str], shingle_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hash of every shingle of every text (as uint64) and the shingle count per text."""
    vocabulary: dict[str, int] = {}
    # A typed array, not a list: millions of token ids without one int object each.
    token_ids = array("q")
    lengths = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] must be str, got {type(text).__name__}")
        tokens = normalized_tokens(text)
        lengths[i] = len(tokens)
        token_ids.extend([vocabulary.setdefault(t, len(vocabulary)) for t in tokens])

    ids = np.frombuffer(token_ids, dtype=np.int64) if token_ids else np.zeros(0, np.int64)
    word_hash = _word_hashes(vocabulary)
    doc_starts = np.concatenate(([0], np.cumsum(lengths)[:-1])) if len(texts) else lengths
    # One shingle starts at each position that leaves a full window, or at position 0 of a
    # text shorter than the window (that shingle then covers all of its tokens).
    shingle_counts = np.where(lengths >= shingle_size, lengths - shingle_size + 1, lengths > 0)
    doc_of_token = np.repeat(np.arange(len(texts)), lengths)
    pos_in_doc = np.arange(len(ids)) - doc_starts[doc_of_token]
    is_start = pos_in_doc < shingle_counts[doc_of_token]
    starts = np.flatnonzero(is_start)
    width = np.minimum(shingle_size, lengths[doc_of_token[starts]])
    del doc_of_token, pos_in_doc, is_start

    # Order-sensitive combination: position j of the window gets its own odd multiplier.
    multipliers = np.random.default_rng(0x5EED).integers(
        0, 2**63, size=shingle_size, dtype=np.uint64
    ) * np.uint64(2) + np.uint64(1)
    padded = np.concatenate((word_hash, np.zeros(1, dtype=np.uint64)))
    pad_id = len(word_hash)  # hash 0 for window positions past a short text's end
    ids_padded = np.concatenate((ids, np.full(shingle_size, pad_id, dtype=np.int64)))
    combined = np.zeros(len(starts), dtype=np.uint64)
    for j in range(shingle_size):
        word_ids = np.where(j < width, ids_padded[starts + j], pad_id)
        combined += padded[word_ids] * multipliers[j]
    combined += width.astype(np.uint64)  # a short text's shingle differs from a padded window
    return _mix64(combined) >> np.uint64(32), shingle_counts.astype(np.int64)


def _signatures(
    shingles: np.ndarray, counts: np.ndarray, num_perm: int, seed: int
) -> np.ndarray:
    """MinHash signatures, shape ``(len(counts), num_perm)``, dtype uint32."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False)
    b = rng.integers(0, 2**64, size=num_perm, dtype=np.uint64, endpoint=False)
    n = len(counts)
    sig = np.full((n, num_perm), _EMPTY_SIGNATURE_VALUE, dtype=np.uint32)
    nonempty = np.flatnonzero(counts > 0)
    if len(nonempty) == 0:
        return sig
    bounds = np.concatenate(([0], np.cumsum(counts[nonempty])))
    # Blocks of whole texts, each holding about _SHINGLES_PER_BLOCK shingles.
    cut_points = np.searchsorted(
        bounds, np.arange(0, bounds[-1], _SHINGLES_PER_BLOCK), side="right"
    ) - 1
    cut_points = np.unique(np.concatenate((cut_points, [len(nonempty)])))
    for lo, hi in itertools.pairwise(cut_points.tolist()):
        block = shingles[bounds[lo] : bounds[hi]]
        values = block[:, None] * a[None, :]
        values += b[None, :]
        minima = np.minimum.reduceat(values, bounds[lo:hi] - bounds[lo], axis=0)
        # The shift is monotone, so shifting the minima equals minimising the shifted values.
        sig[nonempty[lo:hi]] = (minima >> np.uint64(32)).astype(np.uint32)
    return sig


def band_keys(sig: np.ndarray, bands: int, rows: int, seed: int = 1) -> np.ndarray:
    """64-bit LSH key of every text in every band, shape ``(n, bands)``, dtype uint64.

    Two texts share a bucket of band ``b`` when their keys in column ``b`` are equal. The keys
    depend only on the signature, the layout and ``seed``: they are the same in every process,
    so an index kept in a store can be probed by later runs.
    """
    weights = np.random.default_rng(seed + 1).integers(
        0, 2**63, size=rows, dtype=np.uint64
    ) * np.uint64(2) + np.uint64(1)
    keys = np.empty((sig.shape[0], bands), dtype=np.uint64)
    for band in range(bands):
        cols = sig[:, band * rows : (band + 1) * rows].astype(np.uint64)
        # A 64-bit key per band; a rare key collision only adds a candidate, which the
        # Jaccard confirmation then rejects.
        keys[:, band] = _mix64((cols * weights[None, :]).sum(axis=1, dtype=np.uint64))
    return keys


def _band_buckets(sig: np.ndarray, bands: int, rows: int, seed: int) -> np.ndarray:
    """Bucket id of every text in every band, shape ``(n, bands)``, ids unique across bands."""
    n = sig.shape[0]
    keys = band_keys(sig, bands, rows, seed)
    buckets = np.empty((n, bands), dtype=np.int64)
    offset = 0
    for band in range(bands):
        _, local = np.unique(keys[:, band], return_inverse=True)
        buckets[:, band] = local.reshape(-1) + offset
        offset += int(local.max()) + 1 if n else 0
    return buckets


def minhash_dedup(
    texts: Sequence[str],
    threshold: float = 0.5,
    num_perm: int = 128,
    shingle_size: int = 3,
    seed: int = 1,
) -> DedupResult:
    """Drop near-duplicate texts: MinHash signatures, LSH banding, then Jaccard confirmation.

    A text is dropped when its estimated Jaccard similarity with an earlier *kept* text that
    shares an LSH bucket with it is at least ``threshold``; the first text of a group wins and
    ``kept`` preserves input order. The result depends only on the inputs and ``seed``, never
    on the process (no salted hashing).

    Raises ValueError for a threshold outside (0, 1], ``num_perm < 1`` or a bad
    ``shingle_size``, and TypeError when a text is not a str.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of str, not a single str")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if isinstance(num_perm, bool) or not isinstance(num_perm, int) or num_perm < 1:
        raise ValueError(f"num_perm must be a positive int, got {num_perm!r}")
    _check_shingle_size(shingle_size)
    bands, rows = optimal_bands(float(threshold), num_perm)
    n = len(texts)
    if n == 0:
        return DedupResult(kept=[], duplicate_of={}, bands=bands, rows=rows)

    shingles, counts = _shingle_hashes(texts, shingle_size)
    sig = _signatures(shingles, counts, num_perm, seed)
    buckets = _band_buckets(sig, bands, rows, seed)

    bucket_sizes = np.bincount(buckets.reshape(-1))
    shared = bucket_sizes[buckets] > 1
    has_shared = shared.any(axis=1)
    kept: list[int] = []
    duplicate_of: dict[int, int] = {}
    kept_in_bucket: dict[int, list[int]] = {}
    for i in range(n):
        if not has_shared[i]:
            kept.append(i)  # alone in every bucket: cannot duplicate anything
            continue
        my_buckets = buckets[i][shared[i]].tolist()
        candidates: set[int] = set()
        for bucket in my_buckets:
            members = kept_in_bucket.get(bucket)
            if members:
                candidates.update(members)
        if candidates:
            ordered = np.fromiter(sorted(candidates), dtype=np.int64, count=len(candidates))
            equal = (sig[ordered] == sig[i]).sum(axis=1)
            best = int(np.argmax(equal))  # first maximum: lowest index on ties
            if equal[best] / num_perm >= threshold:
                duplicate_of[i] = int(ordered[best])
                continue
        kept.append(i)
        for bucket in my_buckets:
            kept_in_bucket.setdefault(bucket, []).append(i)
    return DedupResult(kept=kept, duplicate_of=duplicate_of, bands=bands, rows=rows)


def minhash_signatures(
    texts: Sequence[str], num_perm: int = 128, shingle_size: int = 3, seed: int = 1
) -> np.ndarray:
    """MinHash signatures of ``texts``, shape ``(len(texts), num_perm)``, dtype uint32: the
    ones :func:`minhash_dedup` compares (same normalization, shingles and permutations)."""
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of str, not a single str")
    if isinstance(num_perm, bool) or not isinstance(num_perm, int) or num_perm < 1:
        raise ValueError(f"num_perm must be a positive int, got {num_perm!r}")
    _check_shingle_size(shingle_size)
    shingles, counts = _shingle_hashes(texts, shingle_size)
    return _signatures(shingles, counts, num_perm, seed)


@dataclass(frozen=True)
class FirstWins:
    """Outcome of :func:`first_wins`.

    ``kept``: indices of the new texts kept, in input order, those already indexed included.
    ``already_indexed``: the kept indices whose id the index already held (a rerun of the same
    text: it is itself, not a duplicate). ``duplicate_of``: each dropped index mapped to the id
    of the indexed (or earlier kept) text it duplicates.
    """

    kept: list[int]
    already_indexed: list[int] = field(default_factory=list)
    duplicate_of: dict[int, str] = field(default_factory=dict)


def first_wins(
    ids: Sequence[str],
    signatures: np.ndarray,
    keys: np.ndarray,
    indexed_buckets: dict[tuple[int, int], list[str]],
    indexed_signatures: dict[str, np.ndarray],
    threshold: float,
) -> FirstWins:
    """Decide, in input order, which new texts an LSH index keeps: a text is dropped when a
    text already kept (indexed earlier, or earlier in this batch) shares one of its buckets and
    has an estimated Jaccard of at least ``threshold`` with it; the first text of a group wins.

    ``ids[i]``, ``signatures[i]`` and ``keys[i]`` (from :func:`band_keys`) describe new text
    ``i``. ``indexed_buckets`` maps ``(band, key)`` to the ids the index holds in that bucket,
    ``indexed_signatures`` gives their signatures (a bucket member without a signature is
    ignored: its entry was never completed). Both mappings are extended with the kept texts.
    A text whose id is already indexed is kept as itself: deciding the same batch twice gives
    the same answer.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    if not len(ids) == signatures.shape[0] == keys.shape[0]:
        raise ValueError(f"{len(ids)} ids, {signatures.shape[0]} signatures and "
                         f"{keys.shape[0]} key rows: one of each per text is needed")
    out = FirstWins(kept=[])
    bands = keys.shape[1]
    first_of: dict[str, int] = {}
    for i, text_id in enumerate(ids):
        row = [(band, int(keys[i, band])) for band in range(bands)]
        if text_id in first_of:  # an id given twice: it goes the way of its first occurrence
            out.duplicate_of[i] = out.duplicate_of.get(first_of[text_id], text_id)
            continue
        first_of[text_id] = i
        if text_id in indexed_signatures:
            out.kept.append(i)
            out.already_indexed.append(i)
            continue
        candidates = sorted({other for bucket in row for other in indexed_buckets.get(bucket, ())
                             if other in indexed_signatures})
        if candidates:
            stacked = np.stack([indexed_signatures[c] for c in candidates])
            equal = (stacked == signatures[i]).sum(axis=1)
            best = int(np.argmax(equal))  # first maximum: the lowest id on ties
            if equal[best] / signatures.shape[1] >= threshold:
                out.duplicate_of[i] = candidates[best]
                continue
        out.kept.append(i)
        indexed_signatures[text_id] = signatures[i]
        for bucket in row:
            indexed_buckets.setdefault(bucket, []).append(text_id)
    return out
