"""Modest links between services, each with a known odds ratio per person and quarter, some only later.

Real links between municipal services are mostly modest (odds ratios of 1.3-2.5), and some show only
a quarter or two after the first service. The strong planted patterns cannot tell whether discovery
finds those, or whether its intervals hold the truth, so these links are planted on top of the
services' own draws, with the odds ratio as the parameter:

In every stratum (calendar quarter x age band x the other services of vård och omsorg, which already
drive contacts and submissions), the person-quarters exposed to the cause (``lag`` quarters earlier)
get the effect with the probability whose odds are ``odds_ratio`` times the odds among those not
exposed. Only person-quarters without the effect gain it (one extra row in a month of the quarter in
which the person lives here and is an adult), so the conditional odds ratio is the planted one,
whatever the effect's own course. A lagged link plants nothing in the cause's own quarter.

Causes are services drawn before the effects (economic aid, home care, safety alarms, building
permits); effects are contacts and submissions, which cause nothing: so no chain of links makes a pair
linked that is not listed (two effects of one cause are the declared confounded pair), and the null
pairs (building permits with aid and with alarms) stay null, since building-permit applicants are
still drawn independently of everything.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from synthetic.care import Care
from synthetic.ground_truth import Pattern, realised
from synthetic.population import Population

AGE_EDGES = np.array([0, 6, 16, 18, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90])
VARD = ("home_care", "safety_alarm")  # what already drives contacts and submissions


@dataclass(frozen=True)
class Link:
    """``cause`` in a quarter raises the odds of ``effect`` ``lag`` quarters later by ``odds_ratio``."""

    id: str
    cause: str  # 'economic_aid', 'home_care', 'safety_alarm' or 'building_permit'
    effect: str  # 'contact' or 'submission'
    odds_ratio: float
    lag: int
    description: str


LINKS: tuple[Link, ...] = (
    Link(
        "economic_aid_contacts", "economic_aid", "contact", 1.3, 0,
        "Applicants for economic aid contact the contact centre (about economic aid) somewhat more "
        "often in the quarters they have aid.",
    ),
    Link(
        "economic_aid_e_services", "economic_aid", "submission", 1.5, 0,
        "Applicants for economic aid submit to an e-service (digitally) more often in the quarters "
        "they have aid.",
    ),
    Link(
        "home_care_e_services", "home_care", "submission", 1.8, 0,
        "People with home care submit to an e-service (digitally, elderly-care services) more often "
        "in the quarters they have it, beyond what a safety alarm brings.",
    ),
    Link(
        "safety_alarm_contacts", "safety_alarm", "contact", 2.5, 0,
        "People with a safety alarm contact the contact centre (about äldreomsorg) more often in the "
        "quarters they hold it, beyond what home care brings.",
    ),
    Link(
        "building_permit_contacts_next_quarter", "building_permit", "contact", 2.5, 1,
        "Building-permit applicants contact the contact centre (about bygglov) the quarter after "
        "they applied, not in the quarter they applied.",
    ),
    Link(
        "building_permit_e_services_two_quarters_later", "building_permit", "submission", 1.8, 2,
        "Building-permit applicants submit to an e-service (digitally) two quarters after they "
        "applied, not before.",
    ),
)  # fmt: skip
DATASETS = {
    "economic_aid": "socialtjanst.ekonomiskt_bistand",
    "home_care": "vard_omsorg.hemtjanst",
    "safety_alarm": "vard_omsorg.trygghetslarm",
    "building_permit": "bygg_miljo.bygglov",
    "contact": "kontaktcenter.kontakter",
    "submission": "e_tjanster.inlamningar",
}
CONTACT_TOPIC = {
    "economic_aid": "Ekonomiskt bistånd",
    "safety_alarm": "Äldreomsorg",
    "building_permit": "Bygglov",
}


@dataclass
class Quarters:
    """Calendar quarters of the period and person-quarter views of monthly masks."""

    index: np.ndarray  # (months,) quarter of each month
    adult_m: np.ndarray  # (months, persons) resident and 18 or older at the month's end
    age: np.ndarray  # (quarters, persons) age at the quarter's last month

    @classmethod
    def of(cls, pop: Population) -> Quarters:
        M = pop.period.months
        calendar = pop.period.first.astype(np.int64) + np.arange(M)  # months since 1970-01
        index = calendar // 3 - calendar[0] // 3
        adult_m = np.stack([pop.resident(m) & (pop.age_end_of_month(m) >= 18) for m in range(M)])
        last = [int(np.flatnonzero(index == q).max()) for q in range(int(index[-1]) + 1)]
        return cls(index=index, adult_m=adult_m, age=np.stack([pop.age_end_of_month(m) for m in last]))

    @property
    def count(self) -> int:
        return int(self.index[-1]) + 1

    def any(self, monthly: np.ndarray) -> np.ndarray:
        """(quarters, persons): true where the (months, persons) mask is true in a month of the quarter."""
        out = np.zeros((self.count, monthly.shape[1]), bool)
        for m, q in enumerate(self.index):
            out[q] |= monthly[m]
        return out

    def of_rows(self, frame: pl.DataFrame, persons: int) -> np.ndarray:
        """(quarters, persons): a row of the person (``_person`` >= 0) in a month of the quarter."""
        rows = frame.filter(pl.col("_person") >= 0)
        out = np.zeros((self.count, persons), bool)
        out[self.index[rows["_month"].to_numpy()], rows["_person"].to_numpy()] = True
        return out

    def month_in(self, rng: np.random.Generator, quarter: np.ndarray, person: np.ndarray) -> np.ndarray:
        """For each person-quarter, a month of the quarter in which the person is an adult resident (the
        period's first and last quarters may hold fewer than three months)."""
        months = np.full((self.count, 3), -1)
        for q in range(self.count):
            inside = np.flatnonzero(self.index == q)
            months[q, : len(inside)] = inside
        candidates = months[quarter]
        ok = (candidates >= 0) & self.adult_m[np.maximum(candidates, 0), person[:, None]]
        return candidates[np.arange(len(quarter)), np.argmax(rng.random(ok.shape) * ok, axis=1)]


def shifted(flags: np.ndarray, lag: int) -> np.ndarray:
    """(quarters, persons): the flags of ``lag`` quarters earlier (false before the first quarter)."""
    out = np.zeros_like(flags)
    out[lag:] = flags[: len(flags) - lag]
    return out


def plant(
    rng: np.random.Generator,
    exposed: np.ndarray,
    has: np.ndarray,
    eligible: np.ndarray,
    strata: np.ndarray,
    odds_ratio: float,
) -> np.ndarray:
    """Person-quarters that gain the effect, so that its odds among the exposed are ``odds_ratio`` times
    those among the unexposed in every stratum (all arrays (quarters, persons))."""
    size = int(strata.max()) + 1
    unexposed = eligible & ~exposed
    n = np.bincount(strata[unexposed], minlength=size)
    with np.errstate(divide="ignore", invalid="ignore"):
        p0 = np.bincount(strata[unexposed & has], minlength=size) / n
        odds = odds_ratio * p0 / (1 - p0)
        gain = np.nan_to_num((odds / (1 + odds) - p0) / (1 - p0), nan=0.0, posinf=0.0)
    return eligible & exposed & ~has & (rng.random(exposed.shape) < np.clip(gain, 0, 1)[strata])


def odds_ratio_in(exposed: np.ndarray, has: np.ndarray, eligible: np.ndarray, strata: np.ndarray) -> float:
    """Mantel-Haenszel odds ratio over the strata: what the draw realised."""
    cell = (exposed.astype(np.int64) * 2 + has)[eligible]
    counts = np.bincount(strata[eligible] * 4 + cell, minlength=(int(strata.max()) + 1) * 4).reshape(-1, 4)
    n = counts.sum(axis=1).astype(float)
    n00, n01, n10, n11 = counts.T.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.where(n > 1, n11 * n00 / n, 0).sum() / np.where(n > 1, n10 * n01 / n, 0).sum())


@dataclass
class Planted:
    """Extra rows per effect (``_month``, ``_person``; a contact's ``topic``, a submission's ``_elderly``)
    and the links' ground truth."""

    contacts: pl.DataFrame
    submissions: pl.DataFrame
    patterns: list[Pattern]


def plant_links(
    rng: np.random.Generator,
    pop: Population,
    care: Care,
    aid: pl.DataFrame,
    permits: pl.DataFrame,
    contacts: pl.DataFrame,
    submissions: pl.DataFrame,
) -> Planted:
    """Plant ``LINKS`` on the services drawn so far: which person-months get an extra contact or submission."""
    quarters = Quarters.of(pop)
    P = pop.persons
    received = permits["received_date"].to_numpy().astype("datetime64[M]").astype(np.int64)
    applied = permits.with_columns(_month=received - pop.period.first.astype(np.int64)).filter(
        pl.col("_month").is_between(0, pop.period.months - 1)
    )  # the quarter a permit was applied for, as the panel counts it
    causes = {
        "economic_aid": quarters.of_rows(aid, P),
        "home_care": quarters.any(care.home_care_m),
        "safety_alarm": quarters.any(care.alarm_m),
        "building_permit": quarters.of_rows(applied, P),
    }
    effects = {"contact": quarters.of_rows(contacts, P), "submission": quarters.of_rows(submissions, P)}
    eligible = quarters.any(quarters.adult_m)
    band = np.searchsorted(AGE_EDGES, quarters.age, side="right") - 1
    rows: dict[str, list[pl.DataFrame]] = {"contact": [], "submission": []}
    patterns = []
    for link in LINKS:
        strata = np.arange(quarters.count)[:, None] * len(AGE_EDGES) + band
        for other in (v for v in VARD if v != link.cause):
            strata = strata * 2 + causes[other]
        exposed = shifted(causes[link.cause], link.lag)
        has = effects[link.effect]
        gained = plant(rng, exposed, has, eligible, strata, link.odds_ratio)
        effects[link.effect] = has | gained
        quarter, person = np.nonzero(gained)
        month = quarters.month_in(rng, quarter, person)
        row = {"_month": month.astype(np.int32), "_person": person.astype(np.int64)}
        if link.effect == "contact":
            row["topic"] = np.full(len(person), CONTACT_TOPIC[link.cause])
        else:
            row["_elderly"] = np.full(len(person), link.cause == "home_care")
        rows[link.effect].append(pl.DataFrame(row))
        after = eligible & (np.arange(quarters.count)[:, None] >= link.lag)
        patterns.append(
            Pattern(
                id=link.id,
                kind="association",
                units=tuple(DATASETS[k].split(".")[0] for k in (link.cause, link.effect)),
                datasets=(DATASETS[link.cause], DATASETS[link.effect]),
                description=link.description,
                effect={
                    "odds_ratio": link.odds_ratio,
                    "lag_quarters": link.lag,
                    "first": DATASETS[link.cause],
                    "planted_per": "person and calendar quarter, adults living in the municipality",
                    "realised_odds_ratio": realised(
                        odds_ratio_in(exposed, effects[link.effect], after, strata)
                    ),
                    "realised_exposed_person_quarters": int((exposed & after).sum()),
                    "planted_person_quarters": len(person),
                },
            )
        )
    return Planted(
        contacts=pl.concat(rows["contact"]),
        submissions=pl.concat(rows["submission"]),
        patterns=patterns,
    )


# Contacts and submissions are drawn independently of each other: a pair linked only through a third.
CONFOUNDED = Pattern(
    id="contacts_submissions_through_care",
    kind="confounded",
    units=("kontaktcenter", "e_tjanster"),
    datasets=("kontaktcenter.kontakter", "e_tjanster.inlamningar"),
    description=(
        "Contacts and e-service submissions are drawn independently of each other; both are more common "
        "with home care and safety alarms (and economic aid), so they co-occur only through those: no "
        "association once vård och omsorg's services are accounted for."
    ),
    effect={
        "through": ["vard_omsorg.hemtjanst", "vard_omsorg.trygghetslarm", "socialtjanst.ekonomiskt_bistand"]
    },
)
