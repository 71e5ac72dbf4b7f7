"""The operator's own Prometheus metrics (served by `modelops run --metrics-port`)."""

from __future__ import annotations

import contextlib

from prometheus_client import Counter, Gauge, Histogram

from modelops.api.status import ModelDeploymentStatus

RECONCILES = Counter(
    "modelops_reconcile",
    "Reconciles of ModelDeployments by outcome: unchanged (no write), changed, retry, rejected.",
    ["outcome"],
)
API_WRITES = Counter(
    "modelops_api_writes",
    "Writes the reconciler sent to the API server, by resource.",
    ["resource"],
)
REGISTRY_CALLS = Counter(
    "modelops_registry_lookups",
    "Version or alias lookups sent to MLflow registries (one per model and poll interval, "
    "however many deployments share it), by model.",
    ["model"],
)
ROLLOUTS = Counter(
    "modelops_rollouts",
    "Rollouts that ended, by result: promoted, rolled_back, aborted (superseded or withdrawn).",
    ["namespace", "deployment", "result"],
)
ROLLBACKS = Counter(
    "modelops_rollbacks", "Automatic or manual rollbacks.", ["namespace", "deployment"]
)
MEASUREMENTS = Counter(
    "modelops_analysis_measurements",
    "Analysis measurements by verdict: Pass, Fail, Inconclusive, Error.",
    ["namespace", "deployment", "verdict"],
)
CANARY_TRAFFIC = Gauge(
    "modelops_canary_traffic_percent",
    "Share of traffic the canary's current step asks for (0 without a canary).",
    ["namespace", "deployment"],
)
VERSION_INFO = Gauge(
    "modelops_model_version_info",
    "1 for each version a deployment serves, by role: stable or canary.",
    ["namespace", "deployment", "version", "role"],
)
RECONCILE_DURATION = Histogram(
    "modelops_reconcile_duration_seconds",
    "Time of one reconcile, registry lookups and analysis queries included.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
REGISTRY_ERRORS = Counter(
    "modelops_registry_errors",
    "Registry lookups or writes that failed, by operation.",
    ["operation"],
)
PROMETHEUS_ERRORS = Counter(
    "modelops_prometheus_errors", "Analysis queries Prometheus did not answer."
)
RETRAININGS = Counter(
    "modelops_retraining",
    "Retraining outcomes: started, succeeded (a candidate was found), failed, no_candidate.",
    ["namespace", "deployment", "result"],
)


# Each deployment's counter series, by metric and their labels beyond namespace and deployment:
# what its deletion removes, without scanning every series of every deployment.
_COUNTED: dict[tuple[str, str], set[tuple[Counter, tuple[str, ...]]]] = {}


def count(metric: Counter, key: tuple[str, str], *labels: str) -> None:
    """Increment a deployment's series of `metric`, remembered for its deletion."""
    metric.labels(*key, *labels).inc()
    _COUNTED.setdefault(key, set()).add((metric, labels))


def _forget_counters(key: tuple[str, str]) -> None:
    """Remove a deleted deployment's counter series, as kube-state-metrics drops a deleted
    object's: kept, they would grow the process (and every scrape) with each name ever used."""
    for metric, labels in _COUNTED.pop(key, set()):
        with contextlib.suppress(KeyError):
            metric.remove(*key, *labels)


class RolloutGauges:
    """The per-deployment gauges a status implies (canary traffic, versions served), with the
    series of versions no longer served removed, and every series of a deleted deployment."""

    def __init__(self) -> None:
        self._exported: dict[tuple[str, str], set[tuple[str, str]]] = {}

    def export(self, key: tuple[str, str], status: ModelDeploymentStatus) -> None:
        canary = status.canary
        live = canary if canary is not None and not canary.aborting else None
        CANARY_TRAFFIC.labels(*key).set(live.traffic if live is not None else 0)
        wanted = set()
        if status.stable is not None:
            wanted.add((status.stable.version or "", "stable"))
        if live is not None:
            wanted.add((live.version or "", "canary"))
        for version, role in self._exported.get(key, set()) - wanted:
            VERSION_INFO.remove(*key, version, role)
        for version, role in wanted:
            VERSION_INFO.labels(*key, version, role).set(1)
        self._exported[key] = wanted

    def forget(self, key: tuple[str, str]) -> None:
        for version, role in self._exported.pop(key, set()):
            VERSION_INFO.remove(*key, version, role)
        with contextlib.suppress(KeyError):
            CANARY_TRAFFIC.remove(*key)
        _forget_counters(key)
