"""Superset on the serving snapshot: the bundle deployed by one command, row-level security per
förvaltning, a locked-down DuckDB connection, and publishing while dashboards query.

A real Superset server (gunicorn, from .venv-superset) on the discovery tests' small main-job run,
shared with test_dashboards_browser.py through the session fixture ``dashboards_platform``; everything goes through
Superset's REST API as its users would.
"""

import csv
import io
import subprocess
import sys
import threading

import dagster as dg
import duckdb
import pytest
import yaml

from dashboards.api import Superset, SupersetError
from dashboards.home import BUNDLE, REPO_ROOT, SupersetHome, role_name

MANAGERS = ("Socialförvaltningen", "Vård- och omsorgsförvaltningen")
DASHBOARDS = {"Chefsöversikt", "Ärendeflöde (Visuell styrning)", "Nyttorealisering", "Dataupptäckt"}


def _bundle(folder: str) -> dict[str, dict]:
    return {p.stem: yaml.safe_load(p.read_text()) for p in (BUNDLE / folder).rglob("*.yaml")}


def _login(platform: dict, who: str) -> Superset:
    creds = platform["credentials"]
    cred = creds["admin"] if who == "admin" else creds["managers"][who]
    return Superset(platform["url"], cred["username"], cred["password"])


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


def test_the_pipeline_environment_does_not_import_superset():
    script = (
        "import importlib.util, sys; import dashboards.api, dashboards.home, dashboards.server, pipelines.cli; "
        "assert 'superset' not in sys.modules and importlib.util.find_spec('superset') is None"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr


def test_one_command_deploys_four_dashboards_whose_charts_all_return_real_data(dashboards_platform):
    admin = _login(dashboards_platform, "admin")
    assert {d["dashboard_title"] for d in admin.list("dashboard")} == DASHBOARDS
    charts = admin.charts()
    assert set(charts) == {c["slice_name"] for c in _bundle("charts").values()}
    for name, chart_id in charts.items():
        assert admin.chart_data(chart_id), f"no rows in '{name}'"


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


@pytest.mark.parametrize("forvaltning", MANAGERS)
def test_a_manager_sees_only_their_forvaltning_in_every_chart(dashboards_platform, forvaltning):
    manager = _login(dashboards_platform, forvaltning)
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
    admin = _login(dashboards_platform, "admin")
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
        manager = _login(dashboards_platform, forvaltning)
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
    admin_charts = _login(dashboards_platform, "admin").charts()
    manager = _login(dashboards_platform, MANAGERS[0])
    assert not any("kvartal, hela kommunen" in name for name in manager.charts())
    with pytest.raises(SupersetError, match="HTTP 40"):
        manager.chart_data(admin_charts["Invånare med insatser per kvartal, hela kommunen"])


def test_every_dataset_a_manager_may_read_has_their_rls_filter(dashboards_platform):
    admin = _login(dashboards_platform, "admin")
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
    admin = _login(dashboards_platform, "admin")
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

    admin = _login(dashboards_platform, "admin")
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

    users = [admin, _login(dashboards_platform, MANAGERS[0])]
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
