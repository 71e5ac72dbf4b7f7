"""The live view of one ModelDeployment (`modelops status --watch`, and the demo's): phase,
traffic split, the canary's step, verdicts with their values, rejected versions, retraining.
It needs `rich` (pip install modelops[cli])."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text


def job_phase(job: Mapping[str, Any]) -> str:
    state = job.get("status") or {}
    return "succeeded" if state.get("succeeded") else "failed" if state.get("failed") else "running"


def status_table(status: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]] = ()) -> Table:
    table = Table(show_header=False, expand=True)
    table.add_column("what", style="bold")
    table.add_column("now", overflow="fold")
    table.add_row("phase", f"{status.get('phase', '-')}: {status.get('message', '')}")
    table.add_row("traffic split", str(status.get("traffic", "-")))
    canary = status.get("canary") or {}
    if canary:
        table.add_row(
            "canary",
            f"version {canary.get('version')} step {canary.get('step', 0) + 1} at "
            f"{canary.get('traffic')}%"
            + (f" (paused: {canary['pausedReason']})" if canary.get("pausedReason") else ""),
        )
    for metric in (status.get("analysis") or {}).get("metrics", []):
        colour = {"Pass": "green", "Fail": "red"}.get(metric["verdict"], "yellow")
        table.add_row(
            f"  {metric['name']}",
            Text(f"{metric['verdict']}: {metric.get('message', '')}", style=colour),
        )
    for rejected in status.get("rejectedVersions", []):
        table.add_row("rejected", f"version {rejected.get('version')}: {rejected.get('reason')}")
    retraining = status.get("retraining") or {}
    current = retraining.get("current") or {}
    if current:
        result = current.get("result", "")
        table.add_row("retraining", f"{result}: {current.get('reason', '')}")
    for job in jobs:
        table.add_row("retraining Job", f"{job['metadata']['name']}: {job_phase(job)}")
    return table
