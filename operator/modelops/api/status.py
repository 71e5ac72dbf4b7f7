"""The ModelDeployment status: everything the operator decided and observed.

The operator never writes the spec (GitOps-safe): resolved versions, rollbacks and verdicts
live here and in the objects the deployment owns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from modelops.api.base import ApiModel

Phase = Literal[
    "Pending", "Progressing", "Healthy", "Degraded", "RolledBack", "Retraining", "Failed"
]
ConditionStatus = Literal["True", "False", "Unknown"]

HISTORY_LIMIT = 20


class StatusModel(ApiModel):
    """Base of the status blocks: the same wire conventions as the spec."""


class Condition(StatusModel):
    """A Kubernetes-style condition (metav1.Condition)."""

    type: Annotated[str, Field(max_length=316)]
    """Condition type: Ready, Progressing, Degraded, SpecSupported, ..."""

    status: ConditionStatus
    """True, False or Unknown."""

    reason: Annotated[str, Field(max_length=1024)]
    """CamelCase reason a program can match on."""

    message: Annotated[str, Field(max_length=32768)] = ""
    """What happened and what to do about it, for people."""

    last_transition_time: datetime
    """When the status last changed."""

    observed_generation: int | None = None
    """The spec generation the condition was computed from."""


class ServedVersion(StatusModel):
    """A model version and where it is served from."""

    version: str | None = None
    """Registry version (absent when the spec gives a storageUri for an alias)."""

    storage_uri: str | None = None
    """The storageUri written to the InferenceService."""

    model_format: str | None = None
    """KServe model format name."""

    run_id: str | None = None
    """MLflow run that produced the version."""

    source: str | None = None
    """The version's source in the registry (for MLflow 3, models:/m-<id>)."""

    model_format_rule: str | None = None
    """Why this model format: the spec, or which MLmodel flavor."""

    storage_rule: str | None = None
    """How the storageUri was derived from the registry's download URI."""

    data_version: str | None = None
    """Which data trained it, from the run's tags (for example dvc.rev=<commit>)."""

    promoted_at: datetime | None = None
    """When the version became the stable one."""


class CanaryStatus(StatusModel):
    """The version being rolled out."""

    version: str | None = None
    """Registry version under rollout."""

    storage_uri: str | None = None
    """Its storageUri."""

    step: int | None = None
    """Index of the current step in spec.rollout.steps."""

    traffic: Annotated[int, Field(ge=0, le=100)] = 0
    """Share of traffic it receives now, in percent."""

    step_started_at: datetime | None = None
    """When the current step started."""


class HistoryEntry(StatusModel):
    """One change of what is served (bounded list, newest last)."""

    version: str | None = None
    """Registry version."""

    storage_uri: str | None = None
    """Its storageUri."""

    event: Literal["Deployed", "Promoted", "RolledBack", "Rejected"]
    """What happened."""

    at: datetime
    """When it happened."""

    reason: str | None = None
    """Why, in a few words."""


class ModelDeploymentStatus(StatusModel):
    """Observed state of a ModelDeployment."""

    observed_generation: int | None = None
    """The spec generation this status describes."""

    phase: Phase | None = None
    """Pending, Progressing, Healthy, Degraded, RolledBack, Retraining or Failed."""

    message: str | None = None
    """One line about the current phase."""

    conditions: Annotated[
        list[Condition],
        Field(
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            }
        ),
    ] = []
    """Ready, Progressing, Degraded, RegistryReachable, MetricsAvailable, SpecSupported."""

    inference_service: str | None = None
    """Name of the InferenceService this deployment owns."""

    traffic: str | None = None
    """Traffic split in a few words, for example "7: 90%, 8: 10%"."""

    stable: ServedVersion | None = None
    """The version serving the main share of traffic."""

    canary: CanaryStatus | None = None
    """The version being rolled out, if any."""

    history: Annotated[list[HistoryEntry], Field(max_length=HISTORY_LIMIT)] = []
    """Recent changes of what is served, newest last."""
