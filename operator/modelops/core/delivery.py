"""The reconcile of a deployment with a rollout or monitoring (pure): the state machine's
outcome turned into the status, the InferenceService and HTTPRoute built from it, conditions
and events."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modelops.api.resource import ModelDeployment
from modelops.api.status import Condition, Measurement, ModelDeploymentStatus
from modelops.core.conditions import ConditionUpdate, condition, with_condition
from modelops.core.decision import Decision, EventIntent
from modelops.core.inference_service import ServedModel, inference_service_name
from modelops.core.patches import edited_by_others
from modelops.core.progressive import (
    NO_FACTS,
    WorkloadFacts,
    matches,
    objects_for,
    observe,
    planned_replicas,
    registry_writes,
    traffic_summary,
)
from modelops.core.progressive import routed as is_routed
from modelops.core.retraining import Reading, plan
from modelops.core.retraining_job import JobState
from modelops.core.rollout import progress
from modelops.core.rollout_state import requests_from
from modelops.core.traffic import honoured

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
METRICS_AVAILABLE = "MetricsAvailable"
RETRAINING = "Retraining"


@dataclass(frozen=True)
class RetrainingInputs:
    """What the handler observed for the retraining loop this reconcile."""

    readings: Sequence[Reading] | None = None
    job: JobState | None = None
    candidate: str | None = None
    tracking_uri: str | None = None
    """The operator-wide registry, for Jobs of deployments that name none."""


def rollout_decision(
    deployment: ModelDeployment,
    observed: Mapping[str, Any] | None,
    target: ServedModel,
    now: datetime,
    conditions: list[Condition],
    measurements: Sequence[Measurement] | None,
    retraining: RetrainingInputs | None = None,
    facts: WorkloadFacts = NO_FACTS,
) -> Decision:
    previous = deployment.status
    generation = deployment.metadata.generation
    before, route_before = objects_for(deployment, previous, target)
    observation = observe(deployment, before, observed, route_before, facts)
    requests = requests_from(deployment.metadata.annotations, previous.handled_requests)
    outcome = progress(deployment, target, observation, measurements, requests, now)

    canary = outcome.canary
    warnings: list[EventIntent] = []
    serving = deployment.spec.serving
    if canary is not None and not canary.aborting and serving.deployment_mode == "Standard":
        plan = planned_replicas(deployment, canary.traffic)
        routed = serving.http_route is not None
        canary = canary.model_copy(
            update={
                "replicas": plan.canary,
                "stable_replicas": plan.stable,
                "effective_traffic": (canary.traffic if is_routed(canary) else 0)
                if routed
                else plan.share,
            }
        )
        step_changed = previous.canary is None or previous.canary.step != canary.step
        # A replacement without spec.rollout, or a restore, moves traffic when it completes.
        stepped = deployment.spec.rollout is not None and not canary.restoring
        if stepped and not routed and not honoured(plan, canary.traffic) and step_changed:
            warnings.append(
                EventIntent(
                    "Warning",
                    "StepNotHonoured",
                    f"step at {canary.traffic}% runs as {plan.canary} canary and {plan.stable} "
                    f"stable replicas ({plan.share}%): raise spec.serving.minReplicas/maxReplicas "
                    "or set spec.serving.httpRoute for an exact split",
                )
            )
    elif canary is not None and not canary.aborting:
        share = canary.traffic if is_routed(canary) else 0
        canary = canary.model_copy(update={"effective_traffic": share})

    def update(kind: str, state: str, reason: str, message: str) -> None:
        nonlocal conditions
        conditions = with_condition(
            conditions,
            ConditionUpdate(kind, state, reason, message),  # type: ignore[arg-type]
            now=now,
            generation=generation,
        )

    if outcome.stable is not None and observation.stable_ready:
        update(READY, "True", "InferenceServiceReady", outcome.message)
    elif outcome.problem:
        update(READY, "False", outcome.problem, outcome.message)
    else:
        update(READY, "False", "InferenceServiceNotReady", observation.detail or outcome.message)
    if outcome.problem:
        update(PROGRESSING, "False", outcome.problem, outcome.message)
    elif canary is not None:
        reason = "Paused" if canary.paused_reason else "RollingOut"
        update(PROGRESSING, "True", reason, outcome.message)
    elif outcome.phase == "Pending":
        update(PROGRESSING, "True", "Deploying", outcome.message)
    else:
        update(PROGRESSING, "False", "Stable", "no rollout in flight")
    if outcome.degraded:
        update(
            DEGRADED,
            "True",
            "RolledBack" if outcome.phase == "RolledBack" else "AnalysisFailing",
            outcome.degraded,
        )
    else:
        update(DEGRADED, "False", "AsExpected", "no rollback and no failing analysis")
    if deployment.spec.analysis is not None:
        if outcome.metrics_problem:
            update(METRICS_AVAILABLE, "False", "NoVerdict", outcome.metrics_problem)
        else:
            update(METRICS_AVAILABLE, "True", "Measured", "the analysis queries answer")

    status = ModelDeploymentStatus(
        observed_generation=generation,
        phase=outcome.phase,
        message=outcome.message,
        conditions=conditions,
        inference_service=inference_service_name(deployment),
        stable=outcome.stable,
        canary=canary,
        retiring=outcome.retiring,
        deploying=outcome.deploying,
        history=outcome.history,
        previous=outcome.previous,
        analysis=outcome.analysis,
        rejected_versions=outcome.rejected,
        promoted_alias_version=previous.promoted_alias_version,
        handled_requests=outcome.handled,
        retraining=previous.retraining,
    )
    status = status.model_copy(update={"traffic": traffic_summary(status)})
    job: dict[str, Any] | None = None
    retraining_events: list[EventIntent] = []
    retraining_results: list[str] = []
    if deployment.spec.retraining is not None:
        status, job, retraining_events, retraining_results = _retraining(
            deployment, status, now, retraining or RetrainingInputs()
        )
    service, route = objects_for(deployment, status, target)
    to_apply = None if _same(service, observed) else service

    events = [*outcome.events, *warnings]
    events += retraining_events
    if observed is None:
        events.insert(
            0,
            EventIntent(
                "Normal", "Created", f"Created InferenceService {service['metadata']['name']}"
            ),
        )
    elif to_apply is not None and edited_by_others(service, dict(observed)):
        events.append(
            EventIntent(
                "Warning",
                "Restored",
                f"InferenceService {service['metadata']['name']} was changed outside modelops; "
                "restored the fields this ModelDeployment owns (edit the ModelDeployment instead)",
            )
        )
    elif to_apply is not None and not outcome.events and not _same(before, observed):
        # Not a transition (those have their own events): the spec asks for something else.
        events.append(
            EventIntent(
                "Normal",
                "Updated",
                f"Updated InferenceService {service['metadata']['name']}: the spec changed",
            )
        )
    was_ready = condition(previous.conditions, READY)
    if outcome.phase == "Healthy" and (was_ready is None or was_ready.status != "True"):
        events.append(EventIntent("Normal", "Ready", outcome.message))
    return Decision(
        inference_service=to_apply,
        status=status,
        events=tuple(events),
        http_route=route,
        registry_writes=registry_writes(deployment, status),
        counts=tuple(outcome.counts),
        job=job,
        retraining_results=tuple(retraining_results),
    )


def _retraining(
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
    planned = plan(
        current,
        now,
        inputs.readings,
        inputs.job,
        inputs.candidate,
        automatic[-1] if automatic else None,
        degraded_since,
        inputs.tracking_uri,
    )
    retraining = planned.status
    candidate = retraining.candidate_version
    rejected = {r.version for r in status.rejected_versions}
    stable = status.stable.version if status.stable else None
    if candidate is not None and (candidate == stable or candidate in rejected):
        retraining = retraining.model_copy(update={"candidate_version": None})
    update: dict[str, Any] = {"retraining": retraining}
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


def _same(desired: Mapping[str, Any], observed: Mapping[str, Any] | None) -> bool:
    return matches(desired, observed)
