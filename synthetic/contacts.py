"""Kontaktcenter and e-tjänster: how citizens reach the municipality.

Contact centre: about two contacts per resident and year, 60 % anonymous. The
phone share falls over time (the goal of halving calls) while chat, e-mail
and web grow. Planted: people with home care contact the centre far more
often (identified contacts), mostly by phone about äldreomsorg.

E-services: about 0.9 submissions per adult and year, all identified. The
digital share rises over time. Planted: safety-alarm holders submit more, and
mostly on paper.

Both also carry the modest links of ``synthetic.links`` (economic aid, safety
alarms and building permits raise contacts; aid, home care and permits raise
digital submissions), added as extra rows after the services' own draws.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.units import UNITS
from synthetic import vocabulary as voc
from synthetic.care import Care
from synthetic.ground_truth import Pattern, realised
from synthetic.population import Population

CONTACTS_PER_RESIDENT_YEAR = 2.0
ANONYMOUS_SHARE = 0.6
HOME_CARE_EXTRA_CONTACTS_MONTH = 0.45
PHONE_SHARE_START = 0.62
PHONE_SHARE_FALL_PER_YEAR = 0.09
OTHER_CHANNEL_SPLIT = {"chatt": 0.3, "e-post": 0.3, "webb": 0.4}
SOLVED_FIRST_CONTACT = {"telefon": 0.75, "chatt": 0.68, "e-post": 0.55, "webb": 0.60}
SEASON = np.array([1.1, 1.05, 1.05, 1.0, 1.0, 0.95, 0.75, 0.95, 1.05, 1.05, 1.0, 0.85])

SUBMISSIONS_PER_ADULT_MONTH = 0.075
ALARM_EXTRA_SUBMISSIONS_MONTH = 0.10
PAPER_SHARE_START = 0.30
PAPER_SHARE_FALL_PER_YEAR = 0.06
PAPER_SHARE_ALARM = 0.62


def phone_share(years: np.ndarray | float) -> np.ndarray:
    return np.maximum(0.2, PHONE_SHARE_START - PHONE_SHARE_FALL_PER_YEAR * np.asarray(years))


def paper_share(years: np.ndarray | float) -> np.ndarray:
    return np.maximum(0.08, PAPER_SHARE_START - PAPER_SHARE_FALL_PER_YEAR * np.asarray(years))


def _counts(rng: np.random.Generator, persons: np.ndarray, rate: float) -> np.ndarray:
    """Persons repeated by a Poisson number of events each."""
    return np.repeat(persons, rng.poisson(rate, len(persons)))


def contact_centre(rng: np.random.Generator, pop: Population, care: Care) -> pl.DataFrame:
    """kontakter rows: _month, _person (-1 anonymous), contact_id, contacted_at, channel, topic, solved."""
    channels = UNITS["kontaktcenter"].dataset("kontakter").columns
    allowed = next(c.allowed for c in channels if c.name == "channel") or ()
    names = ("telefon", *OTHER_CHANNEL_SPLIT)
    assert set(names) <= set(allowed), "channels not in spec"
    period, M = pop.period, pop.period.months
    frames = []
    for m in range(M):
        res = pop.resident(m)
        adults = np.flatnonzero(res & (pop.age_end_of_month(m) >= 18))
        total = res.sum() * CONTACTS_PER_RESIDENT_YEAR / 12 * SEASON[period.calendar_month(m) - 1]
        anonymous = np.full(rng.poisson(total * ANONYMOUS_SHARE), -1)
        identified = _counts(rng, adults, total * (1 - ANONYMOUS_SHARE) / max(len(adults), 1))
        extra = _counts(rng, np.flatnonzero(care.home_care_m[m]), HOME_CARE_EXTRA_CONTACTS_MONTH)
        person = np.concatenate([anonymous, identified, extra]).astype(np.int64)
        is_extra = np.r_[np.zeros(len(anonymous) + len(identified), bool), np.ones(len(extra), bool)]
        n = len(person)
        phone = phone_share(period.years_elapsed(m))
        p_channel = np.array([phone, *((1 - phone) * np.array(list(OTHER_CHANNEL_SPLIT.values())))])
        p_extra = np.array([0.85, 0.05, 0.05, 0.05])
        channel = np.where(is_extra, rng.choice(4, n, p=p_extra), rng.choice(4, n, p=p_channel))
        topic = np.where(
            is_extra & (rng.random(n) < 0.7),
            voc.CONTACT_TOPICS.index("Äldreomsorg"),
            rng.choice(len(voc.CONTACT_TOPICS), n, p=voc.CONTACT_TOPIC_WEIGHTS),
        )
        solved_p = np.array([SOLVED_FIRST_CONTACT[c] for c in names])[channel]
        office = channel <= 1  # phone and chat are staffed in office hours
        frames.append(
            pl.DataFrame(
                {
                    "_month": np.full(n, m, np.int32),
                    "_person": person,
                    "contacted_at": period.random_times(rng, np.full(n, m), office),
                    "channel": np.asarray(names)[channel],
                    "topic": np.asarray(voc.CONTACT_TOPICS)[topic],
                    "solved_first_contact": rng.random(n) < solved_p,
                }
            ).sort("contacted_at", "_person", maintain_order=True)
        )
    return _numbered(pl.concat(frames), "contact_id", "KC")


def e_services(rng: np.random.Generator, pop: Population, care: Care) -> pl.DataFrame:
    """inlamningar rows: _month, _person, submission_id, e_service, channel, submitted_at."""
    period, M = pop.period, pop.period.months
    frames = []
    for m in range(M):
        adults = np.flatnonzero(pop.resident(m) & (pop.age_end_of_month(m) >= 18))
        base = _counts(rng, adults, SUBMISSIONS_PER_ADULT_MONTH)
        extra = _counts(rng, np.flatnonzero(care.alarm_m[m]), ALARM_EXTRA_SUBMISSIONS_MONTH)
        person = np.concatenate([base, extra]).astype(np.int64)
        is_extra = np.r_[np.zeros(len(base), bool), np.ones(len(extra), bool)]
        holder = care.alarm_m[m][person]
        n = len(person)
        service = np.where(
            is_extra,
            rng.choice(len(voc.E_SERVICES), n, p=voc.E_SERVICE_WEIGHTS_ALARM),
            rng.choice(len(voc.E_SERVICES), n, p=voc.E_SERVICE_WEIGHTS_ADULTS),
        )
        paper = rng.random(n) < np.where(holder, PAPER_SHARE_ALARM, paper_share(period.years_elapsed(m)))
        frames.append(
            pl.DataFrame(
                {
                    "_month": np.full(n, m, np.int32),
                    "_person": person,
                    "e_service": np.asarray(voc.E_SERVICES)[service],
                    "channel": np.where(paper, "papper", "digital"),
                    "submitted_at": period.random_times(rng, np.full(n, m), paper),
                    "_alarm_holder": holder,
                }
            ).sort("submitted_at", "_person", maintain_order=True)
        )
    return _numbered(pl.concat(frames), "submission_id", "ET")


def _numbered(frame: pl.DataFrame, column: str, prefix: str) -> pl.DataFrame:
    """Ids in the order of the rows (by month and time): the source system numbers as it records."""
    return frame.with_columns(
        (pl.lit(prefix) + (pl.int_range(pl.len()) + 1).cast(pl.String).str.zfill(8)).alias(column)
    )


def with_planted_contacts(
    rng: np.random.Generator, pop: Population, contacts: pl.DataFrame, extra: pl.DataFrame
) -> pl.DataFrame:
    """The contacts plus one identified contact per planted person-month (``synthetic.links``: _month,
    _person, topic), by the month's channel mix; renumbered in time order."""
    period, n = pop.period, extra.height
    months = extra["_month"].to_numpy()
    names = ("telefon", *OTHER_CHANNEL_SPLIT)
    other = 1 + rng.choice(3, n, p=list(OTHER_CHANNEL_SPLIT.values()))
    channel = np.where(rng.random(n) < phone_share(period.years_elapsed(months)), 0, other)
    added = pl.DataFrame(
        {
            "_month": extra["_month"],
            "_person": extra["_person"],
            "contacted_at": period.random_times(rng, months, channel <= 1),
            "channel": np.asarray(names)[channel],
            "topic": extra["topic"],
            "solved_first_contact": rng.random(n)
            < np.array([SOLVED_FIRST_CONTACT[c] for c in names])[channel],
        }
    )
    merged = pl.concat([contacts.drop("contact_id"), added.select(contacts.drop("contact_id").columns)])
    return _numbered(
        merged.sort("_month", "contacted_at", "_person", maintain_order=True), "contact_id", "KC"
    )


def with_planted_submissions(
    rng: np.random.Generator, pop: Population, care: Care, submissions: pl.DataFrame, extra: pl.DataFrame
) -> pl.DataFrame:
    """The submissions plus one digital submission per planted person-month (``synthetic.links``: _month,
    _person, _elderly: to the e-services alarm holders use); renumbered in time order."""
    period, n = pop.period, extra.height
    months, person = extra["_month"].to_numpy(), extra["_person"].to_numpy()
    service = np.where(
        extra["_elderly"].to_numpy(),
        rng.choice(len(voc.E_SERVICES), n, p=voc.E_SERVICE_WEIGHTS_ALARM),
        rng.choice(len(voc.E_SERVICES), n, p=voc.E_SERVICE_WEIGHTS_ADULTS),
    )
    added = pl.DataFrame(
        {
            "_month": extra["_month"],
            "_person": extra["_person"],
            "e_service": np.asarray(voc.E_SERVICES)[service],
            "channel": np.full(n, "digital"),
            "submitted_at": period.random_times(rng, months, np.zeros(n, bool)),
            "_alarm_holder": care.alarm_m[months, person],
        }
    )
    merged = pl.concat(
        [submissions.drop("submission_id"), added.select(submissions.drop("submission_id").columns)]
    )
    return _numbered(
        merged.sort("_month", "submitted_at", "_person", maintain_order=True), "submission_id", "ET"
    )


def patterns(pop: Population, care: Care, contacts: pl.DataFrame, submissions: pl.DataFrame) -> list[Pattern]:
    """Ground truth for home care → contacts, alarms → paper, and the two channel trends."""
    M = pop.period.months
    # Identified contacts per person-month, recipients of home care vs other resident adults.
    ident = contacts.filter(pl.col("_person") >= 0)
    per_month = ident.group_by("_month", "_person").len()
    hc_months = int(care.home_care_m.sum())
    adult_months = sum(int((pop.resident(m) & (pop.age_end_of_month(m) >= 18)).sum()) for m in range(M))
    hc_flag = care.home_care_m[per_month["_month"].to_numpy(), per_month["_person"].to_numpy()]
    hc_contacts = int(per_month["len"].to_numpy()[hc_flag].sum())
    other_contacts = int(per_month["len"].to_numpy()[~hc_flag].sum())
    rate_hc = hc_contacts / max(hc_months, 1)
    rate_other = other_contacts / max(adult_months - hc_months, 1)
    paper = submissions.group_by("_alarm_holder").agg((pl.col("channel") == "papper").mean(), pl.len())
    paper_share_by = dict(zip(paper["_alarm_holder"], paper["channel"], strict=True))
    n_by = dict(zip(paper["_alarm_holder"], paper["len"], strict=True))
    years = M / 12

    def by_year(frame: pl.DataFrame, column: str, value: str) -> list[float]:
        shares = (
            frame.with_columns(year=pl.col("_month") // 12)
            .group_by("year")
            .agg((pl.col(column) == value).mean())
            .sort("year")
        )
        return [round(v, 4) for v in shares[column].to_list()]

    return [
        Pattern(
            id="home_care_contact_centre",
            kind="association",
            units=("vard_omsorg", "kontaktcenter"),
            datasets=("vard_omsorg.hemtjanst", "kontaktcenter.kontakter"),
            description=(
                "People with home care (hemtjanst) in a month make far more identified contacts with the "
                "contact centre that month than other adults, mostly by phone about Äldreomsorg."
            ),
            effect={
                "planted_extra_contacts_per_recipient_month": HOME_CARE_EXTRA_CONTACTS_MONTH,
                "realised_contacts_per_person_month_home_care": round(rate_hc, 4),
                "realised_contacts_per_person_month_other_adults": round(rate_other, 4),
                "realised_rate_ratio": round(rate_hc / rate_other, 2) if rate_other else None,
            },
        ),
        Pattern(
            id="safety_alarm_paper_submissions",
            kind="association",
            units=("vard_omsorg", "e_tjanster"),
            datasets=("vard_omsorg.trygghetslarm", "e_tjanster.inlamningar"),
            description=(
                "Submissions by people holding a safety alarm (trygghetslarm) in the month are mostly on "
                "paper (kanal=papper); holders also submit more often, to elderly-care e-services."
            ),
            effect={
                "planted_paper_share_alarm_holders": PAPER_SHARE_ALARM,
                "planted_paper_share_others_start": PAPER_SHARE_START,
                "planted_paper_share_others_fall_per_year": PAPER_SHARE_FALL_PER_YEAR,
                "planted_extra_submissions_per_holder_month": ALARM_EXTRA_SUBMISSIONS_MONTH,
                "realised_paper_share_alarm_holders": realised(paper_share_by.get(True)),
                "realised_paper_share_others": realised(paper_share_by.get(False)),
                "realised_submissions_alarm_holders": n_by.get(True, 0),
            },
        ),
        Pattern(
            id="phone_share_falling",
            kind="trend",
            units=("kontaktcenter",),
            datasets=("kontaktcenter.kontakter",),
            description="The share of contacts by phone (kanal=telefon) falls steadily; chat, e-mail and web grow.",
            effect={
                "planted_phone_share_start": PHONE_SHARE_START,
                "planted_phone_share_end": round(float(phone_share(years - 1 / 12)), 4),
                "planted_fall_per_year": PHONE_SHARE_FALL_PER_YEAR,
                "realised_phone_share_by_year": by_year(contacts, "channel", "telefon"),
            },
        ),
        Pattern(
            id="digital_share_rising",
            kind="trend",
            units=("e_tjanster",),
            datasets=("e_tjanster.inlamningar",),
            description="The share of e-service submissions made digitally (kanal=digital) rises over time.",
            effect={
                "planted_digital_share_start_non_holders": round(1 - PAPER_SHARE_START, 4),
                "planted_rise_per_year": PAPER_SHARE_FALL_PER_YEAR,
                "realised_digital_share_by_year": by_year(submissions, "channel", "digital"),
            },
        ),
    ]
