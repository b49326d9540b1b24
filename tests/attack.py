"""An attacker's bounds attack on published tables, written apart from the platform's own audit.

Given the tables as published (NULL = withheld), the attacker writes down what any reader can derive:
margins (a ``Totalt`` row is the sum of its members, per margin dimension), parts within their whole
in the same row, counts that can never exceed another, cells one table copies from another, and that
every count is a non-negative integer. Each withheld cell is then bounded from below and above by
linear programming (HiGHS, one model per connected block whose objective changes from cell to
cell), one connected block of unknowns at a time, and the bounds are
rounded inwards to integers. A cell is *recovered* if its interval is narrower than ``width``.

It deliberately shares no code with ``pipelines.disclosure`` beyond reading the table descriptions
(which the snapshot documents to its readers anyway), so a bug in the audit is not repeated here.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np
import polars as pl
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

TOTAL = "Totalt"


@dataclass(frozen=True)
class Recovered:
    cell: tuple[str, str, int]  # table, column, row
    low: float
    high: float


class _Cells:
    """Every count of every table as a variable: value (NaN if withheld) and a readable name."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.names: list[tuple[str, str, int]] = []
        self.index: dict[tuple[str, str, int], int] = {}

    def add(self, table: str, column: str, row: int, value: float) -> int:
        key = (table, column, row)
        if key not in self.index:
            self.index[key] = len(self.values)
            self.values.append(value)
            self.names.append(key)
        return self.index[key]

    def hidden(self, table: str, name: str, row: int) -> int:
        return self.add(table, name, row, np.nan)


def _applies(frame: pl.DataFrame, spec, count: str) -> np.ndarray:
    ok = np.ones(frame.height, dtype=bool)
    if spec.applies:
        ok &= frame[spec.applies].fill_null(True).to_numpy().astype(bool)
    if count in spec.only_where:
        ok &= frame[spec.only_where[count]].fill_null(True).to_numpy().astype(bool)
    return ok


def equations(tables: dict[str, pl.DataFrame], specs: dict) -> tuple[_Cells, list[dict[int, float]]]:
    """The attacker's cells and equations (each a {cell: coefficient} summing to zero)."""
    cells, eqs = _Cells(), []
    for name, spec in specs.items():
        if name not in tables:
            continue
        frame = tables[name]
        ids = {}
        for count in spec.counts:
            ok, col = _applies(frame, spec, count), frame[count].cast(pl.Float64).to_numpy()
            ids[count] = [cells.add(name, count, r, col[r]) if ok[r] else None for r in range(frame.height)]
        eqs += _margins(frame, spec, ids)
        for kind, pairs in (("minus", spec.complements), ("slack", spec.at_most)):
            for part, whole in pairs.items():
                for r in range(frame.height):
                    if ids[part][r] is not None and ids[whole][r] is not None:
                        extra = cells.hidden(name, f"{whole} {kind} {part}", r)
                        eqs.append({ids[whole][r]: -1.0, ids[part][r]: 1.0, extra: 1.0})
    for name, spec in specs.items():
        for identity in getattr(spec, "identities", ()):
            eqs += _copies(tables, name, identity, cells)
    return cells, eqs


def _margins(frame: pl.DataFrame, spec, ids: dict[str, list]) -> list[dict[int, float]]:
    out = []
    rows = frame.select(spec.dimensions).with_row_index("_r")
    for margin in spec.margins:
        others = [d for d in spec.dimensions if d != margin]
        totals = rows.filter(pl.col(margin) == TOTAL)
        members = rows.filter(pl.col(margin) != TOTAL)
        if others:
            grouped = (
                members.group_by(others)
                .agg(pl.col("_r"))
                .join(totals.select(*others, pl.col("_r").alias("_t")), on=others, nulls_equal=True)
            )
            pairs = zip(grouped["_t"].to_list(), grouped["_r"].to_list(), strict=True)
        else:
            pairs = [(totals["_r"][0], members["_r"].to_list())] if totals.height else []
        for t, ms in pairs:
            for col in ids.values():
                if col[t] is not None and any(col[m] is not None for m in ms):
                    eq = {col[t]: -1.0}
                    for m in ms:
                        if col[m] is not None:
                            eq[col[m]] = eq.get(col[m], 0.0) + 1.0
                    out.append(eq)
    return out


def _copies(tables, name, identity, cells: _Cells) -> list[dict[int, float]]:
    if identity.other not in tables:
        return []
    mine = tables[name].with_row_index("_r").filter(identity.where)
    theirs = tables[identity.other].with_row_index("_o").filter(identity.other_where)
    pairs = mine.select(*identity.on, "_r").join(theirs.select(*identity.on, "_o"), on=list(identity.on))
    out = []
    for r, o in zip(pairs["_r"], pairs["_o"], strict=True):
        for count, terms in identity.terms.items():
            eq = {cells.index[(name, count, r)]: -1.0}
            for column, coef in terms.items():
                eq[cells.index[(identity.other, column, o)]] = coef
            out.append(eq)
    return out


def bounds_attack(
    tables: dict[str, pl.DataFrame], specs: dict, width: int, enough: int | None = None
) -> tuple[list[Recovered], int]:
    """Withheld published cells whose integer interval is narrower than ``width``, and how many were
    tried; with ``enough``, it stops once it has recovered that many."""
    cells, eqs = equations(tables, specs)
    values = np.array(cells.values)
    unknown = np.flatnonzero(np.isnan(values))
    position = {c: i for i, c in enumerate(unknown)}
    rows, cols, data, rhs = [], [], [], []
    for e, eq in enumerate(eqs):
        rhs.append(-sum(a * values[c] for c, a in eq.items() if c not in position))
        for c, a in eq.items():
            if c in position:
                rows.append(e)
                cols.append(position[c])
                data.append(a)
    a = coo_array((data, (rows, cols)), shape=(len(eqs), len(unknown))).tocsr()
    link = (a.T @ a) != 0
    _, label = connected_components(link, directed=False)
    found, tried = [], 0
    for block in np.unique(label):
        members = np.flatnonzero(label == block)
        eq_rows = np.unique(a[:, members].tocoo().row)
        if not len(eq_rows):
            continue
        lp = _Program(a[eq_rows][:, members], np.array(rhs)[eq_rows])
        for i, cell in enumerate(members):
            name = cells.names[unknown[cell]]
            if " " in name[1]:  # a complement or slack: not a published cell
                continue
            tried += 1
            if lp.seen_wide(i, width):
                continue
            hi = np.floor(lp.optimum(i, 1.0) + 1e-6)
            if lp.seen_wide(i, width) or not np.isfinite(hi):
                continue
            lo = np.ceil(lp.optimum(i, -1.0) - 1e-6)
            if hi - lo < width:
                found.append(Recovered(name, float(lo), float(hi)))
                if enough and len(found) >= enough:
                    return found, tried
    return found, tried


class _Program:
    """x >= 0 with A x = b: the largest or smallest value of one variable (inf if unbounded).

    Every optimum is a feasible table, so it shows a value of every variable; a variable whose values
    seen so far already span the width rounds to an interval at least that wide, and is not solved.
    """

    def __init__(self, a, b: np.ndarray) -> None:
        csc = a.tocsc()
        n = a.shape[1]
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = n, a.shape[0]
        lp.col_cost_, lp.col_lower_ = np.zeros(n), np.zeros(n)
        lp.col_upper_ = np.full(n, highspy.kHighsInf)
        lp.row_lower_ = lp.row_upper_ = b
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = csc.indptr, csc.indices, csc.data
        self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("presolve", "off")  # each solve starts from the last basis
        self.h.passModel(lp)
        self.last = 0
        self.low, self.high = np.full(n, np.inf), np.full(n, -np.inf)

    def seen_wide(self, i: int, width: float) -> bool:
        return np.floor(self.high[i] + 1e-6) - np.ceil(self.low[i] - 1e-6) >= width

    def optimum(self, i: int, sense: float) -> float:
        self.h.changeColCost(self.last, 0.0)
        self.h.changeColCost(i, -sense)
        self.last = i
        self.h.run()
        status = self.h.getModelStatus()
        if status in (highspy.HighsModelStatus.kUnbounded, highspy.HighsModelStatus.kUnboundedOrInfeasible):
            return np.inf * sense
        assert status == highspy.HighsModelStatus.kOptimal, self.h.modelStatusToString(status)
        x = np.array(self.h.getSolution().col_value)
        self.low, self.high = np.minimum(self.low, x), np.maximum(self.high, x)
        return float(x[i])
