"""Run a command with the pod's volumes at their mountPaths, in a private mount namespace.

    unshare --mount --propagation private python -m modelops_dev.mounts SPEC -- ARGV...

SPEC is JSON: {"mounts": [[host_folder, mount_path, read_only], ...], "keep": [host_path, ...]}.
A mount path whose parents do not exist gets a tmpfs on its deepest existing ancestor first
(inside this namespace only), so nothing is created on the host's filesystem. A "keep" path that
a volume hides (the stack's interpreter, code and pod folder, when they live under /tmp and the
pod mounts an emptyDir at /tmp) is bound back at the same path inside that volume: on a cluster
they are the image's files, which volumes never hide.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _mount(*args: str) -> None:
    # Sources are /proc/PID/fd/N handles: --no-canonicalize keeps mount(8) from resolving them
    # to their path text, which after an earlier mount may name a different (or no) folder.
    subprocess.run(["mount", *args], check=True)


def _protected(path: Path) -> bool:
    """Folders a tmpfs must not hide: they hold the interpreter, the pod's files or the root."""
    keep = [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), Path.cwd().resolve()]
    return path == Path("/") or any(k == path or path in k.parents for k in keep)


def prepare(target: Path, mounted: set[Path]) -> None:
    if target.exists():
        return
    ancestor = target
    while not ancestor.exists():
        ancestor = ancestor.parent
    ancestor = ancestor.resolve()
    # Inside a volume mounted here, a missing folder belongs in the volume.
    if not _protected(ancestor) and not any(
        m == ancestor or m in ancestor.parents for m in mounted
    ):
        _mount("-t", "tmpfs", "-o", "mode=755", "tmpfs", str(ancestor))
    target.mkdir(parents=True, exist_ok=True)


def main(argv: list[str]) -> None:
    spec, separator, *command = argv
    if separator != "--" or not command:
        raise SystemExit("usage: mounts SPEC -- COMMAND...")
    parsed = json.loads(spec)
    mounts = sorted(parsed["mounts"], key=lambda m: len(Path(m[1]).parts))
    keep = [Path(k) for k in parsed.get("keep", []) if Path(k).exists()]
    # Held open before anything is mounted: a volume at /tmp would otherwise hide the host
    # folders of the others (the kubelet keeps them under its state folder, often in /tmp).
    handles = {source: os.open(source, os.O_PATH) for source, _, _ in mounts}
    kept = {path: os.open(path, os.O_PATH) for path in keep}
    mounted: set[Path] = set()
    for source, target, read_only in mounts:
        path = Path(target)
        if Path(f"/proc/self/fd/{handles[source]}").is_file():
            prepare(path.parent, mounted)
            path.touch(exist_ok=True)
        else:
            prepare(path, mounted)
        _mount("--no-canonicalize", "--bind", f"/proc/{os.getpid()}/fd/{handles[source]}", target)
        mounted.add(path.resolve())
        if read_only:
            _mount("-o", "remount,bind,ro", target)
    for path, handle in kept.items():
        resolved = path.resolve()
        if any(m in resolved.parents for m in mounted):
            try:
                resolved.mkdir(parents=True, exist_ok=True)
            except OSError:  # under a read-only volume: it stays hidden, as it would be
                continue
            _mount("--no-canonicalize", "--bind", f"/proc/{os.getpid()}/fd/{handle}", str(resolved))
    for handle in [*handles.values(), *kept.values()]:
        os.close(handle)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
