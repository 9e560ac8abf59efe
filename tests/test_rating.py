"""Tests of the arena's rating math (Elo, Bradley-Terry, bootstrap, win statistics)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import spearmanr

from warriorcoder.arena.rating import (
    BattleOutcome,
    BattleOutcomes,
    RatingInterval,
    RatingScale,
    WinStats,
    bootstrap_intervals,
    bradley_terry,
    comparison_groups,
    elo_ratings,
    likelihood_intervals,
    rank_ranges,
    rating_intervals,
    reference_bradley_terry,
    win_probability,
    win_stats,
)

SIX_STRENGTHS = np.arange(6) * 200.0  # true ratings, 200 points apart


def simulate(
    strengths: np.ndarray,
    battles: int,
    seed: int,
    tie_rate: float = 0.0,
    fractional_rate: float = 0.0,
) -> BattleOutcomes:
    """Battles between random distinct pairs, won with the logistic (Elo) probability."""
    rng = np.random.default_rng(seed)
    count = len(strengths)
    model_a = rng.integers(0, count, battles)
    model_b = (model_a + rng.integers(1, count, battles)) % count
    p_a = 1.0 / (1.0 + 10.0 ** ((strengths[model_b] - strengths[model_a]) / 400.0))
    score = (rng.random(battles) < p_a).astype(float)
    score[rng.random(battles) < tie_rate] = 0.5
    # Judge panels of three: share of votes for A.
    fractional = rng.random(battles) < fractional_rate
    score[fractional] = rng.binomial(3, p_a[fractional]) / 3.0
    names = tuple(f"model-{i}" for i in range(count))
    return BattleOutcomes(names, model_a, model_b, score)


def as_vector(ratings: dict[str, float], models: tuple[str, ...]) -> np.ndarray:
    return np.array([ratings[name] for name in models])


def swapped(outcomes: list[BattleOutcome]) -> list[BattleOutcome]:
    return [(b, a, 1.0 - s) for a, b, s in outcomes]


names = st.sampled_from(["alpha", "beta", "gamma", "delta", "eps"])
dyadic_scores = st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])
any_scores = st.floats(0.0, 1.0, allow_nan=False)


def battle_lists(scores: st.SearchStrategy[float], min_size: int = 0) -> st.SearchStrategy:
    return st.lists(
        st.tuples(names, names, scores).filter(lambda row: row[0] != row[1]),
        min_size=min_size,
        max_size=40,
    )


# --- win probability and scale -------------------------------------------------------------


def test_win_probability_matches_elo_odds() -> None:
    assert win_probability(1000.0, 1000.0) == 0.5
    assert win_probability(1400.0, 1000.0) == pytest.approx(10.0 / 11.0)
    assert win_probability(1000.0, 1400.0) == pytest.approx(1.0 / 11.0)
    natural = RatingScale(initial=0.0, scale=1.0, base=math.e)
    assert win_probability(2.0, 0.0, natural) == pytest.approx(1.0 / (1.0 + math.exp(-2.0)))


@settings(deadline=None)  # a deadline is a timing assertion; CI machines vary
@given(st.floats(-3000, 3000), st.floats(-3000, 3000))
def test_win_probabilities_of_both_sides_sum_to_one(rating_a: float, rating_b: float) -> None:
    total = win_probability(rating_a, rating_b) + win_probability(rating_b, rating_a)
    assert total == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"scale": 0.0}, "scale"), ({"base": 1.0}, "base"), ({"initial": math.nan}, "initial")],
)
def test_rating_scale_rejects_degenerate_values(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RatingScale(**kwargs)


# --- Elo ---------------------------------------------------------------------------------


def test_elo_first_battle_between_newcomers() -> None:
    # Both start at 1000, expected 0.5 each, K=40: +20 / -20.
    assert elo_ratings([("a", "b", 1.0)]) == {"a": 1020.0, "b": 980.0}


def test_elo_updates_b_from_the_rating_a_had_before_the_battle() -> None:
    # WarriorCoder's released code computed B's expectation from A's *updated* rating:
    # after A wins, B would get 1000 + 40 * (0 - P(1000 beats 1020)) = 981.15, not 980.
    ratings = elo_ratings([("a", "b", 1.0)])
    assert ratings["b"] == 980.0
    # Second battle from 1020 vs 980: the expectations use those two numbers only.
    ratings = elo_ratings([("a", "b", 1.0), ("b", "a", 1.0)])
    expected_b = win_probability(980.0, 1020.0)
    expected_a = win_probability(1020.0, 980.0)
    assert ratings["b"] == pytest.approx(980.0 + 40.0 * (1.0 - expected_b))
    assert ratings["a"] == pytest.approx(1020.0 + 40.0 * (0.0 - expected_a))


@settings(deadline=None)  # a deadline is a timing assertion; CI machines vary
@given(battle_lists(any_scores), st.floats(0.0, 64.0))
def test_elo_is_zero_sum(outcomes: list[BattleOutcome], k_factor: float) -> None:
    # Holds only when both expectations come from the pre-battle ratings.
    ratings = elo_ratings(outcomes, k_factor=k_factor)
    assert sum(ratings.values()) == pytest.approx(1000.0 * len(ratings), abs=1e-6)


@settings(deadline=None)  # a deadline is a timing assertion; CI machines vary
@given(battle_lists(dyadic_scores), names, names, dyadic_scores)
def test_elo_update_of_one_battle_is_mirrored(
    history: list[BattleOutcome], model_a: str, model_b: str, score: float
) -> None:
    if model_a == model_b:
        return
    forward = elo_ratings([*history, (model_a, model_b, score)])
    mirrored = elo_ratings([*history, (model_b, model_a, 1.0 - score)])
    assert forward == mirrored


def test_elo_models_start_at_the_initial_rating_on_first_sight() -> None:
    scale = RatingScale(initial=1500.0)
    ratings = elo_ratings([("a", "b", 0.5), ("c", "a", 0.5)], scale=scale)
    # A tie between equals changes nothing, so the newcomer c meets a at 1500 too.
    assert ratings == {"a": 1500.0, "b": 1500.0, "c": 1500.0}


def test_elo_follows_the_given_order() -> None:
    early = elo_ratings([("a", "b", 1.0), ("a", "c", 0.0)])
    late = elo_ratings([("a", "c", 0.0), ("a", "b", 1.0)])
    assert early != late


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_elo_recovers_the_order_of_known_strengths(seed: int) -> None:
    battles = simulate(SIX_STRENGTHS, 20_000, seed)
    # K=40 keeps ratings noisy (an adjacent pair can swap), K=10 settles into the true order.
    noisy = as_vector(elo_ratings(battles), battles.models)
    assert spearmanr(noisy, SIX_STRENGTHS).statistic >= 0.8
    settled = as_vector(elo_ratings(battles, k_factor=10.0), battles.models)
    assert np.all(np.diff(settled) > 0)


def test_elo_rejects_negative_k_factor() -> None:
    with pytest.raises(ValueError, match="k_factor"):
        elo_ratings([("a", "b", 1.0)], k_factor=-1.0)


# --- Bradley-Terry ---------------------------------------------------------------------------


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_bradley_terry_recovers_known_strengths(seed: int) -> None:
    battles = simulate(SIX_STRENGTHS, 20_000, seed)
    estimate = as_vector(bradley_terry(battles), battles.models)
    assert np.all(np.diff(estimate) > 0)
    # ~6,700 battles per model: standard error ~10 points.
    truth = SIX_STRENGTHS - SIX_STRENGTHS.mean() + 1000.0
    assert np.max(np.abs(estimate - truth)) < 40.0


@settings(deadline=None)  # a deadline is a timing assertion; CI machines vary
@given(battle_lists(any_scores))
def test_bradley_terry_mean_rating_of_each_anchor_set_is_the_initial_rating(
    outcomes: list[BattleOutcome],
) -> None:
    # Each comparison group is anchored on its own anchor set (the whole group when every
    # model in it has won and lost, directly or through others).
    ratings = bradley_terry(outcomes)
    intervals = likelihood_intervals(outcomes)
    assert ratings.keys() == intervals.keys()
    for group in {interval.group for interval in intervals.values()}:
        anchor = [name for name, iv in intervals.items() if iv.group == group and iv.anchor]
        assert anchor
        assert np.mean([ratings[name] for name in anchor]) == pytest.approx(1000.0, abs=1e-6)


def test_bradley_terry_mean_rating_is_the_initial_rating_when_every_model_won_and_lost() -> None:
    battles = simulate(SIX_STRENGTHS, 500, seed=2, tie_rate=0.1)
    assert np.mean(list(bradley_terry(battles).values())) == pytest.approx(1000.0, abs=1e-6)


def test_bradley_terry_two_models_gap_is_the_log_odds() -> None:
    ratings = bradley_terry([("a", "b", 1.0)] * 30 + [("a", "b", 0.0)] * 10)
    assert ratings["a"] - ratings["b"] == pytest.approx(400.0 * math.log10(3.0), abs=1e-3)
    assert ratings["a"] + ratings["b"] == pytest.approx(2000.0)


def test_bradley_terry_fractional_score_is_a_weighted_win() -> None:
    fractional = bradley_terry([("a", "b", 0.75)] * 4 + [("b", "c", 0.5)] * 2)
    counted = bradley_terry([("a", "b", 1.0)] * 3 + [("b", "a", 1.0), ("b", "c", 1), ("c", "b", 1)])
    assert fractional == pytest.approx(counted, abs=1e-9)


@settings(deadline=None)  # a deadline is a timing assertion; CI machines vary
@given(battle_lists(dyadic_scores, min_size=1))
def test_bradley_terry_swapping_sides_gives_the_same_ratings(outcomes: list[BattleOutcome]) -> None:
    assert bradley_terry(swapped(outcomes)) == bradley_terry(outcomes)


@settings(deadline=None)  # a deadline is a timing assertion; CI machines vary
@given(battle_lists(any_scores, min_size=1))
def test_bradley_terry_swapping_sides_with_any_scores(outcomes: list[BattleOutcome]) -> None:
    # 1 - (1 - s) may differ from s in the last bit, hence approx.
    forward, mirrored = bradley_terry(outcomes), bradley_terry(swapped(outcomes))
    assert mirrored == pytest.approx(forward, abs=1e-6)


def test_bradley_terry_scale_is_an_affine_change_of_ratings() -> None:
    battles = simulate(SIX_STRENGTHS, 3_000, seed=3)
    default = as_vector(bradley_terry(battles), battles.models)
    natural = as_vector(
        bradley_terry(battles, RatingScale(initial=0.0, scale=1.0, base=math.e)), battles.models
    )
    assert natural == pytest.approx((default - 1000.0) * math.log(10.0) / 400.0, abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bradley_terry_matches_the_per_battle_reference(seed: int) -> None:
    strengths = np.array([0.0, 80.0, 150.0, 300.0, 310.0, 520.0, 700.0])
    battles = simulate(strengths, 5_000, seed, tie_rate=0.15, fractional_rate=0.2)
    fast = as_vector(bradley_terry(battles), battles.models)
    reference = as_vector(reference_bradley_terry(battles), battles.models)
    assert np.max(np.abs(fast - reference)) < 1.0


def test_tuples_and_arrays_give_the_same_ratings() -> None:
    battles = simulate(SIX_STRENGTHS, 500, seed=4, tie_rate=0.2)
    rows = [
        (battles.models[a], battles.models[b], s)
        for a, b, s in zip(battles.model_a, battles.model_b, battles.score_a, strict=True)
    ]
    assert bradley_terry(rows) == bradley_terry(battles)
    assert elo_ratings(rows) == elo_ratings(battles)
    assert win_stats(rows) == win_stats(battles)


def test_a_model_that_never_loses_gets_a_finite_top_rating() -> None:
    outcomes = [("champ", "b", 1.0)] * 20 + [("b", "c", 1.0), ("c", "b", 1.0)]
    outcomes += [("loser", "c", 0.0)] * 5
    ratings = bradley_terry(outcomes)
    assert all(math.isfinite(value) for value in ratings.values())
    assert max(ratings, key=ratings.__getitem__) == "champ"
    assert min(ratings, key=ratings.__getitem__) == "loser"
    intervals = bootstrap_intervals(outcomes, rounds=30)
    assert all(math.isfinite(v) for pair in intervals.values() for v in pair)


def test_unbeaten_models_in_separate_groups_stay_finite() -> None:
    # Two disconnected groups, one with 100,000 unbeaten battles.
    ratings = bradley_terry([("a", "b", 1.0)] * 100_000 + [("c", "d", 0.0)])
    assert all(math.isfinite(value) for value in ratings.values())
    assert ratings["a"] > ratings["d"] > ratings["c"] > ratings["b"]


def test_all_ties_give_equal_ratings() -> None:
    outcomes = [("a", "b", 0.5), ("b", "c", 0.5), ("c", "a", 0.5), ("a", "b", 0.5)]
    assert bradley_terry(outcomes) == pytest.approx({"a": 1000.0, "b": 1000.0, "c": 1000.0})
    assert elo_ratings(outcomes) == {"a": 1000.0, "b": 1000.0, "c": 1000.0}


def test_elo_tie_pulls_ratings_together() -> None:
    ratings = elo_ratings([("a", "b", 1.0), ("a", "b", 0.5)])
    assert 980.0 < ratings["b"] < ratings["a"] < 1020.0


# --- bootstrap ---------------------------------------------------------------------------


def test_bootstrap_intervals_contain_the_point_estimate() -> None:
    battles = simulate(SIX_STRENGTHS, 4_000, seed=5, tie_rate=0.1)
    point = bradley_terry(battles)
    intervals = bootstrap_intervals(battles, rounds=100, seed=1)
    assert intervals.keys() == point.keys()
    for name, (low, high) in intervals.items():
        assert low < point[name] < high


def test_bootstrap_intervals_shrink_with_more_data() -> None:
    small = bootstrap_intervals(simulate(SIX_STRENGTHS, 2_000, seed=6), rounds=100)
    large = bootstrap_intervals(simulate(SIX_STRENGTHS, 32_000, seed=6), rounds=100)
    for name in small:
        small_width = small[name][1] - small[name][0]
        large_width = large[name][1] - large[name][0]
        # Sixteen times the data: about a quarter of the width.
        assert large_width < 0.5 * small_width


def test_bootstrap_matches_resampling_battles_one_by_one() -> None:
    battles = simulate(SIX_STRENGTHS, 2_000, seed=7, tie_rate=0.2)
    rng = np.random.default_rng(0)
    naive = []
    for _ in range(200):
        drawn = rng.integers(0, len(battles), len(battles))
        resample = BattleOutcomes(
            battles.models, battles.model_a[drawn], battles.model_b[drawn], battles.score_a[drawn]
        )
        naive.append(as_vector(bradley_terry(resample), battles.models))
    naive_width = np.diff(np.quantile(naive, [0.025, 0.975], axis=0), axis=0)[0]
    intervals = bootstrap_intervals(battles, rounds=200, seed=0)
    width = np.array([intervals[name][1] - intervals[name][0] for name in battles.models])
    assert width == pytest.approx(naive_width, rel=0.3)


def test_bootstrap_is_deterministic_for_a_seed() -> None:
    battles = simulate(SIX_STRENGTHS, 1_000, seed=8, tie_rate=0.1)
    first = bootstrap_intervals(battles, rounds=20, seed=11)
    assert bootstrap_intervals(battles, rounds=20, seed=11) == first
    assert bootstrap_intervals(battles, rounds=20, seed=12) != first


def test_bootstrap_zero_rounds_returns_the_point_estimate() -> None:
    battles = simulate(SIX_STRENGTHS, 1_000, seed=9)
    point = bradley_terry(battles)
    assert bootstrap_intervals(battles, rounds=0) == {n: (r, r) for n, r in point.items()}


def test_bootstrap_narrower_confidence_gives_nested_intervals() -> None:
    battles = simulate(SIX_STRENGTHS, 2_000, seed=10)
    wide = bootstrap_intervals(battles, rounds=100, confidence=0.95)
    narrow = bootstrap_intervals(battles, rounds=100, confidence=0.5)
    for name in wide:
        assert wide[name][0] <= narrow[name][0] < narrow[name][1] <= wide[name][1]


@pytest.mark.parametrize(
    ("kwargs", "word"), [({"rounds": -1}, "rounds"), ({"confidence": 1.0}, "confidence")]
)
def test_bootstrap_rejects_bad_parameters(kwargs: dict[str, float], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        bootstrap_intervals([("a", "b", 1.0)], **kwargs)  # type: ignore[arg-type]


# --- comparison groups, anchors and honest intervals ---------------------------------------


def as_rows(battles: BattleOutcomes) -> list[BattleOutcome]:
    return [
        (battles.models[a], battles.models[b], float(s))
        for a, b, s in zip(battles.model_a, battles.model_b, battles.score_a, strict=True)
    ]


def test_comparison_groups_split_models_that_never_met() -> None:
    outcomes = [("a", "b", 1.0), ("b", "c", 0.5), ("x", "y", 0.0)]
    outcomes += [("p", "q", 1.0), ("q", "p", 1.0)]
    # Most models first, then most battles: (p, q) played twice, (x, y) once.
    assert comparison_groups(outcomes) == [("a", "b", "c"), ("p", "q"), ("x", "y")]
    assert comparison_groups([]) == []


@settings(deadline=None)  # a deadline is a timing assertion; CI machines vary
@given(battle_lists(any_scores))
def test_comparison_groups_are_the_connected_components(outcomes: list[BattleOutcome]) -> None:
    # Reference: grow each component by repeated passes over the battles.
    component: dict[str, set[str]] = {}
    for a, b, _ in outcomes:
        merged = component.get(a, {a}) | component.get(b, {b})
        for name in merged:
            component[name] = merged
    expected = {frozenset(members) for members in component.values()}
    groups = comparison_groups(outcomes)
    assert {frozenset(group) for group in groups} == expected
    assert sum(len(group) for group in groups) == len(component)
    assert [len(group) for group in groups] == sorted((len(g) for g in groups), reverse=True)


def test_each_group_is_fitted_and_anchored_on_its_own() -> None:
    arena = simulate(SIX_STRENGTHS, 2_000, seed=3)
    other = [("x", "y", 1.0)] * 7 + [("y", "x", 1.0)] * 3
    together = bradley_terry(as_rows(arena) + other)
    assert {name: together[name] for name in arena.models} == pytest.approx(
        bradley_terry(arena), abs=1e-6
    )
    assert {name: together[name] for name in "xy"} == pytest.approx(bradley_terry(other))
    intervals = likelihood_intervals(as_rows(arena) + other)
    assert {intervals[name].group for name in arena.models} == {1}
    assert intervals["x"].group == intervals["y"].group == 2


def test_one_battle_gives_a_one_sided_interval_not_a_zero_width_one() -> None:
    # The percentile bootstrap repeats the one battle in every resample: zero width.
    low, high = bootstrap_intervals([("a", "b", 1.0)], rounds=50)["a"]
    assert low == high
    intervals = likelihood_intervals([("a", "b", 1.0)])
    a, b = intervals["a"], intervals["b"]
    assert a.upper_unbounded and not a.lower_unbounded and a.upper == math.inf
    assert b.lower_unbounded and not b.upper_unbounded and b.lower == -math.inf
    # One-sided bound: the gap at which the observed win had probability 5%, split around
    # the anchor (the mean of a and b).
    gap = math.log(0.05 / 0.95) * 400.0 / math.log(10.0)
    assert a.lower == pytest.approx(1000.0 + gap / 2.0, abs=0.01)
    assert b.upper == pytest.approx(1000.0 - gap / 2.0, abs=0.01)
    for method in ("profile", "bootstrap"):
        assert rating_intervals([("a", "b", 1.0)], method=method, rounds=20) == intervals


def test_an_unbeaten_model_has_no_upper_bound_and_the_others_stay_bounded() -> None:
    outcomes = [("champ", "b", 1.0)] * 20 + [("b", "c", 1.0), ("c", "b", 1.0)] * 5
    outcomes += [("loser", "c", 0.0)] * 5
    intervals = likelihood_intervals(outcomes)
    champ, loser = intervals["champ"], intervals["loser"]
    assert champ.upper_unbounded and math.isfinite(champ.lower) and not champ.anchor
    assert loser.lower_unbounded and math.isfinite(loser.upper) and not loser.anchor
    for name in ("b", "c"):
        # Anchored on the models that won and lost: an unbeaten model does not drag the
        # anchor (and with it every other interval) to infinity.
        assert intervals[name].anchor
        assert math.isfinite(intervals[name].lower) and math.isfinite(intervals[name].upper)
    # Twenty straight wins over b do say that champ is the stronger.
    assert champ.lower > intervals["b"].upper
    ratings = bradley_terry(outcomes)
    assert ratings["b"] + ratings["c"] == pytest.approx(2000.0)


def test_few_battles_give_a_wide_interval_and_many_a_narrow_one() -> None:
    few = likelihood_intervals([("a", "b", 1.0)] * 3 + [("a", "b", 0.0)])["a"]
    many = likelihood_intervals([("a", "b", 1.0)] * 300 + [("a", "b", 0.0)] * 100)["a"]
    assert few.upper - few.lower > 400.0
    assert many.upper - many.lower < 70.0
    assert few.lower < many.lower < many.upper < few.upper


@pytest.mark.parametrize("fractional_rate", [0.0, 1.0])
def test_profile_intervals_agree_with_the_bootstrap_on_plenty_of_battles(
    fractional_rate: float,
) -> None:
    # With share-of-3-votes scores a battle carries a third of a win/loss battle's variance;
    # without the dispersion the profile intervals would be sqrt(3) times too wide.
    battles = simulate(SIX_STRENGTHS, 4_000, seed=5, fractional_rate=fractional_rate)
    profile = likelihood_intervals(battles)
    bootstrap = bootstrap_intervals(battles, rounds=200, seed=1)
    profile_width = np.mean([iv.upper - iv.lower for iv in profile.values()])
    bootstrap_width = np.mean([high - low for low, high in bootstrap.values()])
    assert profile_width == pytest.approx(bootstrap_width, rel=0.15)
    point = bradley_terry(battles)
    for name, interval in profile.items():
        assert interval.lower < point[name] < interval.upper
        assert interval.anchor and interval.group == 1


@settings(max_examples=40, deadline=None)
@given(battle_lists(dyadic_scores, min_size=1))
def test_likelihood_intervals_contain_the_point_and_nest(outcomes: list[BattleOutcome]) -> None:
    point = bradley_terry(outcomes)
    wide = likelihood_intervals(outcomes, confidence=0.95)
    narrow = likelihood_intervals(outcomes, confidence=0.5)
    for name, rating in point.items():
        assert wide[name].lower <= narrow[name].lower <= rating + 1e-6
        assert rating - 1e-6 <= narrow[name].upper <= wide[name].upper
        assert wide[name].upper - wide[name].lower > 0.0


def test_likelihood_intervals_mirror_when_sides_are_swapped() -> None:
    outcomes = [("a", "b", 1.0)] * 4 + [("b", "c", 0.75), ("c", "a", 0.25), ("d", "a", 0.0)]
    forward, mirrored = likelihood_intervals(outcomes), likelihood_intervals(swapped(outcomes))
    for name in forward:
        assert mirrored[name].group == forward[name].group
        assert mirrored[name].lower == pytest.approx(forward[name].lower, abs=1e-4)
        assert mirrored[name].upper == pytest.approx(forward[name].upper, abs=1e-4)


@pytest.mark.parametrize(
    ("strengths", "battles", "least"),
    [
        # Small sample: many models with one-sided records, some unbeaten.
        (SIX_STRENGTHS, 40, 0.9),
        # A champion 1,000 points ahead of the field, usually unbeaten.
        (np.array([0.0, 100.0, 200.0, 300.0, 1300.0]), 60, 0.9),
        # Plenty of battles: the asymptotic regime (0.947 over 200 arenas; 40 arenas scatter
        # by about 3 points).
        (SIX_STRENGTHS, 1_500, 0.88),
    ],
)
def test_intervals_cover_known_strengths_at_about_the_nominal_rate(
    strengths: np.ndarray, battles: int, least: float
) -> None:
    # bench/bench_rating_coverage.py runs the same check on more data and compares methods.
    covered = total = one_sided = one_sided_covered = 0
    for seed in range(40):
        arena = simulate(strengths, battles, seed=100 + seed)
        intervals = likelihood_intervals(arena)
        stats = win_stats(arena)
        truth = dict(zip(arena.models, strengths, strict=True))
        for name, interval in intervals.items():
            if name not in stats:
                continue
            anchor = [m for m, iv in intervals.items() if iv.group == interval.group and iv.anchor]
            target = 1000.0 + truth[name] - np.mean([truth[m] for m in anchor])
            hit = interval.lower <= target <= interval.upper
            covered += hit
            total += 1
            if stats[name].wins == 0 or stats[name].losses == 0:
                one_sided += 1
                one_sided_covered += hit
    assert least <= covered / total <= 0.995
    if one_sided:
        assert one_sided_covered / one_sided >= least - 0.05


def test_rank_ranges_share_ranks_where_intervals_overlap() -> None:
    intervals = {
        "a": RatingInterval(1100.0, 1200.0, group=1, anchor=True),
        "b": RatingInterval(1150.0, 1300.0, group=1, anchor=True),
        "c": RatingInterval(900.0, 1000.0, group=1, anchor=True),
        "d": RatingInterval(-math.inf, 1500.0, group=2, anchor=True),
        "e": RatingInterval(1400.0, math.inf, group=2, anchor=True),
        "f": RatingInterval(-math.inf, 1300.0, group=2, anchor=True),
    }
    # Ranks are counted within a group only; e is surely above f, d overlaps both.
    assert rank_ranges(intervals) == {
        "a": (1, 2),
        "b": (1, 2),
        "c": (3, 3),
        "d": (1, 3),
        "e": (1, 2),
        "f": (2, 3),
    }


@pytest.mark.parametrize(
    ("kwargs", "word"), [({"method": "bayes"}, "method"), ({"confidence": 0.0}, "confidence")]
)
def test_rating_intervals_reject_bad_parameters(kwargs: dict[str, object], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        rating_intervals([("a", "b", 1.0)], **kwargs)  # type: ignore[arg-type]


def test_a_model_listed_without_battles_is_its_own_unbounded_group() -> None:
    battles = BattleOutcomes(("a", "b", "idle"), np.array([0]), np.array([1]), np.array([1.0]))
    intervals = likelihood_intervals(battles)
    assert intervals["idle"] == RatingInterval(-math.inf, math.inf, group=2, anchor=True)
    assert bradley_terry(battles)["idle"] == 1000.0


def test_fit_converges_with_many_battles_and_an_unbeaten_model() -> None:
    # Rounding in the gradient kept the Newton step along the direction only the penalty curves
    # above its tolerance: "did not converge in 200 Newton steps" (found by fuzzing).
    rows = [("m3", "m0", 0.0), ("m1", "m0", 0.0), ("m3", "m1", 1.0), ("m0", "m2", 0.0)]
    rows += [("m0", "m1", 0.0)]
    ratings = bradley_terry(rows * 10_000)
    assert all(math.isfinite(value) for value in ratings.values())
    intervals = likelihood_intervals(rows * 10_000)
    assert intervals["m2"].upper_unbounded


def test_profile_converges_from_a_far_warm_start() -> None:
    # Pairs fitted far the wrong way have a gradient but no curvature: the raw Newton step
    # was 7e7 logits long and the constrained fit never converged (found by fuzzing).
    rows = [("m1", "m3", 1.0), ("m2", "m0", 0.0), ("m4", "m5", 1.0), ("m8", "m4", 1.0)]
    rows += [("m4", "m7", 1.0), ("m0", "m2", 0.0), ("m3", "m9", 0.0), ("m6", "m9", 1.0)]
    rows += [("m8", "m4", 1.0), ("m7", "m0", 1.0), ("m9", "m1", 1.0)]
    intervals = likelihood_intervals(rows * 10_000)
    point = bradley_terry(rows * 10_000)
    for name, interval in intervals.items():
        assert interval.lower <= point[name] <= interval.upper
    assert comparison_groups(rows) == [
        ("m0", "m2", "m4", "m5", "m7", "m8"),
        ("m1", "m3", "m6", "m9"),
    ]


# --- win statistics ----------------------------------------------------------------------


def test_win_stats_counts_from_each_side() -> None:
    stats = win_stats([("a", "b", 1.0), ("b", "a", 0.5), ("a", "c", 0.3), ("c", "b", 0.0)])
    assert stats["a"] == WinStats(battles=3, wins=1, losses=1, ties=1, win_rate=1 / 3)
    assert stats["b"] == WinStats(battles=3, wins=1, losses=1, ties=1, win_rate=1 / 3)
    assert stats["c"] == WinStats(battles=2, wins=1, losses=1, ties=0, win_rate=0.5)


@settings(deadline=None)  # a deadline is a timing assertion; CI machines vary
@given(battle_lists(any_scores))
def test_win_stats_add_up(outcomes: list[BattleOutcome]) -> None:
    stats = win_stats(outcomes)
    assert sum(s.battles for s in stats.values()) == 2 * len(outcomes)
    assert sum(s.wins for s in stats.values()) == sum(s.losses for s in stats.values())
    for record in stats.values():
        assert record.wins + record.losses + record.ties == record.battles


# --- edge cases and bad input ------------------------------------------------------------


def test_empty_input_returns_empty_results() -> None:
    empty = BattleOutcomes((), np.array([], int), np.array([], int), np.array([]))
    no_tuples: list[BattleOutcome] = []
    for outcomes in (no_tuples, empty):
        assert elo_ratings(outcomes) == {}
        assert bradley_terry(outcomes) == {}
        assert bootstrap_intervals(outcomes) == {}
        assert win_stats(outcomes) == {}
        assert reference_bradley_terry(outcomes) == {}


@pytest.mark.parametrize("bad", [1.5, -0.1, math.nan, math.inf])
@pytest.mark.parametrize("rate", [elo_ratings, bradley_terry, bootstrap_intervals, win_stats])
def test_score_outside_unit_interval_names_the_battle(bad: float, rate: object) -> None:
    outcomes = [("a", "b", 1.0), ("b", "c", 0.5), ("c", "a", bad)]
    with pytest.raises(ValueError, match=r"battle 2: score_a=.* is outside \[0, 1\]"):
        rate(outcomes)  # type: ignore[operator]


def test_array_score_outside_unit_interval_names_the_battle() -> None:
    with pytest.raises(ValueError, match=r"battle 1: score_a=2\.0"):
        BattleOutcomes(("a", "b"), np.array([0, 1]), np.array([1, 0]), np.array([0.0, 2.0]))


@pytest.mark.parametrize(
    ("outcomes", "message"),
    [
        ([("a", "b", 1.0), ("a", "a", 1.0)], "battle 1: model 'a' cannot battle itself"),
        ([("a", "b", 1.0), ("a", "b")], "battle 1: expected"),
        ([("a", "", 1.0)], "battle 0: model name"),
    ],
)
def test_malformed_battles_are_rejected(outcomes: list[BattleOutcome], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bradley_terry(outcomes)


def test_non_numeric_score_is_rejected() -> None:
    with pytest.raises(TypeError, match="battle 0: score_a must be a number"):
        bradley_terry([("a", "b", "1")])  # type: ignore[list-item]


def test_array_indices_are_checked() -> None:
    with pytest.raises(ValueError, match="battle 1: model_b=5 is not an index into 2 models"):
        BattleOutcomes(("a", "b"), np.array([0, 0]), np.array([1, 5]), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="same length"):
        BattleOutcomes(("a", "b"), np.array([0]), np.array([1, 0]), np.array([0.0, 1.0]))


def test_battle_outcomes_arrays_are_read_only_copies() -> None:
    scores = np.array([1.0])
    battles = BattleOutcomes(("a", "b"), np.array([0]), np.array([1]), scores)
    scores[0] = 0.0
    assert battles.score_a[0] == 1.0
    with pytest.raises(ValueError):
        battles.score_a[0] = 0.5
