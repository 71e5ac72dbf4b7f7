"""When a new version may take traffic, when it has waited too long, and how long one that
lost its traffic keeps running (pure).

A canary gets traffic (its route weight, its step clock, its analysis) only once it has been
ready without a break for SUSTAINED_READY: KServe reports it ready and its Service has a ready
endpoint. A model server that crash-loops is reported ready for moments; a sustained interval
keeps such moments from counting. A canary that is not ready within the progress deadline (from
its start, or from its last loss of readiness) is rolled back; the reason says what the pods
report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from modelops.api.delivery import RolloutSpec
from modelops.api.status import CanaryStatus, RetiringVersion
from modelops.core.durations import parse_duration
from modelops.core.rollout.state import Observation

SUSTAINED_READY = timedelta(seconds=10)
DEFAULT_PROGRESS_DEADLINE = "10m"
# How long a predictor that lost its traffic keeps running before it is removed: time for the
# route or Ingress change to reach every gateway (requests already routed still find it).
# KServe re-points its own Ingress only after it has updated the predictors, which takes
# seconds under load: 5 s was seen to be too short (404s on its host while the other
# stack of a two-worker test run was busy).
DRAIN = timedelta(seconds=15)


def drained(retiring: RetiringVersion, observation: Observation, now: datetime) -> bool:
    """A retiring predictor goes once its traffic has been off it for DRAIN, counted from a
    route this operator knows it applied."""
    return observation.route_settled and now - retiring.since >= DRAIN


def progress_deadline(rollout: RolloutSpec | None) -> timedelta:
    return parse_duration(rollout.progress_deadline if rollout else DEFAULT_PROGRESS_DEADLINE)


@dataclass(frozen=True)
class Gate:
    """Where a canary stands: Serving (it has traffic), Settling (ready, not for long enough),
    Waiting (not ready), Exceeded (not ready within the progress deadline) or Unknown (KServe
    has not seen the InferenceService built from the status yet: no clock moves)."""

    kind: Literal["Serving", "Settling", "Waiting", "Exceeded", "Unknown"]
    canary: CanaryStatus
    message: str = ""


def gate_canary(
    canary: CanaryStatus, observation: Observation, deadline: timedelta, now: datetime
) -> Gate:
    """The canary's readiness after this observation, with its clocks updated. While KServe has
    not seen the InferenceService built from the status, readiness is unknown: nothing moves."""
    ready, detail, diagnosis = observation.canary_ready, observation.detail, observation.diagnosis
    if not observation.known:
        return Gate("Unknown", canary, detail)
    if ready:
        since = canary.ready_since or now
        if canary.step_started_at is not None:
            return Gate("Serving", canary.model_copy(update={"ready_since": since}))
        if now - since >= SUSTAINED_READY:
            started = canary.model_copy(
                update={"ready_since": since, "step_started_at": now, "waiting_since": None}
            )
            return Gate("Serving", started)
        # Messages name fixed times, not countdowns: the status changes only when readiness does.
        settling = canary.model_copy(update={"ready_since": since})
        return Gate(
            "Settling",
            settling,
            f"ready since {_clock(since)}; traffic starts after "
            f"{int(SUSTAINED_READY.total_seconds())}s of readiness without a break",
        )
    lost = canary.step_started_at is not None
    waiting_since = now if lost else (canary.waiting_since or canary.started_at or now)
    waiting = canary.model_copy(
        update={"ready_since": None, "step_started_at": None, "waiting_since": waiting_since}
    )
    why = detail or "waiting for the canary predictor to be ready"
    if lost:
        return Gate("Waiting", waiting, f"lost readiness, traffic moved off it: {why}")
    if now - waiting_since > deadline:
        return Gate("Exceeded", waiting, deadline_message(deadline, why, diagnosis))
    return Gate(
        "Waiting",
        waiting,
        f"{why} (rolled back at {_clock(waiting_since + deadline)} unless ready: "
        f"progressDeadline {_duration(deadline)})",
    )


def deadline_message(deadline: timedelta, detail: str, diagnosis: str) -> str:
    text = f"not ready within progressDeadline {_duration(deadline)}: {detail}"
    return f"{text}; {diagnosis}" if diagnosis else text


def deadline_passed(since: datetime | None, deadline: timedelta, now: datetime) -> bool:
    return since is not None and now - since > deadline


def _clock(moment: datetime) -> str:
    return moment.strftime("%H:%M:%SZ")


def _duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    minutes, seconds = divmod(seconds, 60)
    return (
        f"{minutes}m{seconds}s"
        if minutes and seconds
        else f"{minutes}m"
        if minutes
        else f"{seconds}s"
    )


def _container(status: Mapping[str, Any]) -> str | None:
    """What one container status says is wrong, or None when it runs ready."""
    name = status.get("name", "?")
    restarts = int(status.get("restartCount") or 0)
    state = status.get("state") or {}
    last = (status.get("lastState") or {}).get("terminated") or {}
    parts: list[str] = []
    if "waiting" in state:
        waiting = state["waiting"] or {}
        parts.append(str(waiting.get("reason") or "Waiting"))
    elif "terminated" in state:
        terminated = state["terminated"] or {}
        if terminated.get("exitCode") == 0:
            return None  # an init container that finished
        parts.append(
            f"terminated with exit code {terminated.get('exitCode')} "
            f"({terminated.get('reason') or 'Error'})"
        )
    elif status.get("ready"):
        return None
    else:
        parts.append("running, not ready")
    if last:
        parts.append(f"last exit code {last.get('exitCode')} ({last.get('reason') or 'Error'})")
    if restarts:
        parts.append(f"{restarts} restart{'s' if restarts != 1 else ''}")
    message = ((state.get("waiting") or {}).get("message") or "").strip()
    text = f"{name} " + ", ".join(parts)
    return f"{text}: {message[:160]}" if message else text


def pod_diagnosis(pods: Sequence[Mapping[str, Any]], limit: int = 3) -> str:
    """What the pods of a version report, in a few words: waiting reasons (CrashLoopBackOff,
    ImagePullBackOff...), last exit codes and restarts, for the reason of a rollback."""
    findings: list[str] = []
    for pod in sorted(pods, key=lambda p: str(p.get("metadata", {}).get("name", "")))[:limit]:
        status = pod.get("status") or {}
        problems = [
            problem
            for item in [
                *(status.get("initContainerStatuses") or []),
                *(status.get("containerStatuses") or []),
            ]
            if (problem := _container(item)) is not None
        ]
        if not problems and status.get("phase") == "Pending":
            reason = status.get("message") or status.get("reason") or "not started"
            problems = [str(reason)[:160]]
        if problems:
            findings.append(f"pod {pod['metadata']['name']}: " + "; ".join(problems))
    if not pods:
        return "no pods of the version exist"
    return " | ".join(findings)
