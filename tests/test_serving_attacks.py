"""Attacks on the serving side: through Superset's REST API as its admin and as a manager, and as the
operating-system user Superset runs as.

Every probe tries to reach raw data (landing files with personnummer, the pseudonym key file, unit
zones) from the serving side: a new database connection, an edited one, SQL Lab and chart-data
queries that read files, and the server's own file access. Runs on the shared ``dashboards_platform``
server (real Superset, real DuckDB). A refusal must be Knutpunkt's, not an accident (the unit zones'
storage format is one Superset's duckdb happens not to open), so connection probes check the reason.
"""

import contextlib
import json
import os
import pwd
import secrets
import subprocess
from pathlib import Path

import pytest

from dashboards.api import Superset, SupersetError
from tests.superset import login
from tests.test_dashboards import MANAGERS

REFUSED = "Only the Knutpunkt serving snapshot may be connected"
SQLITE_REFUSED = "cannot be used as a data source for security reasons"  # Superset's own guard
SERVICE_USER = "knutpunkt-serving"  # the system user Superset runs as when started by root


def _targets(platform: dict) -> dict[str, Path]:
    """Files the serving side must never read: a landing file, the key file, a unit zone, a vault."""
    home = platform["paths"]
    landing = sorted((home.landing / "folkbokforing").rglob("*.csv"))[0]  # personnummer, names, addresses
    return {
        "landing": landing,
        "key": Path(platform["env"]["KNUTPUNKT_KEY_FILE"]),
        "unit zone": home.warehouse / "units" / "socialtjanst.duckdb",
        "vault": home.warehouse / "vault" / "socialtjanst.duckdb",
        "cross-unit zone": home.warehouse / "cross_unit.duckdb",
    }


def _file_reads(platform: dict) -> dict[str, str]:
    """SQL that would read raw data if DuckDB's file access were on, or could be turned on."""
    t = _targets(platform)
    return {
        "read_csv landing": f"SELECT * FROM read_csv('{t['landing']}', all_varchar = true) LIMIT 5",
        "read_text key": f"SELECT content FROM read_text('{t['key']}')",
        "attach unit zone": f"ATTACH '{t['unit zone']}' AS z (READ_ONLY)",
        "set external access": "SET enable_external_access = true",
    }


# What a refusal by design says: DuckDB's file access off, its locked configuration, the read-only
# snapshot, the hooks, or Superset's permissions. Anything else (a storage-version mismatch) is luck.
BY_DESIGN = (
    "Permission Error",
    "configuration has been locked",
    "read-only mode",
    "does not allow for DDL/DML",
    "Custom SQL fields cannot contain sub-queries",
    REFUSED,
    "HTTP 403",
    "HTTP 401",
)


def _leaks(user: Superset, database: str, probes: dict[str, str]) -> list[str]:
    """The probes that ran, or failed for a reason other than a refusal by design."""
    leaked = []
    for name, sql in probes.items():
        try:
            user.sql(database, sql)
            leaked.append(f"{name}: ran")
        except SupersetError as e:
            if not any(m in str(e) for m in BY_DESIGN):
                leaked.append(f"{name}: refused by accident: {str(e)[:300]}")
    return leaked


def _database_id(user: Superset, name: str = "Knutpunkt") -> int:
    return next(d["id"] for d in user.list("database") if d["database_name"] == name)


def _create(user: Superset, name: str, uri: str) -> dict:
    body = {"database_name": name, "sqlalchemy_uri": uri, "expose_in_sqllab": True}
    return user.request("POST", "/api/v1/database/", json=body).json()


def _drop_probe_databases(admin: Superset) -> None:
    for d in admin.list("database"):
        if d["database_name"].startswith("probe"):
            admin.request("DELETE", f"/api/v1/database/{d['id']}")


@pytest.fixture
def admin(dashboards_platform):
    """The admin's session; afterwards the serving connection is put back and probe databases go."""
    user = login(dashboards_platform, "admin")
    db_id = _database_id(user)
    saved = user.request("GET", f"/api/v1/database/{db_id}/connection").json()["result"]
    yield user
    _drop_probe_databases(user)
    restore = {"sqlalchemy_uri": saved["sqlalchemy_uri"], "extra": saved["extra"]}
    user.request("PUT", f"/api/v1/database/{db_id}", json=restore)


def _uris(platform: dict) -> dict[str, str]:
    t = _targets(platform)
    serving = platform["paths"].warehouse / "serving"
    old = sorted((serving / "snapshots").glob("*.db"))[0]
    return {
        "duckdb in memory": "duckdb:///:memory:",
        "sqlite on a landing folder": f"sqlite:///{t['landing'].parent / 'probe.sqlite'}",
        "duckdb on a unit zone": f"duckdb:///{t['unit zone']}",
        "duckdb on the key file": f"duckdb:///{t['key']}",
        "duckdb on a snapshot file, not current": f"duckdb:///{old}",
        "duckdb on current with settings in the URI": (
            f"duckdb:///{serving / 'current.duckdb'}?enable_external_access=true"
        ),
    }


@pytest.mark.parametrize(
    "probe",
    [
        "duckdb in memory",
        "sqlite on a landing folder",
        "duckdb on a unit zone",
        "duckdb on the key file",
        "duckdb on a snapshot file, not current",
        "duckdb on current with settings in the URI",
    ],
)
def test_the_admin_cannot_create_a_connection_to_anything_but_the_serving_snapshot(
    dashboards_platform, admin, probe
):
    uri = _uris(dashboards_platform)[probe]
    with pytest.raises(SupersetError) as refused:
        _create(admin, "probe", uri)
    reason = str(refused.value)
    by_design = REFUSED in reason or (probe.startswith("sqlite") and SQLITE_REFUSED in reason)
    assert by_design, f"refused by accident, not by design: {reason}"
    assert not [d for d in admin.list("database") if d["database_name"] == "probe"]


def test_an_admin_s_new_in_memory_connection_cannot_read_files(dashboards_platform, admin):
    """Were a second connection ever created, it could still not read a file (the mutator)."""
    try:
        _create(admin, "probe-memory", "duckdb:///:memory:")
    except SupersetError:
        return  # refused outright: the probe above checks the reason
    leaked = _leaks(admin, "probe-memory", _file_reads(dashboards_platform))
    assert leaked == [], f"a new connection read files: {leaked}"


@pytest.mark.parametrize("forvaltning", MANAGERS[:1])
def test_a_manager_cannot_create_or_edit_a_connection(dashboards_platform, forvaltning):
    manager = login(dashboards_platform, forvaltning)
    with pytest.raises(SupersetError, match="HTTP 40[13]"):
        _create(manager, "probe-manager", "duckdb:///:memory:")
    db_id = _database_id(login(dashboards_platform, "admin"))
    with pytest.raises(SupersetError, match="HTTP 40[134]"):
        manager.request("PUT", f"/api/v1/database/{db_id}", json={"sqlalchemy_uri": "duckdb:///:memory:"})


def test_the_admin_cannot_point_the_serving_connection_elsewhere(dashboards_platform, admin):
    db_id = _database_id(admin)
    for uri in ("duckdb:///:memory:", _uris(dashboards_platform)["duckdb on a unit zone"]):
        with pytest.raises(SupersetError) as refused:
            admin.request("PUT", f"/api/v1/database/{db_id}", json={"sqlalchemy_uri": uri})
        assert REFUSED in str(refused.value)
    assert admin.sql("Knutpunkt", "SELECT count(*) AS n FROM kpi_value")[0]["n"] > 0


def _open_engine_params() -> str:
    """The serving connection's extra with DuckDB's file access turned on and its settings unlocked."""
    return json.dumps(
        {
            "engine_params": {
                "connect_args": {
                    "read_only": False,
                    "config": {"enable_external_access": True, "lock_configuration": False},
                }
            },
            "allows_virtual_table_explore": True,
        }
    )


def _chart_leaks(user: Superset, sql: str, db_id: int) -> list[str]:
    """Chart data over a virtual dataset whose SQL is ``sql``, and over an ad hoc SQL column reading it.

    [] if every attempt is refused by design (creating the dataset, running its query, or Superset's
    ban on sub-queries in ad hoc SQL); the dataset is removed afterwards.
    """
    leaks: list[str] = []
    body = {"database": db_id, "schema": "main", "table_name": f"probe_{secrets.token_hex(4)}", "sql": sql}
    try:  # Superset runs the SQL for the columns; refused, it answers a bare 500: no dataset, no chart
        dataset = user.request("POST", "/api/v1/dataset/", json=body).json()["id"]
    except SupersetError:
        dataset = None
    if dataset is not None:
        try:
            _chart_data(user, dataset, ["content"])
            leaks.append("chart data on a virtual dataset: ran")
        except SupersetError as e:
            if not any(m in str(e) for m in BY_DESIGN):
                leaks.append(f"chart data on a virtual dataset refused by accident: {str(e)[:300]}")
        finally:
            user.request("DELETE", f"/api/v1/dataset/{dataset}")
    own = next(d["id"] for d in user.list("dataset") if d["table_name"] == "case_step")
    column = {"label": "probe", "sqlExpression": f"({sql})", "expressionType": "SQL"}
    try:
        _chart_data(user, own, [column])
        leaks.append("chart data with an ad hoc SQL column: ran")
    except SupersetError as e:
        if not any(m in str(e) for m in BY_DESIGN):
            leaks.append(f"chart data with an ad hoc SQL column refused by accident: {str(e)[:300]}")
    return leaks


def _chart_data(user: Superset, dataset_id: int, columns: list) -> list[dict]:
    """``POST /api/v1/chart/data``: what a chart runs, here with the columns given."""
    query = {"columns": columns, "metrics": [], "row_limit": 1}
    body = {
        "datasource": {"id": dataset_id, "type": "table"},
        "queries": [query],
        "result_format": "json",
        "result_type": "full",
        "force": True,
    }
    return user.request("POST", "/api/v1/chart/data", json=body).json()["result"]


def test_turning_file_access_on_in_the_engine_params_changes_nothing(dashboards_platform, admin):
    """PUT engine params that open DuckDB up; SQL Lab and chart data still cannot read a file."""
    db_id = _database_id(admin)
    with contextlib.suppress(SupersetError):  # refusing the edit is as good as ignoring it
        admin.request("PUT", f"/api/v1/database/{db_id}", json={"extra": _open_engine_params()})
    leaked = _leaks(admin, "Knutpunkt", _file_reads(dashboards_platform))
    key = _targets(dashboards_platform)["key"]
    leaked += _chart_leaks(admin, f"SELECT content FROM read_text('{key}')", db_id)
    leaked += _leaks(admin, "Knutpunkt", {"create table": "CREATE TABLE probe AS SELECT 1"})
    assert leaked == [], f"read files after the edit: {leaked}"


def test_sql_lab_and_chart_data_cannot_read_files_on_the_serving_connection(dashboards_platform, admin):
    assert _leaks(admin, "Knutpunkt", _file_reads(dashboards_platform)) == []
    manager = login(dashboards_platform, MANAGERS[0])
    with pytest.raises(SupersetError, match="HTTP 40"):
        manager.sql("Knutpunkt", _file_reads(dashboards_platform)["read_csv landing"])
    key = _targets(dashboards_platform)["key"]
    for user in (admin, manager):
        assert _chart_leaks(user, f"SELECT content FROM read_text('{key}')", _database_id(admin)) == []


# --- The layer under the hooks: the operating-system user Superset runs as ---------------------------

root_only = pytest.mark.skipif(
    os.geteuid() != 0, reason="a separate service user needs root; as another user the hooks alone hold"
)


def _server_uids(platform: dict) -> set[int]:
    """The real uids of the gunicorn master and its workers (the master's process group)."""
    uids = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.getpgid(int(proc.name)) != platform["process"].pid:
                continue
            status = (proc / "status").read_text()
        except (OSError, ProcessLookupError):
            continue
        uid = next(line for line in status.splitlines() if line.startswith("Uid:"))
        uids.add(int(uid.split()[1]))
    return uids


@root_only
def test_superset_runs_as_the_service_user(dashboards_platform):
    service = pwd.getpwnam(SERVICE_USER).pw_uid
    assert _server_uids(dashboards_platform) == {service}


@root_only
def test_the_service_user_reads_the_serving_snapshot_and_no_raw_data(dashboards_platform):
    entry = pwd.getpwnam(SERVICE_USER)
    current = dashboards_platform["paths"].warehouse / "serving" / "current.duckdb"

    def readable(path: Path) -> bool:
        """``test -r`` as the service user: the kernel's own access check for that user."""
        assert path.exists(), path
        done = subprocess.run(
            ["test", "-r", str(path)], user=entry.pw_uid, group=entry.pw_gid,
            extra_groups=[entry.pw_gid], cwd="/",
        )  # fmt: skip
        return done.returncode == 0

    assert readable(current), "the service user must read the serving snapshot"
    leaked = [name for name, path in _targets(dashboards_platform).items() if readable(path)]
    assert leaked == [], f"the service user can read {leaked}"


# --- Withdrawal reaches every snapshot ---------------------------------------------------------------

AID = "socialtjanst.ekonomiskt_bistand"
AID_MARKS = ("economic_aid", "ekonomiskt_bistand", "ekonomiskt bistånd")
# Socialtjänst's own reporting (case types, the KPI read from its own zone) names aid too, and is not
# shared across units: only cross-unit tables (discovery_*) may not mention it after a withdrawal.
CROSS_UNIT_TABLES = "discovery"
# What discovery tested may name a withdrawn dataset in one way only: as not shared, with no figure.
NOT_SHARED = {"discovery_tested": "status = 'delas inte' AND min_detectable IS NULL"}


def _aid_figures(path: Path) -> list[str]:
    """Where a DuckDB file holds economic-aid figures: non-NULL aid columns, or rows that name aid."""
    import duckdb

    found = []
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.execute(
            "SELECT table_name, column_name, data_type FROM duckdb_columns() WHERE NOT internal"
        ).fetchall()
        for table, column, dtype in columns:
            if any(m in column for m in AID_MARKS):
                n = con.execute(f'SELECT count("{column}") FROM "{table}"').fetchall()[0][0]
                if n:
                    found.append(f"{path.name}: {table}.{column} ({n} values)")
            elif dtype == "VARCHAR" and table.startswith(CROSS_UNIT_TABLES):
                like = " OR ".join(f"lower(\"{column}\") LIKE '%{m}%'" for m in AID_MARKS)
                allowed = f" AND NOT ({NOT_SHARED[table]})" if table in NOT_SHARED else ""
                n = con.execute(f'SELECT count(*) FROM "{table}" WHERE ({like}){allowed}').fetchall()[0][0]
                if n:
                    found.append(f"{path.name}: {table}.{column} names aid in {n} rows")
    return found


def _withdrawn_anywhere(serving: Path) -> list[str]:
    """Every file under the serving folder: a DuckDB file is queried, any other file searched as bytes."""
    found = []
    for path in sorted(p for p in serving.rglob("*") if p.is_file() and not p.is_symlink()):
        if path.read_bytes()[8:12] == b"DUCK":
            found += _aid_figures(path)
        elif any(m.encode() in path.read_bytes().lower() for m in AID_MARKS[:2]):
            found.append(f"{path.name} names aid")
    return found


@pytest.mark.long
def test_a_withdrawal_leaves_no_figures_of_the_dataset_in_any_snapshot(
    discovery_platform, tmp_path, monkeypatch
):
    """Revoke economic aid, run what the steward sensor requests (relink, rebuild, publish), then
    search every file under the serving folder; every snapshot is private (no access for others)."""
    import shutil

    import dagster as dg

    from pipelines.definitions import defs
    from pipelines.defs.anchors import platform_anchors, platform_instance
    from pipelines.defs.cross_unit import link_key
    from pipelines.defs.publish import downstream, serving_snapshot
    from pipelines.defs.resources import Platform
    from pipelines.settings import Paths
    from pipelines.stewardship import approvals, signing
    from pipelines.stewardship.contracts import load_contracts

    source = discovery_platform["paths"].home.parent
    shutil.copytree(source / "home", tmp_path / "home", symlinks=True)
    monkeypatch.setenv("KNUTPUNKT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KNUTPUNKT_KEY_FILE", str(source / "secrets" / "pseudonym.key"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    paths = Paths.from_env()
    serving = paths.warehouse / "serving"
    with platform_instance(
        paths
    ) as instance:  # the sharing state as verified: only the revocation changes it
        publish = dg.materialize([serving_snapshot()], resources={"platform": Platform()}, instance=instance)
    assert publish.success
    assert _withdrawn_anywhere(serving), "the test must see aid figures in the snapshots before"

    signing.create_key("Anna Berg, enhetschef")  # a revocation is signed by the steward who makes it
    with platform_anchors(paths) as anchors:
        approvals.revoke(
            load_contracts()[AID], "Anna Berg, enhetschef", "purpose ended", paths, anchors=anchors
        )
    run = (
        defs()
        .resolve_implicit_global_asset_job_def()
        .execute_in_process(  # the instance holding the heads
            instance=dg.DagsterInstance.get(), asset_selection=[link_key("socialtjanst"), *downstream()]
        )
    )
    assert run.success
    assert _withdrawn_anywhere(serving) == []
    for path in [serving, *serving.rglob("*")]:
        if not path.is_symlink():
            assert path.stat().st_mode & 0o007 == 0, f"{path} is open to other users"
