"""`modelops monitor` (the monitor process) and `modelops profile` (log a reference profile
from a data file): their flags and start-up."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from modelops.adapters.kubernetes import Connection, KubernetesApi
from modelops.controller.config import RegistryDefaults
from modelops.controller.model_resolver import ModelResolver
from modelops.monitor.thresholds import (
    DEFAULT_PSI_THRESHOLD,
    DEFAULT_PVALUE_THRESHOLD,
    Thresholds,
)

FEEDBACK_TOKEN_VARIABLE = "MODELOPS_FEEDBACK_TOKEN"


def add_monitor_arguments(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument(
        "--address",
        default=env("MODELOPS_MONITOR_ADDRESS", "0.0.0.0"),
        help="address to listen on (default 0.0.0.0)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(env("MODELOPS_MONITOR_PORT", "8080")),
        help="port for events, feedback and /metrics (default 8080)",
    )
    parser.add_argument(
        "--registry-uri",
        default=env("MODELOPS_REGISTRY_URI", ""),
        help="default MLflow tracking URI (as the operator's)",
    )
    parser.add_argument(
        "--registry-credentials",
        default=env("MODELOPS_REGISTRY_CREDENTIALS", ""),
        metavar="NAMESPACE/SECRET",
        help="Secret with the default registry's credentials",
    )
    parser.add_argument(
        "--capture-store",
        default=env("MODELOPS_CAPTURE_STORE", ""),
        help="where labelled production rows go (a path or s3://bucket/prefix); "
        "empty: not captured",
    )
    parser.add_argument(
        "--capture-flush-seconds",
        type=float,
        default=30.0,
        help="captured rows are written at least this often (default 30)",
    )
    parser.add_argument("--window", type=int, default=1000, help="rows per drift window")
    parser.add_argument(
        "--min-samples",
        type=int,
        default=200,
        help="rows a window needs before its drift is exported (default 200)",
    )
    parser.add_argument(
        "--psi-threshold",
        type=float,
        default=DEFAULT_PSI_THRESHOLD,
        help=f"PSI at which a numeric feature counts as drifted ({DEFAULT_PSI_THRESHOLD})",
    )
    parser.add_argument(
        "--pvalue-threshold",
        type=float,
        default=DEFAULT_PVALUE_THRESHOLD,
        help=f"chi-squared p-value below which a categorical feature drifted ({DEFAULT_PVALUE_THRESHOLD})",
    )
    parser.add_argument(
        "--feedback-ttl",
        type=float,
        default=3600.0,
        help="seconds a prediction waits for its ground truth (default 3600)",
    )
    parser.add_argument("--max-body", type=int, default=4 * 1024 * 1024,
                        help="largest event or feedback body in bytes (default 4 MiB)")  # fmt: skip


def add_profile_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data", type=Path, help="training data: a CSV or Parquet file")
    parser.add_argument("--run-id", required=True, help="the MLflow run that logged the model")
    parser.add_argument("--target", default=None, help="the label column (left out of features)")
    parser.add_argument("--task", choices=["classification", "regression"], default=None)


def run_profile(args: argparse.Namespace) -> int:
    import pyarrow.csv
    import pyarrow.parquet

    from modelops.profile import log_reference

    path: Path = args.data
    if not path.is_file():
        print(f"profile: {path} is not a file", file=sys.stderr)
        return 2
    reader = pyarrow.parquet.read_table if path.suffix == ".parquet" else pyarrow.csv.read_csv
    columns = reader(str(path)).to_pydict()
    if args.target is not None and columns.pop(args.target, None) is None:
        print(f"profile: --target {args.target!r} is not a column of {path}", file=sys.stderr)
        return 2
    profile = log_reference(columns, run_id=args.run_id, task=args.task)
    print(f"reference profile of {len(profile.features)} features from {profile.rows} rows "
          f"logged to run {args.run_id}")  # fmt: skip
    return 0


def run_monitor(args: argparse.Namespace, connection: Connection) -> int:
    from aiohttp import web

    from modelops.monitor.capture import Capture
    from modelops.monitor.directory import Directory
    from modelops.monitor.engine import Monitor, Settings
    from modelops.monitor.server import MonitorService, app_runner, build_app

    if args.registry_credentials and "/" not in args.registry_credentials:
        print("--registry-credentials: give NAMESPACE/SECRET", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings(
        window=args.window,
        min_samples=args.min_samples,
        feedback_ttl=args.feedback_ttl,
        thresholds=Thresholds(psi=args.psi_threshold, pvalue=args.pvalue_threshold),
    )

    async def serve() -> None:
        api = KubernetesApi(connection)
        defaults = RegistryDefaults(
            tracking_uri=args.registry_uri or None,
            credentials_secret=args.registry_credentials or None,
        )
        service = MonitorService(
            Monitor(settings),
            Directory(api, ModelResolver(api, defaults)),
            os.environ.get(FEEDBACK_TOKEN_VARIABLE) or None,
            capture=Capture(args.capture_store) if args.capture_store else None,
        )
        app = build_app(service, max_body=args.max_body, flush_every=args.capture_flush_seconds)
        runner = app_runner(app)
        await runner.setup()
        await web.TCPSite(runner, args.address, args.port).start()
        logging.getLogger("modelops.monitor").info(
            "Monitor listening on %s:%d (feedback %s, capture %s)", args.address, args.port,
            "on" if service.feedback_token else "off", args.capture_store or "off",
        )  # fmt: skip
        stop = asyncio.Event()
        for signal_number in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signal_number, stop.set)
        try:
            await stop.wait()  # then captured rows are written before exit
        finally:
            await runner.cleanup()
            await api.close()

    asyncio.run(serve())
    return 0
