"""The rollout state machine through decide(): canary steps, promotion, rollback, pauses,
manual controls, monitoring after promotion, both KServe modes."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from modelops.core.conditions import condition
from modelops.core.requests import (
    PAUSED_ANNOTATION,
    PROMOTE_ANNOTATION,
    RETRY_ANNOTATION,
    ROLLBACK_ANNOTATION,
)
from tests.unit.rollout_driver import (
    ROLLOUT as ROLLOUT_SPEC,
)
from tests.unit.rollout_driver import (
    Driver,
    deployed,
    drain,
    erroring,
    failing,
    inconclusive,
    passing,
    rolling,
)


def canary_entries(driver: Driver) -> list[dict[str, Any]]:
    assert driver.observed is not None
    entries: list[dict[str, Any]] = driver.observed["spec"].get("canary", [])
    return entries


def test_the_first_version_is_deployed_without_a_canary() -> None:
    driver = deployed()
    assert canary_entries(driver) == []
    assert driver.status["traffic"] == "7: 100%"
    assert [h["event"] for h in driver.status["history"]] == ["Deployed"]


def test_a_new_version_starts_a_canary_at_the_first_steps_traffic() -> None:
    driver = deployed()
    driver.serve("8")
    decision = driver.tick()
    assert [e.reason for e in decision.events] == ["RolloutStarted"]
    assert decision.status.phase == "Progressing"
    canary = driver.status["canary"]
    assert (canary["version"], canary["step"], canary["traffic"], canary["name"]) == (
        "8",
        0,
        10,
        "v8",
    )
    (entry,) = canary_entries(driver)
    assert entry["trafficPercent"] == 10
    assert entry["predictor"]["model"]["storageUri"] == "s3://models/fraud/8"
    assert entry["predictor"]["labels"]["modelops.io/model-version"] == "8"
    assert driver.observed is not None
    assert driver.observed["spec"]["predictor"]["model"]["storageUri"] == "s3://models/fraud/7"
    # The step's clock starts once the canary has been ready for the sustained interval.
    assert "stepStartedAt" not in canary
    driver.tick()
    assert driver.status["canary"]["readySince"] and "stepStartedAt" not in driver.status["canary"]
    driver.tick(9)
    assert "stepStartedAt" not in driver.status["canary"]
    driver.tick(1)
    assert driver.status["canary"]["stepStartedAt"]


def test_a_canary_gets_route_weight_only_after_sustained_readiness_with_endpoints() -> None:
    route = {"hostnames": ["fraud.models.example.com"]}
    driver = deployed(spec__serving__httpRoute=route)
    driver.report(canary_ready=False)
    driver.serve("8")
    driver.settle()

    def backends() -> list[tuple[str, int]]:
        assert driver.route is not None
        refs = driver.route["spec"]["rules"][0]["backendRefs"]
        return [(b["name"], b["weight"]) for b in refs]

    assert backends() == [("fraud-v7-predictor", 100)]
    driver.report(canary_ready=True)  # KServe ready, its Service's endpoints ready
    driver.tick(5)
    driver.tick(5)
    assert backends() == [("fraud-v7-predictor", 100)]
    driver.report(canary_ready=False)  # a flap restarts the sustained interval
    driver.tick(1)
    driver.report(canary_ready=True)
    driver.tick(1)
    driver.tick(9)
    assert backends() == [("fraud-v7-predictor", 100)]
    assert driver.status["canary"]["effectiveTraffic"] == 0
    driver.tick(1)
    assert backends() == [("fraud-v7-predictor", 90), ("fraud-v8-predictor", 10)]
    assert driver.status["canary"]["effectiveTraffic"] == 10
    # Readiness lost mid-step: the weight goes, the step starts over once ready again.
    driver.report(canary_ready=False)
    driver.tick(5)
    assert backends() == [("fraud-v7-predictor", 100)]
    assert "stepStartedAt" not in driver.status["canary"]
    driver.report(canary_ready=True)
    driver.tick(1)
    driver.tick(10)
    assert backends() == [("fraud-v7-predictor", 90), ("fraud-v8-predictor", 10)]


def test_kserve_ready_without_a_ready_endpoint_is_not_ready() -> None:
    driver = deployed()
    driver.serve("8")
    driver.settle()
    deployment = driver.deployment
    from modelops.core.reconcile import decide
    from modelops.core.rollout.observe import WorkloadFacts

    decision = decide(deployment, driver.observed, driver.now, facts=WorkloadFacts(False))
    assert decision.status.canary is not None and decision.status.canary.ready_since is None
    assert "has no ready endpoint yet" in (decision.status.message or "")


def test_a_healthy_canary_walks_every_step_and_is_promoted() -> None:
    driver = rolling()
    driver.tick(30, passing())
    assert driver.status["canary"]["step"] == 0  # 30 s of a 1 min step
    decision = driver.tick(30, passing())
    assert driver.status["canary"]["step"] == 1 and driver.status["canary"]["traffic"] == 50
    assert [e.reason for e in decision.events] == ["StepAdvanced"]
    assert canary_entries(driver)[0]["trafficPercent"] == 50
    driver.tick(30, passing())
    decision = driver.tick(30, passing())
    assert decision.counts == ("promoted",)
    assert [e.reason for e in decision.events] == ["Promoted"]
    status = driver.status
    assert status["phase"] == "Healthy" and "canary" not in status
    assert status["stable"]["version"] == "8" and status["previous"]["version"] == "7"
    assert status["stable"]["predictor"] == "v8"
    assert driver.observed is not None
    # Promotion retargets the stable predictor onto the canary's Deployment: no restart. The
    # old stable keeps running without traffic while the switch reaches the gateways.
    assert driver.observed["spec"]["predictor"]["name"] == "v8"
    assert driver.observed["spec"]["predictor"]["model"]["storageUri"] == "s3://models/fraud/8"
    assert [(c["predictor"]["name"], c["trafficPercent"]) for c in canary_entries(driver)] == [
        ("v7", 0)
    ]
    assert [r["predictor"] for r in status["retiring"]] == ["v7"]
    assert [h["event"] for h in status["history"]] == ["Deployed", "RolloutStarted", "Promoted"]
    driver.tick(4)
    assert len(canary_entries(driver)) == 1
    assert drain(driver).events == ()
    assert canary_entries(driver) == [] and not driver.status.get("retiring")
    assert driver.tick(30).events == ()


def test_a_failing_canary_is_rolled_back_once_past_the_failure_limit() -> None:
    driver = rolling()
    driver.tick(30, failing())
    assert driver.status["phase"] == "Progressing"  # failureLimit 1 tolerates one
    decision = driver.tick(30, failing())
    assert decision.counts == ("rolled_back",)
    (event,) = decision.events
    assert event.type == "Warning" and event.reason == "RolledBack"
    assert "error-rate = 0.3 > max 0.05" in event.message
    status = driver.status
    assert status["phase"] == "RolledBack" and "canary" not in status
    assert status["stable"]["version"] == "7"
    assert [r["version"] for r in status["rejectedVersions"]] == ["8"]
    degraded = condition(decision.status.conditions, "Degraded")
    assert degraded is not None and degraded.status == "True" and "0.3" in degraded.message
    # Traffic leaves first; the canary's Deployment drains, then goes.
    assert [(c["predictor"]["name"], c["trafficPercent"]) for c in canary_entries(driver)] == [
        ("v8", 0)
    ]
    drain(driver)
    assert canary_entries(driver) == []
    assert driver.body["spec"]["model"]["version"] == "8"  # the spec is never written
    # The rejected version is not tried again while the spec still names it.
    for _ in range(3):
        later = driver.tick(30)
        assert later.events == () and later.status.phase == "RolledBack"
        assert later.inference_service is None
    assert "canary" not in driver.status


def test_a_retry_request_acts_once_per_value() -> None:
    driver = rolling()
    driver.tick(30, failing())
    driver.tick(30, failing())
    driver.annotate(RETRY_ANNOTATION, "8")
    decision = driver.tick()
    assert "RetryRequested" in [e.reason for e in decision.events]
    assert driver.status["canary"]["version"] == "8"
    assert driver.status["handledRequests"] == {"retry": "8"}
    driver.settle()
    driver.tick()
    driver.tick(10)
    driver.tick(30, failing())
    driver.tick(30, failing())
    # The same annotation value does not retry again.
    assert driver.status["phase"] == "RolledBack"
    driver.tick()
    assert "canary" not in driver.status


def test_no_data_pauses_without_promoting_or_rolling_back_and_recovers() -> None:
    driver = rolling()
    for _ in range(3):
        driver.tick(30, inconclusive())
    status = driver.decisions[-1].status
    assert status.canary is not None and status.canary.step == 0
    assert status.canary.paused_reason and "no verdict in 3" in status.canary.paused_reason
    metrics = condition(status.conditions, "MetricsAvailable")
    assert metrics is not None and metrics.status == "False"
    assert status.phase == "Progressing" and not status.rejected_versions
    for _ in range(3):
        driver.tick(30, inconclusive())
    assert driver.status["canary"]["step"] == 0
    driver.tick(30, passing())
    assert driver.status["canary"]["step"] == 1
    recovered = condition(driver.decisions[-1].status.conditions, "MetricsAvailable")
    assert recovered is not None and recovered.status == "True"


def test_failing_queries_pause_past_the_consecutive_error_limit() -> None:
    driver = rolling()
    for _ in range(3):
        driver.tick(30, erroring())
    canary = driver.status["canary"]
    assert canary["step"] == 0 and "connection refused" in canary["pausedReason"]
    assert driver.status["analysis"]["consecutiveErrors"] == 3
    assert driver.status["phase"] == "Progressing"


def test_manual_promotion_waits_for_a_person() -> None:
    driver = rolling(
        spec__rollout={
            "strategy": "Canary",
            "promotion": "Manual",
            "steps": [{"traffic": 20, "duration": "30s"}],
        }
    )
    driver.tick(30, passing())
    driver.tick(30, passing())
    assert "waiting for a person" in driver.status["canary"]["pausedReason"]
    driver.annotate(PROMOTE_ANNOTATION, "8")
    decision = driver.tick()
    assert decision.counts == ("promoted",)
    assert driver.status["stable"]["version"] == "8"


def test_a_paused_rollout_holds_its_step_and_resumes() -> None:
    driver = rolling()
    driver.annotate(PAUSED_ANNOTATION, "true")
    driver.tick(30, passing())
    driver.tick(30, passing())
    assert driver.status["canary"]["step"] == 0
    assert "paused by a person" in driver.status["canary"]["pausedReason"]
    driver.annotate(PAUSED_ANNOTATION, None)
    driver.tick(30, passing())
    assert driver.status["canary"]["step"] == 1


def test_a_manual_rollback_rejects_the_canary() -> None:
    driver = rolling()
    driver.annotate(ROLLBACK_ANNOTATION, "8")
    decision = driver.tick()
    assert decision.counts == ("rolled_back",)
    assert driver.status["rejectedVersions"][0]["reason"].startswith("rolled back by a person")


def test_a_newer_version_supersedes_the_canary_and_moving_back_aborts_it() -> None:
    driver = rolling()
    driver.serve("9")
    decision = driver.tick()
    assert [e.reason for e in decision.events] == ["RolloutAborted", "RolloutStarted"]
    assert driver.status["canary"]["version"] == "9" and not driver.status.get("rejectedVersions")
    driver.serve("7")
    decision = driver.tick()
    assert [e.reason for e in decision.events] == ["RolloutAborted"]
    assert "canary" not in driver.status and driver.status["stable"]["version"] == "7"


def test_direct_serves_everything_at_once_then_bakes() -> None:
    driver = rolling(spec__rollout={"strategy": "Direct", "bake": "1m"})
    assert canary_entries(driver)[0]["trafficPercent"] == 100
    driver.tick(30, passing())
    assert "canary" in driver.status
    driver.tick(30, passing())
    assert driver.status["stable"]["version"] == "8"


def test_monitoring_rolls_back_inside_the_window_and_marks_degraded_after_it() -> None:
    monitoring = {"rollbackWindow": "10m"}
    driver = rolling(
        spec__monitoring=monitoring, spec__rollout={"strategy": "Direct", "bake": "30s"}
    )
    driver.tick(30, passing())
    assert driver.status["stable"]["version"] == "8"
    driver.settle()
    driver.tick(30, failing())
    decision = driver.tick(30, failing())
    assert decision.counts == ("rolled_back",)
    # Version 7's pods are gone: it comes back as a restoring canary and takes all traffic
    # once ready; version 8 serves until then.
    assert driver.status["stable"]["version"] == "8"
    restoring = driver.status["canary"]
    assert (restoring["version"], restoring["traffic"], restoring["restoring"]) == ("7", 100, True)
    assert driver.status["phase"] == "RolledBack"
    driver.settle()
    driver.tick()
    driver.tick(10)
    assert driver.status["stable"]["version"] == "7" and "canary" not in driver.status
    assert driver.observed is not None
    assert driver.observed["spec"]["predictor"]["model"]["storageUri"] == "s3://models/fraud/7"
    assert [r["version"] for r in driver.status["retiring"]] == ["8"]
    assert [r["version"] for r in driver.status["rejectedVersions"]] == ["8"]

    late = rolling(
        spec__monitoring={"rollbackWindow": "1m"},
        spec__rollout={"strategy": "Direct", "bake": "30s"},
    )
    late.tick(30, passing())
    late.settle()
    late.tick(60, failing())
    decision = late.tick(60, failing())
    assert decision.status.phase == "Degraded" and late.status["stable"]["version"] == "8"


def test_knative_mode_uses_canary_traffic_percent_and_rolls_back_in_two_writes() -> None:
    driver = rolling(spec__serving__deploymentMode="Serverless")
    assert driver.observed is not None
    predictor = driver.observed["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 10 and "canary" not in driver.observed["spec"]
    assert predictor["model"]["storageUri"] == "s3://models/fraud/8"
    driver.tick(30, failing())
    driver.tick(30, failing())
    predictor = driver.observed["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == 0  # traffic back on the stable revision first
    assert driver.status["phase"] == "RolledBack"
    driver.tick()
    predictor = driver.observed["spec"]["predictor"]
    assert "canaryTrafficPercent" not in predictor
    assert predictor["model"]["storageUri"] == "s3://models/fraud/7"


def test_replicas_honour_the_step_within_the_limits_or_warn() -> None:
    driver = deployed(spec__serving__maxReplicas=None)
    driver.serve("8")
    decision = driver.tick()
    warning = next(e for e in decision.events if e.reason == "StepNotHonoured")
    assert "1 canary and 1 stable replicas (50%)" in warning.message
    assert "spec.serving.httpRoute" in warning.message
    assert driver.status["canary"]["effectiveTraffic"] == 50
    sized = deployed(spec__serving__maxReplicas=10)
    sized.serve("8")
    decision = sized.tick()
    assert "StepNotHonoured" not in [e.reason for e in decision.events]
    assert (sized.status["canary"]["replicas"], sized.status["canary"]["stableReplicas"]) == (1, 9)
    assert sized.observed is not None
    assert sized.observed["spec"]["predictor"]["minReplicas"] == 10  # KServe takes 1 off
    assert sized.status["traffic"] == "7: 90%, 8: 10%"


def test_an_http_route_splits_by_the_steps_weights() -> None:
    route = {"hostnames": ["fraud.models.example.com"]}
    driver = rolling(spec__serving__httpRoute=route)
    backends = driver.decisions[-1].http_route["spec"]["rules"][0]["backendRefs"]  # type: ignore[index]
    assert backends == [
        {"name": "fraud-v7-predictor", "port": 80, "weight": 90},
        {"name": "fraud-v8-predictor", "port": 80, "weight": 10},
    ]
    assert driver.status["canary"]["effectiveTraffic"] == 10


# ---- invariants ------------------------------------------------------------------------

ACTIONS = st.lists(
    st.tuples(
        st.sampled_from(
            ["pass", "fail", "inconclusive", "error", "none", "serve", "unready", "ready"]
        ),
        st.sampled_from([0, 10, 30, 60]),
        st.sampled_from(["8", "9", "7"]),
    ),
    max_size=30,
)
ROUNDS = {"pass": passing, "fail": failing, "inconclusive": inconclusive, "error": erroring}


@settings(max_examples=150, deadline=None)
@given(actions=ACTIONS, mode=st.sampled_from(["Standard", "Serverless"]))
def test_rollout_invariants(actions: list[tuple[str, int, str]], mode: str) -> None:
    driver = deployed(spec__serving__deploymentMode=mode, spec__monitoring={"rollbackWindow": "5m"})
    steps = [10, 50]
    for action, seconds, version in actions:
        before = driver.deployment.status
        measurements = ROUNDS[action]() if action in ROUNDS else None
        if action == "serve":
            driver.serve(version)
        if action in ("unready", "ready"):
            driver.canary_ready = action == "ready"
        decision = driver.tick(seconds, measurements)
        after = decision.status
        rejected = {(r.version, r.storage_uri) for r in after.rejected_versions}
        # Never serve a rejected version, but while the previous one is restored (Standard
        # mode brings its pods back first) or when it could not be.
        assert after.stable is not None
        if (after.stable.version, after.stable.storage_uri) in rejected:
            restoring = after.canary is not None and after.canary.restoring
            assert restoring or after.phase == "Degraded"
        if after.canary is not None and not after.canary.aborting and not after.canary.restoring:
            assert (after.canary.version, after.canary.storage_uri) not in rejected
            # Never exceed the current step's traffic (a restore takes all at once).
            assert (
                after.canary.step is not None and after.canary.traffic == steps[after.canary.step]
            )
        # Never advance or promote on anything but a Pass.
        if action in ("fail", "inconclusive", "error"):
            assert "promoted" not in decision.counts
            if before.canary is not None and after.canary is not None:
                assert after.canary.step == before.canary.step
        # A canary has route weight only while its step clock runs.
        route = decision.http_route
        if route is not None:
            weights = {b["name"]: b["weight"] for b in route["spec"]["rules"][0]["backendRefs"]}
            assert sum(weights.values()) == 100
            live = after.canary
            assert len(weights) == 1 or (live is not None and live.step_started_at is not None)
        # A rollback ends with all traffic on the last good version (after the drain, or once
        # the previous version is restored).
        if "rolled_back" in decision.counts:
            for _ in range(4):
                driver.canary_ready = True
                settled = driver.settle()
                driver.tick(10)
            settled = driver.tick(5)
            assert driver.observed is not None
            spec = driver.observed["spec"]
            assert not spec.get("canary") and "canaryTrafficPercent" not in spec["predictor"]
            good = settled.status.stable
            assert good is not None and spec["predictor"]["model"]["storageUri"] == good.storage_uri
        # At most one rollout in flight: every other entry is retiring, without traffic.
        if driver.observed is not None:
            retiring = {r.predictor for r in after.retiring}
            live_entries = [
                c for c in driver.observed["spec"].get("canary", [])
                if c["predictor"]["name"] not in retiring or c["trafficPercent"] > 0
            ]  # fmt: skip
            assert len(live_entries) <= 1


def test_a_version_with_the_same_artifact_is_promoted_without_renaming_the_predictor() -> None:
    driver = rolling()
    driver.body["spec"]["serving"]["storageUri"] = "s3://models/fraud/7"  # version 8, same files
    driver.settle()
    driver.tick()
    driver.tick(10)
    for _ in range(4):
        driver.tick(30, passing())
    assert driver.status["stable"]["version"] == "8"
    assert driver.observed is not None
    # KServe refuses a predictor.name change without a storageUri change.
    assert driver.observed["spec"]["predictor"]["name"] == "v7"


def test_a_refused_inference_service_keeps_the_recorded_state_and_is_not_asked_again() -> None:
    from modelops.core.decision import Problem
    from modelops.core.reconcile import refused_decision

    driver = rolling()
    decision = driver.tick(30, failing())
    problem = Problem("InferenceServiceRejected", "denied: predictor.name change requires ...")
    refused = refused_decision(driver.deployment, decision, problem, driver.now)
    assert refused.inference_service is None
    assert refused.status.phase == "Failed" and refused.status.canary == decision.status.canary
    assert refused.status.analysis == decision.status.analysis
    assert [e.reason for e in refused.events] == ["InferenceServiceRejected"]


CRASH_LOOPING_POD = {
    "metadata": {"name": "fraud-v8-predictor-5d9c-x2"},
    "status": {
        "phase": "Running",
        "initContainerStatuses": [
            {"name": "storage-initializer", "ready": False, "restartCount": 0,
             "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        ],
        "containerStatuses": [
            {"name": "kserve-container", "ready": False, "restartCount": 4,
             "state": {"waiting": {"reason": "CrashLoopBackOff",
                                   "message": "back-off 2m40s restarting failed container"}},
             "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}},
        ],
    },
}  # fmt: skip


def test_a_canary_not_ready_by_its_progress_deadline_is_rolled_back_saying_why() -> None:
    driver = deployed(spec__rollout={**ROLLOUT_SPEC, "progressDeadline": "2m"})
    driver.report(canary_ready=False)
    driver.pods = [CRASH_LOOPING_POD]
    driver.serve("8")
    driver.settle()
    driver.tick(60)
    message = driver.status["message"]
    assert driver.status["phase"] == "Progressing"
    assert "rolled back at 12:02:00Z unless ready: progressDeadline 2m" in message
    assert driver.tick(10).status.message == message  # no countdown: nothing new to write
    decision = driver.tick(51)
    assert decision.counts == ("rolled_back",)
    [rejected] = driver.status["rejectedVersions"]
    assert rejected["version"] == "8"
    reason = rejected["reason"]
    assert reason.startswith("not ready within progressDeadline 2m: KServe reports the canary")
    assert "pod fraud-v8-predictor-5d9c-x2: kserve-container CrashLoopBackOff" in reason
    assert "last exit code 1 (Error), 4 restarts" in reason
    assert "storage-initializer" not in reason  # it finished
    [event] = [e for e in decision.events if e.reason == "RolledBack"]
    assert "CrashLoopBackOff" in event.message
    assert driver.status["history"][-1]["event"] == "RolledBack"  # onRollback fires on it


def test_the_deadline_counts_again_from_a_loss_of_readiness() -> None:
    driver = rolling(spec__rollout={**ROLLOUT_SPEC, "progressDeadline": "1m"})
    driver.report(canary_ready=False)
    driver.tick(1)  # the loss is seen: traffic off, the deadline counts from here
    driver.tick(50)
    assert not driver.status.get("rejectedVersions")
    driver.tick(11)
    assert [r["version"] for r in driver.status.get("rejectedVersions", [])] == ["8"]


def test_a_first_version_never_ready_is_failed_with_the_same_reason_and_recovers() -> None:
    driver = Driver(spec__rollout={**ROLLOUT_SPEC, "progressDeadline": "1m"})
    driver.ready = False
    driver.pods = [{**CRASH_LOOPING_POD, "metadata": {"name": "fraud-v7-predictor-1"}}]
    driver.settle()
    assert driver.status["phase"] == "Pending"
    decision = driver.tick(61)
    assert driver.status["phase"] == "Failed"
    ready = condition(decision.status.conditions, "Ready")
    assert ready is not None and ready.reason == "ProgressDeadlineExceeded"
    assert "version 7 not ready within progressDeadline 1m" in ready.message
    assert "CrashLoopBackOff" in ready.message
    assert [e.reason for e in decision.events] == ["ProgressDeadlineExceeded"]
    assert driver.tick(30).events == ()  # said once
    driver.ready = True
    driver.tick()
    assert driver.tick().status.phase == "Healthy"
    assert "deploying" not in driver.status


def test_a_restored_version_that_never_becomes_ready_leaves_the_deployment_degraded() -> None:
    driver = rolling(spec__monitoring={"rollbackWindow": "10m"},
                     spec__rollout={"strategy": "Direct", "bake": "30s", "progressDeadline": "1m"})  # fmt: skip
    driver.tick(30, passing())
    drain(driver)
    driver.report(canary_ready=False)
    driver.tick(30, failing())
    driver.tick(30, failing())
    assert driver.status["canary"]["restoring"]
    driver.tick(30)
    driver.tick(31)
    status = driver.status
    assert status["phase"] == "Degraded" and status["stable"]["version"] == "8"
    assert "could not be restored" in status["message"] and "canary" not in status


def test_a_new_canary_never_takes_the_name_of_a_retiring_predictor() -> None:
    driver = rolling()
    for _ in range(4):
        driver.tick(30, passing())
    assert [r["predictor"] for r in driver.status["retiring"]] == ["v7"]
    driver.serve("7")  # back to 7 while its old predictor still drains
    driver.tick()
    name = driver.status["canary"]["name"]
    assert name != "v7" and name.startswith("c")
    names = [c["predictor"]["name"] for c in canary_entries(driver)]
    assert sorted(names) == sorted(["v7", name])
