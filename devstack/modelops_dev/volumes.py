"""Pod volumes for the process kubelet (development only): a host folder (or file) per
volume, bind-mounted at its mountPaths by `mounts` in the container's own mount namespace.

emptyDir, hostPath, configMap and secret keys, and projected sources (ServiceAccount tokens
through TokenRequest, ConfigMaps, Secrets, downward API) are supported.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from modelops.adapters.kubernetes import KubernetesApi

logger = logging.getLogger("modelops.kubelet")

# (pod, {fieldRef: ...}) -> the value, as the kubelet resolves env fieldRefs.
ValueFrom = Callable[[dict[str, Any], dict[str, Any]], Awaitable[str | None]]


async def prepare_volumes(
    api: KubernetesApi, pod: dict[str, Any], root: Path, value_from: ValueFrom
) -> dict[str, Path]:
    """A host folder (or file) per volume: emptyDir, configMap, secret, projected, hostPath."""
    namespace = pod["metadata"]["namespace"]
    prepared: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes", []):
        name = volume["name"]
        if "hostPath" in volume:
            prepared[name] = Path(volume["hostPath"]["path"])
            continue
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume:
            await write_keys(api, folder, namespace, "configmaps", volume["configMap"])
        elif "secret" in volume:
            ref = {**volume["secret"], "name": volume["secret"]["secretName"]}
            await write_keys(api, folder, namespace, "secrets", ref)
        elif "projected" in volume:
            for source in volume["projected"].get("sources", []):
                await project(api, folder, pod, source, value_from)
        elif "emptyDir" not in volume:
            logger.warning("Volume %s of pod %s/%s: type not supported, left empty",
                           name, namespace, pod["metadata"]["name"])  # fmt: skip
        prepared[name] = folder
    return prepared


async def write_keys(
    api: KubernetesApi, folder: Path, namespace: str, plural: str, ref: dict[str, Any]
) -> None:
    found = await api.get(f"/api/v1/namespaces/{namespace}/{plural}/{ref['name']}")
    if found is None:
        if ref.get("optional"):
            return
        raise ValueError(f"{plural[:-1]} {namespace}/{ref['name']} not found")
    data = dict(found.get("data") or {})
    if plural == "secrets":
        data = {k: base64.b64decode(v).decode() for k, v in data.items()}
    items = ref.get("items") or [{"key": k, "path": k} for k in data]
    for item in items:
        if item["key"] in data:
            target = folder / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(data[item["key"]])


async def project(
    api: KubernetesApi,
    folder: Path,
    pod: dict[str, Any],
    source: dict[str, Any],
    value_from: ValueFrom,
) -> None:
    meta = pod["metadata"]
    if "serviceAccountToken" in source:
        request = source["serviceAccountToken"]
        account = pod["spec"].get("serviceAccountName", "default")
        spec: dict[str, Any] = {
            "expirationSeconds": request.get("expirationSeconds", 3607),
            "boundObjectRef": {
                "kind": "Pod",
                "apiVersion": "v1",
                "name": meta["name"],
                "uid": meta["uid"],
            },
        }
        if request.get("audience"):
            spec["audiences"] = [request["audience"]]
        token = await api.request(
            "POST", f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec},
        )  # fmt: skip
        (folder / request["path"]).write_text(token["status"]["token"])
    elif "configMap" in source:
        await write_keys(api, folder, meta["namespace"], "configmaps", source["configMap"])
    elif "secret" in source:
        await write_keys(api, folder, meta["namespace"], "secrets", source["secret"])
    elif "downwardAPI" in source:
        for item in source["downwardAPI"].get("items", []):
            value = await value_from(pod, item) if "fieldRef" in item else None
            if value is not None:
                (folder / item["path"]).write_text(value)
