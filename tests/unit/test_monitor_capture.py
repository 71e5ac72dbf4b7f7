"""Captured production rows: Parquet files per deployment, bounded in rows and files, read
back as the trainer reads them."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from modelops.monitor.capture import Capture, production_data_uri
from modelops.monitor.engine import LabelledRow
from modelops.monitor.windows import Source

WINE = Source("ns", "wine", "2", "canary")
OTHER = Source("ns", "other", "1", "stable")


def labelled(source: Source, n: int) -> list[LabelledRow]:
    return [
        LabelledRow(source, (float(i), float(-i)), i % 3, (i + 1) % 3, 100.0 + i) for i in range(n)
    ]


def test_rows_are_written_per_deployment_and_read_back(tmp_path: Path) -> None:
    capture = Capture(str(tmp_path), rows_per_file=100)
    capture.add(["a", "b"], labelled(WINE, 5))
    capture.add(["a", "b"], labelled(OTHER, 2))
    assert list(tmp_path.iterdir()) == []  # buffered until a file fills or a flush
    capture.flush()
    table = pq.read_table(production_data_uri(str(tmp_path), "ns", "wine")).to_pydict()
    assert table["a"] == [0.0, 1.0, 2.0, 3.0, 4.0] and table["b"][1] == -1.0
    assert table["prediction"] == [0, 1, 2, 0, 1] and table["label"] == [1, 2, 0, 1, 2]
    assert set(table["version"]) == {"2"} and set(table["track"]) == {"canary"}
    assert pq.read_table(tmp_path / "ns" / "other").num_rows == 2
    assert capture.written_rows == 7


def test_files_are_bounded_in_rows_and_number(tmp_path: Path) -> None:
    capture = Capture(str(tmp_path), rows_per_file=10, max_files=3)
    for _ in range(6):
        assert capture.add(["a", "b"], labelled(WINE, 10))  # each call fills one file
        capture.flush()
    files = sorted((tmp_path / "ns" / "wine").iterdir())
    assert len(files) == 3
    assert all(pq.read_metadata(f).num_rows == 10 for f in files)
    assert not capture.add(["a", "b"], labelled(WINE, 5))
    capture.add(["a", "b"], labelled(WINE, 20))
    assert [len(b.rows) for b in capture.drain()] == [10, 10, 5]
    assert capture.drain() == []


def test_mixed_label_types_are_kept_as_text(tmp_path: Path) -> None:
    capture = Capture(f"file://{tmp_path}")
    rows = [LabelledRow(WINE, (1.0, 2.0), 1, "cat", 1.0), LabelledRow(WINE, (1.0, 2.0), 1, 2, 2.0)]
    capture.add(["a", "b"], rows)
    capture.flush()
    assert pq.read_table(tmp_path / "ns" / "wine").to_pydict()["label"] == ["cat", "2"]
