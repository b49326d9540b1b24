"""The state a steward sees per dataset: the sharing status, refined by what a steward must act on.

``approvals.status`` says whether the gate may share a dataset (pending, approved, expired, revoked).
A steward also needs to know what is about to change or is not happening although approved:

- ``expiring``: approved, and the approval runs out within :data:`EXPIRING_DAYS` days;
- ``withheld``: approved, but nothing of it is shared: the gate refused the contract's output after
  the approval (an audited ``withdraw`` with state ``refused``), or every delivery of the dataset is
  held by its quality checks (``held_deliveries``).

``knutpunkt steward list`` and the workbench both read it from here, so they give the same answer on
the same audit log.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Literal

from pipelines.stewardship import approvals, audit
from pipelines.stewardship.contracts import Contract
from warehouse.layout import Warehouse, connect, run

ListState = Literal["pending", "approved", "expiring", "expired", "revoked", "withheld"]
LIST_STATES: tuple[ListState, ...] = ("pending", "approved", "expiring", "expired", "revoked", "withheld")
EXPIRING_DAYS = 30


@dataclass(frozen=True)
class Held:
    """A delivery month of the unit that its quality checks hold back, and why."""

    delivery: str
    checks: str
    reason: str


@dataclass(frozen=True)
class Overview:
    contract: Contract
    status: approvals.Status
    state: ListState
    reason: str  # English, for the CLI; the workbench words its own from the fields
    held: tuple[Held, ...] = ()  # the unit's held deliveries (a delivery is held for all its datasets)
    refused: audit.Entry | None = None  # the gate's refusal of this approval's output
    all_held: bool = False  # deliveries exist and every one is held


def overview(
    contracts: dict[str, Contract], entries: list[audit.Entry], wh: Warehouse, today: date | None = None
) -> dict[str, Overview]:
    """Every contract's state, from verified audit entries and the unit zones' held deliveries."""
    today = today or date.today()
    held: dict[str, tuple[tuple[Held, ...], dict[str, int]]] = {}
    result = {}
    for key, contract in contracts.items():
        if contract.unit not in held:
            held[contract.unit] = held_deliveries(wh, contract.unit)
        unit_held, released = held[contract.unit]
        result[key] = _judge(
            contract, approvals.status(contract, entries, today), entries, today, unit_held, released
        )
    return result


def _judge(
    contract: Contract,
    status: approvals.Status,
    entries: list[audit.Entry],
    today: date,
    held: tuple[Held, ...],
    released: dict[str, int],
) -> Overview:
    """Refine an approved status into expiring or withheld; other statuses stand as they are."""
    all_held = bool(held) and released.get(contract.dataset, 0) == 0 and contract.dataset in released
    base = Overview(contract, status, status.state, status.reason, held, None, all_held)
    if not status.approved:
        return base
    refused = _refused_since(contract, status.decision, entries)
    if refused is not None:
        why = f"{status.reason}, but the gate refused its output on {refused.at[:10]}"
        return replace(base, state="withheld", reason=why, refused=refused)
    if all_held:
        why = f"{status.reason}, but every delivery is held by its quality checks"
        return replace(base, state="withheld", reason=why)
    if status.expires is not None and status.expires <= today + timedelta(days=EXPIRING_DAYS):
        why = f"{status.reason} (expires within {EXPIRING_DAYS} days)"
        return replace(base, state="expiring", reason=why)
    return base


def _refused_since(
    contract: Contract, decision: audit.Entry | None, entries: list[audit.Entry]
) -> audit.Entry | None:
    """The gate's latest refusal of this dataset's output after the approval, if any."""
    after = decision.seq if decision else 0
    refusals = [
        e
        for e in entries
        if e.seq > after
        and e.dataset == contract.key
        and e.action == "withdraw"
        and e.details.get("state") == "refused"
    ]
    return refusals[-1] if refusals else None


def held_deliveries(wh: Warehouse, unit: str) -> tuple[tuple[Held, ...], dict[str, int]]:
    """The unit's held deliveries, and per dataset how many of its delivered months are not held.

    A dataset absent from the second mapping has no delivery yet; an unloaded unit has neither.
    """
    zone = wh.unit_zone(unit)
    if not zone.exists():
        return (), {}
    with connect(zone, read_only=True) as con:
        held = tuple(
            Held(d, checks, reason or "")
            for d, checks, reason in run(
                con, "SELECT _delivery, checks, reason FROM held_deliveries ORDER BY _delivery DESC"
            )
        )
        released = dict(
            run(
                con,
                "SELECT dataset, count(DISTINCT _delivery) FILTER (_delivery NOT IN "
                "(SELECT _delivery FROM held_deliveries)) FROM reconciliation GROUP BY dataset",
            )
        )
    return held, released
