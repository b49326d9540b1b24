"""The publish step: a new immutable, disclosure-controlled serving snapshot after every marts build.

Dashboards (Superset) and notebooks read only the snapshot, read-only, through
``warehouse/serving/current.duckdb``; see ``pipelines/serving/snapshot.py`` for why a write never
fails a reader and a reader never fails a write.
"""

from functools import cache

import dagster as dg

from pipelines.defs.anchors import DagsterAnchors
from pipelines.defs.discovery import DISCOVERY_KEYS
from pipelines.defs.marts import dbt_models
from pipelines.defs.resources import Platform
from pipelines.disclosure import DEFAULT_THRESHOLD
from pipelines.disclosure.memo import AuditMemo
from pipelines.serving.build import build_tables
from pipelines.serving.presentation import VIEWS
from pipelines.serving.sharing import sharing_fingerprint
from pipelines.serving.snapshot import KEEP, ServingPaths, current_snapshot, write_snapshot

SNAPSHOT_KEY = dg.AssetKey(["serving", "snapshot"])


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
