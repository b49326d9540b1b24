"""Amounts and timestamps as Swedish systems write them, parsed by the border's one parser.

Two oracles: a table of spellings seen in real exports with the value each must give,
and random values written the ways those systems write them and read back, against
Python's own arithmetic and time zones (``zoneinfo``).
"""

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import duckdb
import pytest

from pipelines.ingest import values

STOCKHOLM = ZoneInfo(values.LOCAL_ZONE)
NBSP, NNBSP = "\u00a0", "\u202f"


def _parse(sql_of, texts: list[str]) -> list:
    with duckdb.connect() as con:
        rows = con.execute(
            f"SELECT {sql_of('t')} FROM unnest($t) WITH ORDINALITY u(t, i) ORDER BY i", {"t": texts}
        )
        return [r[0] for r in rows.fetchall()]


SPELLED_AMOUNTS = [  # (text, decimal comma, value); None: not an amount
    ("9 750,68", True, 9750.68),
    (f"9{NBSP}750,68", True, 9750.68),
    (f"9{NNBSP}750,68", True, 9750.68),
    (f"1{NBSP}234{NBSP}567,5", True, 1234567.5),
    ("-4512,50", True, -4512.5),
    ("4512", True, 4512.0),
    ("0,05", True, 0.05),
    ("1.234,50", True, 1234.5),  # points group thousands where the decimal mark is a comma
    ("-1.234.567", True, -1234567.0),
    ("1.23,4", True, None),  # but only in groups of three
    ("12.345,6.7", True, None),
    (f"12{NBSP}000.25", False, 12000.25),
    ("12.5", False, 12.5),
    ("12,5", False, None),  # a comma where the contract says point
    ("12,5 kr", True, None),
    ("", True, None),
]


@pytest.mark.parametrize(("text", "comma", "expected"), SPELLED_AMOUNTS)
def test_amounts_as_they_are_spelled(text: str, comma: bool, expected: float | None):
    assert _parse(lambda t: values.amount_sql(t, comma), [text]) == [expected]


def _swedish(amount: Decimal, space: str, comma: bool) -> str:
    """An amount as Excel or a case system writes it: grouped thousands, two decimals."""
    whole, cents = f"{amount:,.2f}".split(".")
    return whole.replace(",", space) + ("," if comma else ".") + cents


def test_random_amounts_round_trip_through_every_spelling():
    rng = random.Random(15)
    amounts = [Decimal(rng.randint(-(10**9), 10**9)) / 100 for _ in range(2000)]
    for space in (" ", NBSP, NNBSP, "", "."):
        for comma in (True, False) if space != "." else (True,):
            texts = [_swedish(a, space, comma) for a in amounts]
            parsed = _parse(lambda t, c=comma: values.amount_sql(t, c), texts)
            assert parsed == [float(a) for a in amounts], (space, comma)


SPELLED_TIMESTAMPS = [  # Swedish wall-clock time is what the zone stores
    ("2026-03-19 07:15:35", datetime(2026, 3, 19, 7, 15, 35)),
    ("2026-03-19T07:15:35", datetime(2026, 3, 19, 7, 15, 35)),
    ("2026-03-19T07:15:35+01:00", datetime(2026, 3, 19, 7, 15, 35)),
    ("2026-03-19T07:15:35+0100", datetime(2026, 3, 19, 7, 15, 35)),
    ("2026-03-19T06:15:35Z", datetime(2026, 3, 19, 7, 15, 35)),
    ("2026-07-01T10:00:00Z", datetime(2026, 7, 1, 12, 0, 0)),  # summer time: UTC+2
    ("2026-03-19T07:15:35.250+01:00", datetime(2026, 3, 19, 7, 15, 35, 250000)),
    ("2026-03-19 07:15:35.123456", datetime(2026, 3, 19, 7, 15, 35, 123456)),
    ("2026-03-19", None),
    ("19/03/2026 07:15", None),
    ("2026-03-19T07:15:35+01", datetime(2026, 3, 19, 7, 15, 35)),  # ISO's hours-only offset
    ("2026-03-19T07:15:35 CET", None),
]


@pytest.mark.parametrize(("text", "expected"), SPELLED_TIMESTAMPS)
def test_timestamps_as_they_are_spelled(text: str, expected: datetime | None):
    assert _parse(values.timestamp_sql, [text]) == [expected]


def test_random_instants_load_as_the_same_swedish_wall_clock_time_in_every_spelling():
    rng = random.Random(19)
    start = datetime(2015, 1, 1, tzinfo=UTC)
    instants = [start + timedelta(seconds=rng.randint(0, 15 * 365 * 86400)) for _ in range(2000)]
    local = [i.astimezone(STOCKHOLM) for i in instants]
    expected = [t.replace(tzinfo=None) for t in local]
    spellings = {
        "utc_z": [i.strftime("%Y-%m-%dT%H:%M:%SZ") for i in instants],
        "utc_offset": [i.isoformat() for i in instants],
        "local_offset": [t.isoformat() for t in local],
        "local_naive": [t.strftime("%Y-%m-%d %H:%M:%S") for t in local],
        "local_naive_t": [t.replace(tzinfo=None).isoformat() for t in local],
    }
    for name, texts in spellings.items():
        assert _parse(values.timestamp_sql, texts) == expected, name


def test_dates_and_months():
    assert _parse(values.date_sql, ["2024-02-29", "2023-02-29", "2024-2-3x"]) == [
        date(2024, 2, 29),
        None,
        None,
    ]
    assert _parse(values.month_sql, ["2024-02", "2024-13"]) == [date(2024, 2, 1), None]


def _excel_day(serial: int) -> date:
    """Excel's 1900 date system counted as Excel counts it, day by day from day 1 = 1900-01-01 with
    the 29th of February 1900 that never was (Lotus 1-2-3's bug, kept for compatibility): an
    oracle that shares no constant with the parser's 1899-12-30 epoch."""
    leap_bug = 1 if serial > 60 else 0
    return date(1900, 1, 1) + timedelta(days=serial - 1 - leap_bug)


EXCEL_ANCHORS = [  # serials whose dates Microsoft's documentation and Excel itself give
    ("39448", date(2008, 1, 1)),  # "January 1, 2008 is serial number 39448" (Excel's DATEVALUE help)
    ("45292", date(2024, 1, 1)),
    ("61", date(1900, 3, 1)),  # the first serial after Excel's fictitious 1900-02-29
    ("36585", date(2000, 2, 29)),  # a real leap day
    ("45351", date(2024, 2, 29)),
    ("2958465", date(9999, 12, 31)),  # Excel's last day
    ("45292.0", date(2024, 1, 1)),  # a whole number written with a fraction of nothing
    ("45292,0", date(2024, 1, 1)),
]


@pytest.mark.parametrize(("text", "expected"), EXCEL_ANCHORS)
def test_excel_serial_dates_at_documented_anchors(text: str, expected: date):
    assert _parse(lambda t: values.date_sql(t, "excel_serial"), [text]) == [expected]


NOT_EXCEL_SERIALS = [
    "60",  # Excel's 1900-02-29, which never was
    "59",  # 1900-02-28 in Excel: out of range, since reading it right needs Excel's bug copied
    "1",
    "0",
    "-45292",
    "+45292",
    "2958466",  # past 9999-12-31
    "99999999",
    "4.5292e4",
    "45 292",
    "45292.5",  # a time of day is no date
    "2024-01-01",  # an ISO date in a column the contract says is written as serials
    "inf",
    "NaN",
    "",
    "45292.",
]


def test_what_is_not_an_excel_serial_date_parses_as_nothing():
    parsed = _parse(lambda t: values.date_sql(t, "excel_serial"), NOT_EXCEL_SERIALS)
    assert dict(zip(NOT_EXCEL_SERIALS, parsed, strict=True)) == dict.fromkeys(NOT_EXCEL_SERIALS)


def test_every_excel_serial_from_1900_03_01_to_2100_is_the_day_excel_counts():
    """Each day of two centuries, leap days and 1900-03-01 included, against the day-by-day oracle."""
    serials = list(range(values.EXCEL_FIRST, 73_051 + 1))  # 73051 = 2099-12-31
    parsed = _parse(lambda t: values.date_sql(t, "excel_serial"), [str(s) for s in serials])
    expected = [_excel_day(s) for s in serials]
    assert parsed == expected
    assert date(2000, 2, 29) in parsed and date(2100, 2, 28) not in parsed
    assert expected[0] == date(1900, 3, 1) and _excel_day(59) == date(1900, 2, 28)


def test_random_excel_serial_timestamps_are_the_time_of_day_of_their_fraction():
    """Instants to the millisecond written as Excel writes them (the day plus the fraction of 86,400
    seconds, printed to 17 significant digits as a double, with a point or Swedish Excel's comma)
    read back as the same wall-clock time: Excel keeps no time zone."""
    rng = random.Random(45292)
    start = datetime(1990, 1, 1)
    stamps = [start + timedelta(milliseconds=rng.randint(0, 40 * 365 * 86_400_000)) for _ in range(3000)]
    stamps += [datetime(2024, 2, 29, 23, 59, 59, 999000), datetime(2024, 3, 1), datetime(1900, 3, 1, 12)]
    day_one = datetime(1900, 1, 1)
    serials = [(s - day_one) / timedelta(days=1) + 2 for s in stamps]  # + 1 for day 1, + 1 for 1900-02-29
    for comma in (False, True):
        texts = [f"{s:.17g}".replace(".", "," if comma else ".") for s in serials]
        assert _parse(lambda t: values.timestamp_sql(t, "excel_serial"), texts) == stamps, comma
    edges = ["45292.5", "45292", "60.5", "x", "2958465.9999999", "2958465.999999999"]
    assert _parse(lambda t: values.timestamp_sql(t, "excel_serial"), edges) == [
        datetime(2024, 1, 1, 12),
        datetime(2024, 1, 1),
        None,
        None,
        datetime(9999, 12, 31, 23, 59, 59, 991000),
        None,  # rounds to the millisecond after Excel's last day
    ]
