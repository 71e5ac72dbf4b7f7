"""Reference profiles: built from a table, round-tripped through the versioned schema."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modelops.monitor.stats import bin_proportions, psi
from modelops.profile import (
    SCHEMA,
    CategoricalFeature,
    NumericFeature,
    ReferenceProfile,
    build_profile,
)


def test_numeric_and_categorical_features_from_a_mapping() -> None:
    rng = np.random.default_rng(1)
    heights = rng.normal(170, 10, 5000)
    profile = build_profile(
        {"height": heights, "colour": ["red"] * 3000 + ["blue"] * 2000}, sample_size=100
    )
    height, colour = profile.features
    assert isinstance(height, NumericFeature) and isinstance(colour, CategoricalFeature)
    assert profile.rows == 5000 and profile.feature_names() == ["height", "colour"]
    assert len(height.edges) == 9 and len(height.proportions) == 10
    assert height.proportions == pytest.approx([0.1] * 10, abs=0.001)
    assert len(height.sample) == 100 and set(height.sample) <= set(heights)
    assert height.mean == pytest.approx(heights.mean()) and height.std == pytest.approx(
        heights.std()
    )
    assert colour.frequencies == {"blue": 0.4, "red": 0.6}
    # The training data measured against its own profile shows no drift.
    assert psi(height.proportions, bin_proportions(heights, height.edges)) == 0.0


def test_a_table_with_names_and_a_small_sample_kept_whole() -> None:
    rows = np.arange(12.0).reshape(6, 2)
    profile = build_profile(rows, feature_names=["a", "b"], bins=3)
    a = profile.features[0]
    assert isinstance(a, NumericFeature)
    assert sorted(a.sample) == [0, 2, 4, 6, 8, 10]
    assert sum(a.proportions) == pytest.approx(1.0)


def test_a_pandas_frame_keeps_its_column_order() -> None:
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"z": [1.0, 2.0, 3.0], "a": [True, False, True]})
    profile = build_profile(frame)
    assert profile.feature_names() == ["z", "a"]
    assert isinstance(profile.features[1], CategoricalFeature)


def test_the_schema_round_trips_and_is_checked() -> None:
    profile = build_profile({"x": [1.0, 2.0, 3.0, 4.0]}, bins=2)
    text = profile.to_json()
    assert json.loads(text)["schema"] == SCHEMA
    assert ReferenceProfile.from_json(text) == profile
    other = json.loads(text) | {"schema": "modelops.io/reference-profile/v0"}
    with pytest.raises(ValueError, match="modelops profile"):
        ReferenceProfile.from_json(json.dumps(other))


@pytest.mark.parametrize(
    ("frame", "names", "message"),
    [
        ({}, None, "no features"),
        ({"a": [1.0, 2.0], "b": [1.0]}, None, "same, non-zero number of rows"),
        ({"a": [1.0, float("nan")]}, None, "'a' has missing or infinite values"),
        (np.zeros((3, 2)), ["only-one"], "needs as many feature_names"),
        (np.zeros(3), ["a"], "2-D table"),
    ],
)
def test_bad_tables_are_refused_with_the_reason(
    frame: object, names: list[str] | None, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_profile(frame, feature_names=names)
