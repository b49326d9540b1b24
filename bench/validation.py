"""The cost of the quality gates: share of ingest time spent validating, and validation rows/s.

Loads a generated municipality as a backfill of each unit's months, as the unit
assets do, timing the load (read, border, quarantine, atomic replace) and the
checks of every delivery (the per-delivery summary counted in DuckDB, the
unit's GX suite judging it, reconciliation with its independent record count,
and freshness) separately, in the same process. GX's import and
context setup are paid once per process and reported on their own line.

    .venv/bin/python bench/validation.py --citizens 60000 --years 5
"""

from __future__ import annotations

import time
from datetime import date

from municipality import generated, size_arguments

from pipelines.border.keys import keyring_from_env
from pipelines.defs import unit_checks
from pipelines.ingest.delivery import load_deliveries
from pipelines.ingest.months import scan
from pipelines.units import UNITS
from warehouse.layout import Warehouse, connect, run

ALL_CHECKS = {unit_checks.RECONCILIATION, unit_checks.EXPECTATIONS, unit_checks.FRESHNESS}


def main() -> None:
    args = size_arguments(__doc__.splitlines()[0], defect_rate=0.002)
    with generated(args) as work:
        t0 = time.perf_counter()
        from pipelines.quality.validate import Validator

        validators = {u: Validator(unit) for u, unit in UNITS.items()}
        setup_s = time.perf_counter() - t0
        landing, wh, keys = work / "landing", Warehouse(work / "warehouse"), keyring_from_env()
        load_s = check_s = 0.0
        rows = deliveries = 0
        for unit in UNITS.values():
            months = scan(landing / unit.name, date.today()).months
            t0 = time.perf_counter()
            for _ in load_deliveries(unit, months, landing, wh, keys):
                pass
            t1 = time.perf_counter()
            with connect(wh.unit_zone(unit.name), read_only=True) as con:
                unit_checks.evaluate(unit, months, con, landing, validators[unit.name], ALL_CHECKS)
                rows += run(con, "SELECT coalesce(sum(rows_in_file), 0) FROM reconciliation")[0][0]
            t2 = time.perf_counter()
            load_s, check_s, deliveries = load_s + t1 - t0, check_s + t2 - t1, deliveries + len(months)
        total = load_s + check_s
        print(f"deliveries             : {deliveries:>10,}  ({rows:,} rows)")
        print(f"load (border, quarantine): {load_s:8.1f} s = {rows / load_s:>10,.0f} rows/s")
        print(f"checks (GX + reconciliation + freshness): {check_s:8.1f} s = {rows / check_s:>10,.0f} rows/s")
        print(f"GX import + suites, once per process: {setup_s:.1f} s")
        print(
            f"share of ingest time spent validating: {check_s / total:.1%} (with setup: "
            f"{(check_s + setup_s) / (total + setup_s):.1%})"
        )


if __name__ == "__main__":
    main()
