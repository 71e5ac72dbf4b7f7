"""The pod network stand-in: sandboxes reach each other and the host, and `down` leaves
nothing behind. Needs root (CI and the sessions run as root)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelops_dev.network import PodNetwork
from tests.integration.conftest import wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def links() -> str:
    return subprocess.run(["ip", "-br", "link"], capture_output=True, text=True, check=True).stdout


def namespaces() -> str:
    return subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=True
    ).stdout


def fetch(url: str, sandbox_command: list[str] | None = None) -> str:
    code = (
        f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=2).read().decode())"
    )
    command = [sys.executable, "-c", code]
    result = subprocess.run(
        sandbox_command + command if sandbox_command else command,
        capture_output=True, text=True, check=False, timeout=30,
    )  # fmt: skip
    return result.stdout.strip()


def test_sandboxes_talk_to_each_other_and_to_the_host_then_vanish(tmp_path: Path) -> None:
    # A range of its own: the test stacks hold 10.213 and 10.215 (plus 20 per xdist worker).
    network = PodNetwork(tmp_path, cidr="10.218.0.0/16", bridge="motest0")
    try:
        network.up()
        server, client = network.add("server"), network.add("client")
        assert server.address != client.address
        (tmp_path / "www").mkdir()
        (tmp_path / "www" / "hello.txt").write_text("hello from the sandbox")
        process = subprocess.Popen(
            server.command([sys.executable, "-m", "http.server", "--bind", server.address,
                            "--directory", str(tmp_path / "www"), "8000"]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://{server.address}:8000/hello.txt"
        assert wait_for(lambda: fetch(url), timeout=30, what="the server in the sandbox") == (
            "hello from the sandbox"
        )
        # From another sandbox, through the bridge.
        assert fetch(url, client.command([])) == "hello from the sandbox"
        # Loopback inside a sandbox is its own: the host's loopback is not reachable.
        assert fetch("http://127.0.0.1:8000/hello.txt", client.command([])) == ""
    finally:
        network.down()
    process.wait(timeout=10)  # `down` ended what was still running inside the sandboxes
    assert "motest0" not in links()
    left = namespaces()
    assert server.namespace not in left and client.namespace not in left
    host_ends = {"mo" + s.namespace.removeprefix("modelops-") for s in (server, client)}
    assert not any(line.split("@")[0] in host_ends for line in links().splitlines())


def test_a_range_the_machine_uses_is_refused(tmp_path: Path) -> None:
    routes = subprocess.run(
        ["ip", "-4", "route"], capture_output=True, text=True, check=True
    ).stdout
    used = next(line.split()[0] for line in routes.splitlines() if "/" in line.split()[0])
    network = PodNetwork(tmp_path, cidr=used, bridge="motest1")
    with pytest.raises(RuntimeError, match="overlaps"):
        network.up()
    assert "motest1" not in links()


def _stack_in_a_process(state: Path, bridge: str, *, stay: bool) -> subprocess.Popen[bytes]:
    """A process that makes a bridge and one sandbox, then exits without `down` (or stays)."""
    code = (
        "import sys, time; from pathlib import Path; from modelops_dev.network import PodNetwork; "
        f"n = PodNetwork(Path({str(state)!r}), cidr='10.219.0.0/16', bridge={bridge!r}); "
        "n.up(); n.add('orphan'); print(n.sandboxes()[0].namespace, flush=True); "
        f"time.sleep(600 if {stay} else 0)"
    )
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)


def test_leftovers_of_a_dead_stack_are_reclaimed_and_a_running_or_foreign_one_is_not(
    tmp_path: Path,
) -> None:
    bridge = "motest2"
    owner = _stack_in_a_process(tmp_path / "first", bridge, stay=True)
    assert owner.stdout is not None
    orphan = owner.stdout.readline().decode().strip()
    network = PodNetwork(tmp_path / "second", cidr="10.219.0.0/16", bridge=bridge)
    try:
        # The owner still lives: its bridge is not taken from it.
        with pytest.raises(RuntimeError, match="still running"):
            network.up()
        owner.kill()
        owner.wait(timeout=10)
        assert bridge in links() and orphan in namespaces()
        network.up()  # the dead stack's bridge and namespace go, a new bridge comes
        assert orphan not in namespaces()
        assert bridge in links()
    finally:
        network.down()
        PodNetwork(tmp_path / "first").down()
    assert bridge not in links()

    # A link this project did not make is never touched.
    subprocess.run(["ip", "link", "add", "motest3", "type", "bridge"], check=True)
    try:
        with pytest.raises(RuntimeError, match="not made by this stack"):
            PodNetwork(tmp_path / "third", cidr="10.219.0.0/16", bridge="motest3").up()
        assert "motest3" in links()
    finally:
        subprocess.run(["ip", "link", "del", "motest3"], check=True)
