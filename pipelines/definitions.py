"""Everything Dagster loads: the unit zones, the cross-unit zone, their jobs, the delivery sensor and gallring."""

import dagster as dg

from pipelines.assets.cross_unit import LINK_ASSETS, citizen_index
from pipelines.assets.discovery import DISCOVERY_ASSETS
from pipelines.assets.marts import dbt_models, dbt_resource
from pipelines.assets.publish import serving_snapshot
from pipelines.assets.stewardship import steward_decisions
from pipelines.assets.units import UNIT_ASSETS, unit_asset_key
from pipelines.quality.checks import FRESHNESS_JOB, FRESHNESS_SCHEDULE, OVERDUE_CHECKS
from pipelines.resources import Platform
from pipelines.sensors import new_deliveries
from pipelines.stewardship.retention import retention_job, retention_schedule
from pipelines.units import UNITS


def ingest_job_name(unit: str) -> str:
    return f"ingest_{unit}"


INGEST_JOBS = [dg.define_asset_job(ingest_job_name(u), selection=[unit_asset_key(u)]) for u in UNITS]
LINK_JOB = dg.define_asset_job("link_cross_unit", selection=dg.AssetSelection.groups("cross_unit"))
# dbt models (their tests as checks), the discovery analyses, then a new serving snapshot.
MARTS_JOB = dg.define_asset_job(
    "build_marts_and_publish",
    selection=dg.AssetSelection.assets(dbt_models, *DISCOVERY_ASSETS, serving_snapshot),
)

defs = dg.Definitions(
    assets=[*UNIT_ASSETS, citizen_index, *LINK_ASSETS, dbt_models, *DISCOVERY_ASSETS, serving_snapshot],
    asset_checks=[*OVERDUE_CHECKS],
    jobs=[*INGEST_JOBS, LINK_JOB, retention_job, FRESHNESS_JOB, MARTS_JOB],
    schedules=[retention_schedule, FRESHNESS_SCHEDULE],
    sensors=[
        new_deliveries,
        steward_decisions,
        dg.AutomationConditionSensorDefinition("cross_unit_automation", target="*"),
    ],
    resources={"platform": Platform(), "dbt": dbt_resource()},
)
