"""Defects a real municipality's deliveries have, injected at a configurable rate.

Row defects (each row independently, at most one defect per row, each type
with probability `rate`):

- ``invalid_personnummer``: the check digit is wrong (rows with a personnummer).
- ``duplicate_row``: the row is delivered twice; the second copy is the defect.
- ``missing_mandatory``: a mandatory column is empty.
- ``out_of_range``: a bounded column gets a value outside its bounds: above the
  maximum for percentages and grades (maximum <= 100), negative otherwise.

Delivery defects (only when rate > 0): exactly one delivery arrives late (file
mtime about 40 days after the month ended), and exactly one socialtjänst
delivery names the personnummer column differently. The renamed delivery gets
no row defects, so a reader that rejects the whole file still quarantines
exactly the listed rows elsewhere. Neither does a dataset whose quarantined row holds
the whole delivery (``quarantine_holds``: personal's figures per enhet): at the
default rate a few of its months a year would be held, and the demo's managers would
see gaps in every HR series; its gate is tested on a forged delivery instead.

Line numbers count the header as line 1 in CSV files (first data row = 2);
in Parquet and JSON lines files they are row numbers starting at 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from pipelines.units import UNITS
from pipelines.units.spec import Csv, Dataset, Unit

ROW_DEFECTS = ("invalid_personnummer", "duplicate_row", "missing_mandatory", "out_of_range")
LATE_DAYS = 40
RENAMED_UNIT = "socialtjanst"
RENAMED_TO = "Personnummer"


@dataclass(frozen=True)
class RowDefect:
    unit: str
    month: str
    dataset: str
    line: int
    defect: str
    column: str | None  # source column name affected (None for duplicates)


def inject(
    frame: pl.DataFrame, unit: Unit, dataset: Dataset, month: str, rate: float, rng: np.random.Generator
) -> tuple[pl.DataFrame, list[RowDefect]]:
    """Return the frame with row defects (logical values, warehouse names) and the list of them."""
    n = frame.height
    if rate <= 0 or n == 0 or dataset.quarantine_holds:
        return frame, []
    person = dataset.person_column
    mandatory = [c for c in dataset.columns if c.mandatory]
    bounded = [c for c in dataset.columns if c.minimum is not None or c.maximum is not None]
    kinds = [
        k
        for k, ok in zip(ROW_DEFECTS, (person is not None, True, bool(mandatory), bool(bounded)), strict=True)
        if ok
    ]
    if rate * len(kinds) > 1:
        raise ValueError(f"defect rate {rate} too high: at most {1 / len(kinds):.3f}")
    which = np.floor(rng.random(n) / rate).astype(np.int64)  # < len(kinds): that defect
    pick_mandatory = rng.integers(0, max(len(mandatory), 1), n)
    pick_bounded = rng.integers(0, max(len(bounded), 1), n)
    size = rng.random(n)
    shift = rng.integers(1, 10, n)
    records: list[tuple[int, str, str | None]] = []  # (row, defect, column source)
    updates: dict[str, dict[int, object]] = {}

    for row in np.flatnonzero(which < len(kinds)):
        kind = kinds[which[row]]
        if kind == "invalid_personnummer":
            value = frame[person.name][int(row)]
            if value is None:
                continue  # anonymous row: nothing to break
            updates.setdefault(person.name, {})[int(row)] = value[:-1] + str(
                (int(value[-1]) + shift[row]) % 10
            )
            records.append((int(row), kind, person.source))
        elif kind == "missing_mandatory":
            col = mandatory[pick_mandatory[row]]
            if frame[col.name][int(row)] is None:
                continue
            updates.setdefault(col.name, {})[int(row)] = None
            records.append((int(row), kind, col.source))
        elif kind == "out_of_range":
            col = bounded[pick_bounded[row]]
            value = frame[col.name][int(row)]
            if value is None:
                continue
            if col.maximum is not None and col.maximum <= 100:
                bad = col.maximum + (
                    1 + int(size[row] * 3) if col.kind == "integer" else round(0.1 + size[row] * 50, 1)
                )
            else:
                bad = -(
                    abs(value)
                    + (1 + int(size[row] * 9) if col.kind == "integer" else round(1 + size[row] * 500))
                )
            updates.setdefault(col.name, {})[int(row)] = bad
            records.append((int(row), kind, col.source))
        else:
            records.append((int(row), kind, None))

    for name, changes in updates.items():
        series = frame[name].clone()
        rows = list(changes)
        values = pl.Series(name, [changes[r] for r in rows], dtype=series.dtype)
        series.scatter(rows, values)
        frame = frame.with_columns(series)

    duplicated = np.zeros(n, dtype=np.int64)
    for row, kind, _ in records:
        if kind == "duplicate_row":
            duplicated[row] = 1
    if duplicated.any():
        frame = frame[np.repeat(np.arange(n), 1 + duplicated)]
    # Position of each original row in the written file, then the defect's line.
    position = np.arange(n) + np.concatenate([[0], np.cumsum(duplicated)[:-1]])
    first_line = 2 if isinstance(unit.format, Csv) else 1
    defects = [
        RowDefect(
            unit=unit.name,
            month=month,
            dataset=dataset.name,
            line=int(position[row] + first_line + (1 if kind == "duplicate_row" else 0)),
            defect=kind,
            column=column,
        )
        for row, kind, column in records
    ]
    return frame, sorted(defects, key=lambda d: d.line)


@dataclass(frozen=True)
class DeliveryDefects:
    """The late delivery (unit, month index) and the renamed-column delivery (dataset, month index)."""

    late: tuple[str, int] | None
    renamed: tuple[str, int] | None

    def is_late(self, unit: Unit, month: int) -> bool:
        return self.late == (unit.name, month)

    def renames(self, unit: Unit, dataset: Dataset, month: int) -> dict[str, str] | None:
        """Source name -> written name for the renamed delivery, else None."""
        if (
            unit.name != RENAMED_UNIT
            or self.renamed != (dataset.name, month)
            or dataset.person_column is None
        ):
            return None
        return {dataset.person_column.source: RENAMED_TO}


def plan_delivery_defects(rng: np.random.Generator, months: int, rate: float) -> DeliveryDefects:
    """Pick the late delivery and the renamed-column delivery (none of either when rate is 0)."""
    if rate <= 0:
        return DeliveryDefects(late=None, renamed=None)
    # A late month is a monthly delivery's defect: a daily source's month has a file per day.
    units = [name for name, unit in UNITS.items() if not any(d.daily for d in unit.datasets)]
    late = (units[int(rng.integers(0, len(units)))], int(rng.integers(0, months)))
    candidates = [d.name for d in UNITS[RENAMED_UNIT].datasets if d.person_column is not None]
    renamed = (
        candidates[int(rng.integers(0, len(candidates)))],
        int(rng.integers(1 if months > 1 else 0, months)),
    )
    return DeliveryDefects(late=late, renamed=renamed)


def report(rows: list[RowDefect], deliveries: DeliveryDefects, month_label: Any) -> dict[str, Any]:
    """Content of ground_truth/defects.json: per defect type the count and where it is."""
    content: dict[str, Any] = {
        "line_numbering": "CSV: header is line 1, first data row line 2; Parquet/JSON lines: row number from 1",
    }
    for kind in ROW_DEFECTS:
        listed = [
            {"unit": d.unit, "month": d.month, "dataset": d.dataset, "line": d.line, "column": d.column}
            for d in rows
            if d.defect == kind
        ]
        content[kind] = {"count": len(listed), "rows": listed}
    late = []
    if deliveries.late is not None:
        unit, m = deliveries.late
        late.append({"unit": unit, "month": month_label(m), "days_after_month_end": LATE_DAYS})
    content["late_delivery"] = {"count": len(late), "deliveries": late}
    renamed = []
    if deliveries.renamed is not None:
        name, m = deliveries.renamed
        column = UNITS[RENAMED_UNIT].dataset(name).person_column
        renamed.append(
            {
                "unit": RENAMED_UNIT,
                "month": month_label(m),
                "dataset": name,
                "expected": column.source if column else None,
                "written": RENAMED_TO,
            }
        )
    content["renamed_column"] = {"count": len(renamed), "deliveries": renamed}
    return content
