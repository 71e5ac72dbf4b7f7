"""Captured production data: the labelled rows the monitor joined, written as Parquet files per
deployment to a store given by URI (a local path, or s3://bucket/prefix on a cluster), where a
retraining Job reads them (MODELOPS_PRODUCTION_DATA names the deployment's folder).

Bounded twice: a file holds at most `rows_per_file` rows, and a deployment keeps its newest
`max_files` files (the oldest is deleted), so the store never grows without end.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs

from modelops.monitor.engine import LabelledRow


def production_data_uri(store: str, namespace: str, deployment: str) -> str:
    """Where a deployment's captured rows live in the store."""
    return f"{store.rstrip('/')}/{namespace}/{deployment}"


def _column(values: list[object]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([None if v is None else str(v) for v in values])  # mixed types


@dataclass(frozen=True)
class Batch:
    """Rows of one deployment with the same features: one file."""

    namespace: str
    deployment: str
    feature_names: tuple[str, ...]
    rows: list[LabelledRow]


class Capture:
    """Buffers rows on the event loop (`add`, `drain`: no I/O) and writes them from a worker
    thread (`write`), so a slow store never blocks the monitor."""

    def __init__(self, store: str, *, rows_per_file: int = 10_000, max_files: int = 100) -> None:
        self.store = store
        self.filesystem, self.root = fs.FileSystem.from_uri(store)
        self.rows_per_file, self.max_files = rows_per_file, max_files
        self._buffers: dict[tuple[str, str, tuple[str, ...]], list[LabelledRow]] = defaultdict(list)
        self.written_rows = 0
        self._sequence = 0  # two files in the same nanosecond still get two names

    def add(self, feature_names: Sequence[str], rows: list[LabelledRow]) -> bool:
        """Buffer rows; True once some deployment has a full file's worth waiting."""
        full = False
        for row in rows:
            key = (row.source.namespace, row.source.deployment, tuple(feature_names))
            self._buffers[key].append(row)
            full = full or len(self._buffers[key]) >= self.rows_per_file
        return full

    def drain(self) -> list[Batch]:
        """Everything buffered, as files of at most `rows_per_file` rows."""
        batches = []
        for (namespace, deployment, names), rows in self._buffers.items():
            for start in range(0, len(rows), self.rows_per_file):
                chunk = rows[start : start + self.rows_per_file]
                batches.append(Batch(namespace, deployment, names, chunk))
        self._buffers.clear()
        return batches

    def write(self, batches: list[Batch]) -> None:
        for batch in batches:
            self._write(batch)

    def flush(self) -> None:
        self.write(self.drain())

    def _write(self, batch: Batch) -> None:
        rows = batch.rows
        columns = {
            name: _column([row.features[index] for row in rows])
            for index, name in enumerate(batch.feature_names)
        }
        table = pa.table(
            {
                **columns,
                "prediction": _column([r.prediction for r in rows]),
                "label": _column([r.label for r in rows]),
                "version": pa.array([r.source.version for r in rows]),
                "track": pa.array([r.source.track for r in rows]),
                "time": pa.array([r.time for r in rows], pa.float64()),
            }
        )
        folder = production_data_uri(self.root, batch.namespace, batch.deployment)
        self.filesystem.create_dir(folder, recursive=True)
        self._sequence += 1
        name = f"{folder}/part-{time.time_ns():020d}-{self._sequence:06d}.parquet"
        pq.write_table(table, name, filesystem=self.filesystem)
        self.written_rows += len(rows)
        self._prune(folder)

    def _prune(self, folder: str) -> None:
        found = self.filesystem.get_file_info(fs.FileSelector(folder))
        parts = sorted(i.path for i in found if i.path.endswith(".parquet"))
        for old in parts[: max(0, len(parts) - self.max_files)]:
            self.filesystem.delete_file(old)
