"""Which DuckDB file holds which zone.

DuckDB allows one writing process per file, so the warehouse is split by writer:
each unit zone and each unit's linkage vault is its own file (units load in
parallel), and the cross-unit zone is one file written by one step at a time.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

MEMORY_ENV = "KNUTPUNKT_DUCKDB_MEMORY"
# Per process: DuckDB's own default is 80 % of RAM, so two steps at once could claim more than the
# machine has; above this a query spills to ``<zone>.duckdb.tmp`` beside its file instead.
DEFAULT_MEMORY = "4GB"


def memory_limit() -> str:
    """The DuckDB buffer limit every warehouse connection (and dbt, through its profile) runs under."""
    return os.environ.get(MEMORY_ENV, DEFAULT_MEMORY)


@dataclass(frozen=True)
class Warehouse:
    root: Path

    def unit_zone(self, unit: str) -> Path:
        """A unit's own data, with unit-scoped pseudonyms."""
        return self.root / "units" / f"{unit}.duckdb"

    def vault(self, unit: str) -> Path:
        """Linkage tokens per unit pseudonym; read only when a unit is linked into the cross-unit zone."""
        return self.root / "vault" / f"{unit}.duckdb"

    @property
    def cross_unit(self) -> Path:
        """Approved unit data joined on the central citizen key, and the citizen index."""
        return self.root / "cross_unit.duckdb"

    @property
    def panel_cache(self) -> Path:
        """The discovery panel as arrays (a folder), kept between the analyses that read it (person
        level, like the cross-unit zone it comes from)."""
        return self.root / "cache" / "citizen_quarter"

    @property
    def association_sums(self) -> Path:
        """The associations' Mantel–Haenszel sums per test and quarter, kept between discovery runs
        (``pipelines.discovery.counting.Memo``): sums over strata, no person."""
        return self.root / "cache" / "association_sums.npz"

    @property
    def audit_memo(self) -> Path:
        """The bounds audit's signed memo, kept between publishes (``pipelines.disclosure.memo``)."""
        return self.root / "cache" / "bounds_audit.json"

    @property
    def marts(self) -> Path:
        """dbt's marts: aggregates for the serving snapshot, no person keys."""
        return self.root / "marts.duckdb"

    @property
    def serving(self) -> Path:
        """The serving snapshots' folder: its files are ``pipelines.serving.snapshot.ServingPaths``."""
        return self.root / "serving"

    def files(self) -> list[Path]:
        return sorted(self.root.rglob("*.duckdb")) if self.root.exists() else []


@contextmanager
def connect(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open a zone file; a writer creates it, a reader of a missing zone gets an error naming it."""
    if read_only and not path.exists():
        raise FileNotFoundError(f"warehouse zone {path} does not exist yet: load it first")
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only, config={"memory_limit": memory_limit()})
    try:
        yield con
    finally:
        con.close()


def run(con: duckdb.DuckDBPyConnection, sql: str, params: dict | None = None) -> list[tuple]:
    """Execute and fetch to the end: DuckDB 2 refuses other work while a result is unfinished."""
    return con.execute(sql, params or {}).fetchall()


def table_comment(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> str | None:
    """The comment of a table of the connection's database ('' if it has none), None if there is no such table."""
    rows = run(
        con,
        "SELECT coalesce(comment, '') FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = $s AND table_name = $t",
        {"s": schema, "t": table},
    )
    return rows[0][0] if rows else None


def has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return table_comment(con, schema, table) is not None


def write_record(con: duckdb.DuckDBPyConnection, table: str, basis: str, **more: object) -> None:
    """Keep what ``table`` ('schema.name') was written under (``basis``, and ``more``) as its comment, in
    JSON: it changes in the caller's transaction with the rows and goes wherever the table goes (a table
    dropped or replaced by other means has none)."""
    text = json.dumps({"basis": basis, **more}, sort_keys=True)
    run(con, f"COMMENT ON TABLE {table} IS '{text.replace(chr(39), chr(39) * 2)}'")


def read_record(con: duckdb.DuckDBPyConnection, table: str, basis: str) -> dict | None:
    """The record ``write_record`` kept on ``table``, if it was written under ``basis``; else None."""
    comment = table_comment(con, *table.split("."))
    try:
        record = json.loads(comment) if comment else None
    except ValueError:
        return None
    return record if isinstance(record, dict) and record.get("basis") == basis else None


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """All of the block's statements or none: rolled back on any exception, a kill included."""
    run(con, "BEGIN TRANSACTION")
    try:
        yield
        run(con, "COMMIT")
    except BaseException:
        run(con, "ROLLBACK")
        raise


def used(sql: str, params: dict) -> dict:
    """DuckDB rejects unused named parameters: bind only those the query mentions."""
    return {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}


def sql_name(name: str) -> str:
    """A column name quoted for SQL text (where a query parameter cannot stand)."""
    return '"' + name.replace('"', '""') + '"'


def of_deliveries(deliveries: Collection[str]) -> tuple[str, dict[str, object]]:
    """A condition for the rows of these deliveries, and its parameters. The bounds let DuckDB skip
    other months' row groups by their min and max (a list alone would read them all)."""
    condition = "_delivery BETWEEN $first AND $last AND list_contains($d, _delivery)"
    return condition, {"d": sorted(deliveries), "first": min(deliveries), "last": max(deliveries)}


def sql_texts(texts) -> str:
    """Strings as a SQL list literal, ``('a', 'O''Brien')``, for ``IN``."""
    return "(" + ", ".join("'" + t.replace("'", "''") + "'" for t in texts) + ")"


def content_digest(row: str) -> str:
    """SQL for one number standing for the rows of ``row`` (a table alias), whatever their order.

    DuckDB's hash of several values, or of a row, combines the values' hashes by XOR, so a ``bit_xor`` of
    row hashes only sees each value change's parity: forty rows whose count went from 0 to 1 cancel out.
    Each row's hash is hashed again (a multiply-and-shift mix, not linear in XOR) before the rows are
    combined, so a change is missed only by chance (one in 2**64). The rows must be distinct."""
    return f"bit_xor(hash(hash({row})))"
