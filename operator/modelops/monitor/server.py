"""`modelops monitor`: the HTTP face of the monitor.

    POST /          CloudEvents from KServe's inference logger (binary or structured mode)
    POST /feedback  ground truth for a logged prediction: {"id": ce-id, "label": x} or
                    {"id": ..., "labels": [...]} with `Authorization: Bearer <token>`
    GET  /metrics   drift, quality and the monitor's own counters, for Prometheus
    GET  /healthz

Every refusal is a 4xx that says what is wrong and a count in
modelops_monitor_dropped_total{reason}; nothing refused reaches a window.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from modelops.core.inference_logging import VERSION_ANNOTATION
from modelops.monitor.capture import Capture
from modelops.monitor.directory import Directory, Unknown
from modelops.monitor.engine import FeedbackError, Monitor
from modelops.monitor.metrics import MonitorCollector
from modelops.monitor.payloads import PayloadError
from modelops.monitor.windows import Source

logger = logging.getLogger("modelops.monitor")

REQUEST_EVENT = "org.kubeflow.serving.inference.request"
RESPONSE_EVENT = "org.kubeflow.serving.inference.response"
DEFAULT_MAX_BODY = 4 * 1024 * 1024
REQUEST_DEADLINE = 30.0
"""Seconds a request may take from its headers to its answer: a body sent slowly gets a 408."""
IDLE_CONNECTION_SECONDS = 15.0
"""A connection that sends no complete request for this long is closed (slow headers too)."""


@dataclass
class MonitorService:
    monitor: Monitor
    directory: Directory
    feedback_token: str | None
    capture: Capture | None = None
    clock: Callable[[], float] = time.time
    capture_full: asyncio.Event = field(default_factory=asyncio.Event)

    def refuse(self, status: int, reason: str, message: str) -> web.Response:
        self.monitor.dropped[reason] += 1
        return web.json_response({"error": message, "reason": reason}, status=status)

    async def events(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = from_http(HTTPMessage(dict(request.headers), body), JSONFormat())
        except (BaseCloudEventException, ValueError) as error:
            return self.refuse(400, "not-a-cloudevent", f"not a CloudEvent: {error}")
        kind = event.get_type()
        if kind not in (REQUEST_EVENT, RESPONSE_EVENT):
            return self.refuse(400, "event-type", f"event type {kind!r} is not an inference log")
        attributes = event.get_attributes()
        namespace = str(attributes.get("namespace") or "")
        deployment = str(attributes.get("inferenceservicename") or "")
        try:
            annotations = json.loads(str(attributes.get("annotations") or "{}"))
        except json.JSONDecodeError:
            annotations = {}
        version = str((annotations or {}).get(VERSION_ANNOTATION) or "")
        if not (namespace and deployment and version):
            return self.refuse(
                400, "unattributed",
                "the event names no namespace, inferenceservicename or "
                f"{VERSION_ANNOTATION} annotation: let modelops set the predictor's logger",
            )  # fmt: skip
        track = await self.directory.track(namespace, deployment, version)
        if isinstance(track, Unknown):
            return self.refuse(404, track.reason, track.message)
        source = Source(namespace, deployment, version, track)
        now = self.clock()
        try:
            if kind == REQUEST_EVENT:
                profile = await self.directory.profile(namespace, deployment, version)
                if isinstance(profile, Unknown):
                    return self.refuse(422, profile.reason, profile.message)
                self.monitor.request(source, event.get_id(), event.get_data(), profile, now)
            else:
                self.monitor.response(source, event.get_id(), event.get_data(), now)
        except PayloadError as error:
            return web.json_response({"error": str(error), "reason": "payload"}, status=422)
        return web.Response(status=202)

    async def feedback(self, request: web.Request) -> web.Response:
        if self.feedback_token is None:
            return self.refuse(403, "feedback-disabled", "feedback is not enabled on this monitor")
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), self.feedback_token.encode()):
            return self.refuse(401, "feedback-unauthorized", "a valid bearer token is required")
        try:
            content = json.loads(await request.read())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self.refuse(400, "feedback-invalid", "the body is not JSON")
        if not isinstance(content, dict) or not isinstance(content.get("id"), str):
            return self.refuse(
                422, "feedback-invalid", 'give {"id": "<the request\'s ce-id>", "label": ...}'
            )
        if "labels" in content and isinstance(content["labels"], list):
            labels = content["labels"]
        elif "label" in content:
            labels = [content["label"]]
        else:
            return self.refuse(422, "feedback-invalid", 'give "label" (one row) or "labels"')
        try:
            rows = self.monitor.feedback(content["id"], labels, self.clock())
        except FeedbackError as error:
            return web.json_response({"error": str(error)}, status=error.status)
        if self.capture is not None and rows:
            profile = self.monitor.profiles.get(rows[0].source)
            if profile is not None and self.capture.add(profile.feature_names(), rows):
                self.capture_full.set()
        return web.json_response({"labelled": len(rows)})


def build_app(
    service: MonitorService,
    max_body: int = DEFAULT_MAX_BODY,
    flush_every: float = 30.0,
    request_deadline: float = REQUEST_DEADLINE,
) -> web.Application:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(MonitorCollector(service.monitor))

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    @web.middleware
    async def bounded(request: web.Request, handler: Any) -> web.StreamResponse:
        """Memory and time per request are bounded: a body over max_body is a 413, one that
        takes longer than request_deadline to arrive (a slow client) a 408."""
        try:
            async with asyncio.timeout(request_deadline):
                return await handler(request)  # type: ignore[no-any-return]
        except web.HTTPRequestEntityTooLarge:
            return service.refuse(
                413, "body-too-large", f"the body is larger than {max_body} bytes"
            )
        except TimeoutError:
            return service.refuse(
                408, "request-timeout", f"the request took longer than {request_deadline:.0f}s"
            )

    app = web.Application(client_max_size=max_body, middlewares=[bounded])
    app.add_routes(
        [
            web.post("/", service.events),
            web.post("/feedback", service.feedback),
            web.get("/metrics", metrics),
            web.get("/healthz", healthz),
        ]
    )
    if service.capture is not None:
        app.cleanup_ctx.append(_flush_captured(service, service.capture, flush_every))
    return app


def app_runner(
    app: web.Application, idle_seconds: float = IDLE_CONNECTION_SECONDS
) -> web.AppRunner:
    """The runner the monitor serves with: aiohttp closes a connection that has not sent a
    whole request within `idle_seconds` (its keep-alive timeout counts from the connection's
    start), which bounds clients that send their headers slowly. After an answer sent before
    the whole body arrived (a 408, a 413), the rest is read for at most a second, not ten."""
    return web.AppRunner(app, access_log=None, keepalive_timeout=idle_seconds, lingering_time=1.0)


def _flush_captured(service: MonitorService, capture: Capture, every: float = 30.0) -> Any:
    """Captured rows reach the store when a file's worth waits, at least every `every`
    seconds, and at shutdown; written from a worker thread."""

    async def context(_: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(service.capture_full.wait(), every)
                service.capture_full.clear()
                try:
                    await asyncio.to_thread(capture.write, capture.drain())
                except OSError as error:
                    logger.warning("Captured rows not written to %s: %s", capture.store, error)

        task = asyncio.ensure_future(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(capture.write, capture.drain())

    return context
