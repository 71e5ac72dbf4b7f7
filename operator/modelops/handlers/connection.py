"""Credentials for the operator: in-cluster ServiceAccount first, then a kubeconfig."""

from __future__ import annotations

import os
from typing import Any

import kopf

from modelops.adapters.kubernetes import Connection

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


def login(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo | None:
    """kopf's own loaders, but in-cluster through the KUBERNETES_SERVICE_* address (kopf's
    default names kubernetes.default.svc, which needs cluster DNS)."""
    info = kopf.login_with_service_account(settings=settings)
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    if info is not None and host:
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        bracketed = f"[{host}]" if ":" in host else host
        return kopf.ConnectionInfo(
            server=f"https://{bracketed}:{port}",
            ca_path=info.ca_path,
            token=info.token,
            default_namespace=info.default_namespace,
            priority=info.priority,
        )
    return info or kopf.login_with_kubeconfig(settings=settings)


def cluster_connection() -> Connection | None:
    """A process's own credentials, as the operator finds them (in-cluster, then kubeconfig)."""
    info = login(kopf.OperatorSettings())
    return None if info is None else connection_from(info)


def kubeconfig_connection() -> Connection | None:
    """The command line's credentials: the kubeconfig (KUBECONFIG, or ~/.kube/config)."""
    info = kopf.login_with_kubeconfig(settings=kopf.OperatorSettings())
    return None if info is None else connection_from(info)


def _text(value: Any) -> str | None:
    return None if value is None else os.fsdecode(value)


def _bytes(value: str | bytes | None) -> bytes | None:
    if value is None:
        return None
    return value.encode() if isinstance(value, str) else value


def connection_from(info: kopf.ConnectionInfo) -> Connection:
    return Connection(
        server=info.server,
        ca_path=_text(info.ca_path),
        ca_data=_bytes(info.ca_data),
        insecure=bool(info.insecure),
        token=info.token,
        username=info.username,
        password=info.password,
        certificate_path=_text(info.certificate_path),
        certificate_data=_bytes(info.certificate_data),
        private_key_path=_text(info.private_key_path),
        private_key_data=_bytes(info.private_key_data),
    )
