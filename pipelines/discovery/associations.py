"""Which services of different units are used together more than chance: adjusted odds ratios.

For every pair of indicators from two different units, over citizen-quarters: the Mantel–Haenszel
odds ratio across strata of age group x district x quarter x the other services of the two units
(home care and safety alarms go together inside vård och omsorg; without that stratum a safety alarm
would seem to drive contacts that home care drives). Citizen-quarters of one person are not
independent, so the interval is a delete-a-group jackknife over persons (20 groups, t with 19
degrees of freedom), not the textbook variance. Benjamini–Hochberg controls the false discovery
rate over every pair tested, and a finding is reported only with an odds ratio of at least
``MIN_ODDS_RATIO``: at 60,000 citizens a trivially small effect is significant too.

Only positive associations are reported. Negative ones are mostly structure (children do not get
economic aid, pupils are not 80), not discoveries.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import stats

from pipelines.discovery.findings import FDR, Finding, benjamini_hochberg, forvaltning_or_total
from pipelines.discovery.panel import DEFINITIONAL, JACKKNIFE_GROUPS, Indicator, Panel

MIN_ODDS_RATIO = 2.0
METHOD = (
    "Mantel–Haenszel-oddskvot över medborgarkvartal, stratifierad på åldersgrupp × distrikt × kvartal × "
    "övriga insatser i samma verksamheter; 95 % KI med jackknife över personer (20 grupper); "
    f"Benjamini–Hochberg (FDR {FDR:.0%}) över alla testade par; rapporteras vid oddskvot ≥ {MIN_ODDS_RATIO:g}."
)


def pairs(panel: Panel) -> list[tuple[Indicator, Indicator]]:
    """Every pair of shared indicators from two different units, except one record seen twice."""
    return [
        (a, b)
        for a, b in itertools.combinations(panel.indicators, 2)
        if a.unit != b.unit and frozenset({a.name, b.name}) not in DEFINITIONAL
    ]


def adjusters(panel: Panel, a: Indicator, b: Indicator) -> list[Indicator]:
    """The other datasets' indicators of the two units: co-use inside a unit is a confounder."""
    return [
        i for i in panel.indicators if i.unit in (a.unit, b.unit) and i.dataset not in (a.dataset, b.dataset)
    ]


def analyse(panel: Panel) -> list[Finding]:
    """Test every pair, correct over all of them, and say which are reported."""
    tested = [(a, b, test_pair(panel, a, b)) for a, b in pairs(panel)]
    q = benjamini_hochberg(np.array([t["p"] for _, _, t in tested]))
    return [_finding(panel, a, b, t, float(qv)) for (a, b, t), qv in zip(tested, q, strict=True)]


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


def test_pair(panel: Panel, a: Indicator, b: Indicator) -> dict:
    """Adjusted odds ratio of A and B with its jackknife interval (log scale), lift and group sizes."""
    fa, fb = panel.flag(a.name), panel.flag(b.name)
    strata = panel.base_strata()
    for adj in adjusters(panel, a, b):
        strata = strata * 2 + panel.flag(adj.name)
    _, strata = np.unique(strata, return_inverse=True)
    s = int(strata.max()) + 1
    cell = fa.astype(np.int64) * 2 + fb
    counts = np.bincount((panel.group * s + strata) * 4 + cell, minlength=JACKKNIFE_GROUPS * s * 4)
    counts = counts.reshape(JACKKNIFE_GROUPS, s, 4)
    total = counts.sum(axis=0)
    log_or, observed, expected = mantel_haenszel(total)
    leave_out, _, _ = mantel_haenszel(total[None] - counts)
    result = {
        "log_or": float(log_or),
        "lift": float(observed / expected) if expected > 0 else float("nan"),
        "n_a": _persons(panel, fa),
        "n_b": _persons(panel, fb),
        "n_both": _persons(panel, fa & fb),
        "n_population": panel.persons,
        "p": float("nan"),
        "lo": float("nan"),
        "hi": float("nan"),
    }
    if not (np.isfinite(log_or) and np.all(np.isfinite(leave_out))):
        return result  # not estimable (a group without the services): tested, p = 1
    g = JACKKNIFE_GROUPS
    se = float(np.sqrt((g - 1) / g * ((leave_out - leave_out.mean()) ** 2).sum()))
    t = stats.t.ppf(0.975, g - 1)
    result["lo"], result["hi"] = log_or - t * se, log_or + t * se
    result["p"] = float(2 * stats.t.sf(abs(log_or) / se, g - 1)) if se > 0 else 0.0
    return result


def _persons(panel: Panel, rows: np.ndarray) -> int:
    return int(len(np.unique(panel.person[rows])))


def _finding(panel: Panel, a: Indicator, b: Indicator, t: dict, q: float) -> Finding:
    odds = float(np.exp(t["log_or"])) if np.isfinite(t["log_or"]) else None
    reported = bool(q < FDR and odds is not None and odds >= MIN_ODDS_RATIO)
    lift = t["lift"]
    return Finding(
        finding_id=f"association:{a.name}:{b.name}",
        kind="association",
        title=f"{a.label.capitalize()} och {b.label} förekommer ofta samtidigt",
        description=(
            f"Personer med {a.label} har under samma kvartal {_times(odds)} oddset att också ha {b.label} "
            f"jämfört med personer i samma åldersgrupp, distrikt och kvartal utan {a.label}"
            + (f"; samtidig förekomst är {_num(lift)} gånger den förväntade." if np.isfinite(lift) else ".")
        ),
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
        detail=f"samtidig förekomst {_num(lift)} × förväntad" if np.isfinite(lift) else None,
        method=METHOD,
        data_version=panel.data_version,
    )


def _times(odds: float | None) -> str:
    return "okänt" if odds is None else f"{_num(odds)} gånger"


def _num(x: float) -> str:
    return f"{x:.1f}".replace(".", ",")
