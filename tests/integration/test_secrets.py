"""Credentials never show: a canary rollout and a watched stable version with every credential a
deployment can reference (an MLflow token, Prometheus basic auth, a Prometheus bearer token),
each checked to have been sent, and then searched for in everything the operator writes or
says: its log, the Events, the ModelDeployments, the objects it made, and its metrics. (The
monitor's feedback token: test_monitoring.py.)"""

from __future__ import annotations

import base64
import json
import os
import urllib.request
import uuid
from pathlib import Path

import pytest
from kubernetes import client
from mlflow import MlflowClient

from modelops_dev.fault_proxy import FaultProxy
from modelops_dev.servers import MlflowServer
from tests.integration.conftest import Operator, wait_for
from tests.integration.helpers import ERRORS, MD, Traffic, create, serving, train

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cluster needs root")


@pytest.mark.timeout(600)
def test_no_credential_appears_in_logs_events_status_objects_or_metrics(
    serving_cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    prometheus_proxy: FaultProxy,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    namespace: str,
    tmp_path: Path,
) -> None:
    name = "iris"
    token, password = f"mlflow-{uuid.uuid4().hex}", f"prom-{uuid.uuid4().hex}"
    bearer = f"bearer-{uuid.uuid4().hex}"
    basic = base64.b64encode(f"modelops:{password}".encode()).decode()
    core.create_namespaced_secret(namespace, {"metadata": {"name": "mlflow-credentials"},
                                              "stringData": {"MLFLOW_TRACKING_TOKEN": token}})  # fmt: skip
    core.create_namespaced_secret(namespace, {"metadata": {"name": "prometheus-auth"},
                                              "stringData": {"username": "modelops", "password": password}})  # fmt: skip
    core.create_namespaced_secret(namespace, {"metadata": {"name": "prometheus-token"},
                                              "stringData": {"token": bearer}})  # fmt: skip
    registry = MlflowClient(mlflow_server.url)
    first = train(mlflow_server, name, "slow-0", tmp_path)["version"]
    registry.set_registered_model_alias(name, "champion", first)
    create(custom, namespace, name, mlflow_server.url, prometheus_proxy.url, [ERRORS],
           changes={"spec__model__registry__credentialsSecret": "mlflow-credentials",
                    "spec__analysis__prometheus__authSecret": "prometheus-auth"})  # fmt: skip
    serving(custom, namespace, name, first)
    # A second deployment of the same version, watched after promotion (its analysis queries
    # Prometheus every interval) with a bearer token.
    watched = "iris-watched"
    create(custom, namespace, watched, mlflow_server.url, prometheus_proxy.url, [ERRORS],
           changes={"spec__model__name": name, "spec__model__alias": None,
                    "spec__model__version": first, "spec__serving__httpRoute": None,
                    "spec__model__registry__credentialsSecret": "mlflow-credentials",
                    "spec__analysis__prometheus__authSecret": "prometheus-token",
                    "spec__monitoring": {"rollbackWindow": "10m"}})  # fmt: skip
    serving(custom, namespace, watched, first)
    second = train(mlflow_server, name, "slow-0", tmp_path)["version"]
    with Traffic(serving_cluster, f"{name}.{namespace}.test", name):
        registry.set_registered_model_alias(name, "champion", second)
        serving(custom, namespace, name, second)  # promoted on Prometheus's answers

    # Sent where they belong (the registry's token is covered by test_registry.py).
    wait_for(lambda: prometheus_proxy.authorizations[f"Bearer {bearer}"] > 0, timeout=60,
             interval=0.5, what="the watched version's analysis, with its token")  # fmt: skip
    assert prometheus_proxy.authorizations[f"Basic {basic}"] > 0, prometheus_proxy.authorizations

    def get(group: str, version: str, plural: str, which: str = name) -> str:
        return json.dumps(
            custom.get_namespaced_custom_object(group, version, namespace, plural, which)
        )

    with urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics") as answer:
        metrics = answer.read().decode()
    places = {
        "the operator's log": operator.log.read_text(errors="replace"),
        "the Events": "\n".join(f"{e.reason} {e.message}" for e in core.list_namespaced_event(namespace).items),
        "the ModelDeployment": get(*MD, "modeldeployments"),
        "the watched ModelDeployment": get(*MD, "modeldeployments", watched),
        "the InferenceService": get("serving.kserve.io", "v1beta1", "inferenceservices"),
        "the watched InferenceService": get("serving.kserve.io", "v1beta1", "inferenceservices", watched),
        "the HTTPRoute": get("gateway.networking.k8s.io", "v1", "httproutes"),
        "the metrics": metrics,
    }  # fmt: skip
    assert all(places.values()), [where for where, text in places.items() if not text]
    leaks = [(where, secret) for where, text in places.items()
             for secret in (token, password, basic, bearer) if secret in text]  # fmt: skip
    assert not leaks, leaks
