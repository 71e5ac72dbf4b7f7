"""From MLflow's answers to a storageUri and a model format (pure core)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelops.core.registry import (
    Resolved,
    Unresolvable,
    data_version,
    model_format,
    readiness,
    storage_uri,
)


def resolve(download_uri: str, destination: str | None = None, mode: str = "Resolve") -> object:
    return storage_uri(
        name="fraud",
        version="7",
        download_uri=download_uri,
        mode=mode,  # type: ignore[arg-type]
        artifacts_destination=destination,
    )


@pytest.mark.parametrize(
    "uri",
    [
        "s3://models/fraud/7",
        "gs://models/fraud/7",
        "abfs://container@account.dfs.core.windows.net/fraud/7",
        "https://models.example/fraud-7.tar.gz",
        "pvc://models/fraud/7",
        "file:///srv/models/fraud/7",
    ],
)
def test_stores_kserve_reads_pass_through(uri: str) -> None:
    resolved = resolve(uri, destination="s3://elsewhere")
    assert isinstance(resolved, Resolved)
    assert resolved.storage_uri == uri
    assert "passes through" in resolved.rule


@pytest.mark.parametrize(
    ("uri", "destination", "expected"),
    [
        ("mlflow-artifacts:/1/models/m-abc/artifacts", "s3://mlflow/artifacts",
         "s3://mlflow/artifacts/1/models/m-abc/artifacts"),
        ("mlflow-artifacts:///1/models/m-abc/artifacts", "s3://mlflow/artifacts/",
         "s3://mlflow/artifacts/1/models/m-abc/artifacts"),
        ("mlflow-artifacts://mlflow.example:5000/1/x", "gs://bucket", "gs://bucket/1/x"),
    ],
)  # fmt: skip
def test_proxied_artifacts_map_onto_the_store_behind_the_server(
    uri: str, destination: str, expected: str
) -> None:
    resolved = resolve(uri, destination)
    assert resolved == Resolved(
        expected, "Resolve: mlflow-artifacts:/ mapped onto artifactsDestination"
    )


def test_proxied_artifacts_without_a_destination_say_which_field_to_set() -> None:
    problem = resolve("mlflow-artifacts:/1/models/m-abc/artifacts")
    assert isinstance(problem, Unresolvable)
    assert problem.reason == "ArtifactsDestinationUnknown"
    assert "spec.model.registry.artifactsDestination" in problem.message
    assert "StorageInitializer" in problem.message


@pytest.mark.parametrize("uri", ["runs:/abc/model", "models:/m-abc", "dbfs:/databricks/x"])
def test_locations_kserve_cannot_read_are_a_clear_error(uri: str) -> None:
    problem = resolve(uri, destination="s3://mlflow")
    assert isinstance(problem, Unresolvable)
    assert problem.reason == "UnsupportedArtifactLocation"
    assert uri in problem.message and "StorageInitializer" in problem.message


def test_the_storage_initializer_mode_hands_kserve_a_models_uri() -> None:
    resolved = resolve("mlflow-artifacts:/1/x", mode="StorageInitializer")
    assert resolved == Resolved("models:/fraud/7", "StorageInitializer: models:/ URI")


@given(
    path=st.lists(st.from_regex(r"[a-z0-9-]{1,8}", fullmatch=True), min_size=1, max_size=5),
    destination=st.sampled_from(["s3://mlflow/artifacts", "gs://b", "s3://b/p/"]),
)
def test_mapping_keeps_the_whole_artifact_path(path: list[str], destination: str) -> None:
    joined = "/".join(path)
    resolved = resolve(f"mlflow-artifacts:/{joined}", destination)
    assert isinstance(resolved, Resolved)
    assert resolved.storage_uri.endswith("/" + joined)
    assert resolved.storage_uri.startswith(destination.rstrip("/") + "/")
    assert "//" not in resolved.storage_uri.split("://", 1)[1]


@pytest.mark.parametrize(
    ("flavors", "expected"),
    [
        ({"python_function": "model.pkl", "sklearn": "model.pkl"}, "sklearn"),
        ({"sklearn": "model.joblib"}, "sklearn"),
        # MLflow 3's default: skops, which KServe's sklearn runtime cannot load.
        ({"python_function": "model.skops", "sklearn": "model.skops"}, "mlflow"),
        ({"python_function": "model.xgb", "xgboost": "model.json"}, "xgboost"),
        ({"xgboost": "model.xgb"}, "mlflow"),
        ({"lightgbm": "model.bst"}, "lightgbm"),
        ({"onnx": "model.onnx"}, "mlflow"),
        ({"python_function": ""}, "mlflow"),
        ({}, "mlflow"),
    ],
)
def test_the_model_format_follows_what_the_runtime_can_read(
    flavors: dict[str, str], expected: str
) -> None:
    assert model_format(flavors, override=None).name == expected


def test_a_format_in_the_spec_wins_and_every_choice_says_why() -> None:
    choice = model_format({"sklearn": "model.skops"}, override="sklearn")
    assert (choice.name, choice.rule) == ("sklearn", "spec.serving.modelFormat")
    skops = model_format({"sklearn": "model.skops"}, override=None).rule
    assert "model.skops" in skops and "cannot read" in skops
    assert "reads" in model_format({"sklearn": "model.pkl"}, override=None).rule


def test_the_data_version_comes_from_the_runs_tags() -> None:
    assert data_version({"dvc.rev": "a1b2c3"}) == "dvc.rev=a1b2c3"
    assert data_version({"modelops.io/data-version": "2026-11", "dvc.rev": "x"}) == (
        "modelops.io/data-version=2026-11"
    )
    assert data_version({"mlflow.user": "me"}) is None


def test_only_ready_versions_are_servable() -> None:
    assert readiness("READY", None) == (True, None)
    pending = readiness("PENDING_REGISTRATION", None)
    assert pending[0] is False and "waiting" in (pending[1] or "")
    failed = readiness("FAILED_REGISTRATION", "upload failed")
    assert failed[0] is False and "upload failed" in (failed[1] or "")
