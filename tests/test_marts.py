"""End to end: the main job builds the marts through dbt as Dagster assets and publishes a snapshot.

One run of ``knutpunkt run`` on a small synthetic municipality is shared by this module. The tests
check the marts against what the generator planted (ground_truth/manifest.json), that dbt models are
assets with their tests as checks, and scan every table of the serving snapshot for disclosure.
"""

import hashlib
import json
import re
import shutil
import threading
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from dagster_dbt import DbtCliResource
from dagster_dbt.errors import DagsterDbtCliRuntimeError

from pipelines.disclosure import DEFAULT_THRESHOLD, TOTAL, TableSpec, audit
from pipelines.serving.presentation import VIEWS
from warehouse.layout import Warehouse

THRESHOLD = DEFAULT_THRESHOLD
REFERENCE_TABLES = {"org_unit", "month", "kpi", "kpi_target", "_disclosure", "_snapshot"}


@pytest.fixture(scope="module")
def platform(main_job):
    # Whether the whole job succeeded is its own test below; these tests need the marts step to have run.
    assert "FAILED build_marts_and_publish" not in main_job["stdout"], main_job["output"][-3000:]
    return main_job


def _query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def _frame(path: Path, sql: str) -> pl.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        return pl.from_arrow(con.sql(sql).to_arrow_table())


# --- the main job and Dagster ------------------------------------------------------------------


def test_main_job_succeeds(platform):
    assert platform["returncode"] == 0, platform["output"][-3000:]


def test_main_job_says_where_the_snapshot_is(platform):
    out = platform["output"]
    assert re.search(r"\d+ of \d+ dbt tests passed", out)
    current = platform["current"]
    assert f"Serving:     {current}\n" in out and f"-> {current.resolve().name}," in out
    assert current.is_symlink() and current.resolve().parent.name == "snapshots"


def test_every_dbt_model_is_an_asset_materialised_with_its_tests_as_passing_checks(platform, monkeypatch):
    from pipelines.defs.marts import dbt_models

    monkeypatch.setenv("DAGSTER_HOME", str(platform["paths"].dagster_home))
    instance = dg.DagsterInstance.get()
    keys = set(dbt_models().keys)
    assert dg.AssetKey(["marts", "fct_kpi"]) in keys
    assert dg.AssetKey(["cross_unit", "discovery", "citizen_quarter"]) in keys
    for key in keys:
        assert instance.get_latest_materialization_event(key) is not None, key.to_user_string()
    checks = list(dbt_models().check_keys)
    assert len(checks) >= 30
    for check in checks:
        record = instance.event_log_storage.get_asset_check_execution_history(check, limit=1)
        assert record and record[0].status.value == "SUCCEEDED", check.to_user_string()
    assert instance.get_latest_materialization_event(dg.AssetKey(["serving", "snapshot"])) is not None


def test_marts_sit_downstream_of_the_unit_and_cross_unit_assets():
    from pipelines.definitions import defs

    graph = defs().resolve_asset_graph()
    upstream = graph.get(dg.AssetKey(["staging", "stg_ekonomi__utfall"])).parent_keys
    assert dg.AssetKey(["units", "ekonomi"]) in upstream
    panel = graph.get(dg.AssetKey(["cross_unit", "discovery", "citizen_quarter"])).parent_keys
    assert {dg.AssetKey(["cross_unit", "citizen_index"]), dg.AssetKey(["cross_unit", "vard_omsorg"])} <= panel
    assert dg.AssetKey(["marts", "fct_kpi"]) in graph.get(dg.AssetKey(["serving", "snapshot"])).parent_keys


# --- the marts against what was planted -----------------------------------------------------------


def test_org_tree_has_kommun_forvaltningar_and_enheter(platform):
    levels = dict(_query(platform["marts"], "SELECT level, count(*) FROM dim_org_unit GROUP BY level"))
    assert levels["kommun"] == 1 and levels["förvaltning"] >= 5 and levels["enhet"] >= 20
    tertials = _query(platform["marts"], "SELECT DISTINCT month_of_year, tertial FROM dim_month")
    assert all(t == (m - 1) // 4 + 1 for m, t in tertials)


def test_planted_budget_deviations_show_as_red_lights_and_underspending_never_does(platform):
    deviations = [d for d in platform["manifest"]["deviations"] if d["datasets"] == ["ekonomi.utfall"]]
    assert deviations
    for d in deviations:
        effect = d["effect"]
        red = _query(
            platform["marts"],
            f"""SELECT avg((status = 'röd')::INT), avg(deviation_pct) FROM fct_kpi
                WHERE kpi_id = 'U90001' AND forvaltning = '{effect["forvaltning"]}' AND enhet = '{effect["enhet"]}'""",
        )[0]
        if effect["planted_deviation_end"] >= 0.1:
            assert red[0] >= 0.5 and red[1] > 5, d["id"]
        elif effect["planted_deviation_end"] < 0:
            assert red[0] == 0 and red[1] < -5, d["id"]
    others = _query(
        platform["marts"],
        "SELECT avg((status = 'röd')::INT) FROM fct_kpi WHERE kpi_id = 'U90001' AND level = 'enhet'",
    )[0][0]
    assert others < 0.5


def test_budget_forecast_and_targets_come_from_data(platform):
    row = _query(
        platform["marts"],
        """SELECT count(*), count(*) FILTER (forecast IS NULL), count(*) FILTER (target IS DISTINCT FROM plan)
           FROM fct_kpi WHERE kpi_id = 'U90001'""",
    )[0]
    assert row[0] > 100 and row[1] == 0 and row[2] == 0  # the budget is the target
    seeded = dict(_query(platform["marts"], "SELECT kpi_id, target_value FROM reference.kpi_targets"))
    kpi = _query(platform["marts"], "SELECT DISTINCT kpi_id, target FROM fct_kpi WHERE kpi_id = 'U90020'")
    assert kpi == [("U90020", seeded["U90020"])]


def test_case_flow_finds_the_slow_case_type_where_it_was_planted(platform):
    planted = next(p for p in platform["manifest"]["patterns"] if p["id"] == "slow_case_type")["effect"]
    medians = dict(
        _query(
            platform["marts"],
            f"""SELECT forvaltning, median(days_to_decision) FROM fct_case
                WHERE case_type = '{planted["case_type"]}' GROUP BY forvaltning""",
        )
    )
    slow = planted["forvaltning"]
    assert max(medians, key=medians.get) == slow
    assert medians[slow] > 5 * max(v for f, v in medians.items() if f != slow)
    late = _query(
        platform["marts"],
        f"""SELECT forvaltning, sum(n_decided_late) / sum(n_decided) FROM fct_case_flow_month
            WHERE case_type = '{planted["case_type"]}' GROUP BY forvaltning ORDER BY 2 DESC LIMIT 1""",
    )
    assert late[0][0] == slow and late[0][1] > 0.5
    bottleneck = _query(
        platform["marts"],
        f"""SELECT step, count(*) FROM fct_case_step_month
            WHERE case_type = '{planted["case_type"]}' AND forvaltning = '{slow}' AND is_bottleneck
            GROUP BY step ORDER BY 2 DESC LIMIT 1""",
    )
    assert bottleneck[0][0] == "tilldelat → beslutat"


def test_backlog_and_throughput_agree_with_the_case_events(platform):
    wh: Warehouse = platform["warehouse"]
    zone = wh.unit_zone("arendehandelser")
    decided = _query(zone, "SELECT count(DISTINCT case_id) FROM statushandelser WHERE status = 'beslutat'")[
        0
    ][0]
    flow = _query(platform["marts"], "SELECT sum(n_decided), max(n_backlog) FROM fct_case_flow_month")[0]
    assert flow[0] == decided and flow[1] > 0


def test_benefit_realisation_halves_phone_calls_from_the_measured_baseline(platform):
    wh: Warehouse = platform["warehouse"]
    calls = _query(
        wh.unit_zone("kontaktcenter"),
        "SELECT year(contacted_at), count(*), count(DISTINCT date_trunc('month', contacted_at)) "
        "FROM kontakter WHERE channel = 'telefon' GROUP BY 1 ORDER BY 1",
    )[0]
    row = _query(
        platform["marts"],
        """SELECT baseline_year, baseline, target, owner, due_date FROM fct_benefit_realisation
           WHERE initiative_id = 'NR01' ORDER BY year LIMIT 1""",
    )[0]
    assert row[0] == calls[0]
    assert row[1] == pytest.approx(calls[1] * 12 / calls[2])  # annualised
    assert row[2] == pytest.approx(row[1] * 800_000 / 1_600_000)
    assert row[3] and row[4] is not None
    digital = _query(platform["marts"], "SELECT target FROM fct_benefit_realisation WHERE kpi_id = 'U90040'")
    assert {t for (t,) in digital} == {90.0}


def test_the_panel_is_person_level_and_stays_in_the_cross_unit_zone(platform):
    wh: Warehouse = platform["warehouse"]
    panel = _query(
        wh.cross_unit, "SELECT count(*), count(DISTINCT citizen_key) FROM discovery.citizen_quarter"
    )[0]
    persons = _query(wh.cross_unit, "SELECT count(*) FROM citizen_index")[0][0]
    assert panel[1] == persons and panel[0] >= 3 * persons  # a year of quarters
    aid = _query(
        wh.cross_unit,
        """SELECT (SELECT count(*) FROM discovery.citizen_quarter WHERE has_economic_aid),
                  (SELECT count(*) FROM (SELECT DISTINCT p.citizen_key, p.quarter
                      FROM discovery.citizen_quarter p
                      JOIN socialtjanst.ekonomiskt_bistand a ON a.citizen_key = p.citizen_key
                       AND date_trunc('quarter', a.quarter) = p.quarter))""",
    )[0]
    assert aid[0] == aid[1] > 0
    for path in (platform["marts"], platform["current"]):
        columns = {
            c
            for (c,) in _query(
                path,
                "SELECT DISTINCT column_name FROM duckdb_columns() JOIN duckdb_tables() "
                "USING (database_name, schema_name, table_name)",
            )
        }
        assert not columns & {"citizen_key", "person_pseudonym", "household_key"}, path


PANEL_KEYS = [
    dg.AssetKey(["cross_unit", "discovery", name]) for name in ("citizen_quarter_inputs", "citizen_quarter")
]


def _warehouse_copy(platform: dict, home: Path) -> Path:
    shutil.copytree(platform["paths"].warehouse, home / "warehouse", symlinks=True)
    return home / "warehouse" / "cross_unit.duckdb"


def _build_panel(home: Path, selection: list[dg.AssetKey] = PANEL_KEYS) -> dg.ExecuteInProcessResult:
    """The panel and its fingerprints (or ``selection``), as the marts job builds them, on the warehouse
    under home."""
    from pipelines.defs.marts import dbt_models, dbt_resource
    from pipelines.defs.resources import Platform

    return dg.materialize(
        [dbt_models()],
        selection=selection,
        resources={"dbt": dbt_resource(), "platform": Platform(home=str(home))},
        instance=dg.DagsterInstance.ephemeral(),
    )


def test_a_dbt_run_starts_from_the_last_parse_in_its_home(platform, tmp_path):
    """The project is parsed once per home: the first run parses it whole (dbt logs why it cannot
    reuse a parse: the manifest's was made without this home's vars), the next one reuses that parse."""
    home = tmp_path / "home"
    _warehouse_copy(platform, home)
    reparsed = []  # per run: [parsed again, parse reused]
    for _ in range(2):
        result = _build_panel(home)
        assert result.success
        log = (home / "dbt" / result.run_id / "dbt.log").read_text()
        reparsed.append(
            ['"name": "UnableToPartialParse"' in log, '"name": "PartialParsingSkipParsing"' in log]
        )
    assert reparsed == [[True, False], [False, True]]


def test_a_parse_kept_by_another_checkout_is_not_reused(platform, tmp_path):
    """dbt's parse holds the project's absolute paths (a seed's file) and dbt does not check where the
    project is: a parse kept in the home by a checkout since moved away would load the seeds from where
    it was. Each checkout keeps its own, and keeping one drops the others."""
    from pipelines.defs.marts import DBT_DIR, DBT_EXECUTABLE, _keep_parse
    from pipelines.defs.resources import Platform
    from warehouse.layout import memory_limit

    home = tmp_path / "home"
    _warehouse_copy(platform, home)
    moved = tmp_path / "moved" / "models"
    shutil.copytree(DBT_DIR, moved, ignore=shutil.ignore_patterns("target", "logs"))
    same_vars = json.dumps(
        {"knutpunkt_home": str(Platform(home=str(home)).paths.home), "memory_limit": memory_limit()}
    )
    DbtCliResource(project_dir=str(moved), profiles_dir=str(moved), dbt_executable=str(DBT_EXECUTABLE)).cli(
        ["parse", "--vars", same_vars], target_path=moved / "target"
    ).wait()
    (home / "dbt").mkdir(exist_ok=True)
    _keep_parse(moved / "target", home / "dbt", moved)
    shutil.rmtree(moved.parent)  # the checkout that kept it is gone

    assert _build_panel(home, [dg.AssetKey(["reference", "kpi_catalogue"])]).success
    kept = sorted(p.name for p in (home / "dbt").glob("partial_parse*"))
    assert kept == [
        f"partial_parse.{hashlib.sha256(str(DBT_DIR.resolve()).encode()).hexdigest()[:16]}.msgpack"
    ]
    assert (
        _query(home / "warehouse" / "marts.duckdb", "SELECT count(*) FROM reference.kpi_catalogue")[0][0] > 0
    )


def test_the_panel_tolerates_a_withdrawn_unit(platform, tmp_path, monkeypatch):
    """A unit whose steward withdraws has no tables in the cross-unit zone: its indicators become unknown."""
    home = tmp_path / "home"
    with duckdb.connect(str(_warehouse_copy(platform, home))) as con:
        con.execute("DROP SCHEMA vard_omsorg CASCADE")
    monkeypatch.setenv("KNUTPUNKT_HOME", str(home))  # what the Platform resource would fall back to
    assert _build_panel(home).success
    after = _query(
        home / "warehouse" / "cross_unit.duckdb",
        """SELECT count(*), count(has_home_care), count(has_safety_alarm), count(*) FILTER (has_economic_aid)
           FROM discovery.citizen_quarter""",
    )[0]
    assert after[0] > 0 and after[1] == 0 and after[2] == 0 and after[3] > 0


def test_the_panel_replaces_only_the_quarters_whose_inputs_changed_and_equals_a_rebuild(
    platform, tmp_path, monkeypatch
):
    """A month's run rebuilds the panel's changed quarters only, and ends where a rebuild from nothing does.

    Three changes, each in a past quarter: contacts not by phone now by phone (a unit's part, as many
    rows as before), a member out of an aid household for one quarter (the index's household history),
    and a forged row in a quarter no input has.
    """
    home, rebuilt = tmp_path / "home", tmp_path / "rebuilt"
    cross_unit = _warehouse_copy(platform, home)
    quarters = [
        q for (q,) in _query(cross_unit, "SELECT DISTINCT quarter FROM discovery.citizen_quarter ORDER BY 1")
    ]
    contacts, household = quarters[1], quarters[2]
    with duckdb.connect(str(cross_unit)) as con:
        by_phone = con.execute(
            """UPDATE kontaktcenter.kontakter SET channel = 'telefon' WHERE contact_id IN (
                   SELECT contact_id FROM kontaktcenter.kontakter WHERE date_trunc('quarter', contacted_at) = $q
                   AND channel <> 'telefon' AND citizen_key IS NOT NULL ORDER BY contact_id LIMIT 40)""",
            {"q": contacts},
        ).fetchone()[0]
        assert by_phone == 40
        member_of_aid = con.execute(
            """SELECT citizen_key, household_history[1].household_key
               FROM discovery.citizen_quarter JOIN citizen_index USING (citizen_key)
               WHERE quarter = $q AND has_household_economic_aid AND NOT has_economic_aid
                 AND len(household_history) = 1 AND household_history[1].valid_from < $q
               ORDER BY citizen_key LIMIT 1""",
            {"q": household},
        ).fetchone()
        assert member_of_aid, "the test municipality has a member of an aid household"
        member, key = member_of_aid
        con.execute(
            """UPDATE citizen_index SET household_history = [household_history[1],
                   {'household_key': 'elsewhere', 'valid_from': $q},
                   {'household_key': $key, 'valid_from': $q + INTERVAL 3 MONTH}]
               WHERE citizen_key = $member""",
            {"q": household, "key": key, "member": member},
        )
        con.execute(
            "INSERT INTO discovery.citizen_quarter BY NAME SELECT * REPLACE (DATE '1990-01-01' AS quarter) "
            "FROM discovery.citizen_quarter LIMIT 1"
        )
    shutil.copytree(home, rebuilt, symlinks=True)
    with duckdb.connect(str(rebuilt / "warehouse" / "cross_unit.duckdb")) as con:
        con.execute("DROP TABLE discovery.citizen_quarter")
    stored = (
        "SELECT quarter, min(rowid), max(rowid), count(*) FROM discovery.citizen_quarter GROUP BY quarter"
    )
    before = dict((q, rest) for q, *rest in _query(cross_unit, stored))
    monkeypatch.setenv("KNUTPUNKT_HOME", str(home))
    assert _build_panel(home).success
    monkeypatch.setenv("KNUTPUNKT_HOME", str(rebuilt))
    assert _build_panel(rebuilt).success

    after = dict((q, rest) for q, *rest in _query(cross_unit, stored))
    assert sorted(after) == quarters
    assert [q for q in quarters if after[q] != before[q]] == [contacts, household]
    assert all(after[q][0] > before[q][1] for q in (contacts, household))  # written anew, not kept
    aid = "SELECT has_household_economic_aid FROM discovery.citizen_quarter WHERE citizen_key = $m AND quarter = $q"
    with duckdb.connect(str(cross_unit), read_only=True) as con:
        assert con.execute(aid, {"m": member, "q": household}).fetchall() == [(False,)]
        con.execute(f"ATTACH '{rebuilt / 'warehouse' / 'cross_unit.duckdb'}' AS rebuilt (READ_ONLY)")
        for one, other in (("discovery", "rebuilt.discovery"), ("rebuilt.discovery", "discovery")):
            content = "COLUMNS(lambda c: c <> '_written_at')"  # when a quarter was written is no content
            extra = f"SELECT {content} FROM {one}.citizen_quarter EXCEPT ALL SELECT {content} FROM {other}.citizen_quarter"
            assert con.execute(f"SELECT count(*) FROM ({extra})").fetchone()[0] == 0, one


def test_the_panel_s_grain_is_tested_where_it_was_last_written_and_a_row_twice_there_fails(
    platform, tmp_path
):
    """The uniqueness test of the panel reads the quarters of the latest write only (the others were
    tested when written and are as they were): a row twice in one of those fails it."""
    home = tmp_path / "home"
    with duckdb.connect(str(_warehouse_copy(platform, home))) as con:
        con.execute(
            """INSERT INTO discovery.citizen_quarter SELECT * FROM discovery.citizen_quarter
               WHERE _written_at = (SELECT max(_written_at) FROM discovery.citizen_quarter) LIMIT 1"""
        )
    with pytest.raises(DagsterDbtCliRuntimeError, match="unique_combination_citizen_quarter"):
        _build_panel(home)


# --- the serving snapshot -------------------------------------------------------------------------


def _specs(current: Path) -> dict[str, TableSpec]:
    """The snapshot's own description of its tables (table _disclosure)."""
    meta = _frame(current, "SELECT * FROM _disclosure")
    specs = {}
    for name in meta["table_name"].unique().to_list():
        rows = meta.filter(pl.col("table_name") == name)

        def role(roles: list[str], rows: pl.DataFrame = rows) -> pl.DataFrame:
            return rows.filter(pl.col("role").is_in(roles))

        counts = role(["count", "part_of"])
        specs[name] = TableSpec(
            name,
            dimensions=tuple(role(["dimension", "margin"])["column_name"]),
            counts=tuple(counts["column_name"]),
            margins=tuple(role(["margin"])["column_name"]),
            complements=dict(role(["part_of"]).select("column_name", "depends_on").iter_rows()),
            derived={
                c: tuple(d.split(", "))
                for c, d in role(["derived"]).select("column_name", "depends_on").iter_rows()
            },
            applies=(role(["applies"])["column_name"].to_list() or [None])[0],
            only_where=dict(counts.drop_nulls("condition").select("column_name", "condition").iter_rows()),
        )
    return specs


def _all_tables(current: Path) -> list[str]:
    return [t for (t,) in _query(current, "SELECT table_name FROM duckdb_tables() ORDER BY 1")]


def test_every_snapshot_table_is_described_and_counts_are_where_the_description_says(platform):
    current = platform["current"]
    specs = _specs(current)
    assert set(_all_tables(current)) == REFERENCE_TABLES | set(specs)
    assert {"kpi_value", "case_flow", "case_step", "benefit_realisation", "discovery_quarter"} <= set(specs)
    for name in _all_tables(current):
        columns = [c for (c,) in _query(current, f'SELECT column_name FROM (DESCRIBE "{name}")')]
        undeclared_counts = [
            c
            for c in columns
            if c.startswith("n_") and c not in specs.get(name, TableSpec(name, (), ())).counts
        ]
        assert undeclared_counts == [], name


def test_every_view_is_described_holds_rows_and_shows_no_count_below_the_threshold(platform):
    """The dashboards' views (``pipelines/serving/presentation.py``) read only what passed disclosure
    control; a count they sum or carry is never below the threshold either."""
    current = platform["current"]
    views = _query(current, "SELECT view_name, comment FROM duckdb_views() WHERE NOT internal ORDER BY 1")
    assert [v for v, _ in views] == sorted(v.name for v in VIEWS)
    for name, comment in views:
        assert comment, f"{name} is not described"
        frame = _frame(current, f'SELECT * FROM "{name}"')
        assert frame.height > 0, name
        for count in [c for c in frame.columns if c.startswith("n_")]:
            assert frame.filter(pl.col(count) < THRESHOLD).is_empty(), (name, count)


def test_no_count_below_the_threshold_in_any_table(platform):
    current = platform["current"]
    assert _query(current, "SELECT DISTINCT threshold FROM _disclosure") == [(THRESHOLD,)]
    for name, spec in _specs(current).items():
        frame = _frame(current, f'SELECT * FROM "{name}"')
        applies = frame[spec.applies] if spec.applies else pl.Series([True] * frame.height)
        for count in spec.counts:
            where = applies & frame[spec.only_where[count]] if count in spec.only_where else applies
            small = frame.filter(where & (pl.col(count) < THRESHOLD))
            assert small.is_empty(), (name, count, small.head(3))
    withheld = _query(current, "SELECT count(*) FROM discovery_quarter WHERE n_economic_aid IS NULL")[0][0]
    assert withheld > 0, "a small municipality must have withheld cells, or the scan proves nothing"


def test_no_withheld_cell_can_be_recovered_from_totals_or_siblings(platform):
    """Every published relation total = sum(members) has no withheld cell or at least two; and the
    linear audit finds no withheld cell that the relations pin down together."""
    current = platform["current"]
    checked = 0
    for name, spec in _specs(current).items():
        frame = _frame(current, f'SELECT * FROM "{name}"')
        for margin in spec.margins:
            others = [d for d in spec.dimensions if d != margin]
            is_total = pl.col(margin) == TOTAL
            totals = frame.filter(is_total).select(
                *others, *[pl.col(c).alias(f"{c}__total") for c in spec.counts]
            )
            members = (
                frame.filter(~is_total)
                .group_by(others)
                .agg(*[pl.col(c).is_null().sum().alias(f"{c}__withheld") for c in spec.counts])
            )
            groups = members.join(totals, on=others, nulls_equal=True)
            for count in spec.counts:
                unknowns = groups[f"{count}__withheld"] + groups[f"{count}__total"].is_null().cast(pl.UInt32)
                assert (unknowns != 1).all(), (name, margin, count)
                checked += int((unknowns >= 2).sum())
        for part, whole in spec.complements.items():
            both = frame.drop_nulls([part, whole])
            if spec.only_where.get(part):
                both = both.filter(pl.col(spec.only_where[part]))
            assert ((both[whole] - both[part]) >= THRESHOLD).all(), (name, whole, part)
        assert audit(frame, spec, THRESHOLD) == [], name
    assert checked > 0, "no relation had withheld cells: the check proved nothing"


def test_values_built_on_a_withheld_count_are_withheld_with_it(platform):
    current = platform["current"]
    shown = _query(
        current,
        """SELECT count(*) FROM kpi_value WHERE person_based AND n_underlag IS NULL
           AND (actual IS NOT NULL OR deviation IS NOT NULL OR status IS NOT NULL)""",
    )[0][0]
    assert shown == 0
    money = _query(current, "SELECT count(*), count(actual) FROM kpi_value WHERE NOT person_based")[0]
    assert money[0] == money[1] > 0, "budget rows are not about people and stay whole"


def test_a_publish_during_dashboard_queries_fails_neither(platform, tmp_path, monkeypatch):
    from pipelines.defs.anchors import platform_instance
    from pipelines.defs.publish import serving_snapshot
    from pipelines.defs.resources import Platform
    from pipelines.serving.snapshot import ServingPaths
    from pipelines.settings import Paths

    # On a copy of the home (the shared one stays as the main job left it). The snapshot is named by
    # the sharing state, read from the audit log as verified against the stewards' public keys (beside
    # the key file) and the heads anchored in the platform's Dagster instance, which the publish runs on.
    shutil.copytree(platform["paths"].home, tmp_path / "home", symlinks=True)
    paths = Paths(tmp_path / "home")
    monkeypatch.setenv("KNUTPUNKT_KEY_FILE", platform["env"]["KNUTPUNKT_KEY_FILE"])

    current = ServingPaths(Warehouse(paths.warehouse).serving).current
    before = current.resolve()
    errors: list[Exception] = []
    stop = threading.Event()

    def dashboard():
        while not stop.is_set():
            try:
                with duckdb.connect(str(current), read_only=True) as con:
                    con.execute("SELECT kpi_id, sum(actual) FROM kpi_value GROUP BY 1").fetchall()
            except Exception as e:  # noqa: BLE001 - any failure of a reader is the finding
                errors.append(e)

    readers = [threading.Thread(target=dashboard) for _ in range(2)]
    for r in readers:
        r.start()
    try:
        with duckdb.connect(str(current), read_only=True) as held:  # a long query holds the file
            with platform_instance(paths) as instance:
                result = dg.materialize(
                    [serving_snapshot()],
                    resources={"platform": Platform(home=str(paths.home))},
                    instance=instance,
                )
            assert held.execute("SELECT count(*) FROM kpi_value").fetchall()[0][0] > 0
    finally:
        stop.set()
        for r in readers:
            r.join()
    assert result.success and errors == []
    assert current.resolve() != before and before.exists()
    assert _frame(current, "SELECT * FROM kpi_value").equals(_frame(before, "SELECT * FROM kpi_value"))


def test_lead_times_are_shown_only_where_enough_cases_are_behind_them(platform):
    from pipelines.serving.tables import CASE_STEP

    with duckdb.connect() as con:
        con.execute(f"ATTACH '{platform['marts']}' AS m (READ_ONLY)")
        counts = pl.from_arrow(con.sql(CASE_STEP.sql).to_arrow_table()).select(
            "forvaltning", "case_type", "step", "tertial_label", "n_cases"
        )
    published = _frame(platform["current"], "SELECT * FROM case_step")
    assert "n_cases" not in published.columns
    joined = published.join(counts, on=["forvaltning", "case_type", "step", "tertial_label"])
    assert joined.height == published.height
    shown = joined.filter(pl.col("median_days").is_not_null())
    assert shown.height > 0 and shown["n_cases"].min() >= THRESHOLD
    assert (
        joined.filter(pl.col("n_cases") < THRESHOLD)["median_days"].null_count()
        == joined.filter(pl.col("n_cases") < THRESHOLD).height
    )


def test_the_promise_kpi_shows_the_case_flow_s_own_cells(platform):
    """Suppressed separately, two tables with the same counts could fill in each other's gaps."""
    kpi = _frame(
        platform["current"],
        "SELECT forvaltning, month, n_underlag, n_ovriga FROM kpi_value WHERE kpi_id = 'U90020'",
    )
    flow = _frame(
        platform["current"],
        "SELECT forvaltning, month, n_decided - n_decided_late AS in_time, n_decided_late FROM case_flow "
        "WHERE case_type = 'Totalt'",
    )
    joined = kpi.join(flow, on=["forvaltning", "month"])
    assert joined.height == kpi.height > 0
    for a, b in (("n_underlag", "in_time"), ("n_ovriga", "n_decided_late")):
        assert joined.filter(pl.col(a).ne_missing(pl.col(b))).is_empty(), a


def test_a_benefit_year_is_shown_only_when_every_month_of_it_is(platform):
    current = platform["current"]
    rows = _query(
        current,
        """SELECT b.initiative_id, b.year, b.actual IS NOT NULL, bool_and(k.n_underlag IS NOT NULL)
           FROM benefit_realisation b JOIN kpi_value k ON k.kpi_id = b.kpi_id AND k.year = b.year
           WHERE k.person_based GROUP BY ALL""",
    )
    assert rows
    for initiative, year, shown, whole in rows:
        assert shown <= whole, (initiative, year)


# --- the bounds attack on the whole snapshot ----------------------------------------------------


def _published(path: Path) -> dict[str, pl.DataFrame]:
    from pipelines.serving.build import read_published

    return read_published(path)


def _attacks(tables: dict[str, pl.DataFrame], enough: int | None = None):
    """The independent attacker (tests/attack.py) and the platform's own engine, on the same tables."""
    from pipelines.disclosure.joint import attack
    from pipelines.serving.build import PUBLISHED_SPECS
    from tests.attack import bounds_attack

    recovered, tried = bounds_attack(tables, PUBLISHED_SPECS, THRESHOLD, enough)
    return recovered, tried, attack(tables, PUBLISHED_SPECS, THRESHOLD)


@pytest.mark.long
def test_a_bounds_attack_on_the_whole_snapshot_recovers_nothing(platform):
    recovered, tried, report = _attacks(_published(platform["current"]))
    assert tried > 100, "too few withheld cells for the attack to prove anything"
    assert recovered == [], recovered[:5]
    assert report.narrow == [] and report.narrowest >= THRESHOLD


def test_without_the_bounds_rounds_the_same_attack_recovers_cells(platform):
    """The tables' own suppression (margins and complements, linear audit) is what the issue attacked."""
    from pipelines.serving.build import build_tables

    old = build_tables(platform["marts"], platform["warehouse"].cross_unit, THRESHOLD, bounds=False)
    recovered, _, report = _attacks(old.tables, enough=1)
    assert recovered and report.narrow, (
        "the attack must be able to fail: it found nothing on the old protection"
    )


@pytest.mark.long
def test_two_consecutive_publishes_together_give_nothing_away(platform):
    from pipelines.disclosure.joint import attack
    from pipelines.serving.build import PUBLISHED_SPECS, build_tables

    current = platform["current"].resolve()
    again = build_tables(platform["marts"], platform["warehouse"].cross_unit, THRESHOLD, previous=current)
    assert again.stats.audit["with_previous"] and again.stats.audit["moved_since_previous"] == 0
    report = attack(
        {n: f for n, f in again.tables.items() if n in PUBLISHED_SPECS},
        PUBLISHED_SPECS,
        THRESHOLD,
        previous=_published(current),
    )
    assert report.narrow == [] and report.blocks > 0


def test_the_dbt_resource_tells_dbt_s_own_version_without_asking_the_executable():
    """dagster-dbt runs ``dbt --version`` in every run unless its ``_cli_version`` is known; ours answers
    from the installed dbt-core, which must be what the executable says (and the property must still be
    the one dagster-dbt reads, or the answer goes unused)."""
    import subprocess

    from pipelines.defs.marts import DBT_EXECUTABLE, dbt_resource

    said = subprocess.check_output([str(DBT_EXECUTABLE), "--version"], text=True)
    assert re.search(rf"\bCore:\s+- installed: {re.escape(str(dbt_resource()._cli_version))}\b", said), said
    assert "_cli_version" in vars(DbtCliResource), "dagster-dbt no longer asks through _cli_version"


def test_the_dbt_resource_makes_no_adapter_of_its_own(tmp_path):
    """dagster-dbt loads dbt's project, profile and macros into an adapter before each invocation (1.3 s
    in a fresh process), read only by metadata fetches no asset asks for; ours skips it. A plain
    dagster-dbt resource of the same project makes one (so the check can fail: an upgrade that renamed
    the method would leave our override unused)."""
    from pipelines.defs.marts import DBT_EXECUTABLE, DBT_PROJECT, DbtCli, dbt_resource

    class Plain(DbtCli):
        _initialize_dbt_core_adapter = DbtCliResource._initialize_dbt_core_adapter

    plain = Plain(project_dir=DBT_PROJECT, dbt_executable=str(DBT_EXECUTABLE))
    made = {}
    for name, resource in (("ours", dbt_resource()), ("plain", plain)):
        invocation = resource.cli(["--version"], raise_on_error=False, target_path=tmp_path / name)
        invocation.wait()
        assert invocation.is_successful(), name
        made[name] = invocation.adapter
    assert made["ours"] is None
    assert type(made["plain"]).__name__ == "DuckDBAdapter"
