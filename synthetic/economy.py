"""Ekonomi: budget, outcome and year-end forecast per förvaltning, enhet and month (no person data).

The municipality's net cost (about 68,000 SEK per resident and year, rising
3 % a year) is split over förvaltningar and enheter. Outcomes follow budget
with a few percent noise, except for a few enheter that clearly deviate
(planted `deviation` entries in the manifest). The forecast (prognos) is the
annual budget plus the year-to-date deviation extrapolated to the full year.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.units import UNITS
from synthetic import vocabulary as voc
from synthetic.ground_truth import Pattern, enhet_deviation
from synthetic.population import Population

COST_PER_RESIDENT_YEAR = 68_000
COST_GROWTH_PER_YEAR = 0.03
MONTH_PROFILE = np.array([1.0, 1.0, 1.02, 1.0, 1.0, 1.02, 0.8, 0.95, 1.02, 1.02, 1.02, 1.15])
NOISE = 0.035
# Enheter that deviate: (unit key, enhet) -> (deviation at the start, at the end of the period).
DEVIATIONS: dict[tuple[str, str], tuple[float, float]] = {
    ("vard_omsorg", "Hemtjänst Norr"): (0.15, 0.15),
    ("socialtjanst", "Försörjningsstöd"): (0.0, 0.22),
    ("ekonomi", "IT-enheten"): (-0.12, -0.12),
}


def outcomes(rng: np.random.Generator, pop: Population) -> tuple[pl.DataFrame, list[Pattern]]:
    """utfall rows (_month, month, forvaltning, enhet, budget_sek, outcome_sek, forecast_sek) and deviations."""
    period, M = pop.period, pop.period.months
    profile = MONTH_PROFILE / MONTH_PROFILE.mean()
    residents = int(pop.resident(0).sum())
    # Simulate from the January of the first year so that year-to-date figures are complete.
    lead = period.calendar_month(0) - 1
    months = np.arange(-lead, M)
    cal = (period.first + months).astype(int) % 12
    year_index = (period.first + months).astype("datetime64[Y]").astype(int) - (
        period.first.astype("datetime64[Y]").astype(int)
    )
    rows = []
    for key, enheter in voc.ENHETER.items():
        forvaltning = UNITS[key].forvaltning
        for enhet, share in enheter:
            annual = COST_PER_RESIDENT_YEAR * residents * voc.FORVALTNING_BUDGET_SHARE[key] * share
            annual = np.round(annual * (1 + COST_GROWTH_PER_YEAR) ** year_index, -3)
            budget = np.round(annual / 12 * profile[cal], -2)
            lo, hi = DEVIATIONS.get((key, enhet), (0.0, 0.0))
            deviation = lo + (hi - lo) * np.clip(months / max(M - 1, 1), 0, 1)
            outcome = np.round(budget * (1 + deviation) * (1 + rng.normal(0, NOISE, len(months))), 2)
            # Year-to-date deviation extrapolated to the year.
            forecast = np.zeros(len(months))
            for y in np.unique(year_index):
                sel = np.flatnonzero(year_index == y)
                ytd_dev = np.cumsum(outcome[sel] - budget[sel])
                forecast[sel] = np.round(annual[sel] + ytd_dev * 12 / (cal[sel] + 1), -3)
            rows.append(
                pl.DataFrame(
                    {
                        "_month": months.astype(np.int32),
                        "forvaltning": np.full(len(months), forvaltning),
                        "enhet": np.full(len(months), enhet),
                        "budget_sek": budget.astype(float),
                        "outcome_sek": outcome,
                        "forecast_sek": forecast,
                    }
                )
            )
    frame = (
        pl.concat(rows)
        .filter(pl.col("_month") >= 0)
        .with_columns(month=pl.col("_month").replace_strict({m: period.label(m) for m in range(M)}))
        .sort("_month", maintain_order=True)
    )
    totals = frame.group_by("forvaltning", "enhet", maintain_order=True).agg(
        (pl.col("outcome_sek").sum() / pl.col("budget_sek").sum() - 1).alias("deviation")
    )
    realised = {(f, e): d for f, e, d in totals.iter_rows()}
    patterns = [
        enhet_deviation(
            f"budget_deviation_{enhet.lower().replace(' ', '_').replace('-', '_')}",
            "ekonomi.utfall",
            UNITS[key].forvaltning,
            enhet,
            f"Enhet '{enhet}' ({UNITS[key].forvaltning}) "
            + ("overspends" if hi > 0 else "underspends")
            + " its budget"
            + (" increasingly over the period." if lo != hi else " throughout the period."),
            planted_deviation_start=lo,
            planted_deviation_end=hi,
            realised_deviation_whole_period=round(realised[(UNITS[key].forvaltning, enhet)], 4),
        )
        for (key, enhet), (lo, hi) in DEVIATIONS.items()
    ]
    return frame, patterns
