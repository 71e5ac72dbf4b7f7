"""Drift statistics against scipy and hand-computed cases, and their invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from modelops.monitor.stats import (
    EPSILON,
    bin_proportions,
    chi_squared_pvalue,
    ks_statistic,
    psi,
    quantile_edges,
)

shares = (
    st.lists(st.floats(0, 1), min_size=2, max_size=12)
    .filter(lambda s: sum(s) > 0)
    .map(lambda s: [x / sum(s) for x in s])
)


def test_psi_by_hand() -> None:
    # (0.3-0.5)ln(0.3/0.5) + (0.7-0.5)ln(0.7/0.5)
    expected = -0.2 * math.log(0.6) + 0.2 * math.log(1.4)
    assert psi([0.5, 0.5], [0.3, 0.7]) == pytest.approx(expected)
    assert psi([0.5, 0.5], [0.3, 0.7]) == pytest.approx(0.16945, abs=1e-5)


def test_an_empty_bin_is_floored_not_infinite() -> None:
    value = psi([0.5, 0.5], [0.0, 1.0])
    assert value == pytest.approx((EPSILON - 0.5) * math.log(EPSILON / 0.5) + 0.5 * math.log(2.0))
    assert math.isfinite(value)


def test_psi_refuses_bins_that_do_not_match() -> None:
    with pytest.raises(ValueError, match="3 expected bins against 2"):
        psi([0.2, 0.3, 0.5], [0.5, 0.5])


@given(shares)
def test_psi_of_identical_distributions_is_zero(distribution: list[float]) -> None:
    assert psi(distribution, distribution) == pytest.approx(0.0, abs=1e-12)


@given(shares, shares)
def test_psi_is_never_negative_and_symmetric(a: list[float], b: list[float]) -> None:
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    assert psi(a, b) >= -1e-12
    assert psi(a, b) == pytest.approx(psi(b, a))


def test_quantile_edges_split_into_equal_bins() -> None:
    values = list(range(100))
    edges = quantile_edges(values, 4)
    assert edges == pytest.approx(list(np.quantile(values, [0.25, 0.5, 0.75])))
    assert bin_proportions(values, edges) == pytest.approx([0.25, 0.25, 0.25, 0.25])


def test_repeated_values_collapse_edges_and_values_outside_fall_in_the_outer_bins() -> None:
    edges = quantile_edges([1, 1, 1, 1, 2, 2, 2, 2], 4)
    assert edges == [1.0, 1.5, 2.0]
    assert bin_proportions([0, 1, 1.7, 2, 9], edges) == pytest.approx([0.2, 0.2, 0.2, 0.4])


@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200), st.integers(2, 20))
def test_proportions_sum_to_one_with_one_more_bin_than_edges(
    values: list[float], bins: int
) -> None:
    edges = quantile_edges(values, bins)
    proportions = bin_proportions(values, edges)
    assert len(proportions) == len(edges) + 1
    assert sum(proportions) == pytest.approx(1.0)
    assert psi(proportions, proportions) == 0.0


def test_ks_is_scipys_statistic() -> None:
    rng = np.random.default_rng(7)
    reference, live = rng.normal(0, 1, 300), rng.normal(0.5, 1, 200)
    assert ks_statistic(list(reference), list(live)) == pytest.approx(
        stats.ks_2samp(reference, live).statistic
    )
    assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert ks_statistic([1, 2, 3], [10, 11]) == 1.0


def test_chi_squared_against_scipy_and_new_categories() -> None:
    frequencies = {"a": 0.5, "b": 0.3, "c": 0.2}
    values = ["a"] * 40 + ["b"] * 40 + ["c"] * 20
    assert chi_squared_pvalue(frequencies, values) == pytest.approx(
        stats.chisquare([40, 40, 20], [50, 30, 20]).pvalue
    )
    assert chi_squared_pvalue(frequencies, ["a"] * 50 + ["b"] * 30 + ["c"] * 20) == 1.0
    # A category never seen in training is strong evidence, never a division by zero.
    assert chi_squared_pvalue(frequencies, ["a"] * 50 + ["z"] * 10) < 1e-6
    assert chi_squared_pvalue({"a": 1.0}, ["a", "a"]) == 1.0


def test_empty_samples_are_refused() -> None:
    with pytest.raises(ValueError, match="no values to bin"):
        bin_proportions([], [1.0])
    with pytest.raises(ValueError, match="no values to take quantiles"):
        quantile_edges([], 10)
    with pytest.raises(ValueError, match="values on both sides"):
        ks_statistic([], [1.0])
    with pytest.raises(ValueError, match="no values to test"):
        chi_squared_pvalue({"a": 1.0}, [])
    with pytest.raises(ValueError, match="at least 2"):
        quantile_edges([1.0], 1)
