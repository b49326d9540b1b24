"""Socialtjänst: economic aid per household and month, and child investigations.

Economic aid is decided per household, so it is simulated per household (spells
of several months) and paid to one adult applicant. Which households need aid
depends on household type and district. The aid timeline starts a year before
the period, so school terms that ended before the first delivery also have a
defined exposure.

Child investigations have a low base rate for every child, plus the planted
precedence: a term with high school absence is followed, one to four months
later, by an investigation much more often than chance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.units import UNITS
from synthetic import vocabulary as voc
from synthetic.ground_truth import Pattern, realised
from synthetic.population import Population

AID_LEAD = 12  # months of aid history simulated before the period
AID_SELECTION = 0.075  # calibrated: about 4 % of households have aid in a given month
SPELL_MEAN_MONTHS = 9
SECOND_SPELL = 0.35
# Relative need by household type: single, couple, single parent, couple with children.
TYPE_FACTOR = np.array([2.0, 0.6, 4.0, 1.0])
HOUSEHOLD_TYPES = ("Ensamstående", "Sammanboende", "Ensamstående med barn", "Sammanboende med barn")

INVESTIGATION_BASE_MONTHLY = 0.0012  # per child 0-17
HIGH_ABSENCE_PCT = 15.0
INVESTIGATION_AFTER_HIGH_ABSENCE = 0.20
INVESTIGATION_LAG_MONTHS = (1, 2, 3, 4)
INVESTIGATION_LAG_P = (0.3, 0.3, 0.2, 0.2)
REASONS = ("Anmälan", "Ansökan", "Övrigt")


@dataclass
class Aid:
    """Household aid timeline and the delivered rows."""

    months: np.ndarray  # (households, AID_LEAD + months) bool; column AID_LEAD + m is month m
    frame: pl.DataFrame  # ekonomiskt_bistand: _month, _person, month, amount_sek, household_type

    def during(self, households: np.ndarray, first: int, last: int) -> np.ndarray:
        """Whether each household had aid in any month first..last (period months, may be negative)."""
        lo, hi = max(first + AID_LEAD, 0), last + AID_LEAD + 1
        return self.months[households, lo:hi].any(axis=1)


def _check_allowed() -> None:
    allowed = {c.name: c.allowed for c in UNITS["socialtjanst"].dataset("ekonomiskt_bistand").columns}
    assert set(HOUSEHOLD_TYPES) <= set(allowed["household_type"] or ()), "household types not in spec"
    allowed = {c.name: c.allowed for c in UNITS["socialtjanst"].dataset("barnutredningar").columns}
    assert set(REASONS) <= set(allowed["reason"] or ()), "reasons not in spec"


def _household_type(adults: np.ndarray, children: np.ndarray) -> np.ndarray:
    """Index into HOUSEHOLD_TYPES (and TYPE_FACTOR)."""
    return (adults >= 2).astype(np.int64) + 2 * (children > 0)


def economic_aid(rng: np.random.Generator, pop: Population) -> Aid:
    """Aid spells per household and one row per applicant and month with aid."""
    _check_allowed()
    period, H, M = pop.period, pop.households, pop.period.months
    # Each household's first month, type and district then (members aged 21+ count as adults).
    first = np.full(H, -1)
    kind = np.zeros(H, dtype=np.int64)
    district = np.zeros(H, dtype=np.int64)
    eligible = np.zeros(H, dtype=bool)
    for m in range(M):
        size = pop.household_size(m)
        new = (first < 0) & (size > 0)
        if not new.any():
            continue
        first[new] = m
        adults, working = (
            pop.household_counts(m, 21),
            pop.household_counts(m, 18) - pop.household_counts(m, 65),
        )
        kind[new] = _household_type(adults, size - adults)[new]
        res = pop.resident(m)
        district_now = np.zeros(H, dtype=np.int64)
        district_now[pop.household_m[m][res]] = pop.district_m[m][res]
        district[new] = district_now[new]
        eligible[new] = working[new] > 0

    weight = TYPE_FACTOR[kind] * np.asarray(voc.DISTRICT_AID_FACTOR)[district] * eligible
    span = np.where(first == 0, AID_LEAD + M, M - first)  # months the household can have aid
    covered = SPELL_MEAN_MONTHS * (1 + SECOND_SPELL)
    p = np.minimum(0.9, AID_SELECTION * span / covered * weight / weight[eligible].mean())
    chosen = np.flatnonzero(rng.random(H) < p)

    lo = np.where(first[chosen] == 0, 0, first[chosen] + AID_LEAD)
    start1 = lo + np.floor(rng.random(len(chosen)) * (AID_LEAD + M - lo)).astype(np.int64)
    end1 = start1 + rng.geometric(1 / SPELL_MEAN_MONTHS, len(chosen))
    start2 = end1 + rng.geometric(1 / 6, len(chosen))
    end2 = np.where(
        rng.random(len(chosen)) < SECOND_SPELL,
        start2 + rng.geometric(1 / SPELL_MEAN_MONTHS, len(chosen)),
        start2,
    )
    width = AID_LEAD + M
    diff = np.zeros((H, width + 1), dtype=np.int64)
    for s, e in ((start1, end1), (start2, end2)):
        np.add.at(diff, (chosen, np.minimum(s, width)), 1)
        np.add.at(diff, (chosen, np.minimum(e, width)), -1)
    months = np.cumsum(diff, axis=1)[:, :width] > 0

    # Amount: norm for the household plus housing, reduced by other income; steady within a household.
    housing = rng.uniform(4_000, 8_500, H)
    income_share = rng.uniform(0.0, 0.6, H)
    frames = []
    for m in range(M):
        hh = pop.household_m[m]
        age = pop.age_end_of_month(m)
        cand = np.flatnonzero((hh >= 0) & (age >= 18) & (age <= 64) & months[hh, AID_LEAD + m])
        if len(cand) == 0:
            continue
        cand = cand[np.lexsort((-age[cand], hh[cand]))]  # per household, oldest working-age member first
        head = cand[np.r_[True, hh[cand][1:] != hh[cand][:-1]]]
        households = hh[head]
        adults_all = pop.household_counts(m, 21)
        adults = np.maximum(adults_all[households], 1)
        children = np.maximum(pop.household_size(m)[households] - adults, 0)
        norm = np.where(adults >= 2, 11_000, 6_500) + 3_200 * children
        amount = (
            (norm + housing[households]) * (1 - income_share[households]) * rng.uniform(0.9, 1.1, len(head))
        )
        frames.append(
            pl.DataFrame(
                {
                    "_month": np.full(len(head), m, dtype=np.int32),
                    "_person": head.astype(np.int64),
                    "month": np.full(len(head), period.label(m)),
                    "amount_sek": np.minimum(np.round(amount), 100_000.0),
                    "household_type": np.asarray(HOUSEHOLD_TYPES)[_household_type(adults, children)],
                }
            )
        )
    return Aid(months=months, frame=pl.concat(frames))


def child_investigations(rng: np.random.Generator, pop: Population, absence: pl.DataFrame) -> pl.DataFrame:
    """Investigations opened per month: base rate for all children plus those following high absence.

    `absence` has one row per pupil and term: _person, _term_end (period month,
    may be negative), absence_pct.
    """
    _check_allowed()
    period, M = pop.period, pop.period.months
    # Planted: high absence in a term, then an investigation 1-4 months after the term ended.
    high = absence.filter(pl.col("absence_pct") >= HIGH_ABSENCE_PCT)
    follow = rng.random(high.height) < INVESTIGATION_AFTER_HIGH_ABSENCE
    lag = rng.choice(INVESTIGATION_LAG_MONTHS, size=high.height, p=INVESTIGATION_LAG_P)
    planted_person = high["_person"].to_numpy()[follow]
    planted_month = (high["_term_end"].to_numpy() + lag)[follow]
    parts_p, parts_m, parts_planted = [planted_person], [planted_month], [np.ones(len(planted_person), bool)]
    for m in range(M):
        age = pop.age_end_of_month(m)
        kids = np.flatnonzero(pop.resident(m) & (age <= 17))
        pick = kids[rng.random(len(kids)) < INVESTIGATION_BASE_MONTHLY]
        parts_p.append(pick)
        parts_m.append(np.full(len(pick), m))
        parts_planted.append(np.zeros(len(pick), bool))
    person = np.concatenate(parts_p).astype(np.int64)
    month = np.concatenate(parts_m).astype(np.int64)
    planted = np.concatenate(parts_planted)
    inside = (month >= 0) & (month < M)
    person, month, planted = person[inside], month[inside], planted[inside]
    ok = pop.household_m[month, person] >= 0
    ok &= _ages_at_months(pop, person, month) <= 17
    person, month, planted = person[ok], month[ok], planted[ok]

    start = period.random_days(rng, month)
    end = start + rng.integers(14, 121, len(person))
    reason = np.where(
        planted,
        rng.choice(3, len(person), p=[0.9, 0.05, 0.05]),
        rng.choice(3, len(person), p=[0.78, 0.14, 0.08]),
    )
    frame = pl.DataFrame(
        {
            "_month": month.astype(np.int32),
            "_person": person,
            "start_date": start.astype("datetime64[D]"),
            "end_date": end.astype("datetime64[D]"),
            "reason": np.asarray(REASONS)[reason],
            "_closed": end <= period.end_days[month],
        }
    )
    # One investigation per child and month; the end date is known only if it closed within the month.
    return (
        frame.with_columns(end_date=pl.when("_closed").then("end_date"))
        .drop("_closed")
        .sort("_month", "start_date", "_person", maintain_order=True)
        .unique(["_month", "_person"], keep="first", maintain_order=True)
    )


def _ages_at_months(pop: Population, person: np.ndarray, month: np.ndarray) -> np.ndarray:
    out = np.zeros(len(person), dtype=np.int64)
    for m in np.unique(month):
        sel = month == m
        out[sel] = pop.age_end_of_month(int(m))[person[sel]]
    return out


def patterns(absence: pl.DataFrame, investigations: pl.DataFrame, months: int) -> list[Pattern]:
    """Ground truth for absence → child investigation (planted precedence)."""
    inv = investigations.select("_person", "_month")
    # Realised: share of pupil-terms followed by an investigation within 1-4 months, by absence level.
    window = absence.filter((pl.col("_term_end") >= -1) & (pl.col("_term_end") + 4 < months)).select(
        "_person", "_term_end", "absence_pct"
    )
    joined = window.join(inv, on="_person", how="left").with_columns(
        hit=((pl.col("_month") - pl.col("_term_end")).is_between(1, 4)).fill_null(False)
    )
    followed = joined.group_by("_person", "_term_end", "absence_pct").agg(pl.col("hit").any())
    high = followed.filter(pl.col("absence_pct") >= HIGH_ABSENCE_PCT)
    low = followed.filter(pl.col("absence_pct") < HIGH_ABSENCE_PCT)
    # Realised: mean absence of investigated pupils in the term ending 1-6 months before vs after the start.
    pairs = inv.join(absence.select("_person", "_term_end", "absence_pct"), on="_person").with_columns(
        lag=pl.col("_month") - pl.col("_term_end")
    )
    before = pairs.filter(pl.col("lag").is_between(1, 6))["absence_pct"].mean()
    after = pairs.filter(pl.col("lag").is_between(-6, -1))["absence_pct"].mean()
    return [
        Pattern(
            id="absence_precedes_child_investigation",
            kind="precedence",
            units=("skola", "socialtjanst"),
            datasets=("skola.franvaro", "socialtjanst.barnutredningar"),
            description=(
                f"A term with absence >= {HIGH_ABSENCE_PCT:g}% is followed 1-4 months after the term "
                "ended by a child investigation far more often than other terms. Absence comes first: "
                "investigations are not followed by raised absence."
            ),
            effect={
                "planted_probability_after_high_absence": INVESTIGATION_AFTER_HIGH_ABSENCE,
                "planted_lag_months": list(INVESTIGATION_LAG_MONTHS),
                "planted_lag_probabilities": list(INVESTIGATION_LAG_P),
                "base_monthly_probability_per_child": INVESTIGATION_BASE_MONTHLY,
                "realised_share_followed_high_absence": realised(high["hit"].mean()),
                "realised_share_followed_other": realised(low["hit"].mean()),
                "realised_pupil_terms_high_absence": high.height,
                "realised_mean_absence_pct_term_before_investigation": realised(before, 2),
                "realised_mean_absence_pct_term_after_investigation": realised(after, 2),
            },
        ),
    ]
