"""Personal (HR): the payroll system's figures per enhet through the real border, its quality gates and
the sharing gate, on real DuckDB unit zones. No person row exists anywhere: the payroll system delivers
aggregates per enhet, and an enhet-month with fewer employees than the contract's min_count is not shared.
"""

import duckdb
import pytest

from pipelines.disclosure.policy import MIN_COUNT
from pipelines.stewardship import report
from pipelines.stewardship.contracts import load_contracts
from pipelines.units import UNITS
from synthetic import personnel
from synthetic import vocabulary as voc
from tests.conftest import load_checked, write_csv

PERSONAL = UNITS["personal"]
NYCKELTAL = PERSONAL.dataset("nyckeltal")
SHARES = ("sick_short_pct", "sick_long_pct", "overtime_pct", "hourly_paid_pct")
ENHETER = {enhet for enheter in voc.ENHETER.values() for enhet, _ in enheter}


def _zone(warehouse, sql: str, params=None):
    with duckdb.connect(str(warehouse.unit_zone("personal")), read_only=True) as con:
        return con.execute(sql, params or {}).fetchall()


def _row(enhet: str = "HR-enheten", headcount: str = "24", sick_long: str = "3,10") -> list[str]:
    """One enhet's month as the payroll system writes it (decimal commas), in the contract's column order."""
    forvaltning = next(UNITS[k].forvaltning for k, es in voc.ENHETER.items() if enhet in dict(es))
    return [
        "2024-03", forvaltning, enhet, headcount, "1", "3600,0", "2,40", sick_long, "3400,5", "1,80",
        "2,50", "1250000", "1240000",
    ]  # fmt: skip


def test_the_contract_knows_every_enhet_and_shares_only_aggregates_of_enough_employees():
    contract = load_contracts()["personal.nyckeltal"]
    s = contract.sharing
    assert (s.level, s.count_column, s.min_count) == ("aggregate", "headcount", MIN_COUNT)
    assert not contract.has_persons and contract.classification == "internal"
    assert NYCKELTAL.person_column is None, (
        "the payroll system aggregates; no personnummer reaches the border"
    )
    assert set(NYCKELTAL.column("enhet").allowed) == ENHETER, "every enhet of the org tree, and only those"
    assert set(NYCKELTAL.column("forvaltning").allowed) == {UNITS[k].forvaltning for k in voc.ENHETER}
    for share in SHARES:
        column = NYCKELTAL.column(share)
        assert (column.minimum, column.maximum) == (0, 100), share
    assert NYCKELTAL.column("headcount").minimum == 0
    assert NYCKELTAL.quarantine_holds, "a missing enhet row would make every total above it wrong"


@pytest.fixture
def generated(home):
    """A small municipality's deliveries (every unit), without random defects."""
    from synthetic.generate import generate

    generate(home.home, citizens=300, years=1, seed=11, defect_rate=0, progress=False)
    return home


def test_synthetic_deliveries_pass_the_border_and_the_gates_and_small_enheter_are_not_shared(
    generated, warehouse, keys
):
    months = sorted(p.name for p in (generated.landing / "personal").iterdir())
    assert len(months) == 12
    load_checked(PERSONAL, months, generated, keys)

    assert _zone(warehouse, "SELECT count(*) FROM quarantine") == [(0,)]
    assert _zone(warehouse, "SELECT count(*) FROM held_deliveries") == [(0,)], "every check passed"
    per_month = _zone(warehouse, "SELECT month, count(DISTINCT enhet) FROM nyckeltal GROUP BY ALL")
    assert len(per_month) == 12 and {n for _, n in per_month} == {len(ENHETER)}, "every enhet, every month"
    [(low, high)] = _zone(
        warehouse,
        "SELECT min(least(sick_short_pct, sick_long_pct, overtime_pct, hourly_paid_pct)), "
        "max(greatest(sick_short_pct, sick_long_pct, overtime_pct, hourly_paid_pct)) FROM nyckeltal",
    )
    assert low >= 0 and high < 50, "plausible shares (the most: hourly-paid cover in a care July)"

    _, tiny, staff = personnel.TINY
    assert staff < MIN_COUNT
    shown = report.build(load_contracts()["personal.nyckeltal"], warehouse)
    assert shown.problem is None and shown.persons_shared is None
    assert shown.risk["cells_suppressed"] >= 12, f"{tiny} is withheld every month"
    assert shown.risk["smallest_published_cell"] >= MIN_COUNT
    assert shown.rows_shared == 12 * len(ENHETER) - shown.risk["cells_suppressed"]


def test_a_share_of_140_percent_holds_the_delivery_naming_file_line_and_rule(home, warehouse, keys):
    rows = [_row(enhet) for enhet in sorted(ENHETER)]
    forged = next(i for i, r in enumerate(rows) if r[2] == "Hemtjänst Norr")
    rows[forged] = _row("Hemtjänst Norr", sick_long="140,00")
    write_csv(home, PERSONAL, "2024-03", "nyckeltal", rows)
    load_checked(PERSONAL, ["2024-03"], home, keys)

    line = forged + 2  # the header is line 1
    assert _zone(warehouse, 'SELECT _source_file, _source_line, rule, "column" FROM quarantine') == [
        ("personal/2024-03/nyckeltal.csv", line, "above_maximum", "Sjukfrånvaro dag 15- (%)")
    ]
    [(delivery, checks, reason)] = _zone(warehouse, "SELECT _delivery, checks, reason FROM held_deliveries")
    assert delivery == "2024-03" and "expectations" in checks, (checks, reason)
    assert "rows_quarantined" in reason, reason
    assert _zone(warehouse, "SELECT count(*) FROM nyckeltal WHERE enhet = 'Hemtjänst Norr'") == [(0,)]
    shown = report.build(load_contracts()["personal.nyckeltal"], warehouse)
    assert shown.rows_shared == 0, "a held delivery is not shared"


def test_a_clean_month_is_released(home, warehouse, keys):
    """The probe's counterpart: the same rows without the forged share pass every gate."""
    write_csv(home, PERSONAL, "2024-03", "nyckeltal", [_row(enhet) for enhet in sorted(ENHETER)])
    load_checked(PERSONAL, ["2024-03"], home, keys)
    assert _zone(warehouse, "SELECT count(*) FROM held_deliveries") == [(0,)]
    assert _zone(warehouse, "SELECT count(*) FROM nyckeltal") == [(len(ENHETER),)]


HR_KPIS = ("U90070", "U90071", "U90072", "U90073", "U90074", "U90075", "U90076")


@pytest.mark.platform
def test_hr_kpis_reach_the_kpi_fact_with_targets_and_small_enheter_are_withheld_when_published(main_job):
    """The main job's marts and serving snapshot: every HR KPI at kommun, förvaltning and enhet level,
    targets where the catalogue has them, the planted long sick leave red, and the enhet of four employees
    withheld in every month (with whatever would reveal it)."""
    from pipelines.disclosure.policy import DEFAULT_THRESHOLD

    assert main_job["returncode"] == 0, main_job["output"][-4000:]
    with duckdb.connect(str(main_job["marts"]), read_only=True) as con:
        levels = con.execute(
            "SELECT kpi_id, list(DISTINCT level ORDER BY level), count(target) > 0 FROM fct_kpi "
            "WHERE kpi_id LIKE 'U9007%' GROUP BY kpi_id ORDER BY kpi_id"
        ).fetchall()
    assert [k for k, _, _ in levels] == list(HR_KPIS)
    assert all(lv == ["enhet", "förvaltning", "kommun"] for _, lv, _ in levels)
    assert [k for k, _, targeted in levels if targeted] == list(HR_KPIS[1:]), "headcount has no target"

    _, tiny, _ = personnel.TINY
    with duckdb.connect(str(main_job["current"]), read_only=True) as con:
        shown = con.execute(
            "SELECT count(*) FROM kpi_value WHERE kpi_id LIKE 'U9007%' AND enhet = ? AND actual IS NOT NULL",
            [tiny],
        ).fetchone()[0]
        small = con.execute(
            "SELECT count(*) FROM kpi_value WHERE kpi_id LIKE 'U9007%' AND actual IS NOT NULL "
            "AND (n_underlag IS NULL OR n_underlag < ?)",
            [DEFAULT_THRESHOLD],
        ).fetchone()[0]
        rows_tiny = con.execute(
            "SELECT count(*) FROM kpi_value WHERE kpi_id LIKE 'U9007%' AND enhet = ?", [tiny]
        ).fetchone()[0]
        [(status, actual)] = con.execute(
            "SELECT status, actual FROM kpi_value WHERE kpi_id = 'U90072' AND enhet = 'Hemtjänst Norr' "
            "ORDER BY month DESC LIMIT 1"
        ).fetchall()
        targets = dict(con.execute("SELECT kpi_id, target_value FROM kpi_target").fetchall())
    assert rows_tiny > 0 and shown == 0, f"{tiny} ({rows_tiny} rows) is never shown"
    assert small == 0, "no HR value rests on fewer employees than the threshold"
    assert status == "röd" and actual > targets["U90072"] + 1, "the planted long sick leave is a deviation"
    assert targets.keys() >= set(HR_KPIS[1:])
