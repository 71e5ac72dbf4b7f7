"""Versions that never become ready, on the local cluster: a registered artifact that cannot be
loaded (a garbage pickle) and a model whose loading code raises. Ready means the model loaded
(the operator's probe on MLServer's model readiness), so neither ever takes a request; each is
rolled back at spec.rollout.progressDeadline with what its pods report, tagged rejected in the
registry, while clients keep getting 200 from the stable version. A first version that never
becomes ready leaves the deployment Failed, saying the same."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from mlflow import MlflowClient

from modelops_dev.servers import MlflowServer, Prometheus
from tests.integration.conftest import Operator, wait_for
from tests.integration.helpers import (
    ERRORS,
    MD,
    Traffic,
    condition,
    create,
    serve_first_version,
    status,
    train,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cluster needs root")

DEADLINE = "40s"
# What a pod of a version that never loads reports, by the time its deadline passes.
POD_REASONS = ("CrashLoopBackOff", "restart", "running, not ready", "exit code")


@pytest.mark.timeout(900)
def test_versions_that_never_load_are_rolled_back_at_their_progress_deadline(
    serving_cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    namespace: str,
    tmp_path: Path,
) -> None:
    registry = MlflowClient(mlflow_server.url)
    # A first version that never loads: Failed at its deadline (it runs beside the rest).
    never = train(mlflow_server, "never", "load-raises", tmp_path)
    registry.set_registered_model_alias("never", "champion", never["version"])
    create(custom, namespace, "never", mlflow_server.url, prometheus.url, [ERRORS],
           changes={"spec__rollout__progressDeadline": DEADLINE})  # fmt: skip

    name = "unloadable"
    first = serve_first_version(custom, mlflow_server, prometheus, namespace, name, tmp_path,
                                [ERRORS], {"spec__rollout__progressDeadline": DEADLINE})  # fmt: skip

    with Traffic(serving_cluster, f"{name}.{namespace}.test", name) as traffic:
        for kind in ("corrupt", "load-raises"):
            bad = train(mlflow_server, name, kind, tmp_path)
            registry.set_registered_model_alias(name, "champion", bad["version"])

            def rejected(version: str = bad["version"]) -> Any:
                found = status(custom, namespace, name)
                entries = [r for r in found.get("rejectedVersions", []) if r["version"] == version]
                return entries[0] if entries and not found.get("canary") else None

            rejection = wait_for(rejected, timeout=240, interval=1, what=f"the {kind} rollback")
            reason = rejection["reason"]
            assert reason.startswith(f"not ready within progressDeadline {DEADLINE}: "), reason
            assert f"pod {name}-v{bad['version']}-predictor-" in reason, reason
            assert any(word in reason for word in POD_REASONS), reason
            wait_for(lambda v=bad["version"]: registry.get_model_version(name, v).tags.get(  # type: ignore[misc]
                         "modelops.io/status") == "rejected", timeout=30, what="the rejected tag")  # fmt: skip
    found = status(custom, namespace, name)
    assert found["stable"]["version"] == first["version"] and found["phase"] == "RolledBack"
    assert [h["event"] for h in found["history"]].count("RolledBack") == 2
    # Neither version ever had traffic: every client answer came from the stable.
    assert set(traffic.codes) == {200}, str(traffic)
    body = custom.get_namespaced_custom_object(*MD, namespace, "modeldeployments", name)
    assert body["metadata"]["generation"] == 1  # the spec is never written

    def failed() -> Any:
        found = status(custom, namespace, "never")
        return found if found.get("phase") == "Failed" else None

    found = wait_for(failed, timeout=120, interval=1, what="the first version's failure")
    ready = condition(found, "Ready")
    assert ready["reason"] == "ProgressDeadlineExceeded", ready
    assert (
        f"version {never['version']} not ready within progressDeadline {DEADLINE}"
        in (ready["message"])
    )
    assert any(word in ready["message"] for word in POD_REASONS), ready["message"]
    assert "stable" not in found
