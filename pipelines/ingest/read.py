"""Read one delivery file, in its unit's format, into a frame of strings with line numbers.

Everything is read as text: types are parsed at the border, where a value that
does not parse becomes a quarantined row with a rule rather than a lost row or
a silently coerced one. A file that cannot be read at all raises
:class:`DeliveryError` naming the file, the line where there is one, and the rule.
"""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from pipelines.units.spec import Csv, Dataset, FileFormat, JsonLines, Parquet

LINE = "_source_line"


class DeliveryError(Exception):
    """A delivery-level failure: the whole file is quarantined with this reason."""

    def __init__(self, path: Path, rule: str, detail: str, line: int | None = None, rows: int | None = None):
        self.path, self.rule, self.detail, self.line, self.rows = path, rule, detail, line, rows
        where = f"{path}" + (f", line {line}" if line else "")
        super().__init__(f"{where}: {rule}: {detail}")


def read_delivery_file(path: Path, fmt: FileFormat, dataset: Dataset) -> pl.DataFrame:
    """Return the file's rows as strings plus ``_source_line`` (1-based, header is line 1)."""
    if path.stat().st_size == 0:
        raise DeliveryError(path, "empty_file", "the file has no bytes", rows=0)
    match fmt:
        case Csv():
            frame, first_line = _read_csv(path, fmt), 2
        case Parquet():
            frame, first_line = _read_binary(path, pl.read_parquet, "unreadable_parquet"), 1
        case JsonLines():
            frame, first_line = _read_binary(path, pl.read_ndjson, "unreadable_json_lines"), 1
    _check_columns(path, frame, dataset)
    frame = frame.select(pl.col(c.source).cast(pl.String) for c in dataset.columns)
    return frame.with_row_index(LINE, offset=first_line).with_columns(pl.col(LINE).cast(pl.Int64))


def _read_csv(path: Path, fmt: Csv) -> pl.DataFrame:
    data = path.read_bytes()
    try:
        text = data.decode(fmt.encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise DeliveryError(path, "wrong_encoding", f"not {fmt.encoding}: {e.reason}", line=line) from None
    rows = max(text.count("\n") - 1, 0)
    try:
        return pl.read_csv(
            io.BytesIO(text.encode()),
            separator=fmt.separator,
            infer_schema=False,
            truncate_ragged_lines=False,
        )
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as e:
        raise DeliveryError(path, "malformed_csv", str(e).splitlines()[0], rows=rows) from None


def _read_binary(path: Path, reader, rule: str) -> pl.DataFrame:
    try:
        return reader(path)
    except Exception as e:  # polars raises several error types for a corrupt file
        raise DeliveryError(path, rule, str(e).splitlines()[0] if str(e) else type(e).__name__) from None


def _check_columns(path: Path, frame: pl.DataFrame, dataset: Dataset) -> None:
    expected = [c.source for c in dataset.columns]
    missing = [c for c in expected if c not in frame.columns]
    extra = [c for c in frame.columns if c not in expected]
    if missing or extra:
        detail = f"missing columns {missing}, unexpected columns {extra}; expected {expected}"
        raise DeliveryError(path, "columns_differ_from_contract", detail, line=1, rows=frame.height)
