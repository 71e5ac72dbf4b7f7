"""decide() on versions the registry resolves: what is served, what waits, what fails, and
that a registry outage changes nothing that is served."""

from __future__ import annotations

import dataclasses
from typing import Any

from modelops.api.resource import ModelDeployment
from modelops.core.conditions import condition
from modelops.core.decision import Decision
from modelops.core.reconcile import decide
from modelops.core.registry import RegistryFailure, VersionAnswer
from tests.unit.factories import READY_V7
from tests.unit.factories import registry_body as body
from tests.unit.rollout_driver import START as NOW
from tests.unit.rollout_driver import served_by_kserve, with_status


def md(**overrides: Any) -> ModelDeployment:
    return ModelDeployment.model_validate(body(**overrides))


def model_of(decision: Decision) -> dict[str, Any]:
    assert decision.inference_service is not None
    model: dict[str, Any] = decision.inference_service["spec"]["predictor"]["model"]
    return model


def test_before_the_registry_answers_nothing_is_written() -> None:
    decision = decide(md(), None, NOW, registry=None)
    assert decision.inference_service is None
    assert decision.status.phase == "Pending"


def test_a_ready_version_is_served_from_the_store_behind_the_server() -> None:
    decision = decide(md(), None, NOW, registry=READY_V7)
    model = model_of(decision)
    assert model["storageUri"] == "s3://mlflow/artifacts/3/models/m-7/artifacts"
    assert model["modelFormat"] == {"name": "sklearn"}
    labels = decision.inference_service["spec"]["predictor"]["labels"]  # type: ignore[index]
    assert labels["modelops.io/model-version"] == "7"
    reachable = condition(decision.status.conditions, "RegistryReachable")
    assert reachable is not None and reachable.status == "True"


def test_the_storage_initializer_mode_serves_a_models_uri() -> None:
    decision = decide(md(spec__serving__storage={"mode": "StorageInitializer"}), None, NOW,
                      registry=READY_V7)  # fmt: skip
    assert model_of(decision)["storageUri"] == "models:/fraud-detector/7"


def test_the_spec_format_overrides_the_flavors() -> None:
    decision = decide(md(spec__serving__modelFormat={"name": "mlflow"}), None, NOW,
                      registry=READY_V7)  # fmt: skip
    assert model_of(decision)["modelFormat"] == {"name": "mlflow"}


def test_once_ready_the_status_records_what_was_deployed_and_from_what() -> None:
    first = decide(md(), None, NOW, registry=READY_V7)
    observed = served_by_kserve(first.inference_service)  # type: ignore[arg-type]
    second = decide(with_status(body(), first), observed, NOW, registry=READY_V7)
    stable = second.status.stable
    assert stable is not None
    assert (stable.version, stable.run_id, stable.source) == ("7", "run-7", "models:/m-7")
    assert stable.storage_uri == "s3://mlflow/artifacts/3/models/m-7/artifacts"
    assert stable.data_version == "dvc.rev=a1b2c3"
    assert (stable.model_format_rule or "").startswith("MLmodel flavor sklearn stores model.pkl")
    assert "artifactsDestination" in (stable.storage_rule or "")


def test_a_pending_version_waits_and_a_failed_one_is_reported() -> None:
    pending = VersionAnswer(version="8", status="PENDING_REGISTRATION", download_uri="x")
    waiting = decide(md(), None, NOW, registry=pending)
    assert waiting.inference_service is None and waiting.status.phase == "Pending"
    failed = VersionAnswer(version="8", status="FAILED_REGISTRATION", download_uri="x",
                           status_message="upload interrupted")  # fmt: skip
    decision = decide(md(), None, NOW, registry=failed)
    assert decision.inference_service is None and decision.status.phase == "Failed"
    ready = condition(decision.status.conditions, "Ready")
    assert ready is not None and ready.reason == "VersionRegistrationFailed"
    assert "upload interrupted" in ready.message


def test_an_unmappable_location_is_a_clear_error_not_a_broken_service() -> None:
    decision = decide(md(spec__model__registry=None), None, NOW, registry=READY_V7)
    assert decision.inference_service is None
    ready = condition(decision.status.conditions, "Ready")
    assert ready is not None and ready.reason == "ArtifactsDestinationUnknown"
    assert [e.reason for e in decision.events] == ["ArtifactsDestinationUnknown"]


def test_an_unknown_alias_fails_with_the_registrys_reason() -> None:
    missing = RegistryFailure("NotFound", "alias 'champion' of model 'fraud' does not exist",
                              transient=False)  # fmt: skip
    decision = decide(md(), None, NOW, registry=missing)
    assert decision.inference_service is None and decision.status.phase == "Failed"
    assert "champion" in decision.status.message  # type: ignore[operator]
    reachable = condition(decision.status.conditions, "RegistryReachable")
    assert reachable is not None and reachable.status == "True"  # it answered: no


def test_a_registry_outage_changes_nothing_served_and_is_reported_once() -> None:
    first = decide(md(), None, NOW, registry=READY_V7)
    observed = served_by_kserve(first.inference_service)  # type: ignore[arg-type]
    healthy = decide(with_status(body(), first), observed, NOW, registry=READY_V7)
    assert healthy.status.phase == "Healthy"
    outage = RegistryFailure("RegistryUnreachable", "cannot reach the registry", transient=True)
    current = with_status(body(), healthy)
    held = decide(current, observed, NOW, registry=outage)
    assert held.inference_service is None
    assert held.status.phase == "Healthy" and held.status.stable == healthy.status.stable
    reachable = condition(held.status.conditions, "RegistryReachable")
    assert reachable is not None and (reachable.status, reachable.reason) == (
        "False",
        "RegistryUnreachable",
    )
    assert [e.reason for e in held.events] == ["RegistryUnreachable"]
    again = decide(with_status(body(), held), observed, NOW, registry=outage)
    assert again.events == () and again.inference_service is None
    # Back: the condition recovers and the service is still the same, so nothing is written.
    recovered = decide(with_status(body(), again), observed, NOW, registry=READY_V7)
    assert recovered.inference_service is None
    back = condition(recovered.status.conditions, "RegistryReachable")
    assert back is not None and back.status == "True"


def test_an_alias_move_updates_the_service_to_the_new_version() -> None:
    first = decide(md(), None, NOW, registry=READY_V7)
    observed = served_by_kserve(first.inference_service)  # type: ignore[arg-type]
    v8 = dataclasses.replace(
        READY_V7, version="8", download_uri="mlflow-artifacts:/3/models/m-8/artifacts"
    )
    moved = decide(with_status(body(), first), observed, NOW, registry=v8)
    assert model_of(moved)["storageUri"].endswith("/m-8/artifacts")
    assert [e.reason for e in moved.events] == ["Updated"]
