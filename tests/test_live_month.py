"""A month on the running platform: each run the sensors and automation ask for, executed as the daemon
executes it, takes a month's deliveries through to a new snapshot for the dashboards, with one marts run."""

import os
import shutil
import signal
import socket
import subprocess
import time
from datetime import UTC, datetime

import dagster as dg
import pytest
from dagster._core.definitions.run_request import InstigatorType

from pipelines.definitions import MARTS_JOB_NAME, defs
from pipelines.defs.anchors import DagsterAnchors, platform_instance
from pipelines.defs.cross_unit import citizen_index, link_key
from pipelines.defs.publish import SNAPSHOT_KEY, UNDER_WAY, marts_after_links
from pipelines.defs.resources import Platform
from pipelines.defs.units import new_deliveries, unit_asset_key
from pipelines.runs import PROCESS_TAG, slot_holders
from pipelines.settings import Paths
from pipelines.units import UNITS
from tests.conftest import KNUTPUNKT, held_open, main_job_env

RESENT = ("folkbokforing", "socialtjanst")  # the register relinks every unit through the citizen index
MONTH_SENSORS = ("new_deliveries", "cross_unit_automation", "marts_after_links")


@pytest.fixture
def paths(discovery_platform, tmp_path, monkeypatch) -> Paths:
    source = discovery_platform["paths"].home.parent
    shutil.copytree(source / "home", tmp_path / "home", symlinks=True)
    shutil.copytree(source / "secrets", tmp_path / "secrets")  # a steward's key made here stays here
    monkeypatch.setenv("KNUTPUNKT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KNUTPUNKT_KEY_FILE", str(tmp_path / "secrets" / "pseudonym.key"))
    return Paths.from_env()


def _asks_marts(instance: dg.DagsterInstance) -> dg.SensorResult | dg.SkipReason:
    context = dg.build_sensor_context(instance=instance, resources={"platform": Platform()})
    return marts_after_links()(context)


def _skipped(result) -> str:
    assert isinstance(result, dg.SkipReason), f"asked for a run too early: {result}"
    return result.skip_message


def _execute(instance: dg.DagsterInstance, keys, tags=None, succeed=True) -> dg.ExecuteInProcessResult:
    job = defs().resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        instance=instance, asset_selection=list(keys), tags=tags, raise_on_error=False
    )
    assert result.success == succeed
    return result


def _snapshots(instance: dg.DagsterInstance) -> int:
    return len(instance.fetch_materializations(SNAPSHOT_KEY, limit=100).records)


def test_every_sensor_a_month_goes_through_runs_from_the_start():
    """Dagster starts a sensor stopped unless told otherwise; a stopped one leaves a month half done
    (the automation sensor was: loads landed, nothing linked them, the dashboards stood still)."""
    for name in MONTH_SENSORS:
        assert defs().get_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING, name


def test_every_run_takes_its_steps_in_one_process():
    """A run the daemon launches starts a process per step under Dagster's default executor (4 s of
    imports each: a live month at 20,000 x 2 took 327 s of runs instead of 101 s); in process, as the
    main job runs them, unless a job asks otherwise."""
    jobs = [*defs().resolve_all_job_defs(), defs().resolve_implicit_global_asset_job_def()]
    assert {job.name: job.executor_def.name for job in jobs} == {job.name: "in_process" for job in jobs}


@pytest.mark.platform
@pytest.mark.long
def test_a_month_goes_from_the_delivery_sensor_to_a_new_snapshot_in_one_marts_run(paths):
    with platform_instance(paths) as instance:
        assert "the snapshot is newer" in _skipped(_asks_marts(instance))
        automation = dg.evaluate_automation_conditions(defs=defs(), instance=instance).cursor
        last = max(p.name for p in (paths.landing / "socialtjanst").iterdir())
        for unit in RESENT:  # sent again: a new fingerprint, loaded again as a new month would be
            for f in (paths.landing / unit / last).iterdir():
                os.utime(f)

        tick = new_deliveries(dg.build_sensor_context(instance=instance, resources={"platform": Platform()}))
        assert sorted(r.partition_key for r in tick.run_requests) == [last, last]
        for request in tick.run_requests:
            [key] = request.asset_selection
            job = defs().resolve_job_def(f"ingest_{key.path[-1]}")
            assert job.execute_in_process(instance=instance, partition_key=request.partition_key).success
        assert _skipped(_asks_marts(instance)) == "waiting for the link of folkbokforing, socialtjanst"

        asked = dg.evaluate_automation_conditions(defs=defs(), instance=instance, cursor=automation)
        links = {r.key for r in asked.results if not r.true_subset.is_empty}
        assert links == {link_key(u) for u in UNITS}, "the citizen index changed: every unit links again"
        with held_open(Platform().warehouse.cross_unit):  # the first link run fails: said while it waits
            failed = _execute(instance, [citizen_index.key, link_key("socialtjanst")], succeed=False)
        assert _skipped(_asks_marts(instance)).endswith(
            f"; the last link run failed for folkbokforing (run {failed.run_id}), socialtjanst (run "
            f"{failed.run_id}): it links again with the unit's next load or `knutpunkt run`, and until then "
            "the dashboards stay at the last snapshot"
        )
        _execute(instance, [citizen_index.key, link_key("socialtjanst")])
        waiting = _skipped(_asks_marts(instance))  # the others still link to the old citizen index
        assert waiting == "waiting for the link of " + ", ".join(u for u in UNITS if u not in RESENT)
        _execute(instance, links - {citizen_index.key, link_key("socialtjanst")})

        asked_marts = _asks_marts(instance)
        [request] = asked_marts.run_requests
        marts = defs().resolve_job_def(MARTS_JOB_NAME)
        assert set(request.asset_selection) == set(marts.asset_layer.executable_asset_keys)
        busy = instance.create_run_for_job(marts, status=dg.DagsterRunStatus.STARTED)
        assert _skipped(_asks_marts(instance)) == (
            f"run {busy.run_id} rebuilds the marts; looking again when it has ended"
        )
        instance.report_run_canceled(busy)
        context = dg.build_sensor_context(
            instance=instance, cursor=asked_marts.cursor, resources={"platform": Platform()}
        )
        assert "a marts run was asked for" in _skipped(marts_after_links()(context)), "asked twice"

        before = _snapshots(instance)
        with held_open(Platform().warehouse.cross_unit):  # the marts run fails, and is asked for again
            failed = _execute(instance, request.asset_selection, request.tags, succeed=False)
        context = dg.build_sensor_context(
            instance=instance, cursor=asked_marts.cursor, resources={"platform": Platform()}
        )
        [again] = marts_after_links()(context).run_requests
        assert (again.run_key, again.tags) == (f"{request.run_key}#2", request.tags), failed.run_id
        _execute(instance, again.asset_selection, again.tags)
        assert _snapshots(instance) == before + 1
        assert "the snapshot is newer" in _skipped(_asks_marts(instance))
        after = dg.evaluate_automation_conditions(defs=defs(), instance=instance, cursor=asked.cursor)
        assert after.total_requested == 0, "a marts run asks automation for nothing more"


@pytest.mark.platform
@pytest.mark.long
def test_the_running_platform_takes_a_month_to_a_new_snapshot_by_itself_though_its_load_is_killed(
    discovery_platform, tmp_path
):
    """``knutpunkt ui`` (Dagster's webserver and daemon) on a copy of the main job's home: a unit's month
    sent again is loaded, linked and published with no hand on it, in one marts run; its first load,
    killed with SIGKILL while it holds the unit's pool slot, frees the slot and is asked for again."""
    source = discovery_platform["paths"].home.parent
    shutil.copytree(source / "home", tmp_path / "home", symlinks=True)
    shutil.copytree(source / "secrets", tmp_path / "secrets")
    env, paths = main_job_env(tmp_path), Paths(tmp_path / "home")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with platform_instance(paths) as instance:  # the last daemon died while it started this run
        ingest = defs().resolve_job_def("ingest_skola")
        orphan = instance.create_run_for_job(ingest, status=dg.DagsterRunStatus.STARTED).run_id
    started = time.time()
    with open(tmp_path / "ui.log", "wb") as log:
        ui = subprocess.Popen(
            [str(KNUTPUNKT), "ui", "--port", str(port)],
            env=env, cwd=tmp_path, stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    try:
        with platform_instance(paths) as instance:
            _wait(
                lambda: _ticked_since(instance, started) and not _under_way(instance), ui, "the first ticks"
            )
            assert _runs_since(instance, started) == [], "a first start on a linked home runs nothing"
            assert instance.get_run_by_id(orphan).status == dg.DagsterRunStatus.FAILURE, "released at start"
            before, resent = _snapshots(instance), time.time()
            last = max(p.name for p in (paths.landing / "socialtjanst").iterdir())
            for f in (paths.landing / "socialtjanst" / last).iterdir():
                os.utime(f)
            killed = _kill_when_holding(instance, "duckdb_socialtjanst", ui)
            _wait(lambda: _snapshots(instance) > before and not _under_way(instance), ui, "a new snapshot")
            runs = _runs_since(instance, resent)
            log = (tmp_path / "ui.log").read_text()[-3000:]
            assert {r.run_id for r in runs if r.status != dg.DagsterRunStatus.SUCCESS} == {killed}, log
            selected = [set(r.asset_selection or ()) for r in runs if r.run_id != killed]
            assert any(unit_asset_key("socialtjanst") in s for s in selected), "loaded again"
            assert sum(SNAPSHOT_KEY in s for s in selected) == 1, "one marts run for the month"
            assert any(link_key("socialtjanst") in s for s in selected)
            assert _snapshots(instance) == before + 1
            assert slot_holders(instance, "duckdb_socialtjanst") == []
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=60)


def _kill_when_holding(instance: dg.DagsterInstance, pool: str, ui: subprocess.Popen) -> str:
    """SIGKILL the process of the run that holds ``pool``'s slot, as soon as one does; its run id."""
    deadline = time.time() + 300
    while not (holders := slot_holders(instance, pool)):
        assert ui.poll() is None and time.time() < deadline, f"no run took {pool}"
        time.sleep(0.1)
    [run_id] = holders
    owner, _, process = instance.get_run_by_id(run_id).tags[PROCESS_TAG].partition("@")
    assert owner == run_id, "a run tags itself with its process before its steps take a slot"
    os.kill(int(process.rsplit(":", 2)[1]), signal.SIGKILL)
    return run_id


def _wait(done, ui: subprocess.Popen, what: str, timeout: float = 480) -> None:
    deadline = time.time() + timeout
    while not done():
        assert ui.poll() is None, f"knutpunkt ui ended ({ui.returncode}) waiting for {what}"
        assert time.time() < deadline, f"no {what} in {timeout:.0f} s"
        time.sleep(2)


def _ticked_since(instance: dg.DagsterInstance, moment: float) -> bool:
    """Every sensor a month goes through, and the steward sensor, has ticked since ``moment``."""
    states = instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
    ticked = {s.instigator_name for s in states if (s.instigator_data.last_tick_timestamp or 0) > moment}
    return ticked >= {*MONTH_SENSORS, "steward_decisions"}


def _runs_since(instance: dg.DagsterInstance, moment: float) -> list[dg.DagsterRun]:
    return list(instance.get_runs(dg.RunsFilter(created_after=datetime.fromtimestamp(moment, UTC))))


def _under_way(instance: dg.DagsterInstance) -> bool:
    return bool(instance.get_runs(dg.RunsFilter(statuses=UNDER_WAY), limit=1))


@pytest.mark.platform
def test_a_first_tick_of_the_steward_sensor_relinks_only_what_changed_since_the_main_job_linked(paths):
    """The steward sensor has no cursor at its first tick; the links record the sharing they ran under,
    so a home the main job linked is not linked and rebuilt again when the UI first starts (it was: a
    whole link and marts run), and a decision made since is still seen."""
    from pipelines.defs.stewardship import steward_decisions
    from pipelines.stewardship import approvals, signing
    from pipelines.stewardship.contracts import load_contracts

    def first_tick() -> dg.SensorResult:
        context = dg.build_sensor_context(instance=instance, resources={"platform": Platform()})
        return steward_decisions()(context)

    with platform_instance(paths) as instance:
        assert first_tick().run_requests == []
        signing.create_key("Anna Berg, enhetschef")
        contract = load_contracts()["socialtjanst.ekonomiskt_bistand"]
        anchors = DagsterAnchors(instance)
        approvals.revoke(contract, "Anna Berg, enhetschef", "purpose ended", paths, anchors=anchors)
        [request] = first_tick().run_requests
        assert link_key("socialtjanst") in request.asset_selection
        assert link_key("skola") not in request.asset_selection
