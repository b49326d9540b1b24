"""Personal (HR): the payroll system's monthly figures per förvaltning and enhet (no person data).

Every enhet of the org tree (``vocabulary.ENHETER``) gets a staff in proportion to its share of the
budget (about one employee per 13 residents, at least ``MIN_STAFF``), which moves by leavers and
hires. Sick leave follows the Swedish municipal pattern: short spells peak in winter, long spells are
the same level everywhere (a structural difference would be found as a deviation of every care enhet);
July is the holiday month (fewer scheduled hours, more hourly-paid cover).
Personnel costs follow headcount and pay (a yearly rise in April) against a budget for the full staff;
long sick leave beyond the usual level costs substitutes. A few enheter deviate on purpose
(``DEVIATIONS``: Hemtjänst Norr's long sick leave, and with it its costs), and one staff unit is smaller
than the disclosure threshold (``TINY``) so that its figures must never be published.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.units import UNITS
from synthetic import vocabulary as voc
from synthetic.ground_truth import Pattern, enhet_deviation
from synthetic.population import Population

EMPLOYEES_PER_RESIDENT = 0.075
MIN_STAFF = 12
TINY = ("socialtjanst", "Socialförvaltningens stab", 4)  # below the publication threshold of 5
HOURS_PER_EMPLOYEE = 150.0  # scheduled hours a month at an average employment degree of about 90 %
MONTHLY_COST_PER_EMPLOYEE = 52_000.0  # pay about 36,000 kr plus social charges (PO), 2024 level
PAY_RISE = 0.03  # yearly, from April (lönerevision)
ANNUAL_TURNOVER = 0.10
BUDGETED_OVERTIME = 1.015
# The usual level of every enhet (% of scheduled or worked hours): the same everywhere, so that the
# discovery's comparison of peers finds the planted deviations and nothing else.
USUAL = {"sick_long_pct": 3.4, "overtime_pct": 1.6, "hourly_paid_pct": 3.5}
# Short sick leave (days 1-14) by calendar month, % of scheduled hours: a winter peak.
SICK_SHORT = np.array([3.4, 3.6, 3.0, 2.6, 2.3, 2.0, 1.2, 1.8, 2.5, 2.8, 3.0, 3.2])
# Planted deviations: (unit key, enhet) -> measure -> value used instead of the usual level.
DEVIATIONS: dict[tuple[str, str], dict[str, float]] = {
    ("vard_omsorg", "Hemtjänst Norr"): {"sick_long_pct": 9.0},
    ("vard_omsorg", "Särskilt boende"): {"hourly_paid_pct": 16.0},
}


def personnel(rng: np.random.Generator, pop: Population) -> tuple[pl.DataFrame, list[Pattern]]:
    """nyckeltal rows (_month, month and the contract's columns) per enhet and month, and the patterns."""
    period, months = pop.period, pop.period.months
    residents = int(pop.resident(0).sum())
    cal = np.array([period.calendar_month(m) for m in range(months)])
    years = np.array([period.year(m) for m in range(months)])
    pay_level = (1 + PAY_RISE) ** (years - years[0] + (cal >= 4) - 1).clip(min=0)
    frames = []
    for key, enheter in voc.ENHETER.items():
        for enhet, share in enheter:
            staff = _staff(residents, key, enhet, share)
            planted = DEVIATIONS.get((key, enhet), {})
            frames.append(_enhet_months(rng, UNITS[key].forvaltning, enhet, staff, planted, cal, pay_level))
    frame = pl.concat(frames).sort("_month", maintain_order=True)
    frame = frame.with_columns(
        month=pl.col("_month").replace_strict({m: period.label(m) for m in range(months)})
    )
    return frame, _patterns(frame)


def _staff(residents: int, key: str, enhet: str, share: float) -> int:
    if (key, enhet) == TINY[:2]:
        return TINY[2]
    size = residents * EMPLOYEES_PER_RESIDENT * voc.FORVALTNING_BUDGET_SHARE[key] * share
    return max(MIN_STAFF, round(size))


def _enhet_months(
    rng: np.random.Generator,
    forvaltning: str,
    enhet: str,
    staff: int,
    planted: dict[str, float],
    cal: np.ndarray,
    pay_level: np.ndarray,
) -> pl.DataFrame:
    """One enhet's months: headcount by leavers and hires around its staff, then hours, shares, costs."""
    n = len(cal)
    headcount, leavers = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    current = staff
    for m in range(n):
        leavers[m] = min(current, rng.poisson(current * ANNUAL_TURNOVER / 12))
        current -= leavers[m]
        current = max(current + rng.binomial(staff - current, 0.7), 1)  # vacancies mostly filled
        headcount[m] = current
    holiday = np.where(cal == 7, 0.55, np.where(np.isin(cal, (6, 8)), 0.85, 1.0))
    scheduled = np.round(headcount * HOURS_PER_EMPLOYEE * holiday * rng.normal(1, 0.02, n), 1)
    sick_short = SICK_SHORT[cal - 1] * rng.normal(1, 0.12, n)
    sick_long = planted.get("sick_long_pct", USUAL["sick_long_pct"]) * rng.normal(1, 0.1, n)
    absent = (sick_short + sick_long) / 100 + 0.08  # vacation, parental leave and other absence
    overtime = USUAL["overtime_pct"] * rng.normal(1, 0.15, n) * np.where(cal == 7, 1.5, 1.0)
    hourly = planted.get("hourly_paid_pct", USUAL["hourly_paid_pct"]) * np.where(cal == 7, 2.0, 1.0)
    hourly = hourly * rng.normal(1, 0.1, n)
    worked = np.round(scheduled * (1 - absent) * (1 + (overtime + hourly) / 100), 1)
    # The budget allows for the usual overtime; long sick leave beyond the usual costs substitutes.
    budget = np.round(staff * MONTHLY_COST_PER_EMPLOYEE * pay_level * BUDGETED_OVERTIME, -3)
    substitutes = np.clip(sick_long - USUAL["sick_long_pct"], 0, None) / 100
    cost = headcount * MONTHLY_COST_PER_EMPLOYEE * pay_level * (1 + overtime / 100) * (1 + substitutes)
    cost *= rng.normal(1, 0.01, n)
    return pl.DataFrame(
        {
            "_month": np.arange(n, dtype=np.int32),
            "forvaltning": np.full(n, forvaltning),
            "enhet": np.full(n, enhet),
            "headcount": headcount,
            "leavers": leavers,
            "scheduled_hours": scheduled,
            "sick_short_pct": _pct(sick_short),
            "sick_long_pct": _pct(sick_long),
            "worked_hours": worked,
            "overtime_pct": _pct(overtime),
            "hourly_paid_pct": _pct(hourly),
            "cost_sek": np.round(cost, 0),
            "cost_budget_sek": budget,
        }
    )


def _pct(values: np.ndarray) -> np.ndarray:
    return np.round(np.clip(values, 0, 100), 2)


def _patterns(frame: pl.DataFrame) -> list[Pattern]:
    """The planted deviations with their realised values (the small enhet is not a pattern: see TINY)."""
    out = []
    for (key, enhet), planted in DEVIATIONS.items():
        rows = frame.filter(pl.col("enhet") == enhet)
        realised = {
            "sick_long_pct": (rows["sick_long_pct"] * rows["scheduled_hours"]).sum()
            / rows["scheduled_hours"].sum(),
            "hourly_paid_pct": (rows["hourly_paid_pct"] * rows["worked_hours"]).sum()
            / rows["worked_hours"].sum(),
        }
        measure, value = next(iter(planted.items()))
        out.append(
            enhet_deviation(
                f"personnel_{measure}_{enhet.lower().replace(' ', '_')}",
                "personal.nyckeltal",
                UNITS[key].forvaltning,
                enhet,
                f"Enhet '{enhet}' ({UNITS[key].forvaltning}) stands out on {measure}.",
                measure=measure,
                planted=value,
                realised_whole_period=round(float(realised[measure]), 4),
            )
        )
    return out
