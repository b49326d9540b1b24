"""Chaos: a load, a link or a publish killed by PID at a random moment, then run again.

After every round: no run is left STARTED and no pool slot is held, every delivery reconciles,
nothing held is shared, and the platform's tables hold what an uninterrupted run left. The rounds
are seeded by the day (``KNUTPUNKT_CHAOS_SEED`` overrides it), so each day's runs kill at other
moments than yesterday's; a failure names the seed and the round to replay it.
"""

import multiprocessing
import os
import random
import signal
import time
from datetime import date

import dagster as dg
import duckdb
import pytest

from pipelines.defs.units import deliveries
from pipelines.runs import in_this_process, release_dead_runs, slot_holders
from tests.conftest import main_job_env, run_main_job
from warehouse.layout import Warehouse

pytestmark = pytest.mark.platform  # runs the main job's stages, many times over

SEED = int(os.environ.get("KNUTPUNKT_CHAOS_SEED", date.today().strftime("%Y%m%d")))
ROUNDS = ["load"] * 12 + ["link"] * 5 + ["publish"] * 3
UNITS = ("socialtjanst", "skola", "kontaktcenter")


def _stage(name: str, unit: str | None = None) -> None:
    """Run one stage to its end in this process, as the main job runs it."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG as END
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_START_TAG as START

    from pipelines.definitions import LINK_JOB, defs
    from pipelines.defs.publish import SNAPSHOT_KEY

    instance = dg.DagsterInstance.get()
    if name == "load":
        ordered = instance.get_dynamic_partitions(deliveries(unit).name)
        job, kwargs = (
            defs().resolve_job_def(f"ingest_{unit}"),
            {"tags": {START: ordered[0], END: ordered[-1]}},
        )
    elif name == "link":
        job, kwargs = defs().resolve_job_def(LINK_JOB.name), {"tags": {}}
    else:
        job = defs().resolve_implicit_global_asset_job_def()
        kwargs = {"tags": {}, "asset_selection": [SNAPSHOT_KEY]}
    run_id, here = in_this_process()  # as the main job runs it
    kwargs["tags"] |= here
    result = job.execute_in_process(instance=instance, run_id=run_id, raise_on_error=False, **kwargs)
    assert result.success, name


def _state(wh: Warehouse) -> dict[str, object]:
    """What an uninterrupted run leaves: every table's rows (counts), held deliveries, serving tables."""
    state: dict[str, object] = {}
    files = [p for p in wh.files() if p.exists()]
    for path in files:
        with duckdb.connect(str(path), read_only=True) as con:
            for schema, table in con.execute(
                "SELECT schema_name, table_name FROM duckdb_tables()"
            ).fetchall():
                if table in ("deliveries", "_snapshot"):  # a load log and a publish time: they grow by design
                    continue
                state[f"{path.name}:{schema}.{table}"] = con.execute(
                    f'SELECT count(*) FROM "{schema}"."{table}"'
                ).fetchone()[0]
            if path.parent.name == "units":
                state[f"{path.name}:held"] = con.execute(
                    "SELECT _delivery, checks FROM held_deliveries ORDER BY 1"
                ).fetchall()
    return state


def _invariants(wh: Warehouse, instance: dg.DagsterInstance, where: str) -> None:
    unfinished = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    assert not unfinished, f"{where}: runs left STARTED"
    for pool in [f"duckdb_{u}" for u in UNITS] + ["duckdb_cross_unit"]:
        assert slot_holders(instance, pool) == [], f"{where}: {pool} still held"
    for unit in UNITS:
        with duckdb.connect(str(wh.unit_zone(unit)), read_only=True) as con:
            unbalanced = con.execute(
                "SELECT count(*) FROM reconciliation WHERE status = 'loaded' "
                "AND rows_in_file <> rows_loaded + rows_quarantined"
            ).fetchone()[0]
            held = {d for (d,) in con.execute("SELECT _delivery FROM held_deliveries").fetchall()}
        assert unbalanced == 0, f"{where}: {unit} lost rows"
        with duckdb.connect(str(wh.cross_unit), read_only=True) as con:
            tables = con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = $u "
                "AND table_name IN (SELECT table_name FROM duckdb_columns() WHERE column_name = '_delivery')",
                {"u": unit},
            ).fetchall()
            for (table,) in tables:
                shared = {
                    d for (d,) in con.execute(f'SELECT DISTINCT _delivery FROM {unit}."{table}"').fetchall()
                }
                assert not shared & held, f"{where}: {unit}.{table} shares held deliveries {shared & held}"


@pytest.mark.long
def test_killed_at_random_moments_the_platform_ends_where_an_uninterrupted_run_ends(tmp_path, monkeypatch):
    env = main_job_env(tmp_path)
    done = run_main_job(env, "--citizens", "300", "--years", "1", "--seed", "3")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for name in ("KNUTPUNKT_HOME", "KNUTPUNKT_KEY_FILE"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home" / "dagster"))
    wh = Warehouse(tmp_path / "home" / "warehouse")
    reference = _state(wh)
    instance = dg.DagsterInstance.get()
    rng = random.Random(SEED)
    fork = multiprocessing.get_context("fork")
    killed = 0
    for number, stage in enumerate(rng.sample(ROUNDS, len(ROUNDS)), start=1):
        unit = rng.choice(UNITS) if stage == "load" else None
        where = f"seed {SEED}, round {number} ({stage}{' ' + unit if unit else ''})"
        child = fork.Process(target=_stage, args=(stage, unit))
        child.start()
        time.sleep(rng.uniform(0.0, 2.5))
        if child.is_alive():
            os.kill(child.pid, signal.SIGKILL)
            killed += 1
        child.join()
        release_dead_runs(instance)
        _stage(stage, unit)
        _invariants(wh, instance, where)
    _stage("link")
    _stage("publish")
    assert _state(wh) == reference, f"seed {SEED}: the final state differs from an uninterrupted run"
    assert killed >= len(ROUNDS) // 2, f"seed {SEED}: only {killed} rounds were killed mid-way"
