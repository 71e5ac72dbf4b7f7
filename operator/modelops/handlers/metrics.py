"""The operator's own Prometheus metrics (served by `modelops run --metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter

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
