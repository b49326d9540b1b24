"""Turning logical rows into delivery files in each unit's own format, and reading them back.

Service modules produce rows keyed by the spec's warehouse column names
(`Column.name`) in logical types (dates, floats, booleans). This module
renames them to the source system's names (`Column.source`), writes the
personnummer in the unit's style, and encodes the file as the unit's format
says: CSV with the unit's encoding, separator and decimal mark; Parquet with
typed columns (timestamps as text, see `_typed`); JSON lines with strings for
dates and times. A date or timestamp column the contract says is written as Excel
serials (``format: excel_serial``) is written as Excel's day numbers.
"""

from __future__ import annotations

import io
from datetime import date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.ingest.values import EXCEL_EPOCH
from pipelines.units.spec import Column, Csv, Dataset, JsonLines, Parquet, Unit
from synthetic.personnummer import plus_sign, written
from synthetic.population import Population

HELPER_PREFIX = "_"  # columns starting with this are internal and never written


def delivery_path(root: Path, unit: Unit, month: str, dataset: Dataset, day: date | None = None) -> Path:
    """<root>/landing/<unit>/<YYYY-MM>/<dataset file name> (a daily dataset's file of ``day``)."""
    return root / "landing" / unit.name / month / dataset.file_name(unit.format, day)


def with_personnummer(
    frame: pl.DataFrame, unit: Unit, dataset: Dataset, pop: Population, rng: np.random.Generator
) -> pl.DataFrame:
    """Add the dataset's personnummer column (by warehouse name), written in the unit's style.

    Rows with `_person` < 0 (anonymous) get null. For the 'mixed' style the
    written form is drawn per row.
    """
    column = dataset.person_column
    if column is None:
        return frame
    period = pop.period
    birth = pop.birth.astype("datetime64[D]")
    lookup = pl.DataFrame(
        {
            "_person": np.arange(pop.persons, dtype=np.int64),
            "_pnr12": pop.pnr12,
            "_by": birth.astype("datetime64[Y]").astype(np.int64) + 1970,
        }
    )
    months = pl.DataFrame(
        {
            "_month": np.arange(period.months, dtype=np.int32),
            "_y": [period.year(m) for m in range(period.months)],
        }
    )
    out = (
        frame.with_columns(pl.col("_person").cast(pl.Int64), pl.col("_month").cast(pl.Int32))
        .join(lookup, on="_person", how="left", maintain_order="left")
        .join(months, on="_month", how="left", maintain_order="left")
        .with_columns(_form=pl.Series(rng.integers(0, 4, frame.height), dtype=pl.Int64))
    )
    plus = plus_sign(pl.col("_by"), pl.col("_y"))
    value = written(pl.col("_pnr12"), plus, unit.personnummer_style, pl.col("_form"))
    return out.with_columns(pl.when(pl.col("_person") >= 0).then(value).alias(column.name)).drop(
        "_pnr12", "_by", "_y", "_form"
    )


def logical_columns(frame: pl.DataFrame, dataset: Dataset) -> pl.DataFrame:
    """The spec's columns in spec order (by warehouse name); fails loudly if the frame does not match."""
    expected = [c.name for c in dataset.columns]
    present = [c for c in frame.columns if not c.startswith(HELPER_PREFIX)]
    if sorted(present) != sorted(expected):
        raise ValueError(f"{dataset.name}: generated columns {sorted(present)} != spec {sorted(expected)}")
    return frame.select(expected)


def _fixed_decimals(expr: pl.Expr, comma: bool) -> pl.Expr:
    """Two decimals, no exponent: 1234.5 -> '1234.50' (or '1234,50')."""
    cents = (expr * 100).round(0).cast(pl.Int64)
    sign = pl.when(cents < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    whole = (cents.abs() // 100).cast(pl.String)
    frac = (cents.abs() % 100).cast(pl.String).str.zfill(2)
    return sign + whole + pl.lit("," if comma else ".") + frac


def _excel_serial(column: Column) -> pl.Expr:
    """Excel's day number: whole for a date, with the time of day as a fraction for a timestamp."""
    since = pl.col(column.name) - pl.lit(datetime.combine(EXCEL_EPOCH, datetime.min.time()))
    if column.kind == "date":
        return since.dt.total_days()
    return since.dt.total_milliseconds() / 86_400_000


def _as_text(column: Column, comma: bool) -> pl.Expr:
    c = pl.col(column.name)
    if column.format == "excel_serial":
        return _excel_serial(column).cast(pl.String).str.replace(".", "," if comma else ".", literal=True)
    if column.kind == "decimal":
        return _fixed_decimals(c, comma)
    if column.kind == "integer":
        return c.cast(pl.Int64).cast(pl.String)
    if column.kind == "date":
        return c.dt.strftime("%Y-%m-%d")
    if column.kind == "timestamp":
        return c.dt.strftime("%Y-%m-%d %H:%M:%S")
    if column.kind == "boolean":
        return pl.when(c).then(pl.lit("true")).when(~c).then(pl.lit("false"))  # null stays null
    return c.cast(pl.String)


def _typed(column: Column) -> pl.Expr:
    """Column in the Parquet type a source system would use.

    Timestamps are the exception: they are written as 'YYYY-MM-DD HH:MM:SS'
    text, as the case-event system the synthetic data imitates writes them (the
    border reads native timestamps too). Dates, numbers and booleans keep their types.
    """
    c = pl.col(column.name)
    if column.format == "excel_serial":
        return _excel_serial(column)
    if column.kind == "timestamp":
        return _as_text(column, comma=False)
    types = {"decimal": pl.Float64, "integer": pl.Int64, "date": pl.Date, "boolean": pl.Boolean}
    return c.cast(types.get(column.kind, pl.String))


def _json_value(column: Column) -> pl.Expr:
    """Column as a JSON value: numbers and booleans native, dates and times as strings."""
    if column.kind in ("date", "timestamp"):
        return _as_text(column, comma=False)
    return _typed(column)


def encode(frame: pl.DataFrame, unit: Unit, dataset: Dataset, renames: dict[str, str] | None = None) -> bytes:
    """File content for one delivery. `frame` holds the spec's columns by warehouse name, in spec order.

    `renames` maps a source column name to the name actually written (a
    renamed-column defect).
    """
    names = {c.name: (renames or {}).get(c.source, c.source) for c in dataset.columns}
    fmt = unit.format
    if isinstance(fmt, Csv):
        text = frame.select([_as_text(c, fmt.decimal_comma).alias(names[c.name]) for c in dataset.columns])
        body = text.write_csv(separator=fmt.separator, quote_style="necessary")
        return body.encode(fmt.encoding)
    if isinstance(fmt, Parquet):
        buf = io.BytesIO()
        frame.select([_typed(c).alias(names[c.name]) for c in dataset.columns]).write_parquet(
            buf, statistics=True
        )
        return buf.getvalue()
    if isinstance(fmt, JsonLines):
        return (
            frame.select([_json_value(c).alias(names[c.name]) for c in dataset.columns])
            .write_ndjson()
            .encode("utf-8")
        )
    raise TypeError(f"unknown format {fmt!r}")


def read_delivery(path: Path, unit: Unit) -> pl.DataFrame:
    """Read a delivery file as written. CSV columns come back as strings; Parquet and JSON keep their types."""
    fmt = unit.format
    if isinstance(fmt, Csv):
        text = path.read_bytes().decode(fmt.encoding)
        return pl.read_csv(io.StringIO(text), separator=fmt.separator, infer_schema=False)
    if isinstance(fmt, Parquet):
        return pl.read_parquet(path)
    if isinstance(fmt, JsonLines):
        if path.stat().st_size == 0:
            return pl.DataFrame()
        return pl.read_ndjson(path, infer_schema_length=None)
    raise TypeError(f"unknown format {fmt!r}")
