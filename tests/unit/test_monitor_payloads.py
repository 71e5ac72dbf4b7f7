"""Rows and predictions out of V2, V1 and MLflow payloads; everything else a PayloadError
that says what was expected."""

from __future__ import annotations

from typing import Any

import pytest

from modelops.monitor.payloads import PayloadError, request_rows, response_predictions

FEATURES = ["a", "b"]


@pytest.mark.parametrize(
    "body",
    [
        {
            "inputs": [
                {"name": "input-0", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3, 4]}
            ]
        },
        {
            "inputs": [
                {"name": "input-0", "shape": [2, 2], "datatype": "FP64", "data": [[1, 2], [3, 4]]}
            ]
        },
        {
            "inputs": [
                {"name": "b", "shape": [2], "data": [2, 4]},
                {"name": "a", "shape": [2], "data": [1, 3]},
            ]
        },
        {"instances": [[1, 2], [3, 4]]},
        {"instances": [{"b": 2, "a": 1}, {"a": 3, "b": 4}]},
        {"dataframe_split": {"columns": ["b", "a"], "data": [[2, 1], [4, 3]]}},
    ],
)
def test_every_request_format_gives_rows_in_the_profiles_order(body: dict[str, Any]) -> None:
    assert request_rows(body, FEATURES) == [(1, 2), (3, 4)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not an object", "not a JSON object"),
        ({"text": "hello"}, "no V2 inputs, V1 instances or dataframe_split"),
        (
            {"inputs": [{"name": "x", "shape": [1, 3], "data": [1, 2, 3]}]},
            "row has 3 values but the reference profile has 2",
        ),
        (
            {"inputs": [{"name": "x", "shape": [2, 2], "data": [1, 2, 3]}]},
            "3 values do not fill shape",
        ),
        ({"inputs": [{"name": "x", "shape": [4], "data": [1, 2, 3, 4]}]}, "2 dimensions"),
        (
            {"inputs": [{"name": "a", "data": [1]}, {"name": "z", "data": [1]}]},
            "not the profile's features",
        ),
        (
            {"inputs": [{"name": "a", "data": [1, 2]}, {"name": "b", "data": [1]}]},
            "different numbers of rows",
        ),
        ({"instances": [{"a": 1}]}, "lack features \\['b'\\]"),
        ({"instances": [[1, 2], {"a": 1}]}, "all lists or all objects"),
        ({"instances": []}, "no rows"),
        ({"dataframe_split": {"columns": ["a"], "data": [[1]]}}, "not the profile's features"),
    ],
)
def test_payloads_that_do_not_fit_are_refused_with_the_reason(body: Any, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        request_rows(body, FEATURES)


def test_predictions_from_v2_and_v1_responses() -> None:
    v2 = {"outputs": [{"name": "output-1", "shape": [2, 1], "datatype": "INT64", "data": [0, 2]}]}
    assert response_predictions(v2) == [0, 2]
    scores = {"outputs": [{"name": "p", "shape": [2, 2], "data": [0.1, 0.9, 0.8, 0.2]}]}
    assert response_predictions(scores) == [(0.1, 0.9), (0.8, 0.2)]
    assert response_predictions({"predictions": [1, 1]}) == [1, 1]
    with pytest.raises(PayloadError, match="no V2 outputs or V1 predictions"):
        response_predictions({"error": "boom"})
    with pytest.raises(PayloadError, match="not a JSON object"):
        response_predictions([1, 2])
