"""One asset per unit zone, partitioned by delivery month.

Partitions are dynamic: a month exists once the unit has delivered it (the
sensor registers it), so a late delivery is simply a partition that appears
late. A run may cover a range of months (single-run backfill), loaded in batches
of months, each batch replacing its months' partitions atomically.

Each delivery is checked right after it is stored (``pipelines.defs.unit_checks``):
an ERROR from reconciliation or the GX suite holds that delivery back from
everything downstream (``pipelines.quality.gate``), freshness warns. The checks
report per partition.

The sensor ``new_deliveries`` picks up new and re-sent deliveries from landing/, and deliveries
stored without a verdict (a load killed before its checks), and asks for their partitions to be loaded. What counts as new is judged against what the unit zone says it loaded (each load records its
delivery's fingerprint), not only against the sensor's own cursor: opening the UI on a home the
main job loaded queues nothing, and a delivery changed since its load queues one run. A folder that
cannot be a delivery (``2026-13``, a month not begun, no files) is logged with its reason. A load whose
run failed (killed, a zone held) is asked for again, up to ``pipelines.runs.ATTEMPTS`` runs.
"""

import json
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date

import dagster as dg

from pipelines import progress
from pipelines.defs import unit_checks
from pipelines.defs.resources import Platform
from pipelines.ingest.delivery import FileResult, LoadState, load_deliveries, load_state
from pipelines.ingest.months import fingerprint, scan
from pipelines.quality import docs
from pipelines.runs import REQUEST_TAG, attempts, release_dead_runs
from pipelines.units import UNITS, Unit


def deliveries(unit: str) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=f"{unit}_deliveries")


def unit_asset_key(unit: str) -> dg.AssetKey:
    return dg.AssetKey(["units", unit])


def build_unit_asset(unit: Unit) -> dg.AssetsDefinition:
    key = unit_asset_key(unit.name)

    @dg.asset(
        key=key,
        group_name="unit_zones",
        description=f"{unit.title}: monthly deliveries, pseudonymised at the border, with quarantine "
        f"and reconciliation. Tables: {', '.join(d.name for d in unit.datasets)}.",
        partitions_def=deliveries(unit.name),
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=f"duckdb_{unit.name}",
        kinds={"duckdb"},
        owners=[],
        tags={"forvaltning": _tag(unit.forvaltning)},
        check_specs=unit_checks.check_specs(unit, key, deliveries(unit.name)),
    )
    def _load(context: dg.AssetExecutionContext, platform: Platform) -> Iterator:
        keys, totals, problems, evaluations = platform.keyring(), Counter(), [], []
        selected = {k.name for k in context.selected_asset_check_keys}
        deliveries_ = sorted(context.partition_keys)  # time order, whatever the order they arrived in
        started = time.perf_counter()
        loads = load_deliveries(unit, deliveries_, platform.paths.landing, platform.warehouse, keys)
        for delivery, results in loads:
            _add(totals, results)
            problems += [
                f"{r.source_file}: {r.status} ({r.reason})"
                for r in results
                if r.status in ("rejected", "misnamed")
            ]
            progress.delivery_loaded(unit.name, delivery, sum(r.rows_in_file or 0 for r in results))
        loaded = time.perf_counter()
        if selected:
            evaluations = unit_checks.check_deliveries(
                unit, deliveries_, platform.paths, platform.warehouse, selected
            )
        seconds = {"load": loaded - started, "checks": time.perf_counter() - loaded}
        for problem in problems:
            context.log.info(problem)  # reported by the expectations check and the held delivery
        yield dg.MaterializeResult(
            metadata={
                "deliveries": len(context.partition_keys),
                "rows_in_files": totals["rows_in_file"],
                "rows_loaded": totals["rows_loaded"],
                "rows_quarantined": totals["rows_quarantined"],
                "files_rejected": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
                "seconds_loading": round(seconds["load"], 2),  # the border, for bench/scale.py
                "seconds_checking": round(seconds["checks"], 2),  # reconciliation, GX, freshness
                "zone": dg.MetadataValue.path(str(platform.warehouse.unit_zone(unit.name))),
                "data_docs": dg.MetadataValue.path(str(docs.unit_site(platform.paths.home, unit.name))),
            }
        )
        yield from evaluations
        for check_key in context.selected_asset_check_keys:
            yield dg.Output(
                None, output_name=context.assets_def.get_output_name_for_asset_check_key(check_key)
            )

    return _load


def _add(totals: Counter, results: list[FileResult]) -> None:
    for r in results:
        totals["rows_in_file"] += r.rows_in_file or 0
        totals["rows_loaded"] += r.rows_loaded
        totals["rows_quarantined"] += r.rows_quarantined or 0


def _tag(value: str) -> str:
    """Dagster tag values allow only ASCII letters, digits and -_."""
    return (
        value.lower()
        .replace("å", "a")
        .replace("ä", "a")
        .replace("ö", "o")
        .replace(" ", "_")
        .replace("-", "_")
    )


UNIT_ASSETS = [build_unit_asset(unit) for unit in UNITS.values()]


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=[unit_asset_key(u) for u in UNITS],
    description="Registers each new delivery month as a partition and loads it; a re-sent delivery reloads.",
)
def new_deliveries(
    context: dg.SensorEvaluationContext, platform: Platform
) -> dg.SensorResult | dg.SkipReason:
    for released in release_dead_runs(context.instance):
        context.log.warning(released)
    paths = platform.paths
    requested: dict[str, str] = json.loads(context.cursor or "{}")  # unit/month -> the request asked
    runs, partitions = [], []
    for unit in UNITS:
        landing = scan(paths.landing / unit, date.today())
        for folder, reason in landing.rejected.items():
            context.log.warning(f"{unit}/{folder} is not loaded: {reason}")
        state = load_state(platform.warehouse.unit_zone(unit))
        if state is None:
            context.log.info(f"{unit}: its zone is being written; looking again at the next tick")
            continue
        new = {}
        for month in landing.months:
            if (ask := _ask(state, month, fingerprint(paths.landing / unit / month))) is None:
                continue
            asked = requested.get(f"{unit}/{month}", "")
            if asked.partition("@")[0] != ask:
                new[month] = f"{ask}@{time.time_ns()}"
            elif again := _again(context, f"{unit}/{month}/{asked}"):
                runs.append(_load(unit, month, f"{unit}/{month}/{asked}", again))
        if new:
            partitions.append(deliveries(unit).build_add_request(sorted(new)))
        for month, asked in sorted(new.items()):
            requested[f"{unit}/{month}"] = asked
            runs.append(_load(unit, month, f"{unit}/{month}/{asked}"))
    return dg.SensorResult(
        run_requests=runs, dynamic_partitions_requests=partitions, cursor=json.dumps(requested)
    )


def _ask(state: LoadState, month: str, fp: str) -> str | None:
    """What a delivery needs: nothing if it was loaded as it is now and checked; a load if it changed
    since; a load again if it was stored as it is but never checked (a load killed before its verdict)."""
    if state.settled(month, fp):
        return None
    return f"{fp}/unchecked" if state.loaded.get(month) == fp else fp


def _load(unit: str, month: str, request: str, run_key: str | None = None) -> dg.RunRequest:
    """A delivery's load. Each request has an id of its own (a time stamp): Dagster runs a sensor's run
    key once, and a delivery can come back as it was (a backup restored with its file times)."""
    return dg.RunRequest(
        run_key=run_key or request,
        asset_selection=[unit_asset_key(unit)],
        partition_key=month,
        tags={REQUEST_TAG: request},
    )


def _again(context: dg.SensorEvaluationContext, request: str) -> str | None:
    """The run key to load a delivery with again, if every run asked for it failed (fewer than
    ``runs.ATTEMPTS``); a delivery that failed that often is said on every tick."""
    tried, delivery = attempts(context.instance, request), "/".join(request.split("/")[:2])
    if tried.again:
        context.log.warning(tried.asking_again(f"{delivery}: its load"))
        return tried.run_key(request)
    if tried.given_up:
        context.log.error(
            tried.gave_up(f"{delivery}: its load")
            + "; not asked again until the delivery is sent again or `knutpunkt run` loads it"
        )
    return None
