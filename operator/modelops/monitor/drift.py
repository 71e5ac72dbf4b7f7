"""Drift of a window of live rows against the reference profile of the version that served them.

A numeric feature has drifted when its PSI reaches `psi_threshold` (0.2 by default: the usual
"significant shift"; 0.1-0.2 is "moderate"); its KS statistic is reported beside it. A
categorical feature has drifted when the chi-squared p-value falls below `pvalue_threshold`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modelops.monitor.stats import bin_proportions, chi_squared_pvalue, ks_statistic, psi
from modelops.monitor.thresholds import DEFAULT_THRESHOLDS, Thresholds
from modelops.profile import NumericFeature, ReferenceProfile


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    drifted: bool
    psi: float | None = None  # numeric features
    ks: float | None = None  # numeric features
    pvalue: float | None = None  # categorical features


@dataclass(frozen=True)
class DriftReport:
    samples: int
    features: tuple[FeatureDrift, ...]

    @property
    def drifted_share(self) -> float:
        if not self.features:
            return 0.0
        return sum(feature.drifted for feature in self.features) / len(self.features)


def drift_of(
    profile: ReferenceProfile,
    rows: Sequence[Sequence[object]],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
) -> DriftReport:
    """Each feature of `rows` (in the profile's feature order) against the profile."""
    if not rows:
        raise ValueError("no rows to measure drift on")
    found: list[FeatureDrift] = []
    for index, feature in enumerate(profile.features):
        column = [row[index] for row in rows]
        if isinstance(feature, NumericFeature):
            numbers = [float(value) for value in column]  # type: ignore[arg-type]
            index_psi = psi(feature.proportions, bin_proportions(numbers, feature.edges))
            found.append(
                FeatureDrift(
                    name=feature.name,
                    drifted=index_psi >= thresholds.psi,
                    psi=index_psi,
                    ks=ks_statistic(feature.sample, numbers),
                )
            )
        else:
            pvalue = chi_squared_pvalue(feature.frequencies, [str(value) for value in column])
            found.append(
                FeatureDrift(name=feature.name, drifted=pvalue < thresholds.pvalue, pvalue=pvalue)
            )
    return DriftReport(samples=len(rows), features=tuple(found))
