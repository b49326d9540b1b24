"""Build the snapshot's tables from the marts and protect them: what a publish writes.

The marts and the cross-unit zone are attached read-only; every protected table is sorted by its
dimensions before suppression (so the same data always gives the same withheld cells), protected,
audited, and refused if the audit still finds a disclosure. Two metadata tables travel with the
data: ``_disclosure`` (the role of every column, so anyone can re-check the snapshot) and
``_snapshot`` (when, with which threshold, what).
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from pipelines.disclosure import DEFAULT_THRESHOLD, TOTAL, TableSpec, audit, protect, withhold_running
from pipelines.disclosure.bounds import Solved
from pipelines.disclosure.joint import moved, secure
from pipelines.disclosure.spec import protection_width
from pipelines.discovery.findings import TABLES as FINDING_TABLES
from pipelines.discovery.findings import publishable, publishable_statuses
from pipelines.discovery.precedence import lag_distribution
from pipelines.serving.tables import FINDINGS, PROTECTED, REFERENCE, TESTED, Published, findings_sql

# Tables whose counts are published, by name: what the bounds audit attacks (lead times show statistics
# only; their case counts are not published, so there is nothing to narrow).
PUBLISHED_SPECS = {t.spec.name: t.spec for t in (*PROTECTED, FINDINGS) if not t.unpublished}


class DisclosureError(RuntimeError):
    """The protected tables still disclose a small count: nothing is published."""


@dataclass
class Stats:
    """What protection did, per table: cells withheld as primary and secondary, and the bounds audit."""

    primary: dict[str, int] = field(default_factory=dict)
    secondary: dict[str, int] = field(default_factory=dict)
    published: dict[str, int] = field(default_factory=dict)  # count cells published
    audit: dict[str, float | int | bool | None] = field(default_factory=dict)  # the bounds audit


@dataclass(frozen=True)
class Build:
    tables: dict[str, pl.DataFrame]
    comments: dict[str, str]
    stats: Stats

    @property
    def withheld(self) -> dict[str, int]:
        """Per table: cells withheld (primary + secondary, all count columns)."""
        return {t: n + self.stats.secondary.get(t, 0) for t, n in self.stats.primary.items()}


def build_tables(
    marts: Path,
    cross_unit: Path,
    threshold: int = DEFAULT_THRESHOLD,
    previous: Path | None = None,
    bounds: bool = True,
    memo: MutableMapping[str, Solved] | None = None,
) -> Build:
    """Every table of the snapshot, disclosure-controlled, with its metadata tables.

    ``previous`` is the last publish's snapshot file: the bounds audit takes both together, since a
    reader may hold both. ``bounds=False`` skips the bounds rounds and leaves the tables' own
    suppression only (what attack tests show is not enough); it never reaches a publish. ``memo``: the
    bounds audit's blocks audited before (``pipelines.disclosure.memo``).
    """
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
        tested = _frame(con, TESTED.sql) if "associations" in found else None
    finally:
        con.close()
    stats = Stats()
    for table in PROTECTED:  # in order: the case flow is protected before the KPIs copy its cells
        if table.spec.name not in raw:
            continue
        frame = raw[table.spec.name]
        if table.spec.name == "kpi_value":
            frame = _case_flow_cells(frame, tables["case_flow"])
        if table.spec.name == "benefit_realisation":
            frame = _whole_years_only(frame, tables["kpi_value"])
        tables[table.spec.name] = _protect(frame, table, threshold, stats)
        comments[table.spec.name] = table.description
    if findings is not None:
        frame = _lags_at(_findings_on_published_cells(publishable(findings, threshold), tables), threshold)
        tables[FINDINGS.spec.name] = _protect(frame, FINDINGS, threshold, stats)
        stats.primary[FINDINGS.spec.name] += findings.height - frame.height  # whole findings withheld
        comments[FINDINGS.spec.name] = FINDINGS.description
    if tested is not None:
        tables[TESTED.spec.name] = _protect(publishable_statuses(tested, threshold), TESTED, threshold, stats)
        comments[TESTED.spec.name] = TESTED.description
    if bounds:
        _secure(tables, threshold, stats, read_published(previous) if previous else None, memo)
    for table in (*PROTECTED, FINDINGS, TESTED):
        if table.spec.name in tables:
            tables[table.spec.name] = _finish(tables[table.spec.name], table, threshold)
    published = [t for t in (*PROTECTED, FINDINGS, TESTED) if t.spec.name in tables]
    tables["_disclosure"] = _disclosure_table(published, threshold)
    tables["_snapshot"] = pl.DataFrame(
        {
            "published_at": [datetime.now(UTC).replace(tzinfo=None)],
            "threshold": [threshold],
            "tables": [", ".join(sorted(tables))],
            # the bounds audit this snapshot passed (NULL: it did not run; notebooks refuse that)
            "protection_width": [protection_width(threshold) if bounds else None],
            "narrowest_interval": [stats.audit.get("narrowest_interval")],
            "audited_with_previous": [stats.audit.get("with_previous")],
        }
    ).cast(
        {"protection_width": pl.Int64, "narrowest_interval": pl.Float64, "audited_with_previous": pl.Boolean}
    )
    comments["_disclosure"] = "Röjandekontroll: varje kolumns roll, tröskel och vad som döljs med vad."
    comments["_snapshot"] = (
        "När ögonblicksbilden publicerades, med vilken tröskel, och vilken granskning av intervall den klarade."
    )
    return Build(tables, comments, stats)


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


def _protect(frame: pl.DataFrame, table: Published, threshold: int, stats: Stats) -> pl.DataFrame:
    """Primary and the table's own secondary suppression (relations within the table)."""
    result = protect(frame, table.spec, threshold, bounds=False)  # the bounds rounds: over the snapshot
    stats.primary[table.spec.name] = sum(result.primary.values())
    stats.secondary[table.spec.name] = sum(result.secondary.values())
    return result.frame


def read_published(snapshot: Path) -> dict[str, pl.DataFrame]:
    """The protected tables of a snapshot file, as published (for auditing the next one with it)."""
    with duckdb.connect(str(snapshot), read_only=True) as con:
        present = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        return {name: _frame(con, f'SELECT * FROM "{name}"') for name in PUBLISHED_SPECS if name in present}


def _secure(
    tables: dict[str, pl.DataFrame],
    threshold: int,
    stats: Stats,
    previous: dict[str, pl.DataFrame] | None,
    memo: MutableMapping[str, Solved] | None = None,
) -> None:
    """The bounds audit over every published count of the snapshot, withholding more until it passes.

    Tables whose counts are not published (lead times show statistics only) have nothing to attack.
    Rules between tables (a benefit year needs every month of its KPI; a KPI finding needs every cell
    it sums) are applied again on the final cells: they only withhold more, and what they withhold
    has no relation left to narrow it.
    """
    specs = PUBLISHED_SPECS
    secured = secure(tables, specs, threshold, previous, memo)
    tables.update(secured.tables)
    for name, n in secured.secondary.items():
        stats.secondary[name] += n
    if "benefit_realisation" in tables:
        tables["benefit_realisation"] = _whole_years_only(tables["benefit_realisation"], tables["kpi_value"])
    if FINDINGS.spec.name in tables:
        tables[FINDINGS.spec.name] = _findings_on_published_cells(tables[FINDINGS.spec.name], tables)
    report = secured.report
    if report.narrow:
        raise DisclosureError(f"{len(report.narrow)} withheld cells narrowed below the protection width")
    stats.audit = {
        "with_previous": previous is not None,
        "moved_since_previous": sum(moved(tables, specs, previous).values()) if previous else 0,
        "narrowest_interval": report.narrowest if math.isfinite(report.narrowest) else None,
        "solves": report.solves,
        "blocks": report.blocks,
        "blocks_reused": report.reused,
        "rounds": secured.rounds,
        "seconds": round(secured.seconds, 2),
    }
    for name, spec in specs.items():
        if name in tables:
            stats.published[name] = sum(int(tables[name][c].is_not_null().sum()) for c in spec.counts)


def _finish(frame: pl.DataFrame, table: Published, threshold: int) -> pl.DataFrame:
    """Rules on values built over time, the table's own audit, and the unpublished counts dropped."""
    out = frame
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
    audited = table.spec.name in PUBLISHED_SPECS  # the bounds audit over the snapshot covered it
    if problems := audit(out, table.spec, threshold, relations=not audited):
        raise DisclosureError(f"{len(problems)} disclosures left, e.g. {problems[0]}")
    return out.drop(table.unpublished)


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
