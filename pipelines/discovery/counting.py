"""How the associations' tests count citizen-quarters, and what of it is kept from one run to the next.

A test of A now and B ``lag`` quarters later counts rows per jackknife group, stratum and cell (A
yes/no, B yes/no). All its estimate needs are sums over strata: the Mantel–Haenszel numerator and
denominator, the observed and expected co-occurrences, the Robins–Breslow–Greenland terms, and the
numerator and denominator with each jackknife group left out. Every stratum lies in one quarter (the
quarter is one of its parts), so the sums are made per quarter (``quarter_sums``) and added in calendar
order. A month of late data changes a few quarters: the quarters whose rows, or rows ``lag`` quarters
later, changed are counted again and the others' sums are taken from the last run (``Memo``, keyed by
the quarters' content digests). The estimate is then made of the same per-quarter sums a count of every
row gives (to the last bit, unless a new district renumbers the strata inside a kept quarter: then the
order of one quarter's additions differs).
"""

from __future__ import annotations

import logging
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import polars as pl

from pipelines.discovery.findings import code_version
from pipelines.discovery.panel import JACKKNIFE_GROUPS, Digests, Panel

TERMS = 7  # per quarter: observed, expected, numerator, denominator and the three RGB sums
WIDTH = TERMS + 2 * JACKKNIFE_GROUPS  # then each group's numerator left out, and each one's denominator


def quarter_sums(counts: np.ndarray, quarter: np.ndarray, quarters: int) -> np.ndarray:
    """A test's counts [groups, strata, (n00, n01, n10, n11)] as its sums per quarter [quarters, WIDTH];
    ``quarter``: each stratum's."""
    total = counts.sum(axis=0)
    terms = _terms(total)
    sums = np.empty((quarters, WIDTH))
    for k in range(TERMS):
        sums[:, k] = np.bincount(quarter, weights=terms[k], minlength=quarters)
    groups = (np.arange(JACKKNIFE_GROUPS)[:, None] * quarters + quarter).ravel()
    for k, left_out in enumerate(_ratio_terms(total[None] - counts)):
        by_group = np.bincount(groups, weights=left_out.ravel(), minlength=JACKKNIFE_GROUPS * quarters)
        sums[:, TERMS + k * JACKKNIFE_GROUPS : TERMS + (k + 1) * JACKKNIFE_GROUPS] = by_group.reshape(
            JACKKNIFE_GROUPS, quarters
        ).T
    return sums


def _ratio_terms(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per stratum the Mantel–Haenszel numerator's and denominator's terms (a stratum of one row: none)."""
    n00, n01, n10, n11 = (cells[..., k].astype(float) for k in range(4))
    n = n00 + n01 + n10 + n11
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 1, n11 * n00 / n, 0.0), np.where(n > 1, n10 * n01 / n, 0.0)


def _terms(cells: np.ndarray) -> np.ndarray:
    """Per stratum [strata, 4] the first ``TERMS`` sums' terms [TERMS, strata]."""
    n00, n01, n10, n11 = (cells[..., k].astype(float) for k in range(4))
    n = n00 + n01 + n10 + n11
    r, s = _ratio_terms(cells)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(n > 1, (n11 + n00) / n, 0.0)
        q = np.where(n > 1, (n10 + n01) / n, 0.0)
        expected = np.where(n > 0, (n10 + n11) * (n01 + n11) / n, 0.0)
    return np.stack([n11, expected, r, s, p * r, p * s + q * r, q * s])


@dataclass(frozen=True)
class Estimate:
    log_or: float  # Mantel–Haenszel; NaN where not estimable (a group without the services)
    observed: float  # co-occurrences
    expected: float  # co-occurrences if A and B were independent in every stratum
    leave_out: np.ndarray  # the log odds ratio with each jackknife group left out
    rgb_se: float  # Robins–Breslow–Greenland standard error (0 where it cannot be estimated)


def estimate(sums: np.ndarray) -> Estimate:
    """The estimate from a test's sums over every quarter [WIDTH].

    The Robins–Breslow–Greenland error treats every citizen-quarter as independent: the analyses use it
    as a floor for the jackknife's, which measures the spread too narrowly where few persons carry a link.
    """
    observed, expected, sr, ss, pr, ps_qr, qs = sums[:TERMS]
    left = sums[TERMS:]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_or = np.log(sr) - np.log(ss)
        leave_out = np.log(left[:JACKKNIFE_GROUPS]) - np.log(left[JACKKNIFE_GROUPS:])
        var = pr / (2 * sr**2) + ps_qr / (2 * sr * ss) + qs / (2 * ss**2)
    return Estimate(
        float(log_or),
        float(observed),
        float(expected),
        leave_out,
        float(np.sqrt(var)) if np.isfinite(var) else 0.0,
    )


@dataclass(frozen=True)
class Cells:
    """The rows of some first quarters that have a row ``lag`` quarters later, kept once per alike row.

    A test only counts rows per stratum and cell, so rows alike in all it can read (jackknife group, base
    stratum, every flag now and ``lag`` quarters later) are kept once, with how many they are (``weight``):
    most citizen-quarters hold no service at all, and at 1,000,000 citizens a test reads some hundred
    thousand distinct rows instead of twenty million.
    """

    now: np.ndarray  # (indicators, distinct rows) bool: indicator j in the first quarter
    then: np.ndarray  # the same, ``lag`` quarters later
    strata: np.ndarray  # age group x district x quarter of the first quarter
    group: np.ndarray  # jackknife group
    weight: np.ndarray  # float: the rows each distinct row stands for
    names: tuple[str, ...]
    quarters: int  # the panel's

    @classmethod
    def of(cls, panel: Panel, lag: int, first: np.ndarray | None = None) -> Cells:
        """``first``: per quarter, whether rows in it are counted (None: all). Rows without any service
        now or ``lag`` quarters later (most) are counted per cell by a bincount; only the others are
        grouped, on one integer (cell, flags now, flags later). A row's row ``lag`` quarters later is
        ``row + lag``."""
        aligned = panel.has_later(lag)
        if first is not None:
            aligned = aligned & first[panel.quarter]
        at = np.flatnonzero(aligned)
        bits = panel.flag_bits
        now, then = bits[at], bits[at + lag]
        busy = (now | then) != 0
        cell = panel.base_strata(at) * JACKKNIFE_GROUPS + panel.group[at]
        last = int(cell.max(initial=0))
        idle = np.bincount(cell, weights=~busy, minlength=last + 1)
        n = len(panel.indicators)
        if last.bit_length() + 2 * n > 64:
            raise ValueError(f"{n} indicators now and later and {last + 1} cells do not fit one 64-bit key")
        key = cell[busy].astype(np.uint64) << np.uint64(2 * n) | now[busy] << np.uint64(n) | then[busy]
        distinct = pl.DataFrame({"key": key}).group_by("key").len()
        key, empty = distinct["key"].to_numpy(), np.flatnonzero(idle)
        cells = np.concatenate([(key >> np.uint64(2 * n)).astype(np.int64), empty])
        mask = np.uint64((1 << n) - 1)
        none = np.zeros(len(empty), dtype=np.uint64)
        return cls(
            now=_unpacked(np.concatenate([key >> np.uint64(n) & mask, none]), n),
            then=_unpacked(np.concatenate([key & mask, none]), n),
            strata=cells // JACKKNIFE_GROUPS,
            group=cells % JACKKNIFE_GROUPS,
            weight=np.concatenate([distinct["len"].to_numpy().astype(float), idle[empty]]),
            names=tuple(i.name for i in panel.indicators),
            quarters=len(panel.quarters),
        )

    def flag(self, name: str, later: bool = False) -> np.ndarray:
        return (self.then if later else self.now)[self.names.index(name)]

    def counts(self, a: str, b: str, strata: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows counted per jackknife group, stratum and cell [groups, s, (n00, n01, n10, n11)] of ``a``
        now and ``b`` later, and the value of each stratum (ascending)."""
        fa, fb = self.flag(a), self.flag(b, later=True)
        dense, values = _dense(strata)
        index = (self.group * len(values) + dense) * 4 + fa.astype(np.int64) * 2 + fb
        counts = np.bincount(index, weights=self.weight, minlength=JACKKNIFE_GROUPS * len(values) * 4)
        return np.rint(counts).astype(np.int64).reshape(JACKKNIFE_GROUPS, len(values), 4), values


def _unpacked(bits: np.ndarray, indicators: int) -> np.ndarray:
    """Packed flags (bit j of each uint64 is indicator j) as one bool row per indicator: unpacked once
    per lag, not once per test that reads a flag (a test reads five to ten)."""
    unpacked = np.unpackbits(bits.view(np.uint8).reshape(-1, 8), axis=1, count=indicators, bitorder="little")
    return np.ascontiguousarray(unpacked.T).view(bool)


def _dense(strata: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strata numbered 0..s-1 in order, and the values numbered (a lookup table: linear, where np.unique
    would sort)."""
    if not len(strata):
        return strata, np.zeros(1, dtype=np.int64)
    used = np.zeros(int(strata.max()) + 1, dtype=bool)
    used[strata] = True
    return (np.cumsum(used) - 1)[strata], np.flatnonzero(used)


@dataclass(frozen=True)
class Persons:
    """Persons with A in a quarter and B ``lag`` quarters later, over every quarter (a person is counted
    once however many quarters they have, so these are not sums over quarters and are counted whole)."""

    names: tuple[str, ...]
    person: np.ndarray  # per panel row, its person
    rows_now: tuple[np.ndarray, ...]  # per indicator, the aligned panel rows it is set in, ascending
    rows_then: tuple[np.ndarray, ...]  # the same, by the flag ``lag`` quarters later
    flags: np.ndarray  # per panel row, its flags (the panel's)
    lag: int
    counted: dict[tuple[str | None, str | None], int] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, panel: Panel, lag: int) -> Persons:
        aligned = panel.has_later(lag)
        return cls(
            names=tuple(i.name for i in panel.indicators),
            person=panel.person,
            rows_now=tuple(r[aligned[r]] for r in panel.rows_with),
            rows_then=tuple(_earlier(r, lag, aligned) for r in panel.rows_with),
            flags=panel.flags,
            lag=lag,
        )

    def count(self, a: str | None = None, b: str | None = None) -> int:
        """Persons with ``a`` in the first quarter and ``b`` ``lag`` quarters later (either may be None).

        Counted once per pair: every test of a pair (adjusted for other services, tested again within a
        third unit's) asks the same. Panel rows are in person order, so a person's rows are adjacent.
        """
        if (a, b) not in self.counted:
            now = self.rows_now[self.names.index(a)] if a else None
            then = self.rows_then[self.names.index(b)] if b else None
            both = now if b is None else then if a is None else self._both(now, then, a, b)
            person = self.person[both]
            self.counted[(a, b)] = int(len(person) and 1 + np.count_nonzero(person[1:] != person[:-1]))
        return self.counted[(a, b)]

    def _both(self, now: np.ndarray, then: np.ndarray, a: str, b: str) -> np.ndarray:
        """The rows with ``a`` now and ``b`` later: of the fewer of the two, those where the other flag is
        set (a lookup per row, where a search of one list in the other took a fifth of the tests' time)."""
        if len(now) <= len(then):
            return now[self.flags[now + self.lag, self.names.index(b)]]
        return then[self.flags[then, self.names.index(a)]]


def _earlier(rows: np.ndarray, lag: int, aligned: np.ndarray) -> np.ndarray:
    """The aligned rows whose row ``lag`` quarters later is among ``rows`` (ascending)."""
    earlier = rows[rows >= lag] - lag
    return earlier[aligned[earlier]]


@dataclass
class Memo:
    """Per test and quarter, the sums of the last run (``known``) and of this one (``counted``, what the
    next run may take). A quarter's sums at a lag are known by its content digest and that of the quarter
    ``lag`` later; the file is keyed by the code that made it. It holds sums over strata, no person."""

    digests: Digests = field(default_factory=dict)
    known: dict[str, np.ndarray] = field(default_factory=dict)
    counted: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path, digests: Digests) -> Memo:
        """The memo at ``path``; an empty one if there is none, other code wrote it, or it cannot be read
        (said: the tests then count every quarter, nothing more is lost)."""
        try:
            with np.load(path) as stored:
                if str(stored["code"]) != code_version():
                    return cls(digests)
                return cls(digests, dict(zip(stored["keys"].tolist(), stored["sums"], strict=True)))
        except FileNotFoundError:
            return cls(digests)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            logging.getLogger(__name__).warning("the associations' sums at %s were not used: %s", path, error)
            return cls(digests)

    def write(self, path: Path) -> None:
        """This run's sums, replacing the last run's whole (a reader sees one or the other)."""
        keys = sorted(self.counted)
        sums = np.stack([self.counted[k] for k in keys]) if keys else np.zeros((0, WIDTH))
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        with partial.open("wb") as out:
            np.savez(out, code=np.array(code_version()), keys=np.array(keys, dtype=str), sums=sums)
        os.replace(partial, path)

    @cached_property
    def known_quarters(self) -> set[str]:
        """The quarter keys (``quarter_keys``) the last run's sums are known by."""
        return {k.rsplit("@", 1)[1] for k in self.known}

    def quarter_keys(self, panel: Panel, lag: int) -> list[str | None]:
        """Per quarter of the panel, what its sums at ``lag`` are known by (None: no digest to know it by)."""
        keys: list[str | None] = []
        for q, quarter in enumerate(panel.quarters):
            later = panel.quarters[q + lag] if q + lag < len(panel.quarters) else "none"
            known = quarter in self.digests and (later == "none" or later in self.digests)
            keys.append(
                f"{lag}/{quarter}/{self.digests.get(quarter)}/{later}/{self.digests.get(later)}"
                if known
                else None
            )
        return keys


class Lag:
    """What every test at one lag reads: its persons, and the cells of the quarters it counts anew (those
    whose sums the memo does not know); the cells of every quarter too, made only if a test has no sums
    kept (a test not made last run: a pair tested again within a third unit's services)."""

    def __init__(self, panel: Panel, lag: int, memo: Memo | None = None) -> None:
        self.panel, self.lag, self.memo = panel, lag, memo if memo is not None else Memo()
        self.persons = Persons.of(panel, lag)
        self.keys = self.memo.quarter_keys(panel, lag)
        self.fresh = np.array([k is None or k not in self.memo.known_quarters for k in self.keys], dtype=bool)
        self._cells: dict[bool, Cells] = {}
        self.counted_whole = 0  # tests whose every quarter was counted although some were known

    def cells(self, whole: bool) -> Cells:
        whole = whole or bool(self.fresh.all())
        if whole not in self._cells:
            self._cells[whole] = Cells.of(self.panel, self.lag, None if whole else self.fresh)
        return self._cells[whole]

    def sums(self, test: str, variants: int, count: Callable[[Cells], list[np.ndarray]]) -> list[np.ndarray]:
        """A test's sums per quarter [quarters, WIDTH], one array per ``variant`` (stratification): the
        quarters the memo knows taken from it, the others counted by ``count`` on their cells."""
        kept = {
            (v, q): self.memo.known.get(f"{test}#{v}@{self.keys[q]}")
            for v in range(variants)
            for q in np.flatnonzero(~self.fresh)
        }
        whole = any(s is None for s in kept.values())
        self.counted_whole += whole and bool(kept)
        sums = count(self.cells(whole))
        if not whole:
            for (v, q), s in kept.items():
                sums[v][q] = s
        for v, by_quarter in enumerate(sums):
            for q, key in enumerate(self.keys):
                if key is not None:
                    self.memo.counted[f"{test}#{v}@{key}"] = by_quarter[q]
        return sums
