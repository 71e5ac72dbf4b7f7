"""The rollout state machine (pure): (spec, status, observations, now) -> (new status, intents).

One call decides what the deployment does now: deploy a first version, start a canary, wait
for its readiness, start or advance a step, promote, roll back, restore, pause, or watch the
stable version; a superseded canary is aborted and the next one started in the same call.
Everything it decides lives in the status it returns, and the objects are built from that
status alone, so a restart between writing the status and applying the objects repeats the
apply and nothing else. A deployment without spec.rollout is a rollout that replaces at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from modelops.api.delivery import TrafficStep
from modelops.api.resource import ModelDeployment
from modelops.api.status import (
    CanaryStatus,
    DeployingVersion,
    Measurement,
)
from modelops.core.analysis import assess, tally
from modelops.core.decision import EventIntent
from modelops.core.durations import parse_duration
from modelops.core.requests import Requests
from modelops.core.rollout.monitoring import monitor_stable
from modelops.core.rollout.promotion import promote
from modelops.core.rollout.readiness import (
    deadline_message,
    deadline_passed,
    drained,
    gate_canary,
    progress_deadline,
)
from modelops.core.rollout.rollback import restore, roll_back_canary, roll_back_stable
from modelops.core.rollout.state import (
    Observation,
    Outcome,
    RolloutState,
    canary_name,
    first_predictor_name,
    is_rejected,
    label,
    same_model,
    steps_of,
)
from modelops.core.served import ServedModel, served_version

DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


def progress(
    deployment: ModelDeployment,
    target: ServedModel,
    observation: Observation,
    measurements: Sequence[Measurement] | None,
    requests: Requests,
    now: datetime,
    hold: str | None = None,
) -> Outcome:
    """One step of the state machine. `measurements` is a round of the analysis that ran for
    the current subject (the canary, or the stable version under monitoring), or None. `hold`
    says why a canary may not advance or be promoted now (its analysis still rolls it back)."""
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
        _allow_again(state, requests.retry)
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
        rolled_back = _roll_back_on_request(deployment, state)
        if rolled_back is not None:
            return rolled_back
    if state.canary is not None:
        if same_model(state.canary, target) and not is_rejected(state.rejected, target):
            return _canary_step(deployment, state, observation, measurements, requests, hold)
        _abort(deployment, state, target)
    if same_model(state.stable, target):
        return monitor_stable(deployment, state, observation, measurements)
    rejected = is_rejected(state.rejected, target)
    if rejected is not None:
        return state.outcome(
            "RolledBack",
            f"{label(target)} was rejected ({rejected.reason}); serving {label(state.stable)}. "
            "Point the spec or alias at another version, or run modelops retry",
            degraded=f"{label(target)} was rolled back: {rejected.reason}",
        )
    return _start_canary(deployment, state, target)


def _allow_again(state: RolloutState, request: str) -> None:
    """`modelops retry`: a rejected version (or every one) may be rolled out again."""
    state.handled["retry"] = request
    wanted = request.split("/", 1)[0]
    state.rejected = [r for r in state.rejected if wanted not in ("", r.version)]
    which = f"version {wanted}" if wanted else "every rejected version"
    state.events.append(EventIntent("Normal", "RetryRequested", f"retry of {which} requested"))


def _roll_back_on_request(deployment: ModelDeployment, state: RolloutState) -> Outcome | None:
    """`modelops rollback`: the canary, else the stable version back to the previous one."""
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
    return None


def _abort(deployment: ModelDeployment, state: RolloutState, target: ServedModel) -> None:
    """The spec or alias moved on while a canary ran: it goes (it drains first) unjudged."""
    canary = state.canary
    assert canary is not None
    why = (
        "the spec or alias points back at the stable version"
        if same_model(state.stable, target)
        else f"superseded by {label(target)}"
    )
    state.record(canary, "Aborted", why)
    state.events.append(
        EventIntent("Normal", "RolloutAborted", f"rollout of {label(canary)} aborted: {why}")
    )
    state.counts.append("aborted")
    state.retire_canary(deployment)
    state.canary, state.analysis = None, None


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
            state.waits_for_kserve = True
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
    hold: str | None,
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
        state.waits_for_kserve = True  # "not ready" is only true while KServe reports
        return roll_back_canary(deployment, state, gate.message)
    if gate.kind != "Serving":
        return state.outcome(
            "Progressing", f"rolling out {label(canary)} ({where}): {gate.message}"
        )

    verdict, metrics_problem, failure = _judge(deployment, state, measurements)
    if failure is not None:
        return roll_back_canary(deployment, state, failure)
    paused_reason = (
        metrics_problem
        or hold
        or ("paused by a person (modelops resume continues)" if requests.paused else None)
    )
    assert canary.step_started_at is not None and canary.step is not None
    elapsed = state.now - canary.step_started_at
    step_done = elapsed >= parse_duration(step.duration)
    if paused_reason is None and step_done and verdict == "Pass":
        if canary.step + 1 < len(steps):
            return _next_step(state, canary, steps)
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


def _judge(
    deployment: ModelDeployment,
    state: RolloutState,
    measurements: Sequence[Measurement] | None,
) -> tuple[str, str | None, str | None]:
    """The canary's analysis after this round: (Pass | Wait | Paused, why it has no verdict,
    why it failed). A Pass counts only for a round measured since the step started."""
    analysis, canary = deployment.spec.analysis, state.canary
    assert canary is not None
    if analysis is None:
        return "Pass", None, None
    if measurements is not None:
        state.analysis = tally(state.analysis, "canary", canary.version, measurements, state.now)
    assessment = assess(state.analysis, analysis)
    if assessment.kind == "Fail":
        return "Fail", None, assessment.message
    if assessment.kind == "Paused":
        return "Paused", assessment.message, None
    analysed_since_step = (
        state.analysis is not None
        and state.analysis.last_run_at is not None
        and canary.step_started_at is not None
        and state.analysis.last_run_at >= canary.step_started_at
    )
    if assessment.kind == "Pass" and not analysed_since_step:
        return "Wait", None, None
    return assessment.kind, None, None


def _next_step(state: RolloutState, canary: CanaryStatus, steps: list[TrafficStep]) -> Outcome:
    assert canary.step is not None
    following = steps[canary.step + 1]
    where = f"step {canary.step + 2}/{len(steps)} at {following.traffic}%"
    state.canary = replace_canary(
        canary,
        step=canary.step + 1,
        traffic=following.traffic,
        step_started_at=state.now,
        paused_reason=None,
    )
    state.events.append(
        EventIntent("Normal", "StepAdvanced", f"{label(canary)}: {where} of traffic")
    )
    return state.outcome("Progressing", f"rolling out {label(canary)}: {where}")


def replace_canary(canary: CanaryStatus, **changes: object) -> CanaryStatus:
    return canary.model_copy(update=changes)
