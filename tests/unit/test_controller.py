"""The controller in-process against a fake API that records writes: the exact writes for a
create, a no-op, a hand edit, a refusal, a retry and a restart, and the timers it keeps."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta

import pytest

from modelops.adapters.kubernetes import ApiError
from tests.unit.controller_harness import ISVC, KEY, MD, Harness, served
from tests.unit.rollout_driver import START


async def test_a_create_writes_the_status_then_the_inference_service() -> None:
    harness = Harness()
    harness.create()
    await harness.reconcile()
    assert harness.writes() == [("PATCH", MD + "/status"), ("APPLY", ISVC)]
    assert harness.api.objects[MD]["status"]["phase"] == "Pending"
    assert [e.reason for e in harness.events] == ["Created"]
    # The watch returns the deployment and its InferenceService (not ready yet): the status
    # written before the apply already says what follows it, so nothing more is written.
    harness.api.writes.clear()
    harness.watch_event()
    await harness.reconcile()
    assert harness.writes() == []
    assert "waiting for KServe to serve" in harness.api.objects[MD]["status"]["message"]


async def test_the_watch_echoing_our_write_keeps_the_stored_deployment_and_its_parse() -> None:
    harness = Harness()
    harness.create()
    await harness.reconcile()
    stored = harness.reconciler._deployments[KEY]
    parsed = harness.reconciler._models.get(KEY, stored)
    # The status write's own version, as the watch delivers it after the write returned.
    harness.reconciler.observe_deployment(copy.deepcopy(harness.api.objects[MD]))
    assert harness.reconciler._deployments[KEY] is stored
    assert harness.reconciler._models.get(KEY, stored) is parsed
    harness.api.writes.clear()
    await harness.reconcile()
    assert harness.writes() == []
    # Someone's edit comes with a new version: taken in and decided on.
    harness.api.objects[MD]["spec"]["serving"]["minReplicas"] = 3
    harness.watch_event()
    assert harness.reconciler._deployments[KEY] is not stored
    await harness.reconcile()
    assert harness.api.objects[ISVC]["spec"]["predictor"]["minReplicas"] == 3


async def test_once_ready_one_status_write_and_then_nothing() -> None:
    harness = Harness()
    harness.create()
    await harness.reconcile()
    harness.api.writes.clear()
    harness.kserve_reports_ready()
    await harness.reconcile()
    assert harness.writes() == [("PATCH", MD + "/status")]
    assert harness.api.objects[MD]["status"]["phase"] == "Healthy"
    harness.api.writes.clear()
    for _ in range(3):
        await harness.reconcile()
    assert harness.writes() == []


async def test_a_hand_edit_is_restored_with_one_apply_and_a_warning() -> None:
    harness = Harness()
    await served(harness)
    stored = harness.api.objects[ISVC]
    stored["spec"]["predictor"]["minReplicas"] = 5
    stored["metadata"]["managedFields"].append(
        {"manager": "kubectl-edit", "operation": "Update",
         "fieldsV1": {"f:spec": {"f:predictor": {"f:minReplicas": {}}}}}
    )  # fmt: skip
    await harness.reconcile()
    assert harness.writes() == [("APPLY", ISVC)]
    assert harness.api.objects[ISVC]["spec"]["predictor"]["minReplicas"] == 1
    assert [(e.type, e.reason) for e in harness.events] == [("Warning", "Restored")]


async def test_a_refused_inference_service_is_said_once_and_not_asked_again() -> None:
    harness = Harness()
    harness.api.refusals["APPLY"] = [
        ApiError(422, "Invalid", "admission webhook denied the request")
    ]
    harness.create()
    await harness.reconcile()
    assert harness.writes() == [
        ("PATCH", MD + "/status"),
        ("APPLY", ISVC),
        ("PATCH", MD + "/status"),
    ]
    ready = next(c for c in harness.api.objects[MD]["status"]["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "InferenceServiceRejected" and "webhook denied" in ready["message"]
    harness.api.writes.clear()
    harness.watch_event()
    await harness.reconcile()
    assert ("APPLY", ISVC) not in harness.writes()


@pytest.mark.parametrize(
    "refusal",
    [
        ApiError(500, "InternalError", "etcd leader changed"),
        # Status writes carry no resourceVersion, so the API server has no reason for a 409;
        # were one to come (a webhook, a proxy), the decision is made again and written.
        ApiError(409, "Conflict", "the object has been modified"),
    ],
)
async def test_a_failed_write_is_retried_by_its_timer(refusal: ApiError) -> None:
    harness = Harness()
    harness.api.refusals["PATCH"] = [refusal]
    harness.create()
    await harness.reconcile()
    assert harness.writes() == [("PATCH", MD + "/status")]  # refused: nothing after it
    assert harness.reconciler._timers.pending() == 1

    async def retried() -> None:
        while ("APPLY", ISVC) not in harness.writes():  # noqa: ASYNC110 (polled, with a deadline)
            await asyncio.sleep(0.05)

    await asyncio.wait_for(retried(), timeout=5)  # the first retry comes after 1 s
    assert harness.writes() == [
        ("PATCH", MD + "/status"),
        ("PATCH", MD + "/status"),
        ("APPLY", ISVC),
    ]


async def test_a_restarted_operator_writes_nothing_for_a_served_deployment() -> None:
    first = Harness()
    await served(first)
    restarted = Harness(first.api)
    restarted.watch_event()
    await restarted.reconcile()
    assert restarted.writes() == []
    assert restarted.events == []


async def test_an_idle_deployment_keeps_no_timer_and_a_waiting_canary_one_per_second() -> None:
    harness = Harness()
    await served(harness)
    assert harness.reconciler._timers.pending() == 0  # nothing to look at until an event
    # A new version (a replacement, without spec.rollout) waits for its readiness.
    body = harness.api.objects[MD]
    body["spec"]["model"]["version"] = "8"
    body["spec"]["serving"]["storageUri"] = "s3://models/fraud/8"
    body["metadata"]["generation"] = 2
    harness.watch_event()
    harness.now = START + timedelta(seconds=30)
    await harness.reconcile()
    assert harness.api.objects[MD]["status"]["canary"]["version"] == "8"
    assert harness.reconciler._timers.pending() == 1
