"""Dagster's event log as the audit log's anchor store, and the platform's Dagster instance.

The audit folder's writer can rebuild the log and its head, but not Dagster's event log: each
steward decision's head is observed there as it is made (``stewardship/audit_log``), and every
cross-unit materialisation records the head in its metadata (``audit_head``). The sharing gate,
the ``steward_decisions`` sensor and ``knutpunkt steward``/``audit`` read them back through
:class:`DagsterAnchors` (``pipelines.stewardship.audit.AnchorStore``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg

from pipelines.settings import Paths
from pipelines.stewardship.audit import Anchor, Entry
from pipelines.units import UNITS

DECISIONS_KEY = dg.AssetKey(["stewardship", "audit_log"])  # decisions' heads are observed under it
LINK_KEYS = [dg.AssetKey(["cross_unit", n]) for n in ["citizen_index", *UNITS] if n != "folkbokforing"]


@dataclass(frozen=True)
class DagsterAnchors:
    """The heads in one Dagster instance's event log (the platform's, or a run's ``context.instance``)."""

    instance: dg.DagsterInstance
    per_asset: int = 200  # the latest events per asset key that are checked

    def record(self, entry: Entry) -> None:
        """Observe a decision's head at once, so a revocation is never unanchored."""
        self.instance.report_runless_asset_event(
            dg.AssetObservation(
                asset_key=DECISIONS_KEY,
                metadata={"audit_head": f"{entry.seq} {entry.hash}", "action": entry.action},
            )
        )

    def heads(self) -> list[Anchor]:
        """Decisions' observations and the ``audit_head`` of the latest link materialisations."""
        anchors = [
            _anchor(
                r.asset_observation.metadata, f"Dagster event {r.storage_id} ({(r.run_id or 'decision')[:8]})"
            )
            for r in self.instance.fetch_observations(DECISIONS_KEY, limit=self.per_asset).records
        ]
        anchors += [
            _anchor(r.asset_materialization.metadata, f"Dagster run {r.run_id[:8]} ({key.to_user_string()})")
            for key in LINK_KEYS
            for r in self.instance.fetch_materializations(key, limit=self.per_asset).records
        ]
        return [a for a in anchors if a is not None]


def _anchor(metadata: dict, where: str) -> Anchor | None:
    head = metadata.get("audit_head")
    if head is None or head.value == "empty":
        return None
    seq, _, hash_ = str(head.value).partition(" ")
    return int(seq), hash_, where


@contextmanager
def platform_instance(paths: Paths) -> Iterator[dg.DagsterInstance]:
    """The platform's Dagster instance, ``$KNUTPUNKT_HOME/dagster``, opened from its folder (no ``DAGSTER_HOME``)."""
    paths.dagster_home.mkdir(parents=True, exist_ok=True)
    with dg.DagsterInstance.from_config(str(paths.dagster_home)) as instance:
        yield instance


@contextmanager
def platform_anchors(paths: Paths) -> Iterator[DagsterAnchors]:
    """The anchor store of the platform's Dagster instance, for the CLI and tests outside a run."""
    with platform_instance(paths) as instance:
        yield DagsterAnchors(instance)
