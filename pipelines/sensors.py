"""Picks up new and re-sent deliveries from landing/ and asks for their partitions to be loaded.

What counts as new is judged against what the unit zone says it loaded (each load records its
delivery's fingerprint), not only against the sensor's own cursor: opening the UI on a home the
main job loaded queues nothing, and a delivery changed since its load queues one run. A folder that
cannot be a delivery (``2026-13``, a month not begun, no files) is logged with its reason.
"""

import json
from datetime import date

import dagster as dg

from pipelines.assets.units import deliveries, unit_asset_key
from pipelines.ingest.delivery import loaded_fingerprints
from pipelines.ingest.months import fingerprint, scan
from pipelines.runs import release_dead_runs
from pipelines.settings import Paths
from pipelines.units import UNITS
from warehouse.layout import Warehouse


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=[unit_asset_key(u) for u in UNITS],
    description="Registers each new delivery month as a partition and loads it; a re-sent delivery reloads.",
)
def new_deliveries(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    for released in release_dead_runs(context.instance):
        context.log.warning(released)
    paths = Paths.from_env()
    requested: dict[str, str] = json.loads(context.cursor or "{}")  # unit/month -> fingerprint asked for
    runs, partitions = [], []
    for unit in UNITS:
        landing = scan(paths.landing / unit, date.today())
        for folder, reason in landing.rejected.items():
            context.log.warning(f"{unit}/{folder} is not loaded: {reason}")
        loaded = loaded_fingerprints(Warehouse(paths.warehouse).unit_zone(unit))
        if loaded is None:
            context.log.info(f"{unit}: its zone is being written; looking again at the next tick")
            continue
        new = {}
        for month in landing.months:
            fp = fingerprint(paths.landing / unit / month)
            if fp not in (loaded.get(month), requested.get(f"{unit}/{month}")):
                new[month] = fp
        if new:
            partitions.append(deliveries(unit).build_add_request(sorted(new)))
        for month, fp in sorted(new.items()):
            requested[f"{unit}/{month}"] = fp
            runs.append(
                dg.RunRequest(
                    run_key=f"{unit}/{month}/{fp}",
                    asset_selection=[unit_asset_key(unit)],
                    partition_key=month,
                )
            )
    return dg.SensorResult(
        run_requests=runs, dynamic_partitions_requests=partitions, cursor=json.dumps(requested)
    )
