"""Case handling: building-permit cases (bygg och miljö) and the case hub's status events.

Building permits are received at a seasonal rate, decided after a handling
time, and delivered in the month they are decided. Applicants are drawn
uniformly among resident adults, independently of every other service: the
null pairs (bygglov vs economic aid, bygglov vs safety alarms) rely on that.
Applicants contact the centre and submit e-services later (``synthetic.links``),
which leaves the null pairs null: neither aid nor alarms depend on those.

The case hub receives status events (mottaget, tilldelat, beslutat, avslutat)
from every case system; building permits appear there with the same
diarienummer. Planted: requests for public documents ("Begäran om allmän
handling") exist in every förvaltning and are handled in a day or two, except
in one förvaltning where they take weeks (pattern `slow_case_type`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from pipelines.units import UNITS
from synthetic.ground_truth import Pattern
from synthetic.population import Population

PERMITS_PER_RESIDENT_YEAR = 0.012
PERMIT_SEASON = np.array([0.6, 0.7, 1.2, 1.4, 1.5, 1.4, 1.0, 1.0, 1.1, 1.0, 0.6, 0.5])
PERMIT_TYPES = {"Nybyggnad": 0.35, "Tillbyggnad": 0.35, "Rivning": 0.10, "Marklov": 0.20}
PERMIT_MEDIAN_FEE = {"Nybyggnad": 28_000, "Tillbyggnad": 14_000, "Rivning": 4_500, "Marklov": 7_000}
PERMIT_HUB_TYPE = {
    "Nybyggnad": "Bygglov nybyggnad",
    "Tillbyggnad": "Bygglov tillbyggnad",
    "Rivning": "Rivningslov",
    "Marklov": "Marklov",
}
STATUSES = ("mottaget", "tilldelat", "beslutat", "avslutat")  # every case passes each, in this order
LEAD_MONTHS = 6  # cases received this many months before the period (in progress at its start)

PUBLIC_DOCUMENTS = "Begäran om allmän handling"
SLOW_UNIT = "socialtjanst"  # whose förvaltning handles PUBLIC_DOCUMENTS slowly
SLOW_DECISION_DAYS = 18.0
FAST_DECISION_DAYS = 1.5


@dataclass(frozen=True)
class CaseType:
    unit: str  # a unit of the förvaltning that owns the case (for the förvaltning's name)
    system: str
    name: str
    prefix: str  # diarium series
    per_1000_month: float
    assign_days: float
    decide_days: float
    close_days: float
    applicant_share: float = 0.0  # share of cases with an applicant's personnummer
    applicant_ages: tuple[int, int] = (18, 105)


CASE_TYPES: tuple[CaseType, ...] = (
    CaseType("socialtjanst", "Lifecare IFO", "Ansökan om ekonomiskt bistånd", "SN", 3.0, 1, 8, 2),
    CaseType("socialtjanst", "Lifecare IFO", "Barnavårdsutredning", "SN", 1.2, 1, 90, 5),
    CaseType("socialtjanst", "Platina", PUBLIC_DOCUMENTS, "SN", 0.6, 0.3, FAST_DECISION_DAYS, 0.5),
    CaseType("skola", "Tieto Edu", "Ansökan om förskoleplats", "UN", 2.0, 2, 20, 3, 1.0, (25, 45)),
    CaseType("skola", "Tieto Edu", "Ansökan om skolskjuts", "UN", 0.6, 2, 14, 2, 1.0, (28, 55)),
    CaseType("skola", "W3D3", PUBLIC_DOCUMENTS, "UN", 0.5, 0.3, FAST_DECISION_DAYS, 0.5),
    CaseType("vard_omsorg", "Lifecare SoL", "Ansökan om bistånd enligt SoL", "VON", 1.8, 1, 12, 3),
    CaseType("vard_omsorg", "Lifecare SoL", "Ansökan om färdtjänst", "VON", 0.8, 2, 18, 2, 1.0, (65, 105)),
    CaseType("vard_omsorg", "Platina", PUBLIC_DOCUMENTS, "VON", 0.4, 0.3, FAST_DECISION_DAYS, 0.5),
    CaseType("bygg_miljo", "Ecos", "Miljöanmälan", "MN", 0.6, 3, 25, 5),
    CaseType("bygg_miljo", "Ecos", "Registrering av livsmedelsanläggning", "MN", 0.2, 2, 10, 3),
    CaseType("bygg_miljo", "ByggR", PUBLIC_DOCUMENTS, "MN", 0.6, 0.3, FAST_DECISION_DAYS, 0.5),
    CaseType("ekonomi", "Public 360", "Synpunkt", "KS", 1.5, 1, 10, 2, 0.3),
    CaseType("ekonomi", "Public 360", "Medborgarförslag", "KS", 0.1, 5, 120, 10, 0.5),
    CaseType("ekonomi", "Public 360", PUBLIC_DOCUMENTS, "KS", 0.6, 0.3, FAST_DECISION_DAYS, 0.5),
)


def _case_months(pop: Population) -> tuple[np.ndarray, np.ndarray]:
    """Months in which cases are received (from LEAD_MONTHS before the period) and the residents then."""
    months = np.arange(-LEAD_MONTHS, pop.period.months)
    return months, np.array([pop.resident(max(m, 0)).sum() for m in months])


def _applicants(
    rng: np.random.Generator, pop: Population, months: np.ndarray, ages: tuple[int, int]
) -> np.ndarray:
    """One resident of the given age range per case, drawn uniformly in the case's month."""
    out = np.full(len(months), -1, dtype=np.int64)
    for m in np.unique(months):
        sel = np.flatnonzero(months == m)
        ref = int(min(max(m, 0), pop.period.months - 1))
        age = pop.age_end_of_month(ref)
        pool = np.flatnonzero(pop.resident(ref) & (age >= ages[0]) & (age <= ages[1]))
        if len(pool):
            out[sel] = rng.choice(pool, len(sel))
    return out


def _diarienummer(prefix: str, received: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """'PREFIX YYYY-NNNNNN', numbered by received date within each year.

    Numbers step by 1-3 (other records share the series) and the first number
    of a year reflects how far into the year the first case came.
    """
    order = np.argsort(received, kind="stable")
    year = received.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970
    number = np.zeros(len(received), dtype=np.int64)
    steps = rng.integers(1, 4, len(received))
    for y in np.unique(year):
        sel = order[year[order] == y]
        first_day = received[sel[0]] - np.datetime64(f"{y}-01-01", "D").astype(np.int64)
        per_day = len(sel) / max(received[sel[-1]] - received[sel[0]] + 1, 1)
        number[sel] = np.cumsum(steps[sel]) + int(first_day * per_day * 2)
    head = np.char.add(f"{prefix} ", year.astype("U4"))
    return np.char.add(np.char.add(head, "-"), np.char.zfill(number.astype("U6"), 6))


@dataclass
class Permits:
    frame: pl.DataFrame  # bygglov rows for cases decided within the period
    cases: pl.DataFrame  # every case: case_id, case_type, person, received, decided


def building_permits(rng: np.random.Generator, pop: Population) -> Permits:
    period, M = pop.period, pop.period.months
    allowed = UNITS["bygg_miljo"].dataset("bygglov").column("case_type").allowed
    assert set(PERMIT_TYPES) <= set(allowed or ()), "permit types not in spec"
    months, residents = _case_months(pop)
    cal = (period.first + months).astype(int) % 12
    count = rng.poisson(residents * PERMITS_PER_RESIDENT_YEAR / 12 * PERMIT_SEASON[cal])
    month = np.repeat(months, count)
    received = period.random_days(rng, month)
    handling = np.clip(np.round(rng.gamma(2.2, 14, len(month))), 3, 180).astype(np.int64)
    decided = received + handling
    kinds = np.asarray(list(PERMIT_TYPES))
    kind = rng.choice(len(kinds), len(month), p=list(PERMIT_TYPES.values()))
    median = np.asarray([PERMIT_MEDIAN_FEE[k] for k in kinds])[kind]
    fee = np.minimum(np.round(median * rng.lognormal(0, 0.5, len(month))), 1_000_000.0)
    person = _applicants(rng, pop, month, (18, 105))
    case_id = _diarienummer("BN", received, rng)
    decided_month = (decided.astype("datetime64[D]").astype("datetime64[M]") - period.first).astype(np.int64)
    cases = pl.DataFrame(
        {
            "case_id": case_id,
            "case_type": kinds[kind],
            "_person": person,
            "received_date": received.astype("datetime64[D]"),
            "decided_date": decided.astype("datetime64[D]"),
            "fee_sek": fee,
            "_month": decided_month.astype(np.int32),
        }
    )
    frame = cases.filter((pl.col("_month") >= 0) & (pl.col("_month") < M)).sort(
        "_month", "decided_date", "case_id", maintain_order=True
    )
    return Permits(frame=frame, cases=cases)


def case_events(rng: np.random.Generator, pop: Population, permits: Permits) -> pl.DataFrame:
    """statushandelser rows (_month, _person, case_id, source_system, forvaltning, case_type, status, event_at)."""
    allowed = UNITS["arendehandelser"].dataset("statushandelser").column("status").allowed or ()
    assert set(STATUSES) <= set(allowed), "statuses not in the contract"
    period, M = pop.period, pop.period.months
    months, residents = _case_months(pop)
    cases = []
    for ct in CASE_TYPES:
        month = np.repeat(months, rng.poisson(residents / 1000 * ct.per_1000_month))
        n = len(month)
        received = period.random_days(rng, month)
        decide = (
            SLOW_DECISION_DAYS if (ct.name == PUBLIC_DOCUMENTS and ct.unit == SLOW_UNIT) else ct.decide_days
        )
        with_person = rng.random(n) < ct.applicant_share
        steps = np.stack(
            [
                np.zeros(n),
                rng.exponential(ct.assign_days, n),
                rng.gamma(2.0, decide / 2.0, n),
                rng.exponential(ct.close_days, n),
            ],
            axis=1,
        )
        cases.append(
            pl.DataFrame(
                {
                    "source_system": np.full(n, ct.system),
                    "forvaltning": np.full(n, UNITS[ct.unit].forvaltning),
                    "case_type": np.full(n, ct.name),
                    "_prefix": np.full(n, ct.prefix),
                    "_person": np.where(with_person, _applicants(rng, pop, month, ct.applicant_ages), -1),
                    "_received": received,
                    "_steps": steps,
                }
            )
        )
    cases = pl.concat(cases)
    # One diarium series per prefix, shared by that förvaltning's case types.
    case_id = np.empty(cases.height, dtype=object)
    prefixes = cases["_prefix"].to_numpy()
    received_all = cases["_received"].to_numpy()
    for prefix in np.unique(prefixes):
        sel = np.flatnonzero(prefixes == prefix)
        case_id[sel] = _diarienummer(str(prefix), received_all[sel], rng)
    cases = cases.with_columns(case_id=pl.Series(case_id, dtype=pl.String)).drop("_prefix")

    # Building permits from the permit system keep their diarienummer and dates.
    pc = permits.cases
    received = pc["received_date"].cast(pl.Int64).to_numpy()
    decided = pc["decided_date"].cast(pl.Int64).to_numpy()
    assign = np.minimum(rng.integers(0, 6, pc.height), decided - received)
    steps = np.stack(
        [np.zeros(pc.height), assign, decided - received - assign, rng.integers(0, 11, pc.height)], axis=1
    )
    permit_cases = pl.DataFrame(
        {
            "source_system": np.full(pc.height, "ByggR"),
            "forvaltning": np.full(pc.height, UNITS["bygg_miljo"].forvaltning),
            "case_type": pc["case_type"].replace_strict(PERMIT_HUB_TYPE),
            "_person": pc["_person"],
            "_received": received,
            "_steps": steps.astype(float),
            "case_id": pc["case_id"],
        }
    )
    cases = pl.concat([cases, permit_cases])
    times = _status_times(rng, cases["_received"].to_numpy(), cases["_steps"].to_numpy())
    n = cases.height
    events = pl.DataFrame(
        {
            "case_id": np.repeat(cases["case_id"].to_numpy(), 4),
            "source_system": np.repeat(cases["source_system"].to_numpy(), 4),
            "forvaltning": np.repeat(cases["forvaltning"].to_numpy(), 4),
            "case_type": np.repeat(cases["case_type"].to_numpy(), 4),
            "status": np.tile(np.asarray(STATUSES), n),
            "event_at": (times.reshape(-1) * 1_000_000).astype("datetime64[us]"),
            "_person": np.repeat(cases["_person"].to_numpy(), 4),
        }
    )
    first = period.first.astype(np.int64)  # months since 1970-01
    month = events["event_at"].to_numpy().astype("datetime64[M]").astype(np.int64) - first
    events = events.with_columns(_month=pl.Series(month.astype(np.int32)))
    return events.filter((pl.col("_month") >= 0) & (pl.col("_month") < M)).sort(
        "_month", "event_at", "case_id", maintain_order=True
    )


def _status_times(rng: np.random.Generator, received: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Seconds since 1970 of the four statuses: whole-day steps, office hours, same-day steps later in the day."""
    n = len(received)
    out = np.zeros((n, 4), dtype=np.int64)
    day = received.astype(np.int64)
    second = rng.integers(8 * 3600, 16 * 3600, n)
    out[:, 0] = day * 86_400 + second
    for k in range(1, 4):
        step = np.floor(days[:, k]).astype(np.int64)
        day = day + step
        later = second + rng.integers(300, 7200, n)
        second = np.where(step == 0, later, rng.integers(8 * 3600, 16 * 3600 + 1800, n))
        out[:, k] = day * 86_400 + second
    return out


def patterns(
    pop: Population, events: pl.DataFrame, permits: Permits, aid: pl.DataFrame, alarm_m: np.ndarray
) -> list[Pattern]:
    """Ground truth for the slow case type and the null pairs around building permits."""
    lead = (
        events.filter(pl.col("case_type") == PUBLIC_DOCUMENTS)
        .group_by("case_id", "forvaltning")
        .agg(
            received=pl.col("event_at").filter(pl.col("status") == "mottaget").first(),
            decided=pl.col("event_at").filter(pl.col("status") == "beslutat").first(),
        )
        .drop_nulls()
        .group_by("forvaltning")
        .agg(
            days=((pl.col("decided") - pl.col("received")).dt.total_seconds() / 86_400).median(),
            cases=pl.len(),
        )
        .sort("forvaltning")
    )
    slow = UNITS[SLOW_UNIT].forvaltning
    medians = {f: round(d, 2) for f, d in zip(lead["forvaltning"], lead["days"], strict=True)}

    # Realised null, per resident adult and month: permit applications by people with and without the
    # other service that month (applicants are drawn among resident adults in the month received).
    M = pop.period.months
    adult_m = np.stack([pop.resident(m) & (pop.age_end_of_month(m) >= 18) for m in range(M)])
    cases = permits.cases
    app_month = cases["received_date"].to_numpy().astype("datetime64[M]").astype(
        np.int64
    ) - pop.period.first.astype(np.int64)
    inside = (app_month >= 0) & (app_month < M)
    app_month, app_person = app_month[inside], cases["_person"].to_numpy()[inside]

    def rates(service_m: np.ndarray) -> dict[str, float]:
        with_service = service_m[app_month, app_person]
        return {
            "realised_applications_per_adult_month_with_service": round(
                float(with_service.sum() / max((adult_m & service_m).sum(), 1)), 5
            ),
            "realised_applications_per_adult_month_without": round(
                float((~with_service).sum() / max((adult_m & ~service_m).sum(), 1)), 5
            ),
        }

    aid_m = np.zeros_like(adult_m)
    aid_m[aid["_month"].to_numpy(), aid["_person"].to_numpy()] = True

    null_text = (
        "Building-permit applicants are drawn uniformly among resident adults, independently of {}: "
        "no association (compare against all resident adults)."
    )
    return [
        Pattern(
            id="slow_case_type",
            kind="case_flow",
            units=("arendehandelser",),
            datasets=("arendehandelser.statushandelser",),
            description=(
                f"'{PUBLIC_DOCUMENTS}' is decided within a day or two in every förvaltning except {slow}, "
                "where the time from mottaget to beslutat is about three weeks."
            ),
            effect={
                "case_type": PUBLIC_DOCUMENTS,
                "forvaltning": slow,
                "planted_mean_days_to_decision_slow": SLOW_DECISION_DAYS,
                "planted_mean_days_to_decision_elsewhere": FAST_DECISION_DAYS,
                "realised_median_days_mottaget_to_beslutat": medians,
            },
        ),
        Pattern(
            id="null_bygglov_economic_aid",
            kind="null",
            units=("bygg_miljo", "socialtjanst"),
            datasets=("bygg_miljo.bygglov", "socialtjanst.ekonomiskt_bistand"),
            description=null_text.format("economic aid"),
            effect=rates(aid_m),
        ),
        Pattern(
            id="null_bygglov_safety_alarm",
            kind="null",
            units=("bygg_miljo", "vard_omsorg"),
            datasets=("bygg_miljo.bygglov", "vard_omsorg.trygghetslarm"),
            description=null_text.format("safety alarms"),
            effect=rates(alarm_m),
        ),
    ]
