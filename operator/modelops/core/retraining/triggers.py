"""The retraining loop (pure): which trigger fires, the Job it runs, and what its end means.

Level-based like the rollout: the firing is recorded in status (with the Job's name, derived
from the deployment and the trigger id) before the Job is created, and while the status says
Running the Job is created again if it is missing, so a restart between the two creates it
once. Cooldown counts from each firing; failed Jobs (and Jobs that register nothing) back off
exponentially, capped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from modelops.api.lifecycle import RetrainingSpec, RetrainingTrigger
from modelops.api.resource import ModelDeployment
from modelops.api.status import RetrainingRun, RetrainingStatus
from modelops.core.durations import parse_duration
from modelops.core.promql import TemplateError, render
from modelops.core.retraining.cron import CronError, next_after, parse
from modelops.core.retraining.job import JobState, job_name, retraining_job

TRIGGER_ID_TAG = "modelops.io/trigger-id"
DEFAULT_DRIFT_METRIC = "modelops_drift_psi"
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_CAP = timedelta(hours=1)
HISTORY = 10


MANUAL_TRIGGER = "manual"
"""The trigger name of a firing a person asked for (`modelops retrain`)."""
Event = tuple[Literal["Normal", "Warning"], str, str]
"""An Event to post: type, reason, message."""


@dataclass(frozen=True)
class Reading:
    """One evaluation of a metric or drift trigger's query: its value, or why there is none."""

    trigger: str
    value: float | None
    problem: str | None = None


@dataclass(frozen=True)
class RetrainingDecision:
    status: RetrainingStatus
    job: dict[str, Any] | None
    """The Job that must exist (created when missing), while one is Running."""
    events: list[Event] = field(default_factory=list)
    results: list[str] = field(default_factory=list)
    """Outcomes to count: started, succeeded, failed, no_candidate."""


def trigger_name(trigger: RetrainingTrigger, index: int) -> str:
    return trigger.name or f"trigger-{index}"


def evaluation_interval(deployment: ModelDeployment) -> timedelta:
    analysis = deployment.spec.analysis
    return parse_duration(analysis.interval if analysis else "30s")


def trigger_queries(
    deployment: ModelDeployment, values: Mapping[str, str]
) -> list[tuple[str, str | TemplateError]]:
    """(trigger name, PromQL) for the metric and drift triggers, templated like analysis."""
    spec = deployment.spec.retraining
    assert spec is not None
    queries: list[tuple[str, str | TemplateError]] = []
    for index, trigger in enumerate(spec.triggers):
        name = trigger_name(trigger, index)
        if trigger.metric is not None:
            field_name = f"spec.retraining.triggers[{index}].metric.query"
            queries.append((name, render(trigger.metric.query, values, field=field_name)))
        elif trigger.drift is not None:
            metric = trigger.drift.metric or DEFAULT_DRIFT_METRIC
            selector = 'namespace="{{ namespace }}", deployment="{{ deployment }}"'
            if trigger.drift.metric is None:
                # The monitor's: the stable version's drift (a canary's is the analysis's).
                selector += ', version="{{ version }}"'
            template = f"max({metric}{{{selector}}})"
            queries.append(
                (name, render(template, values, field=f"spec.retraining.triggers[{index}].drift"))
            )
    return queries


def readings_due(deployment: ModelDeployment, now: datetime, last: datetime | None) -> bool:
    """Whether the metric and drift triggers should be measured now (one round per interval;
    `last` is when they were last measured, kept by the operator in memory: a measurement that
    changes nothing writes nothing)."""
    spec = deployment.spec.retraining
    if spec is None or deployment.status.stable is None:
        return False
    if not any(t.metric or t.drift for t in spec.triggers):
        return False
    return last is None or now - last >= evaluation_interval(deployment)


def next_retraining_look(
    deployment: ModelDeployment, now: datetime, last: datetime | None
) -> datetime | None:
    """When the loop next needs a look although nothing changes: the metric and drift triggers'
    next measurement (`last`: when they were last measured), or the next time a schedule
    comes."""
    spec, status = deployment.spec.retraining, deployment.status.retraining
    if spec is None or deployment.status.stable is None:
        return None
    if status is None:
        return now  # a first look records what counts as already answered
    times = []
    if any(t.metric or t.drift for t in spec.triggers):
        times.append(now if last is None else last + evaluation_interval(deployment))
    checked = status.schedule_checked_at
    for trigger in spec.triggers:
        if trigger.schedule is None or checked is None:
            continue
        try:
            due = next_after(parse(trigger.schedule, trigger.time_zone), checked)
        except CronError:
            continue
        if due is not None:
            times.append(due)
    return min(times) if times else None


def _breached(trigger: RetrainingTrigger, value: float) -> str | None:
    bounds = trigger.metric or None
    if bounds is not None:
        if bounds.max is not None and value > bounds.max:
            return f"{value:.4g} > max {bounds.max:.4g}"
        if bounds.min is not None and value < bounds.min:
            return f"{value:.4g} < min {bounds.min:.4g}"
        return None
    assert trigger.drift is not None
    if value > trigger.drift.max_psi:
        return f"drift {value:.4g} > maxPsi {trigger.drift.max_psi:.4g}"
    return None


def backoff(failures: int) -> timedelta:
    """Wait after `failures` failed Jobs in a row: 1 min, 2, 4, ... capped at 1 h."""
    if failures <= 0:
        return timedelta(0)
    wait: timedelta = BACKOFF_BASE * (2 ** min(failures - 1, 20))
    return min(BACKOFF_CAP, wait)


def _gate(
    spec: RetrainingSpec, status: RetrainingStatus, now: datetime, canary: str | None = None
) -> str | None:
    """Why no trigger may fire now, or None."""
    if canary is not None:
        # A candidate is being judged (often the last Job's): another would race it, and the
        # stable's readings may change with the outcome.
        return f"version {canary} is rolling out; triggers wait for its promotion or rollback"
    if status.last_fired_at is not None:
        until = status.last_fired_at + parse_duration(spec.cooldown)
        if now < until:
            return f"cooling down until {until.isoformat()}"
    finished = status.current.finished_at if status.current else None
    if status.consecutive_failures and finished is not None:
        until = finished + backoff(status.consecutive_failures)
        if now < until:
            return f"backing off after {status.consecutive_failures} failed Jobs until {until.isoformat()}"
    return None


def _fire(
    deployment: ModelDeployment, status: RetrainingStatus, name: str, why: str, now: datetime
) -> RetrainingStatus:
    trigger_id = f"{name}-{now.strftime('%Y%m%d%H%M%S')}"
    run = RetrainingRun(
        trigger_id=trigger_id,
        job=job_name(deployment, trigger_id),
        reason=f"{name}: {why}",
        started_at=now,
    )
    return status.model_copy(
        update={"phase": "Running", "current": run, "last_fired_at": now, "breaches": {}}
    )


def plan(
    deployment: ModelDeployment,
    now: datetime,
    readings: Sequence[Reading] | None,
    job: JobState | None,
    candidate: str | None,
    rollback_at: datetime | None,
    degraded_since: datetime | None,
    tracking_uri: str | None = None,
    manual: str | None = None,
) -> RetrainingDecision:
    """One step of the loop. `job` is the observed state of the current Job; `candidate` the
    version it registered (looked up once the Job succeeded); `rollback_at` the latest automatic
    rollback; `degraded_since` when post-promotion monitoring marked the deployment Degraded;
    `manual` the reason of a `modelops retrain` request not yet acted on (it fires at once,
    cooldown and backoff aside, unless a Job runs: one at a time)."""
    spec = deployment.spec.retraining
    assert spec is not None
    status = deployment.status.retraining or RetrainingStatus()
    events: list[Event] = []
    results: list[str] = []
    if status.phase == "Running" and status.current is not None:
        status = _job_ended(status, job, candidate, now, events, results)
        if status.phase == "Running":
            assert status.current is not None
            if manual is not None:
                why = f"manual: {manual}; not retraining: Job {status.current.job} is running"
                events.append(("Warning", "RetrainingSuppressed", why))
            job_spec = retraining_job(deployment, status.current, tracking_uri)
            return RetrainingDecision(status, job_spec, events, results)
    if manual is not None:
        status = _fire(deployment, status, MANUAL_TRIGGER, manual, now)
        return _started(deployment, status, events, results, tracking_uri)

    if deployment.status.retraining is None:
        status = _first_look(status, rollback_at, degraded_since, now)
    fired = _evaluate(spec, status, now, readings, rollback_at, degraded_since)
    canary = deployment.status.canary
    rolling = canary.version if canary is not None and not canary.aborting else None
    gate = _gate(spec, status, now, rolling)
    status = fired.status
    if fired.why is None or fired.name is None:
        return RetrainingDecision(status, None, events, results)
    if gate is not None:
        why = f"{fired.name}: {fired.why}; not retraining: {gate}"
        events.append(("Normal", "RetrainingSuppressed", why))
        return RetrainingDecision(status, None, events, results)
    status = _fire(deployment, status, fired.name, fired.why, now)
    return _started(deployment, status, events, results, tracking_uri)


def _started(
    deployment: ModelDeployment,
    status: RetrainingStatus,
    events: list[Event],
    results: list[str],
    tracking_uri: str | None,
) -> RetrainingDecision:
    """A firing just recorded: say so, count it, and ask for its Job."""
    run = status.current
    assert run is not None
    events.append(("Normal", "RetrainingStarted", f"{run.reason}; started Job {run.job}"))
    results.append("started")
    return RetrainingDecision(
        status, retraining_job(deployment, run, tracking_uri), events, results
    )


def _job_ended(
    status: RetrainingStatus,
    job: JobState | None,
    candidate: str | None,
    now: datetime,
    events: list[Event],
    results: list[str],
) -> RetrainingStatus:
    """The status after the running Job's outcome: Succeeded with its candidate, Failed (or
    NoCandidate) with the backoff that follows, or still Running."""
    run = status.current
    assert run is not None
    if job == "Succeeded" and candidate is not None:
        run = run.model_copy(
            update={"result": "Succeeded", "finished_at": now, "candidate_version": candidate}
        )
        status = status.model_copy(
            update={"phase": "Succeeded", "consecutive_failures": 0, "candidate_version": candidate}
        )
        events.append(("Normal", "RetrainingSucceeded",
                       f"Job {run.job} registered version {candidate}; it is rolled out as the next canary"))  # fmt: skip
        results.append("succeeded")
    elif job in ("Failed", "Succeeded", "Deleted"):
        failed = job != "Succeeded"
        result: Literal["Failed", "NoCandidate"] = "Failed" if failed else "NoCandidate"
        run = run.model_copy(update={"result": result, "finished_at": now})
        status = status.model_copy(
            update={"phase": "Failed", "consecutive_failures": status.consecutive_failures + 1}
        )
        next_at = (now + backoff(status.consecutive_failures)).isoformat()
        what, reason, counted = {
            "Failed": (f"Job {run.job} failed", "RetrainingFailed", "failed"),
            "Deleted": (f"Job {run.job} was deleted before it finished (not by modelops); "
                        "recorded as failed, not created again", "RetrainingJobDeleted", "deleted"),
            "Succeeded": (f"Job {run.job} succeeded without registering a version for this trigger",
                          "NoCandidate", "no_candidate"),
        }[job]  # fmt: skip
        message = f"{what}; next firing not before {next_at} (backoff) and the cooldown"
        events.append(("Warning", reason, message))
        results.append(counted)
    else:
        return status
    history = [*status.history, run][-HISTORY:]
    return status.model_copy(update={"current": run, "history": history})


def _first_look(
    status: RetrainingStatus,
    rollback_at: datetime | None,
    degraded_since: datetime | None,
    now: datetime,
) -> RetrainingStatus:
    """Retraining just configured: what happened before (a rollback, a Degraded period, past
    schedule times) is taken as answered."""
    return status.model_copy(
        update={
            "schedule_checked_at": now,
            "handled_rollback_at": rollback_at,
            "handled_degraded_since": degraded_since,
        }
    )


@dataclass(frozen=True)
class _Fired:
    status: RetrainingStatus
    name: str | None = None
    why: str | None = None


@dataclass
class _Evaluation:
    """What one look at the triggers changes in the status."""

    status: RetrainingStatus
    now: datetime
    readings: dict[str, Reading]
    rollback_at: datetime | None
    degraded_since: datetime | None
    breaches: dict[str, datetime]
    update: dict[str, Any] = field(default_factory=dict)

    def reason(self, name: str, trigger: RetrainingTrigger) -> str | None:
        """Why `trigger` fires now, or None."""
        if trigger.metric is not None or trigger.drift is not None:
            return self._breach(name, trigger)
        if trigger.schedule is not None:
            return self._schedule(trigger)
        if trigger.on_rollback and self.rollback_at is not None:
            handled = self.status.handled_rollback_at
            if handled is None or self.rollback_at > handled:
                self.update["handled_rollback_at"] = self.rollback_at
                return f"automatic rollback at {self.rollback_at.isoformat()}"
        degraded = self.degraded_since
        if trigger.on_degraded and degraded and degraded != self.status.handled_degraded_since:
            self.update["handled_degraded_since"] = degraded
            return f"Degraded after promotion since {degraded.isoformat()}"
        return None

    def _breach(self, name: str, trigger: RetrainingTrigger) -> str | None:
        reading = self.readings.get(name)
        if reading is None or reading.value is None:
            return None  # not measured this round: a breach keeps its start
        breach = _breached(trigger, reading.value)
        if breach is None:
            self.breaches.pop(name, None)
            return None
        since = self.breaches.setdefault(name, self.now)
        hold = parse_duration(trigger.for_) if trigger.for_ else timedelta(0)
        if self.now - since < hold:
            return None
        held = int((self.now - since).total_seconds())
        return f"{breach} for {held}s (for: {trigger.for_ or '0s'})"

    def _schedule(self, trigger: RetrainingTrigger) -> str | None:
        assert trigger.schedule is not None
        checked = self.status.schedule_checked_at or self.now
        self.update["schedule_checked_at"] = self.now
        try:
            due = next_after(parse(trigger.schedule, trigger.time_zone), checked)
        except CronError:
            return None  # the SpecSupported condition names the problem
        if due is None or due > self.now:
            return None
        return (
            f"schedule {trigger.schedule!r} ({trigger.time_zone or 'UTC'}) due at {due.isoformat()}"
        )


def _evaluate(
    spec: RetrainingSpec,
    status: RetrainingStatus,
    now: datetime,
    readings: Sequence[Reading] | None,
    rollback_at: datetime | None,
    degraded_since: datetime | None,
) -> _Fired:
    """The first trigger that fires (in spec order), with the status its evaluation leaves."""
    evaluation = _Evaluation(
        status, now, {r.trigger: r for r in readings or ()}, rollback_at, degraded_since,
        dict(status.breaches),
    )  # fmt: skip
    chosen: tuple[str, str] | None = None
    for index, trigger in enumerate(spec.triggers):
        name = trigger_name(trigger, index)
        why = evaluation.reason(name, trigger)
        if why is not None and chosen is None:
            chosen = (name, why)
    evaluation.update["breaches"] = evaluation.breaches
    new_status = status.model_copy(update=evaluation.update)
    return _Fired(new_status, *chosen) if chosen else _Fired(new_status)
