"""The SQL of exactly what a contract shares, used both by the sharing gate and by ``steward show``.

Every query runs on a connection where the unit zone is attached as ``unit`` and that is then
locked (:func:`lock_down`): a contract's SQL is text a steward approved, not code we wrote, so it
must not reach a file the connection has not attached (``landing/`` holds raw personnummer).
The dataset's table is first narrowed to the rows within retention and given
its own name as a CTE, so a contract's SQL reads ``FROM ekonomiskt_bistand``.
Person-level output (detail, derived) still carries ``person_pseudonym``: the
gate swaps it for the central citizen key, ``show`` counts and risk-checks it.
"""

from __future__ import annotations

from datetime import date

import duckdb

from pipelines.quality.gate import NOT_HELD
from pipelines.stewardship.contracts import PERSON_LEVEL, Contract, ContractError
from warehouse.layout import run, used


def lock_down(con: duckdb.DuckDBPyConnection) -> None:
    """Turn off file access and freeze the settings, after the connection attached what it needs.

    With ``enable_external_access`` off DuckDB refuses ``read_csv``, ``read_text``, ``glob``,
    ``ATTACH`` and ``COPY`` on any path, and ``lock_configuration`` stops a contract's SQL from
    turning it back on; the attached zones stay readable and the main database writable.
    """
    run(con, "SET enable_external_access = false")
    run(con, "SET lock_configuration = true")


def cutoff_month(retention_months: int, today: date | None = None) -> date:
    """First day of the oldest delivery month kept: ``retention_months`` before the current month."""
    today = today or date.today()
    months = today.year * 12 + today.month - 1 - retention_months
    return date(months // 12, months % 12 + 1, 1)


def params(contract: Contract, today: date | None = None) -> dict:
    first = cutoff_month(contract.retention_months, today)
    return {"cutoff": first.strftime("%Y-%m"), "cutoff_date": first}


def shared_sql(contract: Contract) -> str:
    """A query over the attached unit zone giving the rows that leave the unit, before any key swap."""
    ds, s = contract.dataset, contract.sharing
    source = _source(ds)
    if s.level == "detail":
        columns = ", ".join(f'"{c}"' for c in ("person_pseudonym", *s.columns, "_delivery"))
        return f"{source}\nSELECT {columns} FROM {ds}"
    keep = f'WHERE "{s.period}" >= $cutoff_date' if s.period else "WHERE true"
    if s.level == "aggregate" and s.count_column:
        keep += f' AND "{s.count_column}" >= {int(s.min_count)}'
    return f"{source},\nshared AS (\n{s.sql}\n)\nSELECT * FROM shared {keep}"


def suppressed_sql(contract: Contract) -> str | None:
    """Aggregate cells withheld for being too small (their count, never their content)."""
    s = contract.sharing
    if s.level != "aggregate" or not s.count_column:
        return None
    ds = contract.dataset
    period = f'"{s.period}" >= $cutoff_date' if s.period else "true"
    return (
        f"{_source(ds)},\nshared AS (\n{s.sql}\n)\n"
        f'SELECT count(*) FROM shared WHERE {period} AND "{s.count_column}" < {int(s.min_count)}'
    )


def _source(dataset: str) -> str:
    """The dataset's rows within retention, minus deliveries held back by a failed blocking check."""
    return f"WITH {dataset} AS (SELECT * FROM unit.{dataset} WHERE _delivery >= $cutoff AND {NOT_HELD})"


def check_output(con: duckdb.DuckDBPyConnection, contract: Contract, bound: dict) -> list[str]:
    """Refuse output the contract does not define; return the output's columns.

    Derived rows must be one per person and grain, with exactly the grain and
    indicator columns; aggregates must have no person-level column at all.
    """
    sql, s = shared_sql(contract), contract.sharing
    columns = [r[0] for r in run(con, f"DESCRIBE ({sql})", used(sql, bound))]
    expected = (["person_pseudonym"] if s.level != "aggregate" else []) + list(s.output_columns)
    if s.level == "detail":
        expected.append("_delivery")
    if sorted(c.lower() for c in columns) != sorted(c.lower() for c in expected):
        raise ContractError(
            f"{contract.key}: the shared output has columns {columns}, the contract defines {expected}"
        )
    if s.level == "aggregate" and (person := [c for c in columns if c in PERSON_LEVEL]):
        raise ContractError(f"{contract.key}: aggregate output carries person-level columns {person}")
    if s.level == "derived":
        keys = ", ".join(f'"{c}"' for c in ("person_pseudonym", *s.grain))
        dup = run(con, f"SELECT count(*) - count(DISTINCT ({keys})) FROM ({sql})", used(sql, bound))[0][0]
        if dup:
            raise ContractError(
                f"{contract.key}: derived output has {dup} rows beyond one per person and grain"
            )
    return columns
