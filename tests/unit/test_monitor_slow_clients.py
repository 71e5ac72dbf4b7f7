"""The monitor against hostile clients, over real sockets on loopback: headers sent a byte at a
time (slowloris) are cut off at the idle limit, a body sent slowly gets a 408 at the request
deadline, and a flood of such connections neither delays a well-behaved request nor outlives
the limit. Each refusal is counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from modelops.monitor.engine import Monitor, Settings
from modelops.monitor.server import MonitorService, app_runner, build_app
from tests.unit.test_monitor_server import REQUEST_EVENT, KnownDeployments, headers

IDLE = 1.0
DEADLINE = 1.0


@asynccontextmanager
async def monitor() -> AsyncIterator[tuple[int, MonitorService]]:
    service = MonitorService(Monitor(Settings()), KnownDeployments(), None)  # type: ignore[arg-type]
    runner = app_runner(build_app(service, request_deadline=DEADLINE), idle_seconds=IDLE)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield port, service
    finally:
        await runner.cleanup()


async def dribble(port: int, head: bytes, tail: bytes, every: float = 0.2) -> tuple[float, bytes]:
    """Send `head`, then `tail` a byte every `every` seconds until the server answers or
    closes; (seconds it took, what it answered)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(head)
    answer = b""
    try:
        for byte in tail:
            writer.write(bytes([byte]))
            await writer.drain()
            try:
                answer = await asyncio.wait_for(reader.read(4096), every)
            except TimeoutError:
                continue
            break
        else:
            answer = await asyncio.wait_for(reader.read(4096), 10)
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()
    return time.monotonic() - started, answer


async def test_headers_sent_slowly_are_cut_off_at_the_idle_limit() -> None:
    async with monitor() as (port, _):
        took, answer = await dribble(port, b"POST / HTTP/1.1\r\n", b"X-Slow: " + b"a" * 200)
    assert answer == b""  # closed without an answer
    assert IDLE <= took < IDLE + 1.0, took


async def test_a_body_sent_slowly_gets_a_408_at_the_deadline() -> None:
    head = "".join(f"{k}: {v}\r\n" for k, v in headers(REQUEST_EVENT, "slow").items())
    request = f"POST / HTTP/1.1\r\nHost: m\r\nContent-Length: 500\r\n{head}\r\n".encode()
    async with monitor() as (port, service):
        took, answer = await dribble(port, request, b"{" + b" " * 499)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"request-timeout" in answer
        assert service.monitor.dropped["request-timeout"] == 1
    assert DEADLINE <= took < DEADLINE + 1.0, took


async def test_a_flood_of_slow_connections_delays_nobody_and_is_all_closed() -> None:
    async with monitor() as (port, _):
        flood = [
            asyncio.ensure_future(dribble(port, b"POST / HTTP/1.1\r\n", b"X: " + b"a" * 100))
            for _ in range(200)
        ]
        await asyncio.sleep(0.3)  # all 200 connected and dribbling
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 5)
        answered = time.monotonic() - started
        writer.close()
        results = await asyncio.wait_for(asyncio.gather(*flood), 10)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")
    assert answered < 0.5, answered
    assert all(found == b"" and took < IDLE + 1.5 for took, found in results)
