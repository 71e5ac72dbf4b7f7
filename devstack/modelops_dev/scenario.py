"""The model lifecycle scenario of `make demo` and of the closed-loop test (one code path).

v1 of a wine classifier is trained by the example trainer on the low-alcohol half of the wine
data and served; steady traffic of such wines flows, its true labels sent back to the monitor;
a bad v2 (it refuses the third of those inputs with alcohol above 12.5%) is registered and the
alias moved; the canary analysis rolls it back; the rollback fires retraining; the example
trainer's Job registers a validated v3, which is rolled out and promoted. Then production moves
to the high-alcohol wines, whose new lab reports proline on another scale: the monitor (KServe's inference logger -> drift against v3's
reference profile, live accuracy from the labels) shows drift and an accuracy drop; the drift
trigger starts one retraining Job, which learns from the captured labelled rows and registers
v4; v4 is judged against v3 (accuracy, compareTo: stable) and promoted, and its own drift stays
below the trigger's threshold. Each stage has a deadline; a missed one raises StageMissedError
naming it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modelops_dev.binaries import REPO_ROOT
from modelops_dev.control_plane import ControlPlane
from modelops_dev.drift_act import DriftAct
from modelops_dev.environments import MODELS
from modelops_dev.monitor import InstalledMonitor, install_monitor, uninstall_monitor

DEMO = REPO_ROOT / "examples" / "demo"
TRAINER = REPO_ROOT / "examples" / "retrain" / "train.py"
MD_PATH = "/apis/modelops.io/v1alpha1/namespaces/{ns}/modeldeployments"


class StageMissedError(RuntimeError):
    def __init__(self, stage: str, deadline: float, detail: str) -> None:
        super().__init__(f"stage {stage!r} did not happen within {deadline:.0f}s: {detail}")
        self.stage = stage


@dataclass
class Stage:
    name: str
    deadline: float
    started: float | None = None
    seconds: float | None = None
    detail: str = ""


@dataclass
class Cluster:
    """Where the scenario runs: the API server, the router, MLflow and Prometheus."""

    plane: ControlPlane
    router: str
    mlflow: str
    prometheus: str
    namespace: str = "demo"


@dataclass
class Snapshot:
    """What the live view shows."""

    stages: list[Stage]
    status: dict[str, Any]
    jobs: list[dict[str, Any]]
    traffic: dict[str, Any]
    events: list[str] = field(default_factory=list)
    monitoring: dict[str, str] = field(default_factory=dict)
    """What the monitor measures per served version (drift, accuracy), from Prometheus."""


class Scenario(DriftAct):
    def __init__(
        self,
        cluster: Cluster,
        workdir: Path,
        observe: Callable[[Snapshot], None] = lambda _: None,
        captured: Path | None = None,
    ) -> None:
        self.cluster, self.workdir, self.observe = cluster, workdir, observe
        # Where the monitor writes labelled rows and the trainer reads them: a host folder both
        # pods see. Not under /tmp: the monitor's pod mounts an emptyDir there, as the chart asks.
        self.captured = captured or workdir / "captured"
        self.manifest = yaml.safe_load((DEMO / "deployment.yaml").read_text())
        self.name: str = self.manifest["metadata"]["name"]
        self.host: str = self.manifest["spec"]["serving"]["httpRoute"]["hostnames"][0]
        self.stats_file = workdir / "traffic.json"
        self.traffic: subprocess.Popen[bytes] | None = None
        self.stages = [
            Stage("train v1 with the example trainer and point champion at it", 240),
            Stage("v1 serves 100% of traffic", 300),
            Stage("traffic flows through the router", 60),
            Stage("register v2 (refuses inputs with alcohol > 12.5) and move champion", 240),
            Stage("v2 canary receives traffic", 180),
            Stage("the analysis rolls v2 back", 120),
            Stage("the rollback starts a retraining Job", 60),
            Stage("the Job trains, validates and registers v3", 300),
            Stage("v3 canary receives traffic", 180),
            Stage("v3 promoted; champion points at v3", 180),
            Stage("production moves to high-alcohol wines from a new lab, labels sent back", 90),
            Stage("the monitor shows v3's drift and accuracy drop in Prometheus", 120),
            Stage("the drift trigger starts one retraining Job", 120),
            Stage("the Job learns from the captured rows and registers v4", 300),
            Stage("v4 judged against v3 (accuracy) and promoted", 240),
            Stage("v4's drift stays below the trigger's threshold", 90),
        ]
        self.versions: dict[str, str] = {}
        self.spec_at_start: dict[str, Any] = {}
        self.monitor: InstalledMonitor | None = None
        self.measured: dict[str, str] = {}
        self._measured_at = 0.0

    # ---- helpers -----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        found = self.cluster.plane.request("GET", self._md_path(self.name))
        status: dict[str, Any] = found.get("status") or {}
        return status

    def jobs(self) -> list[dict[str, Any]]:
        path = f"/apis/batch/v1/namespaces/{self.cluster.namespace}/jobs?labelSelector=modelops.io/deployment%3D{self.name}"
        items: list[dict[str, Any]] = self.cluster.plane.request("GET", path).get("items", [])
        return items

    def traffic_stats(self) -> dict[str, Any]:
        try:
            stats: dict[str, Any] = json.loads(self.stats_file.read_text())
            return stats
        except (OSError, ValueError):
            return {}

    def _md_path(self, name: str = "") -> str:
        base = MD_PATH.format(ns=self.cluster.namespace)
        return f"{base}/{name}" if name else base

    def _snapshot(self) -> None:
        try:
            snapshot = Snapshot(self.stages, self.status(), self.jobs(), self.traffic_stats())
            if self.monitor is not None:
                snapshot.monitoring = self.monitored()
        except OSError:
            return
        self.observe(snapshot)

    def _python(self, script: Path, env: dict[str, str]) -> dict[str, Any]:
        result = subprocess.run(
            [str(MODELS.bin("python")), str(script)], env={**os.environ, **env},
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"{script.name} failed: {result.stderr[-2000:]}")
        answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        return answer

    def _alias(self, alias: str, version: str) -> None:
        from mlflow import MlflowClient

        MlflowClient(self.cluster.mlflow).set_registered_model_alias(self.name, alias, version)

    def _alias_version(self, alias: str) -> str | None:
        from mlflow import MlflowClient

        try:
            return str(
                MlflowClient(self.cluster.mlflow)
                .get_model_version_by_alias(self.name, alias)
                .version
            )
        except Exception:
            return None

    def _wait(self, stage: Stage, check: Callable[[], Any]) -> Any:
        assert stage.started is not None
        while time.monotonic() - stage.started < stage.deadline:
            self._snapshot()
            try:
                found = check()
            except OSError:
                found = None
            if found:
                return found
            time.sleep(0.5)
        raise StageMissedError(
            stage.name, stage.deadline, stage.detail or json.dumps(self.status())[:600]
        )

    # ---- the scenario ------------------------------------------------------------------

    def run(self) -> list[Stage]:
        try:
            for index, stage in enumerate(self.stages):
                stage.started = time.monotonic()
                getattr(self, f"_stage_{index}")(stage)
                stage.seconds = time.monotonic() - stage.started
                self._snapshot()
            return self.stages
        finally:
            self.stop_traffic()

    def _stage_0(self, stage: Stage) -> None:
        # The monitor first: a pod resolves Service names when it starts (the process
        # kubelet's /etc/hosts), and v1's agent sends to the monitor's.
        captured = self.captured
        self.monitor = install_monitor(
            self.cluster.plane, self.cluster.mlflow, captured, self.workdir / "monitor"
        )
        env = {"MLFLOW_TRACKING_URI": self.cluster.mlflow, "MODEL_NAME": self.name,
               "MODELOPS_TRIGGER_ID": "demo-initial", "MODELOPS_CANDIDATE_ALIAS": "champion",
               "TRAIN_SEGMENT": "low-alcohol", "PYTHONPATH": str(REPO_ROOT / "operator")}  # fmt: skip
        self.versions["v1"] = self._python(TRAINER, env)["version"]
        stage.detail = f"version {self.versions['v1']}"
        manifest = json.loads(json.dumps(self.manifest))
        manifest["spec"]["model"]["registry"]["trackingUri"] = self.cluster.mlflow
        manifest["spec"]["analysis"]["prometheus"] = {"url": self.cluster.prometheus}
        manifest["spec"]["monitoring"]["logger"] = {
            "url": self.monitor.url, "captureStore": str(captured),
        }  # fmt: skip
        namespace = self.cluster.namespace
        if not self._exists(f"/api/v1/namespaces/{namespace}"):
            self.cluster.plane.request(
                "POST", "/api/v1/namespaces", {"metadata": {"name": namespace}}
            )
        created = self.cluster.plane.request("POST", self._md_path(), manifest)
        self.spec_at_start = created["spec"]

    def _exists(self, path: str) -> bool:
        try:
            self.cluster.plane.request("GET", path)
            return True
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            raise

    def _stage_1(self, stage: Stage) -> None:
        def serving() -> bool:
            status = self.status()
            stable = (status.get("stable") or {}).get("version")
            return status.get("phase") == "Healthy" and stable == self.versions["v1"]

        self._wait(stage, serving)

    def start_traffic(self, segment: str) -> None:
        """Wine rows of `segment`, 20 per second, each answered one labelled two seconds later
        through the monitor's feedback endpoint."""
        assert self.monitor is not None
        self.stats_file.unlink(missing_ok=True)
        self.traffic = subprocess.Popen(
            [str(MODELS.bin("python")), str(DEMO / "traffic.py"), self.cluster.router, self.host,
             self.name, str(self.stats_file), "20", "--segment", segment,
             "--feedback", self.monitor.host, "--token-file", str(self.monitor.token_file)],
            stdout=subprocess.DEVNULL, stderr=(self.workdir / "traffic.log").open("ab"),
        )  # fmt: skip

    def _stage_2(self, stage: Stage) -> None:
        self.start_traffic("low-alcohol")
        self._wait(stage, lambda: self.traffic_stats().get("ok", 0) >= 40)

    def _stage_3(self, stage: Stage) -> None:
        env = {"MLFLOW_TRACKING_URI": self.cluster.mlflow, "MODEL_NAME": self.name}
        self.versions["v2"] = self._python(DEMO / "bad_version.py", env)["version"]
        self._alias("champion", self.versions["v2"])
        stage.detail = f"version {self.versions['v2']}"

    def _canary_with_traffic(self, stage: Stage, version: str) -> None:
        def receiving() -> bool:
            canary = self.status().get("canary") or {}
            return canary.get("version") == version and bool(canary.get("stepStartedAt"))

        self._wait(stage, receiving)

    def _stage_4(self, stage: Stage) -> None:
        self._canary_with_traffic(stage, self.versions["v2"])

    def _stage_5(self, stage: Stage) -> None:
        def rolled_back() -> dict[str, Any] | None:
            status = self.status()
            rejected = [
                r
                for r in status.get("rejectedVersions", [])
                if r.get("version") == self.versions["v2"]
            ]
            return rejected[0] if rejected and not status.get("canary") else None

        rejected = self._wait(stage, rolled_back)
        stage.detail = rejected["reason"]

    def _stage_6(self, stage: Stage) -> None:
        jobs = self._wait(stage, self.jobs)
        stage.detail = f"Job {jobs[0]['metadata']['name']}"

    def _stage_7(self, stage: Stage) -> None:
        def registered() -> str | None:
            retraining = self.status().get("retraining") or {}
            if retraining.get("phase") == "Failed":
                raise StageMissedError(stage.name, stage.deadline, json.dumps(retraining)[:600])
            return (
                retraining.get("candidateVersion")
                if retraining.get("phase") == "Succeeded"
                else None
            )

        self.versions["v3"] = self._wait(stage, registered)
        stage.detail = f"version {self.versions['v3']}"

    def _stage_8(self, stage: Stage) -> None:
        self._canary_with_traffic(stage, self.versions["v3"])

    def _stage_9(self, stage: Stage) -> None:
        def promoted() -> bool:
            stable = (self.status().get("stable") or {}).get("version")
            return (
                stable == self.versions["v3"]
                and self._alias_version("champion") == self.versions["v3"]
            )

        self._wait(stage, promoted)

    def remove(self, deadline: float = 120) -> None:
        """Delete the deployment and wait until the garbage collector and the kubelet have
        removed everything it owned: InferenceService, predictor and Job pods, Jobs; and the
        monitor the scenario installed."""
        self.cluster.plane.request("DELETE", self._md_path(self.name))
        self.remove_monitor(deadline)
        pods = f"/api/v1/namespaces/{self.cluster.namespace}/pods?labelSelector=modelops.io/deployment%3D{self.name}"
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            left = self.cluster.plane.request("GET", pods).get("items", []) + self.jobs()
            if not left:
                return
            time.sleep(1)
        raise StageMissedError(
            "remove the deployment and everything it owned", deadline, f"{len(left)} objects left"
        )

    def remove_monitor(self, deadline: float = 120) -> None:
        """Uninstall the monitor and wait for its pod to be gone: it writes its last captured
        rows when it stops, so the capture folder is only final after that."""
        if self.monitor is None:
            return
        namespace = self.monitor.namespace
        uninstall_monitor(self.cluster.plane, namespace)
        self.monitor = None
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                pods = self.cluster.plane.request("GET", f"/api/v1/namespaces/{namespace}/pods")
            except urllib.error.HTTPError as error:
                if error.code == 404:
                    return
                raise
            if not pods.get("items"):
                return
            time.sleep(1)
        raise StageMissedError("remove the monitor", deadline, "its pod is still running")

    def stop_traffic(self) -> None:
        if self.traffic is not None and self.traffic.poll() is None:
            self.traffic.send_signal(signal.SIGTERM)
            try:
                self.traffic.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.traffic.kill()
                self.traffic.wait()
