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
  anchoring: the penalised optimum has mean logit zero (Chatbot Arena's unpenalised lbfgs
  starting from zero lands on the same anchoring, before they shift the board to a reference
  model).

Honesty about what the battles do not say:

* **Comparison groups.** Models that never met, directly or through others, share no scale.
  `comparison_groups` finds them; every group is fitted and anchored on its own.
* **Anchor.** Within a group the ratings are shifted so that the mean rating of the group's
  *anchor set* is ``scale.initial``. The anchor set is the largest set of models that have each
  scored against, and been scored against by, one another (directly or through others: a
  strongly connected component of the "scored against" graph); only there are the gaps finite.
  A model outside it (say one that never lost) has a rating the data bound on one side only,
  and anchoring on a mean that includes it would make every interval of the group unbounded.
  When no such set has two models, the whole group is the anchor.
* **Intervals** (`likelihood_intervals`): profile-likelihood intervals on each model's rating
  relative to the anchor, with the threshold scaled by the group's dispersion so fractional
  scores (shares of judge votes) are not counted as full battles. A side the likelihood never
  closes (an unbeaten model's upper side, a winless model's lower side) is reported as
  unbounded (``+inf``/``-inf``), never as a narrow interval. The
  percentile bootstrap (`bootstrap_intervals`) is kept as an option; it is too narrow on small
  samples (bench/bench_rating_coverage.py measures both).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
from scipy.linalg import null_space
from scipy.optimize import brentq, minimize
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.special import expit
from scipy.stats import chi2

__all__ = [
    "L2_PENALTY",
    "BattleOutcome",
    "BattleOutcomes",
    "OutcomesLike",
    "RatingInterval",
    "RatingScale",
    "WinStats",
    "bootstrap_intervals",
    "bradley_terry",
    "comparison_groups",
    "elo_ratings",
    "likelihood_intervals",
    "rank_ranges",
    "rating_intervals",
    "reference_bradley_terry",
    "win_probability",
    "win_stats",
]

# One battle: (model_a, model_b, score_a). `BattleOutcomes` holds many as arrays.
BattleOutcome: TypeAlias = tuple[str, str, float]

# Weight of the L2 penalty ``l2 / 2 * sum(beta ** 2)`` on the natural-log logits ``beta``,
# in units of battles: a prior worth a millionth of one battle. Negligible for any rating
# that the data determines; it only bounds the rating of a model that never loses (or never
# wins), which the unpenalised MLE sends to infinity (about +2000 points for one unbeaten
# battle, more the more it plays). Such a rating says nothing; its interval says so.
L2_PENALTY = 1e-6

_MAX_NEWTON_STEPS = 200
# Longest Newton step, in logits (about 1,700 rating points at the default scale).
_MAX_NEWTON_MOVE = 10.0
# Newton stops once no logit moves by more than this (1e-10 logits ~ 2e-8 rating points).
_NEWTON_TOLERANCE = 1e-10
# Relative size of the rounding in a loss value (a few hundred float64 ulps).
_ROUNDING_LEVEL = 1e-14

# A profile-likelihood bound further than this from the point estimate (in logits: about
# 11,000 rating points at the default scale) is reported as unbounded: only a side that the
# likelihood never closes, or closes through a vanishing weight (say a single soft vote of
# 0.001 against an otherwise unbeaten model), gets that far.
_MAX_PROFILE_SPAN = 64.0
_FIRST_PROFILE_STEP = 0.25
# The constrained fits behind a profile stop once their loss is this close to its minimum, far
# below the smallest threshold a bound is found at (0.1 * 1.92).
_PROFILE_VALUE_TOLERANCE = 1e-8
# The dispersion (score variance relative to a full win/loss battle) is estimated only from a
# group with at least this many battles beyond its free parameters; below that a battle counts
# as a full Bernoulli trial, which no score in [0, 1] can exceed in variance.
_MIN_DISPERSION_DF = 50
# A floor on the estimated dispersion: no battle is worth more than ten independent battles,
# even when every score fits the model exactly (e.g. all ties).
_MIN_DISPERSION = 0.1
# A weighted win below this (a billionth of a battle) does not count as having scored against
# a model when choosing the anchor set; it only guards against rounding (1 - (1 - s) != s).
_SCORED = 1e-9


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
    return 1.0 / (1.0 + math.pow(scale.base, (rating_b - rating_a) / scale.scale))


@dataclass(frozen=True, eq=False)
class BattleOutcomes:
    """Battles as arrays: ``models[model_a[i]]`` met ``models[model_b[i]]`` and scored
    ``score_a[i]``, ``count[i]`` times (aggregated battles: one row per distinct outcome; every
    row counts once when `count` is not given).

    Arrays are copied and made read-only. Construction validates everything and names the
    first offending battle index.
    """

    models: tuple[str, ...]
    model_a: np.ndarray
    model_b: np.ndarray
    score_a: np.ndarray
    count: np.ndarray | None = None

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
        if self.count is None:
            counts = np.ones(count, dtype=np.float64)
        else:
            counts = np.asarray(self.count, dtype=np.float64)
            if counts.shape != (count,):
                raise ValueError(
                    f"count must have one entry per row ({count}), got shape {counts.shape}")
            _raise_at_first(
                ~(np.isfinite(counts) & (counts >= 0.0) & (counts == np.round(counts))),
                lambda i: f"count={float(counts[i])!r} is not a whole number of battles",
            )
        arrays["count"] = counts
        object.__setattr__(self, "models", models)
        for field_name, value in arrays.items():
            value = np.array(value, copy=True)
            value.setflags(write=False)
            object.__setattr__(self, field_name, value)

    @classmethod
    def from_tuples(cls, outcomes: Iterable[BattleOutcome]) -> BattleOutcomes:
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
        """Rows (distinct outcomes when aggregated); `total` is the number of battles."""
        return len(self.score_a)

    @property
    def counts(self) -> np.ndarray:
        """Battles per row (all ones unless built aggregated)."""
        counts: np.ndarray = self.count  # type: ignore[assignment]  # set in __post_init__
        return counts

    @property
    def total(self) -> int:
        """Number of battles: the sum of the row counts."""
        return round(float(self.counts.sum()))

    @property
    def aggregated(self) -> bool:
        """Whether some row stands for more (or fewer) than one battle."""
        return bool(np.any(self.counts != 1.0))


OutcomesLike: TypeAlias = BattleOutcomes | Iterable[BattleOutcome]


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
    if battles.aggregated:
        raise ValueError("elo_ratings needs battles one by one, in order: aggregated rows have "
                         "no order (use `EloState` to rate battles as they arrive)")
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


@dataclass(frozen=True, eq=False)
class _Pairs:
    """The unordered pairs of a win matrix that met: ``won`` = weighted wins of ``first`` over
    ``second``, ``lost`` the other way."""

    count: int
    first: np.ndarray
    second: np.ndarray
    won: np.ndarray
    lost: np.ndarray

    @classmethod
    def from_wins(cls, wins: np.ndarray) -> _Pairs:
        first, second = np.triu_indices(len(wins), 1)
        won, lost = wins[first, second], wins[second, first]
        keep = won + lost > 0
        return cls(len(wins), first[keep], second[keep], won[keep], lost[keep])

    def loss(self, logits: np.ndarray, l2: float) -> float:
        """Negative log-likelihood plus ``l2/2 * |logits|^2``."""
        gap = logits[self.first] - logits[self.second]
        return float(
            self.won @ np.logaddexp(0.0, -gap)
            + self.lost @ np.logaddexp(0.0, gap)
            + 0.5 * l2 * (logits @ logits)
        )

    def derivatives(self, logits: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
        """Gradient and Hessian of `loss`."""
        count = self.count
        gap = logits[self.first] - logits[self.second]
        probability, complement = expit(gap), expit(-gap)
        # Derivative of the loss in the gap, `played * p - won` written without the
        # cancellation of `p - 1` that would swamp an unbeaten model's tiny gradient.
        residual = self.lost * probability - self.won * complement
        gradient = (
            np.bincount(self.first, residual, count)
            - np.bincount(self.second, residual, count)
            + l2 * logits
        )
        curvature = (self.won + self.lost) * probability * complement
        hessian = np.zeros((count, count))
        hessian[self.first, self.second] = -curvature
        hessian[self.second, self.first] = -curvature
        diagonal = np.arange(count)
        hessian[diagonal, diagonal] = (
            np.bincount(self.first, curvature, count)
            + np.bincount(self.second, curvature, count)
            + l2
        )
        return gradient, hessian


def _newton(
    loss: Callable[[np.ndarray], float],
    derivatives: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    start: np.ndarray,
    what: str,
    value_tolerance: float | None = None,
) -> np.ndarray:
    """Damped Newton minimisation of a strictly convex `loss` from `start`.

    Stops when no coordinate moves by more than `_NEWTON_TOLERANCE`, or, with
    `value_tolerance`, once the Newton decrement says the loss is within that of its minimum
    (what a caller that needs the minimum value, not the minimiser, waits for: along a
    direction only the tiny penalty curves, rounding keeps the step from ever getting small).
    """
    point = np.array(start, dtype=np.float64)
    value = loss(point)
    step = np.zeros_like(point)
    for _ in range(_MAX_NEWTON_STEPS):
        gradient, hessian = derivatives(point)
        step = -np.linalg.solve(hessian, gradient)
        if np.max(np.abs(step), initial=0.0) < _NEWTON_TOLERANCE:
            return point + step
        if value_tolerance is not None and -0.5 * float(gradient @ step) < value_tolerance:
            return point + step
        # A pair fitted far the wrong way has a full gradient but almost no curvature (its
        # sigmoid is saturated), so the raw step can be astronomically long: cap it.
        longest = float(np.max(np.abs(step)))
        if longest > _MAX_NEWTON_MOVE:
            step *= _MAX_NEWTON_MOVE / longest
        # Backtracking (Armijo) keeps the far-out steps of a never-losing model monotone; the
        # slack absorbs rounding in the objective near the optimum.
        slope = float(gradient @ step)
        slack = 1e-12 * (1.0 + abs(value))
        length = 1.0
        while True:
            candidate = point + length * step
            candidate_value = loss(candidate)
            if candidate_value <= value + 1e-4 * length * slope + slack or length < 1e-6:
                break
            length *= 0.5
        point, value = candidate, candidate_value
    raise RuntimeError(
        f"{what} did not converge in {_MAX_NEWTON_STEPS} Newton steps "
        f"(last step {np.max(np.abs(step)):.3g} logits)"
    )


def _fit_logits(wins: np.ndarray, l2: float, start: np.ndarray | None = None) -> np.ndarray:
    """Penalised Bradley-Terry MLE on a win matrix, by damped Newton; returns logits with
    mean zero (natural-log odds units).

    Minimises ``sum_{i<j} w_ij*log(1+e^-(b_i-b_j)) + w_ji*log(1+e^(b_i-b_j)) + l2/2*|b|^2``,
    which is strictly convex for ``l2 > 0``. Its optimum has mean zero (the likelihood only sees
    differences, the penalty prefers the centred shift), so iterates are kept centred.
    """
    pairs = _Pairs.from_wins(wins)
    model_count = len(wins)
    diagonal = np.arange(model_count)

    def centred_derivatives(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gradient, hessian = pairs.derivatives(logits, l2)
        # The likelihood is flat along "all logits + c"; only the tiny penalty curves it, which
        # makes the system ill-conditioned. The gradient is orthogonal to that direction at a
        # centred point, so adding curvature there leaves the Newton step unchanged.
        hessian += hessian[diagonal, diagonal].mean() / model_count
        # Keeping the step centred keeps every iterate centred.
        return gradient - gradient.mean(), hessian

    logits = np.zeros(model_count) if start is None else np.array(start, dtype=np.float64)
    logits -= logits.mean()
    # Besides the step criterion, stop once the loss is within rounding of its minimum: with
    # many battles and a model that never loses, rounding in the gradient keeps the step along
    # the direction only the penalty curves from ever reaching `_NEWTON_TOLERANCE`.
    rounding = _ROUNDING_LEVEL * (1.0 + abs(pairs.loss(logits, l2)))
    logits = _newton(
        lambda x: pairs.loss(x, l2), centred_derivatives, logits, "Bradley-Terry fit", rounding
    )
    centred: np.ndarray = logits - logits.mean()
    return centred


def _check_l2(l2: float) -> None:
    if not (math.isfinite(l2) and l2 > 0):
        raise ValueError(f"l2 must be a positive number, got {l2}")


def _check_confidence(confidence: float) -> None:
    if not (0.0 < confidence < 1.0):
        raise ValueError(f"confidence must be strictly between 0 and 1, got {confidence}")


@dataclass(frozen=True, eq=False)
class _Group:
    """One comparison group: its model indices (ascending), which of them form the anchor set,
    and its own win matrix."""

    members: np.ndarray
    anchor: np.ndarray
    wins: np.ndarray
    battles: int


def _groups(battles: BattleOutcomes) -> list[_Group]:
    """The comparison groups, largest first (most models, then most battles, then the first
    model name)."""
    model_count = len(battles.models)
    wins = _win_matrix(
        battles.model_a, battles.model_b, battles.score_a, battles.counts, model_count)
    # wins[i, j] + wins[j, i] is the number of battles between i and j.
    met = wins + wins.T
    group_count, label = connected_components(csr_matrix(met > 0), directed=False)
    group_battles = np.rint(
        np.bincount(label[battles.model_a], battles.counts, minlength=group_count))
    order = sorted(
        range(group_count),
        key=lambda g: (
            -int(np.sum(label == g)),
            -int(group_battles[g]),
            int(np.argmax(label == g)),
        ),
    )
    groups = []
    for g in order:
        members = np.flatnonzero(label == g)
        sub = wins[np.ix_(members, members)]
        groups.append(_Group(members, _anchor_set(sub), sub, int(group_battles[g])))
    return groups


def _anchor_set(wins: np.ndarray) -> np.ndarray:
    """The largest strongly connected set of the "scored against" graph (ties: most battles
    inside, then the first model), or every model when no such set has two models."""
    component_count, label = connected_components(
        csr_matrix(wins > _SCORED), directed=True, connection="strong"
    )
    met = wins + wins.T

    def key(component: int) -> tuple[int, float, int]:
        inside = label == component
        return (
            -int(inside.sum()),
            -float(met[np.ix_(inside, inside)].sum()),
            int(np.argmax(inside)),
        )

    best = min(range(component_count), key=key)
    anchor = label == best
    if anchor.sum() < 2:
        return np.ones(len(wins), dtype=bool)
    found: np.ndarray = anchor
    return found


def _anchored(logits: np.ndarray, anchor: np.ndarray) -> np.ndarray:
    """Logits shifted so that the anchor set's mean is zero (last axis = models)."""
    shifted: np.ndarray = logits - logits[..., anchor].mean(axis=-1, keepdims=True)
    return shifted


def _anchored_point(battles: BattleOutcomes, l2: float) -> tuple[np.ndarray, list[_Group]]:
    """Point logits of every model, fitted and anchored group by group."""
    groups = _groups(battles)
    logits = np.zeros(len(battles.models))
    for group in groups:
        logits[group.members] = _anchored(_fit_logits(group.wins, l2), group.anchor)
    return logits, groups


def comparison_groups(outcomes: OutcomesLike) -> list[tuple[str, ...]]:
    """Models that met, directly or through others, as groups: the largest first (most models,
    then most battles, then the first name), names sorted within a group.

    Ratings of two groups are on separate scales: nothing in the battles relates them.
    """
    battles = _as_battles(outcomes)
    if len(battles) == 0:
        return []
    groups = _groups(battles)
    return [tuple(battles.models[i] for i in group.members) for group in groups]


def bradley_terry(
    outcomes: OutcomesLike, scale: RatingScale = RatingScale(), *, l2: float = L2_PENALTY
) -> dict[str, float]:
    """Maximum-likelihood Bradley-Terry ratings of every model, fitted per comparison group and
    anchored so that the mean rating of each group's anchor set is `scale.initial` (for a
    group where every model has won and lost, directly or through others, that is the group's
    mean rating).

    Battles are aggregated into a weighted win matrix first, then fitted by Newton's method,
    so a million battles cost about as much as their pair matrix. `l2` is the tiny penalty that
    keeps unbeaten (or winless) models finite; see `L2_PENALTY`. The rating of a model that
    never lost is therefore a large finite number that says little: its interval
    (`likelihood_intervals`) says what the battles support.
    """
    _check_l2(l2)
    battles = _as_battles(outcomes)
    if len(battles) == 0:
        return {}
    logits, _ = _anchored_point(battles, l2)
    return _ratings(battles.models, logits, scale)


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

    Each round resamples the battles with replacement and refits every group, anchored on the
    anchor sets of the observed battles. Resampling is done on the distinct ``(a, b, score)``
    rows: a multinomial draw of as many battles as were played, with the observed frequencies,
    which is the same distribution as resampling battles one by one. Aggregated input (rows with
    a `count`) is therefore resampled exactly as its battles would be. `rounds=0` returns
    ``(rating, rating)``. Deterministic for a given `seed`.

    The percentile bootstrap cannot see what the battles never showed: a model that never lost
    never loses in a resample either, so its interval is narrow around a penalty-made number.
    `likelihood_intervals` (the leaderboard's default) reports such sides as unbounded.
    """
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 0:
        raise ValueError(f"rounds must be a non-negative integer, got {rounds!r}")
    _check_confidence(confidence)
    _check_l2(l2)
    battles = _as_battles(outcomes)
    if len(battles) == 0:
        return {}
    point, groups = _anchored_point(battles, l2)
    if rounds == 0:
        ratings = _ratings(battles.models, point, scale)
        return {name: (rating, rating) for name, rating in ratings.items()}

    model_count = len(battles.models)
    distinct_scores, score_code = np.unique(battles.score_a, return_inverse=True)
    row_key = (battles.model_a.astype(np.int64) * model_count + battles.model_b) * len(
        distinct_scores
    ) + score_code
    keys, row_code = np.unique(row_key, return_inverse=True)
    counts = np.bincount(row_code, battles.counts, minlength=len(keys))
    pair_key, unique_score_code = np.divmod(keys, len(distinct_scores))
    unique_a, unique_b = np.divmod(pair_key, model_count)
    unique_score = distinct_scores[unique_score_code]
    frequency = counts / counts.sum()

    rng = np.random.default_rng(seed)
    samples = np.empty((rounds, model_count))
    for round_index in range(rounds):
        drawn = rng.multinomial(battles.total, frequency).astype(np.float64)
        wins = _win_matrix(unique_a, unique_b, unique_score, drawn, model_count)
        for group in groups:
            members = group.members
            # Warm start from the point estimate: a resample's optimum is close to it.
            start = point[members] - point[members].mean()
            fitted = _fit_logits(wins[np.ix_(members, members)], l2, start=start)
            samples[round_index, members] = _anchored(fitted, group.anchor)
    tail = (1.0 - confidence) / 2.0
    # Every round is already anchored; the quantiles are taken model by model.
    low, high = np.quantile(samples, [tail, 1.0 - tail], axis=0)
    low_ratings = _ratings(battles.models, low, scale)
    high_ratings = _ratings(battles.models, high, scale)
    return {name: (low_ratings[name], high_ratings[name]) for name in battles.models}


@dataclass(frozen=True)
class RatingInterval:
    """A model's rating interval, its comparison group (1 = the largest) and whether it is in
    the group's anchor set. A side the battles leave open is ``-inf`` / ``+inf``."""

    lower: float
    upper: float
    group: int
    anchor: bool

    @property
    def lower_unbounded(self) -> bool:
        return self.lower == -math.inf

    @property
    def upper_unbounded(self) -> bool:
        return self.upper == math.inf


def _dispersion(
    battles: BattleOutcomes, logits: np.ndarray, group: _Group, model_group: np.ndarray
) -> float:
    """Variance of the scores relative to full win/loss battles of the fitted probabilities.

    ``sum (s - p)^2 / sum p (1 - p)``, corrected for the fitted parameters: 1 for win/loss
    battles, about 1/3 for the vote share of three independent judges, below that when every
    judge agrees. 1 when the group has too few battles to tell (see `_MIN_DISPERSION_DF`).
    """
    degrees = group.battles - (len(group.members) - 1)
    if degrees < _MIN_DISPERSION_DF:
        return 1.0
    inside = model_group[battles.model_a] == model_group[group.members[0]]
    gap = logits[battles.model_a[inside]] - logits[battles.model_b[inside]]
    score = battles.score_a[inside]
    weight = battles.counts[inside]
    probability, complement = expit(gap), expit(-gap)
    # s - p written as s (1 - p) - (1 - s) p: no cancellation when p rounds to 1.
    residual = score * complement - (1.0 - score) * probability
    variance = float(weight @ (probability * complement))
    if variance <= 0.0:
        return 1.0
    estimate = float(weight @ (residual * residual)) / variance * group.battles / degrees
    return max(estimate, _MIN_DISPERSION)


class _ProfileSlice:
    """The penalised loss of a group minimised with one linear combination of the logits,
    ``t = direction . beta``, held fixed; `excess` is how far that minimum lies above the
    unconstrained one."""

    def __init__(
        self, pairs: _Pairs, direction: np.ndarray, centred: np.ndarray, l2: float
    ) -> None:
        self.pairs, self.l2 = pairs, l2
        self.best = pairs.loss(centred, l2)
        # Directions that keep both the centring (the likelihood's free shift) and t fixed.
        self.basis = null_space(np.vstack([np.ones(len(direction)), direction]))
        self.unit = direction / (direction @ direction)
        self.centred = centred
        self.estimate = float(direction @ centred)
        self.free = self.basis.T @ centred

    def restart(self) -> None:
        """Start the next search from the point estimate again."""
        self.free = self.basis.T @ self.centred

    def excess(self, t: float, target: float = 0.0) -> float:
        """Minimum loss with ``direction . beta = t``, above the global minimum, minus `target`."""
        fixed = t * self.unit
        if self.basis.shape[1] == 0:
            return self.pairs.loss(fixed, self.l2) - self.best - target
        # Warm start from the previous evaluation: the root search moves t a little.
        self.free = _newton(
            lambda free: self.pairs.loss(fixed + self.basis @ free, self.l2),
            lambda free: self._derivatives(fixed, free),
            self.free,
            "Profile likelihood",
            value_tolerance=_PROFILE_VALUE_TOLERANCE,
        )
        return self.pairs.loss(fixed + self.basis @ self.free, self.l2) - self.best - target

    def _derivatives(self, fixed: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gradient, hessian = self.pairs.derivatives(fixed + self.basis @ free, self.l2)
        return self.basis.T @ gradient, self.basis.T @ hessian @ self.basis

    def bound(self, side: float, target: float) -> float:
        """Where the excess reaches `target` on one `side` (-1 or +1) of the estimate; an
        infinity of that sign when it does not within `_MAX_PROFILE_SPAN` logits."""
        self.restart()
        inner, step = self.estimate, _FIRST_PROFILE_STEP
        # The profile is convex in t: step out (doubling) until the target is passed...
        while self.excess(self.estimate + side * step, target) < 0.0:
            inner = self.estimate + side * step
            step *= 2.0
            if step > _MAX_PROFILE_SPAN:
                return side * math.inf
        # ...then Brent's method between the last point inside and the first outside.
        outer = self.estimate + side * step
        return float(brentq(self.excess, inner, outer, args=(target,), xtol=1e-7, rtol=1e-12))


def _profile_bounds(
    group: _Group, point: np.ndarray, target: float, one_sided_target: float, l2: float
) -> tuple[np.ndarray, np.ndarray]:
    """Profile-likelihood bounds (logits relative to the anchor mean) of every member.

    For model i the quantity is ``t = c . beta`` with ``c = e_i - anchor / |anchor|``; the
    bounds are where the profile rises `target` above the minimum. A side still below the
    target `_MAX_PROFILE_SPAN` logits out is unbounded. When one side is unbounded the other is
    moved out to `one_sided_target`: see `likelihood_intervals`.
    """
    count = len(group.members)
    if count == 1:
        # A model listed without battles (possible with array input): nothing bounds it.
        return np.array([-math.inf]), np.array([math.inf])
    pairs = _Pairs.from_wins(group.wins)
    centred = point - point.mean()
    anchor_weights = group.anchor / group.anchor.sum()
    lower, upper = np.empty(count), np.empty(count)
    for i in range(count):
        direction = -anchor_weights
        direction[i] += 1.0
        profile = _ProfileSlice(pairs, direction, centred, l2)
        lower[i] = profile.bound(-1.0, target)
        upper[i] = profile.bound(1.0, target)
        if math.isinf(upper[i]) and not math.isinf(lower[i]):
            lower[i] = profile.bound(-1.0, one_sided_target)
        elif math.isinf(lower[i]) and not math.isinf(upper[i]):
            upper[i] = profile.bound(1.0, one_sided_target)
    return lower, upper


def likelihood_intervals(
    outcomes: OutcomesLike,
    scale: RatingScale = RatingScale(),
    confidence: float = 0.95,
    *,
    l2: float = L2_PENALTY,
) -> dict[str, RatingInterval]:
    """Profile-likelihood interval of each model's Bradley-Terry rating (the ratings of
    `bradley_terry`), with its comparison group and anchor membership.

    The interval is the set of ratings whose profile deviance stays within the `confidence`
    quantile of chi-square(1), scaled by the group's dispersion (fractional scores carry less
    variance than win/loss battles). It is wide when a model played a few battles and open
    (``-inf``/``+inf``) on a side the battles never close: a model that never lost has no upper
    bound, one that never won no lower bound. Deterministic.
    """
    _check_confidence(confidence)
    _check_l2(l2)
    battles = _as_battles(outcomes)
    if len(battles) == 0:
        return {}
    logits, groups = _anchored_point(battles, l2)
    model_group = np.zeros(len(battles.models), dtype=np.intp)
    for number, group in enumerate(groups, 1):
        model_group[group.members] = number
    threshold = float(chi2.ppf(confidence, 1)) / 2.0
    # The closed side of a one-sided interval: where the observed record has probability
    # 1 - confidence (for an unbeaten record against one opponent, log-likelihood excess
    # -log(alpha) is exactly the one-sided Clopper-Pearson bound). The chi-square threshold
    # assumes a likelihood that falls on both sides, which a one-sided record never gives.
    one_sided = -math.log(1.0 - confidence)
    result: dict[str, RatingInterval] = {}
    for number, group in enumerate(groups, 1):
        dispersion = _dispersion(battles, logits, group, model_group)
        lower, upper = _profile_bounds(
            group, logits[group.members], threshold * dispersion, one_sided * dispersion, l2
        )
        for position, model in enumerate(group.members):
            result[battles.models[model]] = RatingInterval(
                lower=_rating(float(lower[position]), scale),
                upper=_rating(float(upper[position]), scale),
                group=number,
                anchor=bool(group.anchor[position]),
            )
    return {name: result[name] for name in battles.models}


def _rating(logit: float, scale: RatingScale) -> float:
    """One logit as a rating; infinities stay infinite."""
    if math.isinf(logit):
        return logit
    return float(scale.initial + scale.points_per_logit * logit)


def rating_intervals(
    outcomes: OutcomesLike,
    scale: RatingScale = RatingScale(),
    confidence: float = 0.95,
    *,
    method: str = "profile",
    rounds: int = 100,
    seed: int = 0,
    l2: float = L2_PENALTY,
) -> dict[str, RatingInterval]:
    """The leaderboard's intervals: `likelihood_intervals` (``method="profile"``), or the
    percentile bootstrap (``"bootstrap"``, `rounds` rounds) for the models whose record the
    likelihood bounds on both sides. A model with an open side keeps its profile-likelihood
    interval either way: every resample repeats its one-sided record, so the bootstrap would
    put a narrow interval around a number made by the penalty."""
    if method not in ("profile", "bootstrap"):
        raise ValueError(f"method must be 'profile' or 'bootstrap', got {method!r}")
    profile = likelihood_intervals(outcomes, scale, confidence, l2=l2)
    if method == "profile":
        return profile
    bootstrap = bootstrap_intervals(outcomes, rounds, seed, scale, confidence, l2=l2)
    return {
        name: interval
        if interval.lower_unbounded or interval.upper_unbounded
        else RatingInterval(*bootstrap[name], group=interval.group, anchor=interval.anchor)
        for name, interval in profile.items()
    }


def rank_ranges(intervals: Mapping[str, RatingInterval]) -> dict[str, tuple[int, int]]:
    """Best and worst rank of each model within its group that its interval allows.

    Model j is ranked above model i for sure only when j's lower bound is above i's upper
    bound, so the best rank is 1 + the number of such models and the worst is the group's size
    minus the models surely below. Overlapping intervals share ranks; models of different
    groups are never ranked against each other.
    """
    result = {}
    for name, interval in intervals.items():
        peers = [other for other in intervals.values() if other.group == interval.group]
        above = sum(1 for other in peers if other.lower > interval.upper)
        below = sum(1 for other in peers if other.upper < interval.lower)
        result[name] = (1 + above, len(peers) - below)
    return result


def win_stats(outcomes: OutcomesLike) -> dict[str, WinStats]:
    """Battles, wins (score > 0.5), losses (< 0.5), ties (== 0.5) and win rate of each model,
    each from that model's own side."""
    battles = _as_battles(outcomes)
    if len(battles) == 0:
        return {}
    model_count = len(battles.models)
    a, b, score, weight = battles.model_a, battles.model_b, battles.score_a, battles.counts

    def tally(a_mask: np.ndarray, b_mask: np.ndarray) -> np.ndarray:
        total: np.ndarray = np.rint(
            np.bincount(a[a_mask], weight[a_mask], minlength=model_count)
            + np.bincount(b[b_mask], weight[b_mask], minlength=model_count)
        ).astype(np.int64)
        return total

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
    a, b, score, weight = battles.model_a, battles.model_b, battles.score_a, battles.counts
    model_count, count = len(battles.models), max(battles.total, 1)

    def loss_and_gradient(logits: np.ndarray) -> tuple[float, np.ndarray]:
        gap = logits[a] - logits[b]
        loss = weight @ (
            score * np.logaddexp(0.0, -gap) + (1.0 - score) * np.logaddexp(0.0, gap))
        residual = weight * ((1.0 - score) * expit(gap) - score * expit(-gap))
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
