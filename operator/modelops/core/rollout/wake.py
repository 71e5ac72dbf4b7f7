"""When a deployment needs a look although nothing changed (pure)."""

from __future__ import annotations

from datetime import datetime

from modelops.api.resource import ModelDeployment
from modelops.core.analysis import due
from modelops.core.durations import parse_duration
from modelops.core.rollout.readiness import DRAIN, deadline_passed, progress_deadline
from modelops.core.rollout.state import steps_of


def wake_due(deployment: ModelDeployment, now: datetime) -> bool:
    """Whether the deployment needs a reconcile although nothing changed: a retiring predictor
    has drained, a canary waits for its traffic (readiness is re-checked each tick: its
    endpoints, the sustained interval, the deadline), a first version passes its deadline, an
    analysis round is due, or (without analysis) the current step has run its duration."""
    spec, status = deployment.spec, deployment.status
    if any(now - retiring.since >= DRAIN for retiring in status.retiring):
        return True
    deploying = status.deploying
    if status.stable is None and deploying is not None and not deploying.deadline_exceeded:
        return deadline_passed(deploying.since, progress_deadline(spec.rollout), now)
    canary = status.canary
    if canary is not None and canary.aborting:
        return False
    if canary is not None and canary.step_started_at is None:
        return True
    if spec.analysis is not None and status.stable is not None:
        if canary is not None or spec.monitoring is not None:
            return due(status.analysis, spec.analysis, now)
        return False
    if canary is not None and canary.step_started_at is not None and canary.step is not None:
        steps = steps_of(spec.rollout)
        step = steps[min(canary.step, len(steps) - 1)]
        return now >= canary.step_started_at + parse_duration(step.duration)
    return False
