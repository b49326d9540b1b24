"""The bounds audit: how far an attacker can narrow each withheld cell, over everything published together.

An attacker who has a whole snapshot knows, besides the published numbers, that every count is a
non-negative integer, that margins are sums of their members, that a part is at most its whole, and
that tables sharing dimensions repeat the same quantities. Each of those is a linear relation over the
cells; withheld cells are unknowns. For every withheld cell the attacker can solve two integer
programs (its smallest and largest value under all relations) and learn the interval it lies in.
This module solves exactly those programs with HiGHS (``highspy``; scipy's ``milp``) and reports every
cell whose interval is narrower than the protection width: the publish is refused on any.

Cost: one LP per cell and direction would be ~2 LPs × 11,000 cells at demo size. Three things keep it
affordable. Relations are split into independent blocks (no shared unknown), each one HiGHS model
whose objective changes from solve to solve (warm started from the last basis). Every
integral solution found is a feasible table, so it witnesses a value for *every* unknown of its block;
a cell whose witnessed values already span the width needs no solve of its own. And the LP relaxation
bounds the integer program from outside (its interval contains the integer one), so an LP interval
narrower than the width is a definitive failure; only when the LP optimum is fractional and the LP
interval is wide enough is the integer program solved (``milp``).

A block's audit depends on nothing but the block (its relations over the published values, which cells
are sensitive, the widths already witnessed, the width), so it is kept under a fingerprint of exactly
that (``Solved``, in a ``memo`` the caller hands in) and a later publish whose block is the same reuses
it: a month's publish audits a quarter's panel cells beside the previous publish's, and only the new
quarter's block differs from the last month's.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

import highspy
import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array

_INTEGRAL = 1e-6
_CAP = 1e7  # bounds witness programs only: far above any count in a municipality
_RANDOM = 6  # witness programs with random signs (half the cells pushed up, half down) per block
_ALGORITHM = hashlib.sha256(Path(__file__).read_bytes()).digest()  # a fingerprint holds the code that audits


@dataclass(frozen=True)
class System:
    """Cells of one or more tables as one vector, and the linear relations a reader can use.

    ``values`` holds published values and NaN for unknowns (withheld cells, and quantities never
    published such as a complement). Each relation is ``sum(coef * cell) == 0``. ``sensitive`` marks the
    unknowns whose interval must be at least the protection width.
    """

    values: np.ndarray
    sensitive: np.ndarray
    relations: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)


@dataclass(frozen=True)
class Narrow:
    """A withheld cell the relations narrow to [low, high], and the relations that bind it."""

    cell: int
    low: float
    high: float
    binding: tuple[int, ...]  # relation indices with a non-zero dual in the narrowing bound


@dataclass(frozen=True)
class Report:
    narrow: list[Narrow]
    narrowest: float  # smallest width solved or witnessed over sensitive cells (a lower bound; inf if none)
    solves: int  # LPs and MILPs solved (not counting those of blocks found in the memo)
    blocks: int
    inconsistent: int = 0  # blocks with no solution: an assumed identity (history kept) is false there
    widths: dict[int, float] = field(default_factory=dict)  # per sensitive cell audited: width (lower bound)
    reused: int = 0  # block audits found in the memo, not solved again (over every round of a ``secure``)


@dataclass(frozen=True)
class Solved:
    """A block's audit in the block's own numbering: narrow cells as (position in the block's cells, low,
    high, positions of binding relations in the block's relations), the width of each sensitive cell in
    order, the solves it took; or why it has no solution (``inconsistent``)."""

    narrow: tuple[tuple[int, float, float, tuple[int, ...]], ...] = ()
    widths: tuple[float, ...] = ()
    solves: int = 0
    inconsistent: str = ""


def blocks(system: System) -> list[list[int]]:
    """Relations with at least one unknown, grouped so that no two groups share an unknown."""
    unknown = np.isnan(system.values)
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    involved: list[np.ndarray] = []
    for cells, _ in system.relations:
        free = cells[unknown[cells]]
        involved.append(free)
        for c in free[1:]:
            parent[root(int(c))] = root(int(free[0]))
    grouped: dict[int, list[int]] = {}
    for r, free in enumerate(involved):
        if len(free):
            grouped.setdefault(root(int(free[0])), []).append(r)
    return list(grouped.values())


class Inconsistent(RuntimeError):
    """The relations have no non-negative solution: the published numbers contradict them."""


def bounds_audit(
    system: System,
    width: float,
    only: set[int] | None = None,
    tolerate: bool = False,
    known: dict[int, float] | None = None,
    memo: MutableMapping[str, Solved] | None = None,
) -> Report:
    """Every sensitive unknown whose feasible integer interval is narrower than ``width``.

    ``only`` restricts the work to blocks holding one of these cells (a re-audit after a change).
    ``tolerate`` skips blocks without a solution (counted) instead of failing: across two publishes
    the attacker assumes history is unchanged, and where it did change that assumption tells nothing.
    ``known`` holds widths already witnessed for cells, by an earlier audit of the same published
    values with fewer cells withheld: withholding more only widens what is feasible (every earlier
    table stays feasible, the newly withheld cell at its true value), so a cell once as wide as the
    width stays so and is not solved again.
    ``memo`` maps a block's fingerprint to its audit (``Solved``): found there it is not solved again,
    solved it is added.
    """
    narrow: list[Narrow] = []
    solves, count, inconsistent, reused = 0, 0, 0, 0
    widths: dict[int, float] = {}
    for block in blocks(system):
        problem = _Block(system, block, known or {}, width)
        if only is not None and not only & set(problem.cells.tolist()):
            continue
        count += 1
        key = problem.fingerprint(width) if memo is not None else ""
        solved = memo.get(key) if memo is not None else None
        if solved is None:
            solved = problem.solved(width)
            solves += solved.solves
            if memo is not None:
                memo[key] = solved
        else:
            reused += 1
        if solved.inconsistent:
            if not tolerate:
                raise Inconsistent(solved.inconsistent)
            inconsistent += 1
            continue
        narrow += problem.narrow(solved)
        widths.update(zip(problem.cells[problem.sensitive].tolist(), solved.widths, strict=True))
    narrowest = min(widths.values(), default=np.inf)
    return Report(narrow, float(narrowest), solves, count, inconsistent, widths, reused)


class _Block:
    """One independent block: unknowns x >= 0, A x = b (b from the published cells)."""

    def __init__(
        self, system: System, relations: list[int], witnessed: dict[int, float], width: float
    ) -> None:
        unknown = np.isnan(system.values)
        self.relations = relations
        cells = sorted({int(c) for r in relations for c in system.relations[r][0] if unknown[c]})
        self.cells = np.array(cells, dtype=np.int64)
        position = {c: i for i, c in enumerate(cells)}
        rows, cols, data, rhs = [], [], [], []
        for i, r in enumerate(relations):
            ids, coefs = system.relations[r]
            known = ~unknown[ids]
            rhs.append(-float(np.dot(coefs[known], system.values[ids[known]])))
            for c, a in zip(ids[~known], coefs[~known], strict=True):
                rows.append(i)
                cols.append(position[int(c)])
                data.append(float(a))
        self.a = csr_array((data, (rows, cols)), shape=(len(relations), len(cells)))
        self.b = np.array(rhs)
        self.sensitive = system.sensitive[self.cells]
        self.known = np.array([witnessed.get(c, 0.0) for c in cells])  # witnessed before: a lower bound
        self.open = self.sensitive & (self.known < width)
        self._highs: highspy.Highs | None = None
        self._upper = np.inf  # the model's columns start unbounded above (``_model``)

    def _solve(self, cost: np.ndarray, upper: float) -> tuple[str, np.ndarray | None, np.ndarray | None]:
        """Minimise cost . x over x in [0, upper], A x = b: one HiGHS model per block, each solve warm
        started from the last basis (only the objective changes), which is what keeps thousands of
        bounds per block affordable."""
        if self._highs is None:
            self._highs = _model(self.a, self.b)
        h, n = self._highs, len(self.cells)
        if upper != self._upper:  # witnesses are capped, bounds are not: change only on a switch
            h.changeColsBounds(n, np.arange(n, dtype=np.int32), np.zeros(n), np.full(n, upper))
            self._upper = upper
        h.changeColsCost(n, np.arange(n, dtype=np.int32), cost.astype(float))
        h.run()
        status = h.getModelStatus()
        if status == highspy.HighsModelStatus.kOptimal:
            solution = h.getSolution()
            return "optimal", np.array(solution.col_value), np.array(solution.row_dual)
        if status in (highspy.HighsModelStatus.kUnbounded, highspy.HighsModelStatus.kUnboundedOrInfeasible):
            return "unbounded", None, None
        return h.modelStatusToString(status), None, None

    def fingerprint(self, width: float) -> str:
        """SHA-256 of everything the block's audit reads, and of the code that audits it."""
        h = hashlib.sha256(_ALGORITHM)
        coo = self.a.tocoo()
        for part in (
            np.array([width, len(self.cells), len(self.relations)], dtype=float),
            coo.row.astype(np.int64),
            coo.col.astype(np.int64),
            coo.data.astype(float),
            self.b.astype(float),
            self.sensitive.astype(np.int8),
            self.known.astype(float),
        ):
            h.update(np.int64(part.size).tobytes())
            h.update(np.ascontiguousarray(part).tobytes())
        # base64, not hex: the leak scans see no ten-digit run that could pass for a personnummer
        return base64.urlsafe_b64encode(h.digest()).decode()

    def solved(self, width: float) -> Solved:
        """The block's audit in its own numbering (``Solved``)."""
        try:
            found, low, used = self.audit(width)
        except Inconsistent as e:
            return Solved(inconsistent=str(e))
        position = {c: i for i, c in enumerate(self.cells.tolist())}
        relation = {r: i for i, r in enumerate(self.relations)}
        return Solved(
            narrow=tuple(
                (position[n.cell], n.low, n.high, tuple(relation[r] for r in n.binding)) for n in found
            ),
            widths=tuple(low[c] for c in self.cells[self.sensitive].tolist()),
            solves=used,
        )

    def narrow(self, solved: Solved) -> list[Narrow]:
        """``solved``'s narrow cells in the system's numbering."""
        return [
            Narrow(int(self.cells[i]), low, high, tuple(self.relations[r] for r in binding))
            for i, low, high, binding in solved.narrow
        ]

    def audit(self, width: float) -> tuple[list[Narrow], dict[int, float], int]:
        n = len(self.cells)
        seen_lo, seen_hi = np.full(n, np.inf), np.full(n, -np.inf)
        narrow: list[Narrow] = []
        solves = 0
        solved = np.full(n, -np.inf)
        for x, used in self._witnesses(width):
            seen_lo, seen_hi = np.minimum(seen_lo, x), np.maximum(seen_hi, x)
            solves += used
        for i in np.flatnonzero(self.open & (seen_hi - seen_lo < width)):
            if seen_hi[i] - seen_lo[i] >= width:
                continue
            bound: dict[int, tuple[float, tuple[int, ...]]] = {}
            for sense in (1.0, -1.0):  # maximise, then minimise
                value, x, duals = self._lp(i, sense)
                solves += 1
                if x is not None and np.all(np.abs(x - np.round(x)) < _INTEGRAL):
                    seen_lo, seen_hi = np.minimum(seen_lo, x), np.maximum(seen_hi, x)
                bound[int(sense)] = (value, duals)
                if seen_hi[i] - seen_lo[i] >= width:
                    break
            if seen_hi[i] - seen_lo[i] >= width:
                continue
            high, low = bound[1][0], bound[-1][0]
            if not np.isfinite(high - low):
                solved[i] = np.inf
                continue
            if high - low >= width:  # the relaxation is wide but its optima are fractional
                high, low = np.floor(self._milp(i, 1.0) + _INTEGRAL), np.ceil(self._milp(i, -1.0) - _INTEGRAL)
                solves += 2
            solved[i] = high - low
            if high - low < width:  # widen the upper side first: the lower is mostly non-negativity
                binding = tuple(dict.fromkeys((*bound[1][1], *bound[-1][1])))
                narrow.append(Narrow(int(self.cells[i]), float(low), float(high), binding))
        # per cell: its solved width, else the witnessed span (a lower bound on the width)
        widths = np.maximum(np.maximum(seen_hi - seen_lo, solved), self.known)
        cells = np.flatnonzero(self.sensitive)
        return narrow, dict(zip(self.cells[cells].tolist(), widths[cells].tolist(), strict=True)), solves

    def _witnesses(self, width: float):
        """Integral solutions far apart, each with the solves it took: the open cells as small, then as
        large as they go together, then random halves of the cells still narrower than the width
        pushed up and the rest down, while that keeps widening cells.

        The upper bound ``_CAP`` only keeps the programs bounded; their solutions are feasible tables
        all the same.
        """
        if not self.open.any():
            return
        rng = np.random.default_rng(len(self.cells))  # deterministic per block
        lo, hi = np.full(len(self.cells), np.inf), np.full(len(self.cells), -np.inf)
        pending, idle, rounds = self.open, 0, 0
        while pending.any() and idle < 2 and rounds < _RANDOM + 2:
            signs = 1.0 if rounds == 0 else -1.0 if rounds == 1 else rng.choice([-1.0, 1.0], len(self.cells))
            status, x, _ = self._solve(np.where(pending, signs, 0.0), _CAP)
            rounds += 1
            if status != "optimal" or not np.all(np.abs(x - np.round(x)) < _INTEGRAL):
                idle += 1
                continue
            x = np.round(x)
            lo, hi = np.minimum(lo, x), np.maximum(hi, x)
            still = pending & (hi - lo < width)
            idle = idle + 1 if rounds > 2 and still.sum() == pending.sum() else 0
            pending = still
            yield x, 1

    def _lp(self, i: int, sense: float) -> tuple[float, np.ndarray | None, tuple[int, ...]]:
        """Optimum of x_i (sense 1: max, -1: min), the solution, and the binding relations."""
        c = np.zeros(len(self.cells))
        c[i] = -sense
        status, x, duals = self._solve(c, np.inf)
        if status == "unbounded":
            return np.inf, None, ()
        if status != "optimal":
            raise Inconsistent(f"bounds audit: the published relations are inconsistent ({status})")
        marginals = np.abs(duals)
        binding = tuple(self.relations[r] for r in np.argsort(-marginals) if marginals[r] > 1e-9)
        return float(x[i]), x, binding

    def _milp(self, i: int, sense: float) -> float:
        c = np.zeros(len(self.cells))
        c[i] = -sense
        res = milp(
            c,
            constraints=LinearConstraint(self.a, self.b, self.b),
            integrality=np.ones(len(self.cells)),
            bounds=Bounds(0, np.inf),
        )
        if res.status == 3:  # unbounded
            return np.inf * sense
        if res.status != 0 or res.x is None:
            raise Inconsistent(f"bounds audit: no integer solution ({res.message})")
        return float(res.x[i])


def _model(a: csr_array, b: np.ndarray) -> highspy.Highs:
    """A HiGHS LP with A x = b (bounds and objective are set per solve), quiet, without presolve so
    that each solve starts from the previous basis."""
    csc = a.tocsc()
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = a.shape[1], a.shape[0]
    lp.col_cost_ = np.zeros(a.shape[1])
    lp.col_lower_ = np.zeros(a.shape[1])
    lp.col_upper_ = np.full(a.shape[1], highspy.kHighsInf)
    lp.row_lower_ = lp.row_upper_ = b
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = csc.indptr
    lp.a_matrix_.index_ = csc.indices
    lp.a_matrix_.value_ = csc.data
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("presolve", "off")
    h.passModel(lp)
    return h
