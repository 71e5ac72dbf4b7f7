"""A rollout outcome turned into what one reconcile writes (pure): the status with its
conditions, the InferenceService and HTTPRoute built from it, and the events that say why."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from modelops.api.resource import ModelDeployment
from modelops.api.status import (
    CanaryStatus,
    Condition,
    Measurement,
    ModelDeploymentStatus,
)
from modelops.core.conditions import (
    DEGRADED,
    METRICS_AVAILABLE,
    PROGRESSING,
    READY,
    ConditionUpdate,
    condition,
    with_condition,
)
from modelops.core.decision import Decision, EventIntent
from modelops.core.inference_logging import desired_logged_service, routes_through_agent
from modelops.core.patches import edited_by_others
from modelops.core.registry_writes import registry_writes
from modelops.core.requests import requests_from
from modelops.core.retraining.loop import RetrainingInputs, apply_retraining
from modelops.core.rollout.machine import progress
from modelops.core.rollout.objects import (
    inference_service_name,
    objects_for,
    planned_replicas,
    routed,
)
from modelops.core.rollout.observe import NO_FACTS, WorkloadFacts, matches, observe
from modelops.core.rollout.state import Observation, Outcome
from modelops.core.rollout.traffic import honoured
from modelops.core.served import ServedModel


def rollout_decision(
    deployment: ModelDeployment,
    observed: Mapping[str, Any] | None,
    target: ServedModel,
    now: datetime,
    conditions: list[Condition],
    measurements: Sequence[Measurement] | None,
    retraining: RetrainingInputs | None = None,
    facts: WorkloadFacts = NO_FACTS,
    hold: str | None = None,
) -> Decision:
    """The one decision of a reconcile: observe what the previous status built, move the state
    machine once, and write the status and the objects built from it (`hold`: see
    machine.progress)."""
    previous = deployment.status
    before, route_before = objects_for(deployment, previous, target)
    observation = observe(deployment, before, observed, route_before, facts)
    requests = requests_from(deployment.metadata.annotations, previous.handled_requests)
    outcome = progress(deployment, target, observation, measurements, requests, now, hold)
    canary, warnings = canary_traffic(deployment, outcome.state.canary, previous.canary)
    conditions = rollout_conditions(deployment, outcome, observation, canary, conditions, now)
    status = new_status(deployment, outcome, canary, conditions)
    job: dict[str, Any] | None = None
    retraining_events: list[EventIntent] = []
    retraining_results: list[str] = []
    if deployment.spec.retraining is not None:
        status, job, retraining_events, retraining_results = apply_retraining(
            deployment, status, now, retraining or RetrainingInputs()
        )
    service, route = objects_for(deployment, status, target)
    to_apply = None if matches(service, observed) else service
    canary_service = None
    if routes_through_agent(deployment) and status.canary is not None and status.canary.name:
        canary_service = desired_logged_service(deployment, status.canary.name)
    events = [
        *object_events(
            service,
            before,
            observed,
            to_apply,
            transitioned=bool(outcome.state.events),
            served=previous.stable is not None,
        ),
        *outcome.state.events,
        *warnings,
        *retraining_events,
    ]
    was_ready = condition(previous.conditions, READY)
    if outcome.phase == "Healthy" and (was_ready is None or was_ready.status != "True"):
        events.append(EventIntent("Normal", "Ready", outcome.message))
    return Decision(
        inference_service=to_apply,
        status=status,
        events=tuple(events),
        http_route=route,
        canary_service=canary_service,
        registry_writes=registry_writes(deployment, status),
        counts=tuple(outcome.state.counts),
        job=job,
        kserve_check=service if outcome.state.waits_for_kserve else None,
        retraining_results=tuple(retraining_results),
    )


def canary_traffic(
    deployment: ModelDeployment, canary: CanaryStatus | None, before: CanaryStatus | None
) -> tuple[CanaryStatus | None, list[EventIntent]]:
    """The canary with the replicas and the share of traffic it really gets, and a warning when
    a replica split cannot honour a step."""
    if canary is None or canary.aborting:
        return canary, []
    serving = deployment.spec.serving
    if serving.deployment_mode != "Standard":
        share = canary.traffic if routed(canary) else 0
        return canary.model_copy(update={"effective_traffic": share}), []
    plan = planned_replicas(deployment, canary.traffic)
    by_route = serving.http_route is not None
    effective = (canary.traffic if routed(canary) else 0) if by_route else plan.share
    canary = canary.model_copy(
        update={"replicas": plan.canary, "stable_replicas": plan.stable,
                "effective_traffic": effective}
    )  # fmt: skip
    step_changed = before is None or before.step != canary.step
    # A replacement without spec.rollout, or a restore, moves traffic when it completes.
    stepped = deployment.spec.rollout is not None and not canary.restoring
    if not stepped or by_route or honoured(plan, canary.traffic) or not step_changed:
        return canary, []
    return canary, [
        EventIntent(
            "Warning",
            "StepNotHonoured",
            f"step at {canary.traffic}% runs as {plan.canary} canary and {plan.stable} "
            f"stable replicas ({plan.share}%): raise spec.serving.minReplicas/maxReplicas "
            "or set spec.serving.httpRoute for an exact split",
        )
    ]


def rollout_conditions(
    deployment: ModelDeployment,
    outcome: Outcome,
    observation: Observation,
    canary: CanaryStatus | None,
    conditions: list[Condition],
    now: datetime,
) -> list[Condition]:
    """Ready, Progressing, Degraded and (with analysis) MetricsAvailable after the outcome."""
    updates = []
    unknown = not observation.known and condition(conditions, READY) is not None
    if unknown and outcome.problem is None:
        pass  # KServe has not seen what is being applied: Ready stays as it was
    elif outcome.state.stable is not None and observation.stable_ready:
        updates.append(ConditionUpdate(READY, "True", "InferenceServiceReady", outcome.message))
    elif outcome.problem:
        updates.append(ConditionUpdate(READY, "False", outcome.problem, outcome.message))
    else:
        why = observation.detail or outcome.message
        updates.append(ConditionUpdate(READY, "False", "InferenceServiceNotReady", why))
    if outcome.problem:
        updates.append(ConditionUpdate(PROGRESSING, "False", outcome.problem, outcome.message))
    elif canary is not None:
        reason = "Paused" if canary.paused_reason else "RollingOut"
        updates.append(ConditionUpdate(PROGRESSING, "True", reason, outcome.message))
    elif outcome.phase == "Pending":
        updates.append(ConditionUpdate(PROGRESSING, "True", "Deploying", outcome.message))
    else:
        updates.append(ConditionUpdate(PROGRESSING, "False", "Stable", "no rollout in flight"))
    if outcome.degraded:
        reason = "RolledBack" if outcome.phase == "RolledBack" else "AnalysisFailing"
        updates.append(ConditionUpdate(DEGRADED, "True", reason, outcome.degraded))
    else:
        updates.append(
            ConditionUpdate(DEGRADED, "False", "AsExpected", "no rollback and no failing analysis")
        )
    if deployment.spec.analysis is not None and outcome.metrics_problem:
        updates.append(
            ConditionUpdate(METRICS_AVAILABLE, "False", "NoVerdict", outcome.metrics_problem)
        )
    elif deployment.spec.analysis is not None:
        updates.append(
            ConditionUpdate(METRICS_AVAILABLE, "True", "Measured", "the analysis queries answer")
        )
    generation = deployment.metadata.generation
    for update in updates:
        conditions = with_condition(conditions, update, now=now, generation=generation)
    return conditions


def new_status(
    deployment: ModelDeployment,
    outcome: Outcome,
    canary: CanaryStatus | None,
    conditions: list[Condition],
) -> ModelDeploymentStatus:
    previous = deployment.status
    status = ModelDeploymentStatus(
        observed_generation=deployment.metadata.generation,
        phase=outcome.phase,
        message=outcome.message,
        conditions=conditions,
        inference_service=inference_service_name(deployment),
        stable=outcome.state.stable,
        canary=canary,
        retiring=outcome.state.retiring,
        deploying=outcome.state.deploying,
        history=outcome.state.history,
        previous=outcome.state.previous,
        analysis=outcome.state.analysis,
        rejected_versions=outcome.state.rejected,
        promoted_alias_version=previous.promoted_alias_version,
        handled_requests=outcome.state.handled,
        retraining=previous.retraining,
    )
    return status.model_copy(update={"traffic": traffic_summary(status)})


def object_events(
    service: Mapping[str, Any],
    before: Mapping[str, Any],
    observed: Mapping[str, Any] | None,
    to_apply: Mapping[str, Any] | None,
    *,
    transitioned: bool,
    served: bool,
) -> list[EventIntent]:
    """What to say about the InferenceService itself: created, created again after someone
    deleted it (`served`: the status says a version was served), restored after a hand edit,
    or updated for a spec change (a transition says why in its own event)."""
    name = service["metadata"]["name"]
    if observed is None and served:
        return [
            EventIntent(
                "Warning",
                "Recreated",
                f"InferenceService {name} was deleted outside modelops; created it again from "
                "the status (delete the ModelDeployment to stop serving)",
            )
        ]
    if observed is None:
        return [EventIntent("Normal", "Created", f"Created InferenceService {name}")]
    if to_apply is None:
        return []
    if edited_by_others(dict(service), dict(observed)):
        return [
            EventIntent(
                "Warning",
                "Restored",
                f"InferenceService {name} was changed outside modelops; restored the fields "
                "this ModelDeployment owns (edit the ModelDeployment instead)",
            )
        ]
    if not transitioned and not matches(before, observed):
        return [
            EventIntent("Normal", "Updated", f"Updated InferenceService {name}: the spec changed")
        ]
    return []


def traffic_summary(status: ModelDeploymentStatus) -> str | None:
    stable, canary = status.stable, status.canary
    if stable is None:
        return None
    name = stable.version or "stable"
    if canary is None or canary.aborting:
        return f"{name}: 100%"
    share = canary.effective_traffic if canary.effective_traffic is not None else canary.traffic
    return f"{name}: {100 - share}%, {canary.version or 'canary'}: {share}%"
