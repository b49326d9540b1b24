"""The months a generation covers, and day arithmetic on them.

Days are counted as integers since 1970-01-01 (numpy datetime64[D]), which is
also how polars stores a Date, so arrays move between numpy and polars freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class Period:
    """`months` consecutive calendar months ending with `end_month` (inclusive)."""

    end_month: str
    months: int

    @classmethod
    def ending(cls, end_month: str, years: int) -> Period:
        if years < 1:
            raise ValueError("years must be at least 1")
        np.datetime64(end_month, "M")  # validates 'YYYY-MM'
        return cls(end_month=end_month, months=12 * years)

    @property
    def first(self) -> np.datetime64:
        return np.datetime64(self.end_month, "M") - (self.months - 1)

    def month(self, m: int) -> np.datetime64:
        """Month m (0-based, may be negative or beyond the period) as datetime64[M]."""
        return self.first + m

    def label(self, m: int) -> str:
        return str(self.month(m))

    @property
    def labels(self) -> list[str]:
        return [self.label(m) for m in range(self.months)]

    def start_day(self, m: int) -> int:
        """First day of month m, in days since 1970-01-01."""
        return int(self.month(m).astype("datetime64[D]").astype(np.int64))

    def end_day(self, m: int) -> int:
        """Last day of month m, in days since 1970-01-01."""
        return self.start_day(m + 1) - 1

    def bounds(self, months: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """First and last day of each given month (0-based, may lie outside the period)."""
        months = np.asarray(months, dtype=np.int64)
        start = (self.first + months).astype("datetime64[D]").astype(np.int64)
        return start, (self.first + months + 1).astype("datetime64[D]").astype(np.int64) - 1

    @cached_property
    def start_days(self) -> np.ndarray:
        """First day of every month of the period."""
        return self.bounds(np.arange(self.months))[0]

    @cached_property
    def end_days(self) -> np.ndarray:
        """Last day of every month of the period."""
        return self.bounds(np.arange(self.months))[1]

    def random_days(self, rng: np.random.Generator, months: np.ndarray) -> np.ndarray:
        """A uniformly drawn day within each given month (may lie outside the period)."""
        start, end = self.bounds(months)
        return start + np.floor(rng.random(len(start)) * (end - start + 1)).astype(np.int64)

    def random_times(self, rng: np.random.Generator, months: np.ndarray, office: np.ndarray) -> np.ndarray:
        """A time within each given month (datetime64[us], whole seconds).

        Office rows fall on a weekday between 08:00 and 16:30 (calls, registered
        paper); the others on any day, mostly between 07:00 and 22:00 (web).
        """
        months = np.asarray(months, dtype=np.int64)
        office = np.broadcast_to(np.asarray(office, dtype=bool), months.shape)
        day = self.random_days(rng, months)
        # Office rows: the k-th weekday of the month instead.
        start = self.start_days
        count, table = self._weekdays
        k = np.floor(rng.random(len(months)) * count[months]).astype(np.int64)
        day = np.where(office, start[months] + table[months, k], day)
        evening = rng.random(len(months)) < 0.2
        minute = np.where(
            office,
            rng.integers(480, 990, len(months)),
            np.where(evening, rng.integers(0, 1440, len(months)), rng.integers(420, 1320, len(months))),
        )
        seconds = day * 86_400 + minute * 60 + rng.integers(0, 60, len(months))
        return (seconds * 1_000_000).astype("datetime64[us]")

    @cached_property
    def _weekdays(self) -> tuple[np.ndarray, np.ndarray]:
        """Per month, the number of weekdays and their offsets from the first day."""
        weekdays = [
            np.flatnonzero(np.is_busday(np.arange(s, e + 1).astype("datetime64[D]")))
            for s, e in zip(self.start_days, self.end_days, strict=True)
        ]
        count = np.array([len(w) for w in weekdays])
        table = np.zeros((self.months, int(count.max())), dtype=np.int64)
        for i, w in enumerate(weekdays):
            table[i, : len(w)] = w
        return count, table

    def year(self, m: int) -> int:
        return int(self.month(m).astype("datetime64[Y]").astype(np.int64)) + 1970

    def calendar_month(self, m: int) -> int:
        """1-12, from the datetime64 itself rather than from its text."""
        return int(self.month(m).astype(np.int64)) % 12 + 1

    def years_elapsed(self, m: int | np.ndarray) -> float | np.ndarray:
        """Time since the start of the period in years (for trends)."""
        return np.asarray(m) / 12.0


def ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split days since 1970 into calendar year, month (1-12) and day (1-31).

    Integer arithmetic over 400-year eras (H. Hinnant's civil_from_days), a third of the time of
    numpy's datetime64 conversions: the simulation ages a million people every month.
    """
    z = np.asarray(days, dtype=np.int64) + 719_468  # days since 0000-03-01
    era = z // 146_097
    day_of_era = z - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)  # from 1 March
    march_month = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * march_month + 2) // 5 + 1
    month = np.where(march_month < 10, march_month + 3, march_month - 9)
    return year_of_era + era * 400 + (month <= 2), month, day


def age_at(birth_days: np.ndarray, day: int) -> np.ndarray:
    """Completed years of age on `day` for people born on `birth_days`."""
    by, bm, bd = ymd(birth_days)
    y, m, d = (int(v[0]) for v in ymd(np.array([day])))
    return y - by - ((m < bm) | ((m == bm) & (d < bd)))
