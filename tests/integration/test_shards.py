"""Shards on the real control plane: two operator processes, shard `a` and the default shard,
each watching only its own deployments (label selectors applied by the API server). The audit
log's user agents prove each deployment is written by exactly one shard; relabelling one hands
it (and its InferenceService) over without a write from the shard it left, under steady
traffic with no failed request; a shard that is down delays only its own deployments."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from modelops.core.sharding import SHARD_LABEL
from modelops_dev.control_plane import OPERATOR_USER, ControlPlane
from modelops_dev.servers import MlflowServer
from tests.integration.conftest import Operator
from tests.integration.helpers import MD, Traffic, serving, status, train

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cluster needs root")

WRITES = {"create", "patch", "update", "delete"}
OWNED = {"modeldeployments", "inferenceservices", "httproutes", "services", "jobs"}


@pytest.fixture
def shards(
    no_session_operator: None, control_plane: ControlPlane, tmp_path: Path
) -> Iterator[dict[str, Operator]]:
    """Shard `a` and the default shard (which then owns only unlabelled deployments)."""
    running = {
        "a": Operator(control_plane, tmp_path / "shard-a.log", "--shard", "a"),
        "default": Operator(control_plane, tmp_path / "shard-default.log", "--default-shard"),
    }
    try:
        for operator in running.values():
            operator.start()
        yield running
    finally:
        for operator in running.values():
            operator.stop()


def pinned(name: str, version: str, tracking_uri: str, namespace: str,
           shard: str | None = None) -> dict[str, Any]:  # fmt: skip
    labels = {SHARD_LABEL: shard} if shard else {}
    return {
        "apiVersion": "modelops.io/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {"model": {"name": name, "version": version, "registry": {"trackingUri": tracking_uri}},
                 "serving": {"storage": {"mode": "StorageInitializer"}, "minReplicas": 1,
                             "httpRoute": {"hostnames": [f"{name}.{namespace}.test"]}}},
    }  # fmt: skip


def writers(plane: ControlPlane, namespace: str, name: str,
            since: datetime | None = None) -> set[str]:  # fmt: skip
    """The user agents of the operator's writes to `name`'s objects (the deployment, its
    InferenceService, route, Services and Jobs) in `namespace`, from the audit log."""
    found = set()
    for line in plane.audit_log.read_text().splitlines():
        entry = json.loads(line)
        ref = entry.get("objectRef") or {}
        if (entry["user"]["username"] != OPERATOR_USER or entry["verb"] not in WRITES
                or ref.get("namespace") != namespace or ref.get("resource") not in OWNED
                or not str(ref.get("name", "")).startswith(name)):  # fmt: skip
            continue
        if since is not None and received(entry) < since:
            continue
        found.add(entry.get("userAgent", ""))
    return found


def received(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["requestReceivedTimestamp"].replace("Z", "+00:00"))


def shard_label_of_service(custom: client.CustomObjectsApi, namespace: str, name: str) -> Any:
    isvc = custom.get_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", namespace, "inferenceservices", name
    )
    return isvc["metadata"].get("labels", {}).get(SHARD_LABEL)


@pytest.mark.timeout(900)
def test_each_shard_writes_only_its_own_deployments_and_a_relabel_hands_one_over(
    shards: dict[str, Operator],
    serving_cluster: str,
    control_plane: ControlPlane,
    mlflow_server: MlflowServer,
    custom: client.CustomObjectsApi,
    namespace: str,
    tmp_path: Path,
) -> None:
    versions = {name: [train(mlflow_server, name, "slow-0", tmp_path)["version"] for _ in range(2)]
                for name in ("left", "right")}  # fmt: skip
    custom.create_namespaced_custom_object(*MD, namespace, "modeldeployments", pinned(
        "left", versions["left"][0], mlflow_server.url, namespace, shard="a"))  # fmt: skip
    custom.create_namespaced_custom_object(*MD, namespace, "modeldeployments", pinned(
        "right", versions["right"][0], mlflow_server.url, namespace))  # fmt: skip
    serving(custom, namespace, "left", versions["left"][0])
    serving(custom, namespace, "right", versions["right"][0])
    assert writers(control_plane, namespace, "left") == {"modelops shard=a"}
    assert writers(control_plane, namespace, "right") == {"modelops shard=default"}
    assert shard_label_of_service(custom, namespace, "left") == "a"
    assert shard_label_of_service(custom, namespace, "right") is None

    # Relabel `right` to shard a, then ask for its next version: shard a rolls it out, the
    # default shard writes nothing more, and no request through the route fails meanwhile.
    with Traffic(serving_cluster, f"right.{namespace}.test", "right") as traffic:
        moved_at = datetime.now().astimezone()
        custom.patch_namespaced_custom_object(*MD, namespace, "modeldeployments", "right",
                                              {"metadata": {"labels": {SHARD_LABEL: "a"}}})  # fmt: skip
        custom.patch_namespaced_custom_object(*MD, namespace, "modeldeployments", "right",
                                              {"spec": {"model": {"version": versions["right"][1]}}})  # fmt: skip
        serving(custom, namespace, "right", versions["right"][1])
    assert writers(control_plane, namespace, "right", since=moved_at) == {"modelops shard=a"}
    assert shard_label_of_service(custom, namespace, "right") == "a"
    assert sum(traffic.codes.values()) > 100
    assert set(traffic.codes) == {200}, str(traffic)

    # Shard a down: its deployment waits, the default shard's keeps being served.
    shards["a"].stop()
    custom.patch_namespaced_custom_object(*MD, namespace, "modeldeployments", "left",
                                          {"spec": {"model": {"version": versions["left"][1]}}})  # fmt: skip
    third = train(mlflow_server, "third", "slow-0", tmp_path)["version"]
    custom.create_namespaced_custom_object(*MD, namespace, "modeldeployments", pinned(
        "third", third, mlflow_server.url, namespace))  # fmt: skip
    serving(custom, namespace, "third", third)
    left = status(custom, namespace, "left")
    assert left["stable"]["version"] == versions["left"][0] and not left.get("canary")
    assert writers(control_plane, namespace, "third") == {"modelops shard=default"}
    shards["a"].start()
    serving(custom, namespace, "left", versions["left"][1])
    assert writers(control_plane, namespace, "left") == {"modelops shard=a"}
