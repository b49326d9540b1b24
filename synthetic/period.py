"""The months a generation covers, and day arithmetic on them.

Days are counted as integers since 1970-01-01 (numpy datetime64[D]), which is
also how polars stores a Date, so arrays move between numpy and polars freely.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    def year(self, m: int) -> int:
        return int(str(self.month(m))[:4])

    def calendar_month(self, m: int) -> int:
        return int(str(self.month(m))[5:7])

    def years_elapsed(self, m: int | np.ndarray) -> float | np.ndarray:
        """Time since the start of the period in years (for trends)."""
        return np.asarray(m) / 12.0

    def month_index(self, label: str) -> int:
        return int((np.datetime64(label, "M") - self.first).astype(int))


def ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split days since 1970 into calendar year, month (1-12) and day (1-31)."""
    d = np.asarray(days).astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    year = months.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (d - months.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month, day


def age_at(birth_days: np.ndarray, day: int) -> np.ndarray:
    """Completed years of age on `day` for people born on `birth_days`."""
    by, bm, bd = ymd(birth_days)
    y, m, d = (int(v[0]) for v in ymd(np.array([day])))
    return y - by - ((m < bm) | ((m == bm) & (d < bd)))
