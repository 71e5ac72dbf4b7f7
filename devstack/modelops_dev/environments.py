"""The Python environments behind the images the process kubelet runs and the servers the
local stack starts (development only).

Each is a venv under ~/.cache/modelops/envs/<name>-<digest of its pinned requirements>, built
once with pip and reused: a changed pin gets a new folder. A venv is not relocatable, so it is
built in place and only counts once its `.complete` marker exists; a file lock keeps two
processes (a test run and `modelops-dev up`) from building the same one at once.

- models: MLServer 1.7.1 with its scikit-learn and MLflow runtimes (what KServe's
  `kserve-mlserver` runtime image runs), MLflow (the `mlflow server` of the stack, and the
  trainers' client) and scikit-learn.
- kserve-storage: KServe's storage initializer library (what `kserve/storage-initializer` runs).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from modelops_dev.binaries import CACHE_ROOT


@dataclass(frozen=True)
class Environment:
    name: str
    requirements: tuple[str, ...]

    @property
    def path(self) -> Path:
        digest = hashlib.sha256("\n".join(self.requirements).encode()).hexdigest()[:10]
        return CACHE_ROOT / "envs" / f"{self.name}-{digest}"

    @property
    def ready(self) -> bool:
        return (self.path / ".complete").is_file()

    def bin(self, tool: str) -> Path:
        return self.path / "bin" / tool

    def ensure(self, *, progress: bool = True) -> Path:
        """The venv, built now if it is missing or half-built."""
        if self.ready:
            return self.path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(self.path.with_name(self.path.name + ".lock")):
            if self.ready:
                return self.path
            started = time.monotonic()
            if progress:
                print(f"[envs] building {self.name}: pip install {' '.join(self.requirements)}",
                      file=sys.stderr, flush=True)  # fmt: skip
            shutil.rmtree(self.path, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(self.path)], check=True)
            pip = [str(self.bin("python")), "-m", "pip", "install", "--quiet",
                   "--disable-pip-version-check"]  # fmt: skip
            subprocess.run([*pip, "--upgrade", "pip"], check=True, stdout=sys.stderr)
            subprocess.run([*pip, *self.requirements], check=True, stdout=sys.stderr)
            (self.path / ".complete").write_text("\n".join(self.requirements) + "\n")
            if progress:
                print(f"[envs] {self.name} built in {time.monotonic() - started:.0f}s",
                      file=sys.stderr, flush=True)  # fmt: skip
        return self.path


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


MLSERVER_VERSION = "1.7.1"
MODELS = Environment(
    "models",
    (
        f"mlserver=={MLSERVER_VERSION}",
        f"mlserver-sklearn=={MLSERVER_VERSION}",
        f"mlserver-mlflow=={MLSERVER_VERSION}",
        "mlflow[auth]==3.17.2",  # auth: the basic-auth app for credential tests
        "scikit-learn==1.9.1",
    ),
)
STORAGE = Environment("kserve-storage", ("kserve-storage==0.21.0",))
ALL = (MODELS, STORAGE)


def ensure_all(*, progress: bool = True) -> None:
    """Build every missing environment, in parallel (pip mostly waits on downloads)."""
    missing = [env for env in ALL if not env.ready]
    if len(missing) <= 1:
        for env in missing:
            env.ensure(progress=progress)
        return
    with ThreadPoolExecutor(len(missing)) as pool:
        for future in [pool.submit(env.ensure, progress=progress) for env in missing]:
            future.result()


if __name__ == "__main__":
    ensure_all()
    for environment in ALL:
        print(f"{environment.name}: {environment.path}")
