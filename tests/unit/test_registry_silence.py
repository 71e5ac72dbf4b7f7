"""The registry not answering (slow past its timeout, 5xx, down) while a version is served: the
rollout goes on with what the registry said last. A canary pauses where it is (it may not
advance or be promoted: the alias may have moved), its analysis still rolls it back, the
promoted version is still watched, nothing is written to the registry, and it all resumes when
the registry answers again."""

from __future__ import annotations

import dataclasses
from typing import Any

from modelops.core.conditions import condition
from modelops.core.registry import RegistryFailure
from modelops.core.rollout.readiness import SUSTAINED_READY
from tests.unit.factories import READY_V7
from tests.unit.rollout_driver import ANALYSIS, ROLLOUT, Driver, failing, passing

SILENT = RegistryFailure("RegistryUnreachable", "cannot reach the registry (timed out)", True)
READY_V8 = dataclasses.replace(
    READY_V7, version="8", download_uri="mlflow-artifacts:/3/models/m-8/artifacts", run_id="run-8"
)


def following(**overrides: Any) -> Driver:
    """A deployment on the registry's answers: version 7 stable, promoteAlias written."""
    overrides.setdefault("spec__rollout", {**ROLLOUT, "promoteAlias": "production"})
    driver = Driver(
        spec__serving__storageUri=None,
        spec__serving__modelFormat=None,
        spec__model__registry={"artifactsDestination": "s3://mlflow/artifacts"},
        **overrides,
    )
    driver.registry = READY_V7
    driver.settle()
    assert driver.tick().status.phase == "Healthy"
    return driver


def canary_of_8(**overrides: Any) -> Driver:
    """Version 8 in its first step, with traffic."""
    driver = following(**overrides)
    driver.registry = READY_V8
    driver.settle()
    driver.tick()
    driver.tick(SUSTAINED_READY.total_seconds())
    assert driver.status["canary"]["version"] == "8" and driver.status["canary"]["stepStartedAt"]
    return driver


def reachable(driver: Driver) -> tuple[str, str]:
    found = condition(driver.deployment.status.conditions, "RegistryReachable")
    assert found is not None
    return found.status, found.reason


def test_the_canary_pauses_in_its_step_and_resumes_when_the_registry_answers() -> None:
    driver = canary_of_8()
    driver.registry = SILENT
    decisions = [driver.tick(30, passing()) for _ in range(6)]  # 3 min: past both steps
    canary = driver.status["canary"]
    assert (canary["step"], canary["traffic"], driver.status["stable"]["version"]) == (0, 10, "7")
    assert "cannot reach the registry" in canary["pausedReason"]
    assert "nothing is promoted" in canary["pausedReason"]
    assert reachable(driver) == ("False", "RegistryUnreachable")
    assert all(d.inference_service is None and not d.counts for d in decisions)
    assert all(d.registry_writes == () for d in decisions)
    warnings = [e.reason for d in decisions for e in d.events if e.type == "Warning"]
    assert warnings == ["RegistryUnreachable"]  # said once
    # The passing rounds were recorded: the step advances as soon as the registry answers.
    driver.registry = READY_V8
    driver.tick(30, passing())
    assert driver.status["canary"]["step"] == 1 and "pausedReason" not in driver.status["canary"]
    assert reachable(driver) == ("True", "Answered")


def test_a_failing_canary_is_rolled_back_while_the_registry_is_silent() -> None:
    driver = canary_of_8()
    driver.registry = SILENT
    rounds = [driver.tick(30, failing()) for _ in range(3)]
    assert [d.counts for d in rounds if d.counts] == [("rolled_back",)]
    assert "canary" not in driver.status and driver.status["stable"]["version"] == "7"
    assert [r["version"] for r in driver.status["rejectedVersions"]] == ["8"]
    (written,) = [d.inference_service for d in rounds if d.counts]
    assert written is not None  # the traffic is taken off version 8 (which drains)
    assert [(c["predictor"]["name"], c["trafficPercent"]) for c in written["spec"]["canary"]] == [
        ("v8", 0)
    ]
    # The rejection is tagged in the registry once it answers, and 8 is not served again.
    assert all(d.registry_writes == () for d in rounds)
    driver.registry = READY_V8
    back = driver.tick(30)
    assert [w.kind for w in back.registry_writes] == ["tag"]
    assert "canary" not in driver.status and driver.status["stable"]["version"] == "7"


def test_a_promotion_waits_for_the_registry_and_a_person_can_still_promote() -> None:
    driver = canary_of_8()
    driver.tick(60, passing())
    assert driver.status["canary"]["step"] == 1
    driver.registry = SILENT
    for _ in range(4):
        assert not driver.tick(30, passing()).counts
    assert driver.status["stable"]["version"] == "7"
    driver.annotate("modelops.io/promote", "8")
    promoted = driver.tick(1)
    assert promoted.counts == ("promoted",) and driver.status["stable"]["version"] == "8"
    assert promoted.registry_writes == ()  # promoteAlias: written when the registry answers
    driver.registry = READY_V8
    seen = len(driver.decisions)
    driver.settle()
    driver.tick(1)
    written = [(w.kind, w.alias) for d in driver.decisions[seen:] for w in d.registry_writes]
    assert written == [("alias", "production")]


def test_the_promoted_version_is_still_watched_while_the_registry_is_silent() -> None:
    driver = canary_of_8(
        spec__monitoring={"rollbackWindow": "10m"},
        spec__rollout={"strategy": "Direct", "bake": "30s"},
        spec__analysis=ANALYSIS,
    )
    driver.tick(30, passing())
    driver.settle()
    assert driver.status["stable"]["version"] == "8"
    driver.registry = SILENT
    driver.tick(30, failing())
    decision = driver.tick(30, failing())
    assert decision.counts == ("rolled_back",)
    assert driver.status["canary"]["restoring"] and driver.status["canary"]["version"] == "7"
    assert reachable(driver) == ("False", "RegistryUnreachable")
    # Once restored, the message says what is served and that the registry is silent.
    driver.settle()
    driver.tick()
    driver.tick(10)
    assert driver.status["stable"]["version"] == "7" and "canary" not in driver.status
    assert "cannot reach the registry" in driver.status["message"]


def test_nothing_served_yet_waits_for_the_registry() -> None:
    driver = Driver(
        spec__serving__storageUri=None,
        spec__serving__modelFormat=None,
        spec__model__registry={"artifactsDestination": "s3://mlflow/artifacts"},
    )
    driver.registry = SILENT
    decision = driver.tick()
    assert decision.inference_service is None and decision.status.phase == "Pending"
    assert reachable(driver) == ("False", "RegistryUnreachable")
