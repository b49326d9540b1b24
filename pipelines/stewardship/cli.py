"""``knutpunkt steward list|show|approve|revoke`` and ``knutpunkt audit verify|log``.

The steward's side of the sharing gate: see what a dataset would share and at
what risk, then approve it (steward, purpose, expiry, bound to the contract
version) or revoke it. Every decision goes into the audit log; the next link
run acts on it.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import date

from rich.console import Console
from rich.table import Table

from pipelines.settings import Paths, knutpunkt_command
from pipelines.stewardship import approvals, audit, overview, report, signing
from pipelines.stewardship.contracts import Contract, ContractError, load_contracts
from warehouse.layout import Warehouse

STATE_STYLE = {
    "approved": "green",
    "expiring": "yellow",
    "pending": "yellow",
    "expired": "red",
    "revoked": "red",
    "withheld": "red",
}
# Opens the platform's anchor store (Dagster's event log) only for the commands that read or anchor heads.
OpenAnchors = Callable[[], AbstractContextManager[audit.AnchorStore]]


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Hook for pipelines/cli.py: adds the ``steward`` and ``audit`` subcommands."""
    steward = sub.add_parser("steward", help="dataset contracts and steward approvals").add_subparsers(
        dest="steward_command", required=True
    )
    steward.add_parser("list", help="every dataset contract and its sharing status")
    steward.add_parser("show", help="what a dataset would share, its quality and risk").add_argument(
        "dataset", help="<unit>.<dataset>"
    )
    approve = steward.add_parser("approve", help="approve the current contract version of a dataset")
    approve.add_argument("dataset", help="<unit>.<dataset>")
    approve.add_argument("--steward", required=True, help="your name and role")
    approve.add_argument("--purpose", required=True, help="one of the contract's purpose ids")
    approve.add_argument("--expires", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
    approve.add_argument("--note", default="")
    revoke = steward.add_parser("revoke", help="revoke a dataset's approval")
    revoke.add_argument("dataset", help="<unit>.<dataset>")
    revoke.add_argument("--steward", required=True)
    revoke.add_argument("--reason", required=True)
    keygen = steward.add_parser("keygen", help="create and register your signing key (Ed25519)")
    keygen.add_argument("--steward", required=True, help="your name and role, as you sign decisions")
    audit_cmd = sub.add_parser("audit", help="the stewardship audit log").add_subparsers(
        dest="audit_command", required=True
    )
    audit_cmd.add_parser("verify", help="check that no entry was edited, deleted or inserted")
    log = audit_cmd.add_parser("log", help="print the audit log")
    log.add_argument("--dataset")
    log.add_argument("--last", type=int, default=50)


def dispatch(args: argparse.Namespace, paths: Paths, open_anchors: OpenAnchors) -> int:
    out = Console(width=140)
    try:
        if args.command == "audit":
            if args.audit_command == "log":
                return _log(out, paths, args)
            return _verify(out, paths, open_anchors)
        if args.steward_command == "keygen":
            out.print(f"Signing key of {args.steward}: {signing.create_key(args.steward)} (keep it 0600)")
            return 0
        contracts = load_contracts()
        with open_anchors() as anchors:
            match args.steward_command:
                case "list":
                    return _list(out, contracts, paths, anchors)
                case "show":
                    return _show(out, _pick(contracts, args.dataset), paths, anchors)
                case "approve":
                    return _approve(out, _pick(contracts, args.dataset), paths, args, anchors)
                case "revoke":
                    contract = _pick(contracts, args.dataset)
                    approvals.revoke(contract, args.steward, args.reason, paths, anchors=anchors)
                    out.print(
                        f"Revoked {contract.key}: the next link run removes it from the cross-unit zone."
                    )
                    return 0
    except (ContractError, audit.AuditError, signing.SignatureError, ValueError, FileNotFoundError) as e:
        out.print(f"[red]{e}[/red]")
        return 1
    return 2


def _pick(contracts: dict[str, Contract], key: str) -> Contract:
    if key not in contracts:
        raise ValueError(f"no dataset {key!r}; one of: {', '.join(sorted(contracts))}")
    return contracts[key]


def _list(out: Console, contracts: dict[str, Contract], paths: Paths, anchors: audit.AnchorStore) -> int:
    entries = audit.verify_anchored(anchors, paths)
    states = overview.overview(contracts, entries, Warehouse(paths.warehouse))
    table = Table(title="Datasets and their sharing status")
    for col in ("dataset", "classification", "sharing", "status", "why", "contract"):
        table.add_column(col, no_wrap=col in ("dataset", "contract"))
    for key, c in sorted(contracts.items()):
        s = states[key]
        cls = c.classification + (f" ({c.osl})" if c.osl else "")
        style = STATE_STYLE[s.state]
        table.add_row(key, cls, c.sharing.level, f"[{style}]{s.state}[/{style}]", s.reason, c.short_version)
    out.print(table)
    return 0


def _show(out: Console, c: Contract, paths: Paths, anchors: audit.AnchorStore) -> int:
    entries = audit.verify_anchored(anchors, paths)
    s = approvals.status(c, entries)
    out.rule(f"{c.key}: {c.title}")
    out.print(c.description)
    out.print(f"Owner (informationsägare): {c.owner}    Steward: {c.steward}")
    out.print(f"Classification: {c.classification}" + (f", {c.osl}" if c.osl else ""))
    out.print(f"Legal basis: {c.legal_basis}")
    for p in c.purposes:
        out.print(f"Purpose [bold]{p.name}[/bold]: {p.meaning}")
    out.print(f"Retention: {c.retention_months} months ({c.retention_basis})")
    out.print(f"Contract version: {c.version}  ({c.path})")
    style = STATE_STYLE[s.state]
    out.print(f"Status: [{style}]{s.state}[/{style}], {s.reason}")
    changes = approvals.changes_since_approval(c, entries, paths)
    if changes:
        out.rule("Changed since the last approval")
        out.print("\n".join(changes), markup=False, highlight=False)

    out.rule("What would be shared")
    sh = c.sharing
    if sh.level == "detail":
        meaning = {col.name: col.meaning for col in c.columns}
        out.print("Level detail: one row per unit row, on the central citizen key, with these columns:")
        for name in sh.columns:
            out.print(f"  {name}: {meaning[name]}")
        out.print("  _delivery: delivery month (lineage, used for retention)")
    else:
        what = "per person" if sh.level == "derived" else "aggregated, no person-level rows"
        into = sh.target or f"{c.unit}.{c.dataset}"
        out.print(f"Level {sh.level} ({what}) into {into}; grain: {', '.join(sh.grain) or '-'}")
        for i in sh.indicators:
            out.print(f"  {i.name}: {i.meaning}")
        if sh.count_column:
            out.print(f"  cells with {sh.count_column} < {sh.min_count} are suppressed")
        if sh.sql:
            out.print("SQL over the unit zone table:")
            out.print(sh.sql, markup=False, highlight=False)
    r = report.build(c, Warehouse(paths.warehouse))
    if r.problem:
        out.print(f"[red]{r.problem}[/red]")
        return 1
    out.print(
        f"Rows in the unit zone: {r.rows_in_zone:,}; within retention: {r.rows_within_retention:,}; "
        f"rows that would be shared: {r.rows_shared:,}"
        + (f"; persons: {r.persons_shared:,}" if r.persons_shared is not None else "")
    )
    out.print(f"Columns in the cross-unit zone: {', '.join(r.columns)}")

    out.rule("Quality")
    q = r.quality
    out.print(
        f"Status: {q['status']}. Deliveries {q['deliveries']} ({q['first']} to {q['last']}), rows in files "
        f"{q['rows_in_files']:,}, loaded {q['rows_loaded']:,}, quarantined {q['rows_quarantined']:,}; "
        f"files rejected {q['files_rejected']}, missing {q['files_missing']}, unreconciled {q['unreconciled_files']}"
    )
    for rule, n in r.quarantine_rules:
        out.print(f"  quarantined for {rule}: {n}")

    out.rule("Re-identification risk")
    for key, value in r.risk.items():
        if key != "risky_combinations":
            out.print(f"  {key}: {value}")
    for risky in r.risk.get("risky_combinations", []):
        out.print(
            f"  risky: {' + '.join(risky['combination'])}: smallest group {risky['k_min']}, "
            f"{risky['classes']} groups under the risk k with {risky['persons']} persons"
        )
    return 0


def _approve(
    out: Console, c: Contract, paths: Paths, args: argparse.Namespace, anchors: audit.AnchorStore
) -> int:
    entry = approvals.approve_reviewed(
        c, args.steward, args.purpose, args.expires, args.note, paths, anchors=anchors
    )
    out.print(
        f"Approved {c.key} ({c.sharing.level}) for {args.purpose} until {args.expires}, contract version "
        f"{c.short_version}; audit entry {entry.seq}. The next link run shares it."
    )
    return 0


def _verify(out: Console, paths: Paths, open_anchors: OpenAnchors) -> int:
    try:
        with open_anchors() as anchors:
            entries = audit.verify_anchored(anchors, paths)
            anchored = len(anchors.heads())
    except audit.AuditError as e:
        out.print(f"[red]Audit log does NOT verify: {e}[/red]")
        return 1
    head = f", head {entries[-1].seq} {entries[-1].hash[:16]}" if entries else ""
    out.print(
        f"Audit log verifies: {len(entries)} entries, chain, head and steward signatures intact{head}, "
        f"{anchored} heads recorded in Dagster match ({audit.log_path(paths)})"
    )
    return 0


def _log(out: Console, paths: Paths, args: argparse.Namespace) -> int:
    entries = [e for e in audit.read(paths) if args.dataset in (None, e.dataset)][-args.last :]
    table = Table(title=f"Audit log ({audit.log_path(paths)})")
    for col in ("seq", "at", "action", "dataset", "actor", "contract", "details"):
        table.add_column(col)
    for e in entries:
        details = ", ".join(f"{k}={v}" for k, v in e.details.items())
        table.add_row(
            str(e.seq), e.at, e.action, e.dataset or "", e.actor, (e.contract_version or "")[:12], details
        )
    out.print(table)
    return 0


def approve_demo(paths: Paths, console: Console, anchors: audit.AnchorStore) -> None:
    """Main-job hook: the recorded demo steward approves what no steward has decided on yet.

    An audit log that does not verify (a key lost with an old home, an edited entry) is reported in
    one line and approves nothing: the sharing gate, which verifies it too, then shares nothing, and
    the rest of the main job runs on.
    """
    try:
        approved = approvals.approve_demo_datasets(load_contracts(), paths, anchors=anchors)
    except (audit.AuditError, signing.SignatureError) as e:
        console.print(
            f"[red]no approvals: the stewards' audit log does not verify ({e}); nothing is shared until "
            f"it does ({knutpunkt_command()} audit verify)[/red]",
            soft_wrap=True,
        )
        return
    console.print(
        f"demo steward approved {len(approved)} datasets" if approved else "no new approvals needed"
    )


def summary(paths: Paths, anchors: audit.AnchorStore) -> str:
    """Main-job summary line: how many datasets are approved, pending, expired or revoked."""
    counts = Counter(s.state for s in approvals.statuses(load_contracts(), paths, anchors=anchors).values())
    states = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    return f"Stewardship: {states} (only approved datasets are linked; {knutpunkt_command()} steward list)"
