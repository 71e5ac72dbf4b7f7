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

    predictor: str | None = None
    """Name of the KServe predictor serving it (Standard mode; empty for the first version)."""


class CanaryStatus(ServedVersion):
    """The version being rolled out, where it is in its steps, and how traffic is split."""

    name: str | None = None
    """Name of its KServe canary predictor (Standard mode), for example v8."""

    step: int | None = None
    """Index of the current step in spec.rollout.steps (Direct: 0, the bake)."""

    traffic: Annotated[int, Field(ge=0, le=100)] = 0
    """Share of traffic the current step asks for, in percent."""

    effective_traffic: Annotated[int, Field(ge=0, le=100)] | None = None
    """Share it really receives: the HTTPRoute's weight, or its share of the replicas."""

    replicas: int | None = None
    """Replicas of the canary predictor (Standard mode)."""

    stable_replicas: int | None = None
    """Replicas the stable predictor keeps during the step (Standard mode)."""

    started_at: datetime | None = None
    """When the rollout of this version started."""

    step_started_at: datetime | None = None
    """When the current step started: the canary had been ready for 10s and got its traffic. Empty while it waits for readiness (it has no traffic then)."""

    ready_since: datetime | None = None
    """Since when the canary has been ready without a break (its model loaded and its Service with a ready endpoint)."""

    waiting_since: datetime | None = None
    """Since when the canary has been waiting for readiness (its start, or its last loss of readiness): spec.rollout.progressDeadline counts from here."""

    paused_reason: str | None = None
    """Why the rollout does not advance: a person paused it, or the analysis has no verdict."""

    aborting: bool = False
    """Knative mode: traffic is back on the stable revision; the stable storageUri is restored next."""

    restoring: bool = False
    """A rollback after promotion: the previous version comes back as this canary and takes all traffic as soon as it is ready, without analysis."""


class RetiringVersion(ServedVersion):
    """A predictor that left (promoted over, or rolled back) and keeps running without traffic
    for a few seconds, so requests routed before the switch reached every gateway still find it."""

    replicas: int | None = None
    """Replicas it keeps while it drains."""

    since: datetime
    """When its traffic was moved away."""


class DeployingVersion(StatusModel):
    """The first version of a deployment while it is not ready yet."""

    version: str | None = None
    """Registry version."""

    storage_uri: str | None = None
    """Its storageUri."""

    since: datetime
    """When its deployment started: spec.rollout.progressDeadline counts from here."""

    deadline_exceeded: bool = False
    """It missed spec.rollout.progressDeadline (the deployment is Failed until it becomes ready)."""


class Measurement(StatusModel):
    """The latest measurement of one analysis metric."""

    name: str
    """The metric's name in spec.analysis.metrics."""

    verdict: Literal["Pass", "Fail", "Inconclusive", "Error"]
    """Pass, Fail, Inconclusive (no data or NaN) or Error (the query failed)."""

    value: float | None = None
    """The measured value (canary/stable ratio with compareTo: stable)."""

    canary_value: float | None = None
    """With compareTo: stable, the canary's value."""

    stable_value: float | None = None
    """With compareTo: stable, the stable version's value."""

    message: str = ""
    """The value against its threshold, or why there is no verdict."""


class AnalysisStatus(StatusModel):
    """Running tally of the analysis of the current subject (the canary, or the stable version
    under post-promotion monitoring)."""

    subject: Literal["canary", "stable"]
    """What is being judged."""

    version: str | None = None
    """The version being judged."""

    last_run_at: datetime | None = None
    """When the metrics were last measured."""

    runs: int = 0
    """Measurement rounds so far."""

    failures: int = 0
    """Rounds with a Fail verdict (only these count toward failureLimit)."""

    inconclusive: int = 0
    """Consecutive rounds without a verdict for some metric."""

    consecutive_errors: int = 0
    """Consecutive rounds in which a query failed."""

    metrics: list[Measurement] = []
    """The latest measurement of each metric."""


class RejectedVersion(StatusModel):
    """A version that was rolled back: not tried again until the spec or alias moves on, or a
    person asks (`modelops retry`)."""

    version: str | None = None
    """Registry version."""

    storage_uri: str | None = None
    """Its storageUri."""

    reason: str
    """Why it was rejected: the metric, its value and the threshold."""

    at: datetime
    """When."""

    registry_tagged: bool = False
    """Whether modelops.io/status=rejected was written to the registry."""


class HistoryEntry(StatusModel):
    """One change of what is served (bounded list, newest last)."""

    version: str | None = None
    """Registry version."""

    storage_uri: str | None = None
    """Its storageUri."""

    event: Literal[
        "Deployed", "RolloutStarted", "StepAdvanced", "Promoted", "RolledBack", "Aborted"
    ]
    """What happened."""

    at: datetime
    """When it happened."""

    reason: str | None = None
    """Why, in a few words."""


class RetrainingRun(StatusModel):
    """One retraining Job: why it ran and how it ended (bounded history, newest last)."""

    trigger_id: str
    """The firing: trigger name and time, also in the Job's MODELOPS_TRIGGER_ID and name."""

    job: str
    """The Job's name."""

    reason: str
    """Which trigger fired and why, with the measured value."""

    result: Literal["Running", "Succeeded", "Failed", "NoCandidate"] = "Running"
    """Running, Succeeded (a candidate version was found), Failed, or NoCandidate (the Job
    succeeded without registering a usable version)."""

    started_at: datetime
    """When the trigger fired."""

    finished_at: datetime | None = None
    """When the Job ended."""

    candidate_version: str | None = None
    """The version the Job registered, rolled out as the next canary."""


class RetrainingStatus(StatusModel):
    """The retraining loop: breaches being timed, the current or last Job, cooldown and backoff."""

    phase: Literal["Idle", "Running", "Succeeded", "Failed"] = "Idle"
    """Idle, Running (a Job is in flight), Succeeded or Failed (the last Job)."""

    current: RetrainingRun | None = None
    """The Job in flight, or the last one."""

    last_fired_at: datetime | None = None
    """When a trigger last fired (the cooldown counts from here)."""

    consecutive_failures: int = 0
    """Failed Jobs in a row (the backoff doubles with each)."""

    breaches: dict[str, datetime] = {}
    """Metric and drift triggers in breach, by trigger name, since when."""

    schedule_checked_at: datetime | None = None
    """Schedules fire for times after this instant."""

    handled_rollback_at: datetime | None = None
    """The last rollback an onRollback trigger answered (or chose not to)."""

    handled_degraded_since: datetime | None = None
    """The Degraded period an onDegraded trigger answered."""

    candidate_version: str | None = None
    """A retrained version waiting to be rolled out (cleared once promoted or rejected)."""

    history: Annotated[list[RetrainingRun], Field(max_length=10)] = []
    """Recent Jobs, newest last."""


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

    retiring: Annotated[list[RetiringVersion], Field(max_length=4)] = []
    """Predictors draining after a promotion or rollback (Standard mode), removed a few seconds after their traffic moved."""

    deploying: DeployingVersion | None = None
    """The first version while it is not ready yet."""

    history: Annotated[list[HistoryEntry], Field(max_length=HISTORY_LIMIT)] = []
    """Recent changes of what is served, newest last."""

    previous: ServedVersion | None = None
    """The version that was stable before the current one: where monitoring rolls back to."""

    analysis: AnalysisStatus | None = None
    """The analysis of the canary, or of the stable version under monitoring."""

    rejected_versions: Annotated[list[RejectedVersion], Field(max_length=HISTORY_LIMIT)] = []
    """Versions that were rolled back and are not tried again until a retry."""

    promoted_alias_version: str | None = None
    """The version spec.rollout.promoteAlias was last pointed at by modelops."""

    retraining: RetrainingStatus | None = None
    """The retraining loop (spec.retraining)."""

    handled_requests: dict[str, str] = {}
    """Manual requests (annotations modelops.io/promote, rollback, retry) already acted on, by kind."""
