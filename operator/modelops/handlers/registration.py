"""The kopf edge: the operator's start-up, login, liveness and clean-up. The watches that feed
the reconciler are the controller's own (controller/watches.py): kopf's per-object machinery
took most of the CPU of a burst. The only modules that import kopf are this package's."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from modelops.adapters.kubernetes import KubernetesApi
from modelops.controller.config import OperatorConfig
from modelops.controller.events import EventRecorder
from modelops.controller.reconciler import Reconciler
from modelops.controller.watches import Watches
from modelops.handlers.connection import connection_from, login


class Runtime:
    """Operator-wide state, shared by every handler through kopf's memo."""

    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        self.reconciler: Reconciler | None = None
        self.api: KubernetesApi | None = None
        self.watches: Watches | None = None
        self.events: EventRecorder | None = None
        self.settings: kopf.OperatorSettings | None = None

    def current_api(self) -> KubernetesApi:
        assert self.api is not None, "the watches start after the first login"
        return self.api

    async def use(self, info: kopf.ConnectionInfo) -> None:
        """Talk to the API server with these credentials from now on."""
        previous = self.api
        config = self.config
        self.api = KubernetesApi(
            connection_from(info),
            user_agent=f"modelops shard={config.shard.display}",
            qps=config.kube_api_qps,
            burst=config.kube_api_burst,
        )
        if self.reconciler is None:
            self.events = EventRecorder(self.current_api)
            self.reconciler = Reconciler(self.api, self.events.post, config=config)
            self.watches = Watches(self.current_api, self.reconciler, config, self.relogin)
            self.watches.start()
        else:
            self.reconciler.use_api(self.api)
        if previous is not None:
            await previous.close()

    async def relogin(self) -> None:
        """The API server answered 401: credentials expired (a rotated ServiceAccount token)."""
        info = login(self.settings or kopf.OperatorSettings())
        if info is not None:
            await self.use(info)


def run(config: OperatorConfig, *, verbose: bool, json_logs: bool, liveness: str | None) -> None:
    """Start the operator: kopf for its life cycle, the configuration in its memo."""
    kopf.configure(
        verbose=verbose, log_format=kopf.LogFormat.JSON if json_logs else kopf.LogFormat.FULL
    )
    if not verbose:
        # kopf logs every handled watch event; with many deployments that drowns our own lines.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    kopf.run(
        clusterwide=True,  # kopf itself watches nothing
        liveness_endpoint=liveness,
        standalone=True,
        memo=kopf.Memo(runtime=Runtime(config)),
    )


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
    if runtime.watches is not None:
        await runtime.watches.stop()
    if runtime.events is not None:
        await runtime.events.flush()
    if runtime.api is not None:
        await runtime.api.close()


logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
