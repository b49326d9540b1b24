"""The draft contract YAML: the proposed ``unit`` and ``delivery`` blocks, the governance for a steward.

The draft is loadable by :mod:`pipelines.units.load` as written: its ``unit`` and ``delivery`` blocks are
complete (the unit's title and förvaltning say ``TODO``, which the loader takes as text), so the dry run
loads the sample with it. It is not approvable as written: the governance a steward owns
(classification, legal basis, purposes, retention, sharing) says ``TODO`` where
:mod:`pipelines.stewardship.contracts` wants a level or a number, so ``steward list/approve`` reject it
naming the field until a steward has filled them in.
"""

from __future__ import annotations

import yaml

from pipelines.onboarding.infer import TODO, Proposal, loaded_name
from pipelines.units.load import FORMATS
from pipelines.units.spec import Column, Csv, Dataset, FileFormat

# What the border derives from a personnummer, described as in the existing contracts.
PERSON_MEANINGS = {
    "person_pseudonym": "HMAC pseudonym of the personnummer under the unit key (differs per unit); "
    "replaced by the central citizen key when shared",
    "birth_year": "Birth year, derived from the personnummer at the border",
    "sex": "K or M, derived from the personnummer at the border",
    "key_version": "Version of the pseudonymisation key",
}


def draft_yaml(proposal: Proposal) -> str:
    """The contract file's text, with the reasons as comments above the blocks they explain."""
    unit, dataset = proposal.unit, proposal.dataset
    lines = [
        f"dataset: {unit.name}.{dataset.name}",
        f"title: {TODO}",
        f"description: {dataset.description}",
        f"# Proposed by `knutpunkt onboard` from a sample of {proposal.sample_rows} rows:",
        *(f"#   {reason}" for reason in proposal.reasons),
        "unit:",
        f"  title: {TODO}",
        f"  forvaltning: {TODO}",
        *([f"  personnummer_style: {unit.personnummer_style}"] if unit.personnummer_style else []),
        f"  format: {_flow(_format(unit.format))}",
        "delivery:",
        f"  natural_key: {_flow(list(dataset.natural_key))}",
        "  source_columns:",
        *(f"    - {_flow(_column(c))}" for c in dataset.columns),
        *_governance(dataset),
    ]
    return "\n".join(lines) + "\n"


def _format(fmt: FileFormat) -> dict:
    """The format block with only what differs from the loader's defaults."""
    block: dict = {"type": next(name for name, cls in FORMATS.items() if isinstance(fmt, cls))}
    if isinstance(fmt, Csv):
        block |= {"encoding": fmt.encoding, "separator": fmt.separator, "decimal_comma": fmt.decimal_comma}
    if fmt.extension != block["type"]:
        block["extension"] = fmt.extension
    return block


def _column(column: Column) -> dict:
    block: dict = {"source": column.source, "name": column.name, "kind": column.kind}
    if not column.mandatory:
        block["mandatory"] = False
    if column.allowed:
        block["allowed"] = list(column.allowed)
    if column.format != "iso":
        block["format"] = column.format
    return block


def _governance(dataset: Dataset) -> list[str]:
    """What the steward fills in; every loaded column listed for its meaning."""
    loaded = [*PERSON_MEANINGS] if dataset.person_column else []
    loaded += [loaded_name(c) for c in dataset.columns if c.kind not in ("personnummer", "identifier")]
    return [
        "# For the steward: every TODO below (the contract cannot be approved until they are filled in).",
        f"owner: {TODO} informationsägare",
        f"steward: {TODO}",
        f"classification: {{level: {TODO}, osl: {TODO}}}  # public, internal, secret or strong_secrecy",
        f"legal_basis: {TODO}",
        "purposes:",
        f"  - {{id: {TODO.lower()}, description: {TODO}}}",
        f"retention: {{months: {TODO}, basis: {TODO}}}",
        "columns:",
        *(f"  - {_flow({'name': n, 'meaning': PERSON_MEANINGS.get(n, TODO)})}" for n in loaded),
        f"sharing: {{level: {TODO}}}  # detail, derived or aggregate",
    ]


def _flow(value: object) -> str:
    """One YAML flow value, quoted where YAML would read it as something else (``yes``, ``01``)."""
    return yaml.safe_dump(
        value, default_flow_style=True, allow_unicode=True, sort_keys=False, width=1 << 16
    ).strip()
