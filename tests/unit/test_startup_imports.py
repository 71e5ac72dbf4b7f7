"""The operator starts without its heavy optional parts: MLflow (imported when a registry is
first asked), no KServe SDK at all, no data-science stack, no demo UI. What the image's
start-up costs is what `modelops run` imports."""

from __future__ import annotations

import json
import subprocess
import sys

# `kubernetes` is left out: kopf imports it when it is installed, which it is in the dev
# environment (tests use it) and not in the image (pyproject.toml).
HEAVY = ("mlflow", "kserve", "numpy", "pandas", "sklearn", "scipy", "rich", "pyarrow",
         "cloudevents")  # fmt: skip


def test_modelops_run_imports_none_of_the_heavy_packages() -> None:
    code = (
        "import json, sys\n"
        "import modelops.cli, modelops.handlers\n"
        "modelops.cli.build_parser()\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60)  # fmt: skip
    loaded = set(json.loads(result.stdout))
    assert "kopf" in loaded and "modelops" in loaded  # the check sees real imports
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
