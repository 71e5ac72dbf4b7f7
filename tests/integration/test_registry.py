"""The operator deploys what the MLflow registry says: pinned versions and moving aliases,
downloaded by the modelops storage initializer that KServe's pod mutator injects, and registry
trouble reported without touching what is served. Real mlflow server, KServe, MLServer."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from mlflow import MlflowClient

from modelops_dev.control_plane import ControlPlane
from modelops_dev.kserve import KServeController
from modelops_dev.servers import MlflowServer
from tests.integration.conftest import KUBELET_GATEWAY, Operator, wait_for
from tests.integration.helpers import CLASS_ROWS as ROWS
from tests.integration.helpers import condition, ingress_host, predict, status, train

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cluster needs root")

MD = ("modelops.io", "v1alpha1")


@pytest.fixture(scope="module")
def cluster(
    kserve: KServeController, kubelet: Path, router: str, mlflow_server: MlflowServer
) -> str:
    return router


def create(custom: client.CustomObjectsApi, namespace: str, name: str, model: dict[str, Any],
           tracking_uri: str, credentials: str | None = None, **serving: Any) -> None:  # fmt: skip
    registry = {"trackingUri": tracking_uri, "pollInterval": "2s"}
    if credentials:
        registry["credentialsSecret"] = credentials
    custom.create_namespaced_custom_object(*MD, namespace, "modeldeployments", {
        "apiVersion": "modelops.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": name},
        "spec": {"model": {**model, "registry": registry},
                 "serving": {"storage": {"mode": "StorageInitializer"}, **serving}},
    })  # fmt: skip


def failed(custom: client.CustomObjectsApi, namespace: str, name: str) -> dict[str, Any]:
    """The status once the deployment has failed (waited for)."""

    def check() -> dict[str, Any] | None:
        found = status(custom, namespace, name)
        return found if found.get("phase") == "Failed" else None

    result: dict[str, Any] = wait_for(check, timeout=30, what=f"{name} to fail")
    return result


def healthy_with(custom: client.CustomObjectsApi, namespace: str, name: str, version: str) -> Any:
    def check() -> dict[str, Any] | None:
        found = status(custom, namespace, name)
        stable = found.get("stable") or {}
        return (
            found if found.get("phase") == "Healthy" and stable.get("version") == version else None
        )

    return wait_for(
        check, timeout=240, interval=1, what=f"{name} Healthy serving version {version}"
    )


def test_a_pinned_version_is_resolved_downloaded_and_served(
    cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    custom: client.CustomObjectsApi,
    namespace: str,
    tmp_path: Path,
) -> None:
    trained = train(mlflow_server, "iris-pinned", "logistic", tmp_path)
    create(custom, namespace, "iris", {"name": "iris-pinned", "version": trained["version"]},
           mlflow_server.url)  # fmt: skip
    found = healthy_with(custom, namespace, "iris", trained["version"])
    stable = found["stable"]
    assert stable["storageUri"] == f"models:/iris-pinned/{trained['version']}"
    assert stable["runId"] == trained["run_id"]
    assert stable["source"].startswith("models:/m-")
    # MLflow 3 stored model.skops: KServe's sklearn runtime cannot read it, MLflow's can.
    assert stable["modelFormat"] == "mlflow"
    assert "model.skops" in stable["modelFormatRule"]
    service = custom.get_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", namespace, "inferenceservices", "iris"
    )
    assert service["spec"]["predictor"]["model"]["storageUri"] == stable["storageUri"]
    assert predict(cluster, ingress_host("iris", namespace), ROWS) == [0, 2, 1]
    assert condition(found, "RegistryReachable")["status"] == "True"


def test_a_followed_alias_moves_the_deployment_to_its_new_version(
    cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    custom: client.CustomObjectsApi,
    namespace: str,
    tmp_path: Path,
) -> None:
    good = train(mlflow_server, "iris-alias", "logistic", tmp_path)
    constant = train(mlflow_server, "iris-alias", "constant", tmp_path)
    registry = MlflowClient(mlflow_server.url)
    registry.set_registered_model_alias("iris-alias", "champion", good["version"])
    create(
        custom, namespace, "iris", {"name": "iris-alias", "alias": "champion"}, mlflow_server.url
    )
    healthy_with(custom, namespace, "iris", good["version"])
    assert predict(cluster, ingress_host("iris", namespace), [ROWS[1]]) == [2]

    registry.set_registered_model_alias("iris-alias", "champion", constant["version"])
    # The move is followed like any new version: beside the old one, all traffic once ready.
    found = healthy_with(custom, namespace, "iris", constant["version"])
    assert [h["event"] for h in found["history"]] == ["Deployed", "RolloutStarted", "Promoted"]
    service = custom.get_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", namespace, "inferenceservices", "iris"
    )
    assert service["spec"]["predictor"]["model"]["storageUri"] == (
        f"models:/iris-alias/{constant['version']}"
    )
    # The old predictor drains for a few seconds, so the new version's answers are waited for.
    wait_for(
        lambda: predict(cluster, ingress_host("iris", namespace), [ROWS[1]]) == [0],
        timeout=60, interval=0.5, what="the new version to answer",
    )  # fmt: skip


def test_unknown_aliases_versions_and_models_are_reported_and_nothing_is_deployed(
    cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    namespace: str,
    tmp_path: Path,
) -> None:
    train(mlflow_server, "iris-unknown", "logistic", tmp_path)
    cases = {
        "alias": ({"name": "iris-unknown", "alias": "nobody"}, "alias 'nobody'"),
        "version": ({"name": "iris-unknown", "version": "99"}, "version 99"),
        "model": ({"name": "no-such-model", "version": "1"}, "'no-such-model'"),
    }
    for name, (model, _) in cases.items():
        create(custom, namespace, name, model, mlflow_server.url)

    for name, (_, named) in cases.items():
        found = failed(custom, namespace, name)
        assert condition(found, "Ready")["reason"] == "NotFound"
        assert named in found["message"] and "does not exist" in found["message"]
    reasons = {e.reason for e in core.list_namespaced_event(namespace).items}
    assert "NotFound" in reasons  # a Warning event a person sees in `kubectl describe`
    services = custom.list_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", namespace, "inferenceservices"
    )
    assert services["items"] == []


def test_resolve_mode_and_a_registry_outage_that_changes_nothing(
    cluster: str,
    operator: Operator,
    control_plane: ControlPlane,
    custom: client.CustomObjectsApi,
    namespace: str,
    tmp_path: Path,
) -> None:
    """Resolve mode: mlflow-artifacts:/ mapped onto the store behind a registry of its own,
    downloaded by KServe's storage initializer, served by the native sklearn runtime (the
    model is stored as model.pkl). Then that registry stops, and comes back."""
    own = MlflowServer(tmp_path / "mlflow", host=KUBELET_GATEWAY)
    own.start(control_plane.logs)
    try:
        trained = train(own, "iris-outage", "pickle", tmp_path)
        MlflowClient(own.url).set_registered_model_alias("iris-outage", "champion",
                                                         trained["version"])  # fmt: skip
        custom.create_namespaced_custom_object(*MD, namespace, "modeldeployments", {
            "apiVersion": "modelops.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "iris"},
            "spec": {"model": {"name": "iris-outage", "alias": "champion", "registry": {
                "trackingUri": own.url, "pollInterval": "2s",
                "artifactsDestination": f"file://{own.artifacts}"}}},
        })  # fmt: skip
        found = healthy_with(custom, namespace, "iris", trained["version"])
        stable = found["stable"]
        assert stable["storageUri"].startswith(f"file://{own.artifacts}/")
        assert stable["storageUri"].endswith("/artifacts")
        assert "mapped onto artifactsDestination" in stable["storageRule"]
        assert stable["modelFormat"] == "sklearn"
        assert predict(cluster, ingress_host("iris", namespace), ROWS) == [0, 2, 1]

        def service_version() -> str:
            service = custom.get_namespaced_custom_object(
                "serving.kserve.io", "v1beta1", namespace, "inferenceservices", "iris"
            )
            return str(service["metadata"]["resourceVersion"])

        before = service_version()
        port = own.port
        own.stop()

        def unreachable() -> dict[str, Any] | None:
            found = status(custom, namespace, "iris")
            return found if condition(found, "RegistryReachable").get("status") == "False" else None

        held = wait_for(unreachable, timeout=30, interval=0.5, what="RegistryReachable=False")
        assert condition(held, "RegistryReachable")["reason"] == "RegistryUnreachable"
        assert held["phase"] == "Healthy" and held["stable"] == stable
        assert service_version() == before, "the InferenceService changed during the outage"
        assert predict(cluster, ingress_host("iris", namespace), ROWS) == [0, 2, 1]

        own.start(control_plane.logs, port=port)
        wait_for(
            lambda: condition(status(custom, namespace, "iris"), "RegistryReachable").get("status")
            == "True",
            timeout=60, interval=0.5, what="RegistryReachable=True after the registry returns",
        )  # fmt: skip
        assert service_version() == before
    finally:
        own.stop()


def test_deployments_of_one_model_share_one_registry_lookup_per_interval(
    cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    custom: client.CustomObjectsApi,
    namespace: str,
    tmp_path: Path,
) -> None:
    trained = train(mlflow_server, "iris-shared", "logistic", tmp_path)
    MlflowClient(mlflow_server.url).set_registered_model_alias("iris-shared", "champion",
                                                              trained["version"])  # fmt: skip
    for name in ("a", "b", "c", "d"):
        create(custom, namespace, name, {"name": "iris-shared", "alias": "champion"},
               mlflow_server.url, minReplicas=0)  # fmt: skip
    wait_for(lambda: all(status(custom, namespace, n).get("inferenceService") for n in "abcd"),
             timeout=60, what="every deployment resolved")  # fmt: skip
    start = operator.metric("modelops_registry_lookups_total", model="iris-shared")
    began = time.monotonic()
    wait_for(lambda: operator.metric("modelops_registry_lookups_total", model="iris-shared")
             >= start + 5, timeout=60, interval=0.2, what="five more lookups")  # fmt: skip
    intervals = (time.monotonic() - began) / 2  # pollInterval 2 s
    # Four deployments, one model and alias: one lookup per interval, not four (however slow
    # the machine: the bound is the time the five lookups took).
    assert intervals >= 5 - 1, f"5 lookups in {intervals:.1f} poll intervals"


def test_credentials_come_from_a_secret_and_never_show(
    cluster: str,
    operator: Operator,
    mlflow_server: MlflowServer,
    control_plane: ControlPlane,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    namespace: str,
) -> None:
    token = "tok-" + namespace  # a value to search for everywhere it must not appear
    core.create_namespaced_secret(namespace, {"metadata": {"name": "mlflow-credentials"},
                                              "stringData": {"MLFLOW_TRACKING_TOKEN": token}})  # fmt: skip
    for name, secret in (("with-secret", "mlflow-credentials"), ("missing-secret", "nope")):
        create(custom, namespace, name, {"name": "iris-credentials", "alias": "nobody"},
               mlflow_server.url, credentials=secret)  # fmt: skip

    # The token reached the registry (which answered: no such model), the missing Secret did not.
    assert condition(failed(custom, namespace, "with-secret"), "Ready")["reason"] == "NotFound"
    missing = failed(custom, namespace, "missing-secret")
    assert condition(missing, "Ready")["reason"] == "CredentialsSecretMissing"
    assert f"{namespace}/nope" in missing["message"]
    events = core.list_namespaced_event(namespace).items
    texts = [str(status(custom, namespace, n)) for n in ("with-secret", "missing-secret")]
    texts += [e.message or "" for e in events] + [operator.tail(400)]
    assert not [t for t in texts if token in t]


async def test_registry_write_back_sets_aliases_and_tags_idempotently(
    mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    from modelops.adapters.registry import Registry, RegistryConnection

    trained = train(mlflow_server, "iris-write-back", "logistic", tmp_path)
    registry = Registry(RegistryConnection(mlflow_server.url))
    for _ in range(2):  # twice: the second call changes nothing and does not fail
        await registry.set_alias("iris-write-back", "champion", trained["version"])
        await registry.tag_version("iris-write-back", trained["version"], "modelops.io/status",
                                   "promoted")  # fmt: skip
    version = MlflowClient(mlflow_server.url).get_model_version_by_alias(
        "iris-write-back", "champion"
    )
    assert version.version == trained["version"]
    assert version.tags["modelops.io/status"] == "promoted"


def test_wrong_registry_credentials_are_reported_as_denied(
    cluster: str,
    operator: Operator,
    control_plane: ControlPlane,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    namespace: str,
    tmp_path: Path,
) -> None:
    """Against MLflow's basic-auth app: a wrong password is PermissionDenied (no retry
    storm), the right one gets through (the alias is then simply unknown)."""
    own = MlflowServer(
        tmp_path / "mlflow", host=KUBELET_GATEWAY, admin_password="admin-pass-4-tests"
    )
    own.start(control_plane.logs)
    try:
        for secret, password in (("wrong", "not-the-password"), ("right", "admin-pass-4-tests")):
            core.create_namespaced_secret(namespace, {"metadata": {"name": secret}, "stringData": {
                "MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": password}})  # fmt: skip
        for name, secret in (("denied", "wrong"), ("allowed", "right")):
            create(custom, namespace, name, {"name": "iris-auth", "alias": "champion"}, own.url,
                   credentials=secret)  # fmt: skip
        denied = failed(custom, namespace, "denied")
        assert condition(denied, "Ready")["reason"] == "PermissionDenied"
        assert "credentials Secret" in denied["message"]
        allowed = failed(custom, namespace, "allowed")
        assert condition(allowed, "Ready")["reason"] == "NotFound"
        assert "not-the-password" not in str(denied) + operator.tail(400)
    finally:
        own.stop()
