"""When a deployment next needs a look although nothing changes (pure): the controller sets one
timer per deployment for the earliest of these instead of scanning every deployment."""

from __future__ import annotations

from datetime import datetime, timedelta

from modelops.api.delivery import AnalysisSpec
from modelops.api.resource import ModelDeployment
from modelops.api.status import AnalysisStatus
from modelops.core.durations import parse_duration
from modelops.core.rollout.readiness import DRAIN, progress_deadline
from modelops.core.rollout.state import steps_of

# A canary waiting for its traffic is looked at this often: KServe's readiness, its Service's
# endpoints (which no watch reports), the sustained interval and the deadline.
RECHECK = timedelta(seconds=1)
# Deadlines are passed strictly (now - since > deadline): look just after them.
JUST_AFTER = timedelta(seconds=1)


def analysis_due_at(analysis: AnalysisStatus | None, spec: AnalysisSpec, now: datetime) -> datetime:
    """When the next measurement round is due (one per interval, whatever the reconciles)."""
    if analysis is None or analysis.last_run_at is None:
        return now
    return analysis.last_run_at + parse_duration(spec.interval)


def next_rollout_look(deployment: ModelDeployment, now: datetime) -> datetime | None:
    """When the rollout next needs a look: a retiring predictor has drained, a canary waiting
    for its traffic is re-checked, a first version passes its deadline, an analysis round is
    due (canary, or stable under monitoring), or (without analysis) a step has run its time."""
    spec, status = deployment.spec, deployment.status
    times = [retiring.since + DRAIN for retiring in status.retiring]
    deploying = status.deploying
    if status.stable is None and deploying is not None and not deploying.deadline_exceeded:
        times.append(deploying.since + progress_deadline(spec.rollout) + JUST_AFTER)
    canary = status.canary
    if canary is not None and not canary.aborting:
        if canary.step_started_at is None:
            times.append(now + RECHECK)
        elif spec.analysis is not None:
            times.append(analysis_due_at(status.analysis, spec.analysis, now))
        elif canary.step is not None:
            steps = steps_of(spec.rollout)
            step = steps[min(canary.step, len(steps) - 1)]
            times.append(canary.step_started_at + parse_duration(step.duration))
    elif canary is None and status.stable is not None and spec.monitoring and spec.analysis:
        times.append(analysis_due_at(status.analysis, spec.analysis, now))  # monitoring
    return min(times) if times else None
