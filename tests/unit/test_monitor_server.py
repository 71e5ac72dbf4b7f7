"""The monitor's HTTP face in-process, with KServe-shaped CloudEvents and a directory of known
deployments: events feed windows, feedback makes quality, and every bad input is a 4xx with the
reason and a count, never a crash or a poisoned window."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from aiohttp.test_utils import TestClient, TestServer

from modelops.core.inference_logging import VERSION_ANNOTATION
from modelops.monitor.capture import Capture
from modelops.monitor.directory import Unknown
from modelops.monitor.engine import Monitor, Settings
from modelops.monitor.server import (
    REQUEST_EVENT,
    RESPONSE_EVENT,
    MonitorService,
    build_app,
)
from modelops.profile import ReferenceProfile, build_profile

TOKEN = "s3cret-token"
PROFILE = build_profile(
    np.random.default_rng(3).normal(0, 1, size=(500, 2)), feature_names=["a", "b"]
)


@dataclass
class KnownDeployments:
    """The directory's answers for one deployment: v1 stable, v2 canary; v3 has no profile."""

    lookups: list[str] = field(default_factory=list)

    async def track(self, namespace: str, name: str, version: str) -> str | Unknown:
        self.lookups.append(f"{namespace}/{name}@{version}")
        if (namespace, name) != ("ns", "wine"):
            return Unknown("unknown-deployment", f"no ModelDeployment {namespace}/{name}")
        return {"1": "stable", "2": "canary", "3": "canary"}.get(version) or Unknown(
            "unknown-version", f"ns/wine serves no version {version} at the moment"
        )

    async def profile(self, namespace: str, name: str, version: str) -> ReferenceProfile | Unknown:
        if version == "3":
            return Unknown("no-profile", "version 3 of 'wine' has no reference profile")
        return PROFILE


def headers(kind: str, request_id: str, version: str = "1", **extra: str) -> dict[str, str]:
    """What KServe's agent sends (pkg/logger/worker.go), binary content mode."""
    return {
        "ce-specversion": "1.0", "ce-type": kind, "ce-id": request_id,
        "ce-source": "wine-predictor-abc", "ce-inferenceservicename": "wine",
        "ce-namespace": "ns", "ce-component": "predictor", "ce-endpoint": "",
        "ce-metadata": "{}", "ce-annotations": json.dumps({VERSION_ANNOTATION: version}),
        "Content-Type": "application/json", **extra,
    }  # fmt: skip


def v2(rows: list[list[float]]) -> str:
    return json.dumps(
        {"inputs": [{"name": "input-0", "shape": [len(rows), 2], "datatype": "FP64", "data": rows}]}
    )


def answer(classes: list[int]) -> str:
    return json.dumps({"outputs": [{"name": "o", "shape": [len(classes), 1], "data": classes}]})


@contextlib.asynccontextmanager
async def serving(tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], MonitorService]]:
    """The monitor app on a test server (in the test's own event loop)."""
    service = MonitorService(
        Monitor(Settings(min_samples=3)), KnownDeployments(), TOKEN,  # type: ignore[arg-type]
        capture=Capture(str(tmp_path / "captured")),
    )  # fmt: skip
    app = build_app(service, max_body=64 * 1024)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client, service


async def metrics(client: TestClient[Any, Any]) -> str:
    return await (await client.get("/metrics")).text()


async def test_logged_traffic_is_measured_per_version_and_track(tmp_path: Path) -> None:
    async with serving(tmp_path) as (http, _):
        for i in range(3):
            response = await http.post(
                "/", data=v2([[5.0, 0.0]]), headers=headers(REQUEST_EVENT, f"s{i}")
            )
            assert response.status == 202, await response.text()
        await http.post(
            "/", data=v2([[0.0, 0.0]]), headers=headers(REQUEST_EVENT, "c1", version="2")
        )
        text = await metrics(http)
        stable = 'namespace="ns",track="stable",version="1"'
        assert f'modelops_monitor_window_samples{{deployment="wine",{stable}}} 3.0' in text
        assert f'modelops_drifted_features_share{{deployment="wine",{stable}}} 1.0' in text
        assert 'modelops_drift_psi{deployment="wine",feature="a",' in text
        # The canary has 1 row, below the minimum: counted, not measured.
        assert (
            'modelops_monitor_window_samples{deployment="wine",namespace="ns",track="canary",version="2"} 1.0'
            in text
        )
        assert (
            'track="canary",version="2"} 0'
            not in text.split("modelops_drifted_features_share")[-1].split("\n")[1]
        )


async def test_feedback_gives_live_quality_and_captured_rows(tmp_path: Path) -> None:
    async with serving(tmp_path) as (http, service):
        await http.post("/", data=answer([1, 0]), headers=headers(RESPONSE_EVENT, "r1"))  # first
        await http.post(
            "/", data=v2([[0.1, 0.2], [0.3, 0.4]]), headers=headers(REQUEST_EVENT, "r1")
        )
        auth = {"Authorization": f"Bearer {TOKEN}"}
        response = await http.post("/feedback", json={"id": "r1", "labels": [1, 1]}, headers=auth)
        assert response.status == 200 and await response.json() == {"labelled": 2}
        text = await metrics(http)
        assert (
            'modelops_model_quality{deployment="wine",metric="accuracy",namespace="ns",track="stable",version="1"} 0.5'
            in text
        )
        assert (
            'modelops_feedback_share{deployment="wine",namespace="ns",track="stable",version="1"} 1.0'
            in text
        )
        assert service.capture is not None
        service.capture.flush()
        captured = pq.read_table(tmp_path / "captured" / "ns" / "wine").to_pydict()
        assert (
            captured["a"] == [0.1, 0.3]
            and captured["label"] == [1, 1]
            and captured["prediction"] == [1, 0]
        )


@pytest.mark.parametrize(
    ("body", "extra", "status", "reason"),
    [
        ("not json at all", {}, 422, "payload"),
        (v2([[1.0, 2.0, 3.0]]), {}, 422, "payload"),
        (v2([[1.0, 2.0]]), {"ce-annotations": "{}"}, 400, "unattributed"),
        (v2([[1.0, 2.0]]), {"ce-inferenceservicename": "other"}, 404, "unknown-deployment"),
        (
            v2([[1.0, 2.0]]),
            {"ce-annotations": json.dumps({VERSION_ANNOTATION: "9"})},
            404,
            "unknown-version",
        ),
        (
            v2([[1.0, 2.0]]),
            {"ce-annotations": json.dumps({VERSION_ANNOTATION: "3"})},
            422,
            "no-profile",
        ),
        (v2([[1.0, 2.0]]), {"ce-type": "com.example.other"}, 400, "event-type"),
    ],
)
async def test_bad_events_are_refused_with_the_reason_and_counted(
    tmp_path: Path, body: str, extra: dict[str, str], status: int, reason: str
) -> None:
    async with serving(tmp_path) as (http, service):
        response = await http.post("/", data=body, headers=headers(REQUEST_EVENT, "x") | extra)
        assert response.status == status
        assert service.monitor.dropped[reason] == 1
        assert service.monitor.windows.sources() == []
        assert f'modelops_monitor_dropped_total{{reason="{reason}"}} 1.0' in await metrics(http)


async def test_a_request_without_cloudevent_headers_or_too_large_is_refused(tmp_path: Path) -> None:
    async with serving(tmp_path) as (http, service):
        response = await http.post(
            "/", data=v2([[1.0, 2.0]]), headers={"Content-Type": "application/json"}
        )
        assert response.status == 400 and "not a CloudEvent" in (await response.json())["error"]
        huge = "x" * (65 * 1024)
        response = await http.post("/", data=huge, headers=headers(REQUEST_EVENT, "big"))
        assert response.status == 413
        assert service.monitor.dropped == {"not-a-cloudevent": 1, "body-too-large": 1}


@pytest.mark.parametrize(
    ("auth", "body", "status", "message"),
    [
        (None, {"id": "r1", "label": 1}, 401, "bearer token"),
        ("Bearer wrong", {"id": "r1", "label": 1}, 401, "bearer token"),
        (f"Bearer {TOKEN}", "nope", 400, "not JSON"),
        (f"Bearer {TOKEN}", {"label": 1}, 422, "ce-id"),
        (f"Bearer {TOKEN}", {"id": "r1"}, 422, '"label"'),
        (f"Bearer {TOKEN}", {"id": "never-logged", "label": 1}, 404, "no logged prediction"),
    ],
)
async def test_bad_feedback_gets_a_4xx_naming_the_problem(
    tmp_path: Path, auth: str | None, body: Any, status: int, message: str
) -> None:
    async with serving(tmp_path) as (http, _):
        response = await http.post(
            "/feedback",
            data=body if isinstance(body, str) else json.dumps(body),
            headers={"Authorization": auth} if auth else {},
        )
        assert response.status == status
        assert message in (await response.json())["error"]
