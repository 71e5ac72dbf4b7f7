"""The table at the end of `make bench` judges each goal from the benchmarks' JSON."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).parents[2] / "bench"


@pytest.fixture(scope="module")
def summary() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_summary", BENCH / "summary.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def burst(ratio: float) -> dict[str, object]:
    return {
        "count": 1000, "goal_ratio": 1.2, "floor_s": 5.0, "operator_s": 5.0 * ratio,
        "ratio": ratio, "floor_shaped_s": 6.0, "p99_s": 4.2, "when": "2026-12-06",
    }  # fmt: skip


@pytest.mark.parametrize(("ratio", "met"), [(1.1, True), (1.2, True), (2.1, False)])
def test_the_burst_is_met_only_within_its_ratio(
    summary: ModuleType, tmp_path: Path, ratio: float, met: bool
) -> None:
    (tmp_path / "burst.json").write_text(json.dumps(burst(ratio)))
    rows, missing = summary.rows(tmp_path)
    assert [row.met for row in rows] == [met]
    assert "burst.json" not in missing and "shards.json" in missing
    assert ("NOT MET" in summary.render(rows)) is not met


def test_a_shard_written_by_another_fails_whatever_its_speed(
    summary: ModuleType, tmp_path: Path
) -> None:
    result = {
        "count": 10, "shards": 2, "mode": "burst", "goal_ratio": 1.5, "floor_s": 10.0,
        "operator_s": 11.0, "ratio": 1.1, "api_server_429s": 0, "deployments_written": 10,
        "written_by_other_than_their_shard": 1, "when": "2026-12-06",
        "processes": {"s0": {"cpu_s": 1.0, "rss_mib": 90.0}, "s1": {"cpu_s": 1.2, "rss_mib": 91.0}},
    }  # fmt: skip
    (tmp_path / "shards.json").write_text(json.dumps(result))
    [row], _ = summary.rows(tmp_path)
    assert row.met is False and "ANOTHER SHARD WROTE" in row.measured


def test_the_committed_results_all_render(summary: ModuleType) -> None:
    rows, missing = summary.rows(BENCH / "results")
    assert missing == []
    text = summary.render(rows)
    assert text.count("\n") == len(rows)  # a header and one line per row
