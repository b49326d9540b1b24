"""The synthetic municipality generator: contract, determinism, personnummer, defects, ground truth.

Files are checked with readers written here (csv module, pyarrow, json) rather
than the generator's own, and personnummer with the `personnummer` package.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from personnummer import personnummer as oracle

from pipelines.ingest.months import Delivery
from pipelines.units import UNITS
from pipelines.units.spec import Csv, JsonLines, Parquet, Unit
from synthetic import all_personnummer, generate
from synthetic.__main__ import main
from synthetic.links import LINKS, odds_ratio_in, plant, shifted
from synthetic.period import Period, ymd
from synthetic.personnummer import draw_serials, luhn_digit, plus_sign, twelve_digit, written
from synthetic.population import simulate_population
from synthetic.seeding import child_rng

SMALL = {"citizens": 1500, "years": 1, "seed": 3, "progress": False}
STYLE = {
    "twelve": r"\d{12}",
    "twelve_hyphen": r"\d{8}-\d{4}",
    "ten_separator": r"\d{6}[-+]\d{4}",
    "mixed": r"\d{12}|\d{8}-\d{4}|\d{6}[-+]\d{4}|\d{10}",
}
FORM = {
    "twelve": STYLE["twelve"],
    "twelve_hyphen": STYLE["twelve_hyphen"],
    "ten_separator": STYLE["ten_separator"],
    "ten": r"\d{10}",
}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    generate(out, defect_rate=0, **SMALL)
    return out


@pytest.fixture(scope="module")
def defective(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("defective")
    summary = generate(out, defect_rate=0.02, **SMALL)
    return out, summary


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _rows(path: Path, unit: Unit) -> tuple[list[str], list[tuple[int, dict[str, object]]]]:
    """Header and (line, row) pairs, read independently of the generator."""
    fmt = unit.format
    if isinstance(fmt, Csv):
        text = path.read_bytes().decode(fmt.encoding)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=fmt.separator)
        header = next(reader)
        return header, [(reader.line_num, dict(zip(header, row, strict=True))) for row in reader]
    if isinstance(fmt, Parquet):
        table = pq.read_table(path)
        return table.column_names, list(enumerate(table.to_pylist(), start=1))
    assert isinstance(fmt, JsonLines)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    header = list(records[0]) if records else []
    return header, list(enumerate(records, start=1))


def _valid(number: str) -> bool:
    try:
        oracle.parse(number)
    except oracle.PersonnummerException:
        return False
    return True


def _number(value: object, comma: bool) -> float | None:
    if value in (None, ""):
        return None
    if isinstance(value, str):
        return float(value.replace(",", ".") if comma else value)
    return float(value)


def _violations(root: Path) -> set[tuple[str, str, str, int, str]]:
    """Every row that breaks the unit contract: (defect, unit, month, dataset, line)."""
    found = set()
    for unit in UNITS.values():
        comma = isinstance(unit.format, Csv) and unit.format.decimal_comma
        for dataset in unit.datasets:
            for path in _dataset_files(root, unit, dataset):
                month = path.parent.name
                header, rows = _rows(path, unit)
                if header and header != [c.source for c in dataset.columns]:
                    continue  # the renamed-column delivery is judged as a whole
                seen = set()
                for line, row in rows:
                    where = (unit.name, month, dataset.name, line)
                    key = tuple(str(v) for v in row.values())
                    if key in seen:
                        found.add(("duplicate_row", *where))
                        continue
                    seen.add(key)
                    for col in dataset.columns:
                        value = row[col.source]
                        if value in (None, ""):
                            if col.mandatory:
                                found.add(("missing_mandatory", *where))
                            continue
                        if col.kind == "personnummer" and not _valid(str(value)):
                            found.add(("invalid_personnummer", *where))
                        if col.minimum is not None or col.maximum is not None:
                            v = _number(value, comma)
                            low = col.minimum is not None and v < col.minimum
                            high = col.maximum is not None and v > col.maximum
                            if low or high:
                                found.add(("out_of_range", *where))
                        if col.allowed and value not in col.allowed:
                            found.add(("not_allowed", *where))
    return found


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for out, seed in ((a, 3), (b, 3), (c, 4)):
        generate(out, citizens=400, years=1, seed=seed, defect_rate=0.01, progress=False)
    files_a, files_b, files_c = _files(a), _files(b), _files(c)
    assert files_a == files_b
    mtimes = {p.relative_to(a): p.stat().st_mtime for p in (a / "landing").rglob("*.*")}
    assert mtimes == {p.relative_to(b): p.stat().st_mtime for p in (b / "landing").rglob("*.*")}
    assert files_a.keys() == files_c.keys()
    assert any(files_a[k] != files_c[k] for k in files_a if k.startswith("landing"))


def _dataset_files(root: Path, unit: Unit, dataset) -> list[Path]:
    """The dataset's files in every month's folder (each day's file of a daily dataset)."""
    months = sorted(p for p in (root / "landing" / unit.name).glob("*") if p.is_dir())
    return [f for month in months for f in dataset.files(month, unit.format) if f.exists()]


def _days(month: str) -> list[date]:
    return Delivery.parse(month).days_before(date.max)


def test_every_delivery_has_the_spec_layout(clean: Path) -> None:
    months = Period.ending("2025-12", 1).labels
    expected = {
        Path("landing", unit.name, m, d.file_name(unit.format, day))
        for unit in UNITS.values()
        for m in months
        for d in unit.datasets
        if int(m[5:]) in d.delivered_in_months
        for day in (_days(m) if d.daily else [None])
    }
    landing = {p.relative_to(clean) for p in (clean / "landing").rglob("*") if p.is_file()}
    assert landing == expected
    for unit in UNITS.values():
        for dataset in unit.datasets:
            rows = 0
            for path in _dataset_files(clean, unit, dataset):
                header, found = _rows(path, unit)
                assert header == [c.source for c in dataset.columns], path
                rows += len(found)
            assert rows > 0, dataset.name


def test_csv_encodings_and_separators(clean: Path) -> None:
    for unit in UNITS.values():
        fmt = unit.format
        if not isinstance(fmt, Csv):
            continue
        for path in (clean / "landing" / unit.name).rglob(f"*.{fmt.extension}"):
            data = path.read_bytes()
            assert data.startswith(b"\xef\xbb\xbf") == (fmt.encoding == "utf-8-sig"), path
            text = data.decode(fmt.encoding)
            if fmt.encoding == "cp1252" and not text.isascii():
                with pytest.raises(UnicodeDecodeError):
                    data.decode("utf-8")
            header = text.lstrip("\ufeff").splitlines()[0]
            dataset = next(d for d in unit.datasets if path in d.files(path.parent, fmt))
            assert header.split(fmt.separator) == [c.source for c in dataset.columns]
    # Decimal comma where the unit uses it, a point elsewhere.
    aid = (clean / "landing/socialtjanst/2025-03/ekonomiskt_bistand.csv").read_bytes().decode("cp1252")
    assert re.search(r";\d+,\d{2};", aid)
    fees = (clean / "landing/bygg_miljo").rglob("bygglov.tsv")
    assert any(re.search(r"\t\d+\.\d{2}$", p.read_text(), re.M) for p in fees)


def test_value_forms(clean: Path) -> None:
    _, rows = _rows(clean / "landing/kontaktcenter/2025-05/kontakter.csv", UNITS["kontaktcenter"])
    for _, row in rows:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", row["tidpunkt"])
        assert row["lost_vid_forsta_kontakt"] in ("true", "false")
    assert sum(not r["personnummer"] for _, r in rows) > 0.4 * len(rows)  # mostly anonymous
    # The first delivery of the register holds every resident (GRUND, first day) and the month's events.
    _, rows = _rows(clean / "landing/folkbokforing/2025-01/aviseringar.csv", UNITS["folkbokforing"])
    grund = [r for _, r in rows if r["handelse"] == "GRUND"]
    assert len(grund) == SMALL["citizens"] and {r["handelsedatum"] for r in grund} == {"2025-01-01"}
    assert all(re.fullmatch(r"HH\d{6}", r["hushall_id"]) for _, r in rows)
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["handelsedatum"]) for _, r in rows)
    _, later = _rows(clean / "landing/folkbokforing/2025-06/aviseringar.csv", UNITS["folkbokforing"])
    assert later and "GRUND" not in {r["handelse"] for _, r in later}
    _, rows = _rows(
        clean / "landing/arendehandelser/2025-05/statushandelser.parquet", UNITS["arendehandelser"]
    )
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", r["tidpunkt"]) for _, r in rows)
    forvaltningar = {u.forvaltning for u in UNITS.values()}
    assert {r["forvaltning"] for _, r in rows} <= forvaltningar


def test_clean_municipality_has_no_defects(clean: Path) -> None:
    assert _violations(clean) == set()
    report = json.loads((clean / "ground_truth/defects.json").read_text(encoding="utf-8"))
    assert all(v["count"] == 0 for v in report.values() if isinstance(v, dict))
    for path in (clean / "landing").rglob("*.*"):
        month_start = datetime.fromisoformat(f"{path.parent.name}-01").replace(tzinfo=UTC)
        delay = datetime.fromtimestamp(path.stat().st_mtime, UTC) - month_start
        if any(d.daily for d in UNITS[path.parent.parent.name].datasets):  # the night after its day
            day = datetime.fromisoformat(path.stem.split("_")[-1]).replace(tzinfo=UTC)
            assert (
                timedelta(days=1)
                < datetime.fromtimestamp(path.stat().st_mtime, UTC) - day
                < timedelta(days=2)
            )
            continue
        assert 30 <= delay.days < 40, path  # a few days after the month ended


def test_personnummer_in_files_are_valid_and_in_the_unit_style(clean: Path) -> None:
    numbers = 0
    for unit in UNITS.values():
        for dataset in unit.datasets:
            if dataset.person_column is None:
                continue
            for path in (clean / "landing" / unit.name).glob(f"*/{dataset.file_name(unit.format)}"):
                for _, row in _rows(path, unit)[1]:
                    value = row[dataset.person_column.source]
                    if value in (None, ""):
                        continue
                    numbers += 1
                    assert re.fullmatch(STYLE[unit.personnummer_style], value), (unit.name, value)
                    assert _valid(value), (unit.name, value)
    assert numbers > 1000
    # The contact centre's 'mixed' style really mixes the four forms.
    contacts = {
        v
        for p in (clean / "landing/kontaktcenter").rglob("*.csv")
        for _, r in _rows(p, UNITS["kontaktcenter"])[1]
        if (v := r["personnummer"])
    }
    forms = {
        next(k for k in ("twelve", "twelve_hyphen", "ten_separator", "ten") if re.fullmatch(FORM[k], v))
        for v in contacts
    }
    assert forms == set(FORM)


def test_personnummer_numbers_match_the_oracle() -> None:
    period = Period.ending("2025-12", 1)
    pop = simulate_population(child_rng(9, "population"), 3000, period)
    assert len(set(pop.pnr12)) == pop.persons
    assert len({p[2:] for p in pop.pnr12}) == pop.persons  # unique in the ten-digit form too
    coordination = 0
    for number, sex in zip(pop.pnr12, pop.sex, strict=True):
        parsed = oracle.parse(number)
        assert parsed.is_male() == bool(sex)
        coordination += parsed.is_coordination_number()
    assert 0 < coordination < 0.03 * pop.persons  # about 1 %
    rng = np.random.default_rng(0)
    nine = rng.integers(0, 10, (500, 9))
    for digits, check in zip(nine, luhn_digit(nine), strict=True):
        assert oracle._luhn("".join(map(str, digits))) == check


def test_calendar_arithmetic_agrees_with_numpys_calendar_for_every_day_of_four_centuries() -> None:
    days = np.arange(-70_000, 76_000)  # 1778 to 2178: leap centuries 1800, 1900, 2000, 2100 and back
    as_dates = days.astype("datetime64[D]")
    months = as_dates.astype("datetime64[M]")
    expected = (
        months.astype("datetime64[Y]").astype(np.int64) + 1970,
        months.astype(np.int64) % 12 + 1,
        (as_dates - months.astype("datetime64[D]")).astype(np.int64) + 1,
    )
    assert all(np.array_equal(got, want) for got, want in zip(ymd(days), expected, strict=True))


def test_plus_sign_from_the_year_of_the_100th_birthday() -> None:
    """'+' from the calendar year of the 100th birthday, so the delivery year gives the century back."""
    births = ["1925-11-15", "1925-11-15", "1926-01-10", "1925-02-01"]
    years = [2024, 2025, 2025, 2025]  # delivery years
    birth = np.array([np.datetime64(b).astype(int) for b in births])
    serial = draw_serials(np.random.default_rng(1), birth, np.ones(4, int), np.zeros(4, bool))
    pnr = twelve_digit(birth, serial, np.zeros(4, bool))
    frame = pl.DataFrame({"pnr": pnr, "by": [int(b[:4]) for b in births], "y": years})
    plus = plus_sign(pl.col("by"), pl.col("y"))
    out = frame.select(written(pl.col("pnr"), plus, "ten_separator").alias("w"))["w"].to_list()
    assert [w[6] for w in out] == ["-", "+", "-", "+"]
    assert all(_valid(w) for w in out)
    for w, b, y in zip(out, births, years, strict=True):
        base = y - 100 if w[6] == "+" else y
        assert base - (base - int(w[:2])) % 100 == int(b[:4])
    # 'mixed' never writes someone with a '+' as ten digits without separator.
    mixed = frame.with_columns(form=pl.Series([3, 3, 3, 3])).select(
        written(pl.col("pnr"), plus, "mixed", pl.col("form")).alias("w")
    )["w"]
    assert [len(w) for w in mixed] == [10, 11, 10, 11]


def test_defects_json_matches_the_files(defective: tuple[Path, object]) -> None:
    out, summary = defective
    report = json.loads((out / "ground_truth/defects.json").read_text(encoding="utf-8"))
    listed = {
        (kind, r["unit"], r["month"], r["dataset"], r["line"])
        for kind in ("invalid_personnummer", "duplicate_row", "missing_mandatory", "out_of_range")
        for r in report[kind]["rows"]
    }
    for kind in ("invalid_personnummer", "duplicate_row", "missing_mandatory", "out_of_range"):
        assert report[kind]["count"] == len(report[kind]["rows"]) > 0, kind
        assert summary.defects[kind] == report[kind]["count"]
    assert _violations(out) == listed
    assert summary.natural_duplicates_removed == 0

    (late,) = report["late_delivery"]["deliveries"]
    month_start = datetime.fromisoformat(f"{late['month']}-01").replace(tzinfo=UTC)
    late_files = list((out / "landing" / late["unit"] / late["month"]).iterdir())
    assert late_files
    for path in (out / "landing").rglob("*.*"):
        delay = (datetime.fromtimestamp(path.stat().st_mtime, UTC) - month_start).days
        if path in late_files:
            assert delay >= 68  # 40 days after the end of the month
        elif path.parent.name == late["month"]:
            assert delay < 40

    (renamed,) = report["renamed_column"]["deliveries"]
    unit = UNITS[renamed["unit"]]
    path = (
        out
        / "landing"
        / unit.name
        / renamed["month"]
        / unit.dataset(renamed["dataset"]).file_name(unit.format)
    )
    header, _ = _rows(path, unit)
    assert renamed["written"] in header and renamed["expected"] not in header
    assert (
        sum(
            1 for p in (out / "landing").rglob("*.*") if renamed["written"] in _rows(p, UNITS[p.parts[-3]])[0]
        )
        == 1
    )


def test_defect_rate_only_adds_defects(clean: Path, defective: tuple[Path, object]) -> None:
    """The defective municipality is the clean one plus defects: same files, mostly the same lines."""
    out, _ = defective
    a, b = (
        clean / "landing/kontaktcenter/2025-03/kontakter.csv",
        out / "landing/kontaktcenter/2025-03/kontakter.csv",
    )
    lines_a, lines_b = set(a.read_text().splitlines()), set(b.read_text().splitlines())
    assert len(lines_a & lines_b) > 0.9 * len(lines_a)


def test_ground_truth_is_outside_landing_and_holds_no_personnummer(defective: tuple[Path, object]) -> None:
    out, _ = defective
    manifest = json.loads((out / "ground_truth/manifest.json").read_text(encoding="utf-8"))
    assert not list((out / "landing").rglob("*.json"))
    kinds = {p["kind"] for p in manifest["patterns"]}
    assert kinds == {"association", "precedence", "case_flow"}
    assert len(manifest["patterns"]) == 9 + len(LINKS) and len(manifest["null_pairs"]) >= 2
    assert [p["kind"] for p in manifest["confounded_pairs"]] == ["confounded"]
    assert manifest["parameters"]["seed"] == SMALL["seed"]
    assert len(manifest["parameters"]["months"]) == 12
    numbers = all_personnummer(out)
    assert len(numbers) > 500
    for name in ("manifest.json", "defects.json"):
        text = (out / "ground_truth" / name).read_text(encoding="utf-8")
        assert not re.search(r"\d{6}[-+]?\d{4}", text), name
        assert not any(n in text for n in numbers)


def test_planted_effects_are_large(defective: tuple[Path, object]) -> None:
    out, _ = defective
    manifest = json.loads((out / "ground_truth/manifest.json").read_text(encoding="utf-8"))
    effect = {p["id"]: p["effect"] for p in manifest["patterns"]}
    aid = effect["aid_household_school_absence"]
    assert aid["realised_mean_absence_pct_exposed"] > 1.6 * aid["realised_mean_absence_pct_not_exposed"]
    merit = effect["merit_falls_with_absence"]
    assert merit["realised_mean_merit_high_absence"] < merit["realised_mean_merit_other"] - 10
    slow = effect["slow_case_type"]
    medians = slow["realised_median_days_mottaget_to_beslutat"]
    assert medians[slow["forvaltning"]] > 4 * max(v for k, v in medians.items() if k != slow["forvaltning"])
    # The slow case type is visible straight from the hub's files.
    hub = pl.read_parquet(out / "landing/arendehandelser/*/statushandelser.parquet")
    assert hub.filter(pl.col("arendetyp") == slow["case_type"])["forvaltning"].n_unique() == 5


def test_refuses_to_replace_foreign_files(tmp_path: Path) -> None:
    foreign = tmp_path / "landing" / "someone" / "file.csv"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("keep me")
    with pytest.raises(FileExistsError):
        generate(tmp_path, citizens=300, years=1, progress=False)
    assert foreign.read_text() == "keep me"


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--out", str(tmp_path), "--citizens", "300", "--years", "1", "--seed", "2", "--no-progress"]
    assert main(args) == 0
    assert "folkbokforing.aviseringar" in capsys.readouterr().out
    assert (tmp_path / "ground_truth/manifest.json").exists()
    assert main(args) == 0  # replaces its own earlier output


def test_a_planted_link_has_its_odds_ratio_in_every_stratum_and_none_before_its_lag() -> None:
    """The modest links: the odds among the exposed are the true odds ratio times the others', per stratum."""
    rng = np.random.default_rng(5)
    shape = (8, 60_000)  # quarters x persons
    strata = np.broadcast_to(np.arange(8)[:, None] * 2 + (np.arange(shape[1]) % 2), shape)
    base = np.where(strata % 2, 0.05, 0.30)  # the effect's own rate differs between strata
    has = rng.random(shape) < base
    cause = rng.random(shape) < 0.1
    eligible = np.ones(shape, bool)
    for lag in (0, 1):
        exposed = shifted(cause, lag)
        gained = plant(rng, exposed, has, eligible, strata, 1.5)
        assert not (gained & ~exposed).any() and not (gained & has).any()
        for s in (0, 1):
            inside = strata % 2 == s
            assert odds_ratio_in(exposed, has | gained, inside, strata) == pytest.approx(1.5, rel=0.08)
    same_quarter = odds_ratio_in(
        cause, has | plant(rng, shifted(cause, 1), has, eligible, strata, 2.5), eligible, strata
    )
    assert same_quarter == pytest.approx(1.0, abs=0.08), "a lagged link plants nothing in the cause's quarter"


def test_the_manifest_states_each_links_true_odds_ratio_and_lag(defective: tuple[Path, object]) -> None:
    out, _ = defective
    manifest = json.loads((out / "ground_truth/manifest.json").read_text(encoding="utf-8"))
    planted = {p["id"]: p for p in manifest["patterns"]}
    for link in LINKS:
        effect = planted[link.id]["effect"]
        assert (effect["odds_ratio"], effect["lag_quarters"]) == (link.odds_ratio, link.lag)
        assert effect["first"] == planted[link.id]["datasets"][0] and effect["planted_person_quarters"] > 0
    assert sorted({link.odds_ratio for link in LINKS}) == [1.3, 1.5, 1.8, 2.5]
    assert {link.lag for link in LINKS} == {0, 1, 2}
    pairs = [set(p["datasets"]) for p in manifest["patterns"]]
    for other in manifest["null_pairs"] + manifest["confounded_pairs"]:
        assert set(other["datasets"]) not in pairs, other["id"]


def test_links_are_planted_when_the_period_ends_inside_a_quarter(tmp_path: Path) -> None:
    generate(tmp_path, citizens=300, years=1, end_month="2025-11", progress=False)
    manifest = json.loads((tmp_path / "ground_truth/manifest.json").read_text(encoding="utf-8"))
    assert {link.id for link in LINKS} <= {p["id"] for p in manifest["patterns"]}
