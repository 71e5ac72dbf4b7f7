"""Drift of live windows against a reference profile: quiet on training-like traffic, loud on a
shifted feature and only on that one, categorical features by their frequencies."""

from __future__ import annotations

import numpy as np
import pytest

from modelops.monitor.drift import drift_of
from modelops.monitor.thresholds import Thresholds
from modelops.profile import build_profile

RNG = np.random.default_rng(11)
TRAINING = RNG.normal([0, 10, 100], [1, 2, 30], size=(2000, 3))
PROFILE = build_profile(TRAINING, feature_names=["a", "b", "c"])


def test_windows_drawn_from_training_raise_no_alarm() -> None:
    for _ in range(20):
        window = RNG.normal([0, 10, 100], [1, 2, 30], size=(300, 3))
        report = drift_of(PROFILE, window.tolist())
        assert report.drifted_share == 0.0, report
        assert all(f.psi is not None and f.psi < 0.1 for f in report.features)


def test_a_one_standard_deviation_shift_is_found_on_that_feature_alone() -> None:
    window = RNG.normal([0, 10 + 2, 100], [1, 2, 30], size=(300, 3))
    report = drift_of(PROFILE, window.tolist())
    assert [f.name for f in report.features if f.drifted] == ["b"]
    assert report.drifted_share == pytest.approx(1 / 3)
    b = report.features[1]
    assert b.psi is not None and b.psi > 0.5 and b.ks is not None and b.ks > 0.3
    assert report.samples == 300


def test_thresholds_decide() -> None:
    window = RNG.normal([0.3, 10, 100], [1, 2, 30], size=(300, 3)).tolist()
    assert not drift_of(PROFILE, window, Thresholds(psi=10.0)).features[0].drifted
    assert drift_of(PROFILE, window, Thresholds(psi=0.0)).features[0].drifted


def test_categorical_features_by_chi_squared() -> None:
    profile = build_profile({"colour": ["red"] * 600 + ["blue"] * 400, "x": list(range(1000))})
    same = [["red", 1]] * 60 + [["blue", 2]] * 40
    moved = [["red", 1]] * 20 + [["blue", 2]] * 80
    assert not drift_of(profile, same).features[0].drifted
    colour = drift_of(profile, moved).features[0]
    assert colour.drifted and colour.pvalue is not None and colour.pvalue < 1e-6
    assert colour.psi is None


def test_no_rows_is_refused() -> None:
    with pytest.raises(ValueError, match="no rows"):
        drift_of(PROFILE, [])
