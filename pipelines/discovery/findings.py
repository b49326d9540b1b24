"""One schema for every analysis's findings, the multiple-testing correction, and what may be published.

A finding is group level by construction: an effect with its interval, the sizes of the groups it
compares (persons), the method, and the version of the data it came from. Every tested hypothesis is
kept in the cross-unit zone (``discovery.<analysis>``), so the correction over everything tested can
be checked; ``reported`` marks those that pass the false-discovery control and the analysis's rule on
the effect (stated in ``method``). Only reported findings whose every group reaches the disclosure
threshold are published.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from functools import cache
from importlib.metadata import version
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from pipelines.disclosure import TOTAL
from warehouse.layout import content_digest, read_record, run, transaction, write_record

SCHEMA = "discovery"
TABLES = ("associations", "precedence", "segments", "kpi_deviations")  # one per analysis asset
# Benjamini–Hochberg level over every hypothesis an analysis tests. 1 %, not 5 %: with no link at all,
# BH's level is the chance that a run reports anything, and at 5 % a shuffled unit gave a false link in
# 1 run of 18 to 1 of 6 at 60,000 x 5 (issue 16); at 1 % the planted modest links (odds ratio 1.3-2.5) were all still found.
FDR = 0.01
COUNTS = ("n_a", "n_b", "n_both", "n_population")


@dataclass(frozen=True, kw_only=True)
class Finding:
    finding_id: str  # stable across runs: kind and what it is about
    kind: str  # association | precedence | segment | kpi_deviation | kpi_trend | case_flow
    title: str  # Swedish, one line
    description: str  # Swedish, what it means for a reader
    forvaltning: str  # the förvaltning the finding belongs to, or 'Totalt'
    org_unit: str | None = None  # enhet, for KPI findings
    dataset_a: str | None = None  # 'unit.dataset'
    dataset_b: str | None = None
    measure: str  # Swedish name of the effect measure
    effect: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    q_value: float | None = None
    reported: bool
    n_a: int | None = None  # persons in group A (having the first service)
    n_b: int | None = None  # persons in group B
    n_both: int | None = None  # persons in both (the overlap the effect rests on)
    n_population: int | None = None  # persons analysed
    about_persons: bool  # False for money (budget rows): disclosure rules do not apply
    detail: str | None = None  # Swedish: lag distribution, segment profile, ...
    method: str
    data_version: str
    lag_counts: str | None = (
        None  # precedence: persons per lag of 1..n quarters, e.g. '40,22,9,3' (zone only)
    )
    lag_quarters: int | None = None  # associations: quarters from A to B (0: the same quarter; zone only)
    status: str | None = (
        None  # associations, Swedish: reported, tested without effect, too little data, not shared
    )
    min_detectable: float | None = None  # associations: the smallest effect it would report (80 % power)


def frame(findings: list[Finding]) -> pl.DataFrame:
    """The findings as a table, with when they were computed."""
    schema = {
        f.name: pl.Float64
        if f.name in ("effect", "ci_low", "ci_high", "p_value", "q_value", "min_detectable")
        else pl.Int64
        if f.name in (*COUNTS, "lag_quarters")
        else pl.Boolean
        if f.name in ("reported", "about_persons")
        else pl.String
        for f in fields(Finding)
    }
    out = pl.DataFrame([asdict(f) for f in findings], schema=schema, orient="row")
    return out.with_columns(analysed_at=pl.lit(datetime.now(UTC).replace(tzinfo=None)))


def write(con: duckdb.DuckDBPyConnection, table: str, findings: list[Finding], basis: str) -> pl.DataFrame:
    """Replace ``discovery.<table>`` with these findings (in the cross-unit zone), computed under
    ``basis`` (``kept``); returns the frame."""
    out = frame(findings)
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    con.register("_findings", out.to_arrow())
    try:
        with transaction(con):
            run(con, f"CREATE OR REPLACE TABLE {SCHEMA}.{table} AS SELECT * FROM _findings")
            write_record(con, f"{SCHEMA}.{table}", basis, content=_content(con, table))
    finally:
        con.unregister("_findings")
    return out


@cache
def code_version() -> str:
    """The analyses' code (this package's modules) and the libraries they compute with: findings computed
    under another are computed anew, though the data be the same. DuckDB is one of them: it reads the panel
    (age groups, and the jackknife groups from its hash of the citizen key), so a cache of the panel's
    rows, or of the associations' sums per quarter, read by another DuckDB is not mixed with new rows."""
    digest = hashlib.sha256()
    for module in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(module.name.encode() + module.read_bytes())
    for library in ("duckdb", "numpy", "scipy", "scikit-learn", "polars"):
        digest.update(f"{library} {version(library)}".encode())
    return digest.hexdigest()


def kept(con: duckdb.DuckDBPyConnection, table: str, basis: str) -> pl.DataFrame | None:
    """``discovery.<table>`` as written, if it was computed under ``basis`` (what the analysis read, its
    settings and its code) and holds what was written then. Both are the table's comment, written in the
    same transaction as the findings: a table replaced by other means has none, one changed since
    (an edited finding) no longer matches its content."""
    written = read_record(con, f"{SCHEMA}.{table}", basis)
    if written is None or written.get("content") != _content(con, table):
        return None
    return con.sql(f"SELECT * FROM {SCHEMA}.{table}").pl()


def _content(con: duckdb.DuckDBPyConnection, table: str) -> str:
    rows, digest = run(con, f"SELECT count(*), {content_digest('f')} FROM {SCHEMA}.{table} f")[0]
    return f"{rows}:{(digest or 0):016x}"


def read(con: duckdb.DuckDBPyConnection, table: str) -> list[Finding]:
    """The findings an analysis wrote into ``discovery.<table>`` (for an analysis that builds on another's)."""
    names = [f.name for f in fields(Finding)]
    rows = con.sql(f"SELECT {', '.join(names)} FROM {SCHEMA}.{table}").fetchall()
    return [Finding(**dict(zip(names, row, strict=True))) for row in rows]


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Adjusted p-values (q) controlling the false discovery rate over all of ``p`` (NaN counts as 1)."""
    p = np.where(np.isnan(p), 1.0, np.asarray(p, dtype=float))
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * m / np.arange(1, m + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(q, 1.0)
    return out


def publishable(findings: pl.DataFrame, threshold: int) -> pl.DataFrame:
    """Reported findings whose every group about persons is at least ``threshold``; others are withheld.

    Adds ``applies_<count>``: whether the finding's kind has that group (a budget deviation is about
    kronor, a segment has one group). A group that applies but is missing counts as small. Segments
    partition the persons analysed, so a lone small segment takes the smallest other one with it:
    otherwise the total minus the rest would give it away.
    """
    out = findings.filter(pl.col("reported")).with_columns(
        (pl.col("about_persons") & pl.col("kind").is_in(_NEEDS[c])).alias(f"applies_{c}") for c in COUNTS
    )
    small = pl.lit(False)
    for c in COUNTS:
        small = small | (pl.col(f"applies_{c}") & (pl.col(c).is_null() | (pl.col(c) < threshold)))
    out = out.with_columns(_small=small)
    segment = out["kind"] == "segment"
    hidden = out["_small"] & segment
    if hidden.sum() == 1:
        sizes = out["n_a"].fill_null(0).to_numpy()
        open_ = (segment & ~out["_small"]).to_numpy()
        if open_.any():
            pick = int(min(np.flatnonzero(open_), key=lambda i: (sizes[i], i)))
            flags = [bool(s) or i == pick for i, s in enumerate(out["_small"])]
            out = out.with_columns(_small=pl.Series(flags, dtype=pl.Boolean))
    return out.filter(~pl.col("_small")).drop("_small", "reported")


def publishable_statuses(tested: pl.DataFrame, threshold: int) -> pl.DataFrame:
    """What every tested pair came to, as it may be published: its Swedish status and smallest detectable
    effect, where every group it rests on reaches ``threshold``.

    A hypothesis with a small group says only that (its status would tell a link among a few persons,
    and its smallest detectable effect, computed from their counts, their number); one that is part of
    a finding withheld so says that the finding is not shown. Not shared pairs have no groups and stay.
    The counts go on to primary suppression, which withholds ``min_detectable`` with them, and are then
    dropped: none is published. The effect is rounded (two decimals for an odds ratio, one for points).
    """
    small = pl.lit(False)
    for c in ("n_a", "n_b", "n_both"):
        small = small | pl.col(c).is_null() | (pl.col(c) < threshold)
    shown = pl.col("status") == NOT_SHARED
    out = tested.with_columns(_small=small & ~shown)
    withheld = set(out.filter(pl.col("_small") & pl.col("reported"))["finding_id"].to_list())
    part_of_withheld = pl.col("detail").str.strip_prefix("ingår i fyndet ").is_in(sorted(withheld))
    status = (
        pl.when(pl.col("_small"))
        .then(pl.lit(f"för lite data (en grupp har färre än {threshold} personer)"))
        .when(part_of_withheld & (pl.col("status") == PART_OF_ANOTHER))
        .then(
            pl.lit(f"samband, men fyndet det ingår i visas inte (en grupp har färre än {threshold} personer)")
        )
        .otherwise(pl.col("status"))
    )
    rounded = (
        pl.when(pl.col("measure").str.starts_with("oddskvot"))
        .then(pl.col("min_detectable").round(2))
        .otherwise(pl.col("min_detectable").round(1))
    )
    return out.with_columns(
        status=status,
        min_detectable=pl.when(pl.col("_small")).then(None).otherwise(rounded),
    ).drop("_small", "reported", "detail")


NOT_SHARED = "delas inte"  # the status of a pair whose unit does not share an indicator: untested
PART_OF_ANOTHER = "ingår i ett annat fynd"  # holds, and its family reports a more specific hypothesis


_NEEDS = {  # which groups each kind about persons rests on
    "n_a": ("association", "precedence", "segment", "case_flow"),
    "n_b": ("association", "precedence", "case_flow"),
    "n_both": ("association", "precedence"),
    "n_population": ("association", "precedence", "segment", "kpi_deviation", "kpi_trend", "case_flow"),
}


def forvaltning_or_total(value: str | None) -> str:
    return value or TOTAL
