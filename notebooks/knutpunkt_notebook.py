"""What the analyst notebooks use to read data: the serving snapshot, read-only, with disclosure control.

Notebooks never open a warehouse zone. ``Snapshot`` opens ``warehouse/serving/current.duckdb`` (of
``$KNUTPUNKT_HOME``) read-only and without file access from SQL, and ``show``/``query`` withhold any
count below the snapshot's threshold before a frame is returned or displayed: a notebook's own
aggregate (a sum over districts, a count of rows) is checked like the published tables. A column
counts as a count if the snapshot's ``_disclosure`` table says so, or if its name starts with ``n_``
or it is an integer result of ``count(``/``sum(`` in the notebook's query; values derived from a
withheld count in the same row (shares, means) are withheld with it.

What a notebook computes is a function of the snapshot's published values only (the snapshot holds no
withheld value), so it cannot narrow a withheld cell further than the snapshot itself does. That is
why ``Snapshot`` opens only a snapshot that passed the publish's bounds audit (``_snapshot`` records
the protection width and the narrowest interval found), and ``attack`` runs the same engine on it again,
every relation between cells and tables included.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb
import polars as pl

from pipelines.disclosure.bounds import Report
from pipelines.disclosure.joint import attack
from pipelines.serving.build import PUBLISHED_SPECS
from pipelines.serving.snapshot import ServingPaths, current_snapshot
from pipelines.settings import Paths
from warehouse.layout import Warehouse

WITHHELD = None  # how a withheld cell looks: NULL, like in the published tables


class Snapshot:
    """A read-only connection to the current serving snapshot, pinned for the notebook's life."""

    def __init__(self, home: Path | None = None):
        paths = Paths(Path(home)) if home else Paths.from_env()
        self.path = current_snapshot(ServingPaths(Warehouse(paths.warehouse).serving))
        self._con = duckdb.connect(str(self.path), read_only=True)
        self._con.execute("SET enable_external_access = false")
        self._con.execute("SET lock_configuration = true")
        self.threshold = int(self._con.execute("SELECT max(threshold) FROM _snapshot").fetchall()[0][0])
        self._require_bounds_audit()
        roles = self._con.execute("SELECT column_name, role FROM _disclosure").fetchall()
        self._counts = {c for c, r in roles if r in ("count", "part_of")}

    def _require_bounds_audit(self) -> None:
        """Refuse a snapshot that no bounds audit passed (an older one, or one built without it)."""
        columns = {c for (c,) in self._con.execute("SELECT column_name FROM (DESCRIBE _snapshot)").fetchall()}
        width = (
            self._con.execute("SELECT max(protection_width) FROM _snapshot").fetchall()[0][0]
            if "protection_width" in columns
            else None
        )
        if width is None:
            self._con.close()
            raise PermissionError(f"{self.path.name} did not pass the bounds audit: publish again")

    def attack(self) -> Report:
        """The publish's bounds attack, run again on this snapshot: what every relation gives away."""
        published = {
            name: self._frame(f'SELECT * FROM "{name}"')
            for (name,) in self._con.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            if name in PUBLISHED_SPECS
        }
        return attack(published, PUBLISHED_SPECS, self.threshold)

    def tables(self) -> pl.DataFrame:
        """Every table in the snapshot with its Swedish description."""
        return self._frame("SELECT table_name, comment AS beskrivning FROM duckdb_tables() ORDER BY 1")

    def query(self, sql: str, counts: list[str] | None = None) -> pl.DataFrame:
        """Run a query and withhold small counts (and what is computed from them) before returning it.

        ``counts`` names the result's counts of people or cases when the guess (``count_columns``)
        would be wrong, e.g. ``counts=[]`` for a number of months: say so in the notebook, where a
        reviewer reads it.
        """
        columns = self.count_columns(sql) if counts is None else counts
        return protect(self._frame(sql), columns, self.threshold)

    def table(self, name: str, where: str = "true") -> pl.DataFrame:
        return self.query(f'SELECT * FROM "{name}" WHERE {where}')

    def count_columns(self, sql: str) -> list[str]:
        """Columns of the query's result that are counts of people or cases."""
        frame = self._frame(f"SELECT * FROM ({sql}) LIMIT 0")
        declared = self._counts
        aggregated = {
            m.group(2)
            for m in re.finditer(r"\b(count|sum)\s*\([^)]*\)[^,]*?\bAS\s+(\w+)", sql, flags=re.IGNORECASE)
        }
        return [
            c
            for c, dtype in frame.schema.items()
            if c in declared or c.startswith("n_") or (c in aggregated and dtype.is_integer())
        ]

    def close(self) -> None:
        self._con.close()

    def _frame(self, sql: str) -> pl.DataFrame:
        return pl.from_arrow(self._con.sql(sql).to_arrow_table())


def protect(frame: pl.DataFrame, counts: list[str], threshold: int) -> pl.DataFrame:
    """Withhold counts below ``threshold`` (zero included), and every non-key number in such a row.

    A notebook's ad hoc frame has no declared relations, so this is the cautious rule: a row with a
    withheld count keeps only its text columns (the row's labels).
    """
    if not counts or frame.is_empty():
        return frame
    small = pl.lit(False)
    for c in counts:
        small = small | (pl.col(c).is_not_null() & (pl.col(c) < threshold))
    numbers = [c for c, t in frame.schema.items() if t.is_numeric() and not _is_label(c)]
    return frame.with_columns(pl.when(small).then(WITHHELD).otherwise(pl.col(c)).alias(c) for c in numbers)


def _is_label(column: str) -> bool:
    return column in ("year", "quarter", "month", "tertial", "kpi_id") or column.endswith("_id")


def show(frame: pl.DataFrame, rows: int = 20) -> pl.DataFrame:
    """The first rows of a frame that came from ``Snapshot.query`` (already protected)."""
    with pl.Config(tbl_rows=rows, tbl_cols=-1, fmt_str_lengths=80):
        print(frame.head(rows))
    return frame.head(rows)
