"""Build the snapshot's tables from the marts and protect them: what a publish writes.

The marts and the cross-unit zone are attached read-only; every protected table is sorted by its
dimensions before suppression (so the same data always gives the same withheld cells), protected,
audited, and refused if the audit still finds a disclosure. Two metadata tables travel with the
data: ``_disclosure`` (the role of every column, so anyone can re-check the snapshot) and
``_snapshot`` (when, with which threshold, what).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from pipelines.disclosure import DEFAULT_THRESHOLD, TOTAL, TableSpec, audit, protect, withhold_running
from pipelines.discovery.findings import TABLES as FINDING_TABLES
from pipelines.discovery.findings import publishable
from pipelines.discovery.precedence import lag_distribution
from pipelines.serving.tables import FINDINGS, PROTECTED, REFERENCE, Published, findings_sql


class DisclosureError(RuntimeError):
    """The protected tables still disclose a small count: nothing is published."""


@dataclass(frozen=True)
class Build:
    tables: dict[str, pl.DataFrame]
    comments: dict[str, str]
    withheld: dict[str, int]  # per table: cells withheld (primary + secondary, all count columns)


def build_tables(marts: Path, cross_unit: Path, threshold: int = DEFAULT_THRESHOLD) -> Build:
    """Every table of the snapshot, disclosure-controlled, with its metadata tables."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{marts}' AS m (READ_ONLY)")
        has_panel = cross_unit.exists()
        if has_panel:
            con.execute(f"ATTACH '{cross_unit}' AS cu (READ_ONLY)")
            has_panel = bool(
                con.execute(
                    "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'cu' "
                    "AND schema_name = 'discovery' AND table_name = 'citizen_quarter'"
                ).fetchall()[0][0]
            )
        tables = {name: _frame(con, sql) for name, (sql, _) in REFERENCE.items()}
        comments = {name: text for name, (_, text) in REFERENCE.items()}
        raw = {
            t.spec.name: _frame(con, t.sql).sort(list(t.spec.dimensions), nulls_last=True)
            for t in PROTECTED
            if has_panel or not t.needs_panel
        }
        found = _finding_tables(con) if has_panel else []
        findings = _frame(con, findings_sql(found)) if found else None
    finally:
        con.close()
    withheld: dict[str, int] = {}
    for table in PROTECTED:  # in order: the case flow is protected before the KPIs copy its cells
        if table.spec.name not in raw:
            continue
        frame = raw[table.spec.name]
        if table.spec.name == "kpi_value":
            frame = _case_flow_cells(frame, tables["case_flow"])
        if table.spec.name == "benefit_realisation":
            frame = _whole_years_only(frame, tables["kpi_value"])
        tables[table.spec.name], withheld[table.spec.name] = _protect(frame, table, threshold)
        comments[table.spec.name] = table.description
    if findings is not None:
        frame = _lags_at(_findings_on_published_cells(publishable(findings, threshold), tables), threshold)
        tables[FINDINGS.spec.name], withheld[FINDINGS.spec.name] = _protect(frame, FINDINGS, threshold)
        withheld[FINDINGS.spec.name] += findings.height - frame.height  # whole findings withheld
        comments[FINDINGS.spec.name] = FINDINGS.description
    published = [t for t in (*PROTECTED, FINDINGS) if t.spec.name in tables]
    tables["_disclosure"] = _disclosure_table(published, threshold)
    tables["_snapshot"] = pl.DataFrame(
        {
            "published_at": [datetime.now(UTC).replace(tzinfo=None)],
            "threshold": [threshold],
            "tables": [", ".join(sorted(tables))],
        }
    )
    comments["_disclosure"] = "Röjandekontroll: varje kolumns roll, tröskel och vad som döljs med vad."
    comments["_snapshot"] = "När ögonblicksbilden publicerades och med vilken tröskel."
    return Build(tables, comments, withheld)


def _finding_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    present = {
        t
        for (t,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'cu' AND schema_name = 'discovery'"
        ).fetchall()
    }
    return [t for t in FINDING_TABLES if t in present]


def _findings_on_published_cells(findings: pl.DataFrame, tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Keep what a finding publishes consistent with the tables' protected cells.

    A KPI finding about persons adds up months of ``kpi_value`` cells: it is shown only if every one
    of them is shown, or it would give a withheld month back. A case-flow finding compares medians:
    like the lead times in ``case_step`` it is a statistic shown where enough cases are behind it
    (checked already), and its case counts are not published a second time beside ``case_flow``'s.
    """
    if findings.is_empty():
        return findings
    kpi = tables.get("kpi_value")
    keep = []
    for row in findings.iter_rows(named=True):
        kind, _, rest = row["finding_id"].partition(":")
        if row["about_persons"] and kind in ("kpi_deviation", "kpi_trend"):
            kpi_id, org_unit_id = rest.split(":", 1)
            cells = kpi.filter((pl.col("kpi_id") == kpi_id) & (pl.col("org_unit_id") == org_unit_id))
            keep.append(cells.height > 0 and cells["n_underlag"].null_count() == 0)
        else:
            keep.append(True)
    flow = pl.col("kind") == "case_flow"
    counts = [c for c in FINDINGS.spec.counts]
    return findings.filter(pl.Series(keep, dtype=pl.Boolean)).with_columns(
        *[pl.when(flow).then(None).otherwise(pl.col(c)).alias(c) for c in counts],
        *[pl.when(flow).then(False).otherwise(pl.col(f"applies_{c}")).alias(f"applies_{c}") for c in counts],
    )


def _lags_at(findings: pl.DataFrame, threshold: int) -> pl.DataFrame:
    """Precedence lag distributions rendered with this publish's threshold, from the zone's counts."""
    detail = [
        lag_distribution([int(c) for c in lags.split(",")], threshold) if lags else text
        for text, lags in zip(findings["detail"], findings["lag_counts"], strict=True)
    ]
    return findings.with_columns(pl.Series("detail", detail, dtype=pl.String)).drop("lag_counts")


def _frame(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    return pl.from_arrow(con.sql(sql).to_arrow_table())


def _protect(frame: pl.DataFrame, table: Published, threshold: int) -> tuple[pl.DataFrame, int]:
    result = protect(frame, table.spec, threshold)
    out = result.frame
    if table.spec.name == "kpi_value":
        # A forecast is the year to date: two published in a row would give away the month between.
        out = withhold_running(
            out,
            ["forecast", "forecast_deviation"],
            count="n_underlag",
            order="month",
            by=["kpi_id", "org_unit_id", "year"],
            applies=pl.col("person_based"),
        )
    if problems := audit(out, table.spec, threshold):
        raise DisclosureError(f"{len(problems)} disclosures left, e.g. {problems[0]}")
    return out.drop(table.unpublished), sum(result.primary.values()) + sum(result.secondary.values())


def _case_flow_cells(kpi: pl.DataFrame, case_flow: pl.DataFrame) -> pl.DataFrame:
    """U90020 (decided within the service promise) shows the case flow's own protected cells.

    Its counts are the case flow's decided and late counts per förvaltning and month; computed and
    suppressed separately, the two tables could each fill in what the other withheld.
    """
    flow = case_flow.filter(pl.col("case_type") == TOTAL).select(
        "forvaltning",
        "month",
        (pl.col("n_decided") - pl.col("n_decided_late")).alias("_in_time"),
        pl.col("n_decided_late").alias("_late"),
    )
    joined = kpi.join(flow, on=["forvaltning", "month"], how="left")
    is_u90020 = pl.col("kpi_id") == "U90020"
    return joined.with_columns(
        pl.when(is_u90020).then(pl.col("_in_time")).otherwise(pl.col("n_underlag")).alias("n_underlag"),
        pl.when(is_u90020).then(pl.col("_late")).otherwise(pl.col("n_ovriga")).alias("n_ovriga"),
    ).drop("_in_time", "_late")


def _whole_years_only(benefit: pl.DataFrame, kpi: pl.DataFrame) -> pl.DataFrame:
    """A year's value sums its months: shown only if no month of it was withheld from kpi_value.

    The baseline is the first year's value, so a withheld baseline year withholds baseline and target.
    """
    owned = kpi.filter(pl.col("person_based"))
    partial = owned.group_by("kpi_id", "year").agg(pl.col("n_underlag").is_null().any().alias("_partial"))
    joined = benefit.join(partial, on=["kpi_id", "year"], how="left").with_columns(
        pl.col("_partial").fill_null(False)
    )
    joined = joined.join(
        partial.rename({"year": "baseline_year", "_partial": "_baseline_partial"}),
        on=["kpi_id", "baseline_year"],
        how="left",
    ).with_columns(pl.col("_baseline_partial").fill_null(False))
    hide = [
        pl.when(pl.col("_partial")).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("n_underlag", "n_ovriga")
    ]
    base = [
        pl.when(pl.col("_baseline_partial")).then(None).otherwise(pl.col(c)).alias(c)
        for c in ("baseline", "target", "progress_pct")
    ]
    return joined.with_columns(*hide, *base).drop("_partial", "_baseline_partial")


def _disclosure_table(published: list[Published], threshold: int) -> pl.DataFrame:
    """One row per protected column: its role, what it depends on, and when the rules apply to it.

    Roles: dimension, margin (has Totalt rows), count, part_of (a count that is part of the count in
    depends_on, in the same row), derived (withheld with the counts in depends_on), statistic (shown
    only where at least the threshold of cases are behind it; the count is not published), applies
    (the boolean column saying which rows are about people). ``condition`` names the boolean column
    outside which a count does not exist.
    """
    rows = []
    for table in published:
        spec: TableSpec = table.spec
        for d in spec.dimensions:
            rows.append((spec.name, d, "margin" if d in spec.margins else "dimension", None, None))
        for c in spec.counts:
            if c in table.unpublished:
                continue
            role, whole = ("part_of", spec.complements[c]) if c in spec.complements else ("count", None)
            rows.append((spec.name, c, role, whole, spec.only_where.get(c)))
        for c, deps in spec.derived.items():
            hidden = set(deps) & set(table.unpublished)
            rows.append((spec.name, c, "statistic" if hidden else "derived", ", ".join(deps), None))
        if spec.applies:
            rows.append((spec.name, spec.applies, "applies", None, None))
    frame = pl.DataFrame(
        rows, schema=["table_name", "column_name", "role", "depends_on", "condition"], orient="row"
    )
    return frame.with_columns(pl.lit(threshold).alias("threshold"), pl.lit(TOTAL).alias("total_value"))
