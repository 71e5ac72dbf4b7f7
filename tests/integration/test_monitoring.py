"""Production monitoring on the real stack: the chart's monitor in a pod, KServe's own agent
sidecar (built from the KServe module, injected by KServe's pod mutator) logging each request
and response of a monitored predictor to it, Prometheus scraping it. Drift is measured against
the reference profile the version's training run logged, live accuracy from feedback equals
the offline accuracy of the same rows, and a version without a profile is named in a condition
and in the monitor's drop counter."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from mlflow import MlflowClient
from sklearn.datasets import load_iris

from modelops.adapters.prometheus import Prometheus as PrometheusClient
from modelops.adapters.prometheus import PrometheusConnection
from modelops_dev.control_plane import ControlPlane
from modelops_dev.monitor import install_monitor, uninstall_monitor
from modelops_dev.servers import MlflowServer, Prometheus
from tests.integration.conftest import Operator, wait_for
from tests.integration.helpers import (
    ERRORS,
    MD,
    Traffic,
    condition,
    create,
    ingress_host,
    serving,
    status,
    train,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cluster needs root")

MIN_SAMPLES = 100
IRIS = load_iris()
FEATURES = list(IRIS.feature_names)


@pytest.fixture(scope="module")
def monitor(
    serving_cluster: str,
    control_plane: ControlPlane,
    mlflow_server: MlflowServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    """The chart's monitor objects applied in a namespace of their own; its Service URL."""
    namespace = f"monitor-{uuid.uuid4().hex[:6]}"
    installed = install_monitor(
        control_plane, mlflow_server.url, None, tmp_path_factory.mktemp("monitor"),
        namespace=namespace, min_samples=MIN_SAMPLES, window=1000,
    )  # fmt: skip
    try:
        yield {
            "url": installed.url,
            "host": installed.host,
            "token": installed.token_file.read_text(),
            "namespace": namespace,
        }
    finally:
        uninstall_monitor(control_plane, namespace)


def monitored(name: str, version: str, tracking_uri: str, url: str) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
        "spec": {"model": {"name": name, "version": version, "registry": {"trackingUri": tracking_uri}},
                 "serving": {"storage": {"mode": "StorageInitializer"}},
                 "monitoring": {"drift": {"enabled": True}, "logger": {"url": url}}},
    }  # fmt: skip


def infer(
    router: str, host: str, rows: list[list[float]], request_id: str, model: str = "iris"
) -> list[int]:
    """One V2 request with the id KServe's agent logs it under (Ce-Id)."""
    body = {"inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP64",
                        "data": [v for row in rows for v in row]}]}  # fmt: skip
    request = urllib.request.Request(
        f"{router}/v2/models/{model}/infer", data=json.dumps(body).encode(),
        headers={"Host": host, "Content-Type": "application/json", "Ce-Id": request_id},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    return [int(v) for v in answer["outputs"][0]["data"]]


def feedback(router: str, host: str, body: Any, token: str | None) -> tuple[int, Any]:
    headers = {"Host": host, "Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"{router}/feedback", data=json.dumps(body).encode(),
                                     headers=headers)  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def series(prometheus: Prometheus, expression: str) -> dict[str, float]:
    """An instant query through the operator's Prometheus adapter: {label value: value} keyed
    by the `feature` or `metric` label when present."""

    async def ask() -> Any:
        adapter = PrometheusClient(PrometheusConnection(prometheus.url))
        try:
            return await adapter.query(expression)
        finally:
            await adapter.close()

    answer = asyncio.run(ask())
    return {
        s.labels.get("feature") or s.labels.get("metric") or s.labels.get("reason") or "": s.value
        for s in answer
    }


@pytest.mark.timeout(900)
def test_drift_and_live_quality_of_logged_traffic_reach_prometheus(
    monitor: dict[str, str],
    serving_cluster: str,
    kubelet: Path,
    operator: Operator,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    namespace: str,
    tmp_path: Path,
) -> None:
    name = "iris"
    first = train(mlflow_server, name, "pickle+profile", tmp_path)
    custom.create_namespaced_custom_object(
        *MD, namespace, "modeldeployments",
        monitored(name, first["version"], mlflow_server.url, monitor["url"]),
    )  # fmt: skip
    wait_for(lambda: status(custom, namespace, name).get("phase") == "Healthy",
             timeout=300, interval=1, what="iris served")  # fmt: skip
    found = condition(status(custom, namespace, name), "Monitoring")
    assert (found.get("status"), found.get("reason")) == ("True", "Logging"), found
    # KServe's pod mutator injected its agent beside the model server.
    [pod] = core.list_namespaced_pod(
        namespace, label_selector=f"serving.kserve.io/inferenceservice={name}"
    ).items
    assert {c.name for c in pod.spec.containers} == {"kserve-container", "agent"}

    host = ingress_host(name, namespace)
    labels = f'namespace="{namespace}",deployment="{name}",version="{first["version"]}"'
    # The training rows themselves: no drift at all.
    answers: dict[str, tuple[list[int], list[int]]] = {}
    for start in range(0, 150, 10):
        request_id = f"iris-{start}"
        rows = IRIS.data[start : start + 10].tolist()
        answers[request_id] = (infer(serving_cluster, host, rows, request_id),
                               IRIS.target[start : start + 10].tolist())  # fmt: skip

    def measured() -> dict[str, float] | None:
        found = series(prometheus, f'modelops_drift_psi{{{labels},track="stable"}}')
        return found if len(found) == len(FEATURES) else None

    psi = wait_for(measured, timeout=120, interval=2, what="drift of the stable in Prometheus")
    assert all(value < 0.01 for value in psi.values()), psi
    assert series(prometheus, f"modelops_monitor_window_samples{{{labels}}}") == {"": 150.0}

    # Ground truth for every logged prediction: live accuracy is the offline accuracy of the
    # same rows, exactly.
    monitor_host = monitor["host"]
    for request_id, (_, truth) in answers.items():
        code, body = feedback(
            serving_cluster, monitor_host, {"id": request_id, "labels": truth}, monitor["token"]
        )
        assert (code, body) == (200, {"labelled": 10}), body
    predicted = [p for answer, _ in answers.values() for p in answer]
    offline = sum(p == t for p, t in zip(predicted, IRIS.target.tolist(), strict=True)) / 150
    wait_for(lambda: series(prometheus, f'modelops_model_quality{{{labels},metric="accuracy"}}')
             .get("accuracy") == offline, timeout=60, interval=2, what="live accuracy")  # fmt: skip
    # Bad feedback: a clear 4xx each.
    again = {"id": "iris-0", "labels": [0] * 10}
    assert feedback(serving_cluster, monitor_host, again, monitor["token"])[0] == 404
    assert feedback(serving_cluster, monitor_host, {"id": "x", "label": 1}, token="wrong")[0] == 401
    # The feedback token shows nowhere: not in the monitor's log, its metrics or its Events.
    logs = "".join(log.read_text(errors="replace")
                   for log in kubelet.glob(f"pods/{monitor['namespace']}_*/*.log"))  # fmt: skip
    request = urllib.request.Request(f"{serving_cluster}/metrics", headers={"Host": monitor_host})
    with urllib.request.urlopen(request, timeout=10) as answer:
        exposition = answer.read().decode()
    said = " ".join(f"{e.reason} {e.message}" for e in core.list_event_for_all_namespaces().items)
    assert "Monitor listening" in logs and "modelops_drift_psi" in exposition
    assert all(monitor["token"] not in text for text in (logs, exposition, said))

    # The same rows with sepal width moved by 2 cm: that feature drifts, the others do not.
    shifted = IRIS.data.copy()
    shifted[:, 1] += 2.0
    for start in range(0, 150, 10):
        infer(serving_cluster, host, shifted[start : start + 10].tolist(), f"shift-{start}")

    def drifted() -> dict[str, float] | None:
        # Read once the window holds all 300 rows: the other features then have exactly the
        # training distribution (twice over). Samples first: the PSI read after is as new.
        if series(prometheus, f"modelops_monitor_window_samples{{{labels}}}") != {"": 300.0}:
            return None
        found = series(prometheus, f'modelops_drift_psi{{{labels},track="stable"}}')
        return found if found.get("sepal width (cm)", 0) > 0.2 else None

    psi = wait_for(drifted, timeout=120, interval=2, what="sepal width to drift")
    assert all(v < 0.01 for f, v in psi.items() if f != "sepal width (cm)"), psi
    share = series(prometheus, f"modelops_drifted_features_share{{{labels}}}")
    assert share == {"": 0.25}


@pytest.mark.timeout(600)
def test_a_version_without_a_reference_profile_is_named_not_measured(
    monitor: dict[str, str],
    serving_cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    namespace: str,
    tmp_path: Path,
) -> None:
    name = "bare"
    first = train(mlflow_server, name, "pickle", tmp_path)
    custom.create_namespaced_custom_object(
        *MD, namespace, "modeldeployments",
        monitored(name, first["version"], mlflow_server.url, monitor["url"]),
    )  # fmt: skip

    def named() -> Any:
        found = condition(status(custom, namespace, name), "Monitoring")
        return found if found.get("reason") == "NoReferenceProfile" else None

    found = wait_for(named, timeout=120, interval=1, what="the NoReferenceProfile condition")
    assert found["status"] == "False" and "log_reference" in found["message"]
    wait_for(lambda: status(custom, namespace, name).get("phase") == "Healthy",
             timeout=300, interval=1, what="bare served")  # fmt: skip
    # Served all the same; its traffic is counted as dropped for want of a profile.
    host = ingress_host(name, namespace)
    infer(serving_cluster, host, IRIS.data[:3].tolist(), "bare-1", model=name)
    wait_for(lambda: series(prometheus, 'modelops_monitor_dropped_total{reason="no-profile"}'),
             timeout=60, interval=2, what="the no-profile drop in Prometheus")  # fmt: skip


@pytest.mark.timeout(900)
def test_a_canarys_traffic_is_logged_apart_from_the_stables_through_the_route(
    monitor: dict[str, str],
    serving_cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    namespace: str,
    tmp_path: Path,
) -> None:
    name = "routed"
    registry = MlflowClient(mlflow_server.url)
    first = train(mlflow_server, name, "slow-0+profile", tmp_path)
    registry.set_registered_model_alias(name, "champion", first["version"])
    drift = {"drift": {"enabled": True}, "logger": {"url": monitor["url"]}}
    create(custom, namespace, name, mlflow_server.url, prometheus.url, [ERRORS],
           changes={"spec__monitoring": drift})  # fmt: skip
    serving(custom, namespace, name, first["version"])

    def samples(version: str, track: str) -> float:
        found = series(prometheus, f'modelops_monitor_window_samples{{namespace="{namespace}",'
                                   f'deployment="{name}",version="{version}",track="{track}"}}')  # fmt: skip
        return found.get("", 0.0)

    seen: set[tuple[str, str]] = set()
    with Traffic(serving_cluster, f"{name}.{namespace}.test", name, rate=12) as traffic:
        second = train(mlflow_server, name, "slow-0+profile", tmp_path)
        registry.set_registered_model_alias(name, "champion", second["version"])

        def promoted() -> bool:
            for version, track in ((first["version"], "stable"), (second["version"], "canary")):
                if samples(version, track) > 0:
                    seen.add((version, track))
            found = status(custom, namespace, name)
            return (found.get("stable") or {}).get("version") == second["version"]

        wait_for(promoted, timeout=300, interval=2, what="the second version promoted")
        # After the promotion the same version's traffic is the stable's (its pod unchanged).
        wait_for(lambda: samples(second["version"], "stable") > 0, timeout=60, interval=2,
                 what="the promoted version's traffic logged as the stable's")  # fmt: skip
    assert seen == {(first["version"], "stable"), (second["version"], "canary")}
    assert set(traffic.codes) == {200}, str(traffic)
