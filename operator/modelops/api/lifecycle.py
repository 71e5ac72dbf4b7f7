"""After promotion: monitoring and retraining."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints

from modelops.api.base import MlflowAlias, SpecModel
from modelops.api.schema_types import (
    Duration,
    LabelName,
    Rule,
    validations,
)


class DriftSpec(SpecModel):
    """Input drift watching after promotion."""

    enabled: bool = False
    """Watch input drift of the promoted version."""

    max_psi: Annotated[float, Field(ge=0, le=10)] = 0.2
    """Population stability index above which the deployment is Degraded."""


class InferenceLoggerSpec(SpecModel):
    """Where KServe's inference logger sends each request and response (CloudEvents)."""

    url: Annotated[str, StringConstraints(pattern=r"^https?://.+", max_length=2048)]
    """The monitor's URL, for example http://modelops-monitor.modelops-system.svc:8080/."""

    capture_store: Annotated[str, StringConstraints(min_length=1, max_length=2048)] | None = None
    """Where the monitor writes labelled production rows (a path or s3://bucket/prefix);
    retraining Jobs get this deployment's part of it as MODELOPS_PRODUCTION_DATA. The
    operator's --capture-store when omitted."""


class MonitoringSpec(SpecModel):
    """Watching after promotion."""

    rollback_window: Duration = "1h"
    """A promoted version that degrades within this window is rolled back to the previous good one."""

    drift: DriftSpec | None = None
    """Input drift watching: KServe's logger sends every request of every served version to
    the monitor, which measures it against the version's reference profile."""

    logger: InferenceLoggerSpec | None = None
    """The monitor to log to; the operator's --monitor-url when omitted."""


class MetricTrigger(SpecModel):
    """Retrain when a PromQL query leaves its bounds."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule("has(self.min) || has(self.max)", "a metric trigger needs min or max"),
        )
    )

    query: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    """PromQL template, filled in as analysis queries are."""

    min: float | None = None
    """Breach below this value."""

    max: float | None = None
    """Breach above this value."""


class DriftTrigger(SpecModel):
    """Retrain when the drift score stays high."""

    max_psi: Annotated[float, Field(ge=0, le=10)]
    """Drift score (population stability index) above which the trigger breaches."""

    metric: (
        Annotated[str, StringConstraints(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$", max_length=200)]
        | None
    ) = None
    """Prometheus metric with the drift score; the drift monitor's when omitted."""


CRON_PATTERN = r"^(\S+\s+){4}\S+$"


class RetrainingTrigger(SpecModel):
    """One reason to retrain. Set exactly one of metric, drift, schedule, onRollback, onDegraded."""

    model_config = ConfigDict(
        json_schema_extra=validations(
            Rule(
                "[has(self.metric), has(self.drift), has(self.schedule), has(self.onRollback), "
                "has(self.onDegraded)].filter(x, x).size() == 1",
                "set exactly one of metric, drift, schedule, onRollback or onDegraded in each trigger",
            ),
            Rule(
                "!has(self.timeZone) || has(self.schedule)",
                "timeZone only applies to a schedule trigger",
            ),
        )
    )

    name: LabelName | None = None
    """Trigger id, used in Job names and events; derived from the position when omitted."""

    metric: MetricTrigger | None = None
    """Retrain when this query breaches."""

    drift: DriftTrigger | None = None
    """Retrain when input drift stays above a threshold."""

    schedule: Annotated[str, StringConstraints(pattern=CRON_PATTERN, max_length=100)] | None = None
    """Cron expression (5 fields), for example "0 3 * * 0"."""

    time_zone: Annotated[str, StringConstraints(max_length=64)] | None = None
    """IANA time zone of the schedule, for example Europe/Berlin; UTC when omitted."""

    on_rollback: bool | None = None
    """Retrain after an automatic rollback."""

    on_degraded: bool | None = None
    """Retrain when post-promotion monitoring marks the deployment Degraded."""

    for_: Annotated[Duration | None, Field(alias="for")] = None
    """How long a metric or drift breach must hold before the trigger fires."""


class JobTemplate(SpecModel):
    """A batch/v1 Job template for retraining."""

    metadata: dict[str, Any] | None = Field(
        default=None, json_schema_extra={"x-kubernetes-preserve-unknown-fields": True}
    )
    """Labels and annotations for the Job."""

    spec: dict[str, Any] = Field(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})
    """A batch/v1 JobSpec; modelops injects its environment into every container."""


class CandidateSpec(SpecModel):
    """How the version a retraining Job registered is found."""

    alias: MlflowAlias | None = None
    """Alias the trainer points at its version, for example challenger; otherwise the newest READY version tagged with the trigger id."""


class RetrainingSpec(SpecModel):
    """When and how to retrain."""

    triggers: Annotated[list[RetrainingTrigger], Field(min_length=1, max_length=10)]
    """Reasons to retrain."""

    cooldown: Duration = "6h"
    """Minimum time between two trigger firings."""

    job_template: JobTemplate
    """The retraining Job."""

    candidate: CandidateSpec | None = None
    """How the retrained version is found."""
