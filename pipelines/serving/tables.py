"""What the serving snapshot holds: one query per table over the marts, and how each is protected.

Queries run on a connection where ``warehouse/marts.duckdb`` is attached read-only as ``m`` and the
cross-unit zone as ``cu``. Only aggregates leave: no citizen key, pseudonym or case id. Tables with
counts carry their margins (``Totalt`` rows, as GROUP BY CUBE) so secondary suppression sees every
total a reader could subtract from. Every fact row has ``forvaltning`` where it belongs to one, for
row-level security per förvaltning in Superset.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipelines.disclosure import TOTAL, TableSpec
from pipelines.disclosure.spec import Identity


@dataclass(frozen=True)
class Published:
    spec: TableSpec
    sql: str
    description: str  # Swedish: shown to whoever opens the snapshot
    unpublished: tuple[str, ...] = ()  # counts used for protection, then dropped
    needs_panel: bool = False


def _t(column: str) -> str:
    return f"coalesce({column}, '{TOTAL}')"


AGE_BAND = """CASE WHEN age < 6 THEN '0–5 år' WHEN age < 16 THEN '6–15 år' WHEN age < 20 THEN '16–19 år'
    WHEN age < 65 THEN '20–64 år' WHEN age < 80 THEN '65–79 år' ELSE '80 år och äldre' END"""

REFERENCE = {
    "org_unit": (
        "SELECT * FROM m.main.dim_org_unit ORDER BY depth, org_unit_id",
        "Organisationsträd: kommun, förvaltning, enhet.",
    ),
    "month": ("SELECT * FROM m.main.dim_month ORDER BY month", "Månader med tertial och kvartal."),
    "kpi": (
        "SELECT * FROM m.reference.kpi_catalogue ORDER BY kpi_id",
        "Nyckeltal med metadata i Koladas form.",
    ),
    "kpi_target": (
        "SELECT * FROM m.reference.kpi_targets ORDER BY kpi_id, year",
        "Mål och gränser för trafikljus.",
    ),
}

KPI_VALUE = Published(
    TableSpec(
        "kpi_value",
        dimensions=("kpi_id", "forvaltning", "enhet", "month"),
        counts=("n_underlag", "n_ovriga"),
        margins=("forvaltning", "enhet"),
        derived={
            c: ("n_underlag", "n_ovriga")
            for c in ("actual", "forecast", "deviation", "deviation_pct", "forecast_deviation", "status")
        },
        applies="person_based",
        only_where={"n_ovriga": "is_share_of_counts"},
        # U90020 shows the case flow's own cells (build.py copies them): in time and late decisions
        # of each förvaltning (and the kommun) and month are the case flow's decided minus late, and late.
        identities=(
            Identity(
                "case_flow",
                on=("forvaltning", "month"),
                terms={
                    "n_underlag": {"n_decided": 1.0, "n_decided_late": -1.0},
                    "n_ovriga": {"n_decided_late": 1.0},
                },
                where=(pl.col("kpi_id") == "U90020") & (pl.col("enhet") == TOTAL),
                other_where=pl.col("case_type") == TOTAL,
            ),
        ),
    ),
    f"""SELECT f.kpi_id, c.title, f.org_unit_id, f.level, {_t("f.forvaltning")} AS forvaltning,
        {_t("f.enhet")} AS enhet, f.month, f.year,
        f.actual, f.target, f.plan, f.plan_year, f.forecast, f.deviation, f.deviation_pct,
        f.forecast_deviation, f.status, f.n_basis AS n_underlag, f.n_rest AS n_ovriga,
        c.person_based, f.n_rest IS NOT NULL AS is_share_of_counts, c.aggregation
    FROM m.main.fct_kpi f JOIN m.reference.kpi_catalogue c USING (kpi_id)
    ORDER BY f.kpi_id, f.org_unit_id, f.month""",
    "Nyckeltal per organisationsenhet och månad: utfall, mål, plan, helårsprognos, avvikelse, trafikljus. "
    "n_underlag: antal bakom värdet (med egenskapen, för en andel); n_ovriga: antal utan (för en andel).",
)

CASE_FLOW = Published(
    TableSpec(
        "case_flow",
        dimensions=("forvaltning", "case_type", "month"),
        counts=(
            "n_received",
            "n_decided",
            "n_closed",
            "n_backlog",
            "n_backlog_past_promise",
            "n_decided_late",
        ),
        margins=("forvaltning", "case_type"),
        complements={"n_decided_late": "n_decided", "n_backlog_past_promise": "n_backlog"},
        derived={"median_days_to_decision": ("n_decided",)},
    ),
    f"""WITH counts AS (
        SELECT {_t("forvaltning")} AS forvaltning, {_t("case_type")} AS case_type, month,
            sum(n_received)::BIGINT AS n_received, sum(n_decided)::BIGINT AS n_decided,
            sum(n_closed)::BIGINT AS n_closed, sum(n_backlog)::BIGINT AS n_backlog,
            sum(n_backlog_past_promise)::BIGINT AS n_backlog_past_promise,
            sum(n_decided_late)::BIGINT AS n_decided_late
        FROM m.main.fct_case_flow_month
        GROUP BY month, CUBE (forvaltning, case_type)
    ), medians AS (
        SELECT {_t("forvaltning")} AS forvaltning, {_t("case_type")} AS case_type,
            date_trunc('month', decided_at)::DATE AS month, median(days_to_decision) AS median_days_to_decision
        FROM m.main.fct_case WHERE days_to_decision IS NOT NULL
        GROUP BY date_trunc('month', decided_at)::DATE, CUBE (forvaltning, case_type)
    )
    SELECT c.*, md.median_days_to_decision
    FROM counts c LEFT JOIN medians md USING (forvaltning, case_type, month)
    ORDER BY month, forvaltning, case_type""",
    "Ärendeflöde per förvaltning, ärendetyp och månad: inkomna, beslutade (varav sent), avslutade, "
    "balans vid månadens slut (varav över servicelöftet).",
)

# Lead times are statistics, not counts: a step's median, mean and p90 are shown only where at least
# `threshold` cases are behind them. The case counts themselves are not published here: they would
# be a second, differently suppressed copy of the case flow's counts.
CASE_STEP = Published(
    TableSpec(
        "case_step",
        dimensions=("forvaltning", "case_type", "step", "tertial_label"),
        counts=("n_cases",),
        derived={c: ("n_cases",) for c in ("median_days", "mean_days", "p90_days", "is_bottleneck")},
    ),
    f"""WITH steps AS (
        SELECT forvaltning, case_type, 1 AS step_order, 'mottaget → tilldelat' AS step,
            assigned_at AS ended_at, days_received_to_assigned AS days FROM m.main.fct_case
        UNION ALL SELECT forvaltning, case_type, 2, 'tilldelat → beslutat', decided_at, days_assigned_to_decided
            FROM m.main.fct_case
        UNION ALL SELECT forvaltning, case_type, 3, 'beslutat → avslutat', closed_at, days_decided_to_closed
            FROM m.main.fct_case
    ), dated AS (
        SELECT s.*, d.year, d.tertial, d.tertial_label
        FROM steps s JOIN m.main.dim_month d ON d.month = date_trunc('month', s.ended_at)
        WHERE s.days IS NOT NULL
    ), agg AS (
        SELECT {_t("forvaltning")} AS forvaltning, {_t("case_type")} AS case_type, step_order, step,
            year, tertial, tertial_label, count(*) AS n_cases, median(days) AS median_days,
            avg(days::DECIMAL(38, 6))::DOUBLE AS mean_days, quantile_cont(days, 0.9) AS p90_days
        FROM dated
        GROUP BY step_order, step, year, tertial, tertial_label, CUBE (forvaltning, case_type)
    )
    SELECT *, median_days = max(median_days) OVER (PARTITION BY forvaltning, case_type, tertial_label)
        AS is_bottleneck
    FROM agg ORDER BY year, tertial, forvaltning, case_type, step_order""",
    "Ledtid per steg i ärendeprocessen per tertial (median, medel, 90:e percentil) och flaskhalsen; "
    "visas där minst tröskelns antal ärenden ligger bakom.",
    unpublished=("n_cases",),
)

BENEFIT = Published(
    TableSpec(
        "benefit_realisation",
        dimensions=("initiative_id", "year"),
        counts=("n_underlag", "n_ovriga"),
        derived={"actual": ("n_underlag", "n_ovriga"), "progress_pct": ("n_underlag", "n_ovriga")},
        only_where={"n_ovriga": "is_share_of_counts"},
    ),
    """SELECT b.* EXCLUDE (n_basis, n_rest), b.n_basis::BIGINT AS n_underlag, b.n_rest::BIGINT AS n_ovriga,
        b.n_rest IS NOT NULL AS is_share_of_counts
    FROM m.main.fct_benefit_realisation b
    ORDER BY b.initiative_id, b.year""",
    "Nyttorealisering per initiativ och år: nuläge, mål, utfall, ägare och slutdatum. Ett år visas "
    "bara om varje månad av nyckeltalet visas.",
)

_PANEL_HAS = (
    "economic_aid", "school", "home_care", "nursing_home", "safety_alarm", "contact",
    "e_service", "building_permit", "hub_case",
)  # fmt: skip
_PANEL_COUNTS = {
    "n_persons": "count(*)",
    **{
        f"n_{x}": f"CASE WHEN count(has_{x}) = 0 THEN NULL ELSE count(*) FILTER (has_{x}) END"
        for x in _PANEL_HAS
    },
    **{
        f"n_{x}": f"sum({x})::BIGINT"
        for x in ("contacts", "phone_contacts", "submissions", "paper_submissions")
    },
}

DISCOVERY = Published(
    TableSpec(
        "discovery_quarter",
        dimensions=("quarter", "district", "age_band"),
        counts=tuple(_PANEL_COUNTS),
        margins=("district", "age_band"),
        complements={
            **{f"n_{x}": "n_persons" for x in _PANEL_HAS},  # everyone but 2 in the cell has it
            "n_phone_contacts": "n_contacts",  # contacts by other channels: 3 of 40 contacts
            "n_paper_submissions": "n_submissions",  # digital submissions
        },
        # persons with a contact (a submission) had at least one each: no more of them than contacts
        at_most={"n_contact": "n_contacts", "n_e_service": "n_submissions"},
    ),
    f"""WITH panel AS (
        SELECT quarter, coalesce(district, 'Okänt') AS district, {AGE_BAND} AS age_band, *
            EXCLUDE (quarter, district, citizen_key, birth_year, sex)
        FROM cu.discovery.citizen_quarter
    )
    SELECT quarter, {_t("district")} AS district, {_t("age_band")} AS age_band,
        {", ".join(f"{expr} AS {name}" for name, expr in _PANEL_COUNTS.items())}
    FROM panel
    GROUP BY quarter, CUBE (district, age_band)
    ORDER BY quarter, district, age_band""",
    "Invånare per kvartal, distrikt och åldersgrupp med insatser från flera verksamheter (från panelen).",
    needs_panel=True,
)

# In this order: the KPIs copy the protected case flow, benefit realisation reads the protected KPIs.
PROTECTED = (CASE_FLOW, KPI_VALUE, BENEFIT, CASE_STEP, DISCOVERY)

# Discovery findings (pipelines/discovery): reported findings from the cross-unit zone. Every group a
# finding rests on must reach the threshold, else the whole finding is withheld (build.py does that
# before protection); a count that a kind does not have (a budget deviation is about kronor) carries
# applies_<count> = false. The effect and everything computed with the counts go with them.
FINDING_COUNTS = ("n_a", "n_b", "n_both", "n_population")
FINDING_COLUMNS = (
    "finding_id", "kind", "forvaltning", "title", "description", "org_unit", "dataset_a", "dataset_b",
    "measure", "effect", "ci_low", "ci_high", "p_value", "q_value", *FINDING_COUNTS, "detail", "method",
    "data_version", "analysed_at", "about_persons",
)  # fmt: skip
FINDINGS = Published(
    TableSpec(
        "discovery_findings",
        dimensions=("finding_id",),
        counts=FINDING_COUNTS,
        derived={c: FINDING_COUNTS for c in ("effect", "ci_low", "ci_high", "p_value", "q_value", "detail")},
        applies="about_persons",
        only_where={c: f"applies_{c}" for c in FINDING_COUNTS},
    ),
    "",  # built from the analyses' tables that exist: findings_sql()
    "Dataupptäckt: rapporterade fynd över verksamhetsgränser (samband, ordningsföljd, segment, "
    "avvikelser i nyckeltal och ärendeflöden) med effektmått, konfidensintervall, gruppstorlekar, metod "
    "och dataversion. Fynd där någon grupp understiger tröskeln visas inte.",
    needs_panel=True,
)


# What every tested association came to (pipelines/discovery/associations.py): tested without a link, too
# little data for an effect of the reference size (with the smallest effect it would report), a link
# below the margin, reported, or not shared. The counts protect the smallest detectable effect (it is
# computed from them) and are not published; publishable_statuses says only "too little data" for a
# hypothesis with a small group, whatever it came to.
TESTED_COUNTS = ("n_a", "n_b", "n_both")
TESTED = Published(
    TableSpec(
        "discovery_tested",
        dimensions=("finding_id",),
        counts=TESTED_COUNTS,
        derived={"min_detectable": TESTED_COUNTS},
    ),
    "SELECT finding_id, dataset_a, dataset_b, measure, lag_quarters, status, min_detectable, n_a, n_b, "
    "n_both, reported, detail, data_version FROM cu.discovery.associations ORDER BY finding_id",
    "Dataupptäckt: varje testat par av insatser (samma kvartal och med fördröjning, och meritvärde i "
    "årskurs 9) och vad testet gav: rapporterat, testat utan samband, för lite data för en effekt av "
    "referensstorleken (med den minsta effekt som hade rapporterats, min_detectable: oddskvot eller "
    "meritpoäng), samband under marginalen, eller delas inte (kan inte testas). Gruppstorlekar visas "
    "inte; där en grupp understiger tröskeln står bara att det är för lite data.",
    unpublished=TESTED_COUNTS,
    needs_panel=True,
)


def findings_sql(tables: list[str]) -> str:
    """The reported findings of every analysis table present in the cross-unit zone's discovery schema."""
    columns = ", ".join((*FINDING_COLUMNS, "reported", "lag_counts"))  # the last two are not published
    union = " UNION ALL ".join(f"SELECT {columns} FROM cu.discovery.{t} WHERE reported" for t in tables)
    return f"{union} ORDER BY kind, finding_id"
