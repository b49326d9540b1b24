"""Year-9 merit value against the other services: a difference in means with its interval.

The merit value (meritvärde, 0–340) is continuous and comes once per pupil, in the quarter after year 9
(delivered in July), so it is no yes/no indicator for an odds ratio. For every shared indicator (of
another unit, or of another skola dataset its steward approved: high absence), the pupils who had it in
any of the ``WINDOW`` quarters before their merit value (the school year) are compared with those who
had not: the difference in mean merit value, within each school year and averaged over the exposed
pupils' years. A pupil has one merit value, so pupils are independent and the interval is Student's
on the pooled variance within years, not the odds ratios' jackknife over groups of persons, which
understates the spread of a difference among a handful of pupils (``test`` says why).

These hypotheses are in the associations' correction: one family per indicator family and the merit
value, in the same Benjamini–Hochberg over families. A difference holds when its family is selected,
its p is within the level, and its interval excludes ±``MARGIN`` merit points: 10 points is one grade
step in four of the sixteen subjects, about a quarter of the spread between pupils; a smaller difference
does not change what a school does. An indicator every pupil with a merit value has, or none has,
gives no comparison and no hypothesis (enrolment: every pupil with a merit value is enrolled).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from pipelines.discovery.panel import (
    MERIT_DATASET,
    MERIT_UNIT,
    Indicator,
    Panel,
    depth,
    family,
)

NAME = "merit"  # the measure's name in finding ids and families
LABEL = "meritvärde i årskurs 9"
MARGIN = 10.0  # merit points: a smaller difference does not matter to a school, however certain
REFERENCE = 20.0  # merit points: "no difference" means one this large would have been seen
WINDOW = 4  # quarters before the merit value's quarter: the school year
MIN_PUPILS = 20  # per side: fewer is "too little data", untested (``test`` says why)


@dataclass(frozen=True)
class Comparison:
    """Pupils with a merit value, with and without ``indicator`` in the school year before it."""

    indicator: Indicator

    @property
    def family(self) -> frozenset[str]:
        return frozenset({family(self.indicator.name), NAME})

    @property
    def specificity(self) -> int:
        return depth(self.indicator.name)

    @property
    def finding_id(self) -> str:
        return f"association:{self.indicator.name}:{NAME}"


def pupils(panel: Panel) -> tuple[np.ndarray, np.ndarray]:
    """(rows holding a merit value, per such row and indicator whether the pupil had it in the window)."""
    if panel.merit is None:
        return np.zeros(0, np.int64), np.zeros((0, len(panel.indicators)), bool)
    rows = np.flatnonzero(~np.isnan(panel.merit))
    had = np.zeros((len(rows), len(panel.indicators)), bool)
    for k in range(1, WINDOW + 1):  # rows are ordered by person and quarter: the window is just before
        before = rows - k
        inside = before >= 0
        before = np.where(inside, before, 0)
        same = (
            inside
            & (panel.person[before] == panel.person[rows])
            & (panel.quarter[before] >= panel.quarter[rows] - WINDOW)
        )
        had |= panel.flags[before] & same[:, None]
    return rows, had


def comparisons(panel: Panel, had: np.ndarray) -> list[Comparison]:
    """Every shared indicator outside the merit value's own dataset whose pupils differ (some had it)."""
    return [
        Comparison(i)
        for j, i in enumerate(panel.indicators)
        if (i.unit, i.dataset) != (MERIT_UNIT, MERIT_DATASET) and 0 < had[:, j].sum() < len(had)
    ]


def test(panel: Panel, rows: np.ndarray, exposed: np.ndarray) -> dict:
    """Difference in mean merit value (exposed minus not) within school years, weighted by the exposed
    pupils, with Student's interval on the pooled variance within each year.

    A pupil has one merit value, so pupils are independent and the textbook variance holds. The
    jackknife over 20 groups does not: with a handful of exposed pupils most groups hold none, and on
    shuffled data it reported differences of 40 points among eight pupils in 4 runs of 15. Nor does
    Welch's: with two or three exposed pupils their own variance is a guess, and when it comes out
    small Satterthwaite's degrees of freedom grow with it (p < 0.01 in 3 % of shuffled comparisons,
    16 % for some units). With no link the two groups' merit values have one distribution, so the
    pooled variance is exact under the hypothesis tested, as far as a mean is near normal: merit values
    are skewed (a pile at zero for pupils without grades), and the mean of two or three of them is not,
    so on shuffled data at 15,000 citizens a handful of pupils with a safety alarm "differed" (1 run in
    18). A side with fewer than ``MIN_PUPILS`` pupils is not tested: with a spread of about 60 points the
    smallest difference it could show is near 50 points (``detectable``), far beyond ``REFERENCE``, so
    it says "too little data" and loses nothing a school could use. A year without pupils on both sides,
    or with fewer than three, gives nothing and is left out.
    """
    value = panel.merit[rows]
    years, year = np.unique(panel.quarter[rows], return_inverse=True)
    cell = year * 2 + exposed
    size = len(years) * 2
    n = np.bincount(cell, minlength=size).reshape(-1, 2).astype(float)
    total = np.bincount(cell, weights=value, minlength=size).reshape(-1, 2)
    squares = np.bincount(cell, weights=value**2, minlength=size).reshape(-1, 2)
    out = {"effect": float("nan"), "n_a": int(exposed.sum()), "n_b": int((~exposed).sum())}
    used = (n >= 1).all(axis=1) & (n.sum(axis=1) >= 3)
    if not used.any() or min(out["n_a"], out["n_b"]) < MIN_PUPILS:
        return out | {
            "lo": float("nan"),
            "hi": float("nan"),
            "se": float("nan"),
            "p": float("nan"),
            "df": 1.0,
        }
    n, total, squares = n[used], total[used], squares[used]
    mean = total / n
    pooled = (squares - total * mean).sum(axis=1) / (n.sum(axis=1) - 2)  # per year
    weight = n[:, 1] / n[:, 1].sum()
    effect = float((weight * (mean[:, 1] - mean[:, 0])).sum())
    se = float((weight**2 * pooled * (1 / n).sum(axis=1)).sum()) ** 0.5
    df = float((n.sum(axis=1) - 2).sum())
    t = stats.t.ppf(0.975, df)
    p = float(2 * stats.t.sf(abs(effect) / se, df)) if se > 0 else 0.0
    return out | {"effect": effect, "lo": effect - t * se, "hi": effect + t * se, "se": se, "p": p, "df": df}


def holds(t: dict, margin: float = MARGIN) -> bool:
    """The interval lies beyond the margin, either way (lower merit is as much a finding as higher)."""
    return bool(t["lo"] > margin or t["hi"] < -margin)


def detectable(se: float, df: float, alpha: float, power: float, margin: float = MARGIN) -> float:
    """The smallest difference (merit points, either way) reported with probability ``power``: its
    interval must clear the margin and its p the level ``alpha``; infinite when nothing was estimated."""
    if not np.isfinite(se):
        return float("inf")
    clear = max(margin + stats.t.ppf(0.975, df) * se, stats.t.isf(alpha / 2, df) * se)
    return float(clear + stats.t.ppf(power, df) * se)
