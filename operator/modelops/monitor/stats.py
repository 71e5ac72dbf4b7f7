"""Drift statistics of one feature: a live sample against its reference profile.

Numeric features: the population stability index on the reference's quantile bins, and the
two-sample Kolmogorov-Smirnov statistic against the reference's bounded sample. Categorical
features: the chi-squared test of the live counts against the reference frequencies. Pure
functions of numbers (numpy and scipy only), so they are checked against scipy and by hand.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

"""Share given to a bin (or category) that holds no value, so a logarithm or an expected count
never meets 0: the usual PSI floor. Small against 1/bins, large against float noise."""
EPSILON = 1e-4


def quantile_edges(values: Sequence[float], bins: int) -> list[float]:
    """Interior cut points that split `values` into `bins` bins of about equal count.

    Equal cut points (a feature with few distinct values) collapse into one, so every bin is
    [edge_i, edge_i+1) with the outer bins open to -inf and +inf.
    """
    if bins < 2:
        raise ValueError("bins must be at least 2")
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values to take quantiles of")
    cuts = np.quantile(data, np.linspace(0, 1, bins + 1)[1:-1])
    return [float(edge) for edge in np.unique(cuts)]


def bin_proportions(values: Sequence[float], edges: Sequence[float]) -> list[float]:
    """The share of `values` in each bin the interior `edges` make (len(edges) + 1 bins)."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("no values to bin")
    counts = np.bincount(np.searchsorted(edges, data, side="right"), minlength=len(edges) + 1)
    return [float(share) for share in counts / data.size]


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON) -> float:
    """Population stability index of two distributions over the same bins.

    sum((a - e) * ln(a / e)), each share floored at `epsilon`: >= 0, and 0 only when the two
    agree in every bin.
    """
    if len(expected) != len(actual):
        raise ValueError(f"{len(expected)} expected bins against {len(actual)} actual")
    e = np.maximum(np.asarray(expected, dtype=float), epsilon)
    a = np.maximum(np.asarray(actual, dtype=float), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_statistic(reference: Sequence[float], values: Sequence[float]) -> float:
    """The largest gap between the two empirical distribution functions (0 to 1)."""
    if len(reference) == 0 or len(values) == 0:
        raise ValueError("the KS statistic needs values on both sides")
    result = stats.ks_2samp(np.asarray(reference, float), np.asarray(values, float))
    return float(result.statistic)


def chi_squared_pvalue(
    reference_frequencies: Mapping[str, float],
    values: Sequence[str],
    epsilon: float = EPSILON,
) -> float:
    """p-value that `values` come from the reference's category frequencies.

    A category the reference never saw is expected with share `epsilon`, so a new category is
    strong evidence of drift instead of a division by zero.
    """
    if not values:
        raise ValueError("no values to test")
    counts = Counter(values)
    categories = sorted(set(reference_frequencies) | set(counts))
    if len(categories) < 2:
        return 1.0  # one category on both sides: nothing to tell apart
    shares = np.array([max(reference_frequencies.get(c, 0.0), epsilon) for c in categories])
    expected = shares / shares.sum() * len(values)
    observed = np.array([counts.get(c, 0) for c in categories], dtype=float)
    return float(stats.chisquare(observed, expected).pvalue)
