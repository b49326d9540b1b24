"""How a table is described to disclosure control, and the cells and relations that follow from it.

A table's protected counts become *cells* (one per row and count column, numbered column by
column), plus one hidden cell per row for each declared complement (total minus subset: never
published, but anyone can compute it from the two published counts). *Relations* are the linear
equations a reader can use: margin total = sum of its members, and total = subset + complement
within a row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import polars as pl

TOTAL = "Totalt"  # the value a margin dimension takes in its total rows


def protection_width(threshold: int) -> int:
    """How wide a withheld cell's feasible interval must stay: as wide as the threshold.

    An interval [low, high] with high - low >= threshold holds at least threshold + 1 integers, so a
    withheld small count (0 to threshold - 1) can always be any small value or a value at or above
    the threshold: the attacker cannot even tell whether it was small.
    """
    return threshold


@dataclass(frozen=True, eq=False)
class Identity:
    """Rows of this table (where ``where`` holds) that repeat quantities of table ``other``.

    Rows are matched on the columns ``on`` to the rows of ``other`` where ``other_where`` holds; for
    each count in ``terms``, this row's count equals sum(coefficient * other's column). A reader who
    has both tables knows this, so the audit over a snapshot must too.
    """

    other: str
    on: tuple[str, ...]
    terms: Mapping[str, Mapping[str, float]]
    where: pl.Expr | None = None
    other_where: pl.Expr | None = None


@dataclass(frozen=True)
class TableSpec:
    """A table to protect.

    ``dimensions`` identify a row. ``counts`` are the protected counts (of people, or of cases and
    contacts about people). A dimension in ``margins`` has total rows (value ``total``) holding the
    sum of the rows with the same values in every other dimension. ``complements`` maps a count to
    the count it is a part of in the same row (backlog past promise of backlog): the difference is
    protected too, since 20 cases of which 18 late says 2 were on time. ``at_most`` maps a count to a
    count it can never exceed in the same row although it is not a part of it (persons with a contact
    at most contacts): the attacker knows the inequality, so the audit uses it, but the difference is
    not a count of people and is not protected. ``identities`` declare cells that repeat quantities of
    another table (a KPI showing the case flow's cells): the audit over the whole snapshot uses them.
    ``derived`` maps a column to
    the counts it reveals (a share, a median): it is withheld whenever one of them is. Rows where the
    boolean column ``applies`` is false are not about people (a budget in kronor) and stay as they
    are; ``only_where`` does the same per count (a count that only share KPIs have).
    """

    name: str
    dimensions: tuple[str, ...]
    counts: tuple[str, ...]
    margins: tuple[str, ...] = ()
    complements: Mapping[str, str] = field(default_factory=dict)
    at_most: Mapping[str, str] = field(default_factory=dict)
    identities: tuple[Identity, ...] = ()
    derived: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    applies: str | None = None
    only_where: Mapping[str, str] = field(default_factory=dict)
    total: str = TOTAL

    def __post_init__(self) -> None:
        if unknown := set(self.margins) - set(self.dimensions):
            raise ValueError(f"{self.name}: margins {sorted(unknown)} are not dimensions")
        for column, counts in self.derived.items():
            if unknown := set(counts) - set(self.counts):
                raise ValueError(f"{self.name}: {column} depends on {sorted(unknown)}, which are not counts")
        for part, whole in self.complements.items():
            if {part, whole} - set(self.counts):
                raise ValueError(f"{self.name}: complement {part} of {whole} must name two counts")
        for part, whole in self.at_most.items():
            if {part, whole} - set(self.counts):
                raise ValueError(f"{self.name}: {part} at most {whole} must name two counts")
        for identity in self.identities:
            if unknown := set(identity.terms) - set(self.counts):
                raise ValueError(f"{self.name}: identity with {identity.other} names {sorted(unknown)}")
        if unknown := set(self.only_where) - set(self.counts):
            raise ValueError(f"{self.name}: only_where names {sorted(unknown)}, which are not counts")


@dataclass(frozen=True)
class Group:
    """One relation: the cell ``total`` = the sum of the cells ``members``."""

    total: int
    members: tuple[int, ...]


@dataclass(frozen=True)
class Cells:
    """A table's protected counts and hidden complements as one vector of cells."""

    values: np.ndarray  # float, NaN where not published (input) or unknown
    applies: np.ndarray  # bool: the rules apply to this cell
    hidden: np.ndarray  # bool: a complement or slack, never published
    slack: np.ndarray  # bool: whole minus a count it is at most (known >= 0, not protected)
    groups: list[Group]
    rows: int
    columns: tuple[str, ...]  # the published count columns, in cell order

    def column(self, name: str) -> slice:
        k = self.columns.index(name)
        return slice(k * self.rows, (k + 1) * self.rows)


def cells(frame: pl.DataFrame, spec: TableSpec) -> Cells:
    """The cells and relations of a table as published (NULL counts are unknown)."""
    n, k = frame.height, len(spec.counts)
    row_applies = _row_mask(frame, spec.applies)
    values, applies = [], []
    for count in spec.counts:
        values.append(frame[count].cast(pl.Float64).to_numpy(allow_copy=True))
        applies.append(row_applies & _row_mask(frame, spec.only_where.get(count)))
    index = {c: i for i, c in enumerate(spec.counts)}
    groups = [
        Group(index[count] * n + g.total, tuple(index[count] * n + m for m in g.members))
        for g in margin_groups(frame, spec)
        for count in spec.counts
    ]
    for h, (part, whole) in enumerate(spec.complements.items()):
        p, w = values[index[part]], values[index[whole]]
        values.append(w - p)
        applies.append(applies[index[part]] & applies[index[whole]])
        base = (k + h) * n
        groups += [Group(index[whole] * n + r, (index[part] * n + r, base + r)) for r in range(n)]
    h = len(spec.complements)
    for j, (part, whole) in enumerate(spec.at_most.items()):
        p, w = values[index[part]], values[index[whole]]
        values.append(w - p)
        applies.append(applies[index[part]] & applies[index[whole]])
        base = (k + h + j) * n
        groups += [Group(index[whole] * n + r, (index[part] * n + r, base + r)) for r in range(n)]
    applies_all = np.concatenate(applies) if applies else np.zeros(0, bool)
    extra = (len(spec.complements) + len(spec.at_most)) * n
    hidden = np.concatenate([np.zeros(k * n, bool), np.ones(extra, bool)])
    slack = np.concatenate([np.zeros((k + h) * n, bool), np.ones(len(spec.at_most) * n, bool)])
    kept = [
        Group(g.total, tuple(m for m in g.members if applies_all[m])) for g in groups if applies_all[g.total]
    ]
    return Cells(
        values=np.concatenate(values) if values else np.zeros(0),
        applies=applies_all,
        hidden=hidden,
        slack=slack,
        groups=[g for g in kept if g.members],
        rows=n,
        columns=spec.counts,
    )


def margin_groups(frame: pl.DataFrame, spec: TableSpec) -> list[Group]:
    """Row-level margin relations: (total row, member rows) per margin and value of the other dimensions."""
    indexed = frame.select(spec.dimensions).with_row_index("_row")
    groups: list[Group] = []
    for margin in spec.margins:
        others = [d for d in spec.dimensions if d != margin]
        is_total = pl.col(margin) == spec.total
        if not others:
            totals = indexed.filter(is_total)["_row"].to_list()
            if totals:
                groups.append(Group(totals[0], tuple(indexed.filter(~is_total)["_row"].to_list())))
            continue
        totals = indexed.filter(is_total).select([*others, pl.col("_row").alias("_total")])
        members = indexed.filter(~is_total).group_by(others, maintain_order=True).agg(pl.col("_row"))
        joined = members.join(totals, on=others, how="inner", nulls_equal=True)
        for total, rows in zip(joined["_total"], joined["_row"], strict=True):
            groups.append(Group(int(total), tuple(int(i) for i in rows)))
    return groups


def _row_mask(frame: pl.DataFrame, column: str | None) -> np.ndarray:
    if column is None:
        return np.ones(frame.height, dtype=bool)
    return frame[column].fill_null(True).to_numpy().astype(bool)
