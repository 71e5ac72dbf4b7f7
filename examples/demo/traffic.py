"""Steady prediction requests for the demo: rows of scikit-learn's wine data set, one per
request, through the local router to the deployment's host, until stopped (SIGTERM).

    python traffic.py ROUTER_URL HOST MODEL STATS_FILE [RATE]
        [--segment all|low-alcohol|high-alcohol-new-lab] [--feedback HOST --token-file FILE]

high-alcohol-new-lab: the wines above the median alcohol, with proline reported by a new lab on
another scale (x0.4): a model trained on the low-alcohol wines answers them far worse.

Each request carries its own id (the Ce-Id header, which KServe's inference logger keeps). With
--feedback, the true label of every answered row is sent to the monitor two seconds later (its
logged response has arrived by then), as a client that learns the truth afterwards would.
Every second it rewrites STATS_FILE with {"sent", "ok", "failed", "by_code", "feedback"}.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, deque
from pathlib import Path

import numpy as np
from sklearn.datasets import load_wine

MEDIAN_ALCOHOL = 13.05  # as examples/retrain/train.py
# The new lab of the high-alcohol wines reports proline on another scale.
NEW_LAB_PROLINE_SCALE = 0.4
SEGMENTS = ("all", "low-alcohol", "high-alcohol-new-lab")


def rows_of(segment: str) -> tuple[np.ndarray, np.ndarray]:
    wine = load_wine()
    alcohol = wine.data[:, 0]
    keep = {
        "all": np.ones(len(alcohol), dtype=bool),
        "low-alcohol": alcohol < MEDIAN_ALCOHOL,
        "high-alcohol-new-lab": alcohol >= MEDIAN_ALCOHOL,
    }[segment]
    rows = wine.data[keep].copy()
    if segment == "high-alcohol-new-lab":
        rows[:, list(wine.feature_names).index("proline")] *= NEW_LAB_PROLINE_SCALE
    return rows, wine.target[keep]


def post(url: str, host: str, body: object, headers: dict[str, str] | None = None) -> str:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(),
        headers={"Host": host, "Content-Type": "application/json", **(headers or {})},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return str(response.status)
    except urllib.error.HTTPError as error:
        return str(error.code)
    except (urllib.error.URLError, OSError):
        return "unreachable"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("router")
    parser.add_argument("host")
    parser.add_argument("model")
    parser.add_argument("stats_file")
    parser.add_argument("rate", nargs="?", type=float, default=20.0)
    parser.add_argument("--segment", default="all", choices=SEGMENTS)
    parser.add_argument("--feedback", default=None, help="the monitor's host (Service name)")
    parser.add_argument("--token-file", default=None, help="the feedback token")
    args = parser.parse_args(argv)
    rows, labels = rows_of(args.segment)
    token = Path(args.token_file).read_text().strip() if args.token_file else ""
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    codes: Counter[str] = Counter()
    feedback: Counter[str] = Counter()
    waiting: deque[tuple[float, str, int]] = deque()
    run = uuid.uuid4().hex[:8]
    pause, written, index = 1.0 / args.rate, 0.0, 0
    rng = np.random.default_rng(7)
    while not stopping:
        pick = int(rng.integers(0, len(rows)))
        row = [float(v) for v in rows[pick]]
        request_id = f"{run}-{index}"
        index += 1
        body = {
            "inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}]
        }
        code = post(
            f"{args.router}/v2/models/{args.model}/infer", args.host, body, {"Ce-Id": request_id}
        )
        codes[code] += 1
        if code == "200" and args.feedback:
            waiting.append((time.monotonic() + 2.0, request_id, int(labels[pick])))
        while waiting and waiting[0][0] <= time.monotonic():
            _, answered, label = waiting.popleft()
            feedback[post(f"{args.router}/feedback", args.feedback, {"id": answered, "label": label},
                          {"Authorization": f"Bearer {token}"})] += 1  # fmt: skip
        if time.monotonic() - written >= 1:
            written = time.monotonic()
            sent = sum(codes.values())
            stats = {
                "sent": sent,
                "ok": codes["200"],
                "failed": sent - codes["200"],
                "by_code": dict(codes),
                "segment": args.segment,
                "feedback": dict(feedback),
            }
            Path(args.stats_file).write_text(json.dumps(stats))
        time.sleep(pause)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
