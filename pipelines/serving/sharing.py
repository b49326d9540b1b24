"""The sharing state a snapshot was built under, as a short fingerprint (no dataset names in it).

A publish names its snapshot with this fingerprint so that, after a steward withdraws a dataset, the
next publish can tell which older snapshots were built while the dataset was still shared and remove
them (``snapshot.write_snapshot``). The state is both what the cross-unit zone actually held when
the snapshot was built (its tables and columns) and every steward decision (state and contract
version per dataset): the zone alone would miss a revocation not yet relinked, the decisions alone
would miss a relink that has not happened yet. Any change, an approval too, changes the fingerprint:
removing a snapshot too many costs a rollback point, keeping one too many keeps withdrawn data.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipelines.settings import Paths
from pipelines.stewardship import approvals
from pipelines.stewardship.audit import AnchorStore, AuditError
from pipelines.stewardship.contracts import ContractError, load_contracts
from warehouse.layout import connect


def sharing_fingerprint(cross_unit: Path, paths: Paths, anchors: AnchorStore) -> str:
    """16 hex digits over the cross-unit zone's columns and the steward decisions (verified against
    ``anchors``, as the sharing gate verifies them)."""
    state = {"zone": _zone_columns(cross_unit), "decisions": _decisions(paths, anchors)}
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]


def _zone_columns(cross_unit: Path) -> list[str]:
    if not cross_unit.exists():
        return []
    with connect(cross_unit, read_only=True) as con:
        rows = con.execute(
            "SELECT schema_name || '.' || table_name || '.' || column_name FROM duckdb_columns() "
            "WHERE database_name = current_database() ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def _decisions(paths: Paths, anchors: AnchorStore) -> list[str] | str:
    """Every dataset's state and contract version; a log that does not verify is its own state."""
    try:
        contracts = load_contracts()
        statuses = approvals.statuses(contracts, paths, anchors=anchors)
    except (AuditError, ContractError) as e:
        return f"unverified: {e}"
    return sorted(f"{k}:{s.state}:{contracts[k].version}" for k, s in statuses.items())
