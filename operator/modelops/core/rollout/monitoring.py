"""Monitoring after promotion (pure): the stable version keeps being judged by the analysis;
a failure inside rollbackWindow rolls it back to the previous version, after the window (or
with no previous version) the deployment is Degraded without changing what is served."""

from __future__ import annotations

from collections.abc import Sequence

from modelops.api.resource import ModelDeployment
from modelops.api.status import Measurement
from modelops.core.analysis import assess, tally
from modelops.core.conditions import DEGRADED, condition
from modelops.core.durations import parse_duration
from modelops.core.rollout.rollback import roll_back_stable
from modelops.core.rollout.state import Observation, Outcome, RolloutState, label


def monitor_stable(
    deployment: ModelDeployment,
    state: RolloutState,
    observation: Observation,
    measurements: Sequence[Measurement] | None,
) -> Outcome:
    stable = state.stable
    assert stable is not None
    spec = deployment.spec
    previous = deployment.status
    if not observation.known and previous.phase in ("Healthy", "RolledBack", "Degraded"):
        # KServe has not seen what is being applied (a restore of a hand edit, a drained entry
        # removed): what is served has not changed, so neither does what the status says.
        degraded = condition(previous.conditions, DEGRADED)
        return state.outcome(
            previous.phase,
            previous.message or f"{label(stable)} serves",
            degraded=degraded.message
            if degraded is not None and degraded.status == "True"
            else None,
        )
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
