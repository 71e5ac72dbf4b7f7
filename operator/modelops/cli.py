"""The `modelops` command. `modelops run` starts the operator."""

from __future__ import annotations

import argparse
import os
import socket
import sys
import uuid
from pathlib import Path

from modelops.controller.config import (
    DEFAULT_KUBE_API_BURST,
    DEFAULT_KUBE_API_QPS,
    LeaderElection,
    OperatorConfig,
    RegistryDefaults,
)
from modelops.core.leases import LeaseTiming, LeaseTimingError
from modelops.core.sharding import Shard, ShardNameError

LOG_FORMATS = ("text", "json")
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def _service_account_namespace() -> str:
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except OSError:
        return ""


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelops",
        description="Deliver ML models from an MLflow registry to KServe: roll out, judge, "
        "promote or roll back, retrain.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="start the operator")
    run.add_argument(
        "-n",
        "--namespace",
        action="append",
        dest="namespaces",
        default=_env_list("MODELOPS_NAMESPACES"),
        help="namespace to watch (repeatable; globs allowed); env MODELOPS_NAMESPACES=a,b. "
        "Default: all namespaces",
    )
    run.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=os.environ.get("MODELOPS_LOG_FORMAT", "text"),
        help="text (human-readable, default) or json; env MODELOPS_LOG_FORMAT",
    )
    run.add_argument(
        "--liveness",
        default=os.environ.get("MODELOPS_LIVENESS", "http://0.0.0.0:8080/healthz"),
        help="liveness endpoint URL (default http://0.0.0.0:8080/healthz); 'none' disables it",
    )
    run.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("MODELOPS_METRICS_PORT", "8081")),
        help="port of the Prometheus metrics endpoint (default 8081, 0 disables); env MODELOPS_METRICS_PORT",
    )
    run.add_argument(
        "--metrics-address",
        default=os.environ.get("MODELOPS_METRICS_ADDRESS", "0.0.0.0"),
        help="address the metrics endpoint binds (default 0.0.0.0)",
    )
    run.add_argument(
        "--registry-uri",
        default=os.environ.get("MODELOPS_REGISTRY_URI", ""),
        help="default MLflow tracking URI for deployments without spec.model.registry.trackingUri "
        "(env MODELOPS_REGISTRY_URI)",
    )
    run.add_argument(
        "--registry-credentials",
        default=os.environ.get("MODELOPS_REGISTRY_CREDENTIALS", ""),
        metavar="NAMESPACE/SECRET",
        help="Secret with MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD for the "
        "default registry (env MODELOPS_REGISTRY_CREDENTIALS)",
    )
    run.add_argument(
        "--artifacts-destination",
        default=os.environ.get("MODELOPS_ARTIFACTS_DESTINATION", ""),
        help="the artifact store the default MLflow server proxies, for example "
        "s3://mlflow/artifacts (env MODELOPS_ARTIFACTS_DESTINATION)",
    )
    run.add_argument(
        "--monitor-url",
        default=os.environ.get("MODELOPS_MONITOR_URL", ""),
        help="the monitor (modelops monitor) KServe's inference logger sends to, for "
        "deployments with spec.monitoring.drift and no spec.monitoring.logger "
        "(env MODELOPS_MONITOR_URL)",
    )
    run.add_argument(
        "--capture-store",
        default=os.environ.get("MODELOPS_CAPTURE_STORE", ""),
        help="where the monitor writes labelled production rows; retraining Jobs get their "
        "deployment's part as MODELOPS_PRODUCTION_DATA (env MODELOPS_CAPTURE_STORE)",
    )
    run.add_argument(
        "--prometheus-url",
        default=os.environ.get("MODELOPS_PROMETHEUS_URL", ""),
        help="default Prometheus for analysis without spec.analysis.prometheus "
        "(env MODELOPS_PROMETHEUS_URL)",
    )
    run.add_argument(
        "--shard",
        default=os.environ.get("MODELOPS_SHARD", ""),
        help="own only the ModelDeployments labelled modelops.io/shard=NAME (and their objects) "
        "(env MODELOPS_SHARD). Default: the default shard",
    )
    run.add_argument(
        "--default-shard",
        action="store_true",
        default=_env_flag("MODELOPS_DEFAULT_SHARD"),
        help="named shards run beside this process: own only the ModelDeployments without a "
        "modelops.io/shard label (env MODELOPS_DEFAULT_SHARD=true)",
    )
    run.add_argument(
        "--kube-api-qps",
        type=float,
        default=float(os.environ.get("MODELOPS_KUBE_API_QPS", DEFAULT_KUBE_API_QPS)),
        help="requests per second this process sends the API server, on average (default 0: "
        "no limit, the API server's priority and fairness bounds it); env MODELOPS_KUBE_API_QPS",
    )
    run.add_argument(
        "--kube-api-burst",
        type=int,
        default=int(os.environ.get("MODELOPS_KUBE_API_BURST", DEFAULT_KUBE_API_BURST)),
        help="requests it may send at once above that rate (default "
        f"{DEFAULT_KUBE_API_BURST}); env MODELOPS_KUBE_API_BURST",
    )
    election = run.add_argument_group(
        "leader election", "several replicas of one shard: one leads (writes), the others stand by"
    )
    election.add_argument(
        "--leader-elect",
        action="store_true",
        default=_env_flag("MODELOPS_LEADER_ELECT"),
        help="compete for the shard's Lease before watching or writing anything "
        "(env MODELOPS_LEADER_ELECT=true)",
    )
    election.add_argument(
        "--leader-election-namespace",
        default=os.environ.get("MODELOPS_LEADER_ELECTION_NAMESPACE")
        or os.environ.get("POD_NAMESPACE")
        or _service_account_namespace(),
        help="namespace of the Lease (default: env MODELOPS_LEADER_ELECTION_NAMESPACE, "
        "POD_NAMESPACE, or the ServiceAccount's namespace)",
    )
    timing = LeaseTiming()
    for flag, default, meaning in (
        ("lease-duration", timing.lease_duration, "how long standbys wait on an unrenewed lease"),
        ("renew-deadline", timing.renew_deadline, "how long the leader writes without renewing"),
        ("retry-period", timing.retry_period, "how often the lease is renewed or looked at"),
    ):
        variable = "MODELOPS_LEADER_ELECT_" + flag.upper().replace("-", "_")
        election.add_argument(
            f"--leader-elect-{flag}",
            type=float,
            default=float(os.environ.get(variable, default)),
            metavar="SECONDS",
            help=f"{meaning} (default {default:g}; env {variable})",
        )
    run.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    for action, help_text in (
        ("status", "where a ModelDeployment is: versions, traffic, verdicts, rejections"),
        ("promote", "promote the canary now (Manual promotion, or skip the remaining steps)"),
        ("rollback", "roll the canary back, or the stable version back to the previous one"),
        ("pause", "hold the rollout at its current step"),
        ("resume", "let a paused rollout continue"),
        ("retry", "allow a rejected version to be rolled out again"),
        ("retrain", "start a retraining Job now (one at a time; cooldown and backoff aside)"),
    ):
        control = commands.add_parser(action, help=help_text)
        control.add_argument("name", help="ModelDeployment name")
        control.add_argument("-n", "--namespace", default="default", help="its namespace")
        if action in ("promote", "rollback", "retry"):
            control.add_argument("--version", default=None, help="the version meant (checked)")
        if action == "status":
            control.add_argument("-o", "--output", choices=["text", "json"], default="text")
            control.add_argument("-w", "--watch", action="store_true",
                                 help="a live view, redrawn as the deployment changes (needs modelops[cli])")  # fmt: skip
        if action == "retrain":
            control.add_argument("--reason", default=None, help="why, recorded with the run")

    from modelops.monitor.main import add_monitor_arguments, add_profile_arguments

    add_monitor_arguments(commands.add_parser(
        "monitor", help="receive KServe's inference logs and feedback; export drift and "
        "live quality for Prometheus (needs modelops[monitor])",
    ))  # fmt: skip
    add_profile_arguments(commands.add_parser(
        "profile", help="log the reference profile of a version's training data to its "
        "MLflow run (needs modelops[monitor])",
    ))  # fmt: skip

    initializer = commands.add_parser(
        "storage-initializer",
        help="download models through MLflow into a folder (KServe's storage initializer "
        "contract; MLFLOW_TRACKING_URI and credentials from the environment)",
    )
    initializer.add_argument(
        "pairs", nargs="+", metavar="SRC_URI DEST_DIR", help="models:/NAME/VERSION, "
        "models:/NAME@ALIAS, mlflow-artifacts:/..., runs:/... and where to put each",
    )  # fmt: skip
    return parser


def storage_initializer(pairs: list[str]) -> int:
    if len(pairs) % 2:
        print("storage-initializer: give SRC_URI DEST_DIR pairs", file=sys.stderr)
        return 2
    from modelops.adapters.registry import RegistryError, _translate, download

    for source, destination in zip(pairs[0::2], pairs[1::2], strict=True):
        print(f"downloading {source} into {destination}", file=sys.stderr, flush=True)
        try:
            folder = download(source, Path(destination))
        except Exception as error:
            problem = error if isinstance(error, RegistryError) else _translate(error, source)
            print(f"storage-initializer: {problem.reason}: {problem.message}", file=sys.stderr)
            return 1
        files = sorted(p.name for p in folder.iterdir())
        print(f"downloaded {source}: {', '.join(files)}", file=sys.stderr, flush=True)
    return 0


def operator_config(args: argparse.Namespace) -> OperatorConfig:
    """The operator's configuration from its flags (whose defaults are the environment's)."""
    return OperatorConfig(
        registry=RegistryDefaults(
            tracking_uri=args.registry_uri or None,
            credentials_secret=args.registry_credentials or None,
            artifacts_destination=args.artifacts_destination or None,
        ),
        prometheus_url=args.prometheus_url or None,
        monitor_url=args.monitor_url or None,
        capture_store=args.capture_store or None,
        namespaces=tuple(dict.fromkeys(args.namespaces)),
        shard=Shard(args.shard or None, others_exist=args.default_shard),
        kube_api_qps=args.kube_api_qps,
        kube_api_burst=args.kube_api_burst,
        leader_election=leader_election(args),
    )


def leader_election(args: argparse.Namespace) -> LeaderElection | None:
    """Raises LeaseTimingError on timings that would let two replicas write at once."""
    if not args.leader_elect:
        return None
    timing = LeaseTiming(
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period,
    )
    # As client-go: the host (the pod's name) for people, a random part for uniqueness.
    identity = f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    return LeaderElection(args.leader_election_namespace, identity, timing)


def hide_kubernetes_clients() -> None:
    """kopf imports any Kubernetes client library it finds installed, to recognise its objects
    and to log in with it; the official `kubernetes` added ~20 MiB (import peak 75 against 55
    MiB). The operator logs in and talks to the API server itself, so its process hides them:
    one installed beside it (the dev extra has `kubernetes` for the tests) costs nothing, and
    benchmarks measure the operator as the chart installs it."""
    if "kopf" in sys.modules:
        return  # imported already with what it found: an in-process test, not the operator
    for name in ("kubernetes", "kubernetes_asyncio", "pykube"):
        # A None entry makes `import name` raise ImportError, which kopf takes as "absent".
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def run_operator(args: argparse.Namespace) -> int:
    if args.registry_credentials and "/" not in args.registry_credentials:
        print("--registry-credentials: give NAMESPACE/SECRET, for example "
              "modelops/mlflow-credentials", file=sys.stderr)  # fmt: skip
        return 2
    if args.shard and args.default_shard:
        print("--shard and --default-shard exclude each other: a process is either the named "
              "shard or the default one", file=sys.stderr)  # fmt: skip
        return 2
    if args.kube_api_qps < 0 or (args.kube_api_qps > 0 and args.kube_api_burst < 1):
        print("--kube-api-qps must be 0 (no limit) or more, and --kube-api-burst at least 1 "
              "with a limit: for example --kube-api-qps 200 --kube-api-burst 400",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.leader_elect and not args.leader_election_namespace:
        print("--leader-election-namespace: not running in a pod, so give the namespace of "
              "the shard's Lease, for example --leader-election-namespace modelops",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        config = operator_config(args)
    except ShardNameError as error:
        print(f"--shard: {error}", file=sys.stderr)
        return 2
    except LeaseTimingError as error:
        print(f"--leader-elect-lease-duration, --leader-elect-renew-deadline, "
              f"--leader-elect-retry-period: {error}", file=sys.stderr)  # fmt: skip
        return 2
    hide_kubernetes_clients()
    from modelops.handlers import registration

    if args.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(args.metrics_port, addr=args.metrics_address)
    return registration.run(
        config,
        verbose=args.verbose,
        json_logs=args.log_format == "json",
        liveness=None if args.liveness in ("", "none") else args.liveness,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "run":
        return run_operator(args)
    if args.command == "storage-initializer":
        return storage_initializer(args.pairs)
    if args.command == "profile":
        from modelops.monitor.main import run_profile

        return run_profile(args)
    if args.command == "monitor":
        from modelops.handlers.connection import cluster_connection
        from modelops.monitor.main import run_monitor

        connection = cluster_connection()
        if connection is None:
            print("monitor: no in-cluster ServiceAccount and no kubeconfig", file=sys.stderr)
            return 2
        return run_monitor(args, connection)
    if args.command in ("status", "promote", "rollback", "pause", "resume", "retry", "retrain"):
        from modelops import commands

        return commands.main(
            commands.Command(
                args.command,
                args.name,
                args.namespace,
                version=getattr(args, "version", None),
                as_json=getattr(args, "output", "text") == "json",
                reason=getattr(args, "reason", None),
                follow=getattr(args, "watch", False),
            )
        )
    return 2


if __name__ == "__main__":
    sys.exit(main())
