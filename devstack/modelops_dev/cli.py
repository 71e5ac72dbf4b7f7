"""The `modelops-dev` command: the local cluster for development and the demo (needs root).

modelops-dev up|down|status|env [--dir DIR]
modelops-dev demo [--keep]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelops-dev",
        description="The local cluster of modelops (development only, needs root): a real "
        "control plane, KServe, MLflow, Prometheus and MLServer on this machine.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for action, help_text in (
        ("up", "start the local cluster; prints KUBECONFIG and the UIs' addresses"),
        ("down", "stop exactly what `up` started; remove its namespaces, veths and bridges"),
        ("status", "each process of the local cluster and whether it runs"),
        ("env", "the export line for the local cluster's KUBECONFIG"),
    ):
        command = commands.add_parser(action, help=help_text)
        command.add_argument(
            "--dir",
            type=Path,
            default=None,
            help="state folder (default ~/.cache/modelops/run/dev)",
        )
    demo = commands.add_parser("demo", help="the whole model lifecycle with a live view")
    demo.add_argument("--keep", action="store_true", help="leave everything running afterwards")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from modelops_dev import demo

        return demo.main(["--keep"] if args.keep else [])
    from modelops_dev import stack

    return stack.main(args.command, args.dir or stack.DEFAULT_DIR)


if __name__ == "__main__":
    sys.exit(main())
