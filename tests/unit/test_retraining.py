"""The retraining loop's decisions: triggers with `for`, cooldown, schedules on an injected
clock, rollback and Degraded triggers, Jobs from the template, failures and backoff."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelops.api.resource import ModelDeployment
from modelops.core.retraining.cron import CronError, next_after, parse
from modelops.core.retraining.job import job_state
from modelops.core.retraining.triggers import (
    Reading,
    RetrainingDecision,
    backoff,
    plan,
    trigger_queries,
)
from tests.unit.factories import deployment_body

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
TEMPLATE = {"spec": {"backoffLimit": 0, "template": {"spec": {"containers": [
    {"name": "train", "image": "ghcr.io/modelops/trainer:0.1",
     "env": [{"name": "MLFLOW_TRACKING_URI", "value": "http://mine"}, {"name": "MODEL_NAME", "value": "x"}]},
]}}}}  # fmt: skip


class Loop:
    """plan() applied again and again, its status written back, on an injected clock."""

    def __init__(self, *triggers: dict[str, Any], cooldown: str = "1h") -> None:
        self.body = deployment_body(spec__retraining={
            "triggers": list(triggers), "cooldown": cooldown, "jobTemplate": TEMPLATE,
            "candidate": {"alias": "challenger"},
        })  # fmt: skip
        self.body["status"] = {"stable": {"version": "7", "storageUri": "s3://models/fraud/7"}}
        self.now = T0
        self.jobs: list[dict[str, Any]] = []

    @property
    def deployment(self) -> ModelDeployment:
        return ModelDeployment.model_validate(self.body)

    def step(self, seconds: float = 0, value: float | None = None, job: str | None = None,
             candidate: str | None = None, rollback_at: datetime | None = None,
             degraded_since: datetime | None = None) -> RetrainingDecision:  # fmt: skip
        self.now += timedelta(seconds=seconds)
        readings = None if value is None else [Reading("quality", value)]
        decision = plan(
            self.deployment, self.now, readings, job, candidate, rollback_at, degraded_since
        )  # type: ignore[arg-type]
        self.body["status"]["retraining"] = decision.status.model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        if decision.job is not None and decision.job["metadata"]["name"] not in {
            j["metadata"]["name"] for j in self.jobs
        }:
            self.jobs.append(decision.job)
        return decision


METRIC = {
    "name": "quality",
    "metric": {"query": 'accuracy{deployment="{{ deployment }}"}', "min": 0.9},
    "for": "2m",
}


def test_a_breach_held_for_its_duration_fires_exactly_one_job_with_the_environment() -> None:
    loop = Loop(METRIC)
    loop.step(0, value=0.95)
    loop.step(30, value=0.80)  # breach starts
    loop.step(60, value=0.80)
    assert loop.jobs == []
    decision = loop.step(60, value=0.79)  # held 2 minutes
    assert decision.results == ["started"]
    [job] = loop.jobs
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELOPS_DEPLOYMENT"] == "fraud" and env["MODELOPS_NAMESPACE"] == "risk"
    assert env["MODEL_NAME"] == "fraud-detector" and env["MODEL_VERSION"] == "7"
    assert env["MODELOPS_TRIGGER"] == "quality: 0.79 < min 0.9 for 120s (for: 2m)"
    assert env["MODELOPS_TRIGGER_ID"] == "quality-20261130120230"
    assert env["MLFLOW_TRACKING_URI"] == "http://mine"  # the template's own value wins
    assert env["MODELOPS_CANDIDATE_ALIAS"] == "challenger"
    assert "MODELOPS_PRODUCTION_DATA" not in env  # no monitor capturing rows
    assert job["metadata"]["name"].startswith("fraud-retrain-")
    assert job["metadata"]["ownerReferences"][0]["uid"] == "1111-2222"
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    # Still breaching while the Job runs: the same Job, no second one.
    for _ in range(3):
        again = loop.step(60, value=0.5, job="Running")
        assert again.job is not None and again.job["metadata"]["name"] == job["metadata"]["name"]
    assert len(loop.jobs) == 1


def test_a_shorter_breach_fires_nothing() -> None:
    loop = Loop(METRIC)
    loop.step(0, value=0.8)
    loop.step(60, value=0.8)
    loop.step(30, value=0.95)  # recovered after 90 s
    loop.step(30, value=0.8)
    loop.step(90, value=0.8)  # a new breach, 90 s old
    assert loop.jobs == []
    assert loop.deployment.status.retraining is not None
    assert "quality" in loop.deployment.status.retraining.breaches


def test_the_cooldown_suppresses_a_second_firing() -> None:
    loop = Loop({**METRIC, "for": "0s"}, cooldown="1h")
    loop.step(0, value=0.5)
    loop.step(60, value=0.5, job="Succeeded", candidate="8")
    decision = loop.step(60, value=0.5)
    assert decision.job is None and len(loop.jobs) == 1
    assert any(
        reason == "RetrainingSuppressed" and "cooling down" in message
        for _, reason, message in decision.events
    )
    later = loop.step(3600, value=0.5)
    assert later.results == ["started"] and len(loop.jobs) == 2


def test_a_schedule_fires_at_its_time_in_its_zone() -> None:
    loop = Loop({"name": "nightly", "schedule": "30 3 * * *", "timeZone": "Europe/Berlin"})
    loop.step(0)  # 13:00 Berlin: the next run is 03:30 tomorrow (02:30 UTC)
    loop.step(14 * 3600 + 29 * 60)  # 02:29 UTC
    assert loop.jobs == []
    decision = loop.step(60)  # 02:30 UTC
    assert decision.results == ["started"]
    assert (
        "due at 2026-12-01T03:30:00+01:00"
        in loop.jobs[0]["metadata"]["annotations"]["modelops.io/trigger"]
    )


def test_a_rollback_fires_once_and_an_earlier_one_not_at_all() -> None:
    earlier = T0 - timedelta(hours=1)
    loop = Loop({"name": "after-rollback", "onRollback": True})
    assert loop.step(0, rollback_at=earlier).job is None  # happened before retraining looked
    rollback = T0 + timedelta(minutes=5)
    assert loop.step(300, rollback_at=rollback).results == ["started"]
    loop.step(60, job="Succeeded", candidate="9", rollback_at=rollback)
    assert loop.step(7200, rollback_at=rollback).job is None  # answered already
    assert len(loop.jobs) == 1


def test_degraded_after_promotion_fires() -> None:
    loop = Loop({"onDegraded": True})
    loop.step(0)
    decision = loop.step(60, degraded_since=T0 + timedelta(seconds=30))
    assert decision.results == ["started"]
    assert (
        "Degraded after promotion" in loop.jobs[0]["metadata"]["annotations"]["modelops.io/trigger"]
    )


def test_a_succeeded_job_proposes_its_candidate() -> None:
    loop = Loop({**METRIC, "for": "0s"})
    loop.step(0, value=0.5)
    decision = loop.step(60, job="Succeeded", candidate="8")
    status = decision.status
    assert status.phase == "Succeeded" and status.candidate_version == "8"
    assert status.history[-1].result == "Succeeded" and status.history[-1].candidate_version == "8"
    assert decision.results == ["succeeded"]


def test_failed_jobs_back_off_exponentially_and_nothing_fires_before() -> None:
    loop = Loop({**METRIC, "for": "0s"}, cooldown="1s")
    loop.step(0, value=0.5)
    decision = loop.step(10, job="Failed")
    assert decision.results == ["failed"] and decision.status.phase == "Failed"
    assert [reason for _, reason, _ in decision.events] == ["RetrainingFailed"]
    assert loop.step(30, value=0.5).job is None  # backoff: 1 min after the failure
    assert loop.step(31, value=0.5).results == ["started"]
    loop.step(10, job="Failed")
    assert loop.step(100, value=0.5).job is None  # 2 min after the second failure
    assert loop.step(21, value=0.5).results == ["started"]
    assert backoff(1) == timedelta(minutes=1) and backoff(3) == timedelta(minutes=4)
    assert backoff(40) == timedelta(hours=1)


def test_a_job_that_registers_nothing_is_reported() -> None:
    loop = Loop({**METRIC, "for": "0s"})
    loop.step(0, value=0.5)
    decision = loop.step(60, job="Succeeded", candidate=None)
    assert decision.results == ["no_candidate"]
    assert decision.status.history[-1].result == "NoCandidate"
    assert decision.status.candidate_version is None


def test_trigger_queries_are_templated_and_escaped() -> None:
    loop = Loop(METRIC, {"name": "drift", "drift": {"maxPsi": 0.2}})
    values = {"namespace": "risk", "deployment": 'fr"aud', "isvc": "fraud", "version": "7",
              "stableVersion": "7", "service": "s", "revision": "r", "window": "30s"}  # fmt: skip
    queries = dict(trigger_queries(loop.deployment, values))
    assert queries["quality"] == 'accuracy{deployment="fr\\"aud"}'
    # The monitor's drift of the stable version (a canary's is judged by the analysis).
    assert queries["drift"] == (
        'max(modelops_drift_psi{namespace="risk", deployment="fr\\"aud", version="7"})'
    )


def test_job_states() -> None:
    assert job_state(None) == "Missing"
    assert job_state({"status": {}}) == "Running"
    assert (
        job_state({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})
        == "Succeeded"
    )
    assert job_state({"status": {"conditions": [{"type": "Failed", "status": "True"}]}}) == "Failed"


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        ("*/15 * * * *", None, "2026-11-30T12:07:00+00:00", "2026-11-30T12:15:00+00:00"),
        ("0 3 * * sun", None, "2026-11-30T12:00:00+00:00", "2026-12-06T03:00:00+00:00"),
        ("0 0 1 jan *", None, "2026-11-30T12:00:00+00:00", "2027-01-01T00:00:00+00:00"),
        ("30 2 * * *", "Europe/Berlin", "2027-03-27T12:00:00+00:00", "2027-03-29T02:30:00+02:00"),
        ("0 9 13 * 5", None, "2026-11-30T00:00:00+00:00", "2026-12-04T09:00:00+00:00"),
    ],
)
def test_cron_next_times(expression: str, zone: str | None, after: str, expected: str) -> None:
    found = next_after(parse(expression, zone), datetime.fromisoformat(after))
    assert found is not None and found.isoformat() == expected


@pytest.mark.parametrize(("expression", "zone", "message"), [
    ("* * *", None, "needs 5 fields"), ("61 * * * *", None, "minute: '61'"),
    ("* * * * *", "Mars/Olympus", "unknown time zone"), ("5-1 * * * *", None, "runs backwards"),
])  # fmt: skip
def test_cron_errors_name_the_part(expression: str, zone: str | None, message: str) -> None:
    with pytest.raises(CronError, match=message):
        parse(expression, zone)


def test_the_candidate_is_rolled_out_in_place_of_the_spec_until_promoted() -> None:
    import dataclasses

    from modelops.core.reconcile import decide
    from modelops.core.retraining.loop import RetrainingInputs, candidate_view
    from tests.unit.factories import READY_V7
    from tests.unit.factories import registry_body as body

    spec = body(
        spec__model={
            "name": "fraud-detector",
            "alias": "champion",
            "registry": {"artifactsDestination": "s3://mlflow/artifacts"},
        },
        spec__rollout={"strategy": "Canary", "steps": [{"traffic": 50, "duration": "1m"}]},
        spec__retraining={"triggers": [{"onRollback": True}], "jobTemplate": TEMPLATE},
    )
    spec["status"] = {
        "stable": {"version": "7", "storageUri": "s3://mlflow/artifacts/3/models/m-7/artifacts", "modelFormat": "sklearn"},
        "retraining": {"phase": "Running", "current": {"triggerId": "t-1", "job": "fraud-retrain-1",
                       "reason": "after-rollback: automatic rollback", "startedAt": "2026-11-30T11:00:00Z"}},
    }  # fmt: skip
    deployment = ModelDeployment.model_validate(spec)
    finished = decide(deployment, None, T0, registry=READY_V7,
                      retraining=RetrainingInputs(job="Succeeded", candidate="8"))  # fmt: skip
    retraining = finished.status.retraining
    assert retraining is not None and retraining.candidate_version == "8"
    assert finished.retraining_results == ("succeeded",)
    spec["status"] = finished.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    waiting = ModelDeployment.model_validate(spec)
    view = candidate_view(waiting)
    assert (view.spec.model.version, view.spec.model.alias) == ("8", None)
    assert waiting.spec.model.alias == "champion"  # the spec itself is untouched
    ready_v8 = dataclasses.replace(
        READY_V7, version="8", download_uri="mlflow-artifacts:/3/models/m-8/artifacts"
    )
    rolling = decide(waiting, None, T0 + timedelta(minutes=1), registry=ready_v8)
    assert rolling.status.canary is not None and rolling.status.canary.version == "8"
    assert "RolloutStarted" in [e.reason for e in rolling.events]


def test_the_loop_asks_to_be_woken_for_its_queries_and_schedules_only() -> None:
    from modelops.core.retraining.triggers import next_retraining_look, readings_due

    loop = Loop(METRIC)
    assert next_retraining_look(loop.deployment, T0, None) == T0  # first look: queries due
    loop.step(0, value=0.95)
    measured = T0 + timedelta(seconds=30)
    assert next_retraining_look(loop.deployment, T0, T0) == measured  # interval
    assert readings_due(loop.deployment, measured, T0)
    assert not readings_due(loop.deployment, measured - timedelta(seconds=1), T0)
    nightly = Loop({"name": "nightly", "schedule": "0 3 * * *"})
    nightly.step(0)
    assert next_retraining_look(nightly.deployment, T0, None) == T0 + timedelta(hours=15)
    assert not readings_due(nightly.deployment, T0, None)  # a schedule queries nothing
    nightly.body["status"].pop("stable")
    stable_less = Loop(METRIC).deployment.model_copy(update={"status": nightly.deployment.status})
    assert next_retraining_look(stable_less, T0, None) is None  # nothing to retrain against yet
    assert not readings_due(stable_less, T0, None)


def test_a_measurement_that_changes_nothing_leaves_the_status_as_it_was() -> None:
    """Idle deployments with triggers cost no API writes: only a breach starting or ending (or
    a firing) changes the status."""
    loop = Loop(METRIC)
    loop.step(0, value=0.95)
    settled = dict(loop.body["status"]["retraining"])
    for _ in range(5):
        loop.step(30, value=0.94)
        assert loop.body["status"]["retraining"] == settled
    loop.step(30, value=0.5)  # a breach starts: recorded with its start
    assert loop.body["status"]["retraining"]["breaches"] == {
        "quality": loop.now.isoformat().replace("+00:00", "Z")
    }


def test_a_person_asks_for_retraining_once_and_only_one_job_runs_at_a_time() -> None:
    from modelops.core.reconcile import decide
    from tests.unit.rollout_driver import served_by_kserve, with_status

    body = deployment_body(spec__retraining={
        "triggers": [{"name": "nightly", "schedule": "0 3 * * *"}], "cooldown": "6h",
        "jobTemplate": TEMPLATE})  # fmt: skip
    first = decide(ModelDeployment.model_validate(body), None, T0)
    assert first.inference_service is not None
    observed = served_by_kserve(first.inference_service)
    healthy = decide(with_status(body, first), observed, T0)
    settled = decide(with_status(body, healthy), observed, T0)
    body["metadata"]["annotations"] = {
        "modelops.io/retrain": "20261130T120100Z drift after the sale"
    }
    asked = decide(with_status(body, settled), observed, T0 + timedelta(minutes=1))
    assert asked.job is not None and asked.retraining_results == ("started",)
    run = asked.status.retraining.current  # type: ignore[union-attr]
    assert run is not None and run.trigger_id.startswith("manual-")
    assert run.reason == "manual: drift after the sale"
    assert asked.status.handled_requests["retrain"] == "20261130T120100Z drift after the sale"
    # Acted on once: the same value again starts nothing new.
    again = decide(with_status(body, asked), observed, T0 + timedelta(minutes=2))
    assert again.retraining_results == () and again.job is not None  # the running Job, kept
    # A new request while the Job runs is said and not acted on: one Job at a time.
    body["metadata"]["annotations"] = {"modelops.io/retrain": "20261130T120300Z again"}
    busy = decide(with_status(body, again), observed, T0 + timedelta(minutes=3))
    assert [e.reason for e in busy.events] == ["RetrainingSuppressed"]
    assert "is running" in busy.events[0].message
    assert busy.status.retraining.current.trigger_id == run.trigger_id  # type: ignore[union-attr]


def test_a_job_of_a_monitored_deployment_gets_its_captured_rows() -> None:
    loop = Loop(METRIC)
    loop.body["spec"]["monitoring"] = {
        "drift": {"enabled": True},
        "logger": {"url": "http://monitor/", "captureStore": "s3://captured/rows/"},
    }
    loop.step(0, value=0.5)
    loop.step(120, value=0.5)
    [job] = loop.jobs
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELOPS_PRODUCTION_DATA"] == "s3://captured/rows/risk/fraud"


def test_triggers_wait_while_a_candidate_rolls_out() -> None:
    loop = Loop(METRIC)
    loop.body["status"]["canary"] = {"version": "8", "storageUri": "s3://models/fraud/8"}
    loop.step(0, value=0.5)
    held = loop.step(180, value=0.5)  # in breach far past `for`
    assert loop.jobs == []
    assert any("version 8 is rolling out" in message for _, _, message in held.events)
    del loop.body["status"]["canary"]  # promoted or rolled back: the breach may fire now
    fired = loop.step(5, value=0.5)
    assert fired.results == ["started"] and len(loop.jobs) == 1
