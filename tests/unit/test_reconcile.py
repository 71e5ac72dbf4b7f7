from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from modelops.api.resource import ModelDeployment
from modelops.core.conditions import condition
from modelops.core.decision import Decision
from modelops.core.reconcile import decide
from tests.unit.factories import deployment, deployment_body
from tests.unit.rollout_driver import applied_by_modelops, served_by_kserve, with_status

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


def reasons(decision: Decision) -> list[str]:
    return [event.reason for event in decision.events]


def test_a_new_deployment_creates_its_inference_service_and_waits() -> None:
    decision = decide(deployment(), None, NOW)
    assert decision.inference_service is not None
    assert reasons(decision) == ["Created"]
    status = decision.status
    assert status.phase == "Pending"
    assert status.observed_generation == 1
    assert status.inference_service == "fraud"
    ready = condition(status.conditions, "Ready")
    assert ready is not None and ready.status == "False"
    assert ready.reason == "InferenceServiceNotReady"
    assert status.stable is None


def test_nothing_is_applied_when_the_observed_service_already_matches() -> None:
    first = decide(deployment(), None, NOW)
    assert first.inference_service is not None
    observed = served_by_kserve(first.inference_service, ready=False)
    second = decide(deployment(), observed, NOW)
    assert second.inference_service is None
    assert second.events == ()
    ready = condition(second.status.conditions, "Ready")
    assert ready is not None and "Predictor starting" in ready.message


def test_ready_service_makes_the_deployment_healthy_once() -> None:
    body = deployment_body()
    first = decide(deployment(), None, NOW)
    assert first.inference_service is not None
    observed = served_by_kserve(first.inference_service)
    healthy = decide(with_status(body, first), observed, NOW + timedelta(seconds=5))
    assert healthy.inference_service is None
    assert healthy.status.phase == "Healthy"
    assert reasons(healthy) == ["Ready"]
    assert healthy.status.stable is not None
    assert healthy.status.stable.version == "7"
    assert healthy.status.stable.storage_uri == "s3://models/fraud/7"
    assert healthy.status.traffic == "7: 100%"
    assert [entry.event for entry in healthy.status.history] == ["Deployed"]

    again = decide(with_status(body, healthy), observed, NOW + timedelta(minutes=5))
    assert again.events == ()
    assert again.inference_service is None
    assert again.status == healthy.status


def test_a_changed_spec_rolls_the_new_version_out_beside_the_old_one() -> None:
    # Without spec.rollout a new version replaces the old at once, through the same state
    # machine: it comes up beside the stable (which serves meanwhile) and takes all traffic
    # once ready, so no request goes to a server still loading its model.
    body = deployment_body()
    first = decide(deployment(), None, NOW)
    assert first.inference_service is not None
    observed = served_by_kserve(first.inference_service)
    healthy = decide(with_status(body, first), observed, NOW)

    new_body = deployment_body(
        spec__model__version="8", spec__serving__storageUri="s3://models/fraud/8"
    )
    new_body["metadata"]["generation"] = 2
    changed = decide(with_status(new_body, healthy), observed, NOW)
    assert changed.inference_service is not None
    spec = changed.inference_service["spec"]
    assert spec["predictor"]["model"]["storageUri"] == "s3://models/fraud/7"
    [entry] = spec["canary"]
    assert entry["trafficPercent"] == 100
    assert entry["predictor"]["model"]["storageUri"] == "s3://models/fraud/8"
    assert reasons(changed) == ["RolloutStarted"]
    assert changed.status.phase == "Progressing"
    assert changed.status.stable is not None and changed.status.stable.version == "7"
    progressing = condition(changed.status.conditions, "Progressing")
    assert progressing is not None and progressing.reason == "RollingOut"


def test_a_hand_edit_of_an_owned_field_is_restored_with_a_warning() -> None:
    first = decide(deployment(), None, NOW)
    assert first.inference_service is not None
    edited = served_by_kserve(first.inference_service)
    edited["spec"]["predictor"]["minReplicas"] = 5
    # As the API server records it: the person's edit now owns the field.
    edited["metadata"]["managedFields"] = [
        *applied_by_modelops(first.inference_service),
        {"manager": "kubectl-edit", "operation": "Update",
         "fieldsV1": {"f:spec": {"f:predictor": {"f:minReplicas": {}}}}},
    ]  # fmt: skip
    current = with_status(deployment_body(), first)
    decision = decide(current, edited, NOW)
    assert decision.inference_service == first.inference_service
    assert [(e.type, e.reason) for e in decision.events] == [("Warning", "Restored")]


def test_a_field_no_longer_wanted_is_removed_although_every_wanted_value_is_there() -> None:
    # No annotation of ours records what was asked: the fields our last apply owns do.
    first = decide(deployment(spec__serving__maxReplicas=4), None, NOW)
    assert first.inference_service is not None
    observed = served_by_kserve(first.inference_service)
    observed["metadata"]["managedFields"] = applied_by_modelops(first.inference_service)
    assert decide(deployment(spec__serving__maxReplicas=4), observed, NOW).inference_service is None
    edited = with_status(deployment_body(metadata__generation=2), first)  # maxReplicas removed
    later = decide(edited, observed, NOW)
    assert later.inference_service is not None
    assert "maxReplicas" not in later.inference_service["spec"]["predictor"]
    assert [(e.type, e.reason) for e in later.events] == [("Normal", "Updated")]


def test_a_removed_label_is_restored() -> None:
    first = decide(deployment(), None, NOW)
    assert first.inference_service is not None
    edited = served_by_kserve(first.inference_service)
    del edited["metadata"]["labels"]["modelops.io/model-version"]
    assert decide(deployment(), edited, NOW).inference_service is not None


def test_an_inference_service_controlled_by_someone_else_is_not_taken_over() -> None:
    body = deployment_body()
    first = decide(deployment(), None, NOW)
    assert first.inference_service is not None
    foreign = served_by_kserve(first.inference_service)
    foreign["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    decision = decide(deployment(), foreign, NOW)
    assert decision.inference_service is None
    assert decision.status.phase == "Failed"
    assert reasons(decision) == ["InferenceServiceConflict"]
    # Reported once: the same situation again posts no second event.
    assert decide(with_status(body, decision), foreign, NOW).events == ()


def test_without_a_model_format_the_deployment_fails_and_names_the_field() -> None:
    decision = decide(deployment(spec__serving__modelFormat=None), None, NOW)
    ready = condition(decision.status.conditions, "Ready")
    assert ready is not None and ready.reason == "ModelFormatRequired"
    assert "spec.serving.modelFormat" in ready.message


def test_blocks_not_implemented_yet_are_reported_not_ignored() -> None:
    retraining = {
        "triggers": [{"onRollback": True}, {"schedule": "0 3 * * *", "timeZone": "Mars/Base"}],
        "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}},
    }
    decision = decide(
        deployment(
            spec__rollout={"strategy": "Direct"},
            spec__monitoring={"rollbackWindow": "1h", "drift": {"enabled": True}},
            spec__retraining=retraining,
        ),
        None,
        NOW,
    )
    supported = condition(decision.status.conditions, "SpecSupported")
    assert supported is not None and supported.status == "False"
    assert (
        "spec.retraining.triggers[1].schedule (unknown time zone 'Mars/Base'" in supported.message
    )
    # Drift monitoring is acted on now: it has a condition of its own instead.
    assert "spec.monitoring" not in supported.message
    assert "spec.rollout" not in supported.message
    monitoring = condition(decision.status.conditions, "Monitoring")
    assert monitoring is not None and monitoring.reason == "MonitorNotConfigured"
    plain = condition(decide(deployment(), None, NOW).status.conditions, "SpecSupported")
    assert plain is not None and plain.status == "True"


def test_readiness_before_kserve_serves_the_predictor_asked_for_does_not_count() -> None:
    # KServe's observedGeneration mirrors its Deployment's, not our spec; the address naming
    # the predictor's Service tells that KServe has seen what we asked for.
    first = decide(deployment(), None, NOW)
    assert first.inference_service is not None
    observed = served_by_kserve(first.inference_service)
    observed["status"]["address"]["url"] = "http://fraud-predictor.risk.svc.cluster.local"
    decision = decide(deployment(), observed, NOW)
    assert decision.status.phase == "Pending"
    assert decision.status.stable is None


def test_transition_time_moves_only_when_the_condition_status_changes() -> None:
    body = deployment_body()
    first = decide(deployment(), None, NOW)
    later = decide(with_status(body, first), None, NOW + timedelta(hours=1))
    before = condition(first.status.conditions, "Ready")
    after = condition(later.status.conditions, "Ready")
    assert before is not None and after is not None
    assert after.last_transition_time == before.last_transition_time == NOW


specs = st.fixed_dictionaries(
    {
        "spec__serving__minReplicas": st.integers(0, 10),
        "spec__serving__protocolVersion": st.sampled_from(["v1", "v2"]),
        "spec__model__version": st.integers(1, 99).map(str),
        "spec__serving__storageUri": st.sampled_from(["s3://a/1", "gs://b/2", "pvc://c/3"]),
        "spec__serving__resources": st.one_of(st.none(), st.just({"requests": {"cpu": "100m"}})),
    }
)


@given(specs, st.booleans())
def test_a_second_reconcile_of_the_same_state_writes_nothing(
    overrides: dict[str, Any], ready: bool
) -> None:
    body = deployment_body(**overrides)
    first = decide(ModelDeployment.model_validate(body), None, NOW)
    assert first.inference_service is not None
    observed = served_by_kserve(first.inference_service, ready=ready)
    settled = decide(with_status(body, first), observed, NOW)
    again = decide(with_status(body, settled), observed, NOW + timedelta(seconds=30))
    assert again.inference_service is None
    assert again.events == ()
    assert again.status == settled.status
