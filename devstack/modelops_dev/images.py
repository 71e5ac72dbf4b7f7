"""Which container images the process kubelet can run here, and as what local command.

Each entry plays an image's part: its ENTRYPOINT/CMD when the container gives no command, the
image's own environment defaults (the container's env overrides them), and the executables
inside it mapped onto a local Python environment. An image with no entry, or whose environment
is not built, cannot run: the kubelet reports why instead of crashing.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modelops_dev.binaries import REPO_ROOT, kserve_home
from modelops_dev.environments import MODELS, STORAGE, Environment

STORAGE_ENTRYPOINT = Path(__file__).with_name("kserve_storage_entrypoint.py")
OPERATOR_IMAGE = "ghcr.io/modelops/modelops:"
TRAINER_IMAGE = "ghcr.io/modelops/trainer:"
TRAINER_SCRIPT = REPO_ROOT / "examples" / "retrain" / "train.py"
PYTHON = re.compile(r"python(3(\.\d+)?)?")


@dataclass(frozen=True)
class LocalImage:
    """How one image runs as a local process."""

    translate: Callable[[list[str], dict[str, str]], list[str] | None]
    env: dict[str, str] = field(default_factory=dict)
    needs: Environment | None = None
    # The image's ENTRYPOINT: a container that gives only `args` runs it with them.
    entrypoint: tuple[str, ...] = ()


@dataclass(frozen=True)
class Unrunnable:
    reason: str
    message: str


def _python_image(argv: list[str], _: dict[str, str]) -> list[str] | None:
    """python:* images run their command with this machine's interpreter."""
    if not argv:
        return None
    return [sys.executable, *argv[1:]] if PYTHON.fullmatch(argv[0]) else argv


def _in_environment(environment: Environment, argv: list[str]) -> list[str]:
    """A command whose program lives in the environment (mlserver, python, ...) runs from it."""
    program = argv[0]
    if PYTHON.fullmatch(program):
        return [str(environment.bin("python")), *argv[1:]]
    local = environment.bin(program)
    return [str(local), *argv[1:]] if local.exists() else argv


def _mlserver(argv: list[str], env: dict[str, str]) -> list[str]:
    # The image's CMD: `mlserver start $MLSERVER_MODELS_DIR`.
    return _in_environment(MODELS, argv or ["mlserver", "start", env["MLSERVER_MODELS_DIR"]])


def _operator(argv: list[str], _: dict[str, str]) -> list[str] | None:
    # The operator image's entrypoint is `modelops` (the storage initializer uses it too).
    if not argv:
        return [sys.executable, "-m", "modelops.cli", "run"]
    if argv[0] == "modelops":
        return [sys.executable, "-m", "modelops.cli", *argv[1:]]
    # The image's python is the operator's own environment (the chart's `helm test` uses it).
    return [sys.executable, *argv[1:]] if PYTHON.fullmatch(argv[0]) else argv


def _trainer(argv: list[str], _: dict[str, str]) -> list[str]:
    # The image's ENTRYPOINT is `python /app/train.py` (examples/retrain/Dockerfile).
    if not argv or argv[:2] == ["python", "/app/train.py"]:
        return [str(MODELS.bin("python")), str(TRAINER_SCRIPT), *argv[2:]]
    return _in_environment(MODELS, argv)


def _kserve_agent(argv: list[str], _: dict[str, str]) -> list[str]:
    # The image's ENTRYPOINT is the agent; the pod mutator gives it only args. The binary is
    # built from the same KServe module as the manager (hack/build-binaries kserve).
    return [str(kserve_home() / "agent"), *argv[1:]]


def _storage_initializer(argv: list[str], _: dict[str, str]) -> list[str]:
    # The image's ENTRYPOINT is KServe's initializer script; the pod gives SRC DEST pairs.
    return [str(STORAGE.bin("python")), str(STORAGE_ENTRYPOINT), *argv]


# Image name prefix -> local image. Longest prefix wins.
IMAGES: dict[str, LocalImage] = {
    "python:": LocalImage(_python_image),
    "docker.io/library/python:": LocalImage(_python_image),
    "docker.io/seldonio/mlserver:": LocalImage(
        _mlserver,
        # The image's ENV; parallel workers are off because MLServer 1.7's worker pool fails
        # on Python 3.11 outside its image ("There is no current event loop").
        env={"MLSERVER_MODELS_DIR": "/mnt/models", "MLSERVER_PARALLEL_WORKERS": "0"},
        needs=MODELS,
    ),
    "kserve/storage-initializer:": LocalImage(_storage_initializer, needs=STORAGE),
    # The inference logger's sidecar, injected by KServe's pod mutator.
    "kserve/agent:": LocalImage(_kserve_agent, entrypoint=("/ko-app/agent",)),
    # This project's own image: the operator, and its MLflow storage initializer.
    OPERATOR_IMAGE: LocalImage(_operator, entrypoint=("modelops",)),
    # The example trainer (examples/retrain): MLflow and scikit-learn, like the models env.
    # Its image installs modelops[monitor] (reference profiles): here the clone's package.
    TRAINER_IMAGE: LocalImage(
        _trainer,
        env={"PYTHONPATH": str(REPO_ROOT / "operator")},
        needs=MODELS,
        entrypoint=("python", "/app/train.py"),
    ),
}


def _local_image(image: str) -> LocalImage | None:
    matches = [prefix for prefix in IMAGES if image.startswith(prefix)]
    return IMAGES[max(matches, key=len)] if matches else None


def container_argv(image: str, command: list[str], args: list[str]) -> list[str]:
    """Docker's rule: `command` replaces the ENTRYPOINT; `args` alone follow it."""
    local = _local_image(image)
    if command or local is None or not args:
        return [*command, *args]
    return [*local.entrypoint, *args]


def local_command(
    image: str, argv: list[str], env: dict[str, str]
) -> tuple[list[str], dict[str, str]] | Unrunnable:
    """The local command line and environment for a container, or why it cannot run."""
    local = _local_image(image)
    if local is None:
        return Unrunnable(
            "ImageNotRunnableLocally",
            f"the process kubelet has no local command for image {image!r}",
        )
    if local.needs is not None and not local.needs.ready:
        return Unrunnable(
            "ImageNotRunnableLocally",
            f"image {image!r} runs from the {local.needs.name!r} environment, which is not built: "
            "run `python -m modelops_dev.environments` (or `modelops-dev up`)",
        )
    merged = {**local.env, **env}
    command = local.translate(argv, merged)
    if command is None:
        return Unrunnable(
            "ImageNotRunnableLocally",
            f"image {image!r} has no default command here; give the container a command",
        )
    return command, merged
