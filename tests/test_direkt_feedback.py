"""Direkt feedback: citizens' ratings delivered daily, comments kept in the unit's zone, KPIs published.

A day's file lands in its month's folder and the delivery sensor reloads the month; a comment holding a
personnummer is dropped at the border and counted; no comment leaves the unit zone; the KPIs reach the
snapshot with their targets, withheld where too few ratings lie behind them.
"""

import json
import re
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from personnummer import personnummer as oracle

from pipelines.definitions import defs
from pipelines.defs.resources import Platform
from pipelines.defs.unit_checks import RECONCILIATION, check_deliveries
from pipelines.defs.units import new_deliveries
from pipelines.disclosure.policy import DEFAULT_THRESHOLD as THRESHOLD
from pipelines.ingest.delivery import load_deliveries
from pipelines.ingest.months import Delivery
from pipelines.settings import Paths
from pipelines.units import UNITS
from synthetic import feedback
from synthetic.generate import generate
from warehouse.layout import Warehouse

FEEDBACK = UNITS["direkt_feedback"]
BETYG = FEEDBACK.dataset("betyg")
HEADER = [c.source for c in BETYG.columns]
# A personnummer typed into a comment, in every form the border must catch (checked by the oracle below).
TYPED = ("19811218-9876", "198112189876", "811218-9876", "8112189876", "121212+1212")
KPIS = {"U90080": 4.0, "U90081": 10.0}  # mean rating >= 4,0; share of low ratings <= 10 %


def _row(i: int, day: date, rating: int = 4, comment: str = "", enhet: str = "Kontaktcenter") -> list[str]:
    return [
        f"DF-{day:%m%d}{i:04d}",  # eight digits, as the platform's ids: ten could pass as a personnummer
        f"{day:%Y-%m-%d} 10:{i % 60:02d}:00",
        "Kommunledningsförvaltningen",
        enhet,
        "Telefon",
        str(rating),
        comment,
    ]


def _write_day(home: Paths, day: date, rows: list[list[str]]) -> Path:
    """One day's export, as the feedback platform writes it (UTF-8 CSV, quoted where needed)."""
    path = home.delivery_dir(FEEDBACK.name, f"{day:%Y-%m}") / BETYG.file_name(FEEDBACK.format, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    quoted = [[f'"{v}"' if "," in v else v for v in line] for line in [HEADER, *rows]]
    path.write_text("".join(",".join(line) + "\r\n" for line in quoted), encoding="utf-8")
    return path


def _write_month(
    home: Paths, month: str, rows: dict[date, list[list[str]]], skip: tuple[date, ...] = ()
) -> None:
    """Every day's export of the month (only the header on a day without ratings), but the days skipped."""
    for day in Delivery.parse(month).days_before(date.max):
        if day not in skip:
            _write_day(home, day, rows.get(day, []))


def _zone(home: Paths, sql: str, params: dict | None = None) -> list[tuple]:
    with duckdb.connect(str(Warehouse(home.warehouse).unit_zone(FEEDBACK.name)), read_only=True) as con:
        return con.execute(sql, params or {}).fetchall()


def _load(home: Paths, keys, months: list[str]) -> dict:
    wh = Warehouse(home.warehouse)
    for _ in load_deliveries(FEEDBACK, months, home.landing, wh, keys):
        pass
    return check_deliveries(FEEDBACK, months, home, wh)


def test_the_contract_is_daily_anonymous_and_drops_a_comment_with_a_personnummer():
    assert BETYG.daily and FEEDBACK.personnummer_style is None and not FEEDBACK.has_persons
    comment = BETYG.column("comment")
    assert comment.free_text and comment.on_identifier == "drop" and not comment.mandatory
    assert BETYG.file_name(FEEDBACK.format, date(2024, 1, 5)) == "betyg_2024-01-05.csv"
    with pytest.raises(ValueError, match="exactly when"):
        BETYG.file_name(FEEDBACK.format)


def test_a_comment_with_a_personnummer_is_dropped_and_counted_and_the_rest_kept(home, keys):
    assert all(oracle.valid(n) for n in TYPED)
    day = date(2024, 1, 9)
    typed = [_row(i, day, 2, f"Ring mig, mitt personnummer är {n}") for i, n in enumerate(TYPED)]
    kept = [_row(10, day, 5, "Trevligt bemötande"), _row(11, day, 3, "Ärende 2024-1234, tack")]
    _write_month(home, "2024-01", {day: typed + kept + [_row(12, day, 4)]})
    _load(home, keys, ["2024-01"])
    comments = dict(_zone(home, "SELECT rating_id, comment FROM betyg"))
    assert len(comments) == len(TYPED) + 3, "every rating is loaded, its comment dropped or not"
    assert [comments[r[0]] for r in typed] == [None] * len(TYPED)
    assert [comments[r[0]] for r in kept] == ["Trevligt bemötande", "Ärende 2024-1234, tack"]
    masked = _zone(
        home, "SELECT _source_file, identifiers_masked FROM reconciliation WHERE identifiers_masked > 0"
    )
    assert masked == [("direkt_feedback/2024-01/betyg_2024-01-09.csv", len(TYPED))]
    everything = _zone(home, "SELECT * FROM betyg UNION ALL BY NAME SELECT * FROM quarantine")
    assert not any(n.replace("-", "").replace("+", "") in str(everything).replace("-", "") for n in TYPED)


def _reconciliation(home: Paths, keys, month: str):
    [check] = [e for e in _load(home, keys, [month]) if e.check_name == RECONCILIATION]
    return check


def test_each_days_file_is_reconciled_and_a_lost_or_misnamed_day_holds_the_month(home, keys):
    rows = {date(2024, 2, d): [_row(i, date(2024, 2, d)) for i in range(d)] for d in (3, 4)}
    _write_month(home, "2024-02", rows)
    assert _reconciliation(home, keys, "2024-02").passed, "quiet days are files with only a header"
    files = _zone(
        home, "SELECT _source_file, rows_in_file, rows_loaded FROM reconciliation WHERE rows_in_file > 0"
    )
    assert sorted(files) == [
        ("direkt_feedback/2024-02/betyg_2024-02-03.csv", 3, 3),
        ("direkt_feedback/2024-02/betyg_2024-02-04.csv", 4, 4),
    ]
    assert _zone(home, "SELECT count(*) FROM reconciliation") == [(29,)], "a leap year's February"

    lost = home.delivery_dir(FEEDBACK.name, "2024-02") / BETYG.file_name(FEEDBACK.format, date(2024, 2, 20))
    lost.unlink()
    check = _reconciliation(home, keys, "2024-02")
    assert not check.passed and "betyg_2024-02-20.csv: not delivered" in check.description

    _write_day(home, date(2024, 2, 20), [])
    stray = _write_day(home, date(2024, 3, 1), [_row(1, date(2024, 3, 1))])
    stray.rename(home.delivery_dir(FEEDBACK.name, "2024-02") / stray.name)
    check = _reconciliation(home, keys, "2024-02")
    assert not check.passed and "betyg_2024-03-01.csv: not_a_day_of_the_month" in check.description
    assert _zone(home, "SELECT count(*) FROM betyg") == [(7,)], "the month's good days still load"


def _tick(instance, cursor: str | None) -> dg.SensorResult:
    result = new_deliveries(
        dg.build_sensor_context(instance=instance, cursor=cursor, resources={"platform": Platform()})
    )
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def _run_requested(instance, result: dg.SensorResult) -> list[str]:
    """Run what the sensor asked for, as the daemon would: the unit's job on the requested partition."""
    months = []
    for request in result.run_requests:
        [key] = request.asset_selection
        job = defs().resolve_job_def(f"ingest_{key.path[-1]}")
        assert job.execute_in_process(instance=instance, partition_key=request.partition_key).success
        months.append(f"{key.path[-1]}/{request.partition_key}")
    return months


@pytest.mark.platform
def test_a_new_days_file_is_loaded_by_the_sensor_and_a_rerun_changes_nothing(home):
    last = date(2024, 1, 31)
    rows = {date(2024, 1, 8): [_row(i, date(2024, 1, 8)) for i in range(6)]}
    _write_month(home, "2024-01", rows, skip=(last,))
    with dg.instance_for_test() as instance:
        first = _tick(instance, None)
        assert _run_requested(instance, first) == ["direkt_feedback/2024-01"]
        assert _tick(instance, first.cursor).run_requests == [], "a loaded day is not asked for again"
        assert _zone(home, "SELECT count(*) FROM betyg") == [(6,)]
        held = _zone(home, "SELECT _delivery, reason FROM held_deliveries")
        assert held == [("2024-01", "direkt_feedback/2024-01/betyg_2024-01-31.csv: not delivered")]

        _write_day(home, last, [_row(i, last, 1) for i in range(3)])
        second = _tick(instance, first.cursor)
        assert _run_requested(instance, second) == ["direkt_feedback/2024-01"]
        assert second.run_requests[0].run_key != first.run_requests[0].run_key
        assert _zone(home, "SELECT _source_file, count(*) FROM betyg GROUP BY 1 ORDER BY 1") == [
            ("direkt_feedback/2024-01/betyg_2024-01-08.csv", 6),
            ("direkt_feedback/2024-01/betyg_2024-01-31.csv", 3),
        ]
        assert _zone(home, "SELECT count(*) FROM held_deliveries") == [(0,)], "released by its checks"
        before = _zone(home, "SELECT * EXCLUDE (_loaded_at) FROM betyg ORDER BY rating_id")

        # A rerun of the month (as a replayed request would do) gives the same rows.
        job = defs().resolve_job_def("ingest_direkt_feedback")
        assert job.execute_in_process(instance=instance, partition_key="2024-01").success
        assert _zone(home, "SELECT * EXCLUDE (_loaded_at) FROM betyg ORDER BY rating_id") == before
        assert _zone(home, "SELECT count(*), sum(rows_loaded) FROM reconciliation") == [(31, 9)]
        assert _tick(instance, second.cursor).run_requests == []


def test_the_generator_writes_every_day_plants_low_ratings_and_typed_personnummer(tmp_path):
    generate(tmp_path, citizens=400, years=1, seed=3, defect_rate=0, progress=False)
    folder = tmp_path / "landing" / "direkt_feedback"
    files = sorted(folder.glob("*/betyg_*.csv"))
    assert len(files) == 365 and all(BETYG.day_of(f, FEEDBACK.format) for f in files)
    frame = pl.concat([pl.read_csv(f, infer_schema=False) for f in files])
    low = dict(frame.group_by("enhet").agg((pl.col("betyg").cast(pl.Int64) <= 2).mean()).iter_rows())
    planted = feedback.LOW_ENHET[1]
    assert low[planted] > 0.25 and max(v for e, v in low.items() if e != planted) < 0.12
    typed = [
        n
        for c in frame["kommentar"].drop_nulls()
        for n in re.findall(r"\d{6,8}[-+]?\d{4}", c)
        if oracle.valid(n)
    ]
    assert len(typed) >= 3 and len({len(n) for n in typed}) >= 2, "several numbers, in several forms"
    manifest = json.loads((tmp_path / "ground_truth" / "manifest.json").read_text(encoding="utf-8"))
    [pattern] = [d for d in manifest["deviations"] if d["units"] == ["direkt_feedback"]]
    assert pattern["effect"]["enhet"] == planted


# What the main job published, read from its zones: a comment stays in the unit zone.
COMMENT_TEXTS = (*feedback.GOOD_COMMENTS, *feedback.POOR_COMMENTS)


def _text_hits(path, needles: tuple[str, ...]) -> dict[str, int]:
    """Every text column of every table in a DuckDB file searched for the needles; every column (of a
    table or a view) whose name says comment; every view whose SQL reads one."""
    hits = {}
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.execute(
            """SELECT c.schema_name, c.table_name, c.column_name, c.data_type, t.table_name IS NOT NULL
               FROM duckdb_columns() c LEFT JOIN duckdb_tables() t
                   USING (database_name, schema_name, table_name)
               WHERE c.database_name = current_database()"""
        ).fetchall()
        for schema, table, column, kind, is_table in columns:
            if column.lower() in ("comment", "kommentar"):
                hits[f"{schema}.{table}.{column}: a comment column"] = 1
            if kind == "VARCHAR" and is_table:
                n = con.execute(
                    f'SELECT count(*) FROM "{schema}"."{table}" WHERE list_contains($n, "{column}")',
                    {"n": list(needles)},
                ).fetchone()[0]
                if n:
                    hits[f"{schema}.{table}.{column}"] = n
        views = "SELECT view_name FROM duckdb_views() WHERE NOT internal AND regexp_matches(sql, $c, 'i')"
        for (view,) in con.execute(views, {"c": r"\b(comment|kommentar)\b"}).fetchall():
            hits[f"view {view} reads a comment"] = 1
    return hits


def test_no_comment_leaves_the_unit_zone(main_job):
    wh: Warehouse = main_job["warehouse"]
    zone = wh.unit_zone("direkt_feedback")
    inside = _text_hits(zone, COMMENT_TEXTS)
    assert inside.get("main.betyg.comment", 0) > 100, "the probe finds the comments where they are"
    snapshots = sorted((main_job["paths"].warehouse / "serving").rglob("*.db"))
    assert snapshots
    for path in [wh.cross_unit, main_job["marts"], *snapshots]:
        assert _text_hits(path, COMMENT_TEXTS) == {}, path


def test_feedback_kpis_are_published_with_targets_and_withheld_over_few_ratings(main_job):
    with duckdb.connect(str(main_job["current"]), read_only=True) as con:
        targets = dict(
            con.execute("SELECT kpi_id, target_value FROM kpi_target WHERE kpi_id LIKE 'U9008%'").fetchall()
        )
        titles = dict(con.execute("SELECT kpi_id, title FROM kpi WHERE kpi_id LIKE 'U9008%'").fetchall())
        rows = con.execute(
            """SELECT kpi_id, enhet, level, actual, target, n_underlag, status FROM kpi_value
               WHERE kpi_id LIKE 'U9008%'"""
        ).fetchall()
    assert targets == KPIS
    assert titles == {
        "U90080": "Genomsnittligt betyg, Direkt feedback",
        "U90081": "Andel låga betyg, Direkt feedback",
    }
    assert {(kpi, level) for kpi, _, level, *_ in rows} >= {
        (k, level) for k in KPIS for level in ("kommun", "förvaltning", "enhet")
    }
    shown = [r for r in rows if r[3] is not None]
    assert shown and all(r[5] is not None and r[5] >= THRESHOLD for r in shown)
    assert all(r[4] == KPIS[r[0]] for r in rows)
    # Gata och park's Felanmälan is rated a few times a month: never an average over so few.
    small = [r for r in rows if r[1] == "Gata och park"]
    assert small and all(r[3] is None and r[6] is None for r in small)


def test_the_planted_enhet_with_many_low_ratings_is_red(main_job):
    [planted] = [d for d in main_job["manifest"]["deviations"] if d["units"] == ["direkt_feedback"]]
    with duckdb.connect(str(main_job["current"]), read_only=True) as con:
        red = dict(
            con.execute(
                """SELECT enhet = $e, avg((status = 'röd')::INT) FROM kpi_value
                   WHERE kpi_id = 'U90081' AND level = 'enhet' AND status IS NOT NULL GROUP BY 1""",
                {"e": planted["effect"]["enhet"]},
            ).fetchall()
        )
    assert red[True] >= 0.8 and red[False] <= 0.1, red


def test_retention_removes_every_days_file_and_row_of_a_month_past_its_retention(home, keys):
    from pipelines.stewardship.retention import thin_unit

    old, kept = "2024-01", "2026-01"  # 24 months' retention, counted from December 2026
    for month in (old, kept):
        day = date.fromisoformat(f"{month}-05")
        _write_month(home, month, {day: [_row(1, day, 5, "Bra")]})
    _load(home, keys, [old, kept])
    removed = thin_unit(FEEDBACK, home, today=date(2026, 12, 2))
    assert removed["betyg"]["landing_files"] == 31 and removed["betyg"]["rows"] == 1
    assert not (home.landing / FEEDBACK.name / old).exists()
    assert len(list((home.landing / FEEDBACK.name / kept).iterdir())) == 31
    assert _zone(home, "SELECT DISTINCT _delivery FROM betyg") == [(kept,)]


def test_days_staged_together_keep_each_files_own_verdicts(home, keys):
    """The month's files go through one border query: a broken file is still rejected alone, a
    duplicate is one within its file, and every row keeps its own file and line."""
    rows = {date(2024, 3, d): [_row(1, date(2024, 3, d)), _row(2, date(2024, 3, d), 9)] for d in (4, 5)}
    rows[date(2024, 3, 5)].append(rows[date(2024, 3, 5)][0])  # exported twice in one file
    rows[date(2024, 3, 4)].append(rows[date(2024, 3, 5)][0])  # and once in another: not a duplicate there
    _write_month(home, "2024-03", rows)
    broken = home.delivery_dir(FEEDBACK.name, "2024-03") / BETYG.file_name(FEEDBACK.format, date(2024, 3, 6))
    broken.write_text("svar_id,betyg\nDF-1,4\n", encoding="utf-8")
    _load(home, keys, ["2024-03"])
    per_file = _zone(
        home,
        """SELECT _source_file, status, rows_in_file, rows_loaded, rows_quarantined FROM reconciliation
           WHERE rows_in_file > 0 ORDER BY 1""",
    )
    assert [(f.rsplit("_", 1)[-1], *rest) for f, *rest in per_file] == [
        ("2024-03-04.csv", "loaded", 3, 2, 1),
        ("2024-03-05.csv", "loaded", 3, 1, 2),
        ("2024-03-06.csv", "rejected", 1, 0, 1),
    ]
    quarantined = _zone(home, "SELECT _source_file, _source_line, rule FROM quarantine ORDER BY 1, 2")
    assert [(f.rsplit("_", 1)[-1], line, rule) for f, line, rule in quarantined] == [
        ("2024-03-04.csv", 3, "above_maximum"),
        ("2024-03-05.csv", 3, "above_maximum"),
        ("2024-03-05.csv", 4, "duplicate_row"),
        ("2024-03-06.csv", 1, "columns_differ_from_contract"),
    ]
    loaded = _zone(home, "SELECT _source_file, _source_line FROM betyg ORDER BY 1, 2")
    assert [(f.rsplit("_", 1)[-1], line) for f, line in loaded] == [
        ("2024-03-04.csv", 2),
        ("2024-03-04.csv", 4),
        ("2024-03-05.csv", 2),
    ]
