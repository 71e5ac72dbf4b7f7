"""High availability on the real control plane: two replicas of the default shard compete for
its Lease; the standby opens no watch and writes nothing until it leads. SIGKILL the leader in
the middle of a canary's failing analysis and in the middle of a retraining decision: the
standby takes over within the lease duration, resumes, and the API server's audit log shows
exactly one rollback and one Job, each replica writing only while it led."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from mlflow import MlflowClient

from modelops.core.leases import lease_name
from modelops_dev.control_plane import OPERATOR_USER, READ_VERBS, ControlPlane
from modelops_dev.servers import MlflowServer, Prometheus
from tests.conftest import MEASURED
from tests.integration.conftest import Operator, holds, wait_for
from tests.integration.helpers import (
    ERRORS,
    MD,
    Traffic,
    events,
    serve_first_version,
    status,
    train,
)
from tests.integration.test_retraining import TRAINER, deployment, first_version, jobs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the local cluster needs root")

LEASE_SECONDS = 4  # short for the test; the chart's default is client-go's 15 s
LEASE = lease_name(None)


class Replicas:
    """Two `modelops run --leader-elect` processes of the default shard."""

    def __init__(self, plane: ControlPlane, folder: Path, namespace: str) -> None:
        flags = ("--leader-elect", "--leader-election-namespace", namespace,
                 "--leader-elect-lease-duration", str(LEASE_SECONDS),
                 "--leader-elect-renew-deadline", "3", "--leader-elect-retry-period", "0.5")  # fmt: skip
        self.namespace = namespace
        self.all = [Operator(plane, folder / f"replica-{i}.log", *flags) for i in range(2)]

    def identity(self, replica: Operator) -> str:
        """Its identity, from the line it logs when it starts competing."""
        found = re.search(r"Waiting for lease \S+ as (\S+)", replica.log.read_text())
        assert found, replica.tail()
        return found.group(1)

    def leader(self, coordination: client.CoordinationV1Api) -> Operator | None:
        try:
            lease = coordination.read_namespaced_lease(LEASE, self.namespace)
        except client.ApiException:
            return None
        holder = lease.spec.holder_identity
        running = [r for r in self.all if r.process is not None]
        return next((r for r in running if self.identity(r) == holder), None)


@pytest.fixture
def replicas(
    no_session_operator: None, control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> Iterator[Replicas]:
    made = Replicas(control_plane, tmp_path, namespace)
    try:
        for replica in made.all:
            replica.start()
        yield made
    finally:
        for replica in made.all:
            replica.stop()


@pytest.fixture
def coordination(api_client: client.ApiClient) -> client.CoordinationV1Api:
    return client.CoordinationV1Api(api_client)


def audit(plane: ControlPlane) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in plane.audit_log.read_text().splitlines()]
    return [e for e in entries if e["user"]["username"] == OPERATOR_USER]


def received(entry: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(entry["requestReceivedTimestamp"].replace("Z", "+00:00"))


def agent(identity: str) -> str:
    return f"modelops shard=default replica={identity}"


def take_over(replicas: Replicas, coordination: client.CoordinationV1Api) -> tuple[str, str, float]:
    """SIGKILL the leader: the identities of the old and new leader, and the seconds from the
    kill to the standby's holding the lease."""
    leader = wait_for(lambda: replicas.leader(coordination), timeout=30, what="a leader")
    [standby] = [r for r in replicas.all if r is not leader]
    first, second = replicas.identity(leader), replicas.identity(standby)
    killed = time.monotonic()
    leader.kill()
    wait_for(lambda: replicas.leader(coordination) is standby, timeout=LEASE_SECONDS * 3,
             interval=0.1, what="the standby to take the lease")  # fmt: skip
    return first, second, time.monotonic() - killed


def assert_one_writer_at_a_time(
    plane: ControlPlane, namespace: str, first: str, second: str
) -> None:
    """Before the second replica's lease write that took over, only the first replica wrote
    (the second did not even watch); from it on, only the second: never two writers."""
    entries = audit(plane)
    took_over_at = min(
        received(e) for e in entries
        if e.get("userAgent") == agent(second) and e["verb"] in ("create", "update")
        and (e.get("objectRef") or {}).get("resource") == "leases"
        and e["responseStatus"]["code"] in (200, 201)
    )  # fmt: skip
    for entry in entries:
        ref = entry.get("objectRef") or {}
        if ref.get("resource") == "leases" or entry.get("userAgent") not in (
            agent(first),
            agent(second),
        ):
            continue  # fmt: skip
        in_namespace = ref.get("namespace") == namespace
        writer = agent(second) if received(entry) >= took_over_at else agent(first)
        if entry["verb"] not in READ_VERBS and in_namespace:
            assert entry["userAgent"] == writer, f"{entry['userAgent']} wrote while not leading"
        if entry["userAgent"] == agent(second) and received(entry) < took_over_at:
            raise AssertionError(f"the standby sent {entry['verb']} {ref} before it led")


@pytest.mark.timeout(900)
def test_the_standby_takes_over_a_failing_canary_and_rolls_it_back_once(
    replicas: Replicas,
    serving_cluster: str,
    control_plane: ControlPlane,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    coordination: client.CoordinationV1Api,
    namespace: str,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    name = "iris"
    first = serve_first_version(
        custom, mlflow_server, prometheus, namespace, name, tmp_path, [ERRORS]
    )
    leader = replicas.leader(coordination)
    assert leader is not None
    [standby] = [r for r in replicas.all if r is not leader]
    assert leader.metric("modelops_leader") == 1 and standby.metric("modelops_leader") == 0
    first_identity, second_identity = replicas.identity(leader), replicas.identity(standby)

    with Traffic(serving_cluster, f"{name}.{namespace}.test", name):
        flaky = train(mlflow_server, name, "flaky", tmp_path)
        MlflowClient(mlflow_server.url).set_registered_model_alias(
            name, "champion", flaky["version"]
        )

        def first_failure() -> bool:
            return bool((status(custom, namespace, name).get("analysis") or {}).get("failures"))

        wait_for(first_failure, timeout=240, interval=0.25, what="the first failing verdict")
        old, new, takeover = take_over(replicas, coordination)
        assert (old, new) == (first_identity, second_identity)
        record_property(
            MEASURED, f"takeover {takeover:.1f} s after SIGKILL (lease {LEASE_SECONDS} s)"
        )
        assert takeover <= LEASE_SECONDS + 2.5

        def rolled_back() -> Any:
            found = status(custom, namespace, name)
            return found if found.get("phase") == "RolledBack" else None

        found = wait_for(rolled_back, timeout=90, interval=0.25, what="the rollback")
    assert found["stable"]["version"] == first["version"]
    assert [h["event"] for h in found["history"]].count("RolledBack") == 1
    assert [r["version"] for r in found["rejectedVersions"]] == [flaky["version"]]
    wait_for(lambda: events(core, namespace, "RolledBack"), timeout=20, what="the RolledBack Event")
    rolled = events(core, namespace, "RolledBack")
    holds(lambda: len(events(core, namespace, "RolledBack")) == 1, 5,
          f"one RolledBack Event: {[(e.message, e.count) for e in rolled]}")  # fmt: skip
    assert standby.metric("modelops_leader") == 1
    assert_one_writer_at_a_time(control_plane, namespace, first_identity, second_identity)


@pytest.mark.timeout(600)
def test_the_standby_creates_the_job_the_lost_leader_decided_exactly_once(
    replicas: Replicas,
    serving_cluster: str,
    control_plane: ControlPlane,
    mlflow_server: MlflowServer,
    prometheus: Prometheus,
    custom: client.CustomObjectsApi,
    core: client.CoreV1Api,
    coordination: client.CoordinationV1Api,
    api_client: client.ApiClient,
    namespace: str,
    record_property: Callable[[str, object], None],
) -> None:
    """The leader records the retraining decision but the API server refuses its Job (a quota
    of zero Jobs); it is SIGKILLed in that state and the quota lifted: the new leader creates
    the Job named in status, once."""
    name = "retrained"
    first_version(mlflow_server, name)
    quota = {"metadata": {"name": "no-jobs"}, "spec": {"hard": {"count/jobs.batch": "0"}}}
    core.create_namespaced_resource_quota(namespace, quota)
    wait_for(lambda: core.read_namespaced_resource_quota("no-jobs", namespace).status.hard,
             timeout=30, what="the quota to be in force")  # fmt: skip
    body = deployment(name, mlflow_server, prometheus, TRAINER)
    custom.create_namespaced_custom_object(*MD, namespace, "modeldeployments", body)

    def decided() -> Any:
        found = status(custom, namespace, name).get("retraining") or {}
        return found.get("current") if found.get("phase") == "Running" else None

    current = wait_for(decided, timeout=240, interval=0.5, what="the firing to be recorded")
    batch = client.BatchV1Api(api_client)
    assert jobs(batch, namespace) == []
    old, new, takeover = take_over(replicas, coordination)
    record_property(MEASURED, f"takeover {takeover:.1f} s after SIGKILL (lease {LEASE_SECONDS} s)")
    assert takeover <= LEASE_SECONDS + 2.5
    core.delete_namespaced_resource_quota("no-jobs", namespace)
    [job] = wait_for(lambda: jobs(batch, namespace), timeout=120, interval=1,
                     what="the Job from the new leader")  # fmt: skip
    assert job.metadata.name == current["job"]
    holds(lambda: len(jobs(batch, namespace)) == 1, 10, "no second Job")
    creates = [e for e in audit(control_plane) if e["verb"] == "create"
               and (e.get("objectRef") or {}).get("resource") == "jobs"
               and e["objectRef"].get("namespace") == namespace
               and e["responseStatus"]["code"] == 201]  # fmt: skip
    assert [e["userAgent"] for e in creates] == [agent(new)]
    assert_one_writer_at_a_time(control_plane, namespace, old, new)
