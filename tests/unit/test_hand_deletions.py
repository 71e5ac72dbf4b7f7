"""What a person deleting or editing the operator's objects gets: a deleted InferenceService is
created again with a Warning, a deleted or edited HTTPRoute is applied again as soon as the watch
reports it, and a running retraining Job that is deleted is recorded as failed (once, with a
Warning) and not created again, while a Job never seen is still created after a restart."""

from __future__ import annotations

import copy
from datetime import timedelta
from types import SimpleNamespace

from modelops.api.resource import ModelDeployment
from modelops.controller.retraining import RetrainingLoop
from modelops.core.reconcile import decide
from tests.unit.controller_harness import ISVC, KEY, Harness, served
from tests.unit.factories import deployment, deployment_body
from tests.unit.fake_api import FakeApi
from tests.unit.rollout_driver import served_by_kserve, with_status
from tests.unit.test_reconcile import NOW
from tests.unit.test_retraining import METRIC, T0, Loop

NO_REGISTRY = SimpleNamespace(default_tracking_uri=None)
"""Only read for the Job's tracking URI here."""
ROUTE = "/apis/gateway.networking.k8s.io/v1/namespaces/risk/httproutes/fraud"
ROUTED = {"spec__serving__httpRoute": {"hostnames": ["fraud.example.com"]}}


def test_a_deleted_inference_service_is_created_again_with_a_warning() -> None:
    body = deployment_body()
    first = decide(deployment(), None, NOW)
    assert first.inference_service is not None
    observed = served_by_kserve(first.inference_service)
    healthy = decide(with_status(body, first), observed, NOW + timedelta(seconds=5))
    current = with_status(body, healthy)
    assert current.status.stable is not None
    again = decide(current, None, NOW + timedelta(seconds=10))
    assert again.inference_service == first.inference_service
    assert [(e.type, e.reason) for e in again.events] == [("Warning", "Recreated")]
    assert "deleted outside modelops" in again.events[0].message
    assert [e.reason for e in first.events] == ["Created"]  # a first create is no warning


async def test_a_deleted_route_is_applied_again_once_the_watch_reports_it() -> None:
    harness = Harness()
    await served(harness, **ROUTED)
    applied = harness.api.objects[ROUTE]
    await harness.reconcile()
    assert harness.writes() == []  # applied already: not again
    # Its own apply, reported by the watch, is no reason to apply again.
    assert not harness.reconciler.observe_route(KEY, copy.deepcopy(applied), deleted=False)
    del harness.api.objects[ROUTE]
    assert harness.reconciler.observe_route(KEY, applied, deleted=True)
    assert [(e.type, e.reason) for e in harness.events] == [("Warning", "Recreated")]
    await harness.reconcile()
    assert harness.writes() == [("APPLY", ROUTE)]
    assert ROUTE in harness.api.objects and ISVC in harness.api.objects


async def test_the_late_echo_of_an_earlier_apply_is_no_edit() -> None:
    harness = Harness()
    await served(harness, **ROUTED)
    applied = harness.api.objects[ROUTE]
    # The watch reports the route as an earlier apply of ours wrote it (other weights, an
    # older generation) after the latest apply: no Warning, nothing applied again.
    echo = copy.deepcopy(applied)
    echo["metadata"]["generation"] -= 1
    echo["spec"]["rules"][0]["backendRefs"][0]["weight"] = 0
    assert not harness.reconciler.observe_route(KEY, echo, deleted=False)
    assert harness.events == []
    await harness.reconcile()
    assert harness.writes() == []
    # The same content at the latest generation or newer is an edit.
    echo["metadata"]["generation"] += 2
    assert harness.reconciler.observe_route(KEY, echo, deleted=False)


async def test_an_edited_route_is_restored() -> None:
    harness = Harness()
    await served(harness, **ROUTED)
    edited = copy.deepcopy(harness.api.objects[ROUTE])
    edited["spec"]["rules"][0]["backendRefs"][0]["name"] = "somewhere-else"
    assert harness.reconciler.observe_route(KEY, edited, deleted=False)
    assert [(e.type, e.reason) for e in harness.events] == [("Warning", "Restored")]
    await harness.reconcile()
    assert harness.writes() == [("APPLY", ROUTE)]


def test_a_deleted_running_job_is_recorded_as_failed_and_not_created_again() -> None:
    loop = Loop({**METRIC, "for": "0s"}, cooldown="1s")
    loop.step(0, value=0.5)
    assert len(loop.jobs) == 1
    decision = loop.step(10, job="Deleted")
    assert decision.job is None and decision.status.phase == "Failed"
    assert decision.status.history[-1].result == "Failed"
    assert decision.results == ["deleted"]
    assert [(kind, reason) for kind, reason, _ in decision.events] == [
        ("Warning", "RetrainingJobDeleted")
    ]
    assert "deleted before it finished" in decision.events[0][2]
    assert loop.step(10, value=0.5).job is None  # the backoff that follows a failure
    assert len(loop.jobs) == 1


async def test_a_job_seen_then_gone_is_deleted_one_never_seen_is_missing() -> None:
    api = FakeApi()
    path = "/apis/batch/v1/namespaces/risk/jobs/fraud-retrain-1"
    api.objects[path] = {"metadata": {"name": "fraud-retrain-1"}, "status": {}}
    body = Loop({"name": "nightly", "schedule": "0 3 * * *"}).body
    body["status"]["retraining"] = {
        "phase": "Running",
        "current": {"triggerId": "t-1", "job": "fraud-retrain-1", "reason": "quality",
                    "startedAt": T0.isoformat()},
    }  # fmt: skip
    running = ModelDeployment.model_validate(body)
    restarted = RetrainingLoop(api, NO_REGISTRY, None)  # type: ignore[arg-type]
    del api.objects[path]
    # A process that never saw the Job (a restart between the firing and the create).
    assert (await restarted.inputs(running, None, T0)).job == "Missing"
    api.objects[path] = {"metadata": {"name": "fraud-retrain-1"}, "status": {}}
    watching = RetrainingLoop(api, NO_REGISTRY, None)  # type: ignore[arg-type]
    assert (await watching.inputs(running, None, T0)).job == "Running"
    del api.objects[path]
    assert (await watching.inputs(running, None, T0)).job == "Deleted"
