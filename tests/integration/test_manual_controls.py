"""`modelops pause|resume|promote|rollback|retry|retrain|status [--watch]` (also as `kubectl
modelops`) through a kubeconfig against the real API server, acted on by the running operator,
with real model servers behind each version and a real retraining Job."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from modelops_dev.binaries import ensure_binaries
from modelops_dev.control_plane import ControlPlane
from modelops_dev.kserve import KServeController
from modelops_dev.servers import MlflowServer
from tests.integration.conftest import Operator, wait_for
from tests.integration.helpers import train

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cluster needs root")

MD = ("modelops.io", "v1alpha1")


def modelops(plane: ControlPlane, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "modelops.cli", *args],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "KUBECONFIG": str(plane.kubeconfig)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_person_pauses_resumes_promotes_rolls_back_and_retries_from_the_cli(
    kserve: KServeController,
    kubelet: Path,
    router: str,
    mlflow_server: MlflowServer,
    operator: Operator,
    control_plane: ControlPlane,
    custom: client.CustomObjectsApi,
    namespace: str,
    tmp_path: Path,
) -> None:
    first = train(mlflow_server, "manual", "logistic", tmp_path)
    second = train(mlflow_server, "manual", "logistic", tmp_path)

    def serving(version: dict[str, str]) -> dict[str, Any]:
        return {"modelFormat": {"name": "mlflow"}, "storageUri": f"file://{version['archive']}"}

    body = {
        "apiVersion": "modelops.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "manual"},
        "spec": {"model": {"name": "manual", "version": first["version"]}, "serving": serving(first),
                 "rollout": {"strategy": "Canary", "promotion": "Manual",
                             "steps": [{"traffic": 50, "duration": "2s"}]}},
    }  # fmt: skip
    custom.create_namespaced_custom_object(*MD, namespace, "modeldeployments", body)
    cli = ("-n", namespace)

    def status() -> dict[str, Any]:
        found = custom.get_namespaced_custom_object(*MD, namespace, "modeldeployments", "manual")
        result: dict[str, Any] = found.get("status") or {}
        return result

    def stable_is(version: str) -> Any:
        def check() -> Any:
            found = status()
            return (found.get("stable") or {}).get("version") == version and not found.get("canary")

        return check

    wait_for(stable_is(first["version"]), timeout=240, interval=1, what="the first version")
    custom.patch_namespaced_custom_object(*MD, namespace, "modeldeployments", "manual", {
        "spec": {"model": {"version": second["version"]}, "serving": serving(second)}})  # fmt: skip

    def canary_waiting(why: str) -> Any:
        def check() -> Any:
            return why in ((status().get("canary") or {}).get("pausedReason") or "")

        return check

    modelops(control_plane, "pause", "manual", *cli)
    wait_for(canary_waiting("paused by a person"), timeout=240, interval=1, what="a paused step")
    assert "paused by a person" in modelops(control_plane, "status", "manual", *cli)
    modelops(control_plane, "resume", "manual", *cli)
    wait_for(canary_waiting("waiting for a person to promote"), timeout=60, interval=0.5,
             what="Manual promotion to wait")  # fmt: skip
    modelops(control_plane, "promote", "manual", *cli)
    wait_for(stable_is(second["version"]), timeout=120, interval=0.5, what="the promotion")

    # Rolling back a promoted version returns to the previous one and rejects it.
    modelops(control_plane, "rollback", "manual", *cli)
    wait_for(stable_is(first["version"]), timeout=120, interval=0.5, what="the rollback")
    found = status()
    assert found["phase"] == "RolledBack"
    assert [r["version"] for r in found["rejectedVersions"]] == [second["version"]]
    assert "rejected: version" in modelops(control_plane, "status", "manual", *cli)

    # A retry lets the rejected version roll out again.
    modelops(control_plane, "retry", "manual", *cli)
    wait_for(canary_waiting("waiting for a person to promote"), timeout=240, interval=0.5,
             what="the retried rollout")  # fmt: skip
    assert not status().get("rejectedVersions")
    spec = custom.get_namespaced_custom_object(*MD, namespace, "modeldeployments", "manual")["spec"]
    assert spec["model"]["version"] == second["version"]  # only annotations were written


def test_a_person_starts_retraining_and_watches_it_through_kubectl(
    kserve: KServeController,
    kubelet: Path,
    router: str,
    mlflow_server: MlflowServer,
    operator: Operator,
    control_plane: ControlPlane,
    custom: client.CustomObjectsApi,
    namespace: str,
    tmp_path: Path,
) -> None:
    trained = train(mlflow_server, "asked", "logistic", tmp_path)
    container = {
        "name": "train",
        "image": "python:3.11",
        "command": ["python", "-c", "print('trained')"],
    }
    body = {
        "apiVersion": "modelops.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "asked"},
        "spec": {"model": {"name": "asked", "version": trained["version"]},
                 "serving": {"modelFormat": {"name": "mlflow"}, "storageUri": f"file://{trained['archive']}"},
                 "retraining": {"triggers": [{"name": "nightly", "schedule": "0 3 * * *"}],
                                "jobTemplate": {"spec": {"backoffLimit": 0,
                                                         "template": {"spec": {"containers": [container]}}}}}},
    }  # fmt: skip
    custom.create_namespaced_custom_object(*MD, namespace, "modeldeployments", body)

    def status() -> dict[str, Any]:
        found = custom.get_namespaced_custom_object(*MD, namespace, "modeldeployments", "asked")
        result: dict[str, Any] = found.get("status") or {}
        return result

    wait_for(lambda: status().get("phase") == "Healthy", timeout=240, interval=1, what="serving")
    # The same commands as a kubectl plugin (kubectl finds kubectl-modelops on its PATH).
    kubectl = str(ensure_binaries().kubectl)
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}  # fmt: skip
    plugin = subprocess.run([kubectl, "modelops", "retrain", "asked", "-n", namespace, "--reason",
                             "labels fixed upstream"], capture_output=True, text=True, env=env,
                            timeout=60, check=False)  # fmt: skip
    assert plugin.returncode == 0 and "retrain requested" in plugin.stdout, plugin.stderr

    def finished() -> Any:
        current = (status().get("retraining") or {}).get("current") or {}
        return current if current.get("result") in ("Succeeded", "NoCandidate", "Failed") else None

    run = wait_for(finished, timeout=180, interval=1, what="the manual retraining Job")
    assert (
        run["triggerId"].startswith("manual-") and run["reason"] == "manual: labels fixed upstream"
    )
    assert run["result"] == "NoCandidate"  # the Job registered nothing: said, not retried
    described = subprocess.run([kubectl, "modelops", "status", "asked", "-n", namespace],
                               capture_output=True, text=True, env=env, timeout=60, check=False)  # fmt: skip
    assert described.returncode == 0 and f"{namespace}/asked: " in described.stdout

    # The live view in a terminal, until Ctrl-C.
    leader, follower = pty.openpty()
    watcher = subprocess.Popen([sys.executable, "-m", "modelops.cli", "status", "asked", "-n", namespace,
                                "--watch"], stdin=follower, stdout=follower, stderr=follower, env=env)  # fmt: skip
    os.close(follower)
    seen = b""

    def drawn() -> bool:
        nonlocal seen
        if select.select([leader], [], [], 0.5)[0]:
            seen += os.read(leader, 65536)
        return b"retraining Job" in seen and b"phase" in seen

    wait_for(drawn, timeout=30, interval=0.1, what="the live view")
    watcher.send_signal(signal.SIGINT)
    assert watcher.wait(timeout=10) == 0
    os.close(leader)
    assert b"traffic split" in seen and b"NoCandidate" in seen
