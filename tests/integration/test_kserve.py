"""The real KServe controller and webhooks on our control plane."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from kubernetes import client

from modelops_dev.control_plane import ControlPlane
from modelops_dev.kserve import KServeController
from tests.integration.conftest import Operator, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the KServe sandbox needs root")

KSERVE = ("serving.kserve.io", "v1beta1")


def inference_service(name: str, **predictor: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": name, "annotations": {"serving.kserve.io/deploymentMode": "Standard"}},
        "spec": {"predictor": {"model": {"modelFormat": {"name": "sklearn"}, "protocolVersion": "v2",
                                         "storageUri": "s3://models/m/1"}, **predictor}},
    }  # fmt: skip


def test_kserves_validating_webhook_rejects_a_canary_without_a_name(
    kserve: KServeController, custom: client.CustomObjectsApi, namespace: str
) -> None:
    body = inference_service("bad")
    body["spec"]["canary"] = [
        {"trafficPercent": 10, "predictor": {"model": {"name": "kserve-container",
         "modelFormat": {"name": "sklearn"}, "storageUri": "s3://models/m/2"}}}
    ]  # fmt: skip
    with pytest.raises(client.ApiException) as raised:
        custom.create_namespaced_custom_object(*KSERVE, namespace, "inferenceservices", body)
    message = json.loads(raised.value.body)["message"]
    assert "canary[0] predictor.name is required" in message


def test_an_operator_written_service_is_reconciled_by_kserve_into_a_deployment(
    kserve: KServeController,
    operator: Operator,
    custom: client.CustomObjectsApi,
    api_client: client.ApiClient,
    namespace: str,
) -> None:
    custom.create_namespaced_custom_object(
        "modelops.io", "v1alpha1", namespace, "modeldeployments",
        {"apiVersion": "modelops.io/v1alpha1", "kind": "ModelDeployment", "metadata": {"name": "fraud"},
         "spec": {"model": {"name": "fraud-detector", "version": "3"},
                  "serving": {"modelFormat": {"name": "sklearn"}, "storageUri": "s3://models/fraud/3"}}},
    )  # fmt: skip
    apps = client.AppsV1Api(api_client)

    def predictor_deployment() -> Any:
        try:
            return apps.read_namespaced_deployment("fraud-v3-predictor", namespace)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise

    deployment = wait_for(predictor_deployment, timeout=60, what="KServe's predictor Deployment")
    labels = deployment.spec.template.metadata.labels
    assert labels["modelops.io/model-version"] == "3"
    assert labels["serving.kserve.io/inferenceservice"] == "fraud"
    [container] = [
        c for c in deployment.spec.template.spec.containers if c.name == "kserve-container"
    ]
    assert container.image == "docker.io/seldonio/mlserver:1.7.1"  # the kserve-mlserver runtime
    # KServe's own status logic reports on the service (not Ready: no node runs its pods yet).
    conditions = wait_for(
        lambda: (
            custom.get_namespaced_custom_object(*KSERVE, namespace, "inferenceservices", "fraud")
            .get("status", {})
            .get("conditions")
        ),
        timeout=60,
        what="KServe's status on the InferenceService",
    )
    ready = next(c for c in conditions if c["type"] == "Ready")
    assert ready["status"] != "True"


def test_stopping_kserve_unregisters_its_webhooks(
    kserve: KServeController, control_plane: ControlPlane
) -> None:
    """With failurePolicy Fail, webhooks left behind would refuse every later Pod."""
    names = [c["metadata"]["name"] for c in kserve.registered]
    assert "inferenceservice.serving.kserve.io" in names
    try:
        kserve.stop()
        for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
            hooks = control_plane.request("GET", f"/apis/admissionregistration.k8s.io/v1/{kind}")
            assert [h["metadata"]["name"] for h in hooks["items"]] == []
    finally:
        kserve.start()  # the rest of the session keeps its KServe
    assert sorted(c["metadata"]["name"] for c in kserve.registered) == sorted(names)


@pytest.mark.parametrize("mode", ["Standard", "Serverless"])
def test_every_rollout_step_writes_an_inference_service_kserve_accepts(
    mode: str, kserve: KServeController, custom: client.CustomObjectsApi, namespace: str
) -> None:
    """The objects of a whole rollout (first version, each canary step, promotion, rollback)
    pass the real CRD schema and KServe's defaulting and validating webhooks (dry run)."""
    from tests.unit.rollout_driver import Driver, failing, passing

    driver = Driver(spec__serving__deploymentMode=mode)
    driver.settle()
    driver.tick()
    for version, rounds in (("8", [passing()] * 4), ("9", [failing()] * 2)):
        driver.serve(version)
        driver.settle()
        driver.tick()
        for measurements in rounds:
            driver.tick(30, measurements)
        driver.settle()
    steps = {(m["spec"]["predictor"].get("canaryTrafficPercent"),
              tuple(c["trafficPercent"] for c in m["spec"].get("canary", []))) for m in driver.applied}  # fmt: skip
    assert len(driver.applied) >= 5, steps
    for manifest in driver.applied:
        manifest = json.loads(json.dumps(manifest))
        manifest["metadata"]["namespace"] = namespace
        manifest["metadata"].pop("ownerReferences")
        custom.create_namespaced_custom_object(
            *KSERVE, namespace, "inferenceservices", manifest, dry_run="All"
        )
