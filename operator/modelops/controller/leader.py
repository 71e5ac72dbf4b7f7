"""Leader election for the replicas of one shard (the decisions are core/leases.py's).

The elector reads and writes its shard's Lease every retry period. Until it holds the lease
the replica opens no watches and every write is refused before it is sent (the API client
asks `is_leading` first); once it stops leading it never leads again in this process: the
caller stops the operator and the pod restarts as a standby, as controller-runtime does.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
from prometheus_client import Gauge

from modelops.adapters.kubernetes import ApiError, KubernetesApi, namespaced_path
from modelops.core.leases import (
    LeaseTiming,
    Sighting,
    Step,
    decide,
    lease_spec,
    released_spec,
    sighting,
    still_leading,
)

logger = logging.getLogger("modelops.leader")

LEADING = Gauge(
    "modelops_leader", "1 while this replica holds its shard's lease (and may write), else 0."
)
TRANSIENT = (ApiError, aiohttp.ClientError, OSError, TimeoutError)


def micro_time(now: datetime | None = None) -> str:
    """A MicroTime as the API server writes it."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        api: Callable[[], KubernetesApi],
        namespace: str,
        name: str,
        identity: str,
        timing: LeaseTiming,
        *,
        started: Callable[[], None],
        stopped: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._api = api
        self._path = namespaced_path("coordination.k8s.io", "v1", "leases", namespace, name)
        self._collection = self._path.rsplit("/", 1)[0]
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.timing = timing
        self._started = started
        self._stopped = stopped
        self._clock = clock
        self._seen: Sighting | None = None
        self._renewed_at: float | None = None
        self._lease: dict[str, Any] | None = None
        self._led = False

    def is_leading(self) -> bool:
        """The write fence: true only within the renew deadline of the last renewal sent."""
        return still_leading(self._renewed_at, self._clock(), self.timing)

    async def run(self) -> None:
        """Compete, lead, and return once leadership is lost (never after it is gained twice)."""
        logger.info("Waiting for lease %s/%s as %s", self.namespace, self.name, self.identity)
        while True:
            try:
                # One attempt may not outlast the deadline it is meant to meet.
                await asyncio.wait_for(self.attempt(), self.timing.renew_deadline)
            except TRANSIENT as error:
                logger.warning("Lease %s/%s not renewed: %s", self.namespace, self.name, error)
            if self._led and not self.is_leading():
                LEADING.set(0)
                logger.error(
                    "Lost lease %s/%s (no renewal within %s s): stopping",
                    self.namespace, self.name, self.timing.renew_deadline,
                )  # fmt: skip
                self._stopped()
                return
            pause = self.timing.retry_period
            if not self._led:
                pause *= 1 + random.random() * 0.2  # candidates spread out, as client-go
            await asyncio.sleep(pause)

    async def attempt(self) -> None:
        """One look at the lease: create, renew or take it over if the rules allow."""
        api = self._api()
        lease = await api.get(self._path)
        now = self._clock()
        if lease is None:
            self._seen = None
        else:
            version = str(lease["metadata"].get("resourceVersion", ""))
            self._seen = sighting(self._seen, lease.get("spec") or {}, version, now)
        step = decide(self.identity, self._seen, now)
        if step is Step.WAIT:
            return
        current = (lease or {}).get("spec") or {}
        spec = lease_spec(step, self.identity, current, micro_time(), self.timing)
        sent_at = self._clock()
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": spec,
            }
            written = await api.request("POST", self._collection, body=body, fenced=False)
        else:
            # The resourceVersion makes it a compare-and-swap: of two candidates acting on
            # the same read, one gets 409 Conflict.
            body = {**lease, "spec": spec}
            written = await api.request("PUT", self._path, body=body, fenced=False)
        self._renewed_at = sent_at
        self._lease = written
        version = str((written.get("metadata") or {}).get("resourceVersion", ""))
        self._seen = Sighting(written.get("spec") or spec, version, sent_at)
        if not self._led:
            self._led = True
            LEADING.set(1)
            logger.info(
                "Leading shard lease %s/%s as %s (%s)",
                self.namespace, self.name, self.identity, step.value,
            )  # fmt: skip
            self._started()

    async def release(self) -> None:
        """On a clean stop: hand the lease on at once instead of after its duration."""
        if self._lease is None or not self.is_leading():
            return
        self._renewed_at = None  # stop writing first
        LEADING.set(0)
        body = {**self._lease, "spec": released_spec(self._lease.get("spec") or {}, micro_time())}
        try:
            await self._api().request("PUT", self._path, body=body, fenced=False)
            logger.info("Released lease %s/%s", self.namespace, self.name)
        except TRANSIENT as error:
            logger.warning("Lease %s/%s not released: %s", self.namespace, self.name, error)
