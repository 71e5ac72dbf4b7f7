"""What a registry poll costs: MLflow's real client against a small server speaking MLflow's
REST API, counting the requests. A poll that finds the version it found before asks only for
the alias; what never changes for a version (its download URI, the tags of its ended run) is
asked once."""

from __future__ import annotations

import asyncio
import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from modelops.adapters.registry import Registry, RegistryConnection


class FakeMlflow:
    """One model, `fraud`, whose alias `champion` points at `version`; runs per version."""

    def __init__(self) -> None:
        self.version = "1"
        self.run_status = "FINISHED"
        self.requests: Counter[str] = Counter()

    def answer(self, path: str, query: dict[str, str]) -> dict[str, Any]:
        self.requests[path] += 1
        if path.endswith("/registered-models/alias"):
            assert (query["name"], query["alias"]) == ("fraud", "champion")
            return {"model_version": {
                "name": "fraud", "version": self.version, "status": "PENDING_REGISTRATION",
                "run_id": f"run-{self.version}", "source": f"runs:/run-{self.version}/model"}}  # fmt: skip
        if path.endswith("/model-versions/get-download-uri"):
            return {"artifact_uri": f"mlflow-artifacts:/1/run-{query['version']}/model"}
        if path.endswith("/runs/get"):
            return {"run": {
                "info": {"run_id": query["run_id"], "status": self.run_status},
                "data": {"tags": [{"key": "dvc.rev", "value": f"rev-{self.version}"}]}}}  # fmt: skip
        raise AssertionError(f"unexpected request {path}")


@pytest.fixture
def mlflow() -> Iterator[tuple[FakeMlflow, str]]:
    state = FakeMlflow()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            body = json.dumps(state.answer(url.path, query)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def polls(uri: str, count: int) -> list[Any]:
    registry = Registry(RegistryConnection(uri))

    async def run() -> list[Any]:
        return [await registry.resolve("fraud", alias="champion") for _ in range(count)]

    return asyncio.run(run())


def test_a_poll_that_finds_the_same_version_asks_only_for_the_alias(
    mlflow: tuple[FakeMlflow, str],
) -> None:
    state, uri = mlflow
    answers = polls(uri, 5)
    assert state.requests == Counter({
        "/api/2.0/mlflow/registered-models/alias": 5,
        "/api/2.0/mlflow/model-versions/get-download-uri": 1,
        "/api/2.0/mlflow/runs/get": 1,
    })  # fmt: skip
    assert len(set(answers)) == 1  # and every poll answered the same
    assert answers[0].download_uri == "mlflow-artifacts:/1/run-1/model"
    assert answers[0].run_tags == (("dvc.rev", "rev-1"),)


def test_a_moved_alias_reads_the_new_versions_details(mlflow: tuple[FakeMlflow, str]) -> None:
    state, uri = mlflow
    registry = Registry(RegistryConnection(uri))

    async def run() -> tuple[Any, Any]:
        first = await registry.resolve("fraud", alias="champion")
        state.version = "2"
        return first, await registry.resolve("fraud", alias="champion")

    first, second = asyncio.run(run())
    assert (first.version, second.version) == ("1", "2")
    assert second.download_uri == "mlflow-artifacts:/1/run-2/model"
    assert second.run_tags == (("dvc.rev", "rev-2"),)
    assert state.requests["/api/2.0/mlflow/model-versions/get-download-uri"] == 2


def test_the_tags_of_a_run_still_running_are_read_at_every_poll(
    mlflow: tuple[FakeMlflow, str],
) -> None:
    state, uri = mlflow
    state.run_status = "RUNNING"  # its tags may still change
    polls(uri, 3)
    assert state.requests["/api/2.0/mlflow/runs/get"] == 3
    assert state.requests["/api/2.0/mlflow/model-versions/get-download-uri"] == 1
