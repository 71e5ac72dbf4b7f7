from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from modelops.core.rollout.objects import (
    PRE_STOP_SLEEP_SECONDS,
    CanaryPlan,
    desired_inference_service,
)
from modelops.core.served import ServedModel
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
        "readinessProbe": {
            "httpGet": {"path": "/v2/models/fraud/ready", "port": 8080},
            "periodSeconds": 2,
            "timeoutSeconds": 2,
            "failureThreshold": 2,
        },
        "lifecycle": {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_SECONDS}}},
    }


def test_ready_means_the_model_loaded_for_each_protocol_unless_the_runtime_probe_is_asked() -> None:
    def probe(**overrides: Any) -> Any:
        return build(**overrides)["spec"]["predictor"]["model"].get("readinessProbe")

    assert probe()["httpGet"] == {"path": "/v2/models/fraud/ready", "port": 8080}
    assert probe(spec__serving__protocolVersion="v1")["httpGet"]["path"] == "/v1/models/fraud"
    assert probe(spec__serving__protocolVersion="grpc-v2")["httpGet"]["path"] == (
        "/v2/models/fraud/ready"
    )
    assert probe(spec__serving__readiness={"port": 9090})["httpGet"]["port"] == 9090
    assert probe(spec__serving__readiness={"check": "Runtime"}) is None
    # Knative probes the container's port itself, and refuses lifecycle hooks.
    knative = build(spec__serving__deploymentMode="Knative")["spec"]["predictor"]["model"]
    assert knative["readinessProbe"]["httpGet"] == {"path": "/v2/models/fraud/ready"}
    assert "lifecycle" not in knative


def test_canary_entries_take_their_replicas_from_the_stable_sum() -> None:
    canary = CanaryPlan(ServedModel("s3://m/8", "sklearn", version="8"), "v8", 30, 1)
    retiring = CanaryPlan(ServedModel("s3://m/6", "sklearn", version="6"), "v6", 0, 2)
    manifest = desired_inference_service(
        deployment(spec__serving__minReplicas=3, spec__serving__maxReplicas=4),
        SERVED,
        predictor_name="v7",
        canaries=[retiring, canary],
        stable_replicas=2,
    )
    predictor = manifest["spec"]["predictor"]
    # KServe subtracts every entry's minReplicas: 5 - 2 - 1 leaves the stable its 2.
    assert (predictor["name"], predictor["minReplicas"], predictor["maxReplicas"]) == ("v7", 5, 5)
    entries = [(c["predictor"]["name"], c["trafficPercent"], c["predictor"]["minReplicas"])
               for c in manifest["spec"]["canary"]]  # fmt: skip
    assert entries == [("v6", 0, 2), ("v8", 30, 1)]
    assert manifest["spec"]["canary"][0]["predictor"]["labels"]["modelops.io/model-version"] == "6"


def test_canary_entries_name_their_container_as_the_crd_requires() -> None:
    # KServe's CRD requires spec.canary[].predictor.model.name; its defaulting webhook fills it
    # in, but the entry must be valid without the webhook (the API server answered 422).
    canary = CanaryPlan(ServedModel("s3://m/8", "sklearn", version="8"), "v8", 30, 1)
    manifest = desired_inference_service(deployment(), SERVED, canaries=[canary])
    assert manifest["spec"]["canary"][0]["predictor"]["model"]["name"] == "kserve-container"
    assert manifest["spec"]["canary"][0]["predictor"]["model"]["storageUri"] == "s3://m/8"


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


def test_only_kserve_annotations_are_written_so_nothing_of_ours_reaches_pod_templates() -> None:
    # KServe copies the InferenceService's annotations into the predictor pod templates: a
    # bookkeeping annotation that changes with the spec would restart every predictor.
    assert set(build()["metadata"]["annotations"]) == {"serving.kserve.io/deploymentMode"}
    assert (
        build()["metadata"]["annotations"]
        == build(spec__serving__minReplicas=2)["metadata"]["annotations"]
    )


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
