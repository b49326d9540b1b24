"""Which deliveries are held back from everything downstream, and why.

A delivery is held from the moment it is stored until its checks pass: the load
writes it to ``held_deliveries`` as ``unchecked`` in the same transaction that
stores its rows, and only a passed verdict releases it. So a crash between the
load and the verdict leaves the delivery held, never shared unchecked (the gate
fails closed). An ERROR on a holding check (reconciliation, the GX suite) keeps it
held with the check's reason: its rows stay in the unit zone for the steward to
see, but the sharing gate and the citizen index skip every held delivery, while
the unit's other months and the other units flow on. A held delivery is a check
outcome, not a crashed step: the checks are not Dagster-blocking, so the run
succeeds and the unit's other checks still run. A corrected re-sent delivery
passes its checks and is released.
"""

from __future__ import annotations

from collections.abc import Mapping

import duckdb

from warehouse.layout import run

RECONCILIATION, EXPECTATIONS = "reconciliation", "expectations"  # the checks that hold a delivery
HOLDING_CHECKS = frozenset({RECONCILIATION, EXPECTATIONS})
UNCHECKED = "unchecked"
HELD_DDL = """CREATE TABLE IF NOT EXISTS held_deliveries (
    _delivery VARCHAR PRIMARY KEY, checks VARCHAR NOT NULL, reason VARCHAR, held_at TIMESTAMP NOT NULL)"""
HELD_MIGRATION = "ALTER TABLE held_deliveries ADD COLUMN IF NOT EXISTS reason VARCHAR"  # zones before 2026-12
NOT_HELD = "_delivery NOT IN (SELECT _delivery FROM unit.held_deliveries)"
REASON_CHARS = 500


def hold_unchecked(con: duckdb.DuckDBPyConnection, delivery: str) -> None:
    """Hold a delivery being stored until its checks pass; call inside the load's transaction."""
    run(
        con,
        "INSERT OR REPLACE INTO held_deliveries (_delivery, checks, reason, held_at) VALUES ($d, $c, $r, now())",
        {"d": delivery, "c": UNCHECKED, "r": "stored; its quality checks have not passed yet"},
    )


def record_verdict(
    con: duckdb.DuckDBPyConnection, delivery: str, ran: set[str], failed: Mapping[str, str]
) -> bool:
    """Keep the delivery held if a holding check failed, release it when every one ran and passed.

    ``ran`` names the checks that ran, ``failed`` maps each holding check that failed with severity
    ERROR to its reason, in the order they ran (``pipelines.defs.unit_checks`` reads both off its
    Dagster evaluations).
    """
    if not failed and not HOLDING_CHECKS.issubset(ran):
        return True  # a check did not run: the delivery stays held as it was
    run(con, "DELETE FROM held_deliveries WHERE _delivery = $d", {"d": delivery})
    if failed:
        checks = ", ".join(sorted(failed))
        reason = "; ".join(failed.values())[:REASON_CHARS]
        run(
            con,
            "INSERT INTO held_deliveries (_delivery, checks, reason, held_at) VALUES ($d, $c, $r, now())",
            {"d": delivery, "c": checks, "r": reason},
        )
    return bool(failed)
