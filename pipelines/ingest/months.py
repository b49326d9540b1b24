"""Delivery months: the folders ``landing/<unit>/<YYYY-MM>/``, parsed once and taken in time order.

A :class:`Delivery` is the one value for a month a unit delivers: it parses the folder name, orders
in time, gives its year and month and the unit asset's partition key (the folder name again), so no
module slices a ``YYYY-MM`` string itself. :func:`scan` is the one reader of a unit's landing folders.

A unit may send months late, out of order or again; whatever the order of arrival, months are
loaded in time order. A folder that is not a month (``2026-13``, ``2024-5``), a month that has not
begun yet, or a folder with no files is rejected with its reason, never skipped in silence.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

PATTERN = re.compile(r"(\d{4})-(\d{2})")


class NotADelivery(ValueError):
    """A folder in a unit's landing that cannot be loaded as a delivery month; the message says why."""


@dataclass(frozen=True, order=True)
class Delivery:
    """A delivery month, ordered in time."""

    year: int
    month: int

    @classmethod
    def parse(cls, name: str) -> Delivery:
        match = PATTERN.fullmatch(name)
        if not match:
            raise NotADelivery(f"{name!r} is not a delivery month (YYYY-MM)")
        year, month = int(match[1]), int(match[2])
        if not 1 <= month <= 12 or year < 1900:
            raise NotADelivery(f"{name!r} is not a calendar month")
        return cls(year, month)

    @classmethod
    def of(cls, day: date) -> Delivery:
        return cls(day.year, day.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def partition_key(self) -> str:
        """The unit asset's partition for this month: its landing folder's name, ``YYYY-MM``."""
        return str(self)

    def next(self) -> Delivery:
        return Delivery(self.year + self.month // 12, self.month % 12 + 1)

    def previous(self) -> Delivery:
        return Delivery(self.year - (self.month == 1), (self.month - 2) % 12 + 1)

    def days_before(self, today: date) -> list[date]:
        """The month's days that have ended before ``today``: a daily source has exported each of them."""
        first, following = date(self.year, self.month, 1), self.next()
        end = min(date(following.year, following.month, 1), today)
        return [first + timedelta(days=d) for d in range(max((end - first).days, 0))]


def fingerprint(folder: Path) -> str:
    """Changes when a file of the delivery is added, removed, replaced or rewritten (name, size, mtime):
    cheap enough for a sensor tick over every unit's landing, unlike hashing the contents."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    listed = ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    return hashlib.sha256(listed.encode()).hexdigest()[:16]


def last_complete_month(today: date) -> Delivery:
    """The latest month that has ended: the newest a unit can have delivered in full."""
    return Delivery(today.year - (today.month == 1), (today.month - 2) % 12 + 1)


@dataclass(frozen=True)
class Landing:
    """One unit's delivery folders as they are now: the months to load, in time order, and the rejected."""

    months: list[str]
    rejected: dict[str, str]


def scan(unit_landing: Path, today: date) -> Landing:
    """Every folder in a unit's landing, each either a month to load or rejected with its reason."""
    found: set[Delivery] = set()
    rejected: dict[str, str] = {}
    folders = sorted(p for p in unit_landing.iterdir() if p.is_dir()) if unit_landing.is_dir() else []
    for folder in folders:
        if folder.name.startswith("."):
            continue  # a unit's transfer tool writes here while it copies
        try:
            month = Delivery.parse(folder.name)
        except NotADelivery as e:
            rejected[folder.name] = str(e)
            continue
        if month > Delivery.of(today):
            rejected[folder.name] = f"{month} has not begun yet (today is {today:%Y-%m-%d})"
        elif not any(p.is_file() for p in folder.iterdir()):
            rejected[folder.name] = f"{month} holds no files"
        else:
            found.add(month)
    return Landing([m.partition_key for m in sorted(found)], rejected)
