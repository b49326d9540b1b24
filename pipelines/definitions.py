"""Everything Dagster loads: the unit zones, the cross-unit zone, their jobs and the delivery sensor."""

import dagster as dg

from pipelines.assets.cross_unit import LINK_ASSETS, citizen_index
from pipelines.assets.units import UNIT_ASSETS, unit_asset_key
from pipelines.resources import Platform
from pipelines.sensors import new_deliveries
from pipelines.units import UNITS


def ingest_job_name(unit: str) -> str:
    return f"ingest_{unit}"


INGEST_JOBS = [dg.define_asset_job(ingest_job_name(u), selection=[unit_asset_key(u)]) for u in UNITS]
LINK_JOB = dg.define_asset_job("link_cross_unit", selection=dg.AssetSelection.groups("cross_unit"))

defs = dg.Definitions(
    assets=[*UNIT_ASSETS, citizen_index, *LINK_ASSETS],
    jobs=[*INGEST_JOBS, LINK_JOB],
    sensors=[new_deliveries, dg.AutomationConditionSensorDefinition("cross_unit_automation", target="*")],
    resources={"platform": Platform()},
)
