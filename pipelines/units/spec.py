"""The delivery contract of a unit in memory: which files it sends, in which format, with which columns.

A unit's source system decides the format (encoding, separator, decimal mark,
personnummer style); the spec describes it so that ingestion can read it and the
synthetic generator can imitate it. Column names are the source system's own.
The values are read from the dataset contracts (YAML) by :mod:`pipelines.units.load`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

ColumnKind = Literal[
    "personnummer",  # pseudonymised at the border, never loaded as is
    "text",
    "integer",
    "decimal",
    "date",  # ISO date, YYYY-MM-DD, or an Excel serial number (Column.format)
    "month",  # YYYY-MM
    "timestamp",  # ISO timestamp, naive (Swedish local time) or with an offset, or an Excel serial (see ingest/values.py)
    "boolean",
    "key",  # a source identifier that is not a personnummer (household id): pseudonymised
    "identifier",  # free text that identifies a person (name, address): never loaded
]

# How a date or timestamp column is written: ISO 8601, or the day numbers of Excel's 1900 date system
# (45292 is 2024-01-01, a fraction the time of day), as Excel exports a cell without a date format.
DateFormat = Literal["iso", "excel_serial"]

# utf-16: with a byte-order mark, as Excel writes "Unicode text" (usually tab separated)
Encoding = Literal["utf-8", "utf-8-sig", "cp1252", "utf-16"]


@dataclass(frozen=True)
class Csv:
    encoding: Encoding = "utf-8"
    separator: str = ","
    decimal_comma: bool = False
    extension: str = "csv"


@dataclass(frozen=True)
class Parquet:
    extension: str = "parquet"


@dataclass(frozen=True)
class JsonLines:
    extension: str = "jsonl"


@dataclass(frozen=True)
class Xlsx:
    """An Excel workbook, one per dataset file: its header in row 1 of the sheet (the first unless named)."""

    sheet: str | None = None
    extension: str = "xlsx"


FileFormat = Csv | Parquet | JsonLines | Xlsx
PersonnummerStyle = Literal["twelve", "twelve_hyphen", "ten_separator", "mixed"]


@dataclass(frozen=True)
class Column:
    """A source column and the warehouse column it becomes."""

    source: str
    name: str
    kind: ColumnKind
    mandatory: bool = True
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] | None = None
    format: DateFormat = "iso"  # date and timestamp columns: how the values are written
    # Free text (a text column without an allowed set) is scanned at the border for personnummer and
    # samordningsnummer in every written form; a hit is masked in place, or the whole value dropped.
    on_identifier: Literal["mask", "drop"] = "mask"
    scan_contacts: bool = False  # also mask what looks like an e-mail address or a phone number

    @property
    def free_text(self) -> bool:
        """A typed value, not a code: an agent may have written anything into it, a personnummer too."""
        return self.kind == "text" and not self.allowed


@dataclass(frozen=True)
class ControlTotals:
    """The manifest a source system writes beside a dataset's file: its record count and column sums.

    Reconciliation holds the delivery when the file disagrees with it (``pipelines/quality/control.py``).
    """

    manifest: str  # file name in the delivery folder, e.g. ``utbetalningar.kontroll.json``
    rows: str  # the manifest's key for the number of records
    sums: tuple[tuple[str, str], ...] = ()  # (source column, the manifest's key for its sum)


@dataclass(frozen=True)
class Dataset:
    """One file of a monthly delivery, loaded into one table of the unit zone."""

    name: str
    columns: tuple[Column, ...]
    description: str = ""
    # Some datasets only come in some months (absence per term, merit value in July).
    delivered_in_months: tuple[int, ...] = tuple(range(1, 13))
    # A file with no records (only its header) is an empty delivery and holds the delivery, unless the
    # dataset records rare events, where a month without any is a real answer (investigations opened).
    may_be_empty: bool = False
    # Rows that are figures per org unit rather than events: a quarantined row would leave every total
    # above it wrong, so it holds the whole delivery instead of letting the rest through.
    quarantine_holds: bool = False
    control_totals: ControlTotals | None = None
    # At most one loaded row per key and delivery (warehouse column names, as the border writes them).
    natural_key: tuple[str, ...] = ()
    # A source that exports every day (Direkt feedback) writes one file per day into the month's folder,
    # ``<dataset>_<YYYY-MM-DD>.<ext>``; each new day's file changes the month's fingerprint, so the
    # delivery sensor reloads the month (atomically, every day's file reconciled on its own).
    daily: bool = False

    def file_name(self, fmt: FileFormat, day: date | None = None) -> str:
        """The dataset's file in a delivery folder; a daily dataset's file for ``day``."""
        if self.daily != (day is not None):
            raise ValueError(f"{self.name}: a day is given exactly when the dataset is delivered daily")
        return f"{self.name}_{day:%Y-%m-%d}.{fmt.extension}" if day else f"{self.name}.{fmt.extension}"

    def files(self, folder: Path, fmt: FileFormat) -> list[Path]:
        """The dataset's files in a delivery folder, in order: the one file, or every day's file
        (``file_name`` of each day, in day order); a file named for no day of the month is left out
        here and found by :meth:`stray_files`."""
        if not self.daily:
            return [folder / self.file_name(fmt)]
        return sorted(p for p in folder.glob(f"{self.name}_*.{fmt.extension}") if self.day_of(p, fmt))

    def stray_files(self, folder: Path, fmt: FileFormat) -> list[Path]:
        """Files that look like a daily dataset's but name no day of the folder's month."""
        if not self.daily:
            return []
        return sorted(p for p in folder.glob(f"{self.name}_*.{fmt.extension}") if not self.day_of(p, fmt))

    def day_of(self, path: Path, fmt: FileFormat) -> date | None:
        """The day a daily file is named for, if it is a day of its folder's month (``YYYY-MM``)."""
        stem = path.name.removeprefix(f"{self.name}_").removesuffix(f".{fmt.extension}")
        try:
            day = date.fromisoformat(stem)
        except ValueError:
            return None
        return day if f"{day:%Y-%m}" == path.parent.name and stem == f"{day:%Y-%m-%d}" else None

    @property
    def person_column(self) -> Column | None:
        return next((c for c in self.columns if c.kind == "personnummer"), None)

    def column(self, name: str) -> Column:
        """A column by its warehouse name (the generator draws from its allowed values)."""
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class Unit:
    """A municipal unit (under OSL its own authority) and its delivery contract."""

    name: str  # slug used in paths and asset keys
    title: str  # Swedish name shown to users
    forvaltning: str
    format: FileFormat
    personnummer_style: PersonnummerStyle | None = None
    datasets: tuple[Dataset, ...] = field(default_factory=tuple)

    @property
    def has_persons(self) -> bool:
        return any(d.person_column for d in self.datasets)

    def dataset(self, name: str) -> Dataset:
        return next(d for d in self.datasets if d.name == name)
