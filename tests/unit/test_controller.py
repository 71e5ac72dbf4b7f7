"""The controller in-process against a fake API that records writes: the exact writes for a
create, a no-op, a hand edit, a refusal, a retry and a restart, and the timers it keeps."""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any

from modelops.adapters.kubernetes import ApiError
from modelops.controller.reconciler import Key, Reconciler
from modelops.core.decision import EventIntent
from tests.unit.factories import deployment_body
from tests.unit.fake_api import FakeApi
from tests.unit.rollout_driver import START, reported

KEY: Key = ("risk", "fraud")
MD = "/apis/modelops.io/v1alpha1/namespaces/risk/modeldeployments/fraud"
ISVC = "/apis/serving.kserve.io/v1beta1/namespaces/risk/inferenceservices/fraud"


class Harness:
    """One operator process: a Reconciler on the fake API, its Events, a clock."""

    def __init__(self, api: FakeApi | None = None) -> None:
        self.api = api or FakeApi()
        self.now = START
        self.events: list[EventIntent] = []
        self.reconciler = Reconciler(
            self.api,  # type: ignore[arg-type]
            lambda _, event: self.events.append(event),
            clock=lambda: self.now,
        )

    def create(self, **overrides: Any) -> None:
        body = deployment_body(**overrides)
        self.api.objects[MD] = body
        self.reconciler.observe_deployment(body)

    def watch_event(self) -> None:
        """What a watch delivers: the stored ModelDeployment."""
        self.reconciler.observe_deployment(copy.deepcopy(self.api.objects[MD]))

    async def reconcile(self) -> None:
        await self.reconciler.reconcile(KEY, lambda _: self.api.objects.get(ISVC))

    def kserve_reports_ready(self) -> None:
        stored = self.api.objects[ISVC]
        report = reported(stored, ready=True, canary_ready=True,
                          generation=stored["metadata"]["generation"])  # fmt: skip
        stored["status"] = report["status"]

    def writes(self) -> list[tuple[str, str]]:
        return [(w.method, w.path) for w in self.api.writes]


async def served(harness: Harness) -> None:
    harness.create()
    await harness.reconcile()
    harness.kserve_reports_ready()
    await harness.reconcile()
    harness.api.writes.clear()
    harness.events.clear()


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


async def test_a_failed_write_is_retried_by_its_timer() -> None:
    harness = Harness()
    harness.api.refusals["PATCH"] = [ApiError(500, "InternalError", "etcd leader changed")]
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
