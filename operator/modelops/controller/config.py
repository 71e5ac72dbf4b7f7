"""The operator's configuration: one typed object built by `modelops run` from its flags (and
their environment variables), handed to the controller through kopf's memo. Nothing reads it
back from the environment."""

from __future__ import annotations

from dataclasses import dataclass, field

from modelops.core.leases import LeaseTiming
from modelops.core.sharding import Shard

GLOB_CHARACTERS = set("*?[!")
# Client-side rate limit toward the API server, per process (core/rate_limit.py). Off by
# default, as in controller-runtime since v0.21: the API server's priority and fairness bounds
# its clients, and the limit alone cost a 1,000-deployment burst a fifth of its time while
# no 429 was drawn without it (docs/performance.md).
DEFAULT_KUBE_API_QPS = 0.0
DEFAULT_KUBE_API_BURST = 400


@dataclass(frozen=True)
class RegistryDefaults:
    """The MLflow registry of deployments that name none."""

    tracking_uri: str | None = None
    credentials_secret: str | None = None
    """NAMESPACE/NAME of a Secret with MLFLOW_TRACKING_TOKEN or USERNAME/PASSWORD."""
    artifacts_destination: str | None = None
    """The store the server proxies: mlflow-artifacts:/ URIs map onto it."""


@dataclass(frozen=True)
class LeaderElection:
    """Replicas of one shard elect a leader on a Lease in the operator's own namespace."""

    namespace: str
    identity: str
    """Unique per process (the pod's name and a random suffix)."""
    timing: LeaseTiming = field(default_factory=LeaseTiming)


@dataclass(frozen=True)
class OperatorConfig:
    registry: RegistryDefaults = field(default_factory=RegistryDefaults)
    prometheus_url: str | None = None
    """Prometheus for analyses without spec.analysis.prometheus."""
    namespaces: tuple[str, ...] = ()
    """Namespaces to watch (globs allowed); all when empty."""
    monitor_url: str | None = None
    """The monitor KServe's inference logger sends to, for deployments that name none."""
    capture_store: str | None = None
    """Where the monitor captures labelled rows (retraining Jobs read their deployment's)."""
    shard: Shard = field(default_factory=Shard)
    """The deployments this process owns (label selector on every watch)."""
    kube_api_qps: float = DEFAULT_KUBE_API_QPS
    """Average requests per second to the API server (0: no limit)."""
    kube_api_burst: int = DEFAULT_KUBE_API_BURST
    """Requests sent at once above that rate."""
    leader_election: LeaderElection | None = None
    """None: this process is its shard's only replica and leads from the start."""

    @property
    def scans_namespaces(self) -> bool:
        """Namespace globs need kopf's namespace scanning (list/watch namespaces); exact names
        and cluster-wide watching do not."""
        return any(GLOB_CHARACTERS & set(name) for name in self.namespaces)
