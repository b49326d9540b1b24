"""The population register: people, households, districts and how they change month by month.

Every other unit's data hangs off this: services pick their clients among the
residents of a month, and links between units (a child's household receiving
economic aid, say) exist because the register says who lives with whom.

The simulation runs month by month over all residents at once (numpy arrays,
no loop over people). Each month, in order: deaths (age-dependent), households
moving out, young adults moving out or leaving home for a household of their
own within the municipality, households moving within (to another district),
births, and households moving in. A person has at most one of these events a
month. The state at the end of each month (household and district per person,
-1 when not resident) is kept for the services.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from pipelines.units import UNITS
from synthetic import vocabulary as voc
from synthetic.period import Period, age_at
from synthetic.personnummer import draw_serials, twelve_digit

# The register's events, as codes the simulation records (an index into EVENTS).
EVENTS = ("GRUND", "FODD", "INFLYTTAD", "UTFLYTTAD", "AVLIDEN", "FLYTT_INOM")
GRUND, FODD, INFLYTTAD, UTFLYTTAD, AVLIDEN, FLYTT_INOM = range(len(EVENTS))

MAX_AGE = 105
SAMORDNING_SHARE = 0.01
# Monthly probabilities of moving.
HOUSEHOLD_MOVE_OUT = 0.0035
HOUSEHOLD_MOVE_WITHIN = 0.004
YOUNG_ADULT_MOVE_OUT = 0.010
YOUNG_ADULT_LEAVE_HOME = 0.009
# Persons moving in per resident and month (slightly above those moving out: a growing town).
MOVE_IN_RATE = 0.0052


def _gompertz_survival(age: np.ndarray) -> np.ndarray:
    """Share of 65-year-olds still alive at `age` (drives the old-age shape of the pyramid)."""
    return np.exp(-(0.012 / 0.1) * (np.exp(0.1 * (np.maximum(age, 65) - 65)) - 1))


def death_probability_month(age: np.ndarray) -> np.ndarray:
    """Monthly probability of dying at a given age (Gompertz, about Swedish levels)."""
    annual = np.minimum(0.6, np.exp(-10.5 + 0.092 * age)) + np.where(age == 0, 0.002, 0.0)
    return 1 - (1 - annual) ** (1 / 12)


def _birth_probability_month(age: np.ndarray) -> np.ndarray:
    """Monthly probability that a woman of `age` gives birth (total fertility about 1.5)."""
    return 0.15 * np.exp(-(((age - 31) / 5.5) ** 2)) / 12


_AGES = np.arange(0, MAX_AGE + 1)


def _age_weights(kind: str, young: bool) -> np.ndarray:
    """Age distribution of the (first) adult of a 'single' or 'couple' household.

    Tuned so that the whole population comes close to Sweden's age pyramid;
    `young` is the profile of people moving into the town.
    """
    a = _AGES.astype(float)
    if kind == "single":
        w = np.where(a < 35, 2.0, np.where(a < 50, 0.7, np.where(a < 65, 1.1, 1.9 * _gompertz_survival(a))))
        w = np.where(a < 20, 0.3, w)
        if young:
            w = np.where(a < 35, 4.0, np.where(a < 65, 0.6, 0.4 * _gompertz_survival(a)))
        lo = 18
    elif kind == "couple":
        w = np.where(a < 30, 0.6, np.where(a < 50, 0.25, np.where(a < 65, 1.7, 1.5 * _gompertz_survival(a))))
        if young:
            w = np.where(a < 35, 2.0, np.where(a < 65, 0.5, 0.3 * _gompertz_survival(a)))
        lo = 20
    else:
        raise ValueError(kind)
    w = np.where(a < lo, 0.0, w)
    return w / w.sum()


@dataclass
class NewPeople:
    """People drawn as households, not yet in the register (household ids are local, 0..h-1)."""

    birth: np.ndarray
    sex: np.ndarray
    is_child: np.ndarray
    household: np.ndarray
    households: int


def draw_households(rng: np.random.Generator, persons: int, day: int, young: bool = False) -> NewPeople:
    """Households with about `persons` members (exactly, by filling up with one-person households).

    Types: single, couple, single parent, couple with children; adult ages by
    type; children younger than their parent by 20 years or more. `young`
    shifts towards the ages of people who move into a town.
    """
    share = (0.42, 0.29, 0.06, 0.23) if not young else (0.50, 0.22, 0.06, 0.22)
    n_hh = max(1, int(persons / 2.1 * 1.1) + 5)
    kind = rng.choice(4, size=n_hh, p=share)
    kids = np.where(kind >= 2, rng.choice([1, 2, 3, 4], size=n_hh, p=[0.38, 0.40, 0.16, 0.06]), 0)
    adults = np.where((kind == 1) | (kind == 3), 2, 1)
    size = adults + kids
    keep = np.cumsum(size) <= persons
    kind, kids, adults, size = kind[keep], kids[keep], adults[keep], size[keep]
    missing = persons - int(size.sum())
    kind = np.concatenate([kind, np.zeros(missing, dtype=kind.dtype)])
    kids = np.concatenate([kids, np.zeros(missing, dtype=kids.dtype)])
    adults = np.concatenate([adults, np.ones(missing, dtype=adults.dtype)])
    n_hh = len(kind)

    # Adults of one-adult and couple households by type; parents follow from their oldest child,
    # born when the parent was 23 to 36 (children up to 20 still live at home).
    age1 = np.empty(n_hh, dtype=float)
    for k, name in enumerate(("single", "couple")):
        sel = kind == k
        age1[sel] = rng.choice(_AGES, size=int(sel.sum()), p=_age_weights(name, young))
    parents = kind >= 2
    oldest_w = np.linspace(1.0, 0.5, 21) if young else np.linspace(1.0, 1.8, 21)
    oldest = rng.choice(21, size=n_hh, p=oldest_w / oldest_w.sum())
    age1[parents] = (oldest + rng.integers(23, 37, n_hh))[parents]
    age2 = np.clip(age1 + rng.normal(-1.5, 3.5, n_hh).round(), 18, MAX_AGE)
    # Elderly singles are mostly women; couples mostly of opposite sex.
    p_woman = 0.5 + 0.25 * np.clip((age1 - 65) / 30, 0, 1)
    sex1 = (rng.random(n_hh) >= np.where(kind == 0, p_woman, 0.5)).astype(np.int8)
    sex2 = np.where(rng.random(n_hh) < 0.95, 1 - sex1, sex1).astype(np.int8)

    gaps = rng.geometric(0.45, size=(n_hh, 4))
    gaps[:, 0] = 0
    kid_age = np.clip(oldest[:, None] - np.cumsum(gaps, axis=1), 0, None)

    hh_ids = np.arange(n_hh)
    parts_hh = [hh_ids, hh_ids[adults == 2]]
    parts_age = [age1, age2[adults == 2]]
    parts_sex = [sex1, sex2[adults == 2]]
    parts_child = [np.zeros(n_hh, bool), np.zeros(int((adults == 2).sum()), bool)]
    for j in range(4):
        has = kids > j
        parts_hh.append(hh_ids[has])
        parts_age.append(kid_age[has, j])
        parts_sex.append(rng.integers(0, 2, int(has.sum())).astype(np.int8))
        parts_child.append(np.ones(int(has.sum()), bool))
    household = np.concatenate(parts_hh)
    order = np.argsort(household, kind="stable")
    age = np.concatenate(parts_age)[order] + rng.random(persons)
    birth = (day - np.floor(age * 365.2425)).astype(np.int64)
    return NewPeople(
        birth=birth,
        sex=np.concatenate(parts_sex)[order],
        is_child=np.concatenate(parts_child)[order],
        household=household[order],
        households=n_hh,
    )


@dataclass
class Population:
    """The register after simulation. Person and household indices are positions in these arrays."""

    period: Period
    birth: np.ndarray  # days since 1970
    sex: np.ndarray  # 1 man, 0 woman
    pnr12: np.ndarray  # YYYYMMDDNNNC
    first_name: np.ndarray  # str
    last_name: np.ndarray  # str
    household_m: np.ndarray  # (months, persons) household at month end, -1 when not resident
    district_m: np.ndarray  # (months, persons) district index at month end, -1 when not resident
    households: int
    events: pl.DataFrame  # folkbokforing aviseringar, one row per event, plus _month and _person
    _ages: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def persons(self) -> int:
        return len(self.birth)

    def resident(self, m: int) -> np.ndarray:
        return self.household_m[m] >= 0

    def age_end_of_month(self, m: int) -> np.ndarray:
        """Age at the last day of month m (cached; the period's months only)."""
        if m not in self._ages:
            self._ages[m] = age_at(self.birth, self.period.end_day(m))
        return self._ages[m]

    def household_counts(self, m: int, min_age: int) -> np.ndarray:
        """Per household, the resident members aged at least `min_age` at the end of month m."""
        hh = self.household_m[m]
        sel = (hh >= 0) & (self.age_end_of_month(m) >= min_age)
        return np.bincount(hh[sel], minlength=self.households)

    def household_size(self, m: int) -> np.ndarray:
        hh = self.household_m[m]
        return np.bincount(hh[hh >= 0], minlength=self.households)


class _Register:
    """Mutable state during the simulation; grows as people are born and move in."""

    def __init__(self, rng: np.random.Generator, period: Period):
        self.rng = rng
        self.period = period
        self.birth = np.zeros(0, np.int64)
        self.sex = np.zeros(0, np.int8)
        self.is_child = np.zeros(0, bool)
        self.hh = np.zeros(0, np.int64)
        self.resident = np.zeros(0, bool)
        self.last = np.zeros(0, np.int64)  # index into LAST_NAMES
        self.hh_district = np.zeros(0, np.int64)
        self.hh_street = np.zeros(0, np.int64)
        self.hh_number = np.zeros(0, np.int64)
        self.hh_last = np.zeros(0, np.int64)
        self.events: list[dict[str, np.ndarray]] = []

    # --- households -------------------------------------------------------------------------
    def new_households(self, n: int) -> np.ndarray:
        ids = np.arange(len(self.hh_district), len(self.hh_district) + n)
        rng = self.rng
        self.hh_district = np.concatenate([self.hh_district, rng.choice(8, n, p=voc.DISTRICT_WEIGHTS)])
        self.hh_street = np.concatenate([self.hh_street, rng.integers(0, 5, n)])
        self.hh_number = np.concatenate([self.hh_number, rng.integers(1, 81, n)])
        self.hh_last = np.concatenate([self.hh_last, rng.integers(0, len(voc.LAST_NAMES), n)])
        return ids

    def relocate(self, households: np.ndarray) -> None:
        """Give households a new address in another district."""
        rng = self.rng
        old = self.hh_district[households]
        new = rng.choice(8, len(households), p=voc.DISTRICT_WEIGHTS)
        same = new == old
        new[same] = (old[same] + rng.integers(1, 8, int(same.sum()))) % 8
        self.hh_district[households] = new
        self.hh_street[households] = rng.integers(0, 5, len(households))
        self.hh_number[households] = rng.integers(1, 81, len(households))

    # --- people -----------------------------------------------------------------------------
    def add_people(self, people: NewPeople, first_hh: int) -> np.ndarray:
        rng = self.rng
        hh = people.household + first_hh
        ids = np.arange(len(self.birth), len(self.birth) + len(hh))
        # Most adults in a couple share the household's last name; some keep their own.
        own_name = (~people.is_child) & (rng.random(len(hh)) < 0.2)
        last = np.where(own_name, rng.integers(0, len(voc.LAST_NAMES), len(hh)), self.hh_last[hh])
        self.birth = np.concatenate([self.birth, people.birth])
        self.sex = np.concatenate([self.sex, people.sex])
        self.is_child = np.concatenate([self.is_child, people.is_child])
        self.hh = np.concatenate([self.hh, hh])
        self.resident = np.concatenate([self.resident, np.ones(len(hh), bool)])
        self.last = np.concatenate([self.last, last])
        return ids

    def record(self, persons: np.ndarray, event: int, days: np.ndarray, month: int) -> None:
        if len(persons) == 0:
            return
        hh = self.hh[persons]
        self.events.append(
            {
                "_person": persons,
                "event": np.full(len(persons), event),
                "day": np.broadcast_to(days, persons.shape).astype(np.int64),
                "district": self.hh_district[hh],
                "household": hh,
                "street": self.hh_street[hh],
                "number": self.hh_number[hh],
                "_month": np.full(len(persons), month),
            }
        )


def simulate_population(rng: np.random.Generator, citizens: int, period: Period) -> Population:
    """Draw the residents at the start of the period and simulate every month of it."""
    reg = _Register(rng, period)
    day0 = period.start_day(0)
    first = draw_households(rng, citizens, day0)
    _force_centenarians(rng, first, day0, minimum=max(3, round(citizens * 0.0003)))
    hh0 = reg.new_households(first.households)
    reg.add_people(first, int(hh0[0]))
    reg.record(np.arange(len(reg.birth)), GRUND, np.array(day0), 0)

    months = period.months
    hh_snap: list[np.ndarray] = []
    dist_snap: list[np.ndarray] = []
    for m in range(months):
        _simulate_month(reg, m)
        hh_snap.append(np.where(reg.resident, reg.hh, -1))
        dist_snap.append(np.where(reg.resident, reg.hh_district[reg.hh], -1))

    n = len(reg.birth)
    household_m = np.full((months, n), -1, dtype=np.int32)
    district_m = np.full((months, n), -1, dtype=np.int8)
    for m in range(months):
        household_m[m, : len(hh_snap[m])] = hh_snap[m]
        district_m[m, : len(dist_snap[m])] = dist_snap[m]

    samordning = rng.random(n) < SAMORDNING_SHARE
    serial = draw_serials(rng, reg.birth, reg.sex, samordning)
    pnr12 = twelve_digit(reg.birth, serial, samordning)
    first_names = np.where(
        reg.sex == 1,
        np.asarray(voc.FIRST_NAMES_MEN)[rng.integers(0, len(voc.FIRST_NAMES_MEN), n)],
        np.asarray(voc.FIRST_NAMES_WOMEN)[rng.integers(0, len(voc.FIRST_NAMES_WOMEN), n)],
    )
    last_names = np.asarray(voc.LAST_NAMES)[reg.last]
    return Population(
        period=period,
        birth=reg.birth,
        sex=reg.sex,
        pnr12=pnr12,
        first_name=first_names,
        last_name=last_names,
        household_m=household_m,
        district_m=district_m,
        households=len(reg.hh_district),
        events=_event_frame(reg, first_names, last_names),
    )


def _force_centenarians(rng: np.random.Generator, people: NewPeople, day: int, minimum: int) -> None:
    """Make sure a few residents are 100 or older (the '+' form of the personnummer must occur)."""
    age = (day - people.birth) / 365.2425
    have = int((age >= 100).sum())
    if have >= minimum:
        return
    old = np.flatnonzero((~people.is_child) & (age >= 85) & (age < 100))
    pick = rng.choice(old, size=min(minimum - have, len(old)), replace=False)
    people.birth[pick] = day - np.floor((100 + rng.random(len(pick)) * 3) * 365.2425).astype(np.int64)


def _simulate_month(reg: _Register, m: int) -> None:
    rng, period = reg.rng, reg.period
    d0, d1 = period.start_day(m), period.end_day(m)
    n_days = d1 - d0 + 1
    n = len(reg.birth)
    free = reg.resident.copy()  # residents without an event this month
    age = age_at(reg.birth, d0)

    def day(k: int) -> np.ndarray:
        return d0 + rng.integers(0, n_days, k)

    def take(mask: np.ndarray) -> np.ndarray:
        idx = np.flatnonzero(mask & free)
        free[idx] = False
        return idx

    # Deaths.
    dead = take(rng.random(n) < death_probability_month(age))
    reg.record(dead, AVLIDEN, day(len(dead)), m)
    reg.resident[dead] = False

    # Whole households moving out of the municipality.
    n_hh = len(reg.hh_district)
    hh_out = rng.random(n_hh) < HOUSEHOLD_MOVE_OUT
    hh_day = day(n_hh)
    out = take(hh_out[reg.hh])
    # Young adults moving away (studies, work).
    young = (age >= 19) & (age <= 28)
    out_young = take(young & (rng.random(n) < YOUNG_ADULT_MOVE_OUT))
    reg.record(out, UTFLYTTAD, hh_day[reg.hh[out]], m)
    reg.record(out_young, UTFLYTTAD, day(len(out_young)), m)
    reg.resident[out] = False
    reg.resident[out_young] = False

    # Young adults leaving home for a household of their own in the municipality.
    leave = take(young & reg.is_child & (rng.random(n) < YOUNG_ADULT_LEAVE_HOME))
    if len(leave):
        new_hh = reg.new_households(len(leave))
        reg.hh_last[new_hh] = reg.last[leave]
        reg.hh[leave] = new_hh
        reg.is_child[leave] = False
        reg.record(leave, FLYTT_INOM, day(len(leave)), m)

    # Households moving within the municipality, to another district.
    n_hh = len(reg.hh_district)
    hh_move = rng.random(n_hh) < HOUSEHOLD_MOVE_WITHIN
    movers = take(hh_move[reg.hh])
    if len(movers):
        moving_hh = np.unique(reg.hh[movers])
        reg.relocate(moving_hh)
        hh_day = day(n_hh)
        reg.record(movers, FLYTT_INOM, hh_day[reg.hh[movers]], m)

    # Births: the child joins the mother's household.
    mothers = take((reg.sex == 0) & (rng.random(n) < _birth_probability_month(age)))
    if len(mothers):
        babies = NewPeople(
            birth=day(len(mothers)),
            sex=rng.integers(0, 2, len(mothers)).astype(np.int8),
            is_child=np.ones(len(mothers), bool),
            household=reg.hh[mothers],
            households=0,
        )
        born = reg.add_people(babies, 0)
        reg.record(born, FODD, babies.birth, m)

    # Households moving in.
    persons_in = rng.poisson(MOVE_IN_RATE * int(reg.resident.sum()))
    if persons_in:
        people = draw_households(rng, persons_in, d0, young=True)
        people.birth += rng.integers(0, n_days)  # ages relative to a day in the month
        hh_new = reg.new_households(people.households)
        arrived = reg.add_people(people, int(hh_new[0]))
        hh_day = day(people.households)
        reg.record(arrived, INFLYTTAD, hh_day[people.household], m)


def _event_frame(reg: _Register, first_names: np.ndarray, last_names: np.ndarray) -> pl.DataFrame:
    """Folkbokföring rows in logical form (spec warehouse names) with _month and _person."""
    allowed = UNITS["folkbokforing"].dataset("aviseringar").column("event").allowed or ()
    assert set(EVENTS) <= set(allowed), "events not in the contract"
    cols = {k: np.concatenate([e[k] for e in reg.events]) for k in reg.events[0]}
    streets = np.asarray([s for d in voc.DISTRICTS for s in voc.STREETS[d]])
    person = cols["_person"]
    frame = pl.DataFrame(
        {
            "_month": cols["_month"].astype(np.int32),
            "_person": person.astype(np.int64),
            "event": np.asarray(EVENTS)[cols["event"]],
            "event_date": cols["day"].astype("datetime64[D]"),
            "district": np.asarray(voc.DISTRICTS)[cols["district"]],
            "household": cols["household"],
            "first_name": first_names[person],
            "last_name": last_names[person],
            "address": streets[cols["district"] * 5 + cols["street"]],
            "_number": cols["number"],
        }
    )
    frame = frame.with_columns(
        household=pl.lit("HH") + (pl.col("household") + 1).cast(pl.String).str.zfill(6),
        address=pl.col("address") + pl.lit(" ") + pl.col("_number").cast(pl.String),
    ).drop("_number")
    # Within a delivery, events in date order (GRUND rows first: they carry the first day).
    return frame.sort("_month", "event_date", maintain_order=True)
