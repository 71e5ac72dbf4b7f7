"""What the pods of a version that is not ready report, in a few words, and when a deployment
needs a look while a version waits for readiness or a predictor drains."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from modelops.core.rollout.observe import diagnosis_selector
from modelops.core.rollout.readiness import DRAIN, pod_diagnosis
from modelops.core.rollout.wake import next_rollout_look
from tests.unit.rollout_driver import Driver, passing, rolling


def pod(name: str, *init: dict[str, Any], containers: list[dict[str, Any]], phase: str = "Running",
        message: str | None = None) -> dict[str, Any]:  # fmt: skip
    status: dict[str, Any] = {"phase": phase, "initContainerStatuses": list(init),
                              "containerStatuses": containers}  # fmt: skip
    if message:
        status["message"] = message
    return {"metadata": {"name": name}, "status": status}


def container(name: str, state: dict[str, Any], *, ready: bool = False, restarts: int = 0,
              last: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    found = {"name": name, "ready": ready, "restartCount": restarts, "state": state}
    if last:
        found["lastState"] = {"terminated": last}
    return found


def test_a_crash_loop_names_its_reason_exit_code_restarts_and_message() -> None:
    crashing = container("kserve-container",
                         {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
                         restarts=3, last={"exitCode": 1, "reason": "Error"})  # fmt: skip
    text = pod_diagnosis([pod("p-1", containers=[crashing])])
    assert text == (
        "pod p-1: kserve-container CrashLoopBackOff, last exit code 1 (Error), 3 restarts: "
        "back-off 40s"
    )


def test_a_failing_init_container_is_named_and_a_finished_one_is_not() -> None:
    done = container("agent-init", {"terminated": {"exitCode": 0, "reason": "Completed"}})
    failing = container("storage-initializer", {"waiting": {"reason": "CrashLoopBackOff"}},
                        restarts=2, last={"exitCode": 1, "reason": "Error"})  # fmt: skip
    waiting = container("kserve-container", {"waiting": {"reason": "PodInitializing"}})
    text = pod_diagnosis([pod("p-1", done, failing, containers=[waiting], phase="Pending")])
    assert "agent-init" not in text
    assert "storage-initializer CrashLoopBackOff, last exit code 1 (Error), 2 restarts" in text
    assert "kserve-container PodInitializing" in text


def test_ready_pods_say_nothing_unready_ones_say_so_and_no_pods_is_said() -> None:
    ready = container("kserve-container", {"running": {}}, ready=True)
    loading = container("kserve-container", {"running": {}}, restarts=1,
                        last={"exitCode": 0, "reason": "Completed"})  # fmt: skip
    assert pod_diagnosis([pod("a", containers=[ready])]) == ""
    assert pod_diagnosis([pod("b", containers=[loading])]) == (
        "pod b: kserve-container running, not ready, last exit code 0 (Completed), 1 restart"
    )
    assert pod_diagnosis([]) == "no pods of the version exist"
    unscheduled = pod("c", containers=[], phase="Pending", message="0/1 nodes are available")
    assert pod_diagnosis([unscheduled]) == "pod c: 0/1 nodes are available"


def test_at_most_three_pods_are_described_in_name_order() -> None:
    bad = container("kserve-container", {"waiting": {"reason": "ImagePullBackOff"}})
    text = pod_diagnosis([pod(f"p-{i}", containers=[bad]) for i in (5, 1, 4, 2)])
    assert [part.split(":")[0] for part in text.split(" | ")] == ["pod p-1", "pod p-2", "pod p-4"]


def test_pods_are_looked_up_only_past_the_deadline_of_a_waiting_version() -> None:
    driver = rolling(spec__rollout={"strategy": "Canary", "progressDeadline": "1m",
                                    "steps": [{"traffic": 10, "duration": "1m"}]})  # fmt: skip
    assert diagnosis_selector(driver.deployment, driver.now + timedelta(hours=1)) is None
    driver.report(canary_ready=False)
    driver.tick(1)
    assert diagnosis_selector(driver.deployment, driver.now + timedelta(seconds=59)) is None
    assert diagnosis_selector(driver.deployment, driver.now + timedelta(seconds=61)) == (
        "modelops.io/deployment=fraud,modelops.io/model-version=8"
    )


def test_a_deployment_asks_to_be_woken_while_its_canary_waits_and_when_a_drain_ends() -> None:
    driver = Driver()
    driver.settle()
    driver.tick()
    assert next_rollout_look(driver.deployment, driver.now) is None  # idle: no timer at all
    driver.report(canary_ready=False)
    driver.serve("8")
    driver.settle()
    # Waiting for its traffic: looked at every second (endpoints are not watched).
    assert next_rollout_look(driver.deployment, driver.now) == driver.now + timedelta(seconds=1)
    driver.report(canary_ready=True)
    driver.tick()
    driver.tick(10)
    started = driver.now
    # In a step with analysis: the next round, one interval after the last.
    assert next_rollout_look(driver.deployment, driver.now) == started
    for _ in range(4):
        driver.tick(30, passing())
    assert driver.status["retiring"]
    # Promoted; the old predictor drains for DRAIN.
    assert next_rollout_look(driver.deployment, driver.now) == driver.now + DRAIN
