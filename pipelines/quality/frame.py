"""What a delivery's suite is run on: one summary row per delivery, counted from the unit zone.

Counting what was stored (not the raw file) checks the promise downstream
relies on, and it never sees a personnummer: the zone holds only pseudonyms.
A dataset file's rows are its loaded rows with their typed columns, and its
quarantined rows with ``_rule`` and ``_defect`` (``rule:column``); a file
rejected whole counts as its one quarantine row, with the file-level rule.
The summary has, per delivery, the rows, rows loaded and quarantined, the
count of rows breaking each row rule of the suite (its ``rows_where``), the
rows sharing a natural key, the first and last value of each date column, and
the delivery's own values (volume floor, date window): one DuckDB pass over
the stored rows, however many deliveries are judged together.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from pipelines.ingest.months import Delivery
from pipelines.quality.contract import ALL_ROWS, LOADED_ROWS, dated_columns
from pipelines.units import Dataset
from warehouse.layout import of_deliveries, run, sql_name

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


def delivery_summary(
    con: duckdb.DuckDBPyConnection, dataset: Dataset, suite: dict, parameters: dict[str, dict]
) -> pd.DataFrame:
    """One row per delivery in ``parameters`` (its volume floor and date window, see :func:`parameters`)."""
    [unique] = [e for e in suite[LOADED_ROWS] if "duplicate_key" in e["meta"]]
    key, shared = (
        ", ".join(map(sql_name, unique["meta"]["duplicate_key"])),
        sql_name(unique["kwargs"]["column"]),
    )
    counts = [sql_name(e["kwargs"]["column"]) for part in (ALL_ROWS, LOADED_ROWS) for e in suite[part]]
    dated = dated_columns(suite)
    dates = [f"{end}_{c}" for c in dated for end in ("first", "last")]
    loaded = ["count(*) AS rows_loaded", *_counts(suite[LOADED_ROWS]), *_bounds(dated)]
    theirs, bounds = of_deliveries(parameters)
    summary = con.execute(
        f"""WITH wanted AS (SELECT unnest($d::VARCHAR[]) AS _delivery),
            loaded AS (
                SELECT _delivery, {", ".join(loaded)}
                FROM {dataset.name} WHERE {theirs} GROUP BY _delivery),
            held AS (
                SELECT _delivery, {", ".join(["count(*) AS rows_quarantined", *_counts(suite[ALL_ROWS])])}
                FROM (SELECT _delivery, rule AS _rule, rule || ':' || coalesce("column", '*') AS _defect
                      FROM quarantine WHERE dataset = $ds AND {theirs})
                GROUP BY _delivery),
            shared AS (
                SELECT _delivery, sum(n) AS {shared}
                FROM (SELECT _delivery, count(*) AS n FROM {dataset.name} WHERE {theirs}
                      GROUP BY _delivery, {key} HAVING count(*) > 1)
                GROUP BY _delivery)
            SELECT _delivery,
                   coalesce(rows_loaded, 0) + coalesce(rows_quarantined, 0) AS rows,
                   coalesce(rows_loaded, 0) AS rows_loaded,
                   coalesce(rows_quarantined, 0) AS rows_quarantined,
                   {", ".join(f"coalesce({c}, 0)::BIGINT AS {c}" for c in counts)}
                   {"".join(f", {sql_name(c)}" for c in dates)}
            FROM wanted LEFT JOIN loaded USING (_delivery) LEFT JOIN held USING (_delivery)
                 LEFT JOIN shared USING (_delivery)""",
        bounds | {"ds": dataset.name},
    ).df()
    summary["share_broken"] = summary["rows_quarantined"] / summary["rows"].clip(lower=1)
    summary[dates] = summary[dates].apply(pd.to_datetime)
    values = pd.DataFrame([{"_delivery": d, **v} for d, v in parameters.items()])
    return values.merge(summary, on="_delivery", validate="one_to_one")


def _counts(expectations: list[dict]) -> list[str]:
    """Per expectation of a row part, the count of the rows it forbids (its ``rows_where``)."""
    return [
        f"count(*) FILTER (WHERE {e['meta']['rows_where']}) AS {sql_name(e['kwargs']['column'])}"
        for e in expectations
        if "rows_where" in e["meta"]
    ]


def _bounds(columns: list[str]) -> list[str]:
    """The first and last value of each date column."""
    return [
        f"{f}({sql_name(c)}) AS {sql_name(f'{end}_{c}')}"
        for c in columns
        for f, end in (("min", "first"), ("max", "last"))
    ]


def parameters(con: duckdb.DuckDBPyConnection, dataset: Dataset, deliveries: list[str]) -> dict[str, dict]:
    """Each delivery's own values for its summary: volume floor and date window."""
    totals = run(
        con,
        """SELECT _delivery, sum(rows_in_file) FROM reconciliation WHERE dataset = $ds AND status = 'loaded'
           GROUP BY 1 ORDER BY 1""",
        {"ds": dataset.name},
    )
    return {d: _parameters(d, [int(n) for e, n in totals if e < d][-HISTORY:]) for d in deliveries}


def _parameters(delivery: str, history: list[int]) -> dict:
    m = Delivery.parse(delivery)
    last_day = calendar.monthrange(m.year, m.month)[1]
    return {
        "min_rows": min_rows(history),
        "earliest": datetime(1900, 1, 1),
        "latest": datetime(m.year, m.month, last_day, 23, 59, 59, 999999),
        "month_start": datetime(m.year, m.month, 1),
    }


def min_rows(history: list[int]) -> int:
    """Half the median rows of the dataset's last deliveries before this one (a daily dataset's month
    counted whole). 0 (no floor) with fewer than three earlier deliveries, or for a feed too small to
    judge."""
    median = float(pd.Series(history).median()) if history else 0.0
    if len(history) < MIN_HISTORY or median < MIN_MEDIAN:
        return 0
    return int(VOLUME_SHARE * median)
