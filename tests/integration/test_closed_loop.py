"""The demo's scenario, headless, as an end-to-end test (`pytest -m closed_loop` runs it
alone): train -> serve -> bad version -> automatic rollback -> retraining Job -> validated
version -> canary -> promotion; then drift: production changes -> the monitor (KServe's real
agent, the chart's monitor pod) shows drift and an accuracy drop -> the drift trigger's Job
learns from the captured labelled rows -> the new version judged on accuracy and promoted ->
its drift stays low. On the real control plane, KServe, MLflow, MLServer pods, Prometheus and
Job controller, with steady traffic the whole time."""

from __future__ import annotations

import os
import shutil
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


@pytest.mark.timeout(2400)
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
    # Captured rows outside /tmp (the monitor pod's /tmp is an emptyDir), in the project's cache.
    captured = Path.home() / ".cache" / "modelops" / "run" / f"captured-{namespace}"
    scenario = Scenario(cluster, tmp_path, captured=captured)
    try:
        stages = scenario.run()
    finally:
        scenario.remove_monitor()  # it writes its last rows when it stops
        shutil.rmtree(captured, ignore_errors=True)
    # Every transition happened within its deadline (run() raises naming the one that did not).
    assert all(stage.seconds is not None and stage.seconds <= stage.deadline for stage in stages)
    v1, v2, v3, v4 = (scenario.versions[k] for k in ("v1", "v2", "v3", "v4"))
    status = scenario.status()
    assert status["stable"]["version"] == v4 and status["phase"] in ("Healthy", "Retraining")
    [rejected] = status["rejectedVersions"]
    assert rejected["version"] == v2 and "error-rate = " in rejected["reason"]
    registry = MlflowClient(mlflow_server.url)
    assert registry.get_model_version(scenario.name, v2).tags["modelops.io/status"] == "rejected"
    assert registry.get_model_version_by_alias(scenario.name, "champion").version == v4
    assert registry.get_model_version_by_alias(scenario.name, "challenger").version == v4
    events = [h["event"] for h in status["history"]]
    assert events == ["Deployed", "RolloutStarted", "RolledBack", "RolloutStarted", "Promoted",
                      "RolloutStarted", "Promoted"]  # fmt: skip
    assert status["stable"]["version"] != v1
    # Exactly one Job per firing (the rollback's, the drift's), both succeeded.
    jobs = scenario.jobs()
    assert len(jobs) == 2 and all(job["status"].get("succeeded") == 1 for job in jobs)
    runs = status["retraining"]["history"]
    assert [(r["result"], r["candidateVersion"]) for r in runs] == [
        ("Succeeded", v3), ("Succeeded", v4),
    ]  # fmt: skip
    assert runs[0]["triggerId"].startswith("after-rollback-")
    assert runs[1]["triggerId"].startswith("drift-") and "maxPsi 1" in runs[1]["reason"]
    # v4 learnt from what the monitor captured, and the monitor measured the drift the act
    # describes: v3 drifted with worse accuracy, v4 judged on accuracy against v3.
    v4_run = registry.get_run(registry.get_model_version(scenario.name, v4).run_id)
    assert int(v4_run.data.tags["modelops.io/production-rows"]) > 100
    drifted = next(s for s in stages if s.name.startswith("the monitor shows"))
    assert "features drifted" in drifted.detail
    judged = next(s for s in stages if s.name.startswith("v4 judged"))
    assert "accuracy-vs-stable" in judged.detail and "within minRatio 0.8" in judged.detail
    # The spec was never written by the operator.
    body = control_plane.request("GET", scenario._md_path(scenario.name))
    assert body["spec"] == scenario.spec_at_start
    # Traffic flowed the whole time; only the bad canary's share failed.
    traffic = scenario.traffic_stats()
    assert traffic["ok"] > 100 and traffic["failed"] < traffic["ok"]
    assert traffic["feedback"].get("200", 0) > 100  # the act's labels reached the monitor
    # Nothing the scenario started is left running: the traffic generator has exited, and
    # deleting the deployment removes its InferenceService, model server and Job pods.
    assert scenario.traffic is not None and scenario.traffic.poll() is not None
    scenario.remove()
    assert not [p for p in process_command_lines() if "traffic.py" in p and str(tmp_path) in p]
