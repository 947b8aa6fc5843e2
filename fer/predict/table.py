"""``fer predict``'s table, written as rows arrive: CSV (also to stdout), JSON lines or Parquet
(pyarrow, the ``parquet`` extra). A file is written to a temporary beside it and renamed into
place when complete (:mod:`fer.atomic`): a failed run leaves no half table under the name. On
stdout each batch of rows is written whole (Ctrl-C waits for the write to end), so an
interrupted table ends with a complete row.

In CSV, numbers carry 7 significant digits (a probability to within 5e-8), and a text cell that
starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (a
file named ``=HYPERLINK(...).jpg``) is written with a leading ``'``, so that a spreadsheet shows
it as text rather than running it as a formula; JSON lines and Parquet keep every value as is.
"""

from __future__ import annotations

import csv
import io
import json
import math
import signal
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


FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


CSV_FLOAT = ".7g"  # CSV numbers: 7 significant digits (JSON lines and Parquet keep all)


def _cell(value):
    """A CSV cell: :func:`_plain`, a float with :data:`CSV_FLOAT` digits, and a text that a
    spreadsheet would run as a formula quoted by a leading ``'``."""
    value = _plain(value)
    if isinstance(value, float):
        return format(value, CSV_FLOAT)
    if isinstance(value, str) and value.startswith(FORMULA_LEADS):
        return "'" + value
    return value


def _plain(value):
    """NaN → None (JSON null / an empty CSV cell); numpy scalars → Python numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _csv_text(rows) -> str:
    """CSV lines of ``rows`` (lists of cells), as one string."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


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
            self._whole(_csv_text([self.columns]))
        self._parquet = None
        return self

    def write(self, rows: list[dict]) -> None:
        """Append ``rows``."""
        self.rows += len(rows)
        if self.kind == "csv":
            self._whole(_csv_text([_cell(r[k]) for k in self.columns] for r in rows))
        elif self.kind == "jsonl":
            lines = [json.dumps({k: _plain(r[k]) for k in self.columns}) + "\n" for r in rows]
            self._whole("".join(lines))
        else:
            self._pending.extend(rows)
            if len(self._pending) >= PARQUET_ROWS:
                self._flush_parquet()

    def _whole(self, text: str) -> None:
        """Write ``text``; on stdout all of it, flushed, with Ctrl-C and SIGTERM held until the
        write ends (a file is published whole or not at all anyway)."""
        if self.path is not None:
            self._fh.write(text)
            return
        held = {signal.SIGINT, signal.SIGTERM}
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            self._fh.write(text)
            self._fh.flush()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def _flush_parquet(self) -> None:
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        frame = pd.DataFrame(self._pending, columns=self.columns)
        for name in (
            "file",
            "status",
            "reason",
            "model_data",
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
