"""Control totals: a delivery's own statement of what it holds, checked against what arrived.

Many case systems write a manifest beside an export: how many records, and the sum of each amount
column. When a dataset's contract names one (``delivery.control_totals``), reconciliation compares
it with the file, counted and summed independently of the loader (``records.count_records``; the
amounts parsed by the border's own expression, ``ingest/values.py``), and holds the delivery on any
difference: a file cut short, a record lost in transfer or an export run twice shows there even when
every row that did arrive is valid.

The manifest is a JSON object; a sum may be a number or text written as the file writes amounts
(``"2 845 123,50"``).
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl

from pipelines.ingest.read import read_delivery_file
from pipelines.ingest.values import amount_sql
from pipelines.units.spec import Csv, Dataset, FileFormat

TOLERANCE = 0.005  # half an öre: the manifest and the file round the same amounts


def control_problems(file: Path, fmt: FileFormat, dataset: Dataset, records: int) -> list[str]:
    """Where the file disagrees with its manifest, one line each (empty when it agrees or has none).

    ``records``: the file's records as ``records.count_records`` counted them for reconciliation.
    """
    totals = dataset.control_totals
    if totals is None:
        return []
    manifest = file.parent / totals.manifest
    try:
        stated = json.loads(manifest.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        return [f"{manifest.name}: the contract names this manifest, the delivery has none"]
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return [f"{manifest.name}: not a JSON manifest ({e})"]
    if not isinstance(stated, dict):
        return [f"{manifest.name}: not a JSON object"]
    missing = [k for k in (totals.rows, *(key for _, key in totals.sums)) if k not in stated]
    if missing:
        return [f"{manifest.name}: no {', '.join(missing)}"]
    problems = []
    if records != stated[totals.rows]:
        problems.append(f"{file.name}: {records} records, {manifest.name} says {stated[totals.rows]}")
    if totals.sums:
        problems += _sum_problems(file, fmt, dataset, stated, manifest.name)
    return problems


def _sum_problems(file: Path, fmt: FileFormat, dataset: Dataset, stated: dict, manifest: str) -> list[str]:
    comma = isinstance(fmt, Csv) and fmt.decimal_comma
    frame = read_delivery_file(file, fmt, dataset)
    problems = []
    for source, key in dataset.control_totals.sums:
        total, unparsed = _sum(frame.get_column(source), comma)
        expected = _amount(stated[key], comma)
        if unparsed:
            problems.append(
                f"{file.name}: {unparsed} values of {source} are no amount; the sum cannot be confirmed"
            )
        elif expected is None or abs(total - expected) > TOLERANCE:
            problems.append(f"{file.name}: {source} sums to {total:.2f}, {manifest} says {stated[key]}")
    return problems


def _sum(values: pl.Series, decimal_comma: bool) -> tuple[float, int]:
    """The column's sum as the border parses it, and how many non-empty values did not parse."""
    parsed = amount_sql("v", decimal_comma)
    with duckdb.connect() as con:
        con.register("frame", pl.DataFrame({"v": values}).to_arrow())
        total, unparsed = con.execute(
            f"SELECT coalesce(sum({parsed}), 0), count(*) FILTER (WHERE nullif(trim(v), '') IS NOT NULL "
            f"AND {parsed} IS NULL) FROM frame"
        ).fetchone()
    return float(total), int(unparsed)


def _amount(value: object, decimal_comma: bool) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        with duckdb.connect() as con:
            return con.execute(f"SELECT {amount_sql('$v', decimal_comma)}", {"v": value}).fetchone()[0]
    return None
