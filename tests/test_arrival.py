"""Deliveries as they really arrive: late, out of order, re-sent, impossible, and killed mid-load.

Every delivery folder ends loaded, held or rejected with a reason; a run killed with SIGKILL does
not keep its unit's pool slot; the sensor asks only for what is new against what the zone loaded.
"""

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import date

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from pipelines.cli import partition_range
from pipelines.definitions import defs
from pipelines.defs.resources import Platform
from pipelines.defs.units import deliveries, new_deliveries
from pipelines.ingest.months import Delivery, scan
from pipelines.runs import ATTEMPTS, PROCESS_TAG, REQUEST_TAG, release_dead_runs, slot_holders
from pipelines.settings import REPO_ROOT
from tests.conftest import KNUTPUNKT, SOCIAL, held_open, load_checked, main_job_env, write_csv
from tests.corpus import write_good
from warehouse.layout import Warehouse

ROW = [["811218-9876", "2024-01", "10", "Ensamstående"]]


def test_folders_that_are_not_deliveries_are_rejected_with_their_reason(home):
    for month in ("2024-01", "2026-13", "2024-5", "2099-04"):
        write_csv(home, SOCIAL, month, "ekonomiskt_bistand", ROW)
    (home.landing / "socialtjanst" / "2024-02").mkdir()
    (home.landing / "socialtjanst" / ".partial").mkdir()
    found = scan(home.landing / "socialtjanst", date(2026, 12, 1))
    assert found.months == ["2024-01"]
    assert set(found.rejected) == {"2026-13", "2024-5", "2099-04", "2024-02"}
    assert "not a calendar month" in found.rejected["2026-13"]
    assert "not a delivery month (YYYY-MM)" in found.rejected["2024-5"]
    assert "has not begun yet" in found.rejected["2099-04"]
    assert "holds no files" in found.rejected["2024-02"]
    assert Delivery.parse("2024-12").next() == Delivery(2025, 1)
    assert [str(Delivery.parse(m).previous()) for m in ("2025-01", "2025-02", "2025-12")] == [
        "2024-12", "2025-01", "2025-11"
    ]  # fmt: skip


def _ingest(instance, unit: str, months: list[str]) -> dg.ExecuteInProcessResult:
    first, last = partition_range(instance, unit, months)
    tags = {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}
    return defs().resolve_job_def(f"ingest_{unit}").execute_in_process(instance=instance, tags=tags)


def _tick(instance: dg.DagsterInstance, cursor: str | None = None) -> dg.SensorResult:
    """One tick of the delivery sensor."""
    return new_deliveries(
        dg.build_sensor_context(instance=instance, cursor=cursor, resources={"platform": Platform()})
    )


def _zone(warehouse, unit: str, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse.unit_zone(unit)), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.mark.platform
def test_a_late_month_is_loaded_in_time_order_and_a_resent_one_is_recorded(home, warehouse):
    for month in ("2024-03", "2024-04"):
        write_good(home, "skola", month)
    with dg.instance_for_test() as instance:
        assert _ingest(instance, "skola", ["2024-03", "2024-04"]).success
        write_good(home, "skola", "2024-01")  # older than every loaded month
        write_good(home, "skola", "2024-02")
        late = _ingest(instance, "skola", ["2024-01", "2024-02", "2024-03", "2024-04"])
        assert late.success
        assert instance.get_dynamic_partitions(deliveries("skola").name) == [
            "2024-03",
            "2024-04",
            "2024-01",
            "2024-02",
        ]
    loaded = "SELECT DISTINCT _delivery FROM reconciliation ORDER BY 1"
    assert _zone(warehouse, "skola", loaded) == [("2024-01",), ("2024-02",), ("2024-03",), ("2024-04",)]
    order = "SELECT _delivery FROM deliveries WHERE replaces IS NULL ORDER BY _loaded_at"
    assert [d for (d,) in _zone(warehouse, "skola", order)][-2:] == ["2024-01", "2024-02"]
    resent = "SELECT count(*) FROM deliveries WHERE replaces IS NOT NULL AND _delivery = '2024-03'"
    assert _zone(warehouse, "skola", resent) == [(1,)], "the re-load of 2024-03 records what it replaced"
    assert _zone(warehouse, "skola", "SELECT count(*) FROM held_deliveries") == [(0,)]


def test_the_sensor_asks_only_for_what_the_zone_has_not_loaded(home, keys):
    for month in ("2024-01", "2024-02"):
        write_good(home, "socialtjanst", month)
    load_checked(SOCIAL, ["2024-01", "2024-02"], home, keys)
    write_csv(home, SOCIAL, "2026-13", "ekonomiskt_bistand", ROW)
    with dg.instance_for_test() as instance:
        evaluate = functools.partial(_tick, instance)
        opened = evaluate()
        assert opened.run_requests == [], "opening the UI on a loaded home queues nothing"
        path = write_csv(home, SOCIAL, "2024-02", "ekonomiskt_bistand", ROW * 2)
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
        changed = evaluate(opened.cursor)
        assert [r.partition_key for r in changed.run_requests] == ["2024-02"]
        assert evaluate(changed.cursor).run_requests == [], "asked once, not on every tick"


def test_the_sensor_asks_again_for_a_delivery_stored_without_a_verdict(home, keys):
    """Fail closed, and recover: a load killed after it stored a delivery and before its checks leaves
    it held ``unchecked``; the sensor asks for it once more, though its folder did not change."""
    from pipelines.ingest.delivery import load_delivery

    write_good(home, "socialtjanst", "2024-01")
    write_good(home, "socialtjanst", "2024-02")
    load_checked(SOCIAL, ["2024-01"], home, keys)
    load_delivery(SOCIAL, "2024-02", home.landing, Warehouse(home.warehouse), keys)  # no checks
    with dg.instance_for_test() as instance:
        evaluate = functools.partial(_tick, instance)
        first = evaluate()
        [request] = first.run_requests
        assert request.partition_key == "2024-02" and "/unchecked@" in request.run_key
        assert evaluate(first.cursor).run_requests == [], "asked once, not on every tick"


@pytest.mark.platform
def test_a_rerun_redoes_only_deliveries_changed_since_their_load_or_stored_without_a_verdict(home, keys):
    """What ``knutpunkt run`` skips: a unit is run again only if a delivery of it changed in landing or
    was stored by a load that died before its checks (held ``unchecked``)."""
    from pipelines.ingest.delivery import load_deliveries, unsettled

    for month in ("2024-01", "2024-02", "2024-03"):
        write_good(home, "socialtjanst", month)
    zone, landing = Warehouse(home.warehouse).unit_zone("socialtjanst"), home.landing / "socialtjanst"
    months = ["2024-01", "2024-02", "2024-03"]
    assert unsettled(zone, landing, months) == months, "nothing loaded yet"
    load_checked(SOCIAL, months[:2], home, keys)
    for _ in load_deliveries(SOCIAL, months[2:], home.landing, Warehouse(home.warehouse), keys):
        pass  # stored, its checks never ran: as if killed between the load and the verdict
    assert unsettled(zone, landing, months) == ["2024-03"]
    load_checked(SOCIAL, months[2:], home, keys)
    assert unsettled(zone, landing, months) == []
    path = write_csv(home, SOCIAL, "2024-01", "ekonomiskt_bistand", ROW * 2)
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert unsettled(zone, landing, months) == ["2024-01"], "a re-sent delivery is run again"


HANGING_LOAD = """
import json, sys, time
import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG as END, ASSET_PARTITION_RANGE_START_TAG as START
from pipelines import progress
from pipelines.definitions import defs
progress.listen(lambda *_: print("stored", flush=True) or time.sleep(3600))  # hang holding the zone's slot
defs().resolve_job_def("ingest_socialtjanst").execute_in_process(
    instance=dg.DagsterInstance.get(), tags={START: "2024-01", END: "2024-01"} | json.loads(sys.argv[1]))
"""


@pytest.mark.platform
def test_a_killed_load_is_released_and_asked_for_again_by_the_delivery_sensor(
    home, warehouse, monkeypatch, capsys
):
    """A load killed with SIGKILL, with nothing left to report it (``knutpunkt ui`` went down with it),
    never ends and keeps its unit's pool slot. The run tagged itself with its process where it started,
    so the delivery sensor's next tick marks it failed, frees the slot and asks for the delivery again;
    the load it asks for runs, and then nothing more is asked."""
    write_good(home, "socialtjanst", "2024-01")
    home.dagster_home.mkdir(parents=True)  # the platform's dagster.yaml: one slot per zone's pool
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home.dagster_home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster_home))
    instance = dg.DagsterInstance.get()
    evaluate = functools.partial(_tick, instance)
    asked = evaluate()
    [request] = asked.run_requests
    instance.add_dynamic_partitions(deliveries("socialtjanst").name, ["2024-01"])
    launched = request.tags | {"dagster/run_key": request.run_key}  # as the daemon launches it
    child = subprocess.Popen(
        [sys.executable, "-c", HANGING_LOAD, json.dumps(launched)], stdout=subprocess.PIPE
    )
    try:
        assert child.stdout.readline() == b"stored\n", "the delivery stored, its checks not run"
        [held_by] = slot_holders(instance, "duckdb_socialtjanst")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    run = instance.get_run_by_id(held_by)
    assert run.status == dg.DagsterRunStatus.STARTED, "killed: it never ended"
    assert run.tags[PROCESS_TAG].startswith(f"{held_by}@"), "the run tagged itself with its process"

    capsys.readouterr()
    again = evaluate(asked.cursor)
    assert instance.get_run_by_id(held_by).status == dg.DagsterRunStatus.FAILURE
    assert slot_holders(instance, "duckdb_socialtjanst") == []
    assert f"run {held_by} (ingest_socialtjanst) died with its process" in capsys.readouterr().err
    [retry] = again.run_requests  # it died after it stored the delivery, before the verdict
    assert retry.partition_key == "2024-01"
    assert retry.tags[REQUEST_TAG].startswith(request.tags[REQUEST_TAG].split("@")[0] + "/unchecked@")
    assert release_dead_runs(instance) == []
    job = defs().resolve_job_def("ingest_socialtjanst")
    assert job.execute_in_process(instance=instance, partition_key="2024-01", tags=retry.tags).success
    assert _zone(warehouse, "socialtjanst", "SELECT count(*) FROM held_deliveries") == [(0,)]
    assert evaluate(again.cursor).run_requests == []


def test_a_load_that_failed_is_asked_for_again_by_the_delivery_sensor(home, warehouse, keys, capsys):
    """A run that failed (another process held the unit's zone) leaves its delivery unloaded; the sensor
    asks for it again under a new run key, since Dagster runs a sensor's run key once."""
    write_good(home, "socialtjanst", "2024-01")
    load_checked(SOCIAL, ["2024-01"], home, keys)
    write_good(home, "socialtjanst", "2024-02")
    job = defs().resolve_job_def("ingest_socialtjanst")
    with dg.instance_for_test() as instance:
        evaluate = functools.partial(_tick, instance)
        asked = evaluate()
        [request] = asked.run_requests
        instance.add_dynamic_partitions(deliveries("socialtjanst").name, ["2024-02"])
        with held_open(warehouse.unit_zone("socialtjanst")):  # another process holds it: the load fails
            failed = job.execute_in_process(
                instance=instance, partition_key="2024-02", tags=request.tags, raise_on_error=False
            )
        assert not failed.success
        capsys.readouterr()
        again = evaluate(asked.cursor)
        assert (
            f"its load failed in run {failed.run_id}; asking again (2 of {ATTEMPTS})"
            in capsys.readouterr().err
        )
        [retry] = again.run_requests
        assert (retry.partition_key, retry.tags) == (request.partition_key, request.tags)
        assert retry.run_key == f"{request.run_key}#2"
        assert job.execute_in_process(instance=instance, partition_key="2024-02", tags=retry.tags).success
        assert evaluate(again.cursor).run_requests == []
    assert _zone(warehouse, "socialtjanst", "SELECT count(DISTINCT _delivery) FROM deliveries") == [(2,)]


def test_a_delivery_whose_load_fails_every_time_is_said_and_not_asked_for_for_ever(home, capsys):
    write_good(home, "socialtjanst", "2024-01")
    job = defs().resolve_job_def("ingest_socialtjanst")
    with dg.instance_for_test() as instance:
        evaluate = functools.partial(_tick, instance)
        tick = evaluate()
        [request] = tick.run_requests
        keys = []
        for _ in range(ATTEMPTS):
            [asked] = tick.run_requests
            keys.append(asked.run_key)
            instance.create_run_for_job(job, tags=asked.tags, status=dg.DagsterRunStatus.FAILURE)
            capsys.readouterr()
            tick = evaluate(tick.cursor)
        said = capsys.readouterr().err
        assert keys == [request.run_key, *(f"{request.run_key}#{n}" for n in range(2, ATTEMPTS + 1))]
        assert tick.run_requests == []
        assert f"socialtjanst/2024-01: its load failed in {ATTEMPTS} runs" in said
        assert "not asked again until the delivery is sent again" in said
        instance.create_run_for_job(job, tags=request.tags, status=dg.DagsterRunStatus.STARTED)
        assert evaluate(tick.cursor).run_requests == []
        assert "its load failed" not in capsys.readouterr().err, "a run under way (by hand) is waited for"


def test_a_run_that_copied_a_dead_runs_process_tag_is_not_taken_for_dead():
    """A re-execution copies its parent's tags, the parent's process with them: only a tag under the run's
    own id says which process executes it. When the UI starts, a run with no tag of its own is released."""
    gone = subprocess.run(
        [sys.executable, "-c", "from pipelines.runs import this_process; print(this_process())"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    job = defs().resolve_job_def("ingest_socialtjanst")
    with dg.instance_for_test() as instance:
        parent = instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)
        instance.add_run_tags(parent.run_id, {PROCESS_TAG: f"{parent.run_id}@{gone}"})
        copy = instance.create_run_for_job(
            job, status=dg.DagsterRunStatus.STARTED, tags={PROCESS_TAG: f"{parent.run_id}@{gone}"}
        )
        assert release_dead_runs(instance) == [
            f"run {parent.run_id} (ingest_socialtjanst) died with its process: marked failed, slots freed"
        ]
        assert instance.get_run_by_id(copy.run_id).status == dg.DagsterRunStatus.STARTED
        assert release_dead_runs(instance, orphans=True) == [  # as knutpunkt ui starts: no daemon is alive
            f"run {copy.run_id} (ingest_socialtjanst) died with its process: marked failed, slots freed"
        ], "a run the daemon launched and that died before its resources started carries no tag"


@pytest.mark.platform
def test_the_main_job_says_which_live_run_holds_the_pool_it_waits_for(home, tmp_path, monkeypatch):
    """``knutpunkt run`` never waits silently: a live load holds socialtjänst's pool slot, and the main job
    says which run holds which pool before it waits. Stopped (by its process group) once it said so."""
    write_good(home, "socialtjanst", "2024-01")
    home.dagster_home.mkdir(parents=True)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", home.dagster_home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster_home))
    instance = dg.DagsterInstance.get()
    instance.add_dynamic_partitions(deliveries("socialtjanst").name, ["2024-01"])
    holder = subprocess.Popen([sys.executable, "-c", HANGING_LOAD, "{}"], stdout=subprocess.DEVNULL)
    main = None
    try:
        deadline = time.monotonic() + 120
        while not slot_holders(instance, "duckdb_socialtjanst") and time.monotonic() < deadline:
            time.sleep(0.5)
        [held_by] = slot_holders(instance, "duckdb_socialtjanst")
        main = subprocess.Popen(
            [str(KNUTPUNKT), "run", "--no-generate"],
            env=main_job_env(tmp_path) | {"COLUMNS": "80"},  # a narrow terminal must not break the line
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # the CLI and its workers: stopped as one process group
        )
        expected = (
            f"socialtjanst waits: pool duckdb_socialtjanst (one writer per DuckDB file) is held by run "
            f"{held_by} (ingest_socialtjanst, started); it goes on when that run ends"
        )
        said: list[str] = []
        reader = threading.Thread(
            target=lambda: said.extend(line.rstrip() for line in main.stderr), daemon=True
        )
        reader.start()
        deadline = time.monotonic() + 300  # a bound for a stuck test, not a speed requirement
        while expected not in said and main.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert expected in said, "\n".join(said)
        assert main.poll() is None, "it waits for the slot, it does not give up"
    finally:
        if main is not None:
            os.killpg(main.pid, signal.SIGKILL)
            main.wait()
        holder.send_signal(signal.SIGKILL)
        holder.wait()


@pytest.mark.platform
def test_reconciliation_fails_when_the_loader_loses_a_row(home, warehouse, monkeypatch):
    """Fault injection: a reader that drops the last record must not balance the books."""
    from pipelines.ingest import delivery

    def dropping(path, fmt, dataset):
        return real(path, fmt, dataset).head(-1)

    real = delivery.read_delivery_file
    write_good(home, "socialtjanst", "2024-01")
    monkeypatch.setattr(delivery, "read_delivery_file", dropping)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(deliveries("socialtjanst").name, ["2024-01"])
        result = (
            defs()
            .resolve_job_def("ingest_socialtjanst")
            .execute_in_process(instance=instance, partition_key="2024-01")
        )
    [verdict] = [e for e in result.get_asset_check_evaluations() if e.check_name == "reconciliation"]
    assert not verdict.passed and verdict.severity == dg.AssetCheckSeverity.ERROR
    assert "socialtjanst/2024-01/ekonomiskt_bistand.csv: " in verdict.description
    assert "records by an independent count, the loader read" in verdict.description
    assert _zone(warehouse, "socialtjanst", "SELECT checks FROM held_deliveries") == [("reconciliation",)]


@pytest.mark.platform
def test_a_delivery_sent_back_as_it_was_before_is_loaded_again(home, warehouse):
    """Dagster runs a sensor's run key once. A unit corrects a delivery and then takes the correction back
    by restoring its first file with its file times (a backup, rsync -a): the folder's fingerprint is the
    first one again, and the load of it must be asked for under a new run key, or the zone would keep
    the correction while landing holds the first file."""
    [path] = [p for p in write_good(home, "socialtjanst", "2024-01") if "ekonomiskt_bistand" in p.name]
    first, times = path.read_bytes(), (path.stat().st_atime_ns, path.stat().st_mtime_ns)
    job = defs().resolve_job_def("ingest_socialtjanst")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(deliveries("socialtjanst").name, ["2024-01"])
        cursor, asked = None, []
        for version in ("first", "corrected", "restored"):
            if version == "corrected":
                write_csv(home, SOCIAL, "2024-01", "ekonomiskt_bistand", ROW * 3)
                os.utime(path, ns=(times[0], times[1] + 10**9))
            elif version == "restored":
                path.write_bytes(first)
                os.utime(path, ns=times)
            tick = _tick(instance, cursor)
            [request] = tick.run_requests
            assert job.execute_in_process(
                instance=instance, partition_key="2024-01", tags=request.tags
            ).success
            cursor, fingerprint = tick.cursor, request.tags[REQUEST_TAG].split("/")[2].split("@")[0]
            asked.append((fingerprint, request.run_key))
    assert asked[0][0] == asked[2][0], "the restored folder has the first fingerprint"
    assert len({run_key for _, run_key in asked}) == 3, asked
    assert _zone(warehouse, "socialtjanst", "SELECT count(*) FROM ekonomiskt_bistand") == [
        (len(first.splitlines()) - 1,)
    ]
