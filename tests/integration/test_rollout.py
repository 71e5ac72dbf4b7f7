"""Progressive delivery on the local cluster: real MLflow models served by MLServer pods that
KServe runs as stable and canary predictors, traffic through the router's HTTPRoute that the
operator keeps weighted, Prometheus scraping the model servers, and the operator judging,
promoting and rolling back by itself. Bad versions are real models: one refuses the rows with
a long petal, one answers slower."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from mlflow import MlflowClient

from modelops.devstack.control_plane import ControlPlane
from modelops.devstack.servers import MlflowServer, Prometheus
from tests.integration.conftest import Operator, holds, wait_for
from tests.integration.test_model_serving import train

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cluster needs root")

MD = ("modelops.io", "v1alpha1")
# Iris-like rows; 4 of 12 have a petal length above 5, which the `flaky` model refuses.
ROWS = [
    [5.1, 3.5, 1.4, 0.2], [4.9, 3.0, 1.4, 0.2], [5.0, 3.6, 1.4, 0.2], [5.4, 3.9, 1.7, 0.4],
    [7.0, 3.2, 4.7, 1.4], [6.4, 3.2, 4.5, 1.5], [5.5, 2.3, 4.0, 1.3], [5.7, 2.8, 4.5, 1.3],
    [6.3, 3.3, 6.0, 2.5], [7.1, 3.0, 5.9, 2.1], [6.5, 3.0, 5.8, 2.2], [7.6, 3.0, 6.6, 2.1],
]  # fmt: skip
INTERVAL = 5


@pytest.fixture(scope="module")
def cluster(serving_cluster: str) -> str:
    return serving_cluster


class Traffic:
    """Steady v2 prediction requests through the router, one row each, in a thread."""

    def __init__(self, router: str, host: str, model: str, rate: float = 25.0) -> None:
        self.router, self.host, self.model, self.pause = router, host, model, 1.0 / rate
        self.codes: Counter[int] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        index = 0
        while not self._stop.is_set():
            row = ROWS[index % len(ROWS)]
            index += 1
            body = {
                "inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": row}]
            }
            request = urllib.request.Request(
                f"{self.router}/v2/models/{self.model}/infer",
                data=json.dumps(body).encode(),
                headers={"Host": self.host, "Content-Type": "application/json"},
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    self.codes[response.status] += 1
            except urllib.error.HTTPError as error:
                self.codes[error.code] += 1
            except (urllib.error.URLError, OSError):
                self.codes[0] += 1
            self._stop.wait(self.pause)


def status(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    body = custom.get_namespaced_custom_object(*MD, namespace, "modeldeployments", name)
    found: dict[str, Any] = body.get("status") or {}
    return found


def condition(found: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in found.get("conditions", []) if c["type"] == kind), {})


def create(custom: client.CustomObjectsApi, namespace: str, name: str, tracking_uri: str,
           prometheus_url: str | None, metrics: list[dict[str, Any]], **analysis: Any) -> dict[str, Any]:  # fmt: skip
    """A ModelDeployment following alias champion; prometheus_url None: the operator's own."""
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
    created: dict[str, Any] = custom.create_namespaced_custom_object(
        *MD, namespace, "modeldeployments", body
    )
    return created


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


def instant(prometheus: Prometheus, query: str) -> float | None:
    url = f"{prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as response:
        result = json.loads(response.read())["data"]["result"]
    return float(result[0]["value"][1]) if result else None


LATENCY = {"name": "latency-vs-stable", "preset": "mlserver-latency-mean", "compareTo": "stable",
           "maxRatio": 1.6, "max": 0.5, "window": "20s"}  # fmt: skip
ERRORS = {"name": "error-rate", "preset": "mlserver-error-rate", "max": 0.05, "window": "20s"}


@pytest.mark.timeout(900)  # three rollouts with real model servers, two operator restarts
def test_canaries_are_promoted_or_rolled_back_by_their_analysis_across_restarts(
    cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    namespace: str,
    tmp_path: Path,
) -> None:
    name = "iris"
    registry = MlflowClient(mlflow_server.url)
    first = train(mlflow_server, name, "slow-20", tmp_path)
    registry.set_registered_model_alias(name, "champion", first["version"])
    created = create(custom, namespace, name, mlflow_server.url, prometheus.url, [ERRORS, LATENCY])
    serving(custom, namespace, name, first["version"])
    host = f"{name}.{namespace}.test"

    with Traffic(cluster, host, name) as traffic:
        # 1. A healthy version walks both steps and is promoted, although the operator is
        #    killed (SIGKILL) in the middle of a step: it resumes the step where it was.
        good = train(mlflow_server, name, "slow-20", tmp_path)
        registry.set_registered_model_alias(name, "champion", good["version"])
        seen_traffic: set[int] = set()

        def in_step() -> dict[str, Any] | None:
            canary = status(custom, namespace, name).get("canary") or {}
            seen_traffic.add(canary.get("traffic", 0))
            return canary if canary.get("stepStartedAt") and canary.get("step") == 0 else None

        before = wait_for(in_step, timeout=240, interval=0.5, what="the canary's first step")
        kill_and_restart(operator)
        after = status(custom, namespace, name)["canary"]
        assert (after["startedAt"], after["stepStartedAt"]) == (
            before["startedAt"],
            before["stepStartedAt"],
        )

        def promoted() -> Any:
            found = status(custom, namespace, name)
            seen_traffic.add((found.get("canary") or {}).get("traffic", 0))
            return found if (found.get("stable") or {}).get("version") == good["version"] else None

        found = wait_for(promoted, timeout=180, interval=0.5, what="the healthy canary's promotion")
        assert {30, 60} <= seen_traffic and max(seen_traffic) <= 60
        assert [h["event"] for h in found["history"]][-2:] == ["RolloutStarted", "Promoted"]
        wait_for(lambda: registry.get_model_version_by_alias(name, "production").version == good["version"],
                 timeout=30, what="promoteAlias production to move")  # fmt: skip
        assert found["previous"]["version"] == first["version"]

        # 2. A version that refuses a third of its inputs is rolled back once its failures pass
        #    failureLimit, although the operator is killed right after the first failing verdict.
        flaky = train(mlflow_server, name, "flaky", tmp_path)
        registry.set_registered_model_alias(name, "champion", flaky["version"])
        canary_errors = (
            f'sum(rate(model_infer_request_failure_total{{namespace="{namespace}",'
            f'model_version="{flaky["version"]}"}}[20s]))'
        )
        breach_seen: list[float] = []

        def first_failure() -> bool:
            if not breach_seen and (instant(prometheus, canary_errors) or 0) > 0:
                breach_seen.append(time.monotonic())
            return bool((status(custom, namespace, name).get("analysis") or {}).get("failures"))

        wait_for(first_failure, timeout=240, interval=0.25, what="the first failing verdict")
        away = kill_and_restart(operator)

        def rolled_back() -> Any:
            found = status(custom, namespace, name)
            return found if found.get("phase") == "RolledBack" else None

        found = wait_for(rolled_back, timeout=60, interval=0.25, what="the rollback")
        rolled_back_at = time.monotonic()
        # failureLimit 1: the second failing round rolls back, within two intervals of the
        # breach showing in Prometheus (plus the time the operator was down, plus slack).
        assert breach_seen and rolled_back_at - breach_seen[0] - away <= INTERVAL * 2 + 5
        assert [h["event"] for h in found["history"]].count("RolledBack") == 1
        assert found["stable"]["version"] == good["version"] and "canary" not in found
        [rejected] = found["rejectedVersions"]
        assert rejected["version"] == flaky["version"] and "error-rate = " in rejected["reason"]
        assert "> max 0.05" in rejected["reason"]
        degraded = condition(found, "Degraded")
        assert degraded["status"] == "True" and "error-rate" in degraded["message"]
        [event] = wait_for(lambda: events(core, namespace, "RolledBack"), timeout=20,
                           what="the RolledBack event")  # fmt: skip
        assert "error-rate = " in event.message and "> max 0.05" in event.message
        wait_for(lambda: registry.get_model_version(name, flaky["version"]).tags.get("modelops.io/status") == "rejected",
                 timeout=30, what="the rejected tag in the registry")  # fmt: skip
        service = custom.get_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", namespace, "inferenceservices", name
        )
        assert "canary" not in service["spec"]
        body = custom.get_namespaced_custom_object(*MD, namespace, "modeldeployments", name)
        assert body["spec"] == created["spec"]  # never written
        assert body["metadata"]["generation"] == created["metadata"]["generation"]
        holds(lambda: "canary" not in status(custom, namespace, name), INTERVAL * 2,
              "no new canary for the rejected version")  # fmt: skip

        # 3. compareTo: stable catches a canary 2.5 times slower, although both stay far under
        #    the absolute 0.5 s bound.
        slow = train(mlflow_server, name, "slow-50", tmp_path)
        registry.set_registered_model_alias(name, "champion", slow["version"])

        def slow_rejected() -> Any:
            found = status(custom, namespace, name)
            versions = [r["version"] for r in found.get("rejectedVersions", [])]
            return found if slow["version"] in versions and not found.get("canary") else None

        found = wait_for(
            slow_rejected, timeout=300, interval=0.5, what="the slow canary's rollback"
        )
        reason = next(
            r["reason"] for r in found["rejectedVersions"] if r["version"] == slow["version"]
        )
        assert "latency-vs-stable: canary" in reason and "maxRatio 1.6" in reason
        latency = next(m for m in found["analysis"]["metrics"] if m["name"] == "latency-vs-stable")
        assert latency["canaryValue"] < 0.5 and latency["stableValue"] < 0.5
        assert latency["value"] > 1.6
    assert found["stable"]["version"] == good["version"]
    # The stable version kept answering; only the flaky canary's share failed.
    assert traffic.codes[200] > 0, traffic.codes
    assert operator.metric("modelops_rollouts_total", result="rolled_back") >= 1


def test_no_data_and_a_prometheus_outage_pause_the_rollout_until_measurements_return(
    cluster: str,
    control_plane: ControlPlane,
    operator: Operator,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    namespace: str,
    tmp_path: Path,
) -> None:
    name = "quiet"
    registry = MlflowClient(mlflow_server.url)
    first = train(mlflow_server, name, "slow-0", tmp_path)
    registry.set_registered_model_alias(name, "champion", first["version"])
    create(custom, namespace, name, mlflow_server.url, prometheus.url, [ERRORS])
    serving(custom, namespace, name, first["version"])
    second = train(mlflow_server, name, "slow-0", tmp_path)
    registry.set_registered_model_alias(name, "champion", second["version"])

    # No requests: no data, so no verdict; past inconclusiveLimit the rollout pauses.
    def paused(why: str) -> Any:
        def check() -> Any:
            found = status(custom, namespace, name)
            metrics = condition(found, "MetricsAvailable")
            canary = found.get("canary") or {}
            return (
                found
                if metrics.get("status") == "False"
                and why in metrics.get("message", "")
                and canary.get("pausedReason")
                else None
            )

        return check

    found = wait_for(
        paused("no verdict"), timeout=240, interval=0.5, what="a pause for lack of data"
    )
    assert found["canary"]["step"] == 0 and found["stable"]["version"] == first["version"]
    assert not found.get("rejectedVersions") and found["phase"] == "Progressing"

    host = f"{name}.{namespace}.test"
    with Traffic(cluster, host, name):
        wait_for(lambda: condition(status(custom, namespace, name), "MetricsAvailable").get("status") == "True",
                 timeout=60, interval=0.5, what="measurements to resume")  # fmt: skip
        # Prometheus stops: queries fail; past consecutiveErrorLimit the rollout pauses.
        port = prometheus.port
        prometheus.stop()
        try:
            found = wait_for(
                paused("unreachable"), timeout=60, interval=0.5, what="a pause for failing queries"
            )
            assert found["stable"]["version"] == first["version"] and not found.get(
                "rejectedVersions"
            )
            step = found["canary"]["step"]

            def held() -> bool:
                now = status(custom, namespace, name)
                return bool(now["canary"]["step"] == step and now["phase"] == "Progressing")

            holds(held, INTERVAL * 2, "the paused step")
        finally:
            prometheus.start(control_plane.logs, port=port)
        serving(custom, namespace, name, second["version"])
