"""The ``knutpunkt`` command: generate a municipality, run the platform on it, open the UI."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from pipelines import units
from pipelines.ingest.months import Landing, last_complete_month, scan
from pipelines.settings import HOME_ENV, REPO_ROOT, Paths, knutpunkt_command
from pipelines.stewardship import cli as stewardship
from pipelines.stewardship.audit import AnchorStore
from pipelines.units import ContractError

if TYPE_CHECKING:
    import dagster as dg

console = Console(stderr=True)
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def main(argv: list[str] | None = None) -> int:
    """The command; a contract that does not read is one line naming file and key, not a traceback."""
    try:
        return _command(argv)
    except ContractError as e:
        console.print(f"[red]contract error: {e}[/red]")
        return 2


def _command(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="knutpunkt", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (
        ("generate", "write a synthetic municipality into landing/"),
        ("run", "the main job"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--citizens", type=int, default=10_000)
        p.add_argument("--years", type=int, default=3)
        p.add_argument("--seed", type=int, default=1)
        p.add_argument("--defect-rate", type=float, default=0.002)
        p.add_argument(
            "--end-month",
            default=str(last_complete_month(date.today())),
            help="last delivery month YYYY-MM (default: the last complete month, so the demo is current "
            "and the contracts' retention, counted from today, keeps its whole period)",
        )
    sub.choices["run"].add_argument(
        "--no-generate", action="store_true", help="load what is in landing/ instead of generating"
    )
    sub.add_parser("ui", help="start the Dagster UI on this platform's instance").add_argument(
        "--port", type=int, default=3000
    )
    stewardship.add_commands(sub)
    workbench = sub.add_parser(
        "workbench", help="the stewards' web workbench, in Swedish (pipelines/workbench/)"
    )
    workbench.add_argument("--port", type=int, default=8089)
    workbench.add_argument("--host", default="127.0.0.1", help="listen address (default: this machine only)")
    dashboards = sub.add_parser("dashboards", help="deploy or serve the Superset dashboards (dashboards/)")
    dashboards.add_argument("action", choices=("deploy", "serve"))
    dashboards.add_argument("--port", type=int, default=8088)
    notebooks = sub.add_parser("notebooks", help="the analysts' Jupyter kernel (notebooks/)")
    notebooks.add_argument("what", choices=("kernel",))
    notebooks.add_argument(
        "action", choices=("install",), help="install the kernelspec `knutpunkt` into this virtualenv"
    )
    onboard = sub.add_parser("onboard", help="propose a dataset contract from a sample export")
    onboard.add_argument("sample", type=Path, help="a sample file as the unit's system exports it")
    onboard.add_argument("--unit", default="new_unit", help="the unit's name (default new_unit)")
    onboard.add_argument("--dataset", help="the dataset's name (default: from the sample's file name)")
    onboard.add_argument("--out", type=Path, help="the draft contract (default <unit>.<dataset>.yaml here)")
    onboard.add_argument(
        "--dry-run", action="store_true", help="also load the sample under the draft on a throwaway home"
    )
    args = parser.parse_args(argv)
    if args.command == "onboard":  # reads only the sample: no platform home, no Dagster instance
        return onboard_sample(args)
    paths = Paths.from_env()
    prepare_dagster_home(paths)
    match args.command:
        case "generate":
            generate(paths, args)
        case "run":
            return run_main_job(paths, args)
        case "ui":
            from pipelines.defs.anchors import platform_instance
            from pipelines.defs.marts import ensure_manifest
            from pipelines.runs import release_dead_runs

            with platform_instance(paths) as instance:  # runs the last daemon left STARTED when it died
                for released in release_dead_runs(instance, orphans=True):
                    console.print(released)
            ensure_manifest()  # parse dbt before the UI starts, not while it loads the code location
            dagster = str(Path(sys.executable).with_name("dagster"))
            ui = ["dev", "-m", "pipelines.definitions", "--host", "127.0.0.1", "--port", str(args.port)]
            os.execve(dagster, [dagster, *ui], platform_env(paths))
        case "steward" | "audit":
            from pipelines.defs.anchors import platform_anchors

            return stewardship.dispatch(args, paths, partial(platform_anchors, paths))
        case "workbench":
            from pipelines.defs.anchors import platform_anchors
            from pipelines.workbench.app import serve

            serve(paths, partial(platform_anchors, paths), args.host, args.port)
        case "dashboards":
            return run_dashboards(paths, args.action, args.port)
        case "notebooks":
            from pipelines.serving import kernel

            console.print(f"Kernel {kernel.KERNEL_NAME!r} installed in {kernel.install()}")
    return 0


def onboard_sample(args: argparse.Namespace) -> int:
    """Print what was inferred from the sample and why, write the draft, and the dry run if asked."""
    from pipelines.ingest.read import DeliveryError
    from pipelines.onboarding import draft_yaml, dry_run, propose
    from pipelines.onboarding.infer import warehouse_name
    from pipelines.units.load import NAME

    dataset = args.dataset or warehouse_name(args.sample.stem.split(".")[0], set())
    for what, name in (("unit", args.unit), ("dataset", dataset)):
        if not NAME.fullmatch(name):
            console.print(f"[red]--{what} {name!r}: lower-case letters, digits and _[/red]")
            return 2
    out = args.out or Path(f"{args.unit}.{dataset}.yaml")
    if out.exists():  # a steward may have filled in its TODO fields already
        console.print(f"[red]{out} exists: remove it or name another --out[/red]")
        return 2
    try:
        proposal = propose(args.sample, args.unit, dataset)
    except (DeliveryError, ValueError, OSError) as e:
        console.print(f"[red]{args.sample}: cannot be read: {e}[/red]")
        return 1
    print(f"{args.sample}: {proposal.sample_rows} rows, proposed as {args.unit}.{dataset}")
    for reason in proposal.reasons:
        print(f"  {reason}")
    draft = draft_yaml(proposal)
    out.write_text(draft, encoding="utf-8")
    print(f"draft written to {out}: loadable as is; a steward fills in its TODO fields before approving it")
    if args.dry_run:
        for line in dry_run(args.sample, draft, args.unit, dataset).describe():
            print(line)
    return 0


def run_dashboards(paths: Paths, action: str, port: int) -> int:
    """Superset runs in its own environment (.venv-superset): hand over to dashboards/manage.py there."""
    from dashboards.home import SUPERSET_VENV  # standard library only

    python = SUPERSET_VENV / "bin" / "python"
    if not python.exists():
        console.print("No .venv-superset: run bin/setup first.")
        return 1
    env = platform_env(paths) | {"PYTHONPATH": str(REPO_ROOT)}
    command = [str(python), "-m", "dashboards.manage", action, "--port", str(port)]
    if action == "serve":  # become the server: Ctrl-C and signals reach it, and no parent stays behind
        os.chdir(REPO_ROOT)
        os.execve(command[0], command, env)
    return subprocess.run(command, cwd=REPO_ROOT, env=env).returncode


def prepare_dagster_home(paths: Paths) -> None:
    """$KNUTPUNKT_HOME/dagster is the platform's Dagster instance, with the repository's dagster.yaml."""
    paths.dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(REPO_ROOT / "dagster.yaml", paths.dagster_home / "dagster.yaml")


def platform_env(paths: Paths) -> dict[str, str]:
    """The environment of a process the CLI hands over to (``dagster dev``, Superset): this platform's home
    and Dagster instance, passed explicitly; the CLI's own environment is never written."""
    return os.environ | {"DAGSTER_HOME": str(paths.dagster_home), HOME_ENV: str(paths.home)}


def generate(paths: Paths, args: argparse.Namespace) -> None:
    from synthetic.generate import generate as generate_municipality

    for folder in (paths.landing, paths.ground_truth):
        shutil.rmtree(folder, ignore_errors=True)
    generate_municipality(
        paths.home,
        citizens=args.citizens,
        years=args.years,
        seed=args.seed,
        defect_rate=args.defect_rate,
        end_month=args.end_month,
    )


def run_main_job(paths: Paths, args: argparse.Namespace) -> int:
    """Generate a municipality and take it through every pipeline, with progress and a summary."""
    from pipelines.border.keys import keyring_from_env
    from pipelines.defs.anchors import DagsterAnchors, platform_instance

    started = time.monotonic()
    keyring_from_env()  # create the key file now, before parallel workers race to do it
    if not args.no_generate:
        console.rule("Generating a synthetic municipality")
        generate(paths, args)
    with platform_instance(paths) as instance:
        console.rule("Loading unit deliveries through the border")
        failed = ingest_all(paths, instance)
        console.rule("Steward approvals (demo steward for datasets nobody has decided on)")
        stewardship.approve_demo(paths, console, DagsterAnchors(instance))
        console.rule("Linking units into the cross-unit zone")
        failed += link_cross_unit(instance)
        console.rule("Building marts (dbt), running discovery, publishing the serving snapshot")
        failed += build_marts_and_publish(paths, instance)
        print_summary(paths, time.monotonic() - started, failed, DagsterAnchors(instance))
    return 1 if failed else 0


def landings(paths: Paths) -> dict[str, Landing]:
    """Each unit's delivery folders now: the months to load in time order, and those rejected."""
    return {unit: scan(paths.landing / unit, date.today()) for unit in units.UNITS}


def partition_range(instance, unit: str, months: list[str]) -> tuple[str, str]:
    """Register the unit's months as partitions; the range (in Dagster's order) that covers them all.

    Dagster orders dynamic partitions as they were added, not in time, so a late month sits after
    later ones; a partition whose folder is no longer in landing is dropped so no range covers it.
    """
    from pipelines.defs.units import deliveries

    name = deliveries(unit).name
    for stale in set(instance.get_dynamic_partitions(name)) - set(months):
        instance.delete_dynamic_partition(name, stale)
    instance.add_dynamic_partitions(name, months)
    ordered = instance.get_dynamic_partitions(name)
    return ordered[0], ordered[-1]


def ingest_all(paths: Paths, instance: dg.DagsterInstance) -> list[str]:
    """One Dagster run per unit over all its delivery months; two units load at a time."""
    from pipelines.runs import release_dead_runs

    for released in release_dead_runs(instance):
        console.print(released)
    months = {unit: landing.months for unit, landing in landings(paths).items() if landing.months}
    if settled := settled_units(paths, months):
        console.print(f"unchanged since their last load and checked, not run again: {', '.join(settled)}")
    months = {u: months[u] for u in largest_first(paths, [u for u in months if u not in settled])}
    ranges = {unit: partition_range(instance, unit, keys) for unit, keys in months.items()}
    for unit in months:
        say_who_holds(instance, unit, f"duckdb_{unit}")
    failed: list[str] = []
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, _progress() as bar:
        queue = manager.Queue()
        tasks = {u: bar.add_task(u, total=len(m)) for u, m in months.items()}
        with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
            futures = [pool.submit(ingest_unit, paths, u, *ranges[u], queue) for u in months]
            pending = set(futures)
            while pending:
                while not queue.empty():
                    unit, _delivery, _rows = queue.get()
                    bar.advance(tasks[unit])
                done = {f for f in pending if f.done()}
                for f in done:
                    unit, ok, run_id = f.result()
                    if not ok:
                        failed.append(f"ingest_{unit} (run {run_id})")
                pending -= done
                time.sleep(0.1)
        while not queue.empty():
            bar.advance(tasks[queue.get()[0]])
    return failed


def largest_first(paths: Paths, names: list[str]) -> list[str]:
    """Units in the order two workers finish them soonest: the most landing bytes first, so the last to
    start is a small one (in the order of the contracts, the largest units came last and loaded alone)."""

    def size(unit: str) -> int:
        return sum(f.stat().st_size for f in (paths.landing / unit).rglob("*") if f.is_file())

    return sorted(names, key=size, reverse=True)


def settled_units(paths: Paths, months: dict[str, list[str]]) -> list[str]:
    """Units whose every delivery in landing is loaded as it is now and checked: a run would redo the
    same work (the time-bound checks have their own schedule)."""
    from pipelines.ingest.delivery import unsettled
    from warehouse.layout import Warehouse

    zones = Warehouse(paths.warehouse)
    return [u for u, m in months.items() if unsettled(zones.unit_zone(u), paths.landing / u, m) == []]


def say_who_holds(instance, what: str, pool: str) -> None:
    """Before a step waits on a pool slot, say which live run holds it: the main job never waits silently."""
    from pipelines.runs import slot_holders

    for run_id in slot_holders(instance, pool):
        run = instance.get_run_by_id(run_id)
        about = f" ({run.job_name}, {run.status.value.lower()})" if run else ""
        console.print(
            f"{what} waits: pool {pool} (one writer per DuckDB file) is held by run {run_id}{about}; "
            "it goes on when that run ends",
            markup=False,
            soft_wrap=True,  # one line whatever the terminal's width: the run id stays whole
        )


def ingest_unit(paths: Paths, unit: str, first: str, last: str, queue) -> tuple[str, bool, str]:
    """Load a unit's months in one Dagster run (in a worker process); report whether it succeeded."""
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from pipelines import progress
    from pipelines.definitions import defs, ingest_job_name
    from pipelines.defs.anchors import platform_instance
    from pipelines.runs import in_this_process

    progress.listen(lambda u, d, n: queue.put((u, d, n)))
    job = defs().resolve_job_def(ingest_job_name(unit))
    run_id, here = in_this_process()
    tags = {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last} | here
    with platform_instance(paths) as instance:
        result = job.execute_in_process(
            instance=instance, run_id=run_id, tags=tags, run_config=QUIET_LOGS, raise_on_error=False
        )
    return unit, result.success, result.run_id  # a held delivery is a check outcome: the run succeeds


def link_cross_unit(instance: dg.DagsterInstance) -> list[str]:
    from pipelines.definitions import LINK_JOB, defs
    from pipelines.runs import in_this_process

    say_who_holds(instance, "linking", "duckdb_cross_unit")
    job = defs().resolve_job_def(LINK_JOB.name)
    run_id, here = in_this_process()
    with console.status("citizen index and linked units"):
        result = job.execute_in_process(
            instance=instance, run_id=run_id, tags=here, run_config=QUIET_LOGS, raise_on_error=False
        )
    return [] if result.success else [f"{LINK_JOB.name} (run {result.run_id})"]


def build_marts_and_publish(paths: Paths, instance: dg.DagsterInstance) -> list[str]:
    """dbt build as Dagster assets (tests as asset checks), then a new disclosure-controlled snapshot."""
    import contextlib

    from pipelines.definitions import MARTS_JOB_NAME, defs
    from pipelines.runs import in_this_process

    say_who_holds(instance, "dbt, discovery and publish", "duckdb_cross_unit")
    run_id, here = in_this_process()
    # Resolving the job loads the dbt manifest (parsed if stale) before the status line.
    job = defs().resolve_job_def(MARTS_JOB_NAME)
    log = paths.dbt / "last-build.log"  # dagster-dbt echoes dbt's own log to stdout
    log.parent.mkdir(parents=True, exist_ok=True)
    with (
        console.status("dbt build: seeds, staging, marts and the citizen-quarter panel; discovery; publish"),
        open(log, "w") as out,
        contextlib.redirect_stdout(out),
    ):
        result = job.execute_in_process(
            instance=instance, run_id=run_id, tags=here, run_config=QUIET_LOGS, raise_on_error=False
        )
    checks = result.get_asset_check_evaluations()
    console.print(
        f"{len(result.get_asset_materialization_events())} assets materialised, "
        f"{sum(c.passed for c in checks)} of {len(checks)} dbt tests passed (dbt log: {log})"
    )
    return [] if result.success else [f"{MARTS_JOB_NAME} (run {result.run_id})"]


def print_summary(paths: Paths, seconds: float, failed: list[str], anchors: AnchorStore) -> None:
    from pipelines.quality.docs import data_docs_root
    from warehouse.layout import Warehouse, connect, run

    wh = Warehouse(paths.warehouse)
    table = Table(title="Knutpunkt: what was loaded")
    for col in (
        "unit",
        "deliveries",
        "rows in files",
        "loaded",
        "quarantined",
        "files rejected",
        "held back",
    ):
        table.add_column(col, justify="left" if col == "unit" else "right", no_wrap=True)
    held: list[str] = []
    for unit in units.UNITS:
        if not wh.unit_zone(unit).exists():
            continue
        with connect(wh.unit_zone(unit), read_only=True) as con:
            row = run(
                con,
                """SELECT count(DISTINCT _delivery), sum(rows_in_file), sum(rows_loaded), sum(rows_quarantined),
                   count(*) FILTER (status = 'rejected'), (SELECT count(*) FROM held_deliveries)
                   FROM reconciliation""",
            )[0]
            held += [
                f"  {unit} {d}: held by {checks}: {_first(reason)}"
                for d, checks, reason in run(
                    con, "SELECT _delivery, checks, reason FROM held_deliveries ORDER BY 1"
                )
            ]
        table.add_row(unit, *(f"{v or 0:,}" for v in row))
    out = Console(width=120, soft_wrap=True)  # paths and reasons stay whole lines, for a reader and grep
    out.print(table)
    _print_held_and_rejected(out, paths, held)
    if wh.cross_unit.exists():
        with connect(wh.cross_unit, read_only=True) as con:
            tables = {t for (t,) in run(con, "SELECT table_name FROM duckdb_tables()")}
            persons = run(con, "SELECT count(*) FROM citizen_index")[0][0] if "citizen_index" in tables else 0
        out.print(f"Citizen index: {persons:,} persons, keyed by the central citizen key.")
    out.print(stewardship.summary(paths, anchors))
    out.print(f"Done in {seconds:.0f} s.")
    out.print(f"Warehouse:   {paths.warehouse}  (one DuckDB file per zone)")
    from pipelines.serving.snapshot import ServingPaths

    if (current := ServingPaths(wh.serving).current).exists():
        out.print(f"Serving:     {current}")
        out.print(
            f"             -> {current.resolve().name}, disclosure-controlled: dashboards open it read-only"
        )
    out.print(f"Landing:     {paths.landing}")
    out.print(f"Data Docs:   {data_docs_root(paths.home)}/<unit>/index.html  (latest validation per unit)")
    out.print(
        f"Dagster UI:  {knutpunkt_command()} ui   then open http://127.0.0.1:3000  (DAGSTER_HOME={paths.dagster_home})"
    )
    for f in failed:
        out.print(f"[red]FAILED[/red] {f}: open it in the Dagster UI for the error")


def _print_held_and_rejected(out: Console, paths: Paths, held: list[str]) -> None:
    """Every delivery folder ends loaded, held (with the check and why) or rejected (with why)."""
    from pipelines.quality.docs import data_docs_root

    if held:
        out.print("Held back from the cross-unit zone until a corrected delivery passes its checks:")
        for line in held:
            out.print(line, markup=False)
        out.print(f"  Why, per expectation: {data_docs_root(paths.home)}/<unit>/index.html; per file: the")
        out.print("  unit's reconciliation and quarantine tables, or the check in the Dagster UI.")
    rejected = [f"  {u} {f}: {why}" for u, ld in landings(paths).items() for f, why in ld.rejected.items()]
    if rejected:
        out.print("Rejected in landing, not loaded (the unit must send it again, as a month YYYY-MM):")
        for line in rejected:
            out.print(line, markup=False)


def _first(reason: str | None, chars: int = 300) -> str:
    """The first of a check's reasons, short enough for one line of the summary."""
    first = (reason or "see the check in the Dagster UI").split("; ")[0]
    return first if len(first) <= chars else first[: chars - 1] + "…"


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


if __name__ == "__main__":
    sys.exit(main())
