"""Which services of different units go together more than chance, in one quarter or a lag apart.

For every pair of indicators from two different units (or from two datasets of one unit, each shared
under its steward's approval: home care and nursing homes), over citizen-quarters: the Mantel–Haenszel
odds ratio across strata of age group x district x quarter x the other services of the two units
(home care and safety alarms go together inside vård och omsorg; without that stratum a safety alarm
would seem to drive contacts that home care drives). Citizen-quarters of one person are not
independent, so the interval is a delete-a-group jackknife over persons (20 groups, t with 19
degrees of freedom), not the textbook variance. The p is one-sided: the hypothesis is a positive link,
the only kind reported, so a negative association (mostly structure) is no discovery and does not
loosen the correction for the others.

Lagged links are hypotheses of their own: A in one quarter and B ``LAGS`` quarters later, each way.
They are stratified also on B in A's quarter (what A adds to B later beyond where B already was), and
must hold both with and without A in B's quarter as a further stratum, its p the larger of the two
(``test_pair`` says why: without
it a same-quarter link of two lasting services comes back as a lagged one; with it alone a service
that ends the other, a nursing home ending a safety alarm, makes a lagged link out of nothing). A link
that exists only with a delay is found here.

A third unit can link two services that have nothing to do with each other (contacts go with home
care, paper forms with safety alarms, home care with safety alarms). So where both services of a
hypothesis hold a same-quarter link with the same third unit, it is tested again, stratified on that
unit's services too, and the correction is made over the final tests.

Nested indicators (household aid holds own aid: ``panel.family``) and the lags of a pair are one
family, and a family gives at most one finding, so the false discovery rate is controlled over families,
not hypotheses: a family's p is the Simes combination of its hypotheses', Benjamini–Hochberg runs over
every family, and inside a selected family a hypothesis must reach the level of the selection (FDR x
selected / families; Benjamini and Bogomolov 2014). Counting one link's lags and nested forms as five or
ten discoveries, as a correction over hypotheses does, loosens the cut-off for every other pair while
the report collapses them into one finding: on shuffled data (``panel.permute_unit``) that let a
pair with no link through about three times as often. A hypothesis holds by evidence, not by a fixed
minimum odds ratio: its family's q below the FDR, its own p within the level and its interval's lower
bound above a practical-significance margin (``MARGIN``, set by the discovery unit), so a modest,
well-measured link holds and a large, poorly measured one does not. Of the hypotheses that hold in a
family, the most specific is reported (among equals, the one whose interval rules out the most: a link
with a delay also shows, diluted, in the same quarter) and names the others, so one link gives one
finding.

Power is stated: every hypothesis carries the smallest odds ratio it would report with probability
``POWER`` at its interval's width (``min_detectable``), so its ``status`` tells "tested, no link of
size ``REFERENCE``" from "too little data to see one" and from "a link, but not surely above the
margin" (significant, its interval excludes 1 and not the margin); pairs with an indicator its unit does not share
are listed as such, untested, rather than left out.

Only positive associations are reported. Negative ones are mostly structure (children do not get
economic aid, pupils are not 80), not discoveries.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np
import polars as pl
from scipy import stats

from pipelines.discovery import merit
from pipelines.discovery.findings import (
    FDR,
    NOT_SHARED,
    PART_OF_ANOTHER,
    Finding,
    benjamini_hochberg,
    forvaltning_or_total,
)
from pipelines.discovery.panel import (
    DEFINITIONAL,
    INDICATORS,
    JACKKNIFE_GROUPS,
    MERIT_DATASET,
    MERIT_UNIT,
    Indicator,
    Panel,
    depth,
    family,
    jackknife,
)

MARGIN = 1.2  # odds ratio: a link weaker than this does not matter to a service, however certain
LAGS = (1, 2)  # quarters between A and B in the lagged hypotheses
POWER = 0.8  # for the smallest detectable effect
REFERENCE = 1.5  # odds ratio: "no link" means one this large would have been seen


def method(margin: float = MARGIN) -> str:
    """The method and the reporting rule, in Swedish, as the findings table states them."""
    return (
        "Mantel–Haenszel-oddskvot över medborgarkvartal, stratifierad på åldersgrupp × distrikt × kvartal × "
        "övriga insatser i samma verksamheter, samma kvartal och med "
        f"{' eller '.join(str(k) for k in LAGS)} kvartals fördröjning åt båda hållen (fördröjda även "
        "stratifierade på den senare insatsen vid start, och de måste hålla både med och utan den första "
        "insatsen vid slut som stratum, med det större p-värdet); par vars båda insatser hänger ihop med en "
        "tredje verksamhet testas om, stratifierade även på dess insatser; 95 % KI med jackknife över personer "
        "(20 grupper) och ensidigt p för ett positivt samband; "
        f"Benjamini–Hochberg (FDR {FDR:.0%}) över alla testade par, där ett pars p "
        "kombinerar dess fördröjningar och kapslade indikatorer (Simes) och q är parets. "
        f"Regel: rapporteras när q < {_num(FDR, 2)}, hypotesens eget p klarar nivån FDR × valda par / "
        f"alla par och KI:s nedre gräns > {_num(margin, 2)} (praktisk signifikans); av kapslade "
        "indikatorer och fördröjningar för samma par rapporteras den mest specifika som håller. "
        "Meritvärde i årskurs 9: skillnad i medelvärde mellan elever med och utan insatsen under de "
        f"{merit.WINDOW} kvartalen före, inom läsår (t-test med poolad varians, minst "
        f"{merit.MIN_PUPILS} elever per grupp), i samma korrigering; "
        f"rapporteras när KI ligger utanför ±{_num(merit.MARGIN, 0)} meritpoäng."
    )


@dataclass(frozen=True)
class Hypothesis:
    """``first`` in a quarter goes with ``second`` ``lag`` quarters later (0: the same quarter)."""

    first: Indicator
    second: Indicator
    lag: int

    @property
    def family(self) -> frozenset[str]:
        return frozenset({family(self.first.name), family(self.second.name)})

    @property
    def specificity(self) -> int:
        return depth(self.first.name) + depth(self.second.name)


def pairs(panel: Panel) -> list[tuple[Indicator, Indicator]]:
    """Every pair of shared indicators from two different units, or from two datasets of one unit (home
    care and nursing homes), except one record seen twice and nested indicators (one family)."""
    return _pairs(panel.indicators)


def _pairs(indicators: tuple[Indicator, ...]) -> list[tuple[Indicator, Indicator]]:
    """A unit's own datasets reach the panel only as its steward approved each of them, so a pair
    within one unit is tested under the same approvals as a pair across units."""
    return [
        (a, b)
        for a, b in itertools.combinations(indicators, 2)
        if (a.unit != b.unit or (a.dataset != b.dataset and family(a.name) != family(b.name)))
        and frozenset({a.name, b.name}) not in DEFINITIONAL
    ]


def hypotheses(panel: Panel) -> list[Hypothesis]:
    """Per pair: the same quarter, and each lag either way."""
    return [
        h
        for a, b in pairs(panel)
        for h in (
            Hypothesis(a, b, 0),
            *(Hypothesis(x, y, k) for k in LAGS for x, y in ((a, b), (b, a))),
        )
    ]


def adjusters(panel: Panel, a: Indicator, b: Indicator, units: tuple[str, ...] = ()) -> list[Indicator]:
    """The other datasets' indicators of the two units (co-use inside a unit is a confounder), and every
    indicator of ``units`` (third units linked to both)."""
    return [
        i
        for i in panel.indicators
        if (i.unit in (a.unit, b.unit) and i.dataset not in (a.dataset, b.dataset)) or i.unit in units
    ]


def analyse(panel: Panel, margin: float = MARGIN) -> list[Finding]:
    """Test every hypothesis (odds ratios, and differences in year-9 merit value: ``merit``), correct over
    all of them together, and report the most specific that holds per family."""
    aligned = {lag: Aligned.of(panel, lag) for lag in (0, *LAGS)}
    tested: list[tuple[Hypothesis | merit.Comparison, dict]] = [
        (h, test_pair(panel, h.first, h.second, h.lag, (), aligned[h.lag])) for h in hypotheses(panel)
    ]
    rows, had = merit.pupils(panel)
    tested += [
        (c, merit.test(panel, rows, had[:, panel.indicators.index(c.indicator)]))
        for c in merit.comparisons(panel, had)
    ]
    q, alpha, holding = _holding(tested, margin)
    third = _linked_to_both(tested, holding)
    if third:  # test those pairs again, within the third unit's services too; then correct again
        tested = [
            (h, test_pair(panel, h.first, h.second, h.lag, third[h], aligned[h.lag]) if h in third else t)
            for h, t in tested
        ]
        q, alpha, holding = _holding(tested, margin)
    holds = set(holding)
    chosen: dict[frozenset[str], int] = {}  # family -> its reported hypothesis
    for k in sorted(holding, key=lambda k: (-tested[k][0].specificity, -_clearance(*tested[k]), q[k])):
        chosen.setdefault(tested[k][0].family, k)
    findings = []
    for k, (h, t) in enumerate(tested):
        reported = chosen.get(h.family) == k
        also = [tested[j][0] for j in holding if reported and j != k and tested[j][0].family == h.family]
        reported_as = tested[chosen[h.family]][0] if k in holds and not reported else None
        args = (panel, h, t, float(q[k]), margin, reported, also, reported_as)
        finding = _finding(*args) if isinstance(h, Hypothesis) else _merit_finding(*args)
        significant = bool(q[k] < FDR and t["p"] <= alpha)
        findings.append(_with_power(finding, h, t, alpha, margin, significant, reported_as is not None))
    return findings + untestable(panel, margin)


def _clearance(h: Hypothesis | merit.Comparison, t: dict) -> float:
    """How far the interval is from no effect: its lower bound (log odds), or its bound nearer zero
    either way (merit points); among equally specific hypotheses of a family, the larger is reported."""
    return t["lo"] if isinstance(h, Hypothesis) else max(t["lo"], -t["hi"])


def _with_power(
    finding: Finding,
    h: Hypothesis | merit.Comparison,
    t: dict,
    alpha: float,
    margin: float,
    significant: bool,
    part_of_another: bool,
) -> Finding:
    """The finding with its smallest detectable effect and its status; ``significant``: its family
    selected and its p within the level, whether or not its interval clears the margin."""
    if isinstance(h, Hypothesis):
        least = detectable(t["se"], margin, alpha)
        wording = (f"oddskvot på {_num(REFERENCE)}", f"marginalen {_num(margin)}")
        fits, below = least <= REFERENCE, significant and t["lo"] > 0
    else:
        least = merit.detectable(t["se"], t["df"], alpha, POWER)
        wording = (
            f"skillnad på {_num(merit.REFERENCE, 0)} meritpoäng",
            f"marginalen {_num(merit.MARGIN, 0)} meritpoäng",
        )
        fits, below = least <= merit.REFERENCE, significant and (t["lo"] > 0 or t["hi"] < 0)
    return replace(
        finding,
        min_detectable=least if np.isfinite(least) else None,
        status=_status(finding.reported, part_of_another, fits, below, *wording),
    )


def _holding(
    tested: list[tuple[Hypothesis | merit.Comparison, dict]], margin: float
) -> tuple[np.ndarray, float, list[int]]:
    """(each hypothesis's family q, the level inside selected families, the hypotheses that hold: their
    family selected, their own p within the level, their interval beyond the margin)."""
    p = np.array([t["p"] for _, t in tested], dtype=float)
    q, level = family_q([h.family for h, _ in tested], p)
    holding = [k for k, (h, t) in enumerate(tested) if q[k] < FDR and p[k] <= level and _beyond(h, t, margin)]
    return q, level, holding


def _beyond(h: Hypothesis | merit.Comparison, t: dict, margin: float) -> bool:
    return t["lo"] > np.log(margin) if isinstance(h, Hypothesis) else merit.holds(t)


def family_q(families: list[frozenset[str]], p: np.ndarray) -> tuple[np.ndarray, float]:
    """(per hypothesis, its family's Benjamini–Hochberg q over every family; the level a hypothesis of a
    selected family must reach: FDR x selected / families).

    A family's p is the Simes combination of its hypotheses' (valid for the positively dependent lags
    and nested forms of one pair); an untestable hypothesis counts as p = 1.
    """
    keys = sorted(set(families), key=sorted)
    index = np.array([keys.index(f) for f in families], dtype=np.int64)
    p = np.where(np.isnan(p), 1.0, p)
    combined = np.array([_simes(p[index == j]) for j in range(len(keys))])
    q = benjamini_hochberg(combined)
    level = FDR * max(int((q < FDR).sum()), 1) / max(len(keys), 1)  # at least one: for the power too
    return q[index], level


def families_of(finding_ids: list[str]) -> list[frozenset[str]]:
    """The family of each association by its id ('association:<first>:<second>[:lag<k>]'), for checks that
    recompute the correction from the stored findings."""
    return [frozenset(family(name) for name in i.split(":")[1:3]) for i in finding_ids]


def _simes(p: np.ndarray) -> float:
    ranked = np.sort(p)
    return float(min(1.0, (ranked * len(ranked) / np.arange(1, len(ranked) + 1)).min()))


def _linked_to_both(
    tested: list[tuple[Hypothesis | merit.Comparison, dict]], holding: list[int]
) -> dict[Hypothesis, tuple[str, ...]]:
    """Hypotheses whose two services each hold a same-quarter link with a third unit, and those units.

    Such a unit can make them look linked (contacts go with home care, paper forms with safety alarms,
    and home care with safety alarms: contacts then seem to go with paper forms); the unit's services
    are a confounder, like the two units' own.
    """
    units: dict[str, set[str]] = {}
    for k in holding:
        h = tested[k][0]
        if isinstance(h, Hypothesis) and h.lag == 0:
            units.setdefault(family(h.first.name), set()).add(h.second.unit)
            units.setdefault(family(h.second.name), set()).add(h.first.unit)
    out = {}
    for h, _ in tested:
        if not isinstance(h, Hypothesis):
            continue
        both = units.get(family(h.first.name), set()) & units.get(family(h.second.name), set())
        if both - {h.first.unit, h.second.unit}:
            out[h] = tuple(sorted(both - {h.first.unit, h.second.unit}))
    return out


def detectable(se: float, margin: float, alpha: float) -> float:
    """The smallest odds ratio reported with probability ``POWER`` at this standard error (log scale).

    Its interval must clear the margin and its p the level ``alpha`` inside selected families (at the
    number of families selected); infinite when nothing could be estimated.
    """
    if not np.isfinite(se):
        return float("inf")
    df = JACKKNIFE_GROUPS - 1
    clear = max(np.log(margin) + stats.t.ppf(0.975, df) * se, stats.t.isf(alpha, df) * se)
    return float(np.exp(clear + stats.t.ppf(POWER, df) * se))


def _status(reported: bool, part_of_another: bool, fits: bool, below: bool, size: str, margin: str) -> str:
    """What a hypothesis came to. ``fits``: an effect of the reference ``size`` would have been reported;
    ``below``: significant and its interval excludes no effect, but not the ``margin`` (a real link, too
    weak or too uncertain to report; not "no link")."""
    if reported:
        return "rapporterat"
    if part_of_another:
        return PART_OF_ANOTHER
    if below:
        return f"samband, men inte säkert över {margin}"
    if fits:
        return f"testat, inget samband (en {size} hade setts)"
    return f"för lite data för att se en {size}"


def untestable(panel: Panel, margin: float = MARGIN) -> list[Finding]:
    """Pairs with an indicator (or the merit value) its unit does not share: listed as not shared,
    untested (no p, no q)."""
    shared = {i.name for i in panel.indicators} | ({merit.NAME} if panel.merit is not None else set())
    merit_source = f"{MERIT_UNIT}.{MERIT_DATASET}"
    pairs = [(a.name, a.label, a.source, b.name, b.label, b.source) for a, b in _pairs(INDICATORS)]
    pairs += [
        (i.name, i.label, i.source, merit.NAME, merit.LABEL, merit_source)
        for i in INDICATORS
        if i.source != merit_source and i.name != "school"  # every pupil with a merit value is enrolled
    ]
    return [
        Finding(
            finding_id=f"association:{a}:{b}",
            kind="association",
            title=f"{a_label.capitalize()} och {b_label} kan inte testas",
            description=" och ".join(
                src for name, src in ((a, a_source), (b, b_source)) if name not in shared
            )
            + " delas inte till den gemensamma zonen: ett samband kan varken ses eller uteslutas.",
            forvaltning=forvaltning_or_total(None),
            dataset_a=a_source,
            dataset_b=b_source,
            measure="skillnad i medelvärde (meritpoäng)" if b == merit.NAME else "oddskvot (Mantel–Haenszel)",
            reported=False,
            n_population=panel.persons,
            about_persons=True,
            method=method(margin),
            data_version=panel.data_version,
            lag_quarters=0,
            status=NOT_SHARED,
        )
        for a, a_label, a_source, b, b_label, b_source in pairs
        if a not in shared or b not in shared
    ]


def mantel_haenszel(cells: np.ndarray) -> tuple[float, float, float]:
    """(log odds ratio, observed, expected co-occurrences) from per-stratum cells [..., (n00, n01, n10, n11)]."""
    n00, n01, n10, n11 = (cells[..., k].astype(float) for k in range(4))
    n = n00 + n01 + n10 + n11
    with np.errstate(divide="ignore", invalid="ignore"):
        num = np.where(n > 1, n11 * n00 / n, 0.0).sum(axis=-1)
        den = np.where(n > 1, n10 * n01 / n, 0.0).sum(axis=-1)
        expected = np.where(n > 0, (n10 + n11) * (n01 + n11) / n, 0.0).sum(axis=-1)
        log_or = np.log(num) - np.log(den)
    return log_or, n11.sum(axis=-1), expected


@dataclass(frozen=True)
class Aligned:
    """The rows that have a row ``lag`` quarters later, with what every test at that lag reads (made once).

    A test only counts rows per stratum and cell, so rows alike in all it can read (jackknife group, base
    stratum, every flag now and ``lag`` quarters later) are kept once, with how many they are (``weight``):
    most citizen-quarters hold no service at all, and at 1,000,000 citizens a test reads some hundred
    thousand distinct rows instead of twenty million. Persons are counted on the rows each flag is set
    in, which are few, reading the other flag of a pair where those rows are.
    """

    now: np.ndarray  # (indicators, distinct rows) bool: indicator j in the first quarter
    then: np.ndarray  # the same, ``lag`` quarters later
    strata: np.ndarray  # age group x district x quarter of the first quarter
    group: np.ndarray  # jackknife group
    weight: np.ndarray  # float: the rows each distinct row stands for
    names: tuple[str, ...]
    person: np.ndarray  # per panel row, its person
    rows_now: tuple[np.ndarray, ...]  # per indicator, the aligned panel rows it is set in, ascending
    rows_then: tuple[np.ndarray, ...]  # the same, by the flag ``lag`` quarters later
    flags: np.ndarray  # per panel row, its flags (the panel's)
    lag: int
    counted: dict[tuple[str | None, str | None], int] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, panel: Panel, lag: int) -> Aligned:
        """Rows without any service now or ``lag`` quarters later (most) are counted per cell by a
        bincount; only the others are grouped, on one integer (cell, flags now, flags later): a third of
        the time three columns took. A row's row ``lag`` quarters later is ``row + lag``."""
        aligned = panel.has_later(lag)
        served = panel.flag_bits != 0
        busy = served.copy()
        busy[: panel.rows - lag] |= served[lag:]
        busy &= aligned
        cell = panel.base_strata() * JACKKNIFE_GROUPS + panel.group
        last = int(cell.max(initial=0))
        idle = np.bincount(cell, weights=aligned & ~busy, minlength=last + 1)
        rows = np.flatnonzero(busy)
        n = len(panel.indicators)
        if last.bit_length() + 2 * n > 64:
            raise ValueError(f"{n} indicators now and later and {last + 1} cells do not fit one 64-bit key")
        bits = panel.flag_bits
        key = cell[rows].astype(np.uint64) << np.uint64(2 * n) | bits[rows] << np.uint64(n) | bits[rows + lag]
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
            person=panel.person,
            rows_now=tuple(r[aligned[r]] for r in panel.rows_with),
            rows_then=tuple(_earlier(r, lag, aligned) for r in panel.rows_with),
            flags=panel.flags,
            lag=lag,
        )

    def flag(self, name: str, later: bool = False) -> np.ndarray:
        return (self.then if later else self.now)[self.names.index(name)]

    def persons(self, a: str | None = None, b: str | None = None) -> int:
        """Persons with ``a`` in the first quarter and ``b`` ``lag`` quarters later (either may be None).

        Counted once per pair: every test of a pair (adjusted for other services, tested again within a
        third unit's) asks the same. Aligned rows are in person order, so a person's rows are adjacent.
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


def _unpacked(bits: np.ndarray, indicators: int) -> np.ndarray:
    """Packed flags (bit j of each uint64 is indicator j) as one bool row per indicator: unpacked once
    per lag, not once per test that reads a flag (a test reads five to ten)."""
    unpacked = np.unpackbits(bits.view(np.uint8).reshape(-1, 8), axis=1, count=indicators, bitorder="little")
    return np.ascontiguousarray(unpacked.T).view(bool)


def test_pair(
    panel: Panel,
    a: Indicator,
    b: Indicator,
    lag: int = 0,
    units: tuple[str, ...] = (),
    aligned: Aligned | None = None,
) -> dict:
    """Adjusted odds ratio of A and B ``lag`` quarters later, its jackknife interval (log scale), lift, groups;
    stratified on the services of ``units`` too (third units linked to both). ``aligned``: ``Aligned.of``
    the panel at this lag, when the caller tests many pairs.

    A lagged link must hold under two stratifications (an intersection–union test: the weaker of the two
    is the result). Both take B in A's quarter (what A adds to B beyond where B already was). One also
    takes A in B's quarter: else a same-quarter link of two lasting services, or one carried by another
    service of A's unit, comes back as a lagged one. The other does not: where B ends A (a move to a
    nursing home ends the safety alarm), A in B's quarter is a common effect, and stratifying on it alone
    makes a link out of nothing.
    """
    rows = aligned or Aligned.of(panel, lag)
    strata = rows.strata
    for adj in adjusters(panel, a, b, units):
        strata = strata * 2 + rows.flag(adj.name)
    if not lag:
        return _odds_ratio(panel, rows, a, b, _cells(rows, a, b, strata)[0])
    strata = strata * 2 + rows.flag(b.name)
    finer, values = _cells(rows, a, b, strata * 2 + rows.flag(a.name, later=True))
    both = (
        _odds_ratio(panel, rows, a, b, _coarser(finer, values)),
        _odds_ratio(panel, rows, a, b, finer),
    )
    weaker = min(both, key=lambda t: t["lo"] if np.isfinite(t["lo"]) else -np.inf)
    p = [t["p"] for t in both]  # the link must hold under both: the larger p (NaN if either is)
    return weaker | {"p": float("nan") if np.isnan(p).any() else max(p)}


def _cells(rows: Aligned, a: Indicator, b: Indicator, strata: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows counted per jackknife group, stratum and cell [groups, s, (n00, n01, n10, n11)] of A now and
    B later, and the value of each stratum (ascending)."""
    fa, fb = rows.flag(a.name), rows.flag(b.name, later=True)
    dense, values = _dense(strata)
    index = (rows.group * len(values) + dense) * 4 + fa.astype(np.int64) * 2 + fb
    counts = np.bincount(index, weights=rows.weight, minlength=JACKKNIFE_GROUPS * len(values) * 4)
    return np.rint(counts).astype(np.int64).reshape(JACKKNIFE_GROUPS, len(values), 4), values


def _coarser(counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``_cells``'s counts with the strata's last bit left out (strata 2v and 2v + 1 as one), from the
    counts instead of every row again: a lagged hypothesis is tested under both."""
    starts = np.flatnonzero(np.diff(values >> 1, prepend=-1))  # ascending: 2v and 2v + 1 are adjacent
    return np.add.reduceat(counts, starts, axis=1)


def _odds_ratio(panel: Panel, rows: Aligned, a: Indicator, b: Indicator, counts: np.ndarray) -> dict:
    """The Mantel–Haenszel odds ratio of ``_cells``'s counts, its jackknife interval and its persons."""
    total = counts.sum(axis=0)
    log_or, observed, expected = mantel_haenszel(total)
    leave_out, _, _ = mantel_haenszel(total[None] - counts)
    persons = panel.persons
    return {  # not estimable (a group without the services): NaN, tested with p = 1
        "log_or": float(log_or),
        "lift": float(observed / expected) if expected > 0 else float("nan"),
        "n_a": rows.persons(a.name, None),
        "n_b": rows.persons(None, b.name),
        "n_both": rows.persons(a.name, b.name),
        "n_population": persons,
        **_positive(float(log_or), jackknife(float(log_or), leave_out, floor=_rgb_se(total))),
    }


def _rgb_se(cells: np.ndarray) -> float:
    """The Robins–Breslow–Greenland standard error of the Mantel–Haenszel log odds ratio over strata
    [s, (n00, n01, n10, n11)], as if every citizen-quarter were independent: a floor for the jackknife's.

    Where a link rests on few persons the jackknife over twenty groups often measures its spread too
    narrow: shuffled data with 27 persons behind a link gave |t| > 4 in 2 of 332 shuffles (about once in
    30,000 for a normal statistic). The model-based error holds there, and the jackknife's, larger where
    quarters of one person repeat, holds elsewhere."""
    n00, n01, n10, n11 = (cells[:, k].astype(float) for k in range(4))
    n = n00 + n01 + n10 + n11
    with np.errstate(divide="ignore", invalid="ignore"):
        used = n > 1
        p, q = ((n11 + n00) / n)[used], ((n10 + n01) / n)[used]
        r, s = (n11 * n00 / n)[used], (n10 * n01 / n)[used]
        sr, ss = r.sum(), s.sum()
        var = (
            (p * r).sum() / (2 * sr**2) + (p * s + q * r).sum() / (2 * sr * ss) + (q * s).sum() / (2 * ss**2)
        )
    return float(np.sqrt(var)) if np.isfinite(var) else 0.0


def _positive(log_or: float, t: dict) -> dict:
    """The jackknife result with a one-sided p: the hypothesis is a positive link (only those are reported),
    so a negative one, mostly structure, neither counts as a discovery nor loosens the correction."""
    if not np.isfinite(t["p"]):
        return t
    p = stats.t.sf(log_or / t["se"], JACKKNIFE_GROUPS - 1) if t["se"] > 0 else float(log_or <= 0)
    return t | {"p": float(p)}


def _dense(strata: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strata numbered 0..s-1 in order, and the values numbered (a lookup table: linear, where np.unique
    would sort)."""
    if not len(strata):
        return strata, np.zeros(1, dtype=np.int64)
    used = np.zeros(int(strata.max()) + 1, dtype=bool)
    used[strata] = True
    return (np.cumsum(used) - 1)[strata], np.flatnonzero(used)


def _id(h: Hypothesis | merit.Comparison) -> str:
    if isinstance(h, merit.Comparison):
        return h.finding_id
    return f"association:{h.first.name}:{h.second.name}" + (f":lag{h.lag}" if h.lag else "")


def _phrase(h: Hypothesis | merit.Comparison) -> str:
    """'hemtjänst och kontakt med kontaktcenter samma kvartal', as a reader sees another form of a finding."""
    if isinstance(h, merit.Comparison):
        return f"{h.indicator.label} under läsåret och {merit.LABEL}"
    when = "samma kvartal" if h.lag == 0 else f"{_quarters(h.lag)} senare"
    return f"{h.first.label} och {h.second.label} {when}"


def _finding(
    panel: Panel,
    h: Hypothesis,
    t: dict,
    q: float,
    margin: float,
    reported: bool,
    also: list[Hypothesis],
    reported_as: Hypothesis | None,  # the family's reported hypothesis, where this one holds too
) -> Finding:
    a, b = h.first, h.second
    odds = float(np.exp(t["log_or"])) if np.isfinite(t["log_or"]) else None
    lift = t["lift"]
    if h.lag == 0:
        title = f"{a.label.capitalize()} och {b.label} förekommer ofta samtidigt"
        description = (
            f"Personer med {a.label} har under samma kvartal {_times(odds)} oddset att också ha {b.label} "
            f"jämfört med personer i samma åldersgrupp, distrikt och kvartal utan {a.label}"
        )
    else:
        title = f"{a.label.capitalize()} följs ofta av {b.label} {_quarters(h.lag)} senare"
        description = (
            f"Personer med {a.label} ett kvartal har {_quarters(h.lag)} senare {_times(odds)} oddset att ha "
            f"{b.label} jämfört med personer i samma åldersgrupp och distrikt utan {a.label}, med samma "
            f"{b.label} det första kvartalet och samma {a.label} det senare"
        )
    together = "samtidig förekomst" if h.lag == 0 else "förekomst i den följden"
    description += f"; {together} är {_num(lift)} gånger den förväntade." if np.isfinite(lift) else "."
    if also:
        description += " Sambandet syns också som " + "; ".join(_phrase(o) for o in also) + "."
    return Finding(
        finding_id=_id(h),
        kind="association",
        title=title,
        description=description,
        forvaltning=forvaltning_or_total(None),
        dataset_a=a.source,
        dataset_b=b.source,
        measure="oddskvot (Mantel–Haenszel)",
        effect=odds,
        ci_low=float(np.exp(t["lo"])) if np.isfinite(t["lo"]) else None,
        ci_high=float(np.exp(t["hi"])) if np.isfinite(t["hi"]) else None,
        p_value=t["p"] if np.isfinite(t["p"]) else None,
        q_value=q,
        reported=reported,
        n_a=t["n_a"],
        n_b=t["n_b"],
        n_both=t["n_both"],
        n_population=t["n_population"],
        about_persons=True,
        detail=f"ingår i fyndet {_id(reported_as)}"
        if reported_as
        else (f"{together} {_num(lift)} × förväntad" if np.isfinite(lift) else None),
        method=method(margin),
        data_version=panel.data_version,
        lag_quarters=h.lag,
    )


def _merit_finding(
    panel: Panel,
    c: merit.Comparison,
    t: dict,
    q: float,
    margin: float,
    reported: bool,
    also: list[merit.Comparison],
    reported_as: merit.Comparison | None,
) -> Finding:
    """A difference in mean merit value as a finding. Its groups: pupils with the service in the school
    year (``n_a``, also ``n_both``: with the service and a merit value) and pupils without it (``n_b``),
    so publishing needs both to reach the threshold, or a small group's mean would follow from the
    published yearly mean."""
    a = c.indicator
    effect = t["effect"] if np.isfinite(t["effect"]) else None
    direction = "lägre" if (effect or 0) < 0 else "högre"
    description = (
        f"Elever som haft {a.label} under läsåret före sitt meritvärde i årskurs 9 har i genomsnitt "
        + (f"{_num(abs(effect))} meritpoäng {direction}" if effect is not None else "okänt")
        + f" meritvärde än elever samma läsår utan {a.label}."
    )
    if also:
        description += " Skillnaden syns också som " + "; ".join(_phrase(o) for o in also) + "."
    return Finding(
        finding_id=c.finding_id,
        kind="association",
        title=f"{a.label.capitalize()} under läsåret och {direction} {merit.LABEL}",
        description=description,
        forvaltning=forvaltning_or_total(None),
        dataset_a=a.source,
        dataset_b=f"{MERIT_UNIT}.{MERIT_DATASET}",
        measure="skillnad i medelvärde (meritpoäng)",
        effect=effect,
        ci_low=t["lo"] if np.isfinite(t["lo"]) else None,
        ci_high=t["hi"] if np.isfinite(t["hi"]) else None,
        p_value=t["p"] if np.isfinite(t["p"]) else None,
        q_value=q,
        reported=reported,
        n_a=t["n_a"],
        n_b=t["n_b"],
        n_both=t["n_a"],
        n_population=panel.persons,
        about_persons=True,
        detail=f"ingår i fyndet {_id(reported_as)}" if reported_as else None,
        method=method(margin),
        data_version=panel.data_version,
        lag_quarters=0,
    )


def _quarters(k: int) -> str:
    return "ett kvartal" if k == 1 else f"{k} kvartal"


def _times(odds: float | None) -> str:
    return "okänt" if odds is None else f"{_num(odds)} gånger"


def _num(x: float, digits: int = 1) -> str:
    return f"{x:.{digits}f}".replace(".", ",")
