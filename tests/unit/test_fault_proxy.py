"""The fault proxy of the devstack: forwards, counts, delays and fails on request."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from modelops_dev.fault_proxy import FaultProxy


class Echo(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        answer = json.dumps({"path": self.path, "body": body.decode(),
                             "auth": self.headers.get("Authorization")}).encode()  # fmt: skip
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Upstream", "yes")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    found = FaultProxy(f"http://127.0.0.1:{upstream.server_address[1]}/")
    found.start()
    yield found
    found.stop()
    upstream.shutdown()


def post(url: str, body: bytes = b"{}") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Authorization": "Bearer t"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_forwards_the_request_and_the_answer_and_counts_by_path(proxy: FaultProxy) -> None:
    status, headers, body = post(proxy.url + "/api/2.0/x?a=1", b'{"k": 2}')
    post(proxy.url + "/api/2.0/x")
    post(proxy.url + "/other")
    assert status == 201 and headers["X-Upstream"] == "yes"
    assert json.loads(body) == {"path": "/api/2.0/x?a=1", "body": '{"k": 2}', "auth": "Bearer t"}
    assert proxy.requests("/api/2.0/") == 2 and proxy.requests() == 3
    proxy.reset()
    assert proxy.requests() == 0


def test_failing_answers_the_status_without_asking_upstream(proxy: FaultProxy) -> None:
    proxy.failing = 503
    status, headers, _ = post(proxy.url + "/q")
    assert status == 503 and "X-Upstream" not in headers
    proxy.failing = None
    assert post(proxy.url + "/q")[0] == 201
    assert proxy.requests("/q") == 2


def test_delay_holds_each_answer(proxy: FaultProxy) -> None:
    proxy.delay = 0.3
    started = time.monotonic()
    assert post(proxy.url + "/q")[0] == 201
    assert time.monotonic() - started >= 0.3
