from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from modelops.core.inference_service import (
    SPEC_HASH_ANNOTATION,
    ServedModel,
    desired_inference_service,
)
from tests.unit.factories import deployment

SERVED = ServedModel(storage_uri="s3://models/fraud/7", model_format="sklearn", version="7")


def build(**overrides: Any) -> dict[str, Any]:
    return desired_inference_service(deployment(**overrides), SERVED)


def test_predictor_carries_format_storage_protocol_and_replicas() -> None:
    manifest = build(spec__serving__runtime="kserve-mlserver", spec__serving__maxReplicas=3)
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1"
    assert manifest["kind"] == "InferenceService"
    predictor = manifest["spec"]["predictor"]
    assert predictor["minReplicas"] == 1
    assert predictor["maxReplicas"] == 3
    assert predictor["model"] == {
        "modelFormat": {"name": "sklearn"},
        "protocolVersion": "v2",
        "storageUri": "s3://models/fraud/7",
        "runtime": "kserve-mlserver",
    }


def test_optional_fields_are_left_to_kserve_when_unset() -> None:
    predictor = build()["spec"]["predictor"]
    assert "maxReplicas" not in predictor
    assert "runtime" not in predictor["model"]
    assert "resources" not in predictor["model"]


def test_resources_pass_through() -> None:
    resources = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": 1}}
    manifest = build(spec__serving__resources=resources)
    assert manifest["spec"]["predictor"]["model"]["resources"] == resources


def test_labels_name_deployment_model_and_version_on_object_and_pods() -> None:
    manifest = build()
    expected = {
        "app.kubernetes.io/managed-by": "modelops",
        "modelops.io/deployment": "fraud",
        "modelops.io/model": "fraud-detector",
        "modelops.io/model-version": "7",
    }
    assert manifest["metadata"]["labels"] == expected
    assert manifest["spec"]["predictor"]["labels"] == expected


def test_owned_by_the_deployment_as_its_controller() -> None:
    manifest = build()
    assert manifest["metadata"]["name"] == "fraud"
    assert manifest["metadata"]["namespace"] == "risk"
    assert manifest["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "modelops.io/v1alpha1",
            "kind": "ModelDeployment",
            "name": "fraud",
            "uid": "1111-2222",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]


def test_deployment_mode_annotation_follows_the_spec() -> None:
    assert build()["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    knative = build(spec__serving__deploymentMode="Knative")
    assert knative["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"


def test_spec_hash_changes_with_the_spec_and_only_then() -> None:
    first = build()["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    assert build()["metadata"]["annotations"][SPEC_HASH_ANNOTATION] == first
    changed = build(spec__serving__minReplicas=2)["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
    assert changed != first


def test_a_model_name_that_is_no_label_value_is_made_one() -> None:
    labels = build(spec__model__name="Team Fraud / Detector")["metadata"]["labels"]
    assert labels["modelops.io/model"].startswith("Team-Fraud---Detector-")


@given(
    min_replicas=st.integers(0, 1000),
    protocol=st.sampled_from(["v1", "v2", "grpc-v2"]),
    mode=st.sampled_from(["Standard", "Knative", "Serverless"]),
)
def test_manifest_always_serves_the_resolved_uri_and_names_its_owner(
    min_replicas: int, protocol: str, mode: str
) -> None:
    manifest = build(
        spec__serving__minReplicas=min_replicas,
        spec__serving__protocolVersion=protocol,
        spec__serving__deploymentMode=mode,
    )
    model = manifest["spec"]["predictor"]["model"]
    assert model["storageUri"] == SERVED.storage_uri
    assert model["protocolVersion"] == protocol
    assert manifest["spec"]["predictor"]["minReplicas"] == min_replicas
    assert manifest["metadata"]["ownerReferences"][0]["uid"] == "1111-2222"
