"""Freshness of a monthly feed: a delivery is due a few days after its month ends.

Every unit delivers monthly (the cadence of all contracts today). When a
delivery arrived is taken from its files' modification times in ``landing/``
(the time the unit's transfer wrote them); the synthetic generator plants one
late delivery the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pipelines.ingest.months import Delivery, scan

CADENCE = "monthly"
GRACE_DAYS = 10  # a delivery is due at most this many days after its month ends


@dataclass(frozen=True)
class Arrival:
    delivery: str
    due: datetime
    arrived: datetime | None  # None: no file in the delivery folder

    @property
    def on_time(self) -> bool:
        return self.arrived is not None and self.arrived <= self.due

    @property
    def days_late(self) -> float:
        if self.arrived is None:
            return 0.0
        return max((self.arrived - self.due) / timedelta(days=1), 0.0)


def due(delivery: str) -> datetime:
    """When the delivery of month ``YYYY-MM`` must have arrived (UTC)."""
    following = Delivery.parse(delivery).next()
    return datetime(following.year, following.month, 1, tzinfo=UTC) + timedelta(days=GRACE_DAYS)


def overdue(unit_landing: Path, now: datetime) -> tuple[str | None, datetime | None]:
    """The delivery that should have arrived by ``now`` and has not (month, due), else (None, None).

    The next delivery after the latest one in landing is due ``GRACE_DAYS`` after
    its month ends; a unit that never delivered is not judged (no cadence yet).
    """
    months = scan(unit_landing, now.date()).months
    if not months:
        return None, None
    expected = str(Delivery.parse(months[-1]).next())
    return (expected, due(expected)) if now > due(expected) else (None, None)


def arrival(folder: Path) -> Arrival:
    """When the last file of a delivery folder arrived."""
    times = [p.stat().st_mtime for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
    arrived = datetime.fromtimestamp(max(times), tz=UTC) if times else None
    return Arrival(folder.name, due(folder.name), arrived)
