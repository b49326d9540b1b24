"""`knutpunkt onboard`: a sample export in, a draft contract out, which then loads that sample.

Every file type the platform reads (tests/test_formats.py writes them as real systems do) is written
here, onboarded, and loaded under the draft by the real border (the dry run, on a throwaway home):
nothing valid may be quarantined. Plus a file the generator did not write, through the console script.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from pipelines.ingest.delivery import load_delivery
from pipelines.ingest.read import PERSONNUMMER_LIKE
from pipelines.onboarding import draft_yaml, dry_run, propose
from pipelines.stewardship.contracts import load_contract
from pipelines.units import ContractError
from pipelines.units.load import read_units
from pipelines.units.spec import Csv, JsonLines, Parquet, Unit, Xlsx
from tests.conftest import KNUTPUNKT
from tests.corpus import FILES

NBSP, NNBSP = "\u00a0", "\u202f"
ALONE = "Ensamstående"
AID_HEADER = ["Personnr", "Månad", "Belopp", "Hushållstyp"]
AID_ROWS = [
    ["811218-9876", "2024-03", f"9{NBSP}750,68", ALONE],
    ["900101-0017", "2024-03", f"12{NBSP}000,00", "Sammanboende"],
    ["121212+1212", "2024-03", "1 200,75", ALONE],
    ["811218-9876", "2024-04", "100,00", "Sammanboende"],
]


def _csv(path: Path, rows: list[list[str]], encoding: str, sep: str, end: str = "\r\n") -> Path:
    path.write_bytes("".join(sep.join(r) + end for r in rows).encode(encoding))
    return path


def _parquet(path: Path) -> Path:
    pl.DataFrame(
        {
            "personnummer": ["19400101-0018", "19350315-4563"],
            "inflyttningsdatum": pl.Series([date(2024, 3, 10), date(2024, 3, 31)], dtype=pl.Date),
            "timmar": pl.Series([Decimal("10.50"), Decimal("744.00")], dtype=pl.Decimal(10, 2)),
            "inkommen": pl.Series(
                [
                    datetime(2024, 3, 3, 9, 0, 0, 250000, tzinfo=UTC),
                    datetime(2024, 3, 3, 10, 0, 1, tzinfo=UTC),
                ],
                dtype=pl.Datetime("ns", "UTC"),
            ),
        }
    ).write_parquet(path)
    return path


def _jsonl(path: Path) -> Path:
    records = [
        {
            "inlamning_id": f"E{i}",
            "arende": {"etjanst": "Parkering"},
            "kanal": "digital",
            "inkommen": stamp,
            "sokande": {"id": {"personnummer": pnr}},
        }
        for i, (pnr, stamp) in enumerate(
            [("198112189876", "2024-03-03T10:00:00+01:00"), ("200903154565", "2024-03-04T11:30:00Z")]
        )
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return path


SERIAL_HEADER = ["Personnr", "Beslutsdatum", "Registreringstidpunkt", "Belopp"]
SERIAL_ROWS = [  # Swedish Excel's "CSV (semikolonavgränsad)" of a sheet whose dates are General numbers
    ["811218-9876", "45292", "45292,302488426", f"1{NBSP}200,50"],  # 2024-01-01, 07:15:35
    ["900101-0017", "45351", "45351,75", "300,00"],  # 2024-02-29, 18:00
    ["121212-1212", "45383", "45383", "12 000,00"],  # 2024-04-01, midnight
]
SERIAL_LOADED = [
    (date(2024, 1, 1), datetime(2024, 1, 1, 7, 15, 35)),
    (date(2024, 2, 29), datetime(2024, 2, 29, 18)),
    (date(2024, 4, 1), datetime(2024, 4, 1)),
]


def _contacts(path: Path) -> Path:
    """Quoted free text holding CRLF and LF, timestamps with and without offsets, booleans."""
    lines = [
        "kontakt_id,tidpunkt,kanal,amne,lost_vid_forsta_kontakt",
        'K1,2026-03-19T07:15:35+01:00,telefon,"fråga om\r\nbygglov",true',
        "K2,2026-03-19T06:15:36Z,chatt,fråga,false",
        'K3,2026-03-19 07:17:35,telefon,"två\nrader, med komma",false',
        "K4,2026-03-19 07:18:35,chatt,ring 811218-9876,true",
    ]
    path.write_bytes("".join(f"{line}\r\n" for line in lines).encode())
    return path


# (file name, writer, expected format, expected kinds by source column)
SAMPLES = {
    "cp1252_semicolon": (
        "bistand.csv",
        lambda p: _csv(p, [AID_HEADER, *AID_ROWS], "cp1252", ";"),
        Csv("cp1252", ";", True),
        {"Personnr": "personnummer", "Månad": "month", "Belopp": "decimal", "Hushållstyp": "text"},
    ),
    "utf8_nbsp": (
        "bistand.csv",
        lambda p: _csv(
            p,
            [AID_HEADER, *([*r[:2], r[2].replace(NBSP, NNBSP), r[3]] for r in AID_ROWS)],
            "utf-8",
            ";",
            "\n",
        ),
        Csv("utf-8", ";", True),
        {"Belopp": "decimal"},
    ),
    "utf8_bom_comma": (
        "bistand.csv",
        lambda p: _csv(
            p, [AID_HEADER, *([r[0], r[1], r[2].replace(",", "."), r[3]] for r in AID_ROWS)], "utf-8-sig", ","
        ),
        Csv("utf-8-sig", ",", False),
        {"Belopp": "decimal"},
    ),
    "utf16_tab": (
        "bistand.txt",
        lambda p: _csv(p, [AID_HEADER, *AID_ROWS], "utf-16", "\t"),
        Csv("utf-16", "\t", True, "txt"),
        {"Personnr": "personnummer", "Belopp": "decimal"},
    ),
    "trailing_separator": (
        "bistand.csv",
        lambda p: _csv(p, [[*AID_HEADER, ""], *([*r, ""] for r in AID_ROWS)], "cp1252", ";"),
        Csv("cp1252", ";", True),
        {"Hushållstyp": "text"},
    ),
    "quoted_newlines_offsets": (
        "kontakter.csv",
        _contacts,
        Csv("utf-8", ",", False),
        {"tidpunkt": "timestamp", "lost_vid_forsta_kontakt": "boolean", "amne": "text", "kontakt_id": "text"},
    ),
    "parquet_native_types": (
        "boende.parquet",
        _parquet,
        Parquet(),
        {
            "personnummer": "personnummer",
            "inflyttningsdatum": "date",
            "timmar": "decimal",
            "inkommen": "timestamp",
        },
    ),
    "jsonl_nested": (
        "inlamningar.jsonl",
        _jsonl,
        JsonLines(),
        {"sokande.id.personnummer": "personnummer", "inkommen": "timestamp", "arende.etjanst": "text"},
    ),
    "xlsx_dates": (
        "barnutredningar.xlsx",
        lambda p: p.write_bytes((FILES / "excel_barnutredningar.xlsx").read_bytes()) and p,
        Xlsx(),
        {"Startdatum": "date"},
    ),
    # the same sheet with its date cells' number format set back to General: the cells hold day numbers
    "xlsx_serial_dates": (
        "barnutredningar.xlsx",
        lambda p: p.write_bytes((FILES / "excel_serial_barnutredningar.xlsx").read_bytes()) and p,
        Xlsx(),
        {"Startdatum": "date, format excel_serial", "Avslutsdatum": "date, format excel_serial"},
    ),
    "csv_serial_dates": (
        "beslut.csv",
        lambda p: _csv(p, [SERIAL_HEADER, *SERIAL_ROWS], "cp1252", ";"),
        Csv("cp1252", ";", True),
        {
            "Beslutsdatum": "date, format excel_serial",
            "Registreringstidpunkt": "timestamp, format excel_serial",
            "Belopp": "decimal",
        },
    ),
}


@pytest.mark.parametrize("sample", SAMPLES)
def test_onboarding_proposes_a_contract_that_loads_the_sample_with_nothing_quarantined(sample, tmp_path):
    name, write, fmt, kinds = SAMPLES[sample]
    path = write(tmp_path / name)
    proposal = propose(path, "ny_enhet", "data")
    assert proposal.unit.format == fmt, proposal.reasons
    found = {
        c.source: c.kind + ("" if c.format == "iso" else f", format {c.format}")
        for c in proposal.dataset.columns
    }
    assert {s: found[s] for s in kinds} == kinds, proposal.reasons
    run = dry_run(path, draft_yaml(proposal), "ny_enhet", "data")
    result = run.result
    assert (result.status, result.rows_quarantined) == ("loaded", 0), run.describe()
    assert result.rows_loaded == result.rows_in_file == proposal.sample_rows > 0


def test_an_excel_sheet_with_a_bad_personnummer_quarantines_only_that_row(tmp_path):
    path = tmp_path / "bistand.xlsx"
    path.write_bytes((FILES / "excel_ekonomiskt_bistand.xlsx").read_bytes())
    proposal = propose(path, "ny_enhet", "bistand")
    assert proposal.dataset.person_column is not None
    run = dry_run(path, draft_yaml(proposal), "ny_enhet", "bistand")
    assert (run.result.rows_loaded, run.result.rows_quarantined) == (2, 1)
    assert [(q.rule, q.first_lines) for q in run.quarantined] == [("invalid_personnummer", (4,))]
    assert "  invalid_personnummer (Personnr): 1 rows, lines 4" in run.describe()


def test_the_draft_loads_as_is_but_cannot_be_approved_until_the_steward_fills_it(tmp_path):
    path = _csv(tmp_path / "bistand.csv", [AID_HEADER, *AID_ROWS], "cp1252", ";")
    proposal = propose(path, "ny_enhet", "bistand")
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    draft = contracts / "ny_enhet.bistand.yaml"
    draft.write_text(draft_yaml(proposal), encoding="utf-8")
    (contracts / "units.yaml").write_text("units:\n  ny_enhet: [bistand]\n")
    assert read_units(contracts)["ny_enhet"] == proposal.unit, "the loader reads back what was proposed"
    with pytest.raises(ContractError, match="classification 'TODO'"):
        load_contract(draft)


def test_names_addresses_and_a_second_personnummer_are_dropped_and_codes_get_an_allowed_set(tmp_path):
    rows = [["Sökande", "Bostad", "Medsökande", "Status", "Datum"]] + [
        [name, address, co, status, str(45000 + i)]
        for i, (name, address, co, status) in enumerate(
            [
                ("Anna Svensson", "Storgatan 12 B", "900101-0017", "Beviljad"),
                ("Erik Johansson", "Kyrkvägen 3 B", "121212-1212", "Avslag"),
                ("Märta Öberg", "Ängsgränd 7", "811218-9876", "Beviljad"),
                ("Lars-Åke Nilsson", "Björkstigen 1", "900101-0017", "Avslag"),
            ]
        )
    ]
    rows = [[r[2], *r] for r in rows]
    rows[0][0] = "Personnummer"
    proposal = propose(_csv(tmp_path / "ansokan.csv", rows, "utf-8", ","), "ny_enhet", "ansokan")
    kinds = {c.source: (c.kind, c.allowed) for c in proposal.dataset.columns}
    assert kinds == {
        "Personnummer": ("personnummer", None),
        "Sökande": ("identifier", None),
        "Bostad": ("identifier", None),
        "Medsökande": ("identifier", None),
        "Status": ("text", ("Avslag", "Beviljad")),
        "Datum": ("date", None),
    }
    reasons = "\n".join(proposal.reasons)
    assert "Sökande → identifier (dropped at the border) — 4 of 4 values are shaped like names" in reasons
    assert (
        "Medsökande → identifier (dropped at the border) — 4 of 4 values validate as personnummer" in reasons
    )
    assert (
        "Datum → date, format excel_serial — 4 of 4 values are Excel serial dates (day numbers) under a "
        "date-like header, 2023-03-15 to 2023-03-18"
    ) in reasons


def test_a_handmade_procapita_export_is_onboarded_by_the_console_script(tmp_path):
    """Windows-1252, semicolons, quoted notes, NBSP-grouped amounts, names, addresses, personnummer
    with a hyphen, one of them with a wrong check digit: as a steward runs it, from another folder."""
    lines = [
        "Personnr;Efternamn;Förnamn;Gatuadress;Utbetalningsdatum;Belopp;Hushållstyp;Anteckning",
        f"811218-9876;Svensson;Anna;Storgatan 12;2024-03-25;9{NBSP}750,68;Ensamstående;Besök 12/3",
        '900101-0017;Johansson;Erik;Kyrkvägen 3 B;2024-03-25;1 200,75;Sammanboende;"Ringde; ""akut"""',
        "121212-1212;Öberg;Märta;Ängsgränd 7;2024-03-26;450,00;Ensamstående;ny ansökan 121212-1212",
        f"400101-0018;Nilsson;Lars-Åke;Björkstigen 1;2024-03-26;12{NBSP}000,00;Sammanboende;",
        "090315-4565;Lind;Sofia;Torget 4;2024-03-27;300,50;Ensamstående;Uppföljning",
        "811218-9875;Berg;Olle;Åvägen 2;2024-03-27;1 000,00;Ensamstående;fel kontrollsiffra",
    ]
    sample = tmp_path / "procapita_utbetalningar.csv"
    sample.write_bytes("".join(f"{line}\r\n" for line in lines).encode("cp1252"))
    command = [str(KNUTPUNKT), "onboard", str(sample), "--unit", "socialtjanst", "--dry-run"]
    out = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    print(out.stdout)
    assert out.returncode == 0, out.stderr
    for expected in (
        "encoding cp1252 — not UTF-8",
        "separator ';' — 6 of 6 records have 8 fields",
        "Personnr → personnummer — 5 of 6 values validate as personnummer (83%: Luhn, plausible date)",
        "Förnamn → identifier (dropped at the border)",
        "Gatuadress → identifier (dropped at the border)",
        "Belopp → decimal — 6 of 6 values are amounts (2 grouped by space, 2 grouped by no-break space)",
        "decimal_comma true",
        "personnummer_style ten_separator",
        "draft written to socialtjanst.procapita_utbetalningar.yaml",
        "dry run: 6 rows: 5 would load, 1 would be quarantined, 1 personnummer masked in free text",
        "  invalid_personnummer (Personnr): 1 rows, lines 7",
    ):
        assert expected in out.stdout, expected
    draft = (tmp_path / "socialtjanst.procapita_utbetalningar.yaml").read_text()
    assert "Lind" not in draft and "811218" not in draft, "no sample value reaches the draft but codes"
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "exists" in again.stderr, "a draft a steward may have edited is kept"


def test_point_grouped_amounts_load_and_dates_the_border_cannot_read_are_said(tmp_path):
    """Thousands grouped by points (Excel with Swedish settings) make a decimal-comma contract; dates in another spelling than ISO stay text, and the reason says why."""
    rows = [
        ["Belopp", "Beslutsdatum"],
        ["1.234.567", "31.12.2024"],
        ["12.000,5", "01.02.2025"],
        ["100.000,75", "15.03.2025"],
    ]
    path = _csv(tmp_path / "beslut.csv", rows, "utf-8", ";")
    proposal = propose(path, "ny_enhet", "beslut")
    reasons = "\n".join(proposal.reasons)
    assert "Belopp → decimal — 3 of 3 values are amounts (3 grouped by '.' in threes)" in reasons
    assert "decimal_comma true — 2 decimal values use a comma, 3 group thousands by '.'" in reasons
    assert "the sample ranges 12000.5 to 1234567" in reasons, "extremes as written: no exponent, no rounding"
    assert (
        "Beslutsdatum → text — dates written DD.MM.YYYY: the border reads ISO dates and Excel serials only"
        in reasons
    )
    run = dry_run(path, draft_yaml(proposal), "ny_enhet", "beslut")
    assert (run.result.rows_loaded, run.quarantined) == (3, ())


def test_values_shaped_like_a_personnummer_never_reach_the_draft(tmp_path):
    """Probe: personnummer that fail validation (a typo, a test number) in a column with few distinct
    values, as ten digits in a number column, and inside notes. The draft lives in the repository: none
    of them may be copied into it as an allowed code or a range, and none may load as a number."""
    rows = [["Rad", "Handlaggare", "Referens", "Notering"]]
    for i in range(6):
        wrong = ("811218-9870", "900101-0011")[i % 2]  # check digits off by one
        note = "ring 8112189870 om beslut" if i == 0 else f"uppföljning vecka {i + 10}"
        rows.append([str(i + 1), wrong, f"{8112189870 + i * 7}", note])
    path = _csv(tmp_path / "arenden.csv", rows, "utf-8", ",")
    proposal = propose(path, "ny_enhet", "arenden")
    draft = draft_yaml(proposal)
    kinds = {c.source: (c.kind, c.allowed) for c in proposal.unit.datasets[0].columns}
    assert kinds["Handlaggare"] == ("identifier", None)
    assert kinds["Referens"] == ("identifier", None), "ten digits shaped like a personnummer are no number"
    assert kinds["Notering"] == ("text", None), "free text: the border masks what it finds"
    assert not PERSONNUMMER_LIKE.search(draft + "\n".join(proposal.reasons)), draft


def _draft_unit(tmp_path: Path, proposal) -> Unit:
    """The draft written as a steward receives it, read back by the platform's contract loader."""
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    draft = draft_yaml(proposal)
    (contracts / f"{proposal.unit.name}.{proposal.dataset.name}.yaml").write_text(draft, encoding="utf-8")
    (contracts / "units.yaml").write_text(f"units:\n  {proposal.unit.name}: [{proposal.dataset.name}]\n")
    return read_units(contracts)[proposal.unit.name]


def test_excel_serial_dates_round_trip_from_a_sample_to_the_dates_excel_showed(
    tmp_path, home, warehouse, keys
):
    """A CSV Swedish Excel exported from a sheet whose dates are General numbers, and the Excel-saved
    sheet with its date cells set to General: onboarded, the draft says ``format: excel_serial``, and
    the border loads the dates and wall-clock times Excel showed, nothing quarantined. Against the
    control: the same draft without the format quarantines every row."""
    sample = _csv(tmp_path / "beslut.csv", [SERIAL_HEADER, *SERIAL_ROWS], "cp1252", ";")
    proposal = propose(sample, "ny_enhet", "beslut")
    draft = draft_yaml(proposal)
    assert "{source: Beslutsdatum, name: beslutsdatum, kind: date, format: excel_serial}" in draft
    assert "kind: timestamp, format: excel_serial}" in draft
    unit = _draft_unit(tmp_path, proposal)
    assert unit == proposal.unit, "the loader reads back what was proposed"
    target = home.delivery_dir(unit.name, "2024-04") / "beslut.csv"
    target.parent.mkdir(parents=True)
    target.write_bytes(sample.read_bytes())
    [result] = load_delivery(unit, "2024-04", home.landing, warehouse, keys)
    assert (result.rows_in_file, result.rows_loaded, result.rows_quarantined) == (3, 3, 0)
    with duckdb.connect(str(warehouse.unit_zone(unit.name)), read_only=True) as con:
        loaded = con.execute(
            "SELECT beslutsdatum, registreringstidpunkt FROM beslut ORDER BY _source_line"
        ).fetchall()
    assert loaded == SERIAL_LOADED

    iso = draft.replace(", format: excel_serial", "")
    run = dry_run(sample, iso, "ny_enhet", "beslut")
    assert (run.result.rows_loaded, run.result.rows_quarantined) == (0, 3), "the control: ISO reads no serial"


def test_an_excel_sheet_with_day_numbers_loads_the_dates_its_date_cells_would(
    tmp_path, home, warehouse, keys
):
    """The Excel-saved sheet with date cells and the same sheet with the cells as General numbers
    load the same dates: one through the ISO text calamine gives a date cell, one as serials."""
    dates = {}
    for month, name in (
        ("2024-03", "excel_barnutredningar.xlsx"),
        ("2024-04", "excel_serial_barnutredningar.xlsx"),
    ):
        sample = tmp_path / month / "barnutredningar.xlsx"
        sample.parent.mkdir()
        sample.write_bytes((FILES / name).read_bytes())
        proposal = propose(sample, "ny_enhet", "barnutredningar")
        formats = {c.source: c.format for c in proposal.dataset.columns if c.kind == "date"}
        unit = _draft_unit(tmp_path / month, proposal)
        target = home.delivery_dir(unit.name, month) / "barnutredningar.xlsx"
        target.parent.mkdir(parents=True)
        target.write_bytes(sample.read_bytes())
        [result] = load_delivery(unit, month, home.landing, warehouse, keys)
        assert (result.rows_loaded, result.rows_quarantined) == (2, 0), (name, formats)
        with duckdb.connect(str(warehouse.unit_zone(unit.name)), read_only=True) as con:
            dates[name] = con.execute(
                f"SELECT _source_line, startdatum, avslutsdatum FROM barnutredningar WHERE _delivery = '{month}' ORDER BY 1"
            ).fetchall()
        expected = "iso" if name == "excel_barnutredningar.xlsx" else "excel_serial"
        assert formats == {"Startdatum": expected, "Avslutsdatum": expected}
    assert (
        dates["excel_barnutredningar.xlsx"]
        == dates["excel_serial_barnutredningar.xlsx"]
        == [
            (2, date(2024, 3, 3), None),
            (3, date(2024, 3, 5), date(2024, 3, 20)),
        ]
    )
