"""Ingest throughput against a bare DuckDB load of the same files, measured in one process.

The bare load is what DuckDB does with no contract: read_csv / read_parquet /
read_json straight into one table per unit dataset, no validation, no
pseudonymisation, no quarantine. Two ratios: the border alone (load), and the
border with every quality check that can hold a delivery (load + checks, as a
unit's asset runs them), since a delivery is not usable before its checks pass.

    .venv/bin/python bench/ingest.py --citizens 60000 --years 5
"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

import duckdb
from municipality import generated, size_arguments

from pipelines.border.keys import keyring_from_env
from pipelines.defs.unit_checks import check_deliveries
from pipelines.ingest.delivery import load_deliveries
from pipelines.ingest.months import scan
from pipelines.settings import Paths
from pipelines.units import UNITS
from pipelines.units.spec import Csv, JsonLines, Parquet, Unit
from warehouse.layout import Warehouse


def knutpunkt_load(landing: Path, root: Path) -> tuple[int, float]:
    wh, keys, rows = Warehouse(root), keyring_from_env(), 0
    started = time.perf_counter()
    for unit in UNITS.values():
        months = scan(landing / unit.name, date.today()).months
        for _, results in load_deliveries(unit, months, landing, wh, keys):
            rows += sum(r.rows_in_file or 0 for r in results)
    return rows, time.perf_counter() - started


def knutpunkt_checks(home: Path) -> float:
    """Seconds for every unit's quality checks over all its loaded deliveries (Data Docs included)."""
    paths = Paths(home)
    started = time.perf_counter()
    for unit in UNITS.values():
        months = scan(paths.landing / unit.name, date.today()).months
        check_deliveries(unit, months, paths, Warehouse(paths.warehouse))
    return time.perf_counter() - started


def bare_load(landing: Path, root: Path) -> tuple[int, float]:
    started = time.perf_counter()
    rows = 0
    root.mkdir(parents=True, exist_ok=True)
    for unit in UNITS.values():
        with duckdb.connect(str(root / f"{unit.name}.duckdb")) as con:
            for folder in (landing / unit.name / m for m in scan(landing / unit.name, date.today()).months):
                for ds in unit.datasets:
                    # a daily dataset's month in one read of all its day files, as DuckDB reads a folder best
                    if paths := [p for p in ds.files(folder, unit.format) if p.exists()]:
                        rows += _bare_insert(con, unit, ds.name, paths)
    return rows, time.perf_counter() - started


def _bare_insert(con: duckdb.DuckDBPyConnection, unit: Unit, table: str, paths: list[Path]) -> int:
    path = str([str(p) for p in paths])  # DuckDB reads a list of files as one
    match unit.format:
        case Csv(encoding=enc, separator=sep):
            encoding = "latin-1" if enc == "cp1252" else "utf-8"
            reader = f"read_csv({path}, delim='{sep}', header=true, all_varchar=true, encoding='{encoding}')"
        case Parquet():
            reader = f"read_parquet({path})"
        case JsonLines():
            reader = f"read_json({path}, format='newline_delimited')"
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM {reader} LIMIT 0").fetchall()
    return con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {reader}").fetchall()[0][0]


def main() -> None:
    # Clean data, so that both loads see exactly the same rows (a renamed column would stop the bare load).
    args = size_arguments(__doc__.splitlines()[0], defect_rate=0.0)
    with generated(args) as work:
        bare_rows, bare_s = bare_load(work / "landing", work / "bare")
        rows, kp_s = knutpunkt_load(work / "landing", work / "warehouse")
        checks_s = knutpunkt_checks(work)
    print(
        f"bare DuckDB load : {bare_rows:>10,} rows in {bare_s:6.1f} s = {bare_rows / bare_s:>10,.0f} rows/s"
    )
    print(f"Knutpunkt ingest : {rows:>10,} rows in {kp_s:6.1f} s = {rows / kp_s:>10,.0f} rows/s")
    print(f"Knutpunkt checks : {checks_s:6.1f} s (every check that can hold a delivery, Data Docs)")
    print(f"ratio load only        (Knutpunkt / bare): {kp_s / bare_s:.2f}")
    print(f"ratio load with checks (Knutpunkt / bare): {(kp_s + checks_s) / bare_s:.2f}")


if __name__ == "__main__":
    main()
