"""The pod network stand-in (a CNI's part): one network namespace per sandbox, each with a
veth to a bridge the local stack owns, and an address from a private range the stack owns.

Everything created is recorded in <state dir>/network.json, and `down` removes exactly that:
the namespaces (their veths go with them) and the bridge. Traffic only ever flows between the
host end of the bridge and namespaces created here. Needs root (as CI and the sessions are).

A stack killed before its `down` (a crashed test run, a lost machine session) leaves its bridge
and namespaces behind. The bridge's alias names the process that made it, so the next stack
can tell such leftovers (that process gone, nothing running in its namespaces) from a running
stack or a link that is not ours, and remove them instead of refusing to start.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CIDR = os.environ.get("MODELOPS_POD_CIDR", "10.213.0.0/16")
DEFAULT_BRIDGE = os.environ.get("MODELOPS_BRIDGE", "mobr0")
ETC_NETNS = Path("/etc/netns")


OWNER_MARK = "modelops-stack"


class NetworkError(RuntimeError):
    pass


def _start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (tells a live process from a reused pid), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _owner_mark() -> str:
    return f"{OWNER_MARK} pid={os.getpid()} start={_start_time(os.getpid())}"


def _owner_alive(alias: str) -> bool:
    fields = dict(part.split("=", 1) for part in alias.split()[1:] if "=" in part)
    pid = fields.get("pid", "")
    return pid.isdigit() and _start_time(int(pid)) == fields.get("start")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NetworkError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


@dataclass(frozen=True)
class Sandbox:
    """A network namespace with one address on the bridge."""

    name: str
    namespace: str
    address: str

    def command(self, argv: list[str]) -> list[str]:
        """`argv` run inside the sandbox's network namespace."""
        return ["ip", "netns", "exec", self.namespace, *argv]


class PodNetwork:
    def __init__(
        self, state_dir: Path, cidr: str = DEFAULT_CIDR, bridge: str = DEFAULT_BRIDGE
    ) -> None:
        self.state_file = state_dir / "network.json"
        self.network = ipaddress.ip_network(cidr)
        self.bridge = bridge
        hosts = self.network.hosts()
        self.gateway = str(next(hosts))
        self._sandboxes: dict[str, Sandbox] = {}
        self._bridge_created = False
        if self.state_file.exists():
            self._load()

    # ---- lifecycle -----------------------------------------------------------------------

    def up(self) -> None:
        """Create the bridge with the gateway address (refusing a range the machine uses)."""
        if self._bridge_created:
            return
        if _ip("link", "show", self.bridge, check=False).returncode == 0:
            self._reclaim_leftover()
        self._refuse_overlap()
        _ip("link", "add", self.bridge, "type", "bridge")
        self._bridge_created = True
        self._save()
        _ip("link", "set", self.bridge, "alias", _owner_mark())
        _ip("addr", "add", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add(self, name: str) -> Sandbox:
        """A new sandbox (network namespace + veth + address); `name` is unique in the stack."""
        if name in self._sandboxes:
            return self._sandboxes[name]
        digest = hashlib.sha256(f"{self.state_file}:{name}".encode()).hexdigest()[:8]
        namespace, host_end = f"modelops-{digest}", f"mo{digest}"
        address = self._next_address()
        sandbox = Sandbox(name=name, namespace=namespace, address=address)
        self._sandboxes[name] = sandbox
        self._save()  # recorded before creation, so `down` cleans up a half-made sandbox
        _ip("netns", "add", namespace)
        # `ip netns exec` bind-mounts /etc/netns/<ns>/* over /etc: give sandboxes a resolver
        # on their own loopback, so lookups fail at once instead of timing out on the host's.
        etc = ETC_NETNS / namespace
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        _ip("link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", namespace)
        _ip("link", "set", host_end, "master", self.bridge, "up")
        inside = ["-n", namespace]
        _ip(*inside, "addr", "add", f"{address}/{self.network.prefixlen}", "dev", "eth0")
        _ip(*inside, "link", "set", "eth0", "up")
        _ip(*inside, "link", "set", "lo", "up")
        _ip(*inside, "route", "add", "default", "via", self.gateway)
        return sandbox

    def write_hosts(self, sandbox: Sandbox, hostname: str, names: dict[str, list[str]]) -> None:
        """The sandbox's /etc/hosts (address -> names): the cluster DNS's part for Services."""
        lines = ["127.0.0.1 localhost", f"{sandbox.address} {hostname}"]
        lines += [f"{address} {' '.join(aliases)}" for address, aliases in names.items() if aliases]
        etc = ETC_NETNS / sandbox.namespace
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text("\n".join(lines) + "\n")

    def remove(self, name: str) -> None:
        sandbox = self._sandboxes.pop(name, None)
        if sandbox is None:
            return
        # Processes still inside would keep the namespace (and its veth) alive after `del`.
        pids = _ip("netns", "pids", sandbox.namespace, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _ip("netns", "del", sandbox.namespace, check=False)
        shutil.rmtree(ETC_NETNS / sandbox.namespace, ignore_errors=True)
        host_end = "mo" + sandbox.namespace.removeprefix("modelops-")
        if _ip("link", "show", host_end, check=False).returncode == 0:
            _ip("link", "del", host_end, check=False)
        self._save()

    def down(self) -> None:
        """Remove every namespace and the bridge this stack created, and nothing else."""
        for name in list(self._sandboxes):
            self.remove(name)
        if self._bridge_created:
            _ip("link", "del", self.bridge, check=False)
            self._bridge_created = False
        self._save()

    def sandboxes(self) -> list[Sandbox]:
        return list(self._sandboxes.values())

    # ---- internals -----------------------------------------------------------------------

    def _reclaim_leftover(self) -> None:
        """Remove a bridge of the same name left by a stack that died, or refuse to go on."""
        shown = json.loads(_ip("-j", "-d", "link", "show", self.bridge).stdout)[0]
        alias = shown.get("ifalias", "")
        if not alias.startswith(OWNER_MARK):
            raise NetworkError(
                f"a link named {self.bridge} already exists and was not made by this stack; "
                "set MODELOPS_BRIDGE to another name"
            )
        enslaved = json.loads(_ip("-j", "link", "show", "master", self.bridge).stdout or "[]")
        namespaces = [
            "modelops-" + link["ifname"].removeprefix("mo")
            for link in enslaved
            if link["ifname"].startswith("mo")
        ]
        running = [ns for ns in namespaces if _ip("netns", "pids", ns, check=False).stdout.strip()]
        if _owner_alive(alias) or running:
            raise NetworkError(
                f"the bridge {self.bridge} belongs to a local stack that is still running "
                f"({alias}); stop it first (modelops-dev down) or set MODELOPS_BRIDGE"
            )
        for namespace in namespaces:
            _ip("netns", "del", namespace, check=False)
            shutil.rmtree(ETC_NETNS / namespace, ignore_errors=True)
        _ip("link", "del", self.bridge)

    def _next_address(self) -> str:
        used = {self.gateway, *(s.address for s in self._sandboxes.values())}
        for host in self.network.hosts():
            if str(host) not in used:
                return str(host)
        raise NetworkError(f"no free address left in {self.network}")

    def _refuse_overlap(self) -> None:
        routes = _ip("-j", "route", "show").stdout
        for route in json.loads(routes or "[]"):
            destination = route.get("dst", "")
            if destination in ("default", "") or ":" in destination:
                continue
            if ipaddress.ip_network(destination, strict=False).overlaps(self.network):
                raise NetworkError(
                    f"the pod range {self.network} overlaps {destination} on this machine; "
                    "set MODELOPS_POD_CIDR to an unused private range"
                )

    def _save(self) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "cidr": str(self.network),
            "bridge": self.bridge,
            "bridge_created": self._bridge_created,
            "sandboxes": [vars(s) for s in self._sandboxes.values()],
        }
        # Written whole or not at all: a kubelet killed mid-write must not leave `down` an
        # empty file and the namespaces it lists behind.
        partial = self.state_file.with_suffix(".partial")
        partial.write_text(json.dumps(state, indent=2))
        os.replace(partial, self.state_file)

    def _load(self) -> None:
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            # A state file cut short by an older version's non-atomic write: nothing known
            # here; the bridge's owner mark lets the next `up` reclaim what it left.
            return
        self.network = ipaddress.ip_network(state["cidr"])
        self.bridge = state["bridge"]
        self.gateway = str(next(self.network.hosts()))
        self._bridge_created = state["bridge_created"]
        self._sandboxes = {s["name"]: Sandbox(**s) for s in state["sandboxes"]}
