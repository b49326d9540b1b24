"""Which of two units' services tends to come first: sequence symmetry analysis over the panel.

Per person, the onset of a service is the first quarter it is seen. Only incident onsets count: the
person must have been in the panel for ``WASHOUT`` quarters without it, otherwise a service that had
been going on for years would look as if it started in the first quarter observed. Among persons
whose two onsets lie within ``WINDOW`` quarters of each other, the crude sequence ratio is
(A first) / (B first). Trends in how often each service starts would tilt that ratio even without
any link, so it is divided by the null-effect sequence ratio computed from the onsets' calendar
distribution (Hallas 1996; Tsiropoulos et al. 2009). The test is a binomial test of A-first
against the null-effect share; Benjamini–Hochberg over every pair tested; reported when the
adjusted ratio is at least ``MIN_RATIO`` either way. The lag distribution is given in quarters.

A sequence can also come from a third service that drives both: a safety alarm brings paper forms
soon and a nursing home later, so paper forms "precede" nursing homes. The sequence analysis cannot
see that (the confounder changes over time), so an order is reported only for a pair that is linked
after adjustment: the association analysis's odds ratio (its findings are read, not recomputed),
adjusted for age group, district, quarter and the units' other services, has a 95 % interval above 1,
in the same quarter or with the first service one or two quarters before the second (a purely lagged
link counts). Where the association analysis reports a finding on the pair, the order is part of that
link, not a second discovery: it is kept, unreported, as part of that finding.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from pipelines.disclosure import DEFAULT_THRESHOLD
from pipelines.discovery.associations import LAGS, families_of, pairs
from pipelines.discovery.findings import (
    FDR,
    PART_OF_ANOTHER,
    Finding,
    benjamini_hochberg,
    forvaltning_or_total,
)
from pipelines.discovery.panel import NEVER, Indicator, Panel, family

WASHOUT = 2  # quarters in the panel without the service before an onset counts
WINDOW = 4  # quarters: onsets further apart are not a sequence
MIN_RATIO = 2.0
METHOD = (
    f"Sekvenssymmetrianalys: första kvartal med insatsen per person (minst {WASHOUT} kvartal utan den "
    f"dessförinnan), par inom {WINDOW} kvartal; sekvenskvot justerad med nolleffektkvoten från "
    "insatsernas starttrender; binomialtest, Benjamini–Hochberg över alla testade par; rapporteras "
    f"vid justerad kvot ≥ {MIN_RATIO:g} åt något håll och om paret hänger ihop efter justering "
    "(Mantel–Haenszel-oddskvotens 95 % KI över 1, samma kvartal eller i den funna ordningen)."
)


def incident(panel: Panel, onset: np.ndarray, since: int) -> np.ndarray:
    """Per person, the quarter of an incident onset of a service (``onset``: its ``Panel.first_quarters``), or -1.

    Incident: the person was in the panel, while the service was being recorded (from quarter
    ``since``), for ``WASHOUT`` quarters without it. Retention cuts some datasets short (contacts
    are kept two years): before that, "no contact" means "not recorded", not "none".
    """
    seen = panel.first_quarter
    return np.where((onset != NEVER) & (onset >= np.maximum(seen, since) + WASHOUT), onset, -1)


def recorded_from(panel: Panel, name: str) -> int:
    """The first quarter in which the service occurs at all: when its dataset starts being recorded."""
    quarters = panel.quarter[panel.flag(name)]
    return int(quarters.min()) if len(quarters) else len(panel.quarters)


def analyse(panel: Panel, associations: list[Finding], threshold: int = DEFAULT_THRESHOLD) -> list[Finding]:
    """Test every pair (``associations.pairs``) for an asymmetric order of onsets; correct over all pairs.
    ``associations``: the association analysis's findings on the same panel."""
    return report(panel, orders(panel), associations, threshold)


Orders = list[tuple[Indicator, Indicator, dict]]  # per pair, its order of onsets tested


def orders(panel: Panel) -> Orders:
    """Every pair's order of onsets: what precedence computes, and needs nothing of the associations, so
    it can be computed beside them."""
    start = {i.name: recorded_from(panel, i.name) for i in panel.indicators}
    first = {i.name: panel.first_quarters(panel.flag(i.name)) for i in panel.indicators}
    tested = []
    for a, b in pairs(panel):
        since = max(start[a.name], start[b.name])  # both recorded: an onset of either could be seen
        oa, ob = incident(panel, first[a.name], since), incident(panel, first[b.name], since)
        tested.append((a, b, _test(oa, ob, len(panel.quarters))))
    return tested


def report(
    panel: Panel, tested: Orders, associations: list[Finding], threshold: int = DEFAULT_THRESHOLD
) -> list[Finding]:
    """The findings of ``orders``'s pairs, corrected over all of them; an order is reported only for a pair
    the associations link."""
    q = benjamini_hochberg(np.array([t["p"] for _, _, t in tested]))
    bounds = {f.finding_id: f.ci_low for f in associations}
    reported = {
        pair: f
        for pair, f in zip(families_of([f.finding_id for f in associations]), associations, strict=True)
        if f.reported
    }
    return [
        _finding(
            panel,
            a,
            b,
            t | {"linked": linked(bounds, a, b, t, float(qv))},
            float(qv),
            threshold,
            reported.get(frozenset({family(a.name), family(b.name)})),
        )
        for (a, b, t), qv in zip(tested, q, strict=True)
    ]


def linked(bounds: dict[str, float | None], a: Indicator, b: Indicator, t: dict, q: float) -> bool:
    """Whether the two services go together after adjustment (an association's 95 % interval above 1,
    ``bounds`` by finding id), at once or in the order found (asked only where an order was found)."""
    if not (q < FDR and np.isfinite(t["asr"])):
        return False
    first, second = (a, b) if t["asr"] >= 1 else (b, a)
    ids = [
        f"association:{a.name}:{b.name}",
        *(f"association:{first.name}:{second.name}:lag{k}" for k in LAGS),
    ]
    return any((bounds.get(i) or 0.0) > 1 for i in ids)


def null_effect_ratio(a_onsets: np.ndarray, b_onsets: np.ndarray, quarters: int) -> float:
    """Expected (A first)/(B first) if the two onsets were independent, given each one's calendar trend."""
    a = np.bincount(a_onsets, minlength=quarters).astype(float)
    b = np.bincount(b_onsets, minlength=quarters).astype(float)
    after = sum(a[t] * b[t + 1 : t + WINDOW + 1].sum() for t in range(quarters))
    before = sum(a[t] * b[max(t - WINDOW, 0) : t].sum() for t in range(quarters))
    return after / before if before > 0 else float("nan")


def _test(oa: np.ndarray, ob: np.ndarray, quarters: int) -> dict:
    both = (oa >= 0) & (ob >= 0)
    lag = ob[both] - oa[both]
    close = np.abs(lag) <= WINDOW
    lag = lag[close]
    a_first, b_first = int((lag > 0).sum()), int((lag < 0).sum())
    nsr = null_effect_ratio(oa[oa >= 0], ob[ob >= 0], quarters)  # each service's own start trend
    out = {
        "a_first": a_first,
        "b_first": b_first,
        "same": int((lag == 0).sum()),
        "lags": lag,
        "n_a": int((oa >= 0).sum()),
        "n_b": int((ob >= 0).sum()),
        "nsr": nsr,
        "asr": float("nan"),
        "lo": float("nan"),
        "hi": float("nan"),
        "p": float("nan"),
    }
    n = a_first + b_first
    if n == 0 or not np.isfinite(nsr) or nsr <= 0 or a_first == 0 or b_first == 0:
        return out
    p0 = nsr / (1 + nsr)
    test = stats.binomtest(a_first, n, p0)
    ci = test.proportion_ci(method="exact")
    out["asr"] = a_first / b_first / nsr
    out["lo"] = ci.low / (1 - ci.low) / nsr
    out["hi"] = ci.high / (1 - ci.high) / nsr if ci.high < 1 else float("inf")
    out["p"] = float(test.pvalue)
    return out


def _finding(
    panel: Panel,
    a: Indicator,
    b: Indicator,
    t: dict,
    q: float,
    threshold: int,
    association: Finding | None,  # the association finding reported on the pair, if one is
) -> Finding:
    asr, lo, hi, lags = t["asr"], t["lo"], t["hi"], t["lags"]
    first, second = (a, b) if not np.isfinite(asr) or asr >= 1 else (b, a)
    if np.isfinite(asr) and asr < 1:  # state it the way round it goes: the first service first
        asr, lo, hi, lags = (
            1 / asr,
            1 / hi if hi > 0 else float("inf"),
            1 / lo if lo > 0 else float("inf"),
            -lags,
        )
    holds = bool(q < FDR and np.isfinite(asr) and asr >= MIN_RATIO and t["linked"])
    ordered = lags[lags > 0]
    return Finding(
        finding_id=f"precedence:{first.name}:{second.name}",
        kind="precedence",
        title=f"{first.label.capitalize()} kommer ofta före {second.label}",
        description=(
            f"Bland personer som fått både {first.label} och {second.label} inom {WINDOW} kvartal kom "
            f"{first.label} först {_num(asr)} gånger så ofta som väntat utifrån hur ofta insatserna startar; "
            f"median {_median(ordered)} kvartal emellan."
            + (f" Ordningen ingår i fyndet {association.finding_id}." if holds and association else "")
        ),
        forvaltning=forvaltning_or_total(None),
        dataset_a=first.source,
        dataset_b=second.source,
        measure="justerad sekvenskvot",
        effect=float(asr) if np.isfinite(asr) else None,
        ci_low=float(lo) if np.isfinite(lo) else None,
        ci_high=float(hi) if np.isfinite(hi) else None,
        p_value=t["p"] if np.isfinite(t["p"]) else None,
        q_value=q,
        reported=holds and association is None,
        n_a=t["n_a"] if first is a else t["n_b"],
        n_b=t["n_b"] if first is a else t["n_a"],
        n_both=int(len(ordered)),
        n_population=panel.persons,
        about_persons=True,
        detail=lag_distribution(lag_counts(ordered), threshold),
        method=METHOD,
        data_version=panel.data_version,
        lag_counts=",".join(str(c) for c in lag_counts(ordered)),
        status=PART_OF_ANOTHER if holds and association else None,
    )


def lag_counts(lags: np.ndarray) -> list[int]:
    """Persons per lag of 1..WINDOW quarters."""
    return [int((lags == k).sum()) for k in range(1, WINDOW + 1)]


def lag_distribution(counts: list[int], threshold: int) -> str:
    """'1 kvartal: 55 %, 2 kvartal: 30 %, ...' with small lags withheld.

    A lag with fewer than ``threshold`` persons (zero included) is withheld; since the shares add up
    to the published total, a lone withheld lag takes the smallest other one with it. The publish
    step renders it again with its own threshold from the counts kept in the zone.
    """
    total = sum(counts)
    if total == 0:
        return "inga sekvenser"
    n = np.asarray(counts)
    hidden = n < threshold
    if hidden.sum() == 1:
        hidden[np.argmin(np.where(hidden, np.iinfo(np.int64).max, n))] = True
    parts = [
        f"{k} kvartal: " + ("under tröskeln" if hidden[k - 1] else f"{100 * c / total:.0f} %")
        for k, c in enumerate(counts, start=1)
    ]
    return "Tid till nästa insats: " + ", ".join(parts)


def _median(lags: np.ndarray) -> str:
    return _num(float(np.median(lags))) if len(lags) else "okänt"


def _num(x: float) -> str:
    return f"{x:.1f}".replace(".", ",")
