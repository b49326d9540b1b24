"""Which deliveries a table of the cross-unit zone holds, so a link can add only what changed.

A detail table is the union of its deliveries' shared rows, each on the central key, so a month's link
need not rebuild five years of a contact centre: it deletes the rows of deliveries no longer shared
(held since, past retention, loaded again) and inserts those of deliveries new or loaded again, then
flags anew the rows whose person folkbokföring has come to know. The ledger is the table's comment
(JSON): the basis the rows were linked under and each delivery with the time of the load it holds, so it
changes in the same transaction as the rows and goes wherever the table goes (a dropped or rebuilt table
has none). A link rebuilds the whole table whenever the ledger is missing or was written under another
basis: another contract version or shared query, another central key, the register shared or not.
"""

from __future__ import annotations

import hashlib
import json

import duckdb

from pipelines.quality.gate import NOT_HELD
from warehouse.layout import read_record, run, used, write_record

Deliveries = dict[str, str | None]  # delivery -> the time of the load whose rows are shared (None: unknown)


def basis(contract_version: str, shared_sql: str, key_id: str, *more: str | bool) -> str:
    """What every row of the table was linked under (the contract, its query, the central key, and what
    else the rows depend on); ``key_id`` names the central key without revealing it."""
    return hashlib.sha256(json.dumps([contract_version, shared_sql, key_id, *more]).encode()).hexdigest()


def eligible(con: duckdb.DuckDBPyConnection, dataset: str, bound: dict) -> Deliveries:
    """The deliveries the dataset shares now (within retention, not held) and the load each holds."""
    sql = f"""
        WITH shared AS (SELECT DISTINCT _delivery FROM unit.{dataset} WHERE _delivery >= $cutoff AND {NOT_HELD})
        SELECT s._delivery, max(d._loaded_at)::VARCHAR
        FROM shared s LEFT JOIN unit.deliveries d USING (_delivery)
        GROUP BY ALL ORDER BY ALL"""
    return dict(run(con, sql, used(sql, bound)))


def read(con: duckdb.DuckDBPyConnection, table: str, expected_basis: str) -> Deliveries | None:
    """The deliveries the table holds, if its ledger was written under ``expected_basis``."""
    ledger = read_record(con, table, expected_basis)
    held = ledger.get("deliveries") if ledger else None
    return held if isinstance(held, dict) else None


def changes(held: Deliveries, now: Deliveries) -> tuple[list[str], list[str]]:
    """(deliveries to insert: new or loaded again; deliveries to delete: no longer shared or loaded again).
    A load of unknown time is always taken anew."""
    changed = [d for d, at in now.items() if at is None or held.get(d) != at]
    gone = [d for d in held if d not in now or d in changed]
    return changed, gone


def write(con: duckdb.DuckDBPyConnection, table: str, table_basis: str, held: Deliveries) -> None:
    write_record(con, table, table_basis, deliveries=held)
