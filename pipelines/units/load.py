"""The units' delivery contracts, read from the dataset contract files (YAML).

One file per unit dataset (``pipelines/units/contracts/<unit>.<dataset>.yaml``) holds everything about
it: the ``unit`` block (title, förvaltning, personnummer style, file format), the ``delivery`` block
(source columns with their kinds and rules, natural key, the months it comes in, whether it may be
empty) and the governance a steward approves (read by :mod:`pipelines.stewardship.contracts`). This
module builds the in-memory :class:`~pipelines.units.spec.Unit` from the first two, so a new unit, or a
unit that changes case system, is a change of data, not of code. ``units.yaml`` beside the contracts
lists the units and datasets in order (the generator and the run summary follow it).

Every error is a :class:`ContractError` naming the file and the key, since the person who edits a
contract is a steward or a data engineer reading YAML, not a Python traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, get_args

import yaml

from pipelines.units.spec import (
    Column,
    ColumnKind,
    ControlTotals,
    Csv,
    Dataset,
    DateFormat,
    Encoding,
    FileFormat,
    JsonLines,
    Parquet,
    PersonnummerStyle,
    Unit,
    Xlsx,
)

CONTRACTS_ENV = "KNUTPUNKT_CONTRACTS"
DEFAULT_DIR = Path(__file__).resolve().parent / "contracts"
INDEX = "units.yaml"
# The top-level keys this module reads; the rest of a contract is governance.
DELIVERY_KEYS = ("unit", "delivery")
FORMATS: dict[str, type[FileFormat]] = {"csv": Csv, "parquet": Parquet, "jsonl": JsonLines, "xlsx": Xlsx}
KINDS: tuple[str, ...] = get_args(ColumnKind)
NUMERIC = ("integer", "decimal")  # the kinds min and max apply to
DATED = ("date", "timestamp")  # the kinds a format (how the values are written) applies to
DATE_FORMATS: tuple[str, ...] = get_args(DateFormat)
STYLES: tuple[str, ...] = get_args(PersonnummerStyle)
ENCODINGS: tuple[str, ...] = get_args(Encoding)
# Unit, dataset and warehouse column names become paths, asset keys, tables and SQL identifiers.
NAME = re.compile(r"[a-z][a-z0-9_]*")
_REQUIRED = object()
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's safe loader: the same objects, 10x faster


class ContractError(ValueError):
    """A contract file is missing, malformed or inconsistent with the other contracts of its unit."""


def contracts_dir() -> Path:
    """Where the contracts are: the package's own, or ``KNUTPUNKT_CONTRACTS`` (tests edit copies)."""
    return Path(os.environ.get(CONTRACTS_ENV) or DEFAULT_DIR)


def read_yaml(path: Path) -> dict[str, Any]:
    """A contract file's parsed content: a mapping, or a ContractError naming the file."""
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    except yaml.YAMLError as e:
        raise ContractError(f"{path.name}: not valid YAML ({e})") from None
    except OSError as e:
        raise ContractError(f"{path.name}: cannot be read ({e.strerror})") from None
    if not isinstance(raw, dict):
        raise ContractError(f"{path.name}: a contract is a mapping of keys, not {type(raw).__name__}")
    return raw


def dataset_key(raw: Mapping[str, Any], path: Path) -> tuple[str, str]:
    """``(unit, dataset)`` from the contract's ``dataset:``, which must match the file's name."""
    named = raw.get("dataset")
    unit, _, dataset = str(named).partition(".")
    if not isinstance(named, str) or not NAME.fullmatch(unit) or not NAME.fullmatch(dataset):
        raise ContractError(
            f"{path.name}: dataset: must be <unit>.<dataset> in lower-case letters, digits and _, not {named!r}"
        )
    if path.name != f"{unit}.{dataset}.yaml":
        raise ContractError(f"{path.name}: names dataset {named}; the file must be named after it")
    return unit, dataset


def read_units(folder: Path) -> dict[str, Unit]:
    """Every unit of the contracts in ``folder``, in the order of its ``units.yaml``, read now."""
    index = _index(folder)
    listed = {f"{u}.{d}.yaml" for u, datasets in index.items() for d in datasets}
    if unlisted := sorted(p.name for p in folder.glob("*.*.yaml") if p.name not in listed):
        raise ContractError(f"{INDEX}: does not list the contracts {', '.join(unlisted)}")
    units = {}
    for unit, datasets in index.items():
        parsed = [(path, read_yaml(path)) for path in (folder / f"{unit}.{d}.yaml" for d in datasets)]
        units[unit] = _unit(unit, parsed)
    return units


def _index(folder: Path) -> dict[str, list[str]]:
    path = folder / INDEX
    if not path.exists():
        raise ContractError(f"{INDEX}: missing in {folder}; it lists the units and their datasets")
    raw = _Keys(read_yaml(path), path, "")
    units = raw.take("units", dict)
    raw.done()
    for unit, datasets in units.items():
        if not isinstance(datasets, list) or not datasets or not all(isinstance(d, str) for d in datasets):
            raise ContractError(f"{INDEX}: units.{unit} must be a list of dataset names")
        for d in datasets:
            if not (folder / f"{unit}.{d}.yaml").exists():
                raise ContractError(f"{INDEX}: lists {unit}.{d}, but {unit}.{d}.yaml does not exist")
    return units


def _unit(name: str, parsed: list[tuple[Path, dict[str, Any]]]) -> Unit:
    """One unit from its datasets' contracts, whose ``unit`` blocks must agree key by key."""
    blocks = [(path, _block(raw, "unit", path)) for path, raw in parsed]
    first_path, first = blocks[0]
    for path, block in blocks[1:]:
        for key in sorted(first.keys() | block.keys()):
            if first.get(key) != block.get(key):
                raise ContractError(
                    f"{path.name}: unit.{key} differs from {first_path.name}; "
                    "every dataset of a unit states the same unit block"
                )
    datasets = tuple(_dataset(path, raw, name) for path, raw in parsed)
    block = _Keys(first, first_path, "unit")
    unit = Unit(
        name=name,
        title=block.take("title", str),
        forvaltning=block.take("forvaltning", str),
        format=_format(block.take("format", dict), first_path),
        personnummer_style=block.take("personnummer_style", str, None, choices=STYLES),
        datasets=datasets,
    )
    block.done()
    if unit.has_persons and unit.personnummer_style is None:
        raise ContractError(
            f"{first_path.name}: unit.personnummer_style is missing; the unit delivers personnummer "
            f"(one of {', '.join(STYLES)})"
        )
    return unit


def _format(raw: dict[str, Any], path: Path) -> FileFormat:
    """The file format: ``type`` (csv, parquet, jsonl, xlsx) and that type's own keys."""
    block = _Keys(raw, path, "unit.format")
    cls = FORMATS[block.take("type", str, choices=tuple(FORMATS))]
    values = {
        f.name: block.take(
            f.name,
            bool if f.name == "decimal_comma" else str,
            choices=ENCODINGS if f.name == "encoding" else None,
        )
        for f in fields(cls)
        if f.name in raw
    }
    block.done()
    if len(values.get("separator", ",")) != 1:
        raise ContractError(f"{path.name}: unit.format.separator must be one character")
    return cls(**values)


def _dataset(path: Path, raw: dict[str, Any], unit: str) -> Dataset:
    unit_of_file, name = dataset_key(raw, path)
    if unit_of_file != unit:
        raise ContractError(f"{path.name}: dataset: names unit {unit_of_file}, listed under {unit}")
    block = _Keys(_block(raw, "delivery", path), path, "delivery")
    columns = block.take("source_columns", list)
    if not columns:
        raise ContractError(f"{path.name}: delivery.source_columns: at least one column is needed")
    months = block.take("delivered_in_months", list, list(range(1, 13)))
    if not months or any(type(m) is not int or not 1 <= m <= 12 for m in months):
        raise ContractError(f"{path.name}: delivery.delivered_in_months: months are numbers 1 to 12")
    natural_key = block.take("natural_key", list)
    if not natural_key or not all(isinstance(k, str) for k in natural_key):
        raise ContractError(f"{path.name}: delivery.natural_key: a list of loaded column names")
    dataset = Dataset(
        name=name,
        columns=tuple(_column(c, path, f"delivery.source_columns[{i}]") for i, c in enumerate(columns)),
        description=str(raw.get("description", "")).strip(),
        delivered_in_months=tuple(months),
        may_be_empty=block.take("may_be_empty", bool, False),
        quarantine_holds=block.take("quarantine_holds", bool, False),
        natural_key=tuple(natural_key),
        daily=block.take("daily", bool, False),
        control_totals=_control_totals(block.take("control_totals", dict, None), path),
    )
    block.done()
    for attribute in ("source", "name"):
        seen = [getattr(c, attribute) for c in dataset.columns]
        if twice := sorted({s for s in seen if seen.count(s) > 1}):
            raise ContractError(f"{path.name}: delivery.source_columns: {attribute} {twice} appears twice")
    if dataset.control_totals:
        _check_sums(dataset, path)
    return dataset


def _control_totals(raw: dict[str, Any] | None, path: Path) -> ControlTotals | None:
    """The manifest the source system writes beside the file, if the contract names one."""
    if raw is None:
        return None
    block = _Keys(raw, path, "delivery.control_totals")
    sums = block.take("sums", dict, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in sums.items()):
        raise ContractError(f"{path.name}: delivery.control_totals.sums maps source columns to manifest keys")
    totals = ControlTotals(block.take("manifest", str), block.take("rows", str), tuple(sums.items()))
    block.done()
    return totals


def _check_sums(dataset: Dataset, path: Path) -> None:
    numeric = {c.source for c in dataset.columns if c.kind in NUMERIC}
    for source, _ in dataset.control_totals.sums:
        if source not in numeric:
            raise ContractError(
                f"{path.name}: delivery.control_totals.sums: {source} is not an integer or decimal source column"
            )


def _column(raw: Any, path: Path, where: str) -> Column:
    block = _Keys(raw, path, where)
    column = Column(
        source=block.take("source", str),
        name=block.take("name", str),
        kind=block.take("kind", str, choices=KINDS),
        mandatory=block.take("mandatory", bool, True),
        minimum=block.take("min", (int, float), None),
        maximum=block.take("max", (int, float), None),
        allowed=_allowed(block.take("allowed", list, None), path, where),
        format=block.take("format", str, "iso", choices=DATE_FORMATS),
        on_identifier=block.take("on_identifier", str, "mask", choices=("mask", "drop")),
        scan_contacts=block.take("scan_contacts", bool, False),
    )
    block.done()
    where = f"{path.name}: {where} ({column.source})"
    if not NAME.fullmatch(column.name):
        raise ContractError(f"{where}: name {column.name!r} must be lower-case letters, digits and _")
    if (column.minimum is not None or column.maximum is not None) and column.kind not in NUMERIC:
        raise ContractError(f"{where}: min and max apply to integer and decimal columns, not {column.kind}")
    if "format" in raw and column.kind not in DATED:
        raise ContractError(f"{where}: format applies to date and timestamp columns, not {column.kind}")
    if column.allowed is not None and column.kind != "text":
        raise ContractError(f"{where}: allowed applies to text columns, not {column.kind}")
    if (column.on_identifier != "mask" or column.scan_contacts) and not column.free_text:
        raise ContractError(
            f"{where}: on_identifier and scan_contacts apply to free text (text without allowed values)"
        )
    return column


def _allowed(values: list[Any] | None, path: Path, where: str) -> tuple[str, ...] | None:
    if values is None:
        return None
    if not values or not all(isinstance(v, str) for v in values):
        # YAML reads yes/no/on/off as booleans and 01 as a number: quote such codes.
        raise ContractError(f"{path.name}: {where}.allowed: a non-empty list of quoted strings")
    return tuple(values)


def _block(raw: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    if key not in raw:
        raise ContractError(f"{path.name}: {key} is missing")
    if not isinstance(raw[key], dict):
        raise ContractError(f"{path.name}: {key} must be a mapping of keys")
    return raw[key]


class _Keys:
    """A YAML mapping read key by key, so that each error names the file and the key's path."""

    def __init__(self, raw: Any, path: Path, where: str) -> None:
        if not isinstance(raw, dict):
            raise ContractError(f"{path.name}: {where or 'the file'} must be a mapping of keys")
        self.raw, self.path, self.where, self.read = raw, path, where, set()

    def take(
        self,
        key: str,
        types: type | tuple[type, ...],
        default: Any = _REQUIRED,
        choices: tuple[str, ...] | None = None,
    ) -> Any:
        self.read.add(key)
        name = f"{self.where}.{key}" if self.where else key
        if key not in self.raw:
            if default is _REQUIRED:
                raise ContractError(f"{self.path.name}: {name} is missing")
            return default
        value = self.raw[key]
        # bool is an int to Python; in a contract `max: true` is a mistake, not 1.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _tuple(types)):
            expected = " or ".join(t.__name__ for t in _tuple(types))
            raise ContractError(f"{self.path.name}: {name} must be {expected}, not {value!r}")
        if choices is not None and value not in choices:
            raise ContractError(f"{self.path.name}: {name} {value!r} is not one of {', '.join(choices)}")
        return value

    def done(self) -> None:
        """Refuse keys nobody read: a misspelt ``maxium`` would otherwise drop a rule silently."""
        if unknown := sorted(set(self.raw) - self.read):
            where = f" in {self.where}" if self.where else ""
            raise ContractError(f"{self.path.name}: unknown key {', '.join(unknown)}{where}")


def _tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)
