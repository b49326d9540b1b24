"""KPI deviations for the managers' deviation list: which org unit's series stands out, and how.

Three detectors over the marts (aggregates only; no person data):

- ``kpi_deviation``: an org unit whose mean deviation from target is far from its peers' (same KPI,
  same level, at least ``MIN_PEERS`` units): robust z-score (median and MAD, with the unit's own
  standard error added to the spread, so a small unit's chance is not a deviation), reported at
  |z| >= ``MIN_Z`` and a material deviation of at least ``MIN_DEVIATION_PCT`` percent of target. A
  person-based series with fewer persons a month than the disclosure threshold (for a share: in the
  smaller of its two counts) is no peer (its share swings by chance, and it could never be shown).
- ``kpi_trend``: a series that keeps moving: Mann–Kendall (Kendall's tau against time) on the
  series with its month-of-year pattern removed, Theil–Sen slope with its interval; reported when
  the change is material (``MIN_TREND_REL`` of the level per year, or ``MIN_TREND_PP`` percentage
  points a year for shares). Budget KPIs (net cost, personnel cost) are tested on their deviation, since
  budgets grow by design; a rolling 12-month KPI (staff turnover) is not tested for trends.
- ``case_flow``: a case type that one förvaltning decides far more slowly than the others handling
  the same type: median days to decision, Mann–Whitney U against the other förvaltningar's cases,
  reported at a ratio of at least ``MIN_SLOWDOWN`` and ``MIN_EXTRA_DAYS`` more days.

Benjamini–Hochberg within each detector over every series tested. Each KPI is analysed at its finest
level only, so one deviating enhet is not reported again as its förvaltning and the kommun; and a trend
of a series whose deviation is reported is told in that deviation, not as a finding of its own.
"""

from __future__ import annotations

from dataclasses import replace

import duckdb
import numpy as np
import polars as pl
from scipy import stats

from pipelines.disclosure import DEFAULT_THRESHOLD
from pipelines.discovery.findings import (
    FDR,
    PART_OF_ANOTHER,
    Finding,
    benjamini_hochberg,
    forvaltning_or_total,
)
from warehouse.layout import content_digest

MIN_PEERS = 4
MIN_Z = 3.5
MIN_DEVIATION_PCT = 5.0
MIN_MONTHS = 12
MIN_TREND_REL = 0.05
MIN_TREND_PP = 2.0
MIN_SLOWDOWN = 3.0
MIN_EXTRA_DAYS = 5.0
MIN_FORVALTNINGAR = 3
BUDGET_KPIS = ("U90001", "U90076")  # against a budget that grows by design: trends on the deviation
# A rolling 12-month value shares 11 months with the next one, so its series trends by construction
# (Mann–Kendall assumes independent values): not tested for trends, only against its peers.
ROLLING_KPIS = ("U90073",)
# Where each KPI's numbers come from (for findings' datasets).
SOURCES = {
    "U90001": "ekonomi.utfall",
    "N31807": "socialtjanst.ekonomiskt_bistand",
    "U90010": "bygg_miljo.bygglov",
    "U90020": "arendehandelser.statushandelser",
    "U90030": "kontaktcenter.kontakter",
    "U90031": "kontaktcenter.kontakter",
    "U90040": "e_tjanster.inlamningar",
    "U90050": "vard_omsorg.hemtjanst",
    "U90060": "skola.meritvarde",
    "U90080": "direkt_feedback.betyg",
    "U90081": "direkt_feedback.betyg",
    **{f"U9007{i}": "personal.nyckeltal" for i in range(7)},
}
SERIES_SQL = """
    WITH finest AS (
        SELECT kpi_id, max(CASE level WHEN 'enhet' THEN 3 WHEN 'förvaltning' THEN 2 ELSE 1 END) AS depth
        FROM m.main.fct_kpi GROUP BY kpi_id
    )
    SELECT f.kpi_id, c.title, c.unit_of_measure, c.person_based, f.org_unit_id, f.forvaltning, f.enhet,
        f.month, f.actual, f.target, f.deviation_pct, coalesce(f.n_basis, 0) + coalesce(f.n_rest, 0) AS n,
        -- the smaller of the two counts a share is of (low ratings and the others), or its persons:
        -- what publishing a value needs at the threshold
        coalesce(least(f.n_basis, f.n_rest), f.n_basis, 0) AS n_smallest
    FROM m.main.fct_kpi f
    JOIN m.reference.kpi_catalogue c USING (kpi_id)
    JOIN finest ON finest.kpi_id = f.kpi_id
        AND CASE f.level WHEN 'enhet' THEN 3 WHEN 'förvaltning' THEN 2 ELSE 1 END = finest.depth
    WHERE f.actual IS NOT NULL
    ORDER BY f.kpi_id, f.org_unit_id, f.month
"""
CASES_SQL = """
    SELECT case_type, forvaltning, days_to_decision FROM m.main.fct_case
    WHERE days_to_decision IS NOT NULL
    ORDER BY ALL
"""


def load(con: duckdb.DuckDBPyConnection) -> tuple[pl.DataFrame, pl.DataFrame]:
    """KPI series at each KPI's finest level, and decided cases' days to decision (marts attached as m)."""
    series = pl.from_arrow(con.sql(SERIES_SQL).to_arrow_table())
    cases = pl.from_arrow(con.sql(CASES_SQL).to_arrow_table())
    return series, cases


def data_version(con: duckdb.DuckDBPyConnection) -> str:
    rows, digest = con.execute(f"SELECT count(*), {content_digest('f')} FROM m.main.fct_kpi f").fetchall()[0]
    cases, case_digest = con.execute(
        f"SELECT count(*), {content_digest('c')} FROM m.main.fct_case c"
    ).fetchall()[0]
    return f"marts:fct_kpi:{rows}:{(digest or 0):016x};fct_case:{cases}:{(case_digest or 0):016x}"


def analyse(series: pl.DataFrame, cases: pl.DataFrame, version: str) -> list[Finding]:
    return [*folded(deviations(series, version), trends(series, version)), *case_flow(cases, version)]


def folded(deviations: list[Finding], trends: list[Finding]) -> list[Finding]:
    """One finding per deviating series: a reported trend of a KPI and org unit whose deviation from its
    peers is reported is that deviation seen over time (a budget overrun that grows), so the deviation
    says it and the trend is kept, unreported, as part of it."""
    deviating = {f.finding_id.removeprefix("kpi_deviation:") for f in deviations if f.reported}
    growing = {
        key: t for t in trends if t.reported and (key := t.finding_id.removeprefix("kpi_trend:")) in deviating
    }
    return [
        *(
            replace(f, description=f"{f.description} {growing[key].description}")
            if (key := f.finding_id.removeprefix("kpi_deviation:")) in growing
            else f
            for f in deviations
        ),
        *(
            replace(t, reported=False, status=PART_OF_ANOTHER, detail=f"ingår i fyndet kpi_deviation:{key}")
            if (key := t.finding_id.removeprefix("kpi_trend:")) in growing
            else t
            for t in trends
        ),
    ]


# --- deviation from peers ----------------------------------------------------------------------------


def deviations(series: pl.DataFrame, version: str, threshold: int = DEFAULT_THRESHOLD) -> list[Finding]:
    """Org units far from their peers on a KPI (robust z over the units' mean deviation from target)."""
    per_unit = (
        series.drop_nulls("deviation_pct")
        .group_by(
            "kpi_id", "title", "person_based", "org_unit_id", "forvaltning", "enhet", maintain_order=True
        )
        .agg(
            mean=pl.col("deviation_pct").mean(),
            sd=pl.col("deviation_pct").std(),
            months=pl.len(),
            n=pl.col("n").sum(),
            smallest=pl.col("n_smallest").sum(),
            first=pl.col("month").min(),
            last=pl.col("month").max(),
        )
        # a person-based series of fewer persons a month than may be published is no peer: its share
        # swings by chance (four employees: a turnover of 0 or 25 %; a low-rating share of a unit rated
        # a few times a month), and it could never be shown
        .filter(~pl.col("person_based") | (pl.col("smallest") >= threshold * pl.col("months")))
    )
    rows = []
    for _, group in per_unit.group_by("kpi_id", maintain_order=True):
        if group.height < MIN_PEERS:
            continue
        x = group["mean"].to_numpy()
        centre = float(np.median(x))
        scale = max(1.4826 * float(np.median(np.abs(x - centre))), 0.5)  # 0.5 pp floor: MAD can be ~0
        spread = np.sqrt(scale**2 + _own_error(group) ** 2)
        for row, z in zip(group.iter_rows(named=True), (x - centre) / spread, strict=True):
            rows.append((row, float(z), centre, float(2 * stats.norm.sf(abs(z)))))
    q = benjamini_hochberg(np.array([p for *_, p in rows]))
    return [
        _deviation(row, z, centre, p, float(qv), version)
        for (row, z, centre, p), qv in zip(rows, q, strict=True)
    ]


def _own_error(group: pl.DataFrame) -> np.ndarray:
    """Each unit's standard error of its mean deviation, from its own months.

    The peers' spread (MAD) is mostly that of the large units; a small unit's mean also carries its own
    chance (a staff of 72 with a 10 % turnover sees 36 leavers in five years, give or take 6), and
    without it a small unit's chance excess looked like a deviation (IT-enheten's 54 leavers, robust
    z 6, at 60,000 x 5). A rolling 12-month value shares 11 months with the next: a series of them holds
    one independent value a year.
    """
    window = np.where(group["kpi_id"].is_in(ROLLING_KPIS).to_numpy(), 12.0, 1.0)
    sd = group["sd"].fill_null(0.0).to_numpy()
    return sd / np.sqrt(group["months"].to_numpy() / window)


def _deviation(row: dict, z: float, centre: float, p: float, q: float, version: str) -> Finding:
    mean, months = row["mean"], row["months"]
    half = (
        stats.t.ppf(0.975, months - 1) * (row["sd"] or 0.0) / np.sqrt(months) if months > 1 else float("nan")
    )
    reported = bool(q < FDR and abs(z) >= MIN_Z and abs(mean) >= MIN_DEVIATION_PCT)
    where = row["enhet"] or row["forvaltning"] or "kommunen"
    direction = "över" if mean > 0 else "under"
    return Finding(
        finding_id=f"kpi_deviation:{row['kpi_id']}:{row['org_unit_id']}",
        kind="kpi_deviation",
        title=f"{row['title']}: {where} avviker från jämförbara enheter",
        description=(
            f"{where} ligger i snitt {_num(abs(mean))} % {direction} målet för {row['title'].lower()} "
            f"({row['first']:%Y-%m}–{row['last']:%Y-%m}), medan jämförbara enheter ligger på {_num(centre)} %; "
            f"robust z = {_num(z)}."
        ),
        forvaltning=forvaltning_or_total(row["forvaltning"]),
        org_unit=row["enhet"],
        dataset_a=SOURCES.get(row["kpi_id"]),
        measure="genomsnittlig avvikelse från mål, procent",
        effect=float(mean),
        ci_low=float(mean - half) if np.isfinite(half) else None,
        ci_high=float(mean + half) if np.isfinite(half) else None,
        p_value=p,
        q_value=q,
        reported=reported,
        n_population=int(row["n"]) if row["person_based"] else None,
        about_persons=bool(row["person_based"]),
        detail=f"{months} månader; robust z {_num(z)} mot {MIN_PEERS - 1}+ jämförbara enheter",
        method=(
            "Robust z-poäng (median och MAD) för enhetens genomsnittliga avvikelse från mål mot övriga enheter "
            f"med samma nyckeltal och nivå; Benjamini–Hochberg; rapporteras vid |z| ≥ {MIN_Z:g} och minst "
            f"{MIN_DEVIATION_PCT:g} % avvikelse."
        ),
        data_version=version,
    )


# --- trends ---------------------------------------------------------------------------------------


def trends(series: pl.DataFrame, version: str) -> list[Finding]:
    rows = []
    for _, s in series.group_by("kpi_id", "org_unit_id", maintain_order=True):
        if s.height < MIN_MONTHS or s["kpi_id"][0] in ROLLING_KPIS:
            continue
        value = "deviation_pct" if s["kpi_id"][0] in BUDGET_KPIS else "actual"
        s = s.drop_nulls(value).sort("month")
        if s.height < MIN_MONTHS:
            continue
        rows.append((s, value, *_trend(s, value)))
    q = benjamini_hochberg(np.array([r[-1] for r in rows]))
    return [_trend_finding(*r[:-1], r[-1], float(qv), version) for r, qv in zip(rows, q, strict=True)]


def _trend(s: pl.DataFrame, value: str) -> tuple[float, float, float, float, float]:
    """(slope per year, its interval, the series' mean level, Mann–Kendall p) after removing seasonality."""
    y = s[value].to_numpy().astype(float)
    t = np.arange(len(y), dtype=float)
    if len(y) >= 24:  # two years or more: take away each calendar month's own level
        month = s["month"].dt.month().to_numpy()
        for m in np.unique(month):
            y[month == m] -= y[month == m].mean() - y.mean()
    slope, _, lo, hi = stats.theilslopes(y, t)
    p = float(stats.kendalltau(t, y).pvalue)
    return slope * 12, lo * 12, hi * 12, float(np.mean(s[value].to_numpy())), p if np.isfinite(p) else 1.0


def _trend_finding(
    s: pl.DataFrame,
    value: str,
    slope: float,
    lo: float,
    hi: float,
    level: float,
    p: float,
    q: float,
    version: str,
) -> Finding:
    row = s.row(0, named=True)
    points = value == "deviation_pct" or row["unit_of_measure"] == "procent"
    material = abs(slope) >= MIN_TREND_PP if points else abs(slope) >= MIN_TREND_REL * abs(level)
    where = row["enhet"] or row["forvaltning"] or "kommunen"
    unit = "procentenheter" if points else (row["unit_of_measure"] or "")
    what = "avvikelsen från budget" if value == "deviation_pct" else row["title"].lower()
    return Finding(
        finding_id=f"kpi_trend:{row['kpi_id']}:{row['org_unit_id']}",
        kind="kpi_trend",
        title=f"{row['title']}: {'stigande' if slope > 0 else 'sjunkande'} trend för {where}",
        description=(
            f"För {where} {'ökar' if slope > 0 else 'minskar'} {what} med {_num(abs(slope))} {unit} per år "
            f"({s['month'].min():%Y-%m}–{s['month'].max():%Y-%m}, säsong borträknad)."
        ),
        forvaltning=forvaltning_or_total(row["forvaltning"]),
        org_unit=row["enhet"],
        dataset_a=SOURCES.get(row["kpi_id"]),
        measure=f"lutning per år ({unit})",
        effect=float(slope),
        ci_low=float(lo),
        ci_high=float(hi),
        p_value=p,
        q_value=q,
        reported=bool(q < FDR and material),
        n_population=int(s["n"].sum()) if row["person_based"] else None,
        about_persons=bool(row["person_based"]),
        detail=f"{s.height} månader, medelnivå {_num(level)}",
        method=(
            "Mann–Kendall (Kendalls tau mot tid) efter borttagen säsong, Theil–Sen-lutning med 95 % KI; "
            f"Benjamini–Hochberg; rapporteras vid minst {MIN_TREND_PP:g} procentenheter eller "
            f"{MIN_TREND_REL:.0%} av nivån per år."
        ),
        data_version=version,
    )


# --- slow case types ------------------------------------------------------------------------------


def case_flow(cases: pl.DataFrame, version: str) -> list[Finding]:
    rows = []
    for (case_type,), group in cases.group_by("case_type", maintain_order=True):
        owners = group["forvaltning"].unique().sort().to_list()
        if len(owners) < MIN_FORVALTNINGAR:
            continue
        for f in owners:
            mine = group.filter(pl.col("forvaltning") == f)["days_to_decision"].to_numpy()
            others = group.filter(pl.col("forvaltning") != f)
            medians = others.group_by("forvaltning").agg(pl.col("days_to_decision").median())
            peer = float(np.median(medians["days_to_decision"].to_numpy()))
            p = float(stats.mannwhitneyu(mine, others["days_to_decision"].to_numpy()).pvalue)
            rows.append((case_type, f, mine, others.height, peer, p))
    q = benjamini_hochberg(np.array([r[-1] for r in rows]))
    return [_case_flow(*r, float(qv), version) for r, qv in zip(rows, q, strict=True)]


def _case_flow(
    case_type: str,
    forvaltning: str,
    days: np.ndarray,
    n_others: int,
    peer: float,
    p: float,
    q: float,
    version: str,
) -> Finding:
    median = float(np.median(days))
    ratio = median / peer if peer > 0 else float("inf")
    reported = bool(q < FDR and ratio >= MIN_SLOWDOWN and median - peer >= MIN_EXTRA_DAYS)
    return Finding(
        finding_id=f"case_flow:{case_type}:{forvaltning}",
        kind="case_flow",
        title=f"{case_type}: {forvaltning} beslutar långsammare än övriga",
        description=(
            f"{forvaltning} beslutar '{case_type}' på i median {_num(median)} dagar, övriga förvaltningar på "
            f"{_num(peer)} dagar ({_num(ratio)} gånger så lång tid)."
        ),
        forvaltning=forvaltning_or_total(forvaltning),
        dataset_a="arendehandelser.statushandelser",
        measure="kvot mellan mediantider till beslut",
        effect=float(ratio) if np.isfinite(ratio) else None,
        p_value=p,
        q_value=q,
        reported=reported,
        n_a=len(days),
        n_b=n_others,
        n_population=len(days) + n_others,
        about_persons=True,
        detail=f"median {_num(median)} dagar mot {_num(peer)} dagar",
        method=(
            "Mediantid till beslut per förvaltning mot medianen av övriga förvaltningars medianer för samma "
            f"ärendetyp; Mann–Whitney U; Benjamini–Hochberg; rapporteras vid minst {MIN_SLOWDOWN:g} gånger och "
            f"{MIN_EXTRA_DAYS:g} dagar längre."
        ),
        data_version=version,
    )


def _num(x: float) -> str:
    return f"{x:.1f}".replace(".", ",")
