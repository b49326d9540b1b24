"""Quality gates: the committed suites, GX validation, and the Dagster checks per delivery partition."""

import json
import os
from datetime import UTC, datetime

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from pipelines.defs import unit_checks
from pipelines.defs.resources import Platform
from pipelines.defs.units import UNIT_ASSETS, deliveries, unit_asset_key
from pipelines.ingest.delivery import QUARANTINE_DDL, RECONCILIATION_DDL
from pipelines.ingest.transform import _rules
from pipelines.quality import contract, docs
from pipelines.quality.frame import delivery_summary, parameters
from pipelines.quality.validate import Validator
from pipelines.units import UNITS, Column
from tests.conftest import SOCIAL, write_csv
from tests.corpus import write_good
from tests.leaks import forms_in_landing, hits_in_files
from warehouse.layout import Warehouse

ALONE = "Ensamstående"


def _pnr(i: int) -> str:
    """A valid ten-digit personnummer, distinct per i (born 1980-01-01 + i days, within January-ish)."""
    born = f"80{1 + i // 28:02d}{1 + i % 28:02d}"
    serial = f"{100 + i:03d}"
    digits = born + serial
    total = 0
    for k, d in enumerate(digits):
        v = int(d) * (2 if k % 2 == 0 else 1)
        total += v // 10 + v % 10
    return f"{born}-{serial}{(10 - total % 10) % 10}"


def _aid(month: str, n: int, start: int = 0) -> list[list[str]]:
    return [[_pnr(start + i), month, "1000,00", ALONE] for i in range(n)]


def _deliver(home, month: str, aid: list[list[str]]) -> None:
    write_csv(home, SOCIAL, month, "ekonomiskt_bistand", aid)
    write_csv(home, SOCIAL, month, "barnutredningar", [[_pnr(0), f"{month}-03", "", "Anmälan"]])


def _asset(unit: str) -> dg.AssetsDefinition:
    return next(a for a in UNIT_ASSETS if a.key == unit_asset_key(unit))


def _run(instance, unit: str, months: list[str], extra=()) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions(deliveries(unit).name, months)
    tags = {ASSET_PARTITION_RANGE_START_TAG: months[0], ASSET_PARTITION_RANGE_END_TAG: months[-1]}
    return dg.materialize(
        [_asset(unit), *extra],
        instance=instance,
        tags=tags,
        resources={"platform": Platform()},
        raise_on_error=False,
    )


def _zone(warehouse, unit: str, sql: str, params: dict | None = None) -> list[tuple]:
    with duckdb.connect(str(warehouse.unit_zone(unit)), read_only=True) as con:
        return con.execute(sql, params or {}).fetchall()


def _verdicts(result: dg.ExecuteInProcessResult, check: str) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.partition: e for e in result.get_asset_check_evaluations() if e.check_name == check}


@pytest.mark.parametrize("unit", list(UNITS))
def test_committed_suite_is_what_the_spec_generates(unit):
    """The JSON beside the unit is the spec's rules plus delivery rules: regenerate, never hand-edit."""
    expected = contract.render(contract.build_contract(UNITS[unit]))
    assert contract.suite_path(unit).read_text(encoding="utf-8") == expected, (
        "run: python -m pipelines.quality.contract"
    )


def test_suite_holds_every_rule_of_the_spec_and_gx_keeps_them_all():
    suites = contract.build_contract(SOCIAL)["suites"]
    aid = suites["socialtjanst.ekonomiskt_bistand"]
    [known] = [e for e in aid["all_rows"] if e["meta"]["rule"] == "known_rules"]
    columns = SOCIAL.dataset("ekonomiskt_bistand").columns
    spec_rules = {f"{rule}:{col}" for c in columns for _, rule, col in _rules(c)}
    for label in spec_rules | {"duplicate_row:*", "columns_differ_from_contract:*"}:
        assert f"'{label}'" in known["meta"]["rows_where"]
    loaded = {(e["meta"]["rule"], e["meta"].get("column")) for e in aid["loaded_rows"]}
    assert loaded >= {
        ("personnummer_valid", "Personnr"),
        ("mandatory", "Månad"),
        ("range", "Belopp"),
        ("allowed_values", "Hushållstyp"),
        ("natural_key_unique", None),
    }
    assert {"file_readable", "known_rules"} <= {e["meta"]["rule"] for e in aid["all_rows"]}
    whole = {(e["meta"]["rule"], e["meta"].get("column")) for e in aid["delivery"]}
    assert whole >= {("volume", None), ("rows_quarantined", None), ("date_sanity", "Månad")}
    validator = Validator(SOCIAL)
    for name, spec in suites.items():  # GX upserts by domain: a lost expectation would show here
        kept = [e.meta["part"] for e in validator.definitions[name].suite.expectations]
        assert kept == [part for part in contract.PARTS for _ in spec[part]]


def test_the_checks_follow_an_edited_contract_with_no_suite_regenerated(tmp_path):
    """A steward's edited contract (or a new unit's, outside the repository) is checked by its own
    rules at once: the GX suite is built from the contract, not read from the committed rendering."""
    import shutil

    from pipelines.units.load import DEFAULT_DIR, read_units

    folder = tmp_path / "contracts"
    shutil.copytree(DEFAULT_DIR, folder)
    path = folder / "socialtjanst.ekonomiskt_bistand.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("max: 100000", "max: 50000"), encoding="utf-8")
    validator = Validator(read_units(folder)["socialtjanst"])
    suite = validator.definitions["socialtjanst.ekonomiskt_bistand"].suite
    [bounds] = [e for e in suite.expectations if e.meta["rule"] == "range"]
    assert bounds.meta["rows_where"] == '"amount_sek" < 0.0 OR "amount_sek" > 50000.0'


def _summary(stored: pd.DataFrame, months: list[str], held: pd.DataFrame | None = None) -> pd.DataFrame:
    """The summary of rows as a unit zone stores them: loaded rows in the dataset's table, ``held``
    (``_delivery``, ``rule``, ``column``) in quarantine."""
    dataset = SOCIAL.dataset("ekonomiskt_bistand")
    con = duckdb.connect()
    con.execute(QUARANTINE_DDL)
    con.execute("CREATE TABLE ekonomiskt_bistand AS SELECT * EXCLUDE (_rule, _defect) FROM stored")
    if held is not None:
        con.execute("INSERT INTO quarantine BY NAME SELECT 'ekonomiskt_bistand' AS dataset, * FROM held")
    suite = contract.build_contract(SOCIAL)["suites"][AID]
    return delivery_summary(con, dataset, suite, {m: _params(m) for m in months})


AID = "socialtjanst.ekonomiskt_bistand"


def test_loaded_rows_that_break_the_contract_are_an_error_even_past_the_border():
    """Defence in depth: the stored rows are counted for themselves, not taken from the border's verdicts."""
    validator = Validator(SOCIAL)
    stored = pd.DataFrame(
        {
            "_delivery": ["2024-02"] * 4,
            "_source_line": [2, 3, 4, 5],
            "person_pseudonym": ["a" * 64, "811218-9876", "b" * 64, "b" * 64],
            "birth_year": [1981, 1990, 1990, 1990],
            "sex": ["M", "M", "K", "K"],
            "key_version": ["1"] * 4,
            "month": pd.to_datetime(["2024-02-01"] * 4),
            "amount_sek": [-5.0, 10.0, 10.0, 10.0],
            "household_type": [ALONE, "Kollektiv", ALONE, ALONE],
            "_rule": pd.Series([None] * 4, dtype="str"),
            "_defect": pd.Series([None] * 4, dtype="str"),
        }
    )
    failed = {
        (o.rule, o.column, o.unexpected, o.rows)
        for o in validator.validate(AID, _summary(stored, ["2024-02"]))["2024-02"]
        if not o.success and o.severity == "critical"
    }
    assert failed == {
        ("range", "Belopp", 1, 4),
        ("allowed_values", "Hushållstyp", 1, 4),
        ("pseudonymised", "Personnr", 1, 4),
        ("natural_key_unique", None, 2, 4),
    }


def test_the_summary_counts_per_delivery_what_pandas_counts_row_by_row():
    """The summary's SQL against an oracle: each rule counted by pandas on the same rows, the way GX's
    pandas engine judged the rows before (nulls pass every rule but not-null; a duplicated key counts
    every row that shares it), on rows where every rule is broken somewhere."""
    rng = np.random.default_rng(7)
    months, n = ["2024-01", "2024-02", "2024-03"], 900
    allowed = next(list(c.allowed) for c in SOCIAL.dataset("ekonomiskt_bistand").columns if c.allowed)
    stored = pd.DataFrame(
        {
            "_delivery": rng.choice(months, n),
            "_source_line": np.arange(2, n + 2),
            "person_pseudonym": rng.choice(
                [f"{i:064x}" for i in range(60)] + ["811218-9876", "A" * 64, None], n
            ),
            "birth_year": 1981,
            "sex": "M",
            "key_version": "1",
            "month": pd.to_datetime(rng.choice(["2024-01-01", "2024-02-01", None], n)),
            "amount_sek": rng.choice([-5.0, 0.0, 10.0, 100000.0, 100000.5, None], n),
            "household_type": rng.choice([*allowed, "Kollektiv", "ensamstående", None], n),
            "_rule": None,
            "_defect": None,
        }
    )
    labels = [
        "below_minimum:Belopp",
        "duplicate_row:*",
        "made_up:Belopp",
        "wrong_encoding:*",
        "truncated_file:*",
    ]
    held = pd.DataFrame({"_delivery": rng.choice(months, 200), "label": rng.choice(labels, 200)})
    held[["rule", "column"]] = held["label"].str.split(":", expand=True).replace("*", None)
    summary = _summary(stored, months, held.drop(columns="label")).set_index("_delivery")
    pseudonym, amount, household = stored["person_pseudonym"], stored["amount_sek"], stored["household_type"]
    oracle = {
        "null:person_pseudonym": pseudonym.isna(),
        "not_pseudonym:person_pseudonym": pseudonym.notna()
        & ~pseudonym.str.fullmatch(contract.PSEUDONYM).fillna(True),
        "null:month": stored["month"].isna(),
        "out_of_range:amount_sek": (amount < 0) | (amount > 100000),
        "null:household_type": household.isna(),
        "not_allowed:household_type": household.notna() & ~household.isin(allowed),
        "duplicate_key:person_pseudonym,month": stored.duplicated(
            ["person_pseudonym", "month", "_delivery"], keep=False
        ),
    }
    for label, broken in oracle.items():
        counted = broken.groupby(stored["_delivery"]).sum()
        assert summary[label].to_dict() == counted.to_dict(), label
        assert counted.min() > 0, f"the rows break {label} in every delivery"
    by_delivery = held.groupby("_delivery")["label"]
    known = by_delivery.apply(lambda s: s.isin(labels[:2] + labels[3:]).all())
    assert (
        summary["unknown_rule:_defect"].to_dict()
        == by_delivery.apply(lambda s: (s == "made_up:Belopp").sum()).to_dict()
    )
    assert (
        summary["file_rule:_rule"].to_dict()
        == by_delivery.apply(lambda s: s.str.startswith(("wrong_encoding", "truncated_file")).sum()).to_dict()
    )
    assert not known.all()
    assert (summary["rows"] == summary["rows_loaded"] + summary["rows_quarantined"]).all()


def test_a_contract_value_with_a_quote_is_counted_as_a_value_not_read_as_sql():
    """A steward's contract may allow ``O'Brien`` or name a column with a quote: the summary's
    conditions quote them, so they count rows and nothing else."""
    column = Column(source="Namn'", name='na"me', kind="text", allowed=("O'Brien", "x"), minimum=None)
    [mandatory, allowed] = contract._loaded_column(column)
    con = duckdb.connect()
    con.execute(
        """CREATE TABLE t AS SELECT * FROM (VALUES ('O''Brien'), ('x'), ('OBrien'), (NULL)) v("na""me")"""
    )
    counted = [
        con.execute(f"SELECT count(*) FILTER (WHERE {e['meta']['rows_where']}) FROM t").fetchone()[0]
        for e in (mandatory, allowed)
    ]
    assert counted == [1, 1]


def _aid_frame(month: str, amounts: list[float], paid_for: str | None = None) -> pd.DataFrame:
    n = len(amounts)
    return pd.DataFrame(
        {
            "_delivery": [month] * n,
            "_source_line": range(2, n + 2),
            "person_pseudonym": [f"{i:064x}" for i in range(n)],
            "birth_year": [1981] * n,
            "sex": ["M"] * n,
            "key_version": ["1"] * n,
            "month": pd.to_datetime([f"{paid_for or month}-01"] * n),
            "amount_sek": amounts,
            "household_type": [ALONE] * n,
            "_rule": pd.Series([None] * n, dtype="str"),
            "_defect": pd.Series([None] * n, dtype="str"),
        }
    )


def _params(month: str) -> dict:
    start = datetime.fromisoformat(f"{month}-01")
    return {
        "min_rows": 0,
        "earliest": datetime(1900, 1, 1),
        "latest": start.replace(day=28),
        "month_start": start,
    }


BAD = "2024-03"


@pytest.mark.parametrize("broken", [None, "range", "date_sanity"])
def test_deliveries_validated_together_get_the_verdicts_they_get_one_by_one(broken):
    """A backfill's months share GX runs; each month's outcomes must equal validating it alone."""
    validator, suite = Validator(SOCIAL), "socialtjanst.ekonomiskt_bistand"
    months = ["2024-02", BAD, "2024-04"]
    frames = {
        m: _aid_frame(
            m,
            [-5.0 if (m, broken) == (BAD, "range") else 10.0, 20.0, 30.0],
            paid_for="2024-05" if (m, broken) == (BAD, "date_sanity") else None,
        )
        for m in months
    }
    together = validator.validate(suite, _summary(pd.concat(frames.values()), months))

    def verdicts(outcomes):
        return sorted(
            (o.part, o.rule, o.column or "", o.success, o.unexpected or 0, o.rows or 0) for o in outcomes
        )

    for m in months:
        alone = validator.validate(suite, _summary(frames[m], [m]))[m]
        assert verdicts(together[m]) == verdicts(alone)
        failed = {o.rule for o in together[m] if not o.success}
        assert failed == ({broken} if m == BAD and broken else set())


@pytest.mark.platform
def test_checks_report_each_partition_of_a_range_run_and_half_volume_only_warns(home):
    for month in ("2024-01", "2024-02", "2024-03"):
        _deliver(home, month, _aid(month, 24))
    _deliver(home, "2024-04", _aid("2024-04", 11))
    with dg.instance_for_test() as instance:
        result = _run(instance, "socialtjanst", ["2024-01", "2024-02", "2024-03", "2024-04"])
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(unit_asset_key("socialtjanst"), "expectations"), limit=10
        )
    assert result.success, "a WARN must not fail the run"
    verdicts = _verdicts(result, "expectations")
    assert [p for p, e in sorted(verdicts.items()) if e.passed] == ["2024-01", "2024-02", "2024-03"]
    april = verdicts["2024-04"]
    assert april.severity == dg.AssetCheckSeverity.WARN
    assert april.description == "socialtjanst.ekonomiskt_bistand: volume (11 rows)"
    assert april.metadata["failed_critical"].value == 0
    assert sorted(r.event.asset_check_evaluation.partition for r in history) == sorted(verdicts)
    assert all(e.passed for e in _verdicts(result, "reconciliation").values())


def test_a_daily_datasets_volume_floor_is_half_its_median_month_not_half_a_day():
    """The floor compares a delivery with the dataset's earlier deliveries. A daily dataset's month is
    the sum of its days' files: compared with one day's file, a month that lost most of its rows passed."""
    betyg = UNITS["direkt_feedback"].dataset("betyg")
    with duckdb.connect() as con:
        con.execute(RECONCILIATION_DDL)
        for month in ("2024-01", "2024-02", "2024-03"):
            for day in range(1, 31):
                con.execute(
                    """INSERT INTO reconciliation (dataset, _delivery, _source_file, rows_in_file, status)
                       VALUES ('betyg', ?, ?, 100, 'loaded')""",
                    [month, f"direkt_feedback/{month}/betyg_{month}-{day:02d}.csv"],
                )
        floors = {d: p["min_rows"] for d, p in parameters(con, betyg, ["2024-03", "2024-04"]).items()}
    assert floors == {"2024-03": 0, "2024-04": 1500}, "two earlier months are too few; three give a floor"


@pytest.mark.platform
def test_natural_key_duplicate_is_an_error(home):
    two_amounts = [[_pnr(1), "2024-02", "100,00", ALONE], [_pnr(1), "2024-02", "200,00", ALONE]]
    _deliver(home, "2024-02", two_amounts)
    with dg.instance_for_test() as instance:
        result = _run(instance, "socialtjanst", ["2024-02"])
    verdict = _verdicts(result, "expectations")["2024-02"]
    assert verdict.severity == dg.AssetCheckSeverity.ERROR and result.success  # held, not crashed
    assert "natural_key_unique" in verdict.description


@pytest.mark.platform
def test_held_delivery_is_a_check_outcome_and_the_unit_runs_on(home):
    """A failed holding check holds its delivery, not the step: the run succeeds, every check runs,
    a corrected re-send is released, and a crash before the verdict leaves the delivery held."""
    write_good(home, "skola", "2024-02")
    write_good(home, "socialtjanst", "2024-02", skip="ekonomiskt_bistand")
    write_csv(
        home,
        SOCIAL,
        "2024-02",
        "ekonomiskt_bistand",
        [],
        header=["Personnummer", "Månad", "Belopp", "Hushållstyp"],
    )
    with dg.instance_for_test() as instance:
        held = _run(instance, "socialtjanst", ["2024-02"])
        other = _run(instance, "skola", ["2024-02"])
        held_then = {u: _held(home, u) for u in ("socialtjanst", "skola")}
        write_good(home, "socialtjanst", "2024-02")  # the unit re-sends a correct delivery
        resent = _run(instance, "socialtjanst", ["2024-02"])
        held_now = {u: _held(home, u) for u in ("socialtjanst", "skola")}
    assert held_then == {"socialtjanst": [("2024-02", "expectations")], "skola": []}
    assert held_now == {"socialtjanst": [], "skola": []}
    [failure] = unit_checks.failures(held)
    assert failure.startswith(
        "socialtjanst 2024-02: expectations (socialtjanst/2024-02/ekonomiskt_bistand.csv rejected: "
        "columns_differ_from_contract: missing columns ['Personnr']"
    )
    assert "file_readable (1 of 1 rows)" in failure
    assert held.success and other.success and resent.success, "a held delivery is not a crashed step"
    assert not held.get_step_failure_events()
    assert [e.check_name for e in held.get_asset_check_evaluations() if not e.passed] == [
        "expectations",
        "freshness",
    ]


def _held(home, unit: str) -> list[tuple]:
    """Deliveries the unit zone holds back from everything downstream."""
    with duckdb.connect(str(Warehouse(home.warehouse).unit_zone(unit)), read_only=True) as con:
        return con.execute("SELECT _delivery, checks FROM held_deliveries ORDER BY 1").fetchall()


@pytest.mark.platform
def test_freshness_fails_for_a_late_delivery_only(home):
    for month in ("2024-02", "2024-03"):
        _deliver(home, month, _aid(month, 3))
    arrived = {"2024-02": datetime(2024, 3, 4, tzinfo=UTC), "2024-03": datetime(2024, 5, 20, tzinfo=UTC)}
    for month, when in arrived.items():
        for f in home.delivery_dir("socialtjanst", month).iterdir():
            os.utime(f, (when.timestamp(), when.timestamp()))
    with dg.instance_for_test() as instance:
        result = _run(instance, "socialtjanst", ["2024-02", "2024-03"])
    fresh = _verdicts(result, "freshness")
    assert fresh["2024-02"].passed
    late = fresh["2024-03"]
    assert not late.passed and late.severity == dg.AssetCheckSeverity.WARN
    assert late.metadata["days_late"].value == 39.0 and late.metadata["due"].value == "2024-04-11T00:00+00:00"
    assert result.success, "a late delivery warns; its data is fine"


@pytest.mark.platform
def test_data_docs_and_check_results_hold_no_personnummer(home):
    broken = [
        ["811218-9875", "2024-02", "100,00", ALONE],  # bad check digit
        [_pnr(2), "2024-02", "-5,00", ALONE],  # negative amount
        ["", "2024-02", "5,00", ALONE],
        *_aid("2024-02", 5, start=3),
    ]
    _deliver(home, "2024-02", broken)
    (home.home / "dagster").mkdir(parents=True)  # the event log (check metadata) is scanned too
    with dg.instance_for_test(temp_dir=str(home.home / "dagster")) as instance:
        result = _run(instance, "socialtjanst", ["2024-02"])
    assert result.success
    [site] = docs.sites(home.home)
    assert site == home.home / "quality" / "data_docs" / "socialtjanst" / "index.html"
    pages = list(site.parent.rglob("*.html"))
    assert any("socialtjanst.ekonomiskt_bistand" in p.read_text(encoding="utf-8") for p in pages)
    assert any("delivery-2024-02" in p.read_text(encoding="utf-8") for p in pages)
    forms = forms_in_landing(home.landing)
    assert "811218-9875" in forms and hits_in_files(home.landing, forms)
    assert hits_in_files(home.home, forms, skip=(home.landing,)) == {}


@pytest.mark.platform
def test_a_feed_that_stops_shows_as_an_overdue_delivery(home):
    from pipelines.definitions import defs

    now = datetime.now(UTC)
    last_month = f"{now.year - (now.month == 1):04d}-{(now.month - 2) % 12 + 1:02d}"
    write_good(home, "skola", "2024-01")
    write_good(home, "socialtjanst", last_month)
    with dg.instance_for_test() as instance:
        result = defs().resolve_job_def("delivery_freshness").execute_in_process(instance=instance)
    verdicts = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}
    assert set(verdicts) == set(UNITS)
    stopped = verdicts["skola"]
    assert not stopped.passed and stopped.severity == dg.AssetCheckSeverity.ERROR
    assert stopped.metadata["overdue_delivery"].value == "2024-02"
    assert verdicts["socialtjanst"].passed and verdicts["ekonomi"].passed  # on time; never delivered
    assert result.success, "an overdue feed is reported, it does not fail the run"


RULES_OF = {
    "invalid_personnummer": {"invalid_personnummer"},
    "duplicate_row": {"duplicate_row"},
    "missing_mandatory": {"missing_mandatory_value"},
    "out_of_range": {"below_minimum", "above_maximum"},
}


@pytest.mark.platform
@pytest.mark.long
def test_generated_defects_are_all_caught_and_every_delivery_reconciles(home, warehouse):
    """The generator's planted defects (ground truth) against what the checks and quarantine say."""
    from synthetic.generate import generate

    generate(home.home, citizens=400, years=1, seed=3, defect_rate=0.01, progress=False)
    truth = json.loads((home.ground_truth / "defects.json").read_text(encoding="utf-8"))
    evaluations = []
    with dg.instance_for_test() as instance:
        for unit in UNITS:
            months = sorted(p.name for p in (home.landing / unit).iterdir())
            evaluations += _run(instance, unit, months).get_asset_check_evaluations()

    planted = set()
    for kind, rules in RULES_OF.items():
        assert truth[kind]["count"] > 0, kind
        for d in truth[kind]["rows"]:
            planted.add((d["unit"], d["month"], d["dataset"], d["line"]))
            rule = _zone(
                warehouse,
                d["unit"],
                "SELECT rule FROM quarantine WHERE _delivery = $m AND dataset = $ds AND _source_line = $l",
                {"m": d["month"], "ds": d["dataset"], "l": d["line"]},
            )
            assert rule and rule[0][0] in rules, (kind, d, rule)
    [renamed] = truth["renamed_column"]["deliveries"]
    unplanted = [
        (u, *row)
        for u in UNITS
        for row in _zone(warehouse, u, "SELECT _delivery, dataset, _source_line, rule FROM quarantine")
        if (u, *row[:3]) not in planted
    ]
    assert unplanted == [
        ("socialtjanst", renamed["month"], renamed["dataset"], 1, "columns_differ_from_contract")
    ]

    failed = {
        (e.asset_key.path[-1], e.partition, e.check_name, e.severity.value)
        for e in evaluations
        if not e.passed
    }
    [late] = truth["late_delivery"]["deliveries"]
    assert {f for f in failed if f[2] == "freshness"} == {(late["unit"], late["month"], "freshness", "WARN")}
    assert not {u for u, _, dataset, _ in planted if UNITS[u].dataset(dataset).quarantine_holds}, (
        "no row defects where one would hold a whole delivery of figures per enhet"
    )
    assert {f for f in failed if f[3] == "ERROR"} == {
        ("socialtjanst", renamed["month"], "expectations", "ERROR")
    }
    assert not {f for f in failed if f[2] == "reconciliation"}
    assert len([e for e in evaluations if e.check_name == "reconciliation"]) == len(UNITS) * 12
