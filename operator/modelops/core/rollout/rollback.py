"""Rollbacks (pure): a canary rolled back, a promoted version rolled back to the previous one,
and the previous version's return.

Traffic leaves first: the rolled-back canary drains as a retiring predictor (Standard) or gets
canaryTrafficPercent 0 before the stable storageUri is restored (Knative). After a promotion the
previous version's pods are gone, so in Standard mode it comes back as a restoring canary that
takes all traffic as soon as it is ready (no request goes to a predictor still loading).
"""

from __future__ import annotations

from modelops.api.resource import ModelDeployment
from modelops.api.status import CanaryStatus, ServedVersion
from modelops.core.decision import EventIntent
from modelops.core.rollout.objects import stable_replicas
from modelops.core.rollout.readiness import gate_canary, progress_deadline
from modelops.core.rollout.state import (
    Observation,
    Outcome,
    RolloutState,
    canary_name,
    label,
)
from modelops.core.served import served_model


def roll_back_canary(deployment: ModelDeployment, state: RolloutState, reason: str) -> Outcome:
    canary = state.canary
    assert canary is not None
    state.reject(canary, reason)
    state.record(canary, "RolledBack", reason)
    state.events.append(
        EventIntent(
            "Warning",
            "RolledBack",
            f"{label(canary)} rolled back to {label(state.stable)}: {reason}",
        )
    )
    state.counts.append("rolled_back")
    if deployment.spec.serving.deployment_mode != "Standard":
        state.canary = canary.model_copy(
            update={"traffic": 0, "aborting": True, "paused_reason": None}
        )
    else:
        state.retire_canary(deployment)
        state.canary = None
    return state.outcome(
        "RolledBack",
        f"{label(canary)} rolled back: {reason}",
        degraded=f"{label(canary)} was rolled back: {reason}",
    )


def roll_back_stable(deployment: ModelDeployment, state: RolloutState, reason: str) -> Outcome:
    """Back to the previous version after a promotion. Knative shifts traffic to the restored
    revision once it is ready; Standard mode restores it as a canary (see `restore`)."""
    bad, good = state.stable, state.previous
    assert bad is not None and good is not None
    state.reject(bad, reason)
    state.record(good, "RolledBack", f"{label(bad)}: {reason}")
    state.events.append(
        EventIntent("Warning", "RolledBack", f"{label(bad)} rolled back to {label(good)}: {reason}")
    )
    state.counts.append("rolled_back")
    state.previous, state.analysis = None, None
    degraded = f"{label(bad)} was rolled back: {reason}"
    if deployment.spec.serving.deployment_mode != "Standard":
        state.stable = good.model_copy(update={"promoted_at": state.now})
        return state.outcome(
            "RolledBack", f"{label(bad)} rolled back to {label(good)}: {reason}", degraded=degraded
        )
    name = canary_name(deployment, served_model(deployment, good), state.predictor_names())
    state.canary = CanaryStatus(
        **good.model_dump(exclude={"promoted_at", "predictor"}),
        name=name,
        step=0,
        traffic=100,
        started_at=state.now,
        restoring=True,
    )
    return state.outcome(
        "RolledBack", f"{label(bad)} rolled back: restoring {label(good)}", degraded=degraded
    )


def restore(deployment: ModelDeployment, state: RolloutState, observation: Observation) -> Outcome:
    """The previous version, back as a canary, takes all traffic as soon as it is ready."""
    canary, bad = state.canary, state.stable
    assert canary is not None and bad is not None
    gate = gate_canary(canary, observation, progress_deadline(deployment.spec.rollout), state.now)
    state.canary = gate.canary
    why = state.history[-1].reason if state.history else "rolled back"
    degraded = f"{label(bad)} was rolled back: {why}"
    if gate.kind == "Serving":
        fields = ServedVersion.model_fields.keys() - {"promoted_at", "predictor"}
        restored = ServedVersion(
            **{k: getattr(canary, k) for k in fields}, predictor=canary.name, promoted_at=state.now
        )
        state.retire(bad, stable_replicas(deployment, None))
        state.stable, state.canary = restored, None
        return state.outcome(
            "RolledBack",
            f"{label(restored)} serves 100% of traffic after a rollback",
            degraded=degraded,
        )
    if gate.kind == "Exceeded":
        state.canary = None
        return state.outcome(
            "Degraded",
            f"{label(canary)} could not be restored ({gate.message}); {label(bad)} still serves",
            degraded=f"{degraded}; the previous version could not be restored: {gate.message}",
        )
    return state.outcome(
        "RolledBack", f"restoring {label(canary)}: {gate.message}", degraded=degraded
    )
