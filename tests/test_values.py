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
