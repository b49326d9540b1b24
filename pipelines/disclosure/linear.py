"""Which withheld cells the published relations still pin down, taken all together.

Each relation total = sum(members) is a linear equation; published cells are constants and withheld
cells unknowns. A withheld cell is recoverable exactly when every solution gives it the same value,
i.e. when its coordinate is zero in every vector of the null space of the unknowns' coefficient
matrix. Relations are split into connected blocks so each null space stays small.
"""

from __future__ import annotations

import numpy as np

from pipelines.disclosure.spec import Group

_TOLERANCE = 1e-9


def determined(withheld: np.ndarray, groups: list[Group]) -> list[int]:
    """Row indices of withheld cells whose value follows from the published relations."""
    equations = [[c for c in (g.total, *g.members) if withheld[c]] for g in groups]
    signs = [{g.total: -1.0, **{m: 1.0 for m in g.members}} for g in groups]
    found: list[int] = []
    for block in _blocks(equations):
        cells = sorted({c for e in block for c in equations[e]})
        position = {c: i for i, c in enumerate(cells)}
        matrix = np.zeros((len(block), len(cells)))
        for row, e in enumerate(block):
            for c in equations[e]:
                matrix[row, position[c]] = signs[e][c]
        _, sv, vt = np.linalg.svd(matrix)
        rank = int((sv > _TOLERANCE * max(matrix.shape)).sum())
        null_space = vt[rank:]
        pinned = np.all(np.abs(null_space) < 1e-7, axis=0) if len(null_space) else np.ones(len(cells), bool)
        found += [cells[i] for i in np.flatnonzero(pinned)]
    return sorted(found)


def _blocks(equations: list[list[int]]) -> list[list[int]]:
    """Equations with at least one unknown, grouped by shared unknowns (union-find over cells)."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for cells in equations:
        for c in cells[1:]:
            parent[root(c)] = root(cells[0])
    blocks: dict[int, list[int]] = {}
    for e, cells in enumerate(equations):
        if cells:
            blocks.setdefault(root(cells[0]), []).append(e)
    return list(blocks.values())
