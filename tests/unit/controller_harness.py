"""One operator process in-process for the controller's unit tests: a Reconciler on the fake
API that records writes, the Events it posts, an injected clock."""

from __future__ import annotations

import copy
from typing import Any

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
        """What a watch delivers after the test changed the stored ModelDeployment in place:
        the object with a new resourceVersion, as the API server gives every change."""
        self.api.objects[MD]["metadata"]["resourceVersion"] = self.api.next_version()
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


async def served(harness: Harness, **overrides: Any) -> None:
    """A deployment (deployment_body's `overrides`) created and served Ready; writes and
    Events cleared."""
    harness.create(**overrides)
    await harness.reconcile()
    harness.kserve_reports_ready()
    await harness.reconcile()
    harness.api.writes.clear()
    harness.events.clear()
