"""The Argo CD health check (manifests/argocd/health.lua) run by a real Lua 5.1 interpreter
(Argo CD's gopher-lua implements Lua 5.1) over sample ModelDeployments."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

HEALTH = Path(__file__).parents[2] / "manifests" / "argocd" / "health.lua"


def lua(value: Any) -> str:
    """A Python value as a Lua table constructor."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{lua(k)}] = {lua(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "{" + ", ".join(lua(v) for v in value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def health(obj: dict[str, Any]) -> tuple[str, str]:
    interpreter = shutil.which("lua5.1")
    assert interpreter, "lua5.1 is not installed (make packages installs it)"
    script = f'obj = {lua(obj)}\nlocal hs = dofile("{HEALTH}")\nio.write(hs.status, "\\t", hs.message or "")'
    result = subprocess.run(
        [interpreter, "-"], input=script, capture_output=True, text=True, check=True
    )
    status, _, message = result.stdout.partition("\t")
    return status, message


def md(generation: int = 2, **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": "iris", "generation": generation}, "status": status}


@pytest.mark.parametrize(
    ("obj", "expected", "says"),
    [
        ({"metadata": {"name": "iris", "generation": 1}}, "Progressing", "Waiting for modelops"),
        (md(observedGeneration=1, phase="Healthy"), "Progressing", "observe generation 2"),
        (md(observedGeneration=2, phase="Healthy", message="version 7 serves 100%"), "Healthy", "version 7"),
        (md(observedGeneration=2, phase="Progressing", canary={"version": "8", "step": 0}), "Progressing", ""),
        (md(observedGeneration=2, phase="Retraining", message="retraining: Job x"), "Progressing", "Job x"),
        (md(observedGeneration=2, phase="Progressing",
            canary={"version": "8", "pausedReason": "paused by a person"}), "Suspended", "version 8 paused"),
        (md(observedGeneration=2, phase="RolledBack", message="version 8 rolled back: error-rate"), "Degraded", "error-rate"),
        (md(observedGeneration=2, phase="Degraded"), "Degraded", ""),
        (md(observedGeneration=2, phase="Failed", message="alias 'nobody' not found"), "Degraded", "nobody"),
        (md(observedGeneration=2, phase="Something"), "Unknown", ""),
    ],
)  # fmt: skip
def test_the_health_check_maps_status_to_argo_cd_health(
    obj: dict[str, Any], expected: str, says: str
) -> None:
    status, message = health(obj)
    assert status == expected and says in message
