"""Kubernetes Events about ModelDeployments, posted in the background by one sender, as
client-go's event broadcaster does: a reconcile never waits on them, and in a burst they queue
behind the writes that matter instead of competing with them for the API server. A failed post
is logged, not retried, and a full queue drops the newest: Events are a courtesy, the status is
the record."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp

from modelops.adapters.kubernetes import ApiError, KubernetesApi
from modelops.api.resource import GROUP, VERSION
from modelops.core.decision import EventIntent

logger = logging.getLogger("modelops.events")

COMPONENT = "modelops"
MESSAGE_LIMIT = 1024  # the API server refuses longer Event messages
QUEUE_LIMIT = 1000  # client-go's broadcaster keeps as many


class EventRecorder:
    def __init__(self, api: Callable[[], KubernetesApi], queue_limit: int = QUEUE_LIMIT) -> None:
        self._api = api
        self._instance = socket.gethostname()
        self._queue: asyncio.Queue[tuple[Mapping[str, Any], EventIntent]] = asyncio.Queue(
            queue_limit
        )
        self._sender: asyncio.Task[None] | None = None
        self.dropped = 0

    def post(self, body: Mapping[str, Any], event: EventIntent) -> None:
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send())
        try:
            self._queue.put_nowait((body, event))
        except asyncio.QueueFull:
            self.dropped += 1
            logger.warning("Event queue full: dropped %s for %s", event.reason,
                           (body.get("metadata") or {}).get("name"))  # fmt: skip

    async def _send(self) -> None:
        while True:
            body, event = await self._queue.get()
            try:
                await self._post(body, event)
            finally:
                self._queue.task_done()

    async def _post(self, body: Mapping[str, Any], event: EventIntent) -> None:
        metadata = body.get("metadata") or {}
        namespace = metadata.get("namespace", "default")
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        message = event.message
        if len(message) > MESSAGE_LIMIT:
            message = message[: MESSAGE_LIMIT - 3] + "..."
        manifest = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{metadata.get('name', 'modeldeployment')}.",
                         "namespace": namespace},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ModelDeployment",
                "name": metadata.get("name"),
                "namespace": namespace,
                "uid": metadata.get("uid"),
                "resourceVersion": metadata.get("resourceVersion"),
            },
            "type": event.type,
            "reason": event.reason,
            "message": message,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }  # fmt: skip
        try:
            await self._api().request(
                "POST", f"/api/v1/namespaces/{namespace}/events", body=manifest
            )
        except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as error:
            logger.warning("Could not post Event %s for %s/%s: %s", event.reason, namespace,
                           metadata.get("name"), error)  # fmt: skip

    async def flush(self, within: float = 5.0) -> None:
        """Send the Events still queued (for a few seconds at most), then stop the sender: at
        shutdown."""
        if self._sender is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), within)
        self._sender.cancel()
        await asyncio.gather(self._sender, return_exceptions=True)
        self._sender = None
