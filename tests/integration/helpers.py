"""What the integration tests share: real models trained and registered in MLflow, deployments
created and read back (status, conditions, events, predictor pods), steady traffic through the
router that counts every answer a client sees, predictions, and the rendered Helm chart."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Self

import yaml
from kubernetes import client
from mlflow import MlflowClient

from modelops_dev.binaries import KUBERNETES_VERSION, REPO_ROOT
from modelops_dev.environments import MODELS
from modelops_dev.kserve import INGRESS_DOMAIN
from modelops_dev.servers import MlflowServer, Prometheus
from tests.bodies import with_values
from tests.integration.conftest import Operator, wait_for

TRAINER = Path(__file__).with_name("train_model.py")
# The operator package of this clone (what a trainer image installs as modelops[monitor]).
OPERATOR_SOURCE = Path(__file__).resolve().parents[2] / "operator"


def train(mlflow: MlflowServer, name: str, kind: str, folder: Path) -> dict[str, str]:
    """Train and register a version of `kind` (see train_model.py); its version, run and archive."""
    archive = folder / f"{name}-{kind}-{uuid.uuid4().hex[:8]}.tar.gz"
    # modelops on the path as a trainer image has it installed (modelops.profile).
    env = {**os.environ, "PYTHONPATH": str(OPERATOR_SOURCE)}
    result = subprocess.run(
        [str(MODELS.bin("python")), str(TRAINER), mlflow.url, name, kind, str(archive)],
        capture_output=True, text=True, timeout=180, check=False, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    trained: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return trained


MD = ("modelops.io", "v1alpha1")
ROUTES = ("gateway.networking.k8s.io", "v1", "httproutes")
# Iris-like rows; 4 of 12 have a petal length above 5, which the `flaky` model refuses.
ROWS = [
    [5.1, 3.5, 1.4, 0.2], [4.9, 3.0, 1.4, 0.2], [5.0, 3.6, 1.4, 0.2], [5.4, 3.9, 1.7, 0.4],
    [7.0, 3.2, 4.7, 1.4], [6.4, 3.2, 4.5, 1.5], [5.5, 2.3, 4.0, 1.3], [5.7, 2.8, 4.5, 1.3],
    [6.3, 3.3, 6.0, 2.5], [7.1, 3.0, 5.9, 2.1], [6.5, 3.0, 5.8, 2.2], [7.6, 3.0, 6.6, 2.1],
]  # fmt: skip


class Background:
    """Work repeated in a thread while a `with` block runs (`tick` every `pause` seconds)."""

    pause = 0.3

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.pause)

    def tick(self) -> None:
        raise NotImplementedError


class Traffic(Background):
    """Steady v2 prediction requests through the router, one row each, counting every answer a
    client gets by status code (0: no answer at all) and keeping the first failures' bodies, so
    a failed assertion says who answered (the router's "no ready endpoint", a backend, ...)."""

    def __init__(self, router: str, host: str, model: str, rate: float = 25.0) -> None:
        super().__init__()
        self.router, self.host, self.model, self.pause = router, host, model, 1.0 / rate
        self.codes: Counter[int] = Counter()
        self.failures: list[str] = []
        self._sent = 0
        self._started = time.monotonic()

    def tick(self) -> None:
        row = ROWS[self._sent % len(ROWS)]
        self._sent += 1
        code, body = predict_once(self.router, self.host, self.model, row)
        self.codes[code] += 1
        if code != 200 and len(self.failures) < 5:
            self.failures.append(f"{time.monotonic() - self._started:.1f}s {code}: {body[:200]}")

    def non_2xx(self) -> int:
        """Answers a client saw that were not 200 (no answer at all included)."""
        return sum(n for code, n in self.codes.items() if code != 200)

    def __str__(self) -> str:
        return f"{dict(self.codes)}; first failures: {self.failures}"


def predict_once(router: str, host: str, model: str, row: list[float]) -> tuple[int, str]:
    """One v2 prediction through the router: (status code, 0 without an answer; body)."""
    body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": row}]}
    request = urllib.request.Request(
        f"{router}/v2/models/{model}/infer",
        data=json.dumps(body).encode(),
        headers={"Host": host, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        return 0, str(error)


def status(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    body = custom.get_namespaced_custom_object(*MD, namespace, "modeldeployments", name)
    found: dict[str, Any] = body.get("status") or {}
    return found


def condition(found: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in found.get("conditions", []) if c["type"] == kind), {})


INTERVAL = 5
"""The analysis interval of the deployments `create` makes (seconds)."""


def create(custom: client.CustomObjectsApi, namespace: str, name: str, tracking_uri: str,
           prometheus_url: str | None, metrics: list[dict[str, Any]], *,
           changes: dict[str, Any] | None = None, **analysis: Any) -> dict[str, Any]:  # fmt: skip
    """A ModelDeployment following alias champion, canary steps 30% and 60% of 15 s each
    through an HTTPRoute; prometheus_url None: the operator's own. `changes` sets values at
    "__"-separated paths (spec__serving__httpRoute=None removes the route)."""
    body = {
        "apiVersion": "modelops.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
        "spec": {
            "model": {"name": name, "alias": "champion",
                      "registry": {"trackingUri": tracking_uri, "pollInterval": "2s"}},
            "serving": {"storage": {"mode": "StorageInitializer"}, "minReplicas": 1,
                        "httpRoute": {"hostnames": [f"{name}.{namespace}.test"]}},
            "rollout": {"strategy": "Canary", "promoteAlias": "production",
                        "steps": [{"traffic": 30, "duration": "15s"}, {"traffic": 60, "duration": "15s"}]},
            "analysis": {**({"prometheus": {"url": prometheus_url}} if prometheus_url else {}), "interval": f"{INTERVAL}s",
                         "failureLimit": 1, "inconclusiveLimit": 2, "consecutiveErrorLimit": 1,
                         "metrics": metrics, **analysis},
        },
    }  # fmt: skip
    body = with_values(body, {tuple(k.split("__")): v for k, v in (changes or {}).items()})
    created: dict[str, Any] = custom.create_namespaced_custom_object(
        *MD, namespace, "modeldeployments", body
    )
    return created


def serve_first_version(
    custom: client.CustomObjectsApi,
    mlflow: MlflowServer,
    prometheus: Prometheus,
    namespace: str,
    name: str,
    folder: Path,
    metrics: list[dict[str, Any]],
    changes: dict[str, Any] | None = None,
) -> dict[str, str]:
    """A healthy first version trained, `champion` pointed at it, the deployment of `create`
    made, and the version served (Healthy)."""
    first = train(mlflow, name, "slow-0", folder)
    MlflowClient(mlflow.url).set_registered_model_alias(name, "champion", first["version"])
    create(custom, namespace, name, mlflow.url, prometheus.url, metrics, changes=changes)
    serving(custom, namespace, name, first["version"])
    return first


def serving(custom: client.CustomObjectsApi, namespace: str, name: str, version: str) -> Any:
    def check() -> dict[str, Any] | None:
        found = status(custom, namespace, name)
        stable = found.get("stable") or {}
        done = found.get("phase") == "Healthy" and stable.get("version") == version
        return found if done and not found.get("canary") else None

    return wait_for(check, timeout=300, interval=1, what=f"{name} Healthy on version {version}")


def events(core: client.CoreV1Api, namespace: str, reason: str) -> list[Any]:
    found = core.list_namespaced_event(namespace).items
    return [e for e in found if e.reason == reason and e.involved_object.kind == "ModelDeployment"]


def kill_and_restart(operator: Operator) -> float:
    """SIGKILL the operator and start it again; returns how long it was away (seconds)."""
    started = time.monotonic()
    operator.kill()
    operator.start()
    return time.monotonic() - started


def predictor_pods(core: client.CoreV1Api, namespace: str, isvc: str) -> dict[str, tuple[str, int]]:
    """The InferenceService's predictor pods that are not terminating: name -> (model
    version, restarts)."""
    pods = core.list_namespaced_pod(
        namespace, label_selector=f"serving.kserve.io/inferenceservice={isvc}"
    ).items
    return {
        pod.metadata.name: (
            pod.metadata.labels.get("modelops.io/model-version", ""),
            sum(s.restart_count for s in pod.status.container_statuses or []),
        )
        for pod in pods
        if pod.metadata.deletion_timestamp is None
    }


class PodLog(Background):
    """Samples an InferenceService's predictor pods in a thread: which pods each model version
    had, how many at once, and their restarts."""

    def __init__(self, core: client.CoreV1Api, namespace: str, isvc: str) -> None:
        super().__init__()
        self.core, self.namespace, self.isvc = core, namespace, isvc
        self.names: dict[str, set[str]] = {}
        self.most: Counter[str] = Counter()
        self.restarts: Counter[str] = Counter()

    def tick(self) -> None:
        with contextlib.suppress(client.ApiException, OSError):
            now: Counter[str] = Counter()
            for pod, (version, restarts) in predictor_pods(
                self.core, self.namespace, self.isvc
            ).items():
                self.names.setdefault(version, set()).add(pod)
                self.restarts[pod] = max(self.restarts[pod], restarts)
                now[version] += 1
            for version, count in now.items():
                self.most[version] = max(self.most[version], count)

    def replaced(self) -> dict[str, set[str]]:
        """Versions that had more distinct pods than they ever ran at once: a pod of theirs
        was replaced (a restart of the template), with the pods seen."""
        return {v: names for v, names in self.names.items() if len(names) > self.most[v]}


# ---- serving and charts -------------------------------------------------------------------

# Iris rows of class 0, 2 and 1; the `constant` model answers 0 for all of them.
CLASS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]


def ingress_host(service: str, namespace: str) -> str:
    """The host KServe's Ingress gives an InferenceService here."""
    return f"{service}-{namespace}.{INGRESS_DOMAIN}"


def predict(router: str, host: str, rows: list[list[float]], model: str = "iris") -> list[int]:
    """A v2 inference request through the router to the model server `host` routes to."""
    body = {"inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP64",
                        "data": [value for row in rows for value in row]}]}  # fmt: skip
    request = urllib.request.Request(
        f"{router}/v2/models/{model}/infer",
        data=json.dumps(body).encode(),
        headers={"Host": host, "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    return [int(value) for value in answer["outputs"][0]["data"]]


CHART = REPO_ROOT / "charts" / "modelops"
KUBE_VERSION = KUBERNETES_VERSION.removeprefix("v")  # the control plane's, stated explicitly


def render(helm: Path, *args: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(helm), "template", "modelops", str(CHART), "--namespace", "modelops-system",
         "--kube-version", KUBE_VERSION, *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def kinds(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        found.setdefault(obj["kind"], []).append(obj)
    return found


# Analysis metrics the rollout tests use.
LATENCY = {"name": "latency-vs-stable", "preset": "mlserver-latency-mean", "compareTo": "stable",
           "maxRatio": 1.6, "max": 0.5, "window": "20s"}  # fmt: skip
ERRORS = {"name": "error-rate", "preset": "mlserver-error-rate", "max": 0.05, "window": "20s"}
