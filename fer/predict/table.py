"""``fer predict``'s table, written as rows arrive: CSV (also to stdout), JSON lines or Parquet
(pyarrow, the ``parquet`` extra). A file is written to a temporary beside it and renamed into
place when complete (:mod:`fer.atomic`): a failed run leaves no half table under the name."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

from fer.atomic import atomic_write
from fer.errors import FerError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
PARQUET_ROWS = 4096  # rows per Parquet row group


def table_format(path: Path | None) -> str:
    """The format of ``path`` by its suffix (None: CSV on stdout)."""
    if path is None:
        return "csv"
    kind = FORMATS.get(Path(path).suffix.lower())
    if kind is None:
        raise FerError(f"--out {path}: expected a .csv, .jsonl or .parquet file")
    if kind == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise FerError(
                f"--out {path}: Parquet needs pyarrow: pip install 'fer-roi-fusion[parquet]'"
            ) from None
    return kind


def _plain(value):
    """NaN → None (JSON null / an empty CSV cell); numpy scalars → Python numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


class TableWriter:
    """Context manager: ``write(rows)`` appends rows (dicts over ``columns``) to ``path``."""

    def __init__(self, path: Path | None, columns: list[str]):
        self.path, self.columns, self.kind = path, list(columns), table_format(path)
        self.rows = 0
        self._pending: list[dict] = []

    def __enter__(self) -> TableWriter:
        if self.path is None:
            self._fh, self._ctx = sys.stdout, None
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            mode = "wb" if self.kind == "parquet" else "w"
            self._ctx = atomic_write(self.path, mode, **({} if mode == "wb" else {"newline": ""}))
            self._fh = self._ctx.__enter__()
        if self.kind == "csv":
            self._csv = csv.DictWriter(self._fh, fieldnames=self.columns, lineterminator="\n")
            self._csv.writeheader()
        self._parquet = None
        return self

    def write(self, rows: list[dict]) -> None:
        """Append ``rows``."""
        self.rows += len(rows)
        if self.kind == "csv":
            self._csv.writerows({k: _plain(r[k]) for k in self.columns} for r in rows)
        elif self.kind == "jsonl":
            for r in rows:
                self._fh.write(json.dumps({k: _plain(r[k]) for k in self.columns}) + "\n")
        else:
            self._pending.extend(rows)
            if len(self._pending) >= PARQUET_ROWS:
                self._flush_parquet()
        if self.path is None:
            self._fh.flush()

    def _flush_parquet(self) -> None:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        frame = pd.DataFrame(self._pending, columns=self.columns)
        for name in (
            "file",
            "status",
            "reason",
            *(c for c in self.columns if c.endswith("_label")),
        ):
            frame[name] = frame[name].astype(str)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self._fh, table.schema)
        self._parquet.write_table(table)
        self._pending = []

    def __exit__(self, kind, exc, tb):
        if self.kind == "parquet" and exc is None:
            if self._pending or self._parquet is None:
                self._flush_parquet()
            self._parquet.close()
        if self._ctx is not None:
            return self._ctx.__exit__(kind, exc, tb)
        return False
