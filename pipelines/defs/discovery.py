"""Dataupptäckt as Dagster assets: one asset per analysis, each writing its findings into the cross-unit zone.

The analyses read the citizen-quarter panel (person level) where it lives, in ``cross_unit.duckdb``,
and write group-level findings to its ``discovery`` schema; the publish step takes only the reported
findings whose every group reaches the disclosure threshold into the serving snapshot. Each asset's
data version is the fingerprint of the data it analysed, and two checks travel with it: the
false-discovery correction covers every hypothesis tested, and the findings are group level only.
"""

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass

import dagster as dg
import duckdb
import numpy as np
import polars as pl
from threadpoolctl import threadpool_limits

from pipelines.defs.resources import Platform
from pipelines.disclosure import DEFAULT_THRESHOLD
from pipelines.discovery import associations, kpi, precedence, segments
from pipelines.discovery.counting import Memo
from pipelines.discovery.findings import (
    FDR,
    SCHEMA,
    TABLES,
    Finding,
    benjamini_hochberg,
    code_version,
    kept,
    read,
    write,
)
from pipelines.discovery.panel import PANEL, Panel, cached_panel, has_panel, quarter_digests, version_of
from warehouse.layout import connect, has_table

PANEL_KEY = dg.AssetKey(["cross_unit", "discovery", "citizen_quarter"])
MARTS_KEYS = [dg.AssetKey(["marts", "fct_kpi"]), dg.AssetKey(["marts", "fct_case"])]
POOL = "duckdb_cross_unit"  # writes the cross-unit zone, like every other writer of that file
CORRECTED, GROUP_LEVEL = "corrected_over_every_test", "group_level_only"
CHECKS = (CORRECTED, GROUP_LEVEL)
PERSON_COLUMNS = {"citizen_key", "person_pseudonym", "household_key", "person", "birth_year"}


class DiscoveryConfig(dg.Config):
    """What the discovery unit sets: the practical-significance margin of the associations' rule.

    An association is reported when its q is below the FDR and its interval's lower bound exceeds
    ``margin`` (an odds ratio); the other analyses do not read it.
    """

    margin: float = associations.MARGIN


@dataclass(frozen=True)
class Analysis:
    name: str  # also the findings table: discovery.<name>
    description: str
    deps: list[dg.AssetKey]
    uses_panel: bool

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey(["cross_unit", "discovery", self.name])


ANALYSES = (
    Analysis(
        "associations",
        "Co-use of two units' services over citizen-quarters: Mantel–Haenszel odds ratios adjusted for "
        "age group, district, quarter and the units' other services; Benjamini–Hochberg over every pair.",
        [PANEL_KEY],
        True,
    ),
    Analysis(
        "precedence",
        "Which service comes first (sequence symmetry analysis on incident onsets), with the lag "
        "distribution in quarters; Benjamini–Hochberg over every pair. Reads the associations: an order "
        "is reported only for a linked pair, and as part of the pair's association finding where it has one.",
        [PANEL_KEY, dg.AssetKey(["cross_unit", "discovery", "associations"])],
        True,
    ),
    Analysis(
        "segments",
        "k-means segments of persons' service-use profiles, their bootstrap stability (adjusted Rand "
        "index) and a Swedish description; sizes only, never a person's segment.",
        [PANEL_KEY],
        True,
    ),
    Analysis(
        "kpi_deviations",
        "KPI deviations for the managers' list: org units far from their peers, material trends, "
        "case types one förvaltning decides far more slowly (over the marts).",
        MARTS_KEYS,
        False,
    ),
)
assert tuple(a.name for a in ANALYSES) == TABLES, "the publish step reads exactly these tables"


@dataclass(frozen=True)
class Inputs:
    """What the analyses read, read on a connection closed before they compute, so DuckDB's buffer
    pool (up to its memory limit) is given back before they hold the panel.

    ``kept``: the findings that stand as written, since their basis (``_basis``) is the same; nothing
    is read for them. A month whose data all fall in the open quarter leaves the panel's complete
    quarters as they were, so of the four only the KPI deviations, over the marts, are computed anew.
    """

    panel: Panel | None
    kpi: tuple | None  # (series, cases) from the marts
    versions: dict[bool, str]  # by Analysis.uses_panel: the data version of what the analysis reads
    bases: dict[str, str]  # analysis -> its basis, where known before any analysis runs
    kept: dict[str, pl.DataFrame]
    sums: Memo  # the associations' sums per quarter from their last run (``counting``)


def _basis(analysis: Analysis, version: str, margin: float, *more: str) -> str:
    """What an analysis's findings are computed under: the data version of what it reads, the discovery
    unit's margin, the disclosure threshold (precedence withholds small lag groups), the analyses' code
    and libraries, and ``more`` (precedence: the associations it builds on)."""
    parts = [analysis.name, version, margin, DEFAULT_THRESHOLD, code_version(), *more]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def _linked(con: duckdb.DuckDBPyConnection) -> list[Finding]:
    """The associations as stored (precedence reads which pairs are linked), none if there are none."""
    return read(con, "associations") if has_table(con, SCHEMA, "associations") else []


def _linked_basis(linked: list[Finding]) -> str:
    return hashlib.sha256(repr(linked).encode()).hexdigest()


def _read(platform: Platform, selected: list[Analysis], margin: float, keeper: Executor) -> Inputs:
    with connect(platform.warehouse.cross_unit) as con:
        if any(not a.uses_panel for a in selected):
            con.execute(f"ATTACH '{platform.warehouse.marts}' AS m (READ_ONLY)")
        reads_panel = any(a.uses_panel for a in selected) and has_panel(con)
        digests = quarter_digests(con) if reads_panel else {}
        versions = {
            True: version_of(digests) if reads_panel else "no panel",
            False: kpi.data_version(con) if any(not a.uses_panel for a in selected) else "",
        }
        bases, standing = {}, {}
        for a in selected:  # associations before precedence
            if a.name == "precedence" and "associations" in bases and "associations" not in standing:
                continue  # it builds on associations computed anew: its basis is known after them
            more = (_linked_basis(_linked(con)),) if a.name == "precedence" else ()
            bases[a.name] = _basis(a, versions[a.uses_panel], margin, *more)
            if (frame := kept(con, a.name, bases[a.name])) is not None:
                standing[a.name] = frame
        todo = [a for a in selected if a.name not in standing]
        panel = None
        if reads_panel and any(a.uses_panel for a in todo):
            panel = cached_panel(con, platform.warehouse.panel_cache, digests, keeper)
        kpi_inputs = kpi.load(con) if any(not a.uses_panel for a in todo) else None
    counts = panel is not None and any(a.name == "associations" for a in todo)
    sums = Memo.read(platform.warehouse.association_sums, digests) if counts else Memo()
    return Inputs(panel, kpi_inputs, versions, bases, standing, sums)


def _keep_sums(sums: Memo, platform: Platform) -> None:
    """Sums not kept cost the next run a count of every quarter, nothing more: said, not raised."""
    try:
        sums.write(platform.warehouse.association_sums)
    except OSError as error:
        dg.get_dagster_logger().warning(f"the associations' sums were not kept: {error}")


def _analyse(
    analysis: Analysis,
    inputs: Inputs,
    margin: float,
    linked: list[Finding],
    orders: precedence.Orders | None = None,
) -> list[Finding]:
    """One analysis's findings. Small groups in detail texts (lag distributions) are withheld under the
    disclosure policy's threshold, the one the publish step applies: no run config of its own that could
    disagree with it. ``orders``: precedence's tests, if computed already."""
    if not analysis.uses_panel:
        return kpi.analyse(*inputs.kpi, inputs.versions[False])
    if inputs.panel is None:
        return []
    compute: dict[str, Callable[[], list[Finding]]] = {
        "associations": lambda: associations.analyse(inputs.panel, margin, inputs.sums),
        "precedence": lambda: precedence.report(
            inputs.panel, orders or precedence.orders(inputs.panel), linked, DEFAULT_THRESHOLD
        ),
        "segments": lambda: segments.analyse(inputs.panel),
    }
    return compute[analysis.name]()


def _spec(analysis: Analysis) -> dg.AssetSpec:
    return dg.AssetSpec(
        analysis.key,
        deps=analysis.deps,
        group_name="discovery",
        description=analysis.description + f" Reads {PANEL if analysis.uses_panel else 'the marts'}; "
        f"writes discovery.{analysis.name} in the cross-unit zone.",
        kinds={"duckdb", "scikit-learn"} if analysis.name == "segments" else {"duckdb"},
    )


@dg.multi_asset(
    name="discovery",
    specs=[_spec(a) for a in ANALYSES],
    check_specs=[dg.AssetCheckSpec(c, asset=a.key) for a in ANALYSES for c in CHECKS],
    pool=POOL,
    can_subset=True,
)
def discovery(context: dg.AssetExecutionContext, config: DiscoveryConfig, platform: Platform):
    """The selected analyses in one step: the panel read once, and the analyses that need nothing of
    each other computed side by side (two cores, a thread each: scikit-learn's own threads would take the
    associations' core), then precedence's report, which builds on the associations; its tests need
    nothing of them and run beside them (in vain if the associations come out as they were and
    precedence stands). Findings whose basis is unchanged stand as written (``Inputs``)."""
    selected = [a for a in ANALYSES if a.key in context.selected_asset_keys]
    with ThreadPoolExecutor(max_workers=1) as keeper:  # writes the panel's cache while the analyses run
        inputs = _read(platform, selected, config.margin, keeper)
        first = [a for a in selected if a.name != "precedence" and a.name not in inputs.kept]
        with ThreadPoolExecutor(max_workers=2) as workers, threadpool_limits(limits=1):
            computed = workers.map(lambda a: _analyse(a, inputs, config.margin, []), first)
            ordering = inputs.panel is not None and any(
                a.name == "precedence" and a.name not in inputs.kept for a in selected
            )
            orders = workers.submit(precedence.orders, inputs.panel) if ordering else None
            found = {a.name: f for a, f in zip(first, computed, strict=True)}
    if "associations" in found:
        _keep_sums(inputs.sums, platform)
    frames, bases, standing = dict(inputs.kept), dict(inputs.bases), set(inputs.kept)
    with connect(platform.warehouse.cross_unit) as con:
        for name, computed_findings in found.items():
            frames[name] = write(con, name, computed_findings, bases[name])
        later = [a for a in selected if a.name not in frames]
        linked = _linked(con) if later else []
        for a in later:  # precedence on associations computed anew: they may be as they were
            bases.setdefault(a.name, _basis(a, inputs.versions[True], config.margin, _linked_basis(linked)))
            if (frame := kept(con, a.name, bases[a.name])) is not None:
                frames[a.name] = frame
                standing.add(a.name)
    for analysis in [a for a in later if a.name not in frames]:
        computed_findings = _analyse(analysis, inputs, config.margin, linked, orders and orders.result())
        with connect(platform.warehouse.cross_unit) as con:
            frames[analysis.name] = write(con, analysis.name, computed_findings, bases[analysis.name])
    for analysis in selected:
        frame, version = frames[analysis.name], inputs.versions[analysis.uses_panel]
        yield dg.MaterializeResult(
            asset_key=analysis.key,
            metadata=_metadata(frame, version, kept=analysis.name in standing),
            data_version=dg.DataVersion(version),
            check_results=[_corrected(frame, analysis.key), _group_level(frame, analysis.key)],
        )


def _metadata(frame: pl.DataFrame, version: str, kept: bool) -> dict:
    """What was tested, reported and under which rule; per status (associations) how many hypotheses:
    "tested, no link" and "too little data" are different answers; and when the findings were computed."""
    reported = frame.filter(pl.col("reported"))
    when = frame["analysed_at"].max() if frame.height else None
    statuses = frame.filter(pl.col("status").is_not_null())["status"].value_counts(sort=True)
    return {
        "tested": frame.filter(pl.col("status").fill_null("") != associations.NOT_SHARED).height,
        "reported": reported.height,
        "data_version": version,
        "analysed": f"kept from {when} (the same data, settings and code)" if kept else "now",
        "method": frame["method"][0] if frame.height else "nothing tested",
        "findings": dg.MetadataValue.md(
            "\n".join(f"- {t}" for t in reported["title"].to_list()) or "no finding reported"
        ),
        **(
            {"status": dg.MetadataValue.md("\n".join(f"- {s}: {n}" for s, n in statuses.iter_rows()))}
            if statuses.height
            else {}
        ),
    }


def _corrected(frame: pl.DataFrame, asset: dg.AssetKey) -> dg.AssetCheckResult:
    """Each kind's q-values are Benjamini–Hochberg over all its tests (associations: over all their
    families, ``associations.family_q``), and nothing reported has q >= FDR."""
    problems = []
    tested = frame.filter(pl.col("status").fill_null("") != associations.NOT_SHARED)  # not shared: untested
    for kind in tested["kind"].unique().to_list():
        part = tested.filter(pl.col("kind") == kind)
        if part["p_value"].is_null().all() and part["q_value"].is_null().all():
            continue  # descriptive (segments): nothing tested
        p = part["p_value"].fill_null(float("nan")).to_numpy()
        expected = (
            associations.family_q(associations.families_of(part["finding_id"].to_list()), p)[0]
            if kind == "association"
            else benjamini_hochberg(p)
        )
        if not np.allclose(expected, part["q_value"].fill_null(1.0).to_numpy()):
            problems.append(f"{kind}: q is not Benjamini–Hochberg over its {part.height} tests")
    loose = frame.filter(pl.col("reported") & (pl.col("q_value") >= FDR)).height
    if loose:
        problems.append(f"{loose} reported with q >= {FDR}")
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=CORRECTED,
        passed=not problems,
        metadata={"tests": frame.height, "problems": "; ".join(problems) or "none"},
    )


def _group_level(frame: pl.DataFrame, asset: dg.AssetKey) -> dg.AssetCheckResult:
    """No column that could name a person, and every finding about persons rests on a counted group."""
    person_columns = sorted(PERSON_COLUMNS & set(frame.columns))
    uncounted = frame.filter(pl.col("about_persons") & pl.col("n_population").is_null()).height
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=GROUP_LEVEL,
        passed=not person_columns and not uncounted,
        metadata={"person_columns": ", ".join(person_columns) or "none", "without_group_size": uncounted},
    )


DISCOVERY_KEYS = [a.key for a in ANALYSES]
