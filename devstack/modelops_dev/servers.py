"""The local stack's real servers (development only): `mlflow server` and Prometheus.

- MLflow: SQLite backend store and a local artifact folder it serves itself
  (`--serve-artifacts`), on a free loopback port, from the models environment.
- Prometheus: Debian's package, with the relabelling a cluster uses for KServe's
  `prometheus.kserve.io/port|path` annotations (and the common `prometheus.io/*` ones), pod
  labels carried onto every series, plus the router's own metrics. Debian builds it without
  kubernetes_sd, so pods are discovered by `pod_discovery` (file_sd with kubernetes_sd's meta
  labels). Scrape interval 2 s so analysis can run in seconds here.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from modelops_dev.binaries import REPO_ROOT
from modelops_dev.control_plane import ControlPlane
from modelops_dev.environments import MODELS

SCRAPE_INTERVAL = "2s"
STORAGE_CONTAINER = REPO_ROOT / "manifests" / "kserve" / "storage-initializer.yaml"
# Pod labels copied onto every scraped series, as (pod label, series label).
POD_LABELS = (
    ("serving.kserve.io/inferenceservice", "inferenceservice"),
    ("component", "component"),
    ("modelops.io/deployment", "deployment"),
    ("modelops.io/model", "model"),
    ("modelops.io/model-version", "model_version"),
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _label(name: str) -> str:
    """A pod label's name as kubernetes_sd exposes it."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in name)


def _annotation(name: str) -> str:
    return "__meta_kubernetes_pod_annotation_" + "".join(c if c.isalnum() else "_" for c in name)


def stop_group(pid: int, grace: float = 20) -> None:
    """SIGTERM a session leader's process group, SIGKILL what is left after `grace`."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signum)
        end = time.monotonic() + grace
        while time.monotonic() < end:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.1)


class ServerProcess:
    """One server process with a log file, waited on until its port answers."""

    name = "server"

    def __init__(self, directory: Path, host: str = "127.0.0.1") -> None:
        self.directory = directory
        self.host = host
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready_path(self) -> str:
        return "/"

    def environment(self) -> dict[str, str] | None:
        return None

    def start(self, logs: Path, deadline: float = 120, port: int | None = None) -> None:
        """Start (again, on `port`, to bring a stopped server back where it was)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or _free_port()
        log = (logs / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=self.environment(),
        )  # fmt: skip
        log.close()
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            if self.process.poll() is not None:
                tail = (logs / f"{self.name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(self.url + self.ready_path(), timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"{self.name} did not answer on {self.url} within {deadline:.0f}s")

    def stop(self) -> None:
        """Stop the server and its children (its own process group, which may outlive the
        group's leader)."""
        if self.process is None:
            return
        stop_group(self.process.pid)
        self.process.wait()
        self.process = None  # stopped once: a reused pid is never signalled


class MlflowServer(ServerProcess):
    """`mlflow server`; on the pod network's gateway address so pods reach it as the Service
    `mlflow.modelops-system` (see `register`), and the host at the same address."""

    name = "mlflow"
    namespace = "modelops-system"

    def __init__(
        self, directory: Path, host: str = "127.0.0.1", admin_password: str | None = None
    ) -> None:
        """`admin_password` turns on MLflow's basic-auth app with user `admin`."""
        super().__init__(directory, host)
        self.admin_password = admin_password

    def register(self, plane: ControlPlane) -> str:
        """A selector-less Service and its EndpointSlice, as a cluster registers an outside
        server, and the ClusterStorageContainer that downloads models:/ URIs from it; returns
        the in-cluster tracking URI."""
        plane.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}})
        plane.apply({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": self.port}]},
        })  # fmt: skip
        plane.apply({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": self.name, "namespace": self.namespace,
                         "labels": {"kubernetes.io/service-name": self.name,
                                    "endpointslice.kubernetes.io/managed-by": "modelops-devstack"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [self.host], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": self.port, "protocol": "TCP"}],
        })  # fmt: skip
        in_cluster = f"http://{self.name}.{self.namespace}.svc.cluster.local"
        plane.apply(storage_container(in_cluster))
        return in_cluster

    @property
    def artifacts(self) -> Path:
        return self.directory / "artifacts"

    def command(self) -> list[str]:
        return [
            str(MODELS.bin("mlflow")), "server",
            "--backend-store-uri", f"sqlite:///{self.directory / 'mlflow.db'}",
            "--artifacts-destination", str(self.artifacts), "--serve-artifacts",
            "--host", self.host, "--port", str(self.port), "--workers", "1",
            *(["--app-name", "basic-auth"] if self.admin_password else []),
        ]  # fmt: skip

    def ready_path(self) -> str:
        return "/health"

    def environment(self) -> dict[str, str]:
        # MLflow 3's job runner starts a dozen huey workers the stack never uses.
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        if self.admin_password:
            config = self.directory / "basic_auth.ini"
            config.write_text(
                "[mlflow]\ndefault_permission = READ\n"
                f"database_uri = sqlite:///{self.directory / 'basic_auth.db'}\n"
                f"admin_username = admin\nadmin_password = {self.admin_password}\n"
                "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
            )
            env["MLFLOW_AUTH_CONFIG_PATH"] = str(config)
            # The auth app's CSRF protection wants a key that survives restarts of this server.
            env["MLFLOW_FLASK_SERVER_SECRET_KEY"] = hashlib.sha256(
                str(self.directory).encode()
            ).hexdigest()
        return env


def storage_container(tracking_uri: str) -> dict[str, Any]:
    """The shipped ClusterStorageContainer (models:/ -> `modelops storage-initializer`),
    pointed at this stack's MLflow."""
    manifest: dict[str, Any] = yaml.safe_load(STORAGE_CONTAINER.read_text())
    container = manifest["spec"]["container"]
    container["env"] = [
        {**e, "value": tracking_uri} if e["name"] == "MLFLOW_TRACKING_URI" else e
        for e in container.get("env", [])
    ]
    return manifest


MONITOR_LABEL, MONITOR_NAME = "app.kubernetes.io/name", "modelops-monitor"


def prometheus_config(targets_file: Path, router: str | None) -> dict[str, Any]:
    """Scrape configuration: KServe-annotated pods, `prometheus.io/scrape` pods, the router.

    `targets_file` holds kubernetes_sd-style pod targets (see pod_discovery); in a cluster the
    same relabelling follows `kubernetes_sd_configs: [{role: pod}]`.
    """
    discovery = {"file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "5s"}]}
    common = [
        {"source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running", "action": "keep"},
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        *({"source_labels": [_label(label)], "target_label": target}
          for label, target in POD_LABELS),
    ]  # fmt: skip

    def annotated(prefix: str, keep: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            keep,
            {"source_labels": ["__meta_kubernetes_pod_ip", _annotation(f"{prefix}/port")],
             "regex": r"(.+);(\d+)", "replacement": "$1:$2", "target_label": "__address__"},
            {"source_labels": [_annotation(f"{prefix}/path")], "regex": "(.+)",
             "target_label": "__metrics_path__"},
            *common,
        ]  # fmt: skip

    jobs: list[dict[str, Any]] = [
        {
            "job_name": "kserve-pods",
            **discovery,
            "relabel_configs": annotated(
                "prometheus.kserve.io",
                {"source_labels": [_annotation("prometheus.kserve.io/port")],
                 "regex": r"\d+", "action": "keep"},
            ),
        },
        {
            "job_name": "annotated-pods",
            **discovery,
            "relabel_configs": [
                {"source_labels": [_label(MONITOR_LABEL)], "regex": MONITOR_NAME, "action": "drop"},
                *annotated(
                    "prometheus.io",
                    {"source_labels": [_annotation("prometheus.io/scrape")], "regex": "true",
                     "action": "keep"},
                ),
            ],
        },
        # The modelops monitor labels its series with the namespace and deployment they
        # measure: honored, not overwritten by the monitor pod's own (the chart's
        # ServiceMonitor sets honorLabels likewise).
        {
            "job_name": "modelops-monitor",
            "honor_labels": True,
            **discovery,
            "relabel_configs": annotated(
                "prometheus.io",
                {"source_labels": [_label(MONITOR_LABEL)], "regex": MONITOR_NAME, "action": "keep"},
            ),
        },
    ]  # fmt: skip
    if router:
        jobs.append({"job_name": "router", "static_configs": [{"targets": [router]}]})
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": jobs,
    }


class Prometheus(ServerProcess):
    name = "prometheus"

    def __init__(self, directory: Path, kubeconfig: Path, router: str | None) -> None:
        super().__init__(directory)
        self.kubeconfig, self.router = kubeconfig, router
        self.discovery: subprocess.Popen[bytes] | None = None

    @property
    def targets_file(self) -> Path:
        return self.directory / "pod-targets.json"

    @property
    def pids(self) -> dict[str, int]:
        assert self.discovery is not None
        return {"pod-discovery": self.discovery.pid, "prometheus": self.pid}

    def start(self, logs: Path, deadline: float = 120, port: int | None = None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (logs / "pod-discovery.log").open("ab")
        self.discovery = subprocess.Popen(
            [sys.executable, "-m", "modelops_dev.pod_discovery",
             "--kubeconfig", str(self.kubeconfig), "--out", str(self.targets_file)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        log.close()
        super().start(logs, deadline, port)

    def stop(self) -> None:
        super().stop()
        if self.discovery is not None and self.discovery.poll() is None:
            stop_group(self.discovery.pid)
            self.discovery.wait()

    @staticmethod
    def binary() -> str:
        found = shutil.which("prometheus")
        if found is None:
            raise RuntimeError(
                "prometheus is not installed: apt-get install prometheus (Debian's package)"
            )
        return found

    def command(self) -> list[str]:
        config = self.directory / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(prometheus_config(self.targets_file, self.router), sort_keys=False)
        )
        return [
            self.binary(), f"--config.file={config}",
            f"--storage.tsdb.path={self.directory / 'data'}", "--storage.tsdb.retention.time=1d",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]  # fmt: skip

    def ready_path(self) -> str:
        return "/-/ready"

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.loads(response.read())
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus query {promql!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result
