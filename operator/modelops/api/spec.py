"""The ModelDeployment spec: what a person (or Git) asks for.

These models are the single source of the CRD schema (`make crds`): attribute docstrings become
the descriptions `kubectl explain` shows, constraints become OpenAPI bounds and patterns, and the
`validations(...)` rules become CEL checks the API server runs on every write.
"""

from __future__ import annotations

from pydantic import Field

from modelops.api.base import SpecModel
from modelops.api.delivery import AnalysisSpec, RolloutSpec
from modelops.api.lifecycle import MonitoringSpec, RetrainingSpec
from modelops.api.serving import ModelSpec, ServingSpec


class ModelDeploymentSpec(SpecModel):
    """A model from an MLflow registry, served by KServe, rolled out, judged, and retrained."""

    model: ModelSpec
    """The registered model and the version or alias to serve."""

    serving: ServingSpec = Field(default_factory=ServingSpec, json_schema_extra={"default": {}})
    """How KServe serves it."""

    rollout: RolloutSpec | None = None
    """How new versions are rolled out; a new version replaces the old at once when omitted."""

    analysis: AnalysisSpec | None = None
    """How new versions are judged with Prometheus queries."""

    monitoring: MonitoringSpec | None = None
    """Watching after promotion."""

    retraining: RetrainingSpec | None = None
    """Retraining triggers and the Job to run."""
