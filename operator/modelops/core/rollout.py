"""The rollout state machine (pure): (spec, status, observations, now) -> (new status, intents).

One call moves a deployment at most one transition: start a canary, start or advance a step,
promote, roll back, abort, or pause. Everything it decides lives in the status it returns, and
the InferenceService is built from that status alone, so a restart between writing the status
and applying the InferenceService repeats the apply and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from modelops.api.resource import ModelDeployment
from modelops.api.status import CanaryStatus, Measurement, ServedVersion
from modelops.core.analysis import assess, tally
from modelops.core.durations import parse_duration
from modelops.core.inference_service import ServedModel, served_version
from modelops.core.rollout_state import (
    EventIntent,
    Observation,
    Outcome,
    Requests,
    RolloutState,
    canary_name,
    is_rejected,
    label,
    same_model,
    steps_of,
)


def progress(
    deployment: ModelDeployment,
    target: ServedModel,
    observation: Observation,
    measurements: Sequence[Measurement] | None,
    requests: Requests,
    now: datetime,
) -> Outcome:
    """One step of the state machine. `measurements` is a round of the analysis that ran for
    the current subject (the canary, or the stable version under monitoring), or None."""
    status = deployment.status
    state = RolloutState(
        stable=status.stable,
        previous=status.previous,
        canary=status.canary,
        analysis=status.analysis,
        rejected=list(status.rejected_versions),
        history=list(status.history),
        handled=dict(status.handled_requests),
        now=now,
    )
    if requests.retry is not None:
        state.handled["retry"] = requests.retry
        wanted = requests.retry.split("/", 1)[0]
        state.rejected = [r for r in state.rejected if wanted not in ("", r.version)]
        state.events.append(
            EventIntent(
                "Normal",
                "RetryRequested",
                f"retry of version {wanted or 'every rejected version'} requested",
            )
        )

    if state.canary is not None and state.canary.aborting:
        if observation.applied:
            state.canary = None  # Knative: traffic is off the canary; restore the stable next
        return state.outcome("RolledBack", f"restoring {label(state.stable)} after the rollback")

    if state.stable is None:
        return _first_deployment(state, target, observation)

    if requests.rollback is not None:
        state.handled["rollback"] = requests.rollback
        reason = "rolled back by a person (modelops rollback)"
        if state.canary is not None:
            return _roll_back_canary(deployment, state, reason)
        if state.previous is not None:
            return _roll_back_stable(state, reason)
        state.events.append(
            EventIntent(
                "Warning",
                "RollbackIgnored",
                "nothing to roll back to: no canary and no previous version",
            )
        )

    if state.canary is not None:
        if same_model(state.canary, target) and not is_rejected(state.rejected, target):
            return _canary_step(deployment, state, observation, measurements, requests)
        why = (
            "the spec or alias points back at the stable version"
            if same_model(state.stable, target)
            else f"superseded by {label(target)}"
        )
        state.record(state.canary, "Aborted", why)
        state.events.append(
            EventIntent(
                "Normal", "RolloutAborted", f"rollout of {label(state.canary)} aborted: {why}"
            )
        )
        state.counts.append("aborted")
        state.canary, state.analysis = None, None

    if same_model(state.stable, target):
        return _steady(deployment, state, observation, measurements)
    rejected = is_rejected(state.rejected, target)
    if rejected is not None:
        return state.outcome(
            "RolledBack",
            f"{label(target)} was rejected ({rejected.reason}); serving {label(state.stable)}. "
            "Point the spec or alias at another version, or run modelops retry",
            degraded=f"{label(target)} was rolled back: {rejected.reason}",
        )
    return _start_canary(deployment, state, target)


def _first_deployment(
    state: RolloutState, target: ServedModel, observation: Observation
) -> Outcome:
    if not observation.stable_ready:
        return state.outcome("Pending", observation.detail or f"deploying {label(target)}")
    state.stable = served_version(target).model_copy(update={"promoted_at": state.now})
    state.record(target, "Deployed", "InferenceService Ready")
    return state.outcome("Healthy", f"{label(target)} serves 100% of traffic")


def _start_canary(deployment: ModelDeployment, state: RolloutState, target: ServedModel) -> Outcome:
    first = steps_of(deployment.spec.rollout)[0]
    state.canary = CanaryStatus(
        **served_version(target).model_dump(exclude={"promoted_at"}),
        name=canary_name(deployment, target),
        step=0,
        traffic=first.traffic,
        started_at=state.now,
    )
    state.analysis = None
    state.record(target, "RolloutStarted", f"step 1: {first.traffic}% for {first.duration}")
    state.events.append(
        EventIntent(
            "Normal",
            "RolloutStarted",
            f"rolling out {label(target)}: step 1 at {first.traffic}% of traffic",
        )
    )
    return state.outcome(
        "Progressing", f"rolling out {label(target)}: waiting for the canary to be ready"
    )


def _canary_step(
    deployment: ModelDeployment,
    state: RolloutState,
    observation: Observation,
    measurements: Sequence[Measurement] | None,
    requests: Requests,
) -> Outcome:
    canary = state.canary
    assert canary is not None and canary.step is not None
    spec = deployment.spec
    steps = steps_of(spec.rollout)
    step = steps[min(canary.step, len(steps) - 1)]
    where = f"step {canary.step + 1}/{len(steps)} at {canary.traffic}%"

    if requests.promote is not None and requests.promote.split("/", 1)[0] in ("", canary.version):
        state.handled["promote"] = requests.promote
        return _promote(deployment, state, "promoted by a person (modelops promote)")

    if not observation.canary_ready:
        return state.outcome(
            "Progressing",
            f"rolling out {label(canary)} ({where}): {observation.detail or 'waiting for the canary predictor to be ready'}",
        )
    if canary.step_started_at is None:
        canary = replace_canary(canary, step_started_at=state.now)
    state.canary = canary

    metrics_problem = None
    verdict = "Pass"
    if spec.analysis is not None:
        if measurements is not None:
            state.analysis = tally(
                state.analysis, "canary", canary.version, measurements, state.now
            )
        assessment = assess(state.analysis, spec.analysis)
        if assessment.kind == "Fail":
            return _roll_back_canary(deployment, state, assessment.message)
        verdict = assessment.kind
        if assessment.kind == "Paused":
            metrics_problem = assessment.message
        analysed_since_step = (
            state.analysis is not None
            and state.analysis.last_run_at is not None
            and canary.step_started_at is not None
            and state.analysis.last_run_at >= canary.step_started_at
        )
        if verdict == "Pass" and not analysed_since_step:
            verdict = "Wait"

    paused_reason = metrics_problem or (
        "paused by a person (modelops resume continues)" if requests.paused else None
    )
    assert canary.step_started_at is not None
    elapsed = state.now - canary.step_started_at
    step_done = elapsed >= parse_duration(step.duration)
    if paused_reason is None and step_done and verdict == "Pass":
        assert canary.step is not None
        if canary.step + 1 < len(steps):
            following = steps[canary.step + 1]
            state.canary = replace_canary(
                canary,
                step=canary.step + 1,
                traffic=following.traffic,
                step_started_at=state.now,
                paused_reason=None,
            )
            state.events.append(
                EventIntent(
                    "Normal",
                    "StepAdvanced",
                    f"{label(canary)}: step {canary.step + 2}/{len(steps)} at {following.traffic}% of traffic",
                )
            )
            return state.outcome(
                "Progressing",
                f"rolling out {label(canary)}: step {canary.step + 2}/{len(steps)} at {following.traffic}%",
            )
        if spec.rollout is not None and spec.rollout.promotion == "Manual":
            paused_reason = "all steps passed; waiting for a person to promote (modelops promote)"
        else:
            return _promote(deployment, state, "every step passed its analysis")
    state.canary = replace_canary(canary, paused_reason=paused_reason)
    remaining = max(timedelta(0), parse_duration(step.duration) - elapsed)
    message = f"rolling out {label(canary)} ({where})" + (
        f": paused, {paused_reason}"
        if paused_reason
        else f": {int(remaining.total_seconds())}s left in the step"
        if not step_done
        else ": waiting for a passing measurement"
    )
    return state.outcome("Progressing", message, metrics_problem=metrics_problem)


def replace_canary(canary: CanaryStatus, **changes: object) -> CanaryStatus:
    return canary.model_copy(update=changes)


def _promote(deployment: ModelDeployment, state: RolloutState, reason: str) -> Outcome:
    canary = state.canary
    assert canary is not None and state.stable is not None
    fields = ServedVersion.model_fields.keys()
    promoted = ServedVersion(
        **{k: getattr(canary, k) for k in fields if k != "promoted_at"}, promoted_at=state.now
    )
    if deployment.spec.serving.deployment_mode == "Standard":
        # Retarget the stable predictor onto the canary's Deployment; KServe refuses a name
        # change without a storageUri change, and a same-artifact version needs no new pods.
        same_artifact = canary.storage_uri == state.stable.storage_uri
        name = state.stable.predictor if same_artifact else canary.name
        promoted = promoted.model_copy(update={"predictor": name})
    state.previous, state.stable, state.canary, state.analysis = state.stable, promoted, None, None
    state.record(promoted, "Promoted", reason)
    state.events.append(EventIntent("Normal", "Promoted", f"{label(promoted)} promoted: {reason}"))
    state.counts.append("promoted")
    return state.outcome("Healthy", f"{label(promoted)} serves 100% of traffic")


def _roll_back_canary(deployment: ModelDeployment, state: RolloutState, reason: str) -> Outcome:
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
    knative = deployment.spec.serving.deployment_mode != "Standard"
    state.canary = (
        replace_canary(canary, traffic=0, aborting=True, paused_reason=None) if knative else None
    )
    return state.outcome(
        "RolledBack",
        f"{label(canary)} rolled back: {reason}",
        degraded=f"{label(canary)} was rolled back: {reason}",
    )


def _roll_back_stable(state: RolloutState, reason: str) -> Outcome:
    bad, good = state.stable, state.previous
    assert bad is not None and good is not None
    state.reject(bad, reason)
    state.stable, state.previous, state.analysis = (
        good.model_copy(update={"promoted_at": state.now}),
        None,
        None,
    )
    state.record(good, "RolledBack", f"{label(bad)}: {reason}")
    state.events.append(
        EventIntent("Warning", "RolledBack", f"{label(bad)} rolled back to {label(good)}: {reason}")
    )
    state.counts.append("rolled_back")
    return state.outcome(
        "RolledBack",
        f"{label(bad)} rolled back to {label(good)}: {reason}",
        degraded=f"{label(bad)} was rolled back: {reason}",
    )


def _steady(
    deployment: ModelDeployment,
    state: RolloutState,
    observation: Observation,
    measurements: Sequence[Measurement] | None,
) -> Outcome:
    stable = state.stable
    assert stable is not None
    spec = deployment.spec
    if not observation.stable_ready:
        return state.outcome(
            "Progressing", f"{label(stable)}: {observation.detail or 'waiting for KServe'}"
        )
    last = state.history[-1] if state.history else None
    if spec.monitoring is None or spec.analysis is None:
        if last is not None and last.event == "RolledBack" and state.rejected:
            return state.outcome(
                "RolledBack",
                f"{label(stable)} serves 100% of traffic after a rollback",
                degraded=f"{label(stable)} serves after a rollback: {last.reason}",
            )
        return state.outcome("Healthy", f"{label(stable)} serves 100% of traffic")
    if measurements is not None:
        state.analysis = tally(state.analysis, "stable", stable.version, measurements, state.now)
    assessment = assess(state.analysis, spec.analysis)
    if assessment.kind == "Fail":
        window = parse_duration(spec.monitoring.rollback_window)
        promoted_at = stable.promoted_at or state.now
        good = state.previous
        if (
            state.now - promoted_at <= window
            and good is not None
            and not any(
                r.version == good.version and r.storage_uri == good.storage_uri
                for r in state.rejected
            )
        ):
            return _roll_back_stable(state, f"after promotion: {assessment.message}")
        return state.outcome(
            "Degraded",
            f"{label(stable)} fails its analysis after promotion: {assessment.message}",
            degraded=f"{label(stable)} fails after promotion (outside rollbackWindow or no previous version): {assessment.message}",
        )
    metrics_problem = assessment.message if assessment.kind == "Paused" else None
    if (
        last is not None
        and last.event == "RolledBack"
        and state.rejected
        and (state.analysis is None or state.analysis.failures == 0)
    ):
        return state.outcome(
            "RolledBack",
            f"{label(stable)} serves 100% of traffic after a rollback",
            degraded=f"{label(stable)} serves after a rollback: {last.reason}",
            metrics_problem=metrics_problem,
        )
    return state.outcome(
        "Healthy",
        f"{label(stable)} serves 100% of traffic; monitored",
        metrics_problem=metrics_problem,
    )
