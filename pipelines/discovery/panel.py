"""The citizen-quarter panel as numpy arrays, and the service indicators the analyses test.

Each indicator is a yes/no per person and quarter from one unit's dataset. An indicator whose column
is NULL throughout is not shared (its steward has not approved it, or withdrew it) and is left out:
unknown is not "no". Strata for adjustment are age group x district x quarter, finer than the
published age bands so that age (home care rises steeply with it) cannot masquerade as co-use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from functools import cached_property, partial
from pathlib import Path

import duckdb
import numpy as np
from scipy import stats

from pipelines.discovery.findings import code_version
from warehouse.layout import connect, content_digest, has_table, run

PANEL = "discovery.citizen_quarter"
# the quarters every month of which is delivered, as they are (not when they were written)
ANALYSED = f"(SELECT COLUMNS(lambda c: c <> '_written_at') FROM {PANEL} WHERE complete)"
MERIT_UNIT, MERIT_DATASET = "skola", "meritvarde"  # the year-9 merit value: a measure, not a yes/no
NEVER = np.iinfo(np.int64).max  # the first quarter of something a person never had
JACKKNIFE_GROUPS = 20  # persons are split into this many groups for cluster-robust intervals


def jackknife(estimate: float, leave_out: np.ndarray, floor: float = 0.0) -> dict[str, float]:
    """{lo, hi, se, p} of an estimate from its delete-a-group jackknife (``JACKKNIFE_GROUPS`` leave-one-group-out
    estimates): 95 % interval and two-sided p on t with groups - 1 degrees of freedom. One person's
    quarters are not independent, so the groups are of persons; every analysis of the panel uses this.
    ``floor``: a standard error the jackknife's may not go below (a model-based one, where few persons
    carry the estimate and twenty groups measure its spread poorly)."""
    if not (np.isfinite(estimate) and np.all(np.isfinite(leave_out))):
        return {"lo": float("nan"), "hi": float("nan"), "se": float("nan"), "p": float("nan")}
    g = JACKKNIFE_GROUPS
    se = max(float(np.sqrt((g - 1) / g * ((leave_out - leave_out.mean()) ** 2).sum())), floor)
    t = stats.t.ppf(0.975, g - 1)
    p = float(2 * stats.t.sf(abs(estimate) / se, g - 1)) if se > 0 else 0.0
    return {"lo": estimate - t * se, "hi": estimate + t * se, "se": se, "p": p}


@dataclass(frozen=True)
class Indicator:
    name: str
    unit: str
    dataset: str
    label: str  # Swedish, as a reader sees it
    expression: str  # SQL over the panel giving a boolean (NULL when not shared)
    within: str | None = None  # the broader indicator that holds every yes of this one (nested)

    @property
    def source(self) -> str:
        return f"{self.unit}.{self.dataset}"


def _has(name: str) -> str:
    return f"has_{name}"


INDICATORS: tuple[Indicator, ...] = (
    Indicator(
        "economic_aid",
        "socialtjanst",
        "ekonomiskt_bistand",
        "ekonomiskt bistånd",
        _has("economic_aid"),
        within="household_economic_aid",  # the applicant is in the household
    ),
    Indicator(
        "household_economic_aid",
        "socialtjanst",
        "ekonomiskt_bistand",
        "ekonomiskt bistånd i hushållet",
        _has("household_economic_aid"),
    ),
    Indicator(
        "child_investigation",
        "socialtjanst",
        "barnutredningar",
        "barnavårdsutredning",
        _has("child_investigation"),  # strong secrecy: only as a derived quarterly flag, if approved
    ),
    Indicator("school", "skola", "inskrivning", "inskriven i grundskolan", _has("school")),
    Indicator(
        "high_absence",
        "skola",
        "franvaro",
        "hög skolfrånvaro (minst 15 %)",
        _has("high_absence"),
        within="school",  # absence is recorded for enrolled pupils
    ),
    Indicator("home_care", "vard_omsorg", "hemtjanst", "hemtjänst", _has("home_care")),
    Indicator(
        "nursing_home", "vard_omsorg", "sarskilt_boende", "flytt till särskilt boende", _has("nursing_home")
    ),
    Indicator("safety_alarm", "vard_omsorg", "trygghetslarm", "trygghetslarm", _has("safety_alarm")),
    Indicator("contact", "kontaktcenter", "kontakter", "kontakt med kontaktcenter", _has("contact")),
    Indicator("e_service", "e_tjanster", "inlamningar", "inlämning till en e-tjänst", _has("e_service")),
    Indicator(
        "paper_submission",
        "e_tjanster",
        "inlamningar",
        "inlämning på papper",
        "CASE WHEN paper_submissions IS NULL THEN NULL ELSE paper_submissions > 0 END",
        within="e_service",  # a paper submission is a submission
    ),
    Indicator("building_permit", "bygg_miljo", "bygglov", "bygglovsärende", _has("building_permit")),
    Indicator(
        "hub_case", "arendehandelser", "statushandelser", "ärende i ärendeknutpunkten", _has("hub_case")
    ),
)
BY_NAME = {i.name: i for i in INDICATORS}


def family(name: str) -> str:
    """The broadest indicator that contains this one: nested indicators are one hypothesis family (a
    measure that is no indicator, the merit value, is a family of its own)."""
    while name in BY_NAME and BY_NAME[name].within is not None:
        name = BY_NAME[name].within
    return name


def depth(name: str) -> int:
    """How many broader indicators contain this one (0: the broadest of its family); more is more specific."""
    return 0 if name not in BY_NAME or BY_NAME[name].within is None else 1 + depth(BY_NAME[name].within)


# Pairs that are one record seen twice, not two services: the case hub mirrors every case system,
# building permits included (same diarienummer and dates). Testing them would "find" the copy.
DEFINITIONAL: dict[frozenset[str], str] = {
    frozenset({"hub_case", "building_permit"}): "ärendeknutpunkten speglar bygglovsärendena",
}

AGE_GROUP = """CASE WHEN age < 6 THEN 0 WHEN age < 16 THEN 1 WHEN age < 20 THEN 2 WHEN age < 30 THEN 3
    WHEN age < 40 THEN 4 WHEN age < 50 THEN 5 WHEN age < 65 THEN 6 WHEN age < 75 THEN 7
    WHEN age < 80 THEN 8 WHEN age < 85 THEN 9 WHEN age < 90 THEN 10 ELSE 11 END"""
AGE_GROUP_LABELS = (
    "0–5 år", "6–15 år", "16–19 år", "20–29 år", "30–39 år", "40–49 år", "50–64 år",
    "65–74 år", "75–79 år", "80–84 år", "85–89 år", "90 år och äldre",
)  # fmt: skip


@dataclass(frozen=True)
class Panel:
    """One row per person and quarter; ``flags`` column j is ``indicators[j]``."""

    person: np.ndarray  # int, 0..persons-1
    quarter: np.ndarray  # int, 0..quarters-1 in calendar order
    age_group: np.ndarray  # int, index into AGE_GROUP_LABELS
    district: np.ndarray  # int, index into districts
    group: np.ndarray  # int, jackknife group of the person (0..JACKKNIFE_GROUPS-1)
    flags: np.ndarray  # bool, (rows, indicators)
    indicators: tuple[Indicator, ...]
    districts: tuple[str, ...]
    quarters: tuple[str, ...]  # 'YYYY-MM-DD' of each quarter's first day
    not_shared: tuple[str, ...]  # indicator names whose unit does not share them
    data_version: str
    merit: np.ndarray | None = (
        None  # float, the year-9 merit value in its quarter, NaN elsewhere; None: not shared
    )

    @property
    def rows(self) -> int:
        return len(self.person)

    @cached_property
    def persons(self) -> int:
        return int(self.person.max()) + 1 if self.rows else 0

    @cached_property
    def first_quarter(self) -> np.ndarray:
        """Per person, the first quarter they are in the panel."""
        return self.first_quarters(np.ones(self.rows, dtype=bool))

    def first_quarters(self, rows: np.ndarray) -> np.ndarray:
        """Per person, the first quarter of the rows where ``rows`` (a mask) holds, or ``NEVER``.

        Rows are ordered by person and quarter, so a person's first such row is that quarter.
        """
        at = np.flatnonzero(rows)
        person = self.person[at]
        first = np.ones(len(at), dtype=bool)
        first[1:] = person[1:] != person[:-1]
        quarter = np.full(self.persons, NEVER)
        quarter[person[first]] = self.quarter[at[first]]
        return quarter

    def flag(self, name: str) -> np.ndarray:
        return self.flags[:, [i.name for i in self.indicators].index(name)]

    @cached_property
    def flag_bits(self) -> np.ndarray:
        """Each row's flags as one uint64, bit j for column j (at most 64 indicators): packed once for
        every lag the associations align."""
        if self.flags.shape[1] > 64:
            raise ValueError(f"{self.flags.shape[1]} indicators: the panel's flags pack into 64 bits at most")
        packed = np.packbits(self.flags, axis=1, bitorder="little")
        padded = np.zeros((self.rows, 8), dtype=np.uint8)
        padded[:, : packed.shape[1]] = packed
        return padded.view("<u8").ravel()

    @cached_property
    def rows_with(self) -> tuple[np.ndarray, ...]:
        """Per indicator, the rows it is set in (ascending): few, so counting persons reads these."""
        return tuple(np.flatnonzero(column) for column in np.ascontiguousarray(self.flags.T))

    def has_later(self, lag: int) -> np.ndarray:
        """Per row, whether the same person has a row ``lag`` quarters later: then it is ``row + lag``, since
        rows are ordered by person and quarter. Made once per lag (the associations' cells and persons both
        read it) and read-only, since it is shared."""
        if lag not in self._later:
            same = np.ones(self.rows, dtype=bool)
            if lag:
                same[-lag:] = False
                same[:-lag] = (self.person[lag:] == self.person[:-lag]) & (
                    self.quarter[lag:] == self.quarter[:-lag] + lag
                )
            same.setflags(write=False)
            self._later[lag] = same
        return self._later[lag]

    @cached_property
    def _later(self) -> dict[int, np.ndarray]:
        return {}

    def base_strata(self, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Age group x district x quarter, as one integer per row (of ``rows``): the quarter is the
        remainder by the number of quarters."""
        d, q = len(self.districts), len(self.quarters)
        return (self.age_group[rows] * d + self.district[rows]) * q + self.quarter[rows]


def permute_unit(panel: Panel, unit: str, seed: int) -> Panel:
    """The panel with one unit's indicators moved to other persons: any link to that unit is destroyed.

    Each person takes the unit's quarterly history of another person, drawn from those in the panel
    every quarter (a permutation among them; with replacement for the others), so the unit's own
    persistence and calendar stay. Donors are drawn alike for everyone: a donor from the recipient's
    own cohort (say, those who left the same quarter) would carry the cohort's links along, since
    who dies soon has both more home care and more contacts. A discovery run on it must report
    nothing about the unit: a check of the false-finding control.

    The donors come from a random stream of their own: drawn from the same seed as ``rekeyed``'s new
    person numbers and jackknife groups, they would follow them (the same random words in the same order).
    """
    rng = np.random.default_rng([seed, 1])
    start = np.full(panel.persons, panel.rows)
    np.minimum.at(start, panel.person, np.arange(panel.rows))
    always = np.flatnonzero(np.bincount(panel.person, minlength=panel.persons) == len(panel.quarters))
    if not len(always):
        raise ValueError("no person is in the panel every quarter: no history to move")
    donor = rng.choice(always, panel.persons)
    donor[always] = rng.permutation(always)
    source = start[donor[panel.person]] + panel.quarter  # a donor's rows are its quarters 0, 1, ...
    columns = [j for j, i in enumerate(panel.indicators) if i.unit == unit]
    flags = panel.flags.copy()
    flags[:, columns] = panel.flags[source][:, columns]
    merit = panel.merit[source] if panel.merit is not None and unit == MERIT_UNIT else panel.merit
    return replace(
        panel, flags=flags, merit=merit, data_version=f"{panel.data_version}:permuted:{unit}:{seed}"
    )


def rekeyed(panel: Panel, seed: int) -> Panel:
    """The panel as another central citizen key would order it: persons renumbered, jackknife groups drawn
    anew. What discovery finds must not depend on the key; tests and the bench repeat a check under
    several keys without another run of the pipeline."""
    rng = np.random.default_rng(seed)
    person = rng.permutation(panel.persons)[panel.person]
    order = np.lexsort((panel.quarter, person))  # rows by person and quarter, as load_panel gives them
    group = rng.integers(0, JACKKNIFE_GROUPS, panel.persons)[person[order]]
    return replace(
        panel,
        person=person[order],
        quarter=panel.quarter[order],
        age_group=panel.age_group[order],
        district=panel.district[order],
        group=group,
        flags=panel.flags[order],
        merit=None if panel.merit is None else panel.merit[order],
        data_version=f"{panel.data_version}:rekeyed:{seed}",
    )


def has_panel(con: duckdb.DuckDBPyConnection) -> bool:
    return has_table(con, *PANEL.split("."))


Digests = dict[str, tuple[int, int]]  # quarter ('YYYY-MM-DD') -> (rows, digest of its rows)


def quarter_digests(con: duckdb.DuckDBPyConnection) -> Digests:
    """Per complete quarter of the panel, its rows and their content digest: the panel's data version is
    made of these, and a cache updated from them reads again only the quarters whose digest changed."""
    rows = run(
        con, f"SELECT quarter::VARCHAR, count(*), {content_digest('p')} FROM {ANALYSED} p GROUP BY ALL"
    )
    return {quarter: (count, digest) for quarter, count, digest in sorted(rows)}


def version_of(digests: Digests) -> str:
    """The panel's data version from its quarters' digests: the row digests combine by XOR, so this is the
    version a digest of the whole panel gives."""
    digest = 0
    for _, quarter_digest in digests.values():
        digest ^= quarter_digest
    first, last = (min(digests), max(digests)) if digests else (None, None)
    return f"panel:{first}..{last}:{sum(n for n, _ in digests.values())}:{digest:016x}"


def data_version(con: duckdb.DuckDBPyConnection) -> str:
    """A fingerprint of the panel's content as analysed (its complete quarters): the same panel gives the
    same version, any change another. A month whose data all fall in the open quarter leaves it as it was."""
    return version_of(quarter_digests(con))


@dataclass(frozen=True)
class Layout:
    """What numbers a panel's values: the shared indicators (a flag column each), whether the merit value
    is shared, and the districts and quarters in their order."""

    indicators: tuple[Indicator, ...]
    merit: bool
    districts: tuple[str, ...]
    quarters: tuple[str, ...]


Column = Callable[[], np.ndarray]
READ = f"(SELECT * FROM {ANALYSED} WHERE age IS NOT NULL AND age >= 0)"
DISTRICT = "coalesce(district, 'Okänt')"
PERSONS = "panel_persons"  # a temporary table of the reading connection


def layout(con: duckdb.DuckDBPyConnection) -> Layout:
    """The panel's layout; an indicator whose column is NULL in every complete quarter is not shared."""
    columns = {r[0] for r in run(con, f"SELECT column_name FROM (DESCRIBE {PANEL})")}
    usable = [i for i in INDICATORS if _columns_exist(i, columns)]
    counts = ", ".join(f"count({i.expression})" for i in usable)
    shared_counts = run(con, f"SELECT {counts} FROM {ANALYSED}")[0]
    shared = tuple(i for i, n in zip(usable, shared_counts, strict=True) if n > 0)
    if len(shared) > 64:
        raise ValueError(
            f"{len(shared)} indicators: the panel's flags travel as the bits of one 64-bit integer"
        )
    merit = {"has_merit", "merit_value"} <= columns and bool(
        run(con, f"SELECT count(has_merit) FROM {ANALYSED}")[0][0]
    )
    districts = tuple(d for (d,) in run(con, f"SELECT DISTINCT {DISTRICT} AS d FROM {READ} ORDER BY d"))
    quarters = tuple(q for (q,) in run(con, f"SELECT DISTINCT quarter::VARCHAR AS q FROM {READ} ORDER BY q"))
    return Layout(shared, merit, districts, quarters)


def load_panel(con: duckdb.DuckDBPyConnection, version: str | None = None) -> Panel:
    """Read the panel's complete quarters into arrays; indicators not shared by their unit are dropped
    (listed in not_shared). ``version``: its data version, if the caller has it already.

    A quarter at either end of the platform's calendar is seen only in part: a month or two of
    services undercounts every flag in it, dilutes a lagged link into it and cuts a person's profile
    short, so the analyses read complete quarters only."""
    shape = layout(con)
    _, rows = _read_rows(con, shape, None)
    return _panel(shape, rows, version or data_version(con))


def _read_rows(
    con: duckdb.DuckDBPyConnection, shape: Layout, changed: list[str] | None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The rows of the quarters ``changed`` (None: every quarter), and per person whether they have a row
    in another quarter. Persons are numbered by the order of their keys (through a join on their distinct
    keys, not by windows over every row), however few rows are read."""
    try:
        elsewhere = _number_persons(con, changed or [])
        return elsewhere, _rows(con, shape, changed)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {PERSONS}")


def _number_persons(con: duckdb.DuckDBPyConnection, changed: list[str]) -> np.ndarray:
    elsewhere = "bool_or(NOT list_contains($changed::DATE[], quarter))" if changed else "true"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {PERSONS} AS
            SELECT citizen_key, row_number() OVER (ORDER BY citizen_key) - 1 AS person, elsewhere
            FROM (SELECT citizen_key, {elsewhere} AS elsewhere FROM {READ} GROUP BY citizen_key)""",
        {"changed": changed} if changed else {},
    )
    return con.sql(f"SELECT elsewhere FROM {PERSONS} ORDER BY person").fetchnumpy()["elsewhere"]


def _rows(con: duckdb.DuckDBPyConnection, shape: Layout, quarters: list[str] | None) -> dict[str, np.ndarray]:
    """The rows of ``quarters`` (None: every quarter), in no order, as the panel's arrays number them;
    the flags travel as the bits of one integer."""
    bits = " | ".join(
        f"(coalesce({i.expression}, false)::UBIGINT << {j})" for j, i in enumerate(shape.indicators)
    )
    table = con.sql(
        f"""SELECT person, (list_position($quarters::DATE[], quarter) - 1)::BIGINT AS quarter,
            ({AGE_GROUP})::BIGINT AS age_group,
            (list_position($districts::VARCHAR[], {DISTRICT}) - 1)::BIGINT AS district,
            (hash(citizen_key) % {JACKKNIFE_GROUPS})::BIGINT AS "group", {bits or "0::UBIGINT"} AS bits,
            {"CASE WHEN has_merit THEN merit_value END" if shape.merit else "NULL::DOUBLE"} AS merit
        FROM {READ} p JOIN {PERSONS} USING (citizen_key)
        {"" if quarters is None else "WHERE list_contains($read::DATE[], quarter)"}""",
        params={"quarters": list(shape.quarters), "districts": list(shape.districts)}
        | ({} if quarters is None else {"read": quarters}),
    ).to_arrow_table()
    columns = {name: table.column(name).to_numpy() for name in table.column_names}
    packed = columns.pop("bits").astype(np.uint64, copy=False).view(np.uint8).reshape(-1, 8)
    columns["flags"] = np.unpackbits(packed, axis=1, count=len(shape.indicators), bitorder="little").view(
        bool
    )
    return columns


def _panel(
    shape: Layout, fresh: dict[str, np.ndarray], version: str, kept: dict[str, Column] | None = None
) -> Panel:
    """The panel of the ``fresh`` rows (in no order) and the ``kept`` ones (in person and quarter order
    already; each column made when it is merged, so only a few are held twice at once), ordered by person
    and quarter: the fresh rows sorted and merged in."""
    quarters = len(shape.quarters)
    order = _by_person_and_quarter(fresh["person"], fresh["quarter"], quarters)
    if kept is None:
        return _assembled(shape, _each({n: partial(_sorted, c, order) for n, c in fresh.items()}), version)
    fresh_key = (fresh["person"] * quarters + fresh["quarter"])[order]
    person, quarter = kept["person"](), kept["quarter"]()  # made once: they place the fresh rows too
    kept = kept | {"person": lambda: person, "quarter": lambda: quarter}
    kept_key = person * quarters + quarter
    place = np.searchsorted(kept_key, fresh_key)
    inside = place < len(kept_key)
    if (kept_key[place[inside]] == fresh_key[inside]).any():
        raise ValueError("a quarter read again holds a person and quarter the panel's cache holds too")
    at = place + np.arange(len(fresh_key))  # each fresh row's place among all
    from_kept = np.ones(len(kept_key) + len(fresh_key), dtype=bool)
    from_kept[at] = False
    work = {n: partial(_merged, kept[n], from_kept, fresh[n], order, at) for n in kept}
    return _assembled(shape, _each(work), version)


def _sorted(column: np.ndarray, order: np.ndarray) -> np.ndarray:
    return _rows_of(column)[order]


def _merged(
    kept: Column, from_kept: np.ndarray, fresh: np.ndarray, order: np.ndarray, at: np.ndarray
) -> np.ndarray:
    """One column: the kept rows where ``from_kept`` holds, the fresh ones in ``order`` at ``at``."""
    kept = _rows_of(kept())
    merged = np.empty((len(from_kept), *kept.shape[1:]), dtype=kept.dtype)
    merged[from_kept] = kept
    merged[at] = _rows_of(fresh)[order]
    return merged


def _each(work: dict[str, Callable[[], np.ndarray]]) -> dict[str, np.ndarray]:
    """Column by column on two threads: numpy lets go of the GIL while it moves memory, and twenty
    million rows of seven columns are seconds of it."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(job) for name, job in work.items()}
    return {name: future.result() for name, future in futures.items()}


def _assembled(shape: Layout, columns: dict[str, np.ndarray], version: str) -> Panel:
    flags = columns["flags"]
    flags = flags if flags.ndim == 2 else flags.view(bool).reshape(-1, len(shape.indicators))
    ints = ("person", "quarter", "age_group", "district", "group")
    return Panel(
        **{name: columns[name].astype(np.int64, copy=False) for name in ints},
        flags=flags,
        indicators=shape.indicators,
        districts=shape.districts,
        quarters=shape.quarters,
        not_shared=tuple(i.name for i in INDICATORS if i not in shape.indicators),
        data_version=version,
        merit=columns["merit"].astype(float, copy=False) if shape.merit else None,
    )


def _rows_of(column: np.ndarray) -> np.ndarray:
    """A 2-d array as one value per row (its bytes), so a row moves as one item and not column by column
    (unless a row has no bytes: no indicator is shared)."""
    if column.ndim == 1 or column.shape[1] == 0:
        return column
    return np.ascontiguousarray(column).view(np.dtype((np.void, column.shape[1]))).ravel()


def updated(con: duckdb.DuckDBPyConnection, before: Panel, digests: Digests, now: Digests) -> Panel | None:
    """The panel now, from the panel ``before`` (whose quarters had ``digests``) and the rows of the
    quarters whose digest changed: what ``load_panel`` reads, with a month's late data reading one or two
    quarters instead of every one. None where it cannot be (the shared indicators changed, or no quarter
    is as it was): read the panel whole.

    Persons are numbered by the order of their keys, before and now; those with a row in a quarter kept
    are the same persons in the same order, so the i-th of them before is the i-th now."""
    kept = [q for q in before.quarters if q in now and digests.get(q) == now[q]]
    shape = layout(con)
    if not kept or shape.indicators != before.indicators or shape.merit != (before.merit is not None):
        return None
    changed = [q for q in now if q not in kept]
    elsewhere, fresh = _read_rows(con, shape, changed)
    keep = np.zeros(len(before.quarters), dtype=bool)
    keep[[before.quarters.index(q) for q in kept]] = True
    rows = keep[before.quarter]
    person = before.person[rows]
    first = np.ones(len(person), dtype=bool)
    first[1:] = person[1:] != person[:-1]  # rows are by person: each person's first row
    persons, same = np.full(before.persons, -1), np.flatnonzero(elsewhere)
    if len(same) != first.sum():
        raise ValueError(
            f"the panel's kept quarters hold {first.sum()} persons in its cache, {len(same)} now"
        )
    persons[person[first]] = same
    quarter, district = (
        _renumber(before.quarters, shape.quarters),
        _renumber(before.districts, shape.districts),
    )
    renumbered: dict[str, Column] = {
        "person": partial(np.take, persons, person),
        "quarter": lambda: quarter[before.quarter[rows]],
        "district": lambda: district[before.district[rows]],
        "age_group": lambda: before.age_group[rows],
        "group": lambda: before.group[rows],
        "flags": lambda: _rows_of(before.flags)[rows],
        "merit": lambda: before.merit[rows] if shape.merit else np.zeros(len(person)),
    }
    logging.getLogger(__name__).info(
        "the panel: %d of %d quarters read, the others from its cache", len(changed), len(shape.quarters)
    )
    return _panel(shape, fresh, version_of(now), renumbered)


def _renumber(before: tuple[str, ...], now: tuple[str, ...]) -> np.ndarray:
    """Each value's number before -> its number now (-1: gone, so in no row kept)."""
    return np.array([now.index(v) if v in now else -1 for v in before], dtype=np.int64)


def _by_person_and_quarter(person: np.ndarray, quarter: np.ndarray, quarters: int) -> np.ndarray:
    """The order of the rows by person, then quarter. A person has at most one row a quarter, so each row
    has a slot of its own in a table of every person's quarters, and reading the filled slots in turn is
    the order: linear, where a sort of the rows was a sixth of the read (DuckDB's ORDER BY, before, moved
    every column through its sort)."""
    key = person * quarters + quarter
    slot = np.full(int(key.max()) + 1 if len(key) else 0, -1, dtype=np.int64)
    slot[key] = np.arange(len(key))
    order = slot[slot >= 0]
    if len(order) != len(key):
        raise ValueError(
            f"the panel has {len(key) - len(order)} rows of a person and quarter that is already in it"
        )
    return order


def cached_panel(
    con: duckdb.DuckDBPyConnection,
    cache: Path,
    digests: Digests | None = None,
    keeper: Executor | None = None,
) -> Panel:
    """The panel, from the folder ``cache`` when that holds this panel's data version, else read and kept.

    Reading the panel from DuckDB took 9-15 s at 1,000,000 citizens x 5 years, reading the cache a
    second; an unchanged panel (a rerun, a subset of the analyses materialised again) reads the cache, a
    changed one reads only its changed quarters into the cache's panel (``updated``). The cache holds what
    the panel does (person numbers, not keys), one ``.npy`` file per array, and the quarters' digests; it is
    replaced whenever the panel changes. ``digests``: the quarters' digests, if the caller has them already.
    ``keeper``: a thread to write the cache on while the caller analyses (2 s at that size); without one
    it is written first.
    """
    digests = digests if digests is not None else quarter_digests(con)
    version = version_of(digests)
    folder = cache / hashlib.sha256(f"{version} {code_version()}".encode()).hexdigest()[:16]
    if (folder / "about.json").exists():
        return _from_cache(folder)[0]
    panel = _from_earlier(con, cache, digests) or load_panel(con, version)
    if keeper is None:
        _write_cache(cache, folder, panel, digests)
    else:
        keeper.submit(_write_cache, cache, folder, panel, digests).add_done_callback(_said_if_failed)
    return panel


def _from_earlier(con: duckdb.DuckDBPyConnection, cache: Path, digests: Digests) -> Panel | None:
    """The panel updated from the one the cache holds, if it holds one with its quarters' digests."""
    earlier = [f for f in cache.iterdir() if (f / "about.json").exists()] if cache.is_dir() else []
    if len(earlier) != 1 or earlier[0].name.startswith("."):
        return None
    try:
        before, before_digests = _from_cache(earlier[0], mapped=True)
        return updated(con, before, before_digests, digests) if before_digests else None
    except (OSError, ValueError, KeyError) as error:  # a shortcut: without it, read the panel whole
        logging.getLogger(__name__).warning("the panel's cache at %s was not used: %s", earlier[0], error)
        return None


def _said_if_failed(written: Future) -> None:
    """A cache not written costs the next run a read from DuckDB, nothing more: said, not raised."""
    if (error := written.exception()) is not None:
        logging.getLogger(__name__).warning("the panel's cache was not written: %s", error)


def _from_cache(folder: Path, mapped: bool = False) -> tuple[Panel, Digests]:
    """The cached panel and its quarters' digests, none if other code read it (its rows may have been read
    otherwise: an indicator's SQL, the age groups); ``mapped``: its arrays read where the page cache holds them."""
    about = json.loads((folder / "about.json").read_text())
    named = {i.name: i for i in INDICATORS}
    panel = Panel(
        **{
            name: np.load(folder / f"{name}.npy", mmap_mode="r" if mapped else None)
            for name in about["arrays"]
        },
        indicators=tuple(named[n] for n in about["indicators"]),
        districts=tuple(about["districts"]),
        quarters=tuple(about["quarters"]),
        not_shared=tuple(about["not_shared"]),
        data_version=about["data_version"],
    )
    digests = about.get("digests", {}) if about.get("code") == code_version() else {}
    return panel, {q: tuple(d) for q, d in digests.items()}


def _write_cache(cache: Path, folder: Path, panel: Panel, digests: Digests) -> None:
    """Each array straight to its own file (``np.save`` on a file writes the array's memory as it is, with
    no copy), in a folder renamed into place when whole, so a reader sees a whole cache or none."""
    arrays = {
        f.name: getattr(panel, f.name)
        for f in fields(panel)
        if isinstance(getattr(panel, f.name), np.ndarray)
    }
    about = {
        "data_version": panel.data_version,
        "arrays": list(arrays),
        "indicators": [i.name for i in panel.indicators],
        "districts": list(panel.districts),
        "quarters": list(panel.quarters),
        "not_shared": list(panel.not_shared),
        "digests": digests,
        "code": code_version(),
    }
    partial = cache / f".partial-{folder.name}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name, array in arrays.items():
        np.save(partial / f"{name}.npy", array)
    (partial / "about.json").write_text(json.dumps(about))
    for old in cache.iterdir():
        if old != partial:
            shutil.rmtree(old)
    partial.rename(folder)


def _columns_exist(indicator: Indicator, columns: set[str]) -> bool:
    names = {w for w in indicator.expression.replace("(", " ").replace(")", " ").split() if w.islower()}
    return all(n in columns for n in names if n.startswith(("has_", "paper_")))


def open_panel(cross_unit: Path) -> Panel:
    """The panel of a cross-unit zone file, read-only (for benchmarks and notebooks' tests)."""
    with connect(cross_unit, read_only=True) as con:
        return load_panel(con)
