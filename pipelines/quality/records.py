"""Records in a delivery file, counted by a reader far simpler than the loader's.

Reconciliation compares rows in the file with rows loaded + quarantined. If "rows in the file" came
from the loader itself, a parser that dropped or merged lines would balance the books anyway; this
count is independent of it: plain lines when the file has no quotes, Python's csv module (quote-aware:
a quoted newline does not start a record) when it does, Parquet's own footer, non-blank JSON lines.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow.parquet as pq

from pipelines.units.spec import Csv, FileFormat, JsonLines, Parquet


def count_records(path: Path, fmt: FileFormat) -> int:
    """Data records in the file (a CSV's header excluded); blank lines are not records."""
    match fmt:
        case Csv(encoding=encoding, separator=separator):
            return _csv_records(path.read_bytes().decode(encoding), separator)
        case Parquet():
            return pq.ParquetFile(path).metadata.num_rows
        case JsonLines():
            return sum(1 for line in path.read_bytes().splitlines() if line.strip())


def _csv_records(text: str, separator: str) -> int:
    if '"' not in text:
        records = sum(1 for line in text.splitlines() if line.strip())
    else:
        records = sum(
            1 for record in csv.reader(io.StringIO(text, newline=""), delimiter=separator) if record
        )
    return max(records - 1, 0)
