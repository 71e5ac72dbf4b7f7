"""`make demo`: the whole model lifecycle on one machine, with a live view in the terminal.

It starts the local stack (`modelops-dev up`: control plane, KServe, process kubelet, router,
MLflow, Prometheus), the operator and the chart's monitor, then runs the scenario in
modelops_dev.scenario: v1 served, a bad v2 rolled back by the canary analysis, retraining
started by the rollback, the retrained v3 rolled out and promoted; then production drifts, the
monitor shows it, the drift trigger retrains on the captured rows, and v4 is promoted. It exits non-zero naming the stage that missed its
deadline. `--keep` leaves everything up for kubectl and the MLflow and Prometheus UIs.

    python -m modelops_dev.demo [--keep] [--dir DIR]     (make demo DEMO_ARGS=--keep)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from modelops.views import status_table
from modelops_dev.scenario import Cluster, Scenario, Snapshot, Stage, StageMissedError
from modelops_dev.stack import DEFAULT_DIR, Stack

console = Console(stderr=True)


def stage_table(stages: list[Stage]) -> Table:
    table = Table(title="modelops demo: the model lifecycle", expand=True)
    table.add_column("stage")
    table.add_column("took", justify="right")
    table.add_column("detail", overflow="fold")
    for stage in stages:
        if stage.seconds is not None:
            mark, took = "[green]done[/]", f"{stage.seconds:5.1f}s"
        elif stage.started is not None:
            mark, took = "[yellow]...[/]", f"{time.monotonic() - stage.started:5.1f}s"
        else:
            mark, took = "[dim]waiting[/]", ""
        table.add_row(f"{mark} {stage.name}", took, stage.detail)
    return table


def state_table(snapshot: Snapshot) -> Table:
    """The operator's own view of the deployment (`modelops status --watch`), and the demo's
    traffic."""
    table = status_table(snapshot.status, snapshot.jobs)
    traffic = snapshot.traffic
    if traffic:
        labelled = (traffic.get("feedback") or {}).get("200", 0)
        table.add_row(
            "requests",
            f"{traffic.get('ok', 0)} answered, {traffic.get('failed', 0)} failed, "
            f"{labelled} labelled ({traffic.get('segment', 'all')} wines)",
        )
    for version, numbers in snapshot.monitoring.items():
        table.add_row(f"monitor {version}", numbers)
    return table


def summary(stages: list[Stage], started: float) -> Table:
    table = Table(title="summary", expand=True)
    table.add_column("stage")
    table.add_column("took", justify="right")
    for stage in stages:
        table.add_row(
            stage.name, f"{stage.seconds:.1f}s" if stage.seconds is not None else "missed"
        )
    table.add_row("[bold]whole scenario[/]", f"[bold]{time.monotonic() - started:.1f}s[/]")
    return table


def start_operator(state: dict[str, Any], logs: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KUBECONFIG": state["kubeconfig"]}
    log = (logs / "operator.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "modelops.cli", "run", "--liveness", "none", "--metrics-port", "0",
         "--registry-uri", state["mlflow"], "--prometheus-url", state["prometheus"]],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR.parent / "demo")
    args = parser.parse_args(argv)
    # Its own bridges and ranges, so the demo can run beside the tests or `modelops-dev up`.
    os.environ.setdefault("MODELOPS_BRIDGE_PREFIX", "mod")
    os.environ.setdefault("MODELOPS_KSERVE_CIDR", "10.223.0.0/16")
    os.environ.setdefault("MODELOPS_POD_CIDR", "10.225.0.0/16")
    stack = Stack(args.dir)
    stack.down()  # whatever a previous --keep run left behind
    # A scenario from the start: no deployment, registry, captured rows or metrics of an
    # earlier run (the stack keeps its etcd, MLflow and Prometheus data in this folder).
    shutil.rmtree(args.dir, ignore_errors=True)
    console.rule("local stack (the first run builds binaries and Python environments)")
    started = time.monotonic()
    try:
        return run_scenario(stack, args.dir, args.keep, started)
    finally:
        if not args.keep:
            stack.down()  # the operator too (adopted), also after an unexpected error
            console.print("stopped everything the demo started")


def run_scenario(stack: Stack, directory: Path, keep: bool, started: float) -> int:
    state = stack.up()
    from modelops_dev.control_plane import ControlPlane

    plane = ControlPlane.load(Path(state["control_plane"]))
    operator = start_operator(state, plane.logs)
    stack.adopt("operator", operator.pid)
    cluster = Cluster(plane, state["router"], state["mlflow"], state["prometheus"])
    console.print(f"MLflow UI: {state['mlflow']}    Prometheus UI: {state['prometheus']}")
    scenario_started = time.monotonic()
    outcome = 0
    with Live(console=console, refresh_per_second=4) as live:

        def observe(snapshot: Snapshot) -> None:
            live.update(Group(stage_table(snapshot.stages), state_table(snapshot)))

        scenario = Scenario(cluster, directory, observe)
        try:
            scenario.run()
        except StageMissedError as missed:
            outcome = 1
            console.print(f"[red]FAILED[/]: {missed}")
        except KeyboardInterrupt:
            outcome = 130
    console.print(summary(scenario.stages, scenario_started))
    console.print(
        f"stack start {scenario_started - started:.0f}s, scenario {time.monotonic() - scenario_started:.0f}s"
    )
    if keep:
        console.print(f"export KUBECONFIG={state['kubeconfig']}")
        console.print(f"MLflow UI: {state['mlflow']}    Prometheus UI: {state['prometheus']}")
        console.print(
            f"stop it all with: modelops-dev down --dir {directory} (operator pid {operator.pid})"
        )
    return outcome


if __name__ == "__main__":
    sys.exit(main())
