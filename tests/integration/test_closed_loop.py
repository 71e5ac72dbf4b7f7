"""The demo's scenario, headless, as an end-to-end test (`pytest -m closed_loop` runs it
alone): train -> serve -> bad version -> automatic rollback -> retraining Job -> validated
version -> canary -> promotion, on the real control plane, KServe, MLflow, MLServer pods,
Prometheus and Job controller, with steady traffic the whole time."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mlflow import MlflowClient

from modelops_dev.control_plane import ControlPlane
from modelops_dev.kserve import KServeController
from modelops_dev.scenario import Cluster, Scenario
from modelops_dev.servers import MlflowServer, Prometheus
from tests.integration.conftest import Operator

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the local cluster needs root"),
    pytest.mark.closed_loop,
]


def process_command_lines() -> list[str]:
    """Command lines of the machine's processes (from /proc)."""
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return lines


@pytest.mark.timeout(1500)
def test_the_whole_lifecycle_closes_the_loop_by_itself(
    control_plane: ControlPlane,
    kserve: KServeController,
    kubelet: Path,
    router: str,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    operator: Operator,
    namespace: str,
    tmp_path: Path,
) -> None:
    cluster = Cluster(control_plane, router, mlflow_server.url, prometheus.url, namespace)
    scenario = Scenario(cluster, tmp_path)
    stages = scenario.run()
    # Every transition happened within its deadline (run() raises naming the one that did not).
    assert all(stage.seconds is not None and stage.seconds <= stage.deadline for stage in stages)
    v1, v2, v3 = (scenario.versions[k] for k in ("v1", "v2", "v3"))
    status = scenario.status()
    assert status["stable"]["version"] == v3 and status["phase"] in ("Healthy", "Retraining")
    [rejected] = status["rejectedVersions"]
    assert rejected["version"] == v2 and "error-rate = " in rejected["reason"]
    registry = MlflowClient(mlflow_server.url)
    assert registry.get_model_version(scenario.name, v2).tags["modelops.io/status"] == "rejected"
    assert registry.get_model_version_by_alias(scenario.name, "champion").version == v3
    assert registry.get_model_version_by_alias(scenario.name, "challenger").version == v3
    events = [h["event"] for h in status["history"]]
    assert events == ["Deployed", "RolloutStarted", "RolledBack", "RolloutStarted", "Promoted"]
    assert status["stable"]["version"] != v1
    # Exactly one Job for the one firing, and it succeeded.
    [job] = scenario.jobs()
    assert job["status"].get("succeeded") == 1
    [run] = status["retraining"]["history"]
    assert run["result"] == "Succeeded" and run["candidateVersion"] == v3
    assert run["triggerId"].startswith("after-rollback-")
    # The spec was never written by the operator.
    body = control_plane.request("GET", scenario._md_path(scenario.name))
    assert body["spec"] == scenario.spec_at_start
    # Traffic flowed the whole time; only the bad canary's share failed.
    traffic = scenario.traffic_stats()
    assert traffic["ok"] > 100 and traffic["failed"] < traffic["ok"]
    # Nothing the scenario started is left running: the traffic generator has exited, and
    # deleting the deployment removes its InferenceService, model server and Job pods.
    assert scenario.traffic is not None and scenario.traffic.poll() is not None
    scenario.remove()
    assert not [p for p in process_command_lines() if "traffic.py" in p and str(tmp_path) in p]
