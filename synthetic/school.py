"""Skola (grundskola): enrolment each month, absence per term, year-9 merit value.

Grade follows the Swedish rule: förskoleklass (grade 0) starts in August of
the year a child turns 6, so grade = school-year start year - birth year - 6.
Pupils go to their district's school, some to an independent school.

Planted: pupils whose household received economic aid during a term are
absent much more that term (pattern `aid_household_school_absence`). A
per-pupil factor adds some persistence between terms, kept modest so that
the absence → investigation precedence stays one-directional.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.units import UNITS
from synthetic import vocabulary as voc
from synthetic.ground_truth import Pattern, realised
from synthetic.population import Population
from synthetic.social import Aid

INDEPENDENT_SHARE = 0.09
ABSENCE_MEAN_PCT = 5.5
ABSENCE_MEAN_PCT_AID = 13.0
ABSENCE_SHAPE = 1.8
UNEXCUSED_BETA = (2.0, 10.0)  # mean share 0.17
UNEXCUSED_BETA_AID = (3.0, 6.0)  # mean share 0.33
PUPIL_FACTOR_SIGMA = 0.3


@dataclass
class School:
    enrolment: pl.DataFrame  # _month, _person, school, grade
    absence: (
        pl.DataFrame
    )  # _month, _person, term, absence_pct, unexcused_absence_pct (+ _aid_exposed, _term_end)
    merit: pl.DataFrame  # _month, _person, school_year, merit_value


def _grades(pop: Population, m: int) -> np.ndarray:
    """Grade at the end of month m (may be outside 0..9), for every person."""
    period = pop.period
    start_year = period.year(m) if period.calendar_month(m) >= 8 else period.year(m) - 1
    birth_year = pop.birth.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    return start_year - birth_year - 6


def _term(period_month: int, calendar_month: int, year: int) -> tuple[str, int, int]:
    """(term label, first month, last month) of the term that ended before a delivery month."""
    if calendar_month == 1:
        return f"HT{year - 1}", period_month - 5, period_month - 1
    if calendar_month == 7:
        return f"VT{year}", period_month - 6, period_month - 1
    raise NotImplementedError(f"absence delivered in month {calendar_month}: no term ends before it")


def school(rng: np.random.Generator, pop: Population, aid: Aid) -> School:
    spec = UNITS["skola"]
    period, M = pop.period, pop.period.months
    independent = rng.random(pop.persons) < INDEPENDENT_SHARE
    independent_school = rng.integers(0, len(voc.INDEPENDENT_SCHOOLS), pop.persons)
    pupil_factor = rng.lognormal(-(PUPIL_FACTOR_SIGMA**2) / 2, PUPIL_FACTOR_SIGMA, pop.persons)
    district_schools = np.asarray(voc.DISTRICT_SCHOOLS)
    independent_schools = np.asarray(voc.INDEPENDENT_SCHOOLS)

    def pupils(m: int) -> tuple[np.ndarray, np.ndarray]:
        ref = max(m, 0)  # before the period: the residents at its start
        grade = _grades(pop, m)
        idx = np.flatnonzero(pop.resident(ref) & (grade >= 0) & (grade <= 9))
        return idx, grade[idx]

    enrol = []
    for m in range(M):
        idx, grade = pupils(m)
        name = np.where(
            independent[idx],
            independent_schools[independent_school[idx]],
            district_schools[pop.district_m[m][idx]],
        )
        enrol.append(
            pl.DataFrame(
                {"_month": np.full(len(idx), m, np.int32), "_person": idx, "school": name, "grade": grade}
            )
        )

    absence_months = spec.dataset("franvaro").delivered_in_months
    merit_months = spec.dataset("meritvarde").delivered_in_months
    absence, merit = [], []
    for m in range(M):
        cal = period.calendar_month(m)
        if cal not in absence_months:
            continue
        label, first, last = _term(m, cal, period.year(m))
        idx, grade = pupils(last)
        households = pop.household_m[max(last, 0)][idx]
        exposed = aid.during(households, first, last)
        mean = np.where(exposed, ABSENCE_MEAN_PCT_AID, ABSENCE_MEAN_PCT) * pupil_factor[idx]
        pct = np.minimum(np.round(rng.gamma(ABSENCE_SHAPE, mean / ABSENCE_SHAPE), 1), 100.0)
        share = np.where(
            exposed, rng.beta(*UNEXCUSED_BETA_AID, len(idx)), rng.beta(*UNEXCUSED_BETA, len(idx))
        )
        absence.append(
            pl.DataFrame(
                {
                    "_month": np.full(len(idx), m, np.int32),
                    "_person": idx,
                    "term": np.full(len(idx), label),
                    "absence_pct": pct,
                    "unexcused_absence_pct": np.round(pct * share, 1),
                    "_aid_exposed": exposed,
                    "_term_end": np.full(len(idx), last, np.int64),
                }
            )
        )
        if cal in merit_months and label.startswith("VT"):
            nine = grade == 9
            year = period.year(m)
            value = rng.normal(232, 42, int(nine.sum())) + MERIT_POINTS_PER_ABSENCE_PCT * (
                pct[nine] - ABSENCE_MEAN_PCT
            )
            merit.append(
                pl.DataFrame(
                    {
                        "_month": np.full(int(nine.sum()), m, np.int32),
                        "_person": idx[nine],
                        "school_year": np.full(int(nine.sum()), f"{year - 1}/{year % 100:02d}"),
                        "merit_value": np.clip(np.round(value / 2.5) * 2.5, 0, 340),
                    }
                )
            )
    return School(enrolment=pl.concat(enrol), absence=pl.concat(absence), merit=pl.concat(merit))


MERIT_POINTS_PER_ABSENCE_PCT = -2.0  # year-9 merit value per percentage point of spring-term absence


def patterns(absence: pl.DataFrame, merit: pl.DataFrame) -> list[Pattern]:
    """Ground truth for economic aid in the household → school absence → year-9 merit value."""
    measured = absence.group_by("_aid_exposed").agg(
        pl.col("absence_pct").mean(),
        (pl.col("unexcused_absence_pct").sum() / pl.col("absence_pct").sum()).alias("unexcused_share"),
        pl.len(),
    )
    by = {row["_aid_exposed"]: row for row in measured.iter_rows(named=True)}
    exposed, other = by.get(True, {}), by.get(False, {})
    return [
        Pattern(
            id="aid_household_school_absence",
            kind="association",
            units=("socialtjanst", "skola", "folkbokforing"),
            datasets=("socialtjanst.ekonomiskt_bistand", "skola.franvaro", "folkbokforing.aviseringar"),
            description=(
                "Pupils living in a household (folkbokföring hushall_id) where an adult received "
                "ekonomiskt bistånd in any month of the term have markedly higher absence that term "
                "(total and unexcused)."
            ),
            effect={
                "planted_mean_absence_pct_exposed": ABSENCE_MEAN_PCT_AID,
                "planted_mean_absence_pct_not_exposed": ABSENCE_MEAN_PCT,
                "planted_unexcused_share_exposed": _beta_mean(UNEXCUSED_BETA_AID),
                "planted_unexcused_share_not_exposed": _beta_mean(UNEXCUSED_BETA),
                "realised_mean_absence_pct_exposed": realised(exposed.get("absence_pct"), 2),
                "realised_mean_absence_pct_not_exposed": realised(other.get("absence_pct"), 2),
                "realised_unexcused_share_exposed": realised(exposed.get("unexcused_share"), 3),
                "realised_unexcused_share_not_exposed": realised(other.get("unexcused_share"), 3),
                "realised_pupil_terms_exposed": exposed.get("len", 0),
                "realised_pupil_terms_not_exposed": other.get("len", 0),
            },
        ),
        *_merit_patterns(absence, merit),
    ]


def _merit_patterns(absence: pl.DataFrame, merit: pl.DataFrame) -> list[Pattern]:
    """The merit value falls with spring-term absence, so with high absence and (through it) with aid in
    the household: both are links discovery may find, declared so a finding of them counts as planted."""
    spring = merit.join(absence, on=["_month", "_person"], how="inner")

    def means(by: pl.Expr) -> dict[bool, float | None]:
        rows = spring.group_by(by.alias("_by")).agg(pl.col("merit_value").mean())
        found = {r["_by"]: r["merit_value"] for r in rows.iter_rows(named=True)}
        return {k: realised(found.get(k), 1) for k in (True, False)}

    high, aid = means(pl.col("absence_pct") >= 15), means(pl.col("_aid_exposed"))
    slope = {"planted_merit_points_per_absence_pct": MERIT_POINTS_PER_ABSENCE_PCT}
    return [
        Pattern(
            id="merit_falls_with_absence",
            kind="association",
            units=("skola",),
            datasets=("skola.franvaro", "skola.meritvarde"),
            description="Year-9 merit value falls with the spring term's absence: pupils with high absence "
            "(15 % or more) have a markedly lower merit value.",
            effect={
                **slope,
                "realised_mean_merit_high_absence": high[True],
                "realised_mean_merit_other": high[False],
            },
        ),
        Pattern(
            id="aid_household_merit",
            kind="association",
            units=("socialtjanst", "skola", "folkbokforing"),
            datasets=("socialtjanst.ekonomiskt_bistand", "skola.meritvarde", "folkbokforing.aviseringar"),
            description="Through absence, pupils whose household received economic aid in the spring term "
            "have a lower year-9 merit value (about 2 x 7.5 points on average).",
            effect={
                **slope,
                "realised_mean_merit_aid_exposed": aid[True],
                "realised_mean_merit_not_exposed": aid[False],
            },
        ),
    ]


def _beta_mean(ab: tuple[float, float]) -> float:
    return round(ab[0] / (ab[0] + ab[1]), 3)
