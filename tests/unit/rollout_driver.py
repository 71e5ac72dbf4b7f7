"""Drives decide() through rollouts for unit tests: the status written back after each
decision, the InferenceService as KServe would report it once applied (ready or not)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from modelops.api.resource import ModelDeployment
from modelops.api.status import Measurement
from modelops.core.decision import Decision
from modelops.core.reconcile import decide
from modelops.core.registry import RegistryObservation
from modelops.core.registry_writes import after_registry_writes
from modelops.core.rollout.observe import WorkloadFacts, diagnosis_selector, endpoint_check
from modelops.core.rollout.readiness import DRAIN, SUSTAINED_READY
from tests.unit.factories import deployment_body

START = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)

ROLLOUT = {
    "strategy": "Canary",
    "steps": [{"traffic": 10, "duration": "1m"}, {"traffic": 50, "duration": "1m"}],
}
ANALYSIS = {
    "interval": "30s",
    "failureLimit": 1,
    "inconclusiveLimit": 2,
    "consecutiveErrorLimit": 2,
    "metrics": [{"name": "error-rate", "preset": "mlserver-error-rate", "max": 0.05}],
}


def fields_v1(value: Any) -> dict[str, Any]:
    """The fieldsV1 the API server records for an apply of `value` (lists owned whole)."""
    if isinstance(value, dict) and value:
        return {f"f:{key}": fields_v1(item) for key, item in value.items()}
    return {}


def applied_by_modelops(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """managedFields as after our server-side apply of `manifest`."""
    metadata = manifest["metadata"]
    owned = {
        "metadata": {k: metadata[k] for k in ("labels", "annotations", "ownerReferences") if k in metadata},
        "spec": manifest["spec"],
    }  # fmt: skip
    return [{"manager": "modelops", "operation": "Apply", "fieldsV1": fields_v1(owned)}]


def reported(
    manifest: dict[str, Any], *, ready: bool, canary_ready: bool, generation: int
) -> dict[str, Any]:
    observed = copy.deepcopy(manifest)
    observed["metadata"].update(generation=generation, resourceVersion=str(100 + generation))
    observed["metadata"]["managedFields"] = applied_by_modelops(manifest)
    state = "True" if ready else "False"
    name = manifest["spec"]["predictor"].get("name")
    service = f"fraud-{name}-predictor" if name else "fraud-predictor"
    observed["status"] = {
        "address": {"url": f"http://{service}.risk.svc.cluster.local"},
        "observedGeneration": generation,
        "conditions": [
            {"type": "Ready", "status": state},
            {"type": "PredictorReady", "status": state},
        ],
        "canaryStatuses": [
            {
                "name": c["predictor"]["name"],
                "ready": canary_ready,
                "trafficPercent": c["trafficPercent"],
            }
            for c in manifest["spec"].get("canary", [])
        ],
    }
    return observed


def served_by_kserve(manifest: dict[str, Any], ready: bool = True) -> dict[str, Any]:
    """A manifest as KServe reports it back after our apply: a default added, status set."""
    observed = reported(manifest, ready=ready, canary_ready=ready, generation=1)
    observed["spec"]["predictor"]["model"]["name"] = "kserve-container"
    for item in observed["status"]["conditions"]:
        if item["status"] == "False":
            item["message"] = "Predictor starting"
    return observed


def with_status(body: dict[str, Any], decision: Decision) -> ModelDeployment:
    """The deployment as it reads back after the decision's status was written."""
    body = copy.deepcopy(body)
    body["status"] = decision.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    return ModelDeployment.model_validate(body)


class Driver:
    def __init__(self, **overrides: Any) -> None:
        overrides.setdefault("spec__rollout", ROLLOUT)
        overrides.setdefault("spec__analysis", ANALYSIS)
        overrides.setdefault("spec__serving__maxReplicas", 10)
        self.body = deployment_body(**overrides)
        self.now = START
        self.observed: dict[str, Any] | None = None
        self.generation = 0
        self.ready = True
        self.canary_ready = True
        self.decisions: list[Decision] = []
        self.applied: list[dict[str, Any]] = []
        self.route: dict[str, Any] | None = None
        """The HTTPRoute last applied (the reconciler applies each decision's)."""
        self.pods: list[dict[str, Any]] | None = None
        """Pods to describe when core asks for them (a version past its deadline)."""
        self.registry: RegistryObservation | None = None
        """What the registry answers (a deployment without spec.serving.storageUri)."""

    @property
    def deployment(self) -> ModelDeployment:
        return ModelDeployment.model_validate(self.body)

    @property
    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.body.get("status", {})
        return result

    def serve(self, version: str) -> None:
        """Point the spec at another version (what a person or an alias move does)."""
        self.body["spec"]["model"]["version"] = version
        self.body["spec"]["serving"]["storageUri"] = f"s3://models/fraud/{version}"
        self.body["metadata"]["generation"] += 1

    def annotate(self, key: str, value: str | None) -> None:
        annotations = self.body["metadata"].setdefault("annotations", {})
        if value is None:
            annotations.pop(key, None)
        else:
            annotations[key] = value

    def report(self, *, canary_ready: bool) -> None:
        """KServe (and the canary Service's endpoints) report the canary's readiness now."""
        self.canary_ready = canary_ready
        if self.observed is not None:
            self.observed = reported(
                self.observed,
                ready=self.ready,
                canary_ready=canary_ready,
                generation=self.generation,
            )

    def tick(self, seconds: float = 0, measurements: list[Measurement] | None = None) -> Decision:
        self.now += timedelta(seconds=seconds)
        deployment = self.deployment
        facts = WorkloadFacts(
            canary_endpoints=self.canary_ready
            if endpoint_check(deployment, self.observed)
            else None,
            pods=self.pods if diagnosis_selector(deployment, self.now) else None,
            applied_route=self.route,
        )
        decision = decide(
            deployment, self.observed, self.now, self.registry, measurements, facts=facts
        )
        if decision.http_route is not None:
            self.route = decision.http_route
        status = decision.status
        if decision.registry_writes:
            status = after_registry_writes(status, decision.registry_writes)
        self.body["status"] = status.model_dump(mode="json", by_alias=True, exclude_none=True)
        if decision.inference_service is not None:
            self.applied.append(decision.inference_service)
            self.generation += 1
            self.observed = reported(
                decision.inference_service,
                ready=self.ready,
                canary_ready=self.canary_ready,
                generation=self.generation,
            )
        elif self.observed is not None:
            self.observed = reported(
                self.observed,
                ready=self.ready,
                canary_ready=self.canary_ready,
                generation=self.generation,
            )
        self.decisions.append(decision)
        return decision

    def settle(self, measurements: list[Measurement] | None = None) -> Decision:
        """Tick until the InferenceService is what the status implies (at most 3 reconciles)."""
        decision = self.tick(0, measurements)
        for _ in range(3):
            if decision.inference_service is None:
                break
            decision = self.tick(0)
        return decision


def passing(value: float = 0.01) -> list[Measurement]:
    return [
        Measurement(name="error-rate", verdict="Pass", value=value, message=f"error-rate = {value}")
    ]


def failing(value: float = 0.3) -> list[Measurement]:
    return [
        Measurement(
            name="error-rate",
            verdict="Fail",
            value=value,
            message=f"error-rate = {value} > max 0.05",
        )
    ]


def inconclusive() -> list[Measurement]:
    return [
        Measurement(name="error-rate", verdict="Inconclusive", message="no data for error-rate")
    ]


def erroring() -> list[Measurement]:
    return [Measurement(name="error-rate", verdict="Error", message="connection refused")]


def deployed(**overrides: Any) -> Driver:
    """Version 7 serving as stable."""
    driver = Driver(**overrides)
    driver.settle()
    assert driver.tick().status.phase == "Healthy"
    assert driver.status["stable"]["version"] == "7"
    return driver


def rolling(**overrides: Any) -> Driver:
    """Version 8 rolling out, its canary ready (for the sustained interval) in step 1."""
    driver = deployed(**overrides)
    driver.serve("8")
    driver.settle()
    driver.tick()
    driver.tick(SUSTAINED_READY.total_seconds())
    assert driver.status["canary"]["stepStartedAt"]
    return driver


def drain(driver: Driver) -> Decision:
    """Let retiring predictors drain and go."""
    return driver.tick(DRAIN.total_seconds())
