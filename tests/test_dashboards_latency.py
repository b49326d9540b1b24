"""What keeps a repeat chart view cheaper than opening the snapshot in DuckDB (issue #18 point 7).

On the shared Superset deployment (``dashboards_platform``), through the REST API as its users.
The figures themselves come from ``bench/dashboards.py``; these tests hold the mechanisms in place.
"""

import os
import sqlite3
from contextlib import closing

from dashboards.api import Superset


def _admin(platform: dict) -> Superset:
    cred = platform["credentials"]["admin"]
    return Superset(platform["url"], cred["username"], cred["password"])


def _chart_events(database: os.PathLike, chart_id: int) -> int:
    """Superset's audit rows of chart-data requests for one chart (its event logger's ``logs`` table)."""
    with closing(sqlite3.connect(database, timeout=30)) as con:
        return con.execute(
            "SELECT count(*) FROM logs WHERE action = 'ChartDataRestApi.data' AND json LIKE ?",
            [f'%"pk": {chart_id},%'],
        ).fetchone()[0]


def test_superset_commits_to_a_write_ahead_log_and_still_records_every_chart_view(dashboards_platform):
    """The metadata database is in WAL mode (``dashboards/metadata.py``), its side files belong to whoever
    owns the database (the service user when run as root, even after root opened it here), and the server
    still writes the audit row of every chart view: no view goes unrecorded to save the commit."""
    admin = _admin(dashboards_platform)
    database = dashboards_platform["home"].root / "superset.db"
    chart_id = min(admin.charts().values())
    admin.chart_results(chart_id, force=False)
    with closing(sqlite3.connect(database, timeout=30)) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    before = _chart_events(database, chart_id)
    for _ in range(3):
        assert all(r["is_cached"] for r in admin.chart_results(chart_id, force=False))
    assert _chart_events(database, chart_id) == before + 3
    owner = database.stat().st_uid
    for side in ("-wal", "-shm"):
        path = database.with_name(database.name + side)
        assert not path.exists() or path.stat().st_uid == owner, f"{path.name} is not the server's to write"
