"""Transitions that stand on KServe (a promotion, a rollback or failure at the progress
deadline) are checked with a dry run of the InferenceService first; while KServe's webhooks do
not answer, nothing is recorded, a condition and one Warning say why, and the transition goes
ahead once KServe answers. A rollback on failed analysis needs no KServe (the route moves the
traffic) and is never held."""

from __future__ import annotations

import asyncio

from modelops.adapters.kubernetes import ApiError
from modelops.controller.kserve_hold import RECHECK_SECONDS
from modelops.core.conditions import KSERVE_ANSWERING, condition
from modelops.core.reconcile import kserve_answered, kserve_held
from tests.unit.controller_harness import ISVC, KEY, MD, Harness, served
from tests.unit.rollout_driver import ROLLOUT, deployed, failing, passing, rolling

SILENT = ApiError(500, "InternalError", 'failed calling webhook "inferenceservice.kserve-webhook'
                  '-server.validator": context deadline exceeded')  # fmt: skip


def test_a_promotion_and_a_deadline_rollback_ask_for_the_check_an_analysis_rollback_not() -> None:
    driver = rolling()
    for _ in range(3):
        assert driver.tick(30, passing()).kserve_check is None  # steps: the route's work
    promotion = driver.tick(30, passing())
    assert promotion.counts == ("promoted",)
    assert promotion.kserve_check is not None
    assert promotion.kserve_check["spec"]["predictor"]["name"] == "v8"

    bad = rolling()
    rollback = bad.tick(30, failing())
    while not rollback.counts:  # failureLimit's rounds
        rollback = bad.tick(30, failing())
    assert rollback.counts == ("rolled_back",) and rollback.kserve_check is None

    late = deployed(spec__rollout={**ROLLOUT, "progressDeadline": "2m"})
    late.report(canary_ready=False)
    late.serve("8")
    late.settle()
    late.tick(60)
    deadline = late.tick(61)
    assert deadline.counts == ("rolled_back",) and deadline.kserve_check is not None


def test_a_held_transition_records_nothing_and_says_why_once() -> None:
    driver = rolling()
    before = driver.deployment
    held = kserve_held(before, "500 context deadline exceeded", driver.now)
    assert held.inference_service is None and held.kserve_check is None
    assert (
        held.status.canary == before.status.canary and held.status.history == before.status.history
    )
    found = condition(held.status.conditions, KSERVE_ANSWERING)
    assert found is not None and found.status == "False"
    assert "context deadline exceeded" in found.message and "holds" in found.message
    assert [(e.type, e.reason) for e in held.events] == [("Warning", "KServeNotAnswering")]
    again = kserve_held(before.model_copy(update={"status": held.status}), "500", driver.now)
    assert again.events == ()  # said once
    # Answering again: the decision goes ahead, the condition turns True with a Normal Event.
    promotion = driver.tick(120, passing())
    answered = kserve_answered(
        before.model_copy(update={"status": held.status}), promotion, driver.now
    )
    back = condition(answered.status.conditions, KSERVE_ANSWERING)
    assert back is not None and back.status == "True"
    assert answered.events[-1].reason == "KServeAnswering"
    # Never held, nothing added.
    assert kserve_answered(before, promotion, driver.now) is promotion


async def test_the_reconciler_holds_a_first_version_failure_while_kserve_is_silent() -> None:
    """Version 7 never ready; at its progress deadline it would be Failed, but KServe's
    webhooks do not answer the dry run: nothing is written but the condition, and the
    reconcile is retried; once they answer, the failure is recorded."""
    harness = Harness()
    harness.create(spec__rollout={**ROLLOUT, "progressDeadline": "1m"})
    await harness.reconcile()
    harness.api.writes.clear()
    harness.events.clear()
    harness.now = harness.now.replace(minute=harness.now.minute + 2)
    harness.api.refusals["DRYRUN"] = [SILENT]
    await harness.reconcile()
    assert [w[0] for w in harness.writes()] == ["DRYRUN", "PATCH"]
    status = harness.api.objects[MD]["status"]
    assert status["phase"] == "Pending"  # not Failed
    [answering] = [c for c in status["conditions"] if c["type"] == KSERVE_ANSWERING]
    assert answering["status"] == "False"
    assert [e.reason for e in harness.events] == ["KServeNotAnswering"]
    assert harness.reconciler._timers.pending() == 1  # retried

    async def recorded() -> None:
        while harness.api.objects[MD]["status"]["phase"] != "Failed":  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    await asyncio.wait_for(recorded(), timeout=5)  # the first retry comes after 1 s
    status = harness.api.objects[MD]["status"]
    [answering] = [c for c in status["conditions"] if c["type"] == KSERVE_ANSWERING]
    assert answering["status"] == "True"
    assert "ProgressDeadlineExceeded" in [e.reason for e in harness.events]


async def test_a_held_deployment_asks_kserve_again_within_seconds_however_long_it_waits() -> None:
    """The reconcile's backoff grows to a minute; a deployment held for KServe asks again
    every few seconds, so a held promotion follows KServe's return at once."""
    harness = Harness()
    harness.create(spec__rollout={**ROLLOUT, "progressDeadline": "1m"})
    await harness.reconcile()
    harness.now = harness.now.replace(minute=harness.now.minute + 2)
    harness.reconciler._attempts[KEY] = 10  # failed many times already
    harness.api.refusals["DRYRUN"] = [SILENT]
    await harness.reconcile()
    due = harness.reconciler._timers.due_in(KEY)
    assert due is not None and due <= RECHECK_SECONDS
    # Another failure (not KServe's silence) backs off as before.
    harness.reconciler._kserve.forget(KEY)
    harness.reconciler._schedule_retry(KEY, OSError("connection reset"))
    due = harness.reconciler._timers.due_in(KEY)
    assert due is not None and due > RECHECK_SECONDS


async def test_a_served_deployment_never_dry_runs() -> None:
    harness = Harness()
    await served(harness)
    await harness.reconcile()
    assert ("DRYRUN", ISVC) not in harness.writes()


async def test_an_apply_kserve_does_not_answer_says_so_and_is_retried() -> None:
    """A recorded decision whose InferenceService write KServe's webhooks do not answer (a
    spec change here; a step in a rollout): KServeAnswering=False with one Warning, applied
    again after the backoff, and the condition turns True once it goes through."""
    harness = Harness()
    await served(harness)
    harness.api.objects[MD]["spec"]["serving"]["minReplicas"] = 2
    harness.api.objects[MD]["metadata"]["generation"] += 1
    harness.watch_event()
    harness.api.refusals["APPLY"] = [SILENT]
    await harness.reconcile()
    status = harness.api.objects[MD]["status"]
    [answering] = [c for c in status["conditions"] if c["type"] == KSERVE_ANSWERING]
    assert answering["status"] == "False" and "context deadline exceeded" in answering["message"]
    assert [e.reason for e in harness.events] == ["KServeNotAnswering"]

    async def applied() -> None:
        while harness.api.objects[ISVC]["spec"]["predictor"]["minReplicas"] != 2:  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    await asyncio.wait_for(applied(), timeout=5)
    status = harness.api.objects[MD]["status"]
    [answering] = [c for c in status["conditions"] if c["type"] == KSERVE_ANSWERING]
    assert answering["status"] == "True"
    assert [e.reason for e in harness.events].count("KServeAnswering") == 1
