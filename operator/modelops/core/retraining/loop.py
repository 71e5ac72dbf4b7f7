"""The retraining loop on top of a rollout's status (pure): what the controller observed for it,
the retrained candidate that replaces the spec's target, and the status, Job and events it
leads to."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelops.api.resource import ModelDeployment
from modelops.api.status import (
    ModelDeploymentStatus,
)
from modelops.core.conditions import (
    DEGRADED,
    RETRAINING,
    ConditionUpdate,
    condition,
    with_condition,
)
from modelops.core.decision import EventIntent
from modelops.core.requests import requests_from
from modelops.core.retraining.job import JobState
from modelops.core.retraining.triggers import Reading, plan


def manual_reason(request: str) -> str:
    """The reason a person gave `modelops retrain` (the annotation is "<time> <reason>")."""
    _, _, reason = request.partition(" ")
    return reason.strip() or "requested by a person (modelops retrain)"


@dataclass(frozen=True)
class RetrainingInputs:
    """What the handler observed for the retraining loop this reconcile."""

    readings: Sequence[Reading] | None = None
    job: JobState | None = None
    candidate: str | None = None
    tracking_uri: str | None = None
    """The operator-wide registry, for Jobs of deployments that name none."""


def apply_retraining(
    deployment: ModelDeployment,
    status: ModelDeploymentStatus,
    now: datetime,
    inputs: RetrainingInputs,
) -> tuple[ModelDeploymentStatus, dict[str, Any] | None, list[EventIntent], list[str]]:
    """The retraining loop on top of the rollout's status: triggers, the Job, the candidate.
    Nothing fires before a first version is stable (there is nothing to retrain against)."""
    if status.stable is None:
        return status, None, [], []
    automatic = [
        h.at
        for h in status.history
        if h.event == "RolledBack" and "by a person" not in (h.reason or "")
    ]
    degraded = condition(status.conditions, DEGRADED)
    degraded_since = (
        degraded.last_transition_time
        if status.phase == "Degraded" and degraded is not None and degraded.status == "True"
        else None
    )
    current = deployment.model_copy(update={"status": status})
    request = requests_from(deployment.metadata.annotations, status.handled_requests).retrain
    planned = plan(
        current,
        now,
        inputs.readings,
        inputs.job,
        inputs.candidate,
        automatic[-1] if automatic else None,
        degraded_since,
        inputs.tracking_uri,
        manual=manual_reason(request) if request is not None else None,
    )
    retraining = planned.status
    candidate = retraining.candidate_version
    rejected = {r.version for r in status.rejected_versions}
    stable = status.stable.version if status.stable else None
    if candidate is not None and (candidate == stable or candidate in rejected):
        retraining = retraining.model_copy(update={"candidate_version": None})
    update: dict[str, Any] = {"retraining": retraining}
    if request is not None:
        update["handled_requests"] = {**status.handled_requests, "retrain": request}
    run = retraining.current
    if retraining.phase == "Running" and run is not None:
        if status.phase in ("Healthy", "RolledBack", "Degraded"):
            update["phase"] = "Retraining"
            update["message"] = f"{status.message}; retraining: Job {run.job} ({run.reason})"
        state, reason, message = "True", "JobRunning", f"Job {run.job}: {run.reason}"
    elif run is not None:
        state, reason = "False", run.result
        message = f"last Job {run.job} ({run.reason}): {run.result}"
    else:
        state, reason, message = "False", "Idle", "no retraining Job has run"
    update["conditions"] = with_condition(
        status.conditions,
        ConditionUpdate(RETRAINING, state, reason, message),  # type: ignore[arg-type]
        now=now,
        generation=deployment.metadata.generation,
    )
    events = [EventIntent(kind, reason, text) for kind, reason, text in planned.events]
    return status.model_copy(update=update), planned.job, events, planned.results


def candidate_view(deployment: ModelDeployment) -> ModelDeployment:
    """The deployment as the registry should resolve it: a retrained version waiting to be
    rolled out takes the place of the spec's version or alias (the spec itself is unchanged)."""
    retraining = deployment.status.retraining
    if retraining is None or retraining.candidate_version is None:
        return deployment
    if deployment.spec.serving.storage_uri is not None:
        return deployment
    model = deployment.spec.model.model_copy(
        update={"version": retraining.candidate_version, "alias": None}
    )
    spec = deployment.spec.model_copy(update={"model": model})
    return deployment.model_copy(update={"spec": spec})
