"""Check a table before it is shared: what a reviewer would look for, as code.

``audit`` reads the table as it will be published, NULL meaning withheld, and reports every count
below the threshold, every complement (total minus part, in a row) below it, every withheld count
that the table's relations narrow below the protection width (the bounds audit, with non-negativity
and integrality), and every derived value shown although a count it reveals is withheld. An empty
list means shareable. A snapshot's tables together are audited by ``joint.attack``/``joint.secure``;
``relations=False`` skips the per-table bounds audit where that has run already.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.disclosure.joint import attack
from pipelines.disclosure.policy import DEFAULT_THRESHOLD
from pipelines.disclosure.spec import TableSpec, cells


@dataclass(frozen=True)
class Problem:
    table: str
    column: str
    row: int
    rule: str  # 'below_threshold' | 'complement_below_threshold' | 'recoverable' | 'derived_shown'

    def __str__(self) -> str:
        return f"{self.table}.{self.column} row {self.row}: {self.rule}"


def audit(
    frame: pl.DataFrame, spec: TableSpec, threshold: int = DEFAULT_THRESHOLD, relations: bool = True
) -> list[Problem]:
    """Every way the published table discloses a count below the threshold."""
    c = cells(frame, spec)
    n = c.rows
    names = [
        *spec.counts,
        *(f"{whole} - {part}" for part, whole in spec.complements.items()),
        *(f"{whole} - {part}" for part, whole in spec.at_most.items()),
    ]
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
    if relations:
        narrow = attack({spec.name: frame}, {spec.name: spec}, threshold).narrow
        problems += [
            Problem(spec.name, names[x.cell // n], x.cell % n, "recoverable")
            for x in narrow
            if withheld[x.cell]
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
