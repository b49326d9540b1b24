"""Check a table before it is shared: what a reviewer would look for, as code.

``audit`` reads the table as it will be published, NULL meaning withheld, and reports every count
below the threshold, every complement (total minus part, in a row) below it, every withheld count
that the published relations still give away, and every derived value shown although a count it
reveals is withheld. An empty list means shareable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.disclosure.linear import determined
from pipelines.disclosure.spec import DEFAULT_THRESHOLD, TableSpec, cells


@dataclass(frozen=True)
class Problem:
    table: str
    column: str
    row: int
    rule: str  # 'below_threshold' | 'complement_below_threshold' | 'recoverable' | 'derived_shown'

    def __str__(self) -> str:
        return f"{self.table}.{self.column} row {self.row}: {self.rule}"


def audit(frame: pl.DataFrame, spec: TableSpec, threshold: int = DEFAULT_THRESHOLD) -> list[Problem]:
    """Every way the published table discloses a count below the threshold."""
    c = cells(frame, spec)
    n = c.rows
    names = [
        *spec.counts,
        *(f"{whole} - {part}" for part, whole in spec.complements.items()),
        *(f"{whole} - {part}" for part, whole in spec.at_most.items()),
    ]
    unknown = np.isnan(c.values) | c.hidden
    small = c.applies & ~c.slack & ~np.isnan(c.values) & (c.values < threshold)
    problems = [
        Problem(
            spec.name,
            names[i // n],
            i % n,
            "complement_below_threshold" if c.hidden[i] else "below_threshold",
        )
        for i in np.flatnonzero(small)
    ]
    withheld = c.applies & np.isnan(c.values) & ~c.hidden
    problems += [
        Problem(spec.name, names[i // n], i % n, "recoverable")
        for i in determined(unknown, c.groups)
        if withheld[i]
    ]
    for column, counts in spec.derived.items():
        shown = frame[column].is_not_null().to_numpy()
        hidden = np.zeros(frame.height, dtype=bool)
        for count in counts:
            hidden |= withheld[c.column(count)]
        problems += [
            Problem(spec.name, column, int(r), "derived_shown") for r in np.flatnonzero(shown & hidden)
        ]
    return problems
