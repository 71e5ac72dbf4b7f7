"""Shards: which deployments a process owns (the label selector the API server applies), the
shard label on every object a deployment owns, the handover of those objects to the shard a
deployment moves to, and the flags that choose the shard."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelops.api.status import RetrainingRun
from modelops.cli import build_parser, main, operator_config
from modelops.controller.retraining import RetrainingLoop
from modelops.core.ownership import deployment_labels
from modelops.core.retraining.job import retraining_job
from modelops.core.rollout.traffic import desired_http_route
from modelops.core.served import ServedModel
from modelops.core.sharding import SHARD_LABEL, Shard, ShardNameError, handover_labels
from tests.unit.controller_harness import ISVC, KEY, MD, Harness, served
from tests.unit.factories import deployment
from tests.unit.fake_api import FakeApi
from tests.unit.rollout_driver import START


def matches(selector: str | None, labels: dict[str, str]) -> bool:
    """Kubernetes' reading of the equality and existence selectors shards use."""
    if selector is None:
        return True
    for term in selector.split(","):
        if term.startswith("!"):
            if term[1:] in labels:
                return False
        else:
            key, _, value = term.partition("=")
            if labels.get(key) != value:
                return False
    return True


RETRAINING = {
    "triggers": [{"name": "quality", "metric": {"query": "accuracy", "min": 0.9}}],
    "jobTemplate": {"spec": {"template": {"spec": {"containers": [
        {"name": "train", "image": "trainer:0.1"}]}}}},
}  # fmt: skip


def test_selectors_of_the_default_and_named_shards() -> None:
    assert Shard().selector is None  # alone, it owns every deployment
    assert Shard(others_exist=True).selector == f"!{SHARD_LABEL}"
    assert Shard("gpu-1").selector == f"{SHARD_LABEL}=gpu-1"
    assert Shard("gpu-1").selecting("app.kubernetes.io/managed-by=modelops") == (
        f"app.kubernetes.io/managed-by=modelops,{SHARD_LABEL}=gpu-1"
    )
    assert Shard().selecting("x=y") == "x=y"


@given(
    value=st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),
    other=st.dictionaries(st.sampled_from(["team", "tier"]), st.sampled_from(["x", "y"])),
)
def test_every_deployment_has_exactly_one_owner(value: str | None, other: dict[str, str]) -> None:
    labels = {**other, **({SHARD_LABEL: value} if value is not None else {})}
    assert matches(Shard().selector, labels)  # alone, the default shard owns everything
    # A sharded install (the default shard beside named ones) gives a deployment one owner,
    # or none when its shard does not run.
    sharded = (Shard(others_exist=True), Shard("a"), Shard("b"))
    owners = [s for s in sharded if matches(s.selector, labels)]
    assert len(owners) == (0 if value == "c" else 1)


@pytest.mark.parametrize("name", ["", "-a", "a-", "a b", "x" * 64, "a/b"])
def test_a_shard_name_that_is_no_label_value_is_refused(name: str) -> None:
    with pytest.raises(ShardNameError, match="not a label value"):
        Shard(name)


def test_every_owned_object_carries_its_deployments_shard_label() -> None:
    sharded = deployment(metadata__labels={SHARD_LABEL: "a", "team": "risk"})
    unsharded = deployment()
    served_model = ServedModel(version="7", storage_uri="s3://m/7", model_format="sklearn")
    assert deployment_labels(sharded, served_model)[SHARD_LABEL] == "a"
    assert "team" not in deployment_labels(sharded, served_model)
    assert SHARD_LABEL not in deployment_labels(unsharded, served_model)
    retrained = deployment(metadata__labels={SHARD_LABEL: "a"}, spec__retraining=RETRAINING)
    run = RetrainingRun(trigger_id="t1", job="j", reason="test", started_at=START)
    job = retraining_job(retrained, run)
    assert job["metadata"]["labels"][SHARD_LABEL] == "a"
    route = {"spec__serving__httpRoute": {"hostnames": ["fraud.example.com"]}}
    routed = desired_http_route(
        deployment(metadata__labels={SHARD_LABEL: "a"}, **route), "p", None, 0
    )
    assert routed is not None and routed["metadata"]["labels"][SHARD_LABEL] == "a"
    plain = desired_http_route(deployment(**route), "p", None, 0)
    assert plain is not None and SHARD_LABEL not in plain["metadata"]["labels"]


def test_the_handover_patch_sets_or_removes_the_label() -> None:
    owned = {"metadata": {"labels": {SHARD_LABEL: "a"}}}
    assert handover_labels(owned, {SHARD_LABEL: "a"}) is None
    assert handover_labels(owned, {SHARD_LABEL: "b"}) == {
        "metadata": {"labels": {SHARD_LABEL: "b"}}
    }
    assert handover_labels(owned, {}) == {"metadata": {"labels": {SHARD_LABEL: None}}}
    assert handover_labels({"metadata": {}}, {}) is None


async def test_a_deployment_moved_to_this_shard_takes_its_inference_service_over() -> None:
    """Shard a served the deployment; it is relabelled to b. b's watch does not deliver the
    InferenceService (it still carries a's label), so b reads it and relabels it: one patch,
    nothing else written, and no new predictor."""
    first = Harness()
    await served(first, metadata__labels={SHARD_LABEL: "a"})
    assert first.api.objects[ISVC]["metadata"]["labels"][SHARD_LABEL] == "a"

    moved = copy.deepcopy(first.api.objects[MD])
    moved["metadata"]["labels"][SHARD_LABEL] = "b"
    first.api.objects[MD] = moved
    second = Harness(first.api)
    second.watch_event()

    def watched(_: object) -> dict[str, object] | None:
        stored = second.api.objects.get(ISVC)
        labels = stored["metadata"]["labels"] if stored else {}
        return stored if stored and matches(Shard("b").selector, labels) else None

    generation = first.api.objects[ISVC]["metadata"]["generation"]
    await second.reconciler.reconcile(KEY, watched)
    assert second.writes() == [("PATCH", ISVC)]
    assert second.api.objects[ISVC]["metadata"]["labels"][SHARD_LABEL] == "b"
    assert second.api.objects[ISVC]["metadata"]["generation"] == generation
    # From now on its watch delivers the InferenceService: nothing more to read or write.
    second.api.writes.clear()
    await second.reconciler.reconcile(KEY, watched)
    assert second.writes() == []


async def test_a_running_job_of_the_previous_shard_is_taken_over_not_duplicated() -> None:
    api = FakeApi()
    path = "/apis/batch/v1/namespaces/risk/jobs/fraud-retrain-1"
    api.objects[path] = {"metadata": {"name": "fraud-retrain-1", "labels": {SHARD_LABEL: "a"}},
                         "status": {"active": 1}}  # fmt: skip
    loop = RetrainingLoop(api, None, None)  # type: ignore[arg-type]
    moved = deployment(metadata__labels={SHARD_LABEL: "b"})
    job = await loop._job(moved, ("risk", "fraud-retrain-1"))
    assert job is not None and job["metadata"]["labels"][SHARD_LABEL] == "b"
    assert [(w.method, w.path) for w in api.writes] == [("PATCH", path)]
    assert await loop._job(moved, ("risk", "gone")) is None  # deleted: Missing, not an error


def test_the_shard_flags_and_their_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODELOPS_SHARD", "MODELOPS_DEFAULT_SHARD"):
        monkeypatch.delenv(name, raising=False)
    assert operator_config(build_parser().parse_args(["run"])).shard == Shard()
    assert operator_config(build_parser().parse_args(["run", "--shard", "a"])).shard == Shard("a")
    monkeypatch.setenv("MODELOPS_DEFAULT_SHARD", "true")
    assert operator_config(build_parser().parse_args(["run"])).shard == Shard(others_exist=True)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["run", "--shard", "a", "--default-shard"], "--shard and --default-shard exclude"),
        (["run", "--shard", "no/slash"], "--shard: shard name 'no/slash' is not a label value"),
    ],
)
def test_bad_shard_flags_stop_the_operator_naming_the_flag(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.delenv("MODELOPS_DEFAULT_SHARD", raising=False)
    assert main(argv) == 2
    assert says in capsys.readouterr().err
