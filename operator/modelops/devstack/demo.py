"""The local walk-through (until the full lifecycle demo lands): a real control plane, the
operator, and the example ModelDeployment turned into a KServe InferenceService.

    python -m modelops.devstack.demo [--keep]     (make demo)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from modelops.devstack.binaries import REPO_ROOT, ensure_binaries
from modelops.devstack.control_plane import DEFAULT_STATE_DIR, ControlPlane

EXAMPLE = REPO_ROOT / "examples" / "fraud-detector.yaml"


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    parser.add_argument("--dir", type=Path, default=DEFAULT_STATE_DIR.parent / "demo")
    args = parser.parse_args(argv)

    say("control-plane binaries (built once from Go modules, then cached)")
    binaries = ensure_binaries()
    started = time.monotonic()
    if (args.dir / "state.json").exists():
        ControlPlane.load(args.dir).stop()  # a stack a previous `--keep` run left behind
    shutil.rmtree(args.dir, ignore_errors=True)  # every demo starts from an empty cluster
    plane = ControlPlane(args.dir)
    plane.start(binaries, progress=True)
    operator: subprocess.Popen[bytes] | None = None
    try:
        say("operator: modelops run")
        log = (plane.logs / "operator.log").open("ab")
        env = {**os.environ, "KUBECONFIG": str(plane.operator_kubeconfig)}
        operator = subprocess.Popen(
            [sys.executable, "-m", "modelops.cli", "run", "--liveness", "none", "--metrics-port", "0"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        manifest = yaml.safe_load(EXAMPLE.read_text())
        name = manifest["metadata"]["name"]
        say(f"apply {EXAMPLE.relative_to(REPO_ROOT)}")
        plane.request(
            "POST", "/apis/modelops.io/v1alpha1/namespaces/default/modeldeployments", manifest
        )
        plane.wait_for(
            f"/apis/serving.kserve.io/v1beta1/namespaces/default/inferenceservices/{name}",
            lambda found: bool(found),
            what="the operator to write the InferenceService",
        )
        say(f"InferenceService written {time.monotonic() - started:.1f}s after start")
        kubectl = [str(binaries.kubectl), "--kubeconfig", str(plane.kubeconfig)]
        subprocess.run([*kubectl, "get", "modeldeployments,inferenceservices"], check=False)
        subprocess.run([*kubectl, "get", "inferenceservice", name, "-o", "yaml"], check=False)
        subprocess.run(
            [*kubectl, "get", "events", "--field-selector", f"involvedObject.name={name}"],
            check=False,
        )
        if args.keep:
            say("the stack keeps running; explore it with:")
            print(f"export KUBECONFIG={plane.kubeconfig}")
            print(
                f"stop it with: hack/control-plane down --dir {args.dir}  (operator pid {operator.pid})"
            )
            return 0
    finally:
        if not args.keep:
            if operator is not None:
                operator.terminate()
                operator.wait(timeout=20)
            plane.stop()
            say("stopped everything the demo started")
    return 0


if __name__ == "__main__":
    sys.exit(main())
