"""What keeps a repeat chart view cheaper than opening the snapshot in DuckDB (issue #18 point 7).

On the shared Superset deployment (``dashboards_platform``), through the REST API as its users.
The figures themselves come from ``bench/dashboards.py``; these tests hold the mechanisms in place.
"""

import json
import os
import sqlite3
import subprocess
from collections.abc import Callable
from contextlib import closing

import requests

from dashboards.api import Superset
from dashboards.home import REPO_ROOT, SUPERSET_VENV
from dashboards.response_cache import HEADER
from tests.superset import login

STEPS = ("ChartDataRestApi.json_dumps", "_get_data_response")  # what Superset logs inside a chart view


def _in_superset_env(probe: str, *args: str) -> str:
    """What a probe prints when run by Superset's own Python with the repository's modules importable."""
    done = subprocess.run(
        [str(SUPERSET_VENV / "bin" / "python"), "-c", probe, *args],
        env=os.environ | {"PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _events(database: os.PathLike, action: str, chart_id: int | None = None) -> int:
    """Rows of Superset's event logger (its ``logs`` table) of one action, for one chart if given."""
    chart = f'%"pk": {chart_id},%' if chart_id is not None else "%"
    with closing(sqlite3.connect(database, timeout=30)) as con:
        query = "SELECT count(*) FROM logs WHERE action = ? AND coalesce(json, '') LIKE ?"
        return con.execute(query, [action, chart]).fetchone()[0]


def test_superset_commits_to_a_write_ahead_log_and_still_records_every_chart_view(dashboards_platform):
    """The metadata database is in WAL mode (``dashboards/metadata.py``), its side files belong to whoever
    owns the database (the service user when run as root, even after root opened it here), and the server
    still writes the audit row of every chart view (no view goes unrecorded to save the commit) but no
    rows for the steps inside it (``dashboards/metadata.py``'s event logger)."""
    admin = login(dashboards_platform, "admin")
    database = dashboards_platform["home"].root / "superset.db"
    chart_id = min(admin.charts().values())
    admin.chart_results(chart_id, force=False)
    with closing(sqlite3.connect(database, timeout=30)) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    before = _events(database, "ChartDataRestApi.data", chart_id)
    steps = [_events(database, step) for step in STEPS]
    for _ in range(3):
        assert all(r["is_cached"] for r in admin.chart_results(chart_id, force=False))
    assert _events(database, "ChartDataRestApi.data", chart_id) == before + 3
    assert [_events(database, step) for step in STEPS] == steps, "a step of a request got a row of its own"
    owner = database.stat().st_uid
    for side in ("-wal", "-shm"):
        path = database.with_name(database.name + side)
        assert not path.exists() or path.stat().st_uid == owner, f"{path.name} is not the server's to write"


ANCHORED_CONNECTION_PROBE = """
import os, sys, time, duckdb
from dashboards.snapshot_db import connector
folder = sys.argv[1]
for name in ("first", "second"):
    with duckdb.connect(f"{folder}/{name}.db") as con:
        con.execute("CREATE TABLE t AS SELECT ? AS snapshot", [name])
link = f"{folder}/current.duckdb"
os.symlink("first.db", link)
connect = connector(link, {"enable_external_access": False, "lock_configuration": True})
def read(con):
    return con.execute("SELECT snapshot FROM t").fetchone()[0]
before = connect()
os.symlink("second.db", link + ".new")
os.replace(link + ".new", link)  # as a publish moves the link
in_flight = read(before)
before.close()
time.sleep(2.5)  # no connection now: the watcher closes the process's database of first.db
fds = [os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")]
held = any(f.endswith("first.db") for f in fds)
after = connect()
refused = []
for sql in ("SELECT * FROM read_csv('/etc/passwd')", "SET enable_external_access = true",
            "CREATE TABLE u (x INT)", f"ATTACH '{folder}/first.db' AS old"):
    try:
        after.execute(sql)
    except duckdb.Error as error:
        refused.append(type(error).__name__)
print(in_flight, read(after), read(connect()), len(refused), held)
"""


def test_a_connection_opened_after_a_publish_reads_the_new_snapshot_and_stays_locked(tmp_path):
    """``dashboards/snapshot_db.py`` in Superset's environment on real files: a connection opened before
    a publish keeps reading its snapshot (a query in flight finishes), every one opened after reads the
    new one although the process keeps a database open, the process lets go of the old file without
    another connection (an idle worker holds no withdrawn snapshot), and each connection refuses files,
    settings, writes and attaching another file."""
    assert (
        _in_superset_env(ANCHORED_CONNECTION_PROBE, str(tmp_path)).split("\n")[0]
        == "first second second 4 False"
    )


ONCE_READ_DIALECT_PROBE = """
import duckdb, duckdb_engine
from dashboards import dialect
reserved = {k for (k,) in duckdb.sql("SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'").fetchall()}
dialect.install()
made = [duckdb_engine.Dialect() for _ in range(20)]
quoted = made[-1].identifier_preparer.quote
print(reserved <= made[0].identifier_preparer.reserved_words, dialect.reserved_words.cache_info().misses,
      quoted("qualify"), quoted("forvaltning"))
"""


def test_a_duckdb_dialect_is_made_without_asking_duckdb_for_its_keywords_again():
    """``dashboards/dialect.py`` in Superset's environment: twenty dialects read DuckDB's keyword list once
    between them, and still quote a word DuckDB reserves and PostgreSQL does not (QUALIFY) as
    duckdb-engine would, and leave an ordinary name bare."""
    assert _in_superset_env(ONCE_READ_DIALECT_PROBE).split() == ["True", "1", '"qualify"', "forvaltning"]


def test_charts_read_views_in_the_snapshot_and_only_a_ranking_dataset_is_virtual(dashboards_platform):
    """Superset parses a virtual dataset's SQL on every view, cached or not: the dashboards' datasets are
    tables and views of the snapshot (``pipelines/serving/presentation.py``), except the forecast's ranking,
    which must rank within what the reader may see."""
    admin = login(dashboards_platform, "admin")
    datasets = admin.request("GET", "/api/v1/dataset/?q=(page_size:100,columns:!(table_name,sql))").json()
    virtual = sorted(d["table_name"] for d in datasets["result"] if d["sql"])
    assert virtual == ["prognos_chef"]
    assert all(d["table_name"] for d in datasets["result"])


def _view(api: Superset, chart_id: int) -> requests.Response:
    """A plain repeat view of a chart's data, as a dashboard asks for it (not raised on an error status)."""
    return api.http.get(f"{api.url}/api/v1/chart/{chart_id}/data/?force=false", timeout=60)


def _until_answered_from_store(api: Superset, chart_id: int) -> requests.Response:
    """Views of a chart until one is answered from the response cache (Superset's cache fills, then ours)."""
    return _until_stored(lambda: _view(api, chart_id))


def _until_stored(view: Callable[[], requests.Response]) -> requests.Response:
    """A view repeated until it is answered from the response cache; at most four, all answered."""
    for _ in range(4):
        answer = view()
        assert answer.status_code == 200, answer.text[:300]
        if answer.headers.get(HEADER) == "hit":
            return answer
    raise AssertionError("no repeat view was answered from the response cache")


def _rows(response: requests.Response) -> list:
    return [r["data"] for r in response.json()["result"]]


def _readable(api: Superset, chart_ids: list[int]) -> list[int]:
    return [c for c in chart_ids if _view(api, c).status_code == 200]


def test_a_repeat_view_is_answered_from_the_stored_response_with_what_superset_answers(dashboards_platform):
    """``dashboards/response_cache.py``: the third plain view of a chart is served from the stored
    response, holds the rows Superset reads from the snapshot (``force=true``), and is audited like
    Superset's own; a forced view or another format always goes to Superset."""
    admin = login(dashboards_platform, "admin")
    database = dashboards_platform["home"].root / "superset.db"
    chart_id = max(admin.charts().values())
    hit = _until_answered_from_store(admin, chart_id)
    assert all(r["is_cached"] for r in hit.json()["result"])
    assert _rows(hit) == [r["data"] for r in admin.chart_results(chart_id, force=True)]
    before = _events(database, "ChartDataRestApi.data", chart_id)
    assert _view(admin, chart_id).headers.get(HEADER) == "hit"
    assert _events(database, "ChartDataRestApi.data", chart_id) == before + 1, "a cached view went unaudited"
    for query in ("force=true", "format=csv&force=false", "force=false&type=query"):
        other = admin.request("GET", f"/api/v1/chart/{chart_id}/data/?{query}")
        assert HEADER not in other.headers, f"?{query} was answered from the response cache"


TAKEN_AWAY = {  # what an admin takes from a manager's roles: every permission, or only reading the data
    "every permission": "1 = 1",
    "access to the datasets": "p.name IN ('datasource_access', 'schema_access', 'catalog_access', "
    "'database_access', 'all_datasource_access', 'all_database_access')",
}


def test_a_manager_whose_roles_lose_access_is_refused_a_view_they_had_cached(dashboards_platform):
    """The access checks run on every view, cached or not. With the manager's roles stripped of their
    permissions, or only of access to the datasets (as an admin would, in the metadata database; the
    roles and so the row-level-security clauses stay), the view they had cached a moment ago is refused;
    with the permissions back it is served from the store again."""
    name = sorted(dashboards_platform["credentials"]["managers"])[0]
    manager = login(dashboards_platform, name)
    chart_id = _readable(manager, sorted(login(dashboards_platform, "admin").charts().values()))[0]
    username = dashboards_platform["credentials"]["managers"][name]["username"]
    database = dashboards_platform["home"].root / "superset.db"
    for what, condition in TAKEN_AWAY.items():
        _until_answered_from_store(manager, chart_id)
        with closing(sqlite3.connect(database, timeout=30)) as con:
            granted = con.execute(
                f"""SELECT pvr.id, pvr.permission_view_id, pvr.role_id FROM ab_permission_view_role pvr
                    JOIN ab_user_role ur ON ur.role_id = pvr.role_id JOIN ab_user u ON u.id = ur.user_id
                    JOIN ab_permission_view pv ON pv.id = pvr.permission_view_id
                    JOIN ab_permission p ON p.id = pv.permission_id
                    WHERE u.username = ? AND {condition}""",
                [username],
            ).fetchall()
            assert granted, what
            with con:
                con.executemany(
                    "DELETE FROM ab_permission_view_role WHERE id = ?", [(g[0],) for g in granted]
                )
            try:
                refused = _view(manager, chart_id)
            finally:
                with con:
                    con.executemany("INSERT INTO ab_permission_view_role VALUES (?, ?, ?)", granted)
        assert refused.status_code in (403, 404) and HEADER not in refused.headers, (
            what,
            refused.status_code,
        )
        assert _view(manager, chart_id).headers.get(HEADER) == "hit", what


def test_two_managers_each_get_their_own_rows_from_the_response_cache(dashboards_platform):
    """Row-level security holds for stored responses: two förvaltningar's managers viewing the same chart
    are each served their own rows (those Superset reads for them from the snapshot), never the other's."""
    first, second = (
        login(dashboards_platform, n) for n in sorted(dashboards_platform["credentials"]["managers"])[:2]
    )
    both = _readable(second, _readable(first, sorted(login(dashboards_platform, "admin").charts().values())))
    fresh = {
        c: ([r["data"] for r in first.chart_results(c)], [r["data"] for r in second.chart_results(c)])
        for c in both
    }
    chart_id = next(c for c, (a, b) in fresh.items() if a != b and a and b)
    hits = _until_answered_from_store(first, chart_id), _until_answered_from_store(second, chart_id)
    assert (_rows(hits[0]), _rows(hits[1])) == fresh[chart_id]


def _ask(api: Superset, context: dict) -> requests.Response:
    """A query context posted as a dashboard in the browser posts it (not raised on an error status)."""
    return api.http.post(f"{api.url}/api/v1/chart/data", json=context, timeout=60)


def test_a_dashboards_repeat_query_is_answered_from_the_store_keyed_on_what_it_asks(dashboards_platform):
    """``POST /api/v1/chart/data``, what a dashboard in the browser sends: a repeated query context is
    served from the stored response with the rows Superset reads for it; another context (a row limit
    of one) is stored and served apart, and a forced one always goes to Superset."""
    admin = login(dashboards_platform, "admin")
    chart_id = max(admin.charts().values())
    saved = admin.chart(chart_id)["query_context"]
    one_row = json.loads(json.dumps(saved))
    for query in one_row["queries"]:
        query["row_limit"] = 1
    for context in (saved, one_row):
        context["force"] = False
        view = _until_stored(lambda context=context: _ask(admin, context))
        forced = _ask(admin, context | {"force": True})
        assert HEADER not in forced.headers and _rows(view) == _rows(forced)
    assert len(_rows(_ask(admin, one_row))[0]) == 1 < len(_rows(_ask(admin, saved))[0])
