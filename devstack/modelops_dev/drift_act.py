"""The demo's drift act (the monitoring half of the loop), a part of modelops_dev.scenario:
production moves to wines v3 never learnt from, the monitor measures it, the drift trigger
retrains on the captured labelled rows, v4 is judged on quality and promoted, and its own drift
stays below the trigger's threshold."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelops_dev.scenario import Cluster, Stage


class DriftAct:
    # Provided by the Scenario this is mixed into.
    cluster: Cluster
    name: str
    manifest: dict[str, Any]
    versions: dict[str, str]
    measured: dict[str, str]
    _measured_at: float
    accuracy_before: float
    status: Callable[[], dict[str, Any]]
    jobs: Callable[[], list[dict[str, Any]]]
    traffic_stats: Callable[[], dict[str, Any]]
    stop_traffic: Callable[[], None]
    start_traffic: Callable[[str], None]
    _alias_version: Callable[[str], str | None]
    _wait: Callable[[Stage, Callable[[], Any]], Any]

    def query(self, expression: str) -> list[dict[str, Any]]:
        """An instant PromQL query against the stack's Prometheus."""
        url = f"{self.cluster.prometheus}/api/v1/query?" + urllib.parse.urlencode(
            {"query": expression}
        )
        with urllib.request.urlopen(url, timeout=10) as answer:
            result: list[dict[str, Any]] = json.loads(answer.read())["data"]["result"]
        return result

    def monitored(self) -> dict[str, str]:
        """Per served version: the monitor's drifted-features share and live accuracy."""
        if time.monotonic() - self._measured_at < 2:
            return self.measured
        self._measured_at = time.monotonic()
        selector = f'namespace="{self.cluster.namespace}", deployment="{self.name}"'
        found: dict[str, list[str]] = {}
        for metric, label in (("modelops_drifted_features_share", "drifted"),
                              (f'modelops_model_quality{{{selector}, metric="accuracy"}}', "accuracy")):  # fmt: skip
            expression = metric if "{" in metric else f"{metric}{{{selector}}}"
            for series in self.query(f"max by (version, track) ({expression})"):
                key = f"v{series['metric'].get('version')} {series['metric'].get('track')}"
                found.setdefault(key, []).append(f"{label} {float(series['value'][1]):.2f}")
        self.measured = {key: ", ".join(values) for key, values in sorted(found.items())}
        return self.measured

    # ---- the drift act ---------------------------------------------------------------------

    def _stage_10(self, stage: Stage) -> None:
        # v3's live accuracy on the wines it was trained for, before production changes.
        self.accuracy_before = self._wait(
            stage, lambda: self._version_numbers(self.versions["v3"])[1]
        )
        self.stop_traffic()
        self.start_traffic("high-alcohol-new-lab")
        self._wait(stage, lambda: self.traffic_stats().get("feedback", {}).get("200", 0) >= 40)

    def _version_numbers(self, version: str) -> tuple[float | None, float | None]:
        """(drifted-features share, live accuracy) of `version` as the stable, from Prometheus."""
        selector = (f'namespace="{self.cluster.namespace}", deployment="{self.name}", '
                    f'version="{version}", track="stable"')  # fmt: skip
        share = self.query(f"max(modelops_drifted_features_share{{{selector}}})")
        accuracy = self.query(f'max(modelops_model_quality{{{selector}, metric="accuracy"}})')
        return (
            float(share[0]["value"][1]) if share else None,
            float(accuracy[0]["value"][1]) if accuracy else None,
        )

    def _stage_11(self, stage: Stage) -> None:
        before = self.accuracy_before

        def drifted() -> tuple[float, float] | None:
            # v3's series stay in Prometheus after the drift trigger's v4 replaces it.
            share, accuracy = self._version_numbers(self.versions["v3"])
            if share is None or share < 0.5 or accuracy is None or accuracy >= before - 0.05:
                return None
            return share, accuracy

        share, accuracy = self._wait(stage, drifted)
        stage.detail = f"{share:.0%} of features drifted; accuracy {before:.2f} -> {accuracy:.2f}"

    def _stage_12(self, stage: Stage) -> None:
        def drift_job() -> dict[str, Any] | None:
            retraining = self.status().get("retraining") or {}
            runs = [*(retraining.get("history") or []), retraining.get("current") or {}]
            fired = [r for r in runs if str(r.get("triggerId", "")).startswith("drift-")]
            return fired[-1] if fired else None

        fired = self._wait(stage, drift_job)
        stage.detail = f"{fired.get('job', '')}: {fired.get('reason', '')}"[:160]

    def _stage_13(self, stage: Stage) -> None:
        known = set(self.versions.values())

        def registered() -> str | None:
            retraining = self.status().get("retraining") or {}
            version = retraining.get("candidateVersion")
            if retraining.get("phase") == "Failed":
                raise _missed(stage.name, stage.deadline, json.dumps(retraining)[:600])
            done = retraining.get("phase") == "Succeeded" and version not in known
            return str(version) if done else None

        self.versions["v4"] = self._wait(stage, registered)
        from mlflow import MlflowClient

        client = MlflowClient(self.cluster.mlflow)
        run = client.get_run(client.get_model_version(self.name, self.versions["v4"]).run_id)
        rows = run.data.tags.get("modelops.io/production-rows", "0")
        stage.detail = f"version {self.versions['v4']}, trained with {rows} captured rows"
        if int(rows) == 0:
            raise _missed(stage.name, stage.deadline, "v4 learnt from no captured row")

    def _stage_14(self, stage: Stage) -> None:
        judged: list[str] = []

        def promoted() -> bool:
            status = self.status()
            analysis = status.get("analysis") or {}
            if analysis.get("subject") == "canary":
                judged.extend(m.get("message", "") for m in analysis.get("metrics") or []
                              if m.get("name") == "accuracy-vs-stable" and m.get("verdict") == "Pass")  # fmt: skip
            stable = (status.get("stable") or {}).get("version")
            return (
                stable == self.versions["v4"]
                and self._alias_version("champion") == self.versions["v4"]
            )

        self._wait(stage, promoted)
        stage.detail = judged[-1] if judged else "promoted"

    def _stage_15(self, stage: Stage) -> None:
        limit = max(float((t.get("drift") or {}).get("maxPsi", 0))
                    for t in self.manifest["spec"]["retraining"]["triggers"])  # fmt: skip
        jobs = len(self.jobs())
        selector = (f'namespace="{self.cluster.namespace}", deployment="{self.name}", '
                    f'version="{self.versions["v4"]}", track="stable"')  # fmt: skip
        calm: list[float] = []

        def quiet() -> bool:
            found = self.query(f"max(modelops_drift_psi{{{selector}}})")
            if not found:
                return False
            psi = float(found[0]["value"][1])
            if psi >= limit or len(self.jobs()) != jobs:
                calm.clear()
                return False
            calm.append(psi)
            return len(calm) >= 20  # ten seconds of readings below the threshold

        self._wait(stage, quiet)
        stage.detail = f"largest PSI {max(calm):.2f} < maxPsi {limit:g}; no new Job"


def _missed(stage: str, deadline: float, detail: str) -> Exception:
    from modelops_dev.scenario import StageMissedError

    return StageMissedError(stage, deadline, detail)
