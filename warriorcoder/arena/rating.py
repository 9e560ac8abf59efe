"""Rating math of the arena: Elo, Bradley-Terry, bootstrap intervals and win statistics.

Pure numpy/scipy, no I/O. A battle outcome is ``(model_a, model_b, score_a)`` where
``score_a`` in [0, 1] is A's score: 1 = A won, 0 = B won, 0.5 = tie, and fractional values
(e.g. the share of judge votes for A) are allowed. Every public function accepts either an
iterable of such tuples or a `BattleOutcomes` (names + index arrays + scores); tuples are
converted once by `BattleOutcomes.from_tuples`, so there is one implementation path.

Bradley-Terry follows Chatbot Arena's ``compute_mle_elo``: a logistic model in which
``P(A beats B) = 1 / (1 + base ** ((r_B - r_A) / scale))``, a battle with score ``s`` counting
as weight ``s`` for "A beats B" and ``1 - s`` for "B beats A" (a tie is half a win for each
side). Two deliberate details, both documented where they live:

* Battles are first aggregated into a per-ordered-pair matrix of weighted wins, and the fit is
  a Newton iteration on that matrix, so the cost no longer grows with the number of battles.
* A tiny L2 penalty (`L2_PENALTY`) on the logits keeps the maximum-likelihood estimate finite
  when a model never loses (or never wins) and makes the solution unique. It also fixes the
  anchoring: the penalised optimum has mean logit zero, so the mean rating equals
  ``scale.initial`` (Chatbot Arena's unpenalised lbfgs starting from zero lands on the same
  anchoring, before they shift the board to a reference model).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit

__all__ = [
    "L2_PENALTY",
    "BattleOutcomes",
    "Outcome",
    "OutcomesLike",
    "RatingScale",
    "WinStats",
    "bootstrap_intervals",
    "bradley_terry",
    "elo_ratings",
    "reference_bradley_terry",
    "win_probability",
    "win_stats",
]

Outcome: TypeAlias = tuple[str, str, float]

# Weight of the L2 penalty ``l2 / 2 * sum(beta ** 2)`` on the natural-log logits ``beta``,
# in units of battles: a prior worth a millionth of one battle. Negligible for any rating
# that the data determines; it only bounds the rating of a model that never loses (or never
# wins), which the unpenalised MLE sends to infinity (about +2000 points for one unbeaten
# battle, less the more it plays), and it ties disconnected groups of models to one anchor.
L2_PENALTY = 1e-6

_MAX_NEWTON_STEPS = 200
# Newton stops once no logit moves by more than this (1e-10 logits ~ 2e-8 rating points).
_NEWTON_TOLERANCE = 1e-10


@dataclass(frozen=True)
class RatingScale:
    """How logits map to ratings: ``rating = initial + scale * log_base(odds)``.

    With the defaults a 400 point gap means 10:1 odds, and the mean rating is 1000.
    """

    initial: float = 1000.0
    scale: float = 400.0
    base: float = 10.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.initial):
            raise ValueError(f"RatingScale.initial must be finite, got {self.initial}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"RatingScale.scale must be a positive number, got {self.scale}")
        if not (math.isfinite(self.base) and self.base > 1):
            raise ValueError(f"RatingScale.base must be a number above 1, got {self.base}")

    @property
    def points_per_logit(self) -> float:
        """Rating points per unit of natural-log odds."""
        return self.scale / math.log(self.base)


def win_probability(rating_a: float, rating_b: float, scale: RatingScale = RatingScale()) -> float:
    """Expected score of A against B: ``1 / (1 + base ** ((rating_b - rating_a) / scale))``."""
    return 1.0 / (1.0 + scale.base ** ((rating_b - rating_a) / scale.scale))


@dataclass(frozen=True, eq=False)
class BattleOutcomes:
    """Battles as arrays: ``models[model_a[i]]`` met ``models[model_b[i]]`` and scored
    ``score_a[i]``.

    Arrays are copied and made read-only. Construction validates everything and names the
    first offending battle index.
    """

    models: tuple[str, ...]
    model_a: np.ndarray
    model_b: np.ndarray
    score_a: np.ndarray

    def __post_init__(self) -> None:
        models = tuple(self.models)
        for position, name in enumerate(models):
            if not isinstance(name, str) or not name:
                raise ValueError(f"models[{position}] must be a non-empty string, got {name!r}")
        if len(set(models)) != len(models):
            raise ValueError("models contains duplicate names")
        arrays = {}
        for field_name in ("model_a", "model_b", "score_a"):
            raw = np.asarray(getattr(self, field_name))
            if raw.ndim != 1:
                raise ValueError(f"{field_name} must be one-dimensional, got shape {raw.shape}")
            arrays[field_name] = raw
        count = len(arrays["model_a"])
        for field_name, raw in arrays.items():
            if len(raw) != count:
                raise ValueError(
                    f"model_a, model_b and score_a must have the same length, got "
                    f"{count} and {len(raw)} ({field_name})"
                )
        for field_name in ("model_a", "model_b"):
            raw = arrays[field_name]
            if count and not np.issubdtype(raw.dtype, np.integer):
                raise TypeError(f"{field_name} must hold integer model indices, got {raw.dtype}")
            index = raw.astype(np.intp)
            out_of_range = (index < 0) | (index >= len(models))
            if out_of_range.any():
                position = int(np.argmax(out_of_range))
                raise ValueError(
                    f"battle {position}: {field_name}={index[position]} is not an index into "
                    f"{len(models)} models"
                )
            arrays[field_name] = index
        _raise_at_first(
            arrays["model_a"] == arrays["model_b"],
            lambda i: f"model {models[arrays['model_a'][i]]!r} cannot battle itself",
        )
        if count and not (
            np.issubdtype(arrays["score_a"].dtype, np.number) or arrays["score_a"].dtype == bool
        ):
            raise TypeError(f"score_a must hold numbers, got {arrays['score_a'].dtype}")
        scores = arrays["score_a"].astype(np.float64)
        # `~(0 <= s <= 1)` also catches NaN.
        _raise_at_first(
            ~((scores >= 0.0) & (scores <= 1.0)),
            lambda i: f"score_a={float(scores[i])!r} is outside [0, 1]",
        )
        arrays["score_a"] = scores
        object.__setattr__(self, "models", models)
        for field_name, value in arrays.items():
            value = np.array(value, copy=True)
            value.setflags(write=False)
            object.__setattr__(self, field_name, value)

    @classmethod
    def from_tuples(cls, outcomes: Iterable[Outcome]) -> BattleOutcomes:
        """Build from ``(model_a, model_b, score_a)`` tuples; models are indexed in sorted
        name order (so swapping sides never changes which index a model gets)."""
        rows = list(outcomes)
        for position, row in enumerate(rows):
            if not isinstance(row, (tuple, list)) or len(row) != 3:
                raise ValueError(
                    f"battle {position}: expected (model_a, model_b, score_a), got {row!r}"
                )
            for side in (0, 1):
                if not isinstance(row[side], str) or not row[side]:
                    raise ValueError(
                        f"battle {position}: model name must be a non-empty string, "
                        f"got {row[side]!r}"
                    )
            if isinstance(row[2], str) or not isinstance(row[2], (int, float, np.number)):
                raise TypeError(f"battle {position}: score_a must be a number, got {row[2]!r}")
        models = sorted({str(row[side]) for row in rows for side in (0, 1)})
        index = {name: position for position, name in enumerate(models)}
        return cls(
            models=tuple(models),
            model_a=np.fromiter((index[row[0]] for row in rows), np.intp, len(rows)),
            model_b=np.fromiter((index[row[1]] for row in rows), np.intp, len(rows)),
            score_a=np.fromiter((float(row[2]) for row in rows), np.float64, len(rows)),
        )

    def __len__(self) -> int:
        return len(self.score_a)


OutcomesLike: TypeAlias = BattleOutcomes | Iterable[Outcome]


@dataclass(frozen=True)
class WinStats:
    """One model's record. A win is a score above 0.5 from the model's side, a tie exactly 0.5."""

    battles: int
    wins: int
    losses: int
    ties: int
    win_rate: float


def _raise_at_first(bad: np.ndarray, describe: Callable[[int], str]) -> None:
    """Raise ValueError for the first True entry of `bad`, naming the battle index."""
    if bad.any():
        position = int(np.argmax(bad))
        raise ValueError(f"battle {position}: {describe(position)}")


def _as_battles(outcomes: OutcomesLike) -> BattleOutcomes:
    if isinstance(outcomes, BattleOutcomes):
        return outcomes
    return BattleOutcomes.from_tuples(outcomes)


def _ratings(models: tuple[str, ...], logits: np.ndarray, scale: RatingScale) -> dict[str, float]:
    """Convert logits (natural-log odds, anchored at mean zero) to ratings."""
    return {
        name: float(scale.initial + scale.points_per_logit * value)
        for name, value in zip(models, logits, strict=True)
    }


def elo_ratings(
    outcomes: OutcomesLike, k_factor: float = 40.0, scale: RatingScale = RatingScale()
) -> dict[str, float]:
    """Online Elo over the battles in the given order; every model starts at `scale.initial`.

    Both expected scores come from the ratings before the battle. (WarriorCoder's released code
    updated B against A's already-updated rating, which is neither zero-sum nor symmetric.)
    """
    if not (math.isfinite(k_factor) and k_factor >= 0):
        raise ValueError(f"k_factor must be a non-negative number, got {k_factor}")
    battles = _as_battles(outcomes)
    ratings = [scale.initial] * len(battles.models)
    for a, b, score in zip(
        battles.model_a.tolist(), battles.model_b.tolist(), battles.score_a.tolist(), strict=True
    ):
        rating_a, rating_b = ratings[a], ratings[b]
        expected_a = win_probability(rating_a, rating_b, scale)
        expected_b = win_probability(rating_b, rating_a, scale)
        ratings[a] = rating_a + k_factor * (score - expected_a)
        ratings[b] = rating_b + k_factor * ((1.0 - score) - expected_b)
    return dict(zip(battles.models, ratings, strict=True))


def _win_matrix(
    model_a: np.ndarray,
    model_b: np.ndarray,
    score_a: np.ndarray,
    weight: np.ndarray | None,
    model_count: int,
) -> np.ndarray:
    """``wins[i, j]`` = weighted number of times i beat j (a battle with score s adds s to
    ``wins[a, b]`` and 1 - s to ``wins[b, a]``). `weight` is a per-row battle count."""
    weight_a = score_a if weight is None else weight * score_a
    weight_b = (1.0 - score_a) if weight is None else weight * (1.0 - score_a)
    cells = model_count * model_count
    wins = np.bincount(model_a * model_count + model_b, weights=weight_a, minlength=cells)
    wins += np.bincount(model_b * model_count + model_a, weights=weight_b, minlength=cells)
    return wins.reshape(model_count, model_count)


def _fit_logits(wins: np.ndarray, l2: float, start: np.ndarray | None = None) -> np.ndarray:
    """Penalised Bradley-Terry MLE on a win matrix, by damped Newton; returns logits with
    mean zero (natural-log odds units).

    Minimises ``sum_{i<j} w_ij*log(1+e^-(b_i-b_j)) + w_ji*log(1+e^(b_i-b_j)) + l2/2*|b|^2``,
    which is strictly convex for ``l2 > 0``. Its optimum has mean zero (the likelihood only sees
    differences, the penalty prefers the centred shift), so iterates are kept centred.
    """
    model_count = len(wins)
    first, second = np.triu_indices(model_count, 1)
    won, lost = wins[first, second], wins[second, first]
    played = won + lost
    keep = played > 0
    first, second, won, lost, played = (
        first[keep],
        second[keep],
        won[keep],
        lost[keep],
        played[keep],
    )

    def objective(logits: np.ndarray) -> float:
        gap = logits[first] - logits[second]
        return float(
            won @ np.logaddexp(0.0, -gap)
            + lost @ np.logaddexp(0.0, gap)
            + 0.5 * l2 * (logits @ logits)
        )

    logits = np.zeros(model_count) if start is None else np.array(start, dtype=np.float64)
    logits -= logits.mean()
    value = objective(logits)
    diagonal = np.arange(model_count)
    for _ in range(_MAX_NEWTON_STEPS):
        gap = logits[first] - logits[second]
        probability, complement = expit(gap), expit(-gap)
        # Derivative of the loss in the gap, `played * p - won` written without the
        # cancellation of `p - 1` that would swamp an unbeaten model's tiny gradient.
        residual = lost * probability - won * complement
        gradient = (
            np.bincount(first, residual, model_count)
            - np.bincount(second, residual, model_count)
            + l2 * logits
        )
        curvature = played * probability * complement
        hessian = np.zeros((model_count, model_count))
        hessian[first, second] = -curvature
        hessian[second, first] = -curvature
        hessian[diagonal, diagonal] = (
            np.bincount(first, curvature, model_count)
            + np.bincount(second, curvature, model_count)
            + l2
        )
        # The likelihood is flat along "all logits + c"; only the tiny penalty curves it, which
        # makes the system ill-conditioned. The gradient is orthogonal to that direction at a
        # centred point, so adding curvature there leaves the Newton step unchanged.
        hessian += hessian[diagonal, diagonal].mean() / model_count
        step = -np.linalg.solve(hessian, gradient)
        step -= step.mean()
        if np.max(np.abs(step)) < _NEWTON_TOLERANCE:
            logits = logits + step
            return logits - logits.mean()
        # Backtracking (Armijo) keeps the far-out steps of a never-losing model monotone; the
        # slack absorbs rounding in the objective near the optimum.
        slope = float(gradient @ step)
        slack = 1e-12 * (1.0 + abs(value))
        length = 1.0
        while True:
            candidate = logits + length * step
            candidate_value = objective(candidate)
            if candidate_value <= value + 1e-4 * length * slope + slack or length < 1e-6:
                break
            length *= 0.5
        logits, value = candidate, candidate_value
    raise RuntimeError(
        f"Bradley-Terry fit did not converge in {_MAX_NEWTON_STEPS} Newton steps "
        f"(last step {np.max(np.abs(step)):.3g} logits)"
    )


def _check_l2(l2: float) -> None:
    if not (math.isfinite(l2) and l2 > 0):
        raise ValueError(f"l2 must be a positive number, got {l2}")


def _point_logits(battles: BattleOutcomes, l2: float) -> np.ndarray:
    wins = _win_matrix(battles.model_a, battles.model_b, battles.score_a, None, len(battles.models))
    return _fit_logits(wins, l2)


def bradley_terry(
    outcomes: OutcomesLike, scale: RatingScale = RatingScale(), *, l2: float = L2_PENALTY
) -> dict[str, float]:
    """Maximum-likelihood Bradley-Terry ratings, anchored so the mean rating is `scale.initial`.

    Battles are aggregated into a weighted win matrix first, then fitted by Newton's method,
    so a million battles cost about as much as their pair matrix. `l2` is the tiny penalty that
    keeps unbeaten (or winless) models finite; see `L2_PENALTY`.
    """
    _check_l2(l2)
    battles = _as_battles(outcomes)
    if len(battles) == 0:
        return {}
    return _ratings(battles.models, _point_logits(battles, l2), scale)


def bootstrap_intervals(
    outcomes: OutcomesLike,
    rounds: int = 100,
    seed: int = 0,
    scale: RatingScale = RatingScale(),
    confidence: float = 0.95,
    *,
    l2: float = L2_PENALTY,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of each model's Bradley-Terry rating.

    Each round resamples the battles with replacement and refits. Resampling is done on the
    distinct ``(a, b, score)`` rows: a multinomial draw of ``len(outcomes)`` battles with the
    observed frequencies, which is the same distribution as resampling battles one by one.
    `rounds=0` returns ``(rating, rating)``. Deterministic for a given `seed`.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise ValueError(f"rounds must be a non-negative integer, got {rounds!r}")
    if not (0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")
    _check_l2(l2)
    battles = _as_battles(outcomes)
    if len(battles) == 0:
        return {}
    point = _point_logits(battles, l2)
    if rounds == 0:
        ratings = _ratings(battles.models, point, scale)
        return {name: (rating, rating) for name, rating in ratings.items()}

    model_count = len(battles.models)
    distinct_scores, score_code = np.unique(battles.score_a, return_inverse=True)
    row_key = (battles.model_a.astype(np.int64) * model_count + battles.model_b) * len(
        distinct_scores
    ) + score_code
    keys, counts = np.unique(row_key, return_counts=True)
    pair_key, unique_score_code = np.divmod(keys, len(distinct_scores))
    unique_a, unique_b = np.divmod(pair_key, model_count)
    unique_score = distinct_scores[unique_score_code]
    frequency = counts / counts.sum()

    rng = np.random.default_rng(seed)
    samples = np.empty((rounds, model_count))
    for round_index in range(rounds):
        drawn = rng.multinomial(len(battles), frequency).astype(np.float64)
        wins = _win_matrix(unique_a, unique_b, unique_score, drawn, model_count)
        # Warm start from the point estimate: a resample's optimum is close to it.
        samples[round_index] = _fit_logits(wins, l2, start=point)
    tail = (1.0 - confidence) / 2.0
    # Every round is already centred; the quantiles are taken model by model, not re-centred.
    low, high = np.quantile(samples, [tail, 1.0 - tail], axis=0)
    low_ratings = _ratings(battles.models, low, scale)
    high_ratings = _ratings(battles.models, high, scale)
    return {name: (low_ratings[name], high_ratings[name]) for name in battles.models}


def win_stats(outcomes: OutcomesLike) -> dict[str, WinStats]:
    """Battles, wins (score > 0.5), losses (< 0.5), ties (== 0.5) and win rate of each model,
    each from that model's own side."""
    battles = _as_battles(outcomes)
    if len(battles) == 0:
        return {}
    model_count = len(battles.models)
    a, b, score = battles.model_a, battles.model_b, battles.score_a

    def tally(a_mask: np.ndarray, b_mask: np.ndarray) -> np.ndarray:
        return np.bincount(a[a_mask], minlength=model_count) + np.bincount(
            b[b_mask], minlength=model_count
        )

    played = tally(np.ones_like(score, bool), np.ones_like(score, bool))
    # B's score is 1 - s; compare s itself so that rounding of 1 - s cannot move a battle.
    wins = tally(score > 0.5, score < 0.5)
    losses = tally(score < 0.5, score > 0.5)
    ties = tally(score == 0.5, score == 0.5)
    return {
        name: WinStats(
            battles=int(played[i]),
            wins=int(wins[i]),
            losses=int(losses[i]),
            ties=int(ties[i]),
            win_rate=float(wins[i] / played[i]) if played[i] else 0.0,
        )
        for i, name in enumerate(battles.models)
    }


def reference_bradley_terry(
    outcomes: OutcomesLike, scale: RatingScale = RatingScale(), *, l2: float = L2_PENALTY
) -> dict[str, float]:
    """Slow, plain reference for `bradley_terry` (tests and benchmarks only).

    A logistic regression with one row per battle (no aggregation), soft label ``score_a``,
    the same penalty and anchoring, fitted with scipy's L-BFGS.
    """
    _check_l2(l2)
    battles = _as_battles(outcomes)
    if len(battles) == 0:
        return {}
    a, b, score = battles.model_a, battles.model_b, battles.score_a
    model_count, count = len(battles.models), len(battles)

    def loss_and_gradient(logits: np.ndarray) -> tuple[float, np.ndarray]:
        gap = logits[a] - logits[b]
        loss = np.sum(score * np.logaddexp(0.0, -gap) + (1.0 - score) * np.logaddexp(0.0, gap))
        residual = (1.0 - score) * expit(gap) - score * expit(-gap)
        gradient = np.bincount(a, residual, model_count) - np.bincount(b, residual, model_count)
        # Averaged over battles so that the tolerances below do not depend on the data size.
        return (
            float(loss + 0.5 * l2 * (logits @ logits)) / count,
            (gradient + l2 * logits) / count,
        )

    result = minimize(
        loss_and_gradient,
        np.zeros(model_count),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 10_000, "ftol": 1e-15, "gtol": 1e-12},
    )
    return _ratings(battles.models, result.x - result.x.mean(), scale)
