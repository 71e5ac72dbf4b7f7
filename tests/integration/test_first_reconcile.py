"""ModelDeployment -> InferenceService on the real control plane, with the operator running."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from kubernetes import client

from modelops_dev.control_plane import ControlPlane
from tests.integration.conftest import Operator, operator_writes, wait_for

GROUP, VERSION, PLURAL = "modelops.io", "v1alpha1", "modeldeployments"
KSERVE = ("serving.kserve.io", "v1beta1")
QUIET = 4.0


def deployment(name: str, version: str = "7", **serving: Any) -> dict[str, Any]:
    return {
        "apiVersion": "modelops.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "fraud-detector", "version": version},
            "serving": {
                "modelFormat": {"name": "sklearn"},
                "storageUri": f"s3://models/fraud/{version}",
                **serving,
            },
        },
    }


class Cluster:
    """Reads and writes of one test namespace."""

    def __init__(
        self, custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str
    ) -> None:
        self.custom, self.core, self.namespace = custom, core, namespace

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, body, field_validation="Strict"
        )
        return result

    def deployment(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )
        return result

    def patch_deployment(self, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, patch
        )

    def service(self, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.custom.get_namespaced_custom_object(
                *KSERVE, self.namespace, "inferenceservices", name
            )
            return result
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def patch_service(self, name: str, patch: dict[str, Any], status: bool = False) -> None:
        if status:
            self.custom.patch_namespaced_custom_object_status(
                *KSERVE, self.namespace, "inferenceservices", name, patch
            )
        else:
            self.custom.patch_namespaced_custom_object(
                *KSERVE, self.namespace, "inferenceservices", name, patch
            )

    def event_reasons(self, name: str) -> list[str]:
        events = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}"
        )
        return [
            event.reason
            for event in events.items
            if event.involved_object.kind == "ModelDeployment"
        ]

    def settled(self, name: str) -> dict[str, Any] | None:
        """The deployment once its status describes its current generation."""
        body = self.deployment(name)
        status = body.get("status") or {}
        return body if status.get("observedGeneration") == body["metadata"]["generation"] else None


def quiet_writes(plane: ControlPlane, namespace: str, *, include_events: bool = False) -> int:
    """The operator's write count once it has stopped changing for QUIET seconds: KServe's
    controller, when it runs in the session, updates the InferenceService's status after the
    first reconcile, and the operator rightly mirrors that."""
    deadline = time.monotonic() + 60
    count = len(operator_writes(plane, namespace, include_events=include_events))
    changed = time.monotonic()
    while time.monotonic() - changed < QUIET:
        assert time.monotonic() < deadline, f"the operator kept writing in {namespace}"
        time.sleep(0.5)
        now = len(operator_writes(plane, namespace, include_events=include_events))
        if now != count:
            count, changed = now, time.monotonic()
    return count


def kserve_view(cluster: Cluster, *names: str) -> str:
    """What KServe's controller last reported for these InferenceServices (timestamps left out)."""
    found = {}
    for name in names:
        status = (cluster.service(name) or {}).get("status") or {}
        found[name] = {**status, "conditions": [
            {k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions", [])]}  # fmt: skip
    return json.dumps(found, sort_keys=True)


def only_mirrored(writes: list[tuple[str, str, str, str]], kserve_changed: bool) -> bool:
    """No writes; or, when KServe's controller changed an InferenceService's status meanwhile
    (it runs in the session once a serving test started it), status writes mirroring that."""
    if not kserve_changed:
        return writes == []
    return all(w[:3] == ("patch", "modeldeployments", "status") for w in writes)


def described(writes: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """Audit entries as (verb, resource, subresource, name), for readable failures."""
    return [(w["verb"], w["objectRef"].get("resource", ""), w["objectRef"].get("subresource", ""),
             w["objectRef"].get("name", "")) for w in writes]  # fmt: skip


@pytest.fixture
def cluster(
    custom: client.CustomObjectsApi, core: client.CoreV1Api, namespace: str, operator: Operator
) -> Cluster:
    # No pods in these namespaces: the tests count the operator's writes exactly, and model
    # server pods that start (when the session's kubelet is up) legitimately change KServe's
    # readiness messages, and with them the status. KServe's own objects are still created.
    core.create_namespaced_resource_quota(
        namespace, {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
    )
    return Cluster(custom, core, namespace)


def test_create_writes_an_inference_service_that_kserves_schema_accepts(cluster: Cluster) -> None:
    created = cluster.create(
        deployment("fraud", resources={"requests": {"cpu": "100m", "memory": "256Mi"}})
    )
    service = wait_for(lambda: cluster.service("fraud"), what="the InferenceService")

    predictor = service["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == "s3://models/fraud/7"
    assert predictor["model"]["modelFormat"] == {"name": "sklearn"}
    assert predictor["model"]["protocolVersion"] == "v2"
    assert predictor["model"]["resources"] == {"requests": {"cpu": "100m", "memory": "256Mi"}}
    assert predictor["minReplicas"] == 1
    assert predictor["labels"]["modelops.io/model-version"] == "7"
    assert service["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "modelops"
    assert service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    [owner] = service["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "ModelDeployment", "fraud", created["metadata"]["uid"], True,
    )  # fmt: skip

    body = wait_for(lambda: cluster.settled("fraud"), what="status for generation 1")
    status = body["status"]
    assert status["phase"] == "Pending"
    assert status["inferenceService"] == "fraud"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InferenceServiceNotReady")
    wait_for(lambda: "Created" in cluster.event_reasons("fraud"), what="a Created event")


def test_a_spec_change_updates_the_inference_service(cluster: Cluster) -> None:
    cluster.create(deployment("fraud"))
    wait_for(lambda: cluster.service("fraud"), what="the InferenceService")
    cluster.patch_deployment(
        "fraud",
        {
            "spec": {
                "model": {"version": "8"},
                "serving": {"storageUri": "s3://models/fraud/8", "maxReplicas": 4},
            }
        },
    )
    service = wait_for(
        lambda: (
            (s := cluster.service("fraud"))
            and s["spec"]["predictor"]["model"]["storageUri"].endswith("/8")
            and s
        ),
        what="the new storageUri",
    )
    assert service["spec"]["predictor"]["maxReplicas"] == 4
    assert service["metadata"]["labels"]["modelops.io/model-version"] == "8"
    wait_for(lambda: "Updated" in cluster.event_reasons("fraud"), what="an Updated event")

    # A field removed from the spec is removed from the InferenceService too.
    cluster.patch_deployment("fraud", {"spec": {"serving": {"maxReplicas": None}}})
    wait_for(
        lambda: (
            "maxReplicas"
            not in (cluster.service("fraud") or {"spec": {"predictor": {"maxReplicas": 1}}})[
                "spec"
            ]["predictor"]
        ),
        what="maxReplicas to disappear",
    )


def test_a_hand_edit_of_the_inference_service_is_restored_with_a_warning(cluster: Cluster) -> None:
    cluster.create(deployment("fraud"))
    wait_for(lambda: cluster.service("fraud"), what="the InferenceService")
    cluster.patch_service(
        "fraud",
        {"spec": {"predictor": {"minReplicas": 5, "model": {"storageUri": "s3://elsewhere"}}}},
    )
    restored = wait_for(
        lambda: (
            (s := cluster.service("fraud")) and s["spec"]["predictor"]["minReplicas"] == 1 and s
        ),
        what="the hand edit to be undone",
    )
    assert restored["spec"]["predictor"]["model"]["storageUri"] == "s3://models/fraud/7"
    wait_for(lambda: "Restored" in cluster.event_reasons("fraud"), what="a Restored warning")
    warning = next(
        e
        for e in cluster.core.list_namespaced_event(cluster.namespace).items
        if e.reason == "Restored"
    )
    assert warning.type == "Warning"


def test_a_deleted_inference_service_is_recreated(cluster: Cluster) -> None:
    cluster.create(deployment("fraud"))
    first = wait_for(lambda: cluster.service("fraud"), what="the InferenceService")
    cluster.custom.delete_namespaced_custom_object(
        *KSERVE, cluster.namespace, "inferenceservices", "fraud"
    )
    wait_for(
        lambda: (
            (s := cluster.service("fraud")) and s["metadata"]["uid"] != first["metadata"]["uid"]
        ),
        what="a new InferenceService",
    )


def test_deleting_the_deployment_garbage_collects_its_inference_service(cluster: Cluster) -> None:
    cluster.create(deployment("fraud"))
    wait_for(lambda: cluster.service("fraud"), what="the InferenceService")
    cluster.custom.delete_namespaced_custom_object(
        GROUP, VERSION, cluster.namespace, PLURAL, "fraud"
    )
    wait_for(lambda: cluster.service("fraud") is None, timeout=60, what="the garbage collector")


def test_a_spec_that_cannot_be_served_fails_with_an_actionable_condition(cluster: Cluster) -> None:
    cluster.create(deployment("fraud", storageUri=None))
    body = wait_for(lambda: cluster.settled("fraud"), what="status")
    assert body["status"]["phase"] == "Failed"
    ready = next(c for c in body["status"]["conditions"] if c["type"] == "Ready")
    # No storageUri, and the operator runs without a default registry.
    assert ready["reason"] == "RegistryNotConfigured"
    assert "spec.model.registry.trackingUri" in ready["message"]
    assert cluster.service("fraud") is None


def test_nothing_is_written_when_nothing_changed(
    cluster: Cluster, control_plane: ControlPlane, operator: Operator
) -> None:
    cluster.create(deployment("fraud"))
    wait_for(
        lambda: cluster.service("fraud") and cluster.settled("fraud"), what="the first reconcile"
    )
    wait_for(lambda: "Created" in cluster.event_reasons("fraud"), what="the Created event")
    first = operator_writes(control_plane, cluster.namespace)
    # The status (what is about to be served), then the InferenceService built from it; KServe's
    # own status updates, when its controller runs, may add status writes after these.
    assert [(w["objectRef"]["resource"], w["objectRef"].get("subresource")) for w in first[:2]] == [
        ("modeldeployments", "status"), ("inferenceservices", None)]  # fmt: skip
    writes = quiet_writes(control_plane, cluster.namespace)

    # Events that change nothing the operator owns: a label on the deployment, a foreign
    # annotation on the InferenceService. Each triggers a reconcile that must not write.
    views = {kserve_view(cluster, "fraud")}
    for value in ("a", "b", "c"):
        before = operator.metric("modelops_reconcile_total", outcome="unchanged")
        cluster.patch_deployment("fraud", {"metadata": {"labels": {"team": value}}})
        cluster.patch_service("fraud", {"metadata": {"annotations": {"example.com/note": value}}})
        wait_for(
            lambda before=before: (
                operator.metric("modelops_reconcile_total", outcome="unchanged") >= before + 2
            ),
            what="the no-op reconciles",
        )
        views.add(kserve_view(cluster, "fraud"))
    new = described(operator_writes(control_plane, cluster.namespace)[writes:])
    assert only_mirrored(new, kserve_changed=len(views) > 1), new


def test_a_restarted_operator_creates_no_duplicate_and_writes_nothing(
    cluster: Cluster, control_plane: ControlPlane, operator: Operator
) -> None:
    for name in ("alpha", "beta"):
        cluster.create(deployment(name))
    for name in ("alpha", "beta"):
        wait_for(
            lambda name=name: cluster.service(name) and cluster.settled(name),
            what=f"{name} reconciled",
        )
        # Events are posted asynchronously: count only once every write before the restart landed.
        wait_for(
            lambda name=name: "Created" in cluster.event_reasons(name),
            what=f"{name}'s Created event",
        )
    writes = quiet_writes(control_plane, cluster.namespace, include_events=True)
    view = kserve_view(cluster, "alpha", "beta")

    operator.restart()
    # After the restart every deployment in the cluster is reconciled once from the listing.
    total = len(cluster.custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"])
    wait_for(
        lambda: operator.metric("modelops_reconcile_total") >= total,
        what="the restarted operator to reconcile every deployment",
    )
    services = cluster.custom.list_namespaced_custom_object(
        *KSERVE, cluster.namespace, "inferenceservices"
    )["items"]
    assert sorted(s["metadata"]["name"] for s in services) == ["alpha", "beta"]
    new = described(operator_writes(control_plane, cluster.namespace, include_events=True)[writes:])
    assert only_mirrored(new, kserve_changed=kserve_view(cluster, "alpha", "beta") != view), new
