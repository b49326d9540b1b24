"""Primary suppression, and the cheap part of secondary suppression within one table.

Primary: every count below the threshold (zero included) is withheld, and so is a hidden complement
below it (it is never published, but must not be computable). Secondary, here: a relation with exactly
one unknown cell gives that cell away, so while any relation's single unknown is sensitive, its
smallest published member is withheld too (the total when no member is left), until nothing changes.
That settles most cells cheaply; what several relations, non-negativity and integrality still give
away is found by the bounds audit over the whole snapshot (``joint.secure``), which withholds more.

Choices are deterministic (smallest value, then position), so publishing the same data twice
withholds the same cells and successive snapshots cannot be differenced on the choice alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.disclosure.joint import secure
from pipelines.disclosure.policy import DEFAULT_THRESHOLD
from pipelines.disclosure.spec import Cells, Group, TableSpec, cells


@dataclass(frozen=True)
class Protected:
    """The protected table and how many cells of each count were withheld, and why."""

    frame: pl.DataFrame
    primary: dict[str, int]
    secondary: dict[str, int]


def protect(
    frame: pl.DataFrame, spec: TableSpec, threshold: int = DEFAULT_THRESHOLD, bounds: bool = True
) -> Protected:
    """Withhold (set to NULL) small counts and every cell that would reveal one.

    With ``bounds`` (the default) the table alone then goes through the bounds rounds; the publish
    passes False and runs them once over the whole snapshot instead.
    """
    if threshold < 1:
        raise ValueError("the threshold must be at least 1")
    c = cells(frame, spec)
    small = c.applies & ~c.slack & (np.isnan(c.values) | (c.values < threshold))
    withheld = small & ~c.hidden  # published cells withheld
    sensitive = small.copy()  # cells whose value must not be recoverable
    _secondary(c, withheld, sensitive)
    out, primary, secondary = frame, {}, {}
    for count in spec.counts:
        part = c.column(count)
        primary[count] = int(small[part].sum())
        secondary[count] = int((withheld[part] & ~small[part]).sum())
        out = out.with_columns(_null_where(count, withheld[part]))
    for column, counts in spec.derived.items():
        hide = np.zeros(frame.height, dtype=bool)
        for count in counts:
            hide |= withheld[c.column(count)]
        out = out.with_columns(_null_where(column, hide))
    if bounds:
        before, out = out, secure({spec.name: out}, {spec.name: spec}, threshold).tables[spec.name]
        for count in spec.counts:
            secondary[count] += int(out[count].null_count() - before[count].null_count())
    return Protected(out, primary, secondary)


def _null_where(column: str, mask: np.ndarray) -> pl.Expr:
    return pl.when(pl.Series(mask)).then(None).otherwise(pl.col(column)).alias(column)


def _secondary(c: Cells, withheld: np.ndarray, sensitive: np.ndarray) -> None:
    _single_unknowns(c, withheld, sensitive)


def _single_unknowns(c: Cells, withheld: np.ndarray, sensitive: np.ndarray) -> bool:
    """While a relation's only unknown is sensitive, withhold its smallest published cell."""
    changed_any, changed = False, True
    while changed:
        changed = False
        for g in c.groups:
            cells_ = (g.total, *g.members)
            unknowns = [x for x in cells_ if withheld[x] or c.hidden[x]]
            exposed = len(unknowns) == 1 and (sensitive[unknowns[0]] or withheld[unknowns[0]])
            if exposed and _withhold_smallest(g, c, withheld, sensitive):
                changed = changed_any = True
    return changed_any


def _withhold_smallest(g: Group, c: Cells, withheld: np.ndarray, sensitive: np.ndarray) -> bool:
    open_members = [m for m in g.members if not withheld[m] and not c.hidden[m]]
    if open_members:
        pick = min(open_members, key=lambda m: (c.values[m], m))
    elif not withheld[g.total] and not c.hidden[g.total]:
        pick = g.total
    else:
        return False
    withheld[pick] = True
    sensitive[pick] = True  # once withheld, it must stay unknown, or the cell it covers is exposed
    return True


def withhold_running(
    frame: pl.DataFrame,
    columns: list[str],
    count: str,
    order: str,
    by: list[str],
    applies: pl.Expr | None = None,
) -> pl.DataFrame:
    """Withhold ``columns`` from the first row (in ``order`` within ``by``) whose ``count`` is withheld on.

    For values built from running totals (a year-to-date forecast is the running sum scaled): two
    consecutive published running totals would give away the withheld month between them.
    """
    applies = pl.lit(True) if applies is None else applies
    seen = (applies & pl.col(count).is_null()).cast(pl.Int32).cum_max().over(by, order_by=order)
    return frame.with_columns([pl.when(seen == 1).then(None).otherwise(pl.col(c)).alias(c) for c in columns])
