"""One asset per unit zone, partitioned by delivery month.

Partitions are dynamic: a month exists once the unit has delivered it (the
sensor registers it), so a late delivery is simply a partition that appears
late. A run may cover a range of months (single-run backfill); each month is
still replaced atomically on its own.
"""

from collections import Counter

import dagster as dg

from pipelines import progress
from pipelines.ingest.delivery import FileResult, load_delivery
from pipelines.resources import Platform
from pipelines.units import UNITS, Unit


def deliveries(unit: str) -> dg.DynamicPartitionsDefinition:
    return dg.DynamicPartitionsDefinition(name=f"{unit}_deliveries")


def unit_asset_key(unit: str) -> dg.AssetKey:
    return dg.AssetKey(["units", unit])


def build_unit_asset(unit: Unit) -> dg.AssetsDefinition:
    @dg.asset(
        key=unit_asset_key(unit.name),
        group_name="unit_zones",
        description=f"{unit.title}: monthly deliveries, pseudonymised at the border, with quarantine "
        f"and reconciliation. Tables: {', '.join(d.name for d in unit.datasets)}.",
        partitions_def=deliveries(unit.name),
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=f"duckdb_{unit.name}",
        kinds={"duckdb"},
        owners=[],
        tags={"forvaltning": _tag(unit.forvaltning)},
    )
    def _load(context: dg.AssetExecutionContext, platform: Platform) -> dg.MaterializeResult:
        keys, totals, problems = platform.keyring(), Counter(), []
        for delivery in context.partition_keys:
            results = load_delivery(unit, delivery, platform.paths.landing, platform.warehouse, keys)
            _add(totals, results)
            problems += [
                f"{r.source_file}: {r.status} ({r.reason})" for r in results if r.status == "rejected"
            ]
            progress.delivery_loaded(unit.name, delivery, sum(r.rows_in_file or 0 for r in results))
        for problem in problems:
            context.log.warning(problem)
        return dg.MaterializeResult(
            metadata={
                "deliveries": len(context.partition_keys),
                "rows_in_files": totals["rows_in_file"],
                "rows_loaded": totals["rows_loaded"],
                "rows_quarantined": totals["rows_quarantined"],
                "files_rejected": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems) or "none"),
                "zone": dg.MetadataValue.path(str(platform.warehouse.unit_zone(unit.name))),
            }
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
