"""The pydantic models accept what the CRD accepts and fill the same defaults."""

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from modelops.api.resource import ModelDeployment
from modelops.api.spec import ModelDeploymentSpec


def test_defaults_match_the_design() -> None:
    spec = ModelDeploymentSpec.model_validate({"model": {"name": "m", "alias": "champion"}})
    assert spec.serving.deployment_mode == "Standard"
    assert spec.serving.protocol_version == "v2"
    assert spec.serving.min_replicas == 1
    assert spec.serving.storage.mode == "Resolve"
    assert spec.rollout is None and spec.analysis is None


def test_camel_case_on_the_wire() -> None:
    spec = ModelDeploymentSpec.model_validate(
        {
            "model": {"name": "m", "version": "3"},
            "retraining": {
                "triggers": [{"onRollback": True}, {"drift": {"maxPsi": 0.3}, "for": "30m"}],
                "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}},
            },
        }
    )
    assert spec.retraining is not None
    assert spec.retraining.triggers[1].for_ == "30m"
    dumped = spec.model_dump(by_alias=True, exclude_none=True)
    assert dumped["retraining"]["triggers"][1]["for"] == "30m"
    assert dumped["retraining"]["jobTemplate"]["spec"]["template"]["spec"] == {"containers": []}


@pytest.mark.parametrize(
    "bad",
    [
        {"model": {"name": "m", "version": "01"}},
        {"model": {"name": "m", "version": "7"}, "serving": {"minReplicas": -1}},
        {"model": {"name": "m", "version": "7"}, "analysis": {"interval": "5x", "metrics": []}},
        {
            "model": {"name": "m", "version": "7"},
            "rollout": {"steps": [{"traffic": 150, "duration": "1m"}]},
        },
    ],
)
def test_field_constraints_hold_in_python_too(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ModelDeploymentSpec.model_validate(bad)


@pytest.mark.parametrize(
    "path",
    sorted(
        p
        for pattern in ("examples/**/*.yaml", "manifests/examples/*.yaml")
        for p in Path(__file__).parents[2].glob(pattern)
    ),
    ids=lambda p: p.name,
)
def test_every_example_is_a_valid_model_deployment(path: Path) -> None:
    body = yaml.safe_load(path.read_text())
    body["metadata"].setdefault("namespace", "default")
    ModelDeployment.model_validate(body)
