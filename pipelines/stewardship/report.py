"""What ``steward show`` tells a steward before they approve: exactly what leaves the unit, its
quality, and how easily a person in it could be singled out.

Everything is read from the unit zone (and, for district, from folkbokföring's
zone through the linkage vaults) read-only, in an in-memory DuckDB; nothing is
written and no central citizen key is computed. Re-identification risk is
k-anonymity over the contract's quasi-identifiers (birth year, sex, district):
the size of the smallest group of shared persons who look alike on them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date

import duckdb

from pipelines.disclosure.policy import RISKY_K
from pipelines.stewardship import sharing
from pipelines.stewardship.contracts import Contract
from pipelines.units.register import in_order
from warehouse.layout import Warehouse, run, used


@dataclass
class Report:
    rows_in_zone: int = 0
    rows_within_retention: int = 0
    rows_shared: int = 0
    persons_shared: int | None = None
    columns: list[str] = field(default_factory=list)  # as the cross-unit table will have them
    quality: dict = field(default_factory=dict)
    quarantine_rules: list[tuple[str, int]] = field(default_factory=list)
    recent: list[dict] = field(default_factory=list)  # the latest deliveries, one per month, newest first
    risk: dict = field(default_factory=dict)
    problem: str | None = None  # why the report is incomplete (zone not loaded, contract output wrong)


def build(contract: Contract, wh: Warehouse, today: date | None = None) -> Report:
    report = Report()
    zone = wh.unit_zone(contract.unit)
    if not zone.exists():
        report.problem = f"{zone} does not exist yet: load {contract.unit} first"
        return report
    with duckdb.connect() as con:
        run(con, f"ATTACH '{zone}' AS unit (READ_ONLY)")
        register = _attach_register(con, contract, wh)
        sharing.lock_down(con)  # the contract's SQL runs below: it sees only what is attached
        bound = sharing.params(contract, today)
        ds = f"unit.{contract.dataset}"
        report.rows_in_zone = run(con, f"SELECT count(*) FROM {ds}")[0][0]
        report.rows_within_retention = run(
            con, f"SELECT count(*) FROM {ds} WHERE _delivery >= $cutoff", {"cutoff": bound["cutoff"]}
        )[0][0]
        report.quality, report.quarantine_rules = _quality(con, contract.dataset)
        report.recent = _recent(con, contract.dataset)
        if contract.sharing.target == "citizen_index":
            report.columns = ["citizen_key", *contract.sharing.output_columns]
            report.rows_shared = report.persons_shared = _register_persons(con, bound)
            report.risk = _k_anonymity(con, contract, _REGISTER_PERSONS, bound, register)
            return report
        try:
            output = sharing.check_output(con, contract, bound)
        except Exception as e:  # the steward must see it; the gate refuses the same output
            report.problem = str(e)
            return report
        report.columns = _as_linked(output)
        shared = sharing.shared_sql(contract)
        report.rows_shared = run(con, f"SELECT count(*) FROM ({shared})", used(shared, bound))[0][0]
        if contract.sharing.level == "aggregate":
            report.risk = _cells(con, contract, bound)
        elif contract.has_persons:
            persons = f"SELECT DISTINCT person_pseudonym FROM ({shared}) WHERE person_pseudonym IS NOT NULL"
            report.persons_shared = run(con, f"SELECT count(*) FROM ({persons})", used(shared, bound))[0][0]
            report.risk = _k_anonymity(con, contract, persons, bound, register)
    return report


_REGISTER_PERSONS = "SELECT DISTINCT person_pseudonym FROM unit.aviseringar WHERE _delivery >= $cutoff"


def _register_persons(con: duckdb.DuckDBPyConnection, bound: dict) -> int:
    return run(con, f"SELECT count(*) FROM ({_REGISTER_PERSONS})", {"cutoff": bound["cutoff"]})[0][0]


# The latest district, and on one date the register's later delivery and line (as the citizen index).
LATEST_DISTRICT = f"arg_max(a.district, {in_order('a.')})"


def _attach_register(con: duckdb.DuckDBPyConnection, contract: Contract, wh: Warehouse) -> str | None:
    """SQL of each person's latest district by linkage token, if folkbokföring's zone is there."""
    if contract.unit == "folkbokforing":
        run(con, f"ATTACH '{wh.vault('folkbokforing')}' AS vault (READ_ONLY)")
        return f"SELECT l.link_token, {LATEST_DISTRICT} AS district FROM unit.aviseringar a "
    paths = {"fb": wh.unit_zone("folkbokforing"), "fbvault": wh.vault("folkbokforing")}
    if not contract.has_persons or not all(p.exists() for p in paths.values()):
        return None
    run(con, f"ATTACH '{wh.vault(contract.unit)}' AS vault (READ_ONLY)")
    for alias, path in paths.items():
        run(con, f"ATTACH '{path}' AS {alias} (READ_ONLY)")
    return f"SELECT l.link_token, {LATEST_DISTRICT} AS district FROM fb.aviseringar a "


def _k_anonymity(
    con: duckdb.DuckDBPyConnection, contract: Contract, persons: str, bound: dict, register: str | None
) -> dict:
    """Equivalence classes of shared persons over the quasi-identifiers, and the smallest of them."""
    qis = list(contract.quasi_identifiers)
    if not qis:
        return {"note": "no quasi-identifiers in the contract"}
    district = "NULL::VARCHAR"
    vault = "fbvault" if contract.unit != "folkbokforing" else "vault"
    joins = ""
    if register is not None:
        joins = (
            "LEFT JOIN vault.link pl USING (person_pseudonym) "
            f"LEFT JOIN ({register} JOIN {vault}.link l USING (person_pseudonym) GROUP BY l.link_token) r "
            "ON r.link_token = pl.link_token"
        )
        district = "r.district"
    sql = f"""
        CREATE OR REPLACE TEMP TABLE qi AS
        WITH persons AS ({persons}),
        own AS (SELECT person_pseudonym, any_value(birth_year) AS birth_year, any_value(sex) AS sex
                FROM unit.{contract.dataset} GROUP BY person_pseudonym)
        SELECT own.birth_year, own.sex, {district} AS district
        FROM persons JOIN own USING (person_pseudonym) {joins}
    """
    run(con, sql, used(sql, bound))
    classes, persons_n, k_min, k_median, risky, risky_persons, unique = _classes(con, qis)
    return {
        "quasi_identifiers": qis,
        "district_from_register": register is not None,
        "classes": classes,
        "persons": persons_n,
        "k_min": k_min,
        "k_median": k_median,
        f"classes_k_below_{RISKY_K}": risky,
        f"persons_in_classes_k_below_{RISKY_K}": risky_persons,
        "unique_persons": unique,
        "risky_combinations": _risky_combinations(con, qis),
    }


def _classes(con: duckdb.DuckDBPyConnection, columns: list[str]) -> tuple:
    """Equivalence classes of the shared persons (table ``qi``) over ``columns``, summed up."""
    sql = f"""
        WITH classes AS (SELECT {", ".join(columns)}, count(*) AS k FROM qi GROUP BY ALL)
        SELECT count(*), coalesce(sum(k), 0), min(k), median(k),
            count(*) FILTER (k < {RISKY_K}), coalesce(sum(k) FILTER (k < {RISKY_K}), 0),
            count(*) FILTER (k = 1)
        FROM classes
    """
    return run(con, sql)[0]


def _risky_combinations(con: duckdb.DuckDBPyConnection, qis: list[str]) -> list[dict]:
    """Which combinations of quasi-identifiers single persons out: for every combination with a class
    under the risk k, its smallest class and how many classes and persons are under it (group sizes
    only, never the values that describe a group)."""
    found = []
    for size in range(1, len(qis) + 1):
        for combination in itertools.combinations(qis, size):
            _, _, k_min, _, risky, risky_persons, _ = _classes(con, list(combination))
            if risky:
                found.append(
                    {
                        "combination": list(combination),
                        "k_min": k_min,
                        "classes": risky,
                        "persons": risky_persons,
                    }
                )
    return found


def _cells(con: duckdb.DuckDBPyConnection, contract: Contract, bound: dict) -> dict:
    s = contract.sharing
    shared = sharing.shared_sql(contract)
    result = {"cells_published": run(con, f"SELECT count(*) FROM ({shared})", used(shared, bound))[0][0]}
    if s.count_column:
        result["min_count"] = s.min_count
        result["smallest_published_cell"] = run(
            con, f'SELECT min("{s.count_column}") FROM ({shared})', used(shared, bound)
        )[0][0]
        suppressed = sharing.suppressed_sql(contract)
        result["cells_suppressed"] = run(con, suppressed, used(suppressed, bound))[0][0]
    else:
        result["note"] = "no person data: no disclosure control needed"
    return result


def _quality(con: duckdb.DuckDBPyConnection, dataset: str) -> tuple[dict, list[tuple[str, int]]]:
    """Reconciliation and quarantine of the dataset's deliveries, as the border recorded them."""
    row = run(
        con,
        """SELECT count(DISTINCT _delivery), min(_delivery), max(_delivery), coalesce(sum(rows_in_file), 0),
               coalesce(sum(rows_loaded), 0), coalesce(sum(rows_quarantined), 0),
               count(*) FILTER (status = 'rejected'), count(*) FILTER (status = 'missing'),
               count(*) FILTER (rows_in_file IS DISTINCT FROM rows_loaded + rows_quarantined AND status = 'loaded')
           FROM unit.reconciliation WHERE dataset = $d""",
        {"d": dataset},
    )[0]
    keys = ("deliveries", "first", "last", "rows_in_files", "rows_loaded", "rows_quarantined")
    quality = dict(zip((*keys, "files_rejected", "files_missing", "unreconciled_files"), row, strict=True))
    share = quality["rows_quarantined"] / quality["rows_in_files"] if quality["rows_in_files"] else 0
    problems = quality["files_rejected"] or quality["unreconciled_files"] or share > 0.01
    quality["status"] = "attention" if problems else "ok"
    rules = run(
        con,
        "SELECT rule, count(*) FROM unit.quarantine WHERE dataset = $d GROUP BY rule ORDER BY 2 DESC LIMIT 5",
        {"d": dataset},
    )
    return quality, [(r, n) for r, n in rules]


def _recent(con: duckdb.DuckDBPyConnection, dataset: str, months: int = 12) -> list[dict]:
    """Per delivery month: files, rows in them, loaded, quarantined, and the checks holding it, if any."""
    rows = run(
        con,
        """SELECT r._delivery, count(*), coalesce(sum(rows_in_file), 0), coalesce(sum(rows_loaded), 0),
               coalesce(sum(rows_quarantined), 0), count(*) FILTER (status <> 'loaded'),
               any_value(h.checks), any_value(h.reason)
           FROM unit.reconciliation r LEFT JOIN unit.held_deliveries h USING (_delivery)
           WHERE dataset = $d GROUP BY r._delivery ORDER BY r._delivery DESC LIMIT $n""",
        {"d": dataset, "n": months},
    )
    keys = ("delivery", "files", "rows_in_files", "rows_loaded", "rows_quarantined", "files_not_loaded")
    return [dict(zip((*keys, "held_by", "held_reason"), row, strict=True)) for row in rows]


def _as_linked(output: list[str]) -> list[str]:
    """The gate swaps the unit pseudonym for the central citizen key and adds whether it is registered."""
    if "person_pseudonym" not in output:
        return output
    rest = [c for c in output if c != "person_pseudonym"]
    return ["citizen_key", *rest, "known_to_folkbokforing"]
