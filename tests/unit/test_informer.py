"""The operator's list-then-watch against a local HTTP server playing the API server's list and
watch protocol: pages, resumed watches, bookmarks, 410 Gone (a new list, whose differences are
reported), 401 (a new login); the keyed queue; namespace patterns; Events."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from modelops.adapters.kubernetes import Connection, KubernetesApi
from modelops.controller.config import OperatorConfig
from modelops.controller.events import MESSAGE_LIMIT, EventRecorder
from modelops.controller.informer import Informer, KeyedQueue
from modelops.controller.watches import Watches, namespace_matches, owning_deployment
from modelops.core.decision import EventIntent
from modelops.core.sharding import Shard

PATH = "/apis/example.io/v1/things"


def thing(name: str, version: int, namespace: str = "ns") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": str(version)}}


@dataclass
class FakeApiServer:
    """Objects by name; each watch request is answered by the next scripted stream (a list of
    events, or an HTTP status), then the connection ends."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    version: int = 10
    streams: list[list[dict[str, Any]] | int] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    posted: list[dict[str, Any]] = field(default_factory=list)
    list_status: list[int] = field(default_factory=list)
    idle_watch_seconds: float = 0.2
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    post_delay: float = 0.0
    posting: int = 0
    most_posting_at_once: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        query = dict(request.query)
        self.requests.append({"path": request.path, **query})
        if request.method == "POST":
            self.posting += 1
            self.most_posting_at_once = max(self.most_posting_at_once, self.posting)
            await asyncio.sleep(self.post_delay)
            self.posted.append(await request.json())
            self.posting -= 1
            return web.json_response({}, status=201)
        if query.get("watch") == "true":
            return await self._watch(request)
        if self.list_status:
            status = self.list_status.pop(0)
            return web.json_response({"reason": "Unauthorized", "message": "no"}, status=status)
        names = sorted(self.objects)
        start = int(query.get("continue", "0"))
        limit = int(query.get("limit", "1000"))
        page = names[start : start + limit]
        metadata: dict[str, Any] = {"resourceVersion": str(self.version)}
        if start + limit < len(names):
            metadata["continue"] = str(start + limit)
        return web.json_response({"items": [self.objects[n] for n in page], "metadata": metadata})

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        script: list[dict[str, Any]] | int = self.streams.pop(0) if self.streams else []
        if not script:
            # Nothing scripted: the server ends an idle watch after a while.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), self.idle_watch_seconds)
        if isinstance(script, int):
            return web.json_response({"reason": "Gone", "message": "too old"}, status=script)
        response = web.StreamResponse()
        await response.prepare(request)
        for event in script:
            # Split one event across two writes: lines are reassembled from chunks.
            line = json.dumps(event).encode() + b"\n"
            await response.write(line[:7])
            await response.write(line[7:])
        await response.write_eof()
        return response


@contextlib.asynccontextmanager
async def api_server() -> AsyncIterator[tuple[FakeApiServer, KubernetesApi]]:
    fake = FakeApiServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    api = KubernetesApi(Connection(f"http://127.0.0.1:{port}", insecure=True))
    try:
        yield fake, api
    finally:
        fake.closing.set()
        await api.close()
        await runner.cleanup()


async def until(check: Callable[[], bool], what: str, within: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(informer: Informer) -> AsyncIterator[None]:
    task = asyncio.get_running_loop().create_task(informer.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def lists_sent(fake: FakeApiServer) -> list[dict[str, str]]:
    return [r for r in fake.requests if r.get("watch") != "true"]


def recorder() -> tuple[list[tuple[str, str, str]], Callable[[str, dict[str, Any]], None]]:
    seen: list[tuple[str, str, str]] = []

    def on_change(kind: str, body: dict[str, Any]) -> None:
        seen.append((kind, body["metadata"]["name"], body["metadata"].get("resourceVersion", "")))

    return seen, on_change


async def test_lists_in_pages_then_follows_the_watch() -> None:
    async with api_server() as (fake, api):
        fake.objects = {n: thing(n, 5) for n in ("a", "b", "c")}
        fake.streams = [
            [
                {"type": "MODIFIED", "object": thing("a", 11)},
                {"type": "ADDED", "object": thing("d", 12)},
                {"type": "DELETED", "object": thing("b", 13)},
            ]
        ]
        seen, on_change = recorder()
        informer = Informer(lambda: api, PATH, on_change, selector="x=y", keep=dict, page_size=2)
        async with running(informer):
            await until(lambda: len(seen) == 6, "three listed and three watched changes")
        assert seen == [
            ("ADDED", "a", "5"), ("ADDED", "b", "5"), ("ADDED", "c", "5"),
            ("MODIFIED", "a", "11"), ("ADDED", "d", "12"), ("DELETED", "b", "13"),
        ]  # fmt: skip
        assert informer.synced.is_set()
        assert informer.get(("ns", "a")) == thing("a", 11)
        assert informer.get(("ns", "b")) is None
        assert all(informer.get(("ns", name)) is not None for name in ("a", "c", "d"))
        assert [r.get("continue") for r in lists_sent(fake)] == [None, "2"]
        assert all(r["labelSelector"] == "x=y" for r in fake.requests)
        watch = next(r for r in fake.requests if r.get("watch") == "true")
        assert watch["resourceVersion"] == "10"
        assert watch["allowWatchBookmarks"] == "true"


async def test_a_watch_that_ends_resumes_from_the_last_version_or_bookmark() -> None:
    async with api_server() as (fake, api):
        fake.objects = {"a": thing("a", 5)}
        fake.streams = [
            [{"type": "MODIFIED", "object": thing("a", 11)}],
            [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "40"}}}],
            [{"type": "MODIFIED", "object": thing("a", 41)}],
        ]
        seen, on_change = recorder()
        informer = Informer(lambda: api, PATH, on_change)
        async with running(informer):
            await until(lambda: ("MODIFIED", "a", "41") in seen, "the third stream's change")
        watches = [r["resourceVersion"] for r in fake.requests if r.get("watch") == "true"]
        assert watches[:3] == ["10", "11", "40"]
        # A bookmark moves the version on without reporting anything.
        assert seen == [("ADDED", "a", "5"), ("MODIFIED", "a", "11"), ("MODIFIED", "a", "41")]
        assert len(lists_sent(fake)) == 1


@pytest.mark.parametrize("gone", ["as a status", "as an ERROR event"])
async def test_after_410_gone_a_new_list_reports_only_the_differences(gone: str) -> None:
    async with api_server() as (fake, api):
        fake.objects = {n: thing(n, 5) for n in ("kept", "changed", "deleted")}
        error = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Gone"}}
        seen, on_change = recorder()
        informer = Informer(lambda: api, PATH, on_change, keep=dict)
        async with running(informer):
            await until(lambda: len(seen) == 3, "the first list taken in")
            # While the watch was gone: one object changed, one deleted, one created.
            fake.objects["changed"] = thing("changed", 20)
            del fake.objects["deleted"]
            fake.objects["new"] = thing("new", 21)
            fake.version = 22
            fake.streams.append(410 if gone == "as a status" else [error])
            await until(lambda: ("DELETED", "deleted", "5") in seen, "a second list after 410")
        assert seen[3:] == [("ADDED", "changed", "20"), ("ADDED", "new", "21"),
                            ("DELETED", "deleted", "5")]  # fmt: skip
        assert len(lists_sent(fake)) == 2
        assert informer.get(("ns", "deleted")) is None
        assert informer.get(("ns", "changed")) == thing("changed", 20)


async def test_a_401_logs_in_again_and_other_failures_back_off() -> None:
    async with api_server() as (fake, api):
        fake.objects = {"a": thing("a", 5)}
        fake.list_status = [401]
        logins: list[int] = []

        async def relogin() -> None:
            logins.append(1)

        seen, on_change = recorder()
        informer = Informer(lambda: api, PATH, on_change, relogin=relogin)
        async with running(informer):
            await until(informer.synced.is_set, "a list after the new login", within=10)
        assert logins == [1]
        assert seen == [("ADDED", "a", "5")]


async def test_the_queue_runs_one_worker_per_key_and_coalesces_changes() -> None:
    processed: list[tuple[str, str]] = []
    gate = asyncio.Event()

    async def process(key: tuple[str, str]) -> None:
        processed.append(key)
        if key == ("ns", "slow"):
            await gate.wait()
        if key == ("ns", "broken"):
            raise RuntimeError("a bug in one reconcile")

    queue = KeyedQueue(process)
    queue.add(("ns", "slow"))
    await until(lambda: processed == [("ns", "slow")], "the first run")
    for _ in range(3):  # three changes while the first run is busy
        queue.add(("ns", "slow"))
    queue.add(("ns", "other"))
    queue.add(("ns", "broken"))
    await until(lambda: ("ns", "other") in processed, "another key, not held up")
    gate.set()
    await until(lambda: queue.busy() == 0, "the queue to drain")
    assert processed.count(("ns", "slow")) == 2
    assert processed.count(("ns", "broken")) == 1
    queue.add(("ns", "broken"))  # a failure does not wedge the key
    await until(lambda: processed.count(("ns", "broken")) == 2, "the key processed again")
    await queue.stop()


@pytest.mark.parametrize(
    ("name", "patterns", "watched"),
    [
        ("team-a", ("team-*",), True),
        ("team-a", ("team-*", "!team-a"), False),
        ("other", ("team-*",), False),
        ("other", ("!team-*",), True),
        ("team-b", ("team-?", "prod"), True),
    ],
)
def test_namespace_patterns_follow_kopf(
    name: str, patterns: tuple[str, ...], watched: bool
) -> None:
    assert namespace_matches(name, patterns) is watched


def test_only_a_controlling_model_deployment_owns() -> None:
    def body(*references: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"namespace": "ns", "ownerReferences": list(references)}}

    owner = {"kind": "ModelDeployment", "name": "m", "controller": True}
    assert owning_deployment(body(owner)) == ("ns", "m")
    assert owning_deployment(body({**owner, "controller": False})) is None
    assert owning_deployment(body({**owner, "kind": "Deployment"})) is None
    assert owning_deployment({"metadata": {}}) is None


async def test_events_name_the_deployment_and_are_cut_to_the_api_servers_limit() -> None:
    async with api_server() as (fake, api):
        events = EventRecorder(lambda: api)
        deployment = {"metadata": {"name": "m", "namespace": "ns", "uid": "u-1"}}
        events.post(deployment, EventIntent("Warning", "RolledBack", "x" * 5000))
        await events.flush()
        (event,) = fake.posted
        assert fake.requests[-1]["path"] == "/api/v1/namespaces/ns/events"
        assert event["involvedObject"] == {
            "apiVersion": "modelops.io/v1alpha1", "kind": "ModelDeployment",
            "name": "m", "namespace": "ns", "uid": "u-1", "resourceVersion": None,
        }  # fmt: skip
        assert (event["type"], event["reason"]) == ("Warning", "RolledBack")
        assert len(event["message"]) == MESSAGE_LIMIT
        assert event["metadata"] == {"generateName": "m.", "namespace": "ns"}


async def test_events_go_one_at_a_time_in_order_and_a_full_queue_drops_the_newest() -> None:
    async with api_server() as (fake, api):
        fake.post_delay = 0.02
        events = EventRecorder(lambda: api, queue_limit=5)
        deployment = {"metadata": {"name": "m", "namespace": "ns"}}
        for number in range(8):  # the sender has taken none yet: 5 queue, 3 are dropped
            events.post(deployment, EventIntent("Normal", "Step", f"step {number}"))
        await events.flush()
        assert [e["message"] for e in fake.posted] == [f"step {n}" for n in range(5)]
        assert events.dropped == 3
        assert fake.most_posting_at_once == 1
        # The sender starts again after a flush.
        events.post(deployment, EventIntent("Normal", "Step", "later"))
        await events.flush()
        assert fake.posted[-1]["message"] == "later"


class RecordingReconciler:
    """What the watches call on the reconciler, recorded."""

    def __init__(self) -> None:
        self.known: set[tuple[str, str]] = set()
        self.reconciled: list[tuple[str, str]] = []
        self.services_seen: list[Any] = []

    def observe_deployment(self, body: dict[str, Any], deleted: bool = False) -> tuple[str, str]:
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        (self.known.discard if deleted else self.known.add)(key)
        return key

    def observe_inference_service_deleted(self, body: dict[str, Any]) -> None:
        pass

    def knows(self, key: tuple[str, str]) -> bool:
        return key in self.known

    async def reconcile(self, key: tuple[str, str], services: Any, jobs: Any) -> None:
        self.reconciled.append(key)
        self.services_seen.append(services(key))


async def test_a_namespaces_deployments_are_listed_after_its_services_and_jobs() -> None:
    async with api_server() as (fake, api):
        fake.objects = {"m": thing("m", 5)}
        # Watches stay open far longer than the test: the deployments may not wait for them
        # to end, only for the first lists of services and Jobs.
        fake.idle_watch_seconds = 60
        reconciler = RecordingReconciler()
        config = OperatorConfig(namespaces=("ns",), shard=Shard("s1"))
        watches = Watches(lambda: api, reconciler, config)  # type: ignore[arg-type]
        watches.start()
        try:
            await until(watches.synced, "every watch listed")
            await until(
                lambda: reconciler.reconciled == [("ns", "m")], "the deployment's reconcile"
            )
        finally:
            await watches.stop()
        lists = lists_sent(fake)
        kinds = [r["path"].rsplit("/", 1)[1] for r in lists]
        assert len(kinds) == 4, kinds
        assert kinds.index("modeldeployments") > max(
            kinds.index("inferenceservices"), kinds.index("jobs")
        ), kinds
        assert "httproutes" in kinds  # watched for deletions; nothing waits for them
        assert all(r["path"].startswith(("/apis/serving.kserve.io/v1beta1/namespaces/ns/",
                                          "/apis/batch/v1/namespaces/ns/",
                                          "/apis/gateway.networking.k8s.io/v1/namespaces/ns/",
                                          "/apis/modelops.io/v1alpha1/namespaces/ns/"))
                   for r in lists)  # fmt: skip
        selectors = {r["path"].rsplit("/", 1)[1]: r["labelSelector"] for r in lists}
        assert selectors["modeldeployments"] == "modelops.io/shard=s1"
        for owned in ("inferenceservices", "jobs", "httproutes"):
            assert selectors[owned] == "app.kubernetes.io/managed-by=modelops,modelops.io/shard=s1"
        # The fake answers every list with the same object: the deployment's service is found.
        assert reconciler.services_seen[0]["metadata"]["name"] == "m"
