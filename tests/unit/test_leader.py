"""The elector (controller/leader.py) against an in-memory Lease store with the API server's
compare-and-swap on resourceVersion; its clock is the test's."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from modelops.adapters.kubernetes import ApiError, Connection, KubernetesApi, NotLeadingError
from modelops.controller.leader import LeaderElector
from modelops.core.leases import LeaseTiming

TIMING = LeaseTiming(lease_duration=15, renew_deadline=10, retry_period=2)
PATH = "/apis/coordination.k8s.io/v1/namespaces/modelops/leases/modelops-shard"


class LeaseStore:
    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.writes: list[tuple[str, str | None]] = []


class Client:
    """One replica's connection to the store; `cut_off` makes it a partitioned replica."""

    def __init__(self, store: LeaseStore) -> None:
        self.store = store
        self.cut_off = False

    async def get(self, path: str) -> dict[str, Any] | None:
        assert path == PATH
        if self.cut_off:
            raise OSError("connection refused")
        return copy.deepcopy(self.store.lease)

    async def request(self, method: str, path: str, *, body: Any, fenced: bool) -> Any:
        assert not fenced, "the lease is written past the fence"
        if self.cut_off:
            raise OSError("connection refused")
        store = self.store
        if method == "POST":
            if store.lease is not None:
                raise ApiError(409, "AlreadyExists", "leases already exists")
        elif body["metadata"].get("resourceVersion") != str(store.version):
            raise ApiError(409, "Conflict", "the object has been modified")
        store.version += 1
        store.lease = {**copy.deepcopy(body), "metadata": {
            **body["metadata"], "resourceVersion": str(store.version)}}  # fmt: skip
        store.writes.append((method, body["spec"]["holderIdentity"]))
        return copy.deepcopy(store.lease)


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def elector(
    store: LeaseStore,
    identity: str,
    clock: Callable[[], float],
    log: list[str],
    timing: LeaseTiming = TIMING,
) -> tuple[LeaderElector, Client]:
    client = Client(store)
    made = LeaderElector(
        lambda: client,  # type: ignore[arg-type,return-value]
        "modelops",
        "modelops-shard",
        identity,
        timing,
        started=lambda: log.append(f"{identity} started"),
        stopped=lambda: log.append(f"{identity} stopped"),
        clock=clock,
    )
    return made, client


async def test_the_first_replica_creates_the_lease_and_the_second_stands_by() -> None:
    store, clock, log = LeaseStore(), Clock(), []
    a, _ = elector(store, "a", clock, log)
    b, _ = elector(store, "b", clock, log)
    await a.attempt()
    await b.attempt()
    assert log == ["a started"]
    assert a.is_leading() and not b.is_leading()
    assert store.lease is not None and store.lease["spec"]["holderIdentity"] == "a"
    assert store.writes == [("POST", "a")]


async def test_a_standby_takes_over_only_after_the_lease_went_unrenewed_for_its_duration() -> None:
    store, clock, log = LeaseStore(), Clock(), []
    a, a_client = elector(store, "a", clock, log)
    b, _ = elector(store, "b", clock, log)
    await a.attempt()
    await b.attempt()  # b first sees a's record now
    a_client.cut_off = True  # a is partitioned: it can no longer renew
    clock.now += TIMING.renew_deadline
    assert not a.is_leading(), "a stops writing at its renew deadline"
    clock.now += TIMING.lease_duration - TIMING.renew_deadline - 0.1
    await b.attempt()
    assert not b.is_leading(), "b still waits: a's lease has not run out from b's sight of it"
    clock.now += 0.1
    await b.attempt()
    assert b.is_leading()
    assert store.lease is not None and store.lease["spec"]["holderIdentity"] == "b"
    assert store.lease["spec"]["leaseTransitions"] == 1
    assert log == ["a started", "b started"]


async def test_renewals_keep_the_standby_waiting() -> None:
    store, clock, log = LeaseStore(), Clock(), []
    a, _ = elector(store, "a", clock, log)
    b, _ = elector(store, "b", clock, log)
    for _ in range(20):
        await a.attempt()
        await b.attempt()
        clock.now += TIMING.retry_period
        assert a.is_leading() and not b.is_leading()
    assert [holder for _, holder in store.writes] == ["a"] * 20


async def test_two_candidates_on_the_same_read_cannot_both_take_a_released_lease() -> None:
    store, clock, log = LeaseStore(), Clock(), []
    a, _ = elector(store, "a", clock, log)
    await a.attempt()
    await a.release()
    assert not a.is_leading()
    assert store.lease is not None and store.lease["spec"]["holderIdentity"] is None
    b, b_client = elector(store, "b", clock, log)
    c, c_client = elector(store, "c", clock, log)
    stale = await b_client.get(PATH)

    async def stale_read(path: str) -> dict[str, Any] | None:
        return copy.deepcopy(stale)

    c_client.get = stale_read  # type: ignore[method-assign]
    await b.attempt()
    with pytest.raises(ApiError) as refused:
        await c.attempt()
    assert refused.value.status == 409
    assert b.is_leading() and not c.is_leading()


async def test_a_leader_that_cannot_renew_stops_within_its_deadline() -> None:
    timing = LeaseTiming(lease_duration=0.6, renew_deadline=0.4, retry_period=0.05)
    store, log = LeaseStore(), []
    a, client = elector(store, "a", asyncio.get_running_loop().time, log, timing)
    running = asyncio.create_task(a.run())
    await wait_until(lambda: log == ["a started"])
    client.cut_off = True
    await asyncio.wait_for(running, 5)
    assert log == ["a started", "a stopped"]
    assert not a.is_leading()


async def test_writes_are_refused_before_sending_when_the_fence_is_closed() -> None:
    received: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        received.append(request.method)
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    leading = False
    api = KubernetesApi(Connection(server=str(server.make_url("/"))), may_write=lambda: leading)
    try:
        await api.get("/api/v1/namespaces/default/pods/x")
        with pytest.raises(NotLeadingError):
            await api.merge_patch("/api/v1/namespaces/default/pods/x", {"a": 1})
        with pytest.raises(NotLeadingError):
            await api.apply("/api/v1/namespaces/default/pods/x", {"a": 1})
        await api.request("PUT", PATH, body={}, fenced=False)
        leading = True
        await api.merge_patch("/api/v1/namespaces/default/pods/x", {"a": 1})
        assert received == ["GET", "PUT", "PATCH"]
    finally:
        await api.close()
        await server.close()


async def wait_until(condition: Any, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
