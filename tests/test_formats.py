"""Valid files written the way real Swedish systems write them load with nothing valid quarantined.

Each test writes a delivery as such a system does (Excel's separators and encodings, offsets on
timestamps, native Parquet types, quoted newlines) and loads it into a real unit zone.
"""

import dataclasses
import json
import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal

import duckdb
import polars as pl

from pipelines.ingest.delivery import load_delivery
from pipelines.ingest.read import LINE, read_delivery_file
from pipelines.quality.records import count_records
from pipelines.units import UNITS
from pipelines.units.spec import Csv, Parquet, Unit, Xlsx
from synthetic.write import encode
from tests.conftest import SOCIAL, write_csv
from tests.corpus import FILES

ALONE = "Ensamstående"
NBSP, NNBSP = "\u00a0", "\u202f"


def _zone(warehouse, sql: str, unit: str = "socialtjanst") -> list[tuple]:
    with duckdb.connect(str(warehouse.unit_zone(unit)), read_only=True) as con:
        return con.execute(sql).fetchall()


def _aid(results):
    return next(r for r in results if r.dataset == "ekonomiskt_bistand")


def test_amounts_grouped_by_no_break_spaces_load(home, warehouse, keys):
    """Swedish Excel groups thousands by U+00A0 (cp1252 has it) or U+202F (UTF-8 exports)."""
    utf8 = dataclasses.replace(SOCIAL, format=Csv(encoding="utf-8", separator=";", decimal_comma=True))
    rows = [
        ["811218-9876", "2024-03", f"9{NBSP}750,68", ALONE],
        ["900101-0017", "2024-03", f"12{NNBSP}000,00", ALONE],
        ["121212+1212", "2024-03", "1 200,75", ALONE],
    ]
    write_csv(home, utf8, "2024-03", "ekonomiskt_bistand", rows)
    aid = _aid(load_delivery(utf8, "2024-03", home.landing, warehouse, keys))
    assert (aid.rows_loaded, aid.rows_quarantined) == (3, 0)
    amounts = _zone(warehouse, "SELECT amount_sek FROM ekonomiskt_bistand ORDER BY _source_line")
    assert amounts == [(9750.68,), (12000.0,), (1200.75,)]


def test_timestamps_with_an_offset_load_as_swedish_local_time(home, warehouse, keys):
    """Naive timestamps are Swedish wall-clock time; an offset or ``Z`` is converted to it."""
    unit = UNITS["kontaktcenter"]
    stamps = [
        "2026-03-19T07:15:35+01:00",
        "2026-03-19T06:15:36Z",
        "2026-07-01T10:00:00+00:00",
        "2026-03-19 07:15:37",
    ]
    rows = [[f"K{i}", s, "telefon", "fråga", "", "true"] for i, s in enumerate(stamps)]
    write_csv(home, unit, "2026-03", "kontakter", rows)
    [result] = load_delivery(unit, "2026-03", home.landing, warehouse, keys)
    assert (result.rows_loaded, result.rows_quarantined) == (4, 0)
    loaded = _zone(warehouse, "SELECT contacted_at FROM kontakter ORDER BY _source_line", "kontaktcenter")
    assert loaded == [
        (datetime(2026, 3, 19, 7, 15, 35),),
        (datetime(2026, 3, 19, 7, 15, 36),),
        (datetime(2026, 7, 1, 12, 0, 0),),
        (datetime(2026, 3, 19, 7, 15, 37),),
    ]


def _parquet(home, unit, month: str, dataset: str, frame: pl.DataFrame) -> None:
    path = home.delivery_dir(unit.name, month) / unit.dataset(dataset).file_name(unit.format)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)


def test_parquet_with_native_timestamp_date_and_decimal_types_loads(home, warehouse, keys):
    """A care system's Parquet keeps its types; each is judged by the contract column it fills."""
    care = UNITS["vard_omsorg"]
    person = ["19400101-0018", "19350315-4563"]
    hours = pl.Series([Decimal("10.50"), Decimal("744.00")], dtype=pl.Decimal(10, 2))
    _parquet(
        home,
        care,
        "2024-03",
        "hemtjanst",
        pl.DataFrame(
            {
                "personnummer": person,
                "manad": ["2024-03"] * 2,
                "beviljade_timmar": hours,
                "utforda_timmar": hours,
            }
        ),
    )
    moved_in = pl.Series([date(2024, 3, 10), date(2024, 3, 31)], dtype=pl.Date)
    _parquet(
        home,
        care,
        "2024-03",
        "sarskilt_boende",
        pl.DataFrame({"personnummer": person, "inflyttningsdatum": moved_in, "boende": ["Solgården"] * 2}),
    )
    results = {r.dataset: r for r in load_delivery(care, "2024-03", home.landing, warehouse, keys)}
    assert [
        (results[d].rows_loaded, results[d].rows_quarantined) for d in ("hemtjanst", "sarskilt_boende")
    ] == [
        (2, 0),
        (2, 0),
    ]
    assert _zone(warehouse, "SELECT granted_hours FROM hemtjanst ORDER BY 1", care.name) == [
        (10.5,),
        (744.0,),
    ]

    services = dataclasses.replace(UNITS["e_tjanster"], format=Parquet())
    utc = [datetime(2024, 3, 3, 9, 0, 0, 250000, tzinfo=UTC), datetime(2024, 3, 3, 10, 0, 1, tzinfo=UTC)]
    for month, stamps in (
        ("2024-03", pl.Series(utc, dtype=pl.Datetime("ns", "UTC"))),
        ("2024-04", pl.Series([datetime(2024, 4, 3, 10, 0), datetime(2024, 4, 3, 11, 0)])),
    ):
        frame = pl.DataFrame(
            {
                "inlamning_id": ["E1", "E2"],
                "etjanst": ["Parkering"] * 2,
                "kanal": ["digital"] * 2,
                "inkommen": stamps,
                "personnummer": ["198112189876"] * 2,
            }
        )
        _parquet(home, services, month, "inlamningar", frame)
        [result] = load_delivery(services, month, home.landing, warehouse, keys)
        assert (result.rows_loaded, result.rows_quarantined) == (2, 0), month
    assert _zone(warehouse, "SELECT submitted_at FROM inlamningar ORDER BY 1", services.name) == [
        (datetime(2024, 3, 3, 10, 0, 0, 250000),),  # UTC to Swedish winter time
        (datetime(2024, 3, 3, 11, 0, 1),),
        (datetime(2024, 4, 3, 10, 0),),  # naive: already Swedish wall-clock time
        (datetime(2024, 4, 3, 11, 0),),
    ]


EXCEL_UNICODE_TEXT = Csv(encoding="utf-16", separator="\t", decimal_comma=True)


def test_utf16_with_a_byte_order_mark_loads_where_the_contract_says_utf16(home, warehouse, keys):
    """Excel's "Unicode text": UTF-16 with a byte-order mark, tab separated, CRLF."""
    excel = dataclasses.replace(SOCIAL, format=EXCEL_UNICODE_TEXT)
    rows = [["811218-9876", "2024-03", f"9{NBSP}750,68", ALONE], ["900101-0017", "2024-03", "100,00", ALONE]]
    path = write_csv(home, excel, "2024-03", "ekonomiskt_bistand", rows)
    assert path.read_bytes().startswith(b"\xff\xfe")
    aid = _aid(load_delivery(excel, "2024-03", home.landing, warehouse, keys))
    assert (aid.status, aid.rows_loaded, aid.rows_quarantined) == ("loaded", 2, 0)
    assert count_records(path, excel.format) == 2, "the independent count agrees"
    assert _zone(warehouse, "SELECT amount_sek FROM ekonomiskt_bistand ORDER BY 1") == [(100.0,), (9750.68,)]


def test_utf16_without_a_byte_order_mark_or_not_in_the_contract_is_rejected_naming_file_line_and_rule(
    home, warehouse, keys
):
    excel = dataclasses.replace(SOCIAL, format=EXCEL_UNICODE_TEXT)
    rows = [["811218-9876", "2024-03", "10", ALONE]] * 3
    path = write_csv(home, excel, "2024-03", "ekonomiskt_bistand", rows)
    path.write_bytes(path.read_bytes().removeprefix(b"\xff\xfe"))  # UTF-16LE without its mark
    aid = _aid(load_delivery(excel, "2024-03", home.landing, warehouse, keys))
    assert aid.status == "rejected"
    assert aid.reason == "wrong_encoding: no UTF-16 byte-order mark: the byte order is unknown (line 1)"

    write_csv(home, excel, "2024-04", "ekonomiskt_bistand", rows)  # with its mark, to a cp1252 contract
    aid = _aid(load_delivery(SOCIAL, "2024-04", home.landing, warehouse, keys))
    assert (aid.status, aid.rows_in_file, aid.rows_quarantined) == ("rejected", 3, 3), "its row count is kept"
    assert (
        aid.reason
        == "wrong_encoding: the file is UTF-16 (byte-order mark); the contract says cp1252 (line 1)"
    )
    assert _zone(
        warehouse, "SELECT _source_file, _source_line, rule FROM quarantine WHERE _delivery = '2024-04'"
    ) == [("socialtjanst/2024-04/ekonomiskt_bistand.csv", 1, "wrong_encoding")]


def test_source_lines_are_physical_lines_after_quoted_fields_that_hold_newlines(home, warehouse, keys):
    """A steward looks a quarantined row up in the file by its line: it must be the line the record
    starts on, also after records whose quoted free text spans lines (CRLF or LF inside)."""
    unit = UNITS["kontaktcenter"]
    header = "kontakt_id,tidpunkt,kanal,amne,personnummer,lost_vid_forsta_kontakt"
    records = [
        'K1,2026-03-19 07:15:35,telefon,"fråga om\r\nbygglov\r\nigen",,true',  # lines 2-4
        "K2,2026-03-19 07:16:35,fax,fråga,,true",  # 5: not an allowed channel
        'K3,2026-03-19 07:17:35,chatt,"två\nrader",,false',  # 6-7
        "K4,2026-03-19 07:18:35,brev,fråga,,true",  # 8: not an allowed channel
    ]
    path = home.delivery_dir(unit.name, "2026-03") / "kontakter.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes("".join(f"{line}\r\n" for line in [header, *records]).encode())
    [result] = load_delivery(unit, "2026-03", home.landing, warehouse, keys)
    assert (result.rows_in_file, result.rows_loaded, result.rows_quarantined) == (4, 2, 2)
    assert count_records(path, unit.format) == 4, "the independent count agrees"
    loaded = _zone(warehouse, "SELECT _source_line, contact_id FROM kontakter ORDER BY 1", unit.name)
    assert loaded == [(2, "K1"), (6, "K3")]
    quarantined = _zone(
        warehouse, "SELECT _source_line, raw_values->>'kontakt_id' FROM quarantine ORDER BY 1", unit.name
    )
    assert [line for line, _ in quarantined] == [5, 8]
    physical = path.read_text().splitlines()
    for line, contact in quarantined:
        assert physical[line - 1].startswith(f"{contact},"), (line, physical[line - 1])


def test_a_separator_at_the_end_of_every_line_is_padding_not_a_column(home, warehouse, keys):
    rows = [["811218-9876", "2024-03", "4512,50", ALONE, ""], ["900101-0017", "2024-03", "100,00", ALONE, ""]]
    header = ["Personnr", "Månad", "Belopp", "Hushållstyp", ""]
    write_csv(home, SOCIAL, "2024-03", "ekonomiskt_bistand", rows, header)
    aid = _aid(load_delivery(SOCIAL, "2024-03", home.landing, warehouse, keys))
    assert (aid.status, aid.rows_loaded, aid.rows_quarantined) == ("loaded", 2, 0)

    rows[1][-1] = "x"  # a value under no header
    write_csv(home, SOCIAL, "2024-04", "ekonomiskt_bistand", rows, header)
    aid = _aid(load_delivery(SOCIAL, "2024-04", home.landing, warehouse, keys))
    assert aid.status == "rejected"
    assert aid.reason == "extra_fields: a value after the last header field (line 3)"


def test_json_lines_with_nested_objects_load_by_the_path_the_contract_names(home, warehouse, keys):
    flat = UNITS["e_tjanster"]
    [submissions] = flat.datasets
    nested = {"etjanst": "arende.etjanst", "personnummer": "sokande.id.personnummer"}
    columns = tuple(
        dataclasses.replace(c, source=nested.get(c.source, c.source)) for c in submissions.columns
    )
    unit = dataclasses.replace(flat, datasets=(dataclasses.replace(submissions, columns=columns),))
    records = [
        {
            "inlamning_id": f"E{i}",
            "arende": {"etjanst": "Parkering", "steg": 2},
            "kanal": "digital",
            "inkommen": "2024-03-03T10:00:00+01:00",
            "sokande": {"id": {"personnummer": pnr}},
        }
        for i, pnr in enumerate(["198112189876", "198112189875"])
    ]
    records[0]["arende"].pop("steg")
    path = home.delivery_dir(unit.name, "2024-03") / "inlamningar.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    [result] = load_delivery(unit, "2024-03", home.landing, warehouse, keys)
    assert result.status == "rejected", "a nested field the contract does not name is an unexpected column"
    assert result.reason.startswith(
        "columns_differ_from_contract: missing columns [], unexpected columns ['arende.steg']"
    )

    for r in records:
        r["arende"].pop("steg", None)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    [result] = load_delivery(unit, "2024-03", home.landing, warehouse, keys)
    assert (result.rows_loaded, result.rows_quarantined) == (1, 1)
    loaded = _zone(warehouse, "SELECT e_service, birth_year, submitted_at FROM inlamningar", unit.name)
    assert loaded == [("Parkering", 1981, datetime(2024, 3, 3, 10, 0))]
    assert _zone(warehouse, 'SELECT _source_line, rule, "column" FROM quarantine', unit.name) == [
        (2, "invalid_personnummer", "sokande.id.personnummer")
    ]


def test_excel_sheets_load_with_typed_cells_and_rows_named_by_their_row_number(home, warehouse, keys):
    """Sheets saved by Excel (files/excel_*.xlsx): amounts as number cells, dates as date cells."""
    excel = dataclasses.replace(SOCIAL, format=Xlsx(sheet="Blad1"))
    for dataset in ("ekonomiskt_bistand", "barnutredningar"):
        path = home.delivery_dir(excel.name, "2024-03") / f"{dataset}.xlsx"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((FILES / f"excel_{dataset}.xlsx").read_bytes())
        assert count_records(path, excel.format) == {"ekonomiskt_bistand": 3, "barnutredningar": 2}[dataset]
    results = {r.dataset: r for r in load_delivery(excel, "2024-03", home.landing, warehouse, keys)}
    assert [(r.rows_in_file, r.rows_loaded, r.rows_quarantined) for r in results.values()] == [
        (3, 2, 1),
        (2, 2, 0),
    ]
    assert _zone(warehouse, "SELECT _source_line, amount_sek FROM ekonomiskt_bistand ORDER BY 1") == [
        (2, 9750.68),
        (3, 1200.0),
    ]
    assert _zone(warehouse, "SELECT _source_line, rule FROM quarantine") == [(4, "invalid_personnummer")]
    assert _zone(warehouse, "SELECT start_date, end_date FROM barnutredningar ORDER BY 1") == [
        (date(2024, 3, 3), None),
        (date(2024, 3, 5), date(2024, 3, 20)),
    ]

    other_sheet = dataclasses.replace(SOCIAL, format=Xlsx(sheet="Utbetalningar"))
    aid = _aid(load_delivery(other_sheet, "2024-03", home.landing, warehouse, keys))
    assert aid.status == "rejected" and aid.reason.startswith("unreadable_xlsx: "), aid.reason
    assert "Utbetalningar" in aid.reason


def _hand_made_xlsx(path, rows: dict[int, list | None], first_column: str = "A") -> None:
    """A one-sheet workbook (``Blad1``) as a minimal SpreadsheetML package, cells placed at the given
    sheet rows from ``first_column``: text as inline strings, numbers as number cells, ``None`` a
    formatted cell without a value (an empty row where Excel kept the formatting). No xlsx writer is
    installed (polars' ``write_excel`` needs xlsxwriter), and an untouched row is simply absent."""
    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    package = "http://schemas.openxmlformats.org/package/2006/relationships"
    sheet_rows = []
    for number, values in sorted(rows.items()):
        cells = []
        for offset, value in enumerate(values or [None]):
            ref = f"{chr(ord(first_column) + offset)}{number}"
            if value is None:
                cells.append(f'<c r="{ref}" s="0"/>')
            elif isinstance(value, str):
                cells.append(f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>')
            else:
                cells.append(f'<c r="{ref}"><v>{value}</v></c>')
        sheet_rows.append(f'<row r="{number}">{"".join(cells)}</row>')
    main = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    with zipfile.ZipFile(path, "w") as book:
        book.writestr(
            "[Content_Types].xml",
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            f'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{main}.sheet.main+xml"/>'
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{main}.worksheet+xml"/></Types>',
        )
        book.writestr(
            "_rels/.rels",
            f'<Relationships xmlns="{package}">'
            f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        book.writestr(
            "xl/workbook.xml",
            f'<workbook {ns} xmlns:r="{rel}"><sheets><sheet name="Blad1" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        book.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<Relationships xmlns="{package}">'
            f'<Relationship Id="rId1" Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>',
        )
        book.writestr(
            "xl/worksheets/sheet1.xml",
            f"<worksheet {ns}><sheetData>{''.join(sheet_rows)}</sheetData></worksheet>",
        )


def test_excel_rows_below_blank_rows_keep_the_row_number_excel_shows(home, warehouse, keys):
    """A blank row (no value, formatted or not) is not a record, and it does not shift the rows
    below it, nor do blank rows above a header that is not on row 1 or in column A: a quarantined
    row is named by the row Excel shows, and rows in file = loaded + quarantined still holds."""
    excel = dataclasses.replace(SOCIAL, format=Xlsx(sheet="Blad1"))
    header = ["Personnr", "Månad", "Belopp", "Hushållstyp"]
    sheets = {
        # header on row 1; row 3 untouched, row 4 formatted but empty; the bad row is row 5
        "2024-03": (
            "A",
            {
                1: header,
                2: ["811218-9876", "2024-03", 9750.68, ALONE],
                4: None,
                5: ["811218-9875", "2024-03", 10, ALONE],
                6: ["900101-0017", "2024-03", 1200, ALONE],
            },
        ),
        # rows 1-2 blank (row 1 formatted), the header on row 3 from column B; the bad row is row 7
        "2024-04": (
            "B",
            {
                1: None,
                3: header,
                4: ["811218-9876", "2024-04", 500, ALONE],
                5: None,
                7: ["811218-9875", "2024-04", 10, ALONE],
                8: ["900101-0017", "2024-04", 7, ALONE],
            },
        ),
    }
    for month, (column, rows) in sheets.items():
        path = home.delivery_dir(excel.name, month) / "ekonomiskt_bistand.xlsx"
        path.parent.mkdir(parents=True, exist_ok=True)
        _hand_made_xlsx(path, rows, first_column=column)
        bad = next(n for n, r in rows.items() if r and r[0] == "811218-9875")
        frame = read_delivery_file(path, excel.format, excel.dataset("ekonomiskt_bistand"))
        assert frame[LINE].to_list() == [n for n, r in rows.items() if r and r[0] != "Personnr"]
        assert frame.filter(pl.col("Personnr") == "811218-9875")[LINE].to_list() == [bad]
        assert count_records(path, excel.format) == 3, "the independent count skips the blank rows too"
        aid = _aid(load_delivery(excel, month, home.landing, warehouse, keys))
        assert (aid.rows_in_file, aid.rows_loaded, aid.rows_quarantined) == (3, 2, 1)
    assert _zone(warehouse, "SELECT _source_line, rule FROM quarantine ORDER BY 1") == [
        (5, "invalid_personnummer"),
        (7, "invalid_personnummer"),
    ]
    assert _zone(warehouse, "SELECT _source_line, amount_sek FROM ekonomiskt_bistand ORDER BY 2") == [
        (8, 7.0),
        (4, 500.0),
        (6, 1200.0),
        (2, 9750.68),
    ]


def _written_as_serials(unit: Unit, dataset: str, *sources: str) -> Unit:
    """The unit with those date or timestamp columns declared ``format: excel_serial``."""
    ds = unit.dataset(dataset)
    columns = tuple(
        dataclasses.replace(c, format="excel_serial") if c.source in sources else c for c in ds.columns
    )
    datasets = tuple(dataclasses.replace(d, columns=columns) if d is ds else d for d in unit.datasets)
    return dataclasses.replace(unit, datasets=datasets)


def test_excel_serial_dates_load_and_bad_serials_are_quarantined_naming_file_line_and_rule(
    home, warehouse, keys
):
    """A case system's CSV whose dates Excel wrote as day numbers: valid serials load as their dates,
    every other spelling is quarantined as not_a_date at the physical line a steward finds it on."""
    social = _written_as_serials(SOCIAL, "barnutredningar", "Startdatum", "Avslutsdatum")
    rows = [
        ["121212-1212", "45354", "", "Anmälan"],  # line 2: 2024-03-03
        ["811218-9876", "45356", "45371", "Ansökan"],  # 3: 2024-03-05 to 2024-03-20
        ["900101-0017", "2024-03-05", "", "Anmälan"],  # 4: ISO where the contract says serials
        ["811218-9876", "-45356", "", "Anmälan"],  # 5: negative
        ["900101-0017", "60", "", "Övrigt"],  # 6: Excel's 1900-02-29, which never was
        ["121212-1212", "45356,5", "", "Övrigt"],  # 7: a time of day is no date
        ["121212-1212", "9999999", "", "Övrigt"],  # 8: past Excel's last day
        ["811218-9876", "45355", "tjugo", "Övrigt"],  # 9: text in the end date
        ["900101-0017", "61", "45352.0", "Övrigt"],  # 10: 1900-03-01, the first serial read; 2024-03-01
    ]
    path = write_csv(home, social, "2024-03", "barnutredningar", rows)
    results = {r.dataset: r for r in load_delivery(social, "2024-03", home.landing, warehouse, keys)}
    investigations = results["barnutredningar"]
    assert (investigations.rows_in_file, investigations.rows_loaded, investigations.rows_quarantined) == (
        9,
        3,
        6,
    )
    assert _zone(warehouse, "SELECT _source_line, start_date, end_date FROM barnutredningar ORDER BY 1") == [
        (2, date(2024, 3, 3), None),
        (3, date(2024, 3, 5), date(2024, 3, 20)),
        (10, date(1900, 3, 1), date(2024, 3, 1)),
    ]
    quarantined = _zone(
        warehouse,
        """SELECT _source_file, _source_line, rule, "column", raw_values->>'Startdatum'
           FROM quarantine WHERE dataset = 'barnutredningar' ORDER BY 2""",
    )
    file = "socialtjanst/2024-03/barnutredningar.csv"
    assert quarantined == [
        (file, 4, "not_a_date", "Startdatum", "2024-03-05"),
        (file, 5, "not_a_date", "Startdatum", "-45356"),
        (file, 6, "not_a_date", "Startdatum", "60"),
        (file, 7, "not_a_date", "Startdatum", "45356,5"),
        (file, 8, "not_a_date", "Startdatum", "9999999"),
        (file, 9, "not_a_date", "Avslutsdatum", "45355"),
    ]
    physical = path.read_text(encoding="cp1252").splitlines()
    for _, line, _, _, start in quarantined:
        assert physical[line - 1].split(";")[1] == start, (line, physical[line - 1])


def test_excel_serial_timestamps_load_as_wall_clock_time_after_quoted_newlines(home, warehouse, keys):
    """The fraction of a serial is the time of day, written with a point or (quoted, in a comma
    separated file) Swedish Excel's comma; lines stay physical after a note that spans lines."""
    unit = _written_as_serials(UNITS["kontaktcenter"], "kontakter", "tidpunkt")
    header = "kontakt_id,tidpunkt,kanal,amne,personnummer,lost_vid_forsta_kontakt"
    records = [
        'K1,45370.302488425924,telefon,"fråga om\r\nbygglov",,true',  # lines 2-3: 2024-03-19 07:15:35
        'K2,"45370,5",chatt,fråga,,false',  # 4: noon
        "K3,4.5370e4,chatt,fråga,,false",  # 5: an exponent is no serial
        "K4,2024-03-19 07:15:35,telefon,fråga,,true",  # 6: ISO where the contract says serials
        "K5,45370,webb,fråga,,true",  # 7: midnight
    ]
    path = home.delivery_dir(unit.name, "2024-03") / "kontakter.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes("".join(f"{line}\r\n" for line in [header, *records]).encode())
    [result] = load_delivery(unit, "2024-03", home.landing, warehouse, keys)
    assert (result.rows_in_file, result.rows_loaded, result.rows_quarantined) == (5, 3, 2)
    loaded = _zone(warehouse, "SELECT _source_line, contacted_at FROM kontakter ORDER BY 1", unit.name)
    assert loaded == [
        (2, datetime(2024, 3, 19, 7, 15, 35)),
        (4, datetime(2024, 3, 19, 12, 0)),
        (7, datetime(2024, 3, 19)),
    ]
    quarantined = _zone(
        warehouse, 'SELECT _source_line, rule, "column" FROM quarantine ORDER BY 1', unit.name
    )
    assert quarantined == [(5, "not_a_timestamp", "tidpunkt"), (6, "not_a_timestamp", "tidpunkt")]
    physical = path.read_text().splitlines()
    assert [physical[line - 1][:3] for line, _, _ in quarantined] == ["K3,", "K4,"]


def test_the_generator_writes_excel_serials_where_a_contract_says_so_and_the_border_reads_them_back(
    home, warehouse, keys
):
    """A unit whose contract declares serials gets generated files with serials (CSV text with the
    unit's decimal mark, Parquet numbers), which load as the dates and times they were made from."""
    social = _written_as_serials(SOCIAL, "barnutredningar", "Startdatum", "Avslutsdatum")
    starts = [date(2024, 3, 3), date(2024, 2, 29)]
    investigations = pl.DataFrame(
        {
            "person": ["121212-1212", "811218-9876"],
            "start_date": starts,
            "end_date": [None, date(2024, 3, 20)],
        },
        schema_overrides={"end_date": pl.Date},
    ).with_columns(reason=pl.lit("Anmälan"))
    contacts = dataclasses.replace(
        _written_as_serials(UNITS["kontaktcenter"], "kontakter", "tidpunkt"),
        format=Csv(encoding="utf-8", separator=";", decimal_comma=True),
    )
    stamps = [datetime(2024, 3, 19, 7, 15, 35), datetime(2024, 2, 29, 23, 59, 59, 999000)]
    calls = pl.DataFrame(
        {
            "contact_id": ["K1", "K2"],
            "contacted_at": stamps,
            "channel": ["telefon", "chatt"],
            "topic": ["fråga", "fråga"],
            "person": [None, None],
            "solved_first_contact": [True, False],
        },
        schema_overrides={"person": pl.String},
    )
    parquet = dataclasses.replace(contacts, format=Parquet())
    for unit, dataset, frame, month in (
        (social, "barnutredningar", investigations, "2024-03"),
        (contacts, "kontakter", calls, "2024-03"),
        (parquet, "kontakter", calls, "2024-04"),
    ):
        path = home.delivery_dir(unit.name, month) / unit.dataset(dataset).file_name(unit.format)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(frame, unit, unit.dataset(dataset)))
        result = next(
            r for r in load_delivery(unit, month, home.landing, warehouse, keys) if r.dataset == dataset
        )
        assert (result.rows_loaded, result.rows_quarantined) == (2, 0), (unit.format, result)
    assert (
        b"\nK2;45351,9999999"
        in (home.delivery_dir("kontaktcenter", "2024-03") / "kontakter.csv").read_bytes()
    )
    assert _zone(warehouse, "SELECT start_date, end_date FROM barnutredningar ORDER BY _source_line") == [
        (date(2024, 3, 3), None),
        (date(2024, 2, 29), date(2024, 3, 20)),
    ]
    loaded = _zone(
        warehouse, "SELECT contacted_at FROM kontakter ORDER BY _delivery, _source_line", "kontaktcenter"
    )
    assert [t for (t,) in loaded] == stamps * 2
