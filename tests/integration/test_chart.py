"""The Helm chart (charts/modelops) with helm built from its Go module: lint, render every
ci/ values set, least-privilege RBAC, restricted pod security, clear schema errors, and every
rendered object accepted by the real API server (server-side dry run)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modelops_dev.binaries import (
    REPO_ROOT,
    ensure_binaries,
    ensure_helm,
)
from modelops_dev.control_plane import ControlPlane
from tests.integration.helpers import CHART, KUBE_VERSION, kinds, render

VALUE_SETS = sorted((CHART / "ci").glob("*-values.yaml"))


@pytest.fixture(scope="module")
def helm() -> Path:
    return ensure_helm()


@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda p: p.name)
def test_helm_lint_passes_for_every_values_set(helm: Path, values: Path) -> None:
    result = subprocess.run([str(helm), "lint", "--strict", str(CHART), "-f", str(values)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_default_install_is_cluster_wide_least_privilege_and_restricted(helm: Path) -> None:
    found = kinds(render(helm))
    [role] = found["ClusterRole"]
    verbs = {(group, resource): set(rule["verbs"]) for rule in role["rules"]
             for group in rule["apiGroups"] for resource in rule["resources"]}  # fmt: skip
    # Only the status is written; Events are created, never updated.
    assert verbs[("modelops.io", "modeldeployments")] == {"get", "list", "watch"}
    assert verbs[("modelops.io", "modeldeployments/status")] == {"get", "patch"}
    assert verbs[("", "events")] == {"create"}
    assert verbs[("", "secrets")] == {"get"}  # never list or watch Secrets
    # A canary's endpoints and the pods of a version past its deadline: read, never watched.
    assert verbs[("", "pods")] == {"list"}
    assert verbs[("discovery.k8s.io", "endpointslices")] == {"list"}
    assert verbs[("serving.kserve.io", "inferenceservices")] == {
        "get",
        "list",
        "watch",
        "create",
        "patch",
    }
    assert all("*" not in v and "delete" not in v for v in verbs.values())
    [crd] = found["CustomResourceDefinition"]
    assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    committed = yaml.safe_load(
        (REPO_ROOT / "crds" / "modeldeployments.modelops.io.yaml").read_text()
    )
    assert crd["spec"] == committed["spec"]  # the same CRD as crds/, braces and all
    [deployment] = found["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    # Two replicas on a Lease: an update surges a standby first, a drain keeps one.
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}  # fmt: skip
    [budget] = found["PodDisruptionBudget"]
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    [lease_role] = found["Role"]
    assert lease_role["metadata"]["namespace"] == "modelops-system"
    assert lease_role["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                                    "verbs": ["get", "create", "update"]}]  # fmt: skip
    assert ("coordination.k8s.io", "leases") not in verbs  # not cluster-wide
    assert "--leader-elect" in pod["containers"][0]["args"]
    assert {
        "name": "POD_NAMESPACE",
        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
    } in pod["containers"][0]["env"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    [container] = pod["containers"]
    security = container["securityContext"]
    assert (
        security["allowPrivilegeEscalation"] is False and security["readOnlyRootFilesystem"] is True
    )
    assert security["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_the_monitor_is_read_only_restricted_and_where_the_operator_logs_to(helm: Path) -> None:
    found = kinds(render(helm, "--set", "monitor.enabled=true",
                         "--set", "monitor.feedbackTokenSecret=feedback"))  # fmt: skip
    roles = {r["metadata"]["name"]: r for r in found["ClusterRole"]}
    monitor_role = roles["modelops-monitor"]
    verbs = {(group, resource): set(rule["verbs"]) for rule in monitor_role["rules"]
             for group in rule["apiGroups"] for resource in rule["resources"]}  # fmt: skip
    assert verbs == {("modelops.io", "modeldeployments"): {"get"}, ("", "secrets"): {"get"}}
    deployments = {d["metadata"]["name"]: d for d in found["Deployment"]}
    monitor = deployments["modelops-monitor"]["spec"]["template"]["spec"]
    assert monitor["serviceAccountName"] == "modelops-monitor"
    assert monitor["securityContext"]["runAsNonRoot"] is True
    [container] = monitor["containers"]
    assert container["args"][0] == "monitor"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    env = {e["name"]: e for e in container["env"]}
    # The feedback token comes from a Secret, never a value in the spec.
    assert env["MODELOPS_FEEDBACK_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "feedback", "key": "token",
    }  # fmt: skip
    operator = deployments["modelops"]["spec"]["template"]["spec"]["containers"][0]
    operator_env = {e["name"]: e.get("value") for e in operator["env"]}
    [service] = [s for s in found["Service"] if s["metadata"]["name"] == "modelops-monitor"]
    assert operator_env["MODELOPS_MONITOR_URL"] == "http://modelops-monitor.modelops-system.svc/"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]


def test_watching_namespaces_grants_roles_there_only(helm: Path) -> None:
    found = kinds(render(helm, "-f", str(CHART / "ci" / "namespaced-values.yaml")))
    assert "ClusterRole" not in found and "ClusterRoleBinding" not in found
    roles = {r["metadata"]["namespace"]: r for r in found["Role"]
             if not r["metadata"]["name"].endswith("-leader-election")}  # fmt: skip
    assert sorted(roles) == ["modelops", "models", "staging-models"]
    # Outside the watched namespaces, only the operator-wide registry credentials, by name.
    assert roles["modelops"]["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["mlflow-credentials"],
         "verbs": ["get"]}
    ]  # fmt: skip
    args = found["Deployment"][0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=models" in args and "--namespace=staging-models" in args


def test_each_shard_runs_its_own_operator_and_no_two_select_the_same_pods(helm: Path) -> None:
    found = kinds(render(helm, "--set", "shards={gpu,eu}"))
    deployments = {d["metadata"]["name"]: d for d in found["Deployment"]}
    assert sorted(deployments) == ["modelops", "modelops-shard-eu", "modelops-shard-gpu"]
    args = {name: d["spec"]["template"]["spec"]["containers"][0]["args"]
            for name, d in deployments.items()}  # fmt: skip
    assert "--default-shard" in args["modelops"]  # only the unlabelled deployments
    assert "--shard=gpu" in args["modelops-shard-gpu"] and "--shard=eu" in args["modelops-shard-eu"]
    for name, deployment in deployments.items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        selected = [other for other, d in deployments.items()
                    if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]  # fmt: skip
        assert selected == [name]
        [budget] = [b for b in found["PodDisruptionBudget"]
                    if b["spec"]["selector"] == deployment["spec"]["selector"]]  # fmt: skip
        assert budget["metadata"]["name"] == name
    # Every process gets the client-side rate limit's settings (off by default).
    for found_args in args.values():
        assert {"--kube-api-qps=0", "--kube-api-burst=400"} <= set(found_args)
    # The default install keeps one operator owning every deployment (no shard flag at all).
    [alone] = kinds(render(helm))["Deployment"]
    alone_args = alone["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in alone_args if "shard" in a]


def test_crds_can_be_left_out_and_metrics_scraped_by_a_service_monitor(helm: Path) -> None:
    found = kinds(render(helm, "-f", str(CHART / "ci" / "no-crds-values.yaml")))
    assert "CustomResourceDefinition" not in found
    assert found["ServiceMonitor"][0]["spec"]["endpoints"][0]["interval"] == "15s"


@pytest.mark.parametrize(("setting", "says"), [
    ("metrics.port=80", "at '/metrics/port': minimum: got 80"),
    ("logFormat=xml", "at '/logFormat'"),
    ("registry.trackingUri=mlflow:5000", "at '/registry/trackingUri'"),
    ("watchNamespaces[0]=Bad_Name", "at '/watchNamespaces/0'"),
    ("shards[0]=GPU_1", "at '/shards/0'"),
    ("kubeApi.burst=0", "at '/kubeApi/burst': minimum: got 0"),
    ("kubeApi.qps=-5", "at '/kubeApi/qps': minimum: got -5"),
    ("replicas=0", "at '/replicas': minimum: got 0"),
    ("leaderElection.enabled=false", None),  # one replica without a lease: fine
    ("replicas=2,leaderElection.enabled=false", "at '/leaderElection/enabled': value must be true"),
    ("leaderElection.renewDeadline=0", "at '/leaderElection/renewDeadline': minimum: got 0"),
    ("podDisruptionBudget.minAvailable=1", "'minAvailable' not allowed"),
])  # fmt: skip
def test_bad_values_fail_at_install_naming_the_field(
    helm: Path, setting: str, says: str | None
) -> None:
    if says is None:  # the same values with replicas 1 render
        setting = f"replicas=1,{setting}"
    result = subprocess.run([str(helm), "template", "modelops", str(CHART), "--set", setting,
                             "--kube-version", KUBE_VERSION],
                            capture_output=True, text=True, check=False)  # fmt: skip
    if says is None:
        assert result.returncode == 0, result.stderr
    else:
        assert result.returncode != 0 and says in result.stderr, result.stderr


def test_every_rendered_object_is_accepted_by_the_api_server(
    helm: Path, control_plane: ControlPlane, tmp_path: Path
) -> None:
    objects = render(helm, "-f", str(CHART / "ci" / "namespaced-values.yaml"))
    namespaces = ["modelops-system", "models", "staging-models", "modelops"]
    accepted_by_dry_run(control_plane, objects, namespaces, tmp_path)


def accepted_by_dry_run(
    plane: ControlPlane, objects: list[dict[str, Any]], namespaces: list[str], folder: Path
) -> None:
    """Every object accepted by the API server (server-side apply, dry run), its namespaces
    created first."""
    manifest = folder / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    kubectl = ensure_binaries().kubectl
    for name in namespaces:
        subprocess.run([str(kubectl), "--kubeconfig", str(plane.kubeconfig), "create",
                        "namespace", name], capture_output=True, check=False)  # fmt: skip
    result = subprocess.run(
        # --force-conflicts: objects of the same name another test installed (the local
        # cluster's ClusterStorageContainer) are not the question; acceptance is.
        [str(kubectl), "--kubeconfig", str(plane.kubeconfig), "apply", "--server-side",
         "--force-conflicts", "--dry-run=server", "-f", str(manifest)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(objects)


EXTRAS = CHART / "ci" / "extras-values.yaml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, check=False)


def test_the_alerts_fire_on_the_operators_metrics_and_only_then(helm: Path, tmp_path: Path) -> None:
    [rule] = kinds(render(helm, "-f", str(EXTRAS)))["PrometheusRule"]
    groups = rule["spec"]["groups"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}))
    checked = promtool("check", "rules", str(tmp_path / "rules.yaml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # promtool compares annotations too; these cases are about when each alert fires.
    bare = [{**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
            for g in groups]  # fmt: skip
    (tmp_path / "bare.yaml").write_text(yaml.safe_dump({"groups": bare}))

    def alert(name: str, at: str, *firing: dict[str, str]) -> dict[str, Any]:
        return {"eval_time": at, "alertname": name, "exp_alerts": [{"exp_labels": f} for f in firing]}  # fmt: skip

    iris, wine = (
        {"namespace": "models", "deployment": "iris"},
        {"namespace": "models", "deployment": "wine"},
    )
    warning = {"severity": "warning"}
    cases = {"rule_files": ["bare.yaml"], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": 'modelops_rollbacks_total{namespace="models",deployment="iris"}', "values": "0 0 1x40"},
            {"series": 'modelops_analysis_measurements_total{namespace="models",deployment="wine",verdict="Inconclusive"}', "values": "0+2x40"},
            {"series": 'modelops_analysis_measurements_total{namespace="models",deployment="iris",verdict="Error"}', "values": "0+2x40"},
            {"series": 'modelops_analysis_measurements_total{namespace="models",deployment="iris",verdict="Pass"}', "values": "0+2x40"},
            {"series": 'modelops_retraining_total{namespace="models",deployment="iris",result="failed"}', "values": "0 0 0 1x40"},
            {"series": 'modelops_retraining_total{namespace="models",deployment="wine",result="succeeded"}', "values": "0 1x40"},
            {"series": 'modelops_registry_errors_total{operation="lookup"}', "values": "0+1x40"},
        ],
        "alert_rule_test": [
            alert("ModelDeploymentRolledBack", "5m", {**warning, **iris}),
            alert("ModelDeploymentRolledBack", "20m"),  # the rollback is older than 10 minutes
            alert("ModelDeploymentAnalysisStuck", "10m"),  # not for 15 minutes yet
            alert("ModelDeploymentAnalysisStuck", "25m", {**warning, **wine}),  # iris still passes
            alert("ModelDeploymentRetrainingFailed", "10m", {**warning, **iris}),
            alert("ModelRegistryUnreachable", "5m"),
            alert("ModelRegistryUnreachable", "20m", {"severity": "critical"}),
        ],
    }]}  # fmt: skip
    (tmp_path / "cases.yaml").write_text(yaml.safe_dump(cases))
    tested = promtool("test", "rules", str(tmp_path / "cases.yaml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_the_dashboard_queries_parse_and_name_only_metrics_the_operator_exports(
    helm: Path, tmp_path: Path
) -> None:
    from prometheus_client import REGISTRY

    import modelops.controller.metrics  # noqa: F401  (registers the operator's metrics)
    from modelops.monitor.engine import Monitor
    from modelops.monitor.metrics import MonitorCollector

    [config_map] = [c for c in kinds(render(helm, "-f", str(EXTRAS)))["ConfigMap"]
                    if c["metadata"]["labels"].get("grafana_dashboard") == "1"]  # fmt: skip
    dashboard = json.loads(config_map["data"]["modelops.json"])
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    queries += [v["query"]["query"].removeprefix("label_values(").rsplit(",", 1)[0]
                for v in dashboard["templating"]["list"] if v["type"] == "query"]  # fmt: skip
    concrete = [q.replace("$__rate_interval", "5m").replace("$namespace", ".*")
                .replace("$deployment", ".*") for q in queries]  # fmt: skip
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": q} for i, q in enumerate(concrete)]}]}  # fmt: skip
    (tmp_path / "dashboard-rules.yaml").write_text(yaml.safe_dump(rules))
    checked = promtool("check", "rules", str(tmp_path / "dashboard-rules.yaml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    exported = {
        s.name for m in REGISTRY.collect() for s in m.samples if s.name.startswith("modelops_")
    }
    exported |= {m.name + suffix for m in REGISTRY.collect() if m.name.startswith("modelops_")
                 for suffix in ("", "_total", "_bucket", "_count", "_sum")}  # fmt: skip
    # The monitor's, as its collector names them.
    exported |= {m.name + suffix for m in MonitorCollector(Monitor()).collect()
                 for suffix in ("", "_total")}  # fmt: skip
    named = set(re.findall(r"modelops_[a-z_]+", " ".join(concrete)))
    assert named and named <= exported, named - exported
    assert {"modelops_model_version_info", "modelops_canary_traffic_percent",
            "modelops_analysis_measurements_total", "modelops_rollbacks_total",
            "modelops_retraining_total", "modelops_drift_psi", "modelops_model_quality",
            "modelops_drifted_features_share"} <= named  # fmt: skip


def test_the_optional_parts_are_accepted_by_the_api_server(
    helm: Path, control_plane: ControlPlane, tmp_path: Path
) -> None:
    """NetworkPolicy, ClusterStorageContainer (KServe's CRD) and the dashboard ConfigMap; the
    Prometheus Operator's kinds are checked by promtool above (no such CRDs here)."""
    objects = [o for o in render(helm, "-f", str(EXTRAS))
               if not o["apiVersion"].startswith("monitoring.coreos.com/")]  # fmt: skip
    found = kinds(objects)
    assert {"NetworkPolicy", "ClusterStorageContainer", "ConfigMap"} <= set(found)
    [storage] = found["ClusterStorageContainer"]
    env = {e["name"]: e for e in storage["spec"]["container"]["env"]}
    assert env["MLFLOW_TRACKING_URI"]["value"] == "http://mlflow.mlflow.svc.cluster.local:5000"
    assert env["MLFLOW_TRACKING_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-credentials"
    accepted_by_dry_run(control_plane, objects, ["modelops-system"], tmp_path)


def test_helm_renders_the_chart_without_being_told_the_kubernetes_version(helm: Path) -> None:
    # A plain `go build` of helm defaults to Kubernetes 1.20, which the chart's kubeVersion
    # (>= 1.28) refuses; the build sets the default as helm's release build does.
    result = subprocess.run([str(helm), "template", "modelops", str(CHART)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "kind: Deployment" in result.stdout
