"""Dataupptäckt: the statistics are right on data with a known answer, and nothing small is published.

The method tests use constructed data whose answer is known (a confounded table, a trend in how often
a service starts). The platform tests share one small main-job run (``discovery_platform`` in
conftest): the analyses ran as Dagster assets, every pair was tested and corrected together, the
planted null pairs are not reported, a planted strong association is, and the serving snapshot holds
no finding that rests on a group below the threshold.
"""

import re

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest
from scipy import stats

from pipelines.defs.discovery import ANALYSES, _corrected
from pipelines.disclosure import DEFAULT_THRESHOLD
from pipelines.discovery import associations, precedence
from pipelines.discovery.findings import TABLES, benjamini_hochberg, publishable
from pipelines.discovery.panel import open_panel

THRESHOLD = DEFAULT_THRESHOLD


def _query(path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def _findings(platform, table: str) -> pl.DataFrame:
    with duckdb.connect(str(platform["warehouse"].cross_unit), read_only=True) as con:
        return pl.from_arrow(con.sql(f"SELECT * FROM discovery.{table}").to_arrow_table())


def _pair(row: dict) -> set[str]:
    return {row["dataset_a"], row["dataset_b"]}


# --- the methods on data with a known answer ------------------------------------------------------


def test_benjamini_hochberg_agrees_with_scipy_and_never_lowers_a_p_value():
    p = np.random.default_rng(1).uniform(0, 0.2, 40) ** 2
    q = benjamini_hochberg(p)
    assert np.allclose(q, stats.false_discovery_control(p, method="bh"))
    assert (q >= p).all()
    assert benjamini_hochberg(np.array([np.nan, 0.01]))[0] == 1.0, "an untestable pair counts, as p = 1"


def test_mantel_haenszel_removes_confounding_and_keeps_a_real_effect():
    # Two age strata: the old use both services more, but within each stratum they are independent.
    # Cells per stratum: (neither, B only, A only, both).
    independent = np.array([[810, 90, 90, 10], [160, 240, 240, 360]])
    crude = independent.sum(axis=0)
    crude_or = crude[3] * crude[0] / (crude[1] * crude[2])
    log_or, _, _ = associations.mantel_haenszel(independent)
    assert crude_or > 3 and np.exp(log_or) == pytest.approx(1.0)
    linked = np.array([[800, 100, 80, 40]])  # odds ratio 800 * 40 / (100 * 80) = 4 in one stratum
    assert np.exp(associations.mantel_haenszel(linked)[0]) == pytest.approx(800 * 40 / (100 * 80))


def test_sequence_ratio_is_corrected_for_a_trend_in_how_often_a_service_starts():
    rng = np.random.default_rng(3)
    n, quarters = 20_000, 12
    a = rng.integers(0, quarters, n)  # A starts evenly over time
    b = rng.choice(
        quarters, n, p=np.arange(1, quarters + 1) / np.arange(1, quarters + 1).sum()
    )  # B: more and more
    out = precedence._test(a, b, quarters)
    crude = out["a_first"] / out["b_first"]
    assert crude > 1.3, "the trend alone makes A look first"
    assert out["asr"] == pytest.approx(1.0, abs=0.1) and out["p"] > 0.01


def test_a_finding_with_a_small_group_is_withheld_whole_and_a_lone_small_segment_takes_another():
    base = {
        "reported": True,
        "about_persons": True,
        "n_population": 1000,
    }
    rows = [
        {**base, "finding_id": "association:a:b", "kind": "association", "n_a": 50, "n_b": 60, "n_both": 4},
        {**base, "finding_id": "association:a:c", "kind": "association", "n_a": 50, "n_b": 60, "n_both": 9},
        {**base, "finding_id": "segment:1", "kind": "segment", "n_a": 900, "n_b": None, "n_both": None},
        {**base, "finding_id": "segment:2", "kind": "segment", "n_a": 97, "n_b": None, "n_both": None},
        {**base, "finding_id": "segment:3", "kind": "segment", "n_a": 3, "n_b": None, "n_both": None},
        {**base, "finding_id": "kpi_deviation:U90001:x", "kind": "kpi_deviation", "about_persons": False,
         "n_a": None, "n_b": None, "n_both": None, "n_population": None},
    ]  # fmt: skip
    kept = publishable(pl.DataFrame(rows), THRESHOLD)["finding_id"].to_list()
    assert kept == ["association:a:c", "segment:1", "kpi_deviation:U90001:x"]


# --- the platform: one small main-job run -----------------------------------------------------------


def test_discovery_assets_ran_with_their_checks_and_the_data_version(discovery_platform, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(discovery_platform["paths"].dagster_home))
    instance = dg.DagsterInstance.get()
    panel = open_panel(discovery_platform["warehouse"].cross_unit)
    for analysis in ANALYSES:
        event = instance.get_latest_materialization_event(analysis.key)
        assert event is not None, analysis.key
        version = event.asset_materialization.tags.get("dagster/data_version")
        assert version == panel.data_version if analysis.uses_panel else version.startswith("marts:fct_kpi:")
        for check in ("corrected_over_every_test", "group_level_only"):
            key = dg.AssetCheckKey(analysis.key, check)
            record = instance.event_log_storage.get_asset_check_execution_history(key, limit=1)
            assert record and record[0].status.value == "SUCCEEDED", key
    stored = {
        r[0]
        for r in _query(
            discovery_platform["warehouse"].cross_unit,
            "SELECT DISTINCT data_version FROM discovery.associations",
        )
    }
    assert stored == {panel.data_version}


def test_every_cross_unit_pair_is_tested_and_corrected_together(discovery_platform):
    panel = open_panel(discovery_platform["warehouse"].cross_unit)
    expected = associations.pairs(panel)
    assert len(expected) >= 50 and all(a.unit != b.unit for a, b in expected)
    for table in ("associations", "precedence"):
        found = _findings(discovery_platform, table)
        assert found.height == len(expected), table
        p = found["p_value"].fill_null(float("nan")).to_numpy()
        assert np.allclose(found["q_value"].to_numpy(), benjamini_hochberg(p)), table
        assert (found.filter(pl.col("reported"))["q_value"] < 0.05).all()


def test_the_correction_check_fails_when_q_values_are_not_over_every_test(discovery_platform):
    found = _findings(discovery_platform, "associations")
    assert _corrected(found).passed
    uncorrected = found.with_columns(q_value=pl.col("p_value"))  # as if each pair had been tested alone
    assert not _corrected(uncorrected).passed


def test_planted_null_pairs_and_confounded_pairs_are_not_reported(discovery_platform):
    nulls = [set(n["datasets"]) for n in discovery_platform["manifest"]["null_pairs"]]
    assert nulls
    for table in ("associations", "precedence"):
        reported = _findings(discovery_platform, table).filter(pl.col("reported"))
        for row in reported.iter_rows(named=True):
            assert _pair(row) not in nulls, row["finding_id"]
    # Home care and safety alarms rise with age: unadjusted they would look linked to everything the
    # elderly do; within age groups, only the planted contact-centre and paper links remain.
    planted = [
        set(p["datasets"]) - {"folkbokforing.aviseringar"} for p in discovery_platform["manifest"]["patterns"]
    ]
    for row in _findings(discovery_platform, "associations").filter(pl.col("reported")).iter_rows(named=True):
        assert _pair(row) in planted, row["finding_id"]


def test_a_planted_strong_association_is_found_with_its_interval(discovery_platform):
    found = _findings(discovery_platform, "associations")
    row = found.filter(pl.col("finding_id") == "association:home_care:contact").row(0, named=True)
    assert (
        row["reported"]
        and row["effect"] >= 2
        and row["ci_low"] > 1
        and row["ci_low"] < row["effect"] < row["ci_high"]
    )
    assert row["n_both"] >= THRESHOLD and row["n_a"] >= row["n_both"]


def test_planted_budget_deviations_are_on_the_deviation_list(discovery_platform):
    found = _findings(discovery_platform, "kpi_deviations").filter(pl.col("kind") == "kpi_deviation")
    reported = set(found.filter(pl.col("reported"))["org_unit"].to_list())
    planted = {d["effect"]["enhet"] for d in discovery_platform["manifest"]["deviations"]}
    assert reported == planted


def test_no_published_finding_rests_on_a_group_below_the_threshold(discovery_platform):
    current = discovery_platform["current"]
    with duckdb.connect(str(current), read_only=True) as con:
        published = pl.from_arrow(con.sql("SELECT * FROM discovery_findings").to_arrow_table())
        threshold = con.execute("SELECT threshold FROM _snapshot").fetchall()[0][0]
    assert published.height > 0 and threshold == THRESHOLD
    for c in ("n_a", "n_b", "n_both", "n_population"):
        applies = published.filter(pl.col(f"applies_{c}"))
        assert (applies[c].is_not_null() & (applies[c] >= threshold)).all(), c
    people = published.filter(pl.col("about_persons") & pl.col("kind").is_in(["association", "precedence"]))
    assert people.height > 0, "no finding about persons was published: the scan proves nothing"
    zone = pl.concat([_findings(discovery_platform, t) for t in TABLES], how="diagonal_relaxed")
    small = zone.filter(pl.col("reported") & (pl.col("n_both") < threshold))
    assert not set(small["finding_id"].to_list()) & set(published["finding_id"].to_list())


def test_nothing_person_level_reaches_the_snapshot(discovery_platform):
    current = discovery_platform["current"]
    with duckdb.connect(str(current), read_only=True) as con:
        columns = {
            c for (c,) in con.execute("SELECT column_name FROM (DESCRIBE discovery_findings)").fetchall()
        }
        text = " ".join(
            str(v) for row in con.execute("SELECT * FROM discovery_findings").fetchall() for v in row
        )
    assert not columns & {"citizen_key", "person_pseudonym", "household_key", "person"}
    assert not re.search(r"\b[0-9a-f]{64}\b", text), "a citizen key in a published finding"
