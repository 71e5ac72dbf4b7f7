"""The kopf edge: the operator's start-up, login, liveness and clean-up. The watches that feed
the reconciler are the controller's own (controller/watches.py): kopf's per-object machinery
took most of the CPU of a burst. The only modules that import kopf are this package's."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from modelops.adapters.kubernetes import KubernetesApi
from modelops.controller.config import OperatorConfig
from modelops.controller.events import EventRecorder
from modelops.controller.leader import LeaderElector
from modelops.controller.reconciler import Reconciler
from modelops.controller.watches import Watches
from modelops.core.leases import lease_name
from modelops.handlers.connection import connection_from, login


def user_agent(config: OperatorConfig) -> str:
    """Names the shard, and the replica when there are several: the audit log tells apart
    which process wrote what."""
    agent = f"modelops shard={config.shard.display}"
    election = config.leader_election
    return f"{agent} replica={election.identity}" if election else agent


class Runtime:
    """Operator-wide state, shared by every handler through kopf's memo."""

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        self.reconciler: Reconciler | None = None
        self.api: KubernetesApi | None = None
        self.watches: Watches | None = None
        self.events: EventRecorder | None = None
        self.settings: kopf.OperatorSettings | None = None
        self.elector: LeaderElector | None = None
        self.stop = asyncio.Event()
        """Set when this replica lost its lease: kopf stops, the process exits non-zero. An
        asyncio event, not a threading one: kopf waits on a threading.Event in an executor
        thread that nothing wakes on SIGTERM, and the interpreter hangs joining it at exit."""
        self.lost_leadership = False
        self._election: asyncio.Task[None] | None = None

    def current_api(self) -> KubernetesApi:
        assert self.api is not None, "the watches start after the first login"
        return self.api

    async def use(self, info: kopf.ConnectionInfo) -> None:
        """Talk to the API server with these credentials from now on."""
        previous = self.api
        config = self.config
        self.api = KubernetesApi(
            connection_from(info),
            user_agent=user_agent(config),
            qps=config.kube_api_qps,
            burst=config.kube_api_burst,
            may_write=self.may_write,
        )
        if self.reconciler is None:
            self.events = EventRecorder(self.current_api)
            self.reconciler = Reconciler(self.api, self.events.post, config=config)
            self.watches = Watches(self.current_api, self.reconciler, config, self.relogin)
            self._lead_or_compete()
        else:
            self.reconciler.use_api(self.api)
        if previous is not None:
            await previous.close()

    def may_write(self) -> bool:
        return self.elector is None or self.elector.is_leading()

    def _lead_or_compete(self) -> None:
        """Watch (and so write) at once as the only replica, or once elected."""
        assert self.watches is not None
        election = self.config.leader_election
        if election is None:
            self.watches.start()
            return
        self.elector = LeaderElector(
            self.current_api,
            election.namespace,
            lease_name(self.config.shard.name),
            election.identity,
            election.timing,
            started=self.watches.start,
            stopped=self._lost,
        )
        self._election = asyncio.get_running_loop().create_task(self.elector.run())

    def _lost(self) -> None:
        self.lost_leadership = True
        self.stop.set()

    async def close(self) -> None:
        """Stop watching, send the Events still queued, hand the lease on, log out."""
        if self.watches is not None:
            await self.watches.stop()
        if self.events is not None:
            await self.events.flush()
        if self._election is not None:
            self._election.cancel()
            await asyncio.gather(self._election, return_exceptions=True)
        if self.elector is not None:
            await self.elector.release()
        if self.api is not None:
            await self.api.close()

    async def relogin(self) -> None:
        """The API server answered 401: credentials expired (a rotated ServiceAccount token)."""
        info = login(self.settings or kopf.OperatorSettings())
        if info is not None:
            await self.use(info)


def run(config: OperatorConfig, *, verbose: bool, json_logs: bool, liveness: str | None) -> int:
    """Start the operator: kopf for its life cycle, the configuration in its memo. Returns the
    exit code: 1 when this replica lost its lease (its pod restarts as a standby)."""
    kopf.configure(
        verbose=verbose, log_format=kopf.LogFormat.JSON if json_logs else kopf.LogFormat.FULL
    )
    if not verbose:
        # kopf logs every handled watch event; with many deployments that drowns our own lines.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    runtime = Runtime(config)
    kopf.run(
        clusterwide=True,  # kopf itself watches nothing
        liveness_endpoint=liveness,
        standalone=True,
        memo=kopf.Memo(runtime=runtime),
        stop_flag=runtime.stop,
    )
    return 1 if runtime.lost_leadership else 0


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.peering.standalone = True
    # kopf watches nothing itself (controller/watches.py does, with the shard's selectors), so
    # it needs no scanning of CRDs or namespaces, which the chart's RBAC would not grant.
    settings.scanning.disabled = True


@kopf.on.login()
async def authenticate(
    settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any
) -> kopf.ConnectionInfo | None:
    """The watches and writes use these credentials; a re-login refreshes them."""
    info = login(settings)
    runtime: Runtime | None = getattr(memo, "runtime", None)
    if info is not None and runtime is not None:
        runtime.settings = settings
        await runtime.use(info)
    return info


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    await runtime.close()


logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
