"""The reconciler's parse cache: an idle deployment's timer looks reuse the model parsed from
the stored body, and any new body (a watch event, a write) is parsed again."""

from __future__ import annotations

import copy
import logging

import pytest

from modelops.api.status import ModelDeploymentStatus
from modelops.controller.parsed import ParsedDeployments, dump_status
from tests.unit.factories import deployment_body

KEY = ("risk", "fraud")


def test_the_same_body_is_parsed_once_and_a_new_body_again() -> None:
    parsed = ParsedDeployments()
    body = deployment_body()
    first = parsed.get(KEY, body)
    assert first is not None and parsed.get(KEY, body) is first
    edited = copy.deepcopy(body)
    edited["spec"]["model"]["version"] = "8"  # same resourceVersion, another object
    again = parsed.get(KEY, edited)
    assert again is not None and again is not first and again.spec.model.version == "8"
    parsed.forget(KEY)
    assert parsed.get(KEY, edited) is not again


def test_the_status_is_the_recorded_one_as_a_decision_would_write_it() -> None:
    parsed = ParsedDeployments()
    body = deployment_body(status={"phase": "Healthy", "observedGeneration": 3})
    expected = dump_status(ModelDeploymentStatus.model_validate(body["status"]))
    assert parsed.status(KEY, body) == expected
    assert parsed.status(KEY, body) is parsed.status(KEY, body)  # dumped once
    assert parsed.status(KEY, deployment_body(status=None)) == dump_status(ModelDeploymentStatus())


def test_a_body_that_does_not_parse_is_named_in_the_log(caplog: pytest.LogCaptureFixture) -> None:
    parsed = ParsedDeployments()
    with caplog.at_level(logging.ERROR):
        assert parsed.get(KEY, deployment_body(spec__model=None)) is None
    assert "risk/fraud does not parse" in caplog.text
    assert parsed.get(KEY, {}) is None  # deleted meanwhile: nothing to say
