"""The demo's live view renders stages, versions, verdicts and Jobs from a snapshot."""

from __future__ import annotations

import time

from rich.console import Console

from modelops_dev.demo import stage_table, state_table, summary
from modelops_dev.scenario import Snapshot, Stage


def render(renderable: object) -> str:
    console = Console(width=200, record=True)
    console.print(renderable)
    return console.export_text()


def test_the_live_view_shows_where_the_lifecycle_is() -> None:
    now = time.monotonic()
    stages = [
        Stage("v1 serves", 60, started=now - 5, seconds=4.2),
        Stage("v2 rolled back", 60, started=now - 1),
        Stage("v3", 60),
    ]
    status = {
        "phase": "Progressing", "message": "rolling out version 2", "traffic": "1: 70%, 2: 30%",
        "canary": {"version": "2", "step": 0, "traffic": 30},
        "analysis": {"metrics": [{"name": "error-rate", "verdict": "Fail", "message": "error-rate = 0.27 > max 0.05"}]},
        "rejectedVersions": [{"version": "2", "reason": "2 failed measurements"}],
    }  # fmt: skip
    jobs = [{"metadata": {"name": "wine-retrain-1a2b3c4d"}, "status": {"succeeded": 1}}]
    text = render(stage_table(stages)) + render(
        state_table(Snapshot(stages, status, jobs, {"ok": 120, "failed": 9}))
    )
    assert "done v1 serves" in text and "4.2s" in text and "... v2 rolled back" in text
    assert "waiting v3" in text
    assert "version 2 step 1 at 30%" in text and "Fail: error-rate = 0.27 > max 0.05" in text
    assert "wine-retrain-1a2b3c4d: succeeded" in text and "120 answered, 9 failed" in text
    assert "missed" in render(summary(stages, now - 10))
