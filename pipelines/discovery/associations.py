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
import logging
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from pipelines.discovery import merit
from pipelines.discovery.counting import Cells, Lag, Memo, Persons, estimate, quarter_sums
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


def analyse(panel: Panel, margin: float = MARGIN, memo: Memo | None = None) -> list[Finding]:
    """Test every hypothesis (odds ratios, and differences in year-9 merit value: ``merit``), correct over
    all of them together, and report the most specific that holds per family. ``memo``: the odds ratios'
    sums per quarter from the last run, to count only the quarters that changed since (``counting``); the
    sums of this run are added to it."""
    at = {lag: Lag(panel, lag, memo) for lag in (0, *LAGS)}
    tested: list[tuple[Hypothesis | merit.Comparison, dict]] = [
        (h, test_pair(panel, h.first, h.second, h.lag, (), at[h.lag])) for h in hypotheses(panel)
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
            (h, test_pair(panel, h.first, h.second, h.lag, third[h], at[h.lag]) if h in third else t)
            for h, t in tested
        ]
        q, alpha, holding = _holding(tested, margin)
    _log_counted(at)
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


def _log_counted(at: dict[int, Lag]) -> None:
    quarters = ", ".join(f"{int(a.fresh.sum())} of {len(a.fresh)} at lag {lag}" for lag, a in at.items())
    whole = sum(a.counted_whole for a in at.values())
    logging.getLogger(__name__).info(
        "the associations counted the rows of %s quarters; %d tests every quarter", quarters, whole
    )


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


def test_pair(
    panel: Panel,
    a: Indicator,
    b: Indicator,
    lag: int = 0,
    units: tuple[str, ...] = (),
    at: Lag | None = None,
) -> dict:
    """Adjusted odds ratio of A and B ``lag`` quarters later, its jackknife interval (log scale), lift, groups;
    stratified on the services of ``units`` too (third units linked to both). ``at``: what the tests at this
    lag read, when the caller tests many pairs (and the quarters' sums it keeps: ``counting.Lag``).

    A lagged link must hold under two stratifications (an intersection–union test: the weaker of the two
    is the result). Both take B in A's quarter (what A adds to B beyond where B already was). One also
    takes A in B's quarter: else a same-quarter link of two lasting services, or one carried by another
    service of A's unit, comes back as a lagged one. The other does not: where B ends A (a move to a
    nursing home ends the safety alarm), A in B's quarter is a common effect, and stratifying on it alone
    makes a link out of nothing.
    """
    at = at or Lag(panel, lag)
    adjusting = adjusters(panel, a, b, units)
    test = ":".join((a.name, b.name, str(lag), ",".join(units), ",".join(i.name for i in adjusting)))
    sums = at.sums(test, 2 if lag else 1, lambda cells: stratified_sums(cells, a, b, lag, adjusting))
    both = [_odds_ratio(panel, at.persons, a, b, by_quarter.sum(axis=0)) for by_quarter in sums]
    if not lag:
        return both[0]
    weaker = min(both, key=lambda t: t["lo"] if np.isfinite(t["lo"]) else -np.inf)
    p = [t["p"] for t in both]  # the link must hold under both: the larger p (NaN if either is)
    return weaker | {"p": float("nan") if np.isnan(p).any() else max(p)}


def stratified_sums(
    cells: Cells, a: Indicator, b: Indicator, lag: int, adjusting: list[Indicator]
) -> list[np.ndarray]:
    """A test's sums per quarter under each of its stratifications (``test_pair``): the base strata and the
    ``adjusting`` services; at a lag, B now too, without and with A later (the coarser counts added up
    from the finer, not from every row again)."""
    strata = cells.strata
    for adj in adjusting:
        strata = strata * 2 + cells.flag(adj.name)
    bits = len(adjusting)  # a stratum's quarter is its base stratum's, below the services' bits
    if not lag:
        counts, values = cells.counts(a.name, b.name, strata)
        return [quarter_sums(counts, (values >> bits) % cells.quarters, cells.quarters)]
    finer = (strata * 2 + cells.flag(b.name)) * 2 + cells.flag(a.name, later=True)
    counts, values = cells.counts(a.name, b.name, finer)
    quarter = (values >> (bits + 2)) % cells.quarters
    starts = np.flatnonzero(np.diff(values >> 1, prepend=-1))  # ascending: 2v and 2v + 1 are adjacent
    return [
        quarter_sums(np.add.reduceat(counts, starts, axis=1), quarter[starts], cells.quarters),
        quarter_sums(counts, quarter, cells.quarters),
    ]


def _odds_ratio(panel: Panel, persons: Persons, a: Indicator, b: Indicator, sums: np.ndarray) -> dict:
    """The Mantel–Haenszel odds ratio of a test's sums over every quarter, its jackknife interval (never
    narrower than the Robins–Breslow–Greenland error) and its persons.

    Where a link rests on few persons the jackknife over twenty groups often measures its spread too
    narrow: shuffled data with 27 persons behind a link gave |t| > 4 in 2 of 332 shuffles (about once in
    30,000 for a normal statistic). The model-based error holds there, and the jackknife's, larger where
    quarters of one person repeat, holds elsewhere."""
    e = estimate(sums)
    return {  # not estimable (a group without the services): NaN, tested with p = 1
        "log_or": e.log_or,
        "lift": e.observed / e.expected if e.expected > 0 else float("nan"),
        "n_a": persons.count(a.name, None),
        "n_b": persons.count(None, b.name),
        "n_both": persons.count(a.name, b.name),
        "n_population": panel.persons,
        **_positive(e.log_or, jackknife(e.log_or, e.leave_out, floor=e.rgb_se)),
    }


def _positive(log_or: float, t: dict) -> dict:
    """The jackknife result with a one-sided p: the hypothesis is a positive link (only those are reported),
    so a negative one, mostly structure, neither counts as a discovery nor loosens the correction."""
    if not np.isfinite(t["p"]):
        return t
    p = stats.t.sf(log_or / t["se"], JACKKNIFE_GROUPS - 1) if t["se"] > 0 else float(log_or <= 0)
    return t | {"p": float(p)}


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
