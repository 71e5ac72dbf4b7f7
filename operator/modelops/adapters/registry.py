"""The MLflow Model Registry, through MLflow's own client stores (mlflow-skinny).

MLflow's client blocks, so every call runs in a worker thread and kopf's event loop never
waits on the registry; each registry has threads of its own, so one that hangs ties up only
those (not other registries' lookups, nor the threads the rest of the operator uses). Credentials travel in explicit host credentials per registry (never in
the process environment, a log line or an error message). MLflow's client retries for minutes
by default; the operator retries on its own schedule, so its calls fail fast instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from modelops.core.inference_logging import PROFILE_ARTIFACT
from modelops.core.registry import VersionAnswer

T = TypeVar("T")

THREADS_PER_REGISTRY = 4
REQUEST_TIMEOUT_SECONDS = 10
"""Per request to the registry, unless MLFLOW_HTTP_REQUEST_TIMEOUT says otherwise."""

# Fail fast: the reconciler's backoff, not MLflow's four minutes of retries, decides.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(REQUEST_TIMEOUT_SECONDS))

# Artifact downloads read credentials from the environment only: one at a time.
_ENVIRONMENT_LOCK = threading.Lock()
_CONNECTION_VARIABLES = (
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
)


@dataclass(frozen=True)
class RegistryConnection:
    tracking_uri: str
    token: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    def host_credentials(self) -> Any:
        from mlflow.utils.rest_utils import MlflowHostCreds

        return MlflowHostCreds(
            self.tracking_uri, username=self.username, password=self.password, token=self.token
        )

    def environment(self) -> dict[str, str]:
        values = {
            "MLFLOW_TRACKING_URI": self.tracking_uri,
            "MLFLOW_REGISTRY_URI": self.tracking_uri,
            "MLFLOW_TRACKING_TOKEN": self.token,
            "MLFLOW_TRACKING_USERNAME": self.username,
            "MLFLOW_TRACKING_PASSWORD": self.password,
        }
        return {key: value for key, value in values.items() if value}


class RegistryError(Exception):
    """A registry answer the operator reports: `reason` is a condition reason."""

    def __init__(self, reason: str, message: str, *, retry: bool) -> None:
        super().__init__(message)
        self.reason, self.message, self.retry = reason, message, retry


def _translate(error: Exception, what: str) -> RegistryError:
    """MLflow's exceptions as reasons a person can act on (no credentials in messages)."""
    from mlflow.exceptions import MlflowException, RestException

    if isinstance(error, RestException):  # the server answered with an error
        code = str(getattr(error, "error_code", ""))
        text = str(error.message)
        if code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or (
            code == "INVALID_PARAMETER_VALUE" and "not found" in text.lower()
        ):
            return RegistryError("NotFound", f"{what} does not exist in the registry", retry=False)
        if code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
            return RegistryError(
                "PermissionDenied",
                f"the registry refused access to {what} ({code}); check the credentials Secret",
                retry=False,
            )
        if code == "INVALID_PARAMETER_VALUE":
            return RegistryError("InvalidRequest", f"{what}: {text}", retry=False)
        return RegistryError("RegistryError", f"{what}: the registry answered {code}", retry=True)
    if isinstance(error, MlflowException):
        text = str(error.message)
        if "401" in text or "403" in text:
            return RegistryError(
                "PermissionDenied",
                f"the registry refused access to {what}; check the credentials Secret",
                retry=False,
            )
        # Transport failures (refused, reset, timed out) and answers that are not MLflow's
        # JSON (a proxy's 503 page) surface as MlflowException.
        status = re.search(r"error code (\d{3})", text)
        if status is not None:
            return RegistryError(
                "RegistryError", f"{what}: the registry answered HTTP {status[1]}", retry=True
            )
        why = " (timed out)" if "timed out" in text.lower() else ""
        return RegistryError(
            "RegistryUnreachable", f"cannot reach the registry for {what}{why}", retry=True
        )
    return RegistryError(
        "RegistryUnreachable", f"cannot reach the registry ({type(error).__name__})", retry=True
    )


VALIDATION_TAG = "modelops.io/validation"
RUN_ENDED = frozenset({"FINISHED", "FAILED", "KILLED"})


class Registry:
    """One MLflow registry (tracking URI + credentials)."""

    def __init__(self, connection: RegistryConnection) -> None:
        from mlflow.store.model_registry.rest_store import RestStore as ModelStore
        from mlflow.store.tracking.rest_store import RestStore as TrackingStore

        self.connection = connection
        self._flavor_cache: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}
        self._profiled_runs: set[str] = set()
        self._download_uris: dict[tuple[str, str], str] = {}
        self._ended_run_tags: dict[str, tuple[tuple[str, str], ...]] = {}
        self._models = ModelStore(connection.host_credentials)
        self._runs = TrackingStore(connection.host_credentials)
        self._threads = ThreadPoolExecutor(THREADS_PER_REGISTRY, thread_name_prefix="registry")

    async def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, call)
        except Exception as error:
            raise _translate(error, what) from None

    async def resolve(
        self,
        name: str,
        *,
        version: str | None = None,
        alias: str | None = None,
        check_profile: bool = False,
    ) -> VersionAnswer:
        """A version (pinned, or where `alias` points now) with what deploying it needs (and,
        with `check_profile`, whether its run logged a reference profile)."""
        if alias is not None:
            found = await self._call(
                f"alias {alias!r} of model {name!r}",
                lambda: self._models.get_model_version_by_alias(name, alias),
            )
        else:
            found = await self._call(
                f"version {version} of model {name!r}",
                lambda: self._models.get_model_version(name, version),
            )
        number = str(found.version)
        what = f"version {number} of model {name!r}"
        # A poll that finds the same version asks only for the alias: a version's download
        # URI never changes, nor (in practice) the tags of a run that has ended.
        download_uri = self._download_uris.get((name, number))
        if download_uri is None:
            download_uri = str(await self._call(
                what, lambda: self._models.get_model_version_download_uri(name, number)
            ))  # fmt: skip
            self._download_uris[(name, number)] = download_uri
        tags: tuple[tuple[str, str], ...] = ()
        if found.run_id:
            tags = await self._run_tags(found.run_id)
        flavors: tuple[tuple[str, str], ...] = ()
        if found.status == "READY":
            # A version's MLmodel never changes: read it once, not at every poll.
            cached = self._flavor_cache.get((name, number))
            if cached is None:
                cached = await self._call(what, lambda: self._flavors(name, number))
                self._flavor_cache[(name, number)] = cached
            flavors = cached
        profile = None
        if check_profile and found.run_id:
            profile = await self._has_profile(found.run_id)
        return VersionAnswer(
            version=number, status=str(found.status), download_uri=download_uri,
            status_message=found.status_message or None, run_id=found.run_id or None,
            source=str(found.source or ""), flavors=flavors,
            run_tags=tags, reference_profile=profile,
        )  # fmt: skip

    async def _run_tags(self, run_id: str) -> tuple[tuple[str, str], ...]:
        """The tags of the run that logged a version (kept once the run has ended)."""
        cached = self._ended_run_tags.get(run_id)
        if cached is not None:
            return cached
        run = await self._call(f"run {run_id}", lambda: self._runs.get_run(run_id))
        tags = tuple(sorted(dict(run.data.tags).items()))
        if run.info.status in RUN_ENDED:
            self._ended_run_tags[run_id] = tags
        return tags

    async def find_candidate(
        self, name: str, tag: tuple[str, str], alias: str | None = None, scan: int = 50
    ) -> str | None:
        """The version a retraining run registered: where `alias` points, or else the newest
        READY version; either only when the version or its run carries `tag` (so a stale alias,
        or a version the trainer judged worse and did not propose, is never picked up)."""
        key, value = tag

        def carries(found: Any) -> bool:
            if (found.tags or {}).get(VALIDATION_TAG) == "worse":
                return False  # registered for the record, not proposed
            if (found.tags or {}).get(key) == value:
                return True
            if not found.run_id:
                return False
            return bool(self._runs.get_run(found.run_id).data.tags.get(key) == value)

        def search() -> str | None:
            if alias is not None:
                try:
                    found = self._models.get_model_version_by_alias(name, alias)
                except Exception as error:
                    if "RESOURCE_DOES_NOT_EXIST" in str(error) or "not found" in str(error).lower():
                        return None
                    raise
                return str(found.version) if found.status == "READY" and carries(found) else None
            versions = self._models.search_model_versions(
                "name='{}'".format(name.replace("'", "\\'")),
                max_results=scan,
                order_by=["version_number DESC"],
            )
            for found in versions:
                if found.status == "READY" and carries(found):
                    return str(found.version)
            return None

        return await self._call(f"versions of model {name!r}", search)

    def _flavors(self, name: str, version: str) -> tuple[tuple[str, str], ...]:
        """(flavor, its model file) from the version's MLmodel."""
        with tempfile.TemporaryDirectory() as folder, self._environment():
            import mlflow.artifacts

            path = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{version}/MLmodel", dst_path=folder
            )
            document = yaml.safe_load(Path(path).read_text()) or {}
        found = []
        for flavor, config in (document.get("flavors") or {}).items():
            config = config if isinstance(config, dict) else {}
            file = config.get("pickled_model") or config.get("data") or config.get("model_path")
            found.append((str(flavor), str(file or "")))
        return tuple(sorted(found))

    def _listed(self, run_id: str, path: str) -> bool:
        """Whether the run has an artifact at `path` (MLflow's download of a missing path
        fails like any other download: ask the listing instead)."""
        import mlflow.artifacts

        folder = path.rsplit("/", 1)[0] if "/" in path else None
        with self._environment():
            found = mlflow.artifacts.list_artifacts(
                run_id=run_id, artifact_path=folder, tracking_uri=self.connection.tracking_uri
            )
        return any(f.path == path for f in found or [])

    async def _has_profile(self, run_id: str) -> bool:
        """Whether the run logged a reference profile (a logged one is remembered: artifacts
        are not taken back; a missing one is asked again at the next poll)."""
        if run_id in self._profiled_runs:
            return True
        if await self._call(
            f"artifacts of run {run_id}", lambda: self._listed(run_id, PROFILE_ARTIFACT)
        ):
            self._profiled_runs.add(run_id)
            return True
        return False

    async def run_artifact_text(self, name: str, version: str, path: str) -> str | None:
        """A text artifact of the run that logged `version` of `name`, or None if that run did
        not log one (a registry error still raises)."""
        found = await self._call(
            f"version {version} of model {name!r}",
            lambda: self._models.get_model_version(name, version),
        )
        run_id = found.run_id
        if not run_id:
            return None

        def read() -> str | None:
            import mlflow.artifacts

            if not self._listed(run_id, path):
                return None
            with tempfile.TemporaryDirectory() as folder, self._environment():
                local = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=path, dst_path=folder,
                    tracking_uri=self.connection.tracking_uri,
                )  # fmt: skip
                return Path(local).read_text()

        return await self._call(f"artifact {path} of version {version} of model {name!r}", read)

    @contextlib.contextmanager
    def _environment(self) -> Iterator[None]:
        with _ENVIRONMENT_LOCK:
            saved = {key: os.environ.pop(key, None) for key in _CONNECTION_VARIABLES}
            os.environ.update(self.connection.environment())
            try:
                yield
            finally:
                for key in _CONNECTION_VARIABLES:
                    os.environ.pop(key, None)
                    if saved[key] is not None:
                        os.environ[key] = saved[key]  # type: ignore[assignment]

    async def set_alias(self, name: str, alias: str, version: str) -> None:
        await self._call(
            f"alias {alias!r} of model {name!r}",
            lambda: self._models.set_registered_model_alias(name, alias, version),
        )

    async def tag_version(self, name: str, version: str, key: str, value: str) -> None:
        from mlflow.entities.model_registry import ModelVersionTag

        await self._call(
            f"version {version} of model {name!r}",
            lambda: self._models.set_model_version_tag(name, version, ModelVersionTag(key, value)),
        )


def download(uri: str, destination: Path, tracking_uri: str | None = None) -> Path:
    """What the storage initializer does: fetch a model's files (models:/, mlflow-artifacts:/,
    runs:/) through MLflow into `destination`, as real files."""
    import mlflow.artifacts

    destination.mkdir(parents=True, exist_ok=True)
    path = mlflow.artifacts.download_artifacts(
        artifact_uri=uri, dst_path=str(destination), tracking_uri=tracking_uri
    )
    return Path(path)
