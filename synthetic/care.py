"""Vård och omsorg (äldreomsorg): home care, nursing-home placements, safety alarms.

Simulated month by month over residents aged 65 and over. Someone first seen
at 65+ (at the period start or on moving in) gets a status drawn from the
prevalence for their age; afterwards home care and alarms start with monthly
hazards that keep about that prevalence (about 8 % of people 75+ have home
care). Home-care recipients may move to a nursing home, which ends home care
and the personal alarm. The monthly masks of home care and alarm holding are
kept: the contact centre and the e-services depend on them (planted patterns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from synthetic import vocabulary as voc
from synthetic.ground_truth import Pattern, realised
from synthetic.population import Population

AGE_BANDS = np.array([65, 75, 80, 85, 90])
HOME_CARE_PREVALENCE = np.array([0.014, 0.035, 0.07, 0.14, 0.23])
ALARM_PREVALENCE = np.array([0.015, 0.06, 0.13, 0.25, 0.38])
ALARM_WITH_HOME_CARE = 0.7
ALARM_ON_HOME_CARE_START = 0.5
HOME_CARE_MEAN_MONTHS = 16
ALARM_MEAN_MONTHS = 36
HOME_CARE_ENDS = 0.01
NURSING_FROM_HOME_CARE = 0.025  # monthly, recipients aged 75+
NURSING_OTHERS = 0.002  # monthly, others aged 80+
NURSING_AT_START = np.array([0.0, 0.0, 0.01, 0.03, 0.12])


@dataclass
class Care:
    home_care: pl.DataFrame  # _month, _person, month, granted_hours, performed_hours
    placements: pl.DataFrame  # _month, _person, move_in_date, home
    alarms: pl.DataFrame  # _month, _person, month, alarms
    home_care_m: np.ndarray  # (months, persons) bool
    alarm_m: np.ndarray  # (months, persons) bool


def _band(age: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.where(
        age >= 65, values[np.clip(np.searchsorted(AGE_BANDS, age, side="right") - 1, 0, None)], 0.0
    )


def care(rng: np.random.Generator, pop: Population) -> Care:
    period, P, M = pop.period, pop.persons, pop.period.months
    home_care = np.zeros(P, bool)
    alarm = np.zeros(P, bool)
    nursing = np.zeros(P, bool)
    seen = np.zeros(P, bool)
    care_months = np.zeros(P, np.int64)
    hours = np.clip(rng.lognormal(np.log(22), 0.6, P), 2, 250)
    alarm_rate = rng.gamma(1.5, 1.0, P)
    home_care_m = np.zeros((M, P), bool)
    alarm_m = np.zeros((M, P), bool)
    rows_hc, rows_alarm, rows_nh = [], [], []
    for m in range(M):
        res = pop.resident(m)
        age = pop.age_end_of_month(m)
        home_care &= res
        alarm &= res
        nursing &= res
        old = res & (age >= 65)
        new = old & ~seen
        seen |= new
        u = rng.random((4, P))
        # First seen: status from the prevalence for the age.
        start_nursing = new & (u[0] < _band(age, NURSING_AT_START))
        nursing |= start_nursing
        new &= ~start_nursing
        home_care |= new & (u[1] < _band(age, HOME_CARE_PREVALENCE))
        alarm |= new & (u[2] < np.where(home_care, ALARM_WITH_HOME_CARE, _band(age, ALARM_PREVALENCE)))
        # Known: monthly transitions.
        known = old & ~new & ~nursing
        hc_start = known & ~home_care & (u[1] < _band(age, HOME_CARE_PREVALENCE) / HOME_CARE_MEAN_MONTHS)
        hc_end = known & home_care & (u[0] < HOME_CARE_ENDS)
        home_care = (home_care | hc_start) & ~hc_end
        alarm |= (
            known
            & ~alarm
            & (
                (u[2] < _band(age, ALARM_PREVALENCE) / ALARM_MEAN_MONTHS)
                | (hc_start & (u[3] < ALARM_ON_HOME_CARE_START))
            )
        )
        to_nursing = (
            known
            & ~hc_end
            & (
                (home_care & (age >= 75) & (u[3] < NURSING_FROM_HOME_CARE))
                | (~home_care & (age >= 80) & (u[3] < NURSING_OTHERS))
            )
        )
        nursing |= to_nursing
        home_care &= ~nursing
        alarm &= ~nursing
        care_months = np.where(home_care, care_months + 1, 0)

        moved = np.flatnonzero(to_nursing)
        rows_nh.append(
            pl.DataFrame(
                {
                    "_month": np.full(len(moved), m, np.int32),
                    "_person": moved,
                    "move_in_date": period.random_days(rng, np.full(len(moved), m)).astype("datetime64[D]"),
                    "home": np.asarray(voc.NURSING_HOMES)[
                        rng.integers(0, len(voc.NURSING_HOMES), len(moved))
                    ],
                }
            )
        )
        hc = np.flatnonzero(home_care)
        granted = np.minimum(np.round(hours[hc] * (1 + 0.01 * care_months[hc]) * 2) / 2, 744.0)
        rows_hc.append(
            pl.DataFrame(
                {
                    "_month": np.full(len(hc), m, np.int32),
                    "_person": hc,
                    "month": np.full(len(hc), period.label(m)),
                    "granted_hours": granted,
                    "performed_hours": np.round(granted * rng.beta(18, 2, len(hc)) * 2) / 2,
                }
            )
        )
        holders = np.flatnonzero(alarm)
        rows_alarm.append(
            pl.DataFrame(
                {
                    "_month": np.full(len(holders), m, np.int32),
                    "_person": holders,
                    "month": np.full(len(holders), period.label(m)),
                    "alarms": np.minimum(rng.poisson(alarm_rate[holders]), 1000),
                }
            )
        )
        home_care_m[m] = home_care
        alarm_m[m] = alarm
    return Care(
        home_care=pl.concat(rows_hc),
        placements=pl.concat(rows_nh),
        alarms=pl.concat(rows_alarm),
        home_care_m=home_care_m,
        alarm_m=alarm_m,
    )


def patterns(pop: Population, care: Care) -> list[Pattern]:
    """Ground truth inside vård och omsorg: alarms go with home care, and moves to a nursing home come from it."""
    M = pop.period.months
    old = np.stack([pop.resident(m) & (pop.age_end_of_month(m) >= 65) for m in range(M)])
    hc, alarm = care.home_care_m, care.alarm_m
    moved = care.placements.filter(pl.col("_month") > 0)
    before = hc[moved["_month"].to_numpy() - 1, moved["_person"].to_numpy()]
    hc_months, other_months = int(hc[:-1].sum()), int((old[:-1] & ~hc[:-1]).sum())
    return [
        Pattern(
            id="home_care_safety_alarm",
            kind="association",
            units=("vard_omsorg",),
            datasets=("vard_omsorg.hemtjanst", "vard_omsorg.trygghetslarm"),
            description=(
                "Most people with home care also hold a safety alarm: one is given at the start of home "
                "care to half of the recipients, and to most of those who already had home care when first seen."
            ),
            effect={
                "planted_alarm_share_first_seen_with_home_care": ALARM_WITH_HOME_CARE,
                "planted_alarm_share_on_home_care_start": ALARM_ON_HOME_CARE_START,
                "realised_alarm_share_home_care_months": realised(alarm[hc].mean() if hc.any() else None),
                "realised_alarm_share_other_65_plus_months": realised(
                    alarm[old & ~hc].mean() if (old & ~hc).any() else None
                ),
            },
        ),
        Pattern(
            id="home_care_nursing_home",
            kind="association",
            units=("vard_omsorg",),
            datasets=("vard_omsorg.hemtjanst", "vard_omsorg.sarskilt_boende"),
            description=(
                "Moves to a nursing home come mostly from home care (recipients aged 75+ move far more "
                "often than others aged 80+); home care ends with the move."
            ),
            effect={
                "planted_monthly_move_home_care_75_plus": NURSING_FROM_HOME_CARE,
                "planted_monthly_move_others_80_plus": NURSING_OTHERS,
                "realised_moves_per_1000_home_care_months": realised(
                    1000 * before.sum() / max(hc_months, 1), 2
                ),
                "realised_moves_per_1000_other_65_plus_months": realised(
                    1000 * (~before).sum() / max(other_months, 1), 2
                ),
            },
        ),
    ]
