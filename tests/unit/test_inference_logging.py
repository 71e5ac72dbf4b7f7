"""Monitored deployments: every predictor logs to the monitor with the version it serves, the
operator's monitor URL fills in where the spec names none, and the Monitoring condition says
what is missing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from modelops.core.inference_logging import (
    AGENT_PORT,
    VERSION_ANNOTATION,
    monitoring_condition,
    predictor_logging,
    production_data,
    with_default_logger,
)
from modelops.core.rollout.objects import CanaryPlan, desired_inference_service
from modelops.core.rollout.observe import EndpointCheck, endpoint_check
from modelops.core.served import ServedModel
from tests.unit.factories import READY_V7, deployment
from tests.unit.rollout_driver import deployed, rolling

URL = "http://monitor.modelops-system.svc:8080/"
DRIFT = {"spec__monitoring": {"drift": {"enabled": True}, "logger": {"url": URL}}}


def monitored(**overrides: Any) -> Any:
    return deployment(**{**DRIFT, **overrides})


def test_every_predictor_logs_its_own_version_to_the_monitor() -> None:
    canary = CanaryPlan(ServedModel("s3://m/8", "sklearn", version="8"), "v8", 30, 1)
    manifest = desired_inference_service(
        monitored(), ServedModel("s3://m/7", "sklearn", version="7"),
        predictor_name="v7", canaries=[canary],
    )  # fmt: skip
    stable, entry = manifest["spec"]["predictor"], manifest["spec"]["canary"][0]["predictor"]
    expected = {"mode": "all", "url": URL, "metadataAnnotations": [VERSION_ANNOTATION]}
    assert stable["logger"] == expected and entry["logger"] == expected
    assert stable["annotations"] == {VERSION_ANNOTATION: "7"}
    assert entry["annotations"] == {VERSION_ANNOTATION: "8"}
    # Not on the InferenceService itself: KServe copies those into every pod template.
    assert VERSION_ANNOTATION not in manifest["metadata"]["annotations"]


def test_nothing_is_logged_unless_drift_monitoring_is_on() -> None:
    assert predictor_logging(deployment(), "7") == {}
    off = deployment(spec__monitoring={"drift": {"enabled": False}, "logger": {"url": URL}})
    assert predictor_logging(off, "7") == {}
    assert predictor_logging(monitored(), None) == {}
    plain = desired_inference_service(deployment(), ServedModel("s3://m/7", "sklearn", version="7"))
    assert "logger" not in plain["spec"]["predictor"]


def test_the_operators_monitor_url_fills_in_and_the_specs_wins() -> None:
    bare = deployment(spec__monitoring={"drift": {"enabled": True}})
    assert predictor_logging(bare, "7") == {}
    filled = with_default_logger(bare, "http://default:8080/")
    assert predictor_logging(filled, "7")["logger"]["url"] == "http://default:8080/"
    assert with_default_logger(monitored(), "http://default:8080/") == monitored()
    assert with_default_logger(bare, None) is bare
    assert with_default_logger(deployment(), "http://default:8080/") == deployment()
    # The operator's capture store fills in beside a URL from either place.
    captured = with_default_logger(bare, "http://default:8080/", "s3://rows")
    assert production_data(captured) == "s3://rows/risk/fraud"
    assert production_data(with_default_logger(monitored(), None, "s3://rows/")) == (
        "s3://rows/risk/fraud"
    )
    assert production_data(monitored()) is None


def test_the_monitoring_condition_names_what_is_missing() -> None:
    assert monitoring_condition(deployment(), READY_V7) is None
    unconfigured = monitoring_condition(
        deployment(spec__monitoring={"drift": {"enabled": True}}), READY_V7
    )
    assert unconfigured is not None
    assert (unconfigured.status, unconfigured.reason) == ("False", "MonitorNotConfigured")
    assert "--monitor-url" in unconfigured.message
    missing = monitoring_condition(monitored(), replace(READY_V7, reference_profile=False))
    assert missing is not None and missing.reason == "NoReferenceProfile"
    assert "version 7" in missing.message and "log_reference" in missing.message
    fine = monitoring_condition(monitored(), replace(READY_V7, reference_profile=True))
    assert fine is not None and (fine.status, fine.reason) == ("True", "Logging")
    assert URL in fine.message


def test_a_logged_canarys_share_goes_to_its_agent_through_a_service_of_ours() -> None:
    route = {"hostnames": ["fraud.models.example.com"]}
    driver = rolling(spec__serving__httpRoute=route, **DRIFT)
    assert driver.route is not None
    backends = [(b["name"], b["weight"]) for b in driver.route["spec"]["rules"][0]["backendRefs"]]
    # The stable's own Service already targets the agent (KServe does that for a logged
    # predictor); the canary's does not, so its share goes to the logged Service.
    assert backends == [("fraud-v7-predictor", 90), ("fraud-canary-logged", 10)]
    service = driver.decisions[-1].canary_service
    assert service is not None and service["metadata"]["name"] == "fraud-canary-logged"
    assert service["spec"]["selector"] == {"app": "isvc.fraud-v8-predictor"}
    assert service["spec"]["ports"][0]["targetPort"] == AGENT_PORT
    assert service["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"


def test_the_logged_service_is_checked_for_the_canarys_own_pods() -> None:
    route = {"hostnames": ["fraud.models.example.com"]}
    driver = deployed(spec__serving__httpRoute=route, **DRIFT)
    driver.report(canary_ready=False)
    driver.serve("8")
    driver.settle()
    driver.report(canary_ready=True)
    check = endpoint_check(driver.deployment, driver.observed)
    assert check == EndpointCheck("fraud-canary-logged", "fraud-v8-predictor-")
    # Without logging (or without a route) KServe's canary Service is the one checked.
    plain = deployed(spec__serving__httpRoute=route)
    plain.report(canary_ready=False)
    plain.serve("8")
    plain.settle()
    plain.report(canary_ready=True)
    found = endpoint_check(plain.deployment, plain.observed)
    assert found == EndpointCheck("fraud-v8-predictor", "fraud-v8-predictor-")
    assert plain.decisions[-1].canary_service is None
