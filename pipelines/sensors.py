"""Picks up new and re-sent deliveries from landing/ and asks for their partitions to be loaded."""

import json
from pathlib import Path

import dagster as dg

from pipelines.assets.units import deliveries, unit_asset_key
from pipelines.settings import Paths
from pipelines.units import UNITS

DELIVERY_GLOB = "[0-9][0-9][0-9][0-9]-[0-1][0-9]"


def fingerprint(folder: Path) -> str:
    """Changes when a file in the delivery is added, replaced or rewritten."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)


def scan(landing: Path, seen: dict[str, str]) -> dict[str, dict[str, str]]:
    """New or changed deliveries per unit: {unit: {month: fingerprint}}."""
    found: dict[str, dict[str, str]] = {}
    for unit in UNITS:
        for folder in sorted((landing / unit).glob(DELIVERY_GLOB)):
            fp = fingerprint(folder)
            if fp and seen.get(f"{unit}/{folder.name}") != fp:
                found.setdefault(unit, {})[folder.name] = fp
    return found


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=[unit_asset_key(u) for u in UNITS],
    description="Registers each new delivery month as a partition and loads it; a re-sent delivery reloads.",
)
def new_deliveries(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    seen = json.loads(context.cursor or "{}")
    found = scan(Paths.from_env().landing, seen)
    runs, partitions = [], []
    for unit, months in found.items():
        partitions.append(deliveries(unit).build_add_request(sorted(months)))
        for month, fp in months.items():
            seen[f"{unit}/{month}"] = fp
            runs.append(
                dg.RunRequest(
                    run_key=f"{unit}/{month}/{fp}",
                    asset_selection=[unit_asset_key(unit)],
                    partition_key=month,
                )
            )
    return dg.SensorResult(run_requests=runs, dynamic_partitions_requests=partitions, cursor=json.dumps(seen))
