"""The process kubelet (development only): registers a Node and runs each Pod bound to it as
local processes, one network namespace per Pod.

Like kwok, but it really runs things: env, command and args (with $(VAR) expansion), init
containers before containers, restartPolicy, exit codes into container statuses (so the real
Job controller finishes Jobs), readiness probes (tcp/http) into the Ready condition, per-container
log files, and graceful termination on delete. Images map to local commands through images.py;
an image with no local command waits with reason ImageNotRunnableLocally.

    python -m modelops_dev.kubelet --kubeconfig K --node NAME --state DIR
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml

from modelops.adapters.kubernetes import ApiError, Connection, KubernetesApi
from modelops_dev.binaries import CACHE_ROOT, REPO_ROOT
from modelops_dev.forwarder import serve as forward
from modelops_dev.images import Unrunnable, container_argv, local_command
from modelops_dev.network import PodNetwork, Sandbox
from modelops_dev.volumes import prepare_volumes

logger = logging.getLogger("modelops.kubelet")

LEASE_SECONDS = 40
# The kubernetes Service as pods see it: these names resolve to the gateway, where the kubelet
# forwards port 443 to the API server (a cluster's Service VIP and kube-proxy do that).
API_SERVER_NAMES = ("kubernetes.default.svc.cluster.local", "kubernetes.default.svc",
                    "kubernetes.default", "kubernetes")  # fmt: skip
API_SERVER_PORT = 443
HEARTBEAT_SECONDS = 10
PROBE_USER_AGENT = "kube-probe/1.35"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion in command and args ($$ escapes)."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                  lambda m: "$" if m[0] == "$$" else env.get(m[1], m[0]), text)  # fmt: skip


# A kubelet's restart back-off: 10 s doubling to 5 min, reset once a container ran 10 min.
BACKOFF_START_SECONDS = 10
BACKOFF_LIMIT_SECONDS = 300
BACKOFF_RESET_SECONDS = 600


def exit_code_of(returncode: int) -> int:
    """A container's exit code as a kubelet reports it (killed by signal N: 128 + N)."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class ContainerState:
    name: str
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: str | None = None
    exit_code: int | None = None
    finished_at: str | None = None
    waiting: tuple[str, str] | None = None
    ready: bool = False
    last_terminated: dict[str, Any] | None = None
    backoff: int = 0
    """Restarts since the back-off was last reset."""

    def terminated(self) -> dict[str, Any]:
        code = self.exit_code or 0
        return {"exitCode": code, "startedAt": self.started_at, "finishedAt": self.finished_at,
                "reason": "Completed" if code == 0 else "Error"}  # fmt: skip

    def back_off(self, pod: str, ran_seconds: float) -> float:
        """Record a restart after an exit; the delay before it, and the waiting reason a
        kubelet reports meanwhile (CrashLoopBackOff)."""
        if ran_seconds >= BACKOFF_RESET_SECONDS:
            self.backoff = 0
        delay: float = min(BACKOFF_LIMIT_SECONDS, BACKOFF_START_SECONDS * 2**self.backoff)
        self.backoff += 1
        self.restarts += 1
        self.last_terminated = self.terminated()
        self.waiting = ("CrashLoopBackOff",
                        f"back-off {delay}s restarting failed container={self.name} pod={pod}")  # fmt: skip
        return delay

    def status(self, image: str) -> dict[str, Any]:
        state: dict[str, Any]
        if self.waiting:
            state = {"waiting": {"reason": self.waiting[0], "message": self.waiting[1]}}
        elif self.exit_code is not None:
            state = {"terminated": self.terminated()}
        elif self.process is not None:
            state = {"running": {"startedAt": self.started_at}}
        else:
            state = {"waiting": {"reason": "PodInitializing"}}
        report = {"name": self.name, "image": image, "imageID": "", "ready": self.ready,
                  "restartCount": self.restarts, "started": self.process is not None and self.exit_code is None
                  and self.waiting is None, "state": state}  # fmt: skip
        if self.last_terminated is not None:
            report["lastState"] = {"terminated": self.last_terminated}
        return report


@dataclass
class PodRun:
    pod: dict[str, Any]
    sandbox: Sandbox | None = None
    task: asyncio.Task[None] | None = None
    init: list[ContainerState] = field(default_factory=list)
    containers: list[ContainerState] = field(default_factory=list)
    stopping: bool = False
    volumes: dict[str, Path] = field(default_factory=dict)
    # One status write at a time, built when its turn comes: two containers' probes changing
    # at once must not let an older snapshot land last (a pod stuck not ready).
    status_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class ProcessKubelet:
    def __init__(self, api: KubernetesApi, node: str, network: PodNetwork, state: Path) -> None:
        self.api, self.node, self.network, self.state = api, node, network, state
        self.runs: dict[str, PodRun] = {}

    # ---- node ----------------------------------------------------------------------------

    async def register(self) -> None:
        labels = {"kubernetes.io/hostname": self.node, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64", "modelops.io/process-kubelet": "true"}  # fmt: skip
        try:
            await self.api.request(
                "POST", "/api/v1/nodes", body={"metadata": {"name": self.node, "labels": labels}}
            )
        except ApiError as error:
            if error.status != 409:
                raise
        await self.report_node()

    async def report_node(self) -> None:
        capacity = {"cpu": "64", "memory": "256Gi", "pods": "250", "ephemeral-storage": "500Gi"}
        condition = {"type": "Ready", "status": "True", "reason": "KubeletReady",
                     "message": "process kubelet is running", "lastHeartbeatTime": now(),
                     "lastTransitionTime": now()}  # fmt: skip
        status = {"capacity": capacity, "allocatable": capacity, "conditions": [condition],
                  "addresses": [{"type": "InternalIP", "address": self.network.gateway},
                                {"type": "Hostname", "address": self.node}],
                  "nodeInfo": {"kubeletVersion": "v1.35.4-process", "containerRuntimeVersion": "process://0",
                               "operatingSystem": "linux", "architecture": "amd64", "kernelVersion": os.uname().release,
                               "osImage": "modelops process kubelet", "kubeProxyVersion": "", "machineID": "",
                               "systemUUID": "", "bootID": ""}}  # fmt: skip
        await self.api.request("PATCH", f"/api/v1/nodes/{self.node}/status", body={"status": status},
                               content_type="application/merge-patch+json")  # fmt: skip

    async def heartbeat(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node}"
        while True:
            lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": self.node, "namespace": "kube-node-lease"},
                     "spec": {"holderIdentity": self.node, "leaseDurationSeconds": LEASE_SECONDS,
                              "renewTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}  # fmt: skip
            with contextlib.suppress(ApiError, aiohttp.ClientError, TimeoutError):
                await self.api.apply(path, lease)
                await self.report_node()
            await asyncio.sleep(HEARTBEAT_SECONDS)

    # ---- pods ----------------------------------------------------------------------------

    async def watch(self) -> None:
        selector = f"spec.nodeName={self.node}"
        while True:
            listing = await self.api.request(
                "GET", "/api/v1/pods", params={"fieldSelector": selector}
            )
            for pod in listing.get("items", []):
                self.observe("ADDED", pod)
            version = listing["metadata"]["resourceVersion"]
            try:
                async for kind, pod in self.api.watch("/api/v1/pods", {"fieldSelector": selector,
                                                                       "resourceVersion": version}):  # fmt: skip
                    self.observe(kind, pod)
            except (aiohttp.ClientError, TimeoutError, ApiError) as error:
                logger.warning("Pod watch ended (%s); listing again", error)
                await asyncio.sleep(1)

    def observe(self, kind: str, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        run = self.runs.get(uid)
        if kind == "DELETED" or pod["metadata"].get("deletionTimestamp"):
            if run is not None and not run.stopping:
                run.stopping = True
                asyncio.get_running_loop().create_task(self.terminate(run, kind == "DELETED"))
            elif run is None and kind != "DELETED":
                asyncio.get_running_loop().create_task(self.finalize(pod))
            return
        if run is None and pod.get("status", {}).get("phase") not in ("Succeeded", "Failed"):
            run = PodRun(pod=pod)
            self.runs[uid] = run
            run.task = asyncio.get_running_loop().create_task(self.run_pod(run))

    async def run_pod(self, run: PodRun) -> None:
        pod = run.pod
        meta, spec = pod["metadata"], pod["spec"]
        folder = self.state / "pods" / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
        folder.mkdir(parents=True, exist_ok=True)
        run.init = [ContainerState(c["name"]) for c in spec.get("initContainers", [])]
        run.containers = [ContainerState(c["name"]) for c in spec["containers"]]
        try:
            run.sandbox = self.network.add(f"{meta['namespace']}/{meta['name']}/{meta['uid']}")
        except Exception as error:
            await self.write_status(run, "Pending", message=f"sandbox: {error}")
            return
        try:
            await self.write_hosts(run)
        except (ApiError, aiohttp.ClientError, TimeoutError) as error:
            logger.warning(
                "Service names for pod %s/%s: %s", meta["namespace"], meta["name"], error
            )
        for attempt in range(30):  # a ConfigMap or Secret may appear a moment after the Pod
            try:
                run.volumes = await prepare_volumes(
                    self.api, pod, folder / "volumes", self.value_from
                )
                break
            except (ApiError, KeyError, ValueError) as error:
                await self.write_status(run, "Pending", message=f"volumes: {error}")
                if attempt == 29 or run.stopping:
                    return
                await asyncio.sleep(1)
        await self.write_status(run, "Pending")
        policy = spec.get("restartPolicy", "Always")
        for container, state in zip(spec.get("initContainers", []), run.init, strict=True):
            while True:
                began = time.monotonic()
                code = await self.run_to_completion(run, container, state, folder)
                if code is None or run.stopping:
                    return
                if code == 0:
                    break
                if policy == "Never":
                    await self.write_status(
                        run, "Failed", message=f"init container {state.name} failed"
                    )
                    return
                delay = state.back_off(meta["name"], time.monotonic() - began)
                await self.write_status(run, "Pending")
                await asyncio.sleep(delay)
        await asyncio.gather(*(self.keep_running(run, c, s, folder, policy)
                               for c, s in zip(spec["containers"], run.containers, strict=True)))  # fmt: skip
        if not run.stopping:
            failed = any(s.exit_code for s in run.containers)
            await self.write_status(run, "Failed" if failed else "Succeeded")

    async def write_hosts(self, run: PodRun) -> None:
        """Service names resolve to the gateway (kube-proxy's and DNS's part): the router on
        port 80, the API server's forwarder on 443. Taken when the pod starts: a Service
        created later needs a restarted pod here."""
        assert run.sandbox is not None
        own_namespace = run.pod["metadata"]["namespace"]
        aliases: list[str] = list(API_SERVER_NAMES)
        for service in (await self.api.request("GET", "/api/v1/services")).get("items", []):
            name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
            if (namespace, name) == ("default", "kubernetes"):
                continue  # named above: TLS to the API server through the forwarder
            aliases += [f"{name}.{namespace}.svc.cluster.local", f"{name}.{namespace}.svc",
                        f"{name}.{namespace}"]  # fmt: skip
            if namespace == own_namespace:
                aliases.append(name)
        self.network.write_hosts(
            run.sandbox, run.pod["metadata"]["name"], {self.network.gateway: aliases}
        )

    async def run_to_completion(
        self, run: PodRun, container: dict[str, Any], state: ContainerState, folder: Path
    ) -> int | None:
        if not await self.start(run, container, state, folder):
            return None
        assert state.process is not None
        code = exit_code_of(await state.process.wait())
        state.exit_code, state.finished_at = code, now()
        await self.write_status(run, "Pending")
        return code

    async def keep_running(
        self,
        run: PodRun,
        container: dict[str, Any],
        state: ContainerState,
        folder: Path,
        policy: str,
    ) -> None:
        while not run.stopping:
            if not await self.start(run, container, state, folder):
                return
            assert state.process is not None
            began = time.monotonic()
            probe = asyncio.get_running_loop().create_task(self.probe(run, container, state))
            await self.write_status(run, "Running")
            code = exit_code_of(await state.process.wait())
            probe.cancel()
            state.exit_code, state.finished_at, state.ready = code, now(), False
            if run.stopping:
                return
            if policy == "Never" or (policy == "OnFailure" and code == 0):
                await self.write_status(
                    run,
                    "Running" if any(s.exit_code is None for s in run.containers) else "Pending",
                )
                return
            delay = state.back_off(run.pod["metadata"]["name"], time.monotonic() - began)
            await self.write_status(run, "Running")
            await asyncio.sleep(delay)

    async def start(
        self, run: PodRun, container: dict[str, Any], state: ContainerState, folder: Path
    ) -> bool:
        env = await self.environment(run.pod, container)
        image = container.get("image", "")
        argv = [expand(a, env) for a in
                container_argv(image, container.get("command", []), container.get("args", []))]  # fmt: skip
        local = local_command(image, argv, env)
        if isinstance(local, Unrunnable):
            state.waiting = (local.reason, local.message)
            await self.write_status(run, "Pending")
            return False
        command, env = local
        assert run.sandbox is not None
        mounts = [
            [
                str(run.volumes[m["name"]] / m.get("subPath", "")),
                m["mountPath"],
                bool(m.get("readOnly")),
            ]
            for m in container.get("volumeMounts", [])
            if m["name"] in run.volumes
        ]
        if mounts:
            # A private mount namespace per container, with the volumes at their mountPaths.
            # What plays the image's files stays visible whatever the volumes cover.
            keep = [str(folder), str(REPO_ROOT), sys.prefix, str(CACHE_ROOT)]
            spec = json.dumps({"mounts": mounts, "keep": keep})
            command = ["unshare", "--mount", "--propagation", "private", sys.executable, "-m",
                       "modelops_dev.mounts", spec, "--", *command]  # fmt: skip
        log = (folder / f"{state.name}.log").open("ab")
        state.process = await asyncio.create_subprocess_exec(
            *run.sandbox.command(command), env={"PATH": os.environ.get("PATH", ""), "HOME": str(folder), **env},
            cwd=container.get("workingDir") or folder, stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        state.waiting, state.exit_code, state.started_at = None, None, now()
        return True

    async def environment(self, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
        # What every kubelet adds: where the API server is. A name, not the bridge address,
        # because the API server's certificate names kubernetes.default.svc (not this IP).
        env: dict[str, str] = {"KUBERNETES_SERVICE_HOST": API_SERVER_NAMES[1],
                               "KUBERNETES_SERVICE_PORT": str(API_SERVER_PORT),
                               "KUBERNETES_SERVICE_PORT_HTTPS": str(API_SERVER_PORT)}  # fmt: skip
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = expand(item["value"], env)
            elif "valueFrom" in item:
                value = await self.value_from(pod, item["valueFrom"])
                if value is not None:
                    env[item["name"]] = value
        return env

    async def value_from(self, pod: dict[str, Any], source: dict[str, Any]) -> str | None:
        if "fieldRef" in source:
            fields = {"metadata.name": pod["metadata"]["name"], "metadata.namespace": pod["metadata"]["namespace"],
                      "metadata.uid": pod["metadata"]["uid"], "spec.nodeName": self.node,
                      "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
                      "status.podIP": self.runs[pod["metadata"]["uid"]].sandbox.address  # type: ignore[union-attr]
                      }  # fmt: skip
            return fields.get(source["fieldRef"]["fieldPath"])
        for kind, plural in (("secretKeyRef", "secrets"), ("configMapKeyRef", "configmaps")):
            if kind in source:
                ref = source[kind]
                found = await self.api.get(
                    f"/api/v1/namespaces/{pod['metadata']['namespace']}/{plural}/{ref['name']}"
                )
                data = (found or {}).get("data", {})
                value = data.get(ref["key"])
                if value is not None and kind == "secretKeyRef":
                    return base64.b64decode(value).decode()
                return value  # type: ignore[no-any-return]
        return None

    async def probe(self, run: PodRun, container: dict[str, Any], state: ContainerState) -> None:
        probe = container.get("readinessProbe")
        if probe is None:
            state.ready = True
            await self.write_status(run, "Running")
            return
        await asyncio.sleep(probe.get("initialDelaySeconds", 0))
        assert run.sandbox is not None
        while True:
            ready = await self.check(run.sandbox, container, probe)
            if ready != state.ready:
                state.ready = ready
                await self.write_status(run, "Running")
            await asyncio.sleep(probe.get("periodSeconds", 10) if ready else 0.5)

    async def check(
        self, sandbox: Sandbox, container: dict[str, Any], probe: dict[str, Any]
    ) -> bool:
        def port_of(value: Any) -> int:
            if isinstance(value, int):
                return value
            named = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
            return int(named.get(value, value))

        timeout = probe.get("timeoutSeconds", 1)
        try:
            if "tcpSocket" in probe:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(sandbox.address, port_of(probe["tcpSocket"]["port"])),
                    timeout,
                )
                writer.close()
                return True
            if "httpGet" in probe:
                get = probe["httpGet"]
                url = f"http://{sandbox.address}:{port_of(get['port'])}{get.get('path', '/')}"
                # As the real kubelet: the probe's own headers, and a kube-probe User-Agent
                # (KServe's agent answers readiness only to that).
                headers = {"User-Agent": PROBE_USER_AGENT}
                headers |= {h["name"]: h["value"] for h in get.get("httpHeaders", [])}
                async with (
                    aiohttp.ClientSession() as session,
                    session.get(
                        url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
                    ) as response,
                ):
                    return 200 <= response.status < 400
        except (OSError, TimeoutError, aiohttp.ClientError):
            return False
        return True

    async def write_status(self, run: PodRun, phase: str, message: str | None = None) -> None:
        async with run.status_lock:
            await self._write_status(run, phase, message)

    async def _write_status(self, run: PodRun, phase: str, message: str | None) -> None:
        spec = run.pod["spec"]
        images = {
            c["name"]: c.get("image", "")
            for c in [*spec.get("initContainers", []), *spec["containers"]]
        }
        initialized = all(s.exit_code == 0 for s in run.init)
        ready = phase == "Running" and all(s.ready for s in run.containers)
        conditions = [
            {"type": "PodScheduled", "status": "True"},
            {"type": "Initialized", "status": str(initialized)},
            {"type": "ContainersReady", "status": str(ready)},
            {"type": "Ready", "status": str(ready)},
        ]
        status: dict[str, Any] = {
            "phase": phase, "hostIP": self.network.gateway, "startTime": run.pod.get("status", {}).get("startTime") or now(),
            "conditions": [{**c, "lastTransitionTime": now()} for c in conditions],
            "initContainerStatuses": [s.status(images[s.name]) for s in run.init],
            "containerStatuses": [s.status(images[s.name]) for s in run.containers],
            "message": message,
        }  # fmt: skip
        if run.sandbox is not None:
            status["podIP"] = run.sandbox.address
            status["podIPs"] = [{"ip": run.sandbox.address}]
        meta = run.pod["metadata"]
        with contextlib.suppress(ApiError):
            await self.api.request("PATCH", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                                   body={"status": status}, content_type="application/merge-patch+json")  # fmt: skip

    async def pre_stop(self, run: PodRun, container: dict[str, Any]) -> None:
        """A container's preStop hook (sleep or httpGet), run before it is told to stop; the
        pod keeps answering meanwhile (a rollout drains it this way)."""
        hook = (container.get("lifecycle") or {}).get("preStop") or {}
        if "sleep" in hook:
            await asyncio.sleep(int(hook["sleep"].get("seconds", 0)))
        elif "httpGet" in hook and run.sandbox is not None:
            await self.check(
                run.sandbox, container, {"httpGet": hook["httpGet"], "timeoutSeconds": 30}
            )
        elif hook:
            logger.warning("Pod %s: preStop %s is not run by the process kubelet",
                           run.pod["metadata"]["name"], sorted(hook))  # fmt: skip

    async def terminate(self, run: PodRun, already_deleted: bool, drain: bool = True) -> None:
        grace = min(run.pod["spec"].get("terminationGracePeriodSeconds", 30), 30)
        started = time.monotonic()
        running = [c for c, s in zip(run.pod["spec"]["containers"], run.containers, strict=True)
                   if s.process and s.process.returncode is None]  # fmt: skip
        if running and drain:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(self.pre_stop(run, c) for c in running)), grace
                )
        grace = max(1.0, grace - (time.monotonic() - started))
        processes = [
            s.process
            for s in [*run.init, *run.containers]
            if s.process and s.process.returncode is None
        ]
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in processes)), grace)
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        if run.task is not None:
            run.task.cancel()
        if run.sandbox is not None:
            self.network.remove(run.sandbox.name)
        self.runs.pop(run.pod["metadata"]["uid"], None)
        if not already_deleted:
            await self.finalize(run.pod)

    async def finalize(self, pod: dict[str, Any]) -> None:
        """What a kubelet does last: remove the Pod object once its processes are gone."""
        meta = pod["metadata"]
        with contextlib.suppress(ApiError):
            await self.api.request("DELETE", f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                                   body={"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}})  # fmt: skip

    async def shutdown(self) -> None:
        """The node goes away: every pod stops at once, without preStop drains."""
        runs = list(self.runs.values())
        for run in runs:
            run.stopping = True
        await asyncio.gather(*(self.terminate(run, True, drain=False) for run in runs))


def connection_from_kubeconfig(path: Path) -> Connection:
    config = yaml.safe_load(path.read_text())
    context = next(
        c["context"] for c in config["contexts"] if c["name"] == config["current-context"]
    )
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    return Connection(
        server=cluster["server"],
        ca_path=cluster.get("certificate-authority"),
        token=user.get("token"),
    )


async def main_async(args: argparse.Namespace) -> None:
    connection = connection_from_kubeconfig(args.kubeconfig)
    api = KubernetesApi(connection, timeout=None)
    network = PodNetwork(args.state, cidr=args.cidr, bridge=args.bridge)
    network.up()
    kubelet = ProcessKubelet(api, args.node, network, args.state)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await kubelet.register()
    api_server = urlsplit(connection.server)
    tasks = [loop.create_task(kubelet.heartbeat()), loop.create_task(kubelet.watch()),
             loop.create_task(forward(listen=(network.gateway, API_SERVER_PORT),
                                      target=(api_server.hostname or "127.0.0.1", api_server.port or 443)))]  # fmt: skip
    (args.state / "ready").write_text(json.dumps({"node": args.node, "pid": os.getpid()}))
    await stop.wait()
    for task in tasks:
        task.cancel()
    await kubelet.shutdown()
    network.down()
    await api.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--node", default="modelops-local")
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--cidr", default=os.environ.get("MODELOPS_POD_CIDR", "10.213.0.0/16"))
    parser.add_argument("--bridge", default=os.environ.get("MODELOPS_BRIDGE", "mobr0"))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(main_async(parser.parse_args()))
