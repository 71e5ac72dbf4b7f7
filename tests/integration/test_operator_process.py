"""`modelops run` as people start it: JSON logs on request, a namespace list, liveness."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from modelops_dev.control_plane import ControlPlane
from tests.integration.conftest import free_port, liveness_ok, wait_for


def test_json_logs_and_a_watched_namespace_list(
    control_plane: ControlPlane, tmp_path: object
) -> None:
    port = free_port()
    env = {**os.environ, "KUBECONFIG": str(control_plane.operator_kubeconfig)}
    process = subprocess.Popen(
        [sys.executable, "-m", "modelops.cli", "run", "--log-format", "json", "-n", "only-here",
         "--liveness", f"http://127.0.0.1:{port}/healthz", "--metrics-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        wait_for(lambda: liveness_ok(port), timeout=60, what="the liveness endpoint")
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    lines = [line for line in output.decode().splitlines() if line.strip()]
    assert lines, "the operator logged nothing"
    records = [json.loads(line) for line in lines]  # every line is a JSON object
    assert all("message" in record for record in records)
    assert not any("Traceback" in line for line in lines)
