"""Manual controls through the kubeconfig: `modelops status|promote|rollback|pause|resume|retry|
retrain` (also `kubectl modelops ...`).

Each request is an annotation on the ModelDeployment (never its spec): the operator acts on a
request value once and records it in status.handledRequests, so the CLI stamps each value with
the time to make repeated requests distinct. kubectl works as well:
`kubectl annotate md NAME modelops.io/promote=8/1 --overwrite`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modelops.adapters.kubernetes import ApiError, KubernetesApi, namespaced_path
from modelops.api.resource import GROUP, PLURAL, VERSION
from modelops.core.requests import (
    PAUSED_ANNOTATION,
    PROMOTE_ANNOTATION,
    RETRAIN_ANNOTATION,
    RETRY_ANNOTATION,
    ROLLBACK_ANNOTATION,
)

ACTIONS = ("status", "promote", "rollback", "pause", "resume", "retry", "retrain")
WATCH_SECONDS = 2.0


async def _api() -> KubernetesApi:
    from modelops.handlers.connection import kubeconfig_connection

    connection = kubeconfig_connection()
    if connection is None:
        raise SystemExit("no kubeconfig found: set KUBECONFIG or ~/.kube/config")
    return KubernetesApi(connection)


def _stamp(version: str | None) -> str:
    return f"{version or ''}/{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def describe(body: dict[str, Any]) -> str:
    """A few lines on where a deployment is: phase, versions, traffic, verdicts, rejections."""
    status = body.get("status") or {}
    lines = [
        f"{body['metadata']['namespace']}/{body['metadata']['name']}: {status.get('phase', 'Unknown')}"
    ]
    if status.get("message"):
        lines.append(f"  {status['message']}")
    stable, canary = status.get("stable") or {}, status.get("canary") or {}
    if stable:
        lines.append(f"  stable: version {stable.get('version')} ({stable.get('storageUri')})")
    if canary:
        lines.append(
            f"  canary: version {canary.get('version')} step {canary.get('step', 0) + 1}, "
            f"{canary.get('traffic')}% asked, {canary.get('effectiveTraffic', '?')}% effective"
            + (f", paused: {canary['pausedReason']}" if canary.get("pausedReason") else "")
        )
    if status.get("traffic"):
        lines.append(f"  traffic: {status['traffic']}")
    analysis = status.get("analysis") or {}
    for metric in analysis.get("metrics", []):
        lines.append(f"  {metric['verdict']:<12} {metric.get('message', metric['name'])}")
    if analysis:
        lines.append(
            f"  analysis of the {analysis.get('subject')}: {analysis.get('runs', 0)} rounds, "
            f"{analysis.get('failures', 0)} failed"
        )
    for rejected in status.get("rejectedVersions", []):
        lines.append(f"  rejected: version {rejected.get('version')}: {rejected.get('reason')}")
    return "\n".join(lines)


async def watch(api: KubernetesApi, path: str, namespace: str, name: str) -> int:
    """`modelops status NAME --watch`: the live view, redrawn as the deployment changes."""
    try:
        from rich.console import Console
        from rich.live import Live

        from modelops.views import status_table
    except ImportError:
        print("modelops: --watch needs rich: pip install 'modelops[cli]'", file=sys.stderr)
        return 2
    jobs_path = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    selector = {"labelSelector": f"modelops.io/deployment={name}"}
    console = Console()
    with Live(console=console, auto_refresh=False) as live:
        try:
            while True:
                body = await api.get(path)
                if body is None:
                    print(f"modelops: {namespace}/{name} is gone", file=sys.stderr)
                    return 1
                try:
                    jobs = (await api.request("GET", jobs_path, params=selector)).get("items", [])
                except ApiError:
                    jobs = []  # not allowed to list Jobs: the status still says what runs
                table = status_table(body.get("status") or {}, jobs)
                table.title = f"{namespace}/{name}"
                live.update(table, refresh=True)
                await asyncio.sleep(WATCH_SECONDS)
        except (KeyboardInterrupt, asyncio.CancelledError):
            return 0


@dataclass(frozen=True)
class Command:
    """One invocation: the action, the deployment, and its options."""

    action: str
    name: str
    namespace: str
    version: str | None = None
    as_json: bool = False
    reason: str | None = None
    follow: bool = False


async def run(command: Command) -> int:
    action, name, namespace = command.action, command.name, command.namespace
    version, as_json, reason, follow = (
        command.version,
        command.as_json,
        command.reason,
        command.follow,
    )
    api = await _api()
    path = namespaced_path(GROUP, VERSION, PLURAL, namespace, name)
    try:
        body = await api.get(path)
        if body is None:
            print(f"modelops: no ModelDeployment {namespace}/{name}", file=sys.stderr)
            return 1
        status = body.get("status") or {}
        annotations: dict[str, str | None] = {}
        if action == "status" and follow:
            return await watch(api, path, namespace, name)
        if action == "status":
            print(json.dumps(status, indent=2) if as_json else describe(body))
            return 0
        if action == "retrain":
            if not (body.get("spec") or {}).get("retraining"):
                print(f"modelops: {name} has no spec.retraining: there is no Job to start",
                      file=sys.stderr)  # fmt: skip
                return 1
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            annotations[RETRAIN_ANNOTATION] = f"{stamp} {reason or ''}".strip()
        if action == "promote":
            canary = (status.get("canary") or {}).get("version")
            if not status.get("canary"):
                print(f"modelops: {name} has no rollout in flight to promote", file=sys.stderr)
                return 1
            annotations[PROMOTE_ANNOTATION] = _stamp(version or canary)
        elif action == "rollback":
            annotations[ROLLBACK_ANNOTATION] = _stamp(version)
        elif action == "pause":
            annotations[PAUSED_ANNOTATION] = "true"
        elif action == "resume":
            annotations[PAUSED_ANNOTATION] = None
        elif action == "retry":
            rejected = [r.get("version") for r in status.get("rejectedVersions", [])]
            if version is None and not rejected:
                print(f"modelops: {name} has no rejected version to retry", file=sys.stderr)
                return 1
            annotations[RETRY_ANNOTATION] = _stamp(version or rejected[-1])
        await api.merge_patch(path, {"metadata": {"annotations": annotations}})
        print(f"{action} requested for {namespace}/{name}")
        return 0
    except ApiError as error:
        print(
            f"modelops: the API server refused ({error.status}): {error.message}", file=sys.stderr
        )
        return 1
    finally:
        await api.close()


def main(command: Command) -> int:
    try:
        return asyncio.run(run(command))
    except KeyboardInterrupt:
        return 0  # Ctrl-C ends `status --watch`
