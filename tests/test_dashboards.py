"""Superset on the serving snapshot: the bundle deployed by one command, row-level security per
förvaltning, a locked-down DuckDB connection, and publishing while dashboards query.

A real Superset server (gunicorn, from .venv-superset) on the discovery tests' small main-job run,
shared with test_dashboards_browser.py through the session fixture ``dashboards_platform``; everything goes through
Superset's REST API as its users would.
"""

import csv
import io
import json
import os
import re
import subprocess
import sys
import threading

import dagster as dg
import duckdb
import pytest
import yaml

from dashboards.api import Superset, SupersetError
from dashboards.home import BUNDLE, REPO_ROOT, SUPERSET_VENV, SupersetHome, role_name
from tests.superset import login

MANAGERS = ("Socialförvaltningen", "Vård- och omsorgsförvaltningen")
DASHBOARDS = {"Chefsöversikt", "Ärendeflöde (Visuell styrning)", "Nyttorealisering", "Dataupptäckt"}
# Dataupptäckt shows cross-unit aggregates no RLS filter restricts: it is the discovery unit's (admin's) view
MANAGER_DASHBOARDS = DASHBOARDS - {"Dataupptäckt"}


def _bundle(folder: str) -> dict[str, dict]:
    return {p.stem: yaml.safe_load(p.read_text()) for p in (BUNDLE / folder).rglob("*.yaml")}


def _own_organisations(platform: dict, forvaltning: str) -> set[str]:
    """The förvaltning and its enheter: the only organisations its manager may see."""
    current = platform["paths"].warehouse / "serving" / "current.duckdb"
    with duckdb.connect(str(current), read_only=True) as con:
        rows = con.execute("SELECT name FROM org_unit WHERE forvaltning = ?", [forvaltning]).fetchall()
    return {forvaltning} | {r[0] for r in rows}


def test_the_bundle_links_every_chart_dataset_and_dashboard_by_uuid():
    databases = {d["uuid"] for d in _bundle("databases").values()}
    datasets = _bundle("datasets")
    charts = _bundle("charts")
    placed = {
        node["meta"]["uuid"]
        for d in _bundle("dashboards").values()
        for node in d["position"].values()
        if isinstance(node, dict) and node.get("type") == "CHART"
    }
    assert {d["database_uuid"] for d in datasets.values()} <= databases
    assert {c["dataset_uuid"] for c in charts.values()} <= {d["uuid"] for d in datasets.values()}
    assert placed == {c["uuid"] for c in charts.values()}, "every chart is on a dashboard, and only those"
    assert {d["dashboard_title"] for d in _bundle("dashboards").values()} == DASHBOARDS


def test_every_table_of_rows_is_ordered_alike_in_the_browser_and_through_the_api():
    """A raw table's rows come in the order its form asks (what a browser sends) and its saved query asks
    (what the API, the cache warm-up and a repeat view send): without one, rows swap places between loads."""
    tables = {n: c for n, c in _bundle("charts").items() if c["params"].get("query_mode") == "raw"}
    for name, chart in tables.items():
        asked = [json.loads(o) for o in chart["params"].get("order_by_cols", [])]
        [query] = json.loads(chart["query_context"])["queries"]
        assert asked and query["orderby"] == asked, name


def test_the_pipeline_environment_does_not_import_superset():
    script = (
        "import importlib.util, sys; import dashboards.api, dashboards.home, dashboards.server, pipelines.cli; "
        "assert 'superset' not in sys.modules and importlib.util.find_spec('superset') is None"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr


def test_one_command_deploys_four_dashboards_whose_charts_all_return_real_data(dashboards_platform):
    admin = login(dashboards_platform, "admin")
    assert {d["dashboard_title"] for d in admin.list("dashboard")} == DASHBOARDS
    charts = admin.charts()
    assert set(charts) == {c["slice_name"] for c in _bundle("charts").values()}
    for name, chart_id in charts.items():
        assert admin.chart_data(chart_id), f"no rows in '{name}'"


# A period label: a year, with a tertial (T), quarter (K) or month number after it or before it (2024,
# 2024 T1, T1 2024, 2024 K3, 2024-05); temporal columns come as epoch milliseconds. A label with the
# period first is recognised too, so that it is caught (it sorts as text out of time), not skipped.
PERIOD = re.compile(r"(?P<year>\d{4})(?:(?: T| K|-)(?P<after>\d{1,2}))?|[TK](?P<before>\d) (?P<year2>\d{4})")
DIMENSIONS = ("x_axis", "groupby", "groupbyRows", "groupbyColumns")


def _time_key(value: object) -> tuple[int, int] | None:
    """Where a dimension value lies in time, or None if it is not a period (a name, a category)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return (int(value), 0) if 1900 <= value <= 2100 or value >= 1e11 else None
    match = PERIOD.fullmatch(str(value))
    if not match:
        return None
    return int(match["year"] or match["year2"]), int(match["after"] or match["before"] or 0)


def _dimensions(form_data: dict) -> list[str]:
    """The columns a chart lays out along an axis, a series or a pivot's rows and columns."""
    found = []
    for key in DIMENSIONS:
        value = form_data.get(key) or []
        found += [c for c in ([value] if isinstance(value, str) else value) if isinstance(c, str)]
    return found


def _time_order_problems(form_data: dict, rows: list[dict]) -> dict[str, str]:
    """Per time dimension of a chart, why its payload or its display would not run in time order.

    A dimension is time if every value is a period. Its values must come in time order in the payload
    (the query sorts by it) and also where the browser sorts them itself: a categorical axis sorted by
    its label, a pivot's keys a to z. So a label must sort as text in time order ("2024 T1", not "T1 2024").
    """
    problems = {}
    for column in _dimensions(form_data):
        values = list(dict.fromkeys(row[column] for row in rows if row.get(column) is not None))
        keys = [_time_key(v) for v in values]
        if not values or None in keys:
            continue
        in_time = [v for _, v in sorted(zip(keys, values, strict=True))]
        if values != in_time:
            problems[column] = f"payload order {values[:6]}"
        elif sorted(values) != in_time:
            problems[column] = f"sorted as labels {sorted(values)[:6]}"
        elif form_data.get("x_axis") == column and not form_data.get("time_grain_sqla"):
            if not form_data.get("x_axis_sort_asc") or form_data.get("x_axis_sort") not in (None, column):
                problems[column] = "the axis is not sorted by its label, ascending"
        elif column in form_data.get("groupbyColumns", []) + form_data.get("groupbyRows", []):
            side = "colOrder" if column in form_data.get("groupbyColumns", []) else "rowOrder"
            if form_data.get(side, "key_a_to_z") != "key_a_to_z":
                problems[column] = f"the pivot's {side} is {form_data[side]}"
    return problems


def test_the_time_order_check_rejects_labels_that_sort_out_of_time():
    """The check below can fail: tertials labelled as the snapshot once did sort 2023, 2024, 2023."""
    form_data = {"x_axis": "tertial_label", "x_axis_sort_asc": True, "groupby": ["forvaltning"]}
    old = [{"tertial_label": f"T{t} {y}", "forvaltning": "Social"} for y in (2023, 2024) for t in (1, 2, 3)]
    new = [{"tertial_label": f"{y} T{t}", "forvaltning": "Social"} for y in (2023, 2024) for t in (1, 2, 3)]
    assert "tertial_label" in _time_order_problems(form_data, sorted(old, key=lambda r: r["tertial_label"]))
    assert "tertial_label" in _time_order_problems(form_data, old), "in time in the payload, not as labels"
    assert _time_order_problems(form_data, new) == {}
    assert _time_order_problems(form_data | {"x_axis_sort_asc": False}, new)
    assert _time_order_problems(form_data, new[::-1])


def test_every_time_axis_and_pivot_of_every_chart_runs_in_time_order(dashboards_platform):
    """Walks every chart, so a new chart with a period axis is checked without being named here."""
    admin = login(dashboards_platform, "admin")
    checked, problems = set(), {}
    for name, chart_id in admin.charts().items():
        form_data = admin.chart(chart_id)["form_data"]
        rows = admin.chart_data(chart_id)
        problems |= {f"{name}: {c}": why for c, why in _time_order_problems(form_data, rows).items()}
        checked |= {(name, c) for c in _dimensions(form_data) if rows and _time_key(rows[0].get(c))}
    assert problems == {}
    assert {
        ("Inkomna ärenden per tertial", "tertial_label"),
        ("Ledtid per steg: median dagar per tertial", "tertial_label"),
        ("Kontakter med kontaktcenter per åldersgrupp och kvartal", "kvartal"),
    } <= checked, checked


# Chefsöversikt's traffic lights: each tile's colour, the same as the KPI table's for that status
TILES = {
    "Röda nyckeltal (senaste månad)": ("röd", 1),
    "Gula nyckeltal (senaste månad)": ("gul", 2),
    "Gröna nyckeltal (senaste månad)": ("grön", 3),
}
KPI_TABLE = "Nyckeltal mot mål (trafikljus, senaste månad)"
DEVIATIONS = "Avvikelser: röda och gula nyckeltal (senaste månad)"
FORECAST = "Helårsprognos mot årsbudget: de fem största avvikelserna (mnkr, senaste månad)"
WHOLE_FORVALTNING = [{"col": "enhet", "op": "IN", "val": ["Totalt"]}]  # the Enhet filter's default


def _colour(rules: list[dict], column: str, value: float) -> str | None:
    """The colour Superset's conditional formatting gives ``value`` in ``column`` (the last rule that
    matches wins, as in Superset; a Big Number of 0 is never coloured)."""
    tests = {
        ">": lambda r: value > r["targetValue"],
        ">=": lambda r: value >= r["targetValue"],
        "<": lambda r: value < r["targetValue"],
        "<=": lambda r: value <= r["targetValue"],
        "==": lambda r: value == r["targetValue"],
        "< x <": lambda r: r["targetValueLeft"] < value < r["targetValueRight"],
    }
    matching = [r["colorScheme"] for r in rules if r["column"] == column and tests[r["operator"]](r)]
    return matching[-1] if matching else None


def test_the_traffic_light_tiles_are_red_yellow_and_green_like_the_kpi_table(dashboards_platform):
    admin = login(dashboards_platform, "admin")
    charts = admin.charts()
    table_rules = admin.chart(charts[KPI_TABLE])["form_data"]["conditional_formatting"]
    colours = {}
    for name, (status, points) in TILES.items():
        form_data = admin.chart(charts[name])["form_data"]
        label = form_data["metric"]["label"]
        [row] = admin.chart_data(charts[name])
        assert row[label] > 0, f"{name}: this run has {status} KPIs to colour"
        colours[status] = _colour(form_data["conditional_formatting"], label, row[label])
        assert colours[status] == _colour(table_rules, "status_poang", points), name
        assert _colour(form_data["conditional_formatting"], label, 0) is None, "nothing to flag: grey"
        assert form_data["subtitle"].lower().startswith(status), "the tile says what its colour means"
    assert colours == {"röd": "#E04355", "gul": "#FCC700", "grön": "#5AC189"}


UNITS = r"(mnkr|tkr|%|dagar|st|meritpoäng|betyg)"
SWEDISH_NUMBER = re.compile(rf"[-−]?\d{{1,3}}( \d{{3}})*(,\d)? {UNITS}")


def test_every_kpi_value_is_shown_with_its_unit_in_swedish_format(dashboards_platform):
    admin = login(dashboards_platform, "admin")
    charts = admin.charts()
    rows = admin.chart_data(charts[KPI_TABLE])
    units = set()
    for row in rows:
        for column in ("utfall", "mal", "avvikelse", "prognos"):
            assert row[column] is not None, f"{row['title']}: {column} is empty, not a dash"
            if row[column] != "–":
                assert SWEDISH_NUMBER.fullmatch(row[column]), f"{row['title']}: {column} {row[column]!r}"
                units.add(row[column].rsplit(" ", 1)[1])
        if row["title"].startswith("Nettokostnad") and row["utfall"]:
            assert row["utfall"].endswith("kr"), row
    assert {"mnkr", "tkr", "%", "dagar"} <= units
    assert not any(isinstance(v, float) for row in rows for k, v in row.items() if k != "month")


def test_the_forecast_names_the_largest_deviations_in_mnkr_and_the_rest_together(dashboards_platform):
    admin = login(dashboards_platform, "admin")
    chart_id = admin.charts()[FORECAST]
    rows = admin.filtered_data(chart_id, WHOLE_FORVALTNING)
    values = [next(v for k, v in r.items() if k != "prognos_serie") for r in rows]
    assert 1 < len(rows) <= 6 and all(abs(v) < 1000 for v in values), "mnkr, not kronor"
    assert values == sorted(values, reverse=True), "largest first"
    unfiltered = [r["prognos_serie"] for r in admin.chart_data(chart_id)]  # förvaltningar and enheter
    assert "Övriga enheter" in unfiltered, "enheter beyond the five largest go together"
    assert len(unfiltered) <= 2 * 6


@pytest.mark.parametrize("forvaltning", MANAGERS)
def test_the_deviation_list_counts_what_the_tiles_count_under_the_same_filters(
    dashboards_platform, forvaltning
):
    """The issue: the Social manager's tiles said gula 0 while the list beside them held a yellow row."""
    manager = login(dashboards_platform, forvaltning)
    charts = manager.charts()
    listed = [r["status"] for r in manager.filtered_data(charts[DEVIATIONS], WHOLE_FORVALTNING)]
    assert listed, f"{forvaltning} has deviations to compare"
    for name, (status, _) in TILES.items():
        [tile] = manager.filtered_data(charts[name], WHOLE_FORVALTNING)
        if status != "grön":  # the list holds the red and yellow ones
            assert next(iter(tile.values())) == listed.count(status), f"{name} against the list"
    dashboard = manager.request("GET", "/api/v1/dashboard/chefsoversikt").json()["result"]
    kpi_charts = {
        c["id"] for c in manager.list("chart") if c["slice_name"] in {*TILES, KPI_TABLE, DEVIATIONS}
    }
    for native in json.loads(dashboard["json_metadata"])["native_filter_configuration"]:
        assert kpi_charts <= set(native["chartsInScope"]), f"filter {native['name']} misses a KPI chart"
        assert kpi_charts.isdisjoint(native["scope"]["excluded"]), native["name"]


PERSONNEL = "Personal: nyckeltal mot mål (senaste månad)"
SICK_LEAVE = "Långtidssjukfrånvaro (dag 15–) per månad, % av schemalagd tid"


@pytest.mark.parametrize("who", ["admin", *MANAGERS])
def test_the_personnel_panel_shows_hr_kpis_against_target_within_what_the_user_may_see(
    dashboards_platform, who
):
    from synthetic.personnel import TINY

    user = login(dashboards_platform, who)
    charts = user.charts()
    rows = user.chart_data(charts[PERSONNEL])
    assert rows, f"{who}: the personnel panel has rows"
    assert {r["status"] for r in rows} <= {"grön", "gul", "röd"}
    assert all(SWEDISH_NUMBER.fullmatch(r["utfall"]) for r in rows), rows[:3]
    organisations = {r["organisation"] for r in rows}
    assert TINY[1] not in organisations, "an enhet of four employees is never shown"
    if who != "admin":
        assert organisations <= _own_organisations(dashboards_platform, who) | {"Kommunen"}, organisations
    assert user.filtered_data(charts[SICK_LEAVE], WHOLE_FORVALTNING), f"{who}: sick leave per month"


def _dashboard_charts(user: Superset) -> dict[str, list[dict]]:
    """Every dashboard this user may list, with its charts."""
    return {
        d["dashboard_title"]: user.request("GET", f"/api/v1/dashboard/{d['id']}/charts").json()["result"]
        for d in user.list("dashboard")
    }


def test_no_role_meets_an_error_or_an_empty_panel_on_any_dashboard_it_can_open(dashboards_platform):
    """Admin and every förvaltning's manager: every chart of every dashboard they can list answers with
    rows; a manager without data for a panel gets a Swedish line saying so, never an error."""
    creds = dashboards_platform["credentials"]
    for who in ["admin", *creds["managers"]]:
        user = login(dashboards_platform, who)
        dashboards = _dashboard_charts(user)
        assert set(dashboards) == (DASHBOARDS if who == "admin" else MANAGER_DASHBOARDS), who
        for title, charts in dashboards.items():
            for chart in charts:
                try:
                    rows = user.chart_data(chart["id"])
                except SupersetError as e:
                    pytest.fail(f"{who}, {title}, {chart['slice_name']}: {e}")
                assert rows, f"{who}, {title}, {chart['slice_name']}: no rows and no line saying why"
    social = login(dashboards_platform, "Socialförvaltningen")
    initiatives = social.chart_data(social.charts()["Initiativ: nuläge → mål → utfall"])
    assert [r["title"] for r in initiatives] == ["Inga initiativ för Socialförvaltningen"]


TECHNICAL = {"q_value", "p_value", "ci_low", "ci_high", "method", "data_version", "detail", "measure"}
HOW_SURE = re.compile(r"(mycket säkert|säkert|osäkert|inte prövat)\b.*")


@pytest.mark.parametrize("forvaltning", MANAGERS)
def test_a_manager_reads_findings_in_plain_swedish_without_statistics(dashboards_platform, forvaltning):
    manager = login(dashboards_platform, forvaltning)
    findings = []
    for charts in _dashboard_charts(manager).values():
        for chart in charts:
            rows = manager.chart_data(chart["id"])
            assert not TECHNICAL & {k for row in rows for k in row}, f"{chart['slice_name']} shows statistics"
            findings += [r for r in rows if "hur_sakert" in r]
    assert findings, "Chefsöversikt holds the analysis' findings in plain Swedish"
    for row in findings:
        assert row["hur_sakert"] is None or HOW_SURE.fullmatch(row["hur_sakert"]), row
        assert not re.search(r"\de-\d|[pq] ?[<=]", f"{row['vad']} {row['hur_stort']}"), row
    admin = login(dashboards_platform, "admin")
    detail = admin.chart_data(admin.charts()["Avvikelser som analysen hittat (nyckeltal och ärendeflöde)"])
    assert {"q_value", "data_version"} <= set(detail[0]), "the discovery unit's view keeps the statistics"


TESTED_PAIRS = "Prövade samband"
FINDINGS = "Publicerade fynd: samband, ordning i tid och segment"
# issue 16 point 5: what a pair that gave no finding came to, as the statuses begin
NOT_FOUND = ("testat, inget samband", "för lite data", "delas inte")


def test_dataupptackt_tells_no_link_from_too_little_data_and_not_shared_and_names_each_measure(
    dashboards_platform,
):
    """Every tested hypothesis with its status, reported ones first, no group sizes; each finding's
    effect with its own measure (merit points are a difference in means, not an odds ratio)."""
    admin = login(dashboards_platform, "admin")
    charts = admin.charts()
    rows = admin.chart_data(charts[TESTED_PAIRS])
    current = dashboards_platform["paths"].warehouse / "serving" / "current.duckdb"
    with duckdb.connect(str(current), read_only=True) as con:
        statuses = sorted(s for (s,) in con.execute("SELECT status FROM discovery_tested").fetchall())
        measures = {m for (m,) in con.execute("SELECT DISTINCT measure FROM discovery_findings").fetchall()}
    assert sorted(r["status"] for r in rows) == statuses, "every tested hypothesis, as published"
    for kind in NOT_FOUND:
        assert any(s.startswith(kind) for s in statuses), f"this run has pairs that came to '{kind}'"
    assert not {k for row in rows for k in row} & {"n_a", "n_b", "n_both", "n_population"}, "no group sizes"
    reported = [r["status"] == "rapporterat" for r in rows]
    assert reported == sorted(reported, reverse=True) and reported[0], "reported findings first"
    assert {r["fordrojning"] for r in rows} >= {"samma kvartal", "1", "2"}

    effects = [r["effekt_med_matt"] for r in admin.chart_data(charts[FINDINGS])]
    named = {next((m for m in measures if e.endswith(f" {m}")), None) for e in effects}
    assert None not in named and len(named - {"oddskvot (Mantel–Haenszel)"}) > 0, named


def test_credentials_are_generated_and_kept_private_outside_the_repository(dashboards_platform):
    home = dashboards_platform["home"]
    assert home.credentials.stat().st_mode & 0o077 == 0
    assert (home.secrets / "secret_key").stat().st_mode & 0o077 == 0
    assert not home.credentials.is_relative_to(REPO_ROOT)
    assert not SupersetHome.from_env({}).credentials.is_relative_to(REPO_ROOT), "the default too"
    creds = dashboards_platform["credentials"]
    passwords = [creds["admin"]["password"], *(m["password"] for m in creds["managers"].values())]
    assert len(set(passwords)) == len(passwords) and min(map(len, passwords)) >= 20
    with pytest.raises(SupersetError):
        Superset(dashboards_platform["url"], "admin", "admin")


def _rows(results: list[dict]) -> list[list[str]]:
    """Each result's rows, in an order of their own (a query without ORDER BY may return them in any), sums
    to 10 significant digits (DuckDB adds a column's doubles in whatever order its threads finish)."""

    def canonical(row: dict) -> str:
        rounded = {k: float(f"{v:.10g}") if isinstance(v, float) else v for k, v in row.items()}
        return json.dumps(rounded, sort_keys=True, default=str)

    return [sorted(canonical(row) for row in r["data"]) for r in results]


SCOPED_CACHE_PROBE = """
import os, sys
from dashboards.cache import SnapshotCache
serving = os.environ["KNUTPUNKT_HOME"] + "/warehouse/serving"
os.makedirs(serving)
link = serving + "/current.duckdb"
os.symlink("first.db", link)
cache = SnapshotCache(sys.argv[1], threshold=100)
cache.set("chart-7", ["rows of the first snapshot"])
hit = cache.get("chart-7")
os.symlink("second.db", link + ".new")
os.replace(link + ".new", link)  # as a publish moves the link
after_publish = cache.get("chart-7")
cache.set("chart-7", ["rows of the second snapshot"])
print(hit, after_publish, cache.get("chart-7"), cache.has("chart-7"), cache.delete("chart-7"), cache.get("chart-7"))
"""


def test_the_chart_cache_is_scoped_to_the_snapshot_so_a_publish_is_never_served_stale(tmp_path):
    """The cache class as Superset loads it, in Superset's environment, on a real link and cache folder."""
    env = os.environ | {"KNUTPUNKT_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [str(SUPERSET_VENV / "bin" / "python"), "-c", SCOPED_CACHE_PROBE, str(tmp_path / "cache")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[0] == (
        "['rows of the first snapshot'] None ['rows of the second snapshot'] True True None"
    )


def test_a_repeat_view_comes_from_the_cache_and_never_from_another_user_s(dashboards_platform):
    """Chart results are cached (``dashboards/cache.py``): the admin's second view of a chart is a cache
    hit with the same rows, and a manager viewing the same chart right after gets their own rows, not the
    admin's cached ones (Superset's key holds the user's row-level security), as a forced query gives them."""
    admin = login(dashboards_platform, "admin")
    manager = login(dashboards_platform, MANAGERS[0])
    own = _own_organisations(dashboards_platform, MANAGERS[0])
    charts = set(manager.charts().values())
    assert len(charts) > 10
    for chart_id in charts:
        first = admin.chart_results(chart_id, force=False)
        again = admin.chart_results(chart_id, force=False)
        assert all(r["is_cached"] for r in again) and _rows(again) == _rows(first), chart_id
        seen = manager.chart_results(chart_id, force=False)
        assert _rows(seen) == _rows(manager.chart_results(chart_id, force=True)), chart_id
        shown = {
            row[c] for r in seen for row in r["data"] for c in ("forvaltning", "organisation") if c in row
        }
        assert shown <= own, f"chart {chart_id} shows {shown - own} to {MANAGERS[0]}'s manager"


@pytest.mark.parametrize("forvaltning", MANAGERS)
def test_a_manager_sees_only_their_forvaltning_in_every_chart(dashboards_platform, forvaltning):
    manager = login(dashboards_platform, forvaltning)
    own = _own_organisations(dashboards_platform, forvaltning)
    checked = 0
    for name, chart_id in manager.charts().items():
        for row in manager.chart_data(chart_id):
            for column in ("forvaltning", "organisation"):
                if column in row:
                    assert row[column] in own, f"'{name}' shows {row[column]} to {forvaltning}'s manager"
                    checked += 1
    assert checked > 20, "the manager's charts had rows to check"


def test_without_rls_the_same_charts_would_show_other_forvaltningar(dashboards_platform):
    """The admin (no RLS) sees other förvaltningar in those charts: the filter, not the data, restricts."""
    admin = login(dashboards_platform, "admin")
    own = _own_organisations(dashboards_platform, MANAGERS[0])
    seen = {
        row.get("forvaltning")
        for chart_id in admin.charts().values()
        for row in admin.chart_data(chart_id)
        if "forvaltning" in row
    }
    assert seen - own - {"Totalt"}


def _csv_forvaltningar(text: str) -> set[str]:
    rows = list(csv.DictReader(io.StringIO(text)))
    column = next(c for c in rows[0] if c in ("forvaltning", "Förvaltning"))
    return {r[column] for r in rows}


def test_a_manager_s_csv_export_holds_only_their_forvaltning(dashboards_platform):
    exported = {}
    for forvaltning in MANAGERS:
        manager = login(dashboards_platform, forvaltning)
        charts = manager.charts()
        exported[forvaltning] = set()
        for name in (
            "Nyckeltal mot mål (trafikljus, senaste månad)",
            "Ledtid per steg: median dagar per tertial",
        ):
            values = _csv_forvaltningar(manager.chart_csv(charts[name]))
            assert values == {forvaltning}, f"{name}: {values}"
            exported[forvaltning] |= values
    assert exported[MANAGERS[0]].isdisjoint(exported[MANAGERS[1]])


def test_managers_cannot_open_the_cross_unit_discovery_data(dashboards_platform):
    """Discovery aggregates have no förvaltning: no RLS filter could restrict them, so no access."""
    admin_charts = login(dashboards_platform, "admin").charts()
    manager = login(dashboards_platform, MANAGERS[0])
    assert not any("kvartal, hela kommunen" in name for name in manager.charts())
    with pytest.raises(SupersetError, match="HTTP 40"):
        manager.chart_data(admin_charts["Invånare med insatser per kvartal, hela kommunen"])


def test_every_dataset_a_manager_may_read_has_their_rls_filter(dashboards_platform):
    admin = login(dashboards_platform, "admin")
    with_column = {
        d["table_name"]
        for d in _bundle("datasets").values()
        if "forvaltning" in {c["column_name"] for c in d["columns"]}
    }
    filters = {f["name"]: f for f in admin.list("rowlevelsecurity")}
    for forvaltning in MANAGERS:
        rls = filters[f"RLS {forvaltning}"]
        assert [r["name"] for r in rls["roles"]] == [role_name(forvaltning)]
        assert {t["table_name"] for t in rls["tables"]} == with_column
        assert rls["clause"] == f"forvaltning = '{forvaltning}'"


def test_sql_lab_cannot_read_files_or_write_through_the_snapshot_connection(dashboards_platform):
    admin = login(dashboards_platform, "admin")
    assert admin.sql("Knutpunkt", "SELECT count(*) AS n FROM kpi_value")[0]["n"] > 0
    for sql in (
        "SELECT * FROM read_csv('/etc/passwd')",
        "SET enable_external_access = true",
        "CREATE TABLE x AS SELECT 1",
    ):
        with pytest.raises(SupersetError):
            admin.sql("Knutpunkt", sql)


def test_a_publish_during_dashboard_queries_fails_neither_and_the_next_query_sees_it(
    dashboards_platform, monkeypatch
):
    from pipelines.defs.anchors import platform_instance
    from pipelines.defs.publish import serving_snapshot
    from pipelines.defs.resources import Platform

    # A publish names its snapshot by the sharing state, which it reads from the verified audit log,
    # whose heads are anchored in the platform's Dagster instance. (On another instance the log does
    # not verify, the state differs, and the publish removes the snapshot the dashboards are reading.)
    monkeypatch.setenv("DAGSTER_HOME", str(dashboards_platform["paths"].dagster_home))
    monkeypatch.setenv("KNUTPUNKT_KEY_FILE", dashboards_platform["env"]["KNUTPUNKT_KEY_FILE"])

    admin = login(dashboards_platform, "admin")
    before = admin.sql("Knutpunkt", "SELECT published_at FROM _snapshot")
    pinned = (dashboards_platform["paths"].warehouse / "serving" / "current.duckdb").resolve()
    errors: list[Exception] = []
    answered: list[int] = []
    stop = threading.Event()

    def dashboard(user: Superset) -> None:
        charts = list(user.charts().values())
        while not stop.is_set():
            for chart_id in charts:
                try:
                    user.chart_data(chart_id)
                    answered.append(chart_id)
                except Exception as e:  # noqa: BLE001 - any failure of a dashboard query is the finding
                    errors.append(e)

    users = [admin, login(dashboards_platform, MANAGERS[0])]
    readers = [threading.Thread(target=dashboard, args=(u,)) for u in users]
    for r in readers:
        r.start()
    try:
        with platform_instance(dashboards_platform["paths"]) as instance:  # where the audit heads are
            result = dg.materialize(
                [serving_snapshot()],
                resources={"platform": Platform(home=str(dashboards_platform["paths"].home))},
                instance=instance,
            )
    finally:
        stop.set()
        for r in readers:
            r.join()
    assert result.success and errors == [] and answered
    assert pinned.exists(), "the sharing state did not change: the snapshot being read stays for its readers"
    assert admin.sql("Knutpunkt", "SELECT published_at FROM _snapshot") != before
