"""Dataset contracts: one YAML file per unit dataset, saying who owns it and what may be shared.

A contract is what a steward approves. Its version is a hash of its parsed
content, so an approval is bound to exactly the text the steward read: any
change to a contract (a column, a delivery rule, an indicator's SQL, the
retention) leaves the dataset pending again. The same file holds the dataset's
delivery contract (its ``unit`` and ``delivery`` blocks, read by
:mod:`pipelines.units.load`), so what the border loads is what was approved.
Contracts live in the repository (``pipelines/units/contracts/<unit>.<dataset>.yaml``);
``KNUTPUNKT_CONTRACTS`` points elsewhere (tests edit copies there).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml

from pipelines.disclosure.policy import MIN_COUNT
from pipelines.units.load import (
    DEFAULT_DIR,
    DELIVERY_KEYS,
    ContractError,
    contracts_dir,
    dataset_key,
    read_units,
    read_yaml,
)

__all__ = ["DEFAULT_DIR", "Contract", "ContractError", "contracts_dir", "load_contracts"]

Level = Literal["detail", "derived", "aggregate"]
LEVELS = ("detail", "derived", "aggregate")
CLASSIFICATIONS = ("public", "internal", "secret", "strong_secrecy")
# Columns every unit zone table has for lineage; described once here, not per contract.
LINEAGE_COLUMNS = ("_source_line", "_source_file", "_delivery", "_loaded_at")
# Never shared as such: replaced by the central citizen key when a dataset is linked.
PERSON_KEYS = ("person_pseudonym", "key_version")
# Columns that would put person-level rows into an aggregate.
PERSON_LEVEL = ("person_pseudonym", "citizen_key", "household_key", "key_version")
GOVERNANCE_KEYS = (
    "dataset",
    "title",
    "description",
    "owner",
    "steward",
    "classification",
    "legal_basis",
    "purposes",
    "retention",
    "columns",
    "quasi_identifiers",
    "sharing",
)


@dataclass(frozen=True)
class Named:
    name: str
    meaning: str


@dataclass(frozen=True)
class Sharing:
    """What leaves the unit zone: rows (detail), per-person indicators (derived) or aggregates."""

    level: Level
    columns: tuple[str, ...] = ()  # detail: zone columns shared beside the citizen key
    grain: tuple[str, ...] = ()  # derived/aggregate: the columns a row is per (besides the person)
    indicators: tuple[Named, ...] = ()  # derived: per person and grain; aggregate: measures
    sql: str = ""  # derived/aggregate: a query over the dataset's table, by its name
    period: str | None = None  # derived/aggregate: a DATE grain column, for retention
    count_column: str | None = None  # aggregate over persons: cells below min_count are suppressed
    min_count: int = MIN_COUNT
    target: str | None = None  # where it lands if not <unit>.<dataset> (folkbokföring: citizen_index)

    @property
    def output_columns(self) -> tuple[str, ...]:
        """Columns of the shared table apart from the citizen key and lineage."""
        if self.level == "detail":
            return self.columns
        return self.grain + tuple(i.name for i in self.indicators)


@dataclass(frozen=True)
class Contract:
    unit: str
    dataset: str
    title: str
    description: str
    owner: str
    steward: str
    classification: str
    osl: str | None
    legal_basis: str
    purposes: tuple[Named, ...]
    retention_months: int
    retention_basis: str
    columns: tuple[Named, ...]
    quasi_identifiers: tuple[str, ...]
    sharing: Sharing
    version: str
    path: Path

    @property
    def key(self) -> str:
        return f"{self.unit}.{self.dataset}"

    @property
    def short_version(self) -> str:
        return self.version[:12]

    @property
    def has_persons(self) -> bool:
        return "person_pseudonym" in {c.name for c in self.columns}


def load_contracts(folder: Path | None = None) -> dict[str, Contract]:
    """Every contract, keyed and sorted ``<unit>.<dataset>``; their delivery blocks are checked too."""
    folder = folder or contracts_dir()
    units = read_units(folder)  # the delivery blocks, and that every listed dataset has its file
    keys = sorted(f"{u.name}.{d.name}" for u in units.values() for d in u.datasets)
    return {key: load_contract(folder / f"{key}.yaml") for key in keys}


def load_contract(path: Path) -> Contract:
    raw = read_yaml(path)
    if unknown := sorted(raw.keys() - {*GOVERNANCE_KEYS, *DELIVERY_KEYS}):
        raise ContractError(f"{path.name}: unknown key {', '.join(unknown)}")
    try:
        return _parse(raw, path)
    except (KeyError, TypeError, AttributeError) as e:
        raise ContractError(f"{path.name}: missing or malformed field {e}") from None


def contract_version(raw: dict) -> str:
    """SHA-256 of the parsed contract in canonical JSON: comments and layout do not count, content does."""
    canonical = json.dumps(raw, sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def keep_text(contract: Contract, folder: Path) -> Path:
    """Keep the text of the contract version being approved, so a later change can be shown as a diff.

    The audit log holds only the version (a hash); the text is kept under its version and trusted only
    if it still hashes to it (:func:`kept_text`), so whoever writes the folder cannot alter what it shows.
    """
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    kept = folder / f"{contract.version}.yaml"
    if not kept.exists():
        tmp = kept.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(contract.path.read_text(encoding="utf-8"), encoding="utf-8")
        if contract_version(read_yaml(tmp)) != contract.version:  # edited since it was loaded
            tmp.unlink()
            return kept
        tmp.replace(kept)
    return kept


def kept_text(version: str, folder: Path) -> str | None:
    """The kept text of a contract version, or None if it was not kept or no longer hashes to ``version``."""
    kept = folder / f"{version}.yaml"
    if not kept.is_file():
        return None
    try:
        matches = contract_version(read_yaml(kept)) == version
    except ContractError:
        return None
    return kept.read_text(encoding="utf-8") if matches else None


def rendered(text: str) -> list[str]:
    """A contract's parsed content as YAML lines: what the version covers, without comments or layout."""
    return yaml.safe_dump(yaml.safe_load(text), sort_keys=False, allow_unicode=True, width=100).splitlines()


def diff(old_text: str, new_text: str) -> list[str]:
    """A unified diff of two contract texts as parsed (so a comment or a re-indent is no change)."""
    return list(
        difflib.unified_diff(rendered(old_text), rendered(new_text), "approved", "now", n=2, lineterm="")
    )


def _parse(raw: dict, path: Path) -> Contract:
    unit, dataset = dataset_key(raw, path)
    cls = raw["classification"]
    if cls["level"] not in CLASSIFICATIONS:
        raise ContractError(f"{path.name}: classification {cls['level']!r} is not one of {CLASSIFICATIONS}")
    if cls["level"] in ("secret", "strong_secrecy") and not cls.get("osl"):
        raise ContractError(f"{path.name}: {cls['level']} needs the OSL chapter it follows from (osl:)")
    contract = Contract(
        unit=unit,
        dataset=dataset,
        title=raw["title"],
        description=raw["description"].strip(),
        owner=raw["owner"],
        steward=raw["steward"],
        classification=cls["level"],
        osl=cls.get("osl"),
        legal_basis=raw["legal_basis"].strip(),
        purposes=tuple(Named(p["id"], p["description"].strip()) for p in raw["purposes"]),
        retention_months=int(raw["retention"]["months"]),
        retention_basis=raw["retention"]["basis"].strip(),
        columns=tuple(Named(c["name"], c["meaning"]) for c in raw["columns"]),
        quasi_identifiers=tuple(raw.get("quasi_identifiers", ())),
        sharing=_sharing(raw["sharing"], path),
        version=contract_version(raw),
        path=path,
    )
    _check(contract)
    return contract


def _sharing(raw: dict, path: Path) -> Sharing:
    level = raw["level"]
    if level not in LEVELS:
        raise ContractError(f"{path.name}: sharing level {level!r} is not one of {LEVELS}")
    return Sharing(
        level=level,
        columns=tuple(raw.get("columns", ())),
        grain=tuple(raw.get("grain", ())),
        indicators=tuple(Named(i["name"], i["meaning"]) for i in raw.get("indicators", ())),
        sql=raw.get("sql", "").strip(),
        period=raw.get("period"),
        count_column=raw.get("count_column"),
        min_count=int(raw.get("min_count", MIN_COUNT)),
        target=raw.get("target"),
    )


def _check(c: Contract) -> None:
    """Rules a steward should not have to check by eye."""
    name = c.path.name
    if c.retention_months < 1:
        raise ContractError(f"{name}: retention must be at least one month")
    if not c.purposes:
        raise ContractError(f"{name}: at least one purpose is needed")
    s, columns = c.sharing, {col.name for col in c.columns}
    if s.level == "detail":
        if unknown := [col for col in s.columns if col not in columns]:
            raise ContractError(f"{name}: shares columns {unknown} that the contract does not describe")
        if shared_keys := [col for col in s.columns if col in PERSON_KEYS]:
            raise ContractError(f"{name}: {shared_keys} are replaced by the citizen key, never shared")
        return
    if s.target is None and not s.sql:
        raise ContractError(f"{name}: a {s.level} contract defines its output as sql:")
    if s.period is not None and s.period not in s.grain:
        raise ContractError(f"{name}: period {s.period!r} must be one of the grain columns")
    if s.target is None and s.period is None and c.has_persons:
        raise ContractError(f"{name}: person data shared as {s.level} needs a period column for retention")
    if s.level == "aggregate":
        if person := [col for col in s.output_columns if col in PERSON_LEVEL]:
            raise ContractError(f"{name}: an aggregate cannot carry person-level columns {person}")
        if c.has_persons and s.count_column not in s.output_columns:
            raise ContractError(f"{name}: an aggregate over persons needs a count_column among its measures")
