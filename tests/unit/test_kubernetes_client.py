"""The operator's API client against a local HTTP server: a 429 is sent again after the
server's Retry-After, and the client-side limit spaces requests out."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from prometheus_client import REGISTRY

from modelops.adapters.kubernetes import (
    RETRIES_OF_429,
    ApiError,
    Connection,
    KubernetesApi,
)


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[tuple[str, list[str]]]:
    """Answers 429 to the first two requests of each path under /busy, 200 to the rest."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.path)
        if request.path.startswith("/busy") and seen.count(request.path) <= 2:
            return web.json_response(
                {"kind": "Status", "reason": "TooManyRequests", "message": "slow down"},
                status=429, headers={"Retry-After": "0"},
            )  # fmt: skip
        if request.path == "/always-busy":
            return web.json_response(
                {"reason": "TooManyRequests", "message": "still busy"},
                status=429, headers={"Retry-After": "0"},
            )  # fmt: skip
        if request.path.startswith("/apis/gateway.networking.k8s.io"):
            # What the API server answers for a group it does not serve (CRD not installed).
            return web.Response(status=404, text="404 page not found\n")
        if request.path == "/behind-a-proxy":
            return web.Response(status=502, text="<html>Bad Gateway</html>",
                                content_type="text/html")  # fmt: skip
        return web.json_response({"path": request.path})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


def throttled() -> float:
    return REGISTRY.get_sample_value("modelops_kube_api_throttled_total") or 0.0


async def test_a_429_is_sent_again_after_retry_after() -> None:
    async with serving() as (url, seen):
        api = KubernetesApi(Connection(url, insecure=True))
        before = throttled()
        try:
            assert await api.request("POST", "/busy/a", body={"x": 1}) == {"path": "/busy/a"}
        finally:
            await api.close()
        assert seen == ["/busy/a"] * 3
        assert throttled() - before == 2


async def test_the_limit_spaces_requests_beyond_the_burst() -> None:
    async with serving() as (url, seen):
        api = KubernetesApi(Connection(url, insecure=True), qps=20, burst=2)
        started = time.monotonic()
        try:
            for i in range(6):
                await api.request("GET", f"/item/{i}")
        finally:
            await api.close()
        # 2 at once, then 4 more at 20 a second: at least 0.2 s, however fast the server.
        assert time.monotonic() - started >= 0.2 - 0.01
        assert len(seen) == 6


async def test_a_server_that_stays_busy_fails_the_request_after_ten_retries() -> None:
    async with serving() as (url, seen):
        api = KubernetesApi(Connection(url, insecure=True))
        try:
            with pytest.raises(ApiError, match="429 TooManyRequests: still busy"):
                await api.request("GET", "/always-busy")
        finally:
            await api.close()
        assert seen == ["/always-busy"] * (RETRIES_OF_429 + 1)


async def test_error_answers_that_are_not_status_objects_are_api_errors() -> None:
    async with serving() as (url, _):
        api = KubernetesApi(Connection(url, insecure=True))
        try:
            with pytest.raises(ApiError) as missing:
                await api.request("GET", "/apis/gateway.networking.k8s.io/v1/httproutes")
            assert (missing.value.status, missing.value.message) == (404, "404 page not found")
            assert await api.get("/apis/gateway.networking.k8s.io/v1/httproutes/x") is None
            with pytest.raises(ApiError) as proxied:
                await api.request("GET", "/behind-a-proxy")
            assert proxied.value.status == 502
        finally:
            await api.close()
