"""Dataupptäckt: the statistics are right on data with a known answer, and nothing small is published.

The method tests use constructed data whose answer is known (a confounded table, a trend in how often
a service starts). The platform tests share one small main-job run (``discovery_platform`` in
conftest): the analyses ran as Dagster assets, every pair was tested and corrected together, the
planted null pairs are not reported, a planted strong association is, and the serving snapshot holds
no finding that rests on a group below the threshold.
"""

import dataclasses
import hashlib
import logging
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest
from scipy import stats
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from pipelines.defs.discovery import ANALYSES, _corrected, discovery
from pipelines.defs.resources import Platform
from pipelines.disclosure import DEFAULT_THRESHOLD
from pipelines.discovery import associations, counting, findings, kpi, merit, precedence, segments
from pipelines.discovery.findings import (
    TABLES,
    Finding,
    benjamini_hochberg,
    code_version,
    publishable,
    publishable_statuses,
)
from pipelines.discovery.panel import (
    BY_NAME,
    JACKKNIFE_GROUPS,
    PANEL,
    Panel,
    cached_panel,
    data_version,
    jackknife,
    load_panel,
    open_panel,
    permute_unit,
    quarter_digests,
    rekeyed,
)
from pipelines.settings import Paths
from warehouse.layout import Warehouse, connect

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
    assert crude_or > 3 and np.exp(_estimated(independent).log_or) == pytest.approx(1.0)
    linked = np.array([[800, 100, 80, 40]])  # odds ratio 800 * 40 / (100 * 80) = 4 in one stratum
    assert np.exp(_estimated(linked).log_or) == pytest.approx(800 * 40 / (100 * 80))


def _estimated(cells: np.ndarray, quarter: np.ndarray | None = None) -> counting.Estimate:
    """The estimate of cells [strata, (n00, n01, n10, n11)] (all in one jackknife group), through the sums
    per quarter (``quarter``: each stratum's, else one quarter)."""
    counts = np.zeros((JACKKNIFE_GROUPS, *cells.shape), np.int64)
    counts[0] = cells
    quarter = np.zeros(len(cells), np.int64) if quarter is None else quarter
    return counting.estimate(counting.quarter_sums(counts, quarter, int(quarter.max()) + 1).sum(axis=0))


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


def _panel(flags: dict[str, np.ndarray]) -> Panel:
    """A panel of persons x quarters (the arrays' shape) in one age group and district, from named flags."""
    persons, quarters = next(iter(flags.values())).shape
    person = np.repeat(np.arange(persons), quarters)
    return Panel(
        person=person,
        quarter=np.tile(np.arange(quarters), persons),
        age_group=np.zeros(persons * quarters, np.int64),
        district=np.zeros(persons * quarters, np.int64),
        group=person % JACKKNIFE_GROUPS,
        flags=np.column_stack([f.reshape(-1) for f in flags.values()]),
        indicators=tuple(BY_NAME[n] for n in flags),
        districts=("Centrum",),
        quarters=tuple(f"q{k}" for k in range(quarters)),
        not_shared=(),
        data_version="constructed",
    )


def _lasting(rng: np.random.Generator, shape: tuple[int, int], start: float, stay: float) -> np.ndarray:
    """A service that starts with probability ``start`` a quarter and then goes on with ``stay``."""
    out = np.zeros(shape, bool)
    out[:, 0] = rng.random(shape[0]) < start / (1 - stay + start)
    for t in range(1, shape[1]):
        out[:, t] = rng.random(shape[0]) < np.where(out[:, t - 1], stay, start)
    return out


def _odds(rng: np.random.Generator, base: float, odds_ratio: float, exposed: np.ndarray) -> np.ndarray:
    """Yes with odds ``base`` / (1 - base), times ``odds_ratio`` where exposed."""
    odds = base / (1 - base) * np.where(exposed, odds_ratio, 1.0)
    return rng.random(exposed.shape) < odds / (1 + odds)


def _reported(panel: Panel, margin: float = associations.MARGIN) -> dict[str, dict]:
    return {f.finding_id: f for f in associations.analyse(panel, margin) if f.reported}


def test_the_model_based_floor_is_woolfs_error_for_one_table_and_shrinks_with_alike_strata():
    """The Robins–Breslow–Greenland error of the Mantel–Haenszel log odds ratio: for one 2 x 2 table it is
    Woolf's, sqrt(1/a + 1/b + 1/c + 1/d); k alike strata carry k times the information."""
    table = np.array([[40, 12, 9, 7]])  # n00, n01, n10, n11
    woolf = np.sqrt((1 / table[0]).sum())
    assert _estimated(table).rgb_se == pytest.approx(woolf, rel=1e-12)
    alike = np.repeat(table, 4, axis=0)
    assert _estimated(alike).rgb_se == pytest.approx(woolf / 2, rel=1e-12)
    assert _estimated(alike, np.arange(4)).rgb_se == pytest.approx(woolf / 2, rel=1e-12), "in four quarters"
    assert _estimated(np.array([[40, 12, 0, 7]])).rgb_se == 0.0, "no odds ratio: no floor"


def test_counting_distinct_rows_gives_what_counting_every_row_gives():
    """``Cells`` keeps each lag's alike rows once with their number, and a test's sums are made per quarter
    (some quarters' in an earlier run): the odds ratio, its interval and the persons must be those of every
    row counted directly (a lost weight, a wrong bit or a stratum put in another quarter would not be)."""
    rng = np.random.default_rng(12)
    shape = (3_000, 8)
    a, c = _lasting(rng, shape, 0.05, 0.7), _lasting(rng, shape, 0.1, 0.5)
    panel = _panel({"home_care": a, "contact": _odds(rng, 0.1, 2.0, a), "paper_submission": c})
    panel = replace(panel, age_group=np.tile(np.arange(shape[1]) % 3, shape[0]))  # strata of their own
    care, contact = BY_NAME["home_care"], BY_NAME["contact"]
    adjusting = [BY_NAME["paper_submission"]]  # a service to stratify on, as a unit's other services are
    some = rng.random(shape[1]) < 0.5  # quarters counted in one run, the others in another
    for lag in (0, 1, 2):
        at = {(p, q): r for r, (p, q) in enumerate(zip(panel.person, panel.quarter, strict=True))}
        later = np.array([at.get((p, q + lag), -1) for p, q in zip(panel.person, panel.quarter, strict=True)])
        rows = np.flatnonzero(later >= 0)  # the rows with a row of the same person lag quarters later
        fa, fb = panel.flag("home_care")[rows], panel.flag("contact")[later[rows]]
        strata = panel.base_strata()[rows] * 2 + panel.flag("paper_submission")[rows]
        ways = [strata * 2 + panel.flag("contact")[rows] if lag else strata]
        ways += [ways[0] * 2 + panel.flag("home_care")[later[rows]]] if lag else []
        cells = counting.Cells.of(panel, lag)
        assert len(cells.weight) < len(rows) / 4, "alike rows are kept once"
        sums = associations.stratified_sums(cells, care, contact, lag, adjusting)
        parts = [
            associations.stratified_sums(counting.Cells.of(panel, lag, first), care, contact, lag, adjusting)
            for first in (some, ~some)
        ]
        persons = counting.Persons.of(panel, lag)
        for way, by_quarter, one, other in zip(ways, sums, *parts, strict=True):
            assert np.array_equal(by_quarter, np.where(some[:, None], one, other)), "to the last bit"
            _, dense = np.unique(way, return_inverse=True)
            direct = np.zeros((JACKKNIFE_GROUPS, dense.max() + 1, 4), np.int64)
            np.add.at(direct, (panel.group[rows], dense, fa * 2 + fb), 1)
            log_or, floor = _textbook(direct.sum(axis=0))
            leave_out = np.array([_textbook(direct.sum(axis=0) - g)[0] for g in direct])
            interval = jackknife(log_or, leave_out, floor=floor)
            counted = associations._odds_ratio(panel, persons, care, contact, by_quarter.sum(axis=0))
            assert counted["log_or"] == pytest.approx(log_or, rel=1e-12)
            assert (counted["lo"], counted["hi"]) == pytest.approx(
                (interval["lo"], interval["hi"]), rel=1e-12
            )
        person = panel.person[rows]
        assert (counted["n_a"], counted["n_b"], counted["n_both"]) == (
            len(np.unique(person[fa])), len(np.unique(person[fb])), len(np.unique(person[fa & fb]))
        )  # fmt: skip
        for x, y in (("home_care", "contact"), ("contact", "home_care")):  # the fewer rows now, then later
            both = panel.flag(x)[rows] & panel.flag(y)[later[rows]]
            assert persons.count(x, y) == len(np.unique(person[both]))


def _textbook(cells: np.ndarray) -> tuple[float, float]:
    """The Mantel–Haenszel log odds ratio over strata [s, (n00, n01, n10, n11)] and its Robins–Breslow–
    Greenland standard error, as the textbook writes them (Rothman, Modern Epidemiology, ch. 15)."""
    a, b, c, d = cells[:, 3], cells[:, 2], cells[:, 1], cells[:, 0]  # exposed cases, exposed non-cases, ...
    n = (a + b + c + d).astype(float)
    keep = n > 0
    a, b, c, d, n = a[keep], b[keep], c[keep], d[keep], n[keep]
    r, s = a * d / n, b * c / n
    p, q = (a + d) / n, (b + c) / n
    var = (p * r).sum() / (2 * r.sum() ** 2) + (p * s + q * r).sum() / (2 * r.sum() * s.sum())
    var += (q * s).sum() / (2 * s.sum() ** 2)
    return float(np.log(r.sum() / s.sum())), float(np.sqrt(var))


def test_segments_fitted_on_distinct_profiles_are_those_fitted_on_every_person():
    """k-means runs on the distinct profiles weighted by how many persons have each: the segments, their
    sizes and their centres must be those of k-means on every person's profile (a lost weight pulls a
    centre towards rare profiles; a person given another row's segment changes the sizes)."""
    rng = np.random.default_rng(5)
    quarters, names = 40, ("home_care", "contact", "paper_submission")
    usage = np.array([[0.9, 0.05, 0.0], [0.0, 0.85, 0.1], [0.05, 0.0, 0.7], [0.0, 0.0, 0.0]])
    kind = rng.choice(len(usage), size=3_300, p=[0.2, 0.4, 0.3, 0.1])
    flags = rng.random((len(kind), quarters, len(names))) < usage[kind][:, None, :]
    panel = _panel({n: flags[:, :, j] for j, n in enumerate(names)})
    found = segments.analyse(panel)
    shares, _, _ = segments.profiles(panel)
    x = shares[shares.sum(axis=1) > 0]
    assert len(segments.Distinct.of(x).rows) < len(x) / 3, "persons share profiles"
    every = KMeans(n_clusters=len(found) - 1, n_init=4, random_state=segments.SEED).fit(x)
    sizes = np.sort(np.bincount(every.labels_))[::-1]
    assert [f.n_a for f in found] == [int((shares.sum(axis=1) == 0).sum()), *sizes.tolist()]
    shown = {f.detail for f in found[1:]}
    assert shown == {segments.shares_text(c, names, panel) for c in every.cluster_centers_}
    assert 0.9 < found[0].effect <= 1.0, "three far-apart groups are stable under resampling"


def test_segments_of_fewer_distinct_profiles_than_segments_are_those_profiles():
    """Early in a municipality's history persons may share a handful of profiles, fewer than the smallest
    k: each distinct profile is then a segment of its own (k-means cannot fit more centres than points)."""
    quarters = 4
    home_care = np.repeat([[True], [False]], 60, axis=0).repeat(quarters, axis=1)
    panel = _panel({"home_care": home_care, "contact": ~home_care})
    found = segments.analyse(panel)
    assert [f.n_a for f in found] == [0, 60, 60] and found[0].effect == pytest.approx(1.0)


def test_segment_stability_resampled_on_distinct_profiles_is_that_of_resampling_persons():
    """A bootstrap resample of persons is a multinomial draw of the distinct profiles' counts: on
    overlapping groups, where stability is well below 1, it must measure what resampling every person
    measures (resampling the distinct profiles alike, without their counts, gives some 0.65, not 0.8)."""
    rng = np.random.default_rng(5)
    usage = np.array([[0.6, 0.2], [0.2, 0.6], [0.4, 0.4]])
    kind = rng.choice(len(usage), size=4_000, p=[0.45, 0.45, 0.1])
    x = (rng.random((len(kind), 12, 2)) < usage[kind][:, None, :]).mean(axis=1)
    x = x[x.sum(axis=1) > 0]
    people = segments.Distinct.of(x)
    fitted = (
        KMeans(n_clusters=3, n_init=4, random_state=1).fit(people.rows, sample_weight=people.count).labels_
    )
    labels = people.of_persons(fitted)
    measured = segments.bootstrap_stability(people, fitted, 3, np.random.default_rng(0))
    draw, every = np.random.default_rng(0), []
    for _ in range(segments.BOOTSTRAPS):
        sample = x[draw.integers(0, len(x), len(x))]
        refit = KMeans(n_clusters=3, n_init=2, random_state=int(draw.integers(1 << 31))).fit(sample)
        every.append(adjusted_rand_score(labels, refit.predict(x)))
    assert measured < 0.9 and measured == pytest.approx(np.mean(every), abs=0.08)


@pytest.mark.parametrize("seed", range(4))
def test_the_adjusted_rand_index_of_distinct_profiles_is_that_of_every_person(seed):
    """The stability's index from labels per distinct profile and how many persons have each must be
    scikit-learn's over every person, exactly: a miscounted pair would shift every bootstrap's score."""
    rng = np.random.default_rng(seed)
    profiles = int(rng.integers(1, 300))
    first, second = rng.integers(0, 5, profiles), rng.integers(0, 1 + seed * 2, profiles)
    count = rng.integers(1, 40, profiles)
    every = adjusted_rand_score(np.repeat(first, count), np.repeat(second, count))
    assert segments.adjusted_rand(first, second, count) == pytest.approx(every, rel=1e-12, abs=1e-15)
    assert segments.adjusted_rand(first, first, count) == 1.0


def test_a_modest_well_measured_link_is_reported_by_its_interval_not_a_fixed_odds_ratio():
    rng = np.random.default_rng(11)
    care = _lasting(rng, (6_000, 8), 0.05, 0.8)
    contact = _odds(rng, 0.15, 1.5, care)
    panel = _panel({"home_care": care, "contact": contact, "building_permit": rng.random(care.shape) < 0.02})
    found = _reported(panel)
    assert list(found) == ["association:home_care:contact"]
    row = found["association:home_care:contact"]
    assert 1.2 < row.ci_low < 1.5 < row.ci_high and row.effect < 2, "the old minimum of 2.0 dropped it"
    assert "KI:s nedre gräns > 1,20" in row.method, "the rule is stated in the findings table"
    assert not _reported(panel, margin=1.6), "a margin above what the interval rules out: not reported"
    [below] = [f for f in associations.analyse(panel, 1.6) if f.finding_id == "association:home_care:contact"]
    assert below.status == "samband, men inte säkert över marginalen 1,6", "a link, not 'no link'"


def test_a_lagged_link_without_a_same_quarter_link_is_one_finding_with_its_lag():
    rng = np.random.default_rng(12)
    care = _lasting(rng, (6_000, 10), 0.05, 0.5)
    shifted = np.zeros_like(care)
    shifted[:, 1:] = care[:, :-1]  # contact follows care a quarter later, whether care goes on or not
    contact = _odds(rng, 0.10, 3.0, shifted & ~care)
    panel = _panel({"home_care": care, "contact": contact})
    found = _reported(panel)
    assert list(found) == ["association:home_care:contact:lag1"], found.keys()
    row = found["association:home_care:contact:lag1"]
    assert row.lag_quarters == 1 and "ett kvartal senare" in row.title and row.ci_low > 1.2


def test_a_same_quarter_link_of_lasting_services_does_not_come_back_at_a_lag():
    rng = np.random.default_rng(13)
    care = _lasting(rng, (6_000, 10), 0.05, 0.85)
    contact = _odds(rng, 0.10, 3.0, care)
    findings = {
        f.finding_id: f for f in associations.analyse(_panel({"home_care": care, "contact": contact}))
    }
    assert [i for i, f in findings.items() if f.reported] == ["association:home_care:contact"]
    for lag in associations.LAGS:  # what care adds to a later contact beyond care then: nothing
        for k in (f"association:home_care:contact:lag{lag}", f"association:contact:home_care:lag{lag}"):
            assert findings[k].ci_low < associations.MARGIN, k


def test_a_service_that_ends_another_does_not_make_a_lagged_link_out_of_nothing():
    rng = np.random.default_rng(21)
    shape = (20_000, 10)
    home = np.zeros(shape, bool)  # nursing home: moves in at random, whatever the alarm, and stays
    home[:, 0] = rng.random(shape[0]) < 0.02
    for t in range(1, shape[1]):
        home[:, t] = home[:, t - 1] | (rng.random(shape[0]) < 0.02)
    alarm = _lasting(rng, shape, 0.05, 0.8) & ~home  # the move ends the safety alarm
    findings = {
        f.finding_id: f for f in associations.analyse(_panel({"safety_alarm": alarm, "nursing_home": home}))
    }
    conditioned = associations.test_pair(
        _panel({"safety_alarm": alarm, "nursing_home": home}),
        BY_NAME["safety_alarm"],
        BY_NAME["nursing_home"],
        1,
    )
    assert not [i for i, f in findings.items() if f.reported], "no link was planted"
    assert findings["association:safety_alarm:nursing_home:lag1"].ci_low < associations.MARGIN
    assert np.exp(conditioned["lo"]) < associations.MARGIN


def test_the_order_of_a_reported_link_is_told_in_that_finding_not_as_a_second_one():
    rng = np.random.default_rng(22)
    persons, quarters = 8_000, 10
    start = np.where(rng.random(persons) < 0.3, rng.integers(3, 8, persons), quarters)
    care = np.arange(quarters)[None, :] >= start[:, None]
    follows = rng.random(persons) < 0.5  # half of those with care get contacts from the next quarter
    contact = (np.arange(quarters)[None, :] > start[:, None]) & follows[:, None]
    contact |= np.arange(quarters)[None, :] >= rng.integers(3, 3 * quarters, persons)[:, None]
    panel = _panel({"home_care": care, "contact": contact})
    linked = associations.analyse(panel)
    assert [f.finding_id for f in linked if f.reported] and all(
        associations.families_of([f.finding_id])[0] == {"home_care", "contact"} for f in linked if f.reported
    )
    [order] = precedence.analyse(panel, linked)
    assert order.finding_id == "precedence:home_care:contact" and order.effect >= precedence.MIN_RATIO
    assert not order.reported and order.status == associations.PART_OF_ANOTHER
    assert "Ordningen ingår i fyndet association:home_care:contact" in order.description
    unreported = [replace(f, reported=False) for f in linked]  # linked, but no association finding
    assert precedence.analyse(panel, unreported)[0].reported
    not_linked = [replace(f, ci_low=0.9) for f in unreported]
    assert not precedence.analyse(panel, not_linked)[0].reported, "an order of services not linked"


def test_a_trend_of_a_reported_deviation_is_told_in_that_deviation():
    def finding(kind: str, org: str, reported: bool) -> Finding:
        return Finding(
            finding_id=f"{kind}:U90001:{org}",
            kind=kind,
            title=kind,
            description=f"{kind} {org}.",
            forvaltning="Socialförvaltningen",
            measure="m",
            reported=reported,
            about_persons=False,
            method="m",
            data_version="v",
        )

    deviations = [finding("kpi_deviation", "A", True), finding("kpi_deviation", "B", False)]
    trends = [finding("kpi_trend", "A", True), finding("kpi_trend", "B", True)]
    out = {f.finding_id: f for f in kpi.folded(deviations, trends)}
    assert (
        out["kpi_deviation:U90001:A"].reported and "kpi_trend A." in out["kpi_deviation:U90001:A"].description
    )
    assert not out["kpi_trend:U90001:A"].reported
    assert out["kpi_trend:U90001:A"].detail == "ingår i fyndet kpi_deviation:U90001:A"
    assert out["kpi_trend:U90001:B"].reported, "a trend without a reported deviation is a finding of its own"


def test_a_unit_of_fewer_persons_than_may_be_published_is_no_peer_on_a_person_based_kpi():
    rng = np.random.default_rng(24)
    months = [date(2024, m, 1) for m in range(1, 13)]

    def unit(name: str, deviation: float, persons: int, smallest: int | None = None) -> list[dict]:
        return [
            {
                "kpi_id": "U90073",
                "title": "Personalomsättning",
                "person_based": True,
                "org_unit_id": name,
                "forvaltning": "F",
                "enhet": name,
                "month": m,
                "deviation_pct": deviation + rng.normal(0, 2),
                "n": persons,
                "n_smallest": persons if smallest is None else smallest,
            }
            for m in months
        ]

    peers = [row for k in range(8) for row in unit(f"E{k}", rng.normal(0, 3), 80)]
    tiny = unit("Stab", -95.0, DEFAULT_THRESHOLD - 1)  # four employees: nobody left, 95 % under target
    series = pl.DataFrame(peers + tiny)
    found = {f.org_unit: f for f in kpi.deviations(series, "v")}
    assert "Stab" not in found, "a series that could never be shown is not compared"
    enough = pl.DataFrame(peers + unit("Stab", -95.0, DEFAULT_THRESHOLD))
    assert {f.org_unit: f for f in kpi.deviations(enough, "v")}["Stab"].reported, "the probe can fail"
    rare = pl.DataFrame(peers + unit("Stab", -95.0, 80, smallest=DEFAULT_THRESHOLD - 1))
    assert "Stab" not in {f.org_unit for f in kpi.deviations(rare, "v")}, "a share of too few low ratings"


def test_a_small_units_chance_is_its_own_and_no_deviation_from_its_peers():
    """Peers' spread is that of the large units; a unit whose own months swing widely (a small staff's
    rolling turnover) is judged against its peers and its own chance together."""
    rng = np.random.default_rng(31)
    months = [date(2020 + m // 12, m % 12 + 1, 1) for m in range(60)]

    def unit(name: str, mean: float, sd: float) -> list[dict]:
        return [
            {
                "kpi_id": "U90073", "title": "Personalomsättning", "person_based": True,
                "org_unit_id": name, "forvaltning": "F", "enhet": name, "month": m,
                "deviation_pct": mean + rng.normal(0, sd), "n": 70, "n_smallest": 70,
            }
            for m in months
        ]  # fmt: skip

    peers = [row for k in range(12) for row in unit(f"E{k}", rng.normal(-15, 3), 5)]
    swinging = {f.org_unit: f for f in kpi.deviations(pl.DataFrame(peers + unit("IT", 26, 38)), "v")}
    assert not swinging["IT"].reported, "a mean within the unit's own chance of its peers'"
    steady = {f.org_unit: f for f in kpi.deviations(pl.DataFrame(peers + unit("IT", 26, 3)), "v")}
    assert steady["IT"].reported, "the same mean, measured steadily, is a deviation (the probe can fail)"


def test_nested_indicators_give_one_finding_for_the_most_specific_and_mention_the_other():
    rng = np.random.default_rng(14)
    shape = (8_000, 6)
    own = _lasting(rng, shape, 0.03, 0.8)
    household = own | _lasting(rng, shape, 0.03, 0.8)  # others in the household have aid too
    contact = _odds(rng, 0.10, 3.0, own)
    panel = _panel({"economic_aid": own, "household_economic_aid": household, "contact": contact})
    findings = {f.finding_id: f for f in associations.analyse(panel)}
    assert [i for i, f in findings.items() if f.reported] == ["association:economic_aid:contact"]
    wider = findings["association:household_economic_aid:contact"]
    assert (
        wider.ci_low > associations.MARGIN
        and wider.detail == "ingår i fyndet association:economic_aid:contact"
    )
    assert "ekonomiskt bistånd i hushållet och kontakt med kontaktcenter samma kvartal" in (
        findings["association:economic_aid:contact"].description
    )


def test_two_services_linked_only_through_a_third_unit_are_not_reported():
    rng = np.random.default_rng(17)
    shape = (20_000, 8)
    care = _lasting(rng, shape, 0.04, 0.85)
    alarm = _odds(rng, 0.05, 20.0, care)  # inside vård och omsorg: home care and alarms go together
    contact, paper = _odds(rng, 0.10, 5.0, care), _odds(rng, 0.05, 5.0, alarm)
    panel = _panel({"home_care": care, "safety_alarm": alarm, "contact": contact, "paper_submission": paper})
    crude = associations.test_pair(panel, BY_NAME["contact"], BY_NAME["paper_submission"])
    assert np.exp(crude["lo"]) > associations.MARGIN, "without the third unit they look linked"
    findings = {f.finding_id: f for f in associations.analyse(panel)}
    reported = {i for i, f in findings.items() if f.reported}
    assert reported == {
        "association:home_care:contact",
        "association:safety_alarm:paper_submission",
        "association:home_care:safety_alarm",  # inside vård och omsorg: a link of its own
    }
    assert findings["association:contact:paper_submission"].ci_low < associations.MARGIN


def test_findings_say_whether_no_link_was_tested_too_little_data_or_not_shared():
    rng = np.random.default_rng(16)
    big = _panel(
        {"home_care": _lasting(rng, (20_000, 8), 0.05, 0.8), "contact": rng.random((20_000, 8)) < 0.15}
    )
    small = _panel({"home_care": _lasting(rng, (300, 8), 0.05, 0.8), "contact": rng.random((300, 8)) < 0.15})
    tested = {}
    for name, panel in (("big", big), ("small", small)):
        tested[name] = next(
            f for f in associations.analyse(panel) if f.finding_id == "association:home_care:contact"
        )
    assert tested["big"].min_detectable < associations.REFERENCE < tested["small"].min_detectable
    assert tested["big"].status.startswith("testat, inget samband")
    assert tested["small"].status.startswith("för lite data")
    untested = [f for f in associations.analyse(big) if f.status == associations.NOT_SHARED]
    assert {f.finding_id for f in untested} >= {
        "association:school:home_care",
        "association:economic_aid:contact",
    }
    assert all(f.p_value is None and f.q_value is None and not f.reported for f in untested)
    assert "association:home_care:safety_alarm" in {f.finding_id for f in untested}, (
        "two datasets of one unit"
    )
    assert "association:economic_aid:household_economic_aid" not in {f.finding_id for f in untested}, (
        "nested indicators: one family, not a pair"
    )


def _with_merit(panel: Panel, value: np.ndarray) -> Panel:
    """The panel with a year-9 merit value in each person's last quarter (``value`` per person)."""
    last = panel.quarter == len(panel.quarters) - 1
    merit = np.full(panel.rows, np.nan)
    merit[last] = value[panel.person[last]]
    return replace(panel, merit=merit)


def test_year_nine_merit_value_is_compared_by_a_difference_in_means_beyond_a_margin():
    rng = np.random.default_rng(19)
    persons, quarters = 3_000, 6
    absence = rng.random((persons, quarters)) < 0.08
    contact = rng.random((persons, quarters)) < 0.2
    absent = absence[:, 1:5].any(axis=1)  # in the school year before the merit value (quarter 5)
    value = np.clip(230 + rng.normal(0, 40, persons) - 30 * absent, 0, 340)
    found = {
        f.finding_id: f
        for f in associations.analyse(
            _with_merit(_panel({"high_absence": absence, "contact": contact}), value)
        )
    }
    lower = found["association:high_absence:merit"]
    assert lower.reported and lower.measure == "skillnad i medelvärde (meritpoäng)"
    assert lower.ci_low < -30 < lower.ci_high and lower.ci_high < -merit.MARGIN
    assert lower.n_a == absent.sum() and lower.n_b == persons - absent.sum()
    assert "lägre meritvärde" in lower.title
    none = found["association:contact:merit"]
    assert not none.reported and none.status.startswith("testat, inget samband (en skillnad på 20 meritpoäng")
    assert none.q_value is not None, "in the same correction as the odds ratios"
    # the same difference inside the margin is real but not reported: 10 points matter, 5 do not
    small = np.clip(230 + rng.normal(0, 40, persons) - 5 * absent, 0, 340)
    weak = next(
        f
        for f in associations.analyse(
            _with_merit(_panel({"high_absence": absence, "contact": contact}), small)
        )
        if f.finding_id == "association:high_absence:merit"
    )
    assert not weak.reported and abs(weak.effect) < merit.MARGIN


def test_a_merit_difference_among_a_handful_of_pupils_is_too_little_data_not_a_finding():
    rng = np.random.default_rng(23)
    persons, quarters = 3_000, 6
    alarm = np.zeros((persons, quarters), bool)
    alarm[: merit.MIN_PUPILS - 1, 2] = True  # a few pupils with a safety alarm, all without grades
    value = np.clip(230 + rng.normal(0, 40, persons), 0, 340)
    value[: merit.MIN_PUPILS - 1] = 0
    contact = rng.random((persons, quarters)) < 0.2
    found = {
        f.finding_id: f
        for f in associations.analyse(_with_merit(_panel({"safety_alarm": alarm, "contact": contact}), value))
    }
    few = found["association:safety_alarm:merit"]
    assert not few.reported and few.p_value is None and few.status.startswith("för lite data"), few.status
    alarm[: merit.MIN_PUPILS, 2] = True
    value[: merit.MIN_PUPILS] = 0
    enough = next(
        f
        for f in associations.analyse(_with_merit(_panel({"safety_alarm": alarm, "contact": contact}), value))
        if f.finding_id == "association:safety_alarm:merit"
    )
    assert enough.reported, "at the minimum the same difference is tested and found"


def test_child_investigations_are_not_shared_until_a_steward_shares_a_quarterly_flag():
    rng = np.random.default_rng(18)
    absence = rng.random((4_000, 8)) < 0.1
    contact = rng.random((4_000, 8)) < 0.2
    aggregate = {
        f.finding_id: f for f in associations.analyse(_panel({"high_absence": absence, "contact": contact}))
    }
    row = aggregate["association:child_investigation:high_absence"]
    assert row.status == associations.NOT_SHARED and row.p_value is None and not row.reported
    assert "socialtjanst.barnutredningar delas inte" in row.description
    flag = _odds(rng, 0.01, 6.0, absence)  # a derived per-person quarter flag, as if a steward approved one
    derived = {
        f.finding_id: f
        for f in associations.analyse(_panel({"child_investigation": flag, "high_absence": absence}))
    }
    assert derived["association:child_investigation:high_absence"].reported


def test_shuffling_one_units_persons_keeps_its_course_and_moves_it_to_others():
    rng = np.random.default_rng(15)
    shape = (3_000, 6)
    care, contact = _lasting(rng, shape, 0.05, 0.8), _lasting(rng, shape, 0.1, 0.5)
    panel = _panel({"home_care": care, "contact": contact})
    shuffled = permute_unit(panel, "vard_omsorg", seed=1)
    moved = shuffled.flag("home_care").reshape(shape)
    assert (shuffled.flag("contact") == panel.flag("contact")).all(), "the other units stay"
    assert (moved.sum(axis=0) == care.sum(axis=0)).all(), "each quarter's count stays"
    assert sorted(map(tuple, moved)) == sorted(map(tuple, care)), "each history stays whole"
    assert (moved != care).any()


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


def test_statuses_are_published_without_what_a_small_group_would_give_away():
    base = {
        "measure": "oddskvot (Mantel–Haenszel)",
        "n_a": 400,
        "n_b": 300,
        "detail": None,
        "reported": False,
    }
    rows = [
        {**base, "finding_id": "association:a:b", "n_both": 3, "reported": True, "status": "rapporterat",
         "min_detectable": 3.14159},
        {**base, "finding_id": "association:a2:b", "n_both": 40, "status": "ingår i ett annat fynd",
         "detail": "ingår i fyndet association:a:b", "min_detectable": 1.61803},
        {**base, "finding_id": "association:c:d", "n_both": 90, "status": "testat, inget samband",
         "min_detectable": 1.41421},
        {**base, "finding_id": "association:e:f", "n_both": None, "n_a": None, "n_b": None,
         "status": "delas inte", "min_detectable": None},
        {**base, "finding_id": "association:g:merit", "measure": "skillnad i medelvärde (meritpoäng)",
         "n_both": 30, "n_b": 4, "status": "testat, inget samband", "min_detectable": 12.345},
    ]  # fmt: skip
    out = {
        r["finding_id"]: r for r in publishable_statuses(pl.DataFrame(rows), THRESHOLD).iter_rows(named=True)
    }
    small = f"för lite data (en grupp har färre än {THRESHOLD} personer)"
    assert out["association:a:b"]["status"] == small and out["association:a:b"]["min_detectable"] is None
    assert out["association:a2:b"]["status"].startswith("samband, men fyndet det ingår i visas inte")
    assert (
        out["association:c:d"]["min_detectable"] == 1.41
        and out["association:c:d"]["status"] == rows[2]["status"]
    )
    assert out["association:e:f"]["status"] == "delas inte"
    merit_row = out["association:g:merit"]
    assert merit_row["status"] == small and merit_row["min_detectable"] is None, "the pupils without it are 4"
    assert not {"reported", "detail"} & set(out["association:c:d"])


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
        if analysis.name == "associations":  # the rule and the answer per hypothesis, in the run's metadata
            metadata = event.asset_materialization.metadata
            assert "KI:s nedre gräns > 1,20" in metadata["method"].value
            assert "rapporterat" in metadata["status"].value
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


def test_precedence_alone_builds_on_the_associations_stored_before(discovery_platform, tmp_path):
    """The discovery step materialises what is selected: precedence alone reads the associations as
    stored, so it stands while they stand and is computed anew once they change (here: stored as
    linking every pair); the other analyses' findings stay as they were. (What a linked pair changes
    in a precedence finding: ``test_the_order_of_a_reported_link_is_told_in_that_finding_not_as_a_second_one``.)"""
    home = tmp_path / "home"
    shutil.copytree(discovery_platform["paths"].home, home, symlinks=True)
    zone = Warehouse(Paths(home).warehouse).cross_unit
    written = "SELECT * EXCLUDE (analysed_at) FROM discovery.{} ORDER BY finding_id"
    others = [a.name for a in ANALYSES if a.name != "precedence"]
    [order] = [a.key for a in ANALYSES if a.name == "precedence"]

    def precedence_alone() -> str:
        with dg.instance_for_test() as instance:
            result = dg.materialize(
                [discovery],
                instance=instance,
                selection=[order],
                resources={"platform": Platform(home=str(home))},
            )
        assert result.success
        [event] = result.get_asset_materialization_events()
        checks = result.get_asset_check_evaluations()
        assert {c.asset_key for c in checks} == {order} and all(c.passed for c in checks) and len(checks) == 2
        assert event.asset_key == order
        return event.materialization.metadata["analysed"].value

    assert precedence_alone().startswith("kept from")
    with duckdb.connect(str(zone)) as con:
        con.execute("UPDATE discovery.associations SET ci_low = 2.0, reported = false")
    before = {name: _query(zone, written.format(name)) for name in others}
    assert precedence_alone() == "now"
    assert precedence_alone().startswith("kept from"), "its basis holds the associations it read"
    assert {name: _query(zone, written.format(name)) for name in others} == before


def test_discovery_reads_the_quarters_whose_every_month_is_in_the_calendar(discovery_platform):
    """A quarter at either end of the platform's calendar is seen in part (the main job's period ends with
    the last complete month, so it rarely starts or ends on a quarter): the panel keeps it, for the
    published quarterly figures, and marks it incomplete; discovery reads the complete ones only."""
    warehouse = discovery_platform["warehouse"]
    months = {m for (m,) in _query(warehouse.marts, "SELECT month FROM dim_month")}
    stored = dict(_query(warehouse.cross_unit, f"SELECT DISTINCT quarter, complete FROM {PANEL}"))
    for quarter, complete in stored.items():
        assert complete == all(date(quarter.year, quarter.month + k, 1) in months for k in range(3)), quarter
    assert list(open_panel(warehouse.cross_unit).quarters) == sorted(str(q) for q, c in stored.items() if c)
    assert sum(stored.values()) >= 6


def _discover(home, margin: float | None = None) -> dict[str, str]:
    """Materialise the four discovery assets on ``home``; per analysis, how its findings came about."""
    config = {"ops": {"discovery": {"config": {"margin": margin}}}} if margin else None
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [discovery],
            instance=instance,
            resources={"platform": Platform(home=str(home))},
            run_config=config,
        )
        assert result.success and all(c.passed for c in result.get_asset_check_evaluations())
        return {
            e.asset_key.path[-1]: e.materialization.metadata["analysed"].value
            for e in result.get_asset_materialization_events()
        }


def test_findings_stand_while_what_they_were_computed_from_stands(discovery_platform, tmp_path):
    """An unchanged panel (a month inside a quarter changes none of its complete quarters) keeps the
    findings as written and reads no panel; a changed panel, another margin or a finding edited since
    is computed anew. The KPI deviations read the marts, which did not change either."""
    home = tmp_path / "home"
    shutil.copytree(discovery_platform["paths"].home, home, symlinks=True)
    shutil.rmtree(Warehouse(Paths(home).warehouse).panel_cache)
    zone = Warehouse(Paths(home).warehouse).cross_unit
    written = "SELECT * FROM discovery.{} ORDER BY finding_id"  # analysed_at last
    unstamped = "SELECT * EXCLUDE (analysed_at) FROM discovery.{} ORDER BY finding_id"
    before = {a.name: _query(zone, written.format(a.name)) for a in ANALYSES}

    assert all(how.startswith("kept from") for how in _discover(home).values())
    assert {a.name: _query(zone, written.format(a.name)) for a in ANALYSES} == before, "analysed_at too"
    assert not Warehouse(Paths(home).warehouse).panel_cache.exists(), "no panel was read"

    with duckdb.connect(str(zone)) as con:
        con.execute("UPDATE discovery.segments SET title = 'ett påhittat segment' WHERE rowid = 0")
    how = _discover(home)
    assert how.pop("segments") == "now" and all(h.startswith("kept from") for h in how.values())
    segments_now = _query(zone, written.format("segments"))
    assert _query(zone, unstamped.format("segments")) == [r[:-1] for r in before["segments"]]
    assert segments_now != before["segments"], "computed again, at another time"

    assert set(_discover(home, margin=1.3).items()) >= {("associations", "now"), ("precedence", "now")}
    assert Warehouse(Paths(home).warehouse).association_sums.exists(), "the step keeps the sums per quarter"
    with duckdb.connect(str(zone)) as con:
        last = con.execute(f"SELECT max(quarter) FROM {PANEL} WHERE complete").fetchone()[0]
        con.execute(f"UPDATE {PANEL} SET complete = false WHERE quarter = ?", [last])
    recomputed = _discover(home, margin=1.3)
    assert [recomputed[a.name] for a in ANALYSES if a.uses_panel] == ["now"] * 3
    assert recomputed["kpi_deviations"].startswith("kept from")
    assert str(last) not in open_panel(zone).quarters


def _same_panel(a: Panel, b: Panel) -> bool:
    def same(x, y) -> bool:
        if isinstance(x, np.ndarray):
            return x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f")
        return x == y

    return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(Panel))


def test_the_panel_s_data_version_sees_changes_that_cancel_out_in_a_xor_of_row_hashes():
    """DuckDB combines a row's values' hashes by XOR, so two persons' flags turned on together leave a
    ``bit_xor`` of row hashes as it was; the cache would then give the old panel for the new."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA discovery")
    con.execute(
        f"CREATE TABLE {PANEL} AS SELECT 'p' || range AS citizen_key, DATE '2025-01-01' AS quarter, "
        "true AS complete, false AS has_contact FROM range(40)"
    )
    linear = f"SELECT bit_xor(hash(p)) FROM {PANEL} p"
    before, xor_before = data_version(con), con.execute(linear).fetchall()
    con.execute(f"UPDATE {PANEL} SET has_contact = true WHERE citizen_key IN ('p1', 'p2')")
    assert con.execute(linear).fetchall() == xor_before, "what DuckDB's row hash does"
    assert data_version(con) != before


def test_the_panel_cache_gives_the_panel_and_only_for_its_own_data_version(discovery_platform, tmp_path):
    warehouse = discovery_platform["warehouse"]
    assert warehouse.panel_cache.exists(), "the discovery run keeps the panel it read"
    with connect(warehouse.cross_unit, read_only=True) as con:
        assert _same_panel(cached_panel(con, warehouse.panel_cache), load_panel(con))
    zone, cache = tmp_path / "cross_unit.duckdb", tmp_path / "panel"
    shutil.copy(warehouse.cross_unit, zone)
    shutil.copytree(warehouse.panel_cache, cache)
    with connect(zone) as con:
        before = load_panel(con)
        con.execute(f"UPDATE {PANEL} SET age = age + 1 WHERE rowid % 7 = 0")  # another panel, as many rows
        changed = cached_panel(con, cache)
        assert changed.data_version != before.data_version
        assert _same_panel(changed, load_panel(con)) and not _same_panel(changed, before)
        assert _same_panel(cached_panel(con, cache), changed), "and kept for the next analysis"
    assert len(list(cache.iterdir())) == 1, "the cache of the panel before is gone"


def test_a_changed_panel_reads_only_its_changed_quarters_into_the_cached_one(
    discovery_platform, tmp_path, caplog
):
    """A month's late data change one or two complete quarters: the cache's panel takes the rows of those
    and keeps the others, and must be what a whole read gives, whoever came, went or moved in them
    (persons are numbered by their keys' order, so a new key renumbers everyone after it)."""
    warehouse = discovery_platform["warehouse"]
    zone, cache = tmp_path / "cross_unit.duckdb", tmp_path / "panel"
    shutil.copy(warehouse.cross_unit, zone)
    with connect(zone) as con:
        cached_panel(con, cache)
        quarters = [
            str(q) for (q,) in con.execute(f"SELECT DISTINCT quarter FROM {PANEL} ORDER BY 1").fetchall()
        ]
        last, opened = [q for q in quarters if q in load_panel(con).quarters][-1], quarters[-1]
        for edit in (
            f"UPDATE {PANEL} SET has_contact = NOT coalesce(has_contact, false) WHERE quarter = $q AND rowid % 5 = 0",
            f"UPDATE {PANEL} SET district = 'Mellersta nya' WHERE quarter = $q AND rowid % 11 = 0",  # moved
            f"""DELETE FROM {PANEL} WHERE quarter = $q AND citizen_key IN (
                SELECT citizen_key FROM {PANEL} WHERE quarter = $q ORDER BY citizen_key LIMIT 3)""",
            f"""INSERT INTO {PANEL} SELECT p.* REPLACE (k || citizen_key AS citizen_key)  -- came, first to last
                FROM {PANEL} p, (VALUES ('0'), ('8'), ('f')) AS new(k) WHERE quarter = $q AND rowid % 97 = 0""",
        ):
            con.execute(edit, {"q": last})
        with caplog.at_level(logging.INFO, logger="pipelines.discovery.panel"):
            changed = cached_panel(con, cache)
        whole = load_panel(con)
        assert f"1 of {len(whole.quarters)} quarters read" in caplog.text
        assert _same_panel(changed, whole) and changed.persons > 0 and "Mellersta nya" in whole.districts

        caplog.clear()
        con.execute(f"UPDATE {PANEL} SET complete = true WHERE quarter = ?", [opened])  # a quarter closes
        new = "length(citizen_key) = 65 AND citizen_key[1] = '8'"  # persons who came in the last quarter
        con.execute(f"DELETE FROM {PANEL} WHERE {new}")  # ... and went again
        with caplog.at_level(logging.INFO, logger="pipelines.discovery.panel"):
            closed = cached_panel(con, cache)
        assert f"2 of {len(whole.quarters) + 1} quarters read" in caplog.text, (
            "the quarter that closed, and the last"
        )
        assert _same_panel(closed, load_panel(con)) and closed.quarters[-1] == opened

        caplog.clear()
        about = next(cache.iterdir()) / "about.json"
        about.write_text(about.read_text().replace('"code": "', '"code": "other'))  # read by other code
        con.execute(f"UPDATE {PANEL} SET age = age + 1 WHERE quarter = ?", [opened])
        with caplog.at_level(logging.INFO, logger="pipelines.discovery.panel"):
            assert _same_panel(cached_panel(con, cache), load_panel(con))
        assert "quarters read" not in caplog.text, "a cache another code read is not updated"

        caplog.clear()
        con.execute(f"UPDATE {PANEL} SET has_contact = NULL")  # no longer shared: the flags change shape
        with caplog.at_level(logging.INFO, logger="pipelines.discovery.panel"):
            unshared = cached_panel(con, cache)
        assert "quarters read" not in caplog.text and "contact" in unshared.not_shared
        assert _same_panel(unshared, load_panel(con))


def test_the_associations_count_only_the_changed_quarters_and_find_what_counting_all_finds(
    discovery_platform, tmp_path, caplog
):
    """A month's late data change a quarter: the associations count again the quarters whose rows, or rows
    a lag later, changed, and take the others' sums from the last run; the findings must be those of a
    count of every quarter. A sums file that cannot be read, or one other code wrote, is counted whole."""
    zone, sums = tmp_path / "cross_unit.duckdb", tmp_path / "sums.npz"
    shutil.copy(discovery_platform["warehouse"].cross_unit, zone)
    with connect(zone) as con:
        before = counting.Memo(quarter_digests(con))
        associations.analyse(load_panel(con), memo=before)
        before.write(sums)
        last = load_panel(con).quarters[-1]
        con.execute(
            f"UPDATE {PANEL} SET has_contact = NOT coalesce(has_contact, false) WHERE quarter = $q AND rowid % 5 = 0",
            {"q": last},
        )
        con.execute(
            f"UPDATE {PANEL} SET district = 'Aaby nya' WHERE quarter = $q AND rowid % 11 = 0", {"q": last}
        )
        panel, digests = load_panel(con), quarter_digests(con)
    assert panel.districts[0] == "Aaby nya", "a new district that renumbers every stratum"
    whole = associations.analyse(panel)
    n = len(panel.quarters)
    for memo, counted in (
        (counting.Memo.read(sums, digests), f"1 of {n} at lag 0, 2 of {n} at lag 1, 2 of {n} at lag 2"),
        (counting.Memo(digests), f"{n} of {n} at lag 0, {n} of {n} at lag 1, {n} of {n} at lag 2"),
    ):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="pipelines.discovery.associations"):
            found = associations.analyse(panel, memo=memo)
        new_tests = len(_tests(memo.counted) - _tests(memo.known)) if memo.known else 0
        assert (
            f"the associations counted the rows of {counted} quarters; {new_tests} tests every quarter"
            in caplog.text
        )
        _assert_same_findings(found, whole)

    sums.write_bytes(sums.read_bytes()[:-100])  # cut short
    with caplog.at_level(logging.WARNING, logger="pipelines.discovery.counting"):
        assert not counting.Memo.read(sums, digests).known
    assert "the associations' sums at" in caplog.text and "were not used" in caplog.text
    before.write(sums)
    with np.load(sums) as stored:
        np.savez(sums, code=np.array("other code"), keys=stored["keys"], sums=stored["sums"])
    assert not counting.Memo.read(sums, digests).known, "sums another code made are not taken"


def test_the_code_version_changes_with_the_duckdb_that_reads_the_panel(monkeypatch):
    """The jackknife groups are DuckDB's hash of the citizen key: a DuckDB that hashed otherwise would mix
    old groups (a cached panel's kept quarters, the kept sums) with new ones in one person's quarters."""
    before = code_version()
    real = findings.version
    monkeypatch.setattr(findings, "version", lambda name: "0.0.1" if name == "duckdb" else real(name))
    code_version.cache_clear()
    try:
        assert code_version() != before
    finally:
        code_version.cache_clear()


def _tests(sums: dict[str, np.ndarray]) -> set[str]:
    """The tests whose sums these are (a key is test#variant@quarter): a test the last run did not make,
    such as a pair tested again within a third unit's services once the changed rows make it hold, has no
    kept quarters and is counted whole."""
    return {key.split("#", 1)[0] for key in sums}


def _assert_same_findings(found: list[Finding], whole: list[Finding]) -> None:
    """The same findings, their numbers to the last few bits (a quarter's strata added in another order)."""
    assert [f.finding_id for f in found] == [f.finding_id for f in whole]
    for f, w in zip(found, whole, strict=True):
        for name in (field.name for field in dataclasses.fields(Finding)):
            x, y = getattr(f, name), getattr(w, name)
            assert x == (pytest.approx(y, rel=1e-9) if isinstance(y, float) else y), (f.finding_id, name)


@pytest.mark.parametrize("seed", range(3))
def test_associations_counted_month_after_month_find_what_counting_every_quarter_finds(
    seed, tmp_path, caplog
):
    """Random histories of late data (flags flipped and ages changed in a few quarters, quarters closing)
    with links to find, some through a third unit: every month the associations taken partly from the
    last month's sums are those of a count of every quarter, and only the changed quarters are counted."""
    rng = np.random.default_rng(seed)
    shape = (4_000, 12)
    care = _lasting(rng, shape, 0.04, 0.85)
    alarm = _odds(rng, 0.05, 20.0, care)
    flags = {"home_care": care, "safety_alarm": alarm, "contact": _odds(rng, 0.1, 5.0, care)}
    flags["paper_submission"] = _odds(rng, 0.05, 5.0, alarm)
    ages = rng.integers(0, 3, shape)
    sums, open_from = tmp_path / "sums.npz", 7
    changed = set(range(open_from))
    for month in range(6):
        part = {name: f[:, :open_from] for name, f in flags.items()}
        panel = replace(_panel(part), age_group=ages[:, :open_from].reshape(-1))
        digests = {
            q: (
                shape[0],
                int.from_bytes(
                    hashlib.sha256(b"".join(f[:, k].tobytes() for f in [*part.values(), ages])).digest()[:8]
                ),
            )
            for k, q in enumerate(panel.quarters)
        }
        memo = counting.Memo.read(sums, digests)
        forgotten = [k for k in memo.known if k.startswith("home_care:contact:0:")] if month == 2 else []
        for key in forgotten:  # as for a test not made last run: every quarter counted
            del memo.known[key]
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="pipelines.discovery.associations"):
            found = associations.analyse(panel, memo=memo)
        assert found == associations.analyse(panel), f"month {month}"
        assert f"counted the rows of {len(changed)} of {open_from} at lag 0" in caplog.text, f"month {month}"
        assert f"; {int(bool(forgotten))} tests every quarter" in caplog.text, f"month {month}"
        memo.write(sums)
        changed = set(rng.choice(open_from, int(rng.integers(1, 3)), replace=False).tolist())
        for q in changed:
            which = rng.random(shape[0]) < 0.02
            flags["contact"][which, q] ^= True
            ages[rng.random(shape[0]) < 0.01, q] = rng.integers(0, 3)
        if rng.random() < 0.4 and open_from < shape[1]:
            changed.add(open_from)
            open_from += 1


def test_a_panel_with_no_indicator_shared_is_read_whole_and_updated(tmp_path, caplog):
    """Before any steward approves, the panel has persons and quarters and no flag at all."""
    con = duckdb.connect()
    con.execute("CREATE SCHEMA discovery")
    con.execute(
        f"""CREATE TABLE {PANEL} AS SELECT 'p' || (range % 7) AS citizen_key, true AS complete, 40 AS age,
            NULL AS district, NULL::BOOLEAN AS has_contact,
            DATE '2025-01-01' + INTERVAL (3 * (range // 7)) MONTH AS quarter FROM range(21)"""
    )
    first = cached_panel(con, tmp_path)
    assert first.flags.shape == (21, 0) and first.persons == 7 and "contact" in first.not_shared
    con.execute(f"DELETE FROM {PANEL} WHERE citizen_key = 'p3' AND quarter = DATE '2025-07-01'")
    with caplog.at_level(logging.INFO, logger="pipelines.discovery.panel"):
        second = cached_panel(con, tmp_path)
    assert "1 of 3 quarters read" in caplog.text
    assert _same_panel(second, load_panel(con)) and second.flags.shape == (20, 0)


@pytest.mark.parametrize("seed", range(3))
def test_a_cached_panel_updated_month_after_month_is_what_a_whole_read_gives(seed, tmp_path, caplog):
    """A probe of ``panel.updated``: random months of late data (flags flipped, persons gone, new keys
    anywhere in the order, moves to new districts, birthdays, a merit value, a quarter that closes) each
    update the cache's panel, and each must be the panel a whole read gives."""
    rng = np.random.default_rng(seed)
    con = duckdb.connect()
    con.execute("CREATE SCHEMA discovery")
    con.execute(
        f"""CREATE TABLE {PANEL} AS SELECT md5((range // 8)::VARCHAR) AS citizen_key,
            DATE '2024-01-01' + INTERVAL (3 * (range % 8)) MONTH AS quarter, range % 8 < 6 AS complete,
            (range // 8) % 90 AS age, 'D' || (range % 3) AS district, random() < 0.3 AS has_contact,
            random() < 0.1 AS has_home_care, random() < 0.05 AS has_merit, 200.0 AS merit_value
            FROM range(8 * 300) WHERE hash(range, {seed}) % 5 > 0"""
    )
    cached_panel(con, tmp_path)
    quarters = [str(q) for (q,) in con.execute(f"SELECT DISTINCT quarter FROM {PANEL} ORDER BY 1").fetchall()]
    updates = 0
    for month in range(8):
        for q in rng.choice(quarters[: 6 + month // 4], size=rng.integers(1, 3), replace=False):
            k = int(rng.integers(2, 9))
            for edit in (
                f"UPDATE {PANEL} SET has_contact = NOT has_contact WHERE quarter = $q AND hash(citizen_key) % {k} = 0",
                f"DELETE FROM {PANEL} WHERE quarter = $q AND hash(citizen_key, {month}) % 17 = 0",
                f"""INSERT INTO {PANEL} SELECT p.* REPLACE (md5(citizen_key || {month}) AS citizen_key)
                    FROM {PANEL} p WHERE quarter = $q AND hash(citizen_key) % 23 = {month}""",
                f"UPDATE {PANEL} SET district = 'A{month}' WHERE quarter = $q AND hash(citizen_key) % 29 = 1",
                f"UPDATE {PANEL} SET age = age + 1, merit_value = merit_value + {k} WHERE quarter = $q AND hash(citizen_key) % 11 = 2",
            ):
                con.execute(edit, {"q": q})
        if month == 3:
            con.execute(f"UPDATE {PANEL} SET complete = true WHERE quarter = ?", [quarters[6]])
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="pipelines.discovery.panel"):
            updated = cached_panel(con, tmp_path)
        updates += "quarters read" in caplog.text
        assert _same_panel(updated, load_panel(con)), f"month {month}"
    assert updates == 8, "every month updated the cache's panel"


def test_a_broken_earlier_cache_is_said_and_the_panel_read_whole(discovery_platform, tmp_path, caplog):
    warehouse = discovery_platform["warehouse"]
    zone, cache = tmp_path / "cross_unit.duckdb", tmp_path / "panel"
    shutil.copy(warehouse.cross_unit, zone)
    with connect(zone) as con:
        cached_panel(con, cache)
        (next(cache.iterdir()) / "person.npy").write_bytes(b"not an array")
        con.execute(
            f"UPDATE {PANEL} SET age = age + 1 WHERE quarter = (SELECT max(quarter) FROM {PANEL} WHERE complete)"
        )
        assert _same_panel(cached_panel(con, cache), load_panel(con))
    assert "the panel's cache at" in caplog.text and "was not used" in caplog.text


def test_a_cache_written_beside_the_analyses_is_the_same_and_one_not_written_is_said(
    discovery_platform, tmp_path, caplog
):
    """The discovery step writes the panel's cache on a thread of its own while it analyses: the cache
    must be the one written inline, and a write that fails costs a warning, not the analyses."""
    with connect(discovery_platform["warehouse"].cross_unit, read_only=True) as con:
        with ThreadPoolExecutor(max_workers=1) as keeper:
            panel = cached_panel(con, tmp_path / "kept", keeper=keeper)
        assert _same_panel(cached_panel(con, tmp_path / "kept"), panel)
        (tmp_path / "a file").write_text("not a folder")
        with ThreadPoolExecutor(max_workers=1) as keeper:
            assert _same_panel(cached_panel(con, tmp_path / "a file", keeper=keeper), panel)
    assert "the panel's cache was not written" in caplog.text


def test_the_panel_is_read_in_person_and_quarter_order_with_each_rows_own_values(discovery_platform):
    """``load_panel`` orders the rows in numpy (an argsort on person and quarter), not in DuckDB: each
    array must follow that order, row by row what the table holds for the person and quarter."""
    with connect(discovery_platform["warehouse"].cross_unit, read_only=True) as con:
        panel = load_panel(con)
        flag = panel.indicators[0]
        district, quarter, flagged = zip(
            *con.execute(
                f"""SELECT coalesce(district, 'Okänt'), quarter::VARCHAR, coalesce({flag.expression}, false)
                    FROM {PANEL} WHERE complete AND age >= 0 ORDER BY citizen_key, quarter"""
            ).fetchall(),
            strict=True,
        )
    step = np.diff(panel.person * len(panel.quarters) + panel.quarter)
    assert len(step) > 1_000 and (step > 0).all(), "by person, then quarter"
    assert [panel.districts[d] for d in panel.district] == list(district)
    assert [panel.quarters[q] for q in panel.quarter] == list(quarter)
    assert panel.flag(flag.name).tolist() == list(flagged)


def test_every_cross_unit_pair_is_tested_and_corrected_together(discovery_platform):
    panel = open_panel(discovery_platform["warehouse"].cross_unit)
    expected = associations.pairs(panel)
    assert len(expected) >= 50 and all(a.unit != b.unit or a.dataset != b.dataset for a, b in expected)
    assert ("home_care", "nursing_home") in [(a.name, b.name) for a, b in expected], "within one unit too"
    hypotheses = len(expected) * (1 + 2 * len(associations.LAGS))  # the same quarter, each lag either way
    compared = merit.comparisons(panel, merit.pupils(panel)[1])  # year-9 merit value: a difference in means
    assert {c.indicator.name for c in compared} >= {"high_absence", "household_economic_aid"}
    for table, tests in (("associations", hypotheses + len(compared)), ("precedence", len(expected))):
        found = _findings(discovery_platform, table).filter(pl.col("status").fill_null("") != "delas inte")
        assert found.height == tests, table
        p = found["p_value"].fill_null(float("nan")).to_numpy()
        corrected = (
            associations.family_q(associations.families_of(found["finding_id"].to_list()), p)[0]
            if table == "associations"
            else benjamini_hochberg(p)
        )
        assert np.allclose(found["q_value"].to_numpy(), corrected), table
        assert (found.filter(pl.col("reported"))["q_value"] < 0.05).all()


def test_the_correction_check_fails_when_q_values_are_not_over_every_test(discovery_platform):
    found = _findings(discovery_platform, "associations")
    assert _corrected(found, ANALYSES[0].key).passed
    uncorrected = found.with_columns(q_value=pl.col("p_value"))  # as if each pair had been tested alone
    assert not _corrected(uncorrected, ANALYSES[0].key).passed


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


def test_one_planted_link_gives_one_finding(discovery_platform):
    reported = pl.concat(
        [_findings(discovery_platform, t).filter(pl.col("reported")) for t in ("associations", "precedence")]
    )
    for pattern in discovery_platform["manifest"]["patterns"]:
        planted = set(pattern["datasets"]) - {"folkbokforing.aviseringar"}
        same = [r["finding_id"] for r in reported.iter_rows(named=True) if _pair(r) == planted]
        assert len(same) <= 1, same
    kpi_found = _findings(discovery_platform, "kpi_deviations").filter(pl.col("reported"))
    series = [
        i.split(":", 1)[1] for i in kpi_found["finding_id"] if i.startswith(("kpi_deviation:", "kpi_trend:"))
    ]
    assert len(series) == len(set(series)), "a deviation and a trend of one series are one finding"


SHUFFLED_UNITS = ("vard_omsorg", "socialtjanst", "skola", "kontaktcenter", "e_tjanster")
SHUFFLES = ((1, 7), (2, 8), (3, 9))  # (another citizen key: panel.rekeyed, the shuffle's seed)
NOT_PLANTED = 0.05  # the share of reported findings the discovery unit tolerates not being real (issue 16)


def _about(finding, unit: str) -> bool:
    units = {d.split(".")[0] for d in (finding.dataset_a, finding.dataset_b)}
    return unit in units and units != {unit} and finding.status != associations.NOT_SHARED


def _shuffled_runs(panel: Panel, units, shuffle) -> dict:
    """Discovery on the panel with each unit's persons moved by ``shuffle(panel, unit, seed)``, under
    several citizen keys: the p-values of every hypothesis linking the unit to another, how many runs
    reported one, and how many findings were reported about it and in all."""
    out = {"p": [], "runs": 0, "runs_with_false": 0, "false": 0, "reported": 0, "examples": []}
    for unit in units:
        for key, seed in SHUFFLES:
            found = associations.analyse(shuffle(rekeyed(panel, key), unit, seed))
            about = [f for f in found if _about(f, unit)]
            false = [f for f in about if f.reported]
            out["p"] += [f.p_value for f in about if f.p_value is not None]
            out["runs"] += 1
            out["runs_with_false"] += bool(false)
            out["false"] += len(false)
            out["reported"] += sum(f.reported for f in found)
            out["examples"] += [(unit, key, seed, f.finding_id, f.effect, f.ci_low) for f in false]
    return out


def _no_more_than_chance(runs: dict) -> list[str]:
    """What is wrong with the shuffled runs, if anything: p-values of a unit with no link left must be
    uniform (no more than 2.5 % below 0.01), and the findings about it no more than chance allows: at
    most ``NOT_PLANTED`` of everything reported, and in at most one run in five.

    A false finding now and then is what a false discovery rate of 1 % promises, not a defect: the 15
    runs report some fifty findings between them (the other units' links), and BH's level grows with them. At this size (2,500 citizens) the
    margin's protection is thin (an interval 3 to 18 wide clears 1.2 easily), so a null pair with p
    near 1e-4 gets through: 1 false finding in 3 of 50 repeats of this test under other citizen keys,
    never 2 (household aid x home care from 6 persons, contact x merit among 33 pupils). Requiring none
    made the test fail in about one CI run in sixteen; the bound here fails with a probability near 3e-4 if
    the rate is as measured, and at once when a link survives the shuffle (the probe below)."""
    p = np.array(runs["p"])
    problems = []
    if not len(p) or (p < 0.01).mean() > 0.025:
        problems.append(f"p < 0.01 in {(p < 0.01).mean():.3f} of {len(p)} hypotheses with no link")
    if runs["false"] > NOT_PLANTED * max(runs["reported"], 1):
        problems.append(f"{runs['false']} false findings of {runs['reported']} reported")
    if runs["runs_with_false"] > runs["runs"] // 5:
        problems.append(f"{runs['runs_with_false']} of {runs['runs']} runs reported a false finding")
    return problems


def test_shuffling_one_units_persons_leaves_nothing_to_report_about_it(discovery_platform):
    """Each linked unit's persons shuffled, under three citizen keys: what discovery reports about the
    unit is chance at the rate the correction allows, whatever the key (the key decided it before:
    issue 16, hub_case x school at lag 2 at one key)."""
    panel = open_panel(discovery_platform["warehouse"].cross_unit)
    runs = _shuffled_runs(panel, SHUFFLED_UNITS, permute_unit)
    assert not _no_more_than_chance(runs), (_no_more_than_chance(runs), runs["examples"])


def test_the_shuffle_check_fails_when_the_links_stay(discovery_platform):
    """The probe of the check above: a "shuffle" that moves nothing keeps vård och omsorg's planted links,
    and the check must say so."""
    panel = open_panel(discovery_platform["warehouse"].cross_unit)
    runs = _shuffled_runs(panel, ("vard_omsorg",), lambda p, unit, seed: p)
    assert runs["runs_with_false"] == runs["runs"] and _no_more_than_chance(runs)


def test_child_investigations_shared_only_as_yearly_counts_are_listed_as_not_shared(discovery_platform):
    found = _findings(discovery_platform, "associations")
    about = found.filter(
        (pl.col("dataset_a") == "socialtjanst.barnutredningar")
        | (pl.col("dataset_b") == "socialtjanst.barnutredningar")
    )
    assert about.height > 0 and (about["status"] == associations.NOT_SHARED).all()
    assert not about["reported"].any() and about["p_value"].is_null().all()


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


def test_every_tested_pair_is_published_with_its_status_and_no_count(discovery_platform):
    with duckdb.connect(str(discovery_platform["current"]), read_only=True) as con:
        published = pl.from_arrow(con.sql("SELECT * FROM discovery_tested").to_arrow_table())
    zone = _findings(discovery_platform, "associations")
    assert sorted(published["finding_id"].to_list()) == sorted(zone["finding_id"].to_list())
    assert not {"n_a", "n_b", "n_both", "n_population", "p_value", "reported"} & set(published.columns)
    statuses = set(published["status"].to_list())
    assert associations.NOT_SHARED in statuses and "rapporterat" in statuses
    assert any(s.startswith("testat, inget samband") for s in statuses)
    joined = published.join(zone.select("finding_id", "n_a", "n_b", "n_both"), on="finding_id")
    small = joined.filter(pl.min_horizontal("n_a", "n_b", "n_both") < THRESHOLD)
    assert small["min_detectable"].is_null().all() and small["status"].str.starts_with("för lite data").all()
    shown = joined.filter(pl.col("min_detectable").is_not_null())
    assert (
        shown.height > 0
        and (shown.select(pl.min_horizontal("n_a", "n_b", "n_both")).to_series() >= THRESHOLD).all()
    )
    merit_rows = published.filter(pl.col("finding_id").str.ends_with(":merit"))
    assert merit_rows.height > 0 and (merit_rows["measure"] == "skillnad i medelvärde (meritpoäng)").all()


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
