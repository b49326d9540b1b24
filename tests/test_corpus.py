"""Every broken delivery of the corpus, through a real Dagster run of the unit's asset and checks.

Each case asserts the specific verdict (file, line where there is one, rule),
the severity of the delivery's expectations check (ERROR fails the run: the
unit's downstream is blocked), and that nothing else moved: the unit's earlier
delivery and another unit's zone are exactly as before.
"""

import re

import dagster as dg
import duckdb
import pytest

from pipelines.defs.resources import Platform
from pipelines.defs.unit_checks import EMPTY_DELIVERY
from pipelines.defs.units import UNIT_ASSETS, deliveries, unit_asset_key
from pipelines.ingest.delivery import load_delivery
from pipelines.units import UNITS
from tests.corpus import CASES, Case, encode, write_file, write_good
from tests.leaks import CANDIDATE, all_forms, forms_in_landing, hits_in_duckdb, hits_in_files

EARLIER, MONTH = "2024-01", "2024-02"


def _zone(warehouse, unit: str, sql: str, params: dict | None = None) -> list[tuple]:
    with duckdb.connect(str(warehouse.unit_zone(unit)), read_only=True) as con:
        return con.execute(sql, params or {}).fetchall()


def _snapshot(warehouse, unit: str, delivery: str | None = None) -> dict[str, list[tuple]]:
    """Every row of every table of a zone (or only one delivery's rows), without load and verdict times."""
    tables = [t for (t,) in _zone(warehouse, unit, "SELECT table_name FROM duckdb_tables() ORDER BY 1")]
    where = "WHERE _delivery = $d" if delivery else ""
    return {
        t: _zone(
            warehouse,
            unit,
            f"SELECT COLUMNS(lambda c: c NOT IN ('_loaded_at', 'held_at')) FROM {t} {where} ORDER BY ALL",
            {"d": delivery} if delivery else None,
        )
        for t in tables
    }


def _materialize(unit: str, partition: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    asset = next(a for a in UNIT_ASSETS if a.key == unit_asset_key(unit))
    instance.add_dynamic_partitions(deliveries(unit).name, [partition])
    return dg.materialize(
        [asset],
        partition_key=partition,
        instance=instance,
        resources={"platform": Platform()},
        raise_on_error=False,
    )


@pytest.mark.platform
@pytest.mark.parametrize("case", CASES, ids=[f"{c.unit}-{c.name}" for c in CASES])
def test_broken_delivery_is_caught_and_touches_nothing_else(case: Case, home, warehouse, keys):
    other = "skola" if case.unit != "skola" else "socialtjanst"
    write_good(home, case.unit, EARLIER)
    write_good(home, other, MONTH)
    load_delivery(UNITS[case.unit], EARLIER, home.landing, warehouse, keys)
    load_delivery(UNITS[other], MONTH, home.landing, warehouse, keys)
    earlier, other_zone = _snapshot(warehouse, case.unit, EARLIER), _snapshot(warehouse, other)

    write_good(home, case.unit, MONTH, skip=case.dataset)
    forms = forms_in_landing(home.landing)  # before the broken file, which the scanner may not parse
    forms |= {f for w in re.findall(CANDIDATE.encode(), case.content()) for f in all_forms(w.decode())}
    path = write_file(home, case.unit, MONTH, case.dataset, case.content())
    source = str(path.relative_to(home.landing))
    (home.home / "dagster").mkdir(parents=True)  # check results land under home: the leak scan reads them
    with dg.instance_for_test(temp_dir=str(home.home / "dagster")) as instance:
        result = _materialize(case.unit, MONTH, instance)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}

    recon = "SELECT status, reason, rows_in_file, rows_loaded, rows_quarantined FROM reconciliation WHERE _source_file = $f"
    [(status, reason, rows_in_file, loaded, quarantined)] = _zone(warehouse, case.unit, recon, {"f": source})
    quarantine = _zone(
        warehouse,
        case.unit,
        'SELECT _source_line, rule, "column" FROM quarantine WHERE _source_file = $f ORDER BY 1',
        {"f": source},
    )
    if case.rule:
        assert status == "rejected" and reason.startswith(f"{case.rule}: "), reason
        assert quarantine == [(case.line, case.rule, None)]
        assert rows_in_file == quarantined and loaded == 0
        assert _zone(
            warehouse, case.unit, f"SELECT count(*) FROM {case.dataset} WHERE _delivery = $d", {"d": MONTH}
        ) == [(0,)]
        if case.line:
            assert reason.endswith(f"(line {case.line})")
    else:
        assert status == "loaded" and list(quarantine) == list(case.rows)
        assert rows_in_file == loaded + quarantined

    assert {c: e.partition for c, e in checks.items()} == {
        "reconciliation": MONTH,
        "expectations": MONTH,
        "freshness": MONTH,
    }
    assert checks["reconciliation"].passed
    verdict = checks["expectations"]
    assert not verdict.passed and verdict.severity.value == case.severity, verdict.description
    assert result.success, "a broken delivery is a check outcome, not a crashed run"
    held = _zone(
        warehouse, case.unit, "SELECT checks FROM held_deliveries WHERE _delivery = $d", {"d": MONTH}
    )
    assert held == ([("expectations",)] if case.severity == "ERROR" else []), "an ERROR holds the delivery"

    assert _snapshot(warehouse, case.unit, EARLIER) == earlier
    assert _snapshot(warehouse, other) == other_zone

    leaks = hits_in_files(home.home, forms, skip=(home.landing,))
    for zone in warehouse.files():
        leaks |= hits_in_duckdb(zone, forms)
    assert leaks == {}


@pytest.mark.platform
def test_a_header_only_file_holds_its_delivery_unless_its_dataset_may_be_empty(home, warehouse, capsys):
    """A file with its header and no records is an empty delivery: held by reconciliation, naming the
    file, and listed in the main job's summary. Child investigations may legitimately have no rows in a
    month (``may_be_empty`` in the unit spec): that delivery loads and is released."""
    from pipelines.cli import print_summary
    from pipelines.defs.anchors import platform_anchors

    header_only = encode("socialtjanst", "ekonomiskt_bistand", [])
    write_good(home, "socialtjanst", EARLIER, skip="barnutredningar")
    write_file(
        home, "socialtjanst", EARLIER, "barnutredningar", encode("socialtjanst", "barnutredningar", [])
    )
    write_good(home, "socialtjanst", MONTH, skip="ekonomiskt_bistand")
    write_file(home, "socialtjanst", MONTH, "ekonomiskt_bistand", header_only)
    (home.home / "dagster").mkdir(parents=True)
    with dg.instance_for_test(temp_dir=str(home.home / "dagster")) as instance:
        for month in (EARLIER, MONTH):
            assert _materialize("socialtjanst", month, instance).success, "a held delivery is not a crash"

    held = _zone(warehouse, "socialtjanst", "SELECT _delivery, checks, reason FROM held_deliveries")
    source = f"socialtjanst/{MONTH}/ekonomiskt_bistand.csv"
    assert held == [(MONTH, "reconciliation", f"{source}: {EMPTY_DELIVERY}")]
    with platform_anchors(home) as anchors:  # where decisions would be anchored
        print_summary(home, 0.0, [], anchors)
    summary = capsys.readouterr().out
    assert f"  socialtjanst {MONTH}: held by reconciliation: {source}: {EMPTY_DELIVERY}" in summary, summary
