"""Ingest throughput against a bare DuckDB load of the same files, measured in one process.

The bare load is what DuckDB does with no contract: read_csv / read_parquet /
read_json straight into one table per unit dataset, no validation, no
pseudonymisation, no quarantine. Two ratios: the border alone (load), and the
border with every quality check that can hold a delivery (load + checks, as a
unit's asset runs them), since a delivery is not usable before its checks pass.

    .venv/bin/python bench/ingest.py --citizens 60000 --years 5 --rounds 5

Each round loads the same landing from empty; with several, the median ratios are printed last.
GX is imported once before the rounds, so that every round measures the same work.
"""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Round:
    bare_rows: int
    bare_s: float
    rows: int
    load_s: float
    checks_s: float

    @property
    def load_only(self) -> float:
        return self.load_s / self.bare_s

    @property
    def with_checks(self) -> float:
        return (self.load_s + self.checks_s) / self.bare_s


def measure(work: Path) -> Round:
    """The bare load, Knutpunkt's load and its checks, back to back on the same landing, each from empty."""
    for built in (work / "bare", work / "warehouse", work / "quality"):
        shutil.rmtree(built, ignore_errors=True)
    bare_rows, bare_s = bare_load(work / "landing", work / "bare")
    rows, load_s = knutpunkt_load(work / "landing", work / "warehouse")
    return Round(bare_rows, bare_s, rows, load_s, knutpunkt_checks(work))


def main() -> None:
    # Clean data, so that both loads see exactly the same rows (a renamed column would stop the bare load).
    args = size_arguments(__doc__.splitlines()[0], defect_rate=0.0, rounds=True)
    with generated(args) as work:
        started = time.perf_counter()
        import great_expectations  # noqa: F401  (here, not inside the first round's checks)

        print(
            f"importing great_expectations: {time.perf_counter() - started:.1f} s, once per process "
            "(each of the main job's two ingest workers pays it once); not in the rounds' checks"
        )
        rounds = []
        for _ in range(args.rounds):
            rounds.append(measure(work))
            _report(rounds[-1])
    if len(rounds) > 1:
        load_only = statistics.median(r.load_only for r in rounds)
        with_checks = statistics.median(r.with_checks for r in rounds)
        print(
            f"median of {len(rounds)} rounds: load only {load_only:.2f}, load with checks {with_checks:.2f}"
        )


def _report(r: Round) -> None:
    print(
        f"bare DuckDB load : {r.bare_rows:>10,} rows in {r.bare_s:6.1f} s = {r.bare_rows / r.bare_s:>10,.0f} rows/s"
    )
    print(f"Knutpunkt ingest : {r.rows:>10,} rows in {r.load_s:6.1f} s = {r.rows / r.load_s:>10,.0f} rows/s")
    print(f"Knutpunkt checks : {r.checks_s:6.1f} s (every check that can hold a delivery, Data Docs)")
    print(f"ratio load only        (Knutpunkt / bare): {r.load_only:.2f}")
    print(f"ratio load with checks (Knutpunkt / bare): {r.with_checks:.2f}")


if __name__ == "__main__":
    main()
