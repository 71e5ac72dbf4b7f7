"""`modelops pause|resume|promote|rollback|retry|status` through a kubeconfig against the real
API server, acted on by the running operator, with real model servers behind each version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

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
