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
