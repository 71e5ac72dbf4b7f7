"""Feature rows and predictions out of the inference payloads KServe's logger forwards.

Requests: the V2 (Open Inference) protocol, one 2-D tensor of rows or one tensor per feature
named after it; the V1 protocol's `instances`, as lists or as objects keyed by feature; MLflow's
`dataframe_split`. Responses: V2 `outputs` (the first one) and V1 `predictions`. Anything else,
or rows whose width does not match the reference profile, is a PayloadError naming what was
expected: the monitor counts it as a drop instead of feeding a window garbage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Row = tuple[object, ...]


class PayloadError(ValueError):
    """A payload the monitor cannot read as rows of the profile's features."""


def _reshape(data: Any, shape: Sequence[int]) -> list[list[object]]:
    """A V2 tensor's data (flat, row-major, or already nested) as rows."""
    if len(shape) != 2:
        raise PayloadError(f"a tensor of rows must have 2 dimensions, not shape {list(shape)}")
    rows, width = int(shape[0]), int(shape[1])
    if data and isinstance(data[0], list):
        nested = [list(row) for row in data]
        if len(nested) != rows or any(len(row) != width for row in nested):
            raise PayloadError(f"tensor data does not have shape {list(shape)}")
        return nested
    if len(data) != rows * width:
        raise PayloadError(f"{len(data)} values do not fill shape {list(shape)}")
    return [list(data[i * width : (i + 1) * width]) for i in range(rows)]


def _flat(data: Any) -> list[object]:
    if data and isinstance(data[0], list):
        return [value for row in data for value in row]
    return list(data)


def _v2_rows(inputs: list[Any], features: Sequence[str]) -> list[list[object]]:
    if not all(isinstance(i, Mapping) for i in inputs):
        raise PayloadError("every V2 input must be an object with name, shape and data")
    names = [i.get("name") for i in inputs]
    if len(inputs) > 1 or names == list(features):
        if sorted(str(n) for n in names) != sorted(features):
            raise PayloadError(f"V2 inputs {names} are not the profile's features {list(features)}")
        columns = {str(i["name"]): _flat(i.get("data") or []) for i in inputs}
        lengths = {len(column) for column in columns.values()}
        if len(lengths) != 1:
            raise PayloadError("V2 inputs per feature have different numbers of rows")
        return [list(values) for values in zip(*(columns[f] for f in features), strict=True)]
    [tensor] = inputs
    shape = tensor.get("shape") or []
    return _reshape(tensor.get("data") or [], shape)


def _v1_rows(instances: list[Any], features: Sequence[str]) -> list[list[object]]:
    if all(isinstance(i, Mapping) for i in instances):
        missing = sorted({f for i in instances for f in features if f not in i})
        if missing:
            raise PayloadError(f"instances lack features {missing}")
        return [[i[f] for f in features] for i in instances]
    if all(isinstance(i, list) for i in instances):
        return [list(i) for i in instances]
    raise PayloadError("V1 instances must be all lists or all objects")


def request_rows(body: Any, features: Sequence[str]) -> list[Row]:
    """Rows of `features`, in the profile's order, from an inference request body."""
    if not isinstance(body, Mapping):
        raise PayloadError("the request body is not a JSON object")
    if isinstance(body.get("inputs"), list):
        rows = _v2_rows(body["inputs"], features)
    elif isinstance(body.get("instances"), list):
        rows = _v1_rows(body["instances"], features)
    elif isinstance(body.get("dataframe_split"), Mapping):
        split = body["dataframe_split"]
        columns, data = list(split.get("columns") or features), split.get("data") or []
        if sorted(columns) != sorted(features):
            raise PayloadError(f"columns {columns} are not the profile's features {list(features)}")
        rows = [[dict(zip(columns, row, strict=True))[f] for f in features] for row in data]
    else:
        raise PayloadError("no V2 inputs, V1 instances or dataframe_split in the request")
    if not rows:
        raise PayloadError("the request has no rows")
    for row in rows:
        if len(row) != len(features):
            raise PayloadError(
                f"a row has {len(row)} values but the reference profile has {len(features)} "
                "features"
            )
    return [tuple(row) for row in rows]


def response_predictions(body: Any) -> list[object]:
    """One prediction per row from an inference response body."""
    if not isinstance(body, Mapping):
        raise PayloadError("the response body is not a JSON object")
    if isinstance(body.get("outputs"), list) and body["outputs"]:
        first = body["outputs"][0]
        if not isinstance(first, Mapping):
            raise PayloadError("a V2 output must be an object")
        data, shape = first.get("data") or [], first.get("shape") or []
        values = _flat(data)
        if len(shape) == 2 and int(shape[1]) > 1:
            # One row of scores per prediction (probabilities): keep each row.
            return [tuple(row) for row in _reshape(data, shape)]
        return values
    if isinstance(body.get("predictions"), list):
        return list(body["predictions"])
    raise PayloadError("no V2 outputs or V1 predictions in the response")
