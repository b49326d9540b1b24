"""The serving snapshot's file mechanics: immutable files, an atomic pointer, readers never in the way.

Real DuckDB files and real reader processes; the tables are small so each test takes well under a
second. What the snapshot holds (and its disclosure control) is tested end to end in test_marts.py.
"""

import hashlib
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.serving.snapshot import (
    STORAGE_VERSION,
    ServingPaths,
    current_snapshot,
    open_snapshot,
    write_snapshot,
)


def _tables(value: int) -> dict[str, pl.DataFrame]:
    return {"kpi_value": pl.DataFrame({"kpi_id": ["U90030"], "n_underlag": [value]})}


def _value(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT n_underlag FROM kpi_value").fetchall()[0][0]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def serving(tmp_path: Path) -> ServingPaths:
    return ServingPaths(tmp_path / "serving")


def test_each_publish_writes_a_new_file_and_never_touches_an_old_one(serving):
    first = write_snapshot(serving, _tables(10), {})
    digest = _digest(first)
    second = write_snapshot(serving, _tables(20), {})
    assert first != second and serving.listing() == [first, second]
    assert _digest(first) == digest and _value(first) == 10
    assert current_snapshot(serving) == second and _value(serving.current) == 20
    assert not list(serving.snapshots.glob(".*")), "no partial file is left behind"


def test_a_reader_keeps_its_snapshot_while_a_publish_repoints_current(serving):
    write_snapshot(serving, _tables(10), {})
    with open_snapshot(serving) as reader:
        write_snapshot(serving, _tables(20), {})
        assert reader.execute("SELECT n_underlag FROM kpi_value").fetchall() == [(10,)]
    with open_snapshot(serving) as reader:
        assert reader.execute("SELECT n_underlag FROM kpi_value").fetchall() == [(20,)]


def test_a_reader_in_another_process_never_blocks_a_publish(serving):
    write_snapshot(serving, _tables(10), {})
    script = textwrap.dedent(
        f"""
        import sys, time, duckdb
        con = duckdb.connect({str(serving.current)!r}, read_only=True)
        print(con.execute("SELECT n_underlag FROM kpi_value").fetchall()[0][0], flush=True)
        sys.stdin.readline()  # hold the file open until the test says so
        print(con.execute("SELECT n_underlag FROM kpi_value").fetchall()[0][0], flush=True)
        """
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert reader.stdout.readline().strip() == "10"
        for value in (20, 30):  # the reader holds its lock on the old file meanwhile
            write_snapshot(serving, _tables(value), {})
        assert _value(serving.current) == 30
        out, _ = reader.communicate("go\n", timeout=30)
        assert out.strip() == "10" and reader.returncode == 0
    finally:
        reader.kill()


def test_the_snapshot_is_in_a_format_superset_s_duckdb_1_5_opens(serving):
    path = write_snapshot(serving, _tables(10), {"kpi_value": "Nyckeltal"})
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{path}' AS s (READ_ONLY)")
        (tags,) = con.execute("SELECT tags FROM duckdb_databases() WHERE database_name = 's'").fetchall()[0]
        assert tags["storage_version"].startswith(STORAGE_VERSION)  # 'v1.4.0+', not 'v2.0.0'
        comment = con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'kpi_value'").fetchall()
        assert comment == [("Nyckeltal",)]


def test_old_snapshots_are_pruned_but_never_the_current_one(serving):
    written = []
    for value in range(6):
        written.append(write_snapshot(serving, _tables(value), {}, keep=3))
    assert serving.listing() == written[-3:]
    assert current_snapshot(serving) == written[-1]


def test_notebook_connections_cannot_read_files_through_sql(serving, tmp_path):
    write_snapshot(serving, _tables(10), {})
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    with open_snapshot(serving) as con, pytest.raises(duckdb.Error):
        con.execute(f"SELECT * FROM read_csv('{secret}')").fetchall()


def test_without_a_publish_there_is_nothing_to_open(serving):
    with pytest.raises(FileNotFoundError, match="publish"):
        current_snapshot(serving)


def test_a_publish_under_another_sharing_state_removes_every_older_snapshot(serving):
    """After a withdrawal the sharing fingerprint changes: older snapshots may hold withdrawn data."""
    before = [write_snapshot(serving, _tables(v), {}, sharing="a" * 16) for v in (10, 20)]
    assert serving.listing() == before
    after = write_snapshot(serving, _tables(30), {}, sharing="b" * 16)
    assert serving.listing() == [after] and _value(serving.current) == 30
    again = write_snapshot(serving, _tables(40), {}, sharing="b" * 16)
    assert serving.listing() == [after, again], "the same sharing state keeps its rollback points"


def test_no_snapshot_is_readable_by_other_users(serving):
    write_snapshot(serving, _tables(10), {})
    write_snapshot(serving, _tables(20), {})
    for path in [serving.root, serving.snapshots, *serving.listing()]:
        assert path.stat().st_mode & 0o007 == 0, f"{path}: {oct(path.stat().st_mode)}"
        assert path.stat().st_mode & 0o077 == 0 or path.stat().st_gid != 0, "group only the serving group"


def test_deploy_names_what_an_older_snapshot_lacks_for_the_dashboards(tmp_path):
    """A snapshot published before the dashboards read a view: deploy says which and how to get one,
    rather than Superset answering every chart on it with an error."""
    from dashboards.deploy import missing_tables
    from dashboards.home import SupersetHome
    from pipelines.serving.presentation import VIEWS

    home = SupersetHome(tmp_path / "home", tmp_path / "secrets")
    serving = ServingPaths(home.serving.parent)
    write_snapshot(serving, _tables(10), {})
    missing = missing_tables(home)
    assert {v.name for v in VIEWS} <= set(missing) and "kpi_value" not in missing
