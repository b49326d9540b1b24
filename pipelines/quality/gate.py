"""Which deliveries a failed blocking check holds back from everything downstream.

An ERROR on a blocking check (reconciliation, the GX suite) holds back that
delivery, not the whole unit: its rows stay in the unit zone for the steward to
see, but the sharing gate and the citizen index skip every held delivery
(``held_deliveries`` in the unit zone), so nothing downstream of that partition
sees it. Inside one Dagster run the failed check also stops the unit's
downstream steps. A corrected re-sent delivery passes its checks and is released.
"""

from __future__ import annotations

import dagster as dg
import duckdb

from warehouse.layout import run

HELD_DDL = """CREATE TABLE IF NOT EXISTS held_deliveries (
    _delivery VARCHAR PRIMARY KEY, checks VARCHAR NOT NULL, held_at TIMESTAMP NOT NULL)"""
NOT_HELD = "_delivery NOT IN (SELECT _delivery FROM unit.held_deliveries)"


def blocking_errors(evaluations: list[dg.AssetCheckEvaluation]) -> list[dg.AssetCheckEvaluation]:
    return [
        e for e in evaluations if not e.passed and e.blocking and e.severity == dg.AssetCheckSeverity.ERROR
    ]


def record_verdict(
    con: duckdb.DuckDBPyConnection, delivery: str, evaluations: list[dg.AssetCheckEvaluation]
) -> bool:
    """Hold the delivery back if a blocking check failed, release it otherwise; True if held."""
    failed = blocking_errors(evaluations)
    run(con, HELD_DDL)
    run(con, "DELETE FROM held_deliveries WHERE _delivery = $d", {"d": delivery})
    if failed:
        checks = ", ".join(sorted(e.check_name for e in failed))
        run(con, "INSERT INTO held_deliveries VALUES ($d, $c, now())", {"d": delivery, "c": checks})
    return bool(failed)


def failures(result: dg.ExecuteInProcessResult) -> list[str]:
    """A run's failed blocking ERROR checks, one line each: ``unit month: check (why)``."""
    return [
        f"{e.asset_key.path[-1]} {e.partition}: {e.check_name} ({e.description})"
        for e in blocking_errors(result.get_asset_check_evaluations())
    ]
