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
from modelops.api.status import (
    CanaryStatus,
    DeployingVersion,
    Measurement,
)
from modelops.core.analysis import assess, tally
from modelops.core.durations import parse_duration
from modelops.core.inference_service import ServedModel, served_version
from modelops.core.promotion import promote
from modelops.core.readiness import (
    deadline_message,
    deadline_passed,
    drained,
    gate_canary,
    progress_deadline,
)
from modelops.core.rollback import restore, roll_back_canary, roll_back_stable
from modelops.core.rollout_state import (
    EventIntent,
    Observation,
    Outcome,
    Requests,
    RolloutState,
    canary_name,
    first_predictor_name,
    is_rejected,
    label,
    same_model,
    steps_of,
)

DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


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
        retiring=[r for r in status.retiring if not drained(r, observation, now)],
        deploying=status.deploying,
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
        return _first_deployment(deployment, state, target, observation)
    state.deploying = None

    if state.canary is not None and state.canary.restoring:
        return restore(deployment, state, observation)

    if requests.rollback is not None:
        state.handled["rollback"] = requests.rollback
        reason = "rolled back by a person (modelops rollback)"
        if state.canary is not None:
            return roll_back_canary(deployment, state, reason)
        if state.previous is not None:
            return roll_back_stable(deployment, state, reason)
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
        state.retire_canary(deployment)
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
    deployment: ModelDeployment, state: RolloutState, target: ServedModel, observation: Observation
) -> Outcome:
    deploying = state.deploying
    if deploying is None or (deploying.version, deploying.storage_uri) != (
        target.version,
        target.storage_uri,
    ):
        deploying = DeployingVersion(
            version=target.version, storage_uri=target.storage_uri, since=state.now
        )
    if not observation.stable_ready:
        deadline = progress_deadline(deployment.spec.rollout)
        if not deadline_passed(deploying.since, deadline, state.now):
            state.deploying = deploying
            return state.outcome("Pending", observation.detail or f"deploying {label(target)}")
        message = f"{label(target)} " + deadline_message(
            deadline, observation.detail or "InferenceService not Ready", observation.diagnosis
        )
        if not deploying.deadline_exceeded:
            state.events.append(EventIntent("Warning", DEADLINE_EXCEEDED, message))
        state.deploying = deploying.model_copy(update={"deadline_exceeded": True})
        return state.outcome("Failed", message, problem=DEADLINE_EXCEEDED)
    state.deploying = None
    state.stable = served_version(target).model_copy(
        update={"promoted_at": state.now, "predictor": first_predictor_name(deployment, target)}
    )
    state.record(target, "Deployed", "InferenceService Ready")
    return state.outcome("Healthy", f"{label(target)} serves 100% of traffic")


def _start_canary(deployment: ModelDeployment, state: RolloutState, target: ServedModel) -> Outcome:
    first = steps_of(deployment.spec.rollout)[0]
    state.canary = CanaryStatus(
        **served_version(target).model_dump(exclude={"promoted_at"}),
        name=canary_name(deployment, target, state.predictor_names()),
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
        return promote(deployment, state, "promoted by a person (modelops promote)")

    gate = gate_canary(canary, observation, progress_deadline(spec.rollout), state.now)
    state.canary = canary = gate.canary
    if gate.kind == "Exceeded":
        return roll_back_canary(deployment, state, gate.message)
    if gate.kind != "Serving":
        return state.outcome(
            "Progressing", f"rolling out {label(canary)} ({where}): {gate.message}"
        )

    metrics_problem = None
    verdict = "Pass"
    if spec.analysis is not None:
        if measurements is not None:
            state.analysis = tally(
                state.analysis, "canary", canary.version, measurements, state.now
            )
        assessment = assess(state.analysis, spec.analysis)
        if assessment.kind == "Fail":
            return roll_back_canary(deployment, state, assessment.message)
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
            return promote(deployment, state, "every step passed its analysis")
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
            return roll_back_stable(deployment, state, f"after promotion: {assessment.message}")
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
