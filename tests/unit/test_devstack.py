"""The local stack's pure pieces: the kubelet's image table, pod discovery's targets, the
Prometheus configuration and the router's HTTPRoute matching and weighted choice."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelops_dev.environments import MODELS, Environment
from modelops_dev.images import (
    STORAGE_ENTRYPOINT,
    Unrunnable,
    container_argv,
    local_command,
)
from modelops_dev.kubelet import ContainerState, exit_code_of
from modelops_dev.pod_discovery import target_groups
from modelops_dev.router import Routes, _host_matches, _path_matches, workload_of
from modelops_dev.servers import prometheus_config


@pytest.fixture
def environments_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Environment, "ready", property(lambda self: True))


@pytest.fixture
def environments_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Environment, "ready", property(lambda self: False))


def test_python_images_run_their_command_with_this_interpreter() -> None:
    assert local_command("python:3.11-slim", ["python3", "-c", "print(1)"], {}) == (
        [sys.executable, "-c", "print(1)"],
        {},
    )


def test_args_alone_follow_the_image_entrypoint_and_a_command_replaces_it() -> None:
    operator = "ghcr.io/modelops/modelops:0.1.0"
    assert container_argv(operator, [], ["run", "--log-format=json"]) == [
        "modelops", "run", "--log-format=json"]  # fmt: skip
    assert container_argv(operator, ["python", "-m", "x"], ["y"]) == ["python", "-m", "x", "y"]
    assert container_argv(operator, [], []) == []  # the image's own CMD
    assert local_command(operator, container_argv(operator, [], ["run"]), {}) == (
        [sys.executable, "-m", "modelops.cli", "run"], {})  # fmt: skip
    assert container_argv("quay.io/acme/x:1", [], ["a"]) == ["a"]


def test_an_unknown_image_or_a_python_image_without_a_command_cannot_run() -> None:
    unknown = local_command("quay.io/acme/trainer:1", ["train"], {})
    assert isinstance(unknown, Unrunnable)
    assert unknown.reason == "ImageNotRunnableLocally"
    assert "quay.io/acme/trainer:1" in unknown.message
    assert isinstance(local_command("python:3.11", [], {}), Unrunnable)


@pytest.mark.usefixtures("environments_built")
def test_mlserver_runs_its_image_command_from_the_models_environment() -> None:
    local = local_command("docker.io/seldonio/mlserver:1.7.1", [], {"MLSERVER_HTTP_PORT": "8080"})
    assert not isinstance(local, Unrunnable)
    command, env = local
    assert command == [str(MODELS.bin("mlserver")), "start", "/mnt/models"]
    assert env["MLSERVER_PARALLEL_WORKERS"] == "0"
    assert env["MLSERVER_HTTP_PORT"] == "8080"


@pytest.mark.usefixtures("environments_built")
def test_the_containers_env_overrides_the_images_defaults() -> None:
    local = local_command(
        "docker.io/seldonio/mlserver:1.7.1", [], {"MLSERVER_MODELS_DIR": "/models"}
    )
    assert not isinstance(local, Unrunnable)
    assert local[0][-1] == "/models"


@pytest.mark.usefixtures("environments_built")
def test_the_storage_initializer_gets_its_source_and_destination() -> None:
    local = local_command("kserve/storage-initializer:latest", ["s3://b/m", "/mnt/models"], {})
    assert not isinstance(local, Unrunnable)
    assert local[0][1:] == [str(STORAGE_ENTRYPOINT), "s3://b/m", "/mnt/models"]


@pytest.mark.usefixtures("environments_missing")
def test_an_image_whose_environment_is_not_built_says_how_to_build_it() -> None:
    local = local_command("docker.io/seldonio/mlserver:1.7.1", [], {})
    assert isinstance(local, Unrunnable)
    assert "models" in local.message and "modelops_dev.environments" in local.message


def test_environment_folders_change_with_their_pins() -> None:
    first = Environment("x", ("a==1",))
    assert first.path != Environment("x", ("a==2",)).path
    assert first.path == Environment("x", ("a==1",)).path


def pod(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "iris-predictor-1", "namespace": "risk", "uid": "u1",
                     "labels": {"modelops.io/model-version": "3", "app": "isvc.iris-predictor"},
                     "annotations": {"prometheus.kserve.io/port": "8082"},
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "rs", "controller": True}]},
        "spec": {"nodeName": "n1", "containers": [
            {"name": "kserve-container", "ports": [{"containerPort": 8080, "name": "http"}]},
            {"name": "sidecar"}]},
        "status": status,
    }  # fmt: skip


def test_pods_without_an_address_are_not_targets() -> None:
    assert target_groups(pod(phase="Pending")) == []


def test_pod_targets_carry_kubernetes_sd_meta_labels() -> None:
    groups = target_groups(
        pod(phase="Running", podIP="10.215.0.4", conditions=[{"type": "Ready", "status": "True"}])
    )
    assert [g["targets"] for g in groups] == [["10.215.0.4:8080"], ["10.215.0.4"]]
    labels = groups[0]["labels"]
    assert labels["__meta_kubernetes_pod_label_modelops_io_model_version"] == "3"
    assert labels["__meta_kubernetes_pod_labelpresent_app"] == "true"
    assert labels["__meta_kubernetes_pod_annotation_prometheus_kserve_io_port"] == "8082"
    assert labels["__meta_kubernetes_pod_ready"] == "true"
    assert labels["__meta_kubernetes_pod_container_port_number"] == "8080"
    assert labels["__meta_kubernetes_pod_controller_kind"] == "ReplicaSet"
    assert groups[1]["labels"]["__meta_kubernetes_pod_container_name"] == "sidecar"


def test_the_scrape_config_relabels_kserve_pods_onto_their_metrics_port() -> None:
    config = prometheus_config(Path("/run/targets.json"), router="127.0.0.1:9999")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"kserve-pods", "annotated-pods", "modelops-monitor", "router"}
    # The monitor's series keep the namespace they measure; its pod is scraped by that job only.
    assert jobs["modelops-monitor"]["honor_labels"] is True
    assert jobs["annotated-pods"]["relabel_configs"][0]["action"] == "drop"
    rules = jobs["kserve-pods"]["relabel_configs"]
    address = next(r for r in rules if r.get("target_label") == "__address__")
    assert address["source_labels"] == [
        "__meta_kubernetes_pod_ip",
        "__meta_kubernetes_pod_annotation_prometheus_kserve_io_port",
    ]
    targets = {r["target_label"] for r in rules if "target_label" in r}
    assert {"namespace", "pod", "model_version", "inferenceservice"} <= targets


@pytest.mark.skipif(shutil.which("promtool") is None, reason="Prometheus is not installed")
def test_promtool_accepts_the_scrape_config(tmp_path: Path) -> None:
    (tmp_path / "targets.json").write_text("[]")
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(tmp_path / "targets.json", "127.0.0.1:1")))
    checked = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("pattern", "host", "matches"),
    [
        ("iris.example", "iris.example", True),
        ("iris.example", "other.example", False),
        ("*.example", "iris.example", True),
        ("*.example", "a.b.example", True),
        ("*.example", "example", False),
    ],
)
def test_route_hostnames(pattern: str, host: str, matches: bool) -> None:
    assert _host_matches(pattern, host) is matches


@pytest.mark.parametrize(
    ("match", "path", "matches"),
    [
        (None, "/anything", True),
        ({"type": "PathPrefix", "value": "/v2"}, "/v2/models/iris/infer", True),
        ({"type": "PathPrefix", "value": "/v2"}, "/v2x", False),
        ({"type": "Exact", "value": "/v2/health/ready"}, "/v2/health/ready", True),
        ({"type": "Exact", "value": "/v2/health/ready"}, "/v2/health/live", False),
    ],
)
def test_route_paths(match: dict[str, str] | None, path: str, matches: bool) -> None:
    assert _path_matches(match, path) is matches


def routes_with(*backends: dict[str, Any]) -> Routes:
    routes = Routes()
    routes.httproutes[("risk", "split")] = {
        "spec": {"hostnames": ["iris.test"], "rules": [{"backendRefs": list(backends)}]}
    }
    return routes


def test_weighted_backends_get_exact_shares_over_each_cycle() -> None:
    routes = routes_with(
        {"name": "stable", "port": 80, "weight": 90}, {"name": "canary", "port": 80, "weight": 10}
    )
    picks = [routes.resolve("iris.test", "/")[1] for _ in range(100)]  # type: ignore[index]
    assert Counter(picks) == {"stable": 90, "canary": 10}
    # Smooth: the canary's turns are spread out, not bunched at the start.
    assert picks[:5].count("canary") <= 1


def test_zero_weight_backends_get_nothing_and_other_hosts_fall_through() -> None:
    routes = routes_with(
        {"name": "stable", "port": 80, "weight": 100}, {"name": "canary", "port": 80, "weight": 0}
    )
    assert {routes.resolve("iris.test", "/")[1] for _ in range(20)} == {"stable"}  # type: ignore[index]
    assert routes.resolve("stable.risk", "/") == ("risk", "stable", 0)
    assert routes.resolve("nowhere.example.org", "/") is None


def test_the_kubelet_backs_off_restarts_like_a_kubelet_and_reports_crash_loops() -> None:
    state = ContainerState("kserve-container", restarts=0)
    state.started_at, state.finished_at, state.exit_code = "t0", "t1", 1
    delays = [state.back_off("pod-1", ran_seconds=3) for _ in range(7)]
    assert delays == [10, 20, 40, 80, 160, 300, 300]
    reported = state.status("image")
    assert reported["restartCount"] == 7 and reported["started"] is False
    assert reported["state"] == {"waiting": {
        "reason": "CrashLoopBackOff",
        "message": "back-off 300s restarting failed container=kserve-container pod=pod-1"}}  # fmt: skip
    assert reported["lastState"]["terminated"]["exitCode"] == 1
    assert reported["lastState"]["terminated"]["reason"] == "Error"
    # Ten minutes of running resets the back-off.
    assert state.back_off("pod-1", ran_seconds=600) == 10
    assert exit_code_of(-9) == 137 and exit_code_of(3) == 3


def test_the_router_names_workloads_as_istio_does() -> None:
    assert workload_of("fraud-v8-predictor-5d9c8b7f6-x2mzq") == "fraud-v8-predictor"
    assert workload_of("") == "unknown" and workload_of("standalone") == "standalone"
