"""Steward decisions and the sharing status they give a dataset, read from the audit log.

The audit log is the only record of approvals: the status of a dataset is its
latest approve or revoke entry, judged against the contract as it is now. An
approval binds steward, purpose, expiry date and the contract version, so:

- no decision yet, or a contract changed since it was approved: ``pending``
- approved for this contract version, expiry date not passed: ``approved``
- approved, but the expiry date has passed: ``expired``
- revoked: ``revoked``

Only ``approved`` datasets are linked into the cross-unit zone. A decision is
signed with the steward's key (``signing``) and its head anchored (``audit.AnchorStore``:
Dagster's event log, handed in by the caller) as it is recorded, so neither a forged
approval nor a cut-off revocation goes unseen; statuses are read only from a log that
verifies against those anchors.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal

from pipelines.settings import Paths
from pipelines.stewardship import audit, report, signing
from pipelines.stewardship.contracts import Contract, diff, keep_text, kept_text
from warehouse.layout import Warehouse

State = Literal["pending", "approved", "expired", "revoked"]
DEMO_STEWARD = "demo-steward (synthetic demo, not a real decision)"


@dataclass(frozen=True)
class Status:
    dataset: str
    state: State
    reason: str
    decision: audit.Entry | None = None  # the latest approve/revoke entry, if any

    @property
    def approved(self) -> bool:
        return self.state == "approved"

    @property
    def expires(self) -> date | None:
        if self.decision is None or self.decision.action != "approve":
            return None
        return date.fromisoformat(self.decision.details["expires"])


def status(contract: Contract, entries: list[audit.Entry], today: date | None = None) -> Status:
    """The sharing status of one dataset given the (verified) audit entries."""
    today = today or date.today()
    decisions = [e for e in entries if e.dataset == contract.key and e.action in ("approve", "revoke")]
    if not decisions:
        return Status(contract.key, "pending", "no steward decision yet")
    last = decisions[-1]
    who = last.details.get("steward", last.actor)
    if last.action == "revoke":
        return Status(contract.key, "revoked", f"revoked by {who} on {last.at[:10]}", last)
    if last.contract_version != contract.version:
        return Status(
            contract.key,
            "pending",
            f"contract changed since {who} approved it on {last.at[:10]}",
            last,
        )
    expires = date.fromisoformat(last.details["expires"])
    if expires < today:
        return Status(contract.key, "expired", f"approval by {who} expired on {expires}", last)
    return Status(contract.key, "approved", f"approved by {who} until {expires}", last)


def marked(contract: Contract, state: Status) -> str:
    """A dataset's sharing as one string, its state and the contract version it applies to: what the
    links record they ran under and the ``steward_decisions`` sensor compares."""
    return f"{state.state}:{contract.version}"


def statuses(
    contracts: dict[str, Contract],
    paths: Paths | None = None,
    today: date | None = None,
    *,
    anchors: audit.AnchorStore,
) -> dict[str, Status]:
    """Every contract's status; the log is verified against the anchored heads first, so a tampered,
    rebuilt or cut-off log approves nothing."""
    entries = audit.verify_anchored(anchors, paths)
    return {key: status(c, entries, today) for key, c in contracts.items()}


def _decide(
    action: str,
    contract: Contract,
    steward: str,
    details: dict,
    paths: Paths | None,
    anchors: audit.AnchorStore,
) -> audit.Entry:
    """Record a signed decision and anchor its head at once (a revocation is never unanchored)."""
    entry = audit.record(
        action,
        actor=steward,
        dataset=contract.key,
        contract_version=contract.version,
        details=details,
        paths=paths,
        sign=lambda message: signing.sign(steward, message),
    )
    anchors.record(entry)
    return entry


def approve(
    contract: Contract,
    steward: str,
    purpose: str,
    expires: date,
    note: str = "",
    paths: Paths | None = None,
    *,
    anchors: audit.AnchorStore,
) -> audit.Entry:
    """Record a steward's approval of this contract version, for one of its purposes, until ``expires``.

    The date is not checked against today here: the CLI refuses past dates; tests
    record an approval that has already run out to exercise expiry.
    """
    if not steward.strip():
        raise audit.Refused("steward", "an approval needs the steward's name")
    if purpose not in {p.name for p in contract.purposes}:
        allowed = ", ".join(p.name for p in contract.purposes)
        raise audit.Refused(
            "purpose", f"purpose {purpose!r} is not in the contract of {contract.key} (allowed: {allowed})"
        )
    keep_text(contract, approved_texts(paths))
    details = {
        "steward": steward,
        "purpose": purpose,
        "expires": expires.isoformat(),
        "level": contract.sharing.level,
        "note": note,
    }
    return _decide("approve", contract, steward, details, paths, anchors)


def approve_reviewed(
    contract: Contract,
    steward: str,
    purpose: str,
    expires: date,
    note: str = "",
    paths: Paths | None = None,
    *,
    anchors: audit.AnchorStore,
    today: date | None = None,
    seen_version: str | None = None,
) -> audit.Entry:
    """An approval as a steward gives it (``knutpunkt steward approve``, the workbench): refused for an
    expiry date already past, a contract whose shared output ``steward show`` cannot build (the gate
    would refuse the same output), or, given the version the steward read (``seen_version``), a
    contract changed since: an approval binds the version read, not one edited meanwhile."""
    if seen_version is not None and seen_version != contract.version:
        raise audit.Refused(
            "changed", f"the contract of {contract.key} changed since version {seen_version[:12]}"
        )
    if expires < (today or date.today()):
        raise audit.Refused("past", f"expiry {expires} is in the past")
    wh = Warehouse((paths or Paths.from_env()).warehouse)
    if wh.unit_zone(contract.unit).exists() and (problem := report.build(contract, wh).problem):
        raise audit.Refused("output", f"not approved: {problem}")
    return approve(contract, steward, purpose, expires, note, paths, anchors=anchors)


def approved_texts(paths: Paths | None = None) -> Path:
    """Where the text of each approved contract version is kept (beside the audit log)."""
    return audit.folder(paths) / "approved_contracts"


def last_approval(contract: Contract, entries: list[audit.Entry]) -> audit.Entry | None:
    """The dataset's latest approval in the (verified) log, whatever came after it."""
    return next((e for e in reversed(entries) if e.dataset == contract.key and e.action == "approve"), None)


def changes_since_approval(
    contract: Contract, entries: list[audit.Entry], paths: Paths | None = None
) -> list[str] | None:
    """The diff of the contract since the version its latest approval bound, [] if unchanged; None
    if it was never approved or the approved text was not kept (an approval made before texts were)."""
    last = last_approval(contract, entries)
    if last is None:
        return None
    if last.contract_version == contract.version:
        return []
    old = kept_text(last.contract_version or "", approved_texts(paths))
    return None if old is None else diff(old, contract.path.read_text(encoding="utf-8"))


def revoke(
    contract: Contract, steward: str, reason: str, paths: Paths | None = None, *, anchors: audit.AnchorStore
) -> audit.Entry:
    """Record a revocation: the next link run removes the dataset from the cross-unit zone."""
    if not steward.strip() or not reason.strip():
        raise audit.Refused("reason", "a revocation needs the steward's name and a reason")
    details = {"steward": steward, "reason": reason}
    return _decide("revoke", contract, steward, details, paths, anchors)


def approve_demo_datasets(
    contracts: dict[str, Contract], paths: Paths | None = None, *, anchors: audit.AnchorStore
) -> list[str]:
    """The main job's demo steward approves every dataset no steward has decided on yet.

    A dataset that was ever approved or revoked is left alone: a revocation
    stays revoked, and an edited contract stays pending until a steward decides.
    The demo steward signs like any steward, with a key generated on first use.
    """
    entries = audit.verify_anchored(anchors, paths)
    signing.create_key(DEMO_STEWARD)
    decided = {e.dataset for e in entries if e.action in ("approve", "revoke")}
    approved = []
    for key, contract in sorted(contracts.items()):
        if key in decided:
            continue
        expires = date.today() + timedelta(days=365)
        approve(
            contract, DEMO_STEWARD, contract.purposes[0].name, expires, "demo default", paths, anchors=anchors
        )
        approved.append(key)
    return approved
