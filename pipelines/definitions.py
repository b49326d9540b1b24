"""Everything Dagster loads: the definitions of every zone (``pipelines.defs``) merged, with the jobs across them.

``defs`` is lazy (``@dg.definitions``): importing this module parses nothing; the dbt manifest is
ensured when Dagster, the CLI or a test first calls ``defs()``.
"""

from functools import cache

import dagster as dg

from pipelines.defs.cross_unit import LINK_ASSETS, citizen_index
from pipelines.defs.discovery import discovery
from pipelines.defs.marts import dbt_models, dbt_resource
from pipelines.defs.publish import MARTS_JOB_NAME, marts_after_links, serving_snapshot
from pipelines.defs.resources import Platform
from pipelines.defs.stewardship import retention_job, retention_schedule, steward_decisions
from pipelines.defs.unit_checks import FRESHNESS_JOB, FRESHNESS_SCHEDULE, OVERDUE_CHECKS
from pipelines.defs.units import UNIT_ASSETS, new_deliveries, unit_asset_key
from pipelines.units import UNITS


def ingest_job_name(unit: str) -> str:
    return f"ingest_{unit}"


INGEST_JOBS = [dg.define_asset_job(ingest_job_name(u), selection=[unit_asset_key(u)]) for u in UNITS]
LINK_JOB = dg.define_asset_job("link_cross_unit", selection=dg.AssetSelection.groups("cross_unit"))


@dg.definitions
@cache
def defs() -> dg.Definitions:
    """Every zone's definitions; the dbt models (their tests as checks), the discovery analyses and a new
    serving snapshot form the marts job."""
    marts_job = dg.define_asset_job(
        MARTS_JOB_NAME,
        selection=dg.AssetSelection.assets(dbt_models(), discovery, serving_snapshot()),
    )
    return dg.Definitions(
        assets=[
            *UNIT_ASSETS,
            citizen_index,
            *LINK_ASSETS,
            dbt_models(),
            discovery,
            serving_snapshot(),
        ],
        asset_checks=[*OVERDUE_CHECKS],
        jobs=[*INGEST_JOBS, LINK_JOB, retention_job, FRESHNESS_JOB, marts_job],
        schedules=[retention_schedule, FRESHNESS_SCHEDULE],
        sensors=[
            new_deliveries,
            steward_decisions(),
            marts_after_links(),
            dg.AutomationConditionSensorDefinition(  # Dagster starts one stopped: no link would follow a load
                "cross_unit_automation", target="*", default_status=dg.DefaultSensorStatus.RUNNING
            ),
        ],
        resources={"platform": Platform(), "dbt": dbt_resource()},
        # One process per run, its steps in turn, as the main job runs them: Dagster's default starts a
        # process per step (4 s of imports each), though the steps of a link or marts run all write the
        # cross-unit zone, whose pool runs them in turn anyway (a live month at 20,000 x 2: its fourteen
        # runs took 327 s from launch to end, 101 s in process).
        executor=dg.in_process_executor,
    )
