"""The publish step: a new immutable, disclosure-controlled serving snapshot after every marts build.

Dashboards (Superset) and notebooks read only the snapshot, read-only, through
``warehouse/serving/current.duckdb``; see ``pipelines/serving/snapshot.py`` for why a write never
fails a reader and a reader never fails a write.

On the running platform a month arrives as runs: the delivery sensor's unit runs, then the links that
automation asks for as each unit's load lands. The sensor ``marts_after_links`` asks for the marts
run (dbt, discovery, publish) once every link has caught up with its unit's latest load: one run for
a month's wave of deliveries, not one per unit, and none while a link is behind (a link that fails,
for instance on an audit log that does not verify, holds the dashboards at their last snapshot).
"""

from functools import cache

import dagster as dg

from pipelines.defs.anchors import DagsterAnchors
from pipelines.defs.cross_unit import citizen_index, link_key
from pipelines.defs.discovery import DISCOVERY_KEYS
from pipelines.defs.marts import dbt_models
from pipelines.defs.resources import Platform
from pipelines.defs.units import unit_asset_key
from pipelines.disclosure import DEFAULT_THRESHOLD
from pipelines.disclosure.memo import AuditMemo
from pipelines.runs import REQUEST_TAG, attempts
from pipelines.serving.build import build_tables
from pipelines.serving.presentation import VIEWS
from pipelines.serving.sharing import sharing_fingerprint
from pipelines.serving.snapshot import KEEP, ServingPaths, current_snapshot, write_snapshot
from pipelines.units import UNITS

SNAPSHOT_KEY = dg.AssetKey(["serving", "snapshot"])
MARTS_JOB_NAME = "build_marts_and_publish"
UNDER_WAY = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


class PublishConfig(dg.Config):
    """Counts are withheld under the disclosure policy's threshold (``pipelines.disclosure.policy``), which the
    discovery findings apply too: it is no run config, so the two cannot disagree."""

    keep: int = KEEP  # snapshots kept on disk, the current one included


def serving_paths(platform: Platform) -> ServingPaths:
    return ServingPaths(platform.warehouse.serving)


@cache
def serving_snapshot() -> dg.AssetsDefinition:
    """The publish asset, downstream of every dbt model: built with them (:func:`dbt_models`), not at import."""
    return dg.asset(
        key=SNAPSHOT_KEY,
        deps=[dbt_models(), *DISCOVERY_KEYS],
        group_name="serving",
        description="Aggregates for dashboards and notebooks with small counts withheld (primary and "
        "secondary suppression), written as a new DuckDB file per publish; current.duckdb points at it.",
        pool="duckdb_cross_unit",  # reads the cross-unit zone (the panel): no writer may hold it meanwhile
        kinds={"duckdb"},
    )(publish)


def publish(
    context: dg.AssetExecutionContext, config: PublishConfig, platform: Platform
) -> dg.MaterializeResult:
    """Write a new snapshot under the sharing state of now, keep the last ``config.keep``."""
    wh, paths = platform.warehouse, serving_paths(platform)
    anchors = DagsterAnchors(context.instance)  # the decisions as the sharing gate verifies them
    sharing = sharing_fingerprint(wh.cross_unit, platform.paths, anchors)  # before the build reads the zone
    previous = current_snapshot(paths) if paths.current.exists() else None  # audited with the new one
    memo = AuditMemo(wh.audit_memo, platform.keyring().audit_memo().secret)
    if memo.rejected:
        context.log.warning(
            f"{memo.rejected} entries of {wh.audit_memo} do not verify: their blocks are solved again"
        )
    build = build_tables(wh.marts, wh.cross_unit, DEFAULT_THRESHOLD, previous, memo=memo)
    path = write_snapshot(paths, build.tables, build.comments, keep=config.keep, sharing=sharing, views=VIEWS)
    memo.save()  # after the snapshot: a publish that failed leaves the last memo
    return dg.MaterializeResult(
        metadata={
            "snapshot": dg.MetadataValue.path(str(path)),
            "current": dg.MetadataValue.path(str(serving_paths(platform).current)),
            "threshold": DEFAULT_THRESHOLD,
            "sharing": sharing,
            "tables": dg.MetadataValue.md(
                "\n".join(f"- {name}: {frame.height:,} rows" for name, frame in build.tables.items())
            ),
            "views": [view.name for view in VIEWS],
            "cells_withheld": dg.MetadataValue.json(build.withheld),
            "cells_published": dg.MetadataValue.json(build.stats.published),
            "cells_primary": dg.MetadataValue.json(build.stats.primary),
            "cells_secondary": dg.MetadataValue.json(build.stats.secondary),
            "bounds_audit": dg.MetadataValue.json(build.stats.audit),
        }
    )


@cache
def downstream() -> list[dg.AssetKey]:
    """What reads the cross-unit zone and the unit zones, rebuilt by a marts run: dbt models, findings,
    snapshot."""
    return [*dbt_models().keys, *DISCOVERY_KEYS, SNAPSHOT_KEY]


@cache
def marts_after_links() -> dg.SensorDefinition:
    """The sensor, built with the dbt assets it asks for (:func:`downstream`), not at import."""
    return dg.sensor(
        name="marts_after_links",
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        asset_selection=downstream(),
        description="Rebuilds the marts, the findings and the snapshot once every unit's new deliveries "
        "are linked: one run for a month's deliveries.",
    )(rebuild_after_links)


def rebuild_after_links(
    context: dg.SensorEvaluationContext, platform: Platform
) -> dg.SensorResult | dg.SkipReason:
    """One tick: a marts run when the units' loads and their links are newer than the snapshot and no
    link is behind its unit or the citizen index. Asked once per state (the newest load or link)."""
    if missing := [u for u in UNITS if not platform.warehouse.unit_zone(u).exists()]:
        return dg.SkipReason(f"the marts read every unit zone; none yet for {', '.join(missing)}")
    latest = _latest_ids(context.instance)
    if behind := _behind(latest):
        return dg.SkipReason(
            f"waiting for the link of {', '.join(behind)}" + _failed(context.instance, behind, latest)
        )
    newest = max(latest[k] for k in latest if k != SNAPSHOT_KEY)
    if newest < latest[SNAPSHOT_KEY]:
        return dg.SkipReason("the snapshot is newer than every load and link")
    if run := _rebuilding(context.instance):
        return dg.SkipReason(f"run {run} rebuilds the marts; looking again when it has ended")
    wave = f"linked-{newest}"
    if context.cursor != str(newest):
        return _rebuild(wave, wave, newest)
    tried = attempts(context.instance, wave)
    if tried.again:
        context.log.warning(tried.asking_again("the marts' rebuild"))
        return _rebuild(wave, tried.run_key(wave), newest)
    if tried.given_up:
        return dg.SkipReason(
            tried.gave_up("the marts' rebuild for these loads and links") + ": the dashboards stay at the "
            "last snapshot until the next load, a steward's decision or `knutpunkt run`"
        )
    return dg.SkipReason(f"a marts run was asked for these loads and links (event {newest})")


def _rebuild(wave: str, run_key: str, newest: int) -> dg.SensorResult:
    request = dg.RunRequest(run_key=run_key, asset_selection=downstream(), tags={REQUEST_TAG: wave})
    return dg.SensorResult(run_requests=[request], cursor=str(newest))


def _latest_ids(instance: dg.DagsterInstance) -> dict[dg.AssetKey, int]:
    """The storage id of each unit's, link's and the snapshot's latest materialisation (0: none): ids of
    one event log, so they order the materialisations in time."""
    keys = [*(unit_asset_key(u) for u in UNITS), *(link_key(u) for u in UNITS), SNAPSHOT_KEY]
    latest = {}
    for key in keys:
        [*record] = instance.fetch_materializations(key, limit=1).records
        latest[key] = record[0].storage_id if record else 0
    return latest


def _behind(latest: dict[dg.AssetKey, int]) -> list[str]:
    """Units whose link is older than its unit's latest load, or than the citizen index it links to
    (folkbokföring's link is the citizen index itself, so for it only the load counts)."""
    index = latest[citizen_index.key]
    return [u for u in UNITS if latest[link_key(u)] < max(latest[unit_asset_key(u)], index)]


def _failed(instance: dg.DagsterInstance, behind: list[str], latest: dict[dg.AssetKey, int]) -> str:
    """The links behind whose last run failed: automation asks for a link again only after the next load."""
    failed = []
    for unit in behind:
        planned = instance.get_latest_planned_materialization_info(link_key(unit))
        run = (
            instance.get_run_by_id(planned.run_id)
            if planned and planned.storage_id > latest[link_key(unit)]
            else None
        )
        if run and run.status == dg.DagsterRunStatus.FAILURE:
            failed.append(f"{unit} (run {run.run_id})")
    if not failed:
        return ""
    return (
        f"; the last link run failed for {', '.join(failed)}: it links again with the unit's next load "
        "or `knutpunkt run`, and until then the dashboards stay at the last snapshot"
    )


def _rebuilding(instance: dg.DagsterInstance) -> str | None:
    """A run under way that publishes: the marts job, or a run whose selection holds the snapshot."""
    for run in instance.get_runs(dg.RunsFilter(statuses=UNDER_WAY), limit=100):
        if run.job_name == MARTS_JOB_NAME or SNAPSHOT_KEY in (run.asset_selection or ()):
            return run.run_id
    return None
