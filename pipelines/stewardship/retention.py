"""Gallring: removes rows older than each contract's retention from every zone.

Per dataset, rows whose delivery month is more than ``retention.months`` before
the current month are deleted from the landing folder (the delivery file, so a
reload cannot bring them back), from the unit zone table and its quarantine
rows, and from the cross-unit zone (detail rows by ``_delivery``, derived and
aggregate rows by their period column, citizen-index rows of persons who left
the register before the cutoff), and from the unit's linkage vault the tokens
of pseudonyms no row of the unit zone holds any more (the vault keeps no one
longer than the data does). The link step applies the same cutoff, so a
later link run never brings them back either. Each deletion is audited.

The nightly job and schedule that run it are in ``pipelines.defs.stewardship``.
"""

import shutil
from datetime import date
from pathlib import Path

from pipelines.settings import Paths
from pipelines.stewardship import audit, sharing
from pipelines.stewardship.compact import compact
from pipelines.stewardship.contracts import Contract, load_contracts
from pipelines.units import Unit
from pipelines.units.spec import Dataset
from warehouse.layout import Warehouse, connect, run, used


def thin_unit(unit: Unit, paths: Paths, today: date | None = None) -> dict[str, dict]:
    """Delete one unit's rows past retention from its landing folder and zone; audit what went."""
    contracts, wh = load_contracts(), Warehouse(paths.warehouse)
    removed: dict[str, dict] = {}
    zone = wh.unit_zone(unit.name)
    for d in unit.datasets:
        contract = contracts[f"{unit.name}.{d.name}"]
        cutoff = sharing.params(contract, today)["cutoff"]
        files = _thin_landing(paths.landing / unit.name, unit, d, cutoff)
        rows = quarantined = 0
        if zone.exists():
            with connect(zone) as con:
                tables = {t for (t,) in run(con, "SELECT table_name FROM duckdb_tables()")}
                run(con, "BEGIN TRANSACTION")
                if d.name in tables:
                    rows = run(con, f"DELETE FROM {d.name} WHERE _delivery < $c", {"c": cutoff})[0][0]
                if "quarantine" in tables:
                    quarantined = run(
                        con,
                        "DELETE FROM quarantine WHERE dataset = $d AND _delivery < $c",
                        {"d": d.name, "c": cutoff},
                    )[0][0]
                run(con, "COMMIT")
        removed[d.name] = {
            "cutoff": cutoff,
            "rows": rows,
            "quarantine_rows": quarantined,
            "landing_files": files,
        }
        if rows or quarantined or files:
            _audit(contract, "unit zone and landing", removed[d.name], paths)
    _remove_empty_months(paths.landing / unit.name)
    if any(r["rows"] or r["quarantine_rows"] for r in removed.values()):
        compact(zone)  # deleted rows' bytes stay in freed blocks until the file is rewritten
        _thin_vault(unit, wh, paths)
    return removed


def _thin_vault(unit: Unit, wh: Warehouse, paths: Paths) -> int:
    """Drop the linkage tokens of pseudonyms that no row of the unit zone holds any more."""
    vault, zone = wh.vault(unit.name), wh.unit_zone(unit.name)
    with_person = [d.name for d in unit.datasets if d.person_column]
    if not vault.exists() or not with_person:
        return 0
    with connect(zone) as con:
        tables = {t for (t,) in run(con, "SELECT table_name FROM duckdb_tables()")}
        held = " UNION ".join(
            f"SELECT person_pseudonym FROM {t} WHERE person_pseudonym IS NOT NULL"
            for t in with_person
            if t in tables
        )
        run(con, f"ATTACH '{vault}' AS vault")
        try:
            where = f"WHERE person_pseudonym NOT IN ({held})" if held else ""
            links = run(con, f"DELETE FROM vault.link {where}")[0][0]
        finally:
            run(con, "DETACH vault")
    if links:
        compact(vault)
        details = {"zone": "linkage vault", "unit": unit.name, "links": links}
        audit.record("retention", details=details, paths=paths)
    return links


def thin_cross_unit(paths: Paths, today: date | None = None) -> dict[str, int]:
    """Delete rows past retention from every shared table of the cross-unit zone; audit what went."""
    wh = Warehouse(paths.warehouse)
    if not wh.cross_unit.exists():
        return {}
    removed: dict[str, int] = {}
    with connect(wh.cross_unit) as con:
        tables = {f"{s}.{t}" for s, t in run(con, "SELECT schema_name, table_name FROM duckdb_tables()")}
        for contract in load_contracts().values():
            table, condition = _cross_unit_rows(contract)
            if table not in tables:
                continue
            bound = sharing.params(contract, today)
            n = run(con, f"DELETE FROM {table} WHERE {condition}", used(condition, bound))[0][0]
            removed[table] = n
            if n:
                _audit(
                    contract, "cross-unit zone", {"table": table, "rows": n, "cutoff": bound["cutoff"]}, paths
                )
    if any(removed.values()):
        compact(wh.cross_unit)
        shutil.rmtree(wh.panel_cache, ignore_errors=True)  # the rows as they were; discovery reads anew
        wh.association_sums.unlink(missing_ok=True)  # and counts them anew
    return removed


def _cross_unit_rows(c: Contract) -> tuple[str, str]:
    """The shared table of a contract and the SQL condition of its rows past retention."""
    s = c.sharing
    if s.target == "citizen_index":
        return "main.citizen_index", "valid_to < $cutoff_date"
    table = f"{c.unit}.{c.dataset}"
    if s.level == "detail":
        return table, "_delivery < $cutoff"
    return table, f'"{s.period}" < $cutoff_date' if s.period else "false"


def _thin_landing(unit_landing: Path, unit: Unit, dataset: Dataset, cutoff: str) -> int:
    """Delete the dataset's landing files (each day's file of a daily dataset) of months before the cutoff."""
    if not unit_landing.is_dir():
        return 0
    removed = 0
    for month in unit_landing.iterdir():
        if not (month.is_dir() and month.name < cutoff):
            continue
        for path in dataset.files(month, unit.format) + dataset.stray_files(month, unit.format):
            if path.exists():
                path.unlink()
                removed += 1
    return removed


def _remove_empty_months(unit_landing: Path) -> None:
    if unit_landing.is_dir():
        for month in unit_landing.iterdir():
            if month.is_dir() and not any(month.iterdir()):
                shutil.rmtree(month)


def _audit(contract: Contract, zone: str, details: dict, paths: Paths) -> None:
    audit.record(
        "retention",
        dataset=contract.key,
        contract_version=contract.version,
        details={"zone": zone, "retention_months": contract.retention_months, **details},
        paths=paths,
    )
