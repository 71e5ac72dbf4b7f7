"""An HTTP proxy between the operator and a dependency (MLflow, Prometheus): it counts the
requests it passes, by path, and can make them slow or fail. Benchmarks count registry lookups
and PromQL queries with it; fault tests make a dependency slow or answer 5xx with it. It runs
its own event loop in a thread, so synchronous tests and asyncio benchmarks both use it."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter

import aiohttp
from aiohttp import web

# Headers about one hop's connection, never forwarded (RFC 9110 section 7.6.1).
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
    "trailer", "transfer-encoding", "upgrade", "host", "content-length",
})  # fmt: skip


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.counts: Counter[str] = Counter()
        self.authorizations: Counter[str] = Counter()
        """Authorization headers received (a test proves credentials were sent)."""
        self.delay = 0.0  # seconds added before each answer
        self.failing: int | None = None  # answer every request with this status instead
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self, path_prefix: str = "") -> int:
        """Requests received so far whose path starts with `path_prefix`."""
        with self._lock:
            return sum(n for path, n in self.counts.items() if path.startswith(path_prefix))

    def reset(self) -> None:
        with self._lock:
            self.counts.clear()

    def start(self) -> None:
        started = threading.Event()
        self._loop = asyncio.new_event_loop()

        def serve() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._open())
            started.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="fault-proxy", daemon=True)
        self._thread.start()
        if not started.wait(timeout=10):
            raise RuntimeError("the fault proxy did not start within 10 s")

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._loop = self._thread = None

    async def _open(self) -> None:
        # No total timeout: a test that makes the proxy slow decides how slow.
        self._session = aiohttp.ClientSession(
            auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None)
        )
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _close(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()
        await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.counts[request.path] += 1
            if "Authorization" in request.headers:
                self.authorizations[request.headers["Authorization"]] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.failing is not None:
            return web.json_response({"error": "injected by the fault proxy"}, status=self.failing)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=answer.status, headers=kept, body=body)
