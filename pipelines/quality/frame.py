"""What a delivery's suite is run on: the rows the load stored for it, read back from the unit zone.

Validating what was stored (not the raw file) checks the promise downstream
relies on, and it never sees a personnummer: the zone holds only pseudonyms.
Per dataset file, the frame has one row per line of the file: the loaded rows
with their typed columns, plus the quarantined rows with ``_rule`` and
``_defect`` (``rule:column``) and the typed columns empty. A file rejected
whole contributes its one quarantine row, with the file-level rule. One frame
may hold several deliveries of a dataset, told apart by ``_delivery``.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd
import pyarrow as pa

from pipelines.ingest.months import Delivery
from pipelines.quality.contract import loaded_columns
from pipelines.units import Dataset, Unit
from warehouse.layout import run

HISTORY = 6  # deliveries the volume is compared with
MIN_HISTORY = 3  # fewer earlier deliveries than this: no volume expectation yet
VOLUME_SHARE = 0.5
MIN_MEDIAN = 20  # below this many rows a month, half or double is ordinary noise (a few permits)


@dataclass(frozen=True)
class DeliveryFile:
    """One dataset file of a delivery as the reconciliation recorded it."""

    dataset: str
    source_file: str
    status: str  # loaded | rejected | missing | misnamed
    reason: str | None
    rows_in_file: int | None
    rows_loaded: int | None
    rows_quarantined: int | None


def delivery_files(con: duckdb.DuckDBPyConnection, delivery: str) -> list[DeliveryFile]:
    rows = run(
        con,
        """SELECT dataset, _source_file, status, reason, rows_in_file, rows_loaded, rows_quarantined
           FROM reconciliation WHERE _delivery = $d ORDER BY dataset""",
        {"d": delivery},
    )
    return [DeliveryFile(*r) for r in rows]


def dataset_frame(con: duckdb.DuckDBPyConnection, dataset: Dataset, deliveries: list[str]) -> pd.DataFrame:
    """Loaded and quarantined rows of a dataset's file in each of the deliveries, ordered by delivery and line."""
    columns = ", ".join(["_delivery", "_source_line", *loaded_columns(dataset)])
    rows = con.execute(
        f"""SELECT {columns}, NULL::VARCHAR AS _rule, NULL::VARCHAR AS _defect
            FROM {dataset.name} WHERE list_contains($d, _delivery)
            UNION ALL BY NAME
            SELECT _delivery, _source_line, rule AS _rule, rule || ':' || coalesce("column", '*') AS _defect
            FROM quarantine WHERE list_contains($d, _delivery) AND dataset = $ds
            ORDER BY _delivery, _source_line""",
        {"d": deliveries, "ds": dataset.name},
    ).to_arrow_table()
    # Through Arrow: a third of the time of DuckDB's own ``df()``, which builds each string as an object.
    # Amounts become floats and dates datetimes, as ``df()`` gives them and the suites compare them.
    floats = pa.schema([f.with_type(pa.float64()) if pa.types.is_decimal(f.type) else f for f in rows.schema])
    return rows.cast(floats).combine_chunks().to_pandas(date_as_object=False)


def delivery_summary(
    frames: dict[str, pd.DataFrame], parameters: dict[str, dict], dated: list[str]
) -> pd.DataFrame:
    """One row per delivery (``frames``: its rows) for the suite's ``delivery`` part: counts, date
    bounds and the delivery's parameters."""
    rows = []
    for delivery, values in parameters.items():
        f = frames[delivery]
        loaded = f[f["_rule"].isna()]
        row = {
            "_delivery": delivery,
            "rows": len(f),
            "share_broken": float(f["_rule"].notna().mean()) if len(f) else 0.0,
            "rows_quarantined": int(f["_defect"].notna().sum()),
            **values,
        }
        for column in dated:
            dates = pd.to_datetime(loaded[column])
            row[f"first_{column}"], row[f"last_{column}"] = dates.min(), dates.max()
        rows.append(row)
    return pd.DataFrame(rows)


def parameters(con: duckdb.DuckDBPyConnection, unit: Unit, dataset: Dataset, delivery: str) -> dict:
    """A delivery's own values for its summary: volume floor and the date window."""
    m = Delivery.parse(delivery)
    year, month = m.year, m.month
    last_day = calendar.monthrange(year, month)[1]
    return {
        "min_rows": min_rows(con, dataset, delivery),
        "earliest": datetime(1900, 1, 1),
        "latest": datetime(year, month, last_day, 23, 59, 59, 999999),
        "month_start": datetime(year, month, 1),
    }


def min_rows(con: duckdb.DuckDBPyConnection, dataset: Dataset, delivery: str) -> int:
    """Half the median rows of the last deliveries of this dataset before this one.

    0 (no floor) with fewer than three earlier deliveries, or for a feed too small to judge.
    """
    history = [
        n
        for (n,) in run(
            con,
            """SELECT rows_in_file FROM reconciliation
               WHERE dataset = $ds AND _delivery < $d AND status = 'loaded'
               ORDER BY _delivery DESC LIMIT $k""",
            {"ds": dataset.name, "d": delivery, "k": HISTORY},
        )
    ]
    median = float(pd.Series(history).median()) if history else 0.0
    if len(history) < MIN_HISTORY or median < MIN_MEDIAN:
        return 0
    return int(VOLUME_SHARE * median)
