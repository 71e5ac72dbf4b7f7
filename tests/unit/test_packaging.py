"""The operator's wheel holds the operator only: no local-cluster code, and no runtime
dependency the operator does not import."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_operator_wheel_holds_no_local_cluster_code(tmp_path: Path) -> None:
    # Built from a copy of the whole checkout (setuptools leaves a build/ folder behind).
    source = tmp_path / "source"
    shutil.copytree(
        REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "*cache*", "build")
    )
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    [wheel] = tmp_path.glob("modelops-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = Parser().parsestr(
            archive.read(next(n for n in names if n.endswith("METADATA"))).decode()
        )
    packages = {name.split("/")[0] for name in names}
    assert packages == {"modelops", "modelops-0.1.0.dist-info"}, packages
    assert not [
        n
        for n in names
        if any(word in n for word in ("devstack", "modelops_dev", "kubelet", "router", "demo"))
    ]
    runtime = [r for r in metadata.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert not [r for r in runtime if r.startswith(("rich", "kubernetes"))], runtime
    cli = [r for r in metadata.get_all("Requires-Dist") or [] if 'extra == "cli"' in r]
    assert cli and cli[0].startswith("rich")
