"""Steady prediction requests for the demo: rows of scikit-learn's wine data set, one per
request, through the local router to the deployment's host, until stopped (SIGTERM).

    python traffic.py ROUTER_URL HOST MODEL STATS_FILE [RATE]

Every second it rewrites STATS_FILE with {"sent", "ok", "failed", "by_code"}.
"""

from __future__ import annotations

import json
import signal
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from sklearn.datasets import load_wine


def main(router: str, host: str, model: str, stats_file: str, rate: str = "20") -> int:
    rows = load_wine().data
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    codes: Counter[str] = Counter()
    pause, written, index = 1.0 / float(rate), 0.0, 0
    while not stopping:
        row = [float(v) for v in rows[index % len(rows)]]
        index += 1
        body = {
            "inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}]
        }
        request = urllib.request.Request(
            f"{router}/v2/models/{model}/infer",
            data=json.dumps(body).encode(),
            headers={"Host": host, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                codes[str(response.status)] += 1
        except urllib.error.HTTPError as error:
            codes[str(error.code)] += 1
        except (urllib.error.URLError, OSError):
            codes["unreachable"] += 1
        if time.monotonic() - written >= 1:
            written = time.monotonic()
            sent = sum(codes.values())
            stats = {
                "sent": sent,
                "ok": codes["200"],
                "failed": sent - codes["200"],
                "by_code": dict(codes),
            }
            Path(stats_file).write_text(json.dumps(stats))
        time.sleep(pause)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
