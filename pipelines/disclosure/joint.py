"""Protection and audit over everything published together: all tables of a snapshot as one system.

``snapshot_system`` turns protected tables into one vector of cells with every relation a reader can
use (margins, complements, at-most relations, identities between tables). ``secure`` runs the bounds
audit on it and, while any withheld cell's interval is narrower than the protection width, withholds
one more published cell in a relation that binds it (the smallest at least as large as the width,
so the narrow cell gets room to move), then audits again the blocks that changed. ``attack`` is the
same audit from the attacker's side: what the published snapshot gives away, cell by cell.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from dataclasses import dataclass, replace

import numpy as np
import polars as pl

from pipelines.disclosure.bounds import Narrow, Report, Solved, System, bounds_audit
from pipelines.disclosure.bounds import blocks as bounds_audit_blocks
from pipelines.disclosure.policy import DEFAULT_THRESHOLD
from pipelines.disclosure.spec import (
    Cells,
    Identity,
    TableSpec,
    cells,
    protection_width,
)

_MAX_ROUNDS = 100
PREVIOUS = "@previous"  # suffix of the previous publish's tables when both are audited together


@dataclass(frozen=True)
class Span:
    """Where one table's cells sit in the snapshot's vector."""

    spec: TableSpec
    offset: int
    cells: Cells


@dataclass(frozen=True)
class Secured:
    tables: dict[str, pl.DataFrame]
    secondary: dict[str, int]  # per table: cells withheld by the bounds rounds
    report: Report  # the last full audit
    rounds: int
    seconds: float


@dataclass(frozen=True)
class Snapshot:
    """The system of a snapshot, and which of its cells can be withheld (published counts)."""

    system: System
    spans: list[Span]
    published: np.ndarray  # bool: a published count (not a complement or slack, rules apply)
    hidden: np.ndarray  # bool: a complement or slack, known only while its part and whole are
    slack: np.ndarray  # bool: never protected

    copies: np.ndarray  # (k, 2) cell pairs that are the same quantity (two tables, two publishes)
    defined: np.ndarray  # (k, 3): a complement, its whole and its part

    def sensitive(self, values: np.ndarray) -> np.ndarray:
        """Unknown cells to protect: not slack, and not a copy of a cell shown elsewhere (it is out)."""
        out = np.isnan(values) & ~self.slack
        a, b = self.copies[:, 0], self.copies[:, 1]
        known_a, known_b = ~np.isnan(values[a]), ~np.isnan(values[b])
        out[a[known_b]] = False
        out[b[known_a]] = False
        # A complement moves exactly as its part (whole published) or its whole (part published), which
        # are audited themselves; only with both withheld can it be narrower than either.
        h, whole, part = self.defined[:, 0], self.defined[:, 1], self.defined[:, 2]
        out[h[~(np.isnan(values[whole]) & np.isnan(values[part]))]] = False
        return out

    def with_values(self, values: np.ndarray) -> System:
        return System(values, self.sensitive(values), self.system.relations)


def snapshot_system(tables: dict[str, pl.DataFrame], specs: dict[str, TableSpec]) -> Snapshot:
    """One system of cells and relations over every protected table present in ``tables``.

    Tables of a previous publish (named with ``PREVIOUS``) are out already: never withheld further.
    """
    spans, offset = [], 0
    for name, spec in specs.items():
        if name in tables:
            c = cells(tables[name], spec)
            spans.append(Span(spec, offset, c))
            offset += len(c.values)

    def joined(field: str) -> np.ndarray:
        return np.concatenate([getattr(s.cells, field) for s in spans]) if spans else np.zeros(0)

    applies, hidden, slack = (joined(f).astype(bool) for f in ("applies", "hidden", "slack"))
    values = np.where(applies, joined("values"), 0.0)  # not about people: a constant, not an unknown
    relations = []
    for s in spans:
        for g in s.cells.groups:
            ids = np.array([g.total, *g.members], dtype=np.int64) + s.offset
            relations.append((ids, np.array([-1.0] + [1.0] * len(g.members))))
    by_name = {s.spec.name: s for s in spans}
    for s in spans:
        relations += _identities(s, by_name, tables)
    copies = np.array(
        [ids for ids, coefs in relations if len(ids) == 2 and coefs[0] == -coefs[1]], dtype=np.int64
    ).reshape(-1, 2)
    out = (
        np.concatenate([np.full(len(s.cells.values), s.spec.name.endswith(PREVIOUS)) for s in spans])
        if spans
        else np.zeros(0, bool)
    )
    defined = np.array(
        [[ids[2], ids[0], ids[1]] for ids, _ in relations if len(ids) == 3 and hidden[ids[2]]], dtype=np.int64
    ).reshape(-1, 3)
    snap = Snapshot(
        System(values, values, relations),
        spans,
        applies & ~hidden & ~out,
        applies & hidden,
        slack,
        copies,
        defined,
    )
    return replace(snap, system=snap.with_values(values))


def _identities(span: Span, spans: dict[str, Span], tables: dict[str, pl.DataFrame]) -> list:
    out = []
    for identity in span.spec.identities:
        other = spans.get(identity.other)
        if other is None:
            continue
        mine = _rows(tables[span.spec.name], identity.where, identity.on)
        theirs = _rows(tables[identity.other], identity.other_where, identity.on)
        pairs = mine.join(theirs, on=list(identity.on), how="inner", suffix="_o", nulls_equal=True)
        for row, orow in zip(pairs["_row"], pairs["_row_o"], strict=True):
            for count, terms in identity.terms.items():
                ids = [span.offset + span.cells.columns.index(count) * span.cells.rows + row]
                ids += [other.offset + other.cells.columns.index(c) * other.cells.rows + orow for c in terms]
                if all(_applies(i, spans.values()) for i in ids):  # a count that does not exist is no copy
                    out.append((np.array(ids, dtype=np.int64), np.array([-1.0, *terms.values()])))
    return out


def _applies(cell: int, spans) -> bool:
    for s in spans:
        if s.offset <= cell < s.offset + len(s.cells.values):
            return bool(s.cells.applies[cell - s.offset])
    return False


def _rows(frame: pl.DataFrame, where: pl.Expr | None, on: tuple[str, ...]) -> pl.DataFrame:
    indexed = frame.with_row_index("_row")
    if where is not None:
        indexed = indexed.filter(where)
    return indexed.select(*on, pl.col("_row").cast(pl.Int64))


def with_previous(
    tables: dict[str, pl.DataFrame], specs: dict[str, TableSpec], previous: dict[str, pl.DataFrame]
) -> tuple[dict[str, pl.DataFrame], dict[str, TableSpec]]:
    """The new publish and the previous one as one snapshot, as a reader holding both sees them.

    The reader assumes a cell of a period that both show is the same quantity, unless the two
    publishes show it with different values (then that row moved, and says nothing of the other).
    """
    out_tables, out_specs = dict(tables), dict(specs)
    for name, spec in specs.items():
        if name not in tables or not _has_columns(previous.get(name), spec):
            continue
        prev = previous[name].with_columns(_kept=_unchanged(previous[name], tables[name], spec))
        keep = Identity(name, spec.dimensions, {c: {c: 1.0} for c in spec.counts}, where=pl.col("_kept"))
        copied = tuple(replace(i, other=i.other + PREVIOUS) for i in spec.identities)
        out_specs[name + PREVIOUS] = replace(spec, name=name + PREVIOUS, identities=(*copied, keep))
        out_tables[name + PREVIOUS] = prev
    return out_tables, out_specs


def _has_columns(frame: pl.DataFrame | None, spec: TableSpec) -> bool:
    """A previous publish's table with what the spec reads (an older layout is not comparable)."""
    if frame is None:
        return False
    wanted = {*spec.dimensions, *spec.counts, *spec.only_where.values(), spec.applies} - {None}
    return wanted <= set(frame.columns)


def _unchanged(previous: pl.DataFrame, current: pl.DataFrame, spec: TableSpec) -> pl.Series:
    """Per row of ``previous``: its key is in ``current`` and no count both publish differs."""
    key, counts = list(spec.dimensions), list(spec.counts)
    new = current.select(*key, *[pl.col(c).alias(f"{c}__new") for c in counts]).with_columns(
        _present=pl.lit(True)
    )
    joined = (
        previous.select(*key, *counts)
        .with_row_index("_order")
        .join(new, on=key, how="left", nulls_equal=True)
        .sort("_order")
    )
    same = pl.col("_present").fill_null(False)
    for c in counts:
        same &= pl.col(c).is_null() | pl.col(f"{c}__new").is_null() | (pl.col(c) == pl.col(f"{c}__new"))
    return joined.select(same.alias("_kept"))["_kept"]


def moved(
    tables: dict[str, pl.DataFrame], specs: dict[str, TableSpec], previous: dict[str, pl.DataFrame]
) -> dict[str, int]:
    """Per table: rows the previous publish showed that this one shows with a different count."""
    out = {}
    for name, spec in specs.items():
        if name in tables and _has_columns(previous.get(name), spec):
            kept = _unchanged(previous[name], tables[name], spec)
            present = (
                previous[name]
                .select(spec.dimensions)
                .join(
                    tables[name].select(spec.dimensions).with_columns(_p=pl.lit(True)),
                    on=list(spec.dimensions),
                    how="left",
                    nulls_equal=True,
                )["_p"]
                .fill_null(False)
            )
            out[name] = int((present & ~kept).sum())
    return out


def attack(
    tables: dict[str, pl.DataFrame],
    specs: dict[str, TableSpec],
    threshold: int = DEFAULT_THRESHOLD,
    previous: dict[str, pl.DataFrame] | None = None,
) -> Report:
    """What an attacker with the whole snapshot (and the previous one) learns: every withheld cell
    bounded narrower than the protection width."""
    if previous:
        tables, specs = with_previous(tables, specs, previous)
    system = snapshot_system(tables, specs).system
    return bounds_audit(system, protection_width(threshold), tolerate=bool(previous))


def secure(
    tables: dict[str, pl.DataFrame],
    specs: dict[str, TableSpec],
    threshold: int = DEFAULT_THRESHOLD,
    previous: dict[str, pl.DataFrame] | None = None,
    memo: MutableMapping[str, Solved] | None = None,
) -> Secured:
    """Withhold more cells until no withheld cell of the snapshot is narrower than the protection width.

    With ``previous`` (the last publish's tables) both are audited together and only the new publish
    withholds more. ``memo``: blocks audited before (``bounds.bounds_audit``).
    """
    start, width = time.perf_counter(), protection_width(threshold)
    names = [n for n in tables if n in specs]
    if previous:
        tables, specs = with_previous(tables, specs, previous)
    tolerate = bool(previous)
    snap = snapshot_system(tables, specs)
    values = snap.system.values.copy()
    by_cell = _by_cell(snap)
    _withhold_copies(values, snap, by_cell)
    _mass(values, snap, width, by_cell)
    only: set[int] | None = None
    rounds, solves, reused, widths = 0, 0, 0, {}
    while True:
        rounds += 1
        report = bounds_audit(snap.with_values(values), width, only, tolerate, widths, memo)
        solves, reused, widths = solves + report.solves, reused + report.reused, widths | report.widths
        if not report.narrow:
            break
        if rounds == _MAX_ROUNDS:
            raise RuntimeError("bounds protection did not settle")
        opened = _open(report.narrow, values, snap, width, by_cell)
        if not opened:
            raise RuntimeError(
                f"bounds protection is stuck: {len(report.narrow)} cells stay narrow, e.g. "
                f"{_name(report.narrow[0].cell, snap)} in [{report.narrow[0].low}, {report.narrow[0].high}]"
            )
        only = opened | {n.cell for n in report.narrow}
    if rounds > 1:  # every block was audited in the round after its last change: report them all
        blocks = len(bounds_audit_blocks(snap.with_values(values)))
        report = Report([], min(widths.values(), default=np.inf), solves, blocks, 0, widths, reused)
    out, secondary = _apply(tables, snap.spans, values, snap.system.values)
    out = {n: f for n, f in out.items() if not n.endswith(PREVIOUS)}
    secondary = {n: k for n, k in secondary.items() if n in names}
    return Secured(out, secondary, report, rounds, time.perf_counter() - start)


def _open(
    narrow: list[Narrow], values: np.ndarray, snap: Snapshot, width: float, by_cell: dict[int, list[int]]
) -> set[int]:
    """For each narrow cell, withhold one published cell of a relation that holds it down.

    Relations binding the cell's optimum come first, then relations ever further away through
    withheld cells (a complement whose part and whole are both withheld moves only when they do).
    In the relation, the smallest published cell at least as large as the width gives the narrow
    cell room to move by the width; without one, the largest. Ties go by position: deterministic.
    """
    opened: set[int] = set()
    for n in narrow:
        for r in _nearby(n, values, snap, by_cell):
            ids = snap.system.relations[r][0]
            if opened & set(ids.tolist()):
                break  # this relation was loosened this round already
            candidates = [int(c) for c in ids if snap.published[c] and not np.isnan(values[c])]
            if candidates:
                pick = _cheapest(candidates, values, width)
                _withhold(pick, values, snap, by_cell)
                opened.add(pick)
                break
    return opened


def _name(cell: int, snap: Snapshot) -> str:
    """table.column row r of a cell, for messages."""
    for s in snap.spans:
        if s.offset <= cell < s.offset + len(s.cells.values):
            k, row = divmod(cell - s.offset, s.cells.rows)
            names = [
                *s.spec.counts,
                *(f"{w}-{p}" for p, w in (*s.spec.complements.items(), *s.spec.at_most.items())),
            ]
            return f"{s.spec.name}.{names[k]} row {row}"
    return str(cell)


def _by_cell(snap: Snapshot) -> dict[int, list[int]]:
    by_cell: dict[int, list[int]] = {}
    for r, (ids, _) in enumerate(snap.system.relations):
        for c in ids:
            by_cell.setdefault(int(c), []).append(r)
    return by_cell


def _mass(values: np.ndarray, snap: Snapshot, width: float, by_cell: dict[int, list[int]]) -> None:
    """The cheap necessary condition first: in a relation whose unknowns all sit on one side, they
    share what the published cells leave (a total minus its published members); below the width,
    every one of them is narrower than the width. Withhold published cells until each such relation
    leaves at least the width, so the LP rounds start from a table that is nearly protected."""
    changed = True
    while changed:
        changed = False
        for ids, coefs in snap.system.relations:
            unknown = np.isnan(values[ids])
            if not unknown.any() or unknown.all():
                continue
            signs = np.sign(coefs[unknown])
            if not (np.all(signs == signs[0])):
                continue
            left = -float(np.dot(coefs[~unknown], values[ids[~unknown]])) * signs[0]
            if left >= width:
                continue
            candidates = [int(c) for c in ids[~unknown] if snap.published[c]]
            candidates = [
                c for c in candidates if np.sign(coefs[list(ids).index(c)]) == signs[0]
            ] or candidates
            if candidates:
                _withhold(_cheapest(candidates, values, width), values, snap, by_cell)
                changed = True


def _cheapest(candidates: list[int], values: np.ndarray, width: float) -> int:
    """The published cell to withhold in a relation: the smallest at least as large as the width, which
    gives a narrow cell room to move by the width at the least cost; without one, the largest. Ties go
    by position, so the choice is deterministic."""
    large = [c for c in candidates if values[c] >= width]
    if large:
        return min(large, key=lambda c: (values[c], c))
    return max(candidates, key=lambda c: (values[c], -c))


def _withhold(cell: int, values: np.ndarray, snap: Snapshot, by_cell: dict[int, list[int]]) -> None:
    """Withhold a cell with every copy of it (a total of a single member is that member: withheld in
    one place and shown in the other, it would be withheld in vain), and the complements and slacks
    computed from them become unknown too."""
    pending = [cell]
    while pending:
        c = pending.pop()
        values[c] = np.nan
        for r in by_cell.get(c, []):
            ids, coefs = snap.system.relations[r]
            for other in ids:
                if snap.hidden[other]:
                    values[other] = np.nan
            if len(ids) == 2 and coefs[0] == -coefs[1]:
                pending += [int(o) for o in ids if snap.published[o] and not np.isnan(values[o])]


def _withhold_copies(values: np.ndarray, snap: Snapshot, by_cell: dict[int, list[int]]) -> None:
    """Where the tables' own suppression withheld one copy of a quantity, withhold the others too."""
    for pair in snap.copies:
        if np.isnan(values[pair]).any():
            for c in pair:
                if snap.published[c] and not np.isnan(values[c]):
                    _withhold(int(c), values, snap, by_cell)


def _nearby(n: Narrow, values: np.ndarray, snap: Snapshot, by_cell: dict[int, list[int]]):
    """The binding relations, then every relation reachable through withheld cells, nearest first."""
    seen: set[int] = set()
    for r in n.binding:
        seen.add(r)
        yield r
    frontier, cells = [n.cell], {n.cell}
    while frontier:
        following = []
        for c in frontier:
            for r in by_cell.get(c, []):
                if r not in seen:
                    seen.add(r)
                    yield r
                for other in snap.system.relations[r][0]:
                    other = int(other)
                    if other not in cells and np.isnan(values[other]):
                        cells.add(other)
                        following.append(other)
        frontier = following


def _apply(
    tables: dict[str, pl.DataFrame], spans: list[Span], values: np.ndarray, before: np.ndarray
) -> tuple[dict[str, pl.DataFrame], dict[str, int]]:
    """Null the newly withheld counts in the frames, and the derived values built on them."""
    out, secondary = dict(tables), {}
    for s in spans:
        frame, spec, n = tables[s.spec.name], s.spec, s.cells.rows

        def column(k: int, v: np.ndarray, s: Span = s, n: int = n) -> np.ndarray:
            return v[s.offset + k * n : s.offset + (k + 1) * n]

        newly = {
            c: np.isnan(column(k, values)) & ~np.isnan(column(k, before)) for k, c in enumerate(spec.counts)
        }
        secondary[spec.name] = int(sum(m.sum() for m in newly.values()))
        if not secondary[spec.name]:
            continue
        frame = frame.with_columns(_null_where(c, m) for c, m in newly.items() if m.any())
        for derived, counts in spec.derived.items():
            hide = np.logical_or.reduce([newly[c] for c in counts])
            frame = frame.with_columns(_null_where(derived, hide))
        out[spec.name] = frame
    return out, secondary


def _null_where(column: str, mask: np.ndarray) -> pl.Expr:
    return pl.when(pl.Series(mask)).then(None).otherwise(pl.col(column)).alias(column)
