"""Direkt feedback: citizens' ratings (1-5) of the service an enhet gave them, exported once a day.

Each rated service gets ratings at a daily rate per 1,000 citizens (half on weekends, when most
offices are closed), at a time in office hours. Ratings are mostly good; one enhet is planted with
many low ones (a ``deviation`` pattern in the manifest), and one service is rated so rarely that its
months fall under the disclosure threshold. About one rating in seven carries a comment; a few
comments hold a personnummer the citizen typed in ("ring mig, 19811218-9876"), in every written form,
which the border must drop.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipelines.units import UNITS
from synthetic.ground_truth import Pattern, enhet_deviation, realised
from synthetic.population import Population

# (unit key of the förvaltning, enhet, service, ratings a day per 1,000 citizens); enheter as in
# vocabulary.ENHETER, so every rating belongs to an enhet of the organisation tree.
SERVICES: tuple[tuple[str, str, str, float], ...] = (
    ("ekonomi", "Kontaktcenter", "Telefon", 3.0),
    ("ekonomi", "Kontaktcenter", "Chatt", 1.2),
    ("bygg_miljo", "Bygglovsenheten", "Bygglov", 0.6),
    ("bygg_miljo", "Bygglovsenheten", "Bygglovsrådgivning", 0.5),
    ("bygg_miljo", "Miljö och hälsa", "Tillsynsbesök", 0.3),
    ("bygg_miljo", "Gata och park", "Felanmälan", 0.04),  # rarely rated: months under the threshold
    ("vard_omsorg", "Hemtjänst Norr", "Hemtjänstbesök", 1.0),
    ("vard_omsorg", "Hemtjänst Söder", "Hemtjänstbesök", 1.0),
    ("socialtjanst", "Försörjningsstöd", "Besök i receptionen", 0.5),
    ("skola", "Förskola", "Förskoleplacering", 0.4),
)
RATING_SHARES = np.array([0.03, 0.04, 0.13, 0.35, 0.45])  # ratings 1..5: mean about 4.1, 7 % low
LOW_ENHET = ("vard_omsorg", "Hemtjänst Söder")
LOW_RATING_SHARES = np.array([0.15, 0.17, 0.23, 0.25, 0.20])  # mean about 3.2, 32 % low
WEEKEND_FACTOR = 0.5
COMMENT_SHARE = 0.15
PERSONNUMMER_SHARE = 0.002  # of ratings: a comment with the citizen's personnummer typed in
GOOD_COMMENTS = (
    "Trevligt bemötande",
    "Snabb och tydlig hjälp",
    "Bra service, tack!",
    "Fick svar direkt",
    "Kunnig personal",
)
POOR_COMMENTS = (
    "Fick vänta länge",
    "Ingen ringde tillbaka",
    "Otydligt besked",
    "Personalen hade bråttom",
    "Svårt att komma fram",
)
PERSONNUMMER_COMMENTS = (
    "Ring mig gärna, mitt personnummer är {}",
    "Gäller min ansökan ({}), ingen har hört av sig",
    "{} - vill bli kontaktad",
)


def ratings(rng: np.random.Generator, pop: Population) -> tuple[pl.DataFrame, list[Pattern]]:
    """betyg rows (_month, _day, rating_id, rated_at, forvaltning, enhet, service, rating, comment) and
    the planted low-rating enhet."""
    period = pop.period
    days = np.arange(period.start_day(0), period.end_day(period.months - 1) + 1)
    weekend = ((days + 3) % 7) >= 5  # day 0 (1970-01-01) was a Thursday
    citizens = int(pop.resident(0).sum())
    frames = []
    for key, enhet, service, rate in SERVICES:
        expected = rate * citizens / 1000 * np.where(weekend, WEEKEND_FACTOR, 1.0)
        day = np.repeat(days, rng.poisson(expected))
        shares = LOW_RATING_SHARES if (key, enhet) == LOW_ENHET else RATING_SHARES
        rating = rng.choice(np.arange(1, 6), size=len(day), p=shares)
        seconds = rng.integers(8 * 3600, 17 * 3600, len(day))
        rated_at = day.astype("datetime64[D]").astype("datetime64[ms]") + seconds.astype("timedelta64[s]")
        frames.append(
            pl.DataFrame(
                {
                    "_day": day.astype("datetime64[D]"),
                    "rated_at": rated_at,
                    "forvaltning": UNITS[key].forvaltning,
                    "enhet": enhet,
                    "service": service,
                    "rating": rating.astype(np.int64),
                }
            )
        )
    frame = pl.concat(frames).sort("rated_at", "enhet", "service", maintain_order=True)
    frame = frame.with_columns(
        comment=pl.Series(_comments(rng, frame["rating"].to_numpy(), pop), dtype=pl.String),
        rating_id=pl.format("DF-{}", pl.int_range(1, frame.height + 1).cast(pl.String).str.zfill(8)),
        _month=_month_index(frame["_day"].to_numpy(), period.first),
    )
    return frame, [_low_pattern(frame)]


def _month_index(day: np.ndarray, first: np.datetime64) -> pl.Series:
    months = day.astype("datetime64[M]") - first.astype("datetime64[M]")
    return pl.Series(months.astype(np.int32))


def _comments(rng: np.random.Generator, rating: np.ndarray, pop: Population) -> list[str | None]:
    """A comment for about one rating in seven, worded after the rating; a few hold a personnummer."""
    n = len(rating)
    has = rng.random(n) < COMMENT_SHARE
    pick = rng.integers(0, len(GOOD_COMMENTS), n)
    typed = rng.random(n) < PERSONNUMMER_SHARE
    person = rng.integers(0, pop.persons, n)
    form = rng.integers(0, 4, n)
    template = rng.integers(0, len(PERSONNUMMER_COMMENTS), n)
    out: list[str | None] = []
    for i in range(n):
        if typed[i]:
            number = _written(str(pop.pnr12[person[i]]), int(form[i]))
            out.append(PERSONNUMMER_COMMENTS[template[i]].format(number))
        elif has[i]:
            out.append((GOOD_COMMENTS if rating[i] >= 4 else POOR_COMMENTS)[pick[i]])
        else:
            out.append(None)
    return out


def _written(pnr12: str, form: int) -> str:
    """YYYYMMDD-NNNN, YYYYMMDDNNNN, YYMMDD-NNNN or YYMMDDNNNN: as a citizen might type it."""
    return (
        f"{pnr12[:8]}-{pnr12[8:]}",
        pnr12,
        f"{pnr12[2:8]}-{pnr12[8:]}",
        pnr12[2:],
    )[form]


def _low_pattern(frame: pl.DataFrame) -> Pattern:
    key, enhet = LOW_ENHET
    low = frame.group_by(pl.col("enhet") == enhet).agg((pl.col("rating") <= 2).mean().alias("share"))
    shares = {planted: share for planted, share in low.iter_rows()}
    return enhet_deviation(
        "feedback_low_ratings_" + enhet.lower().replace(" ", "_").replace("ä", "a").replace("ö", "o"),
        "direkt_feedback.betyg",
        UNITS[key].forvaltning,
        enhet,
        f"Enhet '{enhet}' ({UNITS[key].forvaltning}) gets many low ratings (1-2) in Direkt feedback.",
        planted_low_share=round(float(LOW_RATING_SHARES[:2].sum()), 4),
        realised_low_share=realised(shares.get(True)),
        realised_low_share_others=realised(shares.get(False)),
    )
