"""Stewardship's Dagster definitions: the sensor that relinks on a steward's decision, and gallring.

``steward_decisions`` relinks a unit as soon as what it may share changes, instead of waiting for
its next delivery. The cross-unit assets rebuild on new deliveries; a steward's decision must not
wait for one. Each tick computes every dataset's sharing status (approved,
pending, expired, revoked, with the contract version) and asks for the link
assets of the units whose status changed: an approval, a revocation, an edited
contract, or an approval whose expiry date has just passed. A change to
folkbokföring relinks everything, since every linked table says who is known
to the register. Once every unit has delivered (the marts read every unit
zone), the same run rebuilds what reads the cross-unit zone (dbt models with
the panel, the discovery findings, the serving snapshot), so a withdrawal
reaches findings and dashboards too, not only the linked tables.

The ``retention`` job (schedule ``nightly_retention``) runs gallring
(``pipelines.stewardship.retention``). DuckDB allows one writer per file, so each unit's step
runs in that unit's pool (``duckdb_<unit>``) and the cross-unit step in ``duckdb_cross_unit``,
the same pools as the loads and links that write those files.
"""

import hashlib
import json
from functools import cache

import dagster as dg

from pipelines.defs.anchors import DagsterAnchors
from pipelines.defs.cross_unit import LINKED_UNDER, link_key
from pipelines.defs.publish import downstream
from pipelines.defs.resources import Platform
from pipelines.settings import Paths
from pipelines.stewardship import approvals, audit
from pipelines.stewardship.contracts import load_contracts
from pipelines.stewardship.retention import thin_cross_unit, thin_unit
from pipelines.units import UNITS, Unit

REGISTER = "folkbokforing"


def sharing_state(paths: Paths, anchors: audit.AnchorStore) -> dict[str, str]:
    """Per dataset: its state and the contract version it applies to."""
    contracts = load_contracts()
    states = approvals.statuses(contracts, paths, anchors=anchors)
    return {key: approvals.marked(contracts[key], s) for key, s in states.items()}


def linked_under(instance: dg.DagsterInstance) -> dict[str, str]:
    """The sharing each unit's latest link ran under, as its materialisation records it: the baseline of
    a first tick, which has no cursor, so that a home the main job linked is not linked again."""
    state: dict[str, str] = {}
    for unit in UNITS:
        [*latest] = instance.fetch_materializations(link_key(unit), limit=1).records
        recorded = latest[0].asset_materialization.metadata.get(LINKED_UNDER) if latest else None
        state |= recorded.value if recorded else {}
    return state


def changed_units(before: dict[str, str], now: dict[str, str]) -> set[str]:
    return {key.split(".")[0] for key in now if before.get(key) != now[key]}


@cache
def steward_decisions() -> dg.SensorDefinition:
    """The sensor, built with the dbt assets it may ask for (:func:`downstream`), not at import."""
    return dg.sensor(
        name="steward_decisions",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        asset_selection=[*(link_key(u) for u in UNITS), *downstream()],
        description="Relinks a unit when a steward approves or revokes, a contract changes or an approval expires.",
    )(relink_on_decisions)


def relink_on_decisions(
    context: dg.SensorEvaluationContext, platform: Platform
) -> dg.SensorResult | dg.SkipReason:
    """One tick: the units whose sharing status changed since the cursor, and what reads them."""
    paths = platform.paths
    try:
        now = sharing_state(paths, DagsterAnchors(context.instance))
    except audit.AuditError as e:
        return dg.SkipReason(f"the audit log does not verify, nothing is relinked: {e}")
    before = json.loads(context.cursor) if context.cursor else linked_under(context.instance)
    units = changed_units(before, now)
    wh = platform.warehouse
    if REGISTER in units:
        units |= set(UNITS)
    loaded = sorted(u for u in units if wh.unit_zone(u).exists())
    if not loaded:
        return dg.SensorResult(cursor=json.dumps(now))
    run_key = hashlib.sha256(json.dumps(now, sort_keys=True).encode()).hexdigest()[:16]
    links = [link_key(u) for u in loaded]
    rebuild = downstream() if all(wh.unit_zone(u).exists() for u in UNITS) else []  # marts read every zone
    request = dg.RunRequest(run_key=f"sharing-{run_key}", asset_selection=[*links, *rebuild])
    return dg.SensorResult(run_requests=[request], cursor=json.dumps(now))


def _unit_op(unit: Unit) -> dg.OpDefinition:
    @dg.op(
        name=f"retention_{unit.name}",
        pool=f"duckdb_{unit.name}",
        description=f"Gallring in {unit.title}: landing files, zone rows and quarantine past retention.",
    )
    def _thin(context: dg.OpExecutionContext, platform: Platform) -> dict:
        removed = thin_unit(unit, platform.paths)
        context.add_output_metadata({f"{ds}_rows_removed": r["rows"] for ds, r in removed.items()})
        return removed

    return _thin


@dg.op(pool="duckdb_cross_unit", description="Gallring in the cross-unit zone.")
def retention_cross_unit(context: dg.OpExecutionContext, platform: Platform) -> dict:
    removed = thin_cross_unit(platform.paths)
    context.add_output_metadata({"rows_removed": sum(removed.values()), **removed})
    return removed


UNIT_OPS = [_unit_op(u) for u in UNITS.values()]


@dg.job(
    name="retention",
    description="Remove rows older than each dataset contract's retention from every zone (gallring), audited.",
)
def retention_job() -> None:
    for op in UNIT_OPS:
        op()
    retention_cross_unit()


retention_schedule = dg.ScheduleDefinition(
    name="nightly_retention",
    job=retention_job,
    cron_schedule="30 2 * * *",
    execution_timezone="Europe/Stockholm",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Gallring every night: rows past their contract's retention leave every zone.",
)
