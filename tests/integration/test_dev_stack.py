"""`modelops-dev up` starts the local stack; `modelops-dev down` leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local stack needs root")

ENV = {
    **os.environ,
    # Ranges and bridges of its own, so it can run beside the suite's other stacks.
    "MODELOPS_KSERVE_CIDR": "10.216.0.0/16",
    "MODELOPS_POD_CIDR": "10.217.0.0/16",
    "MODELOPS_BRIDGE_PREFIX": "modev",
}


def dev(action: str, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modelops_dev.cli", action, "--dir", str(directory)],
        capture_output=True, text=True, env=ENV, timeout=600, check=False,
    )  # fmt: skip


def listening_ports() -> str:
    return subprocess.run(["ss", "-ltn"], capture_output=True, text=True, check=True).stdout


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return stat[0] != "Z"


def test_dev_up_then_down_leaves_no_process_port_namespace_or_bridge(tmp_path: Path) -> None:
    up = dev("up", tmp_path)
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        assert f"export KUBECONFIG={tmp_path}" in up.stdout
        status = dev("status", tmp_path)
        assert status.returncode == 0, status.stdout
        for component in ("kube-apiserver", "kserve-manager", "kubelet", "router", "mlflow",
                          "pod-discovery", "prometheus"):  # fmt: skip
            assert component in status.stdout
        assert "# MLflow UI and tracking URI: http://10.217.0.1:" in up.stdout
        assert "# Prometheus UI: http://127.0.0.1:" in up.stdout
        state = json.loads((tmp_path / "stack.json").read_text())
        pids = list(state["processes"].values())
        pids += json.loads((tmp_path / "control-plane" / "state.json").read_text())["pids"].values()
        api_port = state["server"].rsplit(":", 1)[1]
        ports = [state[k].rsplit(":", 1)[1] for k in ("router", "mlflow", "prometheus")]
        assert f":{api_port} " in listening_ports()
        links = subprocess.run(
            ["ip", "-br", "link"], capture_output=True, text=True, check=True
        ).stdout
        assert "modevkserve0" in links and "modevkubelet0" in links
    finally:
        down = dev("down", tmp_path)
    assert down.returncode == 0, down.stderr
    assert [pid for pid in pids if alive(pid)] == []
    # Nor their children (mlflow server's uvicorn, MLServer processes of the kubelet's pods).
    assert [pid for pid in pids if group_alive(pid)] == []
    listening = listening_ports()
    assert [p for p in [api_port, *ports] if f":{p} " in listening] == []
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout
    assert "modev" not in links
    netns = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert not any(name in netns for name in _sandbox_names(tmp_path))


def group_alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _sandbox_names(directory: Path) -> list[str]:
    names = []
    for state in directory.rglob("network.json"):
        names += [s["namespace"] for s in json.loads(state.read_text())["sandboxes"]]
    return names
