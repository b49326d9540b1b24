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
import time
from functools import cache

import dagster as dg

from pipelines.defs.anchors import DagsterAnchors
from pipelines.defs.cross_unit import LINKED_UNDER, link_key
from pipelines.defs.publish import downstream
from pipelines.defs.resources import Platform
from pipelines.runs import REQUEST_TAG, attempts
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
    """One tick: the units whose sharing status changed since the cursor, and what reads them; or, when
    nothing changed, the last relink again if its runs all failed (a revocation must not stay undone)."""
    paths = platform.paths
    try:
        now = sharing_state(paths, DagsterAnchors(context.instance))
    except audit.AuditError as e:
        return dg.SkipReason(f"the audit log does not verify, nothing is relinked: {e}")
    before, asked = _read_cursor(context)
    units = changed_units(before, now)
    if not units:
        return _relink_again(context, asked) or dg.SensorResult(cursor=_cursor(now, asked))
    wh = platform.warehouse
    if REGISTER in units:
        units |= set(UNITS)
    loaded = sorted(u for u in units if wh.unit_zone(u).exists())
    if not loaded:
        return dg.SensorResult(cursor=_cursor(now, asked))
    request_id = (
        "sharing-" + hashlib.sha256(f"{asked or time.time_ns()}|{json.dumps(now)}".encode()).hexdigest()[:16]
    )
    links = [link_key(u) for u in loaded]
    rebuild = downstream() if all(wh.unit_zone(u).exists() for u in UNITS) else []  # marts read every zone
    request = dg.RunRequest(
        run_key=request_id, asset_selection=[*links, *rebuild], tags={REQUEST_TAG: request_id}
    )
    return dg.SensorResult(run_requests=[request], cursor=_cursor(now, request_id))


def _read_cursor(context: dg.SensorEvaluationContext) -> tuple[dict[str, str], str | None]:
    """The sharing state last acted on and the relink asked for it. A first tick compares with what the
    links ran under. Each request's id chains the one before, so a state that comes back (revoked,
    approved, revoked again) is asked for under a new run key: Dagster runs a sensor's run key once."""
    if not context.cursor:
        return linked_under(context.instance), None
    cursor = json.loads(context.cursor)
    return (cursor["state"], cursor["asked"]) if "state" in cursor else (cursor, None)  # before ids


def _cursor(state: dict[str, str], asked: str | None) -> str:
    return json.dumps({"state": state, "asked": asked})


def _relink_again(
    context: dg.SensorEvaluationContext, asked: str | None
) -> dg.SensorResult | dg.SkipReason | None:
    """The last relink asked for again if its runs all failed; said, if they failed too often."""
    tried = attempts(context.instance, asked) if asked else None
    if tried and tried.again:
        context.log.warning(tried.asking_again("the relink after a steward's decision"))
        selection = list(context.instance.get_run_by_id(tried.failed[-1]).asset_selection or ())
        request = dg.RunRequest(
            run_key=tried.run_key(asked), asset_selection=selection, tags={REQUEST_TAG: asked}
        )
        return dg.SensorResult(run_requests=[request])
    if tried and tried.given_up:
        return dg.SkipReason(
            tried.gave_up("the relink after a steward's decision") + ": the cross-unit zone may still hold "
            "what was withdrawn; run `knutpunkt run` once the cause is fixed"
        )
    return None


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
