"""The table at the end of `make bench`: every goal, the figure measured, met or not.

Reads the JSON the benchmarks wrote under bench/results/ (each file says the day it ran), so
it can also be run alone after any of them:

    .venv/bin/python bench/summary.py [--started EPOCH_SECONDS]

With --started (the Makefile passes the time `make bench` began), the table ends with how
long the whole run took.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


@dataclass(frozen=True)
class Row:
    benchmark: str
    goal: str
    measured: str
    met: bool | None  # None: a figure reported without a goal of its own
    when: str


def burst_rows(result: dict[str, Any]) -> list[Row]:
    shaped = result.get("floor_shaped_s")
    against_shaped = f" ({result['operator_s'] / shaped:.2f}x shaped)" if shaped else ""
    return [Row(
        f"1. burst of {result['count']:,}", f"<= {result['goal_ratio']}x the floor",
        f"{result['operator_s']:.1f} s / {result['floor_s']:.1f} s = {result['ratio']:.2f}x"
        f"{against_shaped}; p99 {result['p99_s']:.1f} s",
        result["ratio"] <= result["goal_ratio"], result["when"],
    )]  # fmt: skip


def latency_rows(result: dict[str, Any]) -> list[Row]:
    rows = []
    for case in result["results"]:
        worst = max(case["edit_p99_ms"], case["create_p99_ms"])
        rows.append(Row(
            f"2. latency among {case['count']:,}", "p99 <= 100 ms",
            f"edit p99 {case['edit_p99_ms']:.0f} ms, create p99 {case['create_p99_ms']:.0f} ms",
            worst <= 100, result["when"],
        ))  # fmt: skip
        memory_goal = case["count"] == 1000
        rows.append(Row(
            f"4a. RSS after start-up, {case['count']:,}", "<= 120 MiB at 1,000" if memory_goal else "",
            f"{case['rss_after_start_mib']:.0f} MiB",
            case["rss_after_start_mib"] <= 120 if memory_goal else None, result["when"],
        ))  # fmt: skip
    return rows


def idle_rows(result: dict[str, Any]) -> list[Row]:
    rows = []
    for run in ("pinned", "following"):
        figures = result[run]
        met = (figures["writes"] == 0 and figures["cpu_per_minute"] <= 0.5
               and figures["registry_lookups"] <= figures["registry_lookups_bound"]
               and figures["promql_queries"] <= figures["promql_queries_bound"])  # fmt: skip
        rows.append(Row(
            f"3. idle cost of {result['count']:,}, {run}",
            "0 writes, <= 0.5 s CPU/min, in bounds",
            f"{figures['writes']} writes, {figures['cpu_per_minute']:.2f} s/min, "
            f"{figures['registry_lookups']}/{figures['registry_lookups_bound']} lookups, "
            f"{figures['promql_queries']}/{figures['promql_queries_bound']} queries",
            met, result["when"],
        ))  # fmt: skip
    return rows


def soak_rows(result: dict[str, Any]) -> list[Row]:
    return [Row(
        f"4b. churn soak, {result['count']:,} for {result['minutes']} min",
        f"growth < {result['goal_growth_percent']}%",
        f"{result['growth_percent']:+.2f}% ({result['rss_after_warm_up_mib']} -> "
        f"{result['rss_last_mib']} MiB)",
        result["growth_percent"] < result["goal_growth_percent"], result["when"],
    )]  # fmt: skip


def rollback_rows(result: dict[str, Any]) -> list[Row]:
    return [Row(
        f"5. rollback, {case['interval_s']} s x failureLimit {case['failure_limit']}",
        f"<= {case['goal_s']} s", f"max {case['max_s']:.1f} s, mean {case['mean_s']:.1f} s",
        case["max_s"] <= case["goal_s"], result["when"],
    ) for case in result["results"]]  # fmt: skip


def shards_rows(result: dict[str, Any]) -> list[Row]:
    shaped = result.get("floor_shaped_s")
    against_shaped = f" ({result['ratio_to_shaped']:.2f}x shaped)" if shaped else ""
    cpu = [figures["cpu_s"] for figures in result["processes"].values()]
    rss = [figures["rss_mib"] for figures in result["processes"].values()]
    exclusive = (
        result["written_by_other_than_their_shard"] == 0
        and result["deployments_written"] == result["count"]
    )
    return [Row(
        f"6. {result['count']:,} over {result['shards']} shards, {result['mode']}",
        f"<= {result['goal_ratio']}x the floor, one writer each",
        f"{result['operator_s']:.1f} s / {result['floor_s']:.1f} s = {result['ratio']:.2f}x"
        f"{against_shaped}; {'one writer each' if exclusive else 'ANOTHER SHARD WROTE'}; "
        f"{result['api_server_429s']} 429s; {max(rss):.0f} MiB, {max(cpu):.0f} s CPU each",
        result["ratio"] <= result["goal_ratio"] and exclusive, result["when"],
    )]  # fmt: skip


def monitor_rows(result: dict[str, Any]) -> list[Row]:
    alarms = result["false_alarms"]
    return [Row(
        "monitor (drift engine)", "no false alarms, a 1 sd shift found",
        f"{alarms['features_crossing']} false alarms in {alarms['windows']} windows; "
        f"{result['engine_events_per_second']:,} events/s; "
        f"flood grows RSS {result['memory']['rss_growth_second_half_of_flood_mib']} MiB",
        alarms["features_crossing"] == 0 and bool(alarms["shift_1sd_found"]), "",
    )]  # fmt: skip


# The file each benchmark writes, in the order `make bench` runs them.
READERS = {
    "burst.json": burst_rows, "latency.json": latency_rows, "idle_cost.json": idle_rows,
    "soak.json": soak_rows, "rollback_latency.json": rollback_rows, "shards.json": shards_rows,
    "shards-cold.json": shards_rows, "monitor.json": monitor_rows,
}  # fmt: skip


def rows(results: Path) -> tuple[list[Row], list[str]]:
    """The rows of every result present, and the names of the results missing."""
    found: list[Row] = []
    missing = []
    for name, reader in READERS.items():
        path = results / name
        if path.exists():
            found.extend(reader(json.loads(path.read_text())))
        else:
            missing.append(name)
    return found, missing


def render(table: list[Row]) -> str:
    marks = {True: "met", False: "NOT MET", None: ""}
    lines = [("benchmark", "goal", "measured", "", "when")]
    lines += [(row.benchmark, row.goal, row.measured, marks[row.met], row.when) for row in table]
    widths = [max(len(line[column]) for line in lines) for column in range(5)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--started", type=float, help="when make bench began (seconds since the epoch)"
    )
    arguments = parser.parse_args()
    table, missing = rows(RESULTS)
    print(render(table))
    for name in missing:
        print(f"no {RESULTS / name}: run its benchmark first")
    if arguments.started:
        print(f"make bench took {(time.time() - arguments.started) / 60:.0f} minutes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
