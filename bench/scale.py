"""The whole main job at a given size: time and peak memory per stage, against a bare DuckDB load.

Runs the main job's stages in this process as ``knutpunkt run`` does (generate, ingest with its
checks, steward approvals, link, dbt, discovery, publish) on a throwaway home, and prints per stage
the wall time and the peak resident memory of the whole process tree (this process and every
worker it started: the two ingest workers, dbt), sampled every 0.2 s, and which Dagster steps were
running at each stage's peak. Ingest and checks are split
by the unit assets' own ``seconds_loading``/``seconds_checking`` metadata, and dbt, discovery and
publish by the Dagster step timings of the marts run. The yardstick is a bare DuckDB load of the
same landing files (``bench/ingest.py``'s), measured in the same run.

    .venv/bin/python bench/scale.py --citizens 1000000 --years 5
    .venv/bin/python bench/scale.py --citizens 60000 --years 1   # a quick look
    .venv/bin/python bench/scale.py --increment   # then two new months through the sensor-driven path

With ``--increment [N]`` the newest N months' deliveries (default 2) are held out of landing for the full
run, then put back one month at a time, oldest first, and taken the way the running platform takes them:
the ``new_deliveries`` sensor is evaluated and each run it asks for is executed, then the automation
conditions (the links, eager on their units) and the ``marts_after_links`` sensor (the marts run), each
evaluated as the daemon would and what it asks for executed. Each month's time is reported as a share of the full run's (generation and the yardstick left
out of both). The first month after a full run differs from every later one: its publish is the first
audited with a previous snapshot, so the bounds audit's memo holds none of its blocks yet; the second
month is what a running platform pays each month.

Clean data by default (``--defect-rate 0``): the bare load reads every file by name, and a renamed
column would stop it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import dagster as dg
import psutil
from ingest import bare_load

from pipelines import cli
from pipelines.definitions import MARTS_JOB_NAME, defs, ingest_job_name
from pipelines.defs.anchors import DagsterAnchors, platform_instance
from pipelines.defs.resources import Platform
from pipelines.ingest.months import Delivery, last_complete_month
from pipelines.settings import Paths
from pipelines.stewardship import cli as stewardship
from pipelines.units import UNITS
from warehouse.layout import Warehouse, connect, run

SAMPLE_SECONDS = 0.2


class TreeMemory:
    """Peak resident memory of this process and all its descendants, sampled in a thread."""

    def __init__(self) -> None:
        self.peak = 0
        self.peak_at = 0.0  # time.time() of the peak sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # a worker that ended between listing and reading
                    total += p.memory_info().rss
            if total > self.peak:
                self.peak, self.peak_at = total, time.time()
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()


class Stages:
    """Wall time and tree peak memory per stage, in the order they ran."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, int | None]] = []
        self.peak_at: dict[str, float] = {}  # per stage, when its peak was sampled
        self.at_peak: dict[str, list[str]] = {}  # per stage, the Dagster steps running at its peak
        self.delivered = 0  # rows in the delivered files the full run loaded

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        with TreeMemory() as memory:
            yield
        self.rows.append((name, time.perf_counter() - started, memory.peak))
        self.peak_at[name] = memory.peak_at

    def detail(self, name: str, parts: dict[str, float]) -> None:
        """Show a stage's parts under it (indented; the stage's own row keeps its wall time)."""
        index = next(i for i, row in enumerate(self.rows) if row[0] == name)
        self.rows[index + 1 : index + 1] = [(f"  {part}", s, None) for part, s in parts.items()]


def main() -> None:
    args = _arguments()
    work = Path(tempfile.mkdtemp(prefix="knutpunkt-scale-"))
    os.environ["KNUTPUNKT_HOME"] = str(work / "home")
    os.environ.setdefault("KNUTPUNKT_KEY_FILE", str(work / "secrets" / "pseudonym.key"))
    paths = Paths(work / "home")
    try:
        _report(args, _run(args, paths, work))
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, paths: Paths, work: Path) -> Stages:
    stages = Stages()
    cli.prepare_dagster_home(paths)
    newest = last_complete_month(date.today())
    with stages.stage("generate"):
        cli.generate(paths, argparse.Namespace(**vars(args), end_month=str(newest)))
    months = [str(newest)]
    for _ in range(args.increment - 1):
        months.insert(0, str(Delivery.parse(months[0]).previous()))
    held_out = [_hold_out(paths.landing, m, work / "held-out" / m) for m in months] if args.increment else []
    with stages.stage("bare DuckDB load (yardstick)"):
        bare_load(paths.landing, work / "bare")
    with platform_instance(paths) as instance:
        with stages.stage("ingest"):
            failed = cli.ingest_all(paths, instance)
        stages.detail("ingest", _unit_seconds(instance))
        with stages.stage("steward approvals"):
            stewardship.approve_demo(paths, cli.console, DagsterAnchors(instance))
        with stages.stage("link"):
            failed += cli.link_cross_unit(instance)
        with stages.stage("marts, discovery, publish"):
            failed += cli.build_marts_and_publish(paths, instance)
        stages.detail("marts, discovery, publish", _marts_steps(instance))
        stages.delivered = _delivered_rows(paths)  # before the increment: the full run's rows
        for k, month in enumerate(held_out, start=1):
            failed += _increment(stages, paths, instance, month, f"{INCREMENT}{k}: ")
        stages.at_peak = _running_at(instance, stages.peak_at)
    if failed:
        raise SystemExit(f"the main job failed: {failed}")
    return stages


INCREMENT = "month "  # the stages of a new month are named "month <k>: <stage>"


def _hold_out(landing: Path, month: str, to: Path) -> list[tuple[Path, Path]]:
    """Move every unit's delivery of ``month`` out of landing; the (held, landing) pairs to put back."""
    moved = []
    for unit in UNITS:
        if (folder := landing / unit / month).is_dir():
            (to / unit).mkdir(parents=True)
            moved.append((folder.rename(to / unit / month), folder))
    return moved


def _increment(
    stages: Stages, paths: Paths, instance: dg.DagsterInstance, held_out: list[tuple[Path, Path]], name: str
) -> list[str]:
    """A held-out month arrives and goes the running platform's way: the delivery sensor's unit runs, the
    links automation asks for, then the marts run the ``marts_after_links`` sensor asks for."""
    automation = dg.evaluate_automation_conditions(defs=defs(), instance=instance).cursor  # before it arrives
    for held, folder in held_out:
        held.rename(folder)
    failed = []
    with stages.stage(f"{name}sensor and unit runs"):
        failed += _sensor_runs(instance)
    with stages.stage(f"{name}link"):
        failed += _automation_runs(instance, automation)
    with stages.stage(f"{name}marts, discovery, publish"):
        failed += _marts_run(paths, instance)
    stages.detail(f"{name}marts, discovery, publish", _marts_steps(instance))
    return failed


def _sensor_runs(instance: dg.DagsterInstance) -> list[str]:
    """Evaluate ``new_deliveries`` as the daemon would and execute every run it asks for."""
    from pipelines.defs.units import new_deliveries

    context = dg.build_sensor_context(instance=instance, resources={"platform": Platform()})
    result = new_deliveries(context)
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    failed = []
    for request in result.run_requests:
        [key] = request.asset_selection
        job = defs().resolve_job_def(ingest_job_name(key.path[-1]))
        run = job.execute_in_process(
            instance=instance, partition_key=request.partition_key, run_config=cli.QUIET_LOGS,
            raise_on_error=False,
        )  # fmt: skip
        failed += [] if run.success else [f"{job.name} {request.partition_key} (run {run.run_id})"]
    print(f"the sensor asked for {len(result.run_requests)} runs", flush=True)
    return failed


def _automation_runs(instance: dg.DagsterInstance, cursor: str) -> list[str]:
    """Evaluate the automation conditions as the daemon's automation sensor would, since ``cursor``, and
    execute what they ask for in one run (the links: eager on their unit and the citizen index)."""
    result = dg.evaluate_automation_conditions(defs=defs(), instance=instance, cursor=cursor)
    keys = [r.key for r in result.results if not r.true_subset.is_empty]
    print(f"automation asked for {len(keys)} assets", flush=True)
    if not keys:
        return ["automation asked for no link"]
    job = defs().resolve_implicit_global_asset_job_def()
    run = job.execute_in_process(
        instance=instance, asset_selection=keys, run_config=cli.QUIET_LOGS, raise_on_error=False
    )
    return [] if run.success else [f"the links automation asked for (run {run.run_id})"]


def _marts_run(paths: Paths, instance: dg.DagsterInstance) -> list[str]:
    """Evaluate ``marts_after_links`` as the daemon would; run the marts job it asks for."""
    from pipelines.defs.publish import marts_after_links

    context = dg.build_sensor_context(instance=instance, resources={"platform": Platform()})
    result = marts_after_links()(context)
    if not isinstance(result, dg.SensorResult) or len(result.run_requests) != 1:
        return [f"marts_after_links asked for no marts run: {result}"]
    [request] = result.run_requests
    marts = defs().resolve_job_def(MARTS_JOB_NAME)
    assert set(request.asset_selection) == set(marts.asset_layer.executable_asset_keys), "not the marts job"
    return cli.build_marts_and_publish(paths, instance)


def _unit_seconds(instance: dg.DagsterInstance) -> dict[str, float]:
    """The border's and the checks' seconds, summed over the units' last materialisations (two units
    load at a time, so these add up to more than the stage's wall time)."""
    parts = (("border, worker seconds", "seconds_loading"), ("checks, worker seconds", "seconds_checking"))
    totals = dict.fromkeys((part for part, _ in parts), 0.0)
    for unit in UNITS:
        event = instance.get_latest_materialization_event(dg.AssetKey(["units", unit]))
        metadata = event.asset_materialization.metadata if event else {}
        for part, key in parts:
            totals[part] += metadata[key].value if key in metadata else 0.0
    return totals


def _step_spans(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """Each step of a run with its start and end (``inf`` while it runs or if it never ended)."""
    kinds = {
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
    }
    started, ended = {}, {}
    for record in instance.get_records_for_run(run_id, of_type=kinds).records:
        entry = record.event_log_entry
        start = entry.dagster_event.event_type == dg.DagsterEventType.STEP_START
        (started if start else ended)[entry.step_key] = entry.timestamp
    return {k: (t, ended.get(k, float("inf"))) for k, t in started.items()}


def _running_at(instance: dg.DagsterInstance, moments: dict[str, float]) -> dict[str, list[str]]:
    """Per stage, the Dagster steps (of any run) executing at its peak's moment: where the peak came from."""
    spans = [span for r in instance.get_runs(limit=100) for span in _step_spans(instance, r.run_id).items()]
    return {
        name: sorted(k for k, (start, end) in spans if start <= moment <= end)
        for name, moment in moments.items()
    }


def _marts_steps(instance: dg.DagsterInstance) -> dict[str, float]:
    """The marts run's step times, grouped: dbt, discovery, publish."""
    [latest] = instance.get_runs(dg.RunsFilter(job_name=MARTS_JOB_NAME), limit=1)
    groups = {"dbt": 0.0, "discovery": 0.0, "publish": 0.0}
    for step, (start, end) in _step_spans(instance, latest.run_id).items():
        group = "dbt" if "dbt" in step else "discovery" if "discovery" in step else "publish"
        groups[group] += end - start
    return groups


def _report(args: argparse.Namespace, stages: Stages) -> None:
    rows = stages.delivered
    total = sum(s for name, s, _ in stages.rows if not name.startswith(("bare", " ", INCREMENT)))
    bare = next(s for name, s, _ in stages.rows if name.startswith("bare"))
    print(f"\n{args.citizens:,} citizens x {args.years} years, seed {args.seed}: {rows:,} delivered rows")
    print(f"{'stage':<36}{'seconds':>10}{'peak RSS (tree)':>18}")
    for name, seconds, peak in stages.rows:
        memory = f"{peak / 2**30:.2f} GB" if peak else ""
        print(f"{name:<36}{seconds:>10.1f}{memory:>18}")
    print("Dagster steps running at each stage's peak:")
    for name, steps in stages.at_peak.items():
        print(f"  {name:<38}{', '.join(steps) or '(this process)'}")
    peak = max(p or 0 for _, _, p in stages.rows)
    print(f"{'end to end (without the yardstick)':<36}{total:>10.1f}{peak / 2**30:>15.2f} GB")
    print(f"rows per second end to end: {rows / total:,.0f}; bare DuckDB load: {rows / bare:,.0f}")
    print(f"ratio end to end / bare load: {total / bare:.1f}")
    full = total - next(s for name, s, _ in stages.rows if name == "generate")
    months = dict.fromkeys(name.split(":")[0] for name, _, _ in stages.rows if name.startswith(INCREMENT))
    for month in months:
        seconds = sum(s for name, s, _ in stages.rows if name.startswith(f"{month}:"))
        print(f"{month}, a new month: {seconds:.1f} s = {seconds / full:.1%} of the full run's {full:.1f} s")


def _delivered_rows(paths: Paths) -> int:
    """Rows in the delivered files, as each unit zone's reconciliation counted them."""
    warehouse, rows = Warehouse(paths.warehouse), 0
    for unit in UNITS:
        with connect(warehouse.unit_zone(unit), read_only=True) as con:
            rows += run(con, "SELECT coalesce(sum(rows_in_file), 0) FROM reconciliation")[0][0]
    return int(rows)


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citizens", type=int, default=1_000_000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--defect-rate", type=float, default=0.0)
    parser.add_argument(
        "--increment", type=int, nargs="?", const=2, default=0, metavar="N",
        help="then N new months (default 2), one at a time, through the sensor-driven path",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the throwaway home (its path is printed)")
    return parser.parse_args()


if __name__ == "__main__":
    main()
