"""How the registry adapter reports a registry that fails or hangs, with MLflow's real client
against real sockets (the devstack's fault proxy): a transient reason to retry, a message a
person can act on, no credential in it, and never longer than the client's timeout."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from modelops.adapters.registry import Registry, RegistryConnection, RegistryError
from modelops_dev.fault_proxy import FaultProxy

TOKEN = "secret-token-that-must-not-show"


class Overloaded(BaseHTTPRequestHandler):
    """What a load balancer in front of MLflow answers when it has no backend."""

    def do_GET(self) -> None:
        body = b"<html><body>503 Service Unavailable</body></html>"
        self.send_response(503)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Overloaded)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    found = FaultProxy(f"http://127.0.0.1:{upstream.server_address[1]}")
    found.start()
    yield found
    found.stop()
    upstream.shutdown()


def failure(proxy: FaultProxy) -> tuple[RegistryError, float]:
    registry = Registry(RegistryConnection(proxy.url, token=TOKEN))
    started = time.monotonic()
    with pytest.raises(RegistryError) as raised:
        asyncio.run(registry.resolve("fraud", alias="champion"))
    return raised.value, time.monotonic() - started


def test_a_5xx_page_is_a_transient_error_that_names_the_status(proxy: FaultProxy) -> None:
    error, _ = failure(proxy)
    assert (error.reason, error.retry) == ("RegistryError", True)
    assert error.message == "alias 'champion' of model 'fraud': the registry answered HTTP 503"
    assert proxy.authorizations == {f"Bearer {TOKEN}": 1}  # sent, and not retried


def test_an_mlflow_error_answer_is_transient(proxy: FaultProxy) -> None:
    proxy.failing = 500  # a JSON error body, as MLflow's own server answers
    error, _ = failure(proxy)
    assert (error.reason, error.retry) == ("RegistryError", True)
    assert "alias 'champion' of model 'fraud'" in error.message


def test_a_registry_slower_than_the_timeout_is_unreachable_after_the_timeout(
    proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    proxy.delay = 2.5
    error, took = failure(proxy)
    assert (error.reason, error.retry) == ("RegistryUnreachable", True)
    assert error.message.endswith("(timed out)")
    assert TOKEN not in error.message and TOKEN not in str(error)
    assert took < 2, took


def test_a_hanging_registry_ties_up_only_its_own_threads(
    proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight lookups hang on one registry (each until the client's timeout) while another
    registry is asked: its answer comes at once, not after threads free up; the operator's
    shared worker threads (here 4, as on a small node) stay free too."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    hanging = FaultProxy("http://127.0.0.1:9")
    hanging.start()
    hanging.delay, hanging.failing = 2.5, 503  # answered after the client gave up
    proxy.failing = 500  # answers at once

    async def scenario() -> tuple[float, float]:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(4))
        slow = Registry(RegistryConnection(hanging.url))
        stuck = [asyncio.ensure_future(slow.resolve(f"m{i}", alias="a")) for i in range(8)]
        await asyncio.sleep(0.2)  # all eight sent
        started = time.monotonic()
        with pytest.raises(RegistryError):
            await Registry(RegistryConnection(proxy.url)).resolve("fraud", alias="champion")
        other = time.monotonic() - started
        started = time.monotonic()
        await asyncio.to_thread(lambda: None)
        shared = time.monotonic() - started
        await asyncio.gather(*stuck, return_exceptions=True)
        return other, shared

    try:
        other, shared = asyncio.run(scenario())
    finally:
        hanging.stop()
    assert other < 0.5 and shared < 0.5, (other, shared)
