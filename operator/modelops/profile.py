"""Reference profiles: what a model version's training data looked like, feature by feature,
so the monitor can tell when production traffic no longer looks like it.

Training code calls `log_reference(frame)` inside its MLflow run (or `modelops profile` does it
from a file); the profile is stored as a JSON artifact of the version's run with a versioned
schema. Per numeric feature: quantile bin edges, the training share in each bin, and a bounded
sample for the KS test; per categorical feature: the frequencies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from modelops.core.inference_logging import PROFILE_ARTIFACT
from modelops.monitor.stats import bin_proportions, quantile_edges

SCHEMA = "modelops.io/reference-profile/v1"
ARTIFACT_PATH = PROFILE_ARTIFACT
DEFAULT_BINS = 10
DEFAULT_SAMPLE_SIZE = 1000


class NumericFeature(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    kind: Literal["numeric"] = "numeric"
    count: int
    mean: float
    std: float
    edges: list[float]
    proportions: list[float]
    sample: list[float]


class CategoricalFeature(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    kind: Literal["categorical"] = "categorical"
    count: int
    frequencies: dict[str, float]


Task = Literal["classification", "regression"]
Feature = Annotated[NumericFeature | CategoricalFeature, Field(discriminator="kind")]


class ReferenceProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    schema_: Literal["modelops.io/reference-profile/v1"] = Field(
        "modelops.io/reference-profile/v1", alias="schema"
    )
    rows: int
    features: list[Feature]
    # What the model predicts, so live quality is accuracy or MAE/RMSE (None: classification).
    task: Task | None = None

    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> ReferenceProfile:
        data = json.loads(text)
        found = data.get("schema") if isinstance(data, dict) else None
        if found != SCHEMA:
            raise ValueError(
                f"reference profile schema {found!r} is not {SCHEMA!r}; "
                "write it again with this version of modelops (modelops profile)"
            )
        return cls.model_validate(data)


def _columns(frame: Any, feature_names: Sequence[str] | None) -> dict[str, np.ndarray]:
    """Columns by name from a pandas DataFrame, a mapping of columns, or a 2-D array + names."""
    if hasattr(frame, "columns") and hasattr(frame, "__getitem__"):
        names = list(feature_names or [str(c) for c in frame.columns])
        return {name: np.asarray(frame[name]) for name in names}
    if isinstance(frame, Mapping):
        names = list(feature_names or frame)
        return {str(name): np.asarray(frame[name]) for name in names}
    rows = np.asarray(frame)
    if rows.ndim != 2:
        raise ValueError("rows must be a 2-D table (rows x features)")
    if feature_names is None or len(feature_names) != rows.shape[1]:
        raise ValueError(f"a table of {rows.shape[1]} columns needs as many feature_names")
    return {name: rows[:, index] for index, name in enumerate(feature_names)}


def build_profile(
    frame: Any,
    *,
    feature_names: Sequence[str] | None = None,
    bins: int = DEFAULT_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = 0,
    task: Task | None = None,
) -> ReferenceProfile:
    """The profile of the training features in `frame` (numbers are numeric, the rest
    categorical; booleans count as categories). `task` is "classification" or "regression"."""
    if task not in (None, "classification", "regression"):
        raise ValueError(f"task {task!r} is neither 'classification' nor 'regression'")
    columns = _columns(frame, feature_names)
    if not columns:
        raise ValueError("no features to profile")
    lengths = {len(values) for values in columns.values()}
    if len(lengths) != 1 or 0 in lengths:
        raise ValueError("every feature needs the same, non-zero number of rows")
    rows = lengths.pop()
    rng = np.random.default_rng(seed)
    features: list[NumericFeature | CategoricalFeature] = []
    for name, values in columns.items():
        if values.dtype.kind in "iuf":
            numbers = values.astype(float)
            if not np.all(np.isfinite(numbers)):
                raise ValueError(f"feature {name!r} has missing or infinite values")
            edges = quantile_edges(numbers.tolist(), bins)
            keep = min(sample_size, rows)
            sample = numbers if keep == rows else rng.choice(numbers, keep, replace=False)
            features.append(
                NumericFeature(
                    name=name,
                    count=rows,
                    mean=float(numbers.mean()),
                    std=float(numbers.std()),
                    edges=edges,
                    proportions=bin_proportions(numbers.tolist(), edges),
                    sample=[float(v) for v in sample],
                )
            )
        else:
            labels, counts = np.unique(values.astype(str), return_counts=True)
            frequencies = {str(k): float(c) / rows for k, c in zip(labels, counts, strict=True)}
            features.append(CategoricalFeature(name=name, count=rows, frequencies=frequencies))
    return ReferenceProfile(rows=rows, features=features, task=task)


def log_reference(
    frame: Any,
    *,
    run_id: str | None = None,
    feature_names: Sequence[str] | None = None,
    bins: int = DEFAULT_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    task: Task | None = None,
) -> ReferenceProfile:
    """Profile `frame` and store it with the run that logs the model (the active MLflow run,
    or `run_id`), where the monitor looks for the reference of that model's versions."""
    import mlflow  # the training environment's, only when a profile is logged

    profile = build_profile(frame, feature_names=feature_names, bins=bins, sample_size=sample_size)
    content = json.loads(profile.to_json())
    if run_id is None:
        if mlflow.active_run() is None:
            raise RuntimeError("log_reference needs an active MLflow run or a run_id")
        mlflow.log_dict(content, ARTIFACT_PATH)
    else:
        mlflow.MlflowClient().log_dict(run_id, content, ARTIFACT_PATH)
    return profile
